//! `gpusched serving fit`: fits the stacks' constants on the reference runs; `--write` rewrites
//! the profiles file.

use super::load_reference;
use crate::cli::bad_input;
use gpusched_serving::{fit, profile, reference};
use std::path::PathBuf;
use std::process::ExitCode;

/// Rounds to 5 significant digits, so a refit that changes nothing rewrites the same file.
fn sig5(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(4 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

pub fn execute(dir: Option<PathBuf>, write: Option<PathBuf>, max_evals: usize) -> ExitCode {
    let (vllm, splitwise) = match load_reference(dir) {
        Ok(x) => x,
        Err(e) => return bad_input(e),
    };
    let mut file = profile::parse(profile::SHIPPED).expect("shipped file parses");
    let sw = match fit::fit_splitwise(&splitwise) {
        Ok(x) => x,
        Err(e) => return bad_input(e),
    };
    let (med, max) = fit::error_summary(&sw.errors);
    let k = sw.constants;
    println!(
        "splitwise-2024 ({} points, prefill and decode iteration):",
        sw.rows
    );
    println!(
        "  overhead {:.4} ms, mbu {:.4}, kv_mbu {:.4}, mfu {:.4}, per sequence {:.3} µs, all-reduce {:.3} µs/step, TP compute exponent {:.4}; A100 factors compute {:.4}, memory {:.4}",
        k.overhead_ms, k.mbu, k.kv_mbu, k.mfu, k.decode_seq_us, k.allreduce_latency_us, k.tp_compute_exponent, sw.a100.compute, sw.a100.memory
    );
    println!(
        "  residuals: median |error| {:.1} %, max {:.1} %",
        med * 100.0,
        max * 100.0
    );
    // The GPU factors are in force for the vLLM fit that follows (it runs on H100 only, so they
    // do not change it; they carry the A100 ratio to every stack).
    file.gpu = vec![profile::GpuFactor {
        gpu: "A100".into(),
        compute: sig5(sw.a100.compute),
        memory: sig5(sw.a100.memory),
    }];
    for p in file.profile.iter_mut() {
        if p.name == "splitwise-2024" {
            p.set_constants(round_constants(k));
            p.fit = fit::record(reference::SPLITWISE_FILE, "Nelder–Mead on squared log errors of prefill and decode-iteration times (static batches)", sw.rows, &sw.errors);
        }
    }
    let base = file
        .profile
        .iter()
        .find(|p| p.name == profile::DEFAULT_STACK)
        .cloned();
    if let Some(base) = base {
        let (fitted, errors) = match fit::fit_vllm(&vllm, &base, max_evals) {
            Ok(x) => x,
            Err(e) => return bad_input(e),
        };
        let (med, max) = fit::error_summary(&errors);
        let k = fitted.constants();
        println!(
            "{} ({} stages: E2E p50, TTFT p50, decode ms/token):",
            fitted.name,
            vllm.len()
        );
        println!(
            "  overhead {:.4} ms, mbu {:.4}, kv_mbu {:.4}, mfu {:.4}, per sequence {:.3} µs, all-reduce {:.3} µs/step, TP compute exponent {:.4}, request overhead {:.3} ms",
            k.overhead_ms, k.mbu, k.kv_mbu, k.mfu, k.decode_seq_us, k.allreduce_latency_us, k.tp_compute_exponent, fitted.request_overhead_ms
        );
        println!(
            "  residuals: median |error| {:.1} %, max {:.1} %",
            med * 100.0,
            max * 100.0
        );
        for p in file.profile.iter_mut() {
            if p.name == fitted.name {
                p.set_constants(round_constants(k));
                p.request_overhead_ms = sig5(fitted.request_overhead_ms);
                p.fit = fit::record(
                    reference::VLLM_FILE,
                    "Nelder–Mead on squared log errors of E2E p50, TTFT p50 and decode ms/token, each stage replayed through the replica engine",
                    vllm.len(),
                    &errors,
                );
            }
        }
    }
    if let Some(path) = write {
        let text = match toml::to_string(&file) {
            Ok(t) => format!("# Serving-stack profiles and GPU factors. Written by `gpusched serving fit --write`; do not edit by hand.\n{t}"),
            Err(e) => return bad_input(e),
        };
        let tmp = path.with_extension("toml.tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path)) {
            return bad_input(format!("{}: {e}", path.display()));
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

fn round_constants(k: gpusched_serving::cost::Constants) -> gpusched_serving::cost::Constants {
    gpusched_serving::cost::Constants {
        overhead_ms: sig5(k.overhead_ms),
        mbu: sig5(k.mbu),
        kv_mbu: sig5(k.kv_mbu),
        mfu: sig5(k.mfu),
        decode_seq_us: sig5(k.decode_seq_us),
        allreduce_latency_us: sig5(k.allreduce_latency_us),
        tp_compute_exponent: sig5(k.tp_compute_exponent),
    }
}
