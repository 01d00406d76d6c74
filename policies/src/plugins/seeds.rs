//! The seeds' five score terms. Each plugin documents its raw value and how NormalizeScore maps
//! it onto 0..=100; the profile's weights (default 0.30/0.25/0.20/0.15/0.10) then add them up.

use super::filters::FitCtx;
use super::fit::{fitting_gpus, nominal_share};
use crate::framework::{normalize_unit, ScorePlugin};
use crate::gpu::GpuCatalog;
use crate::view::{NodeView, SharingMode};
use crate::workload::{PlacementRequest, Priority};
use serde::{Deserialize, Serialize};

/// The registered names ([`crate::registry::seeds`]), which are also what decision matrices name.
pub const EFFICIENCY: &str = "Efficiency";
pub const AFFINITY: &str = "Affinity";
pub const UTILISATION: &str = "Utilisation";
pub const POWER_BONUS: &str = "PowerBonus";
pub const SHARING_HEADROOM: &str = "SharingHeadroom";
pub const BEST_FIT: &str = "BestFit";
pub const FIRST_FIT: &str = "FirstFit";
pub const WORST_FIT: &str = "WorstFit";

/// Efficiency: TOPS per watt of the node's GPU model, from the seeds' figures.
/// Normalised as a fraction of the best candidate (kube's "divide by max"): an A100 (1.56 TOPS/W)
/// scores 100 and an H100 (1.43) 91.5, so the term separates models by their real ratio rather
/// than stretching a 9 % difference to 100 points.
pub struct Efficiency(pub GpuCatalog);

impl ScorePlugin<NodeView, PlacementRequest> for Efficiency {
    fn name(&self) -> &'static str {
        EFFICIENCY
    }
    fn score(&mut self, _req: &PlacementRequest, node: &NodeView) -> f64 {
        self.0.spec(node.model).tops_per_watt()
    }
    fn normalize(&self, scores: &mut [f64]) {
        let max = scores.iter().cloned().fold(0.0, f64::max);
        if max > 0.0 {
            scores.iter_mut().for_each(|s| *s = *s / max * 100.0);
        }
    }
}

/// Affinity: 1 when the node's GPU family is the class's preferred one (tiny and medium → A100,
/// large → H100), `mismatch` otherwise. Already on a 0..=1 scale.
pub struct Affinity {
    pub mismatch: f64,
}

impl ScorePlugin<NodeView, PlacementRequest> for Affinity {
    fn name(&self) -> &'static str {
        AFFINITY
    }
    fn score(&mut self, req: &PlacementRequest, node: &NodeView) -> f64 {
        if node.model.family() == req.preferred {
            1.0
        } else {
            self.mismatch
        }
    }
    fn normalize(&self, scores: &mut [f64]) {
        normalize_unit(scores)
    }
}

/// Utilisation: 1 − the node's measured utilisation (less loaded is better: the seeds' third
/// example sends a medium model to the least-utilised A100). Absolute, 0..=1.
pub struct Utilisation;

impl ScorePlugin<NodeView, PlacementRequest> for Utilisation {
    fn name(&self) -> &'static str {
        UTILISATION
    }
    fn score(&mut self, _req: &PlacementRequest, node: &NodeView) -> f64 {
        1.0 - node.utilisation().clamp(0.0, 1.0)
    }
    fn normalize(&self, scores: &mut [f64]) {
        normalize_unit(scores)
    }
}

/// Power bonus, priority-based: high-priority work earns a bonus on the higher-power (faster)
/// GPUs, low-priority work on the lower-power ones, medium priority is indifferent.
/// Raw: high → TDP / max TDP; low → 1 − TDP / max TDP + min TDP / max TDP (so the lowest-power
/// model scores 1); medium → 0.5. Absolute, 0..=1.
pub struct PowerBonus(pub GpuCatalog);

