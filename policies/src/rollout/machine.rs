//! The rollout state machine: one definition of what a sharing-config rollout does next, which
//! both worlds execute. Pure: the state plus an [`Event`] (what the executor saw when it carried
//! out the last [`Command`]) gives the next command. The simulator's executor
//! (`gpusched_sim::rollout`) answers with simulated time and simulated pods, live mode's
//! (`gpusched_live::rollout_exec`) with API requests and real readings; both run every command
//! this machine issues, in its order, so a rollout is the same sequence of steps in both worlds.
//!
//! One machine is one *attempt*: the strategy's batches ([`super::plan::plan`]) over the
//! targets, and, if the attempt fails, the rollback of what it changed. A later attempt (the
//! simulator's next try once the breaker allows, live mode's next reconcile) is a new machine
//! over the targets that are left.
//!
//! Each batch, at batch granularity where the executor acts on the batch at once:
//!
//! 1. unless rolling back: [`Command::CheckGate`] when the rollout is gated (a closed gate is a
//!    [`Command::Hold`]: nothing changed, the executor asks again later with
//!    [`Event::Retry`]), then, at the attempt's first batch, [`Command::Acquire`] (the circuit
//!    breaker's permission: [`Event::Go`], or [`Event::Denied`] and a hold);
//! 2. a draining batch: [`Command::Cordon`] (the pods on the nodes are the batch's *movers*),
//!    then per traffic step a [`Command::MoveStep`] (start the step's share of replacements,
//!    evict that share — once the replacements are ready when pre-warming — and wait for it to
//!    drain), with a [`Command::Watch`] between steps where the plan watches them (blue-green's
//!    green batch);
//! 3. [`Command::ApplyConfig`] for every node of the batch (pods still on a node restart),
//!    [`Command::WaitForPlugin`] for all of them at once, [`Command::Uncordon`] (an in-place
//!    batch was never cordoned: its nodes were only out while the plugin restarted),
//!    [`Command::WaitForPods`], and a canary batch's [`Command::Watch`].
//!
//! A failed command, an unhealthy watch or nodes that never come back ([`Event::NodesLost`]:
//! left cordoned, never rolled back, dropped from later attempts) end the attempt with
//! [`Command::Abort`]; then every node the attempt changed (lost ones excepted) is rolled back
//! as the machine's own batches: one node at a time, drained, restoring its previous label
//! (the same steps as above, ungated, unwatched). A failure during the rollback is recorded and
//! the rollback goes on with the next node. The attempt ends with [`Command::Finished`].

use super::gate::{evaluate, GateConfig, GateInput, GateVerdict, UpdateClass};
use super::plan::{plan, Batch, Strategy, StrategyConfig};
use serde::Serialize;
use thiserror::Error;

/// One node the rollout changes: from which config to which (device-plugin config labels;
/// `None` is the plugin's default, no label).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub node: String,
    pub from_label: Option<String>,
    pub to_label: Option<String>,
}

impl Target {
    /// The same node going back: `to` → `from`.
    pub fn reversed(&self) -> Target {
        Target {
            node: self.node.clone(),
            from_label: self.to_label.clone(),
            to_label: self.from_label.clone(),
        }
    }
}

/// The rollout's typed configuration (the simulator's `[reconfig]`, live mode's flags).
#[derive(Debug, Clone, PartialEq)]
pub struct MachineConfig {
    pub strategy: Strategy,
    pub strategy_cfg: StrategyConfig,
    /// The update class's disruption budget (percent of the targets per batch).
    pub max_disruption_pct: f64,
    /// The QPS gate, when the rollout is gated.
    pub gate: Option<(GateConfig, UpdateClass)>,
    /// How long a plugin wait may take before the node counts as not coming back, s.
    pub plugin_timeout_s: f64,
}

impl Default for MachineConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::Rolling,
            strategy_cfg: StrategyConfig::default(),
            max_disruption_pct: 10.0,
            gate: None,
            plugin_timeout_s: 180.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum MachineError {
    #[error("a rollout needs at least one target node")]
    NoTargets,
    #[error("invalid rollout config: {0}")]
    Config(String),
    #[error("event {event} does not answer command {command}")]
    Unexpected { event: String, command: String },
}

/// Which watch: between blue-green's traffic steps, or a converted canary batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchKind {
    Step,
    Canary,
}

impl WatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchKind::Step => "traffic step",
            WatchKind::Canary => "canary",
        }
    }
}

