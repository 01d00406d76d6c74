//! Filter plugins: may this node take the request at all? Each names what failed and what was
//! found, so `explain` and decisions.jsonl tell an operator why a node was skipped.

use super::fit::{gpu_fits, FitConfig, FitStage};
use crate::framework::FilterPlugin;
use crate::view::NodeView;
use crate::workload::PlacementRequest;

/// Cordoned nodes take nothing new (as kube-scheduler's NodeUnschedulable).
pub struct NodeSchedulable;

impl FilterPlugin<NodeView, PlacementRequest> for NodeSchedulable {
    fn name(&self) -> &'static str {
        "NodeSchedulable"
    }
    fn filter(&self, _req: &PlacementRequest, node: &NodeView) -> Result<(), String> {
        if node.cordoned {
            Err("node is cordoned".into())
        } else {
            Ok(())
        }
    }
}

/// The workload's hard GPU-model constraint (node affinity); the seeds' "capability match".
pub struct GpuAffinity;

impl FilterPlugin<NodeView, PlacementRequest> for GpuAffinity {
    fn name(&self) -> &'static str {
        "GpuAffinity"
    }
    fn filter(&self, req: &PlacementRequest, node: &NodeView) -> Result<(), String> {
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

/// The seeds' memory check: some GPU has at least the model's memory free.
pub struct MemoryFits;

impl FilterPlugin<NodeView, PlacementRequest> for MemoryFits {
    fn name(&self) -> &'static str {
        "MemoryFits"
    }
    fn filter(&self, req: &PlacementRequest, node: &NodeView) -> Result<(), String> {
        if node.gpus.iter().any(|g| super::fit::memory_fits(g, req)) {
            return Ok(());
        }
        let best = node
            .gpus
            .iter()
            .map(|g| g.memory_free_gb())
            .fold(0.0, f64::max);
        Err(format!(
            "needs {:.1} GB of GPU memory, most free on one GPU is {:.1} GB",
            req.memory_gb, best
        ))
    }
}

/// The seeds' utilisation check: a GPU with room must be under the threshold (default 90 %).
pub struct UtilisationBelow(pub FitConfig);

impl FilterPlugin<NodeView, PlacementRequest> for UtilisationBelow {
    fn name(&self) -> &'static str {
        "UtilisationBelow"
    }
    fn filter(&self, req: &PlacementRequest, node: &NodeView) -> Result<(), String> {
        if node
            .gpus
            .iter()
            .any(|g| gpu_fits(g, req, &self.0, FitStage::Utilisation))
        {
            return Ok(());
        }
        Err(format!(
            "every GPU with {:.1} GB free is at or above {:.0} % utilisation",
            req.memory_gb,
            self.0.max_utilisation * 100.0
        ))
    }
}

/// The sharing layout can take the request: a free GPU, or an MPS GPU with enough unallocated
/// active threads and a client slot. Time-sliced and exclusive GPUs take no MPS client.
pub struct SharingFits(pub FitConfig);

impl FilterPlugin<NodeView, PlacementRequest> for SharingFits {
    fn name(&self) -> &'static str {
        "SharingFits"
    }
    fn filter(&self, req: &PlacementRequest, node: &NodeView) -> Result<(), String> {
        if node
            .gpus
            .iter()
            .any(|g| gpu_fits(g, req, &self.0, FitStage::Sharing))
        {
            return Ok(());
        }
        let free: Vec<String> = node
            .gpus
            .iter()
            .map(|g| format!("{}%", g.share_free_pct()))
            .collect();
        if req.share_pct >= 100 {
            Err(format!(
                "needs a whole free GPU; free shares are [{}]",
                free.join(", ")
            ))
        } else {
            Err(format!(
                "needs {} % MPS share (limit {} clients); free shares are [{}]",
                req.share_pct,
                self.0.mps_client_limit,
                free.join(", ")
            ))
        }
    }
}
