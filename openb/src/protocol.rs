//! The paper's experiment protocol for one run (one pod list × policy × seed), following the
//! authors' simulator:
//!
//! 1. pods sorted by name, then shuffled with the seed;
//! 2. "tune": pods drawn uniformly with replacement from the name-sorted list are appended until
//!    the next draw would push the total GPU request past `tune` × cluster capacity (the upstream
//!    compares with the drawn pod's per-GPU share, and adds its total; kept as is); a list that
//!    is already above the target loses random pods instead;
//! 3. nodes sorted by name, then permuted with the seed: the permuted position decides ties;
//! 4. pods placed one at a time in order, no departures; a pod no node takes fails for good;
//!    after every pod the cluster is sampled for the arrived-% curves.
//!
//! One seeded ChaCha stream drives all of it in that order, like the upstream's single seeded
//! `math/rand` (the streams themselves cannot match Go's).

use super::metrics::{ArrivalCurves, Curves};
use gpusched_policies::openb::{
    assign_kinds, select_gpus, typical_pods, FragModel, OpenbNode, OpenbPod, OpenbPolicy,
    TypicalPodsConfig, MILLI,
};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// A pod list ready to run: pods sorted by name with shape ids, and its fragmentation model.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    pub pods: Vec<OpenbPod>,
    pub frag: Arc<FragModel>,
}

