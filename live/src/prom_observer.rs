//! The QPS gate's and the canary watch's readings from Prometheus: an [`Observer`] for
//! [`crate::rollout_exec`] that reads the Prometheus HTTP API (`/api/v1/query`,
//! `/api/v1/query_range`, JSON, plain HTTP/1.1 with hyper) with configurable PromQL.
//!
//! What it reads (defaults: vLLM's OpenAI server and NVIDIA's DCGM exporter; `$window` in a
//! query is replaced by a range such as `300s`):
//!
//! | reading | default query | window |
//! |---|---|---|
//! | QPS samples (gate) | `sum(rate(vllm:request_success_total[$window]))` over the last 15 minutes with `query_range` at the tick step | the rate window (default 120 s, at least the step) |
//! | error rate (gate, watch) | `(sum(rate(http_requests_total{handler=~"/v1/.*",status="5xx"}[$window])) or vector(0)) / clamp_min(sum(rate(http_requests_total{handler=~"/v1/.*"}[$window])), 1e-9)` | gate: 5 min (the gate's definition); watch: the watch |
//! | p99 ms (watch) | `histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[$window]))) * 1000` | the watch |
//! | GPU utilisation 0..=1 (gate) | `avg(avg_over_time(DCGM_FI_DEV_GPU_UTIL[$window])) / 100` | 5 min |
//! | free capacity 0..=1 (gate) | the cluster view (unallocated share of every GPU, as the simulator computes it), or a query, or a fixed value | — |
//!
//! Each query must return one number (a one-series vector or a scalar): aggregate it
//! (`sum(…)`, `avg(…)`). The error-rate default counts a 5xx of the OpenAI endpoints
//! (`http_requests_total` from vLLM's FastAPI instrumentator, `status` grouped as `5xx`) over
//! all of them, and reads 0 with no request at all, as the simulator does.
//!
//! **Failures are explicit.** Prometheus unreachable, an HTTP or PromQL error, an empty result,
//! several series, a NaN or infinite value, a QPS series whose newest point is older than two
//! steps: the reading is *missing*, never zero.
//! * The gate: a missing reading is passed to the gate as NaN, and the gate
//!   ([`gpusched_policies::rollout::gate::evaluate`]) never opens on a NaN (failed check
//!   `unreadable`, "no valid reading of …"): the rollout is *held*, nothing changed. The
//!   Prometheus error itself is logged and kept ([`PrometheusObserver::failures`]).
//! * The watch: a missing reading is an error; the machine rolls the rollout back.
//! * [`PrometheusObserver::preflight`] reads every query a rollout will need before it starts,
//!   so an unreachable Prometheus stops a watched rollout before its first node is touched.
//!
//! The watch waits its `seconds` in real time (tokio time: paused in tests) and then reads the
//! window that just passed.

use crate::rollout_exec::Observer;
use gpusched_policies::rollout::machine::GateSample;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;

/// Replaced in every query by the range it is read over (`300s`).
pub const WINDOW: &str = "$window";

/// The PromQL of each reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromQueries {
    /// Requests per second (one series).
    pub qps: String,
    /// Failed ÷ arrived, 0..=1.
    pub error_rate: String,
    /// The 99th percentile of the request latency, ms.
    pub p99_ms: String,
    /// Mean GPU utilisation, 0..=1.
    pub gpu_util: String,
    /// Unallocated fraction of the GPU capacity, 0..=1 (`None`: from the cluster view).
    pub free_capacity: Option<String>,
}

impl Default for PromQueries {
    fn default() -> Self {
        Self {
            qps: "sum(rate(vllm:request_success_total[$window]))".into(),
            error_rate: "(sum(rate(http_requests_total{handler=~\"/v1/.*\",status=\"5xx\"}[$window])) or vector(0)) / clamp_min(sum(rate(http_requests_total{handler=~\"/v1/.*\"}[$window])), 1e-9)".into(),
            p99_ms: "histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[$window]))) * 1000".into(),
            gpu_util: "avg(avg_over_time(DCGM_FI_DEV_GPU_UTIL[$window])) / 100".into(),
            free_capacity: None,
        }
    }
}

