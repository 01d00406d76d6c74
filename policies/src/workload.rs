//! Workloads and their classification (the PreFilter step): size class from model memory,
//! priority, latency SLA, and the seeds' table of preferred GPU and MPS share per class.

use crate::gpu::{GpuFamily, GpuModel};
use crate::sharing::SliceRequest;
use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
}

/// What kind of work a workload is (seed 004's admission flow keys on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    #[default]
    Inference,
    Batch,
    Training,
    Development,
    /// Model serving (seed 004 treats it like inference).
    Serving,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeClass {
    Tiny,
    Medium,
    Large,
}

/// The seeds' classification table. Boundaries are inclusive on the lower class: a 4 GB model
/// is medium, a 16 GB model is medium, anything above 16 GB is large ("tiny <4GB, medium 4-16GB,
/// large >16GB").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifyConfig {
    pub tiny_below_gb: f64,
    pub large_above_gb: f64,
    pub tiny: ClassTarget,
    pub medium: ClassTarget,
    pub large: ClassTarget,
}

/// Where a class prefers to run and how much of a GPU it asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassTarget {
    pub preferred: GpuFamily,
    /// MPS active-thread percentage (100 = the whole GPU, no sharing).
    pub share_pct: u8,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self {
            tiny_below_gb: 4.0,
            large_above_gb: 16.0,
            tiny: ClassTarget {
                preferred: GpuFamily::A100,
                share_pct: 25,
            },
            medium: ClassTarget {
                preferred: GpuFamily::A100,
                share_pct: 50,
            },
            large: ClassTarget {
                preferred: GpuFamily::H100,
                share_pct: 100,
            },
        }
    }
}

/// What the engine is asked to place: one replica of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    pub name: String,
    /// GPU memory the model needs, GB.
    pub model_memory_gb: f64,
    #[serde(default)]
    pub priority: Priority,
    /// Latency objective in milliseconds (p99), if any.
    #[serde(default)]
    pub latency_sla_ms: Option<f64>,
    #[serde(default)]
    pub kind: WorkloadKind,
    /// Hard constraint (node affinity): only these GPU models. Empty = any.
    #[serde(default)]
    pub required_gpu_models: Vec<GpuModel>,
    /// Override of the class's MPS share, percent.
    #[serde(default)]
    pub share_pct: Option<u8>,
    /// Kubernetes namespace (admission skips exempt namespaces).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The pod opted out of sharing (seed 004's `optimize: "false"` annotation).
    #[serde(default)]
    pub opt_out: bool,
    /// Priority-class value; default from `priority` (high 1000, medium 500, low 100).
    #[serde(default)]
    pub priority_class: Option<i32>,
    /// An explicit sharing mode for this workload (seed 004's `sharing-mode` annotation).
    #[serde(default)]
    pub sharing_mode: Option<crate::admission::SharingPolicy>,
    /// GPUs per replica (tensor parallelism): 1, or N whole GPUs of one node (a real engine
    /// shards the model over NVLink peers, so the GPUs cannot come from different nodes).
    /// `model_memory_gb` is the whole replica's; each GPU holds `model_memory_gb / gpus`.
    #[serde(default = "one_gpu")]
    pub gpus: u32,
}

fn one_gpu() -> u32 {
    1
}

impl WorkloadSpec {
    /// A workload with defaults for everything but its name and memory.
    pub fn new(name: impl Into<String>, model_memory_gb: f64) -> Self {
        Self {
            name: name.into(),
            model_memory_gb,
            priority: Priority::default(),
            latency_sla_ms: None,
            kind: WorkloadKind::default(),
            required_gpu_models: Vec::new(),
            share_pct: None,
            namespace: None,
            opt_out: false,
            priority_class: None,
            sharing_mode: None,
            gpus: 1,
        }
    }

