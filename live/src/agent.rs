//! `gpusched live agent`: the per-node GPU reader (a DaemonSet on GPU nodes).
//!
//! Every `interval` it reads every GPU through a [`GpuReader`], serves the readings as Prometheus
//! text on `/metrics`, and publishes the compact [`crate::nvml::NodeSummary`] as the node
//! annotation `gpusched.io/gpu-metrics`, which the controller's node watch already receives (no
//! extra watch, no metrics pipeline needed). The HTTP side is hyper's HTTP/1 server with two GET
//! paths.

use crate::apply::Action;
use crate::keys;
use crate::nvml::{GpuReader, NodeReading};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::RwLock;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Nvml(#[from] crate::nvml::NvmlError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("publishing the summary on node {node}: {message}")]
    Publish { node: String, message: String },
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One exported per-GPU metric: name, Prometheus type, help text, and how to read it.
type GpuMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::nvml::GpuReading) -> Option<f64>,
);

/// Prometheus text exposition (version 0.0.4) of one reading.
pub fn metrics_text(r: &NodeReading, node: &str) -> String {
    let mut o = String::new();
    let metrics: [GpuMetric; 8] = [
        (
            "gpusched_gpu_utilisation_ratio",
            "gauge",
            "Fraction of the last sample period a kernel ran (NVML GPU busy)",
            |g| g.utilisation_pct.map(|u| u as f64 / 100.0),
        ),
        (
            "gpusched_gpu_memory_used_bytes",
            "gauge",
            "Device memory in use",
            |g| Some(g.memory_used_mib as f64 * 1048576.0),
        ),
        (
            "gpusched_gpu_memory_total_bytes",
            "gauge",
            "Device memory installed",
            |g| Some(g.memory_total_mib as f64 * 1048576.0),
        ),
        (
            "gpusched_gpu_power_watts",
            "gauge",
            "Board power draw",
            |g| g.power_w,
        ),
        (
            "gpusched_gpu_energy_joules_total",
            "counter",
            "Energy since the driver loaded",
            |g| g.energy_j,
        ),
        (
            "gpusched_gpu_temperature_celsius",
            "gauge",
            "GPU die temperature",
            |g| g.temperature_c.map(f64::from),
        ),
        (
            "gpusched_gpu_mig_enabled",
            "gauge",
            "1 when MIG mode is on",
            |g| Some(if g.mig_enabled { 1.0 } else { 0.0 }),
        ),
        (
            "gpusched_gpu_processes",
            "gauge",
            "Compute processes running on the GPU",
            |g| Some(g.processes.len() as f64),
        ),
    ];
    for (name, kind, help, f) in metrics {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for g in &r.gpus {
            if let Some(v) = f(g) {
                let _ = writeln!(
                    o,
                    "{name}{{node=\"{}\",gpu=\"{}\",uuid=\"{}\",model=\"{}\"}} {v}",
                    esc(node),
                    g.index,
                    esc(&g.uuid),
                    esc(&g.name)
                );
            }
        }
    }
    let _ = writeln!(o, "# HELP gpusched_gpu_mig_instances MIG instances configured\n# TYPE gpusched_gpu_mig_instances gauge");
    for g in &r.gpus {
        let _ = writeln!(
            o,
            "gpusched_gpu_mig_instances{{node=\"{}\",gpu=\"{}\"}} {}",
            esc(node),
            g.index,
            g.mig_instances.len()
        );
    }
    let _ = writeln!(o, "# HELP gpusched_gpu_reading_timestamp_seconds Unix time of the last reading\n# TYPE gpusched_gpu_reading_timestamp_seconds gauge");
    let _ = writeln!(
        o,
        "gpusched_gpu_reading_timestamp_seconds{{node=\"{}\"}} {}",
        esc(node),
        r.t_unix_s
    );
    o
}

/// Serves `/metrics` (the latest text) and `/healthz` with hyper until the task is dropped.
pub async fn serve(listener: TcpListener, latest: Arc<RwLock<String>>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let latest = latest.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let latest = latest.clone();
                async move {
                    let (status, ctype, body) = match (req.method(), req.uri().path()) {
                        (&hyper::Method::GET, "/metrics") => {
                            let text = latest.read().await.clone();
                            if text.is_empty() {
                                (503, "text/plain", "no reading yet\n".to_string())
                            } else {
                                (200, "text/plain; version=0.0.4", text)
                            }
                        }
                        (&hyper::Method::GET, "/healthz") => (200, "text/plain", "ok\n".into()),
                        _ => (404, "text/plain", "not found\n".into()),
                    };
                    hyper::Response::builder()
                        .status(status)
                        .header("content-type", ctype)
                        .body(Full::new(Bytes::from(body)))
                }
            });
            // A slow or silent client cannot hold a connection for ever.
            let conn = hyper::server::conn::http1::Builder::new()
                .header_read_timeout(Duration::from_secs(5))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(hyper_util::rt::TokioIo::new(sock), svc);
            let _ = conn.await;
        });
    }
}

