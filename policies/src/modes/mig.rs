//! MIG: isolated GPU instances (GPU Operator, mixed strategy). Owns the `Mig` request (profile
//! sized to the model's memory per GPU model unless given), the `Mig` node config, GPU mode and
//! slice, the slot rule (a free instance of the profile, else a new homogeneous layout on a
//! free GPU), the share (the profile's compute slices of 7), the decision's [`MigAssignment`],
//! the perf hook (the instance's calibrated throughput share) and the pod annotations
//! `gpusched.io/mig-instance` and `gpusched.io/mig-layout`. Profiles and layouts themselves are
//! [`crate::mig`]. MIG requests never fall back to another GPU family (seed 003).

use super::{
    AllocInput, AllocSlice, Allocated, BadAnnotation, BusyGpu, DecodedSlice, EncodeCtx,
    NodeSharing, SharingMode, SharingModeSpec, SharingPerf, SliceLoad, SliceRequest,
};
use crate::decision::MigAssignment;
use crate::mig::{homogeneous, profile_for, MigInstance, MigProfile};
use crate::plugins::fit::{FitConfig, SlotFit};
use crate::view::{AllocationView, GpuView};
use crate::workload::PlacementRequest;
use crate::GpuModel;

/// Pod annotation: the MIG instance a pod holds (`<profile>@<start>`, e.g. `3g.40gb@4`).
pub const INSTANCE_ANNOTATION: &str = "gpusched.io/mig-instance";
/// Pod annotation: its GPU's whole layout when it was bound (comma-separated, the same form).
pub const LAYOUT_ANNOTATION: &str = "gpusched.io/mig-layout";

pub struct Mig;

/// The MIG profile a request needs on a GPU model.
pub fn mig_profile(req: &PlacementRequest, model: GpuModel) -> Option<MigProfile> {
    match req.slice {
        SliceRequest::Mig { profile: Some(p) } => Some(p),
        _ => profile_for(req.memory_gb, model),
    }
}

/// `3g.40gb@4` on `model`.
pub fn instance_text(i: &MigInstance, model: GpuModel) -> String {
    format!("{}@{}", i.profile.name(model), i.start)
}

/// A MIG layout as annotation text (`3g.40gb@0,3g.40gb@4`).
pub fn layout_text(layout: &[MigInstance], model: GpuModel) -> String {
    let l: Vec<String> = layout.iter().map(|i| instance_text(i, model)).collect();
    l.join(",")
}

/// Parses [`instance_text`]'s form on `model`.
pub fn parse_instance(s: &str, model: GpuModel) -> Option<MigInstance> {
    let (name, start) = s.trim().split_once('@')?;
    Some(MigInstance {
        profile: MigProfile::from_name(name, model)?,
        start: start.parse().ok()?,
    })
}

/// Parses [`layout_text`]'s form (`None`: not valid on `model`).
pub fn parse_layout(text: &str, model: GpuModel) -> Option<Vec<MigInstance>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_instance(s, model))
        .collect()
}

