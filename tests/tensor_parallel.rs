//! Tensor-parallel services (`tensor_parallel = N`) through the simulator and the CLI: a replica
//! holds N whole GPUs of one node; every one of them is allocated, busy, powered and billed;
//! decisions and `explain` list them; scenarios that cannot work are refused naming the key.

mod common;

use gpusched_policies::Decision;
use std::io::Write;

/// One 8-GPU H100 node and two 1-GPU A100s; one service of `tp` GPUs per replica.
fn scenario(tp: u32, extra: &str) -> String {
    format!(
        r#"
name = "tp"
duration_s = 600.0
seed = 7
[[pools]]
name = "h100"
gpu_model = "H100-80GB"
nodes = 1
gpus_per_node = 8
[[pools]]
name = "a100"
gpu_model = "A100-40GB"
nodes = 2
[[services]]
name = "llama-70b"
model_memory_gb = 140.0
tensor_parallel = {tp}
service_time_ms = 200.0
service_time_cv = 0.0
concurrency = 8
initial_replicas = 1
min_replicas = 1
max_replicas = 1
traffic = {{ kind = "poisson", qps = 5.0 }}
{extra}
"#
    )
}

fn load(text: &str) -> gpusched_sim::LoadedScenario {
    gpusched_sim::scenario::load_str(text, "<tp>", ".".into(), &[])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn places(r: &gpusched_sim::RunResult) -> Vec<gpusched_policies::decision::Placement> {
    r.decisions
        .iter()
        .filter_map(|d| match &d.decision {
            Decision::Place(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_tp4_replica_holds_four_gpus_that_are_all_allocated_busy_and_logged() {
    // 140 GB does not fit one GPU: compare TP4 with TP2 (70 GB per GPU), same traffic.
    let r4 = common::run(&load(&scenario(4, "")));
    let r2 = common::run(&load(&scenario(2, "")));
    let p = &places(&r4)[0];
    assert_eq!(p.node, "h100-1");
    assert_eq!(p.gpus, vec![0, 1, 2, 3]);
    assert_eq!(places(&r2)[0].gpus, vec![0, 1]);
    let line = serde_json::to_string(&r4.decisions[0]).unwrap();
    assert!(line.contains(r#""gpus":[0,1,2,3]"#), "{line}");
    let (s4, s2) = (&r4.summary, &r2.summary);
    assert_eq!(
        s4.requests.served, s2.requests.served,
        "same traffic, same service"
    );
    assert_eq!((s4.peak_allocated_gpus, s2.peak_allocated_gpus), (4, 2));
    assert!((s4.mean_allocated_gpus - 4.0).abs() < 1e-9);
    // Every GPU of the replica is busy while it serves: twice the busy GPU-seconds, and more
    // energy (busy GPUs draw more than idle ones).
    let h4 = &s4.gpu_models["H100-80GB"];
    let h2 = &s2.gpu_models["H100-80GB"];
    assert!(h2.busy_seconds > 10.0, "{}", h2.busy_seconds);
    assert!(
        (h4.busy_seconds - 2.0 * h2.busy_seconds).abs() < 1e-6,
        "{} vs {}",
        h4.busy_seconds,
        h2.busy_seconds
    );
    assert!(h4.energy_kwh > h2.energy_kwh);
    assert!(r4.timeseries.rows.iter().all(|row| row.allocated_gpus == 4));
}

#[test]
fn a_preempted_tp_replica_frees_all_its_gpus_and_is_placed_again() {
    // Two low-priority TP4 replicas fill the node; a high-priority TP4 service arrives later
    // and evicts one of them (once, from all four GPUs).
    let extra = r#"
[[services]]
name = "prod"
priority = "high"
model_memory_gb = 140.0
tensor_parallel = 4
service_time_ms = 100.0
start_at_s = 120.0
initial_replicas = 1
min_replicas = 1
max_replicas = 1
traffic = { kind = "poisson", qps = 2.0 }
"#;
    let text = scenario(4, extra)
        .replace("initial_replicas = 1\nmin_replicas = 1\nmax_replicas = 1\ntraffic = { kind = \"poisson\", qps = 5.0 }",
                 "initial_replicas = 2\nmin_replicas = 2\nmax_replicas = 2\npriority = \"low\"\ntraffic = { kind = \"poisson\", qps = 5.0 }");
    let r = common::run(&load(&text));
    let preempt = r
        .decisions
        .iter()
        .find_map(|d| match &d.decision {
            Decision::Preempt { victims, .. } => Some(victims.clone()),
            _ => None,
        })
        .expect("prod preempts a batch replica");
    assert_eq!(preempt.len(), 1, "{preempt:?}");
    // The victim's release names all four GPUs it gave back.
    let released = r
        .decisions
        .iter()
        .find_map(|d| match &d.decision {
            Decision::Release { replica, gpus, .. } if *replica == preempt[0].replica => {
                Some(gpus.clone())
            }
            _ => None,
        })
        .expect("the victim's GPUs are released");
    assert_eq!(released.len(), 4, "{released:?}");
    let prod = places(&r)
        .into_iter()
        .find(|p| p.workload == "prod")
        .unwrap();
    assert_eq!(prod.gpus.len(), 4);
    // Never more GPUs allocated than exist, and the evicted replica stays pending (no room).
    assert!(r.timeseries.rows.iter().all(|row| row.allocated_gpus <= 8));
    assert_eq!(r.summary.peak_allocated_gpus, 8);
}

/// Writes `text` as a scenario file and runs the binary with `args` before the file.
fn cli(args: &[&str], text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tp.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = dir.path().join("out");
    let mut all: Vec<&str> = args.to_vec();
    all.push(path.to_str().unwrap());
    if args[0] == "run" {
        all.extend(["--no-plots", "--out", out.to_str().unwrap()]);
    }
    let r = common::gpusched(&all);
    assert!(!r.2.contains("panicked"), "must not panic: {}", r.2);
    r
}

#[test]
fn tensor_parallel_outside_1_2_4_8_is_refused_naming_the_key() {
    let (code, _, err) = cli(&["run"], &scenario(3, ""));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tensor_parallel")
            && err.contains("1, 2, 4 or 8")
            && err.contains("llama-70b"),
        "{err}"
    );
}

#[test]
fn tensor_parallel_beyond_every_node_is_refused() {
    let text = scenario(8, "").replace("gpus_per_node = 8", "gpus_per_node = 4");
    let (code, _, err) = cli(&["run"], &text);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tensor_parallel") && err.contains("one node"),
        "{err}"
    );
}

#[test]
fn tensor_parallel_with_a_sharing_mode_is_refused_naming_both_keys() {
    for mode in ["mps_per_client", "mps_uniform", "mig", "time_slicing"] {
        // A small model, so every mode would give it a slice of one GPU.
        let text = scenario(2, "")
            .replace("model_memory_gb = 140.0", "model_memory_gb = 6.0")
            .replace(
                "tensor_parallel = 2",
                &format!("tensor_parallel = 2\nsharing_mode = \"{mode}\""),
            );
        let (code, _, err) = cli(&["run"], &text);
        assert_eq!(code, 2, "{mode}: {err}");
        assert!(
            err.contains("tensor_parallel") && err.contains("sharing_mode") && err.contains(mode),
            "{err}"
        );
    }
    // The engine-wide sharing mode too.
    let text = scenario(2, "[engine]\nsharing = \"time_slicing\"")
        .replace("model_memory_gb = 140.0", "model_memory_gb = 6.0");
    let (code, _, err) = cli(&["run"], &text);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("engine.sharing"), "{err}");
}

#[test]
fn explain_lists_every_gpu_of_a_tp_replica() {
    let (code, out, err) = cli(&["explain", "--service", "llama-70b"], &scenario(4, ""));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("GPUs 0,1,2,3"), "{out}");
    let (code, out, _) = cli(
        &["explain", "--json", "--service", "llama-70b"],
        &scenario(4, ""),
    );
    assert_eq!(code, 0);
    assert!(out.contains("\"gpus\""), "{out}");
}
