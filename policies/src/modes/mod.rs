//! One home per GPU-sharing mode. This module owns the [`SharingModeSpec`] trait (every
//! per-mode concern: the request, the node configuration, the fit rule, the allocation, the
//! performance hooks and the Kubernetes encoding), the data enums configs and outputs carry
//! ([`SharingPolicy`], [`SliceRequest`], [`NodeSharing`], [`SharingMode`], [`AllocSlice`]: their
//! serde forms are the file formats) and the one registration that maps each variant to its mode.
//!
//! The modes: [`exclusive`], [`mps`] (per-client limits and the device plugin's uniform split),
//! [`time_slicing`], [`mig`]. Every behaviour method of the enums is a one-line delegation to
//! the mode; the `match`es from a variant to its mode live here (the `spec()` methods and
//! [`REGISTRY`]).
//!
//! Adding a mode: write `modes/<mode>.rs` implementing [`SharingModeSpec`], add its variants to
//! the enums below and its arm to each `spec()` (and to [`REGISTRY`]). See
//! `docs/architecture.md`, "Adding a sharing mode", for what else a mode may need.

pub mod exclusive;
pub mod mig;
pub mod mps;
pub mod time_slicing;

use crate::admission::TimeSlicingConfig;
use crate::config::EngineConfig;
use crate::decision::{MigAssignment, TimeSliceAssignment};
use crate::mig::{MigInstance, MigProfile};
use crate::mps::MpsPlan;
use crate::plugins::fit::{FitConfig, SlotFit};
use crate::view::{AllocationView, GpuView, NodeView};
use crate::workload::PlacementRequest;
use crate::GpuModel;
use serde::{Deserialize, Serialize};

/// The calibrated performance primitives the simulator's perf model provides (implemented by
/// `gpusched_scenario::perf::PerfConfig`, whose defaults come from `shared/calibration`). The
/// modes combine them in [`SharingModeSpec::effective_share`] and
/// [`SharingModeSpec::delivered_work`]; the numbers stay in the scenario's `[perf]` table.
pub trait SharingPerf {
    /// Share of full GPU throughput an MPS client capped at `pct` gets while `busy` clients
    /// whose caps add to `busy_share_pct` run.
    fn mps_effective(&self, pct: u8, busy_share_pct: u32, busy: u32) -> f64;
    /// Share of a time-sliced GPU one of `busy` busy processes gets.
    fn timeslice_effective(&self, busy: u32) -> f64;
    /// Fraction of the GPU's work delivered by busy MPS clients.
    fn mps_delivered(&self, busy_share_pct: u32, busy: u32) -> f64;
}

/// What runs on one GPU right now, as the simulator's perf model accounts it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BusyGpu {
    /// Busy clients.
    pub clients: u32,
    /// Sum of the busy clients' units (MPS thread percentages or time-slice weights).
    pub units: u32,
    /// Sum of the busy clients' MIG throughput shares.
    pub mig_share: f64,
}

/// One replica's slice as the perf model sees it: its units and MIG share
/// ([`SharingModeSpec::slice_units`]) and its nominal share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceLoad {
    pub share_pct: u8,
    pub units: u32,
    pub mig_share: f64,
}

/// The inputs of [`SharingModeSpec::allocate`]: the chosen node, GPU and slot for a request.
pub struct AllocInput<'a> {
    pub node: &'a NodeView,
    pub gpu: &'a GpuView,
    pub req: &'a PlacementRequest,
    pub replica: u64,
    /// The request resolved against the node ([`SharingModeSpec::resolve`]).
    pub slice: SliceRequest,
    /// Its nominal share ([`SharingModeSpec::nominal_share`]).
    pub share_pct: u8,
    pub slot: &'a SlotFit,
    pub config: &'a EngineConfig,
}

/// What a mode's allocation records: the slice, the GPU's new mode and the mode's own part of
/// the decision (at most one of `mps`, `mig`, `time_slicing`).
#[derive(Debug, Clone, PartialEq)]
pub struct Allocated {
    pub slice: AllocSlice,
    pub mode: SharingMode,
    pub mps: Option<MpsPlan>,
    pub mig: Option<MigAssignment>,
    pub time_slicing: Option<TimeSliceAssignment>,
    /// How the decision's reason names the slice (`MPS 25 %`, `MIG 1g.10gb`).
    pub text: String,
}

impl Allocated {
    fn plain(slice: AllocSlice, mode: SharingMode, text: String) -> Self {
        Self {
            slice,
            mode,
            mps: None,
            mig: None,
            time_slicing: None,
            text,
        }
    }
}

