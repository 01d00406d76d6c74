//! `gpusched live controller`: watches the cluster, places `schedulerName: gpusched` pods with the
//! engine, and applies the decisions (bind, sharing config rollouts).
//!
//! The decision step, [`Controller::reconcile`], is a function of object snapshots and an
//! [`Applier`], so it runs the same against the real API, the dry run and the tests' mock. The
//! watch side ([`run`]) only keeps kube-runtime reflector stores of Nodes, Pods and the device
//! plugin ConfigMap up to date and calls `reconcile` every `period` while this replica holds the
//! Lease.
//!
//! Like kube-scheduler, the controller *assumes* a pod is on its node as soon as it has decided
//! it, until the watch shows the pod's `nodeName`, so two placements in a row never see stale
//! room. Decisions are made in order on one view (taints and readiness first, `node_filter`);
//! the bindings they produce go out concurrently ([`BIND_CONCURRENCY`]), as kube-scheduler's
//! binding cycle does. Preemption evicts through the Eviction API; SIGTERM stops a reconcile at
//! its next safe point.

use crate::apply::{bind_actions, config_key, config_yaml, mps_env_wired, Action, Applier, Scope};
use crate::codec;
use crate::decisions::DecisionLog;
use crate::keys;
use crate::node_filter;
use crate::rollback::{self, RolloutOutcome, RolloutTiming};
use crate::view::{build_view, workload_from_pod, ViewOptions};
use gpusched_policies::decision::Decision;
use gpusched_policies::rollout::CircuitBreaker;
use gpusched_policies::{Engine, EngineConfig, GpuCatalog};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    /// Nodes whose last rollout failed, and until when it is not tried again.
    rollout_backoff: BTreeMap<String, Backoff>,
    /// Pods that preempted others, keyed namespace/name: the node and the victims (keys) they
    /// wait for.
    preempting: BTreeMap<String, Preempting>,
    /// Set on SIGTERM: the reconcile in progress stops at its next safe point.
    stop: Arc<AtomicBool>,
    /// The reconcile's `now` and the instant it began ([`Controller::clock`]).
    reconcile_at: (f64, std::time::Instant),
}

/// Bindings in flight at once. kube-scheduler binds asynchronously too; a bound keeps the API
/// server's inflight limits (400 mutating requests by default) far away.
pub const BIND_CONCURRENCY: usize = 24;
/// The first wait after a failed rollout on a node; it doubles per consecutive failure.
pub const ROLLOUT_BACKOFF_S: f64 = 300.0;
pub const ROLLOUT_BACKOFF_MAX_S: f64 = 3600.0;

#[derive(Debug, Clone)]
struct Preempting {
    node: String,
    victims: Vec<String>,
}

#[derive(Debug, Clone)]
struct Backoff {
    key: String,
    failures: u32,
    until: f64,
}

/// A decided binding waiting to be sent.
struct Queued {
    pod: Pod,
    pk: String,
    placement: gpusched_policies::decision::Placement,
    decision: Decision,
    /// Annotate, record the node's new MIG layout (when it changes), then bind.
    actions: Vec<Action>,
    /// What restores the node's MIG layout record when the binding fails after it was written.
    undo: Vec<Action>,
}

/// A binding's outcome, and the errors of its best-effort event.
type BindResult = (Result<(), String>, Vec<String>);

