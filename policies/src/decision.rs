//! Decisions: what the engine tells the world to do. The simulator applies them; the live
//! adapter turns them into API requests. Both log them in the same JSON-lines shape.

use crate::framework::DecisionMatrix;
use crate::mps::MpsPlan;
use crate::sharing::{Fairness, NodeSharing};
use crate::view::{AllocSlice, SharingMode};
use crate::workload::{Priority, SizeClass};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "Place is the common variant and is consumed at once; boxing it would add a heap allocation to every placement"
)]
pub enum Decision {
    /// Bind a replica to a node and GPU with a sharing assignment.
    Place(Placement),
    /// No node can take the replica now; it stays pending and is retried.
    Unschedulable {
        workload: String,
        replica: u64,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        matrix: Option<DecisionMatrix>,
    },
    /// Change a service's replica count.
    Scale(ScaleDecision),
    /// Free a replica's GPU share (scale-down finished draining).
    Release {
        workload: String,
        replica: u64,
        node: String,
        gpu: u8,
        /// Every GPU freed, as in [`Placement::gpus`] (serialised only when several).
        #[serde(skip_serializing_if = "is_single")]
        gpus: Vec<u8>,
        reason: String,
    },
    /// Evict lower-priority replicas so that a higher-priority one fits (seed 003).
    Preempt {
        workload: String,
        replica: u64,
        priority_class: i32,
        node: String,
        #[serde(skip)]
        node_index: usize,
        victims: Vec<Victim>,
        reason: String,
    },
    /// A step of a planned sharing-config rollout (issue 5): cordon, evict, apply config,
    /// wait for the plugin, uncordon, roll back… in the form the live adapter applies.
    Rollout(crate::rollout::RolloutStep),
}

/// A replica evicted by preemption.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Victim {
    pub workload: String,
    pub replica: u64,
    pub gpu: u8,
    pub priority_class: i32,
}

/// A change of a node's device-plugin configuration (label + ConfigMap entry).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeConfigChange {
    pub from: NodeSharing,
    pub to: NodeSharing,
    /// Value of the node label `nvidia.com/device-plugin.config`.
    pub label: String,
    /// The ConfigMap entry under that key.
    pub device_plugin_config: String,
    /// Safe: the node has no GPU pod, so the plugin restart disturbs nothing.
    pub node_was_empty: bool,
}

/// A MIG instance assignment and, when the GPU had to be re-laid out, the new layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigAssignment {
    pub profile: String,
    pub start: u8,
    /// The GPU's layout after the placement, as `profile@start`.
    pub layout: Vec<String>,
    /// The layout changed: the GPU was free and is reconfigured before the pod starts.
    pub reconfigure: bool,
    /// The layout's instances (what `layout` names), for whoever applies the decision.
    #[serde(skip)]
    pub instances: Vec<crate::mig::MigInstance>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeSliceAssignment {
    pub replicas: u8,
    pub weight: u32,
    pub fairness: Fairness,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    pub workload: String,
    pub replica: u64,
    pub class: SizeClass,
    pub priority: Priority,
    /// Index of the node in the view's node slice (not serialised: names are stable, indices not).
    #[serde(skip)]
    pub node_index: usize,
    pub node: String,
    /// The replica's first GPU (the only one unless it is tensor-parallel).
    pub gpu: u8,
    /// Every GPU of the node the replica holds, ascending, `gpu` first: N for a tensor-parallel
    /// replica. Serialised only when there are several (single-GPU lines stay as they were).
    #[serde(skip_serializing_if = "is_single")]
    pub gpus: Vec<u8>,
    pub share_pct: u8,
    /// The GPU's sharing mode once the replica is on it.
    pub sharing: SharingMode,
    /// The GPU's MPS partition after this placement, with what the live adapter applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mps: Option<MpsPlan>,
    /// The device-plugin config entry for the node, when the placement changes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_plugin_config: Option<String>,
    pub score: f64,
    pub reason: String,
    /// The GPU slice assigned.
    pub slice: AllocSlice,
    pub priority_class: i32,
    pub sharing_reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_config: Option<NodeConfigChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mig: Option<MigAssignment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_slicing: Option<TimeSliceAssignment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix: Option<DecisionMatrix>,
}

fn is_single(gpus: &[u8]) -> bool {
    gpus.len() <= 1
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleDecision {
    pub service: String,
    pub autoscaler: &'static str,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}