/// The node annotation patch that publishes a reading's summary.
pub fn publish_action(node: &str, r: &NodeReading) -> Action {
    Action::PatchNodeMeta {
        node: node.to_string(),
        labels: Default::default(),
        annotations: [(
            keys::GPU_METRICS.to_string(),
            Some(serde_json::to_string(&r.summary()).unwrap_or_default()),
        )]
        .into(),
    }
}

pub fn now_unix_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub struct AgentOptions {
    pub node: String,
    pub interval: Duration,
    /// Stop after this many readings (tests); `None` runs forever.
    pub max_readings: Option<u64>,
}

/// The agent loop: read, update `/metrics`, publish. A failed publish is logged and retried at the
/// next reading (the metrics endpoint keeps working without the API server).
pub async fn run<R: GpuReader>(
    reader: &mut R,
    opts: &AgentOptions,
    latest: Arc<RwLock<String>>,
    client: Option<kube::Client>,
) -> Result<u64, AgentError> {
    let mut tick = tokio::time::interval(opts.interval);
    let mut done = 0;
    loop {
        tick.tick().await;
        let reading = reader.read(now_unix_s())?;
        *latest.write().await = metrics_text(&reading, &opts.node);
        if let Some(c) = &client {
            let req = publish_action(&opts.node, &reading)
                .to_request()
                .map_err(|e| AgentError::Publish {
                    node: opts.node.clone(),
                    message: e.to_string(),
                })?;
            if let Err(e) = c.request::<serde_json::Value>(req).await {
                eprintln!(
                    "warning: publishing {} on node {}: {e}",
                    keys::GPU_METRICS,
                    opts.node
                );
            }
        }
        done += 1;
        if opts.max_readings.is_some_and(|m| done >= m) {
            return Ok(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvml::FakeReader;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn prometheus_text_has_every_reading() {
        let r = FakeReader::h100().read(1700000000.0).unwrap();
        let t = metrics_text(&r, "h100-1");
        for needle in [
            "# TYPE gpusched_gpu_utilisation_ratio gauge",
            "gpusched_gpu_utilisation_ratio{node=\"h100-1\",gpu=\"0\",uuid=\"GPU-00000000-0000-0000-0000-000000000000\",model=\"NVIDIA H100 80GB HBM3\"} 0.37",
            "gpusched_gpu_power_watts{node=\"h100-1\"",
            "# TYPE gpusched_gpu_energy_joules_total counter",
            "gpusched_gpu_processes{node=\"h100-1\",gpu=\"0\"",
            "gpusched_gpu_reading_timestamp_seconds{node=\"h100-1\"} 1700000000",
        ] {
            assert!(t.contains(needle), "missing {needle} in\n{t}");
        }
    }

    #[tokio::test]
    async fn agent_serves_metrics_over_http_with_a_fake_gpu() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let latest = Arc::new(RwLock::new(String::new()));
        let server = tokio::spawn(serve(listener, latest.clone()));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/metrics").await.starts_with("HTTP/1.1 503"));
        let mut fake = FakeReader::h100();
        let opts = AgentOptions {
            node: "h100-1".into(),
            interval: Duration::from_millis(10),
            max_readings: Some(2),
        };
        assert_eq!(
            run(&mut fake, &opts, latest.clone(), None).await.unwrap(),
            2
        );
        assert_eq!(fake.reads, 2);
        let m = get("/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
        assert!(m.contains("gpusched_gpu_memory_total_bytes"));
        assert!(get("/healthz").await.ends_with("ok\n"));
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }

    #[tokio::test]
    async fn agent_without_a_gpu_stops_with_a_clear_error() {
        let mut none = FakeReader::new(vec![]);
        let opts = AgentOptions {
            node: "n".into(),
            interval: Duration::from_millis(1),
            max_readings: None,
        };
        let e = run(&mut none, &opts, Arc::new(RwLock::new(String::new())), None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no GPU"), "{e}");
    }
}
