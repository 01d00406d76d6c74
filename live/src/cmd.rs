//! The `gpusched live …` commands as plain functions (the root crate's clap layer only forwards
//! here), so tokio and kube stay inside this crate.

use crate::agent::{self, AgentOptions};
use crate::apply::{KubeApplier, Scope};
use crate::autoscale::AutoscaleOptions;
use crate::controller::{self, Controller, RunOptions};
use crate::decisions::DecisionLog;
use crate::dryrun::DryRunApplier;
use crate::lease::LeaseConfig;
use crate::nvml::{GpuReader, NvmlReader};
use crate::pool_rollout::{parse_sharing, Request, RolloutResult, Targets};
use crate::prom_observer::{FreeCapacity, GateWait, PromQueries, PrometheusObserver};
use crate::rollback::{RolloutOutcome, RolloutTiming};
use crate::signals::MetricNames;
use gpusched_policies::autoscale::AutoscalerConfig;
use gpusched_policies::rollout::machine::MachineConfig;
use gpusched_policies::rollout::{Strategy, UpdateClass};
use gpusched_policies::sharing::NodeSharing;
use gpusched_policies::{EngineConfig, GpuCatalog};
use gpusched_scenario::reconfig::{ReconfigConfig, Trigger};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// Bad flags or files: exit code 2.
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> CmdError {
    CmdError::Failed(e.to_string())
}

#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// Print one reading as JSON and exit.
    #[arg(long)]
    pub once: bool,
    /// Port of the Prometheus /metrics endpoint.
    #[arg(long, default_value_t = 9402)]
    pub port: u16,
    /// Seconds between readings.
    #[arg(long, default_value_t = 30)]
    pub interval_s: u64,
    /// This node's name (default: $NODE_NAME, set from the downward API in the DaemonSet).
    #[arg(long)]
    pub node: Option<String>,
    /// Do not publish the summary annotation (metrics endpoint only; no API access needed).
    #[arg(long)]
    pub no_publish: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// A namespace whose `schedulerName: gpusched` pods are managed (repeat for several).
    /// kube-system is refused.
    #[arg(long = "namespace", required = true)]
    pub namespaces: Vec<String>,
    /// Namespace of the device plugin's config ConfigMap.
    #[arg(long, default_value = "nvidia-device-plugin")]
    pub plugin_config_namespace: String,
    #[arg(long, default_value = "device-plugin-config")]
    pub plugin_config_name: String,
    /// Print every request instead of sending it; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Append decisions here (JSON lines, the simulator's decisions.jsonl format).
    #[arg(long)]
    pub decisions: Option<PathBuf>,
    /// Engine configuration (TOML, the scenario's `[engine]` table); default: the seeds' values.
    #[arg(long)]
    pub engine: Option<PathBuf>,
    #[arg(long, default_value = "gpusched-system")]
    pub lease_namespace: String,
    #[arg(long, default_value = "gpusched-controller")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: $POD_NAME, else the host name).
    #[arg(long)]
    pub identity: Option<String>,
    /// Seconds between reconciles (and Lease renewals; the Lease lasts 3× this).
    #[arg(long, default_value_t = 5)]
    pub period_s: u64,
    /// Controller-wide autoscaling policy (TOML, the scenario's `[autoscaler]` table, e.g.
    /// `kind = "hpa"`); default: the simulator's default (the seeds' rule). Deployments opt in
    /// with the label gpusched.io/autoscale=true.
    #[arg(long)]
    pub autoscaler: Option<PathBuf>,
    /// Do not autoscale any Deployment (and do not watch Deployments or HPAs).
    #[arg(long)]
    pub no_autoscale: bool,
    /// Seconds between autoscaling evaluations (the simulator's monitoring tick).
    #[arg(long, default_value_t = 30)]
    pub autoscale_period_s: u64,
    /// Gauge of waiting requests scraped from the serving pods (→ queue length).
    #[arg(long, default_value = "vllm:num_requests_waiting")]
    pub waiting_metric: String,
    /// Gauge of running requests (→ in flight).
    #[arg(long, default_value = "vllm:num_requests_running")]
    pub running_metric: String,
    /// Counter of completed requests (its increase over the period → served).
    #[arg(long, default_value = "vllm:request_success_total")]
    pub served_metric: String,
    /// Energy price for the cost per inference, $/kWh.
    #[arg(long, default_value_t = 0.13)]
    pub energy_usd_per_kwh: f64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    /// Scenario file to write.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Scenario name.
    #[arg(long, default_value = "live-snapshot")]
    pub name: String,
    #[arg(long, default_value = "nvidia-device-plugin")]
    pub plugin_config_namespace: String,
    #[arg(long, default_value = "device-plugin-config")]
    pub plugin_config_name: String,
}

