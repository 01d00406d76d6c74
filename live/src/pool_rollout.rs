//! `gpusched live rollout`: an operator's planned sharing-config change of several nodes, run by
//! the engine crate's rollout state machine ([`crate::rollout_exec`]) with the simulator's
//! vocabulary: the same strategy, update class, QPS gate and canary watch as the scenario's
//! `[reconfig]` table (which `--config` loads), readings from Prometheus
//! ([`crate::prom_observer`]).
//!
//! 1. **Plan** ([`plan`]): the target nodes (a pool as the simulator names it, a label selector,
//!    or a list), each planned with [`crate::rollback::plan_rollout`] as the controller plans a
//!    placement's change: rollback record, ConfigMap entry, the GPU pods to evict, what the
//!    plugin advertises once the new config is in force. A node already on the config is left
//!    out; a node with a rollout in progress, a GPU pod outside the managed namespaces or a
//!    ConfigMap key holding another config refuses the whole rollout before anything changes.
//! 2. **Preflight**: every Prometheus query the rollout needs (gate, watch) is read once; a
//!    query that cannot be read stops the rollout before its first node.
//! 3. **Run** ([`run`]): [`crate::rollout_exec::run`] with the [`PrometheusObserver`].
//!
//! The dry run reads the cluster, asks the gate once (read-only) and reports its verdict, then
//! prints every request of every batch as if the gate were open and every watch healthy (no
//! watch is waited for): every change the rollout can make, and nothing is sent.

use crate::apply::{Applier, Scope};
use crate::cmd::CmdError;
use crate::keys;
use crate::prom_observer::PrometheusObserver;
use crate::rollback::{plan_rollout, Rollout, RolloutOutcome, RolloutTiming};
use crate::rollout_exec::{self, NoObserver, Observer};
use gpusched_policies::rollout::gate::{evaluate, GateVerdict};
use gpusched_policies::rollout::machine::{Command, GateSample, MachineConfig};
use gpusched_policies::rollout::{CircuitBreaker, CircuitBreakerConfig, Strategy};
use gpusched_policies::sharing::NodeSharing;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use serde::Serialize;

/// Which nodes change.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// The simulator's pool: GPU nodes labelled `gpusched.io/pool=NAME`, or unlabelled nodes
    /// whose GPU model, in lower case, is NAME (`a100-40gb`), as the live view names pools.
    Pool(String),
    /// A Kubernetes label selector (`gpu-pool=inference,zone in (a,b)`).
    Selector(String),
    /// These nodes, in this order.
    Nodes(Vec<String>),
}

/// Reads `--to`: `exclusive`, `time-slicing:N`, `mps:N`, `mig-mixed`, or a config key
/// (`gpusched-time-slicing-4`).
pub fn parse_sharing(s: &str) -> Result<NodeSharing, String> {
    let t = s.trim().to_ascii_lowercase();
    let replicas = |r: &str| {
        r.trim()
            .parse::<u8>()
            .ok()
            .filter(|n| *n >= 2)
            .ok_or_else(|| format!("--to {s:?}: replicas must be a whole number from 2 to 255"))
    };
    let got = if let Some((kind, r)) = t.split_once(':') {
        match kind.trim() {
            "time-slicing" | "time_slicing" | "timeslicing" => NodeSharing::TimeSlicing {
                replicas: replicas(r)?,
            },
            "mps" => NodeSharing::MpsUniform {
                replicas: replicas(r)?,
            },
            _ => return Err(bad_sharing(s)),
        }
    } else {
        match t.as_str() {
            "exclusive" => NodeSharing::Exclusive,
            "mig" | "mig-mixed" | "mig_mixed" => NodeSharing::Mig,
            k => NodeSharing::from_config_key(k).ok_or_else(|| bad_sharing(s))?,
        }
    };
    if got == NodeSharing::MpsPerClient {
        return Err(format!(
            "--to {s:?}: the per-client MPS config is set by placements (its slot count comes from the pods); roll out mps:N or time-slicing:N instead"
        ));
    }
    Ok(got)
}

