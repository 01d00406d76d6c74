//! An index over free capacity: nodes grouped into equivalence classes of identical scheduling
//! state, maintained incrementally as the caller reports which nodes changed.
//!
//! Why classes rather than a scan: at fleet scale most nodes look alike to the scheduler (same
//! model, same pool, same fill), and nodes in identical state get identical filter verdicts and
//! identical scores from every plugin except the ordinal-based ones (FirstFit), which prefer the
//! lowest ordinal. So a decision evaluates one representative per class (its lowest-indexed node)
//! and the result is exactly the full scan's: the same node, the same total, the same feasible
//! count and the same rejection summary ([`crate::framework::Profile::select_classes`]). The cost
//! of a decision is then the number of distinct states, not the number of nodes.
//!
//! What the key holds is everything a filter, a score or a reason string reads: pool, model,
//! cordon, sharing config and designation, and per GPU its memory, share, client count, mode,
//! MIG layout and whether it is under the utilisation threshold. The node's exact mean
//! utilisation is part of the key only when a score reads it (the seeds' Utilisation term): under
//! simulated traffic it differs per node, so the seeds' profile then degenerates towards one
//! class per node (still exact, no faster than a scan), while BestFit / FirstFit / WorstFit keep
//! few classes.
//!
//! Assumes node ordinals ascend with the node's index in the list (the simulator numbers nodes
//! in list order): FirstFit's preference for the lowest ordinal is then the lowest index.

use crate::mig::MigInstance;
use crate::sharing::NodeSharing;
use crate::view::{NodeView, SharingMode};
use crate::GpuModel;
use std::collections::{BTreeSet, HashMap};

