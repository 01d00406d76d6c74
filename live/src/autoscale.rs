//! Live autoscaling: the simulator's autoscalers ([`gpusched_policies::autoscale`], the very same
//! `Box<dyn Autoscaler>` code) scaling real Deployments through their scale subresource.
//!
//! * **Opt-in.** A Deployment in a managed namespace with the label `gpusched.io/autoscale=true`,
//!   the annotations `gpusched.io/max-replicas` (required) and `gpusched.io/min-replicas`
//!   (default 1), and optionally `gpusched.io/autoscaler: seeds|hpa|none` overriding the
//!   controller-wide policy (`--autoscaler FILE`, the scenario's `[autoscaler]` table; default:
//!   the simulator's default, the seeds' rule). A bad value is a per-Deployment error naming the
//!   object, the key and the allowed values; the Deployment is then left alone.
//! * **State.** One autoscaler per Deployment lives across evaluations (the stabilisation windows
//!   need their history); it is rebuilt when the Deployment's policy changes and dropped when the
//!   Deployment opts out or disappears.
//! * **Period.** Evaluations run every monitoring period (30 s, as the simulator's tick), whatever
//!   the placement period; the window of served requests, cost and efficiency is the time since
//!   the previous evaluation.
//! * **Signals** come from [`crate::signals`]; while a signal the policy reads is unknown the
//!   policy is not asked at all, so missing metrics never scale a Deployment down (as with the
//!   Kubernetes HPA).
//! * **Output.** A change is a [`Decision::Scale`] (decisions.jsonl, the simulator's record) and an
//!   [`Action::Scale`] sent through the controller's [`Applier`] (so `--dry-run` prints the
//!   `PATCH …/deployments/NAME/scale` instead). [`Scope`] refuses anything outside the managed
//!   namespaces, and never touches kube-system.
//! * **No fighting.** A Deployment that an autoscaling/v2 `HorizontalPodAutoscaler` targets is
//!   skipped with a note: two autoscalers writing one `spec.replicas` would flap.
//! * **Zero replicas** (someone scaled the Deployment to 0) pauses autoscaling, as the HPA does.

use crate::apply::{Action, Applier, Scope};
use crate::controller::{Controller, Report};
use crate::keys;
use crate::signals::{
    counter_increase, gpu_share, scrape_url, service_signals, HttpScraper, LiveSignals,
    MetricNames, PodMetrics, ReadyPod, Scraper, Signal, SignalInput,
};
use crate::view::annotation;
use gpusched_policies::autoscale::{Autoscaler, AutoscalerConfig, HpaConfig, SeedsRuleConfig};
use gpusched_policies::decision::{Decision, ScaleDecision};
use gpusched_policies::gpu::GpuCatalog;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::core::{Selector, SelectorExt};
use std::collections::{BTreeMap, BTreeSet};

/// Controller-wide autoscaling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleOptions {
    /// The policy of Deployments without a `gpusched.io/autoscaler` annotation.
    pub config: AutoscalerConfig,
    /// Seconds between evaluations (the simulator's monitoring tick, 30 s).
    pub period_s: f64,
    pub metrics: MetricNames,
    /// $/kWh for the energy part of the cost per inference (the simulator's default, 0.13).
    pub energy_usd_per_kwh: f64,
    /// Agent summaries older than this are not used, seconds.
    pub metrics_max_age_s: f64,
    pub catalog: GpuCatalog,
}

impl Default for AutoscaleOptions {
    fn default() -> Self {
        Self {
            config: AutoscalerConfig::default(),
            period_s: 30.0,
            metrics: MetricNames::default(),
            energy_usd_per_kwh: 0.13,
            metrics_max_age_s: 120.0,
            catalog: GpuCatalog::default(),
        }
    }
}

/// What one opted-in Deployment asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentPolicy {
    pub namespace: String,
    pub name: String,
    pub min: u32,
    pub max: u32,
    pub config: AutoscalerConfig,
}

