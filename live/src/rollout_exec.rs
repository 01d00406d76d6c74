//! Live mode's executor of the engine crate's rollout state machine
//! ([`gpusched_policies::rollout::machine`]): the same plan, strategies (in place, rolling,
//! pre-warming, blue-green, canary), QPS gate, circuit breaker, canary watch and rollback
//! batches as the simulator's executor (`gpusched_sim::rollout`), carried out with API requests.
//! Both executors run every command the machine issues, in its order (the cross-world test
//! `tests/rollout_conformance.rs` checks that they issue the same sequence). Each node's change
//! is a [`Rollout`] planned by [`crate::rollback::plan_rollout`] (its rollback record, ConfigMap
//! entry, evictions, plugin readiness before and after).
//!
//! How each command is carried out (batch commands node by node, in the batch's order):
//! * `CheckGate` / `Watch`: the [`Observer`] (traffic samples and the service's error rate and
//!   p99 over a window) — a trait, so tests and the controller supply their own readings;
//! * `Acquire`: the shared [`CircuitBreaker`] (refused: the run ends `Deferred`, nothing sent);
//! * `Cordon`: first the node's rollback record and in-progress marker, the ConfigMap entry,
//!   then `spec.unschedulable` (unless it already was); the GPU pods the plan evicts from the
//!   batch's nodes are its movers;
//! * `MoveStep`: the Eviction API on the step's share of the movers, a 429 (PodDisruptionBudget)
//!   retried `timing.evict_retries` times, then the step fails; gpusched places the evicted
//!   pods' replacements in its next reconciles and routes no traffic itself, so the
//!   replacements and the traffic shift are recorded (in the command), not waited on;
//! * `ApplyConfig`: the node label (a node not touched yet — in place — is prepared first; a
//!   rollback batch writes the previous label); `WaitForPlugin`: polls each node's capacity
//!   until the plugin advertises the config (not in a dry run; a rollback waits for the
//!   previous config when its readiness is known); `Uncordon`: uncordon (if the batch was
//!   cordoned and the node was not before) and clear the marker; `WaitForPods`: recorded;
//! * `Abort`: counts against the breaker; the failed batch's nodes come back into service — a
//!   node never changed is restored from its record at once (entry, label, cordon, marker), a
//!   changed one stays cordoned for the rollback batch that restores it next (the simulator
//!   releases and cordons it again at the same instant);
//! * the ConfigMap entry the rollout wrote is removed once nothing carries its label any more.
//!
//! A `Hold` (gate closed) changes nothing and does not count against the breaker. The observer
//! decides what follows ([`Observer::wait_at_closed_gate`]): wait and ask the gate again with
//! the same machine — the simulator's way, so a canary rollout held before its second batch
//! keeps its one canary — or end the run `Held` (the controller's single-node rollouts, which
//! have no gate: the next reconcile runs a new machine).

use crate::apply::{Action, Applier, ApplyError, Scope};
use crate::keys;
use crate::rollback::{rollback_actions, Rollout, RolloutOutcome, RolloutTiming};
use gpusched_policies::rollout::machine::{
    step_share, Command, Event, GateSample, Hold, MachineConfig, Outcome, RolloutMachine, Target,
};
use gpusched_policies::rollout::CircuitBreaker;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// Where live mode's gate and watch readings come from.
pub trait Observer: Send + Sync {
    /// The traffic now, for the QPS gate.
    fn gate_sample(&self) -> impl Future<Output = GateSample> + Send;
    /// The service's (error rate, p99 ms) over the next `seconds`.
    fn watch(&self, seconds: f64) -> impl Future<Output = Result<(f64, f64), String>> + Send;
    /// The gate is closed and has been for `held_for`: wait, then `true` to ask it again with
    /// the same machine (its finished batches stay finished, as the simulator's rollout waits
    /// at the gate tick by tick), or `false` to end the run `Held` at once (the default: the
    /// next reconcile plans the nodes not yet changed afresh).
    fn wait_at_closed_gate(
        &self,
        held_for: std::time::Duration,
    ) -> impl Future<Output = bool> + Send {
        let _ = held_for;
        async { false }
    }
}

/// For rollouts with neither gate nor watch (a placement's single-node change): never asked.
pub struct NoObserver;

impl Observer for NoObserver {
    async fn gate_sample(&self) -> GateSample {
        GateSample::default()
    }
    async fn watch(&self, _seconds: f64) -> Result<(f64, f64), String> {
        Err("no health source configured for a watched rollout".into())
    }
}

