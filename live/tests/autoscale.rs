//! Live autoscaling without a cluster: Deployment opt-in and bad annotations, the same
//! recommendations as the simulator's autoscaler for the same signals, the exact scale request
//! (tower-test mock API server) and its decisions.jsonl line, the dry run, missing metrics, HPA
//! conflicts, and the scrape + parse path against a local HTTP server. Time is a parameter
//! everywhere: no test sleeps.

mod support;

use gpusched_live::apply::KubeApplier;
use gpusched_live::autoscale::{
    competing_hpa, deployment_policy, AutoscaleOptions, LiveAutoscaler, Observed,
};
use gpusched_live::controller::Controller;
use gpusched_live::decisions::DecisionLog;
use gpusched_live::dryrun::DryRunApplier;
use gpusched_live::keys;
use gpusched_live::nvml::{GpuSummary, NodeSummary};
use gpusched_live::signals::{HttpScraper, MetricNames, PodMetrics, Scraper, Signal};
use gpusched_live::testutil::{gpu_node, gpusched_pod};
use gpusched_policies::autoscale::{AutoscalerConfig, HpaConfig, HpaMetric, SeedsRuleConfig};
use gpusched_policies::decision::Decision;
use gpusched_policies::{EngineConfig, GpuCatalog};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
};
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use support::mock::mock_client;
use support::scope;

const NOW: f64 = 1_700_000_000.0;

fn deployment(ns: &str, name: &str, replicas: i32, annotations: &[(&str, &str)]) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some([(keys::AUTOSCALE.to_string(), "true".to_string())].into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), name.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            ready_replicas: Some(replicas),
            ..Default::default()
        }),
    }
}

/// An 8-GPU H100 node whose agent summary says every GPU is `util` busy at `power_w`.
fn h100_node(util: f64, power_w: f64, t: f64) -> Node {
    let mut n = gpu_node("h100-1", "NVIDIA-H100-80GB-HBM3", 8);
    let summary = NodeSummary {
        t,
        gpus: (0..8)
            .map(|i| GpuSummary {
                i,
                util: Some(util),
                mem_used_mib: 1000,
                mem_total_mib: 81_559,
                power_w: Some(power_w),
                mig: false,
                procs: 1,
            })
            .collect(),
    };
    n.metadata.annotations = Some(
        [(
            keys::GPU_METRICS.to_string(),
            serde_json::to_string(&summary).unwrap(),
        )]
        .into(),
    );
    n
}

/// A ready serving pod of `app`, bound by gpusched to GPU `gpu` (exclusively), serving metrics
/// on port 8000.
fn serving_pod(ns: &str, app: &str, i: u8) -> Pod {
    let name = format!("{app}-{i}");
    let mut p = gpusched_pod(ns, &name, app, "h100-1", i, i as u64, 100, 16.0, "large");
    p.metadata.labels = Some([("app".to_string(), app.to_string())].into());
    p.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(keys::METRICS_PORT.into(), "8000".into());
    let st = p.status.as_mut().unwrap();
    st.pod_ip = Some(format!("10.0.0.{}", i + 10));
    st.conditions = Some(vec![PodCondition {
        type_: "Ready".into(),
        status: "True".into(),
        ..Default::default()
    }]);
    p
}

fn vllm_text(waiting: u64, running: u64, served_total: u64) -> String {
    format!(
        "# TYPE vllm:num_requests_waiting gauge\n\
         vllm:num_requests_waiting{{engine=\"0\",model_name=\"llama\"}} {waiting}.0\n\
         # TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{engine=\"0\",model_name=\"llama\"}} {running}.0\n\
         # TYPE vllm:request_success_total counter\n\
         vllm:request_success_total{{engine=\"0\",finished_reason=\"stop\",model_name=\"llama\"}} {served_total}.0\n"
    )
}

/// Serves fixed pages by URL; unknown URLs fail like a refused connection.
#[derive(Default, Clone)]
struct FakeScraper(Arc<Mutex<BTreeMap<String, String>>>);

impl FakeScraper {
    fn set(&self, url: &str, text: String) {
        self.0.lock().unwrap().insert(url.to_string(), text);
    }
}

impl Scraper for FakeScraper {
    async fn scrape(&self, url: &str) -> Result<String, String> {
        self.0
            .lock()
            .unwrap()
            .get(url)
            .cloned()
            .ok_or_else(|| format!("{url}: connect: connection refused"))
    }
}