/// What a pod's slice annotations say beyond GPU index and share (see `gpusched-live`'s
/// `slices` module, which reads them through [`decode_annotations`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedSlice {
    /// `None`: the share decides (whole or MPS).
    pub slice: Option<AllocSlice>,
    /// The GPU's MIG layout.
    pub layout: Vec<MigInstance>,
    /// The GPU's time-slicing replicas.
    pub replicas: Option<u8>,
}

/// The GPU-level context a pod's annotations are written with.
#[derive(Debug, Clone, Copy)]
pub struct EncodeCtx<'a> {
    pub model: GpuModel,
    /// The GPU's MIG layout, when the pod holds a MIG instance.
    pub mig_layout: &'a [MigInstance],
    /// The GPU's time-slicing replicas, when the pod holds a time-slice.
    pub time_slice_replicas: Option<u8>,
}

/// An annotation that does not parse: (key, value).
pub type BadAnnotation = (&'static str, String);

/// Everything one sharing mode decides. Each method is dispatched from the variant that carries
/// the concern: request-side methods from [`SliceRequest::spec`], node-configuration methods from
/// [`NodeSharing::spec`], GPU-level perf from [`SharingMode::spec`], slice-level perf and
/// encoding from [`AllocSlice::spec`]. A method only sees variants of its own mode.
pub trait SharingModeSpec: Sync {
    /// The mode's name (`exclusive`, `mps_per_client`, `mps_uniform`, `time_slicing`, `mig`).
    fn name(&self) -> &'static str;

    // --- The request -------------------------------------------------------------------

    /// The slice the fixed-mode policy (`engine.sharing = "<mode>"`) gives a classified request,
    /// with the decision's reason.
    fn policy_slice(&self, req: &PlacementRequest, weight: u32) -> (SliceRequest, String);
    /// Under this mode's fixed policy a tensor-parallel replica takes whole GPUs (the reason
    /// says so) rather than keeping a slice that cannot span GPUs.
    fn policy_gives_whole_gpus(&self) -> bool {
        false
    }
    /// What a slice of this mode gives, for the tensor-parallel conflict message.
    fn gives(&self) -> &'static str;
    /// The request's share once the policy chose `slice` (`current`: the classifier's).
    fn request_share(&self, _slice: SliceRequest, current: u8) -> u8 {
        current
    }
    /// A request in this mode never falls back to another GPU family (seed 003: MIG).
    fn hard_family(&self) -> bool {
        false
    }
    /// The request resolved against a node's GPU model (time-slicing replicas per family).
    fn resolve(
        &self,
        slice: SliceRequest,
        _model: GpuModel,
        _ts: &TimeSlicingConfig,
    ) -> SliceRequest {
        slice
    }
    /// The node configuration the (resolved) request needs.
    fn node_sharing(&self, slice: SliceRequest) -> NodeSharing;

    // --- The node configuration ----------------------------------------------------------

    /// The config key a node label `nvidia.com/device-plugin.config=<key>` selects.
    fn config_key(&self, ns: NodeSharing) -> String;
    /// The inverse of [`Self::config_key`], given the key without its `gpusched-` prefix;
    /// `None` when the key is not this mode's.
    fn parse_config_key(&self, rest: &str) -> Option<NodeSharing>;
    /// The device-plugin config entry (YAML) that realises the node configuration.
    fn device_plugin_yaml(&self, ns: NodeSharing, per_client_slots: u8) -> String;
    /// A scenario's pool may pin this configuration: `Err((field, problem))` if it is invalid.
    fn validate_node_config(&self, _ns: NodeSharing) -> Result<(), (&'static str, String)> {
        Ok(())
    }

    // --- The fit rule --------------------------------------------------------------------

    /// Does the request's model fit this GPU's memory in this mode? (`slice` is resolved.)
    fn memory_fits(
        &self,
        g: &GpuView,
        _model: GpuModel,
        req: &PlacementRequest,
        _slice: SliceRequest,
    ) -> bool {
        // A tiny epsilon so a 40 GB model fits a 40 GB GPU despite float rounding.
        g.memory_free_gb() + 1e-9 >= req.memory_gb
    }
    /// The GPU-level sharing check: a slot for the request on this GPU, if any.
    fn slot_fits(
        &self,
        g: &GpuView,
        model: GpuModel,
        req: &PlacementRequest,
        slice: SliceRequest,
        cfg: &FitConfig,
    ) -> Option<SlotFit>;
    /// The nominal share (percent of a GPU) the request takes on a GPU of `model`.
    fn nominal_share(&self, req: &PlacementRequest, slice: SliceRequest, model: GpuModel) -> u8;

    // --- The allocation --------------------------------------------------------------------

    /// The slice, the GPU's mode and the mode's part of the decision for a chosen slot.
    fn allocate(&self, a: &AllocInput) -> Allocated;

    // --- The performance model (simulator) ------------------------------------------------

    /// A replica's weight in its GPU's busy accounting: (units, MIG throughput share).
    fn slice_units(&self, slice: AllocSlice, share_pct: u8, model: GpuModel) -> (u32, f64);
    /// Share of full GPU throughput a request of a replica with `load` gets on a GPU in this
    /// mode while `busy` runs there (itself included).
    fn effective_share(&self, perf: &dyn SharingPerf, busy: &BusyGpu, load: &SliceLoad) -> f64;
    /// Fraction of the GPU's full work delivered while `busy` runs (drives power).
    fn delivered_work(&self, perf: &dyn SharingPerf, busy: &BusyGpu) -> f64;

    // --- The Kubernetes encoding (live) -----------------------------------------------------

    /// The pod annotations that record a slice of this mode beyond GPU index and share.
    fn annotations(&self, _slice: AllocSlice, _ctx: &EncodeCtx) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Reads this mode's pod annotations (`get`: annotation by key) into `out`.
    fn decode_annotations(
        &self,
        _get: &dyn Fn(&str) -> Option<String>,
        _model: GpuModel,
        _out: &mut DecodedSlice,
    ) -> Result<(), BadAnnotation> {
        Ok(())
    }
    /// The GPU mode a rebuilt allocation of this mode implies, with its precedence (the
    /// highest over a GPU's allocations wins): `ts_replicas` from the pods or the node config.
    fn rebuilt_gpu_mode(&self, a: &AllocationView, ts_replicas: Option<u8>) -> (u8, SharingMode);
}

/// Every registered mode, in decoding order (a later mode's annotations win).
pub static REGISTRY: [&dyn SharingModeSpec; 5] = [
    &exclusive::Exclusive,
    &mps::MpsPerClient,
    &mps::MpsUniform,
    &mig::Mig,
    &time_slicing::TimeSlicing,
];

/// Reads a pod's slice annotations through every mode.
pub fn decode_annotations(
    get: &dyn Fn(&str) -> Option<String>,
    model: GpuModel,
) -> Result<DecodedSlice, BadAnnotation> {
    let mut d = DecodedSlice::default();
    for m in REGISTRY {
        m.decode_annotations(get, model, &mut d)?;
    }
    Ok(d)
}

/// The GPU mode of a rebuilt GPU (live view): the highest-precedence mode its allocations imply.
pub fn rebuilt_gpu_mode(g: &GpuView, ts_replicas: Option<u8>) -> SharingMode {
    if g.allocations.is_empty() {
        return if g.mig.is_empty() {
            SharingMode::Free
        } else {
            SharingMode::Mig
        };
    }
    let mut best: Option<(u8, SharingMode)> = None;
    for a in &g.allocations {
        let m = a.slice.spec().rebuilt_gpu_mode(a, ts_replicas);
        if best.is_none_or(|b| m.0 > b.0) {
            best = Some(m);
        }
    }
    best.map_or(SharingMode::Exclusive, |b| b.1)
}

// ---------------------------------------------------------------------------------------------
// The data types. Their serde forms are scenario and output formats: never change them.

/// The sharing policy: which slice of a GPU each workload gets (see [`crate::admission`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SharingPolicy {
    /// The seeds' classification: tiny/medium as per-client MPS shares, large whole.
    #[default]
    Classes,
    /// Every replica gets a whole GPU.
    Exclusive,
    /// The device plugin's even MPS split: replicas = 100 / the class's share.
    MpsUniform,
    /// Per-client MPS limits (uneven splits), as in `classes`.
    MpsPerClient,
    /// A MIG instance sized to the model's memory.
    Mig,
    /// A time-sliced slot (replicas per GPU family from `time_slicing`).
    TimeSlicing,
    /// Seed 004's admission flow.
    Admission,
}

