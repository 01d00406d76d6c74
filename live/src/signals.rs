//! Live signals → the simulator's [`ServiceSignals`], so live mode feeds the very same
//! [`gpusched_policies::autoscale::Autoscaler`]s the simulator does.
//!
//! What is **measured** and what is **estimated**, signal by signal:
//!
//! | signal | source | measured / estimated |
//! |---|---|---|
//! | `replicas` | the Deployment's `spec.replicas` (absent = 1, the API default) | measured |
//! | `ready_replicas` | the Deployment's `status.readyReplicas` | measured |
//! | `queue_len` | Σ over ready pods of the serving engine's *waiting* gauge (vLLM: `vllm:num_requests_waiting`) | measured |
//! | `in_flight` | Σ over ready pods of the *running* gauge (vLLM: `vllm:num_requests_running`) | measured |
//! | served in the window | Σ over ready pods of the increase of the *served* counter (vLLM: `vllm:request_success_total`, all series summed) since the previous evaluation | measured (counter resets handled as Prometheus' `increase` does) |
//! | `utilisation` | mean over ready pods of NVML "GPU busy" of the GPU the pod is bound to (agent annotation `gpusched.io/gpu-metrics`) | estimated: NVML reports the busy fraction of the *whole* GPU; on a shared GPU that is an upper bound of the pod's own busy fraction (NVML does not split busy time per MPS client or time-slice) |
//! | attributed power | the GPU's measured power × the pod's `share-pct` ÷ the summed `share-pct` of the active pods on that GPU | power measured; attribution by share estimated (the simulator attributes energy the same way) |
//! | delivered TOPS | GPU busy × the GPU model's reference TOPS (the catalog's `seeds_tops`) × the same share fraction | estimated: the simulator counts the reference work each completed request carried; live mode cannot see per-request work, so it assumes a busy GPU delivers its reference TOPS |
//! | `efficiency_tops_per_w` | Σ delivered TOPS ÷ Σ attributed watts | estimated (from the two rows above) |
//! | `cost_per_inference` | (Σ `share-pct`/100 × the model's catalog $/h × window + attributed energy × $/kWh) ÷ served in the window | estimated: list prices, not a bill; the formula is the simulator's |
//!
//! **Missing data.** A signal is *known* only when every ready pod reported it (the scrape
//! answered and carried the metric; the agent's summary is fresh and has utilisation and power
//! for the pod's GPU; the served counter has a previous reading). Unknown floats are NaN and
//! unknown counts 0, and the live autoscaler does not ask the policy for a recommendation at all
//! while a signal that policy reads is unknown: as with the Kubernetes HPA, missing metrics never
//! cause a scale-down (and never a guessed scale-up either). See [`LiveSignals::missing`].
//!
//! **Prometheus text parsing.** `prometheus-parse` (crates.io, the usual choice) was checked and
//! rejected: its sample regex is `^(?P<name>\w+)…`, and `\w` does not match `:`, so every vLLM
//! metric (`vllm:…`, valid Prometheus names) is silently skipped. [`parse_exposition`] is a small
//! parser of the text format's sample lines (`name{labels} value [timestamp]`, quoted label values
//! with escapes), unit-tested against vLLM's output.

use crate::keys;
use crate::nvml::NodeSummary;
use crate::view::{allocation_from_pod, annotation, gpu_model_from_labels, pod_is_active};
use gpusched_policies::autoscale::{AutoscalerConfig, HpaMetric, ServiceSignals};
use gpusched_policies::gpu::{GpuCatalog, GpuModel};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Prometheus text format
// ---------------------------------------------------------------------------------------------

