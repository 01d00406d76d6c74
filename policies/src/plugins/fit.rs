//! Which GPUs of a node can take a request, and how: the one predicate that the filters, the
//! scores and the GPU-selection step share, so they can never disagree about feasibility.
//! It enforces what the real stack allows (DOMAIN.md): one sharing method per node here; each
//! mode's own rule (the plugin's even MPS split, no MPS on MIG, MPS client limits, MIG layouts
//! changing only on a free GPU) is its module's in [`crate::modes`].

use crate::admission::TimeSlicingConfig;
use crate::gpu::GpuModel;
use crate::mig::MigInstance;
use crate::sharing::{NodeSharing, SliceRequest};
use crate::view::{GpuView, NodeView};
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

/// A request resolved against one node: time-slicing replicas by GPU family.
pub fn resolve(slice: SliceRequest, model: GpuModel, ts: &TimeSlicingConfig) -> SliceRequest {
    slice.spec().resolve(slice, model, ts)
}

pub use crate::modes::mig::mig_profile;

/// Does the request's model fit this GPU's memory under the request's sharing mode?
pub fn memory_fits(
    g: &GpuView,
    model: GpuModel,
    req: &PlacementRequest,
    ts: &TimeSlicingConfig,
) -> bool {
    let slice = resolve(req.slice, model, ts);
    slice.spec().memory_fits(g, model, req, slice)
}

pub fn utilisation_fits(g: &GpuView, cfg: &FitConfig) -> bool {
    g.utilisation < cfg.max_utilisation
}

/// Can the node run the configuration the request needs? Same config, no config yet, or no GPU
/// pod on it (a config change restarts the device plugin and would kill running pods).
pub fn node_config_fits(
    node: &NodeView,
    req: &PlacementRequest,
    ts: &TimeSlicingConfig,
) -> Result<NodeSharing, String> {
    let want = resolve(req.slice, node.model, ts).node_sharing();
    if let Some(d) = node.designated {
        if std::mem::discriminant(&d) != std::mem::discriminant(&want) {
            return Err(format!(
                "pool {} is designated for {}, the request needs {}",
                node.pool,
                d.config_key(),
                want.config_key()
            ));
        }
    }
    if node.sharing == want || node.sharing == NodeSharing::Unset || node.is_empty() {
        Ok(want)
    } else {
        Err(format!(
            "node runs the `{}` sharing config and has GPU pods; switching to `{}` would restart the device plugin under them",
            node.sharing.config_key(),
            want.config_key()
        ))
    }
}

/// Where on a GPU a request would go.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotFit {
    /// For MIG: the instance, and the new layout when the GPU must be re-laid out first.
    pub mig: Option<(MigInstance, Option<Vec<MigInstance>>)>,
}

/// The GPU-level sharing check: a slot for the request on this GPU, if any.
pub fn slot_fits(
    g: &GpuView,
    model: GpuModel,
    req: &PlacementRequest,
    cfg: &FitConfig,
    ts: &TimeSlicingConfig,
) -> Option<SlotFit> {
    let slice = resolve(req.slice, model, ts);
    slice.spec().slot_fits(g, model, req, slice, cfg)
}

pub fn gpu_fits(
    node: &NodeView,
    g: &GpuView,
    req: &PlacementRequest,
    cfg: &FitConfig,
    ts: &TimeSlicingConfig,
    upto: FitStage,
) -> bool {
    memory_fits(g, node.model, req, ts)
        && (upto < FitStage::Utilisation || utilisation_fits(g, cfg))
        && (upto < FitStage::Sharing || slot_fits(g, node.model, req, cfg, ts).is_some())
}

/// Does the node have the request's GPU count (1, or N for a tensor-parallel replica) passing
/// the checks up to `upto`? A TP replica's GPUs must all be on this one node.
pub fn node_has_gpus(
    node: &NodeView,
    req: &PlacementRequest,
    cfg: &FitConfig,
    ts: &TimeSlicingConfig,
    upto: FitStage,
) -> bool {
    let need = req.gpus.max(1) as usize;
    node.gpus
        .iter()
        .filter(|g| gpu_fits(node, g, req, cfg, ts, upto))
        .take(need)
        .count()
        == need
}

