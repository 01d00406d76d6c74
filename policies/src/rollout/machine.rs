//! The rollout state machine: one definition of what a sharing-config rollout does next, which
//! both worlds execute. Pure: the state plus an [`Event`] (what the executor saw when it carried
//! out the last [`Command`]) gives the next command. The simulator's executor answers with
//! simulated time and simulated pods, live mode's with API requests and real readings.
//!
//! A rollout runs the strategy's batches ([`super::plan::plan`]): before each batch the QPS
//! gate ([`super::gate`], when configured) must be open (a closed gate *holds* the rollout: the
//! executor asks again later); then, in the simulator's order, the batch's nodes are cordoned,
//! replacements started (pre-warming), the pods evicted, traffic shifted step by step with each
//! step watched (blue-green's green batch), the config applied, the plugin waited for, the nodes
//! uncordoned, the pods waited for, and a canary batch watched. A failed step or an unhealthy
//! watch rolls every node the rollout touched back to its previous config, in reverse order,
//! and the rollout ends `RolledBack`.
//!
//! Who executes it: live mode (`live::rollout_exec`, every rollout, the controller's
//! single-node ones included). The simulator's executor (`sim/src/rollout.rs`) still runs its
//! own phases with the same plan, gate, health check and breaker, in the order this machine
//! follows; moving it onto the machine (keeping its outputs byte-identical) is still open.

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

