//! The one codec between the engine crate's cluster state ([`ClusterState`]) and Kubernetes
//! objects, for every slice type: a whole GPU, the N GPUs of a tensor-parallel pod, an MPS share,
//! a MIG instance, a time-slice replica.
//!
//! * Pod annotations ([`pod_annotations`] / [`decode_pod`]): `gpusched.io/gpu-index` (the first
//!   GPU), `gpu-indices` (all N, when N > 1), `replica`, `share-pct`, `memory-gb`, `class`, and
//!   for the slices index and share cannot express [`crate::slices`]'s `mig-instance` +
//!   `mig-layout` and `time-slice-weight` + `time-slice-replicas`.
//! * Node labels ([`node_sharing_label`] / [`node_sharing`]): `nvidia.com/device-plugin.config`
//!   names the node's sharing config.
//! * Node annotations ([`node_mig_annotations`] / [`node_mig_layouts`] / [`mig_layout_patch`]):
//!   `gpusched.io/mig-layout.<gpu>`, each GPU's MIG layout, kept while the GPU is empty.
//! * ConfigMap entries ([`config_map_entry`]): the device plugin's config under that name.
//!
//! [`pods_of_state`] lists what every pod of a state carries, so a state can be written out as
//! objects and read back by `view::build_view` (the round trip the conformance suite checks).

use crate::keys;
use gpusched_policies::cluster::ClusterState;
use gpusched_policies::decision::{NodeConfigChange, Placement};
use gpusched_policies::mig::MigInstance;
use gpusched_policies::modes::EncodeCtx;
use gpusched_policies::sharing::NodeSharing;
use gpusched_policies::view::{AllocSlice, AllocationView, NodeView, SharingMode};
use gpusched_policies::workload::SizeClass;
use gpusched_policies::GpuModel;
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;

/// One pod's allocation as the cluster state holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodAllocation {
    /// Every GPU of the node it holds, ascending (N for a tensor-parallel pod).
    pub gpus: Vec<u8>,
    /// What it holds on each of them.
    pub alloc: AllocationView,
    /// Its GPU's MIG layout, when it holds a MIG instance.
    pub mig_layout: Vec<MigInstance>,
    /// Its GPU's time-slicing replicas, when it holds a time-slice.
    pub time_slice_replicas: Option<u8>,
}

impl PodAllocation {
    /// What `ClusterState::apply` records for the placement (`memory_gb` per GPU).
    pub fn of_placement(p: &Placement, memory_gb: f64) -> Self {
        Self {
            gpus: if p.gpus.is_empty() {
                vec![p.gpu]
            } else {
                p.gpus.clone()
            },
            alloc: AllocationView {
                workload: p.workload.clone(),
                replica: p.replica,
                class: p.class,
                share_pct: p.share_pct,
                memory_gb,
                slice: p.slice,
                priority_class: p.priority_class,
            },
            mig_layout: p
                .mig
                .as_ref()
                .map(|m| m.instances.clone())
                .unwrap_or_default(),
            time_slice_replicas: p.time_slicing.as_ref().map(|t| t.replicas),
        }
    }
}

fn class_name(c: SizeClass) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A MIG layout as annotation text (`3g.40gb@0,3g.40gb@4`).
pub use gpusched_policies::modes::mig::{layout_text, parse_layout};

/// The node annotation key of GPU `gpu`'s MIG layout.
pub fn node_mig_layout_key(gpu: u8) -> String {
    format!("{}{gpu}", keys::NODE_MIG_LAYOUT_PREFIX)
}

/// The MIG layout of a GPU of a node view.
pub fn gpu_layout(n: &NodeView, gpu: u8) -> Vec<MigInstance> {
    n.gpus
        .get(gpu as usize)
        .map(|g| g.mig.iter().map(|s| s.instance).collect())
        .unwrap_or_default()
}

/// The node annotations that record every MIG layout of a node view (one per GPU that has one).
pub fn node_mig_annotations(n: &NodeView) -> Vec<(String, String)> {
    n.gpus
        .iter()
        .filter(|g| !g.mig.is_empty())
        .map(|g| {
            (
                node_mig_layout_key(g.index),
                layout_text(&gpu_layout(n, g.index), n.model),
            )
        })
        .collect()
}

/// The MIG layouts a node's annotations record, GPU → layout. Keys that are not a GPU index
/// and values not valid on `model` are errors (the caller notes them and ignores the key).
pub fn node_mig_layouts(
    annotations: Option<&BTreeMap<String, String>>,
    model: GpuModel,
) -> (BTreeMap<u8, Vec<MigInstance>>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (k, v) in annotations.into_iter().flatten() {
        let Some(gpu) = k.strip_prefix(keys::NODE_MIG_LAYOUT_PREFIX) else {
            continue;
        };
        match (gpu.parse::<u8>(), parse_layout(v, model)) {
            (Ok(gpu), Some(l)) => {
                out.insert(gpu, l);
            }
            _ => errors.push(format!(
                "annotation {k}={v:?} is not a MIG layout on {model}"
            )),
        }
    }
    (out, errors)
}

