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

use crate::apply::{bind_actions, config_key, config_yaml, mps_env_wired, Action, Applier, Scope};
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
    /// This replica's name in Events (`reportingInstance`); the Lease identity in the CLI.
    pub identity: String,
    log: Option<DecisionLog>,
    next_replica: u64,
    /// Pods bound but not yet seen bound by the watch, keyed namespace/name.
    assumed: BTreeMap<String, Pod>,
    /// Replica numbers of pods seen pending, keyed namespace/name.
    pending_replica: BTreeMap<String, u64>,
    /// Interrupted-rollout markers already acted on (`node@start`), so each is undone once.
    recovered: std::collections::BTreeSet<String>,
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
            identity: "gpusched".into(),
            log,
            next_replica: 1,
            assumed: BTreeMap::new(),
            last_reason: BTreeMap::new(),
            recovered: Default::default(),
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
        // A rollout that a stopped replica left half done is rolled back first; this reconcile
        // then ends, so the next one starts from the restored state the watch shows.
        if self
            .recover_interrupted(nodes, plugin_config, now_unix_s, &mut report)
            .await
        {
            return report;
        }
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
                    if self
                        .explain_wait(&pod, &pk, &e, now_unix_s, &mut report)
                        .await
                    {
                        report.errors.push(e);
                    }
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
                    if self
                        .explain_wait(&pod, &pk, reason, now_unix_s, &mut report)
                        .await
                    {
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
                        let why = format!("not placed on {}: {refusal}", p.node);
                        if self
                            .explain_wait(&pod, &pk, &why, now_unix_s, &mut report)
                            .await
                        {
                            report.errors.push(format!("{pk}: {why}"));
                        }
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
                        if !done {
                            let why = format!(
                                "sharing config of {} not changed: {}",
                                r.node,
                                serde_json::to_string(&outcome).unwrap_or_default()
                            );
                            self.explain_wait(&pod, &pk, &why, now_unix_s, &mut report)
                                .await;
                        }
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
            for a in bind_actions(&pod, p, spec.memory_per_gpu_gb(), gpu_mem) {
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
                bind_actions(&pod, p, spec.memory_per_gpu_gb(), gpu_mem).first()
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
            Self::tell(
                &self.applier,
                &self.identity,
                &pod,
                false,
                "Scheduled",
                &format!(
                    "Successfully assigned {}/{} to {} (GPU {}, {} %)",
                    pod.metadata.namespace.as_deref().unwrap_or(""),
                    pod.metadata.name.as_deref().unwrap_or(""),
                    p.node,
                    p.gpu,
                    p.share_pct
                ),
                now_unix_s,
                &mut report,
            )
            .await;
        }
        report
    }

    /// Rolls back every node that carries the in-progress marker of a rollout this process did
    /// not finish (once per marker). True when something was rolled back.
    async fn recover_interrupted(
        &mut self,
        nodes: &[Node],
        plugin_config: Option<&ConfigMap>,
        now: f64,
        report: &mut Report,
    ) -> bool {
        let mut acted = false;
        for n in nodes {
            let Some(found) = rollback::interrupted(n) else {
                continue;
            };
            let marker = format!(
                "{}@{}",
                n.metadata.name.as_deref().unwrap_or(""),
                crate::view::annotation(&n.metadata, keys::ROLLOUT_IN_PROGRESS).unwrap_or("")
            );
            if !self.recovered.insert(marker) {
                continue;
            }
            let record = match found {
                Ok(r) => r,
                Err(e) => {
                    report.errors.push(format!(
                        "{e}; an interrupted rollout is left for an operator"
                    ));
                    continue;
                }
            };
            acted = true;
            self.breaker.record_failure(now);
            let mut rollback_errors = Vec::new();
            for a in rollback::recovery_actions(&record, nodes, plugin_config, &self.scope) {
                if let Err(e) = self.applier.apply(&a).await {
                    rollback_errors.push(e.to_string());
                }
            }
            report.rollouts.push((
                record.node.clone(),
                RolloutOutcome::RolledBack {
                    error: "a rollout was left half done by a controller replica that stopped"
                        .into(),
                    rollback_errors,
                },
            ));
        }
        acted
    }

    /// Tells the user why `pod` waits, once per change of reason; true when this is news.
    async fn explain_wait(
        &mut self,
        pod: &Pod,
        pk: &str,
        why: &str,
        now: f64,
        report: &mut Report,
    ) -> bool {
        if self.last_reason.get(pk).map(String::as_str) == Some(why) {
            return false;
        }
        self.last_reason.insert(pk.to_string(), why.to_string());
        Self::tell_unschedulable(&self.applier, &self.identity, pod, why, now, report).await;
        true
    }

    /// What kube-scheduler tells a user about a pod that waits: `PodScheduled=False` with the
    /// reason, and a `FailedScheduling` warning event. Called once per change of reason.
    async fn tell_unschedulable(
        applier: &A,
        identity: &str,
        pod: &Pod,
        why: &str,
        now: f64,
        report: &mut Report,
    ) {
        let (namespace, name) = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        let condition = Action::PodScheduledCondition {
            namespace,
            name,
            scheduled: false,
            reason: "Unschedulable".into(),
            message: why.to_string(),
            at: rfc3339(now, false),
        };
        if let Err(e) = applier.apply(&condition).await {
            report.errors.push(e.to_string());
        }
        Self::tell(
            applier,
            identity,
            pod,
            true,
            "FailedScheduling",
            why,
            now,
            report,
        )
        .await;
    }

    /// Records an Event about `pod`. Events are best effort: a failure is reported, not fatal.
    #[allow(clippy::too_many_arguments)]
    async fn tell(
        applier: &A,
        identity: &str,
        pod: &Pod,
        warning: bool,
        reason: &str,
        note: &str,
        now: f64,
        report: &mut Report,
    ) {
        let event = Action::PodEvent {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone(),
            warning,
            reason: reason.into(),
            // The API server limits an event's note to 1 kB.
            note: note.chars().take(1000).collect(),
            instance: identity.to_string(),
            at: rfc3339(now, true),
        };
        if let Err(e) = applier.apply(&event).await {
            report.errors.push(e.to_string());
        }
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

/// `t` (Unix seconds) as RFC 3339 UTC, with microseconds for `MicroTime` fields.
fn rfc3339(t: f64, micros: bool) -> String {
    let ts = k8s_openapi::jiff::Timestamp::from_microsecond((t * 1e6).round() as i64)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    if micros {
        format!("{ts:.6}")
    } else {
        format!("{ts:.0}")
    }
}

/// Options of the watch loop.
pub struct RunOptions {
    pub period: std::time::Duration,
    pub lease: crate::lease::LeaseConfig,
    /// Autoscaling of opted-in Deployments ([`crate::autoscale`]); `None`: off.
    pub autoscale: Option<crate::autoscale::AutoscaleOptions>,
}

/// Watches and reconciles until `shutdown` completes (SIGTERM in the CLI). Only the Lease
/// holder reconciles; on shutdown a leader releases the Lease so another replica takes over at
/// once instead of waiting for it to expire (client-go's `ReleaseOnCancel`).
pub async fn run<A: Applier>(
    client: kube::Client,
    mut ctl: Controller<A>,
    opts: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ControllerError> {
    use kube::Api;
    let (cm_ns, cm_name) = ctl.scope.plugin_config.clone();
    let cluster = ClusterWatch::start(&client, &cm_ns, &cm_name);
    let mut shutdown = std::pin::pin!(shutdown);
    // Events name the replica that acted: the Lease identity.
    ctl.identity = opts.lease.identity.clone();
    tokio::select! {
        r = cluster.ready() => r?,
        _ = &mut shutdown => return Ok(()),
    }
    let mut autoscale = crate::autoscale::Runner::start(&client, &ctl.scope, opts.autoscale);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &opts.lease.namespace);
    // The Lease is renewed by its own task, so a long reconcile (a rollout waits minutes for the
    // device plugin) never lets it expire under a leader that is still acting.
    // A dry run changes nothing, the Lease included: it acts as if it led, and prints.
    let dry_run = ctl.applier.is_dry_run();
    let (lead_tx, leading) = tokio::sync::watch::channel(dry_run);
    let elector = if dry_run {
        eprintln!(
            "dry run: the Lease {}/{} is not taken (that would be a write); this replica prints as if it led",
            opts.lease.namespace, opts.lease.name
        );
        tokio::spawn(async move {
            let _keep = lead_tx;
            futures::future::pending::<()>().await
        })
    } else {
        tokio::spawn(elect(
            leases.clone(),
            opts.lease.clone(),
            opts.period,
            lead_tx,
        ))
    };
    let mut tick = tokio::time::interval(opts.period);
    let mut warned_no_configmap = false;
    let mut shown_notes = std::collections::BTreeSet::new();
    loop {
        // Shutdown is only looked at between reconciles: a rollout is never cut in half.
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut shutdown => {
                elector.abort();
                let _ = elector.await;
                if *leading.borrow() && !dry_run {
                    match crate::lease::release(&leases, &opts.lease).await {
                        Ok(()) => eprintln!("released leadership ({})", opts.lease.identity),
                        Err(e) => eprintln!("warning: releasing lease {}/{}: {e}", opts.lease.namespace, opts.lease.name),
                    }
                }
                return Ok(());
            }
        }
        if !*leading.borrow() {
            continue;
        }
        let now = k8s_openapi::jiff::Timestamp::now();
        let (ns, ps, cm) = cluster.snapshot();
        if cm.is_none() && !warned_no_configmap {
            warned_no_configmap = true;
            eprintln!("warning: ConfigMap {cm_ns}/{cm_name} not found; sharing placements wait until it exists");
        }
        let now_s = now.as_millisecond() as f64 / 1000.0;
        let report = ctl.reconcile(&ns, &ps, cm.as_ref(), now_s).await;
        if let Some(a) = autoscale.as_mut() {
            a.tick(&mut ctl, &ns, &ps, now_s).await;
        }
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        // Notes (a node left out of the view, stale GPU metrics, …) are printed when they
        // appear, not at every reconcile.
        let notes: std::collections::BTreeSet<String> = report.notes.iter().cloned().collect();
        for n in notes.difference(&shown_notes) {
            eprintln!("note: {n}");
        }
        shown_notes = notes;
        for (node, o) in &report.rollouts {
            eprintln!(
                "rollout on {node}: {}",
                serde_json::to_string(o).unwrap_or_default()
            );
        }
    }
}