pub fn fitting_gpus<'a>(
    node: &'a NodeView,
    req: &'a PlacementRequest,
    cfg: &'a FitConfig,
    ts: &'a TimeSlicingConfig,
) -> impl Iterator<Item = &'a GpuView> + 'a {
    node.gpus
        .iter()
        .filter(move |g| gpu_fits(node, g, req, cfg, ts, FitStage::Sharing))
}

/// The nominal share (percent of a GPU) a request takes on a node's GPU model.
pub fn nominal_share(req: &PlacementRequest, model: GpuModel, ts: &TimeSlicingConfig) -> u8 {
    let slice = resolve(req.slice, model, ts);
    slice.spec().nominal_share(req, slice, model)
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

/// Picks the GPU for a request on an already chosen node; `None` if nothing fits. A MIG request
/// prefers an existing free instance over re-laying out a free GPU.
pub fn select_gpu(
    node: &NodeView,
    req: &PlacementRequest,
    cfg: &FitConfig,
    ts: &TimeSlicingConfig,
    how: GpuSelection,
) -> Option<(u8, SlotFit)> {
    let mut ranked = rank_gpus(node, req, cfg, ts, how);
    (!ranked.is_empty()).then(|| ranked.swap_remove(0))
}

/// Picks the request's `gpus` GPUs on an already chosen node, best first by `how` (a
/// tensor-parallel replica takes the N best-ranked whole GPUs), returned in index order with
/// their slots; `None` if the node has fewer fitting GPUs.
pub fn select_gpus(
    node: &NodeView,
    req: &PlacementRequest,
    cfg: &FitConfig,
    ts: &TimeSlicingConfig,
    how: GpuSelection,
) -> Option<Vec<(u8, SlotFit)>> {
    let need = req.gpus.max(1) as usize;
    let mut ranked = rank_gpus(node, req, cfg, ts, how);
    if ranked.len() < need {
        return None;
    }
    ranked.truncate(need);
    ranked.sort_by_key(|(i, _)| *i);
    Some(ranked)
}

/// Every fitting GPU of the node, best first under `how`. Ties keep the lowest index (the
/// sort is stable and the keys end in the index), so the first is what `min_by_key` picked.
fn rank_gpus(
    node: &NodeView,
    req: &PlacementRequest,
    cfg: &FitConfig,
    ts: &TimeSlicingConfig,
    how: GpuSelection,
) -> Vec<(u8, SlotFit)> {
    let share = nominal_share(req, node.model, ts) as u16;
    let candidates: Vec<(u8, SlotFit, (bool, u16, i64))> = node
        .gpus
        .iter()
        .filter(|g| gpu_fits(node, g, req, cfg, ts, FitStage::Utilisation))
        .filter_map(|g| {
            let fit = slot_fits(g, node.model, req, cfg, ts)?;
            let reconfig = fit.mig.as_ref().is_some_and(|(_, l)| l.is_some());
            let key = (
                reconfig,
                g.share_free_pct().saturating_sub(share),
                (g.memory_free_gb() * 1000.0) as i64,
            );
            Some((g.index, fit, key))
        })
        .collect();
    let mut candidates = candidates;
    match how {
        GpuSelection::FirstFit => candidates.sort_by_key(|c| (c.2 .0, c.0)),
        GpuSelection::BestFit => candidates.sort_by_key(|c| (c.2, c.0)),
        GpuSelection::WorstFit => candidates.sort_by_key(|c| {
            (
                c.2 .0,
                std::cmp::Reverse(c.2 .1),
                std::cmp::Reverse(c.2 .2),
                c.0,
            )
        }),
    };
    candidates.into_iter().map(|(i, f, _)| (i, f)).collect()
}