/// One entry of a batch, in decision order (decisions.jsonl keeps the engine's order).
enum Step {
    Bind(Box<Queued>),
    Logged(Box<Decision>),
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
            rollout_backoff: BTreeMap::new(),
            preempting: BTreeMap::new(),
            stop: Arc::new(AtomicBool::new(false)),
            reconcile_at: (0.0, std::time::Instant::now()),
        })
    }

    /// A flag that asks a reconcile in progress to stop at its next safe point (between two
    /// pods, never inside a rollout or a binding): SIGTERM in [`run`].
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// The wall-clock time now, on the caller's clock: the reconcile's `now` plus the time it
    /// has run. A transition or an event is stamped when it happens, not when the reconcile
    /// began (a rollout can take minutes).
    fn clock(&self) -> f64 {
        self.reconcile_at.0 + self.reconcile_at.1.elapsed().as_secs_f64()
    }

    /// Places every pending gpusched pod once. Pods are taken oldest first (then by name).
    ///
    /// Decisions are made one pod at a time on one view that each placement updates (as the
    /// simulator does), so the sequence is deterministic; the bindings they produce are queued
    /// and sent [`BIND_CONCURRENCY`] at a time, as kube-scheduler's binding cycle runs
    /// asynchronously. A placement that needs a sharing-config rollout first sends the queue,
    /// then runs the rollout on its own.
    pub async fn reconcile(
        &mut self,
        nodes: &[Node],
        pods: &[Pod],
        plugin_config: Option<&ConfigMap>,
        now_unix_s: f64,
    ) -> Report {
        self.reconcile_at = (now_unix_s, std::time::Instant::now());
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
        self.preempting.retain(|k, _| seen.contains(k));
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
        // Oldest first, except that a pod which preempted others comes before every other: the
        // room its victims free is what it evicted them for (kube-scheduler's nomination).
        pending.sort_by_cached_key(|p| {
            let k = key(p);
            (
                !self.preempting.contains_key(&k),
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second())
                    .unwrap_or(0),
                k,
            )
        });
        if pending.is_empty() {
            return report;
        }
        let mut nodes_now: Vec<Node> = nodes.to_vec();
        let mut cm_now = plugin_config.cloned();
        // Taints (and readiness as taints) per node: rollouts below never change them.
        let taints: BTreeMap<String, Vec<k8s_openapi::api::core::v1::Taint>> = nodes
            .iter()
            .map(|n| {
                (
                    n.metadata.name.clone().unwrap_or_default(),
                    node_filter::effective_taints(n),
                )
            })
            .collect();
        // Where each pod is in `effective` (a linear search per pod is quadratic at 2,000 pods).
        let index_of = |eff: &[Pod]| -> BTreeMap<String, usize> {
            eff.iter().enumerate().map(|(i, p)| (key(p), i)).collect()
        };
        let mut position = index_of(&effective);
        let mut view = build_view(&nodes_now, &effective, &self.view_options, now_unix_s);
        report.notes.extend(view.notes.iter().cloned());
        let mut batch: Vec<Step> = Vec::new();
        for pod in pending {
            if self.stop.load(Ordering::SeqCst) {
                report.notes.push(
                    "stopping: the remaining pending pods are left to the next leader".into(),
                );
                break;
            }
            let pk = key(&pod);
            // A pod that preempted others waits until they are gone (their GPUs are still
            // held while they terminate); deciding again would evict more pods than needed.
            if let Some(p) = self.preempting.get(&pk) {
                let left = p
                    .victims
                    .iter()
                    .filter(|v| position.contains_key(*v))
                    .count();
                if left > 0 {
                    let why = format!(
                        "waiting for {left} preempted pod(s) on {} to terminate",
                        p.node
                    );
                    self.explain_wait(&pod, &pk, &why, &mut report).await;
                    continue;
                }
                self.preempting.remove(&pk);
            }
            let spec = match workload_from_pod(&pod) {
                Ok(s) => s,
                Err(e) => {
                    if self.explain_wait(&pod, &pk, &e, &mut report).await {
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
            // kube-scheduler's TaintToleration (readiness included) before the engine's filters.
            let tolerations = node_filter::tolerations(&pod);
            let mut refused: Vec<Option<String>> = view
                .nodes
                .iter()
                .map(|v| {
                    taints
                        .get(&v.name)
                        .and_then(|t| node_filter::admits(t, tolerations).err())
                        .map(|r| r.0)
                })
                .collect();
            let decision = loop {
                let d = self.place_masked(&mut view.nodes, &refused, &spec, replica);
                // A node whose rollout to this config failed recently is not tried again
                // until its backoff ends: the pod is placed as if that node were unavailable.
                if let Decision::Place(p) = &d {
                    if let Some(k) = config_key(p) {
                        if self
                            .rollout_backoff_until(&p.node, &k, now_unix_s)
                            .is_some()
                        {
                            // One text for every such node, so the summary counts them.
                            refused[p.node_index] = Some(
                                "node(s) had a sharing-config rollout that failed recently (backing off)"
                                    .into(),
                            );
                            continue;
                        }
                    }
                }
                break d;
            };
            let p = match &decision {
                Decision::Place(p) => p.clone(),
                Decision::Unschedulable { .. } | Decision::Preempt { .. } => {
                    let why = self.unschedulable_message(&view.nodes, &refused, &spec);
                    if matches!(decision, Decision::Preempt { .. }) {
                        self.preempt(
                            &pod,
                            &pk,
                            &decision,
                            &effective,
                            &why,
                            &mut batch,
                            &mut report,
                        )
                        .await;
                        continue;
                    }
                    // decisions.jsonl keeps the engine's own decision (the simulator's line);
                    // the user is shown the summary across all nodes.
                    if self.explain_wait(&pod, &pk, &why, &mut report).await
                        && matches!(decision, Decision::Unschedulable { .. })
                    {
                        batch.push(Step::Logged(Box::new(decision.clone())));
                    }
                    continue;
                }
                _ => continue,
            };
            // A sharing placement needs the node's device-plugin config to match its plan.
            if let (Some(k), Some(yaml)) = (config_key(&p), config_yaml(&p)) {
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
                        if self.explain_wait(&pod, &pk, &why, &mut report).await {
                            report.errors.push(format!("{pk}: {why}"));
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Ok(Some(r)) => {
                        // The rollout evicts and waits for the plugin: the bindings decided so
                        // far go out first, so they never wait behind it.
                        self.flush(&mut batch, &mut effective, &mut report).await;
                        let started = self.clock();
                        let outcome = rollback::execute(
                            &self.applier,
                            &self.scope,
                            &mut self.breaker,
                            &r,
                            &self.timing,
                            started,
                        )
                        .await;
                        let done = outcome == RolloutOutcome::Done;
                        if !done {
                            self.rollout_failed(&r.node, &k, self.clock());
                            let why = format!(
                                "sharing config of {} not changed: {}",
                                r.node,
                                serde_json::to_string(&outcome).unwrap_or_default()
                            );
                            self.explain_wait(&pod, &pk, &why, &mut report).await;
                        } else {
                            self.rollout_backoff.remove(&r.node);
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
                        position = index_of(&effective);
                        // The node changed under the view (config, evicted pods): rebuild it.
                        view = build_view(&nodes_now, &effective, &self.view_options, now_unix_s);
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
            let Some(vi) = view.nodes.iter().position(|v| v.name == p.node) else {
                continue;
            };
            let gpu_mem = self
                .view_options
                .catalog
                .spec(view.nodes[vi].model)
                .memory_gb;
            // Assume the binding (kube-scheduler's "assume"): the next decision sees it. A
            // tensor-parallel replica takes all of `p.gpus`, each holding its share of the model.
            let memory_per_gpu_gb = spec.memory_per_gpu_gb();
            let placed_gpus = if p.gpus.is_empty() {
                vec![p.gpu]
            } else {
                p.gpus.clone()
            };
            let layouts_before = codec::gpu_layouts(&view.nodes[vi], &placed_gpus);
            view.nodes.apply(&p, memory_per_gpu_gb);
            let model = view.nodes[vi].model;
            let mut actions = bind_actions(&pod, &p, model, memory_per_gpu_gb, gpu_mem);
            // A MIG layout the placement configured (or a stale one it cleared) is recorded on
            // the node before the binding, so the layout outlives the GPU's last pod; a binding
            // that fails restores the previous record (`undo`).
            let layouts_after = codec::gpu_layouts(&view.nodes[vi], &placed_gpus);
            let forward = codec::mig_layout_patch(model, &layouts_before, &layouts_after);
            let mut undo = Vec::new();
            if !forward.is_empty() {
                undo.push(Action::PatchNodeMeta {
                    node: p.node.clone(),
                    labels: BTreeMap::new(),
                    annotations: codec::mig_layout_patch(model, &layouts_after, &layouts_before),
                });
                // Reflect it locally until the watch catches up (a rebuilt view reads it).
                for n in nodes_now
                    .iter_mut()
                    .filter(|n| n.metadata.name.as_deref() == Some(p.node.as_str()))
                {
                    let a = n.metadata.annotations.get_or_insert_default();
                    for (k, v) in &forward {
                        match v {
                            Some(v) => a.insert(k.clone(), v.clone()),
                            None => a.remove(k),
                        };
                    }
                }
                let at = actions.len().saturating_sub(1);
                actions.insert(
                    at,
                    Action::PatchNodeMeta {
                        node: p.node.clone(),
                        labels: BTreeMap::new(),
                        annotations: forward,
                    },
                );
            }
            let mut bound = pod.clone();
            if let Some(Action::AnnotatePod { annotations, .. }) = actions.first() {
                let a = bound.metadata.annotations.get_or_insert_default();
                for (k, v) in annotations {
                    if let Some(v) = v {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
            bound.spec.get_or_insert_default().node_name = Some(p.node.clone());
            if let Some(&i) = position.get(&pk) {
                effective[i] = bound.clone();
            }
            self.assumed.insert(pk.clone(), bound);
            batch.push(Step::Bind(Box::new(Queued {
                pod,
                pk,
                placement: p,
                decision,
                actions,
                undo,
            })));
        }
        self.flush(&mut batch, &mut effective, &mut report).await;
        report
    }

    /// Runs the engine with the nodes in `refused` shown as unavailable (cordoned) for this one
    /// decision, then restores them.
    fn place_masked(
        &mut self,
        nodes: &mut gpusched_policies::ClusterState,
        refused: &[Option<String>],
        spec: &gpusched_policies::WorkloadSpec,
        replica: u64,
    ) -> Decision {
        let masked: Vec<usize> = refused
            .iter()
            .enumerate()
            .filter(|(i, r)| r.is_some() && !nodes[*i].cordoned)
            .map(|(i, _)| i)
            .collect();
        for &i in &masked {
            nodes.set_cordoned(i, true);
        }
        nodes.flush_to(&mut self.engine);
        let d = self.engine.place(nodes, spec, replica, false);
        for &i in &masked {
            nodes.set_cordoned(i, false);
        }
        d
    }

    /// Carries out the engine's `Preempt` (kube-scheduler's DefaultPreemption): the victims,
    /// found on the node by their replica annotation, are evicted through the Eviction API (so
    /// PodDisruptionBudgets are respected: a 429 stops the preemption and the pod says why),
    /// each gets a `Preempted` event, and the preemptor waits until they are gone, then is
    /// placed like any pending pod.
    #[allow(clippy::too_many_arguments)]
    async fn preempt(
        &mut self,
        pod: &Pod,
        pk: &str,
        decision: &Decision,
        effective: &[Pod],
        why: &str,
        batch: &mut Vec<Step>,
        report: &mut Report,
    ) {
        let Decision::Preempt { node, victims, .. } = decision else {
            return;
        };
        let mut targets: Vec<&Pod> = Vec::new();
        for v in victims {
            let found = effective.iter().find(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())
                    && crate::view::annotation(&p.metadata, keys::REPLICA)
                        == Some(v.replica.to_string().as_str())
            });
            match found {
                Some(p)
                    if self
                        .scope
                        .manages(p.metadata.namespace.as_deref().unwrap_or("")) =>
                {
                    targets.push(p)
                }
                _ => {
                    let msg = format!(
                        "{why} Preemption on {node} is not possible: replica {} of {} is not a pod gpusched manages.",
                        v.replica, v.workload
                    );
                    self.explain_wait(pod, pk, &msg, report).await;
                    return;
                }
            }
        }
        let mut evicted = Vec::new();
        for t in &targets {
            let a = Action::Evict {
                namespace: t.metadata.namespace.clone().unwrap_or_default(),
                name: t.metadata.name.clone().unwrap_or_default(),
            };
            match self.applier.apply(&a).await {
                Ok(()) => {
                    evicted.push(key(t));
                    tell(
                        &self.applier,
                        &self.identity,
                        t,
                        false,
                        "Preempted",
                        &format!("Preempted by pod {pk} on node {node}"),
                        self.clock(),
                        &mut report.errors,
                    )
                    .await;
                }
                Err(e) => {
                    // A PodDisruptionBudget (429) or another refusal: stop here; the pods
                    // already evicted are waited for, the rest is decided again next round.
                    let msg = format!("{why} Preemption on {node} stopped: {e}.");
                    if !evicted.is_empty() {
                        self.preempting.insert(
                            pk.to_string(),
                            Preempting {
                                node: node.clone(),
                                victims: evicted,
                            },
                        );
                    }
                    self.explain_wait(pod, pk, &msg, report).await;
                    return;
                }
            }
        }
        let msg = format!(
            "{why} Preempting {} lower-priority pod(s) on {node}.",
            evicted.len()
        );
        self.preempting.insert(
            pk.to_string(),
            Preempting {
                node: node.clone(),
                victims: evicted,
            },
        );
        self.explain_wait(pod, pk, &msg, report).await;
        batch.push(Step::Logged(Box::new(decision.clone())));
    }

    /// "0/N nodes are available: …" as kube-scheduler words it: every node's first failing
    /// filter, counted per reason, across all nodes (never one node's text).
    fn unschedulable_message(
        &self,
        nodes: &[gpusched_policies::NodeView],
        refused: &[Option<String>],
        spec: &gpusched_policies::WorkloadSpec,
    ) -> String {
        let verdicts = self.engine.filter_verdicts(nodes, spec);
        let reasons = refused.iter().zip(&verdicts).map(|(r, v)| match (r, v) {
            (Some(r), _) => Some(r.clone()),
            (None, Some(rej)) => Some(crate::unschedulable::plugin_reason(rej.plugin)),
            (None, None) => None,
        });
        crate::unschedulable::summarise(nodes.len(), reasons)
    }

    /// The time before which a rollout of `key` on `node` is not tried again, if it is still
    /// in the future.
    fn rollout_backoff_until(&self, node: &str, key: &str, now: f64) -> Option<f64> {
        self.rollout_backoff
            .get(node)
            .filter(|b| b.key == key && now < b.until)
            .map(|b| b.until)
    }

    /// A rollout of `key` on `node` failed: back off, doubling per consecutive failure.
    fn rollout_failed(&mut self, node: &str, key: &str, now: f64) {
        let failures = match self.rollout_backoff.get(node) {
            Some(b) if b.key == key => b.failures + 1,
            _ => 1,
        };
        let wait = (ROLLOUT_BACKOFF_S * 2f64.powi(failures as i32 - 1)).min(ROLLOUT_BACKOFF_MAX_S);
        self.rollout_backoff.insert(
            node.to_string(),
            Backoff {
                key: key.to_string(),
                failures,
                until: now + wait,
            },
        );
    }

    /// Sends the queued bindings, [`BIND_CONCURRENCY`] at a time, then records the batch in
    /// decision order. A binding that fails is forgotten (its pod is pending again at the next
    /// reconcile, as kube-scheduler forgets an assumed pod whose binding failed).
    async fn flush(&mut self, batch: &mut Vec<Step>, effective: &mut [Pod], report: &mut Report) {
        use futures::StreamExt;
        if batch.is_empty() {
            return;
        }
        let steps = std::mem::take(batch);
        let (applier, identity) = (&self.applier, self.identity.as_str());
        // A hand-rolled bounded pool: stream combinators with closures over borrowed pods make
        // the future lose `Send` (rust-lang/rust#102211), which `run` needs for `tokio::spawn`.
        let queued: Vec<&Queued> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Bind(q) => Some(&**q),
                Step::Logged(_) => None,
            })
            .collect();
        let mut done: Vec<Option<BindResult>> = (0..queued.len()).map(|_| None).collect();
        {
            let at = self.reconcile_at;
            let mut inflight = futures::stream::FuturesUnordered::new();
            let mut next = 0;
            while next < queued.len() || !inflight.is_empty() {
                while next < queued.len() && inflight.len() < BIND_CONCURRENCY {
                    let (i, q) = (next, queued[next]);
                    inflight.push(async move { (i, bind_one(applier, identity, q, at).await) });
                    next += 1;
                }
                if let Some((i, r)) = inflight.next().await {
                    done[i] = Some(r);
                }
            }
        }
        let results: Vec<BindResult> = done
            .into_iter()
            .map(|r| r.expect("every binding ran"))
            .collect();
        let mut results = results.into_iter();
        let now = self.clock();
        for s in steps {
            match s {
                Step::Logged(d) => self.log(now, *d, report),
                Step::Bind(q) => {
                    let (r, errors) = results.next().expect("one result per binding");
                    report.errors.extend(errors);
                    match r {
                        Ok(()) => {
                            self.pending_replica.remove(&q.pk);
                            self.last_reason.remove(&q.pk);
                            self.log(now, q.decision, report);
                        }
                        Err(e) => {
                            report.errors.push(format!("{}: {e}", q.pk));
                            self.assumed.remove(&q.pk);
                            for x in effective.iter_mut().filter(|x| key(x) == q.pk) {
                                *x = q.pod.clone();
                            }
                        }
                    }
                }
            }
        }
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
    /// The pod's own `PodScheduled` condition counts as already told, so a new leader (or a
    /// restarted one) does not send the same FailedScheduling again.
    async fn explain_wait(&mut self, pod: &Pod, pk: &str, why: &str, report: &mut Report) -> bool {
        if self.last_reason.get(pk).map(String::as_str) == Some(why) {
            return false;
        }
        self.last_reason.insert(pk.to_string(), why.to_string());
        let told = scheduled_condition(pod);
        if told.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(why)
        }) {
            return false;
        }
        // The transition's time: kept while the pod stays unschedulable (only the message
        // changes), as the API's condition semantics and kube-scheduler have it.
        let at = match told.filter(|c| c.status == "False") {
            Some(c) => c
                .last_transition_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| rfc3339(self.clock(), false)),
            None => rfc3339(self.clock(), false),
        };
        let condition = Action::PodScheduledCondition {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            scheduled: false,
            reason: "Unschedulable".into(),
            message: why.to_string(),
            at,
        };
        if let Err(e) = self.applier.apply(&condition).await {
            report.errors.push(e.to_string());
        }
        tell(
            &self.applier,
            &self.identity,
            pod,
            true,
            "FailedScheduling",
            why,
            self.clock(),
            &mut report.errors,
        )
        .await;
        true
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

/// The pod's `PodScheduled` condition, if it has one.
fn scheduled_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")
}

/// Annotates and binds one queued pod, then records its `Scheduled` event (best effort: an
/// event that fails is reported, the binding stands). Returns the binding's result and the
/// event's errors.
async fn bind_one<A: Applier>(
    applier: &A,
    identity: &str,
    q: &Queued,
    clock: (f64, std::time::Instant),
) -> BindResult {
    let mut node_recorded = false;
    for a in &q.actions {
        if let Err(e) = applier.apply(a).await {
            let mut errors = Vec::new();
            if node_recorded {
                for u in &q.undo {
                    if let Err(ue) = applier.apply(u).await {
                        errors.push(format!("{}: rolling back {}: {ue}", q.pk, u.describe()));
                    }
                }
            }
            return (Err(e.to_string()), errors);
        }
        node_recorded |= matches!(a, Action::PatchNodeMeta { .. });
    }
    let p = &q.placement;
    let mut errors = Vec::new();
    tell(
        applier,
        identity,
        &q.pod,
        false,
        "Scheduled",
        &format!(
            "Successfully assigned {} to {} ({}, {} %)",
            q.pk,
            p.node,
            gpus_text(p),
            p.share_pct
        ),
        clock.0 + clock.1.elapsed().as_secs_f64(),
        &mut errors,
    )
    .await;
    (Ok(()), errors)
}

/// "GPU 0", or "GPUs 0,1,2,3" for a tensor-parallel placement.
fn gpus_text(p: &gpusched_policies::decision::Placement) -> String {
    if p.gpus.len() > 1 {
        let list: Vec<String> = p.gpus.iter().map(u8::to_string).collect();
        format!("GPUs {}", list.join(","))
    } else {
        format!("GPU {}", p.gpu)
    }
}

/// Records an Event about `pod`. Events are best effort: a failure is reported, not fatal.
#[allow(clippy::too_many_arguments)]
async fn tell<A: Applier>(
    applier: &A,
    identity: &str,
    pod: &Pod,
    warning: bool,
    reason: &str,
    note: &str,
    now: f64,
    errors: &mut Vec<String>,
) {
    let event = Action::PodEvent {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        pod: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone(),
        warning,
        reason: reason.into(),
        note: note.to_string(),
        instance: identity.to_string(),
        at: rfc3339(now, true),
    };
    if let Err(e) = applier.apply(&event).await {
        errors.push(e.to_string());
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
        tracing::info!(
            lease_namespace = %opts.lease.namespace,
            lease = %opts.lease.name,
            "dry run: the Lease is not taken (that would be a write); this replica prints as if it led"
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
    // A reconcile that overran its period must not be followed by a burst of catch-up ticks.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned_no_configmap = false;
    let mut shown_notes = std::collections::BTreeSet::new();
    let stop = ctl.stop_flag();
    // Once SIGTERM has come, `shutdown` is never polled again (it has completed) and no new
    // reconcile, rollout or scaling starts: client-go's leader election cancels the same way.
    let mut stopping = false;
    loop {
        if !stopping {
            // `biased`: a shutdown that is ready wins over a tick that is ready too (after a
            // long reconcile both are), so a stopping replica never starts another round.
            tokio::select! {
                biased;
                _ = &mut shutdown => stopping = true,
                _ = tick.tick() => {}
            }
        }
        if stopping {
            elector.abort();
            let _ = elector.await;
            if *leading.borrow() && !dry_run {
                match crate::lease::release(&leases, &opts.lease).await {
                    Ok(()) => {
                        tracing::info!(identity = %opts.lease.identity, "released leadership")
                    }
                    Err(e) => tracing::warn!(
                        lease_namespace = %opts.lease.namespace,
                        lease = %opts.lease.name,
                        error = %e,
                        "releasing the lease failed"
                    ),
                }
            }
            return Ok(());
        }
        if !*leading.borrow() {
            continue;
        }
        let now = k8s_openapi::jiff::Timestamp::now();
        let (ns, ps, cm) = cluster.snapshot();
        if cm.is_none() && !warned_no_configmap {
            warned_no_configmap = true;
            tracing::warn!(
                namespace = %cm_ns,
                configmap = %cm_name,
                "device plugin ConfigMap not found; sharing placements wait until it exists"
            );
        }
        let now_s = now.as_millisecond() as f64 / 1000.0;
        // SIGTERM during the reconcile asks it to stop at its next safe point (between pods;
        // a rollout in progress finishes or rolls back, never cut in half) and ends the loop.
        let report = {
            let rec = ctl.reconcile(&ns, &ps, cm.as_ref(), now_s);
            tokio::pin!(rec);
            tokio::select! {
                biased;
                r = &mut rec => r,
                _ = &mut shutdown => {
                    stopping = true;
                    stop.store(true, Ordering::SeqCst);
                    tracing::info!("stopping after the current step of this reconcile");
                    rec.await
                }
            }
        };
        if !stopping {
            if let Some(a) = autoscale.as_mut() {
                a.tick(&mut ctl, &ns, &ps, now_s).await;
            }
        }
        for e in &report.errors {
            tracing::error!(error = %e, "reconcile");
        }
        // Notes (a node left out of the view, stale GPU metrics, …) are printed when they
        // appear, not at every reconcile.
        let notes: std::collections::BTreeSet<String> = report.notes.iter().cloned().collect();
        for n in notes.difference(&shown_notes) {
            tracing::info!(note = %n, "reconcile");
        }
        shown_notes = notes;
        for (node, o) in &report.rollouts {
            tracing::info!(
                %node,
                outcome = %serde_json::to_string(o).unwrap_or_default(),
                "rollout"
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
                tracing::warn!(
                    lease_namespace = %cfg.namespace,
                    lease = %cfg.name,
                    error = %e,
                    "lease unavailable; not acting this round"
                );
                false
            }
        };
        if lead != *leading.borrow() {
            tracing::info!(
                identity = %cfg.identity,
                "{} leadership",
                if lead { "acquired" } else { "lost" }
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
