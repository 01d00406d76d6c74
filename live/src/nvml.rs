//! GPU readings. [`GpuReader`] is the seam: [`NvmlReader`] reads real GPUs through NVML
//! (nvml-wrapper loads `libnvidia-ml.so` at run time, so a machine without a driver gets a clear
//! error, not a crash), and [`FakeReader`] serves fixed readings to tests.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum NvmlError {
    #[error(
        "NVML is not available: {0}. This command needs an NVIDIA GPU with its driver \
         (libnvidia-ml.so); in a pod, run it with the NVIDIA container runtime \
         (runtimeClassName: nvidia or the GPU Operator's toolkit)"
    )]
    Unavailable(String),
    #[error("NVML found no GPU on this machine")]
    NoGpu,
    #[error("NVML call {call} on GPU {index} failed: {message}")]
    Call {
        call: &'static str,
        index: u32,
        message: String,
    },
}

/// One process using a GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessReading {
    pub pid: u32,
    /// Device memory the process holds, MiB (None where the driver does not say).
    pub used_memory_mib: Option<u64>,
    /// The MIG GPU instance it runs in, when MIG is on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gpu_instance_id: Option<u32>,
}

/// One MIG instance of a GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigInstanceReading {
    pub index: u32,
    pub name: String,
    pub uuid: String,
    pub memory_total_mib: u64,
    pub memory_used_mib: u64,
}

/// One full reading of one GPU. Fields NVML cannot give on this GPU (e.g. utilisation under MIG)
/// are `None` rather than a made-up zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuReading {
    pub index: u32,
    pub name: String,
    pub uuid: String,
    /// Percent of the last sample period a kernel was running (NVML "GPU busy").
    pub utilisation_pct: Option<u32>,
    pub memory_used_mib: u64,
    pub memory_total_mib: u64,
    pub power_w: Option<f64>,
    /// Energy since the driver was loaded, joules.
    pub energy_j: Option<f64>,
    pub temperature_c: Option<u32>,
    pub mig_enabled: bool,
    pub mig_instances: Vec<MigInstanceReading>,
    pub processes: Vec<ProcessReading>,
}

/// Everything read on one node at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReading {
    /// Unix time of the reading, seconds.
    pub t_unix_s: f64,
    pub driver_version: Option<String>,
    pub gpus: Vec<GpuReading>,
}

/// The compact form the agent publishes in the node annotation `gpusched.io/gpu-metrics`
/// (annotations are small and every watcher of Nodes receives them, so only what the controller
/// needs: utilisation and memory per GPU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    /// Unix time of the reading, seconds (the controller ignores stale summaries).
    pub t: f64,
    pub gpus: Vec<GpuSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSummary {
    pub i: u32,
    /// Utilisation 0..=1; absent when NVML has none (MIG-enabled GPUs).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub util: Option<f64>,
    pub mem_used_mib: u64,
    pub mem_total_mib: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub power_w: Option<f64>,
    #[serde(default)]
    pub mig: bool,
    #[serde(default)]
    pub procs: u32,
}

impl NodeReading {
    pub fn summary(&self) -> NodeSummary {
        NodeSummary {
            t: self.t_unix_s,
            gpus: self
                .gpus
                .iter()
                .map(|g| GpuSummary {
                    i: g.index,
                    util: g.utilisation_pct.map(|u| u as f64 / 100.0),
                    mem_used_mib: g.memory_used_mib,
                    mem_total_mib: g.memory_total_mib,
                    power_w: g.power_w,
                    mig: g.mig_enabled,
                    procs: g.processes.len() as u32,
                })
                .collect(),
        }
    }
}

/// Reads every GPU of this machine.
pub trait GpuReader: Send {
    fn read(&mut self, t_unix_s: f64) -> Result<NodeReading, NvmlError>;
}

/// Fixed readings for tests (and for running the agent's HTTP side without a GPU).
#[derive(Debug, Clone)]
pub struct FakeReader {
    pub gpus: Vec<GpuReading>,
    pub reads: u64,
}

impl FakeReader {
    pub fn new(gpus: Vec<GpuReading>) -> Self {
        Self { gpus, reads: 0 }
    }
    /// An idle H100 the way NVML reports one (76 W settled idle, DOMAIN.md).
    pub fn h100() -> Self {
        Self::new(vec![GpuReading {
            index: 0,
            name: "NVIDIA H100 80GB HBM3".into(),
            uuid: "GPU-00000000-0000-0000-0000-000000000000".into(),
            utilisation_pct: Some(37),
            memory_used_mib: 20480,
            memory_total_mib: 81559,
            power_w: Some(312.5),
            energy_j: Some(1.0e6),
            temperature_c: Some(41),
            mig_enabled: false,
            mig_instances: vec![],
            processes: vec![ProcessReading {
                pid: 4242,
                used_memory_mib: Some(20000),
                gpu_instance_id: None,
            }],
        }])
    }
}

impl GpuReader for FakeReader {
    fn read(&mut self, t_unix_s: f64) -> Result<NodeReading, NvmlError> {
        self.reads += 1;
        if self.gpus.is_empty() {
            return Err(NvmlError::NoGpu);
        }
        Ok(NodeReading {
            t_unix_s,
            driver_version: Some("fake".into()),
            gpus: self.gpus.clone(),
        })
    }
}

/// Real GPUs through NVML.
pub struct NvmlReader {
    nvml: nvml_wrapper::Nvml,
}

