//! CUDA MPS, in the two node configurations the real stack offers (DOMAIN.md):
//! * [`MpsPerClient`]: an MPS daemon at the 100 % default, the plugin advertising slots through
//!   time-slicing replicas, each pod carrying its own active-thread and pinned-memory limits
//!   (uneven splits such as the seeds' `[50, 25, 25]`);
//! * [`MpsUniform`]: the device plugin's `sharing.mps`, every client 100 / replicas threads and
//!   total / replicas memory.
//!
//! Owns the `Mps` / `MpsUniform` requests, the `MpsPerClient` / `MpsUniform` node configs, the
//! `Mps` GPU mode and slice (shared by both: a GPU runs CUDA MPS either way), the fit rules
//! (share and client limits; the uniform split's memory pin), the partition each allocation
//! records (the calculation itself is [`crate::mps`]) and the perf hooks (the calibrated
//! alone curve and per-client contention). The per-client limits reach a pod through the
//! downward API (`gpusched-live`'s `apply`), not through slice annotations: the share is
//! `gpusched.io/share-pct`.

use super::{
    AllocInput, AllocSlice, Allocated, BusyGpu, NodeSharing, SharingMode, SharingModeSpec,
    SharingPerf, SliceLoad, SliceRequest,
};
use crate::mps::{plan_partition, MpsClient, MpsPlan, MpsRealisation};
use crate::plugins::fit::{FitConfig, SlotFit, MPS_HARD_CLIENT_LIMIT};
use crate::view::{AllocationView, GpuView};
use crate::workload::PlacementRequest;
use crate::GpuModel;

/// Per-client MPS limits (uneven splits).
pub struct MpsPerClient;
/// The device plugin's even MPS split.
pub struct MpsUniform;

fn mps_gpu_ok(g: &GpuView) -> bool {
    g.is_free() || g.mode == SharingMode::Mps
}

/// A rebuilt whole-or-MPS allocation: live tells them apart by the share alone.
pub(super) fn share_mode(a: &AllocationView) -> (u8, SharingMode) {
    if a.share_pct < 100 {
        (1, SharingMode::Mps)
    } else {
        (0, SharingMode::Exclusive)
    }
}

/// The GPU-level hooks both MPS configurations share.
macro_rules! mps_gpu_hooks {
    () => {
        fn slice_units(&self, slice: AllocSlice, _share_pct: u8, _model: GpuModel) -> (u32, f64) {
            match slice {
                AllocSlice::Mps { pct } => (pct as u32, 0.0),
                _ => unreachable!("not an MPS slice: {slice:?}"),
            }
        }
        fn effective_share(&self, perf: &dyn SharingPerf, busy: &BusyGpu, load: &SliceLoad) -> f64 {
            perf.mps_effective(load.share_pct, busy.units, busy.clients)
        }
        fn delivered_work(&self, perf: &dyn SharingPerf, busy: &BusyGpu) -> f64 {
            perf.mps_delivered(busy.units, busy.clients)
        }
        fn rebuilt_gpu_mode(&self, a: &AllocationView, _ts: Option<u8>) -> (u8, SharingMode) {
            share_mode(a)
        }
        fn gives(&self) -> &'static str {
            "an MPS share"
        }
    };
}

impl SharingModeSpec for MpsPerClient {
    fn name(&self) -> &'static str {
        "mps_per_client"
    }

    /// The classifier already asks for a per-client share (or a whole GPU for large models).
    fn policy_slice(&self, req: &PlacementRequest, _weight: u32) -> (SliceRequest, String) {
        (req.slice, "size class → MPS share".to_string())
    }
    fn node_sharing(&self, _slice: SliceRequest) -> NodeSharing {
        NodeSharing::MpsPerClient
    }

    fn config_key(&self, _ns: NodeSharing) -> String {
        "gpusched-mps-per-client".into()
    }
    fn parse_config_key(&self, rest: &str) -> Option<NodeSharing> {
        (rest == "mps-per-client").then_some(NodeSharing::MpsPerClient)
    }
    /// The plugin only advertises slots (time-slicing replicas); the daemon keeps 100 %.
    fn device_plugin_yaml(&self, _ns: NodeSharing, per_client_slots: u8) -> String {
        super::plugin_sharing_yaml("timeSlicing", per_client_slots.max(2))
    }

    fn slot_fits(
        &self,
        g: &GpuView,
        _model: GpuModel,
        _req: &PlacementRequest,
        slice: SliceRequest,
        cfg: &FitConfig,
    ) -> Option<SlotFit> {
        let SliceRequest::Mps { pct } = slice else {
            unreachable!("not a per-client MPS request: {slice:?}")
        };
        let limit = cfg.mps_client_limit.min(MPS_HARD_CLIENT_LIMIT) as usize;
        (mps_gpu_ok(g) && g.share_free_pct() >= pct as u16 && g.allocations.len() < limit)
            .then_some(SlotFit { mig: None })
    }
    fn nominal_share(&self, _req: &PlacementRequest, slice: SliceRequest, _model: GpuModel) -> u8 {
        match slice {
            SliceRequest::Mps { pct } => pct,
            _ => unreachable!("not a per-client MPS request: {slice:?}"),
        }
    }

    fn allocate(&self, a: &AllocInput) -> Allocated {
        let SliceRequest::Mps { pct } = a.slice else {
            unreachable!("not a per-client MPS request: {:?}", a.slice)
        };
        let mut clients: Vec<(String, u64, u8)> = a
            .gpu
            .allocations
            .iter()
            .map(|x| (x.workload.clone(), x.replica, x.share_pct))
            .collect();
        clients.push((a.req.workload.clone(), a.replica, pct));
        Allocated {
            mps: Some(
                plan_partition(&clients, a.gpu.memory_total_gb)
                    .expect("SharingFits checked the share and client limit"),
            ),
            ..Allocated::plain(
                AllocSlice::Mps { pct },
                SharingMode::Mps,
                format!("MPS {pct} %"),
            )
        }
    }

    mps_gpu_hooks!();
}