fn bad_sharing(s: &str) -> String {
    format!(
        "--to {s:?}: expected exclusive, time-slicing:N, mps:N, mig-mixed or a config key such as gpusched-time-slicing-4"
    )
}

/// Everything the rollout needs besides the cluster and Prometheus.
#[derive(Debug, Clone)]
pub struct Request {
    pub targets: Targets,
    pub to: NodeSharing,
    /// Strategy, its parameters, the class's disruption budget and the gate (when gated).
    pub machine: MachineConfig,
    pub breaker: CircuitBreakerConfig,
    pub timing: RolloutTiming,
}

impl Request {
    /// Whether a strategy watches the service's health (canary, blue-green's traffic steps).
    pub fn watches(&self) -> bool {
        let p = &self.machine.strategy_cfg;
        match self.machine.strategy {
            Strategy::Canary => p.canary_watch_s > 0.0,
            Strategy::BlueGreen => p.step_watch_s > 0.0,
            _ => false,
        }
    }
}

/// The planned change.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One per node to change, in the rollout's order.
    pub rollouts: Vec<Rollout>,
    /// Target nodes already on the config.
    pub unchanged: Vec<String>,
}

/// What happened, printed as JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub to: String,
    pub strategy: &'static str,
    pub gated: bool,
    pub dry_run: bool,
    /// The nodes planned for a change, in order.
    pub planned: Vec<String>,
    /// Target nodes already on the config (nothing to do).
    pub unchanged: Vec<String>,
    /// `nothing_to_change`, `not_started` (a Prometheus query could not be read), or the
    /// rollout's own outcome.
    pub result: RolloutResult,
    /// Nodes now on the new config (a held rollout's completed batches; none after a rollback;
    /// in a dry run, the nodes that would be).
    pub converted: Vec<String>,
    /// The dry run's one reading of the gate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_now: Option<GateVerdict>,
    /// Prometheus readings that failed, in Prometheus' words.
    pub prometheus_errors: Vec<String>,
    /// The machine's commands, in order (the rollout's steps).
    pub commands: Vec<Command>,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RolloutResult {
    NothingToChange,
    NotStarted { reason: String },
    Ran { outcome: RolloutOutcome },
}

impl Report {
    /// Done (or nothing to do); anything else is an exit code of 1.
    pub fn succeeded(&self) -> bool {
        matches!(
            self.result,
            RolloutResult::NothingToChange
                | RolloutResult::Ran {
                    outcome: RolloutOutcome::Done
                }
        )
    }
}

fn failed(e: impl std::fmt::Display) -> CmdError {
    CmdError::Failed(e.to_string())
}