fn pod_url(i: u8) -> String {
    format!("http://10.0.0.{}:8000/metrics", i + 10)
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hpa_queue(target: f64) -> AutoscalerConfig {
    AutoscalerConfig::Hpa(HpaConfig {
        metric: HpaMetric::QueuePerReplica,
        target,
        up_stabilisation_s: 0.0,
        ..Default::default()
    })
}

// ---------------------------------------------------------------------------------------------

#[test]
fn opt_in_and_bad_annotations_name_the_object_key_and_allowed_values() {
    let def = AutoscalerConfig::default();
    // Not labelled: left alone.
    let mut d = deployment("ml", "chat", 2, &[(keys::MAX_REPLICAS, "4")]);
    d.metadata.labels = None;
    assert_eq!(deployment_policy(&d, &def), Ok(None));
    // Opted in: min defaults to 1, the controller's policy applies.
    let p = deployment_policy(
        &deployment("ml", "chat", 2, &[(keys::MAX_REPLICAS, "4")]),
        &def,
    )
    .unwrap()
    .unwrap();
    assert_eq!((p.min, p.max, p.config), (1, 4, def.clone()));
    // The override takes that kind's defaults unless the controller's policy is of that kind.
    let p = deployment_policy(
        &deployment(
            "ml",
            "chat",
            2,
            &[(keys::MAX_REPLICAS, "4"), (keys::AUTOSCALER, "hpa")],
        ),
        &def,
    )
    .unwrap()
    .unwrap();
    assert_eq!(p.config, AutoscalerConfig::Hpa(HpaConfig::default()));
    let tuned = hpa_queue(3.0);
    let p = deployment_policy(
        &deployment(
            "ml",
            "chat",
            2,
            &[(keys::MAX_REPLICAS, "4"), (keys::AUTOSCALER, "hpa")],
        ),
        &tuned,
    )
    .unwrap()
    .unwrap();
    assert_eq!(p.config, tuned);

    // (annotations, what the error must say)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: Vec<Case> = vec![
        (
            vec![(keys::MAX_REPLICAS, "4"), (keys::AUTOSCALER, "keda")],
            &[keys::AUTOSCALER, "\"keda\"", "seeds, hpa or none"],
        ),
        (vec![], &[keys::MAX_REPLICAS, "missing"]),
        (
            vec![(keys::MAX_REPLICAS, "4"), (keys::MIN_REPLICAS, "zero")],
            &[keys::MIN_REPLICAS, "\"zero\"", "at least 1"],
        ),
        (
            vec![(keys::MAX_REPLICAS, "-3")],
            &[keys::MAX_REPLICAS, "whole number"],
        ),
        (
            vec![(keys::MAX_REPLICAS, "2"), (keys::MIN_REPLICAS, "3")],
            &[keys::MAX_REPLICAS, "below", keys::MIN_REPLICAS],
        ),
    ];
    for (ann, wants) in cases {
        let e = deployment_policy(&deployment("ml", "chat", 2, &ann), &def).unwrap_err();
        assert!(e.contains("deployment ml/chat"), "{e}");
        for w in wants {
            assert!(e.contains(w), "{e:?} lacks {w:?}");
        }
    }
    let mut d = deployment("ml", "chat", 2, &[(keys::MAX_REPLICAS, "4")]);
    d.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(keys::AUTOSCALE.into(), "yes".into());
    let e = deployment_policy(&d, &def).unwrap_err();
    assert!(
        e.contains(keys::AUTOSCALE) && e.contains("\"yes\"") && e.contains("\"true\""),
        "{e}"
    );

    // Through the evaluation: an error in the report, nothing proposed, no panic.
    let mut a = LiveAutoscaler::new(AutoscaleOptions::default());
    let ds = vec![
        d,
        deployment(
            "ml",
            "other",
            2,
            &[(keys::MAX_REPLICAS, "4"), (keys::AUTOSCALER, "fast")],
        ),
    ];
    let r = a.evaluate(
        &scope(),
        &Observed {
            deployments: &ds,
            hpas: &[],
            pods: &[],
            nodes: &[],
        },
        &BTreeMap::new(),
        NOW,
    );
    assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
    assert!(r.errors[1].contains("ml/other") && r.errors[1].contains("\"fast\""));
    assert!(r.proposals.is_empty());
}

