//! Time-slicing: the device plugin's `sharing.timeSlicing` advertises `replicas` slots per GPU
//! and the GPU switches contexts between them. Owns the `TimeSlice` request (replicas resolved
//! per GPU family from `[engine.time_slicing]`) and slice, the `TimeSlicing` node config and GPU
//! mode, the slot rule (fewer clients than replicas), seed 004's fairness weights, the perf
//! (a fair share by weight less the calibrated context-switch loss) and the pod annotations
//! `gpusched.io/time-slice-weight` and `gpusched.io/time-slice-replicas`.

use super::{
    AllocInput, AllocSlice, Allocated, BadAnnotation, BusyGpu, DecodedSlice, EncodeCtx,
    NodeSharing, SharingMode, SharingModeSpec, SharingPerf, SliceLoad, SliceRequest,
};
use crate::admission::TimeSlicingConfig;
use crate::decision::TimeSliceAssignment;
use crate::gpu::GpuFamily;
use crate::plugins::fit::{FitConfig, SlotFit};
use crate::sharing::Fairness;
use crate::view::{AllocationView, GpuView};
use crate::workload::PlacementRequest;
use crate::GpuModel;

/// Pod annotation: a time-sliced pod's weight (seed 004's fairness).
pub const WEIGHT_ANNOTATION: &str = "gpusched.io/time-slice-weight";
/// Pod annotation: its GPU's time-slicing replicas.
pub const REPLICAS_ANNOTATION: &str = "gpusched.io/time-slice-replicas";

pub struct TimeSlicing;

impl SharingModeSpec for TimeSlicing {
    fn name(&self) -> &'static str {
        "time_slicing"
    }

    fn policy_slice(&self, _req: &PlacementRequest, weight: u32) -> (SliceRequest, String) {
        (
            SliceRequest::TimeSlice {
                replicas: 0,
                weight,
            },
            "time-slicing policy".to_string(),
        )
    }
    fn gives(&self) -> &'static str {
        "a time-sliced slot"
    }
    fn resolve(
        &self,
        slice: SliceRequest,
        model: GpuModel,
        ts: &TimeSlicingConfig,
    ) -> SliceRequest {
        match slice {
            SliceRequest::TimeSlice {
                replicas: 0,
                weight,
            } => SliceRequest::TimeSlice {
                replicas: match model.family() {
                    GpuFamily::H100 => ts.h100_replicas,
                    GpuFamily::A100 => ts.a100_replicas,
                },
                weight,
            },
            other => other,
        }
    }
    fn node_sharing(&self, slice: SliceRequest) -> NodeSharing {
        NodeSharing::TimeSlicing {
            replicas: replicas(slice),
        }
    }

    fn config_key(&self, ns: NodeSharing) -> String {
        match ns {
            NodeSharing::TimeSlicing { replicas } => format!("gpusched-time-slicing-{replicas}"),
            _ => unreachable!("not a time-slicing config: {ns:?}"),
        }
    }
    fn parse_config_key(&self, rest: &str) -> Option<NodeSharing> {
        let r = rest.strip_prefix("time-slicing-")?;
        Some(NodeSharing::TimeSlicing {
            replicas: super::parse_replicas(r)?,
        })
    }
    fn device_plugin_yaml(&self, ns: NodeSharing, _per_client_slots: u8) -> String {
        match ns {
            NodeSharing::TimeSlicing { replicas } => {
                super::plugin_sharing_yaml("timeSlicing", replicas)
            }
            _ => unreachable!("not a time-slicing config: {ns:?}"),
        }
    }
    fn validate_node_config(&self, ns: NodeSharing) -> Result<(), (&'static str, String)> {
        match ns {
            NodeSharing::TimeSlicing { replicas } => super::validate_replicas(replicas),
            _ => Ok(()),
        }
    }

    fn slot_fits(
        &self,
        g: &GpuView,
        _model: GpuModel,
        _req: &PlacementRequest,
        slice: SliceRequest,
        _cfg: &FitConfig,
    ) -> Option<SlotFit> {
        let mode_ok = g.is_free() || matches!(g.mode, SharingMode::TimeSlicing { .. });
        (mode_ok && g.allocations.len() < replicas(slice) as usize).then_some(SlotFit { mig: None })
    }
    fn nominal_share(&self, _req: &PlacementRequest, slice: SliceRequest, _model: GpuModel) -> u8 {
        (100 / replicas(slice).max(1) as u32) as u8
    }

    fn allocate(&self, a: &AllocInput) -> Allocated {
        let replicas = replicas(a.slice);
        let fairness = a.config.time_slicing.fairness;
        // Seed 004's fairness modes as time-slice weights.
        let weight = match fairness {
            Fairness::RoundRobin => 1,
            Fairness::Priority => a.req.priority_class.max(1) as u32,
            Fairness::Weighted => a.config.classify.target(a.req.class).share_pct.max(1) as u32,
        };
        Allocated {
            time_slicing: Some(TimeSliceAssignment {
                replicas,
                weight,
                fairness,
            }),
            ..Allocated::plain(
                AllocSlice::TimeSlice { weight },
                SharingMode::TimeSlicing { replicas },
                format!("time-slice 1/{replicas}"),
            )
        }
    }

    fn slice_units(&self, slice: AllocSlice, _share_pct: u8, _model: GpuModel) -> (u32, f64) {
        match slice {
            AllocSlice::TimeSlice { weight } => (weight, 0.0),
            _ => unreachable!("not a time-slice: {slice:?}"),
        }
    }
    /// Fair share by weight among the busy clients, less the context-switch loss.
    fn effective_share(&self, perf: &dyn SharingPerf, busy: &BusyGpu, load: &SliceLoad) -> f64 {
        perf.timeslice_effective(busy.clients) * busy.clients as f64 * load.units as f64
            / busy.units.max(1) as f64
    }
    fn delivered_work(&self, perf: &dyn SharingPerf, busy: &BusyGpu) -> f64 {
        if busy.clients == 0 {
            0.0
        } else {
            perf.timeslice_effective(busy.clients) * busy.clients as f64
        }
    }

    fn annotations(&self, slice: AllocSlice, ctx: &EncodeCtx) -> Vec<(&'static str, String)> {
        let AllocSlice::TimeSlice { weight } = slice else {
            return Vec::new();
        };
        let mut out = vec![(WEIGHT_ANNOTATION, weight.to_string())];
        if let Some(r) = ctx.time_slice_replicas {
            out.push((REPLICAS_ANNOTATION, r.to_string()));
        }
        out
    }
    fn decode_annotations(
        &self,
        get: &dyn Fn(&str) -> Option<String>,
        _model: GpuModel,
        out: &mut DecodedSlice,
    ) -> Result<(), BadAnnotation> {
        if let Some(v) = get(WEIGHT_ANNOTATION) {
            let weight = v.parse().map_err(|_| (WEIGHT_ANNOTATION, v.clone()))?;
            out.slice = Some(AllocSlice::TimeSlice { weight });
            if let Some(r) = get(REPLICAS_ANNOTATION) {
                out.replicas = Some(r.parse().map_err(|_| (REPLICAS_ANNOTATION, r.clone()))?);
            }
        }
        Ok(())
    }
    fn rebuilt_gpu_mode(&self, _a: &AllocationView, ts: Option<u8>) -> (u8, SharingMode) {
        (
            2,
            SharingMode::TimeSlicing {
                replicas: ts.unwrap_or(1),
            },
        )
    }
}

