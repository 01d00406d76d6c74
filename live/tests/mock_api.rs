//! The exact API requests gpusched sends, asserted against kube's tower-test mock client
//! (kube-rs's recommended pattern: `Client::new(mock_service, "default")`). No cluster involved:
//! the mock plays the API server's part, answering each request with a scripted status and body.

mod support;

use gpusched_live::apply::{Action, Applier, ApplyError, KubeApplier, Scope};
use gpusched_live::keys;
use gpusched_live::rollback::{self, RolloutOutcome, RolloutTiming};
use gpusched_live::testutil::{gpu_node, gpusched_pod};
use gpusched_policies::rollout::{BreakerState, CircuitBreaker};
use serde_json::{json, Value};
use std::time::Duration;
use support::mock::mock_client;
use support::scope;

fn ok_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201})
}

fn node_json(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message})
}

const MERGE: &str = "application/merge-patch+json";

#[tokio::test]
async fn binding_posts_a_binding_with_the_pod_uid() {
    let (client, task) = mock_client(vec![(201, ok_status())]);
    let ap = KubeApplier {
        client,
        scope: scope(),
    };
    ap.apply(&Action::BindPod {
        namespace: "ml".into(),
        name: "chat-1".into(),
        uid: Some("u-1".into()),
        node: "a100-1".into(),
    })
    .await
    .unwrap();
    let s = task.await.unwrap();
    assert_eq!(s[0].method, "POST");
    assert_eq!(
        s[0].uri,
        "/api/v1/namespaces/ml/pods/chat-1/binding?&fieldManager=gpusched"
    );
    assert_eq!(s[0].content_type, "application/json");
    assert_eq!(
        s[0].body,
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "chat-1", "namespace": "ml", "uid": "u-1"}, "target": {"apiVersion": "v1", "kind": "Node", "name": "a100-1"}})
    );
}

#[tokio::test]
async fn labelling_configmap_cordon_uncordon_and_pod_annotations() {
    let replies = vec![(200, node_json("a100-1")); 5];
    let (client, task) = mock_client(replies);
    let ap = KubeApplier {
        client,
        scope: scope(),
    };
    ap.apply(&Action::PatchNodeMeta {
        node: "a100-1".into(),
        labels: [(
            keys::DEVICE_PLUGIN_CONFIG.to_string(),
            Some("gpusched-mps-2".to_string()),
        )]
        .into(),
        annotations: Default::default(),
    })
    .await
    .unwrap();
    ap.apply(&Action::SetConfigEntry {
        namespace: "nvidia-device-plugin".into(),
        configmap: "device-plugin-config".into(),
        key: "gpusched-mps-2".into(),
        value: Some("version: v1\n".into()),
    })
    .await
    .unwrap();
    ap.apply(&Action::Cordon {
        node: "a100-1".into(),
    })
    .await
    .unwrap();
    ap.apply(&Action::Uncordon {
        node: "a100-1".into(),
    })
    .await
    .unwrap();
    ap.apply(&Action::AnnotatePod {
        namespace: "ml".into(),
        name: "p".into(),
        annotations: [(keys::GPU_INDEX.to_string(), Some("0".to_string()))].into(),
    })
    .await
    .unwrap();
    let s = task.await.unwrap();
    let expect = [
        ("/api/v1/nodes/a100-1?&fieldManager=gpusched", json!({"metadata": {"labels": {"nvidia.com/device-plugin.config": "gpusched-mps-2"}}})),
        ("/api/v1/namespaces/nvidia-device-plugin/configmaps/device-plugin-config?&fieldManager=gpusched", json!({"data": {"gpusched-mps-2": "version: v1\n"}})),
        ("/api/v1/nodes/a100-1?&fieldManager=gpusched", json!({"spec": {"unschedulable": true}})),
        ("/api/v1/nodes/a100-1?&fieldManager=gpusched", json!({"spec": {"unschedulable": null}})),
        ("/api/v1/namespaces/ml/pods/p?&fieldManager=gpusched", json!({"metadata": {"annotations": {"gpusched.io/gpu-index": "0"}}})),
    ];
    assert_eq!(s.len(), expect.len());
    for (got, (uri, body)) in s.iter().zip(expect) {
        assert_eq!(got.method, "PATCH");
        assert_eq!(got.content_type, MERGE);
        assert_eq!(got.uri, uri);
        assert_eq!(got.body, body);
    }
}

