//! Executes a planned sharing-layout rollout inside the simulation (issue 5): a state machine
//! driven by the 30-second tick and by its own wake-up events. The plan, the gate, the health
//! check and the breaker are `gpusched_policies::rollout` (pure); this module applies them to
//! the simulated cluster and logs every step in decisions.jsonl.
//!
//! The disruption model: applying a config restarts the device plugin (and MPS server) for
//! `disruption.plugin_restart_s`; every pod still on the node loses its context (requests in
//! flight fail with `pod_restart`) and restarts: start-up, then the readiness probe. The service
//! queue is shared, so queued requests wait for, or go to, the other replicas.
//!
//! This file is a child module of `sim` (it needs the simulator's private state); it only adds
//! methods, and `sim.rs` calls it from four hooks (tick, wake-up, pod start-up, finish).

use super::{Event, Sim};
use crate::events::{secs, to_secs, SimTime};
use crate::metrics::FailCause;
use crate::reconfig::{ReconfigConfig, ReconfigReport, Trigger};
use crate::state::ReplicaState;
use gpusched_policies::decision::Decision;
use gpusched_policies::gpu::GpuFamily;
use gpusched_policies::rollout::gate::{evaluate, GateInput};
use gpusched_policies::rollout::plan::{optimal_replicas_due, plan, Batch};
use gpusched_policies::rollout::{CircuitBreaker, RolloutStep, StepKind};
use gpusched_policies::sharing::NodeSharing;
use gpusched_policies::Engine;

/// Where the rollout stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Nothing due.
    Idle,
    /// Due: waiting for the gate and the breaker before the next batch.
    Due,
    /// Pre-warmed replacements starting; the old pods are evicted when they are ready.
    Surge { until: SimTime },
    /// Evicted pods finishing their requests.
    Draining { until: SimTime },
    /// A blue-green traffic step being watched.
    StepWatch { since: SimTime, until: SimTime },
    /// Config applied; the plugin restarting.
    Plugin { applied: SimTime, until: SimTime },
    /// The batch's pods coming back.
    Pods { until: SimTime },
    /// The canary being watched.
    Watch { since: SimTime, until: SimTime },
    /// Converged (or nothing left to do).
    Done,
}

pub(super) struct Exec {
    cfg: ReconfigConfig,
    /// Node indices of the target pool (a lost node is dropped from later attempts).
    targets: Vec<usize>,
    family: GpuFamily,
    from: u8,
    to: u8,
    phase: Phase,
    /// Rolling back: the batches restore `from`.
    rolling_back: bool,
    batches: Vec<Batch>,
    bi: usize,
    step_i: usize,
    /// The current batch's pods to move, and how many have moved.
    movers: Vec<u32>,
    moved: usize,
    /// Replacements and restarted pods the batch waits for.
    waiting: Vec<u32>,
    /// Nodes converted in this attempt (what a rollback restores).
    changed: Vec<usize>,
    id: u32,
    breaker: CircuitBreaker,
    /// Replicas whose start-up goes through the readiness probe (restarted or replacements).
    probed: Vec<bool>,
    fail_apply_left: u32,
    /// When each node went out of service (cordoned or restarting).
    down_since: Vec<Option<SimTime>>,
    last_postpone: Vec<String>,
    /// Trigger state: the pool's mean utilisation per tick since the last evaluation.
    util: Vec<f64>,
    pub(super) report: ReconfigReport,
}

fn label(r: u8) -> String {
    NodeSharing::TimeSlicing { replicas: r }.config_key()
}

