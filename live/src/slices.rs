//! The slice of a GPU a pod holds, as pod annotations: the part of [`crate::codec`] for the
//! slices a GPU index and a share cannot express (the codec writes them, this reads them).
//!
//! A whole GPU and an MPS share are `gpusched.io/gpu-index` + `share-pct` (read by
//! [`crate::view::allocation_from_pod`]). A MIG instance adds `gpusched.io/mig-instance`
//! (`3g.40gb@4`) and the GPU's layout `gpusched.io/mig-layout` (`3g.40gb@0,3g.40gb@4`), so the
//! view rebuilds the GPU's MIG slots; a time-sliced pod adds `gpusched.io/time-slice-weight` and
//! `gpusched.io/time-slice-replicas`. Profile names depend on the GPU model (`1g.10gb` on an
//! H100 is `1g.5gb` on an A100-40GB), so decoding takes the node's model.
//!
//! Each sharing mode owns its annotations (keys, text forms, parsing) in
//! `gpusched_policies::modes`; this module hands a pod's annotations to them.

use crate::view::annotation;
use gpusched_policies::GpuModel;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// What a pod's annotations say about its slice beyond index and share.
pub use gpusched_policies::modes::DecodedSlice as Decoded;

/// `3g.40gb@4` on `model`.
pub use gpusched_policies::modes::mig::parse_instance;

/// Reads the slice annotations of a pod on a node with GPUs of `model`: each sharing mode
/// reads its own ([`gpusched_policies::modes::SharingModeSpec::decode_annotations`]).
pub fn decode(meta: &ObjectMeta, model: GpuModel) -> Result<Decoded, String> {
    let name = meta.name.as_deref().unwrap_or("");
    gpusched_policies::modes::decode_annotations(
        &|k| annotation(meta, k).map(str::to_string),
        model,
    )
    .map_err(|(k, v)| format!("pod {name}: annotation {k}={v:?} is not valid on {model}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpusched_policies::mig::{MigInstance, MigProfile};

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
