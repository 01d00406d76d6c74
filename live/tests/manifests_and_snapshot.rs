//! live/deploy/ manifests parse into k8s-openapi types without losing a field, and
//! `live snapshot` writes a scenario the simulator accepts.

use gpusched_live::keys;
use gpusched_live::manifests::FILES;
use gpusched_live::testutil::{gpu_node, gpusched_pod, pending_pod};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Deserialize;
use serde_json::Value;

/// Deserialises into the typed object and back: a field the type does not know (a typo) would
/// vanish and fail the comparison.
fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> T {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, doc, "a field was lost parsing {}", doc["kind"]);
    typed
}

#[test]
fn every_manifest_parses_into_kubernetes_types() {
    let mut kinds = Vec::new();
    for (file, text) in FILES {
        for d in serde_yaml_ng::Deserializer::from_str(text) {
            let v: Value = Value::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}"));
            if v.is_null() {
                continue;
            }
            let kind = v["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: a document without kind"))
                .to_string();
            match kind.as_str() {
                "Namespace" => drop(roundtrip::<Namespace>(&v)),
                "ServiceAccount" => drop(roundtrip::<ServiceAccount>(&v)),
                "ClusterRole" => {
                    let r = roundtrip::<ClusterRole>(&v);
                    // Least privilege: no wildcards, no secrets, no delete.
                    for rule in r.rules.iter().flatten() {
                        assert!(
                            !rule.verbs.iter().any(|x| x == "*" || x == "delete"),
                            "{file}: {rule:?}"
                        );
                        assert!(
                            !rule
                                .resources
                                .iter()
                                .flatten()
                                .any(|x| x == "*" || x == "secrets"),
                            "{file}: {rule:?}"
                        );
                    }
                }
                "ClusterRoleBinding" => drop(roundtrip::<ClusterRoleBinding>(&v)),
                "Role" => {
                    let r = roundtrip::<Role>(&v);
                    assert_ne!(r.metadata.namespace.as_deref(), Some(keys::KUBE_SYSTEM));
                }
                "RoleBinding" => drop(roundtrip::<RoleBinding>(&v)),
                "Deployment" => {
                    let d = roundtrip::<Deployment>(&v);
                    let spec = d.spec.unwrap().template.spec.unwrap();
                    if d.metadata.name.as_deref() == Some("gpusched-controller") {
                        let args = spec.containers[0].args.clone().unwrap();
                        assert!(
                            args.contains(&"--dry-run".to_string()),
                            "the shipped controller starts read-only"
                        );
                    } else {
                        assert_eq!(spec.scheduler_name.as_deref(), Some(keys::SCHEDULER_NAME));
                        assert!(gpusched_live::apply::mps_env_wired(
                            &k8s_openapi::api::core::v1::Pod {
                                spec: Some(spec),
                                ..Default::default()
                            }
                        ));
                    }
                }
                "DaemonSet" => {
                    let ds = roundtrip::<DaemonSet>(&v);
                    let spec = ds.spec.unwrap().template.spec.unwrap();
                    assert_eq!(spec.runtime_class_name.as_deref(), Some("nvidia"));
                    assert!(spec
                        .node_selector
                        .unwrap()
                        .contains_key("nvidia.com/gpu.present"));
                }
                "ConfigMap" => {
                    let cm = roundtrip::<ConfigMap>(&v);
                    for (k, y) in cm.data.unwrap() {
                        let parsed: Value = serde_yaml_ng::from_str(&y)
                            .unwrap_or_else(|e| panic!("entry {k}: {e}"));
                        assert_eq!(parsed["version"], "v1", "entry {k}");
                    }
                }
                "PodDisruptionBudget" => drop(roundtrip::<PodDisruptionBudget>(&v)),
                other => panic!("{file}: unexpected kind {other}"),
            }
            kinds.push(kind);
        }
    }
    for k in [
        "ServiceAccount",
        "ClusterRole",
        "Role",
        "Deployment",
        "DaemonSet",
        "ConfigMap",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.iter().any(|x| x == k), "missing a {k}");
    }
}

#[test]
fn the_engines_device_plugin_yaml_is_the_plugins_format() {
    let plan =
        gpusched_policies::mps::plan_partition(&[("a".into(), 1, 50), ("b".into(), 2, 25)], 40.0)
            .unwrap();
    let v: Value = serde_yaml_ng::from_str(&plan.device_plugin_config_yaml()).unwrap();
    assert_eq!(v["version"], "v1");
    assert_eq!(
        v["sharing"]["timeSlicing"]["resources"][0]["name"],
        "nvidia.com/gpu"
    );
    assert_eq!(v["sharing"]["timeSlicing"]["resources"][0]["replicas"], 4);
}