/// `--strategy`: the simulator's `[reconfig] strategy` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    /// Every target node at once, under its pods (no drain).
    #[value(name = "in_place", alias = "in-place")]
    InPlace,
    /// Node by node within the class's disruption budget: cordon, drain, apply, uncordon.
    Rolling,
    /// Rolling, each batch's replacements started elsewhere before its pods are drained.
    Prewarm,
    /// Half the nodes first, then the rest in traffic steps, each step watched.
    #[value(name = "blue_green", alias = "blue-green")]
    BlueGreen,
    /// 10 % of the nodes first, watched (`--canary-watch-s`), then the rest rolling.
    Canary,
}

impl From<StrategyArg> for Strategy {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::InPlace => Strategy::InPlace,
            StrategyArg::Rolling => Strategy::Rolling,
            StrategyArg::Prewarm => Strategy::Prewarm,
            StrategyArg::BlueGreen => Strategy::BlueGreen,
            StrategyArg::Canary => Strategy::Canary,
        }
    }
}

/// `--class`: the seeds' update classes (the simulator's `[reconfig] class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClassArg {
    /// Strictest limits; 02:00–04:00 and 14:00–16:00 UTC; 10 % of the nodes at a time.
    Routine,
    /// Any time, high tolerances; 50 % of the nodes at a time.
    Emergency,
    /// 01:00–05:00 UTC, the most free capacity; 5 % of the nodes at a time.
    #[value(name = "capacity_expansion", alias = "capacity-expansion")]
    CapacityExpansion,
}

impl From<ClassArg> for UpdateClass {
    fn from(c: ClassArg) -> Self {
        match c {
            ClassArg::Routine => UpdateClass::Routine,
            ClassArg::Emergency => UpdateClass::Emergency,
            ClassArg::CapacityExpansion => UpdateClass::CapacityExpansion,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("targets").args(["pool", "selector", "nodes"])))]
