//! `gpusched sweep`: a recommendation that meets the SLOs; shards merged equal one machine's
//! run byte for byte; the Kubernetes Indexed Job parses into k8s-openapi's types.

mod common;

use std::path::Path;

const SPEC: &str = r#"
name = "tiny"
seeds = [1, 2]
growth = [1.0, 2.0]
sets = ["duration_h=0.1"]
[slo]
max_p99_ms = 800.0
max_failed_pct = 1.0
[[axes]]
name = "h100_nodes"
keys = ["pools.0.nodes"]
values = [1, 4]
[[axes]]
name = "a100_nodes"
keys = ["pools.1.nodes"]
values = [2, 8]
"#;

fn spec(dir: &Path) -> String {
    let p = dir.join("spec.toml");
    std::fs::write(&p, SPEC).unwrap();
    p.to_str().unwrap().to_string()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn shards_merged_equal_a_single_machine_run() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let full = dir.path().join("full");
    let (code, stdout, err) = common::gpusched(&["sweep", &spec, "--out", full.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("traffic ×1"), "{stdout}");
    assert!(full.join("plots/pareto.svg").is_file() && full.join("plots/pareto.png").is_file());

    let parts = dir.path().join("parts");
    for i in 0..3 {
        let shard = format!("{i}/3");
        let (code, _, err) = common::gpusched(&[
            "sweep",
            &spec,
            "--shard",
            &shard,
            "--out",
            parts.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
    }
    // Merging with a shard missing is refused.
    let lonely = dir.path().join("lonely");
    std::fs::create_dir_all(&lonely).unwrap();
    std::fs::copy(
        parts.join("sweep-part-0-of-3.json"),
        lonely.join("sweep-part-0-of-3.json"),
    )
    .unwrap();
    let (code, _, err) = common::gpusched(&["sweep", "merge", lonely.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing shard(s) 1/3, 2/3"), "{err}");

    let merged = dir.path().join("merged");
    let (code, _, err) = common::gpusched(&[
        "sweep",
        "merge",
        parts.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
        "--no-plots",
    ]);
    assert_eq!(code, 0, "{err}");
    for f in ["sweep.json", "sweep.csv", "sweep.md", "recommended.json"] {
        assert_eq!(read(&full.join(f)), read(&merged.join(f)), "{f} differs");
    }

    // The recommendation at ×1 meets the SLOs and is the cheapest point that does.
    let v: serde_json::Value = serde_json::from_str(&read(&full.join("sweep.json"))).unwrap();
    let rec = &v["recommendations"][0];
    assert_eq!(rec["growth"], 1.0);
    let best = rec["usd_per_hour"]
        .as_f64()
        .expect("some fleet meets the SLOs at ×1");
    assert!(rec["p99_ms"].as_f64().unwrap() <= 800.0);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    for r in rows.iter().filter(|r| r["point"]["growth"] == 1.0) {
        let m = |k: &str| r["metrics"][k]["mean"].as_f64().unwrap();
        if m("p99_ms") <= 800.0 && m("failed_pct") <= 1.0 {
            assert!(best <= m("usd_per_hour"), "a cheaper feasible point: {r}");
        }
    }
}

#[test]
fn k8s_indexed_job_parses_into_k8s_openapi() {
    use k8s_openapi::api::batch::v1::Job;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.json");
    // A path typed on this machine outside the working directory means nothing inside the
    // image: refused rather than written into the Job as typed.
    let outside = spec(dir.path());
    let (code, _, err) =
        common::gpusched(&["sweep", &outside, "--emit-k8s-job", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("relative"), "{err}");
    // The repository's own spec, by its path relative to the working directory (the image's).
    let spec = "./scenarios/sweep-fleet.toml";
    let (code, _, err) = common::gpusched(&[
        "sweep",
        spec,
        "--emit-k8s-job",
        file.to_str().unwrap(),
        "--shards",
        "5",
        "--parallelism",
        "2",
        "--pvc",
        "sweeps",
        "--max-p99-ms",
        "700",
    ]);
    assert_eq!(code, 0, "{err}");
    let job: Job = serde_json::from_str(&read(&file)).expect("a valid batch/v1 Job");
    assert_eq!(job.metadata.name.as_deref(), Some("fleet"));
    assert!(job.metadata.annotations.as_ref().unwrap()["gpusched.io/requires"].contains("1.29"));
    let s = job.spec.unwrap();
    assert_eq!(s.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((s.completions, s.parallelism), (Some(5), Some(2)));
    let pod = s.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap();
    let at = args.iter().position(|a| a == "--shard").unwrap();
    assert_eq!(args[at + 1], "$(JOB_COMPLETION_INDEX)/5");
    assert_eq!(
        args[1], "scenarios/sweep-fleet.toml",
        "the path inside the image"
    );
    assert!(args
        .windows(2)
        .any(|w| w[0] == "--max-p99-ms" && w[1] == "700"));
    let out = &args[args.iter().position(|a| a == "--out").unwrap() + 1];
    let mount = &c.volume_mounts.as_ref().unwrap()[0];
    assert!(out.starts_with(&mount.mount_path), "{out} is on the volume");
    let vol = &pod.volumes.unwrap()[0];
    assert_eq!(vol.name, mount.name);
    assert_eq!(
        vol.persistent_volume_claim.as_ref().unwrap().claim_name,
        "sweeps"
    );
}

#[test]
fn bad_specs_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "name = \"x\"\n[[axes]]\nname = \"a\"\nvalues = [1]\n").unwrap();
    let (code, _, err) = common::gpusched(&["sweep", p.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs `keys`"), "{err}");
    let spec = spec(dir.path());
    let (code, _, err) = common::gpusched(&["sweep", &spec, "--shard", "3/3"]);
    assert_eq!(code, 2, "{err}");
    std::fs::write(&p, SPEC.replace("pools.1.nodes", "pools.7.nodes")).unwrap();
    let (code, _, err) = common::gpusched(&["sweep", p.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("past the end"), "{err}");
}