/// What the key needs to know about the profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyConfig {
    /// The filters' utilisation threshold (`FitConfig::max_utilisation`).
    pub max_utilisation: f64,
    /// A score reads the node's mean utilisation: key on its exact value.
    pub exact_utilisation: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GpuKey {
    memory_total: u64,
    memory_allocated: u64,
    share_allocated: u16,
    clients: u16,
    mode: SharingMode,
    below_threshold: bool,
    mig: Vec<(MigInstance, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NodeKey {
    pool: String,
    model: GpuModel,
    cordoned: bool,
    sharing: NodeSharing,
    designated: Option<NodeSharing>,
    /// Bits of the mean utilisation when [`KeyConfig::exact_utilisation`], else 0.
    utilisation: u64,
    gpus: Vec<GpuKey>,
}

impl NodeKey {
    fn of(n: &NodeView, cfg: &KeyConfig) -> Self {
        Self {
            pool: n.pool.clone(),
            model: n.model,
            cordoned: n.cordoned,
            sharing: n.sharing,
            designated: n.designated,
            utilisation: if cfg.exact_utilisation {
                n.utilisation().to_bits()
            } else {
                0
            },
            gpus: n
                .gpus
                .iter()
                .map(|g| GpuKey {
                    memory_total: g.memory_total_gb.to_bits(),
                    memory_allocated: g.memory_allocated_gb.to_bits(),
                    share_allocated: g.share_allocated_pct,
                    clients: g.allocations.len() as u16,
                    mode: g.mode,
                    below_threshold: g.utilisation < cfg.max_utilisation,
                    mig: g
                        .mig
                        .iter()
                        .map(|s| (s.instance, s.replica.is_some()))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// One class: nodes (by index) in identical state.
#[derive(Debug, Default)]
struct Class {
    key: Option<NodeKey>,
    members: BTreeSet<u32>,
}

/// A class as a decision sees it: lowest and highest member index and the member count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassSpan {
    pub min: usize,
    pub max: usize,
    pub count: usize,
}

/// The capacity index. Call [`CapacityIndex::node_changed`] (or
/// [`CapacityIndex::all_changed`]) after mutating a node; [`CapacityIndex::classes`] refreshes
/// the changed nodes lazily, so a burst of changes between decisions costs one re-key per node.
#[derive(Debug)]
pub struct CapacityIndex {
    cfg: KeyConfig,
    lookup: HashMap<NodeKey, u32>,
    classes: Vec<Class>,
    free_classes: Vec<u32>,
    class_of: Vec<u32>,
    dirty: Vec<bool>,
    dirty_list: Vec<u32>,
    all_dirty: bool,
    spans: Vec<ClassSpan>,
}

const NONE: u32 = u32::MAX;

impl CapacityIndex {
    pub fn new(cfg: KeyConfig) -> Self {
        Self {
            cfg,
            lookup: HashMap::new(),
            classes: Vec::new(),
            free_classes: Vec::new(),
            class_of: Vec::new(),
            dirty: Vec::new(),
            dirty_list: Vec::new(),
            all_dirty: true,
            spans: Vec::new(),
        }
    }

    /// Node `i` changed (an allocation added or removed, its config, cordon or utilisation).
    pub fn node_changed(&mut self, i: usize) {
        if self.all_dirty {
            return;
        }
        if i >= self.dirty.len() {
            self.all_dirty = true;
            return;
        }
        if !self.dirty[i] {
            self.dirty[i] = true;
            self.dirty_list.push(i as u32);
        }
    }

    /// Every node may have changed (a monitoring tick rewrote utilisations): re-key all of them
    /// before the next decision.
    pub fn all_changed(&mut self) {
        self.all_dirty = true;
    }

    fn rekey(&mut self, nodes: &[NodeView], i: usize) {
        let key = NodeKey::of(&nodes[i], &self.cfg);
        let old = self.class_of[i];
        if old != NONE {
            if self.lookup.get(&key) == Some(&old) {
                return;
            }
            let c = &mut self.classes[old as usize];
            c.members.remove(&(i as u32));
            if c.members.is_empty() {
                if let Some(k) = c.key.take() {
                    self.lookup.remove(&k);
                }
                self.free_classes.push(old);
            }
        }
        let id = match self.lookup.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.free_classes.pop().unwrap_or_else(|| {
                    self.classes.push(Class::default());
                    self.classes.len() as u32 - 1
                });
                self.classes[id as usize].key = Some(key.clone());
                self.lookup.insert(key, id);
                id
            }
        };
        self.classes[id as usize].members.insert(i as u32);
        self.class_of[i] = id;
    }

    fn refresh(&mut self, nodes: &[NodeView]) {
        if self.all_dirty || self.class_of.len() != nodes.len() {
            // Rebuild in place when the node list is the same length; a new length starts over.
            if self.class_of.len() != nodes.len() {
                self.lookup.clear();
                self.classes.clear();
                self.free_classes.clear();
                self.class_of = vec![NONE; nodes.len()];
                self.dirty = vec![false; nodes.len()];
            }
            self.all_dirty = false;
            for d in self.dirty_list.drain(..) {
                self.dirty[d as usize] = false;
            }
            for i in 0..nodes.len() {
                self.rekey(nodes, i);
            }
            return;
        }
        let list = std::mem::take(&mut self.dirty_list);
        for &i in &list {
            self.dirty[i as usize] = false;
            self.rekey(nodes, i as usize);
        }
        self.dirty_list = list;
        self.dirty_list.clear();
    }

    /// The current classes, ordered by their lowest member (the order a full scan meets them).
    pub fn classes(&mut self, nodes: &[NodeView]) -> &[ClassSpan] {
        self.refresh(nodes);
        self.spans.clear();
        for c in &self.classes {
            if let (Some(&min), Some(&max)) = (c.members.first(), c.members.last()) {
                self.spans.push(ClassSpan {
                    min: min as usize,
                    max: max as usize,
                    count: c.members.len(),
                });
            }
        }
        self.spans.sort_unstable_by_key(|s| s.min);
        &self.spans
    }

    /// Number of live classes (for benchmarks and tests).
    pub fn class_count(&mut self, nodes: &[NodeView]) -> usize {
        self.classes(nodes).len()
    }
}
