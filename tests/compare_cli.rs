//! `gpusched compare` end to end: the tables, files and plots; the CI gate's exit codes against
//! a variant and against a previous compare.json; bad arguments exit 2 before anything runs.

mod common;

use gpusched_experiments::compare::CompareReport;

fn compare(out: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "compare",
        "--policy",
        "seeds",
        "--policy",
        "best_fit",
        "--seeds",
        "2",
        "--set",
        "duration_h=0.25",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    common::gpusched(&args)
}

#[test]
fn compare_writes_tables_json_csv_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    let (code, stdout, err) = compare(&out, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("| p99_ms (ms) |") && stdout.contains(" ± "),
        "{stdout}"
    );
    let report =
        CompareReport::from_json(&std::fs::read_to_string(out.join("compare.json")).unwrap())
            .unwrap();
    assert_eq!(report.runs.len(), 4);
    assert_eq!(report.groups.len(), 2);
    let seeds = &report.groups[0];
    assert_eq!(seeds.variant, "seeds");
    let p99 = seeds.metrics["p99_ms"];
    assert_eq!(p99.n, 2);
    assert!(
        p99.ci95 > 0.0,
        "two seeds differ, so the interval is not empty"
    );
    assert!(p99.mean - p99.ci95 <= p99.min && p99.max <= p99.mean + p99.ci95);
    assert_eq!(seeds.latency_cdf_ms.len(), report.cdf_quantiles.len());
    assert!(
        seeds.latency_cdf_ms.windows(2).all(|w| w[0] <= w[1]),
        "a CDF is monotone"
    );
    let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("default,best_fit,p99_ms,ms,")),
        "{csv}"
    );
    assert!(std::fs::read_to_string(out.join("compare.md"))
        .unwrap()
        .contains("### default"));
    for p in [
        "latency_cdf",
        "bar_p99_ms",
        "bar_slo_attainment",
        "bar_cost_usd",
    ] {
        for ext in ["svg", "png"] {
            assert!(
                out.join("plots").join(format!("{p}.{ext}")).is_file(),
                "{p}.{ext}"
            );
        }
    }
}

#[test]
fn gate_against_a_variant_fails_only_on_regressions() {
    // Over a quarter hour the seeds' policy has a much higher p99 than best_fit (~450 vs ~180 ms).
    let dir = tempfile::tempdir().unwrap();
    let gate = [
        "--fail-if",
        "p99_ms > +5%",
        "--fail-if",
        "slo_attainment < -1pp",
        "--no-plots",
    ];
    let mut args = vec!["--baseline", "seeds"];
    args.extend_from_slice(&gate);
    let (code, stdout, err) = compare(&dir.path().join("a"), &args);
    assert_eq!(code, 0, "best_fit is no worse than seeds: {err}");
    assert!(stdout.contains("Gate passed"), "{stdout}");

    let mut args = vec!["--baseline", "best_fit"];
    args.extend_from_slice(&gate);
    args.extend_from_slice(&["--fail-if", "p99_ms > 100000"]);
    let (code, stdout, err) = compare(&dir.path().join("b"), &args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("1 regression(s)"), "{err}");
    assert!(err.contains("default / seeds: p99_ms > +5%"), "{err}");
    assert!(err.contains("against variant best_fit"), "{err}");
    assert!(stdout.contains("Gate failed"), "{stdout}");
}

#[test]
fn gate_against_a_previous_report() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let (code, _, err) = compare(&base, &["--no-plots"]);
    assert_eq!(code, 0, "{err}");
    let file = base.join("compare.json");
    let file = file.to_str().unwrap();
    // The same configuration again is bit-identical: no relative change at all.
    let (code, _, err) = compare(
        &dir.path().join("same"),
        &[
            "--no-plots",
            "--baseline",
            file,
            "--fail-if",
            "p99_ms > +0.001%",
            "--fail-if",
            "cost_usd > +0.001%",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // An absolute bound every run breaks: both variants are listed.
    let (code, _, err) = compare(
        &dir.path().join("abs"),
        &["--no-plots", "--baseline", file, "--fail-if", "p99_ms > 1"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("default / seeds") && err.contains("default / best_fit"),
        "{err}"
    );
}

#[test]
fn bad_arguments_exit_2_before_running() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["compare", "--fail-if", "p98_ms > +5%"],
            "known metrics are p50_ms",
        ),
        (
            &["compare", "--fail-if", "p99_ms is big"],
            "expected METRIC OP VALUE",
        ),
        (
            &["compare", "--fail-if", "p99_ms > +5%"],
            "needs --baseline",
        ),
        (&["compare", "--policy", "fastest"], "known policies are"),
        (
            &["compare", "--variant", "novalue"],
            "expected name:key=value",
        ),
        (
            &["compare", "--baseline", "/nonexistent/compare.json"],
            "nor a readable file",
        ),
    ];
    for (args, msg) in cases {
        let (code, _, err) = common::gpusched(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}
