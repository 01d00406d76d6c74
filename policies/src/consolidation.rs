//! Seed 004's consolidation report: under-used nodes, how many GPUs a repack could free, and the
//! recommendation lines an operator reads. Analysis only: acting on it is a rollout decision.

use crate::view::NodeView;
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConsolidationReport {
    pub nodes: usize,
    pub gpus_allocated: usize,
    /// GPUs a first-fit-decreasing repack of every allocation's share would need.
    pub gpus_needed: usize,
    pub potential_savings_gpus: usize,
    pub underutilized_nodes: Vec<String>,
    pub recommendations: Vec<String>,
}

impl ConsolidationReport {
    /// The seed's headline line.
    pub fn summary_line(&self) -> String {
        format!(
            "Consolidation opportunities found: underutilizedNodes={}, potentialSavings={} GPUs",
            self.underutilized_nodes.len(),
            self.potential_savings_gpus
        )
    }
}

/// Nodes whose allocated share is below `threshold` (0..=1) of their GPUs count as under-used.
pub fn analyse(nodes: &[NodeView], threshold: f64) -> ConsolidationReport {
    let mut r = ConsolidationReport {
        nodes: nodes.len(),
        ..Default::default()
    };
    let mut shares: Vec<u16> = Vec::new();
    for n in nodes {
        let allocated = n.gpus.iter().filter(|g| !g.is_free()).count();
        if allocated == 0 {
            continue;
        }
        r.gpus_allocated += allocated;
        let used: f64 = n
            .gpus
            .iter()
            .map(|g| g.share_allocated_pct.min(100) as f64)
            .sum::<f64>()
            / (n.gpus.len() as f64 * 100.0);
        shares.extend(
            n.gpus
                .iter()
                .flat_map(|g| g.allocations.iter().map(|a| a.share_pct as u16)),
        );
        if used < threshold {
            r.underutilized_nodes.push(n.name.clone());
            r.recommendations.push(format!(
                "Recommendation: Node {} is underutilized ({:.1}% used, {}/{} GPUs allocated)",
                n.name,
                used * 100.0,
                allocated,
                n.gpus.len()
            ));
        }
    }
    // First-fit decreasing into 100 % bins: a lower bound a live repack can approach.
    shares.sort_unstable_by(|a, b| b.cmp(a));
    let mut bins: Vec<u16> = Vec::new();
    for s in shares {
        match bins.iter_mut().find(|b| **b + s <= 100) {
            Some(b) => *b += s,
            None => bins.push(s),
        }
    }
    r.gpus_needed = bins.len();
    r.potential_savings_gpus = r.gpus_allocated.saturating_sub(r.gpus_needed);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::GpuModel;
    use crate::view::{AllocSlice, AllocationView, SharingMode};
    use crate::workload::SizeClass;

    #[test]
    fn two_quarter_used_nodes_can_be_merged() {
        let mut nodes: Vec<NodeView> = (0..2)
            .map(|i| {
                NodeView::new(
                    format!("gpu-node-0{i}"),
                    i,
                    "p",
                    GpuModel::A100_80GB,
                    8,
                    80.0,
                )
            })
            .collect();
        for (k, n) in nodes.iter_mut().enumerate() {
            for g in 0..2 {
                let a = AllocationView {
                    workload: "w".into(),
                    replica: (k * 10 + g) as u64,
                    class: SizeClass::Tiny,
                    share_pct: 25,
                    memory_gb: 3.0,
                    slice: AllocSlice::Mps { pct: 25 },
                    priority_class: 500,
                };
                n.gpus[g].add_allocation(a, SharingMode::Mps);
            }
        }
        let r = analyse(&nodes, 0.5);
        assert_eq!(r.gpus_allocated, 4);
        assert_eq!(r.gpus_needed, 1);
        assert_eq!(r.potential_savings_gpus, 3);
        assert_eq!(r.underutilized_nodes.len(), 2);
        assert_eq!(
            r.recommendations[0],
            "Recommendation: Node gpu-node-00 is underutilized (6.2% used, 2/8 GPUs allocated)"
        );
    }
}