/// One sample line of the Prometheus text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut chars = line.char_indices().peekable();
    let mut end = 0;
    while let Some(&(i, c)) = chars.peek() {
        if !is_name_char(c, i == 0) {
            break;
        }
        end = i + c.len_utf8();
        chars.next();
    }
    if end == 0 {
        return None;
    }
    let name = line[..end].to_string();
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        // label="value", … with \" \\ \n escapes in values.
        let mut s = r;
        loop {
            s = s.trim_start_matches([' ', ',']);
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = s.find('=')?;
            let key = s[..eq].trim().to_string();
            let v = s[eq + 1..].trim_start().strip_prefix('"')?;
            let mut value = String::new();
            let mut it = v.char_indices();
            let mut close = None;
            while let Some((i, c)) = it.next() {
                match c {
                    '\\' => match it.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, other)) => value.push(other),
                        None => return None,
                    },
                    '"' => {
                        close = Some(i);
                        break;
                    }
                    _ => value.push(c),
                }
            }
            let close = close?;
            labels.push((key, value));
            s = &v[close + 1..];
        }
    }
    let mut fields = rest.split_whitespace();
    let value: f64 = fields.next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The sample lines of a Prometheus text exposition (comments, blank and malformed lines are
/// skipped; the optional timestamp is ignored).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

/// The sum of every series of `name` (e.g. vLLM's per-`finished_reason` success counters, or
/// several engines in one pod); `None` when the exposition has no such series.
pub fn sum_of(samples: &[Sample], name: &str) -> Option<f64> {
    let mut it = samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .peekable();
    it.peek()?;
    Some(it.sum())
}

/// The metric names read from each serving pod. Defaults: vLLM's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricNames {
    /// Gauge: requests waiting to be scheduled (→ `queue_len`).
    pub waiting: String,
    /// Gauge: requests being processed (→ `in_flight`).
    pub running: String,
    /// Counter: requests completed (its increase over the window → served).
    pub served: String,
}

impl Default for MetricNames {
    fn default() -> Self {
        Self {
            waiting: "vllm:num_requests_waiting".into(),
            running: "vllm:num_requests_running".into(),
            served: "vllm:request_success_total".into(),
        }
    }
}

/// What one pod's scrape said.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodMetrics {
    pub waiting: Option<f64>,
    pub running: Option<f64>,
    pub served_total: Option<f64>,
}

impl PodMetrics {
    pub fn from_text(text: &str, names: &MetricNames) -> Self {
        let s = parse_exposition(text);
        Self {
            waiting: sum_of(&s, &names.waiting),
            running: sum_of(&s, &names.running),
            served_total: sum_of(&s, &names.served),
        }
    }
}

/// A counter's increase since its previous reading, as Prometheus' `increase` treats resets: a
/// value below the previous one means the process restarted and counted from zero.
pub fn counter_increase(previous: Option<f64>, now: f64) -> Option<f64> {
    let p = previous?;
    Some(if now >= p { now - p } else { now })
}

// ---------------------------------------------------------------------------------------------
// Scraping
// ---------------------------------------------------------------------------------------------

/// Where a pod's metrics are: `http://<podIP>:<port><path>`. The port comes from
/// `gpusched.io/metrics-port`, else `prometheus.io/port`, else the pod's only declared container
/// port; the path from `gpusched.io/metrics-path`, else `prometheus.io/path`, else `/metrics`.
pub fn scrape_url(p: &Pod) -> Result<String, String> {
    let name = p.metadata.name.as_deref().unwrap_or("");
    let ip = p
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| format!("pod {name}: no pod IP yet"))?;
    let m = &p.metadata;
    let port = match annotation(m, keys::METRICS_PORT)
        .or_else(|| annotation(m, keys::PROMETHEUS_PORT))
    {
        Some(v) => v.trim().parse::<u16>().map_err(|_| {
            format!(
                "pod {name}: metrics port {v:?} ({} / {}) is not a port number",
                keys::METRICS_PORT,
                keys::PROMETHEUS_PORT
            )
        })?,
        None => {
            let ports: Vec<i32> = p
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .map(|cp| cp.container_port)
                .collect();
            match ports.as_slice() {
                [one] => u16::try_from(*one).map_err(|_| format!("pod {name}: bad port {one}"))?,
                _ => {
                    return Err(format!(
                        "pod {name}: no metrics port: annotate the pod template with {} (or {})",
                        keys::METRICS_PORT,
                        keys::PROMETHEUS_PORT
                    ))
                }
            }
        }
    };
    let path = annotation(m, keys::METRICS_PATH)
        .or_else(|| annotation(m, keys::PROMETHEUS_PATH))
        .unwrap_or("/metrics");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    Ok(format!("http://{host}:{port}{path}"))
}