/// Reflector stores of what the controller reads: every Node, every Pod (GPU pods of other
/// schedulers occupy GPUs too; read-only outside the managed namespaces) and the device plugin's
/// ConfigMap. The watch tasks end when this is dropped.
struct ClusterWatch {
    nodes: kube::runtime::reflector::Store<Node>,
    pods: kube::runtime::reflector::Store<Pod>,
    configmaps: kube::runtime::reflector::Store<ConfigMap>,
    _watches: AbortOnDrop,
}

impl ClusterWatch {
    fn start(client: &kube::Client, cm_namespace: &str, cm_name: &str) -> Self {
        use futures::StreamExt;
        use kube::runtime::{reflector, watcher, WatchStreamExt};
        use kube::Api;
        let (nodes, nw) = reflector::store::<Node>();
        let (pods, pw) = reflector::store::<Pod>();
        let (configmaps, cw) = reflector::store::<ConfigMap>();
        let node_stream = reflector(
            nw,
            watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
        )
        .default_backoff()
        .applied_objects::<Node>();
        let pod_stream = reflector(
            pw,
            watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
        )
        .default_backoff()
        .applied_objects::<Pod>();
        let cm_stream = reflector(
            cw,
            watcher(
                Api::<ConfigMap>::namespaced(client.clone(), cm_namespace),
                watcher::Config::default().fields(&format!("metadata.name={cm_name}")),
            ),
        )
        .default_backoff()
        .applied_objects::<ConfigMap>();
        let tasks = [
            tokio::spawn(node_stream.for_each(|_| futures::future::ready(()))),
            tokio::spawn(pod_stream.for_each(|_| futures::future::ready(()))),
            tokio::spawn(cm_stream.for_each(|_| futures::future::ready(()))),
        ];
        Self {
            nodes,
            pods,
            configmaps,
            _watches: AbortOnDrop(tasks.iter().map(|h| h.abort_handle()).collect()),
        }
    }

