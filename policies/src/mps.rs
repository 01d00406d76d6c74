//! The MPS partition calculation per GPU, and how a partition is expressed in what the NVIDIA
//! device plugin (v0.20) and CUDA MPS really support (DOMAIN.md):
//!
//! * The plugin's `sharing.mps` gives every client of a GPU the same split: active threads
//!   100 / replicas and pinned memory total / replicas. It cannot express uneven splits.
//! * Uneven splits (the seeds' `[50,25,25,0]`) need per-client `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`
//!   and `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT` in each pod's environment, and a client can only
//!   *lower* the daemon's default. Under the plugin's MPS the default is 100 / replicas, so a
//!   50 % client is impossible with 4 replicas. Such a partition therefore needs an MPS control
//!   daemon whose default stays at 100 % (run beside the plugin, which then only advertises
//!   slots through time-slicing replicas), with the per-pod limits doing the partitioning.
//!   The plan says which of the two it needs and why.
//! * CUDA MPS accepts at most 48 clients per GPU.

use crate::plugins::fit::MPS_HARD_CLIENT_LIMIT;
use serde::Serialize;

/// One client (pod) of an MPS partition and the environment the live adapter sets on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MpsClient {
    pub workload: String,
    pub replica: u64,
    pub active_thread_pct: u8,
    /// `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT` for this client, MiB on device 0 of the pod.
    pub pinned_mem_limit_mib: u64,
}

/// How a partition is realised on a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum MpsRealisation {
    /// Every client has 100 / replicas: the device plugin's own `sharing.mps` expresses it.
    DevicePluginUniform { replicas: u8 },
    /// Uneven split: plugin advertises `replicas` slots, a node MPS daemon keeps the 100 %
    /// default, and each pod carries its own limits in its environment.
    PerClientEnv { replicas: u8, reason: String },
}