/// Reads the cluster and plans the change of every target node.
pub async fn plan(
    client: &kube::Client,
    scope: &Scope,
    req: &Request,
    now_unix_s: f64,
) -> Result<Plan, CmdError> {
    let mut lp = kube::api::ListParams::default();
    if let Targets::Selector(s) = &req.targets {
        lp = lp.labels(s);
    }
    let nodes = kube::Api::<Node>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|e| failed(format!("listing nodes: {e}")))?
        .items;
    let pods = kube::Api::<Pod>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(|e| failed(format!("listing pods: {e}")))?
        .items;
    let cm = kube::Api::<ConfigMap>::namespaced(client.clone(), &scope.plugin_config.0)
        .get_opt(&scope.plugin_config.1)
        .await
        .map_err(|e| failed(format!("reading the device plugin's ConfigMap: {e}")))?;
    let view = crate::view::build_view(&nodes, &pods, &Default::default(), now_unix_s);
    let by_name = |name: &str| {
        nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    };
    let targets: Vec<&Node> = match &req.targets {
        Targets::Pool(p) => {
            let t: Vec<&Node> = view
                .nodes
                .iter()
                .filter(|v| &v.pool == p)
                .filter_map(|v| by_name(&v.name))
                .collect();
            if t.is_empty() {
                let mut pools: Vec<&str> = view.nodes.iter().map(|v| v.pool.as_str()).collect();
                pools.sort();
                pools.dedup();
                return Err(CmdError::BadInput(format!(
                    "--pool {p:?}: no GPU node is in that pool (pools: {}; a node's pool is its {} label, else its GPU model in lower case)",
                    if pools.is_empty() { "none".to_string() } else { pools.join(", ") },
                    keys::POOL
                )));
            }
            t
        }
        Targets::Selector(s) => {
            let t: Vec<&Node> = view.nodes.iter().filter_map(|v| by_name(&v.name)).collect();
            if t.is_empty() {
                return Err(CmdError::BadInput(format!(
                    "--selector {s:?}: no GPU node matches ({} node(s) matched, none with GPUs gpusched knows)",
                    nodes.len()
                )));
            }
            t
        }
        Targets::Nodes(names) => {
            let mut t = Vec::new();
            for name in names {
                let n = by_name(name).ok_or_else(|| {
                    CmdError::BadInput(format!("--nodes: no node named {name:?}"))
                })?;
                if !view.nodes.iter().any(|v| &v.name == name) {
                    return Err(CmdError::BadInput(format!(
                        "--nodes: {name} is not a GPU node gpusched knows (see the controller's notes: GPU Feature Discovery labels, known models)"
                    )));
                }
                if !t.iter().any(|x: &&Node| x.metadata.name == n.metadata.name) {
                    t.push(n);
                }
            }
            t
        }
    };
    let key = req.to.config_key();
    let yaml = req.to.device_plugin_yaml(0);
    let mut rollouts = Vec::new();
    let mut unchanged = Vec::new();
    let mut refusals = Vec::new();
    for n in targets {
        let name = n.metadata.name.clone().unwrap_or_default();
        if crate::view::annotation(&n.metadata, keys::ROLLOUT_IN_PROGRESS).is_some() {
            refusals.push(format!(
                "node {name} has a rollout in progress ({}): let it finish, or let the controller roll it back, first",
                keys::ROLLOUT_IN_PROGRESS
            ));
            continue;
        }
        match plan_rollout(
            n,
            cm.as_ref(),
            Some(&key),
            Some(&yaml),
            &pods,
            scope,
            now_unix_s,
        ) {
            Ok(Some(r)) => rollouts.push(r),
            Ok(None) => unchanged.push(name),
            Err(e) => refusals.push(format!("node {name}: {e}")),
        }
    }
    if !refusals.is_empty() {
        return Err(failed(format!(
            "the rollout is refused, nothing was changed: {}",
            refusals.join("; ")
        )));
    }
    Ok(Plan {
        rollouts,
        unchanged,
    })
}

/// The dry run's observer: no watch is waited for; each is reported and answered healthy, so
/// the rest of the plan is printed.
struct DryRunWatch;

impl Observer for DryRunWatch {
    async fn gate_sample(&self) -> GateSample {
        GateSample::default()
    }
    async fn watch(&self, seconds: f64) -> Result<(f64, f64), String> {
        println!("# dry-run: watch the service's health for {seconds} s (not waited; assumed healthy to print the rest of the plan)");
        Ok((0.0, 0.0))
    }
}

