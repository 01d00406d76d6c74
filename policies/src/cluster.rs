//! The cluster state every world keeps between decisions: the node views the engine decides
//! from, the one definition of what a decision does to them, and which nodes changed since the
//! engine last looked (its capacity index re-keys only those).
//!
//! The simulator owns one, the placement bench and the tests build one, and the live adapter
//! builds one from Nodes and Pods (`live::view::build_view`) and assumes its bindings into it.
//! [`ClusterState::apply`] and [`ClusterState::release`] are the only places an allocation is
//! added or removed, so a placement means the same thing in every world.

use crate::decision::{Decision, Placement};
use crate::sharing::NodeSharing;
use crate::view::{AllocSlice, AllocationView, MigSlot, NodeView};
use std::ops::Deref;
use thiserror::Error;

/// Whoever caches per-node results and must hear which nodes changed (the engine's capacity
/// index): the seam between the state and its readers.
pub trait ChangeSink {
    fn node_changed(&mut self, i: usize);
    fn all_nodes_changed(&mut self);
}

impl ChangeSink for crate::Engine {
    fn node_changed(&mut self, i: usize) {
        crate::Engine::node_changed(self, i)
    }
    fn all_nodes_changed(&mut self) {
        crate::Engine::all_nodes_changed(self)
    }
}

/// What applying a placement changed beyond the allocation itself (the simulator charges a
/// plugin restart or a MIG re-layout for these; live writes the label and ConfigMap entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// The node's device-plugin config changed from this one.
    pub config_changed_from: Option<NodeSharing>,
    /// The placement's GPU got a new MIG layout.
    pub mig_relayout: bool,
}

/// A decision that cannot be applied to this state.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ApplyError {
    #[error("node {0} is not in the cluster state")]
    UnknownNode(String),
    #[error("node {node} has no GPU {gpu}")]
    UnknownGpu { node: String, gpu: u8 },
    #[error("replica {replica} of {workload} holds no GPU on node {node}")]
    NotPlaced {
        workload: String,
        replica: u64,
        node: String,
    },
}

/// Which nodes changed since the last [`ClusterState::flush_to`]: all of them, or a list
/// without repeats (`seen` flags its members, so marking is O(1)).
#[derive(Debug, Clone, Default, PartialEq)]
struct Changes {
    all: bool,
    seen: Vec<bool>,
    list: Vec<usize>,
}

/// The node views and their change tracking. Reads go through `Deref<Target = [NodeView]>`
/// (the engine takes `&[NodeView]`); every write goes through a method that records the node.
/// Two states are equal when their nodes are (what is still to be reported is not state).
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    nodes: Vec<NodeView>,
    changes: Changes,
}

impl PartialEq for ClusterState {
    fn eq(&self, other: &Self) -> bool {
        self.nodes == other.nodes
    }
}

impl Deref for ClusterState {
    type Target = [NodeView];
    fn deref(&self) -> &[NodeView] {
        &self.nodes
    }
}

impl<'a> IntoIterator for &'a ClusterState {
    type Item = &'a NodeView;
    type IntoIter = std::slice::Iter<'a, NodeView>;
    fn into_iter(self) -> Self::IntoIter {
        self.nodes.iter()
    }
}

impl From<Vec<NodeView>> for ClusterState {
    fn from(nodes: Vec<NodeView>) -> Self {
        Self::new(nodes)
    }
}

impl ClusterState {
    /// A state over `nodes`; every node counts as changed until the first flush.
    pub fn new(nodes: Vec<NodeView>) -> Self {
        let seen = vec![false; nodes.len()];
        Self {
            nodes,
            changes: Changes {
                all: true,
                seen,
                list: Vec::new(),
            },
        }
    }

    pub fn nodes(&self) -> &[NodeView] {
        &self.nodes
    }

    pub fn into_nodes(self) -> Vec<NodeView> {
        self.nodes
    }