/// What one run did: the outcome and every command, in order (the rollout's steps).
#[derive(Debug)]
pub struct Run {
    pub outcome: RolloutOutcome,
    pub commands: Vec<Command>,
}

/// What the executor has done so far, node by node.
#[derive(Default)]
struct Progress {
    /// Nodes whose record, marker and entry are written.
    prepared: BTreeSet<String>,
    /// Nodes whose preparation wrote the ConfigMap entry.
    entry_written: BTreeSet<String>,
    entry_restored: bool,
    /// Nodes now labelled with the new config.
    applied: BTreeSet<String>,
    /// Nodes this rollout cordoned and has not uncordoned yet.
    cordoned: BTreeSet<String>,
    evicted: BTreeSet<(String, String)>,
    /// The current batch's pods to move, and how many have moved.
    movers: Vec<(String, String)>,
    moved: usize,
    /// The last `ApplyConfig` restored the previous config.
    restoring: bool,
    /// Steps of a release or of the entry's removal that failed.
    errors: Vec<String>,
}

/// Runs a rollout over `rollouts` (one per node, in order) as the machine directs.
#[allow(clippy::too_many_arguments)]
pub async fn run<A: Applier, O: Observer>(
    applier: &A,
    scope: &Scope,
    breaker: &mut CircuitBreaker,
    mut cfg: MachineConfig,
    rollouts: &[Rollout],
    timing: &RolloutTiming,
    observer: &O,
    now_unix_s: f64,
) -> Run {
    let mut commands = Vec::new();
    if rollouts.is_empty() {
        return Run {
            outcome: RolloutOutcome::Done,
            commands,
        };
    }
    cfg.plugin_timeout_s = timing.plugin_timeout.as_secs_f64();
    let by_node: BTreeMap<&str, &Rollout> = rollouts.iter().map(|r| (r.node.as_str(), r)).collect();
    let targets = rollouts
        .iter()
        .map(|r| Target {
            node: r.node.clone(),
            from_label: r.record.label_before.clone(),
            to_label: r.label_after.clone(),
        })
        .collect();
    let mut m = match RolloutMachine::new(cfg, targets) {
        Ok(m) => m,
        Err(e) => {
            return Run {
                outcome: RolloutOutcome::RolledBack {
                    error: e.to_string(),
                    rollback_errors: Vec::new(),
                },
                commands,
            }
        }
    };
    let mut p = Progress::default();
    let mut ev = Event::Begin;
    // When the gate closed (the hold under way), for `Observer::wait_at_closed_gate`.
    let mut held_since: Option<std::time::Instant> = None;
    loop {
        let cmd = match m.step(ev) {
            Ok(c) => c,
            Err(e) => {
                breaker.record_failure(now_unix_s);
                return Run {
                    outcome: RolloutOutcome::RolledBack {
                        error: e.to_string(),
                        rollback_errors: p.errors,
                    },
                    commands,
                };
            }
        };
        commands.push(cmd.clone());
        if !matches!(cmd, Command::Hold { .. } | Command::CheckGate) {
            held_since = None;
        }
        ev = match &cmd {
            Command::Finished { outcome } => {
                let outcome = match outcome {
                    Outcome::Done => {
                        breaker.record_success(now_unix_s);
                        RolloutOutcome::Done
                    }
                    Outcome::RolledBack {
                        error,
                        rollback_errors,
                        ..
                    } => {
                        let mut errors = rollback_errors.clone();
                        if errors.is_empty() {
                            remove_entry(applier, scope, rollouts, &mut p).await;
                        }
                        errors.append(&mut p.errors);
                        RolloutOutcome::RolledBack {
                            error: error.clone(),
                            rollback_errors: errors,
                        }
                    }
                };
                return Run { outcome, commands };
            }
            Command::Hold {
                hold: Hold::Gate { .. },
            } if observer
                .wait_at_closed_gate(
                    held_since
                        .get_or_insert_with(std::time::Instant::now)
                        .elapsed(),
                )
                .await =>
            {
                // Waited: ask the gate again, the machine where it was.
                Event::Retry
            }
            Command::Hold { hold } => {
                // Nothing of this batch changed: the next reconcile asks again. A hold is not
                // a failure and does not count against the breaker.
                let outcome = match hold {
                    Hold::Gate { verdict } => RolloutOutcome::Held {
                        reason: verdict.reason.clone(),
                        failed_checks: verdict.failed.clone(),
                    },
                    Hold::Breaker => RolloutOutcome::Deferred {
                        reason: format!(
                            "circuit breaker open ({:?}); sharing changes paused",
                            breaker.state(now_unix_s)
                        ),
                    },
                };
                return Run { outcome, commands };
            }
            Command::CheckGate => Event::Gate(observer.gate_sample().await),
            Command::Acquire => {
                if breaker.try_acquire(now_unix_s) {
                    Event::Go
                } else {
                    Event::Denied
                }
            }
            Command::Watch { seconds, .. } => match observer.watch(*seconds).await {
                Ok((error_rate, p99_ms)) => Event::Health { error_rate, p99_ms },
                Err(e) => Event::Failed(format!("watch: {e}")),
            },
            Command::WaitForPods { .. } => Event::Ok,
            Command::Abort {
                release, rollback, ..
            } => {
                breaker.record_failure(now_unix_s);
                for node in release {
                    let Some(r) = by_node.get(node.as_str()) else {
                        continue;
                    };
                    if !p.prepared.contains(node) {
                        continue;
                    }
                    let actions = if rollback.contains(node) {
                        // Changed: its rollback batch comes next and cordons it again. The
                        // simulator does both at the same instant; here a node left cordoned
                        // until then never takes a pod under the config being undone.
                        Vec::new()
                    } else {
                        p.cordoned.remove(node);
                        // Never changed: its record restores it at once (and the entry, when
                        // no node carries the new label).
                        let entry = !p.entry_written.is_empty()
                            && p.applied.is_empty()
                            && !p.entry_restored;
                        p.entry_restored |= entry;
                        rollback_actions(&r.record, scope, entry)
                    };
                    for a in actions {
                        if let Err(e) = applier.apply(&a).await {
                            p.errors.push(e.to_string());
                        }
                    }
                }
                Event::Ok
            }
            batch_cmd => {
                let res = batch_step(applier, scope, &by_node, batch_cmd, timing, &mut p).await;
                match res {
                    Ok(()) => Event::Ok,
                    Err(e) => Event::Failed(e),
                }
            }
        };
    }
}

