//! The capacity index must never change a decision: over random clusters and random sequences
//! of placements, removals, utilisation changes and cordons, an engine deciding through the
//! index and one scanning every node return identical decisions, for every policy and sharing
//! mode. (Debug builds also check this inside `Engine::place` on every indexed decision.)

use gpusched_policies::admission::SharingPolicy;
use gpusched_policies::config::PolicyName;
use gpusched_policies::view::NodeView;
use gpusched_policies::ClusterState;
use gpusched_policies::{Decision, Engine, EngineConfig, GpuCatalog, GpuModel, WorkloadSpec};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_cluster(rng: &mut ChaCha8Rng, tp: bool) -> Vec<NodeView> {
    let cat = GpuCatalog::default();
    let n = rng.random_range(3..40);
    // With tensor-parallel replicas in the mix, nodes of 1–8 GPUs (so TP2/4/8 fit some).
    let gpus = if tp {
        [1, 2, 4, 8][rng.random_range(0..4)]
    } else {
        rng.random_range(1..5u8)
    };
    (0..n)
        .map(|i| {
            let model = GpuModel::ALL[rng.random_range(0..3)];
            let pool = model.as_str().to_lowercase();
            NodeView::new(
                format!("{pool}-{i}"),
                i as u32,
                pool,
                model,
                gpus,
                cat.spec(model).memory_gb,
            )
        })
        .collect()
}

fn random_workload(rng: &mut ChaCha8Rng, i: u64, tp: bool) -> WorkloadSpec {
    let mem = [3.0, 3.0, 8.0, 8.0, 12.0, 20.0, 40.0, 70.0][rng.random_range(0..8)];
    let mut w = WorkloadSpec::new(format!("w{}", i % 5), mem);
    if tp && rng.random_range(0..3) == 0 {
        w.gpus = [2, 4, 8][rng.random_range(0..3)];
        w.model_memory_gb *= w.gpus as f64;
    }
    w.priority = [
        gpusched_policies::Priority::Low,
        gpusched_policies::Priority::Medium,
        gpusched_policies::Priority::High,
    ][rng.random_range(0..3)];
    if rng.random_range(0..6) == 0 {
        w.required_gpu_models = vec![GpuModel::ALL[rng.random_range(0..3)]];
    }
    w
}

fn run_case(seed: u64, tp: bool) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let policy = PolicyName::ALL[rng.random_range(0..4)];
    let sharing = SharingPolicy::ALL[rng.random_range(0..SharingPolicy::ALL.len())];
    // Every change goes through the cluster state, which reports it to the indexed engine.
    let mut nodes = ClusterState::new(random_cluster(&mut rng, tp));
    let cfg = EngineConfig {
        policy,
        sharing,
        ..EngineConfig::default()
    };
    let mk = || Engine::new(cfg.clone(), GpuCatalog::default(), nodes.len() as u32).unwrap();
    let (mut indexed, mut full) = (mk(), mk());
    indexed.enable_index();
    assert!(indexed.index_enabled());
    let mut placed: Vec<(usize, u8, u64)> = Vec::new();
    let mut tp_placed = 0;
    for step in 0..300u64 {
        match rng.random_range(0..10) {
            0..=5 => {
                let w = random_workload(&mut rng, step, tp);
                nodes.flush_to(&mut indexed);
                let a = indexed.place(&nodes, &w, step, false);
                let b = full.place(&nodes, &w, step, false);
                assert_eq!(
                    a, b,
                    "seed {seed} step {step} policy {policy:?} {sharing:?}"
                );
                if let Decision::Place(p) = b {
                    assert_eq!(p.gpus.len() as u32, w.gpus, "all of a replica's GPUs");
                    tp_placed += usize::from(w.gpus > 1);
                    nodes.apply(&p, w.memory_per_gpu_gb());
                    placed.push((p.node_index, p.gpu, step));
                }
            }
            6 | 7 if !placed.is_empty() => {
                let (n, _, r) = placed.swap_remove(rng.random_range(0..placed.len()));
                nodes.release(n, r);
            }
            8 => {
                let n = rng.random_range(0..nodes.len());
                let u = [0.0, 0.0, 0.5, 0.95, rng.random_range(0.0..1.0)][rng.random_range(0..5)];
                for g in 0..nodes[n].gpus.len() as u8 {
                    nodes.set_utilisation(n, g, u);
                }
                if rng.random_range(0..4) == 0 {
                    let c = nodes[n].cordoned;
                    nodes.set_cordoned(n, !c);
                }
            }
            _ => {
                // A monitoring tick: several nodes re-measured at once.
                for n in 0..nodes.len() {
                    if rng.random_range(0..3) == 0 {
                        nodes.set_utilisation(n, 0, [0.0, 0.3][rng.random_range(0..2)]);
                    }
                }
                nodes.all_changed();
            }
        }
    }
    tp_placed
}

#[test]
fn indexed_decisions_equal_full_scan_decisions() {
    for seed in 0..60 {
        run_case(seed, false);
    }
}

/// The same with tensor-parallel replicas (2, 4 or 8 whole GPUs of one node) in the mix, on
/// nodes of 1 to 8 GPUs, placed, preempting and removed among single-GPU ones.
#[test]
fn indexed_decisions_equal_full_scan_decisions_with_tensor_parallel_replicas() {
    let placed: usize = (0..60).map(|seed| run_case(seed, true)).sum();
    assert!(placed > 50, "the mix placed only {placed} TP replicas");
}
