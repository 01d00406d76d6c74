//! Decisions → Kubernetes API requests.
//!
//! Every change gpusched makes is an [`Action`]. An action turns into exactly one HTTP request
//! through kube-core's own request builder ([`Action::to_request`]), so the dry-run prints the
//! very request the real applier sends, and the mock-client tests assert it byte for byte.
//!
//! What reality allows, and how each decision is expressed:
//! * **Place** → patch the pod's annotations (the allocation, so the view can be rebuilt from the
//!   API, and the per-client MPS limits), then `POST pods/{name}/binding`.
//! * **Per-pod MPS limits.** A container's env is fixed when the pod is created, before any
//!   scheduler sees it, so a scheduler cannot *set* `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`. What
//!   works: the pod template declares the two variables with
//!   `valueFrom.fieldRef.fieldPath: metadata.annotations['gpusched.io/mps-active-thread-percentage']`
//!   (and `…/mps-pinned-device-mem-limit`); the kubelet resolves downward-API env when it starts
//!   the container, which is after binding, and gpusched writes the annotations *before* it binds.
//!   Pods without that wiring still run, but only under the daemon's uniform limits: the controller
//!   logs it ([`mps_env_wired`]).
//! * **Sharing config** → the device plugin's ConfigMap entry (`data[<key>]`, merge patch of one
//!   key) and the node label `nvidia.com/device-plugin.config=<key>`. Keys are named by content
//!   (`gpusched-mps-2`, `gpusched-timeslicing-4`), so nodes with the same layout share an entry and
//!   writing one never changes another node's config.
//! * **Rollouts** → cordon (`spec.unschedulable`), the Eviction API (policy/v1; a 429 means a
//!   PodDisruptionBudget forbids it now), relabel, uncordon. See [`crate::rollback`].
//! * **Scale** → `PATCH deployments/{name}/scale`.
//!
//! [`Scope`] guards every action: pods and Deployments only in the managed namespaces, the
//! ConfigMap only the configured one, and nothing at all in kube-system.

use crate::keys;
use gpusched_policies::decision::Placement;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::Patch;
use kube::core::params::{PatchParams, PostParams};
use kube::core::{Request as KubeRequest, Resource};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// The field manager gpusched's patches are recorded under (visible in `managedFields`).
pub const FIELD_MANAGER: &str = "gpusched";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Merge-patch pod annotations (a `None` value removes the key).
    AnnotatePod {
        namespace: String,
        name: String,
        annotations: BTreeMap<String, Option<String>>,
    },
    /// `POST pods/{name}/binding`.
    BindPod {
        namespace: String,
        name: String,
        uid: Option<String>,
        node: String,
    },
    /// Merge-patch one key of the device plugin's ConfigMap (`None` removes it).
    SetConfigEntry {
        namespace: String,
        configmap: String,
        key: String,
        value: Option<String>,
    },
    /// Merge-patch node labels and annotations (`None` removes a key).
    PatchNodeMeta {
        node: String,
        labels: BTreeMap<String, Option<String>>,
        annotations: BTreeMap<String, Option<String>>,
    },
    Cordon {
        node: String,
    },
    Uncordon {
        node: String,
    },
    /// policy/v1 Eviction: honours PodDisruptionBudgets (429 while a budget forbids it).
    Evict {
        namespace: String,
        name: String,
    },
    /// Set a Deployment's replicas through its scale subresource.
    Scale {
        namespace: String,
        deployment: String,
        replicas: u32,
    },
    /// The pod's `PodScheduled` condition, as kube-scheduler reports it (`False`/`Unschedulable`
    /// with the reason, so `kubectl get/describe pod` shows why a pod waits).
    PodScheduledCondition {
        namespace: String,
        name: String,
        scheduled: bool,
        reason: String,
        message: String,
        /// RFC 3339, the time of the transition.
        at: String,
    },
    /// An events.k8s.io/v1 Event about a pod (`Scheduled`, `FailedScheduling`), shown by
    /// `kubectl describe pod` and `kubectl events`.
    PodEvent {
        namespace: String,
        pod: String,
        uid: Option<String>,
        warning: bool,
        reason: String,
        note: String,
        /// This controller replica (`reportingInstance`).
        instance: String,
        /// RFC 3339 with microseconds (`eventTime`).
        at: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("eviction of {namespace}/{name} blocked by a PodDisruptionBudget: {message}")]
    EvictionBlocked {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("{what}: the API server answered {code}: {message}")]
    Api {
        what: String,
        code: u16,
        message: String,
    },
    #[error("{what}: {source}")]
    Client { what: String, source: kube::Error },
    #[error("building the request for {what}: {message}")]
    Request { what: String, message: String },
}