impl Exec {
    pub(super) fn new(
        cfg: ReconfigConfig,
        sim_nodes: &[gpusched_policies::NodeView],
        engine: &Engine,
    ) -> Self {
        let targets: Vec<usize> = sim_nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.pool == cfg.pool)
            .map(|(i, _)| i)
            .collect();
        let family = targets
            .first()
            .map_or(GpuFamily::A100, |&i| sim_nodes[i].model.family());
        let ts = &engine.config.time_slicing;
        let from = match family {
            GpuFamily::H100 => ts.h100_replicas,
            GpuFamily::A100 => ts.a100_replicas,
        };
        let report = ReconfigReport {
            strategy: cfg.strategy.as_str().to_string(),
            class: serde_json::to_value(cfg.class)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            gated: cfg.gate,
            outcome: "not_due".into(),
            from_replicas: from,
            to_replicas: from,
            ..Default::default()
        };
        Self {
            breaker: CircuitBreaker::new(cfg.breaker.clone()),
            fail_apply_left: cfg.faults.fail_apply_times,
            down_since: vec![None; sim_nodes.len()],
            cfg,
            targets,
            family,
            from,
            to: from,
            phase: Phase::Idle,
            rolling_back: false,
            batches: Vec::new(),
            bi: 0,
            step_i: 0,
            movers: Vec::new(),
            moved: 0,
            waiting: Vec::new(),
            changed: Vec::new(),
            id: 0,
            probed: Vec::new(),
            last_postpone: Vec::new(),
            util: Vec::new(),
            report,
        }
    }

    pub(super) fn probed(&self, r: u32) -> bool {
        self.probed.get(r as usize).copied().unwrap_or(false)
    }

    fn probe(&mut self, r: u32) {
        let i = r as usize;
        if self.probed.len() <= i {
            self.probed.resize(i + 1, false);
        }
        self.probed[i] = true;
    }
}

