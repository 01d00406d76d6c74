//! The read-only cluster view the engine decides from. The simulator keeps its node state in
//! exactly these types (so a placement copies nothing); the live adapter builds them from Nodes,
//! Pods and NVML readings.

use crate::gpu::GpuModel;
use crate::workload::SizeClass;
use serde::{Deserialize, Serialize};

/// How one GPU is being shared right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum SharingMode {
    /// Nothing runs on it and no sharing is configured.
    Free,
    /// One pod owns the whole GPU.
    Exclusive,
    /// CUDA MPS clients with active-thread percentages.
    Mps,
    /// Time-slicing with this many advertised replicas.
    TimeSlicing { replicas: u8 },
}

/// One workload replica's slice of a GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationView {
    pub workload: String,
    pub replica: u64,
    pub class: SizeClass,
    /// MPS active-thread percentage (100 for exclusive).
    pub share_pct: u8,
    pub memory_gb: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuView {
    pub index: u8,
    pub memory_total_gb: f64,
    pub memory_allocated_gb: f64,
    /// Sum of the allocations' active-thread percentages.
    pub share_allocated_pct: u16,
    /// Measured utilisation over the last monitoring window, 0..=1 (NVML's "GPU busy" sense).
    pub utilisation: f64,
    pub mode: SharingMode,
    pub allocations: Vec<AllocationView>,
}

impl GpuView {
    pub fn new(index: u8, memory_total_gb: f64) -> Self {
        Self {
            index,
            memory_total_gb,
            memory_allocated_gb: 0.0,
            share_allocated_pct: 0,
            utilisation: 0.0,
            mode: SharingMode::Free,
            allocations: Vec::new(),
        }
    }
    pub fn memory_free_gb(&self) -> f64 {
        (self.memory_total_gb - self.memory_allocated_gb).max(0.0)
    }
    pub fn share_free_pct(&self) -> u16 {
        100u16.saturating_sub(self.share_allocated_pct)
    }
    pub fn is_free(&self) -> bool {
        self.allocations.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub name: String,
    /// Position in the cluster's fixed node order (FirstFit and tie-breaks use it).
    pub ordinal: u32,
    pub pool: String,
    pub model: GpuModel,
    pub gpus: Vec<GpuView>,
    pub cordoned: bool,
}

impl NodeView {
    pub fn new(
        name: impl Into<String>,
        ordinal: u32,
        pool: impl Into<String>,
        model: GpuModel,
        gpus: u8,
        memory_gb: f64,
    ) -> Self {
        Self {
            name: name.into(),
            ordinal,
            pool: pool.into(),
            model,
            gpus: (0..gpus).map(|i| GpuView::new(i, memory_gb)).collect(),
            cordoned: false,
        }
    }

    /// Mean measured utilisation across the node's GPUs.
    pub fn utilisation(&self) -> f64 {
        if self.gpus.is_empty() {
            return 0.0;
        }
        self.gpus.iter().map(|g| g.utilisation).sum::<f64>() / self.gpus.len() as f64
    }

    /// Free compute share across the node, in GPUs (a half-used GPU counts 0.5).
    pub fn share_free_gpus(&self) -> f64 {
        self.gpus
            .iter()
            .map(|g| g.share_free_pct() as f64 / 100.0)
            .sum()
    }
}

impl crate::framework::NamedNode for NodeView {
    fn node_name(&self) -> &str {
        &self.name
    }
}