/// The result of the partition calculation for one GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MpsPlan {
    /// Slots of the partition's granularity: 100 / gcd of the shares (the seeds' "replicas").
    pub replicas: u8,
    /// One entry per slot, largest first, unused slots as 0 (the seeds' `thread_percentages`).
    pub thread_percentages: Vec<u8>,
    pub clients: Vec<MpsClient>,
    pub realisation: MpsRealisation,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MpsError {
    #[error("MPS shares add up to {0} %, more than the GPU's 100 %")]
    Oversubscribed(u32),
    #[error("{0} MPS clients exceed CUDA's hard limit of {MPS_HARD_CLIENT_LIMIT} per GPU")]
    TooManyClients(usize),
    #[error("an MPS share must be 1..=100 %, got {0}")]
    BadShare(u8),
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Computes the partition for a GPU whose clients are `(workload, replica, share_pct)`.
pub fn plan_partition(
    clients: &[(String, u64, u8)],
    gpu_memory_gb: f64,
) -> Result<MpsPlan, MpsError> {
    if clients.len() > MPS_HARD_CLIENT_LIMIT as usize {
        return Err(MpsError::TooManyClients(clients.len()));
    }
    if let Some(&(_, _, s)) = clients.iter().find(|c| c.2 == 0 || c.2 > 100) {
        return Err(MpsError::BadShare(s));
    }
    let total: u32 = clients.iter().map(|c| c.2 as u32).sum();
    if total > 100 {
        return Err(MpsError::Oversubscribed(total));
    }
    let granularity = clients.iter().fold(100, |g, c| gcd(g, c.2 as u32)).max(1);
    let mut replicas = (100 / granularity) as usize;
    // Slots must also cover the client count (e.g. 20 clients of 5 %).
    replicas = replicas
        .max(clients.len())
        .min(MPS_HARD_CLIENT_LIMIT as usize);
    let mut pcts: Vec<u8> = clients.iter().map(|c| c.2).collect();
    pcts.sort_unstable_by(|a, b| b.cmp(a));
    pcts.resize(replicas, 0);
    let mem_mib = gpu_memory_gb * 1024.0;
    let mps_clients = clients
        .iter()
        .map(|(w, r, s)| MpsClient {
            workload: w.clone(),
            replica: *r,
            active_thread_pct: *s,
            pinned_mem_limit_mib: (mem_mib * *s as f64 / 100.0).floor() as u64,
        })
        .collect();
    let uniform_share = 100 / replicas as u32;
    let uniform = clients.iter().all(|c| c.2 as u32 == uniform_share) && replicas >= 2;
    let realisation = if uniform {
        MpsRealisation::DevicePluginUniform {
            replicas: replicas as u8,
        }
    } else {
        let reason = if replicas < 2 {
            "the device plugin's MPS needs replicas >= 2; a single client runs with the daemon default".to_string()
        } else {
            format!(
                "uneven split {:?}: the plugin's MPS caps every client at 100/{} = {} % and clients can only lower it",
                pcts, replicas, uniform_share
            )
        };
        MpsRealisation::PerClientEnv {
            replicas: replicas as u8,
            reason,
        }
    };
    Ok(MpsPlan {
        replicas: replicas as u8,
        thread_percentages: pcts,
        clients: mps_clients,
        realisation,
    })
}

impl MpsPlan {
    /// The device plugin config (the ConfigMap entry selected by the node label
    /// `nvidia.com/device-plugin.config`) that realises this plan.
    pub fn device_plugin_config_yaml(&self) -> String {
        let (method, replicas) = match &self.realisation {
            MpsRealisation::DevicePluginUniform { replicas } => ("mps", *replicas),
            MpsRealisation::PerClientEnv { replicas, .. } => ("timeSlicing", (*replicas).max(2)),
        };
        format!(
            "version: v1\nsharing:\n  {method}:\n    renameByDefault: false\n    resources:\n    - name: nvidia.com/gpu\n      replicas: {replicas}\n"
        )
    }

    /// Environment variables per client pod (empty for the uniform plugin mode, where the
    /// daemon applies the limits itself).
    pub fn client_env(&self) -> Vec<(u64, Vec<(String, String)>)> {
        match self.realisation {
            MpsRealisation::DevicePluginUniform { .. } => Vec::new(),
            MpsRealisation::PerClientEnv { .. } => self
                .clients
                .iter()
                .map(|c| {
                    (
                        c.replica,
                        vec![
                            (
                                "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE".into(),
                                c.active_thread_pct.to_string(),
                            ),
                            (
                                "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT".into(),
                                format!("0={}M", c.pinned_mem_limit_mib),
                            ),
                        ],
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(w: &str, r: u64, s: u8) -> (String, u64, u8) {
        (w.into(), r, s)
    }

    #[test]
    fn seeds_example_50_25_plus_25_becomes_four_replicas() {
        let p = plan_partition(
            &[c("medium", 1, 50), c("tiny", 2, 25), c("tiny", 3, 25)],
            40.0,
        )
        .unwrap();
        assert_eq!(p.replicas, 4);
        assert_eq!(p.thread_percentages, vec![50, 25, 25, 0]);
        // Uneven: the plugin alone cannot express it.
        assert!(matches!(
            p.realisation,
            MpsRealisation::PerClientEnv { replicas: 4, .. }
        ));
        assert_eq!(p.client_env().len(), 3);
        assert_eq!(p.clients[0].pinned_mem_limit_mib, 20480);
    }

    #[test]
    fn even_split_uses_the_device_plugin() {
        let p = plan_partition(&[c("a", 1, 50), c("b", 2, 50)], 40.0).unwrap();
        assert_eq!(
            p.realisation,
            MpsRealisation::DevicePluginUniform { replicas: 2 }
        );
        assert!(p.device_plugin_config_yaml().contains("mps:\n"));
        assert!(p.client_env().is_empty());
    }

    #[test]
    fn oversubscription_and_client_limit_are_refused() {
        assert_eq!(
            plan_partition(&[c("a", 1, 60), c("b", 2, 50)], 40.0).unwrap_err(),
            MpsError::Oversubscribed(110)
        );
        let many: Vec<_> = (0..49).map(|i| c("x", i, 1)).collect();
        assert!(matches!(
            plan_partition(&many, 80.0),
            Err(MpsError::TooManyClients(49))
        ));
    }
}