/// Why the rollout holds (nothing of the batch was changed).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "hold", rename_all = "snake_case")]
pub enum Hold {
    /// The QPS gate is closed.
    Gate { verdict: GateVerdict },
    /// The circuit breaker refused the attempt ([`Event::Denied`]).
    Breaker,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub enum Failure {
    /// The executor could not carry out a command ([`Event::Failed`]).
    Step { error: String },
    /// Nodes never came back after their config was applied ([`Event::NodesLost`]).
    NodesLost { nodes: Vec<String>, error: String },
    /// A watched window failed the health check.
    Unhealthy { watch: WatchKind, why: String },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Step { error } | Failure::NodesLost { error, .. } => f.write_str(error),
            Failure::Unhealthy { watch, why } => {
                write!(f, "{} watch: health check failed: {why}", watch.as_str())
            }
        }
    }
}

/// What the executor must do next. Each command is answered by one [`Event`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Measure the traffic and answer [`Event::Gate`].
    CheckGate,
    /// Nothing was changed; ask again later (answer [`Event::Retry`]).
    Hold { hold: Hold },
    /// The attempt's first batch: ask the circuit breaker (answer [`Event::Go`] or
    /// [`Event::Denied`]). Comes after the gate, so a held rollout never uses a trial.
    Acquire,
    /// Take a draining batch out of service (`spec.unschedulable`); the GPU pods on its nodes,
    /// in node order, are the batch's movers.
    Cordon {
        /// The batch's index in this attempt (its rollout batches, then its rollback batches).
        batch: usize,
        /// What the batch is ("rolling", "canary", "blue", "green", "prewarm", "rollback").
        role: &'static str,
        nodes: Vec<String>,
    },
    /// One traffic step of a draining batch: start replacements elsewhere for the movers up to
    /// [`step_share`]`(movers, percent)` (those of earlier steps have moved), evict them —
    /// after the replacements are ready when `prewarm` (else those whose service keeps another
    /// ready pod at once, the rest when their replacement is ready) — and wait until they have
    /// drained (past the executor's timeout, the rest restart).
    MoveStep {
        nodes: Vec<String>,
        /// 0-based; `steps` in all (more than one: blue-green traffic shifting).
        step: usize,
        steps: usize,
        /// Cumulative share of the movers moved after this step.
        percent: u8,
        prewarm: bool,
    },
    /// Watch the service's health for this long; answer [`Event::Health`].
    Watch { seconds: f64, kind: WatchKind },
    /// Write every node's new config (ConfigMap entry and label; `to_label: None` removes the
    /// label). Pods still on a node lose their GPU context and restart; the nodes are out of
    /// service until the plugin is back.
    ApplyConfig {
        batch: usize,
        targets: Vec<Target>,
        /// The batch was cordoned and drained first (false: in place, the batch's first step).
        drained: bool,
        /// A rollback batch: `targets` restore the previous config.
        rollback: bool,
    },
    /// Wait until the plugin on every node advertises the new config (answer [`Event::Ok`],
    /// [`Event::Failed`], or [`Event::NodesLost`] for nodes that never come back).
    WaitForPlugin { nodes: Vec<String>, timeout_s: f64 },
    /// The nodes are back in service: uncordoned when `cordoned` (a draining batch), else only
    /// past their plugin restart.
    Uncordon { nodes: Vec<String>, cordoned: bool },
    /// Wait until the batch's pods are ready again.
    WaitForPods { nodes: Vec<String> },
    /// The attempt failed (counts against the circuit breaker). Lost nodes stay out of service;
    /// `release`: the failed batch's other nodes come back into service; `rollback`: the nodes
    /// the rollback batches restore next, in this order. Answer [`Event::Ok`].
    Abort {
        failure: Failure,
        lost: Vec<String>,
        release: Vec<String>,
        rollback: Vec<String>,
    },
    /// The attempt is over.
    Finished { outcome: Outcome },
}

impl Command {
    /// Whether this command can be a batch's first (what comes between batches: the gate, the
    /// breaker, the cordon, an in-place apply). The simulator's executor runs a new batch from
    /// its next advance, as it always has.
    pub fn opens_batch(&self) -> bool {
        matches!(
            self,
            Command::CheckGate
                | Command::Acquire
                | Command::Cordon { .. }
                | Command::ApplyConfig { drained: false, .. }
        )
    }
}

