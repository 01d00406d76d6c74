//! Scenario files (TOML): the cluster, the services and their traffic, the engine's
//! configuration, and the run's length and seed. Loading never panics: every problem comes back
//! as a [`ScenarioError`] naming the file, the key and what is allowed.

use crate::perf::PerfConfig;
use gpusched_policies::autoscale::AutoscalerConfig;
use gpusched_policies::gpu::{GpuCatalog, GpuModel};
use gpusched_policies::workload::{Priority, WorkloadKind, WorkloadSpec};
use gpusched_policies::EngineConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The built-in default scenario: the seeds' cluster and a diurnal day (also scenarios/default.toml).
pub const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/default.toml");
pub const DEFAULT_SCENARIO_NAME: &str = "<built-in default scenario>";

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read the scenario: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {key}: {problem}")]
    Invalid {
        path: String,
        key: String,
        problem: String,
    },
    #[error("--set {arg}: {problem}")]
    Override { arg: String, problem: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated length, hours (or give `duration_s`).
    #[serde(default)]
    pub duration_h: Option<f64>,
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// The monitoring loop's period (seeds: 30 s).
    #[serde(default = "default_tick")]
    pub tick_s: f64,
    /// Record every candidate's scores with each placement (the decision matrix).
    #[serde(default = "yes")]
    pub record_matrix: bool,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub autoscaler: AutoscalerConfig,
    #[serde(default)]
    pub perf: PerfConfig,
    #[serde(default)]
    pub costs: Costs,
    #[serde(default)]
    pub disruption: DisruptionConfig,
    /// A sharing-layout change rolled out during the run (issue 5); none without the section.
    #[serde(default)]
    pub reconfig: Option<crate::reconfig::ReconfigConfig>,
    /// Per-model overrides of the published GPU figures, keyed by model name.
    #[serde(default)]
    pub gpu_models: BTreeMap<String, GpuSpecOverride>,
    #[serde(default)]
    pub pools: Vec<PoolSpec>,
    /// Adds pools from a real node inventory (see `crate::inventory`).
    #[serde(default)]
    pub pools_from: Option<crate::inventory::InventorySpec>,
    /// Traffic shared by every service without its own `traffic`, split by `traffic_weight`.
    #[serde(default)]
    pub traffic: Option<TrafficSpec>,
    pub services: Vec<ServiceSpec>,
    #[serde(default)]
    pub node_state: Vec<NodeStateSpec>,
    /// Configurations this scenario is meant to be compared under: `gpusched compare FILE`
    /// runs them when no `--policy`/`--variant` is given.
    #[serde(default)]
    pub variants: Vec<ScenarioVariant>,
    /// Skip malformed trace rows (counted in summary.json) instead of failing the run; applies
    /// to every trace in the scenario (`gpusched run --skip-bad-rows`).
    #[serde(default)]
    pub skip_bad_rows: bool,
}

fn default_seed() -> u64 {
    42
}
fn default_tick() -> f64 {
    30.0
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Costs {
    pub energy_usd_per_kwh: f64,
}

impl Default for Costs {
    fn default() -> Self {
        // US commercial average electricity price, 2024 (EIA), rounded.
        Self {
            energy_usd_per_kwh: 0.13,
        }
    }
}

/// A named configuration of a scenario: `--set`-style overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioVariant {
    pub name: String,
    /// `key=value` overrides, as `--set` takes them.
    pub set: Vec<String>,
}

/// What configuration changes cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisruptionConfig {
    /// A device-plugin config change restarts the plugin (and the MPS server): this long
    /// before the node's GPUs serve again.
    pub plugin_restart_s: f64,
    /// A MIG re-layout (GPU Operator mig-manager: stop clients, reconfigure, restart the plugin).
    pub mig_reconfigure_s: f64,
}

