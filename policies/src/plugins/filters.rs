//! Filter plugins: may this node take the request at all? Each names what failed and what was
//! found, so `explain` and decisions.jsonl tell an operator why a node was skipped.

use super::fit::{gpu_fits, memory_fits, node_config_fits, node_has_gpus, FitConfig, FitStage};
use crate::admission::TimeSlicingConfig;
use crate::framework::FilterPlugin;
use crate::view::NodeView;
use crate::workload::PlacementRequest;

/// What the fit-based filters need: limits and the time-slicing replicas per family.
#[derive(Debug, Clone, Default)]
pub struct FitCtx {
    pub fit: FitConfig,
    pub ts: TimeSlicingConfig,
}

/// The registered names ([`crate::registry::seeds`]), which are also what rejections name.
pub const NODE_SCHEDULABLE: &str = "NodeSchedulable";
pub const GPU_AFFINITY: &str = "GpuAffinity";
pub const MEMORY_FITS: &str = "MemoryFits";
pub const UTILISATION_BELOW: &str = "UtilisationBelow";
pub const SHARING_FITS: &str = "SharingFits";

/// Cordoned nodes take nothing new (as kube-scheduler's NodeUnschedulable).
pub struct NodeSchedulable;

impl FilterPlugin<NodeView, PlacementRequest> for NodeSchedulable {
    fn name(&self) -> &'static str {
        NODE_SCHEDULABLE
    }
    fn filter(&self, _req: &PlacementRequest, node: &NodeView) -> Result<(), String> {
        if node.cordoned {
            Err("node is cordoned".into())
        } else {
            Ok(())
        }
    }
}

/// The workload's hard GPU-model constraint (node affinity), the seeds' "capability match", and
/// seed 003's rule that MIG workloads never fall back to another GPU family.
pub struct GpuAffinity;

impl FilterPlugin<NodeView, PlacementRequest> for GpuAffinity {
    fn name(&self) -> &'static str {
        GPU_AFFINITY
    }
    fn filter(&self, req: &PlacementRequest, node: &NodeView) -> Result<(), String> {
        if req.hard_family && node.model.family() != req.preferred {
            return Err(format!(
                "{} is not the preferred {:?} family and MIG workloads do not fall back",
                node.model, req.preferred
            ));
        }
        if req.required_gpu_models.is_empty() || req.required_gpu_models.contains(&node.model) {
            return Ok(());
        }
        let wanted: Vec<&str> = req.required_gpu_models.iter().map(|m| m.as_str()).collect();
        Err(format!(
            "GPU model {} is not one of the required [{}]",
            node.model,
            wanted.join(", ")
        ))
    }
}

/// The seeds' memory check: some GPU holds the model under the request's sharing mode (free
/// memory; total / replicas under the plugin's MPS; a MIG profile large enough).
pub struct MemoryFits(pub FitCtx);

impl FilterPlugin<NodeView, PlacementRequest> for MemoryFits {
    fn name(&self) -> &'static str {
        MEMORY_FITS
    }
    fn filter(&self, req: &PlacementRequest, node: &NodeView) -> Result<(), String> {
        if req.gpus > 1 {
            return tp_count_check(node, req, "with the memory", |g| {
                memory_fits(g, node.model, req, &self.0.ts)
            });
        }
        if node
            .gpus
            .iter()
            .any(|g| memory_fits(g, node.model, req, &self.0.ts))
        {
            return Ok(());
        }
        let best = node
            .gpus
            .iter()
            .map(|g| g.memory_free_gb())
            .fold(0.0, f64::max);
        Err(format!(
            "needs {:.1} GB of GPU memory ({:?}); most free on one GPU is {:.1} GB",
            req.memory_gb, req.slice, best
        ))
    }
}

/// The seeds' utilisation check: a GPU with room must be under the threshold (default 90 %).
pub struct UtilisationBelow(pub FitCtx);

impl FilterPlugin<NodeView, PlacementRequest> for UtilisationBelow {
    fn name(&self) -> &'static str {
        UTILISATION_BELOW
    }
    fn filter(&self, req: &PlacementRequest, node: &NodeView) -> Result<(), String> {
        if node_has_gpus(node, req, &self.0.fit, &self.0.ts, FitStage::Utilisation) {
            return Ok(());
        }
        if req.gpus > 1 {
            let why = format!(
                "with the memory and under {:.0} % utilisation",
                self.0.fit.max_utilisation * 100.0
            );
            return tp_count_check(node, req, &why, |g| {
                gpu_fits(node, g, req, &self.0.fit, &self.0.ts, FitStage::Utilisation)
            });
        }
        Err(format!(
            "every GPU with {:.1} GB free is at or above {:.0} % utilisation",
            req.memory_gb,
            self.0.fit.max_utilisation * 100.0
        ))
    }
}

/// The sharing layout can take the request: the node's device-plugin config allows it (or can
/// change without disturbing running pods) and a GPU has a slot: free, an MPS partition with
/// threads and a client slot, a time-sliced replica, or a free MIG instance of the right profile.
pub struct SharingFits(pub FitCtx);

impl FilterPlugin<NodeView, PlacementRequest> for SharingFits {
    fn name(&self) -> &'static str {
        SHARING_FITS
    }
    fn filter(&self, req: &PlacementRequest, node: &NodeView) -> Result<(), String> {
        if let Some(why) = crate::admission::tensor_parallel_conflict(req) {
            return Err(why);
        }
        node_config_fits(node, req, &self.0.ts)?;
        if node_has_gpus(node, req, &self.0.fit, &self.0.ts, FitStage::Sharing) {
            return Ok(());
        }
        if req.gpus > 1 {
            return tp_count_check(node, req, "free (no other pod on them)", |g| {
                gpu_fits(node, g, req, &self.0.fit, &self.0.ts, FitStage::Sharing)
            });
        }
        let free: Vec<String> = node
            .gpus
            .iter()
            .map(|g| format!("{}%/{} clients", g.share_free_pct(), g.allocations.len()))
            .collect();
        Err(format!(
            "no GPU has a slot for {:?} (limit {} MPS clients); GPUs: [{}]",
            req.slice,
            self.0.fit.mps_client_limit,
            free.join(", ")
        ))
    }
}

/// A tensor-parallel replica's check: `fits` must hold on `req.gpus` GPUs of this one node (a
/// real engine shards the model over NVLink peers, so the GPUs are never split across nodes).
/// The reason says how many qualify, so an operator sees how far the node is from fitting.
fn tp_count_check(
    node: &NodeView,
    req: &PlacementRequest,
    what: &str,
    fits: impl Fn(&crate::view::GpuView) -> bool,
) -> Result<(), String> {
    let have = node.gpus.iter().filter(|g| fits(g)).count();
    if have >= req.gpus as usize {
        return Ok(());
    }
    Err(format!(
        "tensor_parallel = {n} needs {n} whole GPUs of one node {what} ({:.1} GB each); {have} of the node's {} GPUs qualify",
        req.memory_gb,
        node.gpus.len(),
        n = req.gpus
    ))
}