/// Fetches a metrics page. The seam between the autoscaler and the network: tests serve text.
pub trait Scraper: Send + Sync {
    fn scrape(&self, url: &str) -> impl Future<Output = Result<String, String>> + Send;
}

/// Plain HTTP/1.1 GET with hyper (already in the build through kube), bounded by a timeout.
#[derive(Debug, Clone)]
pub struct HttpScraper {
    pub timeout: Duration,
}

impl Default for HttpScraper {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
        }
    }
}

/// Caps a metrics page (vLLM's is tens of KiB).
const MAX_BODY: usize = 4 << 20;

async fn http_get(url: &str) -> Result<String, String> {
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// is scraped"));
    }
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let host_port = format!("{}:{port}", host);
    let tcp = tokio::net::TcpStream::connect(&host_port)
        .await
        .map_err(|e| format!("{url}: connect: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let req = http::Request::get(path)
        .header(http::header::HOST, host_port.as_str())
        .header(http::header::ACCEPT, "text/plain")
        .body(String::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("{url}: reading the body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| format!("{url}: the body is not UTF-8"))
}

impl Scraper for HttpScraper {
    async fn scrape(&self, url: &str) -> Result<String, String> {
        match tokio::time::timeout(self.timeout, http_get(url)).await {
            Ok(r) => r,
            Err(_) => Err(format!("{url}: no answer within {:?}", self.timeout)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GPU attribution
// ---------------------------------------------------------------------------------------------

/// The GPU a pod is bound to, as the agent last read it, and the pod's part of it.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuShare {
    pub model: GpuModel,
    pub share_pct: u8,
    /// Σ `share-pct` of the active pods on the same GPU (≥ `share_pct`).
    pub total_share_pct: u32,
    /// NVML GPU busy, 0..=1 (None under MIG); the mean over a tensor-parallel pod's GPUs.
    pub util: Option<f64>,
    /// Watts; the sum over a tensor-parallel pod's GPUs.
    pub power_w: Option<f64>,
    /// GPUs the pod holds (N for a tensor-parallel pod, whole GPUs each).
    pub gpus: u8,
}

impl GpuShare {
    /// The pod's fraction of the GPU's power and delivered work.
    pub fn fraction(&self) -> f64 {
        self.share_pct as f64 / self.total_share_pct.max(self.share_pct as u32).max(1) as f64
    }
}

/// The GPU share a bound pod holds, from the allocation annotations gpusched wrote when it bound
/// the pod and the agent's summary on the node. `Err` says why it is unknown (pods placed by
/// another scheduler have no `gpusched.io/gpu-index`: which device they got cannot be known).
pub fn gpu_share(
    pod: &Pod,
    nodes: &[Node],
    pods: &[Pod],
    now_unix_s: f64,
    max_age_s: f64,
) -> Result<GpuShare, String> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let (gpu, alloc) = allocation_from_pod(pod)?.ok_or_else(|| {
        format!(
            "pod {name}: no {} annotation (not bound by gpusched)",
            keys::GPU_INDEX
        )
    })?;
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .ok_or_else(|| format!("pod {name}: not on a node"))?;
    let node = nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node_name))
        .ok_or_else(|| format!("pod {name}: node {node_name} not found"))?;
    let labels = node.metadata.labels.as_ref();
    let product = labels
        .and_then(|l| l.get(keys::GPU_PRODUCT))
        .ok_or_else(|| format!("node {node_name}: no {} label", keys::GPU_PRODUCT))?;
    let mem = labels
        .and_then(|l| l.get(keys::GPU_MEMORY_MIB))
        .and_then(|v| v.parse().ok());
    let model = gpu_model_from_labels(product, mem).ok_or_else(|| {
        format!("node {node_name}: GPU product {product:?} is not in the catalog")
    })?;
    let raw = annotation(&node.metadata, keys::GPU_METRICS).ok_or_else(|| {
        format!(
            "node {node_name}: no {} annotation (is the gpusched agent running there?)",
            keys::GPU_METRICS
        )
    })?;
    let summary: NodeSummary = serde_json::from_str(raw).map_err(|e| {
        format!(
            "node {node_name}: annotation {} is not valid: {e}",
            keys::GPU_METRICS
        )
    })?;
    let age = now_unix_s - summary.t;
    if age > max_age_s {
        return Err(format!("node {node_name}: GPU metrics are {age:.0} s old"));
    }
    let reading = |i: u8| {
        summary
            .gpus
            .iter()
            .find(|g| g.i == i as u32)
            .ok_or_else(|| format!("node {node_name}: the agent reports no GPU {i}"))
    };
    let g = reading(gpu)?;
    // A tensor-parallel pod computes on all its GPUs: mean busy, summed power.
    let all = crate::view::gpu_indices_from_pod(pod, gpu)?;
    let (mut util, mut power_w) = (g.util, g.power_w);
    if all.len() > 1 {
        let readings = all
            .iter()
            .map(|&i| reading(i))
            .collect::<Result<Vec<_>, _>>()?;
        let n = readings.len() as f64;
        util = readings
            .iter()
            .map(|r| r.util)
            .sum::<Option<f64>>()
            .map(|u| u / n);
        power_w = readings.iter().map(|r| r.power_w).sum::<Option<f64>>();
    }
    let total: u32 = pods
        .iter()
        .filter(|p| pod_is_active(p))
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node_name))
        .filter_map(|p| allocation_from_pod(p).ok().flatten())
        .filter(|(i, _)| *i == gpu)
        .map(|(_, a)| a.share_pct as u32)
        .sum();
    Ok(GpuShare {
        model,
        share_pct: alloc.share_pct,
        total_share_pct: total.max(alloc.share_pct as u32),
        util,
        power_w,
        gpus: all.len() as u8,
    })
}

// ---------------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------------

/// One ready pod of the service, as read this evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyPod {
    pub name: String,
    /// The scrape's metrics, or why there are none.
    pub metrics: Result<PodMetrics, String>,
    /// Requests served since the previous evaluation (None: no previous counter reading).
    pub served_in_window: Option<f64>,
    pub gpu: Result<GpuShare, String>,
}