impl Action {
    /// A short human name for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            Action::AnnotatePod {
                namespace, name, ..
            } => format!("annotate pod {namespace}/{name}"),
            Action::BindPod {
                namespace,
                name,
                node,
                ..
            } => format!("bind pod {namespace}/{name} to {node}"),
            Action::SetConfigEntry {
                namespace,
                configmap,
                key,
                value,
            } => {
                format!(
                    "{} key {key} of ConfigMap {namespace}/{configmap}",
                    if value.is_some() { "set" } else { "remove" }
                )
            }
            Action::PatchNodeMeta { node, .. } => format!("label/annotate node {node}"),
            Action::Cordon { node } => format!("cordon node {node}"),
            Action::Uncordon { node } => format!("uncordon node {node}"),
            Action::Evict { namespace, name } => format!("evict pod {namespace}/{name}"),
            Action::Scale {
                namespace,
                deployment,
                replicas,
            } => format!("scale deployment {namespace}/{deployment} to {replicas}"),
            Action::PodScheduledCondition {
                namespace,
                name,
                scheduled,
                ..
            } => format!("set PodScheduled={scheduled} on pod {namespace}/{name}"),
            Action::PodEvent {
                namespace,
                pod,
                reason,
                ..
            } => format!("record event {reason} for pod {namespace}/{pod}"),
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        match self {
            Action::AnnotatePod { namespace, .. }
            | Action::BindPod { namespace, .. }
            | Action::SetConfigEntry { namespace, .. }
            | Action::Evict { namespace, .. }
            | Action::Scale { namespace, .. }
            | Action::PodScheduledCondition { namespace, .. }
            | Action::PodEvent { namespace, .. } => Some(namespace),
            _ => None,
        }
    }

    /// The exact HTTP request for this action (kube-core's builder, as `kube::Api` uses).
    pub fn to_request(&self) -> Result<http::Request<Vec<u8>>, ApplyError> {
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let err = |e: kube::core::request::Error| ApplyError::Request {
            what: self.describe(),
            message: e.to_string(),
        };
        let pods = |ns: &str| KubeRequest::new(Pod::url_path(&(), Some(ns)));
        let nodes = || KubeRequest::new(Node::url_path(&(), None));
        let merge = |v: Value| Patch::Merge(v);
        match self {
            Action::AnnotatePod {
                namespace,
                name,
                annotations,
            } => pods(namespace)
                .patch(
                    name,
                    &pp,
                    &merge(json!({"metadata": {"annotations": annotations}})),
                )
                .map_err(err),
            Action::BindPod {
                namespace,
                name,
                uid,
                node,
            } => {
                let mut meta = json!({"name": name, "namespace": namespace});
                if let Some(u) = uid {
                    // With the uid the API server refuses the binding if the pod was replaced.
                    meta["uid"] = json!(u);
                }
                let body = json!({
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": meta,
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node}
                });
                let data = serde_json::to_vec(&body).map_err(|e| ApplyError::Request {
                    what: self.describe(),
                    message: e.to_string(),
                })?;
                let pp = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                pods(namespace)
                    .create_subresource("binding", name, &pp, data)
                    .map_err(err)
            }
            Action::SetConfigEntry {
                namespace,
                configmap,
                key,
                value,
            } => KubeRequest::new(ConfigMap::url_path(&(), Some(namespace)))
                .patch(configmap, &pp, &merge(json!({"data": {key: value}})))
                .map_err(err),
            Action::PatchNodeMeta {
                node,
                labels,
                annotations,
            } => {
                let mut meta = serde_json::Map::new();
                if !labels.is_empty() {
                    meta.insert("labels".into(), json!(labels));
                }
                if !annotations.is_empty() {
                    meta.insert("annotations".into(), json!(annotations));
                }
                nodes()
                    .patch(node, &pp, &merge(json!({"metadata": meta})))
                    .map_err(err)
            }
            Action::Cordon { node } => nodes()
                .patch(node, &pp, &merge(json!({"spec": {"unschedulable": true}})))
                .map_err(err),
            // `null` removes the field, which is how `kubectl uncordon` leaves a node.
            Action::Uncordon { node } => nodes()
                .patch(node, &pp, &merge(json!({"spec": {"unschedulable": null}})))
                .map_err(err),
            // The policy/v1 Eviction object, as `kubectl drain` sends it (kube-core's `evict`
            // sends a body without apiVersion/kind).
            Action::Evict { namespace, name } => {
                let body = json!({
                    "apiVersion": "policy/v1",
                    "kind": "Eviction",
                    "metadata": {"name": name, "namespace": namespace}
                });
                let data = serde_json::to_vec(&body).map_err(|e| ApplyError::Request {
                    what: self.describe(),
                    message: e.to_string(),
                })?;
                pods(namespace)
                    .create_subresource("eviction", name, &PostParams::default(), data)
                    .map_err(err)
            }
            Action::Scale {
                namespace,
                deployment,
                replicas,
            } => KubeRequest::new(Deployment::url_path(&(), Some(namespace)))
                .patch_subresource(
                    "scale",
                    deployment,
                    &pp,
                    &merge(json!({"spec": {"replicas": replicas}})),
                )
                .map_err(err),
            // A strategic merge patch of the status subresource merges `conditions` by type, so
            // the kubelet's other conditions stay (kube-scheduler patches it the same way).
            Action::PodScheduledCondition {
                namespace,
                name,
                scheduled,
                reason,
                message,
                at,
            } => pods(namespace)
                .patch_subresource(
                    "status",
                    name,
                    &pp,
                    &Patch::Strategic(json!({"status": {"conditions": [{
                        "type": "PodScheduled",
                        "status": if *scheduled { "True" } else { "False" },
                        "reason": reason,
                        "message": message,
                        "lastTransitionTime": at,
                    }]}})),
                )
                .map_err(err),
            Action::PodEvent {
                namespace,
                pod,
                uid,
                warning,
                reason,
                note,
                instance,
                at,
            } => {
                let body = json!({
                    "apiVersion": "events.k8s.io/v1",
                    "kind": "Event",
                    "metadata": {"generateName": crate::names::event_generate_name(pod),
                                 "namespace": namespace},
                    "eventTime": at,
                    "reportingController": "gpusched.io/scheduler",
                    // At most 128 bytes (events.k8s.io/v1 validation).
                    "reportingInstance": crate::names::truncate_bytes(instance, 128),
                    "action": "Scheduling",
                    "reason": reason,
                    // The API server limits a note to 1024 bytes.
                    "note": crate::names::truncate_bytes(note, 1024),
                    "type": if *warning { "Warning" } else { "Normal" },
                    "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace,
                                  "name": pod, "uid": uid},
                });
                let data = serde_json::to_vec(&body).map_err(|e| ApplyError::Request {
                    what: self.describe(),
                    message: e.to_string(),
                })?;
                KubeRequest::new(k8s_openapi::api::events::v1::Event::url_path(
                    &(),
                    Some(namespace),
                ))
                .create(&PostParams::default(), data)
                .map_err(err)
            }
        }
    }
}