impl SharingPolicy {
    pub const ALL: [SharingPolicy; 7] = [
        SharingPolicy::Classes,
        SharingPolicy::Exclusive,
        SharingPolicy::MpsUniform,
        SharingPolicy::MpsPerClient,
        SharingPolicy::Mig,
        SharingPolicy::TimeSlicing,
        SharingPolicy::Admission,
    ];

    /// The mode a fixed-mode policy is; `None` for the policies that choose per workload.
    pub fn spec(self) -> Option<&'static dyn SharingModeSpec> {
        match self {
            SharingPolicy::Classes | SharingPolicy::Admission => None,
            SharingPolicy::Exclusive => Some(&exclusive::Exclusive),
            SharingPolicy::MpsUniform => Some(&mps::MpsUniform),
            SharingPolicy::MpsPerClient => Some(&mps::MpsPerClient),
            SharingPolicy::Mig => Some(&mig::Mig),
            SharingPolicy::TimeSlicing => Some(&time_slicing::TimeSlicing),
        }
    }
}

/// What the engine asks of a GPU for one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SliceRequest {
    /// The whole GPU, no sharing.
    Whole,
    /// An MPS client with its own active-thread percentage (per-client limits).
    Mps { pct: u8 },
    /// One of `replicas` equal MPS clients, as the device plugin's `sharing.mps` gives.
    MpsUniform { replicas: u8 },
    /// A MIG instance; the profile is chosen per GPU model from the model's memory unless given.
    Mig { profile: Option<MigProfile> },
    /// One of `replicas` time-sliced slots, with a fairness weight.
    TimeSlice { replicas: u8, weight: u32 },
}