impl Sim<'_> {
    /// Sets up the scenario's rollout, if it has a `[reconfig]` section.
    pub(super) fn init_rollout(&mut self) {
        if let Some(cfg) = self.sc.scenario.reconfig.clone() {
            self.rollout = Some(Exec::new(cfg, &self.nodes, &self.engine));
        }
    }

    /// Start-up of replica `r` of service `svc`: with the readiness probe when a rollout
    /// (re)started it.
    pub(super) fn pod_startup_s(&self, r: u32, svc: usize) -> f64 {
        let startup = self.services[svc].spec.startup_s;
        match &self.rollout {
            Some(x) if x.probed(r) => x.cfg.readiness.ready_after(startup),
            _ => startup,
        }
    }

    /// A replacement or a pod the rollout is moving, while the batch runs: the autoscaler leaves
    /// it alone (as raising the
    /// deployment's minimum for the rollout would).
    pub(super) fn rollout_protected(&self, r: u32) -> bool {
        self.rollout.as_ref().is_some_and(|x| {
            !matches!(x.phase, Phase::Idle | Phase::Done)
                && (x.waiting.contains(&r) || x.movers.contains(&r))
        })
    }

    fn step(&mut self, t: SimTime, kind: StepKind, reason: impl Into<String>) {
        let Some(x) = &self.rollout else { return };
        let d = Decision::Rollout(RolloutStep {
            rollout: x.id,
            strategy: x.cfg.strategy,
            kind,
            reason: reason.into(),
        });
        self.log(t, d);
    }

    fn wake(&mut self, t: SimTime) {
        self.queue.push(t, Event::RolloutWake);
    }

    /// The current batch.
    fn cur(&self) -> &Batch {
        let x = self
            .rollout
            .as_ref()
            .expect("rollout hooks run only with a rollout");
        &x.batches[x.bi]
    }

    fn x(&mut self) -> &mut Exec {
        self.rollout
            .as_mut()
            .expect("rollout hooks run only with a rollout")
    }

    /// Sets the engine's time-slicing replicas for the target family (new placements follow).
    fn set_layout(&mut self, replicas: u8) {
        let family = self.x().family;
        let mut cfg = self.engine.config.clone();
        match family {
            GpuFamily::H100 => cfg.time_slicing.h100_replicas = replicas,
            GpuFamily::A100 => cfg.time_slicing.a100_replicas = replicas,
        }
        if let Ok(mut e) = Engine::new(cfg, self.engine.catalog.clone(), self.nodes.len() as u32) {
            // A fresh engine gets a fresh capacity index over the current nodes.
            e.enable_index();
            e.all_nodes_changed();
            self.engine = e;
        }
    }

    fn node_down(&mut self, t: SimTime, n: usize, down: bool) {
        self.nodes.set_cordoned(n, down);
        self.nodes.flush_to(&mut self.engine);
        let gpus = self.nodes[n].gpus.len() as f64;
        let x = self.x();
        match (down, x.down_since[n]) {
            (true, None) => x.down_since[n] = Some(t),
            (false, Some(s)) => {
                x.down_since[n] = None;
                x.report.gpu_hours_lost += to_secs(t - s) * gpus / 3600.0;
            }
            _ => {}
        }
    }

    /// Live pods on node `n` (starting, ready or draining).
    fn pods_on(&self, n: usize) -> Vec<u32> {
        (0..self.replicas.len() as u32)
            .filter(|&r| {
                let rep = &self.replicas[r as usize];
                rep.loc.is_some_and(|(node, _, _)| node as usize == n)
                    && matches!(
                        rep.state,
                        ReplicaState::Starting | ReplicaState::Ready | ReplicaState::Draining
                    )
            })
            .collect()
    }

    /// The pod loses its GPU context: requests in flight fail, it restarts (placed again, then
    /// start-up and the readiness probe).
    fn restart_pod(&mut self, t: SimTime, r: u32) {
        let rep = &self.replicas[r as usize];
        let draining = rep.state == ReplicaState::Draining;
        let svc = rep.service as usize;
        let share = rep.share_pct as f64 / 100.0;
        let before = self.services[svc].counts.failed;
        self.kill(
            t,
            r,
            FailCause::PodRestart,
            "lost its GPU context (device-plugin restart)",
        );
        let lost = self.services[svc].counts.failed - before;
        let startup = self.services[svc].spec.startup_s;
        let x = self.x();
        x.report.failed_pod_restart += lost;
        x.report.pods_restarted += 1;
        x.report.gpu_hours_lost += share * x.cfg.readiness.ready_after(startup) / 3600.0;
        x.probe(r);
        if draining {
            // It was leaving anyway: its replacement exists.
            self.replicas[r as usize].state = ReplicaState::Gone;
            self.services[svc].replicas.retain(|&y| y != r);
        } else {
            self.x().waiting.push(r);
        }
    }

    /// Called after each tick's measurement.
    pub(super) fn rollout_tick(&mut self, t: SimTime) {
        if self.rollout.is_none() {
            return;
        }
        self.rollout_trigger(t);
        self.rollout_advance(t);
    }

    /// A wake-up the rollout asked for.
    pub(super) fn rollout_wake(&mut self, t: SimTime) {
        if self.rollout.is_some() {
            self.rollout_advance(t);
        }
    }

    fn rollout_trigger(&mut self, t: SimTime) {
        if self.x().phase != Phase::Idle {
            return;
        }
        let now = to_secs(t);
        let due = match self.x().cfg.trigger.clone() {
            Trigger::Scheduled { at_s, replicas } => (now >= at_s && replicas != self.x().from)
                .then(|| {
                    (
                        replicas,
                        format!("scheduled layout change at {at_s:.0} s: {replicas} time-sliced replicas per GPU"),
                    )
                }),
            Trigger::OptimalReplicas { window_s } => {
                let targets = self.x().targets.clone();
                let (mut sum, mut n) = (0.0, 0);
                for &i in &targets {
                    for g in &self.nodes[i].gpus {
                        sum += g.utilisation;
                        n += 1;
                    }
                }
                let tick_s = to_secs(self.tick);
                let from = self.x().from;
                let x = self.x();
                x.util.push(if n > 0 { sum / n as f64 } else { 0.0 });
                if x.util.len() as f64 * tick_s + 1e-9 < window_s {
                    None
                } else {
                    let d = optimal_replicas_due(from, &x.util);
                    x.util.clear();
                    d
                }
            }
        };
        let Some((to, reason)) = due else { return };
        let targets = self.x().targets.clone();
        let nodes: Vec<String> = targets
            .iter()
            .map(|&i| self.nodes[i].name.clone())
            .collect();
        let x = self.x();
        x.to = to;
        x.id += 1;
        x.phase = Phase::Due;
        x.report.to_replicas = to;
        x.report.due_s.get_or_insert(now);
        x.report.outcome = "postponed".into();
        let from = x.from;
        self.step(
            t,
            StepKind::Due {
                nodes,
                from_label: label(from),
                to_label: label(to),
            },
            reason,
        );
    }

    /// Advances the state machine as far as it can go now.
    fn rollout_advance(&mut self, t: SimTime) {
        for _ in 0..64 {
            let before = self.x().phase;
            match before {
                Phase::Idle | Phase::Done => return,
                Phase::Due => self.try_start_batch(t),
                Phase::Surge { until } => {
                    let ready = self.all_ready();
                    if ready || t >= until {
                        self.evict_movers(t);
                    }
                }
                Phase::Draining { until } => {
                    let movers = self.x().movers.clone();
                    let moved = self.x().moved;
                    let left: Vec<u32> = movers[..moved]
                        .iter()
                        .copied()
                        .filter(|&r| self.replicas[r as usize].state != ReplicaState::Gone)
                        .collect();
                    if !left.is_empty() && t < until {
                        return;
                    }
                    for r in left {
                        self.restart_pod(t, r);
                    }
                    self.after_shift_step(t);
                }
                Phase::StepWatch { since, until } => {
                    if t < until {
                        return;
                    }
                    if self.watch_verdict(t, since) {
                        self.x().step_i += 1;
                        self.start_shift_step(t);
                    }
                }
                Phase::Plugin { applied, until } => {
                    if t < until {
                        return;
                    }
                    self.after_plugin(t, applied);
                }
                Phase::Pods { until } => {
                    if !self.all_ready() && t < until {
                        return;
                    }
                    let n = self.x().waiting.len() as u32;
                    self.step(
                        t,
                        StepKind::WaitForPods { pods: n },
                        "the batch's pods are ready (or the wait timed out)",
                    );
                    let watch = self.cur().watch_s;
                    if watch > 0.0 && !self.x().rolling_back {
                        let until = t + secs(watch);
                        self.x().phase = Phase::Watch { since: t, until };
                        self.wake(until);
                    } else {
                        self.next_batch(t);
                    }
                }
                Phase::Watch { since, until } => {
                    if t < until {
                        return;
                    }
                    if self.watch_verdict(t, since) {
                        self.next_batch(t);
                    }
                }
            }
            if self.x().phase == before {
                return;
            }
        }
    }

    fn all_ready(&self) -> bool {
        let Some(x) = &self.rollout else { return true };
        x.waiting.iter().all(|&r| {
            matches!(
                self.replicas[r as usize].state,
                ReplicaState::Ready | ReplicaState::Gone | ReplicaState::Draining
            )
        })
    }

    /// Gate and breaker, then the next batch.
    fn try_start_batch(&mut self, t: SimTime) {
        let now = to_secs(t);
        let (gate, first) = {
            let x = self.x();
            (x.cfg.gate && !x.rolling_back, x.bi == 0)
        };
        if gate {
            let window = to_secs(self.tick);
            let samples: Vec<(f64, f64)> = self
                .rows
                .iter()
                .rev()
                .take_while(|r| r.t_s > now - 900.0 - 1e-9)
                .map(|r| (r.t_s, r.arrivals as f64 / window))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let (arr, failed) = self
                .rows
                .iter()
                .rev()
                .take_while(|r| r.t_s > now - 300.0 - 1e-9)
                .fold((0u64, 0u64), |(a, f), r| (a + r.arrivals, f + r.failed));
            let (mut util, mut free, mut n) = (0.0, 0.0, 0.0);
            for node in &self.nodes {
                for g in &node.gpus {
                    util += g.utilisation;
                    free += g.share_free_pct() as f64 / 100.0;
                    n += 1.0;
                }
            }
            let x = self.x();
            let v = evaluate(
                &x.cfg.qps_gate,
                x.cfg.class,
                &GateInput {
                    now_s: now,
                    samples: &samples,
                    error_rate: if arr > 0 {
                        failed as f64 / arr as f64
                    } else {
                        0.0
                    },
                    gpu_util: if n > 0.0 { util / n } else { 0.0 },
                    free_capacity: if n > 0.0 { free / n } else { 1.0 },
                },
            );
            if !v.open {
                x.report.postponements += 1;
                if x.last_postpone != v.failed {
                    x.last_postpone = v.failed.clone();
                    self.step(
                        t,
                        StepKind::Postponed {
                            failed_checks: v.failed,
                        },
                        v.reason,
                    );
                }
                return;
            }
            if !self.x().last_postpone.is_empty() {
                self.x().last_postpone.clear();
            }
        }
        if first && !self.x().rolling_back {
            if !self.x().breaker.try_acquire(now) {
                let st = self.x().breaker.state(now);
                self.x().report.outcome = "breaker_open".into();
                if self.x().last_postpone != ["breaker_open"] {
                    self.x().last_postpone = vec!["breaker_open".into()];
                    self.step(
                        t,
                        StepKind::Deferred,
                        format!("circuit breaker open: {st:?}"),
                    );
                }
                return;
            }
            // A new attempt: the plan, and new placements follow the new layout.
            let x = self.x();
            x.report.attempts += 1;
            x.report.started_s.get_or_insert(now);
            x.report.outcome = "in_progress".into();
            x.changed.clear();
            let lim = x.cfg.class.limits();
            x.batches = plan(
                x.cfg.strategy,
                x.targets.len(),
                &x.cfg.params,
                lim.max_disruption_pct,
            );
            let to = x.to;
            self.set_layout(to);
        }
        let nodes = self.batch_nodes();
        let x = self.x();
        x.step_i = 0;
        x.moved = 0;
        x.waiting.clear();
        let drain = x.batches[x.bi].drain;
        let mut movers = Vec::new();
        if drain {
            for &n in &nodes {
                self.node_down(t, n, true);
                let name = self.nodes[n].name.clone();
                let role = self.cur().role;
                self.step(
                    t,
                    StepKind::Cordon { node: name },
                    format!("{role} batch: no new pods while the config changes"),
                );
                movers.extend(self.pods_on(n));
            }
        }
        self.x().movers = movers;
        if drain {
            self.start_shift_step(t);
        } else {
            self.apply_batch(t);
        }
    }

    fn batch_nodes(&mut self) -> Vec<usize> {
        let x = self.x();
        x.batches[x.bi]
            .nodes
            .iter()
            .map(|&i| x.targets[i])
            .collect()
    }

    /// The next traffic step: replacements for the next share of the batch's pods.
    fn start_shift_step(&mut self, t: SimTime) {
        let x = self.x();
        let b = &x.batches[x.bi];
        let Some(&pct) = b.shift_pct.get(x.step_i) else {
            self.apply_batch(t);
            return;
        };
        let surge_first = b.surge_first;
        let target = (x.movers.len() * pct as usize).div_ceil(100);
        let these: Vec<u32> = x.movers[x.moved..target].to_vec();
        let shifting = b.shift_pct.len() > 1;
        x.waiting.clear();
        let mut per_service: std::collections::BTreeMap<usize, u32> = Default::default();
        for &r in &these {
            let svc = self.replicas[r as usize].service as usize;
            *per_service.entry(svc).or_default() += 1;
            let n = self.new_replica(svc as u32);
            self.x().probe(n);
            self.x().waiting.push(n);
            self.try_place(t, n, false);
        }
        for (svc, k) in per_service {
            let workload = self.services[svc].spec.name.clone();
            let why = if surge_first {
                "pre-warm: replacements start elsewhere before the drain"
            } else {
                "replacements start elsewhere as the node drains"
            };
            self.step(
                t,
                StepKind::Surge {
                    workload,
                    replicas: k,
                },
                why,
            );
        }
        if shifting {
            self.step(
                t,
                StepKind::ShiftTraffic { percent: pct },
                format!("blue-green: {pct} % of green's pods to blue"),
            );
        }
        if !surge_first {
            // The disruption budget (a PodDisruptionBudget of minAvailable 1): a pod is evicted
            // at once only if its service keeps another ready pod; the others wait for their
            // replacement, as the Eviction API answers 429 until then.
            let blocked: Vec<u32> = these
                .iter()
                .copied()
                .filter(|&r| !self.has_other_ready(r, &these))
                .collect();
            let free: Vec<u32> = these
                .iter()
                .copied()
                .filter(|r| !blocked.contains(r))
                .collect();
            self.evict(t, &free);
            if blocked.is_empty() {
                self.evict_movers(t);
                return;
            }
        }
        if !these.is_empty() {
            let until = t + secs(self.x().cfg.surge_timeout_s);
            self.x().phase = Phase::Surge { until };
            self.wake(until);
        } else {
            self.evict_movers(t);
        }
    }

    /// Does `r`'s service keep a ready pod outside `moving`?
    fn has_other_ready(&self, r: u32, moving: &[u32]) -> bool {
        let svc = self.replicas[r as usize].service as usize;
        self.services[svc].replicas.iter().any(|&o| {
            o != r && !moving.contains(&o) && self.replicas[o as usize].state == ReplicaState::Ready
        })
    }

    /// Evicts the current step's pods (graceful: they finish what they serve).
    fn evict_movers(&mut self, t: SimTime) {
        let x = self.x();
        let b = &x.batches[x.bi];
        let pct = b.shift_pct.get(x.step_i).copied().unwrap_or(100);
        let target = (x.movers.len() * pct as usize).div_ceil(100);
        let these: Vec<u32> = x.movers[x.moved..target].to_vec();
        x.moved = target;
        self.evict(t, &these);
        let until = t + secs(self.x().cfg.drain_timeout_s);
        self.x().phase = Phase::Draining { until };
        self.wake(until);
    }

    /// Evicts pods gracefully (those not already leaving).
    fn evict(&mut self, t: SimTime, these: &[u32]) {
        for &r in these {
            let rep = &self.replicas[r as usize];
            if matches!(rep.state, ReplicaState::Gone | ReplicaState::Draining) {
                continue;
            }
            let Some((node, _, _)) = rep.loc else {
                continue;
            };
            let workload = self.services[rep.service as usize].spec.name.clone();
            let node = self.nodes[node as usize].name.clone();
            self.step(
                t,
                StepKind::Evict {
                    node,
                    workload,
                    replica: r as u64,
                },
                "drain before the config change",
            );
            if self.replicas[r as usize].in_flight == 0 {
                self.release(t, r, "evicted for a config rollout");
            } else {
                self.replicas[r as usize].state = ReplicaState::Draining;
            }
        }
    }

    fn after_shift_step(&mut self, t: SimTime) {
        let x = self.x();
        let b = &x.batches[x.bi];
        if x.step_i + 1 < b.shift_pct.len() && b.step_watch_s > 0.0 && !x.rolling_back {
            let until = t + secs(b.step_watch_s);
            x.phase = Phase::StepWatch { since: t, until };
            self.wake(until);
        } else {
            x.step_i += 1;
            self.start_shift_step(t);
        }
    }

    /// Applies the config to every node of the batch.
    fn apply_batch(&mut self, t: SimTime) {
        let nodes = self.batch_nodes();
        let (to, prev) = {
            let x = self.x();
            if x.rolling_back {
                (x.from, x.to)
            } else {
                (x.to, x.from)
            }
        };
        let slots = self.engine.config.fit.mps_client_limit.min(255) as u8;
        for &n in &nodes {
            let to_s = NodeSharing::TimeSlicing { replicas: to };
            let before = self.nodes[n].sharing;
            let pods = self.pods_on(n);
            let prev_s = if matches!(before, NodeSharing::TimeSlicing { .. }) {
                before
            } else {
                NodeSharing::TimeSlicing { replicas: prev }
            };
            let name = self.nodes[n].name.clone();
            let rolling_back = self.x().rolling_back;
            if rolling_back {
                self.step(
                    t,
                    StepKind::Rollback {
                        node: name.clone(),
                        label: to_s.config_key(),
                        device_plugin_config: to_s.device_plugin_yaml(slots),
                    },
                    "restore the recorded label and ConfigMap entry",
                );
            }
            self.step(
                t,
                StepKind::ApplyConfig {
                    node: name,
                    label: to_s.config_key(),
                    device_plugin_config: to_s.device_plugin_yaml(slots),
                    previous_label: prev_s.config_key(),
                    previous_device_plugin_config: prev_s.device_plugin_yaml(slots),
                    pods_restarted: pods.len() as u32,
                },
                if pods.is_empty() {
                    "node drained: the plugin restart disturbs no pod".to_string()
                } else {
                    format!("{} GPU pods on the node lose their context", pods.len())
                },
            );
            // The node is out while the plugin restarts (in place too: pods cannot start).
            self.node_down(t, n, true);
            for r in pods {
                self.restart_pod(t, r);
            }
            self.nodes.set_sharing(n, to_s);
            self.nodes.flush_to(&mut self.engine);
            let d = &self.sc.scenario.disruption;
            self.reconfigurations += 1;
            self.reconfig_gpu_seconds += d.plugin_restart_s * self.nodes[n].gpus.len() as f64;
            if !self.x().changed.contains(&n) {
                self.x().changed.push(n);
            }
        }
        let plugin = self.sc.scenario.disruption.plugin_restart_s;
        let timeout_s = plugin + self.x().cfg.readiness.gives_up_after();
        for &n in &nodes {
            let name = self.nodes[n].name.clone();
            self.step(
                t,
                StepKind::WaitForPlugin {
                    node: name,
                    timeout_s,
                },
                "until the plugin advertises the new capacity",
            );
        }
        let until = t + secs(plugin);
        self.x().phase = Phase::Plugin { applied: t, until };
        self.wake(until);
    }

    fn after_plugin(&mut self, t: SimTime, applied: SimTime) {
        let nodes = self.batch_nodes();
        let rolling_back = self.x().rolling_back;
        let give_up = applied
            + secs(
                self.sc.scenario.disruption.plugin_restart_s
                    + self.x().cfg.readiness.gives_up_after(),
            );
        let faults = self.x().cfg.faults.clone();
        if !rolling_back {
            let lost: Vec<usize> = nodes
                .iter()
                .copied()
                .filter(|&n| faults.never_returns.contains(&self.nodes[n].name))
                .collect();
            if !lost.is_empty() {
                if t < give_up {
                    self.x().phase = Phase::Plugin {
                        applied,
                        until: give_up,
                    };
                    self.wake(give_up);
                    return;
                }
                for n in lost {
                    let name = self.nodes[n].name.clone();
                    self.step(t, StepKind::NodeLost { node: name.clone() }, "the plugin never came back and the pods failed their readiness probes: node left cordoned");
                    let x = self.x();
                    x.targets.retain(|&i| i != n);
                    x.changed.retain(|&i| i != n);
                    x.report.nodes_lost.push(name);
                }
                self.fail(t, "a node did not come back");
                return;
            }
            let failing = nodes
                .iter()
                .any(|&n| faults.fail_apply.contains(&self.nodes[n].name));
            if failing && self.x().fail_apply_left > 0 {
                self.x().fail_apply_left -= 1;
                self.fail(
                    t,
                    "the new config failed to apply: the plugin does not advertise it",
                );
                return;
            }
        }
        let drain = self.cur().drain;
        for &n in &nodes {
            self.node_down(t, n, false);
            if drain {
                let name = self.nodes[n].name.clone();
                self.step(
                    t,
                    StepKind::Uncordon { node: name },
                    "the plugin advertises the new config",
                );
            }
        }
        let until = t + secs(self.x().cfg.pods_timeout_s);
        self.x().phase = Phase::Pods { until };
        self.wake(until);
    }

    /// Judges a watched window; on failure starts the rollback. `true`: healthy.
    fn watch_verdict(&mut self, t: SimTime, since: SimTime) -> bool {
        let (since_s, now) = (to_secs(since), to_secs(t));
        let (mut arr, mut failed, mut p99) = (0u64, 0u64, 0.0f64);
        for r in self
            .rows
            .iter()
            .filter(|r| r.t_s > since_s && r.t_s <= now + 1e-9)
        {
            arr += r.arrivals;
            failed += r.failed;
            p99 = p99.max(r.p99_ms);
        }
        let err = if arr > 0 {
            failed as f64 / arr as f64
        } else {
            0.0
        };
        let verdict = self.x().cfg.params.health.judge(err, p99);
        self.step(
            t,
            StepKind::Watch {
                error_rate: err,
                p99_ms: p99,
                healthy: verdict.is_ok(),
            },
            match &verdict {
                Ok(()) => "healthy".to_string(),
                Err(e) => e.clone(),
            },
        );
        match verdict {
            Ok(()) => true,
            Err(e) => {
                self.fail(t, &format!("health check failed: {e}"));
                false
            }
        }
    }

    fn next_batch(&mut self, t: SimTime) {
        let x = self.x();
        x.bi += 1;
        if x.bi < x.batches.len() {
            x.phase = Phase::Due;
            return;
        }
        let now = to_secs(t);
        if x.rolling_back {
            // Rolled back: the layout is still due; the breaker decides when to try again.
            x.rolling_back = false;
            x.bi = 0;
            x.phase = Phase::Due;
            x.report.outcome = "postponed".into();
            return;
        }
        x.breaker.record_success(now);
        x.from = x.to;
        x.phase = Phase::Done;
        x.report.outcome = "done".into();
        x.report.converged_s = Some(now);
        let due = x.report.due_s.unwrap_or(now);
        x.report.time_to_converge_s = Some(now - due);
        self.step(
            t,
            StepKind::Done {
                converge_s: now - due,
            },
            "every target node runs the new config",
        );
    }

    /// The attempt failed: count it, then roll the changed nodes back node by node.
    fn fail(&mut self, t: SimTime, why: &str) {
        let now = to_secs(t);
        self.step(t, StepKind::Failed, why);
        // Anything the failed batch left out of service comes back (lost nodes stay out).
        let nodes = self.batch_nodes();
        let lost = self.x().report.nodes_lost.clone();
        for n in nodes {
            if !lost.contains(&self.nodes[n].name) {
                self.node_down(t, n, false);
            }
        }
        let x = self.x();
        x.breaker.record_failure(now);
        x.report.failures += 1;
        let from = x.from;
        let changed = x.changed.clone();
        self.set_layout(from);
        let x = self.x();
        if changed.is_empty() {
            x.bi = 0;
            x.phase = Phase::Due;
            x.report.outcome = "postponed".into();
            return;
        }
        x.report.rollbacks += 1;
        x.rolling_back = true;
        x.batches = changed
            .iter()
            .map(|&n| {
                let i = x.targets.iter().position(|&y| y == n).unwrap_or(0);
                Batch {
                    role: "rollback",
                    nodes: vec![i],
                    drain: true,
                    surge_first: false,
                    shift_pct: vec![100],
                    step_watch_s: 0.0,
                    watch_s: 0.0,
                }
            })
            .collect();
        x.changed.clear();
        x.bi = 0;
        x.phase = Phase::Due;
    }

    /// The report for summary.json, with the change's window figures from the timeseries.
    pub(super) fn rollout_report(&mut self) -> Option<ReconfigReport> {
        let end = self.end;
        let nodes: Vec<(usize, f64)> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.gpus.len() as f64))
            .collect();
        let x = self.rollout.as_mut()?;
        for (i, gpus) in nodes {
            if let Some(s) = x.down_since[i].take() {
                x.report.gpu_hours_lost += to_secs(end - s) * gpus / 3600.0;
            }
        }
        let mut r = x.report.clone();
        if let Some(start) = r.started_s {
            let stop = r.converged_s.map_or(f64::INFINITY, |c| c + 300.0);
            let during_stop = r.converged_s.unwrap_or(f64::INFINITY);
            for row in &self.rows {
                // A row covers the window that ends at its time.
                if row.t_s > start && row.t_s <= stop + 1e-9 {
                    r.failed_requests += row.failed;
                }
                if row.t_s > start && row.t_s <= during_stop + to_secs(self.tick) + 1e-9 {
                    r.p99_during_ms = r.p99_during_ms.max(row.p99_ms);
                }
            }
        }
        Some(r)
    }
}
