//! What bound a run: the constraints that kept its SLOs from being met, measured while it ran
//! (not guessed afterwards). The simulator feeds a [`Tracker`] at a few points — every
//! monitoring window, every refused placement, every request that leaves a queue, every
//! scale-up — and [`Tracker::report`] turns the counters into the `binding_constraints` section
//! of summary.json, with the findings ranked by the share of the run they held.
//!
//! The tracker only reads the simulation's state: a run with it gives the same timeseries and
//! decisions as one without.

use crate::metrics::ServiceSummary;
use crate::state::{GpuSim, Replica, ReplicaState, ServiceSim};
use gpusched_policies::autoscale::AutoscalerConfig;
use gpusched_policies::view::NodeView;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A finding is reported once it held for at least this share of the run (1 %).
const MIN_SHARE: f64 = 0.01;
/// Queueing dominates a service's latency above this share of its mean latency.
const QUEUE_DOMINATES: f64 = 0.5;

#[derive(Debug, Clone, Default)]
struct SvcTrack {
    name: String,
    max_replicas: u32,
    llm: bool,
    peak: u32,
    at_cap_s: f64,
    at_cap_backlogged_s: f64,
    backlogged_s: f64,
    pending_replica_s: f64,
    pending_backlogged_s: f64,
    wait_us: f64,
    waits: u64,
    refusals: BTreeMap<String, u64>,
    no_fallback: u64,
    backlog_since: Option<f64>,
    lag_sum_s: f64,
    lag_max_s: f64,
    lags: u64,
}

/// The counters, kept by the simulator while it runs.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    svcs: Vec<SvcTrack>,
    models: Vec<String>,
    model_gpus: Vec<u32>,
    model_exhausted_s: Vec<f64>,
    model_no_whole_s: Vec<f64>,
    model_exhausted_pending_s: Vec<f64>,
    up_stabilisation_s: Option<f64>,
    duration_s: f64,
}

/// Why placements were refused, by the filter plugin named in the engine's reason.
fn refusing_filter(reason: &str) -> String {
    if let Some(rest) = reason.split_once("rejected by ").map(|(_, r)| r) {
        return rest.split(':').next().unwrap_or(rest).trim().to_string();
    }
    if reason.contains("tensor") || reason.contains("span") {
        return "Admission (tensor parallel)".to_string();
    }
    "no nodes".to_string()
}

/// Whether a refusal is a sharing mode that may not fall back to another GPU family or mode.
fn is_no_fallback(reason: &str) -> bool {
    reason.contains("fall back") || reason.contains("span")
}

impl Tracker {
    pub(crate) fn new(
        services: &[ServiceSim],
        models: &[gpusched_policies::GpuModel],
        gpus: &[GpuSim],
        autoscaler: &AutoscalerConfig,
    ) -> Self {
        let mut model_gpus = vec![0u32; models.len()];
        for g in gpus {
            if let Ok(m) = models.binary_search(&g.model) {
                model_gpus[m] += 1;
            }
        }
        Tracker {
            svcs: services
                .iter()
                .map(|s| SvcTrack {
                    name: s.spec.name.clone(),
                    max_replicas: s.spec.max_replicas,
                    llm: s.llm.is_some(),
                    ..Default::default()
                })
                .collect(),
            models: models.iter().map(|m| m.as_str().to_string()).collect(),
            model_exhausted_s: vec![0.0; models.len()],
            model_no_whole_s: vec![0.0; models.len()],
            model_exhausted_pending_s: vec![0.0; models.len()],
            model_gpus,
            up_stabilisation_s: match autoscaler {
                AutoscalerConfig::None => None,
                AutoscalerConfig::Seeds(c) => Some(c.up_stabilisation_s),
                AutoscalerConfig::Hpa(c) => Some(c.up_stabilisation_s),
            },
            duration_s: 0.0,
        }
    }

