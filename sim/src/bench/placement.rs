//! One placement decision against clusters of growing size, per policy, with and without the
//! capacity index ([`gpusched_policies::index`]).
//!
//! The cluster has the seeds' shape scaled up (a third H100-80GB nodes, the rest A100-40GB, one
//! GPU each) and is first filled to about half its GPUs with the default scenario's service mix
//! (tiny 3 GB, medium 8 GB, large 40 GB) by the policy under test. The measured loop then asks
//! for one more replica, applies the placement and undoes it, so every decision sees the same
//! cluster; only `Engine::place` is timed, which includes the index's re-keying of the node the
//! previous iteration touched.

use gpusched_policies::cluster::ClusterState;
use gpusched_policies::config::PolicyName;
use gpusched_policies::view::NodeView;
use gpusched_policies::{Decision, Engine, EngineConfig, GpuCatalog, GpuModel, WorkloadSpec};
use std::time::Instant;

/// The seeds' cluster shape with `n` nodes: every third node an H100-80GB, the rest A100-40GB.
pub fn cluster(n: usize) -> Vec<NodeView> {
    let cat = GpuCatalog::default();
    let (mut h, mut a) = (0, 0);
    (0..n)
        .map(|i| {
            let model = if i % 3 == 0 {
                GpuModel::H100_80GB
            } else {
                GpuModel::A100_40GB
            };
            let (pool, k) = if model == GpuModel::H100_80GB {
                h += 1;
                ("h100", h)
            } else {
                a += 1;
                ("a100", a)
            };
            let mem = cat.spec(model).memory_gb;
            NodeView::new(format!("{pool}-{k}"), i as u32, pool, model, 1, mem)
        })
        .collect()
}

/// The default scenario's three services.
pub fn workload_mix() -> Vec<WorkloadSpec> {
    vec![
        WorkloadSpec::new("chat-tiny", 3.0),
        WorkloadSpec::new("code-medium", 8.0),
        {
            let mut w = WorkloadSpec::new("llm-large", 40.0);
            w.priority = gpusched_policies::Priority::High;
            w
        },
    ]
}

pub fn engine(policy: PolicyName, nodes: usize, indexed: bool) -> Engine {
    let cfg = EngineConfig {
        policy,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(cfg, GpuCatalog::default(), nodes as u32).expect("default config");
    if indexed {
        e.enable_index();
    }
    e
}

/// Fills about half the cluster's GPUs with the service mix, placed by `policy` (indexed, so
/// the fill itself is quick at 10,000 nodes). Returns the next free replica id.
pub fn prefill(nodes: &mut ClusterState, policy: PolicyName) -> u64 {
    let mut e = engine(policy, nodes.len(), true);
    let mix = workload_mix();
    let target = nodes.len() as f64 * 0.5;
    let mut used = 0.0;
    let mut r = 0u64;
    while used < target {
        let w = &mix[(r % 3) as usize];
        nodes.flush_to(&mut e);
        match e.place(nodes, w, r, false) {
            Decision::Place(p) => {
                used += p.share_pct as f64 / 100.0;
                nodes.apply(&p, w.memory_per_gpu_gb());
            }
            _ => break,
        }
        r += 1;
    }
    r
}

/// One row of the placement benchmark.
#[derive(Debug, Clone)]
pub struct PlacementRow {
    pub policy: PolicyName,
    pub nodes: usize,
    pub indexed: bool,
    pub decisions: u64,
    pub us_per_decision: f64,
    /// Classes in the index (0 for the full scan).
    pub classes: usize,
}

/// Times decisions on a prefilled cluster for about `budget_s` seconds (at least 20 decisions).
pub fn measure(policy: PolicyName, n: usize, indexed: bool, budget_s: f64) -> PlacementRow {
    let mut nodes = ClusterState::new(cluster(n));
    let mut replica = prefill(&mut nodes, policy);
    let mut e = engine(policy, n, indexed);
    let mix = workload_mix();
    // Warm-up: builds the index and the profile's scratch buffers.
    nodes.flush_to(&mut e);
    let _ = e.place(&nodes, &mix[0], replica, false);
    let mut spent = 0.0;
    let mut decisions = 0u64;
    while (spent < budget_s || decisions < 20) && decisions < 1_000_000 {
        let w = &mix[(decisions % 3) as usize];
        replica += 1;
        let t = Instant::now();
        nodes.flush_to(&mut e);
        let d = e.place(&nodes, w, replica, false);
        spent += t.elapsed().as_secs_f64();
        decisions += 1;
        if let Decision::Place(p) = d {
            // Apply and undo: the next decision sees the same cluster, and the index re-keys
            // the node (inside the timed `place`, as the doc above says).
            let saved = nodes[p.node_index].clone();
            nodes.apply(&p, w.memory_per_gpu_gb());
            nodes.flush_to(&mut e);
            nodes.replace_node(p.node_index, saved);
        }
    }
    let classes = e.index_classes(&nodes).unwrap_or(0);
    PlacementRow {
        policy,
        nodes: n,
        indexed,
        decisions,
        us_per_decision: spent / decisions as f64 * 1e6,
        classes,
    }
}