impl ScorePlugin<NodeView, PlacementRequest> for PowerBonus {
    fn name(&self) -> &'static str {
        POWER_BONUS
    }
    fn score(&mut self, req: &PlacementRequest, node: &NodeView) -> f64 {
        let max = self.0.max_tdp();
        let tdp = self.0.spec(node.model).tdp_w;
        let min = crate::gpu::GpuModel::ALL
            .iter()
            .map(|m| self.0.spec(*m).tdp_w)
            .fold(f64::INFINITY, f64::min);
        match req.priority {
            Priority::High => tdp / max,
            Priority::Low => 1.0 - (tdp - min) / max,
            Priority::Medium => 0.5,
        }
    }
    fn normalize(&self, scores: &mut [f64]) {
        normalize_unit(scores)
    }
}

/// Sharing headroom (the seeds' "MPS compatibility: available partition space"). Raw, over the
/// node's fitting GPUs, the best of: 1 for a GPU whose existing partition has room (an MPS
/// partition with threads left, a time-sliced GPU with a replica free, a free MIG instance):
/// joining it needs no new partition and packs like with like; `free_gpu` (default 0.5) for a
/// free GPU that would open a new one. Exclusive requests only fit free GPUs and all score 1.
pub struct SharingHeadroom {
    pub ctx: FitCtx,
    pub free_gpu: f64,
}

impl ScorePlugin<NodeView, PlacementRequest> for SharingHeadroom {
    fn name(&self) -> &'static str {
        SHARING_HEADROOM
    }
    fn score(&mut self, req: &PlacementRequest, node: &NodeView) -> f64 {
        if req.share_pct >= 100 {
            return 1.0;
        }
        fitting_gpus(node, req, &self.ctx.fit, &self.ctx.ts)
            .map(|g| {
                if g.is_free() && g.mode != SharingMode::Mig {
                    self.free_gpu
                } else {
                    1.0
                }
            })
            .fold(0.0, f64::max)
    }
    fn normalize(&self, scores: &mut [f64]) {
        normalize_unit(scores)
    }
}

/// Bin-packing as Score plugins (seed 004). All work on the node's free compute share after the
/// request would be placed, as a fraction of the node's GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackingKind {
    BestFit,
    FirstFit,
    WorstFit,
}

pub struct Packing {
    pub kind: PackingKind,
    pub node_count: u32,
    pub ctx: FitCtx,
}

impl Packing {
    pub fn new(kind: PackingKind, build: &crate::registry::SeedsBuild) -> Self {
        Self {
            kind,
            node_count: build.node_count,
            ctx: build.fit.clone(),
        }
    }
}

impl ScorePlugin<NodeView, PlacementRequest> for Packing {
    fn name(&self) -> &'static str {
        match self.kind {
            PackingKind::BestFit => BEST_FIT,
            PackingKind::FirstFit => FIRST_FIT,
            PackingKind::WorstFit => WORST_FIT,
        }
    }
    fn score(&mut self, req: &PlacementRequest, node: &NodeView) -> f64 {
        let total = node.gpus.len().max(1) as f64;
        // A tensor-parallel replica takes `gpus` whole GPUs.
        let share = nominal_share(req, node.model, &self.ctx.ts) as f64 / 100.0 * req.gpus as f64;
        let free_after = ((node.share_free_gpus() - share) / total).clamp(0.0, 1.0);
        match self.kind {
            // Least room left is best: fills nodes before opening new ones.
            PackingKind::BestFit => 1.0 - free_after,
            PackingKind::WorstFit => free_after,
            // Earliest node in the fixed order wins.
            PackingKind::FirstFit => 1.0 - node.ordinal as f64 / self.node_count.max(1) as f64,
        }
    }
    fn normalize(&self, scores: &mut [f64]) {
        match self.kind {
            PackingKind::FirstFit => crate::framework::normalize_min_max(scores),
            _ => normalize_unit(scores),
        }
    }
}
