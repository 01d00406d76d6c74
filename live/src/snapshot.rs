//! `gpusched live snapshot`: the live cluster as a scenario file that `gpusched run` accepts, so a
//! user can simulate their own cluster.
//!
//! What maps directly: GPU nodes → `[[pools]]` (grouped by pool label or model, and GPU count),
//! cordons and measured utilisation of nodes without gpusched pods → `[[node_state]]`, gpusched
//! workloads → `[[services]]` (memory, priority, kind, SLA, required models, share; their pod count
//! as `initial_replicas`). What the API cannot tell and the file marks as placeholders: traffic
//! (a Poisson rate) and request service times (`gpusched.io/service-time-ms` if the pods carry
//! it). The scenario names nodes `<pool>-<n>`; the header lists which real node each one is.
//! The result is loaded back through the simulator's own loader before it is returned.

use crate::keys;
use crate::view::{annotation, build_view, workload_from_pod, ViewOptions};
use gpusched_policies::EngineConfig;
use gpusched_scenario::scenario::{
    Costs, NodeStateSpec, PoolSpec, Scenario, ServiceSpec, TrafficSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the cluster has no GPU node gpusched knows (labels nvidia.com/gpu.product and nvidia.com/gpu.count, from GPU Feature Discovery)")]
    NoGpuNodes,
    #[error("writing the scenario as TOML: {0}")]
    Toml(String),
    #[error("the written scenario does not load back (a bug): {0}")]
    Reload(String),
}

pub const PLACEHOLDER_SERVICE_TIME_MS: f64 = 30.0;
pub const PLACEHOLDER_QPS: f64 = 10.0;

pub struct Snapshot {
    pub toml: String,
    pub scenario: Scenario,
    pub notes: Vec<String>,
}

/// Why `w` can never be placed on `nodes` (the simulator loader's check: some GPU model of the
/// cluster that the workload accepts must hold its model), or `None`.
fn fits_nowhere(
    w: &gpusched_policies::WorkloadSpec,
    nodes: &[gpusched_policies::NodeView],
    catalog: &gpusched_policies::GpuCatalog,
) -> Option<String> {
    let candidates: Vec<gpusched_policies::GpuModel> = nodes
        .iter()
        .map(|n| n.model)
        .filter(|m| w.required_gpu_models.is_empty() || w.required_gpu_models.contains(m))
        .collect();
    if candidates.is_empty() {
        let req: Vec<&str> = w.required_gpu_models.iter().map(|m| m.as_str()).collect();
        return Some(format!(
            "requires GPU models [{}] that no node has",
            req.join(", ")
        ));
    }
    let largest = candidates
        .iter()
        .map(|m| catalog.spec(*m).memory_gb)
        .fold(0.0, f64::max);
    (largest + 1e-9 < w.model_memory_gb).then(|| {
        format!(
            "needs {} GB of GPU memory; the largest GPU it may use has {largest} GB",
            w.model_memory_gb
        )
    })
}

