//! `gpusched live rollout` end to end without a cluster: the rollout planned from the fake API
//! server's nodes and pods (`support/apiserver.rs`), run by the engine crate's rollout machine
//! (`gpusched_live::rollout_exec`), with the gate's traffic and the canary's health read by
//! `PrometheusObserver` from a fake Prometheus HTTP API on 127.0.0.1 answering the default
//! queries with scripted series.
//!
//! Busy traffic holds the gate and nothing is written; quiet traffic and a healthy canary
//! relabel every node of the pool (and no other); an unhealthy canary is rolled back; an
//! unreachable Prometheus, or a metric it does not have, starts nothing and says why; a watch
//! that loses Prometheus rolls back; the dry run sends nothing but GETs and prints every change.

mod support;

use bytes::Bytes;
use clap::Parser;
use gpusched_live::apply::KubeApplier;
use gpusched_live::cmd::{rollout_request, CmdError, RolloutArgs};
use gpusched_live::dryrun::DryRunApplier;
use gpusched_live::keys;
use gpusched_live::pool_rollout::{self, Request, RolloutResult, Targets};
use gpusched_live::prom_observer::{FreeCapacity, GateWait, PrometheusObserver};
use gpusched_live::rollback::{RolloutOutcome, RolloutTiming};
use gpusched_live::rollout_exec;
use gpusched_live::testutil::{gpu_node, gpusched_pod};
use gpusched_policies::rollout::machine::{Command, MachineConfig, WatchKind};
use gpusched_policies::rollout::plan::plan;
use gpusched_policies::rollout::{
    CircuitBreaker, GateConfig, Strategy, StrategyConfig, UpdateClass,
};
use gpusched_policies::sharing::NodeSharing;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::apiserver::FakeApiServer;
use support::scope;

// ---------------------------------------------------------------------------------------------
// A fake Prometheus
// ---------------------------------------------------------------------------------------------

/// What the fake Prometheus answers. `None`: the metric has no series (an empty result).
#[derive(Debug, Clone)]
struct Script {
    /// Requests per second, flat over the range; after `quiet_after` range reads, `quiet_qps`.
    qps: Option<f64>,
    quiet_after: Option<(usize, f64)>,
    /// Range reads `a..=b` (1-based) see this QPS instead (a busy spell mid-rollout).
    busy_between: Option<(usize, usize, f64)>,
    error_rate: f64,
    p99_ms: f64,
    gpu_util: f64,
    /// After this many p99 reads, the p99 is NaN (no requests: the histogram is empty).
    p99_nan_after: Option<usize>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            qps: Some(5.0),
            quiet_after: None,
            busy_between: None,
            error_rate: 0.0,
            p99_ms: 300.0,
            gpu_util: 0.2,
            p99_nan_after: None,
        }
    }
}

#[derive(Default)]
struct PromState {
    script: Script,
    /// (path, decoded query) of every request.
    seen: Vec<(String, String)>,
    range_reads: usize,
    p99_reads: usize,
}

#[derive(Clone)]
struct FakeProm {
    url: String,
    state: Arc<Mutex<PromState>>,
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(decode))
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

