//! The simulator's executor of a planned sharing-layout rollout (issue 5): it runs the engine
//! crate's rollout state machine ([`gpusched_policies::rollout::machine`]) — the same machine
//! live mode's `rollout_exec` runs — carrying out each command on the simulated cluster through
//! the [`RolloutWorld`] interface, and logs every step in decisions.jsonl. The machine decides
//! the order (gate, breaker, cordon, traffic steps, apply, plugin, uncordon, pods, watch;
//! abort and rollback batches); this module decides how long each command takes in simulated
//! time and keeps the rollout's bookkeeping: the report for summary.json, the circuit breaker,
//! the pods a batch moves and waits for, when each node went out of service, which pods start
//! through the readiness probe, and the fault injection of `[reconfig.faults]`.
//!
//! The disruption model: applying a config restarts the device plugin (and MPS server) for
//! `disruption.plugin_restart_s`; every pod still on the node loses its context (requests in
//! flight fail with `pod_restart`) and restarts: start-up, then the readiness probe. The service
//! queue is shared, so queued requests wait for, or go to, the other replicas.
//!
//! Timing: the executor is advanced after each tick's measurement and at the wake-ups it asks
//! for. A command that takes time (a traffic step's drain, a watch, the plugin, the pods) leaves
//! the executor waiting; a batch's first command (the gate, the breaker, the cordon, an in-place
//! apply) runs from the next advance step (the rollout is *due* between batches), so a closed
//! gate is asked once per advance.
//!
//! One machine is one attempt: when an attempt has been rolled back, the next one (a new machine
//! over the nodes that are left) begins at once and waits for the gate and the breaker.

use crate::events::{secs, to_secs, SimTime};
use crate::metrics::WindowRow;
use crate::reconfig::{ReconfigConfig, ReconfigReport, Trigger};
use crate::state::ReplicaState;
use gpusched_policies::gpu::GpuFamily;
use gpusched_policies::rollout::machine::{
    step_share, Command, Event, Failure, GateSample, Hold, MachineConfig, Outcome, RolloutMachine,
    Target, WatchKind,
};
use gpusched_policies::rollout::plan::optimal_replicas_due;
use gpusched_policies::rollout::{CircuitBreaker, RolloutStep, StepKind};
use gpusched_policies::sharing::NodeSharing;
use gpusched_policies::{Engine, NodeView};

/// A pod as the rollout sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodView {
    pub service: usize,
    pub state: ReplicaState,
    /// The node it runs on (none while pending).
    pub node: Option<usize>,
    /// Its share of its GPU, %.
    pub share_pct: u8,
    /// Requests it is serving.
    pub in_flight: u32,
}

/// What the rollout executor needs from the simulated cluster: reads of the cluster, the
/// services, their pods and the monitoring windows, and the operations a rollout performs.
/// Implemented by the simulator; every operation takes effect at once, at time `t`.
pub trait RolloutWorld {
    /// The cluster's nodes (names, pools, GPUs with their utilisation and free share, sharing
    /// config).
    fn nodes(&self) -> &[NodeView];
    /// The engine placing pods (its time-slicing layout, its MPS client limit).
    fn engine(&self) -> &Engine;
    /// The monitoring windows so far, one per tick.
    fn rows(&self) -> &[WindowRow];
    fn tick_s(&self) -> f64;
    /// How long the device plugin takes to restart after a config change, s.
    fn plugin_restart_s(&self) -> f64;
    fn service_name(&self, service: usize) -> &str;
    /// A service's pod start-up time (model load), s.
    fn service_startup_s(&self, service: usize) -> f64;
    /// A service's pods (replica ids), oldest first.
    fn service_pods(&self, service: usize) -> &[u32];
    fn pod(&self, r: u32) -> PodView;
    /// Live pods (starting, ready or draining) on a node, by replica id.
    fn pods_on(&self, node: usize) -> Vec<u32>;
    /// Takes a node out of service (no new pods) or puts it back.
    fn set_cordoned(&mut self, node: usize, cordoned: bool);
    /// Creates a pod of `service` and places it if the engine finds room (else it waits, as
    /// any pending pod does); it is ready `startup_s` after it starts. Returns its replica id.
    fn start_pod(&mut self, t: SimTime, service: usize, startup_s: f64) -> u32;
    /// Evicts a pod gracefully: it takes no new requests and leaves when its requests finish.
    fn evict(&mut self, t: SimTime, r: u32);
    /// The pod loses its GPU context: its requests in flight fail (returned: how many); it
    /// restarts (pending, to be placed again), or, when it was draining, it is gone.
    fn restart_pod(&mut self, t: SimTime, r: u32) -> u64;
    /// Writes a node's device-plugin config (counted as a reconfiguration of the node's GPUs
    /// for the plugin's restart time).
    fn apply_node_config(&mut self, node: usize, sharing: NodeSharing);
    /// The engine's time-slicing layout for a GPU family (new placements follow it).
    fn set_time_slicing_replicas(&mut self, family: GpuFamily, replicas: u8);
    /// Writes a rollout line to decisions.jsonl.
    fn log_step(&mut self, t: SimTime, step: RolloutStep);
    /// Asks for [`RolloutExecutor::wake`] at `t`.
    fn wake_at(&mut self, t: SimTime);
}

