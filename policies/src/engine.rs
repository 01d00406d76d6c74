//! The engine: PreFilter (classify, then the sharing policy / admission flow) → Filter → Score →
//! NormalizeScore → pick a node → pick the GPU and slot inside it → work out what the node and
//! GPU must be configured as (device-plugin config, MPS partition, MIG layout, time-slicing).
//! When nothing fits, PostFilter tries preemption of lower-priority replicas.

use crate::admission;
use crate::config::{ConfigError, EngineConfig, FilterName, ScoreName};
use crate::decision::{
    Decision, MigAssignment, NodeConfigChange, Placement, TimeSliceAssignment, Victim,
};
use crate::framework::{FilterPlugin, Profile, ScorePlugin, Selection};
use crate::gpu::GpuCatalog;
use crate::index::{CapacityIndex, KeyConfig};
use crate::mps::{plan_partition, MpsPlan, MpsRealisation};
use crate::plugins::filters::{
    FitCtx, GpuAffinity, MemoryFits, NodeSchedulable, SharingFits, UtilisationBelow,
};
use crate::plugins::fit::{nominal_share, resolve, select_gpus};
use crate::plugins::seeds::{
    Affinity, Efficiency, Packing, PackingKind, PowerBonus, SharingHeadroom, Utilisation,
};
use crate::sharing::{Fairness, NodeSharing, SliceRequest};
use crate::view::{AllocSlice, NodeView, SharingMode};
use crate::workload::{PlacementRequest, WorkloadSpec};

pub type SeedsProfile = Profile<NodeView, PlacementRequest>;

pub struct Engine {
    pub config: EngineConfig,
    pub catalog: GpuCatalog,
    profile: SeedsProfile,
    /// The capacity index, when the caller opted in ([`Engine::enable_index`]) and promised to
    /// report node changes; decisions without a matrix then evaluate one node per class.
    index: Option<CapacityIndex>,
}

impl Engine {
    pub fn new(
        config: EngineConfig,
        catalog: GpuCatalog,
        node_count: u32,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let profile = build_profile(&config, &catalog, node_count);
        Ok(Self {
            config,
            catalog,
            profile,
            index: None,
        })
    }

    /// Switches on the capacity index ([`crate::index`]). The caller must then call
    /// [`Engine::node_changed`] after every change to a node it passes to [`Engine::place`]
    /// (or [`Engine::all_nodes_changed`]), and always pass the same node list. Decisions are
    /// identical to the full scan; only their cost changes. A profile with a plugin that is not
    /// class-safe keeps the full scan.
    pub fn enable_index(&mut self) {
        if !self.profile.class_safe() {
            return;
        }
        let exact_utilisation = self
            .config
            .score_list()
            .iter()
            .any(|s| s.plugin == ScoreName::Utilisation);
        self.index = Some(CapacityIndex::new(KeyConfig {
            max_utilisation: self.config.fit.max_utilisation,
            exact_utilisation,
        }));
    }

    pub fn index_enabled(&self) -> bool {
        self.index.is_some()
    }

    /// Node `i` of the list passed to [`Engine::place`] changed.
    pub fn node_changed(&mut self, i: usize) {
        if let Some(ix) = &mut self.index {
            ix.node_changed(i);
        }
    }

    /// Any node may have changed (e.g. every utilisation was re-measured).
    pub fn all_nodes_changed(&mut self) {
        if let Some(ix) = &mut self.index {
            ix.all_changed();
        }
    }

    /// Live classes in the index (benchmarks); `None` without an index.
    pub fn index_classes(&mut self, nodes: &[NodeView]) -> Option<usize> {
        self.index.as_mut().map(|ix| ix.class_count(nodes))
    }

