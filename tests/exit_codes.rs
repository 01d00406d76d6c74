//! One exit-code rule for every subcommand: 2 for bad input (a scenario, a trace, a spec, a
//! flag), whichever command reads it. A bad trace used to be 2 under `run` and 1 under
//! `compare`, `sweep` and `tune`.

mod common;

const BAD_TRACE: &str = "tests/corpus/bad-input/trace-year-9999.toml";

#[test]
fn bad_input_is_exit_2_under_every_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let bad_reconfig = tmp.path().join("reconfig.toml");
    std::fs::write(&bad_reconfig, "[reconfig]\nstrategy = \"canery\"\n").unwrap();
    let bad_reconfig = bad_reconfig.to_str().unwrap();
    let range_reconfig = tmp.path().join("reconfig-range.toml");
    std::fs::write(
        &range_reconfig,
        "[reconfig]\nstrategy = \"canary\"\n[reconfig.params]\ncanary_watch_s = -5\n",
    )
    .unwrap();
    let range_reconfig = range_reconfig.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "run",
            vec!["run", BAD_TRACE, "--no-plots", "--out", o],
            "year-9999.csv:3",
        ),
        (
            "run flag",
            vec!["run", "--set", "costs.energy_usd_per_kwh=nan", "--out", o],
            "costs.energy_usd_per_kwh",
        ),
        (
            "explain",
            vec!["explain", "--set", "pools.0.nodes=-1"],
            "pools[0].nodes",
        ),
        (
            "compare",
            vec![
                "compare",
                BAD_TRACE,
                "--seeds",
                "1",
                "--no-plots",
                "--out",
                o,
            ],
            "year-9999.csv:3",
        ),
        (
            "compare flag",
            vec!["compare", "--seeds", "18446744073709551615", "--out", o],
            "--seeds",
        ),
        (
            "sweep",
            vec![
                "sweep",
                "tests/corpus/bad-input/sweep-slo-nan.toml",
                "--out",
                o,
            ],
            "slo.max_p99_ms",
        ),
        (
            "sweep flag",
            vec![
                "sweep",
                "scenarios/sweep-fleet.toml",
                "--max-p99-ms",
                "nan",
                "--out",
                o,
            ],
            "--max-p99-ms",
        ),
        (
            "tune",
            vec![
                "tune",
                "--train",
                BAD_TRACE,
                "--holdout",
                BAD_TRACE,
                "--budget",
                "1",
                "--train-seeds",
                "1",
                "--holdout-seeds",
                "1",
                "--out",
                o,
            ],
            "year-9999.csv:3",
        ),
        (
            "sweep shards",
            vec![
                "sweep",
                "scenarios/sweep-fleet.toml",
                "--emit-k8s-job",
                o,
                "--shards",
                "18446744073709551615",
            ],
            "--shards",
        ),
        (
            "fgd",
            vec!["fgd", "run", "--tune", "nan", "--out", o],
            "--tune",
        ),
        (
            "fgd seeds",
            vec![
                "fgd",
                "run",
                "--seeds",
                "0..18446744073709551615",
                "--out",
                o,
            ],
            "seed range",
        ),
        (
            "trace synth",
            vec![
                "trace", "synth", "--kind", "poisson", "--qps", "inf", "--out", o,
            ],
            "--qps",
        ),
        (
            "trace inspect",
            vec!["trace", "inspect", "no/such/trace.csv"],
            "no/such/trace.csv",
        ),
        (
            "live rollout",
            vec![
                "live",
                "rollout",
                "--namespace",
                "ml",
                "--pool",
                "inference",
                "--to",
                "time-slicing:1",
            ],
            "--to",
        ),
        (
            "live rollout gate",
            vec![
                "live",
                "rollout",
                "--namespace",
                "ml",
                "--pool",
                "inference",
                "--to",
                "mps:2",
                "--gate",
            ],
            "--prometheus-url",
        ),
        (
            "live rollout --config",
            vec![
                "live",
                "rollout",
                "--namespace",
                "ml",
                "--config",
                bad_reconfig,
                "--dry-run",
            ],
            "line 2, column 12",
        ),
        (
            "live rollout --config range",
            vec![
                "live",
                "rollout",
                "--namespace",
                "ml",
                "--config",
                range_reconfig,
                "--dry-run",
            ],
            "reconfig.params.canary_watch_s: -5 is out of range; allowed: 0 <= x",
        ),
        (
            "live rollout watch",
            vec![
                "live",
                "rollout",
                "--namespace",
                "ml",
                "--pool",
                "inference",
                "--to",
                "mps:2",
                "--canary-watch-s=nan",
            ],
            "--canary-watch-s NaN must be a number of seconds",
        ),
        (
            "unknown flag",
            vec!["run", "--no-such-flag"],
            "--no-such-flag",
        ),
    ];
    let mut failures = Vec::new();
    for (what, args, expect) in cases {
        let (code, _, err) = common::gpusched(&args);
        if code != 2 || !err.contains(expect) || err.contains("panicked") {
            failures.push(format!(
                "{what}: {args:?} exited {code}, expected 2 and `{expect}`:\n{err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}