    /// Completes once every store holds its first full list.
    async fn ready(&self) -> Result<(), ControllerError> {
        for (what, r) in [
            ("nodes", self.nodes.wait_until_ready().await),
            ("pods", self.pods.wait_until_ready().await),
            ("configmap", self.configmaps.wait_until_ready().await),
        ] {
            r.map_err(|e| ControllerError::Watch {
                what,
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// The objects as the watches show them now.
    fn snapshot(&self) -> (Vec<Node>, Vec<Pod>, Option<ConfigMap>) {
        (
            self.nodes.state().iter().map(|n| (**n).clone()).collect(),
            self.pods.state().iter().map(|p| (**p).clone()).collect(),
            self.configmaps.state().first().map(|c| (**c).clone()),
        )
    }
}

/// Runs an election round every `period` and publishes whether this replica leads.
async fn elect(
    leases: kube::Api<k8s_openapi::api::coordination::v1::Lease>,
    cfg: crate::lease::LeaseConfig,
    period: std::time::Duration,
    leading: tokio::sync::watch::Sender<bool>,
) {
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let now = k8s_openapi::jiff::Timestamp::now();
        let lead = match crate::lease::try_acquire(&leases, &cfg, now).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "warning: lease {}/{}: {e}; not acting this round",
                    cfg.namespace, cfg.name
                );
                false
            }
        };
        if lead != *leading.borrow() {
            eprintln!(
                "{} leadership ({})",
                if lead { "acquired" } else { "lost" },
                cfg.identity
            );
        }
        leading.send_replace(lead);
    }
}

/// Aborts the watch tasks when the controller returns.
pub(crate) struct AbortOnDrop(pub(crate) Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}