pub struct RolloutArgs {
    /// The pool to change, as the simulator names it: GPU nodes labelled gpusched.io/pool=NAME
    /// (unlabelled nodes: their GPU model in lower case, e.g. a100-40gb). Default: the
    /// `--config` file's `pool`.
    #[arg(long)]
    pub pool: Option<String>,
    /// The nodes to change, as a Kubernetes label selector (`k=v,k2 in (a,b)`).
    #[arg(long)]
    pub selector: Option<String>,
    /// The nodes to change, by name, in this order (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// The new sharing config: exclusive, time-slicing:N, mps:N, mig-mixed, or a config key
    /// (gpusched-time-slicing-4). Default: the `--config` file's `trigger.replicas` as
    /// time-slicing:N.
    #[arg(long)]
    pub to: Option<String>,
    /// How the nodes are changed (default: the `--config` file's, else rolling).
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// Ask the seeds' QPS gate before every batch (default: off, or the `--config` file's `gate`).
    #[arg(long)]
    pub gate: bool,
    /// Do not ask the gate, whatever the `--config` file says.
    #[arg(long, conflicts_with = "gate")]
    pub no_gate: bool,
    /// The update class: the gate's limits and the disruption budget (default: the `--config`
    /// file's, else routine).
    #[arg(long, value_enum)]
    pub class: Option<ClassArg>,
    /// The rollout's settings as the simulator reads them: a TOML file with the scenario's
    /// `[reconfig]` table (a scenario file, or the table's keys alone): strategy, class, gate,
    /// pool, qps_gate, params (canary fraction and watch, traffic steps, health thresholds),
    /// breaker. Flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// How long the canary batch is watched, s (overrides `params.canary_watch_s`; seeds: 3600).
    #[arg(long)]
    pub canary_watch_s: Option<f64>,
    /// How long each blue-green traffic step is watched, s (overrides `params.step_watch_s`).
    #[arg(long)]
    pub step_watch_s: Option<f64>,
    /// Nodes out of service at once (overrides `params.max_unavailable`; 0: the class's budget).
    #[arg(long)]
    pub max_unavailable: Option<u32>,
    /// Prometheus' HTTP API (http://host:port[/prefix]): the gate's traffic and the watch's
    /// health. Required for a gated, canary or blue-green rollout.
    #[arg(long)]
    pub prometheus_url: Option<String>,
    /// PromQL: requests per second, one series (`$window` = the rate window).
    #[arg(long)]
    pub qps_query: Option<String>,
    /// PromQL: failed ÷ arrived requests, 0..=1.
    #[arg(long)]
    pub error_rate_query: Option<String>,
    /// PromQL: the request latency's p99 in ms.
    #[arg(long)]
    pub p99_ms_query: Option<String>,
    /// PromQL: the mean GPU utilisation, 0..=1.
    #[arg(long)]
    pub gpu_util_query: Option<String>,
    /// PromQL: the unallocated fraction of GPU capacity, 0..=1 (default: from the cluster view).
    #[arg(long)]
    pub free_capacity_query: Option<String>,
    /// The gate's QPS sample step, s (the simulator's tick).
    #[arg(long, default_value_t = 30.0)]
    pub step_s: f64,
    /// The shortest range a rate is read over, s (at least two scrape intervals).
    #[arg(long, default_value_t = 120.0)]
    pub rate_window_s: f64,
    /// Per Prometheus request, s.
    #[arg(long, default_value_t = 10.0)]
    pub prometheus_timeout_s: f64,
    /// Wait up to this long at a closed gate, asking again every `--gate-retry-s` (0: hold at
    /// once and exit 1; rerun later: nodes already converted are skipped).
    #[arg(long, default_value_t = 0.0)]
    pub gate_wait_s: f64,
    /// Seconds between gate readings while waiting (`--gate-wait-s`).
    #[arg(long, default_value_t = 60.0)]
    pub gate_retry_s: f64,
    /// How long each node's device plugin has to advertise the new config, s.
    #[arg(long, default_value_t = 180.0)]
    pub plugin_timeout_s: f64,
    /// A namespace whose GPU pods may be evicted (repeat for several). A target node running
    /// GPU pods elsewhere refuses the rollout.
    #[arg(long = "namespace", required = true)]
    pub namespaces: Vec<String>,
    #[arg(long, default_value = "nvidia-device-plugin")]
    pub plugin_config_namespace: String,
    #[arg(long, default_value = "device-plugin-config")]
    pub plugin_config_name: String,
    /// Print every request of every batch instead of sending it; ask the gate once, wait for no
    /// watch; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Reads `--config FILE`: the scenario's `[reconfig]` table, from a scenario file or alone.
/// Deserialised straight from the text, so a wrong key or value is named with its line and
/// column; every number goes through the scenario's one range check (`reconfig.…` keys).
pub fn reconfig_config(path: &PathBuf) -> Result<ReconfigConfig, CmdError> {
    /// A scenario file: its `[reconfig]` table (the scenario's other tables are not read here).
    #[derive(serde::Deserialize)]
    struct InScenario {
        reconfig: ReconfigConfig,
    }
    let shown = path.display().to_string();
    let bad = |e: String| CmdError::BadInput(format!("{shown}: {e}"));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let located = |e: toml::de::Error| bad(e.to_string().trim_end().to_string());
    let v: toml::Table = toml::from_str(&text).map_err(located)?;
    let (cfg, table) = match v.get("reconfig") {
        Some(toml::Value::Table(t)) => (
            toml::from_str::<InScenario>(&text)
                .map_err(located)?
                .reconfig,
            t.clone(),
        ),
        Some(_) => return Err(bad("`reconfig` must be a table".into())),
        None => (toml::from_str::<ReconfigConfig>(&text).map_err(located)?, v),
    };
    let mut wrapped = toml::Table::new();
    wrapped.insert("reconfig".into(), toml::Value::Table(table));
    gpusched_scenario::numbers::check(&shown, &toml::Value::Table(wrapped))
        .map_err(|e| CmdError::BadInput(e.to_string()))?;
    let key = |k: &str, e: String| bad(format!("reconfig.{k}: {e}"));
    cfg.qps_gate.validate().map_err(|e| key("qps_gate", e))?;
    cfg.params.validate().map_err(|e| key("params", e))?;
    if !(cfg.breaker.failure_threshold >= 1 && cfg.breaker.cooldown_s >= 0.0) {
        return Err(key(
            "breaker",
            "failure_threshold ≥ 1 and cooldown_s ≥ 0".into(),
        ));
    }
    if !cfg.faults.fail_apply.is_empty() || !cfg.faults.never_returns.is_empty() {
        return Err(key(
            "faults",
            "fault injection is the simulator's; a live rollout takes none".into(),
        ));
    }
    Ok(cfg)
}

/// The rollout the flags (and `--config`) ask for, and the Prometheus observer's settings;
/// every check that needs no cluster.
pub fn rollout_request(a: &RolloutArgs) -> Result<(Request, Option<PrometheusObserver>), CmdError> {
    let bad = CmdError::BadInput;
    let file = a.config.as_ref().map(reconfig_config).transpose()?;
    let base = file.clone().unwrap_or_else(|| ReconfigConfig {
        gate: false,
        ..Default::default()
    });
    let targets = if let Some(p) = &a.pool {
        Targets::Pool(p.clone())
    } else if let Some(s) = &a.selector {
        Targets::Selector(s.clone())
    } else if !a.nodes.is_empty() {
        let nodes: Vec<String> = a
            .nodes
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        if nodes.is_empty() {
            return Err(bad("--nodes: no node named".into()));
        }
        Targets::Nodes(nodes)
    } else if file.is_some() && !base.pool.is_empty() {
        Targets::Pool(base.pool.clone())
    } else {
        return Err(bad(
            "which nodes? pass --pool NAME, --selector SELECTOR or --nodes a,b (or a --config file with `pool`)".into(),
        ));
    };
    let to = match (&a.to, &base.trigger) {
        (Some(t), _) => parse_sharing(t).map_err(bad)?,
        (None, Trigger::Scheduled { replicas, .. }) if file.is_some() => {
            NodeSharing::TimeSlicing { replicas: *replicas }
        }
        (None, _) => {
            return Err(bad(
                "which config? pass --to (e.g. time-slicing:4), or a --config file whose trigger is `scheduled` with `replicas`".into(),
            ))
        }
    };
    let strategy: Strategy = a.strategy.map(Into::into).unwrap_or(base.strategy);
    let class: UpdateClass = a.class.map(Into::into).unwrap_or(base.class);
    let gated = (base.gate || a.gate) && !a.no_gate;
    let mut params = base.params.clone();
    let watch = |flag: &str, w: f64| {
        if w >= 0.0 && w.is_finite() {
            Ok(w)
        } else {
            Err(bad(format!(
                "{flag} {w} must be a number of seconds ≥ 0 (0: no watch)"
            )))
        }
    };
    if let Some(w) = a.canary_watch_s {
        params.canary_watch_s = watch("--canary-watch-s", w)?;
    }
    if let Some(w) = a.step_watch_s {
        params.step_watch_s = watch("--step-watch-s", w)?;
    }
    if let Some(m) = a.max_unavailable {
        params.max_unavailable = m;
    }
    params
        .validate()
        .map_err(|e| bad(format!("strategy parameters: {e}")))?;
    let positive = |flag: &str, v: f64| {
        if v > 0.0 && v.is_finite() {
            Ok(())
        } else {
            Err(bad(format!(
                "{flag} {v} must be a positive number of seconds"
            )))
        }
    };
    positive("--step-s", a.step_s)?;
    positive("--rate-window-s", a.rate_window_s)?;
    positive("--prometheus-timeout-s", a.prometheus_timeout_s)?;
    positive("--gate-retry-s", a.gate_retry_s)?;
    positive("--plugin-timeout-s", a.plugin_timeout_s)?;
    if !(a.gate_wait_s >= 0.0 && a.gate_wait_s.is_finite()) {
        return Err(bad(format!("--gate-wait-s {} must be ≥ 0", a.gate_wait_s)));
    }
    let machine = MachineConfig {
        strategy,
        strategy_cfg: params,
        max_disruption_pct: class.limits().max_disruption_pct,
        gate: gated.then(|| (base.qps_gate.clone(), class)),
        plugin_timeout_s: a.plugin_timeout_s,
    };
    let req = Request {
        targets,
        to,
        machine,
        breaker: base.breaker.clone(),
        timing: RolloutTiming {
            plugin_timeout: Duration::from_secs_f64(a.plugin_timeout_s),
            ..Default::default()
        },
    };
    let observer = match &a.prometheus_url {
        None => {
            if gated || req.watches() {
                return Err(bad(format!(
                    "a {} rollout{} reads Prometheus: pass --prometheus-url (or --no-gate{})",
                    strategy.as_str(),
                    if gated { " behind the QPS gate" } else { "" },
                    if req.watches() {
                        " and a strategy that watches nothing"
                    } else {
                        ""
                    }
                )));
            }
            None
        }
        Some(url) => {
            // The free capacity's cluster source is set once a client exists.
            let mut o = PrometheusObserver::new(url, FreeCapacity::Fixed(f64::NAN)).map_err(bad)?;
            let d = PromQueries::default();
            o.queries = PromQueries {
                qps: a.qps_query.clone().unwrap_or(d.qps),
                error_rate: a.error_rate_query.clone().unwrap_or(d.error_rate),
                p99_ms: a.p99_ms_query.clone().unwrap_or(d.p99_ms),
                gpu_util: a.gpu_util_query.clone().unwrap_or(d.gpu_util),
                free_capacity: a.free_capacity_query.clone(),
            };
            o.step_s = a.step_s;
            o.rate_window_s = a.rate_window_s.max(a.step_s);
            o.timeout = Duration::from_secs_f64(a.prometheus_timeout_s);
            if req.machine.gate.is_some() && a.gate_wait_s > 0.0 {
                o.gate_wait = Some(GateWait {
                    max_wait: Duration::from_secs_f64(a.gate_wait_s),
                    retry: Duration::from_secs_f64(a.gate_retry_s),
                });
            }
            Some(o)
        }
    };
    Ok((req, observer))
}

/// `gpusched live rollout`: plans, prints and runs one rollout; exit 1 unless it is done.
pub fn rollout(a: &RolloutArgs) -> Result<(), CmdError> {
    let scope = Scope::new(
        a.namespaces.iter().cloned(),
        &a.plugin_config_namespace,
        &a.plugin_config_name,
    )
    .map_err(|e| CmdError::BadInput(e.to_string()))?;
    let (req, mut observer) = rollout_request(a)?;
    let report = runtime()?.block_on(async {
        let c = client().await?;
        if let Some(o) = observer.as_mut() {
            o.free_capacity = FreeCapacity::Cluster(c.clone());
        }
        let now = agent::now_unix_s();
        if a.dry_run {
            tracing::warn!("gpusched rollout: DRY RUN — every request is printed, nothing is sent");
            let ap = DryRunApplier::stdout(scope.clone());
            crate::pool_rollout::run(&c, &scope, &ap, observer.as_ref(), &req, now).await
        } else {
            let ap = KubeApplier {
                client: c.clone(),
                scope: scope.clone(),
            };
            crate::pool_rollout::run(&c, &scope, &ap, observer.as_ref(), &req, now).await
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&report).map_err(failed)?);
    match &report.result {
        RolloutResult::NothingToChange => {
            tracing::info!("nothing to change");
            Ok(())
        }
        RolloutResult::NotStarted { reason } => Err(failed(reason)),
        RolloutResult::Ran { outcome } => match outcome {
            RolloutOutcome::Done => {
                tracing::info!(nodes = report.converted.len(), dry_run = a.dry_run, "rollout done");
                Ok(())
            }
            RolloutOutcome::Held { reason, .. } => Err(failed(format!(
                "the QPS gate held the rollout: {reason}; converted so far: [{}] (rerun later: converted nodes are skipped){}",
                report.converted.join(", "),
                prometheus_note(&report.prometheus_errors)
            ))),
            RolloutOutcome::Deferred { reason } => Err(failed(format!("not started: {reason}"))),
            RolloutOutcome::RolledBack {
                error,
                rollback_errors,
            } => Err(failed(format!(
                "the rollout failed and was rolled back: {error}{}{}",
                if rollback_errors.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; the rollback itself failed at: {} (the nodes' {} annotation holds the record for a manual undo)",
                        rollback_errors.join("; "),
                        crate::keys::ROLLBACK
                    )
                },
                prometheus_note(&report.prometheus_errors)
            ))),
        },
    }
}

fn prometheus_note(errs: &[String]) -> String {
    if errs.is_empty() {
        String::new()
    } else {
        format!("; Prometheus: {}", errs.join("; "))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CmdError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(failed)
}

async fn client() -> Result<kube::Client, CmdError> {
    crate::client::infer()
        .await
        .map_err(|e| failed(format!("cannot reach a Kubernetes API server (in-cluster service account or ~/.kube/config / $KUBECONFIG): {e}")))
}

pub fn agent(a: &AgentArgs) -> Result<(), CmdError> {
    let mut reader = NvmlReader::new().map_err(failed)?;
    if a.once {
        let r = reader.read(agent::now_unix_s()).map_err(failed)?;
        println!("{}", serde_json::to_string_pretty(&r).map_err(failed)?);
        return Ok(());
    }
    let node = a
        .node
        .clone()
        .or_else(|| std::env::var("NODE_NAME").ok())
        .filter(|n| !n.is_empty());
    if node.is_none() && !a.no_publish {
        return Err(CmdError::BadInput(
            "the node name is unknown: pass --node or set NODE_NAME (or --no-publish)".into(),
        ));
    }
    runtime()?.block_on(async {
        let c = if a.no_publish {
            None
        } else {
            Some(client().await?)
        };
        let addr = format!("0.0.0.0:{}", a.port);
        let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
            failed(agent::AgentError::Listen {
                addr: addr.clone(),
                source: e,
            })
        })?;
        let latest = Arc::new(tokio::sync::RwLock::new(String::new()));
        tokio::spawn(agent::serve(listener, latest.clone()));
        tracing::info!(
            url = %format_args!("http://{addr}/metrics"),
            interval_s = a.interval_s,
            "gpusched agent: serving metrics"
        );
        let opts = AgentOptions {
            node: node.unwrap_or_default(),
            interval: Duration::from_secs(a.interval_s.max(1)),
            max_readings: None,
        };
        agent::run(&mut reader, &opts, latest, c)
            .await
            .map(|_| ())
            .map_err(failed)
    })
}