    /// One monitoring window of `window_s` ending at `t_s`.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site (the monitor tick) passes the simulator's slices; a params struct would only rename them"
    )]
    pub(crate) fn observe(
        &mut self,
        t_s: f64,
        window_s: f64,
        services: &[ServiceSim],
        replicas: &[Replica],
        gpus: &[GpuSim],
        nodes: &[NodeView],
        models: &[gpusched_policies::GpuModel],
    ) {
        self.duration_s = t_s;
        let mut any_pending = false;
        for (tr, svc) in self.svcs.iter_mut().zip(services) {
            let (mut n, mut pending) = (0u32, 0u32);
            let mut waiting = svc.queue.len();
            for &r in &svc.replicas {
                let rep = &replicas[r as usize];
                match rep.state {
                    ReplicaState::Ready | ReplicaState::Starting => n += 1,
                    ReplicaState::Pending => {
                        n += 1;
                        pending += 1;
                    }
                    _ => {}
                }
                if let Some(e) = rep.llm.as_ref() {
                    waiting += e.waiting();
                }
            }
            tr.peak = tr.peak.max(n);
            tr.pending_replica_s += pending as f64 * window_s;
            any_pending |= pending > 0;
            if pending > 0 && waiting > 0 {
                tr.pending_backlogged_s += window_s;
            }
            let at_cap = n >= tr.max_replicas;
            if at_cap {
                tr.at_cap_s += window_s;
            }
            if waiting > 0 {
                tr.backlogged_s += window_s;
                if at_cap {
                    tr.at_cap_backlogged_s += window_s;
                    tr.backlog_since = None;
                } else if tr.backlog_since.is_none() {
                    tr.backlog_since = Some(t_s);
                }
            } else {
                tr.backlog_since = None;
            }
        }
        let mut full = vec![0u32; models.len()];
        let mut whole = vec![0u32; models.len()];
        for g in gpus {
            let Ok(m) = models.binary_search(&g.model) else {
                continue;
            };
            let v = &nodes[g.node as usize].gpus[g.gpu as usize];
            if v.share_free_pct() == 0 {
                full[m] += 1;
            }
            if v.is_free() {
                whole[m] += 1;
            }
        }
        for m in 0..models.len() {
            if self.model_gpus[m] > 0 && full[m] == self.model_gpus[m] {
                self.model_exhausted_s[m] += window_s;
            }
            if self.model_gpus[m] > 0 && whole[m] == 0 {
                self.model_no_whole_s[m] += window_s;
                if any_pending {
                    self.model_exhausted_pending_s[m] += window_s;
                }
            }
        }
    }

    /// A placement of one of service `s`'s replicas was refused with `reason`.
    pub(crate) fn refused(&mut self, s: usize, reason: &str) {
        let tr = &mut self.svcs[s];
        *tr.refusals.entry(refusing_filter(reason)).or_default() += 1;
        if is_no_fallback(reason) {
            tr.no_fallback += 1;
        }
    }

    /// A request of service `s` left its queue for a replica after waiting `wait_us`.
    #[inline]
    pub(crate) fn waited(&mut self, s: usize, wait_us: i64) {
        let tr = &mut self.svcs[s];
        tr.wait_us += wait_us.max(0) as f64;
        tr.waits += 1;
    }

    /// The autoscaler added replicas to service `s` at `t_s`.
    pub(crate) fn scaled_up(&mut self, s: usize, t_s: f64) {
        let tr = &mut self.svcs[s];
        if let Some(since) = tr.backlog_since.take() {
            let lag = (t_s - since).max(0.0);
            tr.lag_sum_s += lag;
            tr.lag_max_s = tr.lag_max_s.max(lag);
            tr.lags += 1;
        }
    }

    /// The measured report, given the run's per-service summaries (for latencies).
    pub fn report(&self, duration_s: f64, services: &[ServiceSummary]) -> BindingConstraints {
        let dur = if duration_s > 0.0 {
            duration_s
        } else {
            self.duration_s.max(1e-9)
        };
        let mut out = BindingConstraints {
            services: Vec::new(),
            gpu_models: BTreeMap::new(),
            up_stabilisation_s: self.up_stabilisation_s,
            findings: Vec::new(),
            primary: None,
        };
        for (tr, sum) in self.svcs.iter().zip(services) {
            let latency = if tr.llm {
                let (ttft, e2e) = sum.llm.as_ref().map_or((0.0, sum.latency.mean_ms), |l| {
                    (l.ttft.mean_ms, sum.latency.mean_ms)
                });
                LatencySplit {
                    mean_ms: e2e,
                    queue_ms: None,
                    service_ms: None,
                    ttft_ms: Some(ttft),
                    decode_ms: Some((e2e - ttft).max(0.0)),
                    queue_share: None,
                }
            } else {
                let q = if tr.waits > 0 {
                    tr.wait_us / tr.waits as f64 / 1000.0
                } else {
                    0.0
                };
                let mean = sum.latency.mean_ms;
                let q = q.min(mean);
                LatencySplit {
                    mean_ms: mean,
                    queue_ms: Some(q),
                    service_ms: Some((mean - q).max(0.0)),
                    ttft_ms: None,
                    decode_ms: None,
                    queue_share: Some(if mean > 0.0 { q / mean } else { 0.0 }),
                }
            };
            out.services.push(ServiceBinding {
                name: tr.name.clone(),
                max_replicas: tr.max_replicas,
                peak_replicas: tr.peak,
                at_cap_s: tr.at_cap_s,
                at_cap_backlogged_s: tr.at_cap_backlogged_s,
                backlogged_s: tr.backlogged_s,
                pending_replica_s: tr.pending_replica_s,
                pending_backlogged_s: tr.pending_backlogged_s,
                refusals: tr.refusals.clone(),
                no_fallback_refusals: tr.no_fallback,
                latency,
                scale_up_lag: ScaleUpLag {
                    episodes: tr.lags,
                    mean_s: if tr.lags > 0 {
                        tr.lag_sum_s / tr.lags as f64
                    } else {
                        0.0
                    },
                    max_s: tr.lag_max_s,
                },
            });
        }
        for (m, name) in self.models.iter().enumerate() {
            out.gpu_models.insert(
                name.clone(),
                ModelBinding {
                    gpus: self.model_gpus[m],
                    exhausted_s: self.model_exhausted_s[m],
                    no_whole_gpu_free_s: self.model_no_whole_s[m],
                    exhausted_while_pending_s: self.model_exhausted_pending_s[m],
                },
            );
        }
        out.findings = findings(&out, dur);
        out.primary = out.findings.first().cloned();
        out
    }
}