/// Drives the live autoscaler through a load ramp (the cluster following each decision) and feeds
/// the signals it built to the simulator's own autoscaler (`AutoscalerConfig::build`, as
/// `sim::Simulation` does): both recommend the same counts at every evaluation.
#[test]
fn live_and_simulated_autoscalers_agree_on_the_same_signals() {
    let configs = [
        hpa_queue(4.0),
        AutoscalerConfig::Hpa(HpaConfig::default()),
        AutoscalerConfig::Seeds(SeedsRuleConfig {
            efficiency_min_tops_per_w: 0.5,
            ..Default::default()
        }),
    ];
    // Total waiting requests per 30 s tick: calm, a burst, then calm for long enough to scale in.
    let load: Vec<u64> = [
        0, 0, 40, 60, 80, 80, 80, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]
    .to_vec();
    for cfg in configs {
        let mut live = LiveAutoscaler::new(AutoscaleOptions {
            config: cfg.clone(),
            ..Default::default()
        });
        let mut sim = cfg.build().expect("a policy");
        let mut replicas: i32 = 2;
        let mut served = [0u64; 8];
        let (mut ups, mut downs, mut asked) = (0, 0, 0);
        for (k, &q) in load.iter().enumerate() {
            let now = NOW + 30.0 * k as f64;
            let ds = vec![deployment(
                "ml",
                "chat",
                replicas,
                &[(keys::MAX_REPLICAS, "8"), (keys::MIN_REPLICAS, "1")],
            )];
            let pods: Vec<Pod> = (0..replicas as u8)
                .map(|i| serving_pod("ml", "chat", i))
                .collect();
            let nodes = vec![h100_node(0.9, 600.0, now - 5.0)];
            let obs = Observed {
                deployments: &ds,
                hpas: &[],
                pods: &pods,
                nodes: &nodes,
            };
            let mut scrapes = BTreeMap::new();
            for i in 0..replicas as u8 {
                // 2 requests per pod per 30 s: an H100 at $4/h costs ≈ $0.017 per inference,
                // above the seeds' $0.01, so an idle queue scales the seeds' rule in too.
                served[i as usize] += 2;
                let share = q / replicas as u64 + u64::from((i as u64) < q % replicas as u64);
                scrapes.insert(
                    format!("ml/chat-{i}"),
                    Ok(vllm_text(share, 2, served[i as usize])),
                );
            }
            let r = live.evaluate(&scope(), &obs, &scrapes, now);
            let sig = &r.signals["ml/chat"];
            assert_eq!(sig.signals.queue_len, q);
            assert_eq!(sig.signals.replicas, replicas as u32);
            let live_to = r
                .proposals
                .first()
                .map(|p| p.decision.to)
                .unwrap_or(replicas as u32);
            if sig.missing_among(&Signal::needed_by(&cfg)).is_empty() {
                asked += 1;
                let want = sim.recommend(&sig.signals, 1, 8).desired;
                assert_eq!(live_to, want, "{cfg:?} tick {k}: {:?}", sig.signals);
            } else {
                assert!(r.proposals.is_empty());
            }
            if live_to as i32 > replicas {
                ups += 1;
            }
            if (live_to as i32) < replicas {
                downs += 1;
            }
            replicas = live_to as i32;
        }
        // Seeds also read the served counter, unknown on a pod's first reading.
        assert!(asked >= load.len() / 2, "{cfg:?}: asked {asked}");
        assert!(ups >= 1 && downs >= 1, "{cfg:?}: {ups} up, {downs} down");
    }
}

