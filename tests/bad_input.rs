//! Bad input gets a clear error naming the file, the key and what is allowed — never a panic.

mod common;

use std::io::Write;

/// Writes `text` as a scenario file and runs `gpusched run` on it; returns (code, stderr).
fn run_with(text: &str, extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let p = path.to_str().unwrap().to_string();
    let out = dir.path().join("out");
    let mut args = vec![
        "run",
        p.as_str(),
        "--no-plots",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = common::gpusched(&args);
    assert!(!err.contains("panicked"), "must not panic: {err}");
    (code, err)
}

fn default_with(from: &str, to: &str) -> String {
    let base = std::fs::read_to_string(common::root().join("scenarios/default.toml")).unwrap();
    assert!(
        base.contains(from),
        "fixture text `{from}` not in default.toml"
    );
    base.replacen(from, to, 1)
}

#[test]
fn unknown_gpu_model_names_the_key_and_the_known_models() {
    let (code, err) = run_with(
        &default_with("gpu_model = \"A100-40GB\"", "gpu_model = \"B200\""),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.toml")
            && err.contains("B200")
            && err.contains("H100-80GB")
            && err.contains("A100-40GB"),
        "{err}"
    );
    assert!(err.contains("line"), "names the line: {err}");
}

#[test]
fn negative_node_count() {
    let (code, err) = run_with(&default_with("nodes = 8", "nodes = -8"), &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.toml") && err.contains("nodes") && err.contains("-8"),
        "{err}"
    );
}

#[test]
fn unknown_policy_lists_the_policies() {
    let (code, err) = run_with(
        &default_with("policy = \"seeds\"", "policy = \"fastest\""),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("fastest") && err.contains("best_fit") && err.contains("seeds"),
        "{err}"
    );
    let (code, _, err) = common::gpusched(&[
        "run",
        "--set",
        "engine.policy=nope",
        "--no-plots",
        "--out",
        "/tmp/gpusched-test-unused",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("nope") && err.contains("first_fit"), "{err}");
}

#[test]
fn missing_trace_file_names_the_path_and_key() {
    let text = default_with(
        "kind = \"diurnal\"          # anchors default to the seeds' day\nscale = 1.0",
        "kind = \"trace\"\npath = \"no/such/trace.csv\"",
    );
    let (code, err) = run_with(&text, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("traffic.path")
            && err.contains("no/such/trace.csv")
            && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn toml_syntax_error_names_the_line() {
    let (code, err) = run_with("name = \"x\"\nseed = [1, 2\n", &[]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml") && err.contains("line 2"), "{err}");
}

#[test]
fn workload_that_fits_nowhere() {
    let (code, err) = run_with(
        &default_with("model_memory_gb = 40.0", "model_memory_gb = 120.0"),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("services[2].model_memory_gb")
            && err.contains("llm-large")
            && err.contains("fits no GPU")
            && err.contains("80"),
        "{err}"
    );
}

#[test]
fn missing_scenario_file_and_unknown_key() {
    let (code, _, err) = common::gpusched(&["run", "scenarios/does-not-exist.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("does-not-exist.toml") && err.contains("cannot read"),
        "{err}"
    );
    let (code, err) = run_with(&default_with("seed = 42", "seed = 42\nsede = 1"), &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("sede") && err.contains("expected one of"),
        "{err}"
    );
    let (code, err) = run_with(
        &default_with("seed = 42", "seed = 42"),
        &["--set", "services.9.concurrency=2"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("index 9") && err.contains("services"), "{err}");
}

#[test]
fn malformed_trace_row_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.csv");
    std::fs::write(&trace, "arrival_s,service\n0.5,chat-tiny\nabc,chat-tiny\n").unwrap();
    let text = default_with(
        "kind = \"diurnal\"          # anchors default to the seeds' day\nscale = 1.0",
        &format!("kind = \"trace\"\npath = \"{}\"", trace.display()),
    );
    let (code, err) = run_with(&text, &[]);
    assert_eq!(code, 2, "a bad trace row is bad input: {err}");
    assert!(
        err.contains("t.csv:3") && err.contains("arrival_s") && err.contains("abc"),
        "{err}"
    );
}

#[test]
fn sharing_settings_the_stack_forbids_are_refused_with_the_key() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "pools.1.mig_layout=[\"3g.20gb\",\"3g.20gb\",\"1g.5gb\"]",
                "pools.1.sharing={config=\"mig\"}",
            ],
            "pools[1].mig_layout",
        ),
        (&["pools.1.mig_layout=[\"3g.20gb\"]"], "pools[1].mig_layout"),
        (
            &["pools.1.sharing={config=\"time_slicing\",replicas=1}"],
            "pools[1].sharing.replicas",
        ),
        (
            &["engine.time_slicing.a100_replicas=1"],
            "time_slicing.a100_replicas",
        ),
    ];
    for (sets, key) in cases {
        let mut args = vec!["run", "--no-plots", "--out", "/tmp/gpusched-test-unused"];
        for s in sets {
            args.push("--set");
            args.push(s);
        }
        let (code, _, err) = common::gpusched(&args);
        assert_eq!(code, 2, "{sets:?}: {err}");
        assert!(err.contains(key), "{sets:?}: {err}");
    }
}

#[test]
fn durations_and_ticks_that_cannot_be_simulated_are_refused() {
    let base = default_with("seed = 42", "seed = 42");
    for (set, key, says) in [
        ("duration_h=nan", "duration", "positive"),
        ("duration_h=1e9", "duration", "10 years"),
        ("tick_s=inf", "tick_s", "positive"),
        ("tick_s=0.0001", "tick_s", "at most 20,000,000"),
    ] {
        let (code, err) = run_with(&base, &["--set", set]);
        assert_eq!(code, 2, "{set}: {err}");
        assert!(
            err.contains("bad.toml") && err.contains(key) && err.contains(says),
            "{set}: {err}"
        );
    }
}

#[test]
fn a_trace_path_that_is_a_folder_is_named_as_such() {
    let folder = common::root().join("scenarios");
    let text = default_with(
        "kind = \"diurnal\"          # anchors default to the seeds' day\nscale = 1.0",
        &format!("kind = \"trace\"\npath = {:?}", folder.to_str().unwrap()),
    );
    let (code, err) = run_with(&text, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a folder, not a trace file"), "{err}");
}
