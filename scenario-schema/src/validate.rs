//! Semantic checks of a scenario that serde cannot make: ranges, references between sections,
//! files that must exist, and workloads that could never fit the cluster.

use crate::scenario::{LoadedScenario, ScenarioError, TrafficSpec};
use std::collections::BTreeSet;

pub fn validate(l: &LoadedScenario) -> Result<(), ScenarioError> {
    validate_semantics(l)?;
    // Sizes last: they assume the ranges above hold.
    crate::limits::check(l)?;
    catalog_consistent(l)
}

/// The overrides' error names the one `--set` that broke the scenario (applied in turn),
/// not the whole list a sweep point or a variant expanded to.
pub fn blame_override(text: &str, overrides: &[String], e: toml::de::Error) -> ScenarioError {
    let problem = e.to_string().trim_end().to_string();
    let mut table: toml::Table = toml::from_str(text).unwrap_or_default();
    for arg in overrides {
        if crate::scenario::apply_override(&mut table, arg).is_err() {
            break;
        }
        let ok: Result<crate::scenario::Scenario, _> = toml::Value::Table(table.clone()).try_into();
        if let Err(e) = ok {
            return ScenarioError::Override {
                arg: arg.clone(),
                problem: e.to_string().trim_end().to_string(),
            };
        }
    }
    ScenarioError::Override {
        arg: overrides.join(" "),
        problem,
    }
}

/// The GPU catalog after the scenario's overrides must describe a possible GPU: idle power
/// at most the TDP (the energy model interpolates between them).
fn catalog_consistent(l: &LoadedScenario) -> Result<(), ScenarioError> {
    for name in l.scenario.gpu_models.keys() {
        let Some(m) = crate::scenario::gpu_model_from_name(name) else {
            continue;
        };
        let s = l.catalog.spec(m);
        if s.idle_w > s.tdp_w {
            return Err(ScenarioError::Invalid {
                path: l.source.clone(),
                key: format!("gpu_models.\"{name}\".idle_w"),
                problem: format!(
                    "{} W is above the TDP of {} W; idle power must be at most tdp_w",
                    s.idle_w, s.tdp_w
                ),
            });
        }
    }
    Ok(())
}