fn engine_config(path: Option<&PathBuf>) -> Result<EngineConfig, CmdError> {
    let Some(p) = path else {
        return Ok(EngineConfig::default());
    };
    let text = std::fs::read_to_string(p)
        .map_err(|e| CmdError::BadInput(format!("{}: {e}", p.display())))?;
    let cfg: EngineConfig =
        toml::from_str(&text).map_err(|e| CmdError::BadInput(format!("{}: {e}", p.display())))?;
    cfg.validate()
        .map_err(|e| CmdError::BadInput(format!("{}: {e}", p.display())))?;
    Ok(cfg)
}

/// Reads `--autoscaler FILE` (the scenario's `[autoscaler]` table) and validates it.
pub fn autoscaler_config(path: Option<&PathBuf>) -> Result<AutoscalerConfig, CmdError> {
    let Some(p) = path else {
        return Ok(AutoscalerConfig::default());
    };
    let text = std::fs::read_to_string(p)
        .map_err(|e| CmdError::BadInput(format!("{}: {e}", p.display())))?;
    let cfg: AutoscalerConfig =
        toml::from_str(&text).map_err(|e| CmdError::BadInput(format!("{}: {e}", p.display())))?;
    cfg.validate()
        .map_err(|e| CmdError::BadInput(format!("{}: {e}", p.display())))?;
    Ok(cfg)
}

