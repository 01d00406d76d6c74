//! `gpusched live agent`: the per-node GPU reader (a DaemonSet on GPU nodes).
//!
//! Every `interval` it reads every GPU through a [`GpuReader`], serves the readings on `/metrics`
//! (the Prometheus text format, encoded by prometheus-client), and publishes the
//! compact [`crate::nvml::NodeSummary`] as the node annotation `gpusched.io/gpu-metrics`, which
//! the controller's node watch already receives (no extra watch, no metrics pipeline needed). The HTTP side is hyper's HTTP/1 server with two GET
//! paths.

use crate::apply::Action;
use crate::keys;
use crate::nvml::{GpuReader, NodeReading};
use prometheus_client::encoding::prometheus_text::{encode, CONTENT_TYPE};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
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

/// Labels of a per-GPU series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuLabels {
    node: String,
    gpu: String,
    uuid: String,
    model: String,
}

/// Labels of the per-GPU MIG count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MigLabels {
    node: String,
    gpu: String,
}

/// Labels of the node-wide series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

/// A float gauge (prometheus-client stores its bits in an `AtomicU64`).
type F64Gauge = Gauge<f64, AtomicU64>;

/// One exported per-GPU gauge: name, help text, and how to read it.
type GpuGauge = (
    &'static str,
    &'static str,
    fn(&crate::nvml::GpuReading) -> Option<f64>,
);

/// The content type of [`metrics_text`]: the Prometheus text format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = CONTENT_TYPE;