/// Latency split of a service: queueing vs service time (mean), or for an LLM service time to
/// first token (queueing in the engine and prefill) vs decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySplit {
    pub mean_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_ms: Option<f64>,
    /// Queueing as a share of the mean latency (0–1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_share: Option<f64>,
}

/// Time from a backlog forming (below the replica cap) to the autoscaler adding replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleUpLag {
    pub episodes: u64,
    pub mean_s: f64,
    pub max_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceBinding {
    pub name: String,
    pub max_replicas: u32,
    pub peak_replicas: u32,
    /// Time with the service at its replica cap.
    pub at_cap_s: f64,
    /// Time at the cap while requests waited (the cap binds).
    pub at_cap_backlogged_s: f64,
    /// Time with requests waiting (in the service queue or an engine's queue).
    pub backlogged_s: f64,
    /// Replica-seconds spent waiting for a node.
    pub pending_replica_s: f64,
    /// Time with a replica waiting for a node while requests waited.
    pub pending_backlogged_s: f64,
    /// Refused placements by the filter that refused them.
    pub refusals: BTreeMap<String, u64>,
    /// Refusals of a sharing mode that may not fall back (MIG off its family, a mode that
    /// cannot span GPUs).
    pub no_fallback_refusals: u64,
    pub latency: LatencySplit,
    pub scale_up_lag: ScaleUpLag,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelBinding {
    pub gpus: u32,
    /// Time with every GPU of the model fully allocated.
    pub exhausted_s: f64,
    /// Time with no GPU of the model entirely free.
    pub no_whole_gpu_free_s: f64,
    /// Time with no GPU of the model entirely free while some replica waited for a node (when
    /// the exhaustion refused work).
    pub exhausted_while_pending_s: f64,
}

/// The kinds of binding constraint, most actionable first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    ReplicaCap,
    GpusExhausted,
    NoNode,
    SharingNoFallback,
    AutoscalerLag,
    Queueing,
}

impl ConstraintKind {
    pub fn label(self) -> &'static str {
        match self {
            ConstraintKind::ReplicaCap => "replica cap",
            ConstraintKind::GpusExhausted => "GPUs exhausted",
            ConstraintKind::NoNode => "no node for a replica",
            ConstraintKind::SharingNoFallback => "sharing mode may not fall back",
            ConstraintKind::AutoscalerLag => "autoscaler lag",
            ConstraintKind::Queueing => "queueing",
        }
    }
}

