//! `gpusched live controller`: watches the cluster, places `schedulerName: gpusched` pods with the
//! engine, and applies the decisions (bind, sharing config rollouts).
//!
//! The decision step, [`Controller::reconcile`], is a function of object snapshots and an
//! [`Applier`], so it runs the same against the real API, the dry run and the tests' mock. The
//! watch side ([`run`]) only keeps kube-runtime reflector stores of Nodes, Pods and the device
//! plugin ConfigMap up to date and calls `reconcile` every `period` while this replica holds the
//! Lease.
//!
//! Like kube-scheduler, the controller *assumes* a pod is on its node as soon as it has bound it,
//! until the watch shows the pod's `nodeName`, so two placements in a row never see stale room.

use crate::apply::{bind_actions, config_key, config_yaml, mps_env_wired, Applier, Scope};
use crate::decisions::DecisionLog;
use crate::keys;
use crate::rollback::{self, RolloutOutcome, RolloutTiming};
use crate::view::{build_view, workload_from_pod, ViewOptions};
use gpusched_policies::decision::Decision;
use gpusched_policies::rollout::CircuitBreaker;
use gpusched_policies::{Engine, EngineConfig, GpuCatalog};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("engine configuration: {0}")]
    Engine(#[from] gpusched_policies::config::ConfigError),
    #[error("{0}")]
    Scope(#[from] crate::apply::ApplyError),
    #[error("Kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    #[error("decision log: {0}")]
    Log(#[from] std::io::Error),
    #[error("watching {what}: {message}")]
    Watch { what: &'static str, message: String },
}

/// What one reconcile did, for logs and tests.
#[derive(Debug, Default)]
pub struct Report {
    pub decisions: Vec<Decision>,
    pub rollouts: Vec<(String, RolloutOutcome)>,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

pub struct Controller<A: Applier> {
    pub engine: Engine,
    pub scope: Scope,
    pub applier: A,
    pub breaker: CircuitBreaker,
    pub timing: RolloutTiming,
    pub view_options: ViewOptions,
    log: Option<DecisionLog>,
    next_replica: u64,
    /// Pods bound but not yet seen bound by the watch, keyed namespace/name.
    assumed: BTreeMap<String, Pod>,
    /// Replica numbers of pods seen pending, keyed namespace/name.
    pending_replica: BTreeMap<String, u64>,
    /// Last unschedulable reason per pod (logged once per change, as the simulator does).
    last_reason: BTreeMap<String, String>,
}

fn key(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or("")
    )
}

fn is_ours_pending(p: &Pod, scope: &Scope) -> bool {
    let spec = p.spec.as_ref();
    spec.and_then(|s| s.scheduler_name.as_deref()) == Some(keys::SCHEDULER_NAME)
        && spec.and_then(|s| s.node_name.as_deref()).is_none()
        && p.metadata.deletion_timestamp.is_none()
        && scope.manages(p.metadata.namespace.as_deref().unwrap_or(""))
        && crate::view::pod_is_active(p)
}

impl<A: Applier> Controller<A> {
    pub fn new(
        config: EngineConfig,
        catalog: GpuCatalog,
        node_count: u32,
        scope: Scope,
        applier: A,
        log: Option<DecisionLog>,
    ) -> Result<Self, ControllerError> {
        Ok(Self {
            engine: Engine::new(config, catalog.clone(), node_count)?,
            scope,
            applier,
            breaker: CircuitBreaker::default(),
            timing: RolloutTiming::default(),
            view_options: ViewOptions {
                catalog,
                ..Default::default()
            },
            log,
            next_replica: 1,
            assumed: BTreeMap::new(),
            last_reason: BTreeMap::new(),
            pending_replica: BTreeMap::new(),
        })
    }

    /// Places every pending gpusched pod once. Pods are taken oldest first (then by name).
    pub async fn reconcile(
        &mut self,
        nodes: &[Node],
        pods: &[Pod],
        plugin_config: Option<&ConfigMap>,
        now_unix_s: f64,
    ) -> Report {
        let mut report = Report::default();
        // Overlay assumed bindings; forget those the watch now shows (or that are gone).
        let mut effective: Vec<Pod> = Vec::with_capacity(pods.len());
        let mut seen = std::collections::BTreeSet::new();
        for p in pods {
            let k = key(p);
            seen.insert(k.clone());
            let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            match self.assumed.get(&k) {
                Some(a) if !bound => effective.push(a.clone()),
                _ => {
                    self.assumed.remove(&k);
                    effective.push(p.clone());
                }
            }
        }
        self.assumed.retain(|k, _| seen.contains(k));
        self.pending_replica.retain(|k, _| seen.contains(k));
        self.last_reason.retain(|k, _| seen.contains(k));
        for p in &effective {
            if let Some(r) = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(keys::REPLICA))
                .and_then(|v| v.parse::<u64>().ok())
            {
                self.next_replica = self.next_replica.max(r + 1);
            }
        }
        let mut pending: Vec<Pod> = effective
            .iter()
            .filter(|p| is_ours_pending(p, &self.scope))
            .cloned()
            .collect();
        pending.sort_by(|a, b| {
            let t = |p: &Pod| {
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second())
                    .unwrap_or(0)
            };
            t(a).cmp(&t(b)).then_with(|| key(a).cmp(&key(b)))
        });
        let mut nodes_now: Vec<Node> = nodes.to_vec();
        let mut cm_now = plugin_config.cloned();
        for pod in pending {
            let view = build_view(&nodes_now, &effective, &self.view_options, now_unix_s);
            report.notes.extend(view.notes.iter().cloned());
            let pk = key(&pod);
            let spec = match workload_from_pod(&pod) {
                Ok(s) => s,
                Err(e) => {
                    report.errors.push(e);
                    continue;
                }
            };
            // A replica number is given once per pod, when it is first seen pending (as the
            // simulator numbers a replica when it is created), and kept until it is bound.
            let next = &mut self.next_replica;
            let replica = *self.pending_replica.entry(pk.clone()).or_insert_with(|| {
                *next += 1;
                *next - 1
            });
            let decision = self.engine.place(&view.nodes, &spec, replica, false);
            let Decision::Place(p) = &decision else {
                if let Decision::Unschedulable { reason, .. } = &decision {
                    if self.last_reason.get(&pk) != Some(reason) {
                        self.last_reason.insert(pk.clone(), reason.clone());
                        self.log(now_unix_s, decision.clone(), &mut report);
                    }
                }
                continue;
            };
            // A sharing placement needs the node's device-plugin config to match its plan.
            if let (Some(k), Some(yaml)) = (config_key(p), config_yaml(p)) {
                let Some(node) = nodes_now
                    .iter()
                    .find(|n| n.metadata.name.as_deref() == Some(p.node.as_str()))
                else {
                    continue;
                };
                match rollback::plan_rollout(
                    node,
                    cm_now.as_ref(),
                    Some(&k),
                    Some(yaml),
                    &effective,
                    &self.scope,
                    now_unix_s,
                ) {
                    Err(refusal) => {
                        report
                            .errors
                            .push(format!("{pk}: not placed on {}: {refusal}", p.node));
                        continue;
                    }
                    Ok(None) => {}
                    Ok(Some(r)) => {
                        let outcome = rollback::execute(
                            &self.applier,
                            &self.scope,
                            &mut self.breaker,
                            &r,
                            &self.timing,
                            now_unix_s,
                        )
                        .await;
                        let done = outcome == RolloutOutcome::Done;
                        report.rollouts.push((r.node.clone(), outcome));
                        if !done {
                            continue;
                        }
                        // The new config is in force: reflect it locally until the watch catches up.
                        for n in nodes_now
                            .iter_mut()
                            .filter(|n| n.metadata.name.as_deref() == Some(p.node.as_str()))
                        {
                            n.metadata
                                .labels
                                .get_or_insert_default()
                                .insert(keys::DEVICE_PLUGIN_CONFIG.into(), k.clone());
                        }
                        if let Some((ek, ev)) = &r.write_entry {
                            cm_now
                                .get_or_insert_default()
                                .data
                                .get_or_insert_default()
                                .insert(ek.clone(), ev.clone());
                        }
                        let evicted: std::collections::BTreeSet<String> =
                            r.evict.iter().map(|(n, m)| format!("{n}/{m}")).collect();
                        effective.retain(|x| !evicted.contains(&key(x)));
                    }
                }
                if !p
                    .mps
                    .as_ref()
                    .map(|m| m.client_env().is_empty())
                    .unwrap_or(true)
                    && !mps_env_wired(&pod)
                {
                    report.notes.push(format!(
                        "{pk}: uneven MPS split but the pod does not read {} / {} through the downward API; it runs under the daemon's default limits",
                        keys::MPS_ACTIVE_THREAD_PCT,
                        keys::MPS_PINNED_MEM_LIMIT
                    ));
                }
            }
            let gpu_mem = self
                .view_options
                .catalog
                .spec(view.nodes[p.node_index].model)
                .memory_gb;
            let mut ok = true;
            for a in bind_actions(&pod, p, spec.model_memory_gb, gpu_mem) {
                if let Err(e) = self.applier.apply(&a).await {
                    report.errors.push(format!("{pk}: {e}"));
                    ok = false;
                    break;
                }
            }
            if !ok {
                continue;
            }
            self.pending_replica.remove(&pk);
            self.last_reason.remove(&pk);
            // Assume the binding (kube-scheduler's "assume"): the next placement sees it.
            let mut bound = pod.clone();
            if let Some(crate::apply::Action::AnnotatePod { annotations, .. }) =
                bind_actions(&pod, p, spec.model_memory_gb, gpu_mem).first()
            {
                let a = bound.metadata.annotations.get_or_insert_default();
                for (k, v) in annotations {
                    if let Some(v) = v {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
            bound.spec.get_or_insert_default().node_name = Some(p.node.clone());
            for x in effective.iter_mut().filter(|x| key(x) == pk) {
                *x = bound.clone();
            }
            self.assumed.insert(pk, bound);
            self.log(now_unix_s, decision.clone(), &mut report);
        }
        report
    }

    pub(crate) fn log(&mut self, now: f64, d: Decision, report: &mut Report) {
        if let Some(l) = &mut self.log {
            if let Err(e) = l.record(now, d.clone()) {
                report.errors.push(format!("decision log: {e}"));
            }
        }
        report.decisions.push(d);
    }
}

/// Options of the watch loop.
pub struct RunOptions {
    pub period: std::time::Duration,
    pub lease: crate::lease::LeaseConfig,
    /// Autoscaling of opted-in Deployments ([`crate::autoscale`]); `None`: off.
    pub autoscale: Option<crate::autoscale::AutoscaleOptions>,
}

/// Watches and reconciles until the process is stopped. Only the Lease holder reconciles.
pub async fn run<A: Applier>(
    client: kube::Client,
    mut ctl: Controller<A>,
    opts: RunOptions,
) -> Result<(), ControllerError> {
    use futures::StreamExt;
    use kube::runtime::{reflector, watcher, WatchStreamExt};
    use kube::Api;
    let (nodes, nw) = reflector::store::<Node>();
    let (pods, pw) = reflector::store::<Pod>();
    let (cms, cw) = reflector::store::<ConfigMap>();
    let (cm_ns, cm_name) = ctl.scope.plugin_config.clone();
    let node_stream = reflector(
        nw,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .applied_objects::<Node>();
    // All pods: GPU pods of other schedulers occupy GPUs too (read-only outside the managed namespaces).
    let pod_stream = reflector(
        pw,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .applied_objects::<Pod>();
    let cm_stream = reflector(
        cw,
        watcher(
            Api::<ConfigMap>::namespaced(client.clone(), &cm_ns),
            watcher::Config::default().fields(&format!("metadata.name={cm_name}")),
        ),
    )
    .default_backoff()
    .applied_objects::<ConfigMap>();
    tokio::spawn(node_stream.for_each(|_| futures::future::ready(())));
    tokio::spawn(pod_stream.for_each(|_| futures::future::ready(())));
    tokio::spawn(cm_stream.for_each(|_| futures::future::ready(())));
    for (what, r) in [
        ("nodes", nodes.wait_until_ready().await),
        ("pods", pods.wait_until_ready().await),
        ("configmap", cms.wait_until_ready().await),
    ] {
        r.map_err(|e| ControllerError::Watch {
            what,
            message: e.to_string(),
        })?;
    }
    let mut autoscale = crate::autoscale::Runner::start(&client, &ctl.scope, opts.autoscale);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &opts.lease.namespace);
    let mut leading = false;
    let mut tick = tokio::time::interval(opts.period);
    loop {
        tick.tick().await;
        let now = k8s_openapi::jiff::Timestamp::now();
        let lead = match crate::lease::try_acquire(&leases, &opts.lease, now).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "warning: lease {}/{}: {e}; not acting this round",
                    opts.lease.namespace, opts.lease.name
                );
                false
            }
        };
        if lead != leading {
            eprintln!(
                "{} leadership ({})",
                if lead { "acquired" } else { "lost" },
                opts.lease.identity
            );
            leading = lead;
        }
        if !lead {
            continue;
        }
        let ns: Vec<Node> = nodes.state().iter().map(|n| (**n).clone()).collect();
        let ps: Vec<Pod> = pods.state().iter().map(|p| (**p).clone()).collect();
        let cm = cms.state().first().map(|c| (**c).clone());
        if cm.is_none() {
            eprintln!("warning: ConfigMap {cm_ns}/{cm_name} not found; sharing placements will create no entry until it exists");
        }
        let now_s = now.as_millisecond() as f64 / 1000.0;
        let report = ctl.reconcile(&ns, &ps, cm.as_ref(), now_s).await;
        if let Some(a) = autoscale.as_mut() {
            a.tick(&mut ctl, &ns, &ps, now_s).await;
        }
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        for (node, o) in &report.rollouts {
            eprintln!(
                "rollout on {node}: {}",
                serde_json::to_string(o).unwrap_or_default()
            );
        }
    }
}
