//! Exclusive: one pod owns a whole GPU, the device plugin's default config. Owns the `Whole`
//! request and slice, the `Exclusive` node config (and `Unset`, which serves the same default),
//! the `Free` / `Exclusive` GPU modes, its fit rule (a free GPU), its share (100 %) and its perf
//! (a busy GPU delivers everything). Tensor-parallel replicas are whole GPUs of this mode.

use super::{
    AllocInput, AllocSlice, Allocated, BusyGpu, NodeSharing, SharingMode, SharingModeSpec,
    SharingPerf, SliceLoad, SliceRequest,
};
use crate::plugins::fit::{FitConfig, SlotFit};
use crate::view::{AllocationView, GpuView};
use crate::workload::PlacementRequest;
use crate::GpuModel;

pub struct Exclusive;

impl SharingModeSpec for Exclusive {
    fn name(&self) -> &'static str {
        "exclusive"
    }

    fn policy_slice(&self, _req: &PlacementRequest, _weight: u32) -> (SliceRequest, String) {
        (SliceRequest::Whole, "exclusive policy".to_string())
    }
    fn policy_gives_whole_gpus(&self) -> bool {
        true
    }
    fn gives(&self) -> &'static str {
        "whole GPUs"
    }
    fn request_share(&self, _slice: SliceRequest, _current: u8) -> u8 {
        100
    }
    fn node_sharing(&self, _slice: SliceRequest) -> NodeSharing {
        NodeSharing::Exclusive
    }

    fn config_key(&self, _ns: NodeSharing) -> String {
        "gpusched-exclusive".into()
    }
    fn parse_config_key(&self, rest: &str) -> Option<NodeSharing> {
        (rest == "exclusive").then_some(NodeSharing::Exclusive)
    }
    fn device_plugin_yaml(&self, _ns: NodeSharing, _per_client_slots: u8) -> String {
        "version: v1\n".to_string()
    }

    fn slot_fits(
        &self,
        g: &GpuView,
        _model: GpuModel,
        _req: &PlacementRequest,
        _slice: SliceRequest,
        _cfg: &FitConfig,
    ) -> Option<SlotFit> {
        g.is_free().then_some(SlotFit { mig: None })
    }
    fn nominal_share(&self, _req: &PlacementRequest, _slice: SliceRequest, _model: GpuModel) -> u8 {
        100
    }

    fn allocate(&self, _a: &AllocInput) -> Allocated {
        Allocated::plain(
            AllocSlice::Whole,
            SharingMode::Exclusive,
            "exclusive".to_string(),
        )
    }

    fn slice_units(&self, _slice: AllocSlice, share_pct: u8, _model: GpuModel) -> (u32, f64) {
        (share_pct as u32, 0.0)
    }
    fn effective_share(&self, _perf: &dyn SharingPerf, _busy: &BusyGpu, _load: &SliceLoad) -> f64 {
        1.0
    }
    fn delivered_work(&self, _perf: &dyn SharingPerf, busy: &BusyGpu) -> f64 {
        if busy.clients > 0 {
            1.0
        } else {
            0.0
        }
    }

    /// Live reads a whole GPU and an MPS share from `share-pct` alone: a share under 100 on a
    /// GPU is MPS.
    fn rebuilt_gpu_mode(&self, a: &AllocationView, _ts: Option<u8>) -> (u8, SharingMode) {
        super::mps::share_mode(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::GpuView;
    use crate::workload::{ClassifyConfig, WorkloadSpec};

    #[test]
    fn a_whole_gpu_needs_a_free_gpu() {
        let req = ClassifyConfig::default().classify(&WorkloadSpec::new("w", 30.0));
        let mut g = GpuView::new(0, 80.0);
        let fit = |g: &GpuView| {
            Exclusive
                .slot_fits(
                    g,
                    GpuModel::H100_80GB,
                    &req,
                    SliceRequest::Whole,
                    &FitConfig::default(),
                )
                .is_some()
        };
        assert!(fit(&g));
        g.add_allocation(
            AllocationView {
                workload: "x".into(),
                replica: 1,
                class: crate::workload::SizeClass::Tiny,
                share_pct: 25,
                memory_gb: 1.0,
                slice: AllocSlice::Mps { pct: 25 },
                priority_class: 500,
            },
            SharingMode::Mps,
        );
        assert!(!fit(&g), "a GPU with any client is not whole");
    }

    #[test]
    fn unset_and_exclusive_share_the_plugin_default() {
        assert_eq!(
            NodeSharing::Unset.config_key(),
            NodeSharing::Exclusive.config_key()
        );
        assert_eq!(NodeSharing::Unset.device_plugin_yaml(4), "version: v1\n");
        assert_eq!(SliceRequest::Whole.node_sharing(), NodeSharing::Exclusive);
    }
}
