//! Decisions: what the engine tells the world to do. The simulator applies them; the live
//! adapter turns them into API requests. Both log them in the same JSON-lines shape.

use crate::framework::DecisionMatrix;
use crate::mps::MpsPlan;
use crate::view::SharingMode;
use crate::workload::{Priority, SizeClass};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
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
        reason: String,
    },
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
    pub gpu: u8,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix: Option<DecisionMatrix>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleDecision {
    pub service: String,
    pub autoscaler: &'static str,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}