/// The number of a batch's `movers` moved once the cumulative `percent` is reached (rounded
/// up, so a step never leaves a pod behind its share).
pub fn step_share(movers: usize, percent: u8) -> usize {
    (movers * percent as usize).div_ceil(100)
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Done,
    /// Failed; the changed nodes were rolled back (`rollback_errors`: rollback steps that
    /// failed, their nodes left as they were), `lost` nodes left cordoned.
    RolledBack {
        error: String,
        lost: Vec<String>,
        rollback_errors: Vec<String>,
    },
}

/// What the executor saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Start (answers nothing).
    Begin,
    /// The command was carried out.
    Ok,
    /// The command failed.
    Failed(String),
    /// These nodes never came back (answers [`Command::WaitForPlugin`]); the others did.
    NodesLost { nodes: Vec<String>, error: String },
    /// The traffic now (answers [`Command::CheckGate`]).
    Gate(GateSample),
    /// The breaker allows the attempt (answers [`Command::Acquire`]).
    Go,
    /// The breaker is open (answers [`Command::Acquire`]).
    Denied,
    /// A watched window (answers [`Command::Watch`]).
    Health { error_rate: f64, p99_ms: f64 },
    /// Try again (answers [`Command::Hold`]).
    Retry,
}

/// Owned form of [`GateInput`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GateSample {
    pub now_s: f64,
    pub samples: Vec<(f64, f64)>,
    pub error_rate: f64,
    pub gpu_util: f64,
    pub free_capacity: f64,
}

impl GateSample {
    /// The gate's input, borrowing the samples.
    pub fn input(&self) -> GateInput<'_> {
        GateInput {
            now_s: self.now_s,
            samples: &self.samples,
            error_rate: self.error_rate,
            gpu_util: self.gpu_util,
            free_capacity: self.free_capacity,
        }
    }
}

/// One step of a batch, in order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Cordon,
    /// Traffic step `k`.
    Move(usize),
    /// The watch after traffic step `k`.
    StepWatch(usize),
    Apply,
    Plugin,
    Uncordon,
    Pods,
    Watch,
}

fn ops(b: &Batch) -> Vec<Op> {
    let mut out = Vec::new();
    if b.drain {
        out.push(Op::Cordon);
        let n = b.shift_pct.len();
        for k in 0..n {
            out.push(Op::Move(k));
            if k + 1 < n && b.step_watch_s > 0.0 {
                out.push(Op::StepWatch(k));
            }
        }
    }
    out.extend([Op::Apply, Op::Plugin, Op::Uncordon, Op::Pods]);
    if b.watch_s > 0.0 {
        out.push(Op::Watch);
    }
    out
}

/// Where the machine is, i.e. which command it waits on an answer to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// Nothing issued yet.
    Start,
    CheckGate,
    Hold,
    Acquire,
    /// `ops[i]` of the current batch was issued.
    In(usize),
    Abort,
    Finished,
}

/// The rollout state machine (one attempt). See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutMachine {
    cfg: MachineConfig,
    targets: Vec<Target>,
    batches: Vec<Batch>,
    /// Rollout batches done before the rollback began (batch numbering goes on from there).
    batch_base: usize,
    bi: usize,
    ops: Vec<Op>,
    stage: Stage,
    rolling_back: bool,
    /// Targets whose new config was applied, in order (what a rollback restores).
    changed: Vec<usize>,
    lost: Vec<usize>,
    failure: Option<Failure>,
    rollback_errors: Vec<String>,
    last: Option<Command>,
}

impl RolloutMachine {
    pub fn new(cfg: MachineConfig, targets: Vec<Target>) -> Result<Self, MachineError> {
        if targets.is_empty() {
            return Err(MachineError::NoTargets);
        }
        cfg.strategy_cfg.validate().map_err(MachineError::Config)?;
        let batches = plan(
            cfg.strategy,
            targets.len(),
            &cfg.strategy_cfg,
            cfg.max_disruption_pct,
        );
        let ops = ops(&batches[0]);
        Ok(Self {
            cfg,
            targets,
            batches,
            batch_base: 0,
            bi: 0,
            ops,
            stage: Stage::Start,
            rolling_back: false,
            changed: Vec::new(),
            lost: Vec::new(),
            failure: None,
            rollback_errors: Vec::new(),
            last: None,
        })
    }

    /// The batches being run: the strategy's, or the rollback's once it has begun.
    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    pub fn is_rolling_back(&self) -> bool {
        self.rolling_back
    }