/// A batch command, node by node.
async fn batch_step<A: Applier>(
    applier: &A,
    scope: &Scope,
    by_node: &BTreeMap<&str, &Rollout>,
    cmd: &Command,
    timing: &RolloutTiming,
    p: &mut Progress,
) -> Result<(), String> {
    let plan = |node: &str| {
        by_node
            .get(node)
            .copied()
            .ok_or_else(|| format!("the machine named node {node}, which has no plan"))
    };
    match cmd {
        Command::Cordon { nodes, .. } => {
            p.movers.clear();
            p.moved = 0;
            for node in nodes {
                let r = plan(node)?;
                prepare_once(applier, scope, r, p).await?;
                if !r.record.cordoned_before && !p.cordoned.contains(node) {
                    apply(applier, &Action::Cordon { node: node.clone() }).await?;
                    p.cordoned.insert(node.clone());
                }
                let left: Vec<_> = r
                    .evict
                    .iter()
                    .filter(|x| !p.evicted.contains(*x))
                    .cloned()
                    .collect();
                p.movers.extend(left);
            }
            Ok(())
        }
        Command::MoveStep { percent, .. } => {
            let share = step_share(p.movers.len(), *percent);
            for k in p.moved..share {
                let (ns, name) = p.movers[k].clone();
                evict(applier, &ns, &name, timing).await?;
                p.evicted.insert((ns, name));
            }
            p.moved = share;
            Ok(())
        }
        Command::ApplyConfig {
            targets, rollback, ..
        } => {
            p.restoring = *rollback;
            for t in targets {
                let r = plan(&t.node)?;
                prepare_once(applier, scope, r, p).await?;
                apply(
                    applier,
                    &crate::rollback::label_patch(&t.node, t.to_label.clone(), None),
                )
                .await?;
                if *rollback {
                    p.applied.remove(&t.node);
                } else {
                    p.applied.insert(t.node.clone());
                }
            }
            Ok(())
        }
        Command::WaitForPlugin { nodes, .. } => {
            if applier.is_dry_run() {
                return Ok(());
            }
            for node in nodes {
                let r = plan(node)?;
                let want = if p.restoring {
                    r.plugin_ready_before.clone()
                } else {
                    Some(r.plugin_ready.clone())
                };
                if let Some(want) = want {
                    wait_for_plugin(applier, node, &want, timing).await?;
                }
            }
            Ok(())
        }
        Command::Uncordon { nodes, cordoned } => {
            for node in nodes {
                let r = plan(node)?;
                if *cordoned && !r.record.cordoned_before {
                    apply(applier, &Action::Uncordon { node: node.clone() }).await?;
                    p.cordoned.remove(node);
                }
                apply(applier, &crate::rollback::clear_in_progress(node)).await?;
            }
            Ok(())
        }
        other => Err(format!("not a batch command: {other:?}")),
    }
}