#[test]
fn snapshot_writes_a_scenario_that_gpusched_run_accepts() {
    let mut n1 = gpu_node("gpu-a-1", "NVIDIA-A100-SXM4-40GB", 1);
    n1.spec.as_mut().unwrap().unschedulable = Some(true);
    let n2 = gpu_node("gpu-a-2", "NVIDIA-A100-SXM4-40GB", 1);
    let mut n3 = gpu_node("gpu-h-1", "NVIDIA-H100-80GB-HBM3", 8);
    n3.metadata.annotations = Some(
        [(
            keys::GPU_METRICS.to_string(),
            r#"{"t":990,"gpus":[{"i":0,"util":0.5,"mem_used_mib":1,"mem_total_mib":81559}]}"#
                .to_string(),
        )]
        .into(),
    );
    let mut tiny = gpusched_pod(
        "ml",
        "chat-0",
        "chat-tiny",
        "gpu-a-2",
        0,
        1,
        25,
        3.0,
        "tiny",
    );
    tiny.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(keys::SERVICE_TIME_MS.into(), "15".into());
    let tiny2 = gpusched_pod(
        "ml",
        "chat-1",
        "chat-tiny",
        "gpu-a-2",
        0,
        2,
        25,
        3.0,
        "tiny",
    );
    let mut waiting = pending_pod("ml", "llm-0", 40.0);
    waiting
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(keys::WORKLOAD.into(), "llm-large".into());
    let s = gpusched_live::snapshot::snapshot(
        "mycluster",
        &[n1, n2, n3],
        &[tiny, tiny2, waiting],
        None,
        &Default::default(),
        1000.0,
    )
    .unwrap();
    let sc = &s.scenario;
    assert_eq!(sc.pools.len(), 2);
    assert_eq!(
        (sc.pools[0].name.as_str(), sc.pools[0].nodes),
        ("a100-40gb", 2)
    );
    assert_eq!(
        (sc.pools[1].gpu_model.as_str(), sc.pools[1].gpus_per_node),
        ("H100-80GB", 8)
    );
    assert_eq!(sc.services.len(), 2);
    let chat = sc.services.iter().find(|x| x.name == "chat-tiny").unwrap();
    assert_eq!((chat.initial_replicas, chat.service_time_ms), (2, 15.0));
    assert!(sc
        .node_state
        .iter()
        .any(|n| n.node == "a100-40gb-1" && n.cordoned));
    assert!(sc
        .node_state
        .iter()
        .any(|n| n.node == "h100-80gb-1" && n.background_utilisation > 0.0));
    assert!(s.toml.contains("#   a100-40gb-1 = gpu-a-1"));
    // The file loads and runs through the simulator (what `gpusched run file.toml` does).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.toml");
    std::fs::write(&path, &s.toml).unwrap();
    let loaded = gpusched_sim::load_file(&path, &["duration_h=0.05".into()]).unwrap();
    let r = gpusched_sim::run(&loaded, &mut |_| {}).unwrap();
    assert!(!r.decisions.is_empty());
}

#[test]
fn a_pending_pod_that_fits_nowhere_is_noted_and_the_snapshot_still_loads() {
    let n = gpu_node("gpu-a-1", "NVIDIA-A100-SXM4-40GB", 1);
    let ok = pending_pod("ml", "chat-0", 3.0);
    // 200 GB fits no GPU; an H100-only pod has no H100 node here.
    let too_big = pending_pod("ml", "huge-0", 200.0);
    let mut h100_only = pending_pod("ml", "h100-0", 8.0);
    h100_only
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(keys::REQUIRED_GPU_MODELS.into(), "H100-80GB".into());
    let s = gpusched_live::snapshot::snapshot(
        "mycluster",
        &[n],
        &[ok, too_big, h100_only],
        None,
        &Default::default(),
        1000.0,
    )
    .expect("one pod that fits nowhere does not fail the snapshot");
    assert_eq!(s.scenario.services.len(), 1, "{:?}", s.notes);
    for pod in ["ml/huge-0", "ml/h100-0"] {
        assert!(
            s.notes
                .iter()
                .any(|n| n.contains(pod) && n.contains("left out")),
            "{pod}: {:?}",
            s.notes
        );
    }
    assert!(s.toml.contains("# note: pod ml/huge-0"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.toml");
    std::fs::write(&path, &s.toml).unwrap();
    gpusched_sim::load_file(&path, &[]).expect("the written scenario loads back");
}

/// `kubectl apply -f` of each file in the order live/README.md gives, then the example
/// workload: every namespaced object must land in a namespace an earlier document created (the
/// API server refuses it otherwise), and every document is valid for the API server.
#[test]
fn the_manifests_apply_in_the_readme_order() {
    let readme = include_str!("../README.md");
    let mut order: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.trim().strip_prefix("kubectl apply -f live/deploy/"))
        .map(|rest| rest.split_whitespace().next().unwrap_or(""))
        .collect();
    assert!(order.len() >= 4, "README deploy steps: {order:?}");
    order.push("example-workload.yaml");
    let mut namespaces: std::collections::BTreeSet<String> = ["default".to_string()].into();
    for file in order {
        let text = FILES
            .iter()
            .find(|(f, _)| *f == file)
            .unwrap_or_else(|| panic!("README names {file}, which is not in live/deploy"))
            .1;
        for d in serde_yaml_ng::Deserializer::from_str(text) {
            let v: Value = Value::deserialize(d).unwrap();
            if v.is_null() {
                continue;
            }
            let name = v["metadata"]["name"].as_str().unwrap_or("");
            if v["kind"] == "Namespace" {
                namespaces.insert(name.to_string());
                continue;
            }
            if let Some(ns) = v["metadata"]["namespace"].as_str() {
                assert!(
                    namespaces.contains(ns),
                    "{file}: {} {name} in namespace {ns}, which nothing applied before creates",
                    v["kind"]
                );
            }
        }
    }
}
