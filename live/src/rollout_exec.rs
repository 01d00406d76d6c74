//! Live mode's executor of the engine crate's rollout state machine
//! ([`gpusched_policies::rollout::machine`]): the same plan, strategies (rolling, pre-warming,
//! blue-green, canary), QPS gate and canary watch as the simulator, carried out with API
//! requests. Each node's change is a [`Rollout`] planned by [`crate::rollback::plan_rollout`]
//! (its rollback record, ConfigMap entry, evictions, plugin readiness).
//!
//! How each command is carried out:
//! * `CheckGate` / `Watch`: the [`Observer`] (traffic samples and the service's error rate and
//!   p99 over a window) — a trait, so tests and the controller supply their own readings;
//! * `Cordon`: first the node's rollback record and in-progress marker, the ConfigMap entry,
//!   then `spec.unschedulable` (unless it already was);
//! * `Drain`: the Eviction API per GPU pod, a 429 (PodDisruptionBudget) retried
//!   `timing.evict_retries` times, then the rollout fails;
//! * `ApplyConfig`: the node label; `WaitForPlugin`: polls the node's capacity (not in a dry
//!   run); `Uncordon`: uncordon and clear the marker;
//! * `WaitForPods`, `Surge`, `ShiftTraffic`: gpusched places the evicted pods' replacements in
//!   its next reconciles and routes no traffic itself, so these are recorded, not waited on;
//! * `Rollback`: [`crate::rollback::rollback_actions`] with the node's record.
//!
//! The shared circuit breaker gates the whole rollout; a `Hold` (gate closed) changes nothing
//! and does not count against it.

use crate::apply::{Action, Applier, ApplyError, Scope};
use crate::keys;
use crate::rollback::{rollback_actions, Rollout, RolloutOutcome, RolloutTiming};
use gpusched_policies::rollout::machine::{
    Command, Event, GateSample, MachineConfig, Outcome, RolloutMachine, Target,
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
    if !breaker.try_acquire(now_unix_s) {
        return Run {
            outcome: RolloutOutcome::Deferred {
                reason: format!(
                    "circuit breaker open ({:?}); sharing changes paused",
                    breaker.state(now_unix_s)
                ),
            },
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
    let mut prepared: BTreeSet<String> = BTreeSet::new();
    let mut entry_written: BTreeSet<String> = BTreeSet::new();
    let mut rollback_errors = Vec::new();
    let mut ev = Event::Begin;
    loop {
        let cmd = match m.step(ev) {
            Ok(c) => c,
            Err(e) => {
                breaker.record_failure(now_unix_s);
                return Run {
                    outcome: RolloutOutcome::RolledBack {
                        error: e.to_string(),
                        rollback_errors,
                    },
                    commands,
                };
            }
        };
        commands.push(cmd.clone());
        ev = match &cmd {
            Command::Finished { outcome } => {
                let outcome = match outcome {
                    Outcome::Done => {
                        breaker.record_success(now_unix_s);
                        RolloutOutcome::Done
                    }
                    Outcome::RolledBack { error } => {
                        breaker.record_failure(now_unix_s);
                        RolloutOutcome::RolledBack {
                            error: error.clone(),
                            rollback_errors,
                        }
                    }
                };
                return Run { outcome, commands };
            }
            Command::Hold { verdict } => {
                // Nothing of this batch changed: the next reconcile asks the gate again. A hold
                // is not a failure and does not count against the breaker.
                return Run {
                    outcome: RolloutOutcome::Held {
                        reason: verdict.reason.clone(),
                        failed_checks: verdict.failed.clone(),
                    },
                    commands,
                };
            }
            Command::CheckGate => Event::Gate(observer.gate_sample().await),
            Command::Watch { seconds } => match observer.watch(*seconds).await {
                Ok((error_rate, p99_ms)) => Event::Health { error_rate, p99_ms },
                Err(e) => Event::Failed(format!("watch: {e}")),
            },
            Command::Surge { .. } | Command::ShiftTraffic { .. } | Command::WaitForPods { .. } => {
                Event::Ok
            }
            Command::Rollback { node, .. } => {
                if let Some(r) = by_node.get(node.as_str()) {
                    if prepared.contains(node) {
                        for a in rollback_actions(&r.record, scope, entry_written.contains(node)) {
                            if let Err(e) = applier.apply(&a).await {
                                rollback_errors.push(e.to_string());
                            }
                        }
                    }
                }
                Event::Ok
            }
            node_cmd => {
                let node = match node_cmd {
                    Command::Cordon { node }
                    | Command::Drain { node }
                    | Command::ApplyConfig { node, .. }
                    | Command::WaitForPlugin { node, .. }
                    | Command::Uncordon { node } => node.clone(),
                    _ => unreachable!("every other command is matched above"),
                };
                let Some(r) = by_node.get(node.as_str()).copied() else {
                    return Run {
                        outcome: RolloutOutcome::RolledBack {
                            error: format!("the machine named node {node}, which has no plan"),
                            rollback_errors,
                        },
                        commands,
                    };
                };
                let res = async {
                    if prepared.insert(node.clone()) {
                        prepare(applier, scope, r).await?;
                        if r.write_entry.is_some() {
                            entry_written.insert(node.clone());
                        }
                    }
                    node_step(applier, r, node_cmd, timing).await
                }
                .await;
                match res {
                    Ok(()) => Event::Ok,
                    Err(e) => Event::Failed(e.to_string()),
                }
            }
        };
    }
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

async fn node_step<A: Applier>(
    applier: &A,
    r: &Rollout,
    cmd: &Command,
    timing: &RolloutTiming,
) -> Result<(), ApplyError> {
    match cmd {
        Command::Cordon { .. } if !r.record.cordoned_before => {
            applier
                .apply(&Action::Cordon {
                    node: r.node.clone(),
                })
                .await
        }
        Command::Drain { .. } => {
            for (ns, name) in &r.evict {
                let a = Action::Evict {
                    namespace: ns.clone(),
                    name: name.clone(),
                };
                let mut tries = 0;
                loop {
                    match applier.apply(&a).await {
                        Ok(()) => break,
                        Err(ApplyError::EvictionBlocked { .. }) if tries < timing.evict_retries => {
                            tries += 1;
                            tokio::time::sleep(timing.retry_delay).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(())
        }
        Command::ApplyConfig { .. } => {
            applier
                .apply(&crate::rollback::label_patch(
                    &r.node,
                    r.label_after.clone(),
                    None,
                ))
                .await
        }
        Command::WaitForPlugin { .. } if !applier.is_dry_run() => {
            let deadline = tokio::time::Instant::now() + timing.plugin_timeout;
            loop {
                let cap = applier.node_capacity(&r.node).await?;
                if cap.as_ref().is_some_and(|c| r.plugin_ready.met(c)) {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(ApplyError::Refused(format!(
                        "the device plugin on {} advertises {:?}, expected {:?} after {:?}",
                        r.node,
                        cap.unwrap_or_default(),
                        r.plugin_ready,
                        timing.plugin_timeout
                    )));
                }
                tokio::time::sleep(timing.poll).await;
            }
        }
        Command::Uncordon { .. } => {
            if !r.record.cordoned_before {
                applier
                    .apply(&Action::Uncordon {
                        node: r.node.clone(),
                    })
                    .await?;
            }
            applier
                .apply(&crate::rollback::clear_in_progress(&r.node))
                .await
        }
        _ => Ok(()),
    }
}
