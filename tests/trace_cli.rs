//! `gpusched trace …` and `gpusched run --skip-bad-rows` end to end.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gpusched"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn slice(name: &str) -> PathBuf {
    root().join("traces").join(name)
}

#[test]
fn inspect_prints_rates_tokens_and_writes_the_qps_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["trace", "inspect"])
        .arg(slice("azure-conv-head300.csv"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("rows: 300"), "{text}");
    for w in ["1min", "5min", "15min"] {
        assert!(text.contains(w), "rate over {w}: {text}");
    }
    assert!(
        text.contains("input_tokens") && text.contains("output_tokens"),
        "{text}"
    );
    for f in ["qps.svg", "qps.png"] {
        let len = std::fs::metadata(dir.path().join(f))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 1000, "{f}: {len} bytes");
    }
}

#[test]
fn inspect_bad_input_exits_2_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.csv");
    std::fs::write(&p, "arrival_s\n1.0\nsoon\n").unwrap();
    let out = bin()
        .args(["trace", "inspect"])
        .arg(&p)
        .arg("--no-plot")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.csv:3:") && err.contains("arrival_s"),
        "{err}"
    );
    let out = bin()
        .args(["trace", "inspect"])
        .arg(&p)
        .args(["--no-plot", "--skip-bad-rows"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped 1 bad trace rows"));

    // The same warning as JSON lines (structured fields), and silenced below its level.
    let out = bin()
        .args(["trace", "inspect"])
        .arg(&p)
        .args(["--no-plot", "--skip-bad-rows", "--log-format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["level"] == "WARN" && e["skipped"] == 1 && e["timestamp"].is_string()),
        "{err}"
    );
    let out = bin()
        .args(["trace", "inspect"])
        .arg(&p)
        .args(["--no-plot", "--skip-bad-rows", "--log-level", "error"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .args(["trace", "inspect"])
        .arg(&p)
        .args(["--no-plot", "--skip-bad-rows"])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn closed_flag_values_are_checked_by_clap_with_exit_2() {
    for (args, names) in [
        (
            vec!["trace", "synth", "--kind", "nope", "--out", "x.csv"],
            "poisson, diurnal, mmpp, ramp, fit, servegen",
        ),
        (
            vec!["trace", "inspect", "x.csv", "--format", "openb-pods"],
            "gpusched, azure, vidur, mooncake, genai, dlrm, openb_pods",
        ),
        (vec!["run", "--log-format", "xml"], "human, json"),
        (
            vec!["run", "--log-level", "loud"],
            "error, warn, info, debug, trace",
        ),
    ] {
        let out = bin().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error: invalid value") && err.contains(names),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn synth_is_deterministic_and_readable_back() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let p = dir.path().join(name);
        let out = bin()
            .args([
                "trace",
                "synth",
                "--kind",
                "mmpp",
                "--duration-s",
                "600",
                "--seed",
                seed,
                "--out",
            ])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(p).unwrap()
    };
    let (a, b, c) = (run("a.csv", "1"), run("b.csv", "1"), run("c.csv", "2"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.starts_with("arrival_s,service,input_tokens,output_tokens,demand_ms\n"));
    let out = bin()
        .args(["trace", "inspect"])
        .arg(dir.path().join("a.csv"))
        .arg("--no-plot")
        .output()
        .unwrap();
    assert!(out.status.success());
    let rows = a.lines().count() - 1;
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("rows: {rows}")));
    let fit = dir.path().join("fit.csv");
    let out = bin()
        .args([
            "trace",
            "synth",
            "--kind",
            "fit",
            "--duration-s",
            "60",
            "--bin-s",
            "10",
            "--from",
        ])
        .arg(slice("azure-conv-head300.csv"))
        .arg("--out")
        .arg(&fit)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .args(["trace", "synth", "--kind", "nope", "--out"])
        .arg(&fit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cluster_prints_pools_for_a100_80gb_and_h800() {
    let out = bin()
        .args(["trace", "cluster"])
        .arg(slice("spot-node-info.csv"))
        .args(["--scale", "0.01"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("gpu_model = \"A100-80GB\"") && text.contains("gpu_model = \"H100-80GB\""),
        "{text}"
    );
    assert!(text.contains("not mapped: 2494 A10 GPUs"), "{text}");
}

fn scenario(dir: &Path, trace: &str, extra: &str) -> PathBuf {
    std::fs::write(dir.join("t.csv"), trace).unwrap();
    let s = format!(
        r#"name = "t"
duration_s = 120.0
{extra}
[[pools]]
name = "h100"
gpu_model = "H100-80GB"
nodes = 2

[[services]]
name = "svc"
model_memory_gb = 16.0
service_time_ms = 50.0
traffic = {{ kind = "trace", path = "t.csv" }}
"#
    );
    let p = dir.join("t.toml");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn run_fails_on_a_bad_row_and_skip_bad_rows_counts_it_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mut trace = String::from("arrival_s,input_tokens,output_tokens\n");
    for i in 0..50 {
        trace.push_str(&format!("{}.0,100,10\n", i));
        if i % 10 == 0 {
            trace.push_str(&format!("{}.5,many,10\n", i));
        }
    }
    let sc = scenario(dir.path(), &trace, "");
    let out = bin()
        .arg("run")
        .arg(&sc)
        .args(["--no-plots", "--out"])
        .arg(dir.path().join("o1"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("t.csv:3:") && err.contains("input_tokens") && err.contains("`many`"),
        "{err}"
    );

    let out = bin()
        .arg("run")
        .arg(&sc)
        .args(["--no-plots", "--skip-bad-rows", "--out"])
        .arg(dir.path().join("o2"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skipped 5 bad trace rows") && err.contains("`many`"),
        "{err}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("o2/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["bad_trace_rows_skipped"], 5);
    assert_eq!(summary["requests"]["arrived"], 50);

    // The scenario key does the same as the flag.
    let sc = scenario(dir.path(), &trace, "skip_bad_rows = true");
    let out = bin()
        .arg("run")
        .arg(&sc)
        .args(["--no-plots", "--out"])
        .arg(dir.path().join("o3"))
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn token_requests_take_longer_on_a100_than_on_h100() {
    let dir = tempfile::tempdir().unwrap();
    let mut trace = String::from("arrival_s,input_tokens,output_tokens\n");
    for i in 0..20 {
        trace.push_str(&format!("{}.0,2000,100\n", i * 5));
    }
    let mut p50 = Vec::new();
    for model in ["H100-80GB", "A100-80GB"] {
        let sc = scenario(dir.path(), &trace, "");
        let text = std::fs::read_to_string(&sc)
            .unwrap()
            .replace("\"H100-80GB\"", &format!("\"{model}\""));
        std::fs::write(&sc, text).unwrap();
        let out_dir = dir.path().join(model);
        let out = bin()
            .arg("run")
            .arg(&sc)
            .args(["--no-plots", "--out"])
            .arg(&out_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
                .unwrap();
        p50.push(s["latency"]["p50_ms"].as_f64().unwrap());
    }
    // 8B parameters (16 GB / 2 bytes): ~0.07 s prefill + ~0.8 s decode on an H100; A100-80GB decode is 1.6x slower.
    assert!(p50[0] > 500.0 && p50[0] < 2000.0, "{p50:?}");
    assert!(p50[1] > 1.4 * p50[0], "{p50:?}");
}

#[test]
fn shipped_trace_scenarios_load() {
    for e in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("trace-") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        // The shared traces sit beside the project; where they are absent only the syntax is checked.
        if !root().join("../shared/traces").is_dir() {
            assert!(text.parse::<toml::Table>().is_ok(), "{name}");
            continue;
        }
        let out = bin()
            .arg("run")
            .arg(&p)
            .args(["--no-plots", "--set", "duration_h=0.25", "--out"])
            .arg(std::env::temp_dir().join(format!("gpusched-test-{name}")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