/// What gpusched may touch.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Namespaces whose pods gpusched schedules, evicts and whose Deployments it scales.
    pub managed: BTreeSet<String>,
    /// The device plugin's config ConfigMap (namespace, name): the only ConfigMap written.
    pub plugin_config: (String, String),
}

impl Scope {
    pub fn new(
        managed: impl IntoIterator<Item = String>,
        cm_namespace: &str,
        cm_name: &str,
    ) -> Result<Self, ApplyError> {
        let managed: BTreeSet<String> = managed.into_iter().collect();
        if managed.is_empty() {
            return Err(ApplyError::Refused(
                "no managed namespace: name each one with --namespace".into(),
            ));
        }
        if managed.contains(keys::KUBE_SYSTEM) || cm_namespace == keys::KUBE_SYSTEM {
            return Err(ApplyError::Refused(
                "kube-system is never managed by gpusched".into(),
            ));
        }
        Ok(Self {
            managed,
            plugin_config: (cm_namespace.into(), cm_name.into()),
        })
    }

    pub fn manages(&self, namespace: &str) -> bool {
        namespace != keys::KUBE_SYSTEM && self.managed.contains(namespace)
    }

    /// Refuses any action outside the scope. Called by every [`Applier`] before anything else.
    pub fn check(&self, a: &Action) -> Result<(), ApplyError> {
        if a.namespace() == Some(keys::KUBE_SYSTEM) {
            return Err(ApplyError::Refused(format!(
                "{}: kube-system is never touched",
                a.describe()
            )));
        }
        match a {
            Action::SetConfigEntry {
                namespace,
                configmap,
                ..
            } => {
                if (namespace, configmap) != (&self.plugin_config.0, &self.plugin_config.1) {
                    return Err(ApplyError::Refused(format!(
                        "{}: only the device plugin config {}/{} may be written",
                        a.describe(),
                        self.plugin_config.0,
                        self.plugin_config.1
                    )));
                }
            }
            Action::AnnotatePod { namespace, .. }
            | Action::BindPod { namespace, .. }
            | Action::Evict { namespace, .. }
            | Action::Scale { namespace, .. }
            | Action::PodScheduledCondition { namespace, .. }
            | Action::PodEvent { namespace, .. } => {
                if !self.manages(namespace) {
                    return Err(ApplyError::Refused(format!(
                        "{}: namespace {namespace} is not managed (--namespace)",
                        a.describe()
                    )));
                }
            }
            Action::PatchNodeMeta { .. } | Action::Cordon { .. } | Action::Uncordon { .. } => {}
        }
        Ok(())
    }
}

