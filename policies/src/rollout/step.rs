//! The steps of a rollout as decisions.jsonl lines, in the form the live adapter applies them
//! (see `live::rollback`): each carries the node, the label and ConfigMap entry to write, and
//! what a rollback restores.

use super::plan::Strategy;
use serde::Serialize;

/// One rollout step and why it was taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutStep {
    /// Rollouts are numbered from 1 in the order they fell due.
    pub rollout: u32,
    pub strategy: Strategy,
    #[serde(flatten)]
    pub kind: StepKind,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum StepKind {
    /// A new layout is worth it: the nodes to change, from which config to which.
    Due {
        nodes: Vec<String>,
        from_label: String,
        to_label: String,
    },
    /// The timing gate is closed (the failed checks are named).
    Postponed { failed_checks: Vec<String> },
    /// The circuit breaker is open.
    Deferred,
    /// `spec.unschedulable = true`.
    Cordon { node: String },
    /// Pre-warming: `replicas` more pods of `workload` started elsewhere before the drain.
    Surge { workload: String, replicas: u32 },
    /// Eviction API on one pod (graceful: it finishes its requests).
    Evict {
        node: String,
        workload: String,
        replica: u64,
    },
    /// Blue-green: this share of green's pods now served by blue.
    ShiftTraffic { percent: u8 },
    /// Write the ConfigMap entry and relabel the node; `previous_*` is the rollback record.
    ApplyConfig {
        node: String,
        label: String,
        device_plugin_config: String,
        previous_label: String,
        previous_device_plugin_config: String,
        /// GPU pods on the node when it was applied (they lose their context).
        pods_restarted: u32,
    },
    /// Wait until the plugin advertises the new capacity.
    WaitForPlugin { node: String, timeout_s: f64 },
    /// `spec.unschedulable = false`.
    Uncordon { node: String },
    /// Wait until the batch's pods are ready again.
    WaitForPods { pods: u32 },
    /// A watched window's health (canary, blue-green steps).
    Watch {
        error_rate: f64,
        p99_ms: f64,
        healthy: bool,
    },
    /// Restore the previous label and ConfigMap entry.
    Rollback {
        node: String,
        label: String,
        device_plugin_config: String,
    },
    /// The node never came back (plugin not advertising, pods failing readiness): left cordoned.
    NodeLost { node: String },
    /// Every node runs the new config.
    Done { converge_s: f64 },
    /// The rollout failed (and was rolled back); counts against the circuit breaker.
    Failed,
}