/// The autoscaling options the flags ask for (`None` with `--no-autoscale`).
pub fn autoscale_options(a: &ControllerArgs) -> Result<Option<AutoscaleOptions>, CmdError> {
    if a.no_autoscale {
        return Ok(None);
    }
    if !(a.energy_usd_per_kwh >= 0.0 && a.energy_usd_per_kwh.is_finite()) {
        return Err(CmdError::BadInput(format!(
            "--energy-usd-per-kwh {} must be a non-negative number",
            a.energy_usd_per_kwh
        )));
    }
    Ok(Some(AutoscaleOptions {
        config: autoscaler_config(a.autoscaler.as_ref())?,
        period_s: a.autoscale_period_s.max(1) as f64,
        metrics: MetricNames {
            waiting: a.waiting_metric.clone(),
            running: a.running_metric.clone(),
            served: a.served_metric.clone(),
        },
        energy_usd_per_kwh: a.energy_usd_per_kwh,
        ..Default::default()
    }))
}

pub fn controller(a: &ControllerArgs) -> Result<(), CmdError> {
    let scope = Scope::new(
        a.namespaces.iter().cloned(),
        &a.plugin_config_namespace,
        &a.plugin_config_name,
    )
    .map_err(|e| CmdError::BadInput(e.to_string()))?;
    // The Lease is a write like any other: gpusched never writes in kube-system (the RBAC has
    // no rule there either, so the election would fail at every round).
    if a.lease_namespace == crate::keys::KUBE_SYSTEM || a.lease_namespace.is_empty() {
        return Err(CmdError::BadInput(format!(
            "--lease-namespace {:?}: the Lease must live in gpusched's own namespace (default gpusched-system), never kube-system",
            a.lease_namespace
        )));
    }
    let cfg = engine_config(a.engine.as_ref())?;
    let autoscale = autoscale_options(a)?;
    let log = match &a.decisions {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| CmdError::BadInput(format!("{}: {e}", p.display())))?;
            Some(DecisionLog::new(Box::new(f), agent::now_unix_s()))
        }
        None => None,
    };
    let identity = a
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("gpusched-{}", std::process::id()));
    let period = Duration::from_secs(a.period_s.max(1));
    let opts = RunOptions {
        period,
        lease: LeaseConfig {
            namespace: a.lease_namespace.clone(),
            name: a.lease_name.clone(),
            identity,
            duration_s: (3 * a.period_s.max(1)) as i32,
        },
        autoscale,
    };
    runtime()?.block_on(async {
        let c = client().await?;
        // The node count only scales FirstFit's ordinal term; the watch's first view sets it.
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(c.clone());
        let n = nodes
            .list(&Default::default())
            .await
            .map_err(failed)?
            .items
            .len() as u32;
        if a.dry_run {
            tracing::warn!(
                "gpusched controller: DRY RUN — every request is printed, nothing is sent"
            );
            let ctl = Controller::new(
                cfg,
                GpuCatalog::default(),
                n,
                scope.clone(),
                DryRunApplier::stdout(scope),
                log,
            )
            .map_err(failed)?;
            controller::run(c, ctl, opts, shutdown_signal())
                .await
                .map_err(failed)
        } else {
            let ctl = Controller::new(
                cfg,
                GpuCatalog::default(),
                n,
                scope.clone(),
                KubeApplier {
                    client: c.clone(),
                    scope,
                },
                log,
            )
            .map_err(failed)?;
            controller::run(c, ctl, opts, shutdown_signal())
                .await
                .map_err(failed)
        }
    })
}