/// The rollout's typed configuration (the simulator's `[reconfig]`, live mode's flags).
#[derive(Debug, Clone, PartialEq)]
pub struct MachineConfig {
    pub strategy: Strategy,
    pub strategy_cfg: StrategyConfig,
    /// The update class's disruption budget (percent of the targets per batch).
    pub max_disruption_pct: f64,
    /// The QPS gate, when the rollout is gated.
    pub gate: Option<(GateConfig, UpdateClass)>,
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

/// What the executor must do next. Each command is answered by one [`Event`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Measure the traffic and answer [`Event::Gate`].
    CheckGate,
    /// The gate is closed: nothing was changed; ask again later (answer [`Event::Retry`]).
    Hold {
        verdict: GateVerdict,
    },
    /// Pre-warming: start the batch's replacement pods elsewhere first.
    Surge {
        nodes: Vec<String>,
    },
    Cordon {
        node: String,
    },
    /// Evict the node's GPU pods (Eviction API: budgets respected).
    Drain {
        node: String,
    },
    /// Blue-green: move this share of traffic.
    ShiftTraffic {
        percent: u8,
    },
    /// Write the node's new config (ConfigMap entry and label; `None`: remove the label).
    ApplyConfig {
        node: String,
        label: Option<String>,
        previous_label: Option<String>,
    },
    WaitForPlugin {
        node: String,
        timeout_s: f64,
    },
    Uncordon {
        node: String,
    },
    /// Wait until the batch's pods are ready again.
    WaitForPods {
        nodes: Vec<String>,
    },
    /// Watch the service's health for this long; answer [`Event::Health`].
    Watch {
        seconds: f64,
    },
    /// Restore the node's previous config (and cordon state).
    Rollback {
        node: String,
        label: Option<String>,
    },
    /// The rollout is over.
    Finished {
        outcome: Outcome,
    },
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Done,
    RolledBack { error: String },
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
    /// The traffic now (answers [`Command::CheckGate`]).
    Gate(GateSample),
    /// A watched window (answers [`Command::Watch`]).
    Health { error_rate: f64, p99_ms: f64 },
    /// Try the gate again (answers [`Command::Hold`]).
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

/// What happens to a batch, in the simulator's order: cordon its nodes, start replacements
/// (pre-warming), evict the pods, shift traffic step by step (blue-green), apply the config,
/// wait for the plugin, uncordon, wait for the pods, watch (canary). In place there is no drain
/// and no replacement: the config is applied under the running pods, the nodes out of service
/// while the plugin restarts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// One command per node of the batch.
    Each(NodeOp),
    Surge,
    Shifts,
    Pods,
    Watch,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NodeOp {
    Cordon,
    Drain,
    Apply,
    Plugin,
    Uncordon,
}

fn phases(b: &Batch) -> Vec<Phase> {
    use NodeOp::*;
    let mut out = vec![Phase::Each(Cordon)];
    if b.drain {
        if b.surge_first {
            out.push(Phase::Surge);
        }
        out.push(Phase::Each(Drain));
        if b.shift_pct.len() > 1 {
            out.push(Phase::Shifts);
        }
    }
    out.extend([
        Phase::Each(Apply),
        Phase::Each(Plugin),
        Phase::Each(Uncordon),
        Phase::Pods,
    ]);
    if b.watch_s > 0.0 {
        out.push(Phase::Watch);
    }
    out
}

/// Where the machine is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// Before a batch: the gate.
    Gate,
    /// Phase `p` of the batch's [`phases`], at node (or traffic step) `i`; `watching`: a
    /// traffic step's watch is under way.
    In {
        p: usize,
        i: usize,
        watching: bool,
    },
    /// Rolling back `touched[i]` downwards.
    RollingBack {
        i: usize,
    },
    Finished,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RolloutMachine {
    cfg: MachineConfig,
    targets: Vec<Target>,
    batches: Vec<Batch>,
    bi: usize,
    phases: Vec<Phase>,
    stage: Stage,
    /// Nodes this rollout has cordoned (what a rollback restores), in order.
    touched: Vec<usize>,
    error: Option<String>,
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
        let phases = phases(&batches[0]);
        Ok(Self {
            cfg,
            targets,
            batches,
            bi: 0,
            phases,
            stage: Stage::Gate,
            touched: Vec::new(),
            error: None,
            last: None,
        })
    }

    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }

    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    fn batch(&self) -> &Batch {
        &self.batches[self.bi]
    }

    fn batch_nodes(&self) -> Vec<String> {
        self.batch()
            .nodes
            .iter()
            .map(|&i| self.targets[i].node.clone())
            .collect()
    }

    /// The next command, given what the last one gave.
    pub fn step(&mut self, ev: Event) -> Result<Command, MachineError> {
        let unexpected = |ev: &Event, last: &Option<Command>| MachineError::Unexpected {
            event: format!("{ev:?}"),
            command: format!("{last:?}"),
        };
        // A failure anywhere before the rollback starts rolls back what was touched.
        if let Event::Failed(e) = &ev {
            if !matches!(self.stage, Stage::RollingBack { .. } | Stage::Finished) {
                let c = self.start_rollback(e.clone());
                self.last = Some(c.clone());
                return Ok(c);
            }
        }
        let cmd = match (self.stage, &ev) {
            (Stage::Finished, _) => return Err(unexpected(&ev, &self.last)),
            (Stage::Gate, Event::Begin | Event::Ok | Event::Retry) => self.gate_or_begin(),
            (Stage::Gate, Event::Gate(s)) if self.cfg.gate.is_some() => {
                let Some((gc, class)) = self.cfg.gate.clone() else {
                    unreachable!("guarded above")
                };
                let v = evaluate(
                    &gc,
                    class,
                    &GateInput {
                        now_s: s.now_s,
                        samples: &s.samples,
                        error_rate: s.error_rate,
                        gpu_util: s.gpu_util,
                        free_capacity: s.free_capacity,
                    },
                );
                if v.open {
                    self.enter(0)
                } else {
                    Command::Hold { verdict: v }
                }
            }
            (Stage::In { p, i, watching }, _) => match (self.phases[p], &ev) {
                (Phase::Each(_), Event::Ok) => {
                    if i + 1 < self.batch().nodes.len() {
                        self.at(p, i + 1)
                    } else {
                        self.enter(p + 1)
                    }
                }
                (Phase::Surge | Phase::Pods, Event::Ok) => self.enter(p + 1),
                (Phase::Shifts, Event::Ok) if !watching => {
                    let w = self.batch().step_watch_s;
                    if w > 0.0 {
                        self.stage = Stage::In {
                            p,
                            i,
                            watching: true,
                        };
                        Command::Watch { seconds: w }
                    } else {
                        self.next_shift(p, i)
                    }
                }
                (Phase::Shifts, Event::Health { error_rate, p99_ms }) if watching => {
                    match self.cfg.strategy_cfg.health.judge(*error_rate, *p99_ms) {
                        Ok(()) => self.next_shift(p, i),
                        Err(e) => self.start_rollback(format!("traffic step watch: {e}")),
                    }
                }
                (Phase::Watch, Event::Health { error_rate, p99_ms }) => {
                    match self.cfg.strategy_cfg.health.judge(*error_rate, *p99_ms) {
                        Ok(()) => self.enter(p + 1),
                        Err(e) => self.start_rollback(format!("canary watch: {e}")),
                    }
                }
                _ => return Err(unexpected(&ev, &self.last)),
            },
            (Stage::RollingBack { i }, Event::Ok | Event::Failed(_)) => self.rollback_from(i),
            _ => return Err(unexpected(&ev, &self.last)),
        };
        self.last = Some(cmd.clone());
        Ok(cmd)
    }

    fn gate_or_begin(&mut self) -> Command {
        self.stage = Stage::Gate;
        match &self.cfg.gate {
            Some(_) => Command::CheckGate,
            None => self.enter(0),
        }
    }

    fn next_shift(&mut self, p: usize, k: usize) -> Command {
        if k + 1 < self.batch().shift_pct.len() {
            self.at(p, k + 1)
        } else {
            self.enter(p + 1)
        }
    }

    /// Phase `p` of the current batch from its start (the next batch, or the end, past the
    /// last phase).
    fn enter(&mut self, p: usize) -> Command {
        if p < self.phases.len() {
            return self.at(p, 0);
        }
        self.bi += 1;
        if self.bi < self.batches.len() {
            self.phases = phases(&self.batches[self.bi]);
            self.gate_or_begin()
        } else {
            self.stage = Stage::Finished;
            Command::Finished {
                outcome: Outcome::Done,
            }
        }
    }

    /// The command for phase `p` at node (or traffic step) `i`.
    fn at(&mut self, p: usize, i: usize) -> Command {
        self.stage = Stage::In {
            p,
            i,
            watching: false,
        };
        let b = self.batch();
        match self.phases[p] {
            Phase::Each(op) => {
                let ti = b.nodes[i];
                let t = &self.targets[ti];
                let node = t.node.clone();
                match op {
                    NodeOp::Cordon => {
                        if !self.touched.contains(&ti) {
                            self.touched.push(ti);
                        }
                        Command::Cordon { node }
                    }
                    NodeOp::Drain => Command::Drain { node },
                    NodeOp::Apply => Command::ApplyConfig {
                        node,
                        label: t.to_label.clone(),
                        previous_label: t.from_label.clone(),
                    },
                    NodeOp::Plugin => Command::WaitForPlugin {
                        node,
                        timeout_s: self.cfg.plugin_timeout_s,
                    },
                    NodeOp::Uncordon => Command::Uncordon { node },
                }
            }
            Phase::Surge => Command::Surge {
                nodes: self.batch_nodes(),
            },
            Phase::Shifts => Command::ShiftTraffic {
                percent: b.shift_pct[i],
            },
            Phase::Pods => Command::WaitForPods {
                nodes: self.batch_nodes(),
            },
            Phase::Watch => Command::Watch { seconds: b.watch_s },
        }
    }

    fn start_rollback(&mut self, error: String) -> Command {
        self.error = Some(error);
        let i = self.touched.len();
        self.rollback_from(i)
    }

    fn rollback_from(&mut self, i: usize) -> Command {
        if i == 0 {
            self.stage = Stage::Finished;
            return Command::Finished {
                outcome: Outcome::RolledBack {
                    error: self.error.clone().unwrap_or_default(),
                },
            };
        }
        self.stage = Stage::RollingBack { i: i - 1 };
        let t = &self.targets[self.touched[i - 1]];
        Command::Rollback {
            node: t.node.clone(),
            label: t.from_label.clone(),
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

    /// Runs the machine answering every command `Ok`, every watch with `health`.
    fn run(m: &mut RolloutMachine, health: (f64, f64)) -> Vec<Command> {
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
                _ => Event::Ok,
            };
        }
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

    #[test]
    fn rolling_changes_one_node_at_a_time() {
        let mut m = RolloutMachine::new(MachineConfig::default(), targets(2)).unwrap();
        let cs = run(&mut m, (0.0, 0.0));
        assert_eq!(
            names(&cs),
            [
                "cordon",
                "drain",
                "apply_config",
                "wait_for_plugin",
                "uncordon",
                "wait_for_pods",
                "cordon",
                "drain",
                "apply_config",
                "wait_for_plugin",
                "uncordon",
                "wait_for_pods",
                "finished"
            ]
        );
        assert!(m.is_finished());
        assert!(m.step(Event::Ok).is_err(), "nothing after finished");
    }

    #[test]
    fn an_unhealthy_canary_rolls_back_and_stops() {
        let cfg = MachineConfig {
            strategy: Strategy::Canary,
            ..Default::default()
        };
        let mut m = RolloutMachine::new(cfg, targets(4)).unwrap();
        let cs = run(&mut m, (0.5, 100.0));
        let n = names(&cs);
        let watch = n.iter().position(|c| c == "watch").unwrap();
        assert_eq!(&n[watch + 1..], ["rollback", "finished"]);
        assert_eq!(
            cs[watch + 1],
            Command::Rollback {
                node: "n0".into(),
                label: Some("ts-2".into())
            }
        );
        assert!(matches!(
            cs.last(),
            Some(Command::Finished {
                outcome: Outcome::RolledBack { error }
            }) if error.contains("canary watch")
        ));
        // Healthy: every node changed.
        let cfg = MachineConfig {
            strategy: Strategy::Canary,
            ..Default::default()
        };
        let mut m = RolloutMachine::new(cfg, targets(4)).unwrap();
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
    fn a_failed_step_restores_every_changed_node_in_reverse() {
        let mut m = RolloutMachine::new(MachineConfig::default(), targets(3)).unwrap();
        let mut ev = Event::Begin;
        let mut applied = 0;
        let mut rolled = Vec::new();
        loop {
            let c = m.step(ev).unwrap();
            ev = Event::Ok;
            match c {
                Command::ApplyConfig { .. } => applied += 1,
                Command::WaitForPlugin { .. } if applied == 2 => {
                    ev = Event::Failed("plugin never came back".into())
                }
                Command::Rollback { node, .. } => rolled.push(node),
                Command::Finished { outcome } => {
                    assert!(matches!(outcome, Outcome::RolledBack { .. }));
                    break;
                }
                _ => {}
            }
        }
        assert_eq!(rolled, ["n1", "n0"]);
    }

    #[test]
    fn a_closed_gate_holds_without_changing_anything() {
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
            matches!(&c, Command::Hold { verdict } if !verdict.open),
            "{c:?}"
        );
        assert_eq!(m.step(Event::Retry).unwrap(), Command::CheckGate);
        let quiet = GateSample {
            samples: vec![(busy.now_s, 0.0)],
            ..busy
        };
        let c = m.step(Event::Gate(quiet)).unwrap();
        assert!(matches!(c, Command::Cordon { .. }), "{c:?}");
    }

    #[test]
    fn blue_green_shifts_and_watches_each_step() {
        let cfg = MachineConfig {
            strategy: Strategy::BlueGreen,
            ..Default::default()
        };
        let mut m = RolloutMachine::new(cfg, targets(4)).unwrap();
        let cs = run(&mut m, (0.0, 10.0));
        let shifts: Vec<u8> = cs
            .iter()
            .filter_map(|c| match c {
                Command::ShiftTraffic { percent } => Some(*percent),
                _ => None,
            })
            .collect();
        assert_eq!(shifts, [10, 50, 100]);
        assert_eq!(names(&cs).iter().filter(|c| *c == "surge").count(), 2);
        assert!(RolloutMachine::new(MachineConfig::default(), vec![]).is_err());
    }
}
