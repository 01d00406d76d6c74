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
use crate::signals::MetricNames;
use gpusched_policies::autoscale::AutoscalerConfig;
use gpusched_policies::{EngineConfig, GpuCatalog};
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
