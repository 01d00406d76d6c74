//! Sharing changes as reversible rollouts.
//!
//! A change of a node's device-plugin config restarts the plugin and the MPS server, so every GPU
//! pod on the node loses its context (DOMAIN.md). gpusched therefore never flips a label in place:
//!
//! 1. record the previous config (label value, ConfigMap entry, cordon state) as the node
//!    annotation `gpusched.io/rollback` — first, so any controller replica can undo the change;
//! 2. write the ConfigMap entry (a content-named key; refused if that key holds something else);
//! 3. cordon; 4. evict the node's GPU pods through the Eviction API (PodDisruptionBudgets are
//!    honoured: a 429 is retried, then fails the rollout); 5. relabel the node;
//! 6. wait until the plugin advertises the new capacity; 7. uncordon.
//!
//! The steps are the engine crate's rollout state machine's commands, carried out by
//! [`crate::rollout_exec`]. Any failure counts against the shared [`CircuitBreaker`] (3 failures
//! open it for an hour; the simulator uses the same breaker) and rolls back: a node not yet
//! relabelled with the recorded values at once ([`rollback_actions`]), a relabelled one as a
//! rollback batch of the machine (the simulator's way). A
//! rollout is refused outright when the node runs GPU pods outside the managed namespaces, since
//! draining them is not gpusched's to do.

use crate::apply::{Action, Applier, Scope};
use crate::keys;
use crate::view::{annotation, pod_gpu_request, pod_is_active};
use gpusched_policies::rollout::CircuitBreaker;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The config in force before a change: what a rollback restores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackRecord {
    pub node: String,
    pub label_before: Option<String>,
    pub entry_key: Option<String>,
    pub entry_before: Option<String>,
    pub cordoned_before: bool,
    pub t_unix_s: f64,
}

/// One planned change of a node's sharing config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    pub node: String,
    /// New value of `nvidia.com/device-plugin.config` (`None`: remove it, the plugin's default).
    pub label_after: Option<String>,
    /// ConfigMap entry to write first, when it is not already there.
    pub write_entry: Option<(String, String)>,
    pub evict: Vec<(String, String)>,
    /// What the plugin advertises once the new config is in force.
    pub plugin_ready: PluginReady,
    /// What it advertises again once a rollback restored the previous config (`None`: not
    /// known, the previous label's entry is not in the ConfigMap; a rollback does not wait).
    pub plugin_ready_before: Option<PluginReady>,
    pub record: RollbackRecord,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutTiming {
    pub evict_retries: u32,
    #[serde(skip)]
    pub retry_delay: Duration,
    #[serde(skip)]
    pub plugin_timeout: Duration,
    #[serde(skip)]
    pub poll: Duration,
}

impl Default for RolloutTiming {
    fn default() -> Self {
        Self {
            evict_retries: 3,
            retry_delay: Duration::from_secs(10),
            plugin_timeout: Duration::from_secs(180),
            poll: Duration::from_secs(5),
        }
    }
}

/// How the rollout knows the device plugin has restarted with the new config: what the node
/// advertises then. Read from the config itself, not from its key's name, because a key says
/// nothing certain (`gpusched-mps-per-client` is served as time-slicing replicas).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PluginReady {
    /// `nvidia.com/gpu` capacity = GPUs × the config's replicas for `nvidia.com/gpu`.
    GpuCapacity { count: u32 },
    /// MIG under the mixed strategy: the GPUs are advertised as `nvidia.com/mig-<profile>`.
    MigResources,
}