#[tokio::test]
async fn eviction_uses_policy_v1_and_a_pdb_429_is_reported_as_blocked() {
    let (client, task) = mock_client(vec![
        (201, ok_status()),
        (
            429,
            status(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            ),
        ),
    ]);
    let ap = KubeApplier {
        client,
        scope: scope(),
    };
    let a = Action::Evict {
        namespace: "ml".into(),
        name: "chat-1".into(),
    };
    ap.apply(&a).await.unwrap();
    let e = ap.apply(&a).await.unwrap_err();
    assert!(matches!(e, ApplyError::EvictionBlocked { .. }), "{e}");
    assert!(e.to_string().contains("disruption budget"));
    let s = task.await.unwrap();
    assert_eq!(s[0].method, "POST");
    assert_eq!(s[0].uri, "/api/v1/namespaces/ml/pods/chat-1/eviction?");
    assert_eq!(s[0].body["apiVersion"], "policy/v1");
    assert_eq!(s[0].body["kind"], "Eviction");
    assert_eq!(s[0].body["metadata"]["name"], "chat-1");
}

#[tokio::test]
async fn scaling_patches_the_deployment_scale_subresource() {
    let (client, task) = mock_client(vec![(
        200,
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 6}}),
    )]);
    let ap = KubeApplier {
        client,
        scope: scope(),
    };
    ap.apply(&Action::Scale {
        namespace: "ml".into(),
        deployment: "chat-tiny".into(),
        replicas: 6,
    })
    .await
    .unwrap();
    let s = task.await.unwrap();
    assert_eq!(s[0].method, "PATCH");
    assert_eq!(
        s[0].uri,
        "/apis/apps/v1/namespaces/ml/deployments/chat-tiny/scale?&fieldManager=gpusched"
    );
    assert_eq!(s[0].content_type, MERGE);
    assert_eq!(s[0].body, json!({"spec": {"replicas": 6}}));
}

#[tokio::test]
async fn unschedulable_pods_get_a_condition_and_an_event_as_kube_scheduler_sends_them() {
    let (client, task) = mock_client(vec![(200, json!({})), (201, json!({}))]);
    let ap = KubeApplier {
        client,
        scope: scope(),
    };
    ap.apply(&Action::PodScheduledCondition {
        namespace: "ml".into(),
        name: "big".into(),
        scheduled: false,
        reason: "Unschedulable".into(),
        message: "0/2 nodes fit".into(),
        at: "2026-11-23T10:00:00Z".into(),
    })
    .await
    .unwrap();
    ap.apply(&Action::PodEvent {
        namespace: "ml".into(),
        pod: "big".into(),
        uid: Some("uid-big".into()),
        warning: true,
        reason: "FailedScheduling".into(),
        note: "0/2 nodes fit".into(),
        instance: "ctl-a".into(),
        at: "2026-11-23T10:00:00.000000Z".into(),
    })
    .await
    .unwrap();
    let s = task.await.unwrap();
    assert_eq!(s[0].method, "PATCH");
    assert_eq!(
        s[0].uri,
        "/api/v1/namespaces/ml/pods/big/status?&fieldManager=gpusched"
    );
    // Strategic merge: the API server merges conditions by type, keeping the kubelet's.
    assert_eq!(s[0].content_type, "application/strategic-merge-patch+json");
    assert_eq!(
        s[0].body,
        json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/2 nodes fit",
            "lastTransitionTime": "2026-11-23T10:00:00Z"}]}})
    );
    assert_eq!(s[1].method, "POST");
    assert_eq!(s[1].uri, "/apis/events.k8s.io/v1/namespaces/ml/events?");
    assert_eq!(s[1].body["type"], "Warning");
    assert_eq!(s[1].body["reason"], "FailedScheduling");
    assert_eq!(s[1].body["regarding"]["uid"], "uid-big");
    assert_eq!(s[1].body["reportingController"], "gpusched.io/scheduler");
    assert_eq!(s[1].body["eventTime"], "2026-11-23T10:00:00.000000Z");
}