/// Where the gate's free capacity comes from when no query is configured.
#[derive(Clone)]
pub enum FreeCapacity {
    /// A value the caller supplies (0..=1).
    Fixed(f64),
    /// The cluster view, read when the gate asks: Σ over every GPU of its unallocated share ÷
    /// the GPUs (the simulator's definition).
    Cluster(kube::Client),
}

/// Waiting at a closed gate instead of holding at once: the executor asks the gate again every
/// `retry` (the machine evaluates it, with its own config and class) until it opens or the
/// hold has lasted `max_wait`; then the run ends `Held`. The rollout keeps its machine while it
/// waits, so batches already done stay done — the simulator's rollout waits at the gate the
/// same way, tick by tick.
#[derive(Debug, Clone, PartialEq)]
pub struct GateWait {
    pub max_wait: Duration,
    pub retry: Duration,
}

/// Reads the gate and the watch from Prometheus.
pub struct PrometheusObserver {
    /// `http://host:port` with an optional path prefix (no trailing slash needed).
    pub base_url: String,
    pub queries: PromQueries,
    /// The gate's sample step, s (the simulator's tick: 30 s).
    pub step_s: f64,
    /// The shortest range a rate is read over, s (≥ 2 scrape intervals; ≥ the step).
    pub rate_window_s: f64,
    /// Per HTTP request.
    pub timeout: Duration,
    pub free_capacity: FreeCapacity,
    pub gate_wait: Option<GateWait>,
    failures: Mutex<Vec<String>>,
}

/// The gate's error rate and GPU utilisation are read over 5 minutes (the gate's definition).
const GATE_WINDOW_S: f64 = 300.0;
/// The gate's QPS history: 15 minutes.
const HISTORY_S: f64 = 900.0;
/// Caps a Prometheus answer (a 15-minute range of one series is a few KiB).
const MAX_BODY: usize = 8 << 20;