async fn apply<A: Applier>(applier: &A, a: &Action) -> Result<(), String> {
    applier.apply(a).await.map_err(|e| e.to_string())
}

/// The Eviction API on one pod, a 429 (PodDisruptionBudget) retried.
async fn evict<A: Applier>(
    applier: &A,
    ns: &str,
    name: &str,
    timing: &RolloutTiming,
) -> Result<(), String> {
    let a = Action::Evict {
        namespace: ns.to_string(),
        name: name.to_string(),
    };
    let mut tries = 0;
    loop {
        match applier.apply(&a).await {
            Ok(()) => return Ok(()),
            Err(ApplyError::EvictionBlocked { .. }) if tries < timing.evict_retries => {
                tries += 1;
                tokio::time::sleep(timing.retry_delay).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

async fn wait_for_plugin<A: Applier>(
    applier: &A,
    node: &str,
    want: &crate::rollback::PluginReady,
    timing: &RolloutTiming,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timing.plugin_timeout;
    loop {
        let cap = applier
            .node_capacity(node)
            .await
            .map_err(|e| e.to_string())?;
        if cap.as_ref().is_some_and(|c| want.met(c)) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApplyError::Refused(format!(
                "the device plugin on {node} advertises {:?}, expected {want:?} after {:?}",
                cap.unwrap_or_default(),
                timing.plugin_timeout
            ))
            .to_string());
        }
        tokio::time::sleep(timing.poll).await;
    }
}

async fn prepare_once<A: Applier>(
    applier: &A,
    scope: &Scope,
    r: &Rollout,
    p: &mut Progress,
) -> Result<(), String> {
    if p.prepared.contains(&r.node) {
        return Ok(());
    }
    prepare(applier, scope, r)
        .await
        .map_err(|e| e.to_string())?;
    p.prepared.insert(r.node.clone());
    if r.write_entry.is_some() {
        p.entry_written.insert(r.node.clone());
    }
    Ok(())
}

/// Before anything else on the node: the rollback record (so any replica can undo the change),
/// the in-progress marker, then the ConfigMap entry.
async fn prepare<A: Applier>(applier: &A, scope: &Scope, r: &Rollout) -> Result<(), ApplyError> {
    applier
        .apply(&Action::PatchNodeMeta {
            node: r.node.clone(),
            labels: Default::default(),
            annotations: [
                (
                    keys::ROLLBACK.to_string(),
                    Some(serde_json::to_string(&r.record).unwrap_or_default()),
                ),
                (
                    keys::ROLLOUT_IN_PROGRESS.to_string(),
                    Some(r.record.t_unix_s.to_string()),
                ),
            ]
            .into(),
        })
        .await?;
    if let Some((k, y)) = &r.write_entry {
        applier
            .apply(&Action::SetConfigEntry {
                namespace: scope.plugin_config.0.clone(),
                configmap: scope.plugin_config.1.clone(),
                key: k.clone(),
                value: Some(y.clone()),
            })
            .await?;
    }
    Ok(())
}

/// A rolled-back rollout: the ConfigMap entry it wrote goes back to what it was, once no node
/// carries the new label.
async fn remove_entry<A: Applier>(
    applier: &A,
    scope: &Scope,
    rollouts: &[Rollout],
    p: &mut Progress,
) {
    if p.entry_restored || !p.applied.is_empty() {
        return;
    }
    let Some(r) = rollouts.iter().find(|r| p.entry_written.contains(&r.node)) else {
        return;
    };
    let Some(key) = &r.record.entry_key else {
        return;
    };
    p.entry_restored = true;
    let a = Action::SetConfigEntry {
        namespace: scope.plugin_config.0.clone(),
        configmap: scope.plugin_config.1.clone(),
        key: key.clone(),
        value: r.record.entry_before.clone(),
    };
    if let Err(e) = applier.apply(&a).await {
        p.errors.push(e.to_string());
    }
}
