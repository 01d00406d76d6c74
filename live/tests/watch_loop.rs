//! The controller's whole watch loop (`gpusched_live::controller::run`) against a fake API server
//! on 127.0.0.1: real kube clients, reflectors, HTTP watches, the Lease, bindings and rollouts.
//! See `support/apiserver.rs` for what the fake server implements.
//!
//! A live loop has to be waited for: every wait polls the server's state with a deadline
//! (`FakeApiServer::wait_for`) rather than sleeping a fixed time.

mod support;

use gpusched_live::apply::KubeApplier;
use gpusched_live::controller::{self, Controller, RunOptions};
use gpusched_live::keys;
use gpusched_live::lease::LeaseConfig;
use gpusched_live::rollback::RolloutTiming;
use gpusched_live::testutil::{gpu_node, pending_pod};
use gpusched_policies::{EngineConfig, GpuCatalog};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::time::Duration;
use support::apiserver::FakeApiServer;
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(20);
const PLUGIN_NS: &str = "nvidia-device-plugin";
const PLUGIN_CM: &str = "device-plugin-config";

fn plugin_configmap() -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(PLUGIN_CM.into()),
            namespace: Some(PLUGIN_NS.into()),
            ..Default::default()
        },
        data: Some([("default".to_string(), "version: v1\n".to_string())].into()),
        ..Default::default()
    }
}

/// A cluster of one H100 node and one A100-40GB node, 8 GPUs each, and the plugin's ConfigMap.
async fn cluster() -> FakeApiServer {
    let api = FakeApiServer::start().await;
    api.apply(&gpu_node("h100-1", "NVIDIA-H100-80GB-HBM3", 8));
    api.apply(&gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 8));
    api.apply(&plugin_configmap());
    api
}

struct Running {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Result<(), controller::ControllerError>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.done)
            .await
            .expect("the controller stops within the wait")
            .expect("the controller task did not panic")
            .expect("the controller ended cleanly");
    }
}

/// Starts a controller replica managing namespace `ml`, the way `gpusched live controller`
/// does, with a short period and a short plugin wait.
fn start_controller(api: &FakeApiServer, identity: &str, plugin_timeout: Duration) -> Running {
    start_controller_with(api, identity, plugin_timeout, None)
}

fn start_controller_with(
    api: &FakeApiServer,
    identity: &str,
    plugin_timeout: Duration,
    autoscale: Option<gpusched_live::autoscale::AutoscaleOptions>,
) -> Running {
    start_controller_cfg(
        api,
        identity,
        plugin_timeout,
        autoscale,
        EngineConfig::default(),
    )
}

fn start_controller_cfg(
    api: &FakeApiServer,
    identity: &str,
    plugin_timeout: Duration,
    autoscale: Option<gpusched_live::autoscale::AutoscaleOptions>,
    cfg: EngineConfig,
) -> Running {
    let scope = support::scope();
    let client = api.client();
    let mut ctl = Controller::new(
        cfg,
        GpuCatalog::default(),
        2,
        scope.clone(),
        KubeApplier {
            client: client.clone(),
            scope,
        },
        None,
    )
    .unwrap();
    ctl.timing = RolloutTiming {
        evict_retries: 1,
        retry_delay: Duration::from_millis(50),
        plugin_timeout,
        poll: Duration::from_millis(25),
    };
    let opts = RunOptions {
        period: Duration::from_millis(100),
        lease: LeaseConfig {
            namespace: "gpusched-system".into(),
            name: "gpusched-controller".into(),
            identity: identity.into(),
            duration_s: 2,
        },
        autoscale,
    };
    let (stop, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(controller::run(client, ctl, opts, async {
        let _ = rx.await;
    }));
    Running { stop, done }
}

fn node_name_of(api: &FakeApiServer, ns: &str, pod: &str) -> Option<String> {
    api.get("pods", ns, pod)?["spec"]["nodeName"]
        .as_str()
        .map(str::to_string)
}

fn lease_holder(api: &FakeApiServer) -> Option<String> {
    api.get("leases", "gpusched-system", "gpusched-controller")?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_string)
}

fn bindings_of(api: &FakeApiServer, pod: &str) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&format!("/pods/{pod}/binding")))
        .count()
}