impl SharingModeSpec for Mig {
    fn name(&self) -> &'static str {
        "mig"
    }

    fn policy_slice(&self, _req: &PlacementRequest, _weight: u32) -> (SliceRequest, String) {
        (
            SliceRequest::Mig { profile: None },
            "MIG policy".to_string(),
        )
    }
    fn gives(&self) -> &'static str {
        "a MIG instance"
    }
    fn hard_family(&self) -> bool {
        true
    }
    fn node_sharing(&self, _slice: SliceRequest) -> NodeSharing {
        NodeSharing::Mig
    }

    fn config_key(&self, _ns: NodeSharing) -> String {
        "gpusched-mig-mixed".into()
    }
    fn parse_config_key(&self, rest: &str) -> Option<NodeSharing> {
        (rest == "mig-mixed").then_some(NodeSharing::Mig)
    }
    fn device_plugin_yaml(&self, _ns: NodeSharing, _per_client_slots: u8) -> String {
        "version: v1\nflags:\n  migStrategy: mixed\n".to_string()
    }

    fn memory_fits(
        &self,
        _g: &GpuView,
        model: GpuModel,
        req: &PlacementRequest,
        _slice: SliceRequest,
    ) -> bool {
        mig_profile(req, model).is_some_and(|p| p.memory_gb(model) + 1e-9 >= req.memory_gb)
    }
    fn slot_fits(
        &self,
        g: &GpuView,
        model: GpuModel,
        req: &PlacementRequest,
        _slice: SliceRequest,
        _cfg: &FitConfig,
    ) -> Option<SlotFit> {
        let p = mig_profile(req, model)?;
        if let Some(slot) = g
            .mig
            .iter()
            .find(|s| s.replica.is_none() && s.instance.profile == p)
        {
            return Some(SlotFit {
                mig: Some((slot.instance, None)),
            });
        }
        // A new layout needs the GPU free of processes (drained).
        if g.is_free() {
            let layout = homogeneous(p);
            let first = *layout.first()?;
            return Some(SlotFit {
                mig: Some((first, Some(layout))),
            });
        }
        None
    }
    fn nominal_share(&self, req: &PlacementRequest, _slice: SliceRequest, model: GpuModel) -> u8 {
        mig_profile(req, model).map_or(100, |p| (p.rule().slices as u32 * 100).div_ceil(7) as u8)
    }

    fn allocate(&self, a: &AllocInput) -> Allocated {
        let model = a.node.model;
        let (instance, new_layout) = a.slot.mig.clone().expect("a MIG fit names its instance");
        let layout = new_layout
            .clone()
            .unwrap_or_else(|| a.gpu.mig.iter().map(|s| s.instance).collect());
        let assignment = MigAssignment {
            profile: instance.profile.name(model),
            start: instance.start,
            layout: layout
                .iter()
                .map(|i| format!("{}@{}", i.profile.name(model), i.start))
                .collect(),
            reconfigure: new_layout.is_some(),
            instances: layout.clone(),
        };
        Allocated {
            text: format!("MIG {}", assignment.profile),
            mig: Some(assignment),
            ..Allocated::plain(
                AllocSlice::Mig { instance },
                SharingMode::Mig,
                String::new(),
            )
        }
    }

    fn slice_units(&self, slice: AllocSlice, _share_pct: u8, model: GpuModel) -> (u32, f64) {
        match slice {
            AllocSlice::Mig { instance } => (0, instance.profile.throughput_share(model)),
            _ => unreachable!("not a MIG slice: {slice:?}"),
        }
    }
    /// An instance is isolated: it gets its own throughput share whatever else runs.
    fn effective_share(&self, _perf: &dyn SharingPerf, _busy: &BusyGpu, load: &SliceLoad) -> f64 {
        load.mig_share
    }
    fn delivered_work(&self, _perf: &dyn SharingPerf, busy: &BusyGpu) -> f64 {
        busy.mig_share
    }

    fn annotations(&self, slice: AllocSlice, ctx: &EncodeCtx) -> Vec<(&'static str, String)> {
        let AllocSlice::Mig { instance } = slice else {
            return Vec::new();
        };
        vec![
            (INSTANCE_ANNOTATION, instance_text(&instance, ctx.model)),
            (LAYOUT_ANNOTATION, layout_text(ctx.mig_layout, ctx.model)),
        ]
    }
    fn decode_annotations(
        &self,
        get: &dyn Fn(&str) -> Option<String>,
        model: GpuModel,
        out: &mut DecodedSlice,
    ) -> Result<(), BadAnnotation> {
        if let Some(v) = get(INSTANCE_ANNOTATION) {
            let instance =
                parse_instance(&v, model).ok_or_else(|| (INSTANCE_ANNOTATION, v.clone()))?;
            out.slice = Some(AllocSlice::Mig { instance });
            if let Some(l) = get(LAYOUT_ANNOTATION) {
                out.layout = l
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| parse_instance(s, model).ok_or_else(|| (LAYOUT_ANNOTATION, l.clone())))
                    .collect::<Result<_, _>>()?;
            }
        }
        Ok(())
    }
    fn rebuilt_gpu_mode(&self, _a: &AllocationView, _ts: Option<u8>) -> (u8, SharingMode) {
        (3, SharingMode::Mig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modes::decode_annotations;
    use crate::view::MigSlot;
    use crate::workload::{ClassifyConfig, WorkloadSpec};
    use std::collections::BTreeMap;

    fn req(gb: f64) -> PlacementRequest {
        let mut r = ClassifyConfig::default().classify(&WorkloadSpec::new("w", gb));
        r.slice = SliceRequest::Mig { profile: None };
        r
    }

    #[test]
    fn a_free_instance_first_a_new_layout_only_on_a_free_gpu() {
        let m = GpuModel::H100_80GB;
        let r = req(8.0);
        let s = r.slice;
        let cfg = FitConfig::default();
        let p = mig_profile(&r, m).unwrap();
        let mut g = GpuView::new(0, 80.0);
        let fresh = Mig.slot_fits(&g, m, &r, s, &cfg).unwrap();
        let (first, layout) = fresh.mig.unwrap();
        assert_eq!(first.profile, p);
        let layout = layout.expect("a free GPU is re-laid out");
        g.mig = layout
            .iter()
            .map(|i| MigSlot {
                instance: *i,
                replica: None,
            })
            .collect();
        assert_eq!(
            Mig.slot_fits(&g, m, &r, s, &cfg).unwrap().mig,
            Some((first, None))
        );
        // Every instance taken by a running pod: no slot, and no re-layout under pods.
        for (n, slot) in g.mig.iter_mut().enumerate() {
            slot.replica = Some(n as u64);
        }
        g.allocations.push(AllocationView {
            workload: "x".into(),
            replica: 0,
            class: r.class,
            share_pct: 14,
            memory_gb: 8.0,
            slice: AllocSlice::Mig { instance: first },
            priority_class: 500,
        });
        assert!(Mig.slot_fits(&g, m, &r, s, &cfg).is_none());
        assert!(
            !Mig.memory_fits(&g, m, &req(200.0), s),
            "no profile holds 200 GB"
        );
    }

    #[test]
    fn annotations_round_trip_per_model() {
        for model in [GpuModel::H100_80GB, GpuModel::A100_40GB] {
            let layout = homogeneous(MigProfile::ALL[0]);
            let ctx = EncodeCtx {
                model,
                mig_layout: &layout,
                time_slice_replicas: None,
            };
            let a: BTreeMap<String, String> = Mig
                .annotations(
                    AllocSlice::Mig {
                        instance: layout[1],
                    },
                    &ctx,
                )
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let d = decode_annotations(&|k| a.get(k).cloned(), model).unwrap();
            assert_eq!(
                d.slice,
                Some(AllocSlice::Mig {
                    instance: layout[1]
                })
            );
            assert_eq!(d.layout, layout);
        }
        let bad = decode_annotations(
            &|k| (k == INSTANCE_ANNOTATION).then(|| "9g.1gb@0".to_string()),
            GpuModel::H100_80GB,
        );
        assert_eq!(bad, Err((INSTANCE_ANNOTATION, "9g.1gb@0".to_string())));
    }
}