impl Workload {
    /// Sorts the pods by name, assigns shape ids and derives the typical pods from the list.
    pub fn new(name: impl Into<String>, mut pods: Vec<OpenbPod>, cfg: &TypicalPodsConfig) -> Self {
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        assign_kinds(&mut pods);
        let frag = Arc::new(FragModel::new(&typical_pods(&pods, cfg)));
        Self {
            name: name.into(),
            pods,
            frag,
        }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub workload: String,
    pub policy: OpenbPolicy,
    pub tune: f64,
    pub seed: u64,
    pub total_gpus: u64,
    pub curves: Curves,
    pub arrived_pods: usize,
    /// Pods no node could take (kept as a count: the names of 1,020 runs would cost ~100 MB).
    pub failed_pods: usize,
    pub failed_gpu_milli: u64,
    /// Allocated and fragmented share of GPU capacity at the end, %.
    pub final_alloc_pct: f64,
    pub final_frag_pct: f64,
}

/// Steps 1–2: the arrival order of pods for `seed`.
pub fn arrival_order<R: Rng>(
    w: &Workload,
    capacity_milli: u64,
    tune: f64,
    rng: &mut R,
) -> Vec<OpenbPod> {
    let mut pods = w.pods.clone();
    pods.shuffle(rng);
    if tune <= 0.0 || pods.is_empty() {
        return pods;
    }
    let target = tune * capacity_milli as f64;
    let mut total: u64 = pods.iter().map(OpenbPod::total_gpu_milli).sum();
    if (total as f64) < target {
        let mut i = 0usize;
        loop {
            let src = &w.pods[rng.random_range(0..w.pods.len())];
            if (total + src.gpu_milli as u64) as f64 > target {
                break;
            }
            total += src.total_gpu_milli();
            let mut p = src.clone();
            p.name = format!("{}-tuned-{i}", src.name);
            pods.push(p);
            i += 1;
        }
    } else {
        while total as f64 > target && !pods.is_empty() {
            let p = pods.remove(rng.random_range(0..pods.len()));
            total -= p.total_gpu_milli();
        }
    }
    pods
}

/// Step 3: nodes in scheduler order (name-sorted, then permuted), with `idx` set.
pub fn node_order<R: Rng>(nodes: &[OpenbNode], rng: &mut R) -> Vec<OpenbNode> {
    let mut v = nodes.to_vec();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v.shuffle(rng);
    for (i, n) in v.iter_mut().enumerate() {
        n.idx = i as u32;
    }
    v
}

/// Runs one experiment and returns its curves and failures.
pub fn run(
    nodes: &[OpenbNode],
    w: &Workload,
    policy: OpenbPolicy,
    seed: u64,
    tune: f64,
) -> RunResult {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let total_gpus: u64 = nodes.iter().map(|n| n.num_gpus as u64).sum();
    let capacity = total_gpus * MILLI as u64;
    let pods = arrival_order(w, capacity, tune, &mut rng);
    let mut nodes = node_order(nodes, &mut rng);
    let mut profile = policy.profile(w.frag.clone(), rng.next_u64(), true);
    let gpu_sel = policy.gpu_selection();

    let mut node_frag: Vec<f64> = nodes.iter().map(|n| w.frag.node_frag(n)).collect();
    let mut frag_sum: f64 = node_frag.iter().sum();
    let mut used: u64 = nodes.iter().map(OpenbNode::gpu_used_milli).sum();
    let mut arrived: u64 = 0;
    let mut curves = ArrivalCurves::new(total_gpus);
    let mut failed_pods = 0usize;
    let mut failed_gpu_milli = 0;

    for pod in &pods {
        arrived += pod.total_gpu_milli();
        let chosen = profile.select(pod, &nodes, false).chosen;
        let placed = chosen.and_then(|i| {
            let gpus = select_gpus(gpu_sel, pod, &nodes[i], &w.frag, &mut rng)?;
            nodes[i].bind(pod, gpus).ok().map(|_| i)
        });
        match placed {
            Some(i) => {
                used += pod.total_gpu_milli();
                let f = w.frag.node_frag(&nodes[i]);
                frag_sum += f - node_frag[i];
                node_frag[i] = f;
            }
            None => {
                failed_pods += 1;
                failed_gpu_milli += pod.total_gpu_milli();
            }
        }
        curves.sample(arrived, used, frag_sum.max(0.0), capacity - used);
    }
    // Recompute exactly at the end to report without accumulated rounding.
    let frag_end: f64 = nodes.iter().map(|n| w.frag.node_frag(n)).sum();
    RunResult {
        workload: w.name.clone(),
        policy,
        tune,
        seed,
        total_gpus,
        curves: curves.finish(),
        arrived_pods: pods.len(),
        failed_pods,
        failed_gpu_milli,
        final_alloc_pct: 100.0 * used as f64 / capacity as f64,
        final_frag_pct: 100.0 * frag_end / capacity as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpusched_policies::openb::GpuSpec;

    fn tiny() -> (Vec<OpenbNode>, Workload) {
        let nodes: Vec<OpenbNode> = (0..4)
            .map(|i| OpenbNode::new(format!("n{i}"), 16000, 64000, 2, Some(0)))
            .collect();
        let mut pods = Vec::new();
        for i in 0..6 {
            pods.push(OpenbPod::new(
                format!("a{i}"),
                2000,
                1000,
                1,
                500,
                GpuSpec::Any,
                "",
            ));
            pods.push(OpenbPod::new(
                format!("b{i}"),
                4000,
                1000,
                1,
                1000,
                GpuSpec::Any,
                "",
            ));
        }
        pods.push(OpenbPod::new("c", 1000, 100, 0, 0, GpuSpec::Any, ""));
        (
            nodes,
            Workload::new("tiny", pods, &TypicalPodsConfig::default()),
        )
    }

    #[test]
    fn tune_tops_up_to_the_target_and_no_further() {
        let (_, w) = tiny();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let pods = arrival_order(&w, 8000, 1.3, &mut rng);
        let total: u64 = pods.iter().map(OpenbPod::total_gpu_milli).sum();
        assert!(total as f64 <= 1.3 * 8000.0 && total > 9000, "{total}");
        assert!(pods.iter().any(|p| p.name.contains("-tuned-")));
        let down = arrival_order(&w, 4000, 1.0, &mut rng);
        assert!(down.iter().map(OpenbPod::total_gpu_milli).sum::<u64>() <= 4000);
    }

    #[test]
    fn runs_are_deterministic_and_conserve_capacity() {
        let (nodes, w) = tiny();
        for policy in OpenbPolicy::ALL {
            let a = run(&nodes, &w, policy, 42, 1.3);
            let b = run(&nodes, &w, policy, 42, 1.3);
            assert_eq!(a.curves, b.curves, "{policy}");
            assert_eq!(a.failed_pods, b.failed_pods);
            assert!(
                a.final_alloc_pct <= 100.0 && a.final_alloc_pct > 50.0,
                "{policy}: {}",
                a.final_alloc_pct
            );
            assert!(a.failed_pods > 0, "130 % cannot all fit");
            assert_eq!(a.curves.allo.len(), 131);
        }
    }
}