fn validate_semantics(l: &LoadedScenario) -> Result<(), ScenarioError> {
    let s = &l.scenario;
    let bad = |key: String, problem: String| ScenarioError::Invalid {
        path: l.source.clone(),
        key,
        problem,
    };

    let duration = l.duration_s();
    match (s.duration_s, s.duration_h) {
        (None, None) => {
            return Err(bad(
                "duration_h".into(),
                "missing: give duration_h (hours) or duration_s (seconds)".into(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err(bad(
                "duration_s".into(),
                "give duration_h or duration_s, not both".into(),
            ))
        }
        _ => {}
    }
    if !(duration > 0.0 && duration.is_finite()) {
        return Err(bad(
            "duration".into(),
            format!("{duration} s must be a positive number"),
        ));
    }
    // Simulated time is integer microseconds: ten years is far inside u64 and far beyond any
    // capacity-planning horizon; past it a typo (hours for seconds) would run for ever.
    const MAX_DURATION_S: f64 = 10.0 * 365.0 * 86_400.0;
    if duration > MAX_DURATION_S {
        return Err(bad(
            "duration".into(),
            format!("{duration} s is more than the 10 years (315,360,000 s) gpusched simulates"),
        ));
    }
    if !(s.tick_s > 0.0 && s.tick_s.is_finite()) {
        return Err(bad(
            "tick_s".into(),
            format!("{} must be a positive number of seconds", s.tick_s),
        ));
    }
    // One timeseries row per tick is kept in memory and written out.
    const MAX_TICKS: f64 = 20_000_000.0;
    if duration / s.tick_s > MAX_TICKS {
        return Err(bad(
            "tick_s".into(),
            format!(
                "{} s gives {:.0} monitoring ticks over {duration} s; at most 20,000,000 (raise tick_s)",
                s.tick_s,
                duration / s.tick_s
            ),
        ));
    }
    s.engine.validate().map_err(|e| match e {
        gpusched_policies::config::ConfigError::Invalid { key, problem } => {
            bad(format!("engine.{key}"), problem)
        }
    })?;
    s.autoscaler
        .validate()
        .map_err(|e| bad("autoscaler".into(), e))?;
    s.perf.validate().map_err(|e| bad("perf".into(), e))?;
    for (k, v) in [
        ("disruption.plugin_restart_s", s.disruption.plugin_restart_s),
        (
            "disruption.mig_reconfigure_s",
            s.disruption.mig_reconfigure_s,
        ),
    ] {
        if !(v >= 0.0 && v.is_finite()) {
            return Err(bad(k.into(), format!("{v} must be >= 0")));
        }
    }
    if let Some(r) = &s.reconfig {
        let pools: Vec<String> = s.pools.iter().map(|p| p.name.clone()).collect();
        let nodes: Vec<String> = s
            .pools
            .iter()
            .flat_map(|p| (1..=p.nodes).map(move |i| format!("{}-{i}", p.name)))
            .collect();
        r.validate(&pools, &nodes).map_err(|(k, p)| bad(k, p))?;
        if s.engine.sharing != gpusched_policies::admission::SharingPolicy::TimeSlicing {
            return Err(bad(
                "reconfig".into(),
                "the rolled-out layout is time-slicing replicas: needs engine.sharing = \"time_slicing\"".into(),
            ));
        }
    }
    if !(s.costs.energy_usd_per_kwh >= 0.0) {
        return Err(bad(
            "costs.energy_usd_per_kwh".into(),
            "must be >= 0".into(),
        ));
    }

    if s.pools.is_empty() {
        return Err(bad(
            "pools".into(),
            "the cluster needs at least one [[pools]] entry".into(),
        ));
    }
    let mut pool_names = BTreeSet::new();
    for (i, p) in s.pools.iter().enumerate() {
        if !pool_names.insert(p.name.as_str()) {
            return Err(bad(
                format!("pools[{i}].name"),
                format!("`{}` is used by two pools", p.name),
            ));
        }
        if p.gpus_per_node == 0 {
            return Err(bad(
                format!("pools[{i}].gpus_per_node"),
                "must be at least 1".into(),
            ));
        }
        if !p.mig_layout.is_empty() {
            gpusched_policies::mig::layout_from_names(&p.mig_layout, p.gpu_model)
                .map_err(|e| bad(format!("pools[{i}].mig_layout"), e.to_string()))?;
        }
        use gpusched_policies::sharing::NodeSharing;
        if let Some(Err((field, problem))) = p.sharing.map(NodeSharing::validate) {
            return Err(bad(format!("pools[{i}].sharing.{field}"), problem));
        }
        if !p.mig_layout.is_empty() && p.sharing != Some(NodeSharing::Mig) {
            return Err(bad(
                format!("pools[{i}].mig_layout"),
                "a MIG layout needs `sharing = { config = \"mig\" }` on the pool (the device plugin's MPS does not run on MIG devices)".into(),
            ));
        }
    }
    if s.pools
        .iter()
        .map(|p| p.nodes as u64 * p.gpus_per_node as u64)
        .sum::<u64>()
        == 0
    {
        return Err(bad(
            "pools".into(),
            "the cluster has no GPUs (every pool has nodes = 0)".into(),
        ));
    }
    let node_names: BTreeSet<String> = s
        .pools
        .iter()
        .flat_map(|p| (1..=p.nodes).map(move |i| format!("{}-{}", p.name, i)))
        .collect();
    for (i, n) in s.node_state.iter().enumerate() {
        if !node_names.contains(&n.node) {
            return Err(bad(
                format!("node_state[{i}].node"),
                format!(
                    "no node named `{}`; nodes are named <pool>-<n>, e.g. `{}`",
                    n.node,
                    node_names.iter().next().cloned().unwrap_or_default()
                ),
            ));
        }
        if !(0.0..=1.0).contains(&n.background_utilisation) {
            return Err(bad(
                format!("node_state[{i}].background_utilisation"),
                format!("{} must be within 0..=1", n.background_utilisation),
            ));
        }
    }

    if s.services.is_empty() {
        return Err(bad(
            "services".into(),
            "at least one [[services]] entry is needed".into(),
        ));
    }
    let models: BTreeSet<_> = s
        .pools
        .iter()
        .filter(|p| p.nodes > 0)
        .map(|p| p.gpu_model)
        .collect();
    let largest = models
        .iter()
        .map(|m| (l.catalog.spec(*m).memory_gb, *m))
        .fold(
            (0.0, None),
            |a, (gb, m)| if gb > a.0 { (gb, Some(m)) } else { a },
        );
    let mut names = BTreeSet::new();
    for (i, svc) in s.services.iter().enumerate() {
        let key = |k: &str| format!("services[{i}].{k} (service `{}`)", svc.name);
        if !names.insert(svc.name.as_str()) {
            return Err(bad(key("name"), "two services have this name".into()));
        }
        if !(svc.model_memory_gb > 0.0 && svc.model_memory_gb.is_finite()) {
            return Err(bad(
                key("model_memory_gb"),
                format!("{} must be a positive number of GB", svc.model_memory_gb),
            ));
        }
        let candidates: Vec<_> = models
            .iter()
            .filter(|m| svc.required_gpu_models.is_empty() || svc.required_gpu_models.contains(m))
            .collect();
        if candidates.is_empty() {
            let req: Vec<_> = svc.required_gpu_models.iter().map(|m| m.as_str()).collect();
            let have: Vec<_> = models.iter().map(|m| m.as_str()).collect();
            return Err(bad(
                key("required_gpu_models"),
                format!(
                    "requires [{}] but the cluster has only [{}]",
                    req.join(", "),
                    have.join(", ")
                ),
            ));
        }
        check_tensor_parallel(l, svc).map_err(|p| bad(key("tensor_parallel"), p))?;
        // A tensor-parallel replica holds its model sharded over its GPUs.
        let per_gpu_gb = svc.model_memory_gb / svc.tensor_parallel as f64;
        if !candidates
            .iter()
            .any(|m| l.catalog.spec(**m).memory_gb + 1e-9 >= per_gpu_gb)
        {
            let sharded = if svc.tensor_parallel > 1 {
                format!(
                    " ({per_gpu_gb} GB per GPU over tensor_parallel = {})",
                    svc.tensor_parallel
                )
            } else {
                String::new()
            };
            if let Some(model) = &svc.model {
                // An LLM service's memory is derived, not typed: say what it is made of and
                // what would make it fit.
                return Err(bad(
                    key("tensor_parallel"),
                    format!(
                        "{model} at tensor_parallel = {} needs {per_gpu_gb:.1} GB per GPU (its weights' share and activations at the serving gpu_memory_utilization), more than any GPU the service may use has (largest: {} with {} GB); raise tensor_parallel (1, 2, 4, 8) or use larger GPUs",
                        svc.tensor_parallel,
                        largest.1.map(|m| m.as_str()).unwrap_or("-"),
                        largest.0
                    ),
                ));
            }
            return Err(bad(
                key("model_memory_gb"),
                format!(
                    "{} GB{sharded} fits no GPU in the cluster (largest: {} with {} GB); the workload could never be placed",
                    svc.model_memory_gb,
                    largest.1.map(|m| m.as_str()).unwrap_or("-"),
                    largest.0
                ),
            ));
        }
        for (k, v) in [
            ("latency_sla_ms", svc.latency_sla_ms),
            ("sla_per_output_token_ms", svc.sla_per_output_token_ms),
        ] {
            if let Some(v) = v {
                if !(v > 0.0 && v.is_finite()) {
                    return Err(bad(key(k), format!("{v} must be a positive number of ms")));
                }
            }
        }
        if svc.sla_per_output_token_ms.is_some() && svc.latency_sla_ms.is_none() {
            return Err(bad(
                key("sla_per_output_token_ms"),
                "needs latency_sla_ms too (the time to first token part of the SLA)".into(),
            ));
        }
        if let Some(p) = svc.share_pct {
            if p == 0 || p > 100 {
                return Err(bad(key("share_pct"), format!("{p} must be 1..=100")));
            }
        }
        if !(svc.service_time_ms > 0.0 && svc.service_time_ms.is_finite()) {
            return Err(bad(
                key("service_time_ms"),
                format!("{} must be a positive number", svc.service_time_ms),
            ));
        }
        if let Some(p) = svc.model_params_b {
            if !(p > 0.0 && p.is_finite()) {
                return Err(bad(
                    key("model_params_b"),
                    format!("{p} must be a positive number of billions"),
                ));
            }
        }
        if !(svc.service_time_cv >= 0.0 && svc.service_time_cv <= 10.0) {
            return Err(bad(
                key("service_time_cv"),
                format!("{} must be within 0..=10", svc.service_time_cv),
            ));
        }
        if svc.concurrency == 0 {
            return Err(bad(key("concurrency"), "must be at least 1".into()));
        }
        if !(svc.min_replicas <= svc.initial_replicas && svc.initial_replicas <= svc.max_replicas) {
            return Err(bad(
                key("initial_replicas"),
                format!(
                    "need min_replicas ({}) <= initial_replicas ({}) <= max_replicas ({})",
                    svc.min_replicas, svc.initial_replicas, svc.max_replicas
                ),
            ));
        }
        for (k, v) in [
            ("startup_s", svc.startup_s),
            ("queue_timeout_s", svc.queue_timeout_s),
            ("start_at_s", svc.start_at_s),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(bad(key(k), format!("{v} must be >= 0")));
            }
        }
        if !(svc.traffic_weight >= 0.0 && svc.traffic_weight.is_finite()) {
            return Err(bad(
                key("traffic_weight"),
                format!("{} must be >= 0", svc.traffic_weight),
            ));
        }
        match &svc.traffic {
            Some(t) => check_traffic(l, t, &key("traffic"))?,
            None if s.traffic.is_none() => {
                return Err(bad(
                    key("traffic"),
                    "the service has no traffic: give it `traffic` or add a top-level [traffic]"
                        .into(),
                ))
            }
            None => {}
        }
    }
    if let Some(t) = &s.traffic {
        check_traffic(l, t, "traffic")?;
        let shared: f64 = s
            .services
            .iter()
            .filter(|x| x.traffic.is_none())
            .map(|x| x.traffic_weight)
            .sum();
        if shared <= 0.0 && s.services.iter().any(|x| x.traffic.is_none()) {
            return Err(bad(
                "services[].traffic_weight".into(),
                "the services sharing [traffic] have weights adding to 0".into(),
            ));
        }
    }
    Ok(())
}

/// `tensor_parallel`: one of the allowed degrees, no more GPUs than some node the service may
/// use has, and a sharing mode that gives whole GPUs (MPS, MIG and time-slicing slice one GPU;
/// a replica spanning N GPUs cannot be a slice). The sharing check asks the engine's own
/// PreFilter, so it refuses exactly what the engine would.
fn check_tensor_parallel(
    l: &LoadedScenario,
    svc: &crate::scenario::ServiceSpec,
) -> Result<(), String> {
    use crate::scenario::TENSOR_PARALLEL_DEGREES;
    let tp = svc.tensor_parallel;
    if !TENSOR_PARALLEL_DEGREES.contains(&tp) {
        return Err(format!("{tp} is not allowed; use one of 1, 2, 4 or 8"));
    }
    if tp == 1 {
        return Ok(());
    }
    let s = &l.scenario;
    let usable = |p: &&crate::scenario::PoolSpec| {
        p.nodes > 0
            && (svc.required_gpu_models.is_empty()
                || svc.required_gpu_models.contains(&p.gpu_model))
    };
    let most = s.pools.iter().filter(usable).map(|p| p.gpus_per_node).max();
    if most.is_none_or(|g| (g as u32) < tp) {
        return Err(format!(
            "{tp} GPUs per replica, but no pool the service may use has nodes with that many GPUs (most: {}); a replica's GPUs must be on one node",
            most.unwrap_or(0)
        ));
    }
    let req = s.engine.request_for(&svc.workload());
    if gpusched_policies::admission::tensor_parallel_conflict(&req).is_some() {
        let (k, mode) = match svc.sharing_mode {
            Some(m) => ("sharing_mode", m),
            None => ("engine.sharing", s.engine.sharing),
        };
        let mode = serde_json::to_value(mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        return Err(format!(
            "{tp} needs {tp} whole GPUs per replica, but {k} = \"{mode}\" gives it a slice of one GPU ({:?}); MPS, MIG and time-slicing cannot span GPUs: use tensor_parallel = 1 or a sharing mode with whole GPUs (exclusive, classes, admission)",
            req.slice
        ));
    }
    Ok(())
}

fn check_traffic(l: &LoadedScenario, t: &TrafficSpec, key: &str) -> Result<(), ScenarioError> {
    let bad = |k: &str, problem: String| ScenarioError::Invalid {
        path: l.source.clone(),
        key: format!("{key}.{k}"),
        problem,
    };
    match t {
        TrafficSpec::Poisson { qps } => {
            if !(*qps >= 0.0 && qps.is_finite()) {
                return Err(bad("qps", format!("{qps} must be >= 0")));
            }
        }
        TrafficSpec::Diurnal { anchors, scale } => {
            if anchors.len() < 2 || anchors.windows(2).any(|w| w[1].0 <= w[0].0) {
                return Err(bad(
                    "anchors",
                    "need at least two [hour, qps] points with hours strictly increasing".into(),
                ));
            }
            if anchors
                .iter()
                .any(|(h, q)| !(0.0..=24.0).contains(h) || !(*q >= 0.0))
            {
                return Err(bad(
                    "anchors",
                    "hours must be within 0..=24 and QPS >= 0".into(),
                ));
            }
            if !(*scale >= 0.0 && scale.is_finite()) {
                return Err(bad("scale", format!("{scale} must be >= 0")));
            }
        }
        TrafficSpec::Batch { at_s, .. } => {
            if !(*at_s >= 0.0) {
                return Err(bad("at_s", format!("{at_s} must be >= 0")));
            }
        }
        TrafficSpec::Trace(t) => {
            must_exist(l, &t.path, key, false)?;
            t.check().map_err(|(k, p)| bad(k, p))?;
        }
        TrafficSpec::Fit(f) => {
            must_exist(l, &f.path, key, false)?;
            f.check().map_err(|(k, p)| bad(k, p))?;
        }
        TrafficSpec::Servegen(g) => {
            must_exist(l, &g.path, key, true)?;
            if !(g.rate_scale > 0.0 && g.rate_scale.is_finite()) {
                return Err(bad(
                    "rate_scale",
                    format!("{} must be positive", g.rate_scale),
                ));
            }
        }
        TrafficSpec::Mmpp(m) => m.check().map_err(|(k, p)| bad(k, p))?,
        TrafficSpec::Ramp(r) => r.check().map_err(|(k, p)| bad(k, p))?,
    }
    Ok(())
}

/// A trace file (or ServeGen folder) a traffic spec names must exist.
fn must_exist(
    l: &LoadedScenario,
    path: &std::path::Path,
    key: &str,
    dir: bool,
) -> Result<(), ScenarioError> {
    let resolved = l.resolve(path);
    let ok = if dir {
        resolved.is_dir()
    } else {
        resolved.is_file()
    };
    if !ok {
        let what = if dir { "folder" } else { "trace file" };
        return Err(ScenarioError::Invalid {
            path: l.source.clone(),
            key: format!("{key}.path"),
            problem: if resolved.exists() {
                format!(
                    "{} is a {}, not a {what}",
                    resolved.display(),
                    if dir { "file" } else { "folder" }
                )
            } else {
                format!(
                    "{what} {} does not exist (relative paths resolve against the scenario's folder)",
                    resolved.display()
                )
            },
        });
    }
    Ok(())
}