/// Applies actions: to the API server ([`KubeApplier`]) or to stdout ([`crate::dryrun::DryRunApplier`]).
pub trait Applier: Send + Sync {
    fn apply(&self, a: &Action) -> impl Future<Output = Result<(), ApplyError>> + Send;
    /// The node's advertised capacity now, resource → quantity (the device plugin's answer to a
    /// new config). `None` when it cannot be known (the dry run).
    fn node_capacity(
        &self,
        node: &str,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>, ApplyError>> + Send;
    /// True for the dry run (the rollout does not wait for the plugin there).
    fn is_dry_run(&self) -> bool {
        false
    }
}

/// The real applier: sends each action's request with a kube client.
#[derive(Clone)]
pub struct KubeApplier {
    pub client: kube::Client,
    pub scope: Scope,
}

impl Applier for KubeApplier {
    async fn apply(&self, a: &Action) -> Result<(), ApplyError> {
        self.scope.check(a)?;
        let req = a.to_request()?;
        match self.client.request::<Value>(req).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 429 && matches!(a, Action::Evict { .. }) => {
                let Action::Evict { namespace, name } = a else {
                    unreachable!()
                };
                Err(ApplyError::EvictionBlocked {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    message: s.message.clone(),
                })
            }
            Err(kube::Error::Api(s)) => Err(ApplyError::Api {
                what: a.describe(),
                code: s.code,
                message: s.message.clone(),
            }),
            Err(e) => Err(ApplyError::Client {
                what: a.describe(),
                source: e,
            }),
        }
    }