const MIB: u64 = 1024 * 1024;

impl NvmlReader {
    /// Loads NVML. Fails with [`NvmlError::Unavailable`] where there is no driver, and with
    /// [`NvmlError::NoGpu`] where the driver sees no GPU.
    pub fn new() -> Result<Self, NvmlError> {
        let nvml = nvml_wrapper::Nvml::init().map_err(|e| NvmlError::Unavailable(e.to_string()))?;
        let n = nvml
            .device_count()
            .map_err(|e| NvmlError::Unavailable(e.to_string()))?;
        if n == 0 {
            return Err(NvmlError::NoGpu);
        }
        Ok(Self { nvml })
    }
}

fn call_err(
    call: &'static str,
    index: u32,
) -> impl Fn(nvml_wrapper::error::NvmlError) -> NvmlError {
    move |e| NvmlError::Call {
        call,
        index,
        message: e.to_string(),
    }
}

impl GpuReader for NvmlReader {
    fn read(&mut self, t_unix_s: f64) -> Result<NodeReading, NvmlError> {
        use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
        use nvml_wrapper::enums::device::UsedGpuMemory;
        let count = self
            .nvml
            .device_count()
            .map_err(|e| NvmlError::Unavailable(e.to_string()))?;
        let mut gpus = Vec::with_capacity(count as usize);
        for index in 0..count {
            let d = self
                .nvml
                .device_by_index(index)
                .map_err(call_err("device_by_index", index))?;
            let mem = d.memory_info().map_err(call_err("memory_info", index))?;
            // MIG mode: NotSupported on GPUs without MIG, which simply means "off".
            let mig_enabled = d.mig_mode().map(|m| m.current == 1).unwrap_or(false);
            let mut mig_instances = Vec::new();
            if mig_enabled {
                let max = d.mig_device_count().unwrap_or(0);
                for mi in 0..max {
                    // Slots without an instance report NotFound: skip them.
                    if let Ok(m) = d.mig_device_by_index(mi) {
                        let mm = m.memory_info().ok();
                        mig_instances.push(MigInstanceReading {
                            index: mi,
                            name: m.name().unwrap_or_default(),
                            uuid: m.uuid().unwrap_or_default(),
                            memory_total_mib: mm.as_ref().map_or(0, |x| x.total / MIB),
                            memory_used_mib: mm.as_ref().map_or(0, |x| x.used / MIB),
                        });
                    }
                }
            }
            let processes = d
                .running_compute_processes()
                .unwrap_or_default()
                .into_iter()
                .map(|p| ProcessReading {
                    pid: p.pid,
                    used_memory_mib: match p.used_gpu_memory {
                        UsedGpuMemory::Used(b) => Some(b / MIB),
                        UsedGpuMemory::Unavailable => None,
                    },
                    gpu_instance_id: p.gpu_instance_id,
                })
                .collect();
            gpus.push(GpuReading {
                index,
                name: d.name().map_err(call_err("name", index))?,
                uuid: d.uuid().map_err(call_err("uuid", index))?,
                // NVML reports no utilisation on MIG-enabled GPUs (DOMAIN.md): None, not 0.
                utilisation_pct: d.utilization_rates().ok().map(|u| u.gpu),
                memory_used_mib: mem.used / MIB,
                memory_total_mib: mem.total / MIB,
                power_w: d.power_usage().ok().map(|mw| mw as f64 / 1000.0),
                energy_j: d
                    .total_energy_consumption()
                    .ok()
                    .map(|mj| mj as f64 / 1000.0),
                temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
                mig_enabled,
                mig_instances,
                processes,
            });
        }
        Ok(NodeReading {
            t_unix_s,
            driver_version: self.nvml.sys_driver_version().ok(),
            gpus,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keeps_what_the_controller_needs() {
        let mut f = FakeReader::h100();
        let r = f.read(1000.0).unwrap();
        let s = r.summary();
        assert_eq!(s.t, 1000.0);
        assert_eq!(s.gpus[0].util, Some(0.37));
        assert_eq!(s.gpus[0].procs, 1);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.len() < 200, "compact: {json}");
        let back: NodeSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_fake_without_gpus_reports_no_gpu() {
        let mut f = FakeReader::new(vec![]);
        assert!(matches!(f.read(0.0), Err(NvmlError::NoGpu)));
    }

    /// Real NVML. On a machine without a GPU it checks the error is clear; on a GPU machine run
    /// `cargo test -p gpusched-live -- --ignored nvml` to read the real GPUs.
    #[test]
    fn nvml_without_a_gpu_fails_clearly() {
        match NvmlReader::new() {
            Ok(_) => eprintln!("skipped: a GPU is present (see the ignored nvml_reads_real_gpus)"),
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains("NVML") || m.contains("GPU"), "{m}");
            }
        }
    }

    #[test]
    #[ignore = "needs an NVIDIA GPU: cargo test -p gpusched-live -- --ignored nvml"]
    fn nvml_reads_real_gpus() {
        let mut r = match NvmlReader::new() {
            Ok(r) => r,
            Err(e) => panic!("no GPU here: {e}"),
        };
        let reading = r.read(0.0).expect("a reading");
        println!("{}", serde_json::to_string_pretty(&reading).unwrap());
        assert!(!reading.gpus.is_empty());
        for g in &reading.gpus {
            assert!(g.memory_total_mib > 1024, "{g:?}");
            assert!(!g.uuid.is_empty());
        }
    }
}
