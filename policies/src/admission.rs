//! The sharing policy: which slice of a GPU each workload gets. One of the fixed modes (to
//! compare them), the seeds' size classes, or seed 004's admission flow:
//! training → exclusive; one GPU and < 20 GB → MIG; inference and serving → MPS; development and
//! batch → time-slicing; pods that opted out and exempt namespaces → exclusive.
//! Seed 003's fallback rule rides along: MIG workloads never leave their preferred GPU family,
//! time-sliced ones may fall back to another family's time-sliced pools.

use crate::sharing::{Fairness, SliceRequest};
use crate::workload::{PlacementRequest, WorkloadKind, WorkloadSpec};
use serde::{Deserialize, Serialize};

/// The policy type; the fixed-mode policies are their modes' ([`SharingPolicy::spec`]).
pub use crate::modes::SharingPolicy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeSlicingConfig {
    /// Replicas per A100 (seed 003: 3).
    pub a100_replicas: u8,
    /// Replicas per H100 (seed 003: 2).
    pub h100_replicas: u8,
    pub fairness: Fairness,
}

impl Default for TimeSlicingConfig {
    fn default() -> Self {
        Self {
            a100_replicas: 3,
            h100_replicas: 2,
            fairness: Fairness::RoundRobin,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// One-GPU workloads under this much memory get MIG (seed 004: 20 GB).
    pub mig_below_gb: f64,
    pub enable_mig: bool,
    pub enable_mps: bool,
    pub enable_time_slicing: bool,
    /// Namespaces the flow leaves alone (exclusive GPUs).
    pub exempt_namespaces: Vec<String>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            mig_below_gb: 20.0,
            enable_mig: true,
            enable_mps: true,
            enable_time_slicing: true,
            exempt_namespaces: vec!["kube-system".into()],
        }
    }
}

/// Applies the sharing policy to a classified request.
pub fn apply(
    policy: SharingPolicy,
    req: &mut PlacementRequest,
    w: &WorkloadSpec,
    adm: &AdmissionConfig,
) {
    let policy = w.sharing_mode.unwrap_or(policy);
    let weight = req.priority_class.max(1) as u32;
    let (slice, reason) = match (policy, policy.spec()) {
        (SharingPolicy::Admission, _) => admission_flow(req, w, adm, weight),
        (_, Some(mode)) => mode.policy_slice(req, weight),
        // `classes`: the classifier's slice.
        (_, None) => (req.slice, "size class → MPS share".to_string()),
    };
    let (slice, reason) = tensor_parallel_slice(policy, req.gpus, slice, reason);
    req.slice = slice;
    req.share_pct = slice.spec().request_share(slice, req.share_pct);
    // Seed 003: MIG workloads never fall back to another GPU family.
    req.hard_family = slice.spec().hard_family();
    req.sharing_reason = reason;
}

/// A tensor-parallel replica (`gpus > 1`) takes whole GPUs. Under the policies that pick a
/// share per workload (size classes, the admission flow) or give whole GPUs anyway, it gets
/// them; a policy that *is* a sharing mode (MPS, MIG, time-slicing) keeps its slice, which
/// `SharingFits` then refuses with the reason: a slice of one GPU cannot span NVLink peers.
fn tensor_parallel_slice(
    policy: SharingPolicy,
    gpus: u32,
    slice: SliceRequest,
    reason: String,
) -> (SliceRequest, String) {
    if gpus <= 1 {
        return (slice, reason);
    }
    if policy.spec().is_none_or(|m| m.policy_gives_whole_gpus()) {
        (
            SliceRequest::Whole,
            format!("tensor-parallel ×{gpus} → {gpus} whole GPUs of one node"),
        )
    } else {
        (slice, reason)
    }
}

/// Why a request cannot be placed whatever the cluster looks like: tensor parallelism under a
/// sharing mode that slices one GPU. `None` when the request is placeable in principle.
pub fn tensor_parallel_conflict(req: &PlacementRequest) -> Option<String> {
    if req.gpus <= 1 || matches!(req.slice, SliceRequest::Whole) {
        return None;
    }
    let mode = req.slice.spec().gives();
    Some(format!(
        "tensor_parallel = {n} needs {n} whole GPUs of one node, but its sharing mode ({}) gives {mode}: MPS, MIG and time-slicing share one GPU and cannot span several",
        req.sharing_reason,
        n = req.gpus
    ))
}

fn admission_flow(
    req: &PlacementRequest,
    w: &WorkloadSpec,
    adm: &AdmissionConfig,
    weight: u32,
) -> (SliceRequest, String) {
    if w.opt_out {
        return (
            SliceRequest::Whole,
            "opted out of sharing (optimize: false)".into(),
        );
    }
    if let Some(ns) = w
        .namespace
        .as_deref()
        .filter(|ns| adm.exempt_namespaces.iter().any(|e| e == ns))
    {
        return (SliceRequest::Whole, format!("namespace {ns} is exempt"));
    }
    if w.kind == WorkloadKind::Training {
        return (SliceRequest::Whole, "training → exclusive".into());
    }
    if adm.enable_mig && req.memory_gb < adm.mig_below_gb {
        return (
            SliceRequest::Mig { profile: None },
            format!(
                "one GPU and {:.1} GB < {} GB → MIG",
                req.memory_gb, adm.mig_below_gb
            ),
        );
    }
    match w.kind {
        WorkloadKind::Inference | WorkloadKind::Serving if adm.enable_mps => {
            if req.share_pct >= 100 {
                (
                    SliceRequest::Whole,
                    "inference needing a whole GPU → exclusive".into(),
                )
            } else {
                (
                    SliceRequest::Mps { pct: req.share_pct },
                    "inference/serving → MPS".into(),
                )
            }
        }
        WorkloadKind::Development | WorkloadKind::Batch if adm.enable_time_slicing => (
            SliceRequest::TimeSlice {
                replicas: 0,
                weight,
            },
            "development/batch → time-slicing".into(),
        ),
        _ => (
            SliceRequest::Whole,
            "no sharing mode enabled for this kind → exclusive".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::ClassifyConfig;

    fn decide(w: &WorkloadSpec) -> PlacementRequest {
        let mut r = ClassifyConfig::default().classify(w);
        apply(
            SharingPolicy::Admission,
            &mut r,
            w,
            &AdmissionConfig::default(),
        );
        r
    }

    #[test]
    fn seed_004_admission_flow() {
        let mut w = WorkloadSpec::new("t", 30.0);
        w.kind = WorkloadKind::Training;
        assert_eq!(decide(&w).slice, SliceRequest::Whole);
        w.kind = WorkloadKind::Inference;
        w.model_memory_gb = 8.0;
        assert!(matches!(decide(&w).slice, SliceRequest::Mig { .. }));
        assert!(decide(&w).hard_family, "MIG never falls back");
        w.model_memory_gb = 24.0;
        w.share_pct = Some(50);
        assert_eq!(decide(&w).slice, SliceRequest::Mps { pct: 50 });
        w.kind = WorkloadKind::Development;
        assert!(matches!(decide(&w).slice, SliceRequest::TimeSlice { .. }));
        assert!(!decide(&w).hard_family, "time-sliced work may fall back");
        w.opt_out = true;
        assert_eq!(decide(&w).slice, SliceRequest::Whole);
        w.opt_out = false;
        w.namespace = Some("kube-system".into());
        assert_eq!(decide(&w).slice, SliceRequest::Whole);
    }
}