/// The node annotation changes (key → new value, `None`: remove) that record how a placement
/// changed its GPUs' MIG layouts: `before` holds each placed GPU's layout before
/// `ClusterState::apply`, `after` the node once applied (a reconfigured layout is written, a
/// stale layout that a non-MIG placement cleared is removed). Empty when nothing changed.
/// Swapping the two sides gives the patch that undoes it.
pub fn mig_layout_patch(
    model: GpuModel,
    before: &[(u8, Vec<MigInstance>)],
    after: &[(u8, Vec<MigInstance>)],
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for (gpu, old) in before {
        let new = after
            .iter()
            .find(|(g, _)| g == gpu)
            .map(|(_, l)| l.as_slice())
            .unwrap_or(&[]);
        if new != old.as_slice() {
            out.insert(
                node_mig_layout_key(*gpu),
                (!new.is_empty()).then(|| layout_text(new, model)),
            );
        }
    }
    out
}

/// The layouts of `gpus` on node view `n`, for [`mig_layout_patch`].
pub fn gpu_layouts(n: &NodeView, gpus: &[u8]) -> Vec<(u8, Vec<MigInstance>)> {
    gpus.iter().map(|&g| (g, gpu_layout(n, g))).collect()
}

/// The annotations that record a pod's allocation on a node with GPUs of `model`.
pub fn pod_annotations(pa: &PodAllocation, model: GpuModel) -> Vec<(&'static str, String)> {
    let a = &pa.alloc;
    let first = pa.gpus.first().copied().unwrap_or(0);
    let mut out = vec![
        (keys::WORKLOAD, a.workload.clone()),
        (keys::GPU_INDEX, first.to_string()),
        (keys::REPLICA, a.replica.to_string()),
        (keys::SHARE_PCT, a.share_pct.to_string()),
        (keys::MEMORY_GB, a.memory_gb.to_string()),
        (keys::CLASS, class_name(a.class)),
    ];
    if pa.gpus.len() > 1 {
        let list: Vec<String> = pa.gpus.iter().map(u8::to_string).collect();
        out.push((keys::GPU_INDICES, list.join(",")));
    }
    // The slice beyond index and share: its mode's annotations.
    out.extend(a.slice.spec().annotations(
        a.slice,
        &EncodeCtx {
            model,
            mig_layout: &pa.mig_layout,
            time_slice_replicas: pa.time_slice_replicas,
        },
    ));
    out
}

/// Reads a bound pod's allocation back (`None`: gpusched did not bind it). The pod's priority
/// is its own (`spec.priority`, else its annotation), as the engine saw it.
pub fn decode_pod(p: &Pod, model: GpuModel) -> Result<Option<PodAllocation>, String> {
    let Some((gpu, mut alloc)) = crate::view::allocation_from_pod(p)? else {
        return Ok(None);
    };
    let gpus = crate::view::gpu_indices_from_pod(p, gpu)?;
    let d = crate::slices::decode(&p.metadata, model)?;
    if let Some(slice) = d.slice {
        alloc.slice = slice;
    }
    Ok(Some(PodAllocation {
        gpus,
        alloc,
        mig_layout: d.layout,
        time_slice_replicas: d.replicas,
    }))
}

/// Every allocation of a node as the pods that hold them, in replica order (a tensor-parallel
/// pod once, with all its GPUs).
pub fn pods_of_node(n: &NodeView) -> Vec<PodAllocation> {
    let mut by_replica: BTreeMap<(u64, String), PodAllocation> = BTreeMap::new();
    for g in &n.gpus {
        for a in &g.allocations {
            let e = by_replica
                .entry((a.replica, a.workload.clone()))
                .or_insert_with(|| PodAllocation {
                    gpus: Vec::new(),
                    alloc: a.clone(),
                    mig_layout: match a.slice {
                        AllocSlice::Mig { .. } => g.mig.iter().map(|s| s.instance).collect(),
                        _ => Vec::new(),
                    },
                    time_slice_replicas: match g.mode {
                        SharingMode::TimeSlicing { replicas } => Some(replicas),
                        _ => None,
                    },
                });
            e.gpus.push(g.index);
        }
    }
    by_replica.into_values().collect()
}

/// Every pod of the state, with the node it is bound to.
pub fn pods_of_state(s: &ClusterState) -> Vec<(String, PodAllocation)> {
    s.iter()
        .flat_map(|n| {
            pods_of_node(n)
                .into_iter()
                .map(move |pa| (n.name.clone(), pa))
        })
        .collect()
}

/// The node label that selects the node's device-plugin config (`None` for the plugin's
/// default, which has no label).
pub fn node_sharing_label(s: NodeSharing) -> Option<(&'static str, String)> {
    (s != NodeSharing::Unset).then(|| (keys::DEVICE_PLUGIN_CONFIG, s.config_key()))
}

/// The node's sharing config from its labels (no label or an unknown one: the default).
pub fn node_sharing(labels: Option<&BTreeMap<String, String>>) -> NodeSharing {
    labels
        .and_then(|l| l.get(keys::DEVICE_PLUGIN_CONFIG))
        .and_then(|v| NodeSharing::from_config_key(v))
        .unwrap_or_default()
}

/// The ConfigMap entry (key, device-plugin YAML) a config change writes.
pub fn config_map_entry(c: &NodeConfigChange) -> (String, String) {
    (c.label.clone(), c.device_plugin_config.clone())
}

/// Writes the annotations onto `meta` (a pod being bound).
pub fn annotate(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    pairs: &[(&'static str, String)],
) {
    let a = meta.annotations.get_or_insert_default();
    for (k, v) in pairs {
        a.insert((*k).to_string(), v.clone());
    }
}
