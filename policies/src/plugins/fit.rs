//! Which GPUs of a node can take a request: the one predicate that the filters, the scores and
//! the GPU-selection step all share, so they can never disagree about feasibility.

use crate::view::{GpuView, NodeView, SharingMode};
use crate::workload::PlacementRequest;
use serde::{Deserialize, Serialize};

/// Limits a GPU must respect to take a new client. Defaults are the seeds' values and the real
/// stack's limits (DOMAIN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitConfig {
    /// A GPU whose measured utilisation is at or above this takes no new work (seeds: < 90 %).
    pub max_utilisation: f64,
    /// MPS clients per GPU allowed by policy (seeds: 16; CUDA's hard limit is 48).
    pub mps_client_limit: u16,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            max_utilisation: 0.90,
            mps_client_limit: 16,
        }
    }
}

/// CUDA MPS refuses more than 48 clients per GPU whatever the policy says.
pub const MPS_HARD_CLIENT_LIMIT: u16 = 48;

/// The checks in the order the filters apply them; each stage includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FitStage {
    Memory,
    Utilisation,
    Sharing,
}

pub fn memory_fits(g: &GpuView, req: &PlacementRequest) -> bool {
    // A tiny epsilon so a 40 GB model fits a 40 GB GPU despite float rounding.
    g.memory_free_gb() + 1e-9 >= req.memory_gb
}

pub fn utilisation_fits(g: &GpuView, cfg: &FitConfig) -> bool {
    g.utilisation < cfg.max_utilisation
}

/// Can this GPU's sharing layout take the request's share without a reconfiguration that the
/// stack forbids? Exclusive requests need a free GPU; shared requests need a free GPU or an MPS
/// GPU with enough unallocated threads and a client slot.
pub fn sharing_fits(g: &GpuView, req: &PlacementRequest, cfg: &FitConfig) -> bool {
    if req.share_pct >= 100 {
        return g.is_free();
    }
    match g.mode {
        SharingMode::Free => true,
        SharingMode::Mps => {
            let limit = cfg.mps_client_limit.min(MPS_HARD_CLIENT_LIMIT) as usize;
            g.share_free_pct() >= req.share_pct as u16 && g.allocations.len() < limit
        }
        SharingMode::Exclusive | SharingMode::TimeSlicing { .. } => false,
    }
}

pub fn gpu_fits(g: &GpuView, req: &PlacementRequest, cfg: &FitConfig, upto: FitStage) -> bool {
    memory_fits(g, req)
        && (upto < FitStage::Utilisation || utilisation_fits(g, cfg))
        && (upto < FitStage::Sharing || sharing_fits(g, req, cfg))
}

pub fn fitting_gpus<'a>(
    node: &'a NodeView,
    req: &'a PlacementRequest,
    cfg: &'a FitConfig,
) -> impl Iterator<Item = &'a GpuView> + 'a {
    node.gpus
        .iter()
        .filter(move |g| gpu_fits(g, req, cfg, FitStage::Sharing))
}

/// How the GPU inside the chosen node is picked (the FGD simulator's GPU-share step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GpuSelection {
    /// The fitting GPU left with the least free share (then least free memory): packs.
    #[default]
    BestFit,
    /// The lowest-indexed fitting GPU.
    FirstFit,
    /// The fitting GPU left with the most free share: spreads.
    WorstFit,
}

/// Picks the GPU for a request on an already chosen node; `None` if nothing fits.
pub fn select_gpu(
    node: &NodeView,
    req: &PlacementRequest,
    cfg: &FitConfig,
    how: GpuSelection,
) -> Option<u8> {
    let key = |g: &GpuView| {
        (
            g.share_free_pct().saturating_sub(req.share_pct as u16),
            (g.memory_free_gb() * 1000.0) as i64,
        )
    };
    let fitting = fitting_gpus(node, req, cfg);
    let chosen = match how {
        GpuSelection::FirstFit => fitting.min_by_key(|g| g.index),
        // min_by_key/max_by_key keep the first/last of equals: make both prefer the lowest index.
        GpuSelection::BestFit => fitting.min_by_key(|g| (key(g), g.index)),
        GpuSelection::WorstFit => fitting.max_by_key(|g| (key(g), std::cmp::Reverse(g.index))),
    };
    chosen.map(|g| g.index)
}