impl PluginReady {
    /// Expected once the plugin serves `yaml` (its default, exclusive, when there is none).
    pub fn for_config(yaml: Option<&str>, gpus: u32) -> Result<Self, String> {
        let Some(yaml) = yaml else {
            return Ok(PluginReady::GpuCapacity { count: gpus });
        };
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml)
            .map_err(|e| format!("device plugin config is not valid YAML: {e}"))?;
        if v["flags"]["migStrategy"].as_str() == Some("mixed") {
            return Ok(PluginReady::MigResources);
        }
        let mut replicas = 1u32;
        for method in ["mps", "timeSlicing"] {
            if let Some(list) = v["sharing"][method]["resources"].as_sequence() {
                for r in list {
                    if r["name"].as_str() == Some(keys::GPU_RESOURCE) {
                        replicas = r["replicas"]
                            .as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| {
                                format!("device plugin config: sharing.{method} replicas for {} must be a positive integer", keys::GPU_RESOURCE)
                            })?;
                    }
                }
            }
        }
        Ok(PluginReady::GpuCapacity {
            count: gpus * replicas,
        })
    }

    /// Whether a node advertising `capacity` (resource → quantity) serves the new config.
    pub fn met(&self, capacity: &std::collections::BTreeMap<String, String>) -> bool {
        match self {
            PluginReady::GpuCapacity { count } => {
                capacity
                    .get(keys::GPU_RESOURCE)
                    .and_then(|q| q.parse::<u32>().ok())
                    == Some(*count)
            }
            PluginReady::MigResources => capacity
                .iter()
                .any(|(k, q)| k.starts_with("nvidia.com/mig-") && q != "0"),
        }
    }
}

/// Plans the change of `node` to config `key` (with `yaml` as its ConfigMap entry), or says why
/// it must not happen. `Ok(None)`: the node already runs that config.
pub fn plan_rollout(
    node: &Node,
    cm: Option<&ConfigMap>,
    key: Option<&str>,
    yaml: Option<&str>,
    pods: &[Pod],
    scope: &Scope,
    now_unix_s: f64,
) -> Result<Option<Rollout>, String> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let label_before = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(keys::DEVICE_PLUGIN_CONFIG))
        .cloned();
    // Without the label the plugin already serves its default, one pod per GPU: a rollout to
    // gpusched's exclusive entry would change nothing but cost a cordon, evictions and a
    // plugin restart.
    let exclusive = gpusched_policies::sharing::NodeSharing::Exclusive.config_key();
    if label_before.is_none() && key == Some(exclusive.as_str()) {
        return Ok(None);
    }
    let data = cm.and_then(|c| c.data.as_ref());
    let entry_before = key.and_then(|k| data.and_then(|d| d.get(k)).cloned());
    if key.is_some() && cm.is_none() {
        // Cordoning and draining for an entry that cannot be written would only cost pods.
        return Err(format!(
            "the device plugin's ConfigMap {}/{} does not exist: install the plugin with its config \
             in that ConfigMap (or point --plugin-config-namespace/--plugin-config-name at it)",
            scope.plugin_config.0, scope.plugin_config.1
        ));
    }
    let write_entry = match (key, yaml) {
        (Some(k), Some(y)) => match &entry_before {
            Some(existing) if existing.trim() == y.trim() => None,
            Some(_) => return Err(format!("ConfigMap key {k} already holds a different config; gpusched will not overwrite it")),
            None => Some((k.to_string(), y.to_string())),
        },
        _ => None,
    };
    if label_before.as_deref() == key && write_entry.is_none() {
        return Ok(None);
    }
    let mut evict = Vec::new();
    for p in pods {
        if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(name.as_str())
            || !pod_is_active(p)
        {
            continue;
        }
        let uses_gpu = pod_gpu_request(p) > 0 || annotation(&p.metadata, keys::GPU_INDEX).is_some();
        if !uses_gpu {
            continue;
        }
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let pn = p.metadata.name.clone().unwrap_or_default();
        if !scope.manages(&ns) {
            return Err(format!("node {name} runs GPU pod {ns}/{pn} outside the managed namespaces; a config change would restart it"));
        }
        evict.push((ns, pn));
    }
    let gpus = crate::view::gpu_count(node).unwrap_or(1) as u32;
    // The config the plugin will serve: the one written now, else the entry already there.
    let serves = yaml.or(entry_before.as_deref());
    let plugin_ready = PluginReady::for_config(serves, gpus)?;
    // The config served before: the previous label's entry, or the plugin's default.
    let served_before = match &label_before {
        None => Some(None),
        Some(k) => data.and_then(|d| d.get(k)).map(|y| Some(y.as_str())),
    };
    let plugin_ready_before = served_before.and_then(|y| PluginReady::for_config(y, gpus).ok());
    Ok(Some(Rollout {
        node: name.clone(),
        label_after: key.map(str::to_string),
        write_entry,
        evict,
        plugin_ready,
        plugin_ready_before,
        record: RollbackRecord {
            node: name,
            label_before,
            entry_key: key.map(str::to_string),
            entry_before,
            cordoned_before: node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
            t_unix_s: now_unix_s,
        },
    }))
}

