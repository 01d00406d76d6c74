//! Issue 8: the `gpusched bench` targets run and print their figures (tiny sizes, debug build;
//! no timing is asserted: speed targets live in BENCHMARKS.md, measured with a release build).

use std::process::Command;

fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gpusched"))
        .arg("bench")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn event_loop_reports_the_ratio_to_a_bare_heap() {
    let out = bench(&[
        "event-loop",
        "--events",
        "20000",
        "--pending",
        "100",
        "--repeat",
        "1",
    ]);
    assert!(out.contains("ratio EventQueue / bare heap"), "{out}");
}

#[test]
fn placement_reports_every_policy_and_writes_the_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(&[
        "placement",
        "--sizes",
        "12,60",
        "--budget-s",
        "0.001",
        "--plot-dir",
        dir.path().to_str().unwrap(),
    ]);
    for p in ["seeds", "best_fit", "first_fit", "worst_fit"] {
        assert!(out.contains(p), "{out}");
    }
    assert!(out.contains("growth from 12 to 60 nodes"), "{out}");
    for f in [
        "placement-cost.svg",
        "placement-cost.png",
        "placement-cost.csv",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
}

#[test]
fn fleet_scenario_loads_and_runs_a_slice() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gpusched"))
        .args(["run", "scenarios/fleet-10k-week.toml", "--no-plots"])
        .args(["--set", "duration_h=0.02", "--out"])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
