//! Builders of Kubernetes objects for tests (unit, integration and conformance).
#![doc(hidden)]

use crate::keys;
use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub fn gpu_node(name: &str, product: &str, count: u8) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                [
                    (keys::GPU_PRODUCT.to_string(), product.to_string()),
                    (keys::GPU_COUNT.to_string(), count.to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some([(keys::GPU_RESOURCE.to_string(), Quantity(count.to_string()))].into()),
            // A registered kubelet reports Ready; a node without it is refused (node_filter).
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// A pending pod that asks gpusched for a GPU.
pub fn pending_pod(ns: &str, name: &str, model_memory_gb: f64) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            uid: Some(format!("uid-{name}")),
            annotations: Some(
                [(
                    keys::MODEL_MEMORY_GB.to_string(),
                    model_memory_gb.to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            scheduler_name: Some(keys::SCHEDULER_NAME.into()),
            containers: vec![Container {
                name: "main".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        }),
    }
}

/// A running pod gpusched bound, with the annotations it writes at bind time.
#[allow(clippy::too_many_arguments)]
pub fn gpusched_pod(
    ns: &str,
    name: &str,
    workload: &str,
    node: &str,
    gpu: u8,
    replica: u64,
    share: u8,
    mem_gb: f64,
    class: &str,
) -> Pod {
    let mut p = pending_pod(ns, name, mem_gb);
    let a = p.metadata.annotations.as_mut().expect("set above");
    for (k, v) in [
        (keys::WORKLOAD, workload.to_string()),
        (keys::GPU_INDEX, gpu.to_string()),
        (keys::REPLICA, replica.to_string()),
        (keys::SHARE_PCT, share.to_string()),
        (keys::MEMORY_GB, mem_gb.to_string()),
        (keys::CLASS, class.to_string()),
    ] {
        a.insert(k.to_string(), v);
    }
    p.spec.as_mut().expect("set above").node_name = Some(node.into());
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    });
    p
}