impl SharingModeSpec for MpsUniform {
    fn name(&self) -> &'static str {
        "mps_uniform"
    }

    fn policy_slice(&self, req: &PlacementRequest, _weight: u32) -> (SliceRequest, String) {
        if req.class == crate::workload::SizeClass::Large || req.share_pct >= 100 {
            (SliceRequest::Whole, "large model: whole GPU".to_string())
        } else {
            (
                SliceRequest::MpsUniform {
                    replicas: (100 / req.share_pct.max(1)).max(2),
                },
                "device-plugin MPS, even split".to_string(),
            )
        }
    }
    fn request_share(&self, slice: SliceRequest, _current: u8) -> u8 {
        (100 / replicas(slice).max(1) as u32) as u8
    }
    fn node_sharing(&self, slice: SliceRequest) -> NodeSharing {
        NodeSharing::MpsUniform {
            replicas: replicas(slice),
        }
    }

    fn config_key(&self, ns: NodeSharing) -> String {
        match ns {
            NodeSharing::MpsUniform { replicas } => format!("gpusched-mps-{replicas}"),
            _ => unreachable!("not a uniform MPS config: {ns:?}"),
        }
    }
    fn parse_config_key(&self, rest: &str) -> Option<NodeSharing> {
        let r = rest.strip_prefix("mps-")?;
        Some(NodeSharing::MpsUniform {
            replicas: super::parse_replicas(r)?,
        })
    }
    fn device_plugin_yaml(&self, ns: NodeSharing, _per_client_slots: u8) -> String {
        match ns {
            NodeSharing::MpsUniform { replicas } => super::plugin_sharing_yaml("mps", replicas),
            _ => unreachable!("not a uniform MPS config: {ns:?}"),
        }
    }
    fn validate_node_config(&self, ns: NodeSharing) -> Result<(), (&'static str, String)> {
        match ns {
            NodeSharing::MpsUniform { replicas } => super::validate_replicas(replicas),
            _ => Ok(()),
        }
    }

    /// The plugin's MPS pins total / replicas of memory to each client.
    fn memory_fits(
        &self,
        g: &GpuView,
        _model: GpuModel,
        req: &PlacementRequest,
        slice: SliceRequest,
    ) -> bool {
        req.memory_gb <= g.memory_total_gb / replicas(slice).max(1) as f64 + 1e-9
            && g.memory_free_gb() + 1e-9 >= req.memory_gb
    }
    fn slot_fits(
        &self,
        g: &GpuView,
        _model: GpuModel,
        _req: &PlacementRequest,
        slice: SliceRequest,
        _cfg: &FitConfig,
    ) -> Option<SlotFit> {
        (mps_gpu_ok(g) && g.allocations.len() < replicas(slice) as usize)
            .then_some(SlotFit { mig: None })
    }
    fn nominal_share(&self, _req: &PlacementRequest, slice: SliceRequest, _model: GpuModel) -> u8 {
        (100 / replicas(slice).max(1) as u32) as u8
    }

    fn allocate(&self, a: &AllocInput) -> Allocated {
        let replicas = replicas(a.slice);
        Allocated {
            mps: Some(uniform_plan(a.gpu, a.req, a.replica, replicas)),
            ..Allocated::plain(
                AllocSlice::Mps { pct: a.share_pct },
                SharingMode::Mps,
                format!("MPS 1/{replicas}"),
            )
        }
    }

    mps_gpu_hooks!();
}