#[tokio::test]
async fn out_of_scope_actions_send_nothing() {
    let (client, task) = mock_client(vec![]);
    let ap = KubeApplier {
        client,
        scope: scope(),
    };
    for a in [
        Action::Evict {
            namespace: "kube-system".into(),
            name: "coredns".into(),
        },
        Action::BindPod {
            namespace: "other".into(),
            name: "x".into(),
            uid: None,
            node: "n".into(),
        },
        Action::SetConfigEntry {
            namespace: "nvidia-device-plugin".into(),
            configmap: "something-else".into(),
            key: "k".into(),
            value: None,
        },
        Action::Scale {
            namespace: "kube-system".into(),
            deployment: "coredns".into(),
            replicas: 0,
        },
        Action::PodScheduledCondition {
            namespace: "other".into(),
            name: "x".into(),
            scheduled: false,
            reason: "Unschedulable".into(),
            message: String::new(),
            at: String::new(),
        },
        Action::PodEvent {
            namespace: "kube-system".into(),
            pod: "coredns".into(),
            uid: None,
            warning: true,
            reason: "FailedScheduling".into(),
            note: String::new(),
            instance: "ctl".into(),
            at: String::new(),
        },
    ] {
        assert!(
            matches!(ap.apply(&a).await, Err(ApplyError::Refused(_))),
            "{a:?}"
        );
    }
    assert!(task.await.unwrap().is_empty());
    assert!(Scope::new(["kube-system".to_string()], "x", "y").is_err());
}

fn rollout_fixture() -> (
    k8s_openapi::api::core::v1::Node,
    Vec<k8s_openapi::api::core::v1::Pod>,
) {
    let mut node = gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 1);
    node.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(keys::DEVICE_PLUGIN_CONFIG.into(), "gpusched-mps-2".into());
    let pods = vec![gpusched_pod(
        "ml", "chat-1", "chat", "a100-1", 0, 1, 50, 8.0, "medium",
    )];
    (node, pods)
}

const TS4: &str = "version: v1\nsharing:\n  timeSlicing:\n    renameByDefault: false\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n";