impl PrometheusObserver {
    pub fn new(base_url: &str, free_capacity: FreeCapacity) -> Result<Self, String> {
        let base = base_url.trim_end_matches('/').to_string();
        let uri: http::Uri = base
            .parse()
            .map_err(|e| format!("--prometheus-url {base_url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!(
                "--prometheus-url {base_url:?}: must be http://host[:port][/prefix] (https is not supported; reach Prometheus through its in-cluster Service or a port-forward)"
            ));
        }
        Ok(Self {
            base_url: base,
            queries: PromQueries::default(),
            step_s: 30.0,
            rate_window_s: 120.0,
            timeout: Duration::from_secs(10),
            free_capacity,
            gate_wait: None,
            failures: Mutex::new(Vec::new()),
        })
    }

    /// Every reading that failed so far, with Prometheus' own words.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    fn fail(&self, what: &str, e: &str) {
        let msg = format!("{what}: {e}");
        tracing::warn!(reading = what, error = %e, "prometheus reading missing");
        if let Ok(mut f) = self.failures.lock() {
            f.push(msg);
        }
    }

    fn window(&self, seconds: f64) -> String {
        format!(
            "{}s",
            seconds.max(self.rate_window_s).max(1.0).ceil() as u64
        )
    }

    /// One number now: `query` with `$window` = `window_s`.
    pub async fn instant(&self, query: &str, window_s: f64, now: f64) -> Result<f64, String> {
        let q = query.replace(WINDOW, &self.window(window_s));
        let url = format!(
            "{}/api/v1/query?query={}&time={}",
            self.base_url,
            encode(&q),
            fmt_time(now)
        );
        let data = self.get(&url).await?;
        let v = match data["resultType"].as_str() {
            Some("scalar") => point(&data["result"])?.1,
            Some("vector") => {
                let r = data["result"].as_array().cloned().unwrap_or_default();
                match r.len() {
                    0 => return Err(format!("`{q}` returned no series (is the metric scraped?)")),
                    1 => point(&r[0]["value"])?.1,
                    n => {
                        return Err(format!(
                            "`{q}` returned {n} series; aggregate it to one (sum(…), avg(…))"
                        ))
                    }
                }
            }
            other => return Err(format!("`{q}`: unexpected result type {other:?}")),
        };
        if !v.is_finite() {
            return Err(format!(
                "`{q}` is {v} (no requests in the window, or a division by zero)"
            ));
        }
        Ok(v)
    }

    /// The series of `query` from `start` to `end` at `step_s`, oldest first.
    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
    ) -> Result<Vec<(f64, f64)>, String> {
        let q = query.replace(WINDOW, &self.window(self.step_s));
        let url = format!(
            "{}/api/v1/query_range?query={}&start={}&end={}&step={}",
            self.base_url,
            encode(&q),
            fmt_time(start),
            fmt_time(end),
            self.step_s
        );
        let data = self.get(&url).await?;
        if data["resultType"].as_str() != Some("matrix") {
            return Err(format!(
                "`{q}`: unexpected result type {:?}",
                data["resultType"]
            ));
        }
        let r = data["result"].as_array().cloned().unwrap_or_default();
        let series = match r.len() {
            0 => return Err(format!("`{q}` returned no series (is the metric scraped?)")),
            1 => &r[0],
            n => {
                return Err(format!(
                    "`{q}` returned {n} series; aggregate it to one (sum(…))"
                ))
            }
        };
        let mut out = Vec::new();
        for p in series["values"].as_array().into_iter().flatten() {
            let (t, v) = point(p)?;
            if !v.is_finite() {
                return Err(format!("`{q}` is {v} at {t}"));
            }
            out.push((t, v));
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        match out.last() {
            None => Err(format!("`{q}` returned no samples")),
            Some(&(t, _)) if t < end - 2.0 * self.step_s => Err(format!(
                "`{q}`: the newest sample is {:.0} s old (scraping stopped?)",
                end - t
            )),
            Some(_) => Ok(out),
        }
    }

    async fn get(&self, url: &str) -> Result<Value, String> {
        let (status, body) = match tokio::time::timeout(self.timeout, http_get(url)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(format!(
                    "Prometheus at {} gave no answer within {:?}",
                    self.base_url, self.timeout
                ))
            }
        };
        let v: Value = serde_json::from_slice(&body).map_err(|_| {
            format!(
                "Prometheus at {} answered HTTP {status} with a body that is not JSON",
                self.base_url
            )
        })?;
        if v["status"].as_str() != Some("success") {
            return Err(format!(
                "Prometheus answered HTTP {status}: {} {}",
                v["errorType"].as_str().unwrap_or(""),
                v["error"].as_str().unwrap_or("(no error message)")
            ));
        }
        Ok(v["data"].clone())
    }

    async fn free_capacity_now(&self, now: f64) -> Result<f64, String> {
        if let Some(q) = &self.queries.free_capacity {
            return self.instant(q, GATE_WINDOW_S, now).await;
        }
        match &self.free_capacity {
            FreeCapacity::Fixed(v) => Ok(*v),
            FreeCapacity::Cluster(c) => cluster_free_capacity(c, now).await,
        }
    }

    /// One reading of everything the gate needs; a missing value is NaN (the gate stays shut).
    pub async fn read_gate(&self, now: f64) -> GateSample {
        let (qps, err, util, free) = tokio::join!(
            self.range(&self.queries.qps, now - HISTORY_S, now),
            self.instant(&self.queries.error_rate, GATE_WINDOW_S, now),
            self.instant(&self.queries.gpu_util, GATE_WINDOW_S, now),
            self.free_capacity_now(now),
        );
        let num = |what: &str, r: Result<f64, String>| {
            r.unwrap_or_else(|e| {
                self.fail(what, &e);
                f64::NAN
            })
        };
        let error_rate = num("gate error rate", err);
        let gpu_util = num("gate GPU utilisation", util);
        let free_capacity = num("gate free capacity", free);
        let samples = qps.unwrap_or_else(|e| {
            self.fail("gate QPS samples", &e);
            vec![(now, f64::NAN)]
        });
        GateSample {
            now_s: now,
            samples,
            error_rate,
            gpu_util,
            free_capacity,
        }
    }

    /// Reads every query a rollout will need once (`Err` lists each that failed): a rollout
    /// is not started on a Prometheus it cannot read.
    pub async fn preflight(&self, gate: bool, watch: bool) -> Result<(), String> {
        let now = crate::agent::now_unix_s();
        let mut errs = Vec::new();
        if gate {
            let s = self.read_gate(now).await;
            let missing = [
                ("QPS", s.samples.iter().any(|p| !p.1.is_finite())),
                ("error rate", !s.error_rate.is_finite()),
                ("GPU utilisation", !s.gpu_util.is_finite()),
                ("free capacity", !s.free_capacity.is_finite()),
            ];
            if missing.iter().any(|m| m.1) {
                errs.extend(self.failures());
            }
        }
        if watch {
            let w = GATE_WINDOW_S.max(self.rate_window_s);
            let (e, p) = tokio::join!(
                self.instant(&self.queries.error_rate, w, now),
                self.instant(&self.queries.p99_ms, w, now)
            );
            for (what, r) in [("watch error rate", e), ("watch p99", p)] {
                if let Err(x) = r {
                    self.fail(what, &x);
                    errs.push(format!("{what}: {x}"));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    }
}

impl Observer for PrometheusObserver {
    async fn gate_sample(&self) -> GateSample {
        self.read_gate(crate::agent::now_unix_s()).await
    }

    async fn wait_at_closed_gate(&self, held_for: Duration) -> bool {
        let Some(w) = &self.gate_wait else {
            return false;
        };
        if held_for + w.retry > w.max_wait {
            return false;
        }
        tracing::info!(
            held_s = held_for.as_secs_f64(),
            retry_s = w.retry.as_secs_f64(),
            "QPS gate closed; waiting"
        );
        tokio::time::sleep(w.retry).await;
        true
    }

    async fn watch(&self, seconds: f64) -> Result<(f64, f64), String> {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        tracing::info!(seconds, "watching the service's health");
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        let now = crate::agent::now_unix_s();
        let (e, p) = tokio::join!(
            self.instant(&self.queries.error_rate, seconds, now),
            self.instant(&self.queries.p99_ms, seconds, now)
        );
        match (e, p) {
            (Ok(e), Ok(p)) => {
                tracing::info!(error_rate = e, p99_ms = p, "watched window");
                Ok((e, p))
            }
            (e, p) => {
                let mut why = Vec::new();
                for (what, r) in [("error rate", e), ("p99", p)] {
                    if let Err(x) = r {
                        self.fail(&format!("watch {what}"), &x);
                        why.push(format!("{what}: {x}"));
                    }
                }
                Err(format!(
                    "cannot read the service's health from Prometheus ({}); a rollout that cannot be watched is rolled back",
                    why.join("; ")
                ))
            }
        }
    }
}

/// The gate's free capacity from the cluster as it is now (nodes and pods, the live view).
pub async fn cluster_free_capacity(c: &kube::Client, now: f64) -> Result<f64, String> {
    use k8s_openapi::api::core::v1::{Node, Pod};
    let lp = kube::api::ListParams::default();
    let nodes = kube::Api::<Node>::all(c.clone())
        .list(&lp)
        .await
        .map_err(|e| format!("listing nodes: {e}"))?
        .items;
    let pods = kube::Api::<Pod>::all(c.clone())
        .list(&lp)
        .await
        .map_err(|e| format!("listing pods: {e}"))?
        .items;
    let view = crate::view::build_view(&nodes, &pods, &Default::default(), now);
    Ok(free_capacity_of(&view.nodes))
}

/// Σ over every GPU of its unallocated share ÷ the GPUs (1 without GPUs), as the simulator's
/// gate computes it.
pub fn free_capacity_of(nodes: &[gpusched_policies::view::NodeView]) -> f64 {
    let (mut free, mut n) = (0.0, 0.0);
    for g in nodes.iter().flat_map(|n| &n.gpus) {
        free += g.share_free_pct() as f64 / 100.0;
        n += 1.0;
    }
    if n > 0.0 {
        free / n
    } else {
        1.0
    }
}

fn fmt_time(t: f64) -> String {
    format!("{t:.3}")
}

/// `[t, "v"]` → (t, v); Prometheus writes values as strings ("NaN", "+Inf" included).
fn point(p: &Value) -> Result<(f64, f64), String> {
    let t = p[0].as_f64();
    let v = p[1].as_str().map(|s| match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        s => s.parse::<f64>(),
    });
    match (t, v) {
        (Some(t), Some(Ok(v))) => Ok((t, v)),
        _ => Err(format!("not a Prometheus sample: {p}")),
    }
}

/// Percent-encodes a query parameter (everything but RFC 3986's unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Plain HTTP/1.1 GET: (status, body), the body read whatever the status (Prometheus explains
/// its errors in JSON).
async fn http_get(url: &str) -> Result<(http::StatusCode, Vec<u8>), String> {
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let host_port = format!("{host}:{port}");
    let tcp = tokio::net::TcpStream::connect(&host_port)
        .await
        .map_err(|e| format!("Prometheus at {host_port} is unreachable: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(|e| format!("{host_port}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let req = http::Request::get(path)
        .header(http::header::HOST, host_port.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(String::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("{host_port}: {e}"))?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("{host_port}: reading the answer: {e}"))?
        .to_bytes();
    Ok((status, body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            encode("sum(rate(vllm:x{a=\"b\"}[2m])) / 100"),
            "sum%28rate%28vllm%3Ax%7Ba%3D%22b%22%7D%5B2m%5D%29%29%20%2F%20100"
        );
    }

    #[test]
    fn samples_parse_prometheus_values() {
        let p = |s: &str| point(&serde_json::from_str(s).unwrap());
        assert_eq!(p(r#"[1700000000.5, "3.25"]"#), Ok((1_700_000_000.5, 3.25)));
        assert!(p(r#"[1, "NaN"]"#).unwrap().1.is_nan());
        assert_eq!(p(r#"[1, "+Inf"]"#).unwrap().1, f64::INFINITY);
        assert!(p(r#"[1, 2]"#).is_err());
    }

    #[test]
    fn only_plain_http_urls_are_accepted() {
        let ok = |u: &str| PrometheusObserver::new(u, FreeCapacity::Fixed(0.5)).map(|o| o.base_url);
        assert_eq!(
            ok("http://prometheus.monitoring:9090/").unwrap(),
            "http://prometheus.monitoring:9090"
        );
        assert_eq!(ok("http://h:9090/prom").unwrap(), "http://h:9090/prom");
        assert!(ok("https://h:9090").unwrap_err().contains("https"));
        assert!(ok("prometheus:9090").is_err());
    }

    #[test]
    fn windows_never_go_below_the_rate_window() {
        let o = PrometheusObserver::new("http://h:1", FreeCapacity::Fixed(0.5)).unwrap();
        assert_eq!(o.window(0.05), "120s");
        assert_eq!(o.window(3600.0), "3600s");
        assert_eq!(o.window(300.5), "301s");
    }
}