/// Builds the scenario. `managed` limits services to gpusched pods in those namespaces.
pub fn snapshot(
    name: &str,
    nodes: &[Node],
    pods: &[Pod],
    plugin_config: Option<&ConfigMap>,
    engine: &EngineConfig,
    now_unix_s: f64,
) -> Result<Snapshot, SnapshotError> {
    let opts = ViewOptions::default();
    let view = build_view(nodes, pods, &opts, now_unix_s);
    if view.nodes.is_empty() {
        return Err(SnapshotError::NoGpuNodes);
    }
    let mut notes = view.notes.clone();
    // Pools: (pool, model, gpus per node), in view order.
    let mut pools: Vec<PoolSpec> = Vec::new();
    let mut mapping: Vec<(String, String)> = Vec::new();
    let mut node_state = Vec::new();
    for n in &view.nodes {
        let gpus = n.gpus.len() as u8;
        let mut pool_name = n.pool.clone();
        if pools
            .iter()
            .any(|p| p.name == pool_name && (p.gpu_model != n.model || p.gpus_per_node != gpus))
        {
            pool_name = format!("{}-{}gpu", n.pool, gpus);
        }
        let idx = match pools.iter().position(|p| p.name == pool_name) {
            Some(i) => i,
            None => {
                pools.push(PoolSpec {
                    name: pool_name.clone(),
                    gpu_model: n.model,
                    nodes: 0,
                    gpus_per_node: gpus,
                    sharing: None,
                    mig_layout: Vec::new(),
                });
                pools.len() - 1
            }
        };
        pools[idx].nodes += 1;
        let sim_name = format!("{}-{}", pool_name, pools[idx].nodes);
        mapping.push((sim_name.clone(), n.name.clone()));
        let ours = n.gpus.iter().any(|g| {
            g.allocations
                .iter()
                .any(|a| !a.workload.starts_with("foreign:"))
        });
        let background = if ours { 0.0 } else { n.utilisation() };
        if n.cordoned || background > 0.0 {
            node_state.push(NodeStateSpec {
                node: sim_name,
                background_utilisation: (background * 1000.0).round() / 1000.0,
                cordoned: n.cordoned,
            });
        }
    }
    // Services: gpusched pods (bound or pending), grouped by workload.
    let mut services: BTreeMap<String, ServiceSpec> = BTreeMap::new();
    for p in pods {
        if p.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()) != Some(keys::SCHEDULER_NAME)
            || !crate::view::pod_is_active(p)
        {
            continue;
        }
        let w = match workload_from_pod(p) {
            Ok(w) => w,
            Err(e) => {
                notes.push(format!("{e}; left out"));
                continue;
            }
        };
        // A pod that fits no GPU of this cluster (too big, or a model it lacks) waits forever
        // in the cluster too; the simulator's loader refuses such a service, so it is noted and
        // left out rather than failing the whole snapshot.
        if let Some(why) = fits_nowhere(&w, &view.nodes, &opts.catalog) {
            notes.push(format!(
                "pod {}/{} (workload {}): {why}; it stays pending in the cluster and is left out of the scenario",
                p.metadata.namespace.as_deref().unwrap_or(""),
                p.metadata.name.as_deref().unwrap_or(""),
                w.name
            ));
            continue;
        }
        let svc = services
            .entry(w.name.clone())
            .or_insert_with(|| ServiceSpec {
                name: w.name.clone(),
                model_memory_gb: w.model_memory_gb,
                model: None,
                dtype: Default::default(),
                serving: None,
                slo: None,
                priority: w.priority,
                latency_sla_ms: w.latency_sla_ms,
                sla_per_output_token_ms: None,
                kind: w.kind,
                required_gpu_models: w.required_gpu_models.clone(),
                share_pct: w.share_pct,
                namespace: w.namespace.clone(),
                opt_out: w.opt_out,
                priority_class: w.priority_class,
                sharing_mode: None,
                start_at_s: 0.0,
                model_params_b: None,
                traffic_weight: 1.0,
                traffic: None,
                service_time_ms: annotation(&p.metadata, keys::SERVICE_TIME_MS)
                    .and_then(|v| v.parse().ok())
                    .filter(|v: &f64| *v > 0.0)
                    .unwrap_or(PLACEHOLDER_SERVICE_TIME_MS),
                service_time_cv: 0.5,
                concurrency: 4,
                startup_s: 30.0,
                initial_replicas: 0,
                min_replicas: 1,
                max_replicas: 16,
                queue_timeout_s: 30.0,
                max_queue: 10_000,
                tensor_parallel: w.gpus,
            });
        svc.initial_replicas += 1;
        svc.max_replicas = svc.max_replicas.max(svc.initial_replicas);
    }
    let mut services: Vec<ServiceSpec> = services.into_values().collect();
    if services.is_empty() {
        notes.push(
            "no gpusched workload runs yet: a placeholder service `example` stands in; edit it"
                .into(),
        );
        services.push(ServiceSpec {
            name: "example".into(),
            model_memory_gb: 8.0,
            model: None,
            dtype: Default::default(),
            serving: None,
            slo: None,
            priority: Default::default(),
            latency_sla_ms: None,
            sla_per_output_token_ms: None,
            kind: Default::default(),
            required_gpu_models: vec![],
            share_pct: None,
            namespace: None,
            opt_out: false,
            priority_class: None,
            sharing_mode: None,
            start_at_s: 0.0,
            model_params_b: None,
            traffic_weight: 1.0,
            traffic: None,
            service_time_ms: PLACEHOLDER_SERVICE_TIME_MS,
            service_time_cv: 0.5,
            concurrency: 4,
            startup_s: 30.0,
            initial_replicas: 1,
            min_replicas: 1,
            max_replicas: 16,
            queue_timeout_s: 30.0,
            max_queue: 10_000,
            tensor_parallel: 1,
        });
    }
    let scenario = Scenario {
        name: name.to_string(),
        description: format!(
            "Snapshot of a live cluster: {} GPU nodes, {} services",
            view.nodes.len(),
            services.len()
        ),
        seed: 42,
        duration_h: Some(1.0),
        duration_s: None,
        tick_s: 30.0,
        disruption: Default::default(),
        reconfig: None,
        pools_from: None,
        skip_bad_rows: false,
        variants: Vec::new(),
        record_matrix: true,
        engine: engine.clone(),
        autoscaler: Default::default(),
        perf: Default::default(),
        costs: Costs::default(),
        gpu_models: Default::default(),
        pools,
        traffic: Some(TrafficSpec::Poisson {
            qps: PLACEHOLDER_QPS,
        }),
        services,
        node_state,
    };
    let body = toml::to_string(&scenario).map_err(|e| SnapshotError::Toml(e.to_string()))?;
    let mut header = String::from(
        "# Written by `gpusched live snapshot`. Placeholders to edit before trusting a run:\n",
    );
    header.push_str(&format!("# - [traffic]: Poisson {PLACEHOLDER_QPS} QPS (the API server does not know your traffic)\n"));
    header.push_str(&format!(
        "# - services' service_time_ms: {PLACEHOLDER_SERVICE_TIME_MS} ms unless pods carry {}\n",
        keys::SERVICE_TIME_MS
    ));
    header.push_str("# Scenario node -> live node:\n");
    for (s, l) in &mapping {
        header.push_str(&format!("#   {s} = {l}\n"));
    }
    if let Some(cm) = plugin_config {
        header.push_str("# Device plugin config entries in force (the simulator models sharing from the engine's plans):\n");
        for (k, v) in cm.data.iter().flatten() {
            header.push_str(&format!(
                "#   {k}: {}\n",
                v.replace('\n', " ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    for n in &notes {
        header.push_str(&format!("# note: {n}\n"));
    }
    let toml = format!("{header}\n{body}");
    gpusched_scenario::scenario::load_str(&toml, "<snapshot>", std::path::PathBuf::from("."), &[])
        .map_err(|e| SnapshotError::Reload(e.to_string()))?;
    Ok(Snapshot {
        toml,
        scenario,
        notes,
    })
}