pub(crate) fn label_patch(
    node: &str,
    value: Option<String>,
    record: Option<&RollbackRecord>,
) -> Action {
    Action::PatchNodeMeta {
        node: node.to_string(),
        labels: [(keys::DEVICE_PLUGIN_CONFIG.to_string(), value)].into(),
        annotations: record
            .map(|r| {
                [(
                    keys::ROLLBACK.to_string(),
                    Some(serde_json::to_string(r).unwrap_or_default()),
                )]
                .into()
            })
            .unwrap_or_default(),
    }
}

/// The actions that undo a rollout whose ConfigMap entry was (`entry_written`) or was not written.
pub fn rollback_actions(r: &RollbackRecord, scope: &Scope, entry_written: bool) -> Vec<Action> {
    let mut out = Vec::new();
    if entry_written {
        if let Some(k) = &r.entry_key {
            out.push(Action::SetConfigEntry {
                namespace: scope.plugin_config.0.clone(),
                configmap: scope.plugin_config.1.clone(),
                key: k.clone(),
                value: r.entry_before.clone(),
            });
        }
    }
    out.push(label_patch(&r.node, r.label_before.clone(), None));
    if !r.cordoned_before {
        out.push(Action::Uncordon {
            node: r.node.clone(),
        });
    }
    out.push(clear_in_progress(&r.node));
    out
}

/// Removes the in-progress marker: the last step of a rollout and of its rollback.
pub(crate) fn clear_in_progress(node: &str) -> Action {
    Action::PatchNodeMeta {
        node: node.to_string(),
        labels: Default::default(),
        annotations: [(keys::ROLLOUT_IN_PROGRESS.to_string(), None)].into(),
    }
}

/// The record of a rollout that a stopped replica left half done on `node`, if any.
pub fn interrupted(node: &Node) -> Option<Result<RollbackRecord, String>> {
    annotation(&node.metadata, keys::ROLLOUT_IN_PROGRESS)?;
    let name = node.metadata.name.as_deref().unwrap_or("");
    Some(
        annotation(&node.metadata, keys::ROLLBACK)
            .ok_or_else(|| {
                format!(
                    "node {name}: {} without {}",
                    keys::ROLLOUT_IN_PROGRESS,
                    keys::ROLLBACK
                )
            })
            .and_then(|raw| {
                serde_json::from_str(raw).map_err(|e| {
                    format!(
                        "node {name}: annotation {} is not valid: {e}",
                        keys::ROLLBACK
                    )
                })
            }),
    )
}

/// Undoes a rollout a stopped replica left half done. Whether it had written its ConfigMap entry
/// is not known; the entry is removed only when the record says it did not exist before and no
/// other node's label selects it (entries are shared by content).
pub fn recovery_actions(
    record: &RollbackRecord,
    nodes: &[Node],
    cm: Option<&ConfigMap>,
    scope: &Scope,
) -> Vec<Action> {
    let entry_there = record.entry_key.as_ref().is_some_and(|k| {
        cm.and_then(|c| c.data.as_ref())
            .is_some_and(|d| d.contains_key(k))
    });
    let used_elsewhere = nodes.iter().any(|n| {
        n.metadata.name.as_deref() != Some(record.node.as_str())
            && n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(keys::DEVICE_PLUGIN_CONFIG))
                .is_some_and(|v| Some(v) == record.entry_key.as_ref())
    });
    let written = record.entry_before.is_none() && entry_there && !used_elsewhere;
    rollback_actions(record, scope, written)
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RolloutOutcome {
    Done,
    /// The circuit breaker is open: nothing was changed.
    Deferred {
        reason: String,
    },
    /// The QPS gate is closed: nothing of the batch was changed; asked again later.
    Held {
        reason: String,
        failed_checks: Vec<String>,
    },
    /// The rollout failed and was rolled back (`rollback_errors` lists any step of the rollback
    /// itself that failed: the node annotation still holds the record for a manual undo).
    RolledBack {
        error: String,
        rollback_errors: Vec<String>,
    },
}