    fn batch(&self) -> &Batch {
        &self.batches[self.bi]
    }

    fn names(&self, idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| self.targets[i].node.clone()).collect()
    }

    fn batch_nodes(&self) -> Vec<String> {
        self.names(&self.batch().nodes)
    }

    /// The next command, given what the last one gave.
    pub fn step(&mut self, ev: Event) -> Result<Command, MachineError> {
        let cmd = self.next(&ev).ok_or_else(|| MachineError::Unexpected {
            event: format!("{ev:?}"),
            command: format!("{:?}", self.last),
        })?;
        self.last = Some(cmd.clone());
        Ok(cmd)
    }

    fn next(&mut self, ev: &Event) -> Option<Command> {
        match (self.stage, ev) {
            (Stage::Finished, _) => None,
            (Stage::Start, Event::Begin) | (Stage::Hold, Event::Retry) => Some(self.open_batch()),
            (Stage::Abort, Event::Ok) => Some(self.start_rollback()),
            (Stage::Abort, _) | (Stage::Start | Stage::Hold, _) => None,
            // A failure during the rollback is recorded; the rollback goes on with the next node.
            (_, Event::Failed(e) | Event::NodesLost { error: e, .. }) if self.rolling_back => {
                self.rollback_errors.push(e.clone());
                Some(self.next_batch())
            }
            (_, Event::Failed(e)) => {
                Some(self.abort(Failure::Step { error: e.clone() }, Vec::new()))
            }
            (Stage::CheckGate, Event::Gate(s)) => {
                let (gc, class) = self.cfg.gate.clone()?;
                let v = evaluate(&gc, class, &s.input());
                Some(if v.open {
                    self.after_gate()
                } else {
                    self.stage = Stage::Hold;
                    Command::Hold {
                        hold: Hold::Gate { verdict: v },
                    }
                })
            }
            (Stage::Acquire, Event::Go) => Some(self.op(0)),
            (Stage::Acquire, Event::Denied) => {
                self.stage = Stage::Hold;
                Some(Command::Hold {
                    hold: Hold::Breaker,
                })
            }
            (Stage::In(i), _) => self.answer(i, ev),
            _ => None,
        }
    }

    /// The answer to `ops[i]`.
    fn answer(&mut self, i: usize, ev: &Event) -> Option<Command> {
        match (self.ops[i], ev) {
            (Op::StepWatch(_) | Op::Watch, Event::Health { error_rate, p99_ms }) => {
                let watch = if self.ops[i] == Op::Watch {
                    WatchKind::Canary
                } else {
                    WatchKind::Step
                };
                Some(
                    match self.cfg.strategy_cfg.health.judge(*error_rate, *p99_ms) {
                        Ok(()) => self.op(i + 1),
                        Err(why) => self.abort(Failure::Unhealthy { watch, why }, Vec::new()),
                    },
                )
            }
            (Op::Plugin, Event::NodesLost { nodes, error }) => {
                let lost: Vec<usize> = self
                    .batch()
                    .nodes
                    .iter()
                    .copied()
                    .filter(|&t| nodes.contains(&self.targets[t].node))
                    .collect();
                Some(self.abort(
                    Failure::NodesLost {
                        nodes: self.names(&lost),
                        error: error.clone(),
                    },
                    lost,
                ))
            }
            (Op::StepWatch(_) | Op::Watch, _) => None,
            (_, Event::Ok) => Some(self.op(i + 1)),
            _ => None,
        }
    }

    /// Before a batch: the gate, the breaker (the attempt's first batch), then its first step.
    /// Rollback batches go at once.
    fn open_batch(&mut self) -> Command {
        if !self.rolling_back && self.cfg.gate.is_some() {
            self.stage = Stage::CheckGate;
            return Command::CheckGate;
        }
        self.after_gate()
    }

    fn after_gate(&mut self) -> Command {
        if !self.rolling_back && self.bi == 0 {
            self.stage = Stage::Acquire;
            return Command::Acquire;
        }
        self.op(0)
    }

    fn next_batch(&mut self) -> Command {
        self.bi += 1;
        if self.bi < self.batches.len() {
            self.ops = ops(&self.batches[self.bi]);
            return self.open_batch();
        }
        self.finish()
    }

    fn finish(&mut self) -> Command {
        self.stage = Stage::Finished;
        let outcome = match &self.failure {
            None => Outcome::Done,
            Some(f) => Outcome::RolledBack {
                error: f.to_string(),
                lost: self.names(&self.lost),
                rollback_errors: self.rollback_errors.clone(),
            },
        };
        Command::Finished { outcome }
    }

    /// Issues `ops[i]` of the current batch (the next batch past the last).
    fn op(&mut self, i: usize) -> Command {
        let Some(&op) = self.ops.get(i) else {
            return self.next_batch();
        };
        self.stage = Stage::In(i);
        let batch = self.batch_base + self.bi;
        let b = self.batch();
        let nodes = self.batch_nodes();
        match op {
            Op::Cordon => Command::Cordon {
                batch,
                role: b.role,
                nodes,
            },
            Op::Move(k) => Command::MoveStep {
                nodes,
                step: k,
                steps: b.shift_pct.len(),
                percent: b.shift_pct[k],
                prewarm: b.surge_first,
            },
            Op::StepWatch(_) => Command::Watch {
                seconds: b.step_watch_s,
                kind: WatchKind::Step,
            },
            Op::Apply => {
                let drained = b.drain;
                let idx = b.nodes.clone();
                let targets = idx
                    .iter()
                    .map(|&t| {
                        if self.rolling_back {
                            self.targets[t].reversed()
                        } else {
                            self.targets[t].clone()
                        }
                    })
                    .collect();
                if !self.rolling_back {
                    for t in idx {
                        if !self.changed.contains(&t) {
                            self.changed.push(t);
                        }
                    }
                }
                Command::ApplyConfig {
                    batch,
                    targets,
                    drained,
                    rollback: self.rolling_back,
                }
            }
            Op::Plugin => Command::WaitForPlugin {
                nodes,
                timeout_s: self.cfg.plugin_timeout_s,
            },
            Op::Uncordon => Command::Uncordon {
                nodes,
                cordoned: b.drain,
            },
            Op::Pods => Command::WaitForPods { nodes },
            Op::Watch => Command::Watch {
                seconds: b.watch_s,
                kind: WatchKind::Canary,
            },
        }
    }

    fn abort(&mut self, failure: Failure, lost: Vec<usize>) -> Command {
        // The batch's nodes come back into service if it had begun (past the gate and breaker).
        let begun = matches!(self.stage, Stage::In(_));
        for &t in &lost {
            self.changed.retain(|&c| c != t);
            if !self.lost.contains(&t) {
                self.lost.push(t);
            }
        }
        let release: Vec<usize> = if begun {
            self.batch()
                .nodes
                .iter()
                .copied()
                .filter(|t| !self.lost.contains(t))
                .collect()
        } else {
            Vec::new()
        };
        self.stage = Stage::Abort;
        let cmd = Command::Abort {
            failure: failure.clone(),
            lost: self.names(&lost),
            release: self.names(&release),
            rollback: self.names(&self.changed),
        };
        self.failure = Some(failure);
        cmd
    }

    /// The rollback: every changed node, one at a time, drained, restoring its previous config.
    fn start_rollback(&mut self) -> Command {
        self.rolling_back = true;
        self.batch_base += self.bi + 1;
        self.batches = self
            .changed
            .iter()
            .map(|&t| Batch {
                role: "rollback",
                nodes: vec![t],
                drain: true,
                surge_first: false,
                shift_pct: vec![100],
                step_watch_s: 0.0,
                watch_s: 0.0,
            })
            .collect();
        self.bi = 0;
        match self.batches.first() {
            Some(b) => {
                self.ops = ops(b);
                self.open_batch()
            }
            None => self.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: usize) -> Vec<Target> {
        (0..n)
            .map(|i| Target {
                node: format!("n{i}"),
                from_label: Some("ts-2".into()),
                to_label: Some("ts-4".into()),
            })
            .collect()
    }

    /// Runs the machine answering every command `Ok`, every watch with `health`, the breaker
    /// with `Go`, and the plugin wait of `lose` (if any) with that node lost.
    fn run_with(m: &mut RolloutMachine, health: (f64, f64), lose: Option<&str>) -> Vec<Command> {
        let mut out = Vec::new();
        let mut ev = Event::Begin;
        loop {
            let c = m.step(ev).unwrap();
            out.push(c.clone());
            ev = match c {
                Command::Finished { .. } => return out,
                Command::Watch { .. } => Event::Health {
                    error_rate: health.0,
                    p99_ms: health.1,
                },
                Command::CheckGate => Event::Gate(GateSample::default()),
                Command::Acquire => Event::Go,
                Command::WaitForPlugin { nodes, .. }
                    if lose.is_some_and(|l| nodes.iter().any(|n| n == l))
                        && !m.is_rolling_back() =>
                {
                    Event::NodesLost {
                        nodes: vec![lose.unwrap().to_string()],
                        error: "a node did not come back".into(),
                    }
                }
                _ => Event::Ok,
            };
        }
    }

    fn run(m: &mut RolloutMachine, health: (f64, f64)) -> Vec<Command> {
        run_with(m, health, None)
    }

    fn names(cs: &[Command]) -> Vec<String> {
        cs.iter()
            .map(|c| {
                serde_json::to_value(c).unwrap()["command"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn machine(strategy: Strategy, n: usize) -> RolloutMachine {
        let cfg = MachineConfig {
            strategy,
            ..Default::default()
        };
        RolloutMachine::new(cfg, targets(n)).unwrap()
    }

    #[test]
    fn rolling_changes_one_node_at_a_time_in_the_simulators_order() {
        let mut m = machine(Strategy::Rolling, 2);
        let cs = run(&mut m, (0.0, 0.0));
        let batch = [
            "cordon",
            "move_step",
            "apply_config",
            "wait_for_plugin",
            "uncordon",
            "wait_for_pods",
        ];
        let mut want = vec!["acquire"];
        want.extend(batch);
        want.extend(batch);
        want.push("finished");
        assert_eq!(names(&cs), want);
        assert_eq!(
            cs[1],
            Command::Cordon {
                batch: 0,
                role: "rolling",
                nodes: vec!["n0".into()]
            }
        );
        assert_eq!(
            cs[2],
            Command::MoveStep {
                nodes: vec!["n0".into()],
                step: 0,
                steps: 1,
                percent: 100,
                prewarm: false
            }
        );
        assert!(matches!(
            &cs[3],
            Command::ApplyConfig { batch: 0, targets, drained: true, rollback: false }
                if targets[0].to_label.as_deref() == Some("ts-4")
                    && targets[0].from_label.as_deref() == Some("ts-2")
        ));
        assert!(matches!(&cs[9], Command::ApplyConfig { batch: 1, .. }));
        assert!(m.is_finished());
        assert!(m.step(Event::Ok).is_err(), "nothing after finished");
    }

    #[test]
    fn in_place_applies_under_the_pods_without_cordon_or_drain() {
        let mut m = machine(Strategy::InPlace, 3);
        let cs = run(&mut m, (0.0, 0.0));
        assert_eq!(
            names(&cs),
            [
                "acquire",
                "apply_config",
                "wait_for_plugin",
                "uncordon",
                "wait_for_pods",
                "finished"
            ]
        );
        assert!(matches!(
            &cs[1],
            Command::ApplyConfig { targets, drained: false, .. } if targets.len() == 3
        ));
        assert!(cs[1].opens_batch());
        assert_eq!(
            cs[3],
            Command::Uncordon {
                nodes: vec!["n0".into(), "n1".into(), "n2".into()],
                cordoned: false
            }
        );
    }

    #[test]
    fn an_unhealthy_canary_aborts_and_rolls_back_as_drained_single_node_batches() {
        let mut m = machine(Strategy::Canary, 4);
        let cs = run(&mut m, (0.5, 100.0));
        let n = names(&cs);
        let watch = n.iter().position(|c| c == "watch").unwrap();
        assert_eq!(
            &n[watch + 1..],
            [
                "abort",
                "cordon",
                "move_step",
                "apply_config",
                "wait_for_plugin",
                "uncordon",
                "wait_for_pods",
                "finished"
            ]
        );
        let Command::Abort {
            failure,
            lost,
            release,
            rollback,
        } = &cs[watch + 1]
        else {
            panic!()
        };
        assert!(matches!(
            failure,
            Failure::Unhealthy {
                watch: WatchKind::Canary,
                ..
            }
        ));
        assert!(lost.is_empty());
        assert_eq!(release, &["n0"]);
        assert_eq!(rollback, &["n0"]);
        assert!(matches!(
            &cs[watch + 2],
            Command::Cordon {
                role: "rollback",
                batch: 1,
                ..
            }
        ));
        assert_eq!(
            cs[watch + 4],
            Command::ApplyConfig {
                batch: 1,
                targets: vec![Target {
                    node: "n0".into(),
                    from_label: Some("ts-4".into()),
                    to_label: Some("ts-2".into()),
                }],
                drained: true,
                rollback: true,
            }
        );
        assert!(matches!(
            cs.last(),
            Some(Command::Finished {
                outcome: Outcome::RolledBack { error, .. }
            }) if error.contains("canary watch")
        ));
        // Healthy: every node changed.
        let mut m = machine(Strategy::Canary, 4);
        let cs = run(&mut m, (0.0, 100.0));
        assert_eq!(
            names(&cs).iter().filter(|c| *c == "apply_config").count(),
            4
        );
        assert_eq!(
            cs.last(),
            Some(&Command::Finished {
                outcome: Outcome::Done
            })
        );
    }

    #[test]
    fn a_failed_step_restores_every_changed_node_in_the_order_changed() {
        let mut m = machine(Strategy::Rolling, 3);
        let mut ev = Event::Begin;
        let mut applied = 0;
        let mut rolled = Vec::new();
        let mut released = Vec::new();
        loop {
            let c = m.step(ev).unwrap();
            ev = Event::Ok;
            match c {
                Command::Acquire => ev = Event::Go,
                Command::ApplyConfig {
                    rollback: false, ..
                } => applied += 1,
                Command::ApplyConfig {
                    targets,
                    rollback: true,
                    ..
                } => rolled.push(targets[0].node.clone()),
                Command::WaitForPlugin { .. } if applied == 2 && rolled.is_empty() => {
                    ev = Event::Failed("plugin never came back".into())
                }
                Command::Abort { release, .. } => released = release,
                Command::Finished { outcome } => {
                    assert!(matches!(outcome, Outcome::RolledBack { .. }));
                    break;
                }
                _ => {}
            }
        }
        assert_eq!(rolled, ["n0", "n1"]);
        assert_eq!(released, ["n1"]);
    }

    #[test]
    fn a_lost_node_is_not_rolled_back_and_the_failure_says_so() {
        let mut m = machine(Strategy::Rolling, 3);
        let cs = run_with(&mut m, (0.0, 0.0), Some("n1"));
        let abort = cs
            .iter()
            .find(|c| matches!(c, Command::Abort { .. }))
            .unwrap();
        assert_eq!(
            abort,
            &Command::Abort {
                failure: Failure::NodesLost {
                    nodes: vec!["n1".into()],
                    error: "a node did not come back".into()
                },
                lost: vec!["n1".into()],
                release: vec![],
                rollback: vec!["n0".into()],
            }
        );
        let rolled: Vec<&str> = cs
            .iter()
            .filter_map(|c| match c {
                Command::ApplyConfig {
                    targets,
                    rollback: true,
                    ..
                } => Some(targets[0].node.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(rolled, ["n0"]);
        assert_eq!(
            cs.last(),
            Some(&Command::Finished {
                outcome: Outcome::RolledBack {
                    error: "a node did not come back".into(),
                    lost: vec!["n1".into()],
                    rollback_errors: vec![],
                }
            })
        );
    }

    #[test]
    fn a_failed_rollback_step_is_recorded_and_the_rollback_goes_on() {
        let mut m = machine(Strategy::Rolling, 3);
        let mut ev = Event::Begin;
        let mut rolled = Vec::new();
        let mut applied = 0;
        let outcome = loop {
            let c = m.step(ev).unwrap();
            ev = Event::Ok;
            match c {
                Command::Acquire => ev = Event::Go,
                Command::ApplyConfig {
                    rollback: false, ..
                } => applied += 1,
                Command::ApplyConfig {
                    targets,
                    rollback: true,
                    ..
                } => {
                    rolled.push(targets[0].node.clone());
                    if rolled.len() == 1 {
                        ev = Event::Failed("label patch refused".into());
                    }
                }
                Command::Watch { .. } | Command::CheckGate => unreachable!(),
                Command::Uncordon { .. } if applied == 3 && rolled.is_empty() => {
                    ev = Event::Failed("uncordon refused".into())
                }
                Command::Finished { outcome } => break outcome,
                _ => {}
            }
        };
        assert_eq!(rolled, ["n0", "n1", "n2"]);
        assert_eq!(
            outcome,
            Outcome::RolledBack {
                error: "uncordon refused".into(),
                lost: vec![],
                rollback_errors: vec!["label patch refused".into()],
            }
        );
    }

    #[test]
    fn a_closed_gate_holds_before_the_breaker_and_without_changing_anything() {
        let gate = GateConfig::default();
        let cfg = MachineConfig {
            gate: Some((gate.clone(), UpdateClass::Routine)),
            ..Default::default()
        };
        let mut m = RolloutMachine::new(cfg, targets(2)).unwrap();
        assert_eq!(m.step(Event::Begin).unwrap(), Command::CheckGate);
        let busy = GateSample {
            now_s: 3.0 * 3600.0,
            samples: (0..15)
                .map(|i| (3.0 * 3600.0 - 60.0 * i as f64, gate.no_update_qps * 10.0))
                .rev()
                .collect(),
            free_capacity: 1.0,
            ..Default::default()
        };
        let c = m.step(Event::Gate(busy.clone())).unwrap();
        assert!(
            matches!(&c, Command::Hold { hold: Hold::Gate { verdict } } if !verdict.open),
            "{c:?}"
        );
        assert!(m.step(Event::Ok).is_err(), "a hold is answered by a retry");
        assert_eq!(m.step(Event::Retry).unwrap(), Command::CheckGate);
        let quiet = GateSample {
            samples: vec![(busy.now_s, 0.0)],
            ..busy
        };
        assert_eq!(
            m.step(Event::Gate(quiet.clone())).unwrap(),
            Command::Acquire
        );
        // The breaker says no: held, and the gate is asked again first.
        assert_eq!(
            m.step(Event::Denied).unwrap(),
            Command::Hold {
                hold: Hold::Breaker
            }
        );
        assert_eq!(m.step(Event::Retry).unwrap(), Command::CheckGate);
        assert_eq!(
            m.step(Event::Gate(quiet.clone())).unwrap(),
            Command::Acquire
        );
        let c = m.step(Event::Go).unwrap();
        assert!(matches!(c, Command::Cordon { batch: 0, .. }), "{c:?}");
        // The second batch: the gate again, no breaker.
        for _ in 0..5 {
            m.step(Event::Ok).unwrap();
        }
        assert_eq!(m.step(Event::Ok).unwrap(), Command::CheckGate);
        let c = m.step(Event::Gate(quiet)).unwrap();
        assert!(matches!(c, Command::Cordon { batch: 1, .. }), "{c:?}");
    }

    #[test]
    fn blue_green_moves_in_traffic_steps_watched_between_them() {
        let mut m = machine(Strategy::BlueGreen, 4);
        let cs = run(&mut m, (0.0, 10.0));
        let n = names(&cs);
        let green = cs
            .iter()
            .position(|c| matches!(c, Command::Cordon { role: "green", .. }))
            .unwrap();
        assert_eq!(
            &n[green..],
            [
                "cordon",
                "move_step",
                "watch",
                "move_step",
                "watch",
                "move_step",
                "apply_config",
                "wait_for_plugin",
                "uncordon",
                "wait_for_pods",
                "finished"
            ]
        );
        let steps: Vec<(usize, u8, bool)> = cs
            .iter()
            .filter_map(|c| match c {
                Command::MoveStep {
                    step,
                    percent,
                    prewarm,
                    ..
                } => Some((*step, *percent, *prewarm)),
                _ => None,
            })
            .collect();
        assert_eq!(
            steps,
            [(0, 100, true), (0, 10, true), (1, 50, true), (2, 100, true)]
        );
        // An unhealthy step watch: blue (changed) is rolled back, green (cordoned) released.
        let mut m = machine(Strategy::BlueGreen, 4);
        let cs = run(&mut m, (0.0, 5000.0));
        let abort = cs
            .iter()
            .find_map(|c| match c {
                Command::Abort {
                    failure,
                    release,
                    rollback,
                    ..
                } => Some((failure.clone(), release.clone(), rollback.clone())),
                _ => None,
            })
            .unwrap();
        assert!(matches!(
            abort.0,
            Failure::Unhealthy {
                watch: WatchKind::Step,
                ..
            }
        ));
        assert_eq!(abort.1, ["n2", "n3"]);
        assert_eq!(abort.2, ["n0", "n1"]);
        assert!(RolloutMachine::new(MachineConfig::default(), vec![]).is_err());
    }

    #[test]
    fn step_shares_round_up() {
        assert_eq!(step_share(3, 10), 1);
        assert_eq!(step_share(3, 50), 2);
        assert_eq!(step_share(3, 100), 3);
        assert_eq!(step_share(0, 100), 0);
    }
}