/// Everything [`service_signals`] needs about one Deployment at one evaluation.
#[derive(Debug, Clone)]
pub struct SignalInput<'a> {
    pub t_s: f64,
    /// Seconds since the previous evaluation (the window of served, cost and efficiency).
    pub window_s: f64,
    pub replicas: u32,
    pub ready_replicas: u32,
    pub pods: Vec<ReadyPod>,
    pub catalog: &'a GpuCatalog,
    /// Energy price, $/kWh (the simulator's `costs.energy_usd_per_kwh`, default 0.13).
    pub energy_usd_per_kwh: f64,
}

/// The signals the autoscalers read, grouped by what they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// `queue_len` (the waiting gauge).
    Queue,
    /// `in_flight` (the running gauge).
    InFlight,
    /// Requests served in the window (the counter), for `cost_per_inference`.
    Served,
    /// Utilisation and power of the pods' GPUs (the agent), for `utilisation`,
    /// `efficiency_tops_per_w` and `cost_per_inference`.
    Gpu,
}

impl Signal {
    /// The signals a policy reads; it is not asked while one of them is unknown.
    pub fn needed_by(cfg: &AutoscalerConfig) -> Vec<Signal> {
        match cfg {
            AutoscalerConfig::None => vec![],
            AutoscalerConfig::Seeds(_) => vec![Signal::Queue, Signal::Served, Signal::Gpu],
            AutoscalerConfig::Hpa(h) => match h.metric {
                HpaMetric::QueuePerReplica => vec![Signal::Queue],
                HpaMetric::ConcurrencyPerReplica => vec![Signal::Queue, Signal::InFlight],
                HpaMetric::Utilisation => vec![Signal::Gpu],
            },
        }
    }
}

