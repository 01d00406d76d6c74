//! How a workload gets its slice of a GPU, and what a node's device-plugin configuration allows.
//!
//! Reality (DOMAIN.md, NVIDIA k8s-device-plugin v0.20):
//! * one sharing method per node: the plugin config selected by the node label
//!   `nvidia.com/device-plugin.config` is either `timeSlicing` or `mps`, for every GPU of the node;
//! * the plugin's MPS splits every GPU evenly (100 / replicas threads, total / replicas memory) and
//!   is not available on MIG devices;
//! * uneven MPS splits need an MPS daemon that keeps the 100 % default, with per-pod limits;
//! * MIG layouts are set per GPU (GPU Operator mig-manager) and changing one needs the GPU free;
//! * changing a node's config restarts the plugin (and MPS server): only free of risk when no
//!   GPU pod runs there.

use crate::mig::MigProfile;
use serde::{Deserialize, Serialize};

/// What the engine asks of a GPU for one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SliceRequest {
    /// The whole GPU, no sharing.
    Whole,
    /// An MPS client with its own active-thread percentage (per-client limits).
    Mps { pct: u8 },
    /// One of `replicas` equal MPS clients, as the device plugin's `sharing.mps` gives.
    MpsUniform { replicas: u8 },
    /// A MIG instance; the profile is chosen per GPU model from the model's memory unless given.
    Mig { profile: Option<MigProfile> },
    /// One of `replicas` time-sliced slots, with a fairness weight.
    TimeSlice { replicas: u8, weight: u32 },
}

impl SliceRequest {
    /// The node configuration this request needs.
    pub fn node_sharing(self) -> NodeSharing {
        match self {
            SliceRequest::Whole => NodeSharing::Exclusive,
            SliceRequest::Mps { .. } => NodeSharing::MpsPerClient,
            SliceRequest::MpsUniform { replicas } => NodeSharing::MpsUniform { replicas },
            SliceRequest::Mig { .. } => NodeSharing::Mig,
            SliceRequest::TimeSlice { replicas, .. } => NodeSharing::TimeSlicing { replicas },
        }
    }
}

/// A node's GPU-sharing configuration (what the device plugin and the node's daemons run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(tag = "config", rename_all = "snake_case")]
pub enum NodeSharing {
    /// No config yet: the first placement on the node sets it.
    #[default]
    Unset,
    /// The plugin's default: one pod per GPU.
    Exclusive,
    /// The plugin's `sharing.mps` with this many replicas per GPU.
    MpsUniform { replicas: u8 },
    /// An MPS daemon at 100 % default; the plugin advertises slots; pods carry their limits.
    MpsPerClient,
    /// The plugin's `sharing.timeSlicing` with this many replicas per GPU.
    TimeSlicing { replicas: u8 },
    /// MIG instances (GPU Operator, mixed strategy).
    Mig,
}

impl NodeSharing {
    /// The device-plugin config entry (YAML) that realises this node configuration.
    pub fn device_plugin_yaml(self, per_client_slots: u8) -> String {
        let sharing = |method: &str, r: u8| {
            format!("version: v1\nsharing:\n  {method}:\n    renameByDefault: false\n    resources:\n    - name: nvidia.com/gpu\n      replicas: {r}\n")
        };
        match self {
            NodeSharing::Unset | NodeSharing::Exclusive => "version: v1\n".to_string(),
            NodeSharing::MpsUniform { replicas } => sharing("mps", replicas),
            NodeSharing::MpsPerClient => sharing("timeSlicing", per_client_slots.max(2)),
            NodeSharing::TimeSlicing { replicas } => sharing("timeSlicing", replicas),
            NodeSharing::Mig => "version: v1\nflags:\n  migStrategy: mixed\n".to_string(),
        }
    }

    /// The config key a node label `nvidia.com/device-plugin.config=<key>` selects.
    pub fn config_key(self) -> String {
        match self {
            NodeSharing::Unset | NodeSharing::Exclusive => "gpusched-exclusive".into(),
            NodeSharing::MpsUniform { replicas } => format!("gpusched-mps-{replicas}"),
            NodeSharing::MpsPerClient => "gpusched-mps-per-client".into(),
            NodeSharing::TimeSlicing { replicas } => format!("gpusched-time-slicing-{replicas}"),
            NodeSharing::Mig => "gpusched-mig-mixed".into(),
        }
    }

    /// The inverse of [`NodeSharing::config_key`]; `None` for a key gpusched did not write.
    pub fn from_config_key(key: &str) -> Option<NodeSharing> {
        let rest = key.strip_prefix("gpusched-")?;
        let replicas = |s: &str| s.parse::<u8>().ok().filter(|r| *r >= 2);
        Some(match rest {
            "exclusive" => NodeSharing::Exclusive,
            "mps-per-client" => NodeSharing::MpsPerClient,
            "mig-mixed" => NodeSharing::Mig,
            r if r.starts_with("mps-") => NodeSharing::MpsUniform {
                replicas: replicas(&r[4..])?,
            },
            r if r.starts_with("time-slicing-") => NodeSharing::TimeSlicing {
                replicas: replicas(&r[13..])?,
            },
            _ => return None,
        })
    }
}

/// Time-slicing fairness between the clients of one GPU (seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fairness {
    /// Equal slices.
    #[default]
    RoundRobin,
    /// Slices in proportion to the pod's priority class.
    Priority,
    /// Slices in proportion to the pod's requested share.
    Weighted,
}

/// Seed 004's optimal-replicas table: from measured average utilisation and burstiness (both
/// 0..=1), how many time-sliced replicas a GPU should advertise. Rows the table leaves open
/// (low utilisation but steady) get the next row's answer.
pub fn optimal_replicas(avg_utilisation: f64, burstiness: f64) -> u8 {
    if avg_utilisation < 0.20 && burstiness > 0.70 {
        8
    } else if avg_utilisation < 0.40 && burstiness > 0.50 {
        4
    } else if avg_utilisation <= 0.60 {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_004_optimal_replicas_table() {
        assert_eq!(optimal_replicas(0.10, 0.80), 8);
        assert_eq!(optimal_replicas(0.30, 0.60), 4);
        assert_eq!(optimal_replicas(0.50, 0.10), 2);
        assert_eq!(optimal_replicas(0.50, 0.90), 2);
        assert_eq!(optimal_replicas(0.70, 0.90), 1);
        // Low utilisation but steady: not bursty enough for 8 or 4.
        assert_eq!(optimal_replicas(0.10, 0.20), 2);
    }

    #[test]
    fn plugin_configs() {
        assert!(NodeSharing::TimeSlicing { replicas: 4 }
            .device_plugin_yaml(0)
            .contains("timeSlicing:\n"));
        assert!(NodeSharing::MpsUniform { replicas: 4 }
            .device_plugin_yaml(0)
            .contains("mps:\n"));
    }
}