impl SliceRequest {
    pub fn spec(self) -> &'static dyn SharingModeSpec {
        match self {
            SliceRequest::Whole => &exclusive::Exclusive,
            SliceRequest::Mps { .. } => &mps::MpsPerClient,
            SliceRequest::MpsUniform { .. } => &mps::MpsUniform,
            SliceRequest::Mig { .. } => &mig::Mig,
            SliceRequest::TimeSlice { .. } => &time_slicing::TimeSlicing,
        }
    }

    /// The node configuration this request needs.
    pub fn node_sharing(self) -> NodeSharing {
        self.spec().node_sharing(self)
    }
}

/// A node's GPU-sharing configuration (what the device plugin and the node's daemons run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(tag = "config", rename_all = "snake_case")]
pub enum NodeSharing {
    /// No config yet: the first placement on the node sets it.
    #[default]
    Unset,
    /// The plugin's default: one pod per GPU.
    Exclusive,
    /// The plugin's `sharing.mps` with this many replicas per GPU.
    MpsUniform { replicas: u8 },
    /// An MPS daemon at 100 % default; the plugin advertises slots; pods carry their limits.
    MpsPerClient,
    /// The plugin's `sharing.timeSlicing` with this many replicas per GPU.
    TimeSlicing { replicas: u8 },
    /// MIG instances (GPU Operator, mixed strategy).
    Mig,
}

impl NodeSharing {
    /// The mode whose configuration this is (`Unset` serves the plugin's default: exclusive).
    pub fn spec(self) -> &'static dyn SharingModeSpec {
        match self {
            NodeSharing::Unset | NodeSharing::Exclusive => &exclusive::Exclusive,
            NodeSharing::MpsUniform { .. } => &mps::MpsUniform,
            NodeSharing::MpsPerClient => &mps::MpsPerClient,
            NodeSharing::TimeSlicing { .. } => &time_slicing::TimeSlicing,
            NodeSharing::Mig => &mig::Mig,
        }
    }

    /// The device-plugin config entry (YAML) that realises this node configuration.
    pub fn device_plugin_yaml(self, per_client_slots: u8) -> String {
        self.spec().device_plugin_yaml(self, per_client_slots)
    }

    /// The config key a node label `nvidia.com/device-plugin.config=<key>` selects.
    pub fn config_key(self) -> String {
        self.spec().config_key(self)
    }

    /// The inverse of [`NodeSharing::config_key`]; `None` for a key gpusched did not write.
    pub fn from_config_key(key: &str) -> Option<NodeSharing> {
        let rest = key.strip_prefix("gpusched-")?;
        REGISTRY.iter().find_map(|m| m.parse_config_key(rest))
    }

    /// A scenario pool's pinned configuration is one the device plugin can run.
    pub fn validate(self) -> Result<(), (&'static str, String)> {
        self.spec().validate_node_config(self)
    }
}

/// How one GPU is being shared right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum SharingMode {
    /// Nothing runs on it and no sharing is configured.
    Free,
    /// One pod owns the whole GPU.
    Exclusive,
    /// CUDA MPS clients with active-thread percentages.
    Mps,
    /// Time-slicing with this many advertised replicas.
    TimeSlicing { replicas: u8 },
    /// MIG instances, each isolated.
    Mig,
}

