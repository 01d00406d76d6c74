//! The read-only cluster view the engine decides from. The simulator keeps its node state in
//! exactly these types (so a placement copies nothing); the live adapter builds them from Nodes,
//! Pods and NVML readings.

use crate::gpu::GpuModel;
use crate::mig::MigInstance;
use crate::sharing::NodeSharing;
use crate::workload::SizeClass;
use serde::{Deserialize, Serialize};

/// A GPU's sharing mode and an allocation's slice; each mode's behaviour is its module's in
/// [`crate::modes`].
pub use crate::modes::{AllocSlice, SharingMode};

/// One instance of a GPU's MIG layout and who uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigSlot {
    pub instance: MigInstance,
    pub replica: Option<u64>,
}

/// One workload replica's slice of a GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationView {
    pub workload: String,
    pub replica: u64,
    pub class: SizeClass,
    /// Nominal share of the GPU in percent: the MPS thread percentage, 100 for a whole GPU,
    /// 100 / replicas for a time-sliced slot, the SM share of a MIG instance.
    pub share_pct: u8,
    pub memory_gb: f64,
    pub slice: AllocSlice,
    /// Kubernetes priority-class value (seed 003: 1000 / 500 / 100); preemption evicts lower.
    pub priority_class: i32,
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
    /// The MIG layout, empty when MIG is off.
    pub mig: Vec<MigSlot>,
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
            mig: Vec::new(),
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

    /// Adds an allocation and keeps the derived totals and the MIG slot in step.
    pub fn add_allocation(&mut self, a: AllocationView, mode: SharingMode) {
        self.memory_allocated_gb += a.memory_gb;
        self.share_allocated_pct += a.share_pct as u16;
        if let AllocSlice::Mig { instance } = a.slice {
            if let Some(slot) = self
                .mig
                .iter_mut()
                .find(|s| s.instance == instance && s.replica.is_none())
            {
                slot.replica = Some(a.replica);
            }
        }
        self.mode = mode;
        self.allocations.push(a);
    }

    /// Removes a replica's allocation; the GPU becomes `Free` when nothing is left (a MIG
    /// layout stays configured).
    pub fn remove_allocation(&mut self, replica: u64) -> Option<AllocationView> {
        let pos = self.allocations.iter().position(|a| a.replica == replica)?;
        let a = self.allocations.remove(pos);
        self.memory_allocated_gb = (self.memory_allocated_gb - a.memory_gb).max(0.0);
        self.share_allocated_pct = self.share_allocated_pct.saturating_sub(a.share_pct as u16);
        for slot in &mut self.mig {
            if slot.replica == Some(replica) {
                slot.replica = None;
            }
        }
        if self.allocations.is_empty() {
            self.mode = if self.mig.is_empty() {
                SharingMode::Free
            } else {
                SharingMode::Mig
            };
            self.memory_allocated_gb = 0.0;
            self.share_allocated_pct = 0;
        }
        Some(a)
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
    /// The node's device-plugin sharing configuration.
    pub sharing: NodeSharing,
    /// A pool pinned to one sharing method (seed 003's time-slicing and MIG pools).
    pub designated: Option<NodeSharing>,
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
            sharing: NodeSharing::Unset,
            designated: None,
        }
    }

    /// No GPU of the node runs anything: its sharing config can change without disruption.
    pub fn is_empty(&self) -> bool {
        self.gpus.iter().all(|g| g.is_free())
    }

    /// Where a replica is: (GPU index) if it has an allocation here.
    pub fn gpu_of(&self, replica: u64) -> Option<u8> {
        self.gpus
            .iter()
            .find(|g| g.allocations.iter().any(|a| a.replica == replica))
            .map(|g| g.index)
    }

    /// Every GPU holding the replica, ascending: several for a tensor-parallel replica.
    pub fn gpus_of(&self, replica: u64) -> Vec<u8> {
        self.gpus
            .iter()
            .filter(|g| g.allocations.iter().any(|a| a.replica == replica))
            .map(|g| g.index)
            .collect()
    }

    /// Adds the replica's allocation to each GPU of `gpus` (N for a tensor-parallel replica,
    /// each holding `a`, its share of the model): the counterpart of [`Self::remove_replica`].
    pub fn add_replica(&mut self, gpus: &[u8], a: AllocationView, mode: SharingMode) {
        for &gi in gpus {
            self.gpus[gi as usize].add_allocation(a.clone(), mode);
        }
    }

    /// Removes the replica's allocation from every GPU that holds one (a tensor-parallel
    /// replica holds N); returns the GPUs freed.
    pub fn remove_replica(&mut self, replica: u64) -> Vec<u8> {
        let mut freed = Vec::new();
        for g in &mut self.gpus {
            if g.remove_allocation(replica).is_some() {
                freed.push(g.index);
            }
        }
        freed
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