    /// Filter → Score over all nodes, or over the index's classes when it is on and no matrix
    /// is wanted. Debug builds check the indexed selection against the full scan.
    fn select(
        &mut self,
        req: &PlacementRequest,
        nodes: &[NodeView],
        want_matrix: bool,
    ) -> Selection {
        match &mut self.index {
            Some(ix) if !want_matrix => {
                let classes = ix.classes(nodes);
                let sel = self.profile.select_classes(req, nodes, classes);
                #[cfg(debug_assertions)]
                {
                    let full = self.profile.select(req, nodes, false);
                    debug_assert_eq!(
                        (sel.chosen, sel.total.to_bits(), sel.feasible, &sel.top_rejection),
                        (full.chosen, full.total.to_bits(), full.feasible, &full.top_rejection),
                        "capacity index disagrees with the full scan: a node change was not reported"
                    );
                }
                sel
            }
            _ => self.profile.select(req, nodes, want_matrix),
        }
    }

    pub fn profile_name(&self) -> &str {
        &self.profile.name
    }

    fn ctx(&self) -> FitCtx {
        FitCtx {
            fit: self.config.fit.clone(),
            ts: self.config.time_slicing.clone(),
        }
    }

    /// PreFilter: the classification of a workload and its sharing mode.
    pub fn classify(&self, w: &WorkloadSpec) -> PlacementRequest {
        self.config.request_for(w)
    }

    /// Every node's Filter verdict for `w`: the first plugin that rejects it, with its reason
    /// (`None`: the node passes). What an "0/N nodes are available: …" summary counts; read-only.
    pub fn filter_verdicts(
        &self,
        nodes: &[NodeView],
        w: &WorkloadSpec,
    ) -> Vec<Option<crate::framework::Rejection>> {
        let req = self.classify(w);
        nodes
            .iter()
            .map(|n| {
                self.profile.filters.iter().find_map(|f| {
                    f.filter(&req, n)
                        .err()
                        .map(|reason| crate::framework::Rejection {
                            plugin: f.name(),
                            reason,
                        })
                })
            })
            .collect()
    }

    /// Places one replica of `w` on `nodes`: `Place`, `Preempt` (evict, then place again) or
    /// `Unschedulable`.
    pub fn place(
        &mut self,
        nodes: &[NodeView],
        w: &WorkloadSpec,
        replica: u64,
        want_matrix: bool,
    ) -> Decision {
        let req = self.classify(w);
        // No node and no eviction can make a sharing mode span GPUs: say so before filtering
        // (a MIG request would otherwise be reported as a family mismatch first).
        if let Some(reason) = admission::tensor_parallel_conflict(&req) {
            return Decision::Unschedulable {
                workload: req.workload,
                replica,
                reason,
                matrix: None,
            };
        }
        let sel = self.select(&req, nodes, want_matrix);
        let Some(idx) = sel.chosen else {
            if self.config.preemption {
                if let Some(d) = self.preempt(nodes, &req, replica) {
                    return d;
                }
            }
            let reason = match &sel.top_rejection {
                Some((r, n)) => format!(
                    "0/{} nodes available: {} node(s) rejected by {}: {}",
                    nodes.len(),
                    n,
                    r.plugin,
                    r.reason
                ),
                None => format!("0/{} nodes available", nodes.len()),
            };
            return Decision::Unschedulable {
                workload: req.workload,
                replica,
                reason,
                matrix: sel.matrix,
            };
        };
        let mut p = self.assign(&nodes[idx], idx, &req, replica, sel.total, sel.feasible);
        p.matrix = sel.matrix;
        Decision::Place(p)
    }

