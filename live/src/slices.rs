//! The slice of a GPU a pod holds, as pod annotations: the part of [`crate::codec`] for the
//! slices a GPU index and a share cannot express (the codec writes them, this reads them).
//!
//! A whole GPU and an MPS share are `gpusched.io/gpu-index` + `share-pct` (read by
//! [`crate::view::allocation_from_pod`]). A MIG instance adds `gpusched.io/mig-instance`
//! (`3g.40gb@4`) and the GPU's layout `gpusched.io/mig-layout` (`3g.40gb@0,3g.40gb@4`), so the
//! view rebuilds the GPU's MIG slots; a time-sliced pod adds `gpusched.io/time-slice-weight` and
//! `gpusched.io/time-slice-replicas`. Profile names depend on the GPU model (`1g.10gb` on an
//! H100 is `1g.5gb` on an A100-40GB), so decoding takes the node's model.

use crate::keys;
use crate::view::annotation;
use gpusched_policies::mig::{MigInstance, MigProfile};
use gpusched_policies::view::AllocSlice;
use gpusched_policies::GpuModel;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// What a pod's annotations say about its slice beyond index and share.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// `Mig` or `TimeSlice`; `None`: the share decides (whole or MPS).
    pub slice: Option<AllocSlice>,
    /// The GPU's MIG layout.
    pub layout: Vec<MigInstance>,
    /// The GPU's time-slicing replicas.
    pub replicas: Option<u8>,
}

/// `3g.40gb@4` on `model`.
pub fn parse_instance(s: &str, model: GpuModel) -> Option<MigInstance> {
    let (name, start) = s.trim().split_once('@')?;
    Some(MigInstance {
        profile: MigProfile::from_name(name, model)?,
        start: start.parse().ok()?,
    })
}

/// Reads the slice annotations of a pod on a node with GPUs of `model`.
pub fn decode(meta: &ObjectMeta, model: GpuModel) -> Result<Decoded, String> {
    let name = meta.name.as_deref().unwrap_or("");
    let bad =
        |k: &str, v: &str| format!("pod {name}: annotation {k}={v:?} is not valid on {model}");
    let mut d = Decoded::default();
    if let Some(v) = annotation(meta, keys::MIG_INSTANCE) {
        let instance = parse_instance(v, model).ok_or_else(|| bad(keys::MIG_INSTANCE, v))?;
        d.slice = Some(AllocSlice::Mig { instance });
        if let Some(l) = annotation(meta, keys::MIG_LAYOUT) {
            d.layout = l
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| parse_instance(s, model).ok_or_else(|| bad(keys::MIG_LAYOUT, l)))
                .collect::<Result<_, _>>()?;
        }
    }
    if let Some(v) = annotation(meta, keys::TIME_SLICE_WEIGHT) {
        let weight = v.parse().map_err(|_| bad(keys::TIME_SLICE_WEIGHT, v))?;
        d.slice = Some(AllocSlice::TimeSlice { weight });
        if let Some(r) = annotation(meta, keys::TIME_SLICE_REPLICAS) {
            d.replicas = Some(r.parse().map_err(|_| bad(keys::TIME_SLICE_REPLICAS, r))?);
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_round_trip_per_model() {
        for model in [
            GpuModel::H100_80GB,
            GpuModel::A100_40GB,
            GpuModel::A100_80GB,
        ] {
            for p in MigProfile::ALL {
                let i = MigInstance {
                    profile: p,
                    start: 4,
                };
                let text = format!("{}@4", p.name(model));
                assert_eq!(parse_instance(&text, model), Some(i), "{text} on {model}");
            }
        }
        assert_eq!(parse_instance("9g.1gb@0", GpuModel::H100_80GB), None);
        assert_eq!(parse_instance("3g.40gb", GpuModel::H100_80GB), None);
    }
}