/// What the executor is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Nothing due.
    Idle,
    /// Due: the next batch's first command (or a held one's retry) runs at the next step.
    Due,
    /// A traffic step's replacements starting; its pods are evicted when they are ready.
    Surge { until: SimTime },
    /// A traffic step's evicted pods finishing their requests.
    Draining { until: SimTime },
    /// A blue-green traffic step being watched.
    StepWatch { since: SimTime, until: SimTime },
    /// Config applied; the plugin restarting.
    Plugin { applied: SimTime, until: SimTime },
    /// The batch's pods coming back.
    Pods { until: SimTime },
    /// The canary being watched.
    Watch { since: SimTime, until: SimTime },
    /// Converged.
    Done,
}

/// One attempt's machine transcript: each event given to the machine and the command it gave.
pub type Transcript = Vec<(Event, Command)>;

/// Runs the scenario's `[reconfig]` rollout. See the module documentation.
pub struct RolloutExecutor {
    cfg: ReconfigConfig,
    /// Node indices of the target pool (a lost node is dropped from later attempts).
    targets: Vec<usize>,
    family: GpuFamily,
    from: u8,
    to: u8,
    phase: Phase,
    machine: Option<RolloutMachine>,
    /// A batch's first command, run at the next advance step.
    next: Option<Command>,
    /// The nodes of the command being carried out, and whether they are being restored.
    batch: Vec<usize>,
    rolling_back: bool,
    /// The current traffic step's cumulative share, %.
    step_pct: u8,
    /// The current batch's pods to move, and how many have moved.
    movers: Vec<u32>,
    moved: usize,
    /// Replacements and restarted pods the batch waits for.
    waiting: Vec<u32>,
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
    report: ReconfigReport,
    transcripts: Vec<Transcript>,
}

fn label(r: u8) -> String {
    NodeSharing::TimeSlicing { replicas: r }.config_key()
}

/// The rollout machine's configuration for a scenario's `[reconfig]` section (with its
/// `disruption.plugin_restart_s`): the strategy and its parameters, the update class's
/// disruption budget, the QPS gate when gated, and the plugin wait (the restart plus the
/// readiness probe's give-up time).
pub fn machine_config(cfg: &ReconfigConfig, plugin_restart_s: f64) -> MachineConfig {
    MachineConfig {
        strategy: cfg.strategy,
        strategy_cfg: cfg.params.clone(),
        max_disruption_pct: cfg.class.limits().max_disruption_pct,
        gate: cfg.gate.then(|| (cfg.qps_gate.clone(), cfg.class)),
        plugin_timeout_s: plugin_restart_s + cfg.readiness.gives_up_after(),
    }
}

fn log_reason(failure: &Failure) -> String {
    match failure {
        Failure::Step { error } | Failure::NodesLost { error, .. } => error.clone(),
        Failure::Unhealthy { why, .. } => format!("health check failed: {why}"),
    }
}