/// The fixture node moved to 4 time-slicing replicas, planned at t = 1000 s.
fn planned_ts4_rollout() -> rollback::Rollout {
    let (node, pods) = rollout_fixture();
    rollback::plan_rollout(
        &node,
        Some(&empty_plugin_config()),
        Some("gpusched-timeslicing-4"),
        Some(TS4),
        &pods,
        &scope(),
        1000.0,
    )
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn a_rollout_sends_record_entry_cordon_evict_label_then_uncordon() {
    let r = planned_ts4_rollout();
    assert_eq!(
        r.plugin_ready,
        rollback::PluginReady::GpuCapacity { count: 4 }
    );
    let mut with_capacity = node_json("a100-1");
    with_capacity["status"] = json!({"capacity": {"nvidia.com/gpu": "4"}});
    let (client, task) = mock_client(vec![
        (200, node_json("a100-1")), // rollback record
        (
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "device-plugin-config"}}),
        ),
        (200, node_json("a100-1")), // cordon
        (201, ok_status()),         // evict
        (200, node_json("a100-1")), // label
        (200, with_capacity),       // GET node: plugin advertises 4
        (200, node_json("a100-1")), // uncordon
        (200, node_json("a100-1")), // in-progress marker removed
    ]);
    let ap = KubeApplier {
        client,
        scope: scope(),
    };
    let mut breaker = CircuitBreaker::default();
    let out = rollback::execute(
        &ap,
        &scope(),
        &mut breaker,
        &r,
        &RolloutTiming::default(),
        1000.0,
    )
    .await;
    assert_eq!(out, RolloutOutcome::Done);
    let s = task.await.unwrap();
    let summary: Vec<(String, String)> = s
        .iter()
        .map(|x| {
            (
                x.method.clone(),
                x.uri.split('?').next().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("PATCH", "/api/v1/nodes/a100-1"),
            (
                "PATCH",
                "/api/v1/namespaces/nvidia-device-plugin/configmaps/device-plugin-config"
            ),
            ("PATCH", "/api/v1/nodes/a100-1"),
            ("POST", "/api/v1/namespaces/ml/pods/chat-1/eviction"),
            ("PATCH", "/api/v1/nodes/a100-1"),
            ("GET", "/api/v1/nodes/a100-1"),
            ("PATCH", "/api/v1/nodes/a100-1"),
            ("PATCH", "/api/v1/nodes/a100-1"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let record: rollback::RollbackRecord = serde_json::from_str(
        s[0].body["metadata"]["annotations"][keys::ROLLBACK]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record.label_before.as_deref(), Some("gpusched-mps-2"));
    assert_eq!(record.entry_before, None);
    assert_eq!(s[1].body, json!({"data": {"gpusched-timeslicing-4": TS4}}));
    assert_eq!(s[2].body, json!({"spec": {"unschedulable": true}}));
    assert_eq!(
        s[4].body,
        json!({"metadata": {"labels": {"nvidia.com/device-plugin.config": "gpusched-timeslicing-4"}}})
    );
    assert_eq!(s[6].body, json!({"spec": {"unschedulable": null}}));
    // The record is written with an in-progress marker, removed as the last step.
    assert_eq!(
        s[0].body["metadata"]["annotations"][keys::ROLLOUT_IN_PROGRESS],
        "1000"
    );
    assert_eq!(
        s[7].body,
        json!({"metadata": {"annotations": {keys::ROLLOUT_IN_PROGRESS: null}}})
    );
    assert_eq!(breaker.state(1000.0), BreakerState::Closed { failures: 0 });
}

#[tokio::test]
async fn a_pdb_blocked_rollout_rolls_back_and_three_failures_open_the_breaker() {
    let r = planned_ts4_rollout();
    let timing = RolloutTiming {
        evict_retries: 1,
        retry_delay: Duration::ZERO,
        ..Default::default()
    };
    let blocked = (
        429,
        status(
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
        ),
    );
    let mut breaker = CircuitBreaker::default();
    for attempt in 0..3 {
        let (client, task) = mock_client(vec![
            (200, node_json("a100-1")), // record
            (200, json!({"apiVersion": "v1", "kind": "ConfigMap"})),
            (200, node_json("a100-1")), // cordon
            blocked.clone(),
            blocked.clone(), // one retry, still blocked
            // rollback:
            (200, json!({"apiVersion": "v1", "kind": "ConfigMap"})),
            (200, node_json("a100-1")),
            (200, node_json("a100-1")),
            (200, node_json("a100-1")), // in-progress marker removed
        ]);
        let ap = KubeApplier {
            client,
            scope: scope(),
        };
        let out = rollback::execute(
            &ap,
            &scope(),
            &mut breaker,
            &r,
            &timing,
            1000.0 + attempt as f64,
        )
        .await;
        let RolloutOutcome::RolledBack {
            error,
            rollback_errors,
        } = out
        else {
            panic!("{out:?}")
        };
        assert!(error.contains("PodDisruptionBudget"), "{error}");
        assert!(rollback_errors.is_empty());
        let s = task.await.unwrap();
        // Rollback: the entry gpusched wrote is removed (it was absent before), the label goes
        // back to its previous value, and the node is uncordoned.
        assert_eq!(s[5].body, json!({"data": {"gpusched-timeslicing-4": null}}));
        assert_eq!(
            s[6].body,
            json!({"metadata": {"labels": {"nvidia.com/device-plugin.config": "gpusched-mps-2"}}})
        );
        assert_eq!(s[7].body, json!({"spec": {"unschedulable": null}}));
        assert_eq!(
            s[8].body,
            json!({"metadata": {"annotations": {keys::ROLLOUT_IN_PROGRESS: null}}})
        );
    }
    assert!(matches!(breaker.state(1003.0), BreakerState::Open { .. }));
    // While open, nothing is sent at all.
    let (client, task) = mock_client(vec![]);
    let ap = KubeApplier {
        client,
        scope: scope(),
    };
    let out = rollback::execute(&ap, &scope(), &mut breaker, &r, &timing, 1100.0).await;
    assert!(matches!(out, RolloutOutcome::Deferred { .. }));
    assert!(task.await.unwrap().is_empty());
}

/// The device plugin's ConfigMap with no entries yet.
fn empty_plugin_config() -> k8s_openapi::api::core::v1::ConfigMap {
    k8s_openapi::api::core::v1::ConfigMap::default()
}

#[tokio::test]
async fn rollouts_refuse_nodes_with_unmanaged_gpu_pods_and_foreign_config_entries() {
    let (node, mut pods) = rollout_fixture();
    pods.push(gpusched_pod(
        "research", "other", "x", "a100-1", 0, 9, 25, 2.0, "tiny",
    ));
    let e = rollback::plan_rollout(
        &node,
        Some(&empty_plugin_config()),
        Some("gpusched-timeslicing-4"),
        Some(TS4),
        &pods,
        &scope(),
        0.0,
    )
    .unwrap_err();
    assert!(e.contains("research/other"), "{e}");
    // No plugin ConfigMap at all: refused before anything is cordoned.
    let e = rollback::plan_rollout(
        &node,
        None,
        Some("gpusched-timeslicing-4"),
        Some(TS4),
        &[],
        &scope(),
        0.0,
    )
    .unwrap_err();
    assert!(e.contains("does not exist"), "{e}");
    let cm = k8s_openapi::api::core::v1::ConfigMap {
        data: Some(
            [(
                "gpusched-timeslicing-4".to_string(),
                "version: v1\n".to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    let e = rollback::plan_rollout(
        &node,
        Some(&cm),
        Some("gpusched-timeslicing-4"),
        Some(TS4),
        &[],
        &scope(),
        0.0,
    )
    .unwrap_err();
    assert!(e.contains("will not overwrite"), "{e}");
    // Already in force: nothing to do.
    let cm = k8s_openapi::api::core::v1::ConfigMap {
        data: Some([("gpusched-mps-2".to_string(), "x".to_string())].into()),
        ..Default::default()
    };
    assert_eq!(
        rollback::plan_rollout(
            &node,
            Some(&cm),
            Some("gpusched-mps-2"),
            Some("x"),
            &[],
            &scope(),
            0.0
        )
        .unwrap(),
        None
    );
}

#[tokio::test]
async fn leader_election_creates_then_renews_with_the_resource_version() {
    use gpusched_live::lease::{try_acquire, LeaseConfig};
    let cfg = LeaseConfig {
        namespace: "gpusched-system".into(),
        name: "gpusched-controller".into(),
        identity: "pod-a".into(),
        duration_s: 15,
    };
    let now = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap();
    let held_by = |who: &str, rv: &str, renewed: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "gpusched-controller", "namespace": "gpusched-system", "resourceVersion": rv},
               "spec": {"holderIdentity": who, "leaseDurationSeconds": 15, "renewTime": renewed, "leaseTransitions": 0}})
    };
    let (client, task) = mock_client(vec![
        (
            404,
            status(
                404,
                "NotFound",
                "leases.coordination.k8s.io \"gpusched-controller\" not found",
            ),
        ),
        (201, held_by("pod-a", "1", "2023-11-14T22:13:20.000000Z")),
        (200, held_by("pod-b", "5", "2023-11-14T22:13:19.000000Z")), // another holder, fresh: follow
        (200, held_by("pod-b", "6", "2023-11-14T22:12:00.000000Z")), // expired: take over
        (409, status(409, "Conflict", "the object has been modified")),
    ]);
    let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client, "gpusched-system");
    assert!(try_acquire(&api, &cfg, now).await.unwrap());
    assert!(!try_acquire(&api, &cfg, now).await.unwrap());
    assert!(
        !try_acquire(&api, &cfg, now).await.unwrap(),
        "lost the race: 409 means follow"
    );
    let s = task.await.unwrap();
    assert_eq!(
        (s[0].method.as_str(), s[0].uri.as_str()),
        (
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/gpusched-system/leases/gpusched-controller"
        )
    );
    assert_eq!(
        (s[1].method.as_str(), s[1].uri.as_str()),
        (
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/gpusched-system/leases?"
        )
    );
    assert_eq!(s[1].body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(s[4].method, "PUT");
    assert_eq!(
        s[4].body["metadata"]["resourceVersion"], "6",
        "replace carries the version read"
    );
    assert_eq!(s[4].body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(s[4].body["spec"]["leaseTransitions"], 1);
}