/// One measured constraint: what, on what, for how much of the run, and what would lift it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: ConstraintKind,
    /// The service or GPU model it binds.
    pub subject: String,
    /// Share of the run it held (0–1); for queueing, the queueing share of the mean latency.
    pub share: f64,
    pub detail: String,
    pub change: String,
}

impl Finding {
    /// What and how much, without the change: "replica cap on llm-large (62 %): …".
    pub fn what(&self) -> String {
        format!(
            "{} on {} ({:.0} %): {}",
            self.kind.label(),
            self.subject,
            self.share * 100.0,
            self.detail
        )
    }

    /// One line: "replica cap on llm-large (62 % of the run): … → raise …".
    pub fn line(&self) -> String {
        format!(
            "{} on {} ({:.0} %): {} → {}",
            self.kind.label(),
            self.subject,
            self.share * 100.0,
            self.detail,
            self.change
        )
    }
}

/// The `binding_constraints` section of summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingConstraints {
    /// The most binding finding (the first of `findings`), absent when none held for 1 % of
    /// the run.
    pub primary: Option<Finding>,
    /// Every finding, most binding first.
    pub findings: Vec<Finding>,
    pub services: Vec<ServiceBinding>,
    pub gpu_models: BTreeMap<String, ModelBinding>,
    /// The autoscaler's scale-up stabilisation window (none without an autoscaler).
    pub up_stabilisation_s: Option<f64>,
}

fn top_filter(refusals: &BTreeMap<String, u64>) -> Option<(&String, u64)> {
    refusals
        .iter()
        .map(|(k, v)| (k, *v))
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
}