    /// Turns a chosen node into a full assignment.
    fn assign(
        &self,
        node: &NodeView,
        idx: usize,
        req: &PlacementRequest,
        replica: u64,
        score: f64,
        feasible: usize,
    ) -> Placement {
        let ctx = self.ctx();
        let mut chosen = select_gpus(node, req, &ctx.fit, &ctx.ts, self.config.gpu_selection)
            .expect("a node that passed SharingFits has the fitting GPUs");
        let gpus: Vec<u8> = chosen.iter().map(|(i, _)| *i).collect();
        // A tensor-parallel replica is whole GPUs only, so its other GPUs need no slot detail.
        let (gpu, slot) = chosen.swap_remove(0);
        let g = &node.gpus[gpu as usize];
        let resolved = resolve(req.slice, node.model, &ctx.ts);
        let share_pct = nominal_share(req, node.model, &ctx.ts);
        let (mut mps, mut mig, mut time_slicing) = (None, None, None);
        let (slice, sharing) = match resolved {
            SliceRequest::Whole => (AllocSlice::Whole, SharingMode::Exclusive),
            SliceRequest::Mps { pct } => {
                let mut clients: Vec<(String, u64, u8)> = g
                    .allocations
                    .iter()
                    .map(|a| (a.workload.clone(), a.replica, a.share_pct))
                    .collect();
                clients.push((req.workload.clone(), replica, pct));
                mps = Some(
                    plan_partition(&clients, g.memory_total_gb)
                        .expect("SharingFits checked the share and client limit"),
                );
                (AllocSlice::Mps { pct }, SharingMode::Mps)
            }
            SliceRequest::MpsUniform { replicas } => {
                mps = Some(uniform_plan(g, req, replica, replicas));
                (AllocSlice::Mps { pct: share_pct }, SharingMode::Mps)
            }
            SliceRequest::TimeSlice { replicas, .. } => {
                // Seed 004's fairness modes as time-slice weights.
                let weight = match self.config.time_slicing.fairness {
                    Fairness::RoundRobin => 1,
                    Fairness::Priority => req.priority_class.max(1) as u32,
                    Fairness::Weighted => {
                        self.config.classify.target(req.class).share_pct.max(1) as u32
                    }
                };
                time_slicing = Some(TimeSliceAssignment {
                    replicas,
                    weight,
                    fairness: self.config.time_slicing.fairness,
                });
                (
                    AllocSlice::TimeSlice { weight },
                    SharingMode::TimeSlicing { replicas },
                )
            }
            SliceRequest::Mig { .. } => {
                let (instance, new_layout) = slot.mig.expect("a MIG fit names its instance");
                let layout = new_layout
                    .clone()
                    .unwrap_or_else(|| g.mig.iter().map(|s| s.instance).collect());
                mig = Some(MigAssignment {
                    profile: instance.profile.name(node.model),
                    start: instance.start,
                    layout: layout
                        .iter()
                        .map(|i| format!("{}@{}", i.profile.name(node.model), i.start))
                        .collect(),
                    reconfigure: new_layout.is_some(),
                    instances: layout.clone(),
                });
                (AllocSlice::Mig { instance }, SharingMode::Mig)
            }
        };
        let want = resolved.node_sharing();
        let node_config = (node.sharing != want).then(|| {
            let slots = mps.as_ref().map_or(0, |m: &MpsPlan| m.replicas);
            NodeConfigChange {
                from: node.sharing,
                to: want,
                label: want.config_key(),
                device_plugin_config: want.device_plugin_yaml(slots),
                node_was_empty: node.is_empty(),
            }
        });
        let device_plugin_config = mps.as_ref().map(|m| m.device_plugin_config_yaml());
        let mode_text = match resolved {
            SliceRequest::Whole => "exclusive".to_string(),
            SliceRequest::Mps { pct } => format!("MPS {pct} %"),
            SliceRequest::MpsUniform { replicas } => format!("MPS 1/{replicas}"),
            SliceRequest::TimeSlice { replicas, .. } => format!("time-slice 1/{replicas}"),
            SliceRequest::Mig { .. } => {
                format!("MIG {}", mig.as_ref().map_or("", |m| m.profile.as_str()))
            }
        };
        let reason = if gpus.len() > 1 {
            let list: Vec<String> = gpus.iter().map(u8::to_string).collect();
            format!(
                "{:?} {:?}-priority workload ({:.1} GB per GPU) → {} GPUs {} ({mode_text} ×{}: {}); score {score:.1} best of {feasible} feasible",
                req.class, req.priority, req.memory_gb, node.name, list.join(","), gpus.len(), req.sharing_reason
            )
        } else {
            format!(
                "{:?} {:?}-priority workload ({:.1} GB) → {} GPU {} ({mode_text}: {}); score {score:.1} best of {feasible} feasible",
                req.class, req.priority, req.memory_gb, node.name, gpu, req.sharing_reason
            )
        };
        Placement {
            workload: req.workload.clone(),
            replica,
            class: req.class,
            priority: req.priority,
            node_index: idx,
            node: node.name.clone(),
            gpu,
            gpus,
            share_pct,
            sharing,
            mps,
            device_plugin_config,
            score,
            reason,
            slice,
            priority_class: req.priority_class,
            sharing_reason: req.sharing_reason.clone(),
            node_config,
            mig,
            time_slicing,
            matrix: None,
        }
    }