    async fn node_capacity(
        &self,
        node: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ApplyError> {
        let api: kube::Api<Node> = kube::Api::all(self.client.clone());
        let n = api.get(node).await.map_err(|e| ApplyError::Client {
            what: format!("get node {node}"),
            source: e,
        })?;
        Ok(Some(
            n.status
                .and_then(|s| s.capacity)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, q)| (k, q.0))
                .collect(),
        ))
    }
}

/// The device plugin config key a placement needs on its node, when it changes the node's
/// config (the engine only changes the config of a node with no GPU pod).
pub fn config_key(p: &Placement) -> Option<String> {
    p.node_config.as_ref().map(|c| c.label.clone())
}

/// The ConfigMap entry under [`config_key`].
pub fn config_yaml(p: &Placement) -> Option<&str> {
    p.node_config
        .as_ref()
        .map(|c| c.device_plugin_config.as_str())
}

/// The annotations written on a pod before it is bound: its allocation, through the one codec
/// ([`crate::codec`]: what the view rebuilds the cluster state from), and its MPS limits (for
/// its downward-API env). `model` is the node's GPU model, `memory_gb` what each of its GPUs
/// holds.
pub fn placement_annotations(
    p: &Placement,
    model: gpusched_policies::GpuModel,
    memory_gb: f64,
    gpu_memory_gb: f64,
) -> BTreeMap<String, Option<String>> {
    let pa = crate::codec::PodAllocation::of_placement(p, memory_gb);
    let mut a: BTreeMap<String, Option<String>> = crate::codec::pod_annotations(&pa, model)
        .into_iter()
        .map(|(k, v)| (k.to_string(), Some(v)))
        .collect();
    let (pct, mem_mib) = match p
        .mps
        .as_ref()
        .and_then(|m| m.clients.iter().find(|c| c.replica == p.replica))
    {
        Some(c) => (c.active_thread_pct, c.pinned_mem_limit_mib),
        None => (100, (gpu_memory_gb * 1024.0).floor() as u64),
    };
    a.insert(keys::MPS_ACTIVE_THREAD_PCT.into(), Some(pct.to_string()));
    a.insert(
        keys::MPS_PINNED_MEM_LIMIT.into(),
        Some(format!("0={mem_mib}M")),
    );
    a
}

/// Whether every container of the pod reads its MPS limits from gpusched's annotations.
pub fn mps_env_wired(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let wants = [
        (
            "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE",
            keys::MPS_ACTIVE_THREAD_PCT,
        ),
        (
            "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT",
            keys::MPS_PINNED_MEM_LIMIT,
        ),
    ];
    !spec.containers.is_empty()
        && spec.containers.iter().all(|c| {
            wants.iter().all(|(var, key)| {
                c.env.iter().flatten().any(|e| {
                    e.name == *var
                        && e.value_from
                            .as_ref()
                            .and_then(|v| v.field_ref.as_ref())
                            .is_some_and(|f| {
                                f.field_path == format!("metadata.annotations['{key}']")
                            })
                })
            })
        })
}

/// The actions that bind a placed pod (annotate, then bind).
pub fn bind_actions(
    pod: &Pod,
    p: &Placement,
    model: gpusched_policies::GpuModel,
    memory_gb: f64,
    gpu_memory_gb: f64,
) -> Vec<Action> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    vec![
        Action::AnnotatePod {
            namespace: namespace.clone(),
            name: name.clone(),
            annotations: placement_annotations(p, model, memory_gb, gpu_memory_gb),
        },
        Action::BindPod {
            namespace,
            name,
            uid: pod.metadata.uid.clone(),
            node: p.node.clone(),
        },
    ]
}
