//! The cluster view from Kubernetes objects: a pure function of Nodes and Pods (plus the clock,
//! passed in) that builds exactly the [`NodeView`]s the simulator keeps, so the engine decides
//! from the same picture in both worlds (the conformance test checks this).
//!
//! * A GPU node is one with GFD's labels `nvidia.com/gpu.product` (model) and `nvidia.com/gpu.count`
//!   (falling back to the `nvidia.com/gpu` capacity divided by `nvidia.com/gpu.replicas`).
//!   Nodes with an unknown GPU model are left out with a note.
//! * GPU memory is the catalog's figure for the model (as in the simulator), not NVML's MiB: the
//!   engine's fit rules are written against the nominal size.
//! * Allocations come from pods gpusched bound (annotations `gpusched.io/gpu-index`, `share-pct`,
//!   `memory-gb`, `replica`, `class`, `workload`). Pods that use `nvidia.com/gpu` without gpusched
//!   (another scheduler) occupy whole GPUs: the view gives them the first free GPUs exclusively,
//!   because it cannot know which device the plugin handed them.
//! * Utilisation comes from the agent's `gpusched.io/gpu-metrics` annotation; a summary older than
//!   `metrics_max_age_s` is ignored (utilisation 0) and noted.
//! * Node order (the engine's ordinal, used by FirstFit and tie-breaks) is natural name order
//!   (`a100-2` before `a100-10`), which is stable across controller restarts.

use crate::keys;
use crate::nvml::NodeSummary;
use gpusched_policies::cluster::ClusterState;
use gpusched_policies::gpu::{GpuCatalog, GpuModel};
use gpusched_policies::view::{AllocSlice, MigSlot};
use gpusched_policies::view::{AllocationView, NodeView};
use gpusched_policies::workload::{Priority, SizeClass, WorkloadKind, WorkloadSpec};
use k8s_openapi::api::core::v1::{Node, Pod};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct ViewOptions {
    pub catalog: GpuCatalog,
    /// Agent summaries older than this are ignored, seconds (the agent publishes every 30 s).
    pub metrics_max_age_s: f64,
}

impl Default for ViewOptions {
    fn default() -> Self {
        Self {
            catalog: GpuCatalog::default(),
            metrics_max_age_s: 120.0,
        }
    }
}

/// The view plus what the builder had to leave out or guess, for the log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveView {
    /// The engine crate's cluster state, as the simulator keeps it: the controller assumes its
    /// bindings into it with `ClusterState::apply`.
    pub nodes: ClusterState,
    pub notes: Vec<String>,
}

/// Maps GFD's product label (e.g. `NVIDIA-H100-80GB-HBM3`, `NVIDIA-A100-SXM4-40GB`, with a
/// `-SHARED` suffix under time-slicing/MPS) and memory label (MiB) to a model gpusched knows.
pub fn gpu_model_from_labels(product: &str, memory_mib: Option<u64>) -> Option<GpuModel> {
    let p = product.to_ascii_uppercase();
    if p.contains("H100") {
        return Some(GpuModel::H100_80GB);
    }
    if p.contains("A100") {
        let big = p.contains("80GB") || memory_mib.is_some_and(|m| m > 60_000);
        return Some(if big {
            GpuModel::A100_80GB
        } else {
            GpuModel::A100_40GB
        });
    }
    None
}

fn label<'a>(n: &'a Node, key: &str) -> Option<&'a str> {
    n.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

pub fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Whole GPUs on a node: GFD's count, else capacity / replicas.
pub fn gpu_count(n: &Node) -> Option<u8> {
    if let Some(c) = label(n, keys::GPU_COUNT).and_then(|v| v.parse::<u8>().ok()) {
        return Some(c);
    }
    let cap = n
        .status
        .as_ref()?
        .capacity
        .as_ref()?
        .get(keys::GPU_RESOURCE)?
        .0
        .parse::<u32>()
        .ok()?;
    let replicas = label(n, keys::GPU_REPLICAS)
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    u8::try_from(cap / replicas).ok()
}