impl SharingMode {
    /// The mode a GPU runs (`Free` behaves as exclusive; both MPS flavours run CUDA MPS).
    pub fn spec(self) -> &'static dyn SharingModeSpec {
        match self {
            SharingMode::Free | SharingMode::Exclusive => &exclusive::Exclusive,
            SharingMode::Mps => &mps::MpsPerClient,
            SharingMode::TimeSlicing { .. } => &time_slicing::TimeSlicing,
            SharingMode::Mig => &mig::Mig,
        }
    }
}

/// Which slice of its GPU an allocation holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "slice", rename_all = "snake_case")]
pub enum AllocSlice {
    Whole,
    Mps { pct: u8 },
    Mig { instance: MigInstance },
    TimeSlice { weight: u32 },
}

impl AllocSlice {
    /// The mode of the slice (an MPS client is MPS whichever way the node splits).
    pub fn spec(self) -> &'static dyn SharingModeSpec {
        match self {
            AllocSlice::Whole => &exclusive::Exclusive,
            AllocSlice::Mps { .. } => &mps::MpsPerClient,
            AllocSlice::Mig { .. } => &mig::Mig,
            AllocSlice::TimeSlice { .. } => &time_slicing::TimeSlicing,
        }
    }
}

/// The device plugin's `sharing.<method>` config with `replicas` per GPU.
pub(crate) fn plugin_sharing_yaml(method: &str, replicas: u8) -> String {
    format!("version: v1\nsharing:\n  {method}:\n    renameByDefault: false\n    resources:\n    - name: nvidia.com/gpu\n      replicas: {replicas}\n")
}

/// `replicas` parsed from a config key's tail: the plugin needs at least 2.
pub(crate) fn parse_replicas(s: &str) -> Option<u8> {
    s.parse::<u8>().ok().filter(|r| *r >= 2)
}

/// The device plugin's replicas bound, shared by the modes that advertise replicas.
pub(crate) fn validate_replicas(replicas: u8) -> Result<(), (&'static str, String)> {
    if (2..=48).contains(&replicas) {
        Ok(())
    } else {
        Err((
            "replicas",
            format!("{replicas} must be 2..=48 (the device plugin needs replicas >= 2)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_config_key_round_trips_through_the_registry() {
        for ns in [
            NodeSharing::Exclusive,
            NodeSharing::MpsPerClient,
            NodeSharing::MpsUniform { replicas: 4 },
            NodeSharing::TimeSlicing { replicas: 3 },
            NodeSharing::Mig,
        ] {
            assert_eq!(NodeSharing::from_config_key(&ns.config_key()), Some(ns));
        }
        assert_eq!(NodeSharing::Unset.config_key(), "gpusched-exclusive");
        assert_eq!(NodeSharing::from_config_key("gpusched-mps-1"), None);
        assert_eq!(NodeSharing::from_config_key("gpusched-vgpu"), None);
        assert_eq!(NodeSharing::from_config_key("exclusive"), None);
    }

    #[test]
    fn registry_names_are_unique_and_every_variant_has_a_mode() {
        let mut names: Vec<_> = REGISTRY.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
        for p in SharingPolicy::ALL {
            if let Some(m) = p.spec() {
                assert!(REGISTRY.iter().any(|r| r.name() == m.name()), "{p:?}");
            }
        }
    }

    #[test]
    fn serde_forms_are_unchanged() {
        let j = |s: Result<String, serde_json::Error>| s.unwrap();
        assert_eq!(
            j(serde_json::to_string(&SliceRequest::TimeSlice {
                replicas: 2,
                weight: 1
            })),
            r#"{"kind":"time_slice","replicas":2,"weight":1}"#
        );
        assert_eq!(
            j(serde_json::to_string(&NodeSharing::MpsUniform {
                replicas: 4
            })),
            r#"{"config":"mps_uniform","replicas":4}"#
        );
        assert_eq!(
            j(serde_json::to_string(&SharingMode::TimeSlicing {
                replicas: 3
            })),
            r#"{"mode":"time_slicing","replicas":3}"#
        );
        assert_eq!(
            j(serde_json::to_string(&AllocSlice::Mps { pct: 25 })),
            r#"{"slice":"mps","pct":25}"#
        );
        assert_eq!(
            j(serde_json::to_string(&SharingPolicy::MpsPerClient)),
            r#""mps_per_client""#
        );
    }
}