    /// GPU memory each of the replica's GPUs must hold: the model is sharded evenly.
    pub fn memory_per_gpu_gb(&self) -> f64 {
        self.model_memory_gb / self.gpus.max(1) as f64
    }

    /// Seed 003's priority classes: production-inference 1000, training 500, research 100.
    pub fn priority_class_value(&self) -> i32 {
        self.priority_class.unwrap_or(match self.priority {
            Priority::High => 1000,
            Priority::Medium => 500,
            Priority::Low => 100,
        })
    }
}

/// The classified request that flows through Filter and Score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementRequest {
    pub workload: String,
    /// Memory needed on each GPU the replica takes (the model's memory / `gpus`).
    pub memory_gb: f64,
    pub class: SizeClass,
    pub preferred: GpuFamily,
    pub share_pct: u8,
    pub priority: Priority,
    pub latency_sla_ms: Option<f64>,
    pub kind: WorkloadKind,
    pub required_gpu_models: Vec<GpuModel>,
    /// How it shares a GPU (set by the sharing policy / admission flow).
    pub slice: SliceRequest,
    pub priority_class: i32,
    /// Never place outside the preferred GPU family (MIG workloads do not fall back).
    pub hard_family: bool,
    /// Why the sharing mode was chosen.
    pub sharing_reason: String,
    /// Whole GPUs of one node the replica needs (tensor parallelism); 1 for everything else.
    pub gpus: u32,
}

impl ClassifyConfig {
    pub fn size_class(&self, memory_gb: f64) -> SizeClass {
        if memory_gb < self.tiny_below_gb {
            SizeClass::Tiny
        } else if memory_gb > self.large_above_gb {
            SizeClass::Large
        } else {
            SizeClass::Medium
        }
    }

    pub fn target(&self, class: SizeClass) -> &ClassTarget {
        match class {
            SizeClass::Tiny => &self.tiny,
            SizeClass::Medium => &self.medium,
            SizeClass::Large => &self.large,
        }
    }

    /// PreFilter: turns a workload into a placement request.
    pub fn classify(&self, w: &WorkloadSpec) -> PlacementRequest {
        let class = self.size_class(w.model_memory_gb);
        let target = self.target(class);
        PlacementRequest {
            workload: w.name.clone(),
            memory_gb: w.memory_per_gpu_gb(),
            class,
            preferred: target.preferred,
            share_pct: w.share_pct.unwrap_or(target.share_pct).clamp(1, 100),
            priority: w.priority,
            latency_sla_ms: w.latency_sla_ms,
            kind: w.kind,
            required_gpu_models: w.required_gpu_models.clone(),
            slice: if target.share_pct >= 100 && w.share_pct.is_none_or(|p| p >= 100) {
                SliceRequest::Whole
            } else {
                SliceRequest::Mps {
                    pct: w.share_pct.unwrap_or(target.share_pct).clamp(1, 100),
                }
            },
            priority_class: w.priority_class_value(),
            hard_family: false,
            sharing_reason: "size class".into(),
            gpus: w.gpus.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(gb: f64) -> WorkloadSpec {
        WorkloadSpec::new("w", gb)
    }

    #[test]
    fn seeds_classification_table() {
        let c = ClassifyConfig::default();
        let t = c.classify(&spec(3.9));
        assert_eq!(
            (t.class, t.preferred, t.share_pct),
            (SizeClass::Tiny, GpuFamily::A100, 25)
        );
        let m = c.classify(&spec(8.0));
        assert_eq!(
            (m.class, m.preferred, m.share_pct),
            (SizeClass::Medium, GpuFamily::A100, 50)
        );
        assert_eq!(c.classify(&spec(4.0)).class, SizeClass::Medium);
        assert_eq!(c.classify(&spec(16.0)).class, SizeClass::Medium);
        let l = c.classify(&spec(40.0));
        assert_eq!(
            (l.class, l.preferred, l.share_pct),
            (SizeClass::Large, GpuFamily::H100, 100)
        );
    }
}