impl FakeProm {
    async fn start(script: Script) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let p = FakeProm {
            url,
            state: Arc::new(Mutex::new(PromState {
                script,
                ..Default::default()
            })),
        };
        let s = p.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let s = s.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let q = req.uri().query().unwrap_or("").to_string();
                            let (status, body) = s.answer(&path, &q);
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body.to_string())))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        p
    }

    fn seen(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().seen.clone()
    }

    fn answer(&self, path: &str, q: &str) -> (u16, Value) {
        let mut st = self.state.lock().unwrap();
        let query = param(q, "query").unwrap_or_default();
        st.seen.push((path.to_string(), query.clone()));
        let bad = |e: &str| {
            (
                400,
                json!({"status": "error", "errorType": "bad_data", "error": e}),
            )
        };
        match path {
            "/api/v1/query_range" => {
                if !query.contains("request_success_total") {
                    return bad("unexpected range query");
                }
                st.range_reads += 1;
                let (Some(start), Some(end), Some(step)) = (
                    param(q, "start").and_then(|v| v.parse::<f64>().ok()),
                    param(q, "end").and_then(|v| v.parse::<f64>().ok()),
                    param(q, "step").and_then(|v| v.parse::<f64>().ok()),
                ) else {
                    return bad("start, end and step are required");
                };
                let qps = match (st.script.busy_between, st.script.quiet_after) {
                    (Some((a, b, busy)), _) if (a..=b).contains(&st.range_reads) => Some(busy),
                    (_, Some((n, quiet))) if st.range_reads > n => Some(quiet),
                    _ => st.script.qps,
                };
                let result = match qps {
                    None => json!([]),
                    Some(v) => {
                        let mut values = Vec::new();
                        let mut t = start;
                        while t <= end + 1e-9 {
                            values.push(json!([t, num(v)]));
                            t += step;
                        }
                        json!([{"metric": {}, "values": values}])
                    }
                };
                (
                    200,
                    json!({"status": "success", "data": {"resultType": "matrix", "result": result}}),
                )
            }
            "/api/v1/query" => {
                let t: f64 = param(q, "time").and_then(|v| v.parse().ok()).unwrap_or(0.0);
                let v = if query.contains("5xx") {
                    Some(st.script.error_rate)
                } else if query.contains("histogram_quantile") {
                    st.p99_reads += 1;
                    match st.script.p99_nan_after {
                        Some(n) if st.p99_reads > n => Some(f64::NAN),
                        _ => Some(st.script.p99_ms),
                    }
                } else if query.contains("DCGM_FI_DEV_GPU_UTIL") {
                    Some(st.script.gpu_util)
                } else {
                    None
                };
                let result = match v {
                    None => json!([]),
                    Some(v) => json!([{"metric": {}, "value": [t, num(v)]}]),
                };
                (
                    200,
                    json!({"status": "success", "data": {"resultType": "vector", "result": result}}),
                )
            }
            _ => (404, json!({"status": "error", "error": "not found"})),
        }
    }
}

/// An address where nothing listens (bound, then released).
async fn unreachable_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

const POOL: &str = "inference";
const NODES: usize = 4;
const FROM: &str = "gpusched-mps-2";
const TO: NodeSharing = NodeSharing::TimeSlicing { replicas: 4 };

fn node_name(i: usize) -> String {
    format!("a100-{}", i + 1)
}

/// Four one-GPU nodes of pool `inference` on the 2-replica MPS config, one gpusched pod each
/// (their plugin already advertises what 4 time-slicing replicas serve, so the wait for it
/// returns), and one node of pool `training` that no rollout of `inference` may touch.
async fn cluster() -> FakeApiServer {
    let api = FakeApiServer::start().await;
    api.apply(&ConfigMap {
        metadata: ObjectMeta {
            name: Some("device-plugin-config".into()),
            namespace: Some("nvidia-device-plugin".into()),
            ..Default::default()
        },
        data: Some([("default".to_string(), "version: v1\n".to_string())].into()),
        ..Default::default()
    });
    for i in 0..=NODES {
        let name = if i < NODES {
            node_name(i)
        } else {
            "train-1".to_string()
        };
        let mut n = gpu_node(&name, "NVIDIA-A100-SXM4-40GB", 1);
        let labels = n.metadata.labels.as_mut().unwrap();
        labels.insert(keys::DEVICE_PLUGIN_CONFIG.into(), FROM.into());
        labels.insert(
            keys::POOL.into(),
            if i < NODES { POOL } else { "training" }.into(),
        );
        n.status.as_mut().unwrap().capacity =
            Some([(keys::GPU_RESOURCE.to_string(), Quantity("4".into()))].into());
        api.apply(&n);
        api.apply(&gpusched_pod(
            "ml",
            &format!("chat-{i}"),
            "chat",
            &name,
            0,
            i as u64,
            50,
            8.0,
            "medium",
        ));
    }
    api
}

fn label_of(api: &FakeApiServer, node: &str) -> Option<String> {
    api.get("nodes", "", node).unwrap()["metadata"]["labels"][keys::DEVICE_PLUGIN_CONFIG]
        .as_str()
        .map(str::to_string)
}

fn is_clean(api: &FakeApiServer, node: &str) -> bool {
    let n = api.get("nodes", "", node).unwrap();
    n["spec"]["unschedulable"] != Value::Bool(true)
        && n["metadata"]["annotations"]
            .get(keys::ROLLOUT_IN_PROGRESS)
            .is_none()
}