/// Natural order: digit runs compare as numbers.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let d = c.is_ascii_digit();
            match out.last_mut() {
                Some((ld, buf)) if *ld == d => buf.push(c),
                _ => out.push((d, c.to_string())),
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let o = match (x.0, y.0) {
            (true, true) => {
                let (xs, ys) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
                xs.len().cmp(&ys.len()).then_with(|| xs.cmp(ys))
            }
            _ => x.1.cmp(&y.1),
        };
        if o.is_ne() {
            return o;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// Is this pod holding (or about to hold) resources on its node?
pub fn pod_is_active(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed"))
}

/// Whole GPUs a pod asks for (`nvidia.com/gpu` limits, else requests, summed over containers).
pub fn pod_gpu_request(p: &Pod) -> u32 {
    let Some(spec) = &p.spec else { return 0 };
    spec.containers
        .iter()
        .map(|c| {
            let r = c.resources.as_ref();
            r.and_then(|r| r.limits.as_ref())
                .and_then(|l| l.get(keys::GPU_RESOURCE))
                .or_else(|| {
                    r.and_then(|r| r.requests.as_ref())
                        .and_then(|l| l.get(keys::GPU_RESOURCE))
                })
                .and_then(|q| q.0.parse::<u32>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// Reads the allocation annotations gpusched wrote when it bound the pod: its first GPU and
/// the allocation it holds on each of its GPUs ([`gpu_indices_from_pod`] lists them all).
pub fn allocation_from_pod(p: &Pod) -> Result<Option<(u8, AllocationView)>, String> {
    let m = &p.metadata;
    let Some(idx) = annotation(m, keys::GPU_INDEX) else {
        return Ok(None);
    };
    let name = m.name.clone().unwrap_or_default();
    let bad = |k: &str, v: &str| format!("pod {name}: annotation {k}={v:?} is not valid");
    let gpu: u8 = idx.parse().map_err(|_| bad(keys::GPU_INDEX, idx))?;
    gpu_indices_from_pod(p, gpu)?;
    let get =
        |k: &str| annotation(m, k).ok_or_else(|| format!("pod {name}: annotation {k} is missing"));
    let share = get(keys::SHARE_PCT)?;
    let share_pct: u8 = share
        .parse()
        .ok()
        .filter(|s| (1..=100).contains(s))
        .ok_or_else(|| bad(keys::SHARE_PCT, share))?;
    let mem = get(keys::MEMORY_GB)?;
    let memory_gb: f64 = mem
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| bad(keys::MEMORY_GB, mem))?;
    let rep = get(keys::REPLICA)?;
    let replica: u64 = rep.parse().map_err(|_| bad(keys::REPLICA, rep))?;
    let cls = get(keys::CLASS)?;
    let class: SizeClass = serde_json::from_value(serde_json::Value::String(cls.to_string()))
        .map_err(|_| bad(keys::CLASS, cls))?;
    Ok(Some((
        gpu,
        AllocationView {
            workload: workload_name(p),
            replica,
            class,
            share_pct,
            memory_gb,
            slice: if share_pct >= 100 {
                AllocSlice::Whole
            } else {
                AllocSlice::Mps { pct: share_pct }
            },
            // The same value the engine gave the workload (pod priority, else its annotation).
            priority_class: workload_from_pod(p)
                .map(|w| w.priority_class_value())
                .unwrap_or(500),
        },
    )))
}

/// Every GPU a bound pod holds: `gpusched.io/gpu-indices` for a tensor-parallel pod (it must
/// list `first`, the `gpu-index`, first, ascending, without repeats), else just `first`.
pub fn gpu_indices_from_pod(p: &Pod, first: u8) -> Result<Vec<u8>, String> {
    let Some(raw) = annotation(&p.metadata, keys::GPU_INDICES) else {
        return Ok(vec![first]);
    };
    let name = p.metadata.name.as_deref().unwrap_or("");
    let bad = || {
        format!(
            "pod {name}: annotation {}={raw:?} is not valid: ascending GPU indices starting with {}={first}",
            keys::GPU_INDICES,
            keys::GPU_INDEX
        )
    };
    let list: Vec<u8> = raw
        .split(',')
        .map(|s| s.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    if list.first() != Some(&first) || list.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad());
    }
    Ok(list)
}

/// The workload a pod belongs to: `gpusched.io/workload`, else the usual app labels, else its name.
pub fn workload_name(p: &Pod) -> String {
    let m = &p.metadata;
    if let Some(w) = annotation(m, keys::WORKLOAD) {
        return w.to_string();
    }
    let labels = m.labels.as_ref();
    for k in ["app.kubernetes.io/name", "app"] {
        if let Some(v) = labels.and_then(|l| l.get(k)) {
            return v.clone();
        }
    }
    m.name.clone().unwrap_or_default()
}

fn enum_from_str<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_string())).ok()
}

/// PreFilter input from a pending pod's annotations. `gpusched.io/model-memory-gb` is required:
/// without it gpusched cannot classify the pod, and guessing would place it wrongly.
pub fn workload_from_pod(p: &Pod) -> Result<WorkloadSpec, String> {
    let m = &p.metadata;
    let name = m.name.clone().unwrap_or_default();
    let bad =
        |k: &str, v: &str, allowed: &str| format!("pod {name}: annotation {k}={v:?}: {allowed}");
    let mem = annotation(m, keys::MODEL_MEMORY_GB).ok_or_else(|| {
        format!(
            "pod {name}: annotation {} (model memory, GB) is required for schedulerName gpusched",
            keys::MODEL_MEMORY_GB
        )
    })?;
    let model_memory_gb: f64 = mem
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| bad(keys::MODEL_MEMORY_GB, mem, "a positive number of GB"))?;
    // `nvidia.com/gpu: N` with N > 1 is a tensor-parallel replica: N whole GPUs of one node
    // (the engine refuses it under a sharing mode that slices one GPU, with the reason).
    let gpus = pod_gpu_request(p).max(1);
    let priority = match annotation(m, keys::PRIORITY) {
        None => Priority::default(),
        Some(v) => enum_from_str(v).ok_or_else(|| bad(keys::PRIORITY, v, "low, medium or high"))?,
    };
    let kind = match annotation(m, keys::KIND) {
        None => WorkloadKind::default(),
        Some(v) => enum_from_str(v)
            .ok_or_else(|| bad(keys::KIND, v, "inference, batch, training or development"))?,
    };
    let latency_sla_ms = match annotation(m, keys::LATENCY_SLA_MS) {
        None => None,
        Some(v) => Some(
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| bad(keys::LATENCY_SLA_MS, v, "a positive number of ms"))?,
        ),
    };
    let share_pct = match annotation(m, keys::SHARE_PCT) {
        None => None,
        Some(v) => Some(
            v.parse::<u8>()
                .ok()
                .filter(|s| (1..=100).contains(s))
                .ok_or_else(|| bad(keys::SHARE_PCT, v, "1..=100"))?,
        ),
    };
    let required_gpu_models = match annotation(m, keys::REQUIRED_GPU_MODELS) {
        None => vec![],
        Some(v) => v
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                enum_from_str::<GpuModel>(s).ok_or_else(|| {
                    bad(
                        keys::REQUIRED_GPU_MODELS,
                        v,
                        "comma-separated H100-80GB, A100-40GB, A100-80GB",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(WorkloadSpec {
        name: workload_name(p),
        model_memory_gb,
        priority,
        latency_sla_ms,
        kind,
        required_gpu_models,
        share_pct,
        namespace: p.metadata.namespace.clone(),
        opt_out: false,
        priority_class: p.spec.as_ref().and_then(|s| s.priority),
        sharing_mode: None,
        gpus,
    })
}

/// Sets a GPU's derived fields from its allocations, as the simulator keeps them: totals, which
/// MIG slot each MIG allocation holds, and the mode (`ts_replicas`: the GPU's time-slicing
/// replicas, from its pods' annotations or the node's config).
fn settle(g: &mut gpusched_policies::view::GpuView, ts_replicas: Option<u8>) {
    g.allocations.sort_by(|a, b| {
        a.replica
            .cmp(&b.replica)
            .then_with(|| a.workload.cmp(&b.workload))
    });
    g.memory_allocated_gb = g.allocations.iter().map(|a| a.memory_gb).sum();
    g.share_allocated_pct = g.allocations.iter().map(|a| a.share_pct as u16).sum();
    for slot in &mut g.mig {
        slot.replica = None;
    }
    for a in &g.allocations {
        if let AllocSlice::Mig { instance } = a.slice {
            if let Some(slot) = g
                .mig
                .iter_mut()
                .find(|s| s.instance == instance && s.replica.is_none())
            {
                slot.replica = Some(a.replica);
            }
        }
    }
    // Each allocation's mode says what the GPU runs (MIG over time-slicing over MPS).
    g.mode = gpusched_policies::modes::rebuilt_gpu_mode(g, ts_replicas);
}

/// Builds the engine's view. `now_unix_s` is the caller's clock (pure: tests pass any time).
pub fn build_view(nodes: &[Node], pods: &[Pod], opts: &ViewOptions, now_unix_s: f64) -> LiveView {
    let mut notes = Vec::new();
    let mut gpu_nodes: Vec<&Node> = Vec::new();
    for n in nodes {
        let name = n.metadata.name.as_deref().unwrap_or("");
        let Some(product) = label(n, keys::GPU_PRODUCT) else {
            if gpu_count(n).unwrap_or(0) > 0 {
                notes.push(format!(
                    "node {name}: advertises {} but has no {} label (GPU Feature Discovery); left out",
                    keys::GPU_RESOURCE,
                    keys::GPU_PRODUCT
                ));
            }
            continue;
        };
        if gpu_count(n).unwrap_or(0) == 0 {
            notes.push(format!(
                "node {name}: {product} but no GPU count ({} label or capacity)",
                keys::GPU_COUNT
            ));
            continue;
        }
        gpu_nodes.push(n);
    }
    gpu_nodes.sort_by(|a, b| {
        natural_cmp(
            a.metadata.name.as_deref().unwrap_or(""),
            b.metadata.name.as_deref().unwrap_or(""),
        )
    });
    let mut views: Vec<NodeView> = Vec::new();
    for n in gpu_nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        let product = label(n, keys::GPU_PRODUCT).unwrap_or("");
        let mem_mib = label(n, keys::GPU_MEMORY_MIB).and_then(|v| v.parse().ok());
        let Some(model) = gpu_model_from_labels(product, mem_mib) else {
            notes.push(format!(
                "node {name}: GPU product {product:?} is not a model gpusched knows; left out"
            ));
            continue;
        };
        let count = gpu_count(n).unwrap_or(0);
        let pool = label(n, keys::POOL)
            .map(str::to_string)
            .unwrap_or_else(|| model.as_str().to_ascii_lowercase());
        let mut v = NodeView::new(
            name.clone(),
            views.len() as u32,
            pool,
            model,
            count,
            opts.catalog.spec(model).memory_gb,
        );
        v.sharing = label(n, keys::DEVICE_PLUGIN_CONFIG)
            .and_then(gpusched_policies::sharing::NodeSharing::from_config_key)
            .unwrap_or_default();
        v.cordoned = n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        // Each GPU's MIG layout as the node records it (kept while the GPU is empty); a bound
        // pod's own layout annotation, below, is at least as recent and wins.
        let (layouts, errors) =
            crate::codec::node_mig_layouts(n.metadata.annotations.as_ref(), model);
        for e in errors {
            notes.push(format!("node {name}: {e}; ignored"));
        }
        for (gpu, layout) in layouts {
            match v.gpus.get_mut(gpu as usize) {
                Some(g) => {
                    g.mig = layout
                        .into_iter()
                        .map(|instance| MigSlot {
                            instance,
                            replica: None,
                        })
                        .collect();
                }
                None => notes.push(format!(
                    "node {name}: MIG layout recorded for GPU {gpu}, which it does not have; ignored"
                )),
            }
        }
        if let Some(raw) = annotation(&n.metadata, keys::GPU_METRICS) {
            match serde_json::from_str::<NodeSummary>(raw) {
                Ok(s) if now_unix_s - s.t <= opts.metrics_max_age_s => {
                    for gs in &s.gpus {
                        if let (Some(g), Some(u)) = (v.gpus.get_mut(gs.i as usize), gs.util) {
                            g.utilisation = u.clamp(0.0, 1.0);
                        }
                    }
                }
                Ok(s) => notes.push(format!(
                    "node {name}: GPU metrics are {:.0} s old; utilisation taken as 0",
                    now_unix_s - s.t
                )),
                Err(e) => notes.push(format!(
                    "node {name}: annotation {} is not valid: {e}",
                    keys::GPU_METRICS
                )),
            }
        }
        views.push(v);
    }
    let index: BTreeMap<String, usize> = views
        .iter()
        .enumerate()
        .map(|(i, v)| (v.name.clone(), i))
        .collect();
    // gpusched's own pods first, so foreign pods take whatever GPUs are left.
    let mut foreign: Vec<(&Pod, usize, u32)> = Vec::new();
    let mut ts_replicas: BTreeMap<(usize, u8), u8> = BTreeMap::new();
    // GPUs whose layout a pod's annotation already set (the first pod's stands).
    let mut pod_layout_set: std::collections::BTreeSet<(usize, u8)> = Default::default();
    for p in pods {
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        let Some(&ni) = index.get(node) else { continue };
        if !pod_is_active(p) {
            continue;
        }
        let model = views[ni].model;
        // Every GPU the pod holds (N for tensor parallelism), and the MIG instance /
        // time-slice weight, through the one codec.
        match crate::codec::decode_pod(p, model) {
            Ok(Some(crate::codec::PodAllocation {
                gpus,
                alloc: a,
                mig_layout,
                time_slice_replicas,
            })) => {
                // A tensor-parallel pod holds the same allocation on each of its GPUs.
                for gpu in gpus {
                    match views[ni].gpus.get_mut(gpu as usize) {
                        Some(g) => {
                            if !mig_layout.is_empty() && pod_layout_set.insert((ni, gpu)) {
                                g.mig = mig_layout
                                    .iter()
                                    .map(|&instance| MigSlot {
                                        instance,
                                        replica: None,
                                    })
                                    .collect();
                            }
                            if let Some(r) = time_slice_replicas {
                                ts_replicas.insert((ni, gpu), r);
                            }
                            g.allocations.push(a.clone())
                        }
                        None => notes.push(format!(
                            "pod {}: GPU index {gpu} does not exist on node {node}",
                            p.metadata.name.as_deref().unwrap_or("")
                        )),
                    }
                }
            }
            Ok(None) => {
                let n = pod_gpu_request(p);
                if n > 0 {
                    foreign.push((p, ni, n));
                }
            }
            Err(e) => {
                notes.push(format!("{e}; counted as a whole-GPU pod"));
                foreign.push((p, ni, pod_gpu_request(p).max(1)));
            }
        }
    }
    foreign.sort_by(|a, b| {
        let key = |p: &Pod| {
            (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            )
        };
        key(a.0).cmp(&key(b.0))
    });
    for (p, ni, n) in foreign {
        let who = format!(
            "{}/{}",
            p.metadata.namespace.as_deref().unwrap_or(""),
            p.metadata.name.as_deref().unwrap_or("")
        );
        let mut left = n;
        for g in views[ni]
            .gpus
            .iter_mut()
            .filter(|g| g.allocations.is_empty())
        {
            if left == 0 {
                break;
            }
            g.allocations.push(AllocationView {
                workload: format!("foreign:{who}"),
                replica: 0,
                class: SizeClass::Large,
                share_pct: 100,
                memory_gb: g.memory_total_gb,
                slice: AllocSlice::Whole,
                // Not ours to evict.
                priority_class: i32::MAX,
            });
            left -= 1;
        }
        if left > 0 {
            notes.push(format!(
                "pod {who}: uses {n} GPU(s) on {} but only {} were free in the view",
                views[ni].name,
                n - left
            ));
        }
    }
    for (ni, v) in views.iter_mut().enumerate() {
        let node_replicas = match v.sharing {
            gpusched_policies::sharing::NodeSharing::TimeSlicing { replicas } => Some(replicas),
            _ => None,
        };
        for g in &mut v.gpus {
            settle(
                g,
                ts_replicas.get(&(ni, g.index)).copied().or(node_replicas),
            );
        }
        // A node without the config label serves the plugin's default, one pod per GPU. Once it
        // runs GPU pods that is its config (the simulator records it at the first placement),
        // so no sharing change is planned under them.
        if v.sharing == gpusched_policies::sharing::NodeSharing::Unset && !v.is_empty() {
            v.sharing = gpusched_policies::sharing::NodeSharing::Exclusive;
        }
    }
    LiveView {
        nodes: ClusterState::new(views),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{gpu_node, gpusched_pod, pending_pod};
    use gpusched_policies::view::SharingMode;

    #[test]
    fn gfd_product_labels_map_to_models() {
        assert_eq!(
            gpu_model_from_labels("NVIDIA-H100-80GB-HBM3", Some(81559)),
            Some(GpuModel::H100_80GB)
        );
        assert_eq!(
            gpu_model_from_labels("NVIDIA-A100-SXM4-40GB", Some(40960)),
            Some(GpuModel::A100_40GB)
        );
        assert_eq!(
            gpu_model_from_labels("NVIDIA-A100-SXM4-80GB-SHARED", None),
            Some(GpuModel::A100_80GB)
        );
        assert_eq!(
            gpu_model_from_labels("NVIDIA-A100-PCIE", Some(81920)),
            Some(GpuModel::A100_80GB)
        );
        assert_eq!(gpu_model_from_labels("Tesla-T4", Some(15360)), None);
    }

    #[test]
    fn a_pod_asking_for_several_gpus_is_a_tensor_parallel_workload() {
        use k8s_openapi::api::core::v1::ResourceRequirements;
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let mut p = pending_pod("ml", "multi", 80.0);
        p.spec.as_mut().unwrap().containers[0].resources = Some(ResourceRequirements {
            limits: Some([(keys::GPU_RESOURCE.to_string(), Quantity("2".into()))].into()),
            ..Default::default()
        });
        let w = workload_from_pod(&p).unwrap();
        assert_eq!((w.gpus, w.memory_per_gpu_gb()), (2, 40.0));
        p.spec.as_mut().unwrap().containers[0].resources = Some(ResourceRequirements {
            limits: Some([(keys::GPU_RESOURCE.to_string(), Quantity("1".into()))].into()),
            ..Default::default()
        });
        assert_eq!(workload_from_pod(&p).unwrap().gpus, 1);
        p.spec.as_mut().unwrap().containers[0].resources = None;
        assert_eq!(
            workload_from_pod(&p).unwrap().gpus,
            1,
            "no limit: one GPU or a share"
        );
    }

    #[test]
    fn a_gpu_node_without_gfd_labels_is_left_out_with_a_note() {
        let mut n = gpu_node("gpu-9", "NVIDIA-H100-80GB-HBM3", 8);
        n.metadata.labels = None;
        let cpu = gpu_node("cpu-1", "x", 0);
        let mut cpu_only = cpu.clone();
        cpu_only.metadata.labels = None;
        cpu_only.status = None;
        let v = build_view(&[n, cpu_only], &[], &ViewOptions::default(), 0.0);
        assert!(v.nodes.is_empty());
        assert_eq!(v.notes.len(), 1, "{:?}", v.notes);
        assert!(v.notes[0].contains("gpu-9") && v.notes[0].contains(keys::GPU_PRODUCT));
    }

    #[test]
    fn a_nodes_mig_layout_record_is_read_per_gpu_and_bad_entries_are_noted() {
        let mut n = gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 2);
        n.metadata.annotations = Some(
            [
                // A100-40GB profile names (3g.20gb there is H100's 3g.40gb).
                ("gpusched.io/mig-layout.0", "3g.20gb@0,3g.20gb@4"),
                ("gpusched.io/mig-layout.1", "9g.1gb@0"),
                ("gpusched.io/mig-layout.7", "7g.40gb@0"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        );
        let v = build_view(std::slice::from_ref(&n), &[], &ViewOptions::default(), 0.0);
        let g0 = &v.nodes[0].gpus[0];
        assert_eq!(g0.mode, SharingMode::Mig, "an empty GPU with a layout");
        let text = crate::codec::layout_text(
            &g0.mig.iter().map(|s| s.instance).collect::<Vec<_>>(),
            GpuModel::A100_40GB,
        );
        assert_eq!(text, "3g.20gb@0,3g.20gb@4");
        assert!(g0.mig.iter().all(|s| s.replica.is_none()));
        assert!(v.nodes[0].gpus[1].mig.is_empty());
        assert_eq!(v.notes.len(), 2, "{:?}", v.notes);
        assert!(v.notes.iter().any(|t| t.contains("mig-layout.1")));
        assert!(v.notes.iter().any(|t| t.contains("GPU 7")));
        // The node's record is written back as it was read.
        assert_eq!(
            crate::codec::node_mig_annotations(&v.nodes[0]),
            vec![(
                "gpusched.io/mig-layout.0".to_string(),
                "3g.20gb@0,3g.20gb@4".to_string()
            )]
        );
    }

    #[test]
    fn natural_order_puts_2_before_10() {
        let mut v = vec!["a100-10", "h100-1", "a100-2", "a100-1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["a100-1", "a100-2", "a100-10", "h100-1"]);
    }

    #[test]
    fn view_from_nodes_pods_and_metrics() {
        let mut n1 = gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 1);
        n1.metadata.annotations = Some(
            [(
                keys::GPU_METRICS.to_string(),
                r#"{"t":1000,"gpus":[{"i":0,"util":0.4,"mem_used_mib":1,"mem_total_mib":40960}]}"#
                    .to_string(),
            )]
            .into(),
        );
        let mut n2 = gpu_node("h100-1", "NVIDIA-H100-80GB-HBM3", 1);
        n2.spec.get_or_insert_default().unschedulable = Some(true);
        let cpu = Node {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("cpu-1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let pods = vec![
            gpusched_pod("ml", "tiny-a", "chat-tiny", "a100-1", 0, 3, 25, 3.0, "tiny"),
            gpusched_pod("ml", "tiny-b", "chat-tiny", "a100-1", 0, 1, 25, 3.0, "tiny"),
            pending_pod("ml", "waiting", 8.0),
        ];
        let v = build_view(&[n2, cpu, n1], &pods, &ViewOptions::default(), 1030.0);
        assert_eq!(v.nodes.len(), 2);
        assert_eq!(v.nodes[0].name, "a100-1");
        assert_eq!(v.nodes[1].ordinal, 1);
        assert!(v.nodes[1].cordoned);
        let g = &v.nodes[0].gpus[0];
        assert_eq!(g.utilisation, 0.4);
        assert_eq!(g.memory_total_gb, 40.0);
        assert_eq!(g.share_allocated_pct, 50);
        assert_eq!(g.mode, SharingMode::Mps);
        assert_eq!(
            g.allocations[0].replica, 1,
            "allocations in replica (bind) order"
        );
        let stale = build_view(
            &[gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 1)],
            &[],
            &ViewOptions::default(),
            0.0,
        );
        assert!(stale.notes.is_empty());
    }

    #[test]
    fn foreign_gpu_pods_occupy_whole_gpus() {
        let n = gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 2);
        let mut p = pending_pod("other", "trainer", 1.0);
        p.metadata.annotations = None;
        p.spec.as_mut().unwrap().node_name = Some("a100-1".into());
        p.spec.as_mut().unwrap().containers[0].resources =
            Some(k8s_openapi::api::core::v1::ResourceRequirements {
                limits: Some(
                    [(
                        keys::GPU_RESOURCE.to_string(),
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
                    )]
                    .into(),
                ),
                ..Default::default()
            });
        let v = build_view(&[n], &[p], &ViewOptions::default(), 0.0);
        let gs = &v.nodes[0].gpus;
        assert_eq!(gs[0].mode, SharingMode::Exclusive);
        assert_eq!(gs[0].memory_allocated_gb, 40.0);
        assert!(gs[1].is_free());
    }

    #[test]
    fn workload_spec_from_annotations_and_bad_input() {
        let mut p = pending_pod("ml", "x", 8.0);
        let a = p.metadata.annotations.as_mut().unwrap();
        a.insert(keys::PRIORITY.into(), "high".into());
        a.insert(
            keys::REQUIRED_GPU_MODELS.into(),
            "H100-80GB, A100-80GB".into(),
        );
        let w = workload_from_pod(&p).unwrap();
        assert_eq!(w.priority, Priority::High);
        assert_eq!(
            w.required_gpu_models,
            vec![GpuModel::H100_80GB, GpuModel::A100_80GB]
        );
        p.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(keys::PRIORITY.into(), "urgent".into());
        assert!(workload_from_pod(&p)
            .unwrap_err()
            .contains("low, medium or high"));
        p.metadata.annotations = None;
        assert!(workload_from_pod(&p).unwrap_err().contains("is required"));
    }
}