/// Plays the device plugin: when a node's config label names `…-<replicas>`, the node advertises
/// `gpus × replicas` `nvidia.com/gpu` (what the real plugin does after it restarts).
fn emulate_device_plugin(api: &FakeApiServer) -> tokio::task::JoinHandle<()> {
    let api = api.clone();
    tokio::spawn(async move {
        loop {
            for n in api.list("nodes") {
                let mut node: Node = serde_json::from_value(n).unwrap();
                let count: u32 = node.metadata.labels.as_ref().unwrap()[keys::GPU_COUNT]
                    .parse()
                    .unwrap();
                // The plugin serves the ConfigMap entry the label names; its `replicas:` line
                // is the number of pods each GPU is advertised for.
                let entry = node
                    .metadata
                    .labels
                    .as_ref()
                    .unwrap()
                    .get(keys::DEVICE_PLUGIN_CONFIG)
                    .and_then(|k| {
                        let cm = api.get("configmaps", PLUGIN_NS, PLUGIN_CM)?;
                        cm["data"][k.as_str()].as_str().map(str::to_string)
                    });
                let replicas = entry
                    .as_deref()
                    .and_then(|e| {
                        e.lines()
                            .find_map(|l| l.trim().strip_prefix("replicas:"))
                            .and_then(|n| n.trim().parse::<u32>().ok())
                    })
                    .unwrap_or(1);
                // Under MIG's mixed strategy the plugin advertises the instances as
                // `nvidia.com/mig-<profile>` (a count per profile, node-wide).
                let mig = entry
                    .as_deref()
                    .is_some_and(|e| e.contains("migStrategy: mixed"));
                let cap = &mut node.status.as_mut().unwrap().capacity.as_mut().unwrap();
                let want = (count * replicas).to_string();
                let mig_key = "nvidia.com/mig-1g.10gb";
                if cap[keys::GPU_RESOURCE].0 != want || cap.contains_key(mig_key) != mig {
                    cap.insert(
                        keys::GPU_RESOURCE.into(),
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity(want),
                    );
                    if mig {
                        cap.insert(
                            mig_key.into(),
                            k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                                (count * 7).to_string(),
                            ),
                        );
                    } else {
                        cap.remove(mig_key);
                    }
                    api.apply(&node);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

fn foreign_namespace_pod() -> Pod {
    pending_pod("other", "not-ours", 40.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_seen_through_the_watch_are_placed_and_bound() {
    let api = cluster().await;
    let ctl = start_controller(&api, "ctl-a", Duration::from_secs(10));
    api.wait_for("the Lease to be taken", WAIT, |a| {
        (lease_holder(a).as_deref() == Some("ctl-a")).then_some(())
    })
    .await;

    // A pod created after the controller started: it arrives through the pods watch.
    api.apply(&pending_pod("ml", "llm-large", 40.0));
    api.apply(&foreign_namespace_pod());
    let node = api
        .wait_for("llm-large to be bound", WAIT, |a| {
            node_name_of(a, "ml", "llm-large")
        })
        .await;
    assert_eq!(node, "h100-1", "a large workload goes to an H100");
    let pod = api.get("pods", "ml", "llm-large").unwrap();
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann[keys::SHARE_PCT], "100");
    assert_eq!(ann[keys::CLASS], "large");
    assert!(ann[keys::GPU_INDEX].as_str().is_some());
    let binding = api
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/namespaces/ml/pods/llm-large/binding")
        .expect("a binding request");
    assert_eq!(binding.body["target"]["name"], "h100-1");
    assert_eq!(binding.body["metadata"]["uid"], pod["metadata"]["uid"]);

    // A second large pod sees the first one's GPU as taken (through the assumed binding or the
    // watch) and gets another GPU of the node.
    api.apply(&pending_pod("ml", "llm-large-2", 40.0));
    api.wait_for("llm-large-2 to be bound", WAIT, |a| {
        node_name_of(a, "ml", "llm-large-2")
    })
    .await;
    let gpu_of = |p: &str| {
        api.get("pods", "ml", p).unwrap()["metadata"]["annotations"][keys::GPU_INDEX]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_ne!(gpu_of("llm-large"), gpu_of("llm-large-2"));

    // Nothing is ever sent about a pod outside the managed namespaces.
    assert_eq!(node_name_of(&api, "other", "not-ours"), None);
    assert!(
        !api.requests()
            .iter()
            .any(|r| r.method != "GET" && r.path.contains("/namespaces/other/")),
        "a request touched the unmanaged namespace"
    );
    // The user sees where it went, as with kube-scheduler's `Scheduled` event.
    let scheduled = api
        .list("events")
        .into_iter()
        .find(|e| e["reason"] == "Scheduled" && e["regarding"]["name"] == "llm-large")
        .expect("a Scheduled event");
    assert!(scheduled["note"].as_str().unwrap().contains("h100-1"));
    // Each pod was bound exactly once.
    assert_eq!(bindings_of(&api, "llm-large"), 1);
    assert_eq!(bindings_of(&api, "llm-large-2"), 1);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharing_placement_rolls_the_node_config_out_through_the_api() {
    let api = cluster().await;
    let plugin = emulate_device_plugin(&api);
    let ctl = start_controller(&api, "ctl-a", Duration::from_secs(10));
    // A tiny workload goes to an A100 under MPS: the node needs a sharing config first.
    api.apply(&pending_pod("ml", "tiny", 2.0));
    let node = api
        .wait_for("tiny to be bound", WAIT, |a| node_name_of(a, "ml", "tiny"))
        .await;
    assert_eq!(node, "a100-1");
    let n = api.get("nodes", "", "a100-1").unwrap();
    let key = n["metadata"]["labels"][keys::DEVICE_PLUGIN_CONFIG]
        .as_str()
        .expect("the node carries a device-plugin config label")
        .to_string();
    assert!(key.starts_with("gpusched-"), "{key}");
    let cm = api.get("configmaps", PLUGIN_NS, PLUGIN_CM).unwrap();
    let entry = cm["data"][&key]
        .as_str()
        .expect("the ConfigMap has the entry");
    assert!(entry.contains("sharing"), "{entry}");
    assert_eq!(cm["data"]["default"], "version: v1\n", "other entries kept");
    // The rollout recorded how to undo it, cordoned, then uncordoned the node.
    assert!(n["metadata"]["annotations"][keys::ROLLBACK]
        .as_str()
        .is_some());
    assert!(
        n["metadata"]["annotations"]
            .get(keys::ROLLOUT_IN_PROGRESS)
            .is_none(),
        "a finished rollout leaves no in-progress marker"
    );
    assert_ne!(n["spec"]["unschedulable"], Value::Bool(true));
    let order: Vec<String> = api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == "/api/v1/nodes/a100-1")
        .map(|r| r.body.to_string())
        .collect();
    let cordon = order
        .iter()
        .position(|b| b.contains("\"unschedulable\":true"));
    let relabel = order
        .iter()
        .position(|b| b.contains(keys::DEVICE_PLUGIN_CONFIG));
    let uncordon = order
        .iter()
        .position(|b| b.contains("\"unschedulable\":null"));
    assert!(
        cordon < relabel && relabel < uncordon && cordon.is_some(),
        "cordon, relabel, uncordon in that order: {order:?}"
    );
    // The pod was bound only after the node was uncordoned.
    let reqs = api.requests();
    let uncordon_at = reqs
        .iter()
        .position(|r| r.method == "PATCH" && r.body.to_string().contains("\"unschedulable\":null"))
        .unwrap();
    let bind_at = reqs
        .iter()
        .position(|r| r.path.ends_with("/pods/tiny/binding"))
        .unwrap();
    assert!(uncordon_at < bind_at);
    ctl.stop().await;
    plugin.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_the_device_plugin_never_confirms_is_rolled_back() {
    let api = cluster().await;
    // No device plugin: the node never advertises the new capacity.
    let ctl = start_controller(&api, "ctl-a", Duration::from_millis(300));
    api.apply(&pending_pod("ml", "tiny", 2.0));
    api.wait_for("a rollback to restore the node", WAIT, |a| {
        let reqs = a.requests();
        let relabelled = reqs.iter().any(|r| {
            r.method == "PATCH"
                && r.path == "/api/v1/nodes/a100-1"
                && r.body.to_string().contains(keys::DEVICE_PLUGIN_CONFIG)
        });
        let n = a.get("nodes", "", "a100-1")?;
        let restored = n["metadata"]["labels"]
            .get(keys::DEVICE_PLUGIN_CONFIG)
            .is_none()
            && n["spec"]["unschedulable"] != Value::Bool(true);
        (relabelled && restored).then_some(())
    })
    .await;
    ctl.stop().await;
    assert_eq!(
        node_name_of(&api, "ml", "tiny"),
        None,
        "not bound to a node whose config failed"
    );
    let cm = api.get("configmaps", PLUGIN_NS, PLUGIN_CM).unwrap();
    let keys_now: Vec<&String> = cm["data"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys_now,
        vec!["default"],
        "the entry written for the rollout is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_acts_and_a_stopping_leader_hands_over() {
    let api = cluster().await;
    let a = start_controller(&api, "ctl-a", Duration::from_secs(10));
    api.wait_for("ctl-a to lead", WAIT, |s| {
        (lease_holder(s).as_deref() == Some("ctl-a")).then_some(())
    })
    .await;
    let b = start_controller(&api, "ctl-b", Duration::from_secs(10));
    api.apply(&pending_pod("ml", "first", 40.0));
    api.wait_for("first to be bound", WAIT, |s| {
        node_name_of(s, "ml", "first")
    })
    .await;
    assert_eq!(lease_holder(&api).as_deref(), Some("ctl-a"));
    assert_eq!(bindings_of(&api, "first"), 1, "the follower never binds");

    // The leader stops: it releases the Lease and the follower takes over without waiting for
    // it to expire.
    a.stop().await;
    api.wait_for("ctl-b to lead", WAIT, |s| {
        (lease_holder(s).as_deref() == Some("ctl-b")).then_some(())
    })
    .await;
    let lease = api
        .get("leases", "gpusched-system", "gpusched-controller")
        .unwrap();
    assert!(lease["spec"]["leaseTransitions"].as_i64().unwrap() >= 1);
    api.apply(&pending_pod("ml", "second", 40.0));
    api.wait_for("second to be bound by ctl-b", WAIT, |s| {
        node_name_of(s, "ml", "second")
    })
    .await;
    assert_eq!(bindings_of(&api, "second"), 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_survives_a_compacted_watch_and_lists_again() {
    let api = cluster().await;
    let ctl = start_controller(&api, "ctl-a", Duration::from_secs(10));
    api.wait_for("the Lease to be taken", WAIT, |a| {
        (lease_holder(a).as_deref() == Some("ctl-a")).then_some(())
    })
    .await;
    // Lease renewals move the resourceVersion on, so every watch's last version is now older
    // than the compaction point: resuming answers 410 Gone and the reflectors must list again.
    api.wait_for("a Lease renewal", WAIT, |a| {
        (a.requests().iter().filter(|r| r.method == "PUT").count() >= 2).then_some(())
    })
    .await;
    let lists_before = api
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/pods" && !r.query.contains("watch"))
        .count();
    api.compact_and_drop_watches();
    api.apply(&pending_pod("ml", "after-compaction", 40.0));
    api.wait_for("after-compaction to be bound", WAIT, |a| {
        node_name_of(a, "ml", "after-compaction")
    })
    .await;
    let lists_after = api
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/pods" && !r.query.contains("watch"))
        .count();
    assert!(
        lists_after > lists_before,
        "the pods reflector listed again"
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_cannot_be_placed_says_why_as_kube_scheduler_does() {
    let api = cluster().await;
    let ctl = start_controller(&api, "ctl-a", Duration::from_secs(10));
    // 200 GB fits no GPU of the cluster; the other pod lacks the annotation gpusched needs.
    api.apply(&pending_pod("ml", "too-big", 200.0));
    let mut unannotated = pending_pod("ml", "unannotated", 1.0);
    unannotated.metadata.annotations = None;
    api.apply(&unannotated);
    for pod in ["too-big", "unannotated"] {
        let cond = api
            .wait_for(&format!("{pod} to carry PodScheduled=False"), WAIT, |a| {
                let p = a.get("pods", "ml", pod)?;
                p["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == "PodScheduled")
                    .cloned()
            })
            .await;
        assert_eq!(cond["status"], "False");
        assert_eq!(cond["reason"], "Unschedulable");
        assert!(!cond["message"].as_str().unwrap().is_empty());
        let p = api.get("pods", "ml", pod).unwrap();
        assert_eq!(
            p["status"]["phase"], "Pending",
            "the kubelet's status fields are kept"
        );
    }
    let unannotated_msg = api.get("pods", "ml", "unannotated").unwrap()["status"]["conditions"][0]
        ["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        unannotated_msg.contains(keys::MODEL_MEMORY_GB),
        "{unannotated_msg}"
    );
    let events = api
        .wait_for("two FailedScheduling events", WAIT, |a| {
            let ev: Vec<Value> = a
                .list("events")
                .into_iter()
                .filter(|e| e["reason"] == "FailedScheduling")
                .collect();
            (ev.len() >= 2).then_some(ev)
        })
        .await;
    for e in &events {
        assert_eq!(e["type"], "Warning");
        assert_eq!(e["regarding"]["kind"], "Pod");
        assert_eq!(e["reportingInstance"], "ctl-a");
    }
    // Told once per reason, not at every reconcile.
    let rounds_later = api.requests().len() + 40;
    api.wait_for("more reconcile rounds", WAIT, |a| {
        (a.requests().len() > rounds_later).then_some(())
    })
    .await;
    let failed: Vec<Value> = api
        .list("events")
        .into_iter()
        .filter(|e| e["reason"] == "FailedScheduling")
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    ctl.stop().await;
}

/// Serves a fixed Prometheus text page on 127.0.0.1 (a vLLM pod's /metrics); returns the port.
async fn serve_metrics(text: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opted_in_deployment_is_scaled_from_its_pods_queue() {
    use gpusched_live::autoscale::AutoscaleOptions;
    use gpusched_policies::autoscale::{AutoscalerConfig, HpaConfig, HpaMetric};
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    let api = cluster().await;
    // Two ready replicas, 30 requests queued on each.
    let port = serve_metrics(
        "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} 30\nvllm:num_requests_running{model_name=\"m\"} 4\nvllm:request_success_total{model_name=\"m\",finished_reason=\"stop\"} 100\n",
    )
    .await;
    let app: std::collections::BTreeMap<String, String> =
        [("app".to_string(), "chat".to_string())].into();
    api.apply(&Deployment {
        metadata: ObjectMeta {
            name: Some("chat".into()),
            namespace: Some("ml".into()),
            labels: Some([(keys::AUTOSCALE.to_string(), "true".to_string())].into()),
            annotations: Some(
                [
                    (keys::MIN_REPLICAS.to_string(), "1".to_string()),
                    (keys::MAX_REPLICAS.to_string(), "6".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(app.clone()),
                ..Default::default()
            },
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            replicas: Some(2),
            ready_replicas: Some(2),
            ..Default::default()
        }),
    });
    // A Deployment that did not opt in is never scaled.
    api.apply(&Deployment {
        metadata: ObjectMeta {
            name: Some("batch".into()),
            namespace: Some("ml".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            ..Default::default()
        }),
        status: None,
    });
    for name in ["chat-a", "chat-b"] {
        api.apply(&Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ml".into()),
                labels: Some(app.clone()),
                annotations: Some([("prometheus.io/port".to_string(), port.to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("h100-1".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some("127.0.0.1".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        });
    }
    let opts = AutoscaleOptions {
        config: AutoscalerConfig::Hpa(HpaConfig {
            metric: HpaMetric::QueuePerReplica,
            target: 5.0,
            up_stabilisation_s: 0.0,
            ..Default::default()
        }),
        period_s: 0.2,
        ..Default::default()
    };
    let ctl = start_controller_with(&api, "ctl-a", Duration::from_secs(10), Some(opts));
    let replicas = api
        .wait_for("chat to be scaled up", WAIT, |a| {
            let r = a.get("deployments", "ml", "chat")?["spec"]["replicas"].as_i64()?;
            (r > 2).then_some(r)
        })
        .await;
    ctl.stop().await;
    // HPA on queue per replica: 12 wanted, the scale-up rate policy allows 6 (also the max).
    assert_eq!(
        replicas, 6,
        "ceil(2 × 30 / 5) = 12, rate-limited to 2 + max(4 pods, 100 %) = 6"
    );
    let patches: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/deployments/"))
        .collect();
    assert!(patches
        .iter()
        .all(|r| r.path == "/apis/apps/v1/namespaces/ml/deployments/chat/scale"));
    assert_eq!(
        api.get("deployments", "ml", "batch").unwrap()["spec"]["replicas"],
        1
    );
}

/// A `Write` the test can read back after the controller has taken the applier.
#[derive(Clone, Default)]
struct SharedOut(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedOut {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_prints_every_change_and_sends_no_write_at_all() {
    use gpusched_live::dryrun::DryRunApplier;
    let api = cluster().await;
    api.apply(&pending_pod("ml", "llm-large", 40.0));
    api.apply(&pending_pod("ml", "tiny", 2.0));
    let scope = support::scope();
    let out = SharedOut::default();
    let ctl = Controller::new(
        EngineConfig::default(),
        GpuCatalog::default(),
        2,
        scope.clone(),
        DryRunApplier::new(scope, Box::new(out.clone())),
        None,
    )
    .unwrap();
    let opts = RunOptions {
        period: Duration::from_millis(100),
        lease: LeaseConfig {
            namespace: "gpusched-system".into(),
            name: "gpusched-controller".into(),
            identity: "dry".into(),
            duration_s: 2,
        },
        autoscale: None,
    };
    let (stop, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(controller::run(api.client(), ctl, opts, async {
        let _ = rx.await;
    }));
    let printed = |o: &SharedOut| String::from_utf8_lossy(&o.0.lock().unwrap()).into_owned();
    api.wait_for("both bindings to be printed", WAIT, |_| {
        let p = printed(&out);
        (p.contains("/pods/llm-large/binding") && p.contains("/pods/tiny/binding")).then_some(())
    })
    .await;
    Running { stop, done }.stop().await;
    let text = printed(&out);
    // The sharing rollout for the tiny pod is printed step by step, as it would be sent.
    for step in [
        "configmaps/device-plugin-config",
        "\"unschedulable\":true",
        keys::DEVICE_PLUGIN_CONFIG,
    ] {
        assert!(text.contains(step), "missing {step} in\n{text}");
    }
    let writes: Vec<String> = api
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "a dry run sent {writes:?}");
    assert!(
        api.list("leases").is_empty(),
        "no Lease is taken in a dry run"
    );
    assert_eq!(node_name_of(&api, "ml", "llm-large"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_left_half_done_by_a_stopped_replica_is_rolled_back() {
    use gpusched_live::rollback::RollbackRecord;
    let api = cluster().await;
    // What a replica killed between relabel and uncordon leaves behind: the node cordoned and
    // relabelled, its new entry written, the record and the in-progress marker on the node.
    let key = "gpusched-mps-per-client";
    let mut cm = plugin_configmap();
    cm.data
        .as_mut()
        .unwrap()
        .insert(key.into(), "version: v1\n".into());
    api.apply(&cm);
    let mut node = gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 8);
    node.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(keys::DEVICE_PLUGIN_CONFIG.into(), key.into());
    node.spec.as_mut().unwrap().unschedulable = Some(true);
    let record = RollbackRecord {
        node: "a100-1".into(),
        label_before: None,
        entry_key: Some(key.into()),
        entry_before: None,
        cordoned_before: false,
        t_unix_s: 1000.0,
    };
    node.metadata.annotations = Some(
        [
            (
                keys::ROLLBACK.to_string(),
                serde_json::to_string(&record).unwrap(),
            ),
            (keys::ROLLOUT_IN_PROGRESS.to_string(), "1000".to_string()),
        ]
        .into(),
    );
    api.apply(&node);
    let ctl = start_controller(&api, "ctl-new", Duration::from_secs(10));
    api.wait_for("the node to be restored", WAIT, |a| {
        let n = a.get("nodes", "", "a100-1")?;
        (n["metadata"]["annotations"]
            .get(keys::ROLLOUT_IN_PROGRESS)
            .is_none())
        .then_some(())
    })
    .await;
    ctl.stop().await;
    let n = api.get("nodes", "", "a100-1").unwrap();
    assert!(n["metadata"]["labels"]
        .get(keys::DEVICE_PLUGIN_CONFIG)
        .is_none());
    assert_ne!(n["spec"]["unschedulable"], Value::Bool(true));
    let cm = api.get("configmaps", PLUGIN_NS, PLUGIN_CM).unwrap();
    assert!(
        cm["data"].get(key).is_none(),
        "the entry no other node uses is removed"
    );
    assert_eq!(cm["data"]["default"], "version: v1\n");
}

fn taint(key: &str, value: Option<&str>, effect: &str) -> k8s_openapi::api::core::v1::Taint {
    k8s_openapi::api::core::v1::Taint {
        key: key.into(),
        value: value.map(Into::into),
        effect: effect.into(),
        ..Default::default()
    }
}

fn toleration(key: &str, value: &str, effect: &str) -> k8s_openapi::api::core::v1::Toleration {
    k8s_openapi::api::core::v1::Toleration {
        key: Some(key.into()),
        operator: Some("Equal".into()),
        value: Some(value.into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// Issue 19: 1,979 of 2,000 pods were bound onto nodes tainted not-ready. A pod is bound only
/// onto a Ready node whose NoSchedule/NoExecute taints it tolerates; otherwise it waits and
/// says why, counting every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_and_readiness_keep_pods_off_nodes_as_kube_scheduler_does() {
    let api = FakeApiServer::start().await;
    let mut not_ready = gpu_node("h100-1", "NVIDIA-H100-80GB-HBM3", 8);
    not_ready.spec.as_mut().unwrap().taints = Some(vec![taint(
        "node.kubernetes.io/not-ready",
        None,
        "NoSchedule",
    )]);
    // Ready=False but the lifecycle controller has not tainted it yet.
    let mut unready = gpu_node("h100-2", "NVIDIA-H100-80GB-HBM3", 8);
    unready
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()[0]
        .status = "False".into();
    let mut dedicated = gpu_node("h100-3", "NVIDIA-H100-80GB-HBM3", 8);
    dedicated.spec.as_mut().unwrap().taints = Some(vec![
        taint("dedicated", Some("llm"), "NoExecute"),
        // Only a preference: never refuses.
        taint("spot", Some("true"), "PreferNoSchedule"),
    ]);
    for n in [&not_ready, &unready, &dedicated] {
        api.apply(n);
    }
    api.apply(&plugin_configmap());
    let ctl = start_controller(&api, "ctl-a", Duration::from_secs(10));
    api.apply(&pending_pod("ml", "plain", 40.0));
    let mut tolerant = pending_pod("ml", "tolerant", 40.0);
    tolerant.spec.as_mut().unwrap().tolerations =
        Some(vec![toleration("dedicated", "llm", "NoExecute")]);
    api.apply(&tolerant);
    let node = api
        .wait_for("the tolerant pod to be bound", WAIT, |a| {
            node_name_of(a, "ml", "tolerant")
        })
        .await;
    assert_eq!(node, "h100-3", "the only node whose taints it tolerates");
    let msg = api
        .wait_for("plain to say why it waits", WAIT, |a| {
            let p = a.get("pods", "ml", "plain")?;
            p["status"]["conditions"][0]["message"]
                .as_str()
                .map(str::to_string)
        })
        .await;
    assert_eq!(
        msg,
        "0/3 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) had untolerated taint {dedicated: llm}."
    );
    ctl.stop().await;
    assert_eq!(node_name_of(&api, "ml", "plain"), None);
    assert_eq!(bindings_of(&api, "plain"), 0);
}

/// Issue 19: SIGTERM during a long reconcile (a rollout waiting for the device plugin) used to
/// start another reconcile and another rollout. The rollout in progress ends (here: rolled
/// back when the plugin never answers), then the controller exits without starting another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_rollout_finishes_it_and_starts_nothing_new() {
    let api = cluster().await;
    let ctl = start_controller(&api, "ctl-a", Duration::from_millis(1500));
    // Two small pods: each would need a sharing rollout (nothing runs on the nodes yet).
    api.apply(&pending_pod("ml", "tiny-a", 2.0));
    api.apply(&pending_pod("ml", "tiny-b", 2.0));
    let cordons = |a: &FakeApiServer| {
        a.requests()
            .iter()
            .filter(|r| {
                r.method == "PATCH"
                    && r.path.starts_with("/api/v1/nodes/")
                    && r.body["spec"]["unschedulable"] == Value::Bool(true)
            })
            .count()
    };
    api.wait_for("a rollout to cordon its node", WAIT, |a| {
        (cordons(a) == 1).then_some(())
    })
    .await;
    let t = std::time::Instant::now();
    ctl.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "stopped after the rollout in progress, not after another: {:?}",
        t.elapsed()
    );
    assert_eq!(cordons(&api), 1, "no second rollout was started");
    // The rollout that was under way was finished (rolled back), not cut in half.
    for n in api.list("nodes") {
        assert!(
            n["metadata"]["annotations"]
                .get(keys::ROLLOUT_IN_PROGRESS)
                .is_none(),
            "{n}"
        );
        assert_ne!(n["spec"]["unschedulable"], Value::Bool(true), "{n}");
    }
    assert_eq!(
        lease_holder(&api).as_deref().unwrap_or(""),
        "",
        "lease released"
    );
}

/// Issue 19: kube's default client retried each PodDisruptionBudget 429 up to 15 times with
/// backoff before gpusched saw it. gpusched's client (the one the CLI builds) hands the refusal
/// over at once; kube's default would still be retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdb_429_reaches_gpusched_at_once() {
    use gpusched_live::apply::{Action, Applier, ApplyError};
    let api = FakeApiServer::start().await;
    let mut pod = pending_pod("ml", "guarded", 8.0);
    pod.spec.as_mut().unwrap().node_name = Some("a100-1".into());
    api.apply(&pod);
    api.protect("ml", "guarded");
    let evictions = |a: &FakeApiServer| {
        a.requests()
            .iter()
            .filter(|r| r.path.ends_with("/pods/guarded/eviction"))
            .count()
    };
    let ours = KubeApplier {
        client: api.client(),
        scope: support::scope(),
    };
    let evict = Action::Evict {
        namespace: "ml".into(),
        name: "guarded".into(),
    };
    let t = std::time::Instant::now();
    let r = ours.apply(&evict).await;
    assert!(
        matches!(r, Err(ApplyError::EvictionBlocked { .. })),
        "{r:?}"
    );
    assert_eq!(evictions(&api), 1, "one request, no hidden retries");
    // Far below the first seconds of kube's backoff (a loaded CI machine is slow, not that slow).
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // kube's default client, for contrast: still retrying after two seconds.
    let default_client =
        kube::Client::try_from(kube::Config::new(api.url.parse().unwrap())).unwrap();
    let theirs = KubeApplier {
        client: default_client,
        scope: support::scope(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), theirs.apply(&evict)).await;
    assert!(
        evictions(&api) > 2,
        "kube's default retry layer retries 429s"
    );
}

/// Issue 19: a failed rollout was retried back to back by the next pending pod (minutes each,
/// blocking all scheduling). A node whose rollout failed is not tried again for that config
/// until its backoff ends; the pod says so, and other pods are placed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollout_backs_off_and_other_pods_are_still_placed() {
    let api = cluster().await;
    // No device plugin: every rollout fails after the (short) plugin wait.
    let ctl = start_controller(&api, "ctl-a", Duration::from_millis(200));
    api.apply(&pending_pod("ml", "tiny", 2.0));
    let cordons_of = |a: &FakeApiServer, node: &str| {
        a.requests()
            .iter()
            .filter(|r| {
                r.method == "PATCH"
                    && r.path == format!("/api/v1/nodes/{node}")
                    && r.body["spec"]["unschedulable"] == Value::Bool(true)
            })
            .count()
    };
    let msg = api
        .wait_for("tiny to say its rollouts back off", WAIT, |a| {
            let p = a.get("pods", "ml", "tiny")?;
            let m = p["status"]["conditions"][0]["message"]
                .as_str()?
                .to_string();
            m.contains("failed recently").then_some(m)
        })
        .await;
    assert!(msg.starts_with("0/2 nodes are available"), "{msg}");
    // A whole-GPU pod needs no rollout and is bound while tiny waits.
    api.apply(&pending_pod("ml", "llm-large", 40.0));
    api.wait_for("llm-large to be bound", WAIT, |a| {
        node_name_of(a, "ml", "llm-large")
    })
    .await;
    // Many more rounds: still one rollout per node.
    let later = api.requests().len() + 60;
    api.wait_for("more reconcile rounds", WAIT, |a| {
        (a.requests().len() > later).then_some(())
    })
    .await;
    ctl.stop().await;
    for node in ["a100-1", "h100-1"] {
        assert!(cordons_of(&api, node) <= 1, "{node} rolled out again");
    }
    assert_eq!(node_name_of(&api, "ml", "tiny"), None);
}

/// A running low-priority pod bound by gpusched on a one-GPU node.
fn low_priority_pod(name: &str, node: &str, replica: u64) -> Pod {
    let mut p = gpusched_live::testutil::gpusched_pod(
        "ml",
        name,
        "batch-low",
        node,
        0,
        replica,
        100,
        40.0,
        "large",
    );
    p.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(keys::PRIORITY.into(), "low".into());
    p
}

fn high_priority_pending(name: &str) -> Pod {
    let mut p = pending_pod("ml", name, 40.0);
    p.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(keys::PRIORITY.into(), "high".into());
    p
}

/// Issue 19: `Decision::Preempt` was ignored. Now the victim is evicted through the Eviction
/// API, gets a `Preempted` event, and the preemptor is bound once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_evicts_the_victim_and_binds_the_preemptor() {
    let api = FakeApiServer::start().await;
    api.apply(&gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 1));
    api.apply(&plugin_configmap());
    api.apply(&low_priority_pod("batch-0", "a100-1", 1));
    // An older pending pod of the victim's priority: it cannot preempt, and it must not take
    // the room the preemptor freed (it sorts first by name; creation times are equal here).
    let mut waiting = pending_pod("ml", "aaa-low", 40.0);
    waiting
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(keys::PRIORITY.into(), "low".into());
    api.apply(&waiting);
    let ctl = start_controller(&api, "ctl-a", Duration::from_secs(10));
    api.apply(&high_priority_pending("urgent"));
    let node = api
        .wait_for("the preemptor to be bound", WAIT, |a| {
            node_name_of(a, "ml", "urgent")
        })
        .await;
    ctl.stop().await;
    assert_eq!(node, "a100-1");
    assert!(
        api.get("pods", "ml", "batch-0").is_none(),
        "the victim is gone"
    );
    let evictions: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .collect();
    assert_eq!(evictions.len(), 1, "evicted once, never twice");
    assert_eq!(evictions[0].body["kind"], "Eviction");
    let preempted = api
        .list("events")
        .into_iter()
        .find(|e| e["reason"] == "Preempted")
        .expect("a Preempted event");
    assert_eq!(preempted["regarding"]["name"], "batch-0");
    assert!(preempted["note"].as_str().unwrap().contains("ml/urgent"));
    assert_eq!(bindings_of(&api, "urgent"), 1);
    assert_eq!(node_name_of(&api, "ml", "aaa-low"), None);
}

/// A victim a PodDisruptionBudget protects is not evicted (429): the preemptor stays pending
/// and says why (the preemption is tried again at later rounds, as kube-scheduler retries it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_blocked_by_a_budget_leaves_both_pods_and_says_why() {
    let api = FakeApiServer::start().await;
    api.apply(&gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 1));
    api.apply(&plugin_configmap());
    api.apply(&low_priority_pod("batch-0", "a100-1", 1));
    api.protect("ml", "batch-0");
    let ctl = start_controller(&api, "ctl-a", Duration::from_secs(10));
    api.apply(&high_priority_pending("urgent"));
    let msg = api
        .wait_for("the preemptor to say why it waits", WAIT, |a| {
            let p = a.get("pods", "ml", "urgent")?;
            p["status"]["conditions"][0]["message"]
                .as_str()
                .filter(|m| m.contains("Preemption"))
                .map(str::to_string)
        })
        .await;
    ctl.stop().await;
    assert!(msg.contains("disruption budget"), "{msg}");
    assert!(api.get("pods", "ml", "batch-0").is_some());
    assert_eq!(node_name_of(&api, "ml", "urgent"), None);
}

/// Issue 19: every Event gpusched sent was refused by a real API server (generateName ending in
/// '.'); the fake server now refuses it too, and accepts what gpusched sends today.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_server_refuses_what_kube_apiserver_refuses() {
    use gpusched_live::apply::{Action, Applier};
    let api = FakeApiServer::start().await;
    let client = api.client();
    let ours = Action::PodEvent {
        namespace: "ml".into(),
        pod: "chat-0".into(),
        uid: Some("u".into()),
        warning: false,
        reason: "Scheduled".into(),
        note: "→".repeat(600),
        instance: "ctl-a".into(),
        at: "2026-01-01T00:00:00.000000Z".into(),
    };
    let applier = KubeApplier {
        client: client.clone(),
        scope: support::scope(),
    };
    applier
        .apply(&ours)
        .await
        .expect("gpusched's Event is valid");
    let ev = &api.list("events")[0];
    let name = ev["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("chat-0-") && name.len() == "chat-0-".len() + 5,
        "{name}"
    );
    assert!(
        ev["note"].as_str().unwrap().len() <= 1024,
        "the note is cut to 1024 bytes"
    );
    // The request as gpusched once sent it.
    let mut old = ours.to_request().unwrap();
    let mut body: Value = serde_json::from_slice(old.body()).unwrap();
    body["metadata"]["generateName"] = "chat-0.".into();
    *old.body_mut() = serde_json::to_vec(&body).unwrap();
    match client.request::<Value>(old).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("generateName"), "{}", s.message);
        }
        other => panic!("accepted: {other:?}"),
    }
    // Labels and annotations are checked on every write.
    api.apply(&gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 1));
    let bad_label = Action::PatchNodeMeta {
        node: "a100-1".into(),
        labels: [(keys::DEVICE_PLUGIN_CONFIG.to_string(), Some("x".repeat(64)))].into(),
        annotations: Default::default(),
    };
    let e = applier.apply(&bad_label).await.unwrap_err();
    assert!(e.to_string().contains("422"), "{e}");
}

/// A pending pod asking for `gpus` whole GPUs (a tensor-parallel replica) for a model of
/// `memory_gb` in all.
fn tp_pending(name: &str, memory_gb: f64, gpus: u32) -> Pod {
    let mut p = pending_pod("ml", name, memory_gb);
    p.spec.as_mut().unwrap().containers[0].resources =
        Some(k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some(
                [(
                    keys::GPU_RESOURCE.to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity(gpus.to_string()),
                )]
                .into(),
            ),
            ..Default::default()
        });
    p
}

/// Tensor-parallel pods through the batch of placements, the concurrent bindings and the node
/// filter: three TP2 pods decided in one round against an untainted 4-GPU node and a tainted
/// 8-GPU node. The two that fit take disjoint GPU pairs of the untainted node (each assumed
/// binding holds both its GPUs for the next decision), the tainted node is never used, and the
/// third waits and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tensor_parallel_pods_are_batched_bound_and_kept_off_tainted_nodes() {
    let api = FakeApiServer::start().await;
    let mut tainted = gpu_node("h100-1", "NVIDIA-H100-80GB-HBM3", 8);
    tainted.spec.as_mut().unwrap().taints = Some(vec![taint(
        "node.kubernetes.io/not-ready",
        None,
        "NoSchedule",
    )]);
    let small = gpu_node("h100-2", "NVIDIA-H100-80GB-HBM3", 4);
    for mut n in [tainted, small] {
        // Whole GPUs under the plugin's exclusive config: no rollout needed.
        n.metadata.labels.as_mut().unwrap().insert(
            keys::DEVICE_PLUGIN_CONFIG.into(),
            "gpusched-exclusive".into(),
        );
        api.apply(&n);
    }
    api.apply(&plugin_configmap());
    // All pending before the controller starts: one round decides them together.
    for name in ["llama-0", "llama-1", "llama-2"] {
        api.apply(&tp_pending(name, 140.0, 2));
    }
    let ctl = start_controller(&api, "ctl-a", Duration::from_secs(10));
    let msg = api
        .wait_for("the third TP pod to say why it waits", WAIT, |a| {
            let p = a.get("pods", "ml", "llama-2")?;
            p["status"]["conditions"][0]["message"]
                .as_str()
                .map(str::to_string)
        })
        .await;
    let mut held: Vec<String> = Vec::new();
    for name in ["llama-0", "llama-1"] {
        let node = api
            .wait_for("a TP pod to be bound", WAIT, |a| {
                node_name_of(a, "ml", name)
            })
            .await;
        assert_eq!(node, "h100-2", "{name}: never the tainted node");
        let pod = api.get("pods", "ml", name).unwrap();
        let a = &pod["metadata"]["annotations"];
        let indices = a[keys::GPU_INDICES].as_str().unwrap().to_string();
        assert_eq!(
            a[keys::GPU_INDEX].as_str(),
            indices.split(',').next(),
            "{name}: gpu-index is the first of gpu-indices"
        );
        assert_eq!(a[keys::MEMORY_GB].as_str(), Some("70"), "140 GB over TP2");
        held.push(indices);
    }
    held.sort();
    assert_eq!(held, vec!["0,1", "2,3"], "disjoint GPU pairs of h100-2");
    assert!(msg.contains("node.kubernetes.io/not-ready"), "{msg}");
    ctl.stop().await;
    assert_eq!(node_name_of(&api, "ml", "llama-2"), None);
    assert_eq!(bindings_of(&api, "llama-2"), 0);
    assert_eq!(
        bindings_of(&api, "llama-0") + bindings_of(&api, "llama-1"),
        2
    );
}

/// A MIG placement through the real client and the fake server: the node gets the device
/// plugin's MIG config, the pod is bound, and the node records the GPU's layout
/// (`gpusched.io/mig-layout.<gpu>`, a merge patch the server validates). Once the pod is deleted
/// the record stays, so the view rebuilt from the server's objects still has the layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mig_placement_records_the_layout_on_the_node_and_it_outlives_the_pod() {
    let api = cluster().await;
    let plugin = emulate_device_plugin(&api);
    let cfg = EngineConfig {
        sharing: gpusched_policies::admission::SharingPolicy::Mig,
        ..Default::default()
    };
    let ctl = start_controller_cfg(&api, "ctl-a", Duration::from_secs(10), None, cfg);
    api.apply(&pending_pod("ml", "tiny", 3.0));
    let node = api
        .wait_for("tiny to be bound", WAIT, |a| node_name_of(a, "ml", "tiny"))
        .await;
    let n = api.get("nodes", "", &node).unwrap();
    let records: Vec<(String, String)> = n["metadata"]["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with(keys::NODE_MIG_LAYOUT_PREFIX))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(records.len(), 1, "{n:#}");
    let pod = api.get("pods", "ml", "tiny").unwrap();
    let gpu = pod["metadata"]["annotations"][keys::GPU_INDEX]
        .as_str()
        .unwrap();
    assert_eq!(
        records[0].0,
        format!("{}{gpu}", keys::NODE_MIG_LAYOUT_PREFIX)
    );
    assert_eq!(
        records[0].1,
        pod["metadata"]["annotations"][keys::MIG_LAYOUT]
            .as_str()
            .unwrap(),
        "the node records the layout the pod was bound into"
    );
    // The record was written before the binding.
    let reqs = api.requests();
    let record_at = reqs
        .iter()
        .position(|r| {
            r.method == "PATCH"
                && r.path == format!("/api/v1/nodes/{node}")
                && r.body.to_string().contains(keys::NODE_MIG_LAYOUT_PREFIX)
        })
        .expect("a node patch with the MIG layout");
    let bind_at = reqs
        .iter()
        .position(|r| r.path.ends_with("/pods/tiny/binding"))
        .unwrap();
    assert!(record_at < bind_at);
    ctl.stop().await;
    plugin.abort();
    // The pod leaves; the layout stays with its node.
    api.delete("pods", "ml", "tiny");
    let nodes: Vec<Node> = api
        .list("nodes")
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let pods: Vec<Pod> = api
        .list("pods")
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let v = gpusched_live::view::build_view(&nodes, &pods, &Default::default(), 0.0);
    assert!(v.notes.is_empty(), "{:?}", v.notes);
    let i = v.nodes.index_of(&node).unwrap();
    let g = &v.nodes[i].gpus[gpu.parse::<usize>().unwrap()];
    assert!(g.allocations.is_empty());
    let model = v.nodes[i].model;
    let layout: Vec<_> = g.mig.iter().map(|s| s.instance).collect();
    assert_eq!(
        gpusched_live::codec::layout_text(&layout, model),
        records[0].1
    );
}
