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

use serde::{Deserialize, Serialize};

/// The request and node-configuration types; each mode's behaviour is its module's in
/// [`crate::modes`].
pub use crate::modes::{NodeSharing, SliceRequest};

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