#[test]
fn missing_metrics_never_scale_down_and_hpas_are_not_fought() {
    let mut a = LiveAutoscaler::new(AutoscaleOptions {
        config: AutoscalerConfig::Hpa(HpaConfig {
            metric: HpaMetric::QueuePerReplica,
            down_stabilisation_s: 0.0,
            ..Default::default()
        }),
        ..Default::default()
    });
    let ds = vec![deployment("ml", "chat", 4, &[(keys::MAX_REPLICAS, "8")])];
    let pods: Vec<Pod> = (0..4).map(|i| serving_pod("ml", "chat", i)).collect();
    let obs = Observed {
        deployments: &ds,
        hpas: &[],
        pods: &pods,
        nodes: &[],
    };
    // One pod's scrape fails: the queue is unknown, so nothing is asked (an idle queue of the
    // other three would otherwise scale 4 → 1).
    for k in 0..12 {
        let mut scrapes: BTreeMap<String, Result<String, String>> = (1..4)
            .map(|i| (format!("ml/chat-{i}"), Ok(vllm_text(0, 0, 0))))
            .collect();
        scrapes.insert(
            "ml/chat-0".into(),
            Err("http://10.0.0.10:8000/metrics: connect: connection refused".into()),
        );
        let r = a.evaluate(&scope(), &obs, &scrapes, NOW + 30.0 * k as f64);
        assert!(r.proposals.is_empty(), "{:?}", r.proposals);
        assert!(
            r.notes[0].contains("missing metrics never scale down")
                && r.notes[0].contains("refused"),
            "{:?}",
            r.notes
        );
    }
    // With every scrape answering, the same idle queue does scale in (the first reading the
    // policy gets only starts its window: nothing from the blind period was recorded).
    let scrapes: BTreeMap<String, Result<String, String>> = (0..4)
        .map(|i| (format!("ml/chat-{i}"), Ok(vllm_text(0, 0, 0))))
        .collect();
    let r = a.evaluate(&scope(), &obs, &scrapes, NOW + 400.0);
    assert!(r.proposals.is_empty());
    let r = a.evaluate(&scope(), &obs, &scrapes, NOW + 430.0);
    assert_eq!(r.proposals.len(), 1);
    assert!(r.proposals[0].decision.to < 4);

    // An autoscaling/v2 HPA targets the Deployment: skipped with a note.
    let hpa = HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some("chat-hpa".into()),
            namespace: Some("ml".into()),
            ..Default::default()
        },
        spec: Some(HorizontalPodAutoscalerSpec {
            max_replicas: 8,
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: "chat".into(),
            },
            ..Default::default()
        }),
        status: None,
    };
    let hpas = vec![hpa];
    assert_eq!(competing_hpa(&hpas, "ml", "chat"), Some("chat-hpa"));
    assert_eq!(competing_hpa(&hpas, "other", "chat"), None);
    let obs = Observed { hpas: &hpas, ..obs };
    let r = a.evaluate(&scope(), &obs, &scrapes, NOW + 800.0);
    assert!(r.proposals.is_empty());
    assert!(
        r.notes.iter().any(|n| n.contains("ml/chat-hpa")),
        "{:?}",
        r.notes
    );

    // kube-system, or any namespace not managed, is never considered.
    let ds = vec![deployment(
        "kube-system",
        "coredns",
        2,
        &[(keys::MAX_REPLICAS, "8")],
    )];
    let r = a.evaluate(
        &scope(),
        &Observed {
            deployments: &ds,
            hpas: &[],
            pods: &[],
            nodes: &[],
        },
        &BTreeMap::new(),
        NOW + 900.0,
    );
    assert!(r.proposals.is_empty() && r.errors.is_empty() && r.notes.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The exact request, through the controller's applier and decision log.

#[tokio::test]
async fn a_scale_decision_patches_the_scale_subresource_and_is_logged() {
    let (client, task) = mock_client(vec![(
        200,
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "chat", "namespace": "ml"}, "spec": {"replicas": 4}}),
    )]);
    let buf = Buf::default();
    let mut ctl = Controller::new(
        EngineConfig::default(),
        GpuCatalog::default(),
        1,
        scope(),
        KubeApplier {
            client,
            scope: scope(),
        },
        Some(DecisionLog::new(Box::new(buf.clone()), NOW)),
    )
    .unwrap();
    let mut a = LiveAutoscaler::new(AutoscaleOptions {
        config: hpa_queue(4.0),
        ..Default::default()
    });
    let scraper = FakeScraper::default();
    let ds = vec![deployment("ml", "chat", 2, &[(keys::MAX_REPLICAS, "8")])];
    let pods: Vec<Pod> = (0..2).map(|i| serving_pod("ml", "chat", i)).collect();
    let obs = Observed {
        deployments: &ds,
        hpas: &[],
        pods: &pods,
        nodes: &[],
    };
    for i in 0..2 {
        scraper.set(&pod_url(i), vllm_text(16, 4, 100));
    }
    // First evaluation: the window holds the starting count, nothing moves, nothing is sent.
    let r = a.tick(&mut ctl, &obs, &scraper, NOW).await;
    assert!(
        r.evaluated && r.proposals.is_empty() && r.errors.is_empty(),
        "{r:?}"
    );
    // Before the monitoring period elapses nothing is evaluated (the placement loop is faster).
    let r = a.tick(&mut ctl, &obs, &scraper, NOW + 5.0).await;
    assert!(!r.evaluated);
    // 32 queued / 2 ready = 16 per replica vs a target of 4 → ceil(2 × 16/4) = 8, rate-limited
    // to max(2 × 2, 2 + 4) = 6.
    let r = a.tick(&mut ctl, &obs, &scraper, NOW + 30.0).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.applied.len(), 1);
    let Decision::Scale(s) = &r.applied[0] else {
        panic!("{:?}", r.applied)
    };
    assert_eq!(
        (s.service.as_str(), s.autoscaler, s.from, s.to),
        ("ml/chat", "hpa", 2, 6)
    );
    drop(ctl);
    let seen = task.await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(
        seen[0].uri,
        "/apis/apps/v1/namespaces/ml/deployments/chat/scale?&fieldManager=gpusched"
    );
    assert_eq!(seen[0].content_type, "application/merge-patch+json");
    assert_eq!(seen[0].body, json!({"spec": {"replicas": 6}}));
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line: Value = serde_json::from_str(log.trim_end()).unwrap();
    assert_eq!(line["t_s"], 30.0);
    assert_eq!(line["decision"], "scale");
    assert_eq!(line["service"], "ml/chat");
    assert_eq!(
        (line["from"].as_u64(), line["to"].as_u64()),
        (Some(2), Some(6))
    );
}