/// Completes on SIGTERM (what the kubelet sends a pod being stopped) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("gpusched controller: stopping");
}

pub fn snapshot(a: &SnapshotArgs) -> Result<(), CmdError> {
    use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
    runtime()?.block_on(async {
        let c = client().await?;
        let nodes = kube::Api::<Node>::all(c.clone())
            .list(&Default::default())
            .await
            .map_err(failed)?
            .items;
        let pods = kube::Api::<Pod>::all(c.clone())
            .list(&Default::default())
            .await
            .map_err(failed)?
            .items;
        let cm = kube::Api::<ConfigMap>::namespaced(c.clone(), &a.plugin_config_namespace)
            .get_opt(&a.plugin_config_name)
            .await
            .map_err(failed)?;
        let s = crate::snapshot::snapshot(
            &a.name,
            &nodes,
            &pods,
            cm.as_ref(),
            &EngineConfig::default(),
            agent::now_unix_s(),
        )
        .map_err(failed)?;
        std::fs::write(&a.output, &s.toml)
            .map_err(|e| failed(format!("{}: {e}", a.output.display())))?;
        for n in &s.notes {
            tracing::info!(note = %n, "snapshot");
        }
        tracing::info!(
            out = %a.output.display(),
            pools = s.scenario.pools.len(),
            services = s.scenario.services.len(),
            "wrote the snapshot; simulate it with: gpusched run {}",
            a.output.display()
        );
        Ok(())
    })
}