impl RolloutExecutor {
    pub fn new(cfg: ReconfigConfig, nodes: &[NodeView], engine: &Engine) -> Self {
        let targets: Vec<usize> = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.pool == cfg.pool)
            .map(|(i, _)| i)
            .collect();
        let family = targets
            .first()
            .map_or(GpuFamily::A100, |&i| nodes[i].model.family());
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
            down_since: vec![None; nodes.len()],
            cfg,
            targets,
            family,
            from,
            to: from,
            phase: Phase::Idle,
            machine: None,
            next: None,
            batch: Vec::new(),
            rolling_back: false,
            step_pct: 100,
            movers: Vec::new(),
            moved: 0,
            waiting: Vec::new(),
            id: 0,
            probed: Vec::new(),
            last_postpone: Vec::new(),
            util: Vec::new(),
            report,
            transcripts: Vec::new(),
        }
    }

    /// Start-up of pod `r` whose app is up after `startup_s`: through the readiness probe when
    /// the rollout (re)started it.
    pub fn startup_s(&self, r: u32, startup_s: f64) -> f64 {
        if self.probed.get(r as usize).copied().unwrap_or(false) {
            self.cfg.readiness.ready_after(startup_s)
        } else {
            startup_s
        }
    }

    /// A replacement or a pod the rollout is moving, while the rollout is under way: the
    /// autoscaler leaves it alone (as raising the deployment's minimum for the rollout would).
    pub fn protects(&self, r: u32) -> bool {
        !matches!(self.phase, Phase::Idle | Phase::Done)
            && (self.waiting.contains(&r) || self.movers.contains(&r))
    }

    /// Every attempt's machine transcript, in order (what the cross-world conformance test
    /// compares with live mode's executor).
    pub fn transcripts(&self) -> &[Transcript] {
        &self.transcripts
    }

    pub fn into_transcripts(self) -> Vec<Transcript> {
        self.transcripts
    }

    /// Called after each tick's measurement: the trigger, then as far as the rollout can go.
    pub fn tick(&mut self, w: &mut impl RolloutWorld, t: SimTime) {
        self.trigger(w, t);
        self.advance(w, t);
    }

    /// A wake-up the executor asked for.
    pub fn wake(&mut self, w: &mut impl RolloutWorld, t: SimTime) {
        self.advance(w, t);
    }

    fn probe(&mut self, r: u32) {
        let i = r as usize;
        if self.probed.len() <= i {
            self.probed.resize(i + 1, false);
        }
        self.probed[i] = true;
    }

    fn log(
        &self,
        w: &mut impl RolloutWorld,
        t: SimTime,
        kind: StepKind,
        reason: impl Into<String>,
    ) {
        w.log_step(
            t,
            RolloutStep {
                rollout: self.id,
                strategy: self.cfg.strategy,
                kind,
                reason: reason.into(),
            },
        );
    }

    fn node_index(&self, w: &impl RolloutWorld, name: &str) -> usize {
        w.nodes()
            .iter()
            .position(|n| n.name == name)
            .expect("the machine names only target nodes")
    }

    fn indices(&self, w: &impl RolloutWorld, names: &[String]) -> Vec<usize> {
        names.iter().map(|n| self.node_index(w, n)).collect()
    }

    /// The machine's next command (recorded in the attempt's transcript).
    fn step(&mut self, ev: Event) -> Command {
        let m = self
            .machine
            .as_mut()
            .expect("a rollout under way has a machine");
        let c = m
            .step(ev.clone())
            .expect("the executor answers every command with its event");
        if let Some(tr) = self.transcripts.last_mut() {
            tr.push((ev, c.clone()));
        }
        c
    }

    /// A new attempt over the targets left; its first command.
    fn new_attempt(&mut self, w: &impl RolloutWorld) -> Option<Command> {
        let targets = self
            .targets
            .iter()
            .map(|&i| Target {
                node: w.nodes()[i].name.clone(),
                from_label: Some(label(self.from)),
                to_label: Some(label(self.to)),
            })
            .collect();
        let cfg = machine_config(&self.cfg, w.plugin_restart_s());
        self.machine = RolloutMachine::new(cfg, targets).ok();
        self.machine.as_ref()?;
        self.transcripts.push(Vec::new());
        Some(self.step(Event::Begin))
    }

    fn set_layout(&mut self, w: &mut impl RolloutWorld, replicas: u8) {
        w.set_time_slicing_replicas(self.family, replicas);
    }

    fn node_down(&mut self, w: &mut impl RolloutWorld, t: SimTime, n: usize, down: bool) {
        w.set_cordoned(n, down);
        let gpus = w.nodes()[n].gpus.len() as f64;
        match (down, self.down_since[n]) {
            (true, None) => self.down_since[n] = Some(t),
            (false, Some(s)) => {
                self.down_since[n] = None;
                self.report.gpu_hours_lost += to_secs(t - s) * gpus / 3600.0;
            }
            _ => {}
        }
    }

    /// The pod loses its GPU context: requests in flight fail, it restarts (placed again, then
    /// start-up and the readiness probe).
    fn restart_pod(&mut self, w: &mut impl RolloutWorld, t: SimTime, r: u32) {
        let pod = w.pod(r);
        let draining = pod.state == ReplicaState::Draining;
        let share = pod.share_pct as f64 / 100.0;
        let lost = w.restart_pod(t, r);
        let startup = w.service_startup_s(pod.service);
        self.report.failed_pod_restart += lost;
        self.report.pods_restarted += 1;
        self.report.gpu_hours_lost += share * self.cfg.readiness.ready_after(startup) / 3600.0;
        self.probe(r);
        if !draining {
            // A draining pod was leaving anyway: its replacement exists.
            self.waiting.push(r);
        }
    }

    fn trigger(&mut self, w: &mut impl RolloutWorld, t: SimTime) {
        if self.phase != Phase::Idle {
            return;
        }
        let now = to_secs(t);
        let due = match self.cfg.trigger.clone() {
            Trigger::Scheduled { at_s, replicas } => (now >= at_s && replicas != self.from)
                .then(|| {
                    (
                        replicas,
                        format!("scheduled layout change at {at_s:.0} s: {replicas} time-sliced replicas per GPU"),
                    )
                }),
            Trigger::OptimalReplicas { window_s } => {
                let (mut sum, mut n) = (0.0, 0);
                for &i in &self.targets {
                    for g in &w.nodes()[i].gpus {
                        sum += g.utilisation;
                        n += 1;
                    }
                }
                self.util.push(if n > 0 { sum / n as f64 } else { 0.0 });
                if self.util.len() as f64 * w.tick_s() + 1e-9 < window_s {
                    None
                } else {
                    let d = optimal_replicas_due(self.from, &self.util);
                    self.util.clear();
                    d
                }
            }
        };
        let Some((to, reason)) = due else { return };
        let nodes: Vec<String> = self
            .targets
            .iter()
            .map(|&i| w.nodes()[i].name.clone())
            .collect();
        self.to = to;
        self.id += 1;
        self.phase = Phase::Due;
        self.report.to_replicas = to;
        self.report.due_s.get_or_insert(now);
        self.report.outcome = "postponed".into();
        self.log(
            w,
            t,
            StepKind::Due {
                nodes,
                from_label: label(self.from),
                to_label: label(to),
            },
            reason,
        );
        self.next = self.new_attempt(w);
        if self.next.is_none() {
            self.phase = Phase::Done;
        }
    }

    /// Advances the rollout as far as it can go now.
    fn advance(&mut self, w: &mut impl RolloutWorld, t: SimTime) {
        for _ in 0..64 {
            let before = self.phase;
            match before {
                Phase::Idle | Phase::Done => return,
                Phase::Due => {
                    let c = match self.next.take() {
                        Some(c) => c,
                        None => self.step(Event::Retry),
                    };
                    self.run(w, t, c, true);
                }
                Phase::Surge { until } => {
                    if self.all_ready(w) || t >= until {
                        self.evict_movers(w, t);
                    }
                }
                Phase::Draining { until } => {
                    let left: Vec<u32> = self.movers[..self.moved]
                        .iter()
                        .copied()
                        .filter(|&r| w.pod(r).state != ReplicaState::Gone)
                        .collect();
                    if !left.is_empty() && t < until {
                        return;
                    }
                    for r in left {
                        self.restart_pod(w, t, r);
                    }
                    let c = self.step(Event::Ok);
                    self.run(w, t, c, false);
                }
                Phase::StepWatch { since, until } | Phase::Watch { since, until } => {
                    if t < until {
                        return;
                    }
                    self.watch_verdict(w, t, since);
                }
                Phase::Plugin { applied, until } => {
                    if t < until {
                        return;
                    }
                    self.after_plugin(w, t, applied);
                }
                Phase::Pods { until } => {
                    if !self.all_ready(w) && t < until {
                        return;
                    }
                    self.log(
                        w,
                        t,
                        StepKind::WaitForPods {
                            pods: self.waiting.len() as u32,
                        },
                        "the batch's pods are ready (or the wait timed out)",
                    );
                    let c = self.step(Event::Ok);
                    self.run(w, t, c, false);
                }
            }
            if self.phase == before {
                return;
            }
        }
    }

    fn all_ready(&self, w: &impl RolloutWorld) -> bool {
        self.waiting.iter().all(|&r| {
            matches!(
                w.pod(r).state,
                ReplicaState::Ready | ReplicaState::Gone | ReplicaState::Draining
            )
        })
    }

    /// Carries out `cmd` and the commands that follow it at once, until one takes time. A
    /// batch's first command reached outside the due step waits for the next step.
    fn run(&mut self, w: &mut impl RolloutWorld, t: SimTime, mut cmd: Command, due: bool) {
        let now = to_secs(t);
        loop {
            if !due && cmd.opens_batch() {
                self.next = Some(cmd);
                self.phase = Phase::Due;
                return;
            }
            let ev = match cmd {
                Command::CheckGate => {
                    let c = self.step(Event::Gate(self.gate_sample(w, now)));
                    if !matches!(
                        c,
                        Command::Hold {
                            hold: Hold::Gate { .. }
                        }
                    ) {
                        self.last_postpone.clear();
                    }
                    cmd = c;
                    continue;
                }
                Command::Hold { hold } => {
                    if let Hold::Gate { verdict } = hold {
                        self.report.postponements += 1;
                        if self.last_postpone != verdict.failed {
                            self.last_postpone = verdict.failed.clone();
                            self.log(
                                w,
                                t,
                                StepKind::Postponed {
                                    failed_checks: verdict.failed,
                                },
                                verdict.reason,
                            );
                        }
                    }
                    self.phase = Phase::Due;
                    return;
                }
                Command::Acquire => {
                    if self.breaker.try_acquire(now) {
                        // A new attempt: new placements follow the new layout.
                        self.report.attempts += 1;
                        self.report.started_s.get_or_insert(now);
                        self.report.outcome = "in_progress".into();
                        let to = self.to;
                        self.set_layout(w, to);
                        Event::Go
                    } else {
                        let st = self.breaker.state(now);
                        self.report.outcome = "breaker_open".into();
                        if self.last_postpone != ["breaker_open"] {
                            self.last_postpone = vec!["breaker_open".into()];
                            self.log(
                                w,
                                t,
                                StepKind::Deferred,
                                format!("circuit breaker open: {st:?}"),
                            );
                        }
                        Event::Denied
                    }
                }
                Command::Cordon { role, nodes, .. } => {
                    self.moved = 0;
                    self.waiting.clear();
                    self.batch = self.indices(w, &nodes);
                    let mut movers = Vec::new();
                    for n in self.batch.clone() {
                        self.node_down(w, t, n, true);
                        let name = w.nodes()[n].name.clone();
                        self.log(
                            w,
                            t,
                            StepKind::Cordon { node: name },
                            format!("{role} batch: no new pods while the config changes"),
                        );
                        movers.extend(w.pods_on(n));
                    }
                    self.movers = movers;
                    Event::Ok
                }
                Command::MoveStep {
                    steps,
                    percent,
                    prewarm,
                    ..
                } => {
                    self.start_move_step(w, t, percent, steps > 1, prewarm);
                    return;
                }
                Command::Watch { seconds, kind } => {
                    let until = t + secs(seconds);
                    self.phase = match kind {
                        WatchKind::Step => Phase::StepWatch { since: t, until },
                        WatchKind::Canary => Phase::Watch { since: t, until },
                    };
                    w.wake_at(until);
                    return;
                }
                Command::ApplyConfig {
                    targets,
                    drained,
                    rollback,
                    ..
                } => {
                    if !drained {
                        // In place: the batch begins here.
                        self.moved = 0;
                        self.waiting.clear();
                        self.movers.clear();
                    }
                    self.rolling_back = rollback;
                    let names: Vec<String> = targets.into_iter().map(|x| x.node).collect();
                    self.batch = self.indices(w, &names);
                    self.apply_batch(w, t);
                    Event::Ok
                }
                Command::WaitForPlugin { nodes, timeout_s } => {
                    for node in nodes {
                        self.log(
                            w,
                            t,
                            StepKind::WaitForPlugin { node, timeout_s },
                            "until the plugin advertises the new capacity",
                        );
                    }
                    let until = t + secs(w.plugin_restart_s());
                    self.phase = Phase::Plugin { applied: t, until };
                    w.wake_at(until);
                    return;
                }
                Command::Uncordon { nodes, cordoned } => {
                    for n in self.indices(w, &nodes) {
                        self.node_down(w, t, n, false);
                        if cordoned {
                            let name = w.nodes()[n].name.clone();
                            self.log(
                                w,
                                t,
                                StepKind::Uncordon { node: name },
                                "the plugin advertises the new config",
                            );
                        }
                    }
                    Event::Ok
                }
                Command::WaitForPods { .. } => {
                    let until = t + secs(self.cfg.pods_timeout_s);
                    self.phase = Phase::Pods { until };
                    w.wake_at(until);
                    return;
                }
                Command::Abort {
                    failure,
                    lost,
                    release,
                    rollback,
                } => {
                    for name in lost {
                        self.log(w, t, StepKind::NodeLost { node: name.clone() }, "the plugin never came back and the pods failed their readiness probes: node left cordoned");
                        let n = self.node_index(w, &name);
                        self.targets.retain(|&i| i != n);
                        self.report.nodes_lost.push(name);
                    }
                    self.log(w, t, StepKind::Failed, log_reason(&failure));
                    // What the failed batch left out of service comes back (lost nodes stay out).
                    for n in self.indices(w, &release) {
                        self.node_down(w, t, n, false);
                    }
                    self.breaker.record_failure(now);
                    self.report.failures += 1;
                    let from = self.from;
                    self.set_layout(w, from);
                    if !rollback.is_empty() {
                        self.report.rollbacks += 1;
                    }
                    Event::Ok
                }
                Command::Finished {
                    outcome: Outcome::Done,
                } => {
                    self.breaker.record_success(now);
                    self.from = self.to;
                    self.phase = Phase::Done;
                    self.report.outcome = "done".into();
                    self.report.converged_s = Some(now);
                    let due = self.report.due_s.unwrap_or(now);
                    self.report.time_to_converge_s = Some(now - due);
                    self.log(
                        w,
                        t,
                        StepKind::Done {
                            converge_s: now - due,
                        },
                        "every target node runs the new config",
                    );
                    return;
                }
                Command::Finished {
                    outcome: Outcome::RolledBack { .. },
                } => {
                    // Rolled back: the layout is still due; the breaker decides when to try
                    // again.
                    self.report.outcome = "postponed".into();
                    match self.new_attempt(w) {
                        Some(c) => {
                            cmd = c;
                            continue;
                        }
                        None => {
                            // No target left.
                            self.phase = Phase::Done;
                            return;
                        }
                    }
                }
            };
            cmd = self.step(ev);
        }
    }

    /// The traffic step's gate reading: the last 15 minutes' arrivals, the last 5 minutes'
    /// error rate, the cluster's GPU utilisation and free capacity.
    fn gate_sample(&self, w: &impl RolloutWorld, now: f64) -> GateSample {
        let window = w.tick_s();
        let rows = w.rows();
        let samples: Vec<(f64, f64)> = rows
            .iter()
            .rev()
            .take_while(|r| r.t_s > now - 900.0 - 1e-9)
            .map(|r| (r.t_s, r.arrivals as f64 / window))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let (arr, failed) = rows
            .iter()
            .rev()
            .take_while(|r| r.t_s > now - 300.0 - 1e-9)
            .fold((0u64, 0u64), |(a, f), r| (a + r.arrivals, f + r.failed));
        let (mut util, mut free, mut n) = (0.0, 0.0, 0.0);
        for node in w.nodes() {
            for g in &node.gpus {
                util += g.utilisation;
                free += g.share_free_pct() as f64 / 100.0;
                n += 1.0;
            }
        }
        GateSample {
            now_s: now,
            samples,
            error_rate: if arr > 0 {
                failed as f64 / arr as f64
            } else {
                0.0
            },
            gpu_util: if n > 0.0 { util / n } else { 0.0 },
            free_capacity: if n > 0.0 { free / n } else { 1.0 },
        }
    }

    /// A traffic step: replacements for the step's share of the batch's pods, then its evictions.
    fn start_move_step(
        &mut self,
        w: &mut impl RolloutWorld,
        t: SimTime,
        pct: u8,
        shifting: bool,
        prewarm: bool,
    ) {
        self.step_pct = pct;
        let target = step_share(self.movers.len(), pct);
        let these: Vec<u32> = self.movers[self.moved..target].to_vec();
        self.waiting.clear();
        let mut per_service: std::collections::BTreeMap<usize, u32> = Default::default();
        for &r in &these {
            let svc = w.pod(r).service;
            *per_service.entry(svc).or_default() += 1;
            let startup = self.cfg.readiness.ready_after(w.service_startup_s(svc));
            let n = w.start_pod(t, svc, startup);
            self.probe(n);
            self.waiting.push(n);
        }
        for (svc, k) in per_service {
            let workload = w.service_name(svc).to_string();
            let why = if prewarm {
                "pre-warm: replacements start elsewhere before the drain"
            } else {
                "replacements start elsewhere as the node drains"
            };
            self.log(
                w,
                t,
                StepKind::Surge {
                    workload,
                    replicas: k,
                },
                why,
            );
        }
        if shifting {
            self.log(
                w,
                t,
                StepKind::ShiftTraffic { percent: pct },
                format!("blue-green: {pct} % of green's pods to blue"),
            );
        }
        if !prewarm {
            // The disruption budget (a PodDisruptionBudget of minAvailable 1): a pod is evicted
            // at once only if its service keeps another ready pod; the others wait for their
            // replacement, as the Eviction API answers 429 until then.
            let blocked: Vec<u32> = these
                .iter()
                .copied()
                .filter(|&r| !self.has_other_ready(w, r, &these))
                .collect();
            let free: Vec<u32> = these
                .iter()
                .copied()
                .filter(|r| !blocked.contains(r))
                .collect();
            self.evict(w, t, &free);
            if blocked.is_empty() {
                self.evict_movers(w, t);
                return;
            }
        }
        if !these.is_empty() {
            let until = t + secs(self.cfg.surge_timeout_s);
            self.phase = Phase::Surge { until };
            w.wake_at(until);
        } else {
            self.evict_movers(w, t);
        }
    }

    /// Does `r`'s service keep a ready pod outside `moving`?
    fn has_other_ready(&self, w: &impl RolloutWorld, r: u32, moving: &[u32]) -> bool {
        let svc = w.pod(r).service;
        w.service_pods(svc)
            .iter()
            .any(|&o| o != r && !moving.contains(&o) && w.pod(o).state == ReplicaState::Ready)
    }

    /// Evicts the current step's pods (graceful: they finish what they serve) and waits for
    /// them to drain.
    fn evict_movers(&mut self, w: &mut impl RolloutWorld, t: SimTime) {
        let target = step_share(self.movers.len(), self.step_pct);
        let these: Vec<u32> = self.movers[self.moved..target].to_vec();
        self.moved = target;
        self.evict(w, t, &these);
        let until = t + secs(self.cfg.drain_timeout_s);
        self.phase = Phase::Draining { until };
        w.wake_at(until);
    }

    /// Evicts pods gracefully (those not already leaving).
    fn evict(&mut self, w: &mut impl RolloutWorld, t: SimTime, these: &[u32]) {
        for &r in these {
            let pod = w.pod(r);
            if matches!(pod.state, ReplicaState::Gone | ReplicaState::Draining) {
                continue;
            }
            let Some(node) = pod.node else {
                continue;
            };
            let workload = w.service_name(pod.service).to_string();
            let node = w.nodes()[node].name.clone();
            self.log(
                w,
                t,
                StepKind::Evict {
                    node,
                    workload,
                    replica: r as u64,
                },
                "drain before the config change",
            );
            w.evict(t, r);
        }
    }

    /// Applies the config to every node of the batch.
    fn apply_batch(&mut self, w: &mut impl RolloutWorld, t: SimTime) {
        let (to, prev) = if self.rolling_back {
            (self.from, self.to)
        } else {
            (self.to, self.from)
        };
        let slots = w.engine().config.fit.mps_client_limit.min(255) as u8;
        for n in self.batch.clone() {
            let to_s = NodeSharing::TimeSlicing { replicas: to };
            let before = w.nodes()[n].sharing;
            let pods = w.pods_on(n);
            let prev_s = if matches!(before, NodeSharing::TimeSlicing { .. }) {
                before
            } else {
                NodeSharing::TimeSlicing { replicas: prev }
            };
            let name = w.nodes()[n].name.clone();
            if self.rolling_back {
                self.log(
                    w,
                    t,
                    StepKind::Rollback {
                        node: name.clone(),
                        label: to_s.config_key(),
                        device_plugin_config: to_s.device_plugin_yaml(slots),
                    },
                    "restore the recorded label and ConfigMap entry",
                );
            }
            self.log(
                w,
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
            self.node_down(w, t, n, true);
            for r in pods {
                self.restart_pod(w, t, r);
            }
            w.apply_node_config(n, to_s);
        }
    }

    /// The plugin restart is over: the injected faults decide whether the nodes came back.
    fn after_plugin(&mut self, w: &mut impl RolloutWorld, t: SimTime, applied: SimTime) {
        let give_up = applied + secs(w.plugin_restart_s() + self.cfg.readiness.gives_up_after());
        let faults = &self.cfg.faults;
        let mut ev = Event::Ok;
        if !self.rolling_back {
            let lost: Vec<String> = self
                .batch
                .iter()
                .map(|&n| w.nodes()[n].name.clone())
                .filter(|name| faults.never_returns.contains(name))
                .collect();
            let failing = self
                .batch
                .iter()
                .any(|&n| faults.fail_apply.contains(&w.nodes()[n].name));
            if !lost.is_empty() {
                if t < give_up {
                    self.phase = Phase::Plugin {
                        applied,
                        until: give_up,
                    };
                    w.wake_at(give_up);
                    return;
                }
                ev = Event::NodesLost {
                    nodes: lost,
                    error: "a node did not come back".into(),
                };
            } else if failing && self.fail_apply_left > 0 {
                self.fail_apply_left -= 1;
                ev = Event::Failed(
                    "the new config failed to apply: the plugin does not advertise it".into(),
                );
            }
        }
        let c = self.step(ev);
        self.run(w, t, c, false);
    }

    /// Judges a watched window (its line logged), then goes on as the machine says.
    fn watch_verdict(&mut self, w: &mut impl RolloutWorld, t: SimTime, since: SimTime) {
        let (since_s, now) = (to_secs(since), to_secs(t));
        let (mut arr, mut failed, mut p99) = (0u64, 0u64, 0.0f64);
        for r in w
            .rows()
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
        let c = self.step(Event::Health {
            error_rate: err,
            p99_ms: p99,
        });
        let unhealthy = match &c {
            Command::Abort {
                failure: Failure::Unhealthy { why, .. },
                ..
            } => Some(why.clone()),
            _ => None,
        };
        self.log(
            w,
            t,
            StepKind::Watch {
                error_rate: err,
                p99_ms: p99,
                healthy: unhealthy.is_none(),
            },
            unhealthy.unwrap_or_else(|| "healthy".to_string()),
        );
        self.run(w, t, c, false);
    }

    /// The report for summary.json, with the change's window figures from the timeseries.
    pub fn report(&mut self, w: &impl RolloutWorld, end: SimTime) -> ReconfigReport {
        for (i, node) in w.nodes().iter().enumerate() {
            if let Some(s) = self.down_since[i].take() {
                self.report.gpu_hours_lost += to_secs(end - s) * node.gpus.len() as f64 / 3600.0;
            }
        }
        let mut r = self.report.clone();
        if let Some(start) = r.started_s {
            let stop = r.converged_s.map_or(f64::INFINITY, |c| c + 300.0);
            let during_stop = r.converged_s.unwrap_or(f64::INFINITY);
            for row in w.rows() {
                // A row covers the window that ends at its time.
                if row.t_s > start && row.t_s <= stop + 1e-9 {
                    r.failed_requests += row.failed;
                }
                if row.t_s > start && row.t_s <= during_stop + w.tick_s() + 1e-9 {
                    r.p99_during_ms = r.p99_during_ms.max(row.p99_ms);
                }
            }
        }
        r
    }
}