    /// PostFilter: the node where evicting the fewest, lowest-priority replicas lets the request
    /// fit (as kube-scheduler's DefaultPreemption). `None` when no eviction helps.
    fn preempt(
        &self,
        nodes: &[NodeView],
        req: &PlacementRequest,
        replica: u64,
    ) -> Option<Decision> {
        let mut best: Option<(usize, Vec<Victim>, (i32, usize, u32))> = None;
        for (i, node) in nodes.iter().enumerate() {
            if node.cordoned {
                continue;
            }
            let mut lower: Vec<(i32, u64, u8, String)> = node
                .gpus
                .iter()
                .flat_map(|g| {
                    g.allocations
                        .iter()
                        .map(move |a| (a.priority_class, a.replica, g.index, a.workload.clone()))
                })
                .filter(|(pc, ..)| *pc < req.priority_class)
                .collect();
            if lower.is_empty() {
                continue;
            }
            lower.sort_by_key(|(pc, r, ..)| (*pc, std::cmp::Reverse(*r)));
            // A tensor-parallel victim holds several GPUs: evict it once, from all of them.
            let mut seen = std::collections::BTreeSet::new();
            lower.retain(|(_, r, ..)| seen.insert(*r));
            let mut trial = node.clone();
            let mut victims = Vec::new();
            for (pc, r, gpu, workload) in lower {
                for g in &mut trial.gpus {
                    let before = g.share_allocated_pct.max(1) as f64;
                    if g.remove_allocation(r).is_some() {
                        // The victim's load leaves with it: scale the measured utilisation down.
                        g.utilisation *= g.share_allocated_pct as f64 / before;
                    }
                }
                victims.push(Victim {
                    workload,
                    replica: r,
                    gpu,
                    priority_class: pc,
                });
                if self
                    .profile
                    .filters
                    .iter()
                    .all(|f| f.filter(req, &trial).is_ok())
                {
                    let key = (
                        victims.iter().map(|v| v.priority_class).max().unwrap_or(0),
                        victims.len(),
                        node.ordinal,
                    );
                    if best.as_ref().is_none_or(|(_, _, k)| key < *k) {
                        best = Some((i, victims.clone(), key));
                    }
                    break;
                }
            }
        }
        let (i, victims, _) = best?;
        let names: Vec<String> = victims
            .iter()
            .map(|v| {
                format!(
                    "{}#{} (priority {})",
                    v.workload, v.replica, v.priority_class
                )
            })
            .collect();
        Some(Decision::Preempt {
            workload: req.workload.clone(),
            replica,
            priority_class: req.priority_class,
            node: nodes[i].name.clone(),
            node_index: i,
            reason: format!(
                "no node fits priority-{} {}; evicting {} on {} makes room",
                req.priority_class,
                req.workload,
                names.join(", "),
                nodes[i].name
            ),
            victims,
        })
    }
}