fn kind_name(c: &AutoscalerConfig) -> &'static str {
    match c {
        AutoscalerConfig::None => "none",
        AutoscalerConfig::Seeds(_) => "seeds",
        AutoscalerConfig::Hpa(_) => "hpa",
    }
}

/// A Deployment's autoscaling policy from its label and annotations: `Ok(None)` when it has not
/// opted in, `Err` (naming the Deployment, the key and the allowed values) when a value is bad.
pub fn deployment_policy(
    d: &Deployment,
    default: &AutoscalerConfig,
) -> Result<Option<DeploymentPolicy>, String> {
    let m = &d.metadata;
    let namespace = m.namespace.clone().unwrap_or_default();
    let name = m.name.clone().unwrap_or_default();
    let obj = format!("deployment {namespace}/{name}");
    match m.labels.as_ref().and_then(|l| l.get(keys::AUTOSCALE)) {
        None => return Ok(None),
        Some(v) if v == "false" => return Ok(None),
        Some(v) if v == "true" => {}
        Some(v) => {
            return Err(format!(
                "{obj}: label {}={v:?} is not valid: use \"true\" (or \"false\" to opt out)",
                keys::AUTOSCALE
            ))
        }
    }
    let count = |key: &str, v: &str| -> Result<u32, String> {
        v.trim().parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            format!("{obj}: annotation {key}={v:?} is not valid: a whole number of replicas, at least 1")
        })
    };
    let min = match annotation(m, keys::MIN_REPLICAS) {
        Some(v) => count(keys::MIN_REPLICAS, v)?,
        None => 1,
    };
    let max = match annotation(m, keys::MAX_REPLICAS) {
        Some(v) => count(keys::MAX_REPLICAS, v)?,
        None => {
            return Err(format!(
                "{obj}: annotation {} is missing: the most replicas the autoscaler may create (a whole number ≥ {} = {min})",
                keys::MAX_REPLICAS,
                keys::MIN_REPLICAS
            ))
        }
    };
    if max < min {
        return Err(format!(
            "{obj}: annotation {}={max} is below {}={min}",
            keys::MAX_REPLICAS,
            keys::MIN_REPLICAS
        ));
    }
    let config = match annotation(m, keys::AUTOSCALER).map(str::trim) {
        None => default.clone(),
        // The controller's own settings when the kind matches; that kind's defaults otherwise.
        Some(k) if k == kind_name(default) => default.clone(),
        Some("none") => AutoscalerConfig::None,
        Some("seeds") => AutoscalerConfig::Seeds(SeedsRuleConfig::default()),
        Some("hpa") => AutoscalerConfig::Hpa(HpaConfig::default()),
        Some(v) => {
            return Err(format!(
                "{obj}: annotation {}={v:?} is not valid: use seeds, hpa or none",
                keys::AUTOSCALER
            ))
        }
    };
    Ok(Some(DeploymentPolicy {
        namespace,
        name,
        min,
        max,
        config,
    }))
}

/// The name of an autoscaling/v2 HorizontalPodAutoscaler that targets this Deployment, if any.
pub fn competing_hpa<'a>(
    hpas: &'a [HorizontalPodAutoscaler],
    namespace: &str,
    name: &str,
) -> Option<&'a str> {
    hpas.iter()
        .filter(|h| h.metadata.namespace.as_deref() == Some(namespace))
        .find(|h| {
            h.spec.as_ref().is_some_and(|s| {
                let t = &s.scale_target_ref;
                t.kind == "Deployment"
                    && t.name == name
                    && t.api_version
                        .as_deref()
                        .is_none_or(|v| v.starts_with("apps/"))
            })
        })
        .and_then(|h| h.metadata.name.as_deref())
}

fn pod_key(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or("")
    )
}

fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Deployment's ready pods: same namespace, matched by its selector (pods of an old
/// ReplicaSet during a rollout are included, as `status.readyReplicas` includes them).
pub fn ready_pods<'a>(d: &Deployment, pods: &'a [Pod]) -> Result<Vec<&'a Pod>, String> {
    let ns = d.metadata.namespace.as_deref().unwrap_or("");
    let obj = format!(
        "deployment {ns}/{}",
        d.metadata.name.as_deref().unwrap_or("")
    );
    let sel = d
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .ok_or_else(|| format!("{obj}: no spec"))?;
    let sel: Selector = sel
        .try_into()
        .map_err(|e| format!("{obj}: selector not understood: {e}"))?;
    if sel.selects_all() {
        return Err(format!("{obj}: empty selector"));
    }
    let empty = BTreeMap::new();
    Ok(pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| sel.matches(p.metadata.labels.as_ref().unwrap_or(&empty)))
        .filter(|p| pod_ready(p))
        .collect())
}

/// What the live autoscaler reads at one evaluation (snapshots of the watches).
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub deployments: &'a [Deployment],
    pub hpas: &'a [HorizontalPodAutoscaler],
    pub pods: &'a [Pod],
    pub nodes: &'a [Node],
}

/// One proposed change.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub decision: ScaleDecision,
    pub action: Action,
}

/// What one evaluation did, for logs and tests.
#[derive(Debug, Default)]
pub struct AutoscaleReport {
    /// False when the monitoring period had not elapsed (nothing was read or decided).
    pub evaluated: bool,
    /// Changes decided this evaluation.
    pub proposals: Vec<Proposal>,
    /// Decisions whose scale request was accepted (logged to decisions.jsonl).
    pub applied: Vec<Decision>,
    /// The signals each evaluated Deployment produced, keyed namespace/name.
    pub signals: BTreeMap<String, LiveSignals>,
    pub notes: Vec<String>,
    pub errors: Vec<String>,
}

struct Tracked {
    config: AutoscalerConfig,
    scaler: Box<dyn Autoscaler>,
    /// Last served-counter reading per pod uid.
    served: BTreeMap<String, f64>,
}

struct Candidate<'a> {
    policy: DeploymentPolicy,
    replicas: u32,
    ready_replicas: u32,
    pods: Vec<&'a Pod>,
}

/// One autoscaler per opted-in Deployment, kept across reconciles.
pub struct LiveAutoscaler {
    pub opts: AutoscaleOptions,
    last_eval: Option<f64>,
    tracked: BTreeMap<String, Tracked>,
}

impl LiveAutoscaler {
    pub fn new(opts: AutoscaleOptions) -> Self {
        Self {
            opts,
            last_eval: None,
            tracked: BTreeMap::new(),
        }
    }

    /// Whether a monitoring period has passed since the last evaluation.
    pub fn due(&self, now_unix_s: f64) -> bool {
        self.last_eval
            .is_none_or(|l| now_unix_s - l >= self.opts.period_s - 1e-6)
    }