/// Runs one node's rollout through `applier`, rolling back on failure and feeding the breaker:
/// the engine crate's rollout machine with this one target, rolling, neither gate nor watch
/// ([`crate::rollout_exec`] carries out its commands).
pub async fn execute<A: Applier>(
    applier: &A,
    scope: &Scope,
    breaker: &mut CircuitBreaker,
    r: &Rollout,
    timing: &RolloutTiming,
    now_unix_s: f64,
) -> RolloutOutcome {
    crate::rollout_exec::run(
        applier,
        scope,
        breaker,
        gpusched_policies::rollout::MachineConfig::default(),
        std::slice::from_ref(r),
        timing,
        &crate::rollout_exec::NoObserver,
        now_unix_s,
    )
    .await
    .outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpusched_policies::sharing::NodeSharing;

    fn capacity(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn readiness_is_read_from_the_config_the_plugin_will_serve() {
        let ready = |s: NodeSharing| PluginReady::for_config(Some(&s.device_plugin_yaml(4)), 8);
        assert_eq!(
            ready(NodeSharing::MpsUniform { replicas: 2 }),
            Ok(PluginReady::GpuCapacity { count: 16 })
        );
        // The per-client key names no replica count; its config serves 4 time-slicing replicas.
        assert_eq!(
            ready(NodeSharing::MpsPerClient),
            Ok(PluginReady::GpuCapacity { count: 32 })
        );
        assert_eq!(
            ready(NodeSharing::Exclusive),
            Ok(PluginReady::GpuCapacity { count: 8 })
        );
        assert_eq!(ready(NodeSharing::Mig), Ok(PluginReady::MigResources));
        assert_eq!(
            PluginReady::for_config(None, 8),
            Ok(PluginReady::GpuCapacity { count: 8 })
        );
        assert!(PluginReady::for_config(Some("sharing: [unclosed"), 8).is_err());
        let zero = "version: v1\nsharing:\n  mps:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 0\n";
        assert!(PluginReady::for_config(Some(zero), 8)
            .unwrap_err()
            .contains("replicas"));
    }

    #[test]
    fn an_unlabelled_node_already_serves_the_exclusive_config() {
        let scope = Scope::new(
            ["ml".to_string()],
            "nvidia-device-plugin",
            "device-plugin-config",
        )
        .unwrap();
        let cm = ConfigMap::default();
        let node = crate::testutil::gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 8);
        let exclusive = NodeSharing::Exclusive;
        let plan = |n: &Node, s: NodeSharing| {
            plan_rollout(
                n,
                Some(&cm),
                Some(&s.config_key()),
                Some(&s.device_plugin_yaml(0)),
                &[],
                &scope,
                0.0,
            )
        };
        assert_eq!(plan(&node, exclusive), Ok(None), "no cordon, no relabel");
        // A sharing config still needs its rollout, and so does exclusive on a node labelled
        // with another config.
        assert!(plan(&node, NodeSharing::MpsUniform { replicas: 2 })
            .unwrap()
            .is_some());
        let mut labelled = node.clone();
        labelled.metadata.labels.as_mut().unwrap().insert(
            keys::DEVICE_PLUGIN_CONFIG.into(),
            NodeSharing::MpsUniform { replicas: 2 }.config_key(),
        );
        assert!(plan(&labelled, exclusive).unwrap().is_some());
    }

    #[test]
    fn readiness_checks_what_the_node_advertises() {
        let gpus = PluginReady::GpuCapacity { count: 16 };
        assert!(gpus.met(&capacity(&[("nvidia.com/gpu", "16"), ("cpu", "64")])));
        assert!(!gpus.met(&capacity(&[("nvidia.com/gpu", "8")])));
        assert!(!gpus.met(&capacity(&[])));
        let mig = PluginReady::MigResources;
        assert!(mig.met(&capacity(&[("nvidia.com/mig-1g.10gb", "7")])));
        assert!(!mig.met(&capacity(&[("nvidia.com/gpu", "8")])));
        assert!(!mig.met(&capacity(&[("nvidia.com/mig-1g.10gb", "0")])));
    }
}