/// The device plugin's even split: every client 100 / replicas threads and total / replicas memory.
fn uniform_plan(
    g: &crate::view::GpuView,
    req: &PlacementRequest,
    replica: u64,
    replicas: u8,
) -> MpsPlan {
    let pct = (100 / replicas.max(1) as u32) as u8;
    let mem = (g.memory_total_gb * 1024.0 / replicas.max(1) as f64).floor() as u64;
    let mut clients: Vec<crate::mps::MpsClient> = g
        .allocations
        .iter()
        .map(|a| crate::mps::MpsClient {
            workload: a.workload.clone(),
            replica: a.replica,
            active_thread_pct: pct,
            pinned_mem_limit_mib: mem,
        })
        .collect();
    clients.push(crate::mps::MpsClient {
        workload: req.workload.clone(),
        replica,
        active_thread_pct: pct,
        pinned_mem_limit_mib: mem,
    });
    let mut thread_percentages = vec![pct; clients.len()];
    thread_percentages.resize(replicas as usize, 0);
    MpsPlan {
        replicas,
        thread_percentages,
        clients,
        realisation: MpsRealisation::DevicePluginUniform { replicas },
    }
}

fn build_profile(cfg: &EngineConfig, catalog: &GpuCatalog, node_count: u32) -> SeedsProfile {
    let ctx = FitCtx {
        fit: cfg.fit.clone(),
        ts: cfg.time_slicing.clone(),
    };
    let mut filters: Vec<Box<dyn FilterPlugin<NodeView, PlacementRequest>>> = cfg
        .filters
        .iter()
        .map(|f| -> Box<dyn FilterPlugin<NodeView, PlacementRequest>> {
            match f {
                FilterName::NodeSchedulable => Box::new(NodeSchedulable),
                FilterName::GpuAffinity => Box::new(GpuAffinity),
                FilterName::MemoryFits => Box::new(MemoryFits(ctx.clone())),
                FilterName::UtilisationBelow => Box::new(UtilisationBelow(ctx.clone())),
                FilterName::SharingFits => Box::new(SharingFits(ctx.clone())),
            }
        })
        .collect();
    // The sharing filter is mandatory: without it the GPU-selection step could find no GPU.
    if !cfg.filters.contains(&FilterName::SharingFits) {
        filters.push(Box::new(SharingFits(ctx.clone())));
    }
    let scores: Vec<(Box<dyn ScorePlugin<NodeView, PlacementRequest>>, f64)> = cfg
        .score_list()
        .into_iter()
        .map(
            |s| -> (Box<dyn ScorePlugin<NodeView, PlacementRequest>>, f64) {
                let packing = |kind| {
                    Box::new(Packing {
                        kind,
                        node_count,
                        ctx: ctx.clone(),
                    })
                };
                let p: Box<dyn ScorePlugin<NodeView, PlacementRequest>> = match s.plugin {
                    ScoreName::Efficiency => Box::new(Efficiency(catalog.clone())),
                    ScoreName::Affinity => Box::new(Affinity {
                        mismatch: cfg.affinity_mismatch,
                    }),
                    ScoreName::Utilisation => Box::new(Utilisation),
                    ScoreName::PowerBonus => Box::new(PowerBonus(catalog.clone())),
                    ScoreName::SharingHeadroom => Box::new(SharingHeadroom {
                        ctx: ctx.clone(),
                        free_gpu: cfg.headroom_free_gpu,
                    }),
                    ScoreName::BestFit => packing(PackingKind::BestFit),
                    ScoreName::FirstFit => packing(PackingKind::FirstFit),
                    ScoreName::WorstFit => packing(PackingKind::WorstFit),
                };
                (p, s.weight)
            },
        )
        .collect();
    Profile::new(cfg.policy.as_str(), filters, scores)
}

/// Node sharing a placement leaves the node in (what the simulator and live adapter set).
pub fn node_sharing_after(p: &Placement, before: NodeSharing) -> NodeSharing {
    p.node_config.as_ref().map_or(before, |c| c.to)
}
