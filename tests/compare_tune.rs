//! `gpusched tune`: the search never reports weights worse than the defaults on its training
//! runs, and reports them against the defaults on held-out seeds.

mod common;

#[test]
fn tune_improves_or_keeps_the_training_score_and_reports_held_out_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t");
    // Two hours: long enough for scale-ups, so placements (and thus the weights) matter.
    let (code, stdout, err) = common::gpusched(&[
        "tune",
        "--set",
        "duration_h=2",
        "--budget",
        "4",
        "--train-seeds",
        "1",
        "--holdout-seeds",
        "2",
        "--objective",
        "p99_ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("[engine.weights]"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tune.json")).unwrap()).unwrap();
    assert_eq!(v["trials"].as_array().unwrap().len(), 5);
    let (d, b) = (
        v["train_default_score"].as_f64().unwrap(),
        v["train_best_score"].as_f64().unwrap(),
    );
    assert!(b <= d, "best {b} vs default {d}");
    let sum: f64 = v["best_weights"]
        .as_object()
        .unwrap()
        .values()
        .map(|w| w.as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-4, "weights are normalised: {sum}");
    assert_eq!(v["holdout_seeds"], serde_json::json!([1001, 1002]));
    assert!(v["holdout"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["metric"] == "p99_ms"));
    let (code, _, err) = common::gpusched(&["tune", "--objective", "speed"]);
    assert_eq!(code, 2);
    assert!(err.contains("known metrics are"), "{err}");
}