/// [`ServiceSignals`] plus what could not be measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSignals {
    pub signals: ServiceSignals,
    /// Unknown signals, each with the first reason found (a pod's failed scrape, a stale
    /// agent summary, …). Empty when everything was measured.
    pub missing: Vec<(Signal, String)>,
}

impl LiveSignals {
    /// The unknown signals among `needed`, as `signal: reason` lines.
    pub fn missing_among(&self, needed: &[Signal]) -> Vec<String> {
        self.missing
            .iter()
            .filter(|(s, _)| needed.contains(s))
            .map(|(s, why)| format!("{s:?}: {why}"))
            .collect()
    }
}

/// Live readings → the simulator's [`ServiceSignals`] (a pure function; see the module doc for
/// what each field measures or estimates).
pub fn service_signals(inp: &SignalInput) -> LiveSignals {
    let mut missing: Vec<(Signal, String)> = Vec::new();
    let mut miss = |s: Signal, why: String| {
        if !missing.iter().any(|(x, _)| *x == s) {
            missing.push((s, why));
        }
    };
    if inp.pods.is_empty() {
        let why = "no ready pod to read".to_string();
        for s in [Signal::Queue, Signal::InFlight, Signal::Served, Signal::Gpu] {
            miss(s, why.clone());
        }
    }
    let (mut queue, mut running, mut served) = (0.0, 0.0, 0.0);
    let (mut busy, mut tops, mut watts, mut gpu_usd_per_h) = (0.0, 0.0, 0.0, 0.0);
    for p in &inp.pods {
        match &p.metrics {
            Ok(m) => {
                match m.waiting {
                    Some(v) => queue += v.max(0.0),
                    None => miss(
                        Signal::Queue,
                        format!("pod {}: no waiting-requests metric", p.name),
                    ),
                }
                match m.running {
                    Some(v) => running += v.max(0.0),
                    None => miss(
                        Signal::InFlight,
                        format!("pod {}: no running-requests metric", p.name),
                    ),
                }
            }
            Err(e) => {
                miss(Signal::Queue, e.clone());
                miss(Signal::InFlight, e.clone());
                miss(Signal::Served, e.clone());
            }
        }
        match p.served_in_window {
            Some(v) => served += v,
            None if p.metrics.is_ok() => miss(
                Signal::Served,
                format!(
                    "pod {}: no previous reading of the served counter yet",
                    p.name
                ),
            ),
            None => {}
        }
        match &p.gpu {
            Ok(g) => match (g.util, g.power_w) {
                (Some(u), Some(w)) => {
                    let f = g.fraction();
                    let spec = inp.catalog.spec(g.model);
                    let u = u.clamp(0.0, 1.0);
                    let n = g.gpus.max(1) as f64;
                    busy += u;
                    tops += u * spec.seeds_tops * f * n;
                    watts += w.max(0.0) * f;
                    gpu_usd_per_h += g.share_pct as f64 / 100.0 * spec.price_per_hour * n;
                }
                _ => miss(
                    Signal::Gpu,
                    format!(
                        "pod {}: the agent has no utilisation/power for its GPU (MIG?)",
                        p.name
                    ),
                ),
            },
            Err(e) => miss(Signal::Gpu, e.clone()),
        }
    }
    let known = |s: Signal| !missing.iter().any(|(x, _)| *x == s);
    let gpu_known = known(Signal::Gpu);
    let window_h = inp.window_s / 3600.0;
    let cost = gpu_usd_per_h * window_h + watts * window_h / 1000.0 * inp.energy_usd_per_kwh;
    let signals = ServiceSignals {
        t_s: inp.t_s,
        replicas: inp.replicas,
        ready_replicas: inp.ready_replicas,
        queue_len: if known(Signal::Queue) {
            queue.round() as u64
        } else {
            0
        },
        in_flight: if known(Signal::InFlight) {
            running.round() as u64
        } else {
            0
        },
        efficiency_tops_per_w: match (gpu_known, watts > 0.0) {
            (false, _) => f64::NAN,
            (true, true) => tops / watts,
            (true, false) => 0.0,
        },
        cost_per_inference: if !gpu_known || !known(Signal::Served) {
            f64::NAN
        } else if served > 0.0 {
            cost / served
        } else {
            // The simulator's convention: nothing served costs infinitely much per inference.
            f64::INFINITY
        },
        utilisation: if gpu_known && !inp.pods.is_empty() {
            busy / inp.pods.len() as f64
        } else {
            f64::NAN
        },
    };
    missing.sort_by_key(|(s, _)| *s);
    LiveSignals { signals, missing }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VLLM: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B"} 7.0
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 120.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} 30.0
vllm:request_success_total{engine="0",finished_reason="abort",model_name="a \"quoted\" }name"} 1 1712000000000
python_gc_objects_collected_total{generation="0"} 1234.0
process_open_fds 17
weird{} NaN
"#;

    #[test]
    fn parses_vllm_names_with_colons_and_sums_series() {
        let s = parse_exposition(VLLM);
        assert_eq!(sum_of(&s, "vllm:num_requests_waiting"), Some(7.0));
        assert_eq!(sum_of(&s, "vllm:num_requests_running"), Some(3.0));
        assert_eq!(sum_of(&s, "vllm:request_success_total"), Some(151.0));
        assert_eq!(sum_of(&s, "process_open_fds"), Some(17.0));
        assert_eq!(sum_of(&s, "vllm:absent"), None);
        let quoted = s
            .iter()
            .find(|x| {
                x.labels
                    .iter()
                    .any(|(k, v)| k == "finished_reason" && v == "abort")
            })
            .unwrap();
        assert_eq!(quoted.labels[2].1, "a \"quoted\" }name");
        let m = PodMetrics::from_text(VLLM, &MetricNames::default());
        assert_eq!(
            m,
            PodMetrics {
                waiting: Some(7.0),
                running: Some(3.0),
                served_total: Some(151.0)
            }
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let s = parse_exposition("9bad 1\nok 2\nno_value\nunterminated{a=\"x 3\nx{a=\"1\"} 4\n");
        assert_eq!(
            s.iter()
                .map(|x| (x.name.as_str(), x.value))
                .collect::<Vec<_>>(),
            [("ok", 2.0), ("x", 4.0)]
        );
    }

    #[test]
    fn counter_increase_handles_resets() {
        assert_eq!(counter_increase(None, 5.0), None);
        assert_eq!(counter_increase(Some(100.0), 130.0), Some(30.0));
        assert_eq!(counter_increase(Some(100.0), 4.0), Some(4.0), "restart");
    }

    fn h100(share: u8, total: u32, util: f64, power: f64) -> GpuShare {
        GpuShare {
            model: GpuModel::H100_80GB,
            share_pct: share,
            total_share_pct: total,
            util: Some(util),
            power_w: Some(power),
            gpus: 1,
        }
    }

    fn pod(name: &str, w: f64, r: f64, served: Option<f64>, gpu: GpuShare) -> ReadyPod {
        ReadyPod {
            name: name.into(),
            metrics: Ok(PodMetrics {
                waiting: Some(w),
                running: Some(r),
                served_total: Some(0.0),
            }),
            served_in_window: served,
            gpu: Ok(gpu),
        }
    }

    #[test]
    fn signals_from_two_measured_pods() {
        let cat = GpuCatalog::default();
        let inp = SignalInput {
            t_s: 300.0,
            window_s: 30.0,
            replicas: 3,
            ready_replicas: 2,
            pods: vec![
                // Exclusive H100: 80 % busy at 500 W.
                pod("a", 4.0, 2.0, Some(60.0), h100(100, 100, 0.8, 500.0)),
                // Half of a shared H100 (another pod holds the other half): 60 % busy at 400 W.
                pod("b", 6.0, 1.0, Some(40.0), h100(50, 100, 0.6, 400.0)),
            ],
            catalog: &cat,
            energy_usd_per_kwh: 0.13,
        };
        let out = service_signals(&inp);
        assert!(out.missing.is_empty(), "{:?}", out.missing);
        let s = &out.signals;
        assert_eq!(
            (s.replicas, s.ready_replicas, s.queue_len, s.in_flight),
            (3, 2, 10, 3)
        );
        let tops = 0.8 * 1000.0 + 0.6 * 1000.0 * 0.5;
        let watts = 500.0 + 400.0 * 0.5;
        assert!((s.efficiency_tops_per_w - tops / watts).abs() < 1e-9);
        assert!((s.utilisation - 0.7).abs() < 1e-9);
        let usd = (1.0 + 0.5) * 4.0 * 30.0 / 3600.0 + watts * 30.0 / 3.6e6 * 0.13;
        assert!((s.cost_per_inference - usd / 100.0).abs() < 1e-12);
        assert!((s.queue_per_replica() - 5.0).abs() < 1e-12);
    }

    #[test]
    fn missing_data_is_marked_unknown_not_zero() {
        let cat = GpuCatalog::default();
        let mut p = pod("a", 1.0, 0.0, None, h100(100, 100, 0.5, 300.0));
        p.gpu = Err("node n1: no gpusched.io/gpu-metrics annotation".into());
        let failed = ReadyPod {
            name: "b".into(),
            metrics: Err("http://10.0.0.2:8000/metrics: connect: refused".into()),
            served_in_window: None,
            gpu: Ok(h100(100, 100, 0.5, 300.0)),
        };
        let inp = SignalInput {
            t_s: 0.0,
            window_s: 30.0,
            replicas: 2,
            ready_replicas: 2,
            pods: vec![p, failed],
            catalog: &cat,
            energy_usd_per_kwh: 0.13,
        };
        let out = service_signals(&inp);
        let kinds: Vec<Signal> = out.missing.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            kinds,
            [Signal::Queue, Signal::InFlight, Signal::Served, Signal::Gpu]
        );
        assert!(out.signals.efficiency_tops_per_w.is_nan());
        assert!(out.signals.cost_per_inference.is_nan());
        assert!(out.signals.utilisation.is_nan());
        let hpa_queue = AutoscalerConfig::Hpa(gpusched_policies::autoscale::HpaConfig {
            metric: HpaMetric::QueuePerReplica,
            ..Default::default()
        });
        let m = out.missing_among(&Signal::needed_by(&hpa_queue));
        assert_eq!(m.len(), 1);
        assert!(m[0].contains("refused"), "{m:?}");
        // Without ready pods nothing is known.
        let empty = service_signals(&SignalInput {
            pods: vec![],
            ..inp
        });
        assert_eq!(empty.missing.len(), 4);
    }

    #[test]
    fn scrape_url_from_annotations_or_the_only_port() {
        use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus};
        let mut p = Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("chat-0".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "vllm".into(),
                    ports: Some(vec![ContainerPort {
                        container_port: 8000,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some("10.1.2.3".into()),
                ..Default::default()
            }),
        };
        assert_eq!(scrape_url(&p).unwrap(), "http://10.1.2.3:8000/metrics");
        p.metadata.annotations = Some(
            [
                (keys::PROMETHEUS_PORT.to_string(), "9000".to_string()),
                (keys::METRICS_PATH.to_string(), "stats".to_string()),
            ]
            .into(),
        );
        assert_eq!(scrape_url(&p).unwrap(), "http://10.1.2.3:9000/stats");
        p.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(keys::METRICS_PORT.into(), "http".into());
        let e = scrape_url(&p).unwrap_err();
        assert!(
            e.contains("chat-0") && e.contains(keys::METRICS_PORT),
            "{e}"
        );
    }
}