/// One reading in the Prometheus text exposition format (version 0.0.4), encoded by
/// prometheus-client from a registry built for the reading (it escapes label values and
/// formats floats as Prometheus parses them).
pub fn metrics_text(r: &NodeReading, node: &str) -> String {
    let mut registry = Registry::default();
    let gpu_labels = |g: &crate::nvml::GpuReading| GpuLabels {
        node: node.to_string(),
        gpu: g.index.to_string(),
        uuid: g.uuid.clone(),
        model: g.name.clone(),
    };
    let gauges: [GpuGauge; 7] = [
        (
            "gpusched_gpu_utilisation_ratio",
            "Fraction of the last sample period a kernel ran (NVML GPU busy)",
            |g| g.utilisation_pct.map(|u| u as f64 / 100.0),
        ),
        (
            "gpusched_gpu_memory_used_bytes",
            "Device memory in use",
            |g| Some(g.memory_used_mib as f64 * 1048576.0),
        ),
        (
            "gpusched_gpu_memory_total_bytes",
            "Device memory installed",
            |g| Some(g.memory_total_mib as f64 * 1048576.0),
        ),
        ("gpusched_gpu_power_watts", "Board power draw", |g| {
            g.power_w
        }),
        (
            "gpusched_gpu_temperature_celsius",
            "GPU die temperature",
            |g| g.temperature_c.map(f64::from),
        ),
        ("gpusched_gpu_mig_enabled", "1 when MIG mode is on", |g| {
            Some(if g.mig_enabled { 1.0 } else { 0.0 })
        }),
        (
            "gpusched_gpu_processes",
            "Compute processes running on the GPU",
            |g| Some(g.processes.len() as f64),
        ),
    ];
    for (name, help, read) in gauges {
        let family = Family::<GpuLabels, F64Gauge>::default();
        for g in &r.gpus {
            if let Some(v) = read(g) {
                family.get_or_create(&gpu_labels(g)).set(v);
            }
        }
        registry.register(name, help, family);
    }
    // A counter family is registered without `_total`; its samples carry it.
    let energy = Family::<GpuLabels, Counter<f64, AtomicU64>>::default();
    for g in &r.gpus {
        if let Some(j) = g.energy_j {
            energy.get_or_create(&gpu_labels(g)).inc_by(j);
        }
    }
    registry.register(
        "gpusched_gpu_energy_joules",
        "Energy since the driver loaded",
        energy,
    );
    let mig = Family::<MigLabels, Gauge>::default();
    for g in &r.gpus {
        mig.get_or_create(&MigLabels {
            node: node.to_string(),
            gpu: g.index.to_string(),
        })
        .set(g.mig_instances.len() as i64);
    }
    registry.register(
        "gpusched_gpu_mig_instances",
        "MIG instances configured",
        mig,
    );
    let stamp = Family::<NodeLabels, F64Gauge>::default();
    stamp
        .get_or_create(&NodeLabels {
            node: node.to_string(),
        })
        .set(r.t_unix_s);
    registry.register(
        "gpusched_gpu_reading_timestamp_seconds",
        "Unix time of the last reading",
        stamp,
    );
    let mut o = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut o, &registry);
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
                                (200, METRICS_CONTENT_TYPE, text)
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
                tracing::warn!(
                    annotation = keys::GPU_METRICS,
                    node = %opts.node,
                    error = %e,
                    "publishing the GPU summary failed; retried at the next reading"
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
            "gpusched_gpu_energy_joules_total{node=\"h100-1\",gpu=\"0\"",
            "gpusched_gpu_processes{node=\"h100-1\",gpu=\"0\"",
            "# TYPE gpusched_gpu_mig_instances gauge",
            "gpusched_gpu_mig_instances{node=\"h100-1\",gpu=\"0\"} 0",
            "gpusched_gpu_reading_timestamp_seconds{node=\"h100-1\"} 1700000000",
        ] {
            assert!(t.contains(needle), "missing {needle} in\n{t}");
        }
    }

    /// The exposition read back by a scraper: every series the hand-written exposition had,
    /// with the same names, labels and values.
    #[test]
    fn metrics_scrape_back_with_the_same_names_labels_and_values() {
        use crate::signals::parse_exposition;
        let r = FakeReader::h100().read(1700000000.0).unwrap();
        let samples = parse_exposition(&metrics_text(&r, "h1\"x"));
        let g = &r.gpus[0];
        let find = |name: &str| {
            samples
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no {name} in {samples:?}"))
        };
        let gpu_labels = vec![
            ("node".to_string(), "h1\"x".to_string()),
            ("gpu".to_string(), g.index.to_string()),
            ("uuid".to_string(), g.uuid.clone()),
            ("model".to_string(), g.name.clone()),
        ];
        for (name, want) in [
            (
                "gpusched_gpu_utilisation_ratio",
                g.utilisation_pct.map(|u| u as f64 / 100.0),
            ),
            (
                "gpusched_gpu_memory_used_bytes",
                Some(g.memory_used_mib as f64 * 1048576.0),
            ),
            (
                "gpusched_gpu_memory_total_bytes",
                Some(g.memory_total_mib as f64 * 1048576.0),
            ),
            ("gpusched_gpu_power_watts", g.power_w),
            ("gpusched_gpu_energy_joules_total", g.energy_j),
            (
                "gpusched_gpu_temperature_celsius",
                g.temperature_c.map(f64::from),
            ),
            ("gpusched_gpu_mig_enabled", Some(0.0)),
            ("gpusched_gpu_processes", Some(g.processes.len() as f64)),
        ] {
            let s = find(name);
            assert_eq!(s.labels, gpu_labels, "{name}");
            assert_eq!(Some(s.value), want, "{name}");
        }
        let m = find("gpusched_gpu_mig_instances");
        assert_eq!(m.labels.len(), 2);
        assert_eq!(m.value, g.mig_instances.len() as f64);
        let t = find("gpusched_gpu_reading_timestamp_seconds");
        assert_eq!(t.labels, vec![("node".to_string(), "h1\"x".to_string())]);
        assert_eq!(t.value, 1700000000.0);
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
        assert!(
            m.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{m}"
        );
        let body = &m[m.find("\r\n\r\n").unwrap() + 4..];
        let samples = crate::signals::parse_exposition(body);
        assert!(
            samples
                .iter()
                .any(|s| s.name == "gpusched_gpu_memory_total_bytes" && s.value > 0.0),
            "{body}"
        );

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