fn replicas(slice: SliceRequest) -> u8 {
    match slice {
        SliceRequest::TimeSlice { replicas, .. } => replicas,
        _ => unreachable!("not a time-slice request: {slice:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modes::decode_annotations;
    use crate::workload::{ClassifyConfig, WorkloadSpec};
    use std::collections::BTreeMap;

    #[test]
    fn replicas_resolve_per_family_and_bound_the_slots() {
        let ts = TimeSlicingConfig::default();
        let s = SliceRequest::TimeSlice {
            replicas: 0,
            weight: 1,
        };
        let h = TimeSlicing.resolve(s, GpuModel::H100_80GB, &ts);
        assert_eq!(
            h,
            SliceRequest::TimeSlice {
                replicas: 2,
                weight: 1
            }
        );
        assert_eq!(
            TimeSlicing.resolve(s, GpuModel::A100_40GB, &ts),
            SliceRequest::TimeSlice {
                replicas: 3,
                weight: 1
            }
        );
        let req = ClassifyConfig::default().classify(&WorkloadSpec::new("w", 4.0));
        let mut g = GpuView::new(0, 80.0);
        let cfg = FitConfig::default();
        for r in 0..2 {
            assert!(TimeSlicing
                .slot_fits(&g, GpuModel::H100_80GB, &req, h, &cfg)
                .is_some());
            g.add_allocation(
                AllocationView {
                    workload: "w".into(),
                    replica: r,
                    class: req.class,
                    share_pct: 50,
                    memory_gb: 4.0,
                    slice: AllocSlice::TimeSlice { weight: 1 },
                    priority_class: 500,
                },
                SharingMode::TimeSlicing { replicas: 2 },
            );
        }
        assert!(TimeSlicing
            .slot_fits(&g, GpuModel::H100_80GB, &req, h, &cfg)
            .is_none());
        assert_eq!(TimeSlicing.nominal_share(&req, h, GpuModel::H100_80GB), 50);
    }

    #[test]
    fn annotations_round_trip() {
        let ctx = EncodeCtx {
            model: GpuModel::H100_80GB,
            mig_layout: &[],
            time_slice_replicas: Some(4),
        };
        let a: BTreeMap<String, String> = TimeSlicing
            .annotations(AllocSlice::TimeSlice { weight: 7 }, &ctx)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let d = decode_annotations(&|k| a.get(k).cloned(), GpuModel::H100_80GB).unwrap();
        assert_eq!(d.slice, Some(AllocSlice::TimeSlice { weight: 7 }));
        assert_eq!(d.replicas, Some(4));
        let bad = decode_annotations(
            &|k| (k == WEIGHT_ANNOTATION).then(|| "heavy".to_string()),
            GpuModel::H100_80GB,
        );
        assert_eq!(bad, Err((WEIGHT_ANNOTATION, "heavy".to_string())));
    }

    #[test]
    fn context_switches_cost_the_calibrated_loss() {
        struct P;
        impl SharingPerf for P {
            fn mps_effective(&self, _: u8, _: u32, _: u32) -> f64 {
                unreachable!()
            }
            fn timeslice_effective(&self, busy: u32) -> f64 {
                if busy <= 1 {
                    1.0
                } else {
                    0.9 / busy as f64
                }
            }
            fn mps_delivered(&self, _: u32, _: u32) -> f64 {
                unreachable!()
            }
        }
        let busy = BusyGpu {
            clients: 2,
            units: 3,
            mig_share: 0.0,
        };
        let load = SliceLoad {
            share_pct: 50,
            units: 2,
            mig_share: 0.0,
        };
        // Weight 2 of 3 busy units: two thirds of the 90 % left.
        assert!((TimeSlicing.effective_share(&P, &busy, &load) - 0.6).abs() < 1e-12);
        assert!((TimeSlicing.delivered_work(&P, &busy) - 0.9).abs() < 1e-12);
        assert_eq!(TimeSlicing.delivered_work(&P, &BusyGpu::default()), 0.0);
    }
}
