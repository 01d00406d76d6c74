//! The fidelity check of issue 15, run in CI: every reference row of
//! ../shared/reference/llm-serving replayed with the shipped profiles (the table itself:
//! `gpusched serving fidelity`). Bounds are the targets where the model meets them and
//! the measured state where it does not yet (see the closing note of issue 15).

use gpusched_serving::{fidelity, profile, reference};

fn data() -> Option<(Vec<reference::VllmStage>, Vec<reference::SplitwisePoint>)> {
    let dir = reference::default_dir();
    if !dir.join(reference::VLLM_FILE).is_file() {
        eprintln!(
            "skipped: {} not found (../shared beside the checkout)",
            dir.display()
        );
        return None;
    }
    Some((
        reference::read_vllm(&dir.join(reference::VLLM_FILE)).unwrap(),
        reference::read_splitwise(&dir.join(reference::SPLITWISE_FILE)).unwrap(),
    ))
}

#[test]
fn the_reference_files_read_completely() {
    let Some((v, s)) = data() else { return };
    assert_eq!(v.len(), 16, "8 runs × 2 stages");
    assert!(v
        .iter()
        .all(|x| x.measured.contains_key("e2e_latency_p50") && x.shared_prefix == 100));
    assert_eq!(
        s.len(),
        2 * 4 * 19,
        "2 GPUs × 4 (model, TP) × 19 configurations"
    );
    assert!(s
        .iter()
        .all(|p| p.prefill_ms > 0.0 && p.decode_iteration_ms > 0.0 && p.e2e_ms > 0.0));
}

#[test]
fn vllm_stages_are_reproduced() {
    let Some((v, s)) = data() else { return };
    let rows = fidelity::replay_vllm(&v, profile::lookup("vllm-0.15").unwrap()).unwrap();
    let sw = fidelity::replay_splitwise(&s, profile::lookup("splitwise-2024").unwrap()).unwrap();
    let verdict = fidelity::verdict(&rows, &sw);
    eprintln!(
        "{}\n{}",
        fidelity::vllm_table(&rows),
        fidelity::verdict_text(&verdict)
    );
    for r in &rows {
        assert_eq!(
            r.ours.failed, 0,
            "{}: nothing failed in the measured runs",
            r.measured.run
        );
        let e2e = fidelity::rel(r.ours.e2e_p50, r.measured.get("e2e_latency_p50"));
        assert!(
            e2e.abs() < 0.35,
            "{} stage {}: E2E p50 off by {e2e:+.2}",
            r.measured.run,
            r.measured.stage
        );
    }
    assert!(
        verdict.median_abs_e2e_p50 <= fidelity::E2E_P50_TARGET,
        "{verdict:?}"
    );
    assert!(
        verdict.median_abs_decode <= fidelity::DECODE_TARGET,
        "{verdict:?}"
    );
    assert!(
        verdict.median_abs_ttft_p50 <= fidelity::TTFT_P50_TARGET,
        "{verdict:?}"
    );
    assert!(verdict.vllm_within * 2 >= verdict.vllm_rows, "{verdict:?}");
}

#[test]
fn splitwise_phases_and_the_a100_h100_ratio_are_reproduced() {
    let Some((_, s)) = data() else { return };
    let sw = fidelity::replay_splitwise(&s, profile::lookup("splitwise-2024").unwrap()).unwrap();
    let verdict = fidelity::verdict(&[], &sw);
    eprintln!("{}", fidelity::verdict_text(&verdict));
    assert!(
        verdict.median_abs_phase <= fidelity::PHASE_TARGET,
        "{verdict:?}"
    );
    assert!(
        verdict.median_abs_ratio <= fidelity::RATIO_TARGET,
        "{verdict:?}"
    );
    assert!(
        verdict.splitwise_within * 4 >= verdict.splitwise_values * 3,
        "{verdict:?}"
    );
}

#[test]
fn the_shipped_profiles_are_what_the_fit_finds() {
    // The Splitwise fit is analytic and quick: refit and compare with the shipped constants.
    let Some((_, s)) = data() else { return };
    let f = gpusched_serving::fit::fit_splitwise(&s).unwrap();
    let shipped = profile::lookup("splitwise-2024").unwrap();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-3 * b.abs().max(1e-3);
    assert!(
        close(f.constants.mbu, shipped.mbu) && close(f.constants.mfu, shipped.mfu),
        "{:?} vs {shipped:?}",
        f.constants
    );
    assert!(close(f.a100.compute, profile::gpu_factors("A100-80GB").0));
}