/// Requests that change something (everything but GET).
fn writes(api: &FakeApiServer) -> Vec<String> {
    api.requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn request(strategy: Strategy, gated: bool) -> Request {
    let class = UpdateClass::Emergency; // any time of day: the test does not depend on the clock
    Request {
        targets: Targets::Pool(POOL.into()),
        to: TO,
        machine: MachineConfig {
            strategy,
            strategy_cfg: StrategyConfig {
                canary_watch_s: 0.05,
                step_watch_s: 0.05,
                ..Default::default()
            },
            max_disruption_pct: class.limits().max_disruption_pct,
            gate: gated.then(|| (GateConfig::default(), class)),
            plugin_timeout_s: 2.0,
        },
        breaker: Default::default(),
        timing: RolloutTiming {
            evict_retries: 0,
            retry_delay: Duration::from_millis(10),
            plugin_timeout: Duration::from_secs(2),
            poll: Duration::from_millis(20),
        },
    }
}

fn observer(url: &str, api: &FakeApiServer) -> PrometheusObserver {
    let mut o = PrometheusObserver::new(url, FreeCapacity::Cluster(api.client())).unwrap();
    o.timeout = Duration::from_secs(2);
    o
}

async fn run_live(
    api: &FakeApiServer,
    obs: Option<&PrometheusObserver>,
    req: &Request,
) -> pool_rollout::Report {
    let ap = KubeApplier {
        client: api.client(),
        scope: scope(),
    };
    pool_rollout::run(
        &api.client(),
        &scope(),
        &ap,
        obs,
        req,
        gpusched_live::agent::now_unix_s(),
    )
    .await
    .expect("the rollout runs")
}

fn outcome(r: &pool_rollout::Report) -> &RolloutOutcome {
    match &r.result {
        RolloutResult::Ran { outcome } => outcome,
        other => panic!("the rollout did not run: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// (a) busy traffic
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn busy_traffic_holds_the_gate_and_nothing_is_changed() {
    let api = cluster().await;
    let prom = FakeProm::start(Script {
        qps: Some(250.0), // over the no-update level (200)
        ..Default::default()
    })
    .await;
    let obs = observer(&prom.url, &api);
    let report = run_live(&api, Some(&obs), &request(Strategy::Canary, true)).await;
    let RolloutOutcome::Held {
        reason,
        failed_checks,
    } = outcome(&report)
    else {
        panic!("{:?}", report.result)
    };
    assert!(
        failed_checks.contains(&"qps_no_update".to_string()),
        "{reason}"
    );
    assert!(reason.contains("250"), "{reason}");
    assert_eq!(
        writes(&api),
        Vec::<String>::new(),
        "a held rollout sends nothing"
    );
    assert!(report.converted.is_empty());
    for i in 0..NODES {
        assert_eq!(label_of(&api, &node_name(i)).as_deref(), Some(FROM));
    }
    // The gate read 15 minutes of QPS at the tick step, and the error rate over 5 minutes.
    let seen = prom.seen();
    assert!(
        seen.iter()
            .any(|(p, q)| p == "/api/v1/query_range" && q.contains("[120s]")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(p, q)| p == "/api/v1/query" && q.contains("5xx") && q.contains("[300s]")),
        "{seen:?}"
    );
    assert!(report.prometheus_errors.is_empty());
}

// ---------------------------------------------------------------------------------------------
// (b) quiet traffic, healthy canary
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn quiet_traffic_and_a_healthy_canary_relabel_every_node_of_the_pool() {
    let api = cluster().await;
    let prom = FakeProm::start(Script::default()).await;
    let obs = observer(&prom.url, &api);
    let req = request(Strategy::Canary, true);
    let started = std::time::Instant::now();
    let report = run_live(&api, Some(&obs), &req).await;
    assert_eq!(outcome(&report), &RolloutOutcome::Done, "{report:?}");
    let names: Vec<String> = (0..NODES).map(node_name).collect();
    assert_eq!(report.planned, names);
    assert_eq!(report.converted.len(), NODES);
    for n in &names {
        assert_eq!(label_of(&api, n).as_deref(), Some(TO.config_key().as_str()));
        assert!(is_clean(&api, n), "{n}");
    }
    // The other pool's node is not touched.
    assert_eq!(label_of(&api, "train-1").as_deref(), Some(FROM));
    assert!(!writes(&api).iter().any(|w| w.contains("train-1")));
    // One gate check per batch, and one canary watch that waited its 0.05 s then read p99.
    let batches = plan(
        Strategy::Canary,
        NODES,
        &req.machine.strategy_cfg,
        req.machine.max_disruption_pct,
    )
    .len();
    let gates = report
        .commands
        .iter()
        .filter(|c| matches!(c, Command::CheckGate))
        .count();
    assert_eq!(gates, batches);
    assert!(report.commands.iter().any(
        |c| matches!(c, Command::Watch { seconds, kind: WatchKind::Canary } if *seconds == 0.05)
    ));
    assert!(started.elapsed() >= Duration::from_millis(50));
    let p99s = prom
        .seen()
        .iter()
        .filter(|(_, q)| q.contains("histogram_quantile"))
        .count();
    assert_eq!(p99s, 2, "the preflight and the canary's watch");
    // The written ConfigMap entry is the time-slicing config.
    let cm = api
        .get("configmaps", "nvidia-device-plugin", "device-plugin-config")
        .unwrap();
    assert!(cm["data"][TO.config_key()]
        .as_str()
        .unwrap()
        .contains("timeSlicing"));
    // Run again: every node is already there.
    let again = run_live(&api, Some(&obs), &req).await;
    assert_eq!(again.result, RolloutResult::NothingToChange);
    assert_eq!(again.unchanged, names);
}

// ---------------------------------------------------------------------------------------------
// (c) unhealthy canary
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unhealthy_canary_is_rolled_back_and_its_labels_restored() {
    let api = cluster().await;
    let prom = FakeProm::start(Script {
        error_rate: 0.2, // over the health check's 5 %
        ..Default::default()
    })
    .await;
    let obs = observer(&prom.url, &api);
    let report = run_live(&api, Some(&obs), &request(Strategy::Canary, false)).await;
    let RolloutOutcome::RolledBack {
        error,
        rollback_errors,
    } = outcome(&report)
    else {
        panic!("{:?}", report.result)
    };
    assert!(
        error.contains("canary watch") && error.contains("20.00 %"),
        "{error}"
    );
    assert!(rollback_errors.is_empty(), "{rollback_errors:?}");
    assert!(report.converted.is_empty());
    // The canary was changed, then restored; the others were never touched.
    let w = writes(&api);
    assert!(w.iter().any(|x| x == "PATCH /api/v1/nodes/a100-1"), "{w:?}");
    for i in 0..NODES {
        assert_eq!(label_of(&api, &node_name(i)).as_deref(), Some(FROM));
        assert!(is_clean(&api, &node_name(i)));
    }
    for i in 1..NODES {
        let path = format!("/api/v1/nodes/{}", node_name(i));
        assert!(!w.iter().any(|x| x.ends_with(&path)), "{path}: {w:?}");
    }
    let cm = api
        .get("configmaps", "nvidia-device-plugin", "device-plugin-config")
        .unwrap();
    assert!(cm["data"].get(TO.config_key()).is_none(), "{cm}");
}

#[tokio::test]
async fn a_watch_that_loses_its_readings_rolls_back() {
    let api = cluster().await;
    // The preflight reads a p99; by the canary's watch the histogram is empty (NaN).
    let prom = FakeProm::start(Script {
        p99_nan_after: Some(1),
        ..Default::default()
    })
    .await;
    let obs = observer(&prom.url, &api);
    let report = run_live(&api, Some(&obs), &request(Strategy::Canary, false)).await;
    let RolloutOutcome::RolledBack { error, .. } = outcome(&report) else {
        panic!("{:?}", report.result)
    };
    assert!(error.contains("watch") && error.contains("NaN"), "{error}");
    assert!(!report.prometheus_errors.is_empty());
    for i in 0..NODES {
        assert_eq!(label_of(&api, &node_name(i)).as_deref(), Some(FROM));
        assert!(is_clean(&api, &node_name(i)));
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Prometheus unreachable, or without the metric
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unreachable_prometheus_starts_nothing_and_says_why() {
    let api = cluster().await;
    let url = unreachable_url().await;
    let obs = observer(&url, &api);
    let report = run_live(&api, Some(&obs), &request(Strategy::Canary, true)).await;
    let RolloutResult::NotStarted { reason } = &report.result else {
        panic!("{:?}", report.result)
    };
    assert!(reason.contains("unreachable"), "{reason}");
    assert!(reason.contains("not started"), "{reason}");
    assert_eq!(writes(&api), Vec::<String>::new());
    assert!(!report.succeeded());

    // Run straight through the executor (no preflight): the gate does not open on a reading it
    // could not take; it holds with the check `unreadable`, and nothing is sent.
    let obs = observer(&url, &api);
    let plan = pool_rollout::plan(
        &api.client(),
        &scope(),
        &request(Strategy::Rolling, true),
        0.0,
    )
    .await
    .unwrap();
    let ap = KubeApplier {
        client: api.client(),
        scope: scope(),
    };
    let run = rollout_exec::run(
        &ap,
        &scope(),
        &mut CircuitBreaker::default(),
        request(Strategy::Rolling, true).machine,
        &plan.rollouts,
        &RolloutTiming::default(),
        &obs,
        1000.0,
    )
    .await;
    let RolloutOutcome::Held {
        reason,
        failed_checks,
    } = &run.outcome
    else {
        panic!("{:?}", run.outcome)
    };
    assert!(
        failed_checks.contains(&"unreadable".to_string()),
        "{reason}"
    );
    assert!(reason.contains("QPS samples"), "{reason}");
    let failures = obs.failures();
    assert!(
        failures.iter().any(|f| f.contains("unreachable")),
        "{failures:?}"
    );
    assert_eq!(writes(&api), Vec::<String>::new());
}

#[tokio::test]
async fn a_metric_prometheus_does_not_have_holds_the_gate() {
    let api = cluster().await;
    let prom = FakeProm::start(Script {
        qps: None, // no series: never read as zero traffic
        ..Default::default()
    })
    .await;
    let obs = observer(&prom.url, &api);
    let report = run_live(&api, Some(&obs), &request(Strategy::Rolling, true)).await;
    let RolloutResult::NotStarted { reason } = &report.result else {
        panic!("{:?}", report.result)
    };
    assert!(reason.contains("no series"), "{reason}");
    assert_eq!(writes(&api), Vec::<String>::new());
    let s = obs.read_gate(gpusched_live::agent::now_unix_s()).await;
    assert!(s.samples.iter().all(|p| p.1.is_nan()), "{s:?}");
    assert_eq!(s.error_rate, 0.0);
}

// ---------------------------------------------------------------------------------------------
// Waiting at the gate
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rollout_told_to_wait_goes_through_once_traffic_quietens() {
    let api = cluster().await;
    // Busy for the preflight and the first two gate readings, quiet after.
    let prom = FakeProm::start(Script {
        qps: Some(250.0),
        quiet_after: Some((3, 5.0)),
        ..Default::default()
    })
    .await;
    let mut obs = observer(&prom.url, &api);
    let req = request(Strategy::Rolling, true);
    obs.gate_wait = Some(GateWait {
        max_wait: Duration::from_secs(5),
        retry: Duration::from_millis(20),
    });
    let report = run_live(&api, Some(&obs), &req).await;
    assert_eq!(outcome(&report), &RolloutOutcome::Done, "{report:?}");
    let holds = report
        .commands
        .iter()
        .filter(|c| matches!(c, Command::Hold { .. }))
        .count();
    assert!(holds >= 1, "the busy readings closed the gate");
    assert!(
        !matches!(report.commands.last(), Some(Command::Hold { .. })),
        "waited at the gate and went on instead of ending held"
    );
    assert!(prom.state.lock().unwrap().range_reads > 3);
    for i in 0..NODES {
        assert_eq!(
            label_of(&api, &node_name(i)).as_deref(),
            Some(TO.config_key().as_str())
        );
    }
}

#[tokio::test]
async fn a_gate_closing_mid_rollout_keeps_the_finished_batches_and_the_one_canary() {
    let api = cluster().await;
    // Quiet, then busy from the third traffic read (after the canary batch's gate) for two
    // reads, then quiet again.
    let prom = FakeProm::start(Script {
        busy_between: Some((3, 4, 250.0)),
        ..Default::default()
    })
    .await;
    let mut obs = observer(&prom.url, &api);
    obs.gate_wait = Some(GateWait {
        max_wait: Duration::from_secs(5),
        retry: Duration::from_millis(20),
    });
    let report = run_live(&api, Some(&obs), &request(Strategy::Canary, true)).await;
    assert_eq!(outcome(&report), &RolloutOutcome::Done, "{report:?}");
    let cs = &report.commands;
    let first_hold = cs
        .iter()
        .position(|c| matches!(c, Command::Hold { .. }))
        .expect("the busy spell closed the gate");
    let canary_watch = cs
        .iter()
        .position(|c| matches!(c, Command::Watch { .. }))
        .expect("the canary was watched");
    assert!(
        canary_watch < first_hold,
        "the hold came after the canary batch"
    );
    let canaries = cs
        .iter()
        .filter(|c| matches!(c, Command::Cordon { role, .. } if *role == "canary"))
        .count();
    assert_eq!(
        canaries, 1,
        "one canary batch: the machine was kept through the hold"
    );
    let mut applied: Vec<&str> = cs
        .iter()
        .filter_map(|c| match c {
            Command::ApplyConfig {
                targets,
                rollback: false,
                ..
            } => Some(targets.iter().map(|t| t.node.as_str())),
            _ => None,
        })
        .flatten()
        .collect();
    applied.sort();
    applied.dedup();
    assert_eq!(applied.len(), NODES, "every node changed once");
    for i in 0..NODES {
        assert_eq!(
            label_of(&api, &node_name(i)).as_deref(),
            Some(TO.config_key().as_str())
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (e) the dry run
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_dry_run_sends_nothing_and_prints_every_change() {
    let api = cluster().await;
    let prom = FakeProm::start(Script {
        qps: Some(250.0), // a closed gate is reported, and the plan still printed
        ..Default::default()
    })
    .await;
    let obs = observer(&prom.url, &api);
    let ap = DryRunApplier::new(scope(), Box::new(std::io::sink()));
    let report = pool_rollout::run(
        &api.client(),
        &scope(),
        &ap,
        Some(&obs),
        &request(Strategy::Canary, true),
        gpusched_live::agent::now_unix_s(),
    )
    .await
    .unwrap();
    assert_eq!(outcome(&report), &RolloutOutcome::Done);
    assert!(report.dry_run);
    assert_eq!(writes(&api), Vec::<String>::new(), "a dry run only reads");
    let v = report.gate_now.as_ref().expect("the gate was asked once");
    assert!(!v.open && v.failed.contains(&"qps_no_update".to_string()));
    let printed = ap.printed.lock().unwrap().join("\n");
    for i in 0..NODES {
        let n = node_name(i);
        assert!(
            printed.contains(&format!("PATCH /api/v1/nodes/{n}")),
            "{n} relabel printed"
        );
        assert!(
            printed.contains(&format!("chat-{i}/eviction")),
            "{n} eviction printed"
        );
    }
    assert!(printed.contains(&TO.config_key()));
    assert!(!printed.contains("train-1"));
}

// ---------------------------------------------------------------------------------------------
// The command's flags
// ---------------------------------------------------------------------------------------------

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    a: RolloutArgs,
}

fn args(extra: &[&str]) -> Result<RolloutArgs, clap::Error> {
    let mut v = vec!["rollout", "--namespace", "ml"];
    v.extend_from_slice(extra);
    Cli::try_parse_from(v).map(|c| c.a)
}

fn bad_input(extra: &[&str]) -> String {
    match rollout_request(&args(extra).unwrap()) {
        Err(CmdError::BadInput(m)) => m,
        Err(e) => panic!("{extra:?}: not bad input: {e}"),
        Ok(_) => panic!("{extra:?}: accepted"),
    }
}

#[test]
fn flags_build_the_simulators_rollout() {
    let (req, obs) = rollout_request(
        &args(&[
            "--pool",
            "inference",
            "--to",
            "time-slicing:4",
            "--strategy",
            "blue_green",
            "--gate",
            "--class",
            "emergency",
            "--prometheus-url",
            "http://prometheus:9090",
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(req.targets, Targets::Pool("inference".into()));
    assert_eq!(req.to, TO);
    assert_eq!(req.machine.strategy, Strategy::BlueGreen);
    assert_eq!(
        req.machine.gate,
        Some((GateConfig::default(), UpdateClass::Emergency))
    );
    assert_eq!(req.machine.max_disruption_pct, 50.0);
    assert!(obs.is_some());
    // Unknown strategy: clap's own error (exit 2).
    assert!(args(&["--pool", "p", "--to", "mps:2", "--strategy", "big_bang"]).is_err());
    // Two target kinds at once.
    assert!(args(&["--pool", "p", "--nodes", "a", "--to", "mps:2"]).is_err());
    assert!(bad_input(&["--pool", "p", "--to", "time-slicing:1"]).contains("replicas"));
    assert!(bad_input(&["--pool", "p", "--to", "fancy"]).contains("expected exclusive"));
    assert!(bad_input(&["--to", "mps:2"]).contains("which nodes"));
    assert!(bad_input(&["--pool", "p"]).contains("which config"));
    assert!(bad_input(&["--pool", "p", "--to", "mps:2", "--gate"]).contains("--prometheus-url"));
    assert!(
        bad_input(&["--pool", "p", "--to", "mps:2", "--strategy", "canary"])
            .contains("--prometheus-url")
    );
    assert!(bad_input(&[
        "--pool",
        "p",
        "--to",
        "mps:2",
        "--gate",
        "--prometheus-url",
        "https://prom:9090"
    ])
    .contains("https"));
    // A rolling change without gate needs no Prometheus.
    let (req, obs) =
        rollout_request(&args(&["--nodes", "a,b", "--to", "exclusive"]).unwrap()).unwrap();
    assert_eq!(req.targets, Targets::Nodes(vec!["a".into(), "b".into()]));
    assert!(req.machine.gate.is_none() && obs.is_none());
}

#[test]
fn config_reads_the_scenarios_reconfig_table() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("scenario.toml");
    std::fs::write(
        &f,
        r#"
name = "whatever the scenario holds besides"
[reconfig]
strategy = "canary"
class = "capacity_expansion"
pool = "inference"
trigger = { kind = "scheduled", at_s = 3600, replicas = 8 }
qps_gate = { qps_scale = 0.1 }
params = { canary_fraction = 0.5, canary_watch_s = 600, health = { max_error_rate = 0.01 } }
"#,
    )
    .unwrap();
    let path = f.to_str().unwrap();
    let (req, _) =
        rollout_request(&args(&["--config", path, "--prometheus-url", "http://p:9090"]).unwrap())
            .unwrap();
    assert_eq!(req.targets, Targets::Pool("inference".into()));
    assert_eq!(req.to, NodeSharing::TimeSlicing { replicas: 8 });
    assert_eq!(req.machine.strategy, Strategy::Canary);
    let (g, class) = req
        .machine
        .gate
        .clone()
        .expect("the table's gate defaults to on");
    assert_eq!((g.qps_scale, class), (0.1, UpdateClass::CapacityExpansion));
    assert_eq!(req.machine.max_disruption_pct, 5.0);
    assert_eq!(req.machine.strategy_cfg.canary_fraction, 0.5);
    assert_eq!(req.machine.strategy_cfg.health.max_error_rate, 0.01);
    // Flags override the file.
    let (req, _) = rollout_request(
        &args(&[
            "--config",
            path,
            "--no-gate",
            "--strategy",
            "rolling",
            "--to",
            "mps:2",
            "--canary-watch-s",
            "5",
        ])
        .unwrap(),
    )
    .unwrap();
    assert!(req.machine.gate.is_none());
    assert_eq!(req.machine.strategy, Strategy::Rolling);
    assert_eq!(req.to, NodeSharing::MpsUniform { replicas: 2 });
    assert_eq!(req.machine.strategy_cfg.canary_watch_s, 5.0);
    // A misspelt key and the simulator's fault injection are refused.
    std::fs::write(&f, "[reconfig]\nstrategy = \"canary\"\ncanary_watch = 5\n").unwrap();
    assert!(
        bad_input(&["--config", path, "--to", "mps:2", "--pool", "p"]).contains("canary_watch")
    );
    std::fs::write(&f, "pool = \"p\"\nfaults = { fail_apply = [\"p-1\"] }\n").unwrap();
    assert!(bad_input(&["--config", path, "--to", "mps:2"]).contains("fault injection"));
}