    /// The Deployments to evaluate, with notes and errors about the others.
    fn candidates<'a>(
        &self,
        scope: &Scope,
        obs: &Observed<'a>,
        notes: &mut Vec<String>,
        errors: &mut Vec<String>,
    ) -> Vec<Candidate<'a>> {
        let mut out = Vec::new();
        for d in obs.deployments {
            let ns = d.metadata.namespace.as_deref().unwrap_or("");
            if !scope.manages(ns) {
                continue;
            }
            let policy = match deployment_policy(d, &self.opts.config) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let obj = format!("deployment {}/{}", policy.namespace, policy.name);
            if let Some(h) = competing_hpa(obs.hpas, ns, &policy.name) {
                notes.push(format!(
                    "{obj}: skipped: HorizontalPodAutoscaler {ns}/{h} scales it (two autoscalers on one Deployment would fight)"
                ));
                continue;
            }
            if policy.config == AutoscalerConfig::None {
                continue;
            }
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            if replicas <= 0 {
                notes.push(format!(
                    "{obj}: scaled to zero by someone else: autoscaling paused until it has replicas again"
                ));
                continue;
            }
            let pods = match ready_pods(d, obs.pods) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let ready = d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                .max(0);
            out.push(Candidate {
                policy,
                replicas: replicas as u32,
                ready_replicas: ready as u32,
                pods,
            });
        }
        out
    }

    /// The metrics pages to read for the next evaluation, keyed by pod namespace/name (`Err`:
    /// why a pod's page cannot be located).
    pub fn scrape_targets(
        &self,
        scope: &Scope,
        obs: &Observed,
    ) -> BTreeMap<String, Result<String, String>> {
        let (mut n, mut e) = (Vec::new(), Vec::new());
        self.candidates(scope, obs, &mut n, &mut e)
            .iter()
            .flat_map(|c| c.pods.iter())
            .map(|p| (pod_key(p), scrape_url(p)))
            .collect()
    }

    /// One evaluation from what was read (`scrapes`: each pod's metrics page or why it could not
    /// be read). Pure apart from the autoscalers' own history; decides, does not apply.
    pub fn evaluate(
        &mut self,
        scope: &Scope,
        obs: &Observed,
        scrapes: &BTreeMap<String, Result<String, String>>,
        now_unix_s: f64,
    ) -> AutoscaleReport {
        let mut r = AutoscaleReport {
            evaluated: true,
            ..Default::default()
        };
        let period = self.opts.period_s;
        let window_s = self.last_eval.map(|l| now_unix_s - l).unwrap_or(period);
        // After a long gap (leadership lost, controller paused) old counter readings would
        // spread a long window's requests over it: start the served counters afresh.
        let fresh_baselines = window_s > 3.0 * period.max(1.0);
        self.last_eval = Some(now_unix_s);
        let cands = self.candidates(scope, obs, &mut r.notes, &mut r.errors);
        let live: BTreeSet<String> = cands
            .iter()
            .map(|c| format!("{}/{}", c.policy.namespace, c.policy.name))
            .collect();
        self.tracked.retain(|k, _| live.contains(k));
        for c in cands {
            let key = format!("{}/{}", c.policy.namespace, c.policy.name);
            let t = match self.tracked.get_mut(&key) {
                Some(t) if t.config == c.policy.config => t,
                _ => {
                    let Some(scaler) = c.policy.config.build() else {
                        continue;
                    };
                    self.tracked.insert(
                        key.clone(),
                        Tracked {
                            config: c.policy.config.clone(),
                            scaler,
                            served: BTreeMap::new(),
                        },
                    );
                    self.tracked.get_mut(&key).expect("inserted above")
                }
            };
            if fresh_baselines {
                t.served.clear();
            }
            let mut served_now = BTreeMap::new();
            let mut ready = Vec::with_capacity(c.pods.len());
            for p in &c.pods {
                let pk = pod_key(p);
                let uid = p.metadata.uid.clone().unwrap_or_else(|| pk.clone());
                let metrics = match scrapes.get(&pk) {
                    Some(Ok(text)) => Ok(PodMetrics::from_text(text, &self.opts.metrics)),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err(format!("pod {pk}: not scraped")),
                };
                let served_total = metrics.as_ref().ok().and_then(|m| m.served_total);
                let served_in_window =
                    served_total.and_then(|v| counter_increase(t.served.get(&uid).copied(), v));
                if let Some(v) = served_total {
                    served_now.insert(uid, v);
                }
                ready.push(ReadyPod {
                    name: pk,
                    metrics,
                    served_in_window,
                    gpu: gpu_share(
                        p,
                        obs.nodes,
                        obs.pods,
                        now_unix_s,
                        self.opts.metrics_max_age_s,
                    ),
                });
            }
            t.served = served_now;
            let sig = service_signals(&SignalInput {
                t_s: now_unix_s,
                window_s,
                replicas: c.replicas,
                ready_replicas: c.ready_replicas,
                pods: ready,
                catalog: &self.opts.catalog,
                energy_usd_per_kwh: self.opts.energy_usd_per_kwh,
            });
            let missing = sig.missing_among(&Signal::needed_by(&t.config));
            if !missing.is_empty() {
                r.notes.push(format!(
                    "deployment {key}: holding {} replicas, {} not asked: unknown {} (missing metrics never scale down)",
                    c.replicas,
                    t.scaler.name(),
                    missing.join("; ")
                ));
                r.signals.insert(key, sig);
                continue;
            }
            let rec = t.scaler.recommend(&sig.signals, c.policy.min, c.policy.max);
            if rec.desired != c.replicas {
                r.proposals.push(Proposal {
                    decision: ScaleDecision {
                        service: key.clone(),
                        autoscaler: t.scaler.name(),
                        from: c.replicas,
                        to: rec.desired,
                        reason: rec.reason,
                    },
                    action: Action::Scale {
                        namespace: c.policy.namespace.clone(),
                        deployment: c.policy.name.clone(),
                        replicas: rec.desired,
                    },
                });
            }
            r.signals.insert(key, sig);
        }
        r
    }

    /// Reads the pods' metrics, evaluates, and applies each change through the controller's
    /// applier, logging it in the controller's decisions.jsonl. Does nothing before the
    /// monitoring period has elapsed.
    pub async fn tick<A: Applier, S: Scraper>(
        &mut self,
        ctl: &mut Controller<A>,
        obs: &Observed<'_>,
        scraper: &S,
        now_unix_s: f64,
    ) -> AutoscaleReport {
        if !self.due(now_unix_s) {
            return AutoscaleReport::default();
        }
        let targets = self.scrape_targets(&ctl.scope, obs);
        let reads = futures::future::join_all(targets.into_iter().map(|(k, url)| async move {
            let page = match url {
                Ok(u) => scraper.scrape(&u).await,
                Err(e) => Err(e),
            };
            (k, page)
        }))
        .await;
        let scrapes: BTreeMap<String, Result<String, String>> = reads.into_iter().collect();
        let mut r = self.evaluate(&ctl.scope, obs, &scrapes, now_unix_s);
        for p in &r.proposals {
            match ctl.applier.apply(&p.action).await {
                Ok(()) => {
                    let mut log = Report::default();
                    ctl.log(now_unix_s, Decision::Scale(p.decision.clone()), &mut log);
                    r.errors.extend(log.errors);
                    r.applied.extend(log.decisions);
                }
                Err(e) => r.errors.push(format!("{}: {e}", p.action.describe())),
            }
        }
        r
    }
}