/// Plans and runs the rollout through `applier` (a [`crate::dryrun::DryRunApplier`] prints
/// instead of sending). `observer` is required when the rollout is gated or watched.
pub async fn run<A: Applier>(
    client: &kube::Client,
    scope: &Scope,
    applier: &A,
    observer: Option<&PrometheusObserver>,
    req: &Request,
    now_unix_s: f64,
) -> Result<Report, CmdError> {
    let gated = req.machine.gate.is_some();
    let watches = req.watches();
    if (gated || watches) && observer.is_none() {
        return Err(CmdError::BadInput(format!(
            "a {} rollout{} reads Prometheus: pass --prometheus-url",
            req.machine.strategy.as_str(),
            if gated { " behind the QPS gate" } else { "" }
        )));
    }
    let dry_run = applier.is_dry_run();
    let p = plan(client, scope, req, now_unix_s).await?;
    let mut report = Report {
        to: req.to.config_key(),
        strategy: req.machine.strategy.as_str(),
        gated,
        dry_run,
        planned: p.rollouts.iter().map(|r| r.node.clone()).collect(),
        unchanged: p.unchanged.clone(),
        result: RolloutResult::NothingToChange,
        converted: Vec::new(),
        gate_now: None,
        prometheus_errors: Vec::new(),
        commands: Vec::new(),
    };
    if p.rollouts.is_empty() {
        tracing::info!(to = %report.to, unchanged = p.unchanged.len(), "every target node already runs the config; nothing to change");
        return Ok(report);
    }
    tracing::info!(
        to = %report.to,
        strategy = report.strategy,
        gated,
        nodes = %report.planned.join(","),
        dry_run,
        "planned rollout"
    );
    let mut breaker = CircuitBreaker::new(req.breaker.clone());
    let run = if dry_run {
        let mut cfg = req.machine.clone();
        if let (Some((gc, class)), Some(o)) = (cfg.gate.take(), observer) {
            let s = o.read_gate(now_unix_s).await;
            let v = evaluate(&gc, class, &s.input());
            println!(
                "# dry-run: the QPS gate is {} now: {} (the gate is asked again before every batch of the real run)",
                if v.open { "open" } else { "closed" },
                v.reason
            );
            report.gate_now = Some(v);
        }
        rollout_exec::run(
            applier,
            scope,
            &mut breaker,
            cfg,
            &p.rollouts,
            &req.timing,
            &DryRunWatch,
            now_unix_s,
        )
        .await
    } else if let Some(o) = observer.filter(|_| gated || watches) {
        if let Err(reason) = o.preflight(gated, watches).await {
            report.result = RolloutResult::NotStarted {
                reason: format!(
                    "Prometheus cannot be read, so the rollout was not started and nothing was changed: {reason}"
                ),
            };
            report.prometheus_errors = o.failures();
            return Ok(report);
        }
        rollout_exec::run(
            applier,
            scope,
            &mut breaker,
            req.machine.clone(),
            &p.rollouts,
            &req.timing,
            o,
            now_unix_s,
        )
        .await
    } else {
        rollout_exec::run(
            applier,
            scope,
            &mut breaker,
            req.machine.clone(),
            &p.rollouts,
            &req.timing,
            &NoObserver,
            now_unix_s,
        )
        .await
    };
    if let Some(o) = observer {
        report.prometheus_errors = o.failures();
    }
    report.converted = converted_nodes(&run.commands);
    report.commands = run.commands;
    report.result = RolloutResult::Ran {
        outcome: run.outcome,
    };
    Ok(report)
}

/// The nodes a rollout's commands left on the new config, in the order they came back: applied
/// by a rollout batch, back in service (`Uncordon`), and not restored by a rollback batch since.
fn converted_nodes(commands: &[Command]) -> Vec<String> {
    let mut applied: Vec<String> = Vec::new();
    let mut converted: Vec<String> = Vec::new();
    for c in commands {
        match c {
            Command::ApplyConfig {
                targets, rollback, ..
            } => {
                for t in targets {
                    converted.retain(|n| n != &t.node);
                    applied.retain(|n| n != &t.node);
                    if !rollback {
                        applied.push(t.node.clone());
                    }
                }
            }
            Command::Uncordon { nodes, .. } => {
                for n in nodes {
                    if applied.contains(n) && !converted.contains(n) {
                        converted.push(n.clone());
                    }
                }
            }
            _ => {}
        }
    }
    converted
}