fn replicas(slice: SliceRequest) -> u8 {
    match slice {
        SliceRequest::MpsUniform { replicas } => replicas,
        _ => unreachable!("not a uniform MPS request: {slice:?}"),
    }
}

/// The device plugin's even split: every client 100 / replicas threads and total / replicas memory.
fn uniform_plan(g: &GpuView, req: &PlacementRequest, replica: u64, replicas: u8) -> MpsPlan {
    let pct = (100 / replicas.max(1) as u32) as u8;
    let mem = (g.memory_total_gb * 1024.0 / replicas.max(1) as f64).floor() as u64;
    let mut clients: Vec<MpsClient> = g
        .allocations
        .iter()
        .map(|a| MpsClient {
            workload: a.workload.clone(),
            replica: a.replica,
            active_thread_pct: pct,
            pinned_mem_limit_mib: mem,
        })
        .collect();
    clients.push(MpsClient {
        workload: req.workload.clone(),
        replica,
        active_thread_pct: pct,
        pinned_mem_limit_mib: mem,
    });
    let mut thread_percentages = vec![pct; clients.len()];
    thread_percentages.resize(replicas as usize, 0);
    MpsPlan {
        replicas,
        thread_percentages,
        clients,
        realisation: MpsRealisation::DevicePluginUniform { replicas },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{ClassifyConfig, SizeClass, WorkloadSpec};

    fn client(replica: u64, pct: u8) -> AllocationView {
        AllocationView {
            workload: "w".into(),
            replica,
            class: SizeClass::Tiny,
            share_pct: pct,
            memory_gb: 4.0,
            slice: AllocSlice::Mps { pct },
            priority_class: 500,
        }
    }

    #[test]
    fn per_client_shares_fill_a_gpu_to_100_and_never_join_another_mode() {
        let req = ClassifyConfig::default().classify(&WorkloadSpec::new("w", 4.0));
        let cfg = FitConfig::default();
        let s = SliceRequest::Mps { pct: 50 };
        let fits = |g: &GpuView| {
            MpsPerClient
                .slot_fits(g, GpuModel::H100_80GB, &req, s, &cfg)
                .is_some()
        };
        let mut g = GpuView::new(0, 80.0);
        assert!(fits(&g));
        g.add_allocation(client(1, 50), SharingMode::Mps);
        assert!(fits(&g));
        g.add_allocation(client(2, 25), SharingMode::Mps);
        assert!(!fits(&g), "75 % taken leaves 25 %, not 50 %");
        let mut ts = GpuView::new(1, 80.0);
        ts.add_allocation(client(3, 25), SharingMode::TimeSlicing { replicas: 4 });
        assert!(!fits(&ts), "MPS does not join a time-sliced GPU");
    }

    #[test]
    fn the_client_limit_holds() {
        let req = ClassifyConfig::default().classify(&WorkloadSpec::new("w", 1.0));
        let cfg = FitConfig {
            mps_client_limit: 2,
            ..FitConfig::default()
        };
        let s = SliceRequest::Mps { pct: 1 };
        let mut g = GpuView::new(0, 80.0);
        g.add_allocation(client(1, 1), SharingMode::Mps);
        g.add_allocation(client(2, 1), SharingMode::Mps);
        assert!(MpsPerClient
            .slot_fits(&g, GpuModel::H100_80GB, &req, s, &cfg)
            .is_none());
    }

    #[test]
    fn the_uniform_split_pins_memory_and_counts_replicas() {
        let mut req = ClassifyConfig::default().classify(&WorkloadSpec::new("w", 30.0));
        let s = SliceRequest::MpsUniform { replicas: 4 };
        let g = GpuView::new(0, 80.0);
        assert!(
            !MpsUniform.memory_fits(&g, GpuModel::H100_80GB, &req, s),
            "30 GB > 80 / 4"
        );
        req.memory_gb = 20.0;
        assert!(MpsUniform.memory_fits(&g, GpuModel::H100_80GB, &req, s));
        assert_eq!(MpsUniform.nominal_share(&req, s, GpuModel::H100_80GB), 25);
        assert_eq!(s.node_sharing().config_key(), "gpusched-mps-4");
        assert!(s.node_sharing().device_plugin_yaml(0).contains("mps:\n"));
        assert!(NodeSharing::MpsPerClient
            .device_plugin_yaml(3)
            .contains("timeSlicing:\n"));
    }

    #[test]
    fn a_share_under_100_rebuilds_as_mps() {
        assert_eq!(share_mode(&client(1, 25)), (1, SharingMode::Mps));
        assert_eq!(share_mode(&client(1, 100)), (0, SharingMode::Exclusive));
    }
}