/// The watch side: Deployments (labelled `gpusched.io/autoscale`) and HPAs of each managed
/// namespace, kept in reflector stores, plus the live autoscaler and its HTTP scraper.
pub struct Runner {
    pub autoscaler: LiveAutoscaler,
    deployments: Vec<kube::runtime::reflector::Store<Deployment>>,
    hpas: Vec<kube::runtime::reflector::Store<HorizontalPodAutoscaler>>,
    scraper: HttpScraper,
    /// Notes and errors printed last time (each is printed when it appears, not every period).
    printed: BTreeSet<String>,
    /// The watch tasks end with the runner (and so with the controller).
    _watches: crate::controller::AbortOnDrop,
}

impl Runner {
    /// Starts the watches (one per managed namespace, so only namespaced read permissions are
    /// needed). `None` when autoscaling is off.
    pub fn start(
        client: &kube::Client,
        scope: &Scope,
        opts: Option<AutoscaleOptions>,
    ) -> Option<Self> {
        use futures::StreamExt;
        use kube::runtime::{reflector, watcher, WatchStreamExt};
        let opts = opts?;
        let mut deployments = Vec::new();
        let mut hpas = Vec::new();
        let mut tasks = Vec::new();
        for ns in &scope.managed {
            let (ds, dw) = reflector::store::<Deployment>();
            let (hs, hw) = reflector::store::<HorizontalPodAutoscaler>();
            let d = reflector(
                dw,
                watcher(
                    kube::Api::<Deployment>::namespaced(client.clone(), ns),
                    watcher::Config::default().labels(keys::AUTOSCALE),
                ),
            )
            .default_backoff()
            .applied_objects::<Deployment>();
            let h = reflector(
                hw,
                watcher(
                    kube::Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns),
                    watcher::Config::default(),
                ),
            )
            .default_backoff()
            .applied_objects::<HorizontalPodAutoscaler>();
            tasks.push(tokio::spawn(d.for_each(|_| futures::future::ready(()))).abort_handle());
            tasks.push(tokio::spawn(h.for_each(|_| futures::future::ready(()))).abort_handle());
            deployments.push(ds);
            hpas.push(hs);
        }
        tracing::info!(
            autoscaler = kind_name(&opts.config),
            period_s = opts.period_s,
            label = %format_args!("{}=true", keys::AUTOSCALE),
            "gpusched autoscaler: watching labelled Deployments"
        );
        Some(Self {
            autoscaler: LiveAutoscaler::new(opts),
            deployments,
            hpas,
            scraper: HttpScraper::default(),
            printed: BTreeSet::new(),
            _watches: crate::controller::AbortOnDrop(tasks),
        })
    }

    fn ready(&self) -> bool {
        use futures::FutureExt;
        self.deployments
            .iter()
            .all(|s| matches!(s.wait_until_ready().now_or_never(), Some(Ok(()))))
            && self
                .hpas
                .iter()
                .all(|s| matches!(s.wait_until_ready().now_or_never(), Some(Ok(()))))
    }

    /// One call per reconcile of the leader; evaluates when the monitoring period is due and
    /// prints what it did.
    pub async fn tick<A: Applier>(
        &mut self,
        ctl: &mut Controller<A>,
        nodes: &[Node],
        pods: &[Pod],
        now_unix_s: f64,
    ) {
        if !self.autoscaler.due(now_unix_s) {
            return;
        }
        if !self.ready() {
            // The HPA list must be known before anything is scaled (never fight an HPA).
            self.print_new(vec![
                "note: autoscaler: waiting for the Deployment and HorizontalPodAutoscaler watches (RBAC: list/watch deployments and horizontalpodautoscalers in each managed namespace)".into(),
            ]);
            return;
        }
        let ds: Vec<Deployment> = self
            .deployments
            .iter()
            .flat_map(|s| s.state())
            .map(|d| (*d).clone())
            .collect();
        let hs: Vec<HorizontalPodAutoscaler> = self
            .hpas
            .iter()
            .flat_map(|s| s.state())
            .map(|h| (*h).clone())
            .collect();
        let obs = Observed {
            deployments: &ds,
            hpas: &hs,
            pods,
            nodes,
        };
        let r = self
            .autoscaler
            .tick(ctl, &obs, &self.scraper, now_unix_s)
            .await;
        for d in &r.applied {
            if let Decision::Scale(s) = d {
                tracing::info!(
                    service = %s.service,
                    from = s.from,
                    to = s.to,
                    autoscaler = %s.autoscaler,
                    reason = %s.reason,
                    "scaled"
                );
            }
        }
        let lines = r
            .errors
            .iter()
            .map(|e| format!("error: {e}"))
            .chain(r.notes.iter().map(|n| format!("note: {n}")))
            .collect();
        self.print_new(lines);
    }

    /// Logs the errors and notes not already logged at the previous tick.
    fn print_new(&mut self, lines: Vec<String>) {
        for l in &lines {
            if !self.printed.contains(l) {
                match l.strip_prefix("error: ") {
                    Some(e) => tracing::error!(error = %e, "autoscaling"),
                    None => tracing::info!(note = %l.trim_start_matches("note: "), "autoscaling"),
                }
            }
        }
        self.printed = lines.into_iter().collect();
    }
}
