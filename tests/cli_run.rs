//! `gpusched run` end to end: the report folder with every file and plot.

mod common;

#[test]
fn run_writes_summary_timeseries_decisions_report_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let (code, stdout, err) = common::gpusched(&[
        "run",
        "--set",
        "duration_h=0.1",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("wrote"), "{stdout}");
    for f in [
        "summary.json",
        "timeseries.csv",
        "decisions.jsonl",
        "report.md",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    for p in ["qps_replicas", "latency", "gpu_util_power", "placement_mix"] {
        for ext in ["svg", "png"] {
            let f = out.join("plots").join(format!("{p}.{ext}"));
            let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            assert!(len > 1000, "{} is missing or empty", f.display());
        }
    }
    let svg = std::fs::read_to_string(out.join("plots/latency.svg")).unwrap();
    assert!(
        svg.contains("p99"),
        "legend text rendered without system fonts"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["seed"], 3);
    let rows = std::fs::read_to_string(out.join("timeseries.csv"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(rows, 1 + 12, "a header and one row per 30 s of 6 minutes");
}

#[test]
fn explain_shows_every_node_and_term() {
    let (code, stdout, err) = common::gpusched(&["explain", "scenarios/seed-3-mixed.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("a100-4")
            && stdout.contains("UtilisationBelow")
            && stdout.contains("Efficiency"),
        "{stdout}"
    );
    let (code, _, err) = common::gpusched(&["explain", "--service", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("chat-tiny"), "{err}");
}
