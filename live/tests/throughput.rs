//! Binding throughput (issue 19): 2,000 pending pods on 1,000 nodes, placed by the engine in one
//! batch and bound through the fake API server over real HTTP, [`BIND_CONCURRENCY`] bindings in
//! flight. The test asserts correctness only (every pod bound once, no GPU given twice); the
//! rate and the process's peak memory are printed (`--nocapture`) and quoted in live/README.md.

mod support;

use gpusched_live::apply::KubeApplier;
use gpusched_live::controller::{Controller, BIND_CONCURRENCY};
use gpusched_live::keys;
use gpusched_live::testutil::{gpu_node, pending_pod};
use gpusched_policies::{EngineConfig, GpuCatalog};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeSet;
use support::apiserver::FakeApiServer;

const NODES: usize = 1000;
const GPUS: u8 = 4;
const PODS: usize = 2000;

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_pending_pods_are_bound_on_a_thousand_nodes() {
    let api = FakeApiServer::start().await;
    for i in 1..=NODES {
        api.apply(&gpu_node(
            &format!("h100-{i}"),
            "NVIDIA-H100-80GB-HBM3",
            GPUS,
        ));
    }
    api.apply(&ConfigMap {
        metadata: ObjectMeta {
            name: Some("device-plugin-config".into()),
            namespace: Some("nvidia-device-plugin".into()),
            ..Default::default()
        },
        data: Some([("default".to_string(), "version: v1\n".to_string())].into()),
        ..Default::default()
    });
    // Large models: one whole GPU each, on nodes that serve the plugin's default (no rollout).
    for i in 0..PODS {
        api.apply(&pending_pod("ml", &format!("llm-{i}"), 40.0));
    }
    // The objects as a watch shows them (uids, resourceVersions).
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
    let cm: ConfigMap = serde_json::from_value(
        api.get("configmaps", "nvidia-device-plugin", "device-plugin-config")
            .unwrap(),
    )
    .unwrap();
    let scope = support::scope();
    let mut ctl = Controller::new(
        EngineConfig::default(),
        GpuCatalog::default(),
        NODES as u32,
        scope.clone(),
        KubeApplier {
            client: api.client(),
            scope,
        },
        None,
    )
    .unwrap();
    let t = std::time::Instant::now();
    let report = ctl.reconcile(&nodes, &pods, Some(&cm), 1000.0).await;
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "throughput: {PODS} pods placed and bound on {NODES} nodes in {secs:.2} s = {:.0} pods/s \
         ({BIND_CONCURRENCY} bindings in flight; peak RSS of the test process, fake API server \
         included: {:.0} MiB)",
        PODS as f64 / secs,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    assert!(
        report.errors.is_empty(),
        "{:?}",
        &report.errors[..report.errors.len().min(5)]
    );
    assert!(
        report.rollouts.is_empty(),
        "no rollout for the plugin's default config"
    );
    assert_eq!(report.decisions.len(), PODS);
    // Every pod bound exactly once, and no GPU handed out twice.
    let mut slots = BTreeSet::new();
    for v in api.list("pods") {
        let node = v["spec"]["nodeName"].as_str().expect("bound").to_string();
        let gpu = v["metadata"]["annotations"][keys::GPU_INDEX]
            .as_str()
            .unwrap()
            .to_string();
        assert!(slots.insert((node, gpu)), "a GPU was given twice: {v}");
    }
    assert_eq!(slots.len(), PODS);
    let bindings = api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/binding"))
        .count();
    assert_eq!(bindings, PODS, "one binding per pod");
    // The Scheduled events went out too, and passed the server's validation.
    assert_eq!(
        api.list("events")
            .iter()
            .filter(|e| e["reason"] == "Scheduled")
            .count(),
        PODS
    );
}
