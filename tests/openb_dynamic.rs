//! The openb dynamic replay (`gpusched run` on an `[openb_replay]` scenario): pod accounting,
//! byte-identical reruns, pending pods placed after a departure, and inputs it must refuse.

mod common;

use common::{gpusched, root};
use gpusched_openb::replay::{load_replay, run_replay};
use std::path::{Path, PathBuf};

const HEAD: &str = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n";

/// A scenario in a temp dir: two 2-GPU nodes, and `pods` rows after the header.
fn handcrafted(dir: &Path, pods: &str, extra: &str) -> PathBuf {
    std::fs::write(
        dir.join("nodes.csv"),
        "sn,cpu_milli,memory_mib,gpu,model\nn0,32000,131072,2,T4\nn1,32000,131072,2,T4\n",
    )
    .unwrap();
    std::fs::write(dir.join("pods.csv"), format!("{HEAD}{pods}")).unwrap();
    let sc = dir.join("replay.toml");
    std::fs::write(
        &sc,
        format!(
            "[openb_replay]\npod_list = \"pods.csv\"\nnode_list = \"nodes.csv\"\nseeds = [1, 2]\n{extra}"
        ),
    )
    .unwrap();
    sc
}

/// Four whole GPUs taken by a–d; e and f (arriving at 5 and 6) wait until a and b leave.
const RETRY_PODS: &str = "\
a,4000,1024,1,1000,,LS,Running,0,20,0
b,4000,1024,1,1000,,LS,Running,0,30,0
c,4000,1024,1,1000,,LS,Running,0,,0
d,4000,1024,1,1000,,LS,Running,0,,0
e,2000,1024,1,500,,LS,Pending,5,,
f,2000,1024,1,1000,,LS,Pending,6,,
";

#[test]
fn pending_pods_are_placed_after_a_departure() {
    let dir = tempfile::tempdir().unwrap();
    let sc = handcrafted(dir.path(), RETRY_PODS, "");
    let o = run_replay(&load_replay(&sc, &[], None).unwrap()).unwrap();
    assert_eq!(o.summary.policies.len(), 6);
    for p in &o.summary.policies {
        for r in &p.runs {
            assert_eq!(
                (r.placed, r.placed_after_retry, r.never_placed, r.departed),
                (6, 2, 0, 2),
                "{} seed {}",
                p.policy,
                r.seed
            );
            assert_eq!(r.peak_pending, 2);
        }
        // e: 5 → 20 (a leaves; e takes half of a's GPU, f does not fit the other half);
        // f: 6 → 30 (b leaves). Pooled over two seeds.
        assert_eq!(p.wait_s.max, 24.0, "{}", p.policy);
        assert_eq!(p.wait_s.p95, 24.0);
    }
}

#[test]
fn conservation_on_the_default_pod_list() {
    let sc = root().join("scenarios/openb-dynamic.toml");
    let sets = vec![
        "policies=[\"FGD\", \"Random\"]".to_string(),
        "static_ranking=false".to_string(),
    ];
    let l = load_replay(&sc, &sets, None).unwrap_or_else(|e| panic!("{e}"));
    let o = run_replay(&l).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.summary.pods > 8000, "{}", o.summary.pods);
    for r in &o.results {
        assert_eq!(r.placed + r.never_placed, r.pods, "{}", r.policy);
        assert_eq!(r.never_placed, r.abandoned + r.pending_at_end);
        assert!(r.departed <= r.placed && r.placed_after_retry <= r.placed);
        assert_eq!(r.waits_s.len(), r.placed);
        assert!(r.peak_alloc_pct <= 100.0 && r.mean_alloc_pct > 0.0);
    }
    // The policies must matter under the scenario's load: Random strands more GPU than FGD.
    let alloc = |label: &str| {
        o.summary
            .policies
            .iter()
            .find(|p| p.policy == label)
            .unwrap()
            .peak_alloc_pct
    };
    assert!(alloc("06-FGD") > alloc("01-Random"));
}

#[test]
fn same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let sc = handcrafted(dir.path(), RETRY_PODS, "buckets = 7\n");
    let sc = sc.to_str().unwrap();
    let mut outs = Vec::new();
    for k in 0..2 {
        let out = dir.path().join(format!("out{k}"));
        let (code, stdout, stderr) =
            gpusched(&["run", sc, "--no-plots", "--out", out.to_str().unwrap()]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("dynamic ranking"), "{stdout}");
        outs.push(
            ["summary.json", "timeseries.csv", "report.md"]
                .map(|f| std::fs::read(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))),
        );
    }
    assert_eq!(outs[0], outs[1]);
    let csv = String::from_utf8(outs[0][1].clone()).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + 6 * 7,
        "header + 6 policies × 7 buckets"
    );
    let summary: serde_json::Value = serde_json::from_slice(&outs[0][0]).unwrap();
    assert_eq!(summary["static_ranking"].as_array().unwrap().len(), 6);
    assert_eq!(summary["dynamic_ranking"].as_array().unwrap().len(), 6);
}

#[test]
fn a_list_without_times_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let multigpu =
        root().join("../shared/traces/alibaba-gpu-v2023-openb/openb_pod_list_multigpu20.csv");
    let sc = handcrafted(dir.path(), RETRY_PODS, "");
    let set = format!("pod_list=\"{}\"", multigpu.display());
    let (code, _, stderr) = gpusched(&["run", sc.to_str().unwrap(), "--set", &set]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("openb_pod_list_multigpu20.csv") && stderr.contains("`creation_time`"),
        "{stderr}"
    );
    // Unknown keys and bad values are bad input too, named.
    let typo = handcrafted(dir.path(), RETRY_PODS, "sped_up = 3\n");
    let (code, _, stderr) = gpusched(&["run", typo.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("sped_up"), "{stderr}");
    let (code, _, stderr) = gpusched(&["run", sc.to_str().unwrap(), "--set", "speedup=0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("speedup"), "{stderr}");
}