impl Default for DisruptionConfig {
    fn default() -> Self {
        Self {
            plugin_restart_s: 30.0,
            mig_reconfigure_s: 60.0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpecOverride {
    pub memory_gb: Option<f64>,
    pub tdp_w: Option<f64>,
    pub idle_w: Option<f64>,
    pub seeds_tops: Option<f64>,
    pub relative_speed: Option<f64>,
    pub price_per_hour: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub name: String,
    pub gpu_model: GpuModel,
    pub nodes: u32,
    #[serde(default = "one_u8")]
    pub gpus_per_node: u8,
    /// Pin the pool to one sharing config (seed 003's time-slicing and MIG pools), e.g.
    /// `sharing = { config = "time_slicing", replicas = 3 }` or `{ config = "mig" }`.
    #[serde(default)]
    pub sharing: Option<gpusched_policies::sharing::NodeSharing>,
    /// Initial MIG layout of every GPU in the pool, by profile name (e.g. seed 003's
    /// `["3g.40gb", "2g.20gb", "2g.20gb"]` on A100-80GB).
    #[serde(default)]
    pub mig_layout: Vec<String>,
}

fn one_u8() -> u8 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TrafficSpec {
    /// Homogeneous Poisson arrivals.
    Poisson { qps: f64 },
    /// Non-homogeneous Poisson arrivals following a 24-hour curve of (hour, QPS) anchors,
    /// interpolated linearly and repeated every day; `scale` multiplies the rate.
    Diurnal {
        #[serde(default = "seeds_diurnal")]
        anchors: Vec<(f64, f64)>,
        #[serde(default = "one_f64")]
        scale: f64,
    },
    /// `count` requests all arriving at `at_s` (a batch job's input).
    Batch {
        count: u64,
        #[serde(default)]
        at_s: f64,
    },
    /// Replay of a trace file in any supported format (see `gpusched_traces`), with a time
    /// window, time- and rate-scaling and a mapping of rows to services.
    Trace(gpusched_traces::pipeline::TraceSpec),
    /// Markov-modulated Poisson bursts.
    Mmpp(gpusched_traces::synth::MmppSpec),
    /// A linear ramp of the rate.
    Ramp(gpusched_traces::synth::RampSpec),
    /// Traffic fitted to a real trace (rate per bin, token distribution).
    Fit(gpusched_traces::synth::FitSpec),
    /// ServeGen per-client rates and token PMFs as a generator.
    Servegen(gpusched_traces::servegen::ServeGenSpec),
}

fn one_f64() -> f64 {
    1.0
}

/// The seeds' day: lowest at 2–4 AM (20–30 QPS), a secondary low at 2–4 PM (40–60 QPS), peaks
/// near 300 QPS mid-morning and in the evening. About 13.7 million requests a day.
pub fn seeds_diurnal() -> Vec<(f64, f64)> {
    vec![
        (0.0, 120.0),
        (1.0, 70.0),
        (2.0, 30.0),
        (3.0, 22.0),
        (4.0, 30.0),
        (5.0, 60.0),
        (6.0, 120.0),
        (7.0, 200.0),
        (8.0, 260.0),
        (9.0, 295.0),
        (10.0, 300.0),
        (11.0, 260.0),
        (12.0, 180.0),
        (13.0, 100.0),
        (14.0, 55.0),
        (15.0, 45.0),
        (16.0, 60.0),
        (17.0, 120.0),
        (18.0, 200.0),
        (19.0, 260.0),
        (20.0, 295.0),
        (21.0, 300.0),
        (22.0, 250.0),
        (23.0, 180.0),
        (24.0, 120.0),
    ]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    /// GPU memory a replica needs, GB (derived from `model` when that is given).
    #[serde(default)]
    pub model_memory_gb: f64,
    /// The LLM this service serves, by catalogue name (`gpusched serving models`): its replicas
    /// run the iteration-level serving engine (see `crate::llm`).
    #[serde(default)]
    pub model: Option<String>,
    /// Weights and KV-cache format of `model`.
    #[serde(default)]
    pub dtype: gpusched_serving::Dtype,
    #[serde(default)]
    pub serving: Option<crate::llm::ServingSpec>,
    /// TTFT / TPOT percentile objectives of an LLM service.
    #[serde(default)]
    pub slo: Option<crate::llm::LlmSlo>,
    #[serde(default)]
    pub priority: Priority,
    /// End-to-end latency SLA, ms (queueing included).
    #[serde(default)]
    pub latency_sla_ms: Option<f64>,
    /// LLM serving SLOs are a time to first token plus a time per output token (DistServe,
    /// OSDI '24): with this set, a request carrying token counts meets its SLA when its latency
    /// is within `latency_sla_ms + sla_per_output_token_ms × output tokens`, so long answers
    /// get the time they need. Requests without tokens keep `latency_sla_ms`.
    #[serde(default)]
    pub sla_per_output_token_ms: Option<f64>,
    #[serde(default)]
    pub kind: WorkloadKind,
    #[serde(default)]
    pub required_gpu_models: Vec<GpuModel>,
    #[serde(default)]
    pub share_pct: Option<u8>,
    /// Kubernetes namespace (the admission flow leaves exempt namespaces alone).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Opted out of sharing (seed 004's `optimize: "false"`).
    #[serde(default)]
    pub opt_out: bool,
    /// Priority-class value (default from `priority`: high 1000, medium 500, low 100).
    #[serde(default)]
    pub priority_class: Option<i32>,
    /// Sharing mode for this service, overriding `engine.sharing`.
    #[serde(default)]
    pub sharing_mode: Option<gpusched_policies::admission::SharingPolicy>,
    #[serde(default = "one_f64")]
    pub traffic_weight: f64,
    #[serde(default)]
    pub traffic: Option<TrafficSpec>,
    /// Mean time one request takes on an exclusive H100, ms.
    pub service_time_ms: f64,
    /// Parameters of the served model, billions, for requests that carry tokens (default:
    /// `model_memory_gb / perf.tokens.bytes_per_param`).
    #[serde(default)]
    pub model_params_b: Option<f64>,
    /// Coefficient of variation of the service demand (Gamma distributed; 0 = constant).
    #[serde(default = "half")]
    pub service_time_cv: f64,
    /// Requests a replica serves at once (batch slots).
    #[serde(default = "four")]
    pub concurrency: u32,
    /// Pod start-up until ready (image pull, model load), s.
    #[serde(default = "thirty")]
    pub startup_s: f64,
    /// The deployment is created this many seconds into the run (its initial replicas are
    /// placed then, cold); 0 = already running at the start (warm).
    #[serde(default)]
    pub start_at_s: f64,
    #[serde(default = "one_u32")]
    pub initial_replicas: u32,
    #[serde(default = "one_u32")]
    pub min_replicas: u32,
    #[serde(default = "sixteen")]
    pub max_replicas: u32,
    /// A request still queued after this long fails with cause `timeout`.
    #[serde(default = "thirty")]
    pub queue_timeout_s: f64,
    /// Arrivals beyond this queue length fail with cause `queue_full`.
    #[serde(default = "max_queue")]
    pub max_queue: u64,
    /// GPUs per replica: 1, 2, 4 or 8 whole GPUs of one node (tensor parallelism; a real
    /// engine shards the model over NVLink peers). `model_memory_gb` is the whole model's;
    /// each GPU holds `model_memory_gb / tensor_parallel`.
    #[serde(default = "one_u32", skip_serializing_if = "is_one")]
    pub tensor_parallel: u32,
}

/// Single-GPU services serialise as before the key existed (snapshots, `--print-scenario`).
fn is_one(v: &u32) -> bool {
    *v == 1
}

/// The tensor-parallel degrees a service may ask for (serving engines shard attention heads
/// over a power of two of GPUs, at most one 8-GPU node).
pub const TENSOR_PARALLEL_DEGREES: [u32; 4] = [1, 2, 4, 8];

fn half() -> f64 {
    0.5
}
fn four() -> u32 {
    4
}
fn thirty() -> f64 {
    30.0
}
fn one_u32() -> u32 {
    1
}
fn sixteen() -> u32 {
    16
}
fn max_queue() -> u64 {
    10_000
}

impl ServiceSpec {
    pub fn workload(&self) -> WorkloadSpec {
        WorkloadSpec {
            name: self.name.clone(),
            model_memory_gb: self.model_memory_gb,
            priority: self.priority,
            latency_sla_ms: self.latency_sla_ms,
            kind: self.kind,
            required_gpu_models: self.required_gpu_models.clone(),
            share_pct: self.share_pct,
            namespace: self.namespace.clone(),
            opt_out: self.opt_out,
            priority_class: self.priority_class,
            sharing_mode: self.sharing_mode,
            gpus: self.tensor_parallel,
        }
    }
}

/// Initial state of a node: a load the simulator does not model (another tenant) or a cordon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeStateSpec {
    pub node: String,
    #[serde(default)]
    pub background_utilisation: f64,
    #[serde(default)]
    pub cordoned: bool,
}

/// A scenario after loading: where it came from, and the catalog with overrides applied.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub scenario: Scenario,
    /// The file it came from (`DEFAULT_SCENARIO_NAME` for the built-in one).
    pub source: String,
    /// Directory relative paths inside the scenario resolve against.
    pub base_dir: PathBuf,
    pub catalog: GpuCatalog,
}

impl LoadedScenario {
    pub fn duration_s(&self) -> f64 {
        self.scenario
            .duration_s
            .or(self.scenario.duration_h.map(|h| h * 3600.0))
            .unwrap_or(0.0)
    }
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

pub fn gpu_model_from_name(name: &str) -> Option<GpuModel> {
    GpuModel::ALL.into_iter().find(|m| m.as_str() == name)
}

/// Loads a scenario file, applying `--set key=value` overrides.
pub fn load_file(path: &Path, overrides: &[String]) -> Result<LoadedScenario, ScenarioError> {
    let shown = path.display().to_string();
    let text = crate::text::read_utf8(path)
        .map_err(|source| ScenarioError::Io {
            path: shown.clone(),
            source,
        })?
        .map_err(|message| ScenarioError::Parse {
            path: shown.clone(),
            message,
        })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_str(&text, &shown, base, overrides)
}

/// The built-in default scenario.
pub fn load_default(overrides: &[String]) -> Result<LoadedScenario, ScenarioError> {
    load_str(
        DEFAULT_SCENARIO,
        DEFAULT_SCENARIO_NAME,
        PathBuf::from("."),
        overrides,
    )
}

pub fn load_str(
    text: &str,
    source: &str,
    base_dir: PathBuf,
    overrides: &[String],
) -> Result<LoadedScenario, ScenarioError> {
    let parse_err = |e: toml::de::Error| ScenarioError::Parse {
        path: source.to_string(),
        message: e.to_string().trim_end().to_string(),
    };
    // Deserialising straight from the text keeps line and column numbers in the errors.
    let mut scenario: Scenario = toml::from_str(text).map_err(parse_err)?;
    let mut table: toml::Table = toml::from_str(text).map_err(parse_err)?;
    for arg in overrides {
        apply_override(&mut table, arg)?;
    }
    let table = toml::Value::Table(table);
    // Every number, at any depth, wherever it came from (see crate::numbers).
    crate::numbers::check(source, &table)?;
    if !overrides.is_empty() {
        scenario = table
            .try_into()
            .map_err(|e: toml::de::Error| crate::validate::blame_override(text, overrides, e))?;
    }
    if let Some(inv) = scenario.pools_from.clone() {
        let path = if inv.path.is_absolute() {
            inv.path.clone()
        } else {
            base_dir.join(&inv.path)
        };
        let pools = crate::inventory::pools_from(&path, inv.scale).map_err(|problem| {
            ScenarioError::Invalid {
                path: source.to_string(),
                key: "pools_from".into(),
                problem,
            }
        })?;
        scenario.pools.extend(pools);
    }
    let mut catalog = GpuCatalog::default();
    for (name, o) in &scenario.gpu_models {
        let model = gpu_model_from_name(name).ok_or_else(|| ScenarioError::Invalid {
            path: source.to_string(),
            key: format!("gpu_models.\"{name}\""),
            problem: format!("unknown GPU model; known models are {}", known_models()),
        })?;
        let mut s = *catalog.spec(model);
        s.memory_gb = o.memory_gb.unwrap_or(s.memory_gb);
        s.tdp_w = o.tdp_w.unwrap_or(s.tdp_w);
        s.idle_w = o.idle_w.unwrap_or(s.idle_w);
        s.seeds_tops = o.seeds_tops.unwrap_or(s.seeds_tops);
        s.relative_speed = o.relative_speed.unwrap_or(s.relative_speed);
        s.price_per_hour = o.price_per_hour.unwrap_or(s.price_per_hour);
        catalog.set(model, s);
    }
    crate::llm::resolve(&mut scenario, source)?;
    let loaded = LoadedScenario {
        scenario,
        source: source.to_string(),
        base_dir,
        catalog,
    };
    crate::validate::validate(&loaded)?;
    Ok(loaded)
}

pub fn known_models() -> String {
    GpuModel::ALL
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies `a.b.c=value` (or `services.0.concurrency=8`) to a TOML table. The value is parsed
/// as TOML (number, bool, string, array) and falls back to a bare string.
pub fn apply_override(table: &mut toml::Table, arg: &str) -> Result<(), ScenarioError> {
    let err = |problem: String| ScenarioError::Override {
        arg: arg.to_string(),
        problem,
    };
    let (key, raw) = arg
        .split_once('=')
        .ok_or_else(|| err("expected key=value, e.g. engine.policy=best_fit".into()))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(err("the key is empty".into()));
    }
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    let mut root = toml::Value::Table(std::mem::take(table));
    let result = set_path(&mut root, &parts, 0, value).map_err(err);
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    result
}

fn set_path(
    cur: &mut toml::Value,
    parts: &[&str],
    i: usize,
    value: toml::Value,
) -> Result<(), String> {
    let part = parts[i];
    let last = i + 1 == parts.len();
    let here = || parts[..i].join(".");
    match cur {
        toml::Value::Table(t) => {
            if last {
                t.insert(part.to_string(), value);
                return Ok(());
            }
            let next = t
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            set_path(next, parts, i + 1, value)
        }
        toml::Value::Array(a) => {
            let idx: usize = part
                .parse()
                .map_err(|_| format!("`{part}` must be an index into the list `{}`", here()))?;
            let len = a.len();
            let slot = a.get_mut(idx).ok_or_else(|| {
                format!(
                    "index {idx} is past the end of `{}` ({len} entries)",
                    here()
                )
            })?;
            if last {
                *slot = value;
                return Ok(());
            }
            set_path(slot, parts, i + 1, value)
        }
        _ => Err(format!("`{}` is not a table or a list", here())),
    }
}