#[tokio::test]
async fn the_dry_run_prints_the_scale_request() {
    let dry = DryRunApplier::new(scope(), Box::new(std::io::sink()));
    let mut ctl = Controller::new(
        EngineConfig::default(),
        GpuCatalog::default(),
        1,
        scope(),
        dry,
        None,
    )
    .unwrap();
    let mut a = LiveAutoscaler::new(AutoscaleOptions {
        config: hpa_queue(4.0),
        ..Default::default()
    });
    let scraper = FakeScraper::default();
    scraper.set(&pod_url(0), vllm_text(20, 0, 0));
    let ds = vec![deployment("ml", "chat", 1, &[(keys::MAX_REPLICAS, "3")])];
    let pods = vec![serving_pod("ml", "chat", 0)];
    let obs = Observed {
        deployments: &ds,
        hpas: &[],
        pods: &pods,
        nodes: &[],
    };
    a.tick(&mut ctl, &obs, &scraper, NOW).await;
    let r = a.tick(&mut ctl, &obs, &scraper, NOW + 30.0).await;
    assert_eq!(r.applied.len(), 1, "{r:?}");
    let printed = ctl.applier.printed.lock().unwrap().clone();
    assert_eq!(printed.len(), 1);
    assert!(
        printed[0].contains(
            "PATCH /apis/apps/v1/namespaces/ml/deployments/chat/scale?&fieldManager=gpusched"
        ) && printed[0].contains(r#"{"spec":{"replicas":3}}"#),
        "{}",
        printed[0]
    );
}

// ---------------------------------------------------------------------------------------------
// Scrape + parse over real HTTP.

#[tokio::test]
async fn scrapes_and_parses_a_vllm_metrics_page_over_http() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let page = Arc::new(tokio::sync::RwLock::new(vllm_text(7, 3, 151)));
    tokio::spawn(gpusched_live::agent::serve(listener, page));
    let s = HttpScraper::default();
    let text = s.scrape(&format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(
        PodMetrics::from_text(&text, &MetricNames::default()),
        PodMetrics {
            waiting: Some(7.0),
            running: Some(3.0),
            served_total: Some(151.0),
        }
    );
    let e = s.scrape(&format!("http://{addr}/nope")).await.unwrap_err();
    assert!(e.contains("404"), "{e}");
    // A port nobody listens on: an error naming the URL, not a hang or a panic.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let e = s
        .scrape(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap_err();
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
}

/// The shipped example opts in correctly (the README points at it).
#[test]
fn the_example_workload_opts_in() {
    use serde::Deserialize;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/example-workload.yaml"
    ))
    .unwrap();
    let d: Deployment = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde_json::Value::deserialize(doc).unwrap())
        .find(|v| v["kind"] == "Deployment")
        .map(|v| serde_json::from_value(v).unwrap())
        .unwrap();
    let p = deployment_policy(&d, &AutoscalerConfig::default())
        .unwrap()
        .unwrap();
    assert_eq!((p.min, p.max), (1, 6));
}

/// `--autoscaler FILE` takes the scenario's `[autoscaler]` table; bad files are bad input.
#[test]
fn the_autoscaler_flag_reads_the_scenario_table() {
    use gpusched_live::cmd::{autoscaler_config, CmdError};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("autoscaler.toml");
    std::fs::write(
        &p,
        "kind = \"hpa\"\nmetric = \"queue_per_replica\"\ntarget = 3.0\n",
    )
    .unwrap();
    let c = autoscaler_config(Some(&p)).unwrap();
    assert_eq!(
        c,
        AutoscalerConfig::Hpa(HpaConfig {
            metric: HpaMetric::QueuePerReplica,
            target: 3.0,
            ..Default::default()
        })
    );
    assert_eq!(
        autoscaler_config(None).unwrap(),
        AutoscalerConfig::default()
    );
    for bad in ["kind = \"keda\"\n", "kind = \"hpa\"\ntarget = -1.0\n"] {
        std::fs::write(&p, bad).unwrap();
        assert!(
            matches!(autoscaler_config(Some(&p)), Err(CmdError::BadInput(_))),
            "{bad}"
        );
    }
}