    /// Index of the node called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    fn mark(&mut self, i: usize) {
        let c = &mut self.changes;
        if !c.all && !c.seen[i] {
            c.seen[i] = true;
            c.list.push(i);
        }
    }

    /// Write access to node `i` for what no method below covers; the node counts as changed.
    pub fn node_mut(&mut self, i: usize) -> &mut NodeView {
        self.mark(i);
        &mut self.nodes[i]
    }

    /// Replaces node `i` (e.g. undoing a trial placement); the node counts as changed.
    pub fn replace_node(&mut self, i: usize, n: NodeView) -> NodeView {
        self.mark(i);
        std::mem::replace(&mut self.nodes[i], n)
    }

    /// `spec.unschedulable` on node `i`.
    pub fn set_cordoned(&mut self, i: usize, cordoned: bool) {
        self.node_mut(i).cordoned = cordoned;
    }

    /// Node `i`'s device-plugin config; a designated pool follows it.
    pub fn set_sharing(&mut self, i: usize, to: NodeSharing) {
        let n = self.node_mut(i);
        n.sharing = to;
        if n.designated.is_some() {
            n.designated = Some(to);
        }
    }

    /// The measured utilisation of one GPU (a caller re-measuring the whole cluster may call
    /// [`Self::all_changed`] first: marking is then free).
    pub fn set_utilisation(&mut self, node: usize, gpu: u8, u: f64) {
        self.mark(node);
        self.nodes[node].gpus[gpu as usize].utilisation = u;
    }

    /// Every node may have changed.
    pub fn all_changed(&mut self) {
        self.changes.all = true;
    }

    /// Reports the nodes changed since the last flush to `sink` and forgets them.
    pub fn flush_to(&mut self, sink: &mut impl ChangeSink) {
        let c = &mut self.changes;
        for &i in &c.list {
            c.seen[i] = false;
            if !c.all {
                sink.node_changed(i);
            }
        }
        c.list.clear();
        if std::mem::take(&mut c.all) {
            sink.all_nodes_changed();
        }
    }

    /// Applies a placement: the node's new sharing config, a reconfigured MIG layout, then the
    /// allocation on every GPU of `p.gpus` (N for a tensor-parallel replica, `gpu` first; a
    /// placement built by hand with `gpus` empty holds `gpu` alone). A free GPU taking a slice
    /// that is not a MIG instance loses a stale MIG layout. `memory_gb` is what each GPU holds
    /// (`WorkloadSpec::memory_per_gpu_gb`).
    pub fn apply(&mut self, p: &Placement, memory_gb: f64) -> Applied {
        let mut applied = Applied::default();
        self.mark(p.node_index);
        let node = &mut self.nodes[p.node_index];
        if let Some(c) = &p.node_config {
            applied.config_changed_from = Some(c.from);
            node.sharing = c.to;
        }
        if let Some(m) = p.mig.as_ref().filter(|m| m.reconfigure) {
            applied.mig_relayout = true;
            node.gpus[p.gpu as usize].mig = m
                .instances
                .iter()
                .map(|i| MigSlot {
                    instance: *i,
                    replica: None,
                })
                .collect();
        }
        let single = [p.gpu];
        let gpus: &[u8] = if p.gpus.is_empty() { &single } else { &p.gpus };
        let a = AllocationView {
            workload: p.workload.clone(),
            replica: p.replica,
            class: p.class,
            share_pct: p.share_pct,
            memory_gb,
            slice: p.slice,
            priority_class: p.priority_class,
        };
        for &gi in gpus {
            let g = &mut node.gpus[gi as usize];
            if !matches!(p.slice, AllocSlice::Mig { .. }) && g.is_free() {
                g.mig.clear();
            }
            g.add_allocation(a.clone(), p.sharing);
        }
        applied
    }

    /// Frees every GPU slice `replica` holds on node `node` (N for a tensor-parallel replica);
    /// returns the GPUs freed, ascending.
    pub fn release(&mut self, node: usize, replica: u64) -> Vec<u8> {
        self.mark(node);
        self.nodes[node].remove_replica(replica)
    }

    /// Applies any decision that changes allocations: a placement (`memory_gb` per GPU), a
    /// release, or a preemption's victims leaving. Other decisions change nothing here.
    pub fn apply_decision(&mut self, d: &Decision, memory_gb: f64) -> Result<(), ApplyError> {
        match d {
            Decision::Place(p) => {
                let i = self
                    .index_of(&p.node)
                    .ok_or_else(|| ApplyError::UnknownNode(p.node.clone()))?;
                let gpus = self.nodes[i].gpus.len();
                if let Some(&gpu) = p.gpus.iter().chain([&p.gpu]).find(|&&g| g as usize >= gpus) {
                    return Err(ApplyError::UnknownGpu {
                        node: p.node.clone(),
                        gpu,
                    });
                }
                let mut p = p.clone();
                p.node_index = i;
                self.apply(&p, memory_gb);
                Ok(())
            }
            Decision::Release {
                workload,
                replica,
                node,
                ..
            } => self.release_named(node, workload, *replica),
            Decision::Preempt { node, victims, .. } => {
                for v in victims {
                    self.release_named(node, &v.workload, v.replica)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn release_named(
        &mut self,
        node: &str,
        workload: &str,
        replica: u64,
    ) -> Result<(), ApplyError> {
        let i = self
            .index_of(node)
            .ok_or_else(|| ApplyError::UnknownNode(node.to_string()))?;
        if self.release(i, replica).is_empty() {
            return Err(ApplyError::NotPlaced {
                workload: workload.to_string(),
                replica,
                node: node.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, EngineConfig, GpuCatalog, GpuModel, WorkloadSpec};

    #[derive(Default)]
    struct Seen(Vec<usize>, u32);
    impl ChangeSink for Seen {
        fn node_changed(&mut self, i: usize) {
            self.0.push(i)
        }
        fn all_nodes_changed(&mut self) {
            self.1 += 1
        }
    }

    fn cluster() -> ClusterState {
        ClusterState::new(
            (0..3)
                .map(|i| NodeView::new(format!("n{i}"), i, "h100", GpuModel::H100_80GB, 2, 80.0))
                .collect(),
        )
    }

    #[test]
    fn changes_are_reported_once_and_deduplicated() {
        let mut c = cluster();
        let mut s = Seen::default();
        c.flush_to(&mut s);
        assert_eq!((s.0.len(), s.1), (0, 1), "a new state is all changed");
        c.set_cordoned(2, true);
        c.set_cordoned(2, false);
        c.set_sharing(0, NodeSharing::MpsPerClient);
        c.flush_to(&mut s);
        assert_eq!(s.0, vec![2, 0]);
        c.flush_to(&mut s);
        assert_eq!(s.0, vec![2, 0], "nothing changed since");
    }

    #[test]
    fn apply_then_release_restores_the_node() {
        let mut c = cluster();
        let mut e = Engine::new(EngineConfig::default(), GpuCatalog::default(), 3).unwrap();
        let w = WorkloadSpec::new("chat", 8.0);
        let before = c.clone();
        let Decision::Place(p) = e.place(&c, &w, 7, false) else {
            panic!("fits")
        };
        c.apply(&p, w.memory_per_gpu_gb());
        let n = &c[p.node_index];
        assert_eq!(n.gpu_of(7), Some(p.gpu));
        assert!(n.gpus[p.gpu as usize].memory_allocated_gb > 0.0);
        assert_eq!(c.release(p.node_index, 7), vec![p.gpu]);
        assert_eq!(
            c.nodes()[p.node_index].gpus,
            before.nodes()[p.node_index].gpus
        );
    }

    #[test]
    fn decisions_name_nodes_that_must_exist() {
        let mut c = cluster();
        let d = Decision::Release {
            workload: "w".into(),
            replica: 1,
            node: "nope".into(),
            gpu: 0,
            gpus: vec![],
            reason: String::new(),
        };
        assert_eq!(
            c.apply_decision(&d, 1.0),
            Err(ApplyError::UnknownNode("nope".into()))
        );
        let d = Decision::Release {
            workload: "w".into(),
            replica: 1,
            node: "n1".into(),
            gpu: 0,
            gpus: vec![],
            reason: String::new(),
        };
        assert!(matches!(
            c.apply_decision(&d, 1.0),
            Err(ApplyError::NotPlaced { .. })
        ));
    }
}
