//! The stated limits (README, "Limits") are checked before any work: sizes past them are
//! refused at once, and sizes inside them stay cheap where the data is sparse.

mod common;

use std::time::Instant;

/// A trace whose last row is three centuries after its first (inside the trace-time limit):
/// `trace inspect` keeps counts per minute with rows, so this costs two entries, not a
/// vector of 1.7×10⁸ minutes.
#[test]
fn a_row_centuries_on_is_inspected_without_a_span_long_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("far.csv");
    std::fs::write(
        &p,
        "arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,512,128\n9.9e9,1024,64\n",
    )
    .unwrap();
    let started = Instant::now();
    let (code, out, err) =
        common::gpusched(&["trace", "inspect", p.to_str().unwrap(), "--no-plot"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rows: 2"), "{out}");
    assert!(
        started.elapsed().as_secs_f64() < 10.0,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn sizes_past_a_limit_are_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("out");
    let o = o.to_str().unwrap();
    for (args, says) in [
        (vec!["compare", "--seeds", "10001", "--out", o], "1..=10000"),
        (
            vec!["run", "--set", "pools.0.nodes=100001", "--out", o],
            "100000 nodes",
        ),
        (
            vec![
                "run",
                "--set",
                "pools.0.nodes=60000",
                "--set",
                "pools.1.nodes=60000",
                "--out",
                o,
            ],
            "120000 nodes in all; the limit is 100000",
        ),
        (
            vec!["run", "--set", "services.0.max_replicas=100001", "--out", o],
            "services[0].max_replicas",
        ),
        (
            vec!["run", "--set", "duration_h=60000", "--out", o],
            "the limit is 1e10",
        ),
        (
            vec!["run", "--set", "services.0.max_queue=1e12", "--out", o],
            "services[0].max_queue",
        ),
        (
            vec![
                "trace",
                "synth",
                "--kind",
                "poisson",
                "--qps",
                "1000000",
                "--duration-s",
                "3e8",
                "--out",
                o,
            ],
            "the limit is 1e10",
        ),
        (
            vec!["fgd", "run", "--tune", "11", "--out", o],
            "pods after top-up",
        ),
        (
            vec![
                "run",
                "--set",
                "tick_s=0.01",
                "--set",
                "duration_h=40",
                "--out",
                o,
            ],
            "GiB of timeseries",
        ),
    ] {
        let started = Instant::now();
        let (code, _, err) = common::gpusched(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            started.elapsed().as_secs_f64() < 10.0,
            "{args:?} refused at once"
        );
    }
}

/// A coefficient of variation so small that cv² underflows used to give the Gamma demand an
/// infinite shape and panic ("validated parameters"); such a demand is constant.
#[test]
fn a_service_time_cv_that_underflows_runs_as_a_constant_demand() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("out");
    let (code, _, err) = common::gpusched(&[
        "run",
        "--set",
        "services.0.service_time_cv=1e-200",
        "--set",
        "duration_h=0.05",
        "--no-plots",
        "--out",
        o.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