fn findings(b: &BindingConstraints, dur: f64) -> Vec<Finding> {
    let mut f = Vec::new();
    let exhausted: Vec<(&String, f64)> = b
        .gpu_models
        .iter()
        .map(|(m, x)| (m, x.exhausted_while_pending_s / dur))
        .filter(|(_, s)| *s >= MIN_SHARE)
        .collect();
    for (i, s) in b.services.iter().enumerate() {
        let cap = s.at_cap_backlogged_s / dur;
        if cap >= MIN_SHARE {
            f.push(Finding {
                kind: ConstraintKind::ReplicaCap,
                subject: s.name.clone(),
                share: cap,
                detail: format!(
                    "at its cap of {} replicas with requests waiting for {:.0} s (peak {} replicas)",
                    s.max_replicas, s.at_cap_backlogged_s, s.peak_replicas
                ),
                change: format!(
                    "raise services.{i}.max_replicas (or let the sweep scale max_replicas with traffic)"
                ),
            });
        }
        let pending = s.pending_backlogged_s / dur;
        if pending >= MIN_SHARE {
            let filter = top_filter(&s.refusals);
            let no_fallback = s.no_fallback_refusals > 0
                && filter.is_some_and(|(_, n)| s.no_fallback_refusals * 2 >= n);
            let detail = format!(
                "replicas waited for a node while requests waited for {:.0} s ({:.0} replica-s){}",
                s.pending_backlogged_s,
                s.pending_replica_s,
                filter.map_or(String::new(), |(k, n)| format!(
                    "; {n} placements refused, most by {k}"
                ))
            );
            if no_fallback {
                f.push(Finding {
                    kind: ConstraintKind::SharingNoFallback,
                    subject: s.name.clone(),
                    share: pending,
                    detail: format!(
                        "{detail}; {} refusals were a sharing mode that may not fall back",
                        s.no_fallback_refusals
                    ),
                    change: "give the class a sharing mode that may fall back (time-slicing or MPS), or add GPUs of its family".into(),
                });
            } else {
                let change = match exhausted.first() {
                    Some((m, _)) => format!("add {m} GPUs (a larger node-count axis value)"),
                    None => "add nodes the refusing filter accepts, or relax its limit".into(),
                };
                f.push(Finding {
                    kind: ConstraintKind::NoNode,
                    subject: s.name.clone(),
                    share: pending,
                    detail,
                    change,
                });
            }
        }
        if s.scale_up_lag.episodes > 0 {
            let lag_share = s.scale_up_lag.mean_s * s.scale_up_lag.episodes as f64 / dur;
            if lag_share >= MIN_SHARE {
                f.push(Finding {
                    kind: ConstraintKind::AutoscalerLag,
                    subject: s.name.clone(),
                    share: lag_share.min(1.0),
                    detail: format!(
                        "{} backlogs waited {:.0} s on average (max {:.0} s) for a scale-up{}",
                        s.scale_up_lag.episodes,
                        s.scale_up_lag.mean_s,
                        s.scale_up_lag.max_s,
                        b.up_stabilisation_s
                            .map_or(String::new(), |w| format!("; up-stabilisation {w:.0} s"))
                    ),
                    change: format!(
                        "raise services.{i}.min_replicas (a floor the autoscaler keeps between bursts) or shorten the autoscaler's up_stabilisation_s"
                    ),
                });
            }
        }
        if let Some(q) = s.latency.queue_share {
            if q >= QUEUE_DOMINATES && s.latency.mean_ms > 0.0 {
                f.push(Finding {
                    kind: ConstraintKind::Queueing,
                    subject: s.name.clone(),
                    share: q,
                    detail: format!(
                        "{:.1} of {:.1} ms mean latency is queueing",
                        s.latency.queue_ms.unwrap_or(0.0),
                        s.latency.mean_ms
                    ),
                    change: "more replicas at peak (cap, autoscaler) rather than faster GPUs"
                        .into(),
                });
            }
        }
    }
    for (m, share) in exhausted {
        f.push(Finding {
            kind: ConstraintKind::GpusExhausted,
            subject: m.clone(),
            share,
            detail: format!(
                "no {m} GPU was entirely free, with replicas waiting for a node, for {:.0} s",
                share * dur
            ),
            change: format!("add {m} GPUs (a larger node-count axis value) or share them"),
        });
    }
    // Queueing is a symptom: it ranks after every constraint measured in time.
    f.sort_by(|a, b| {
        (a.kind == ConstraintKind::Queueing)
            .cmp(&(b.kind == ConstraintKind::Queueing))
            .then(b.share.total_cmp(&a.share))
            .then(a.kind.cmp(&b.kind))
            .then(a.subject.cmp(&b.subject))
    });
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusing_filter_is_read_from_the_engine_reason() {
        assert_eq!(
            refusing_filter("0/12 nodes available: 12 node(s) rejected by SharingFits: no room"),
            "SharingFits"
        );
        assert_eq!(refusing_filter("0/0 nodes available"), "no nodes");
        assert!(is_no_fallback(
            "h100 is not the preferred A100 family and MIG workloads do not fall back"
        ));
    }

    fn svc(name: &str, cap_backlog: f64, pending: f64, queue_share: f64) -> ServiceBinding {
        ServiceBinding {
            name: name.into(),
            max_replicas: 4,
            peak_replicas: 4,
            at_cap_s: cap_backlog,
            at_cap_backlogged_s: cap_backlog,
            backlogged_s: cap_backlog,
            pending_replica_s: pending,
            pending_backlogged_s: pending,
            refusals: [("SharingFits".to_string(), 10)].into_iter().collect(),
            no_fallback_refusals: 0,
            latency: LatencySplit {
                mean_ms: 100.0,
                queue_ms: Some(100.0 * queue_share),
                service_ms: Some(100.0 * (1.0 - queue_share)),
                ttft_ms: None,
                decode_ms: None,
                queue_share: Some(queue_share),
            },
            scale_up_lag: ScaleUpLag {
                episodes: 0,
                mean_s: 0.0,
                max_s: 0.0,
            },
        }
    }

    #[test]
    fn findings_rank_by_share_of_the_run() {
        let b = BindingConstraints {
            primary: None,
            findings: vec![],
            services: vec![svc("a", 100.0, 0.0, 0.1), svc("b", 500.0, 300.0, 0.9)],
            gpu_models: BTreeMap::new(),
            up_stabilisation_s: Some(60.0),
        };
        let f = findings(&b, 1000.0);
        assert_eq!(f[0].kind, ConstraintKind::ReplicaCap);
        assert_eq!(f[0].subject, "b");
        assert!(
            f[0].change.contains("services.1.max_replicas"),
            "{}",
            f[0].change
        );
        assert_eq!(f.last().unwrap().kind, ConstraintKind::Queueing);
        assert!(f
            .iter()
            .any(|x| x.kind == ConstraintKind::NoNode && x.detail.contains("SharingFits")));
        // Below 1 % of the run, nothing is reported.
        assert!(findings(&b, 1e9)
            .iter()
            .all(|x| x.kind == ConstraintKind::Queueing));
    }
}
