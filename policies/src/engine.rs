//! The engine: PreFilter (classify, then the sharing policy / admission flow) → Filter → Score →
//! NormalizeScore → pick a node → pick the GPU and slot inside it → work out what the node and
//! GPU must be configured as (device-plugin config, MPS partition, MIG layout, time-slicing).
//! When nothing fits, PostFilter tries preemption of lower-priority replicas.

use crate::admission;
use crate::config::{ConfigError, EngineConfig};
use crate::decision::{Decision, NodeConfigChange, Placement, Victim};
use crate::framework::{Profile, Selection};
use crate::gpu::GpuCatalog;
use crate::index::{CapacityIndex, KeyConfig};
use crate::modes::{AllocInput, Allocated};
use crate::mps::MpsPlan;
use crate::plugins::filters::FitCtx;
use crate::plugins::fit::{nominal_share, resolve, select_gpus};
use crate::registry::{SeedsBuild, SeedsRegistry};
use crate::sharing::NodeSharing;
use crate::view::NodeView;
use crate::workload::{PlacementRequest, WorkloadSpec};

pub type SeedsProfile = Profile<NodeView, PlacementRequest>;

/// How [`Engine::preempt`] ranks candidate nodes, lowest first: (highest victim priority,
/// victim count, node ordinal).
type PreemptKey = (i32, usize, u32);

pub struct Engine {
    pub config: EngineConfig,
    pub catalog: GpuCatalog,
    profile: SeedsProfile,
    /// A score plugin of the profile reads the node's exact utilisation (its registration says
    /// so): the capacity index must key on it.
    reads_utilisation: bool,
    /// The capacity index, when the caller opted in ([`Engine::enable_index`]) and promised to
    /// report node changes; decisions without a matrix then evaluate one node per class.
    index: Option<CapacityIndex>,
}

impl Engine {
    /// An engine whose profile is built from the built-in plugin registry
    /// ([`crate::registry::seeds`]).
    pub fn new(
        config: EngineConfig,
        catalog: GpuCatalog,
        node_count: u32,
    ) -> Result<Self, ConfigError> {
        Self::with_registry(config, catalog, node_count, crate::registry::seeds())
    }

    /// An engine whose profile names plugins of `registry` (built-in plugins plus one's own).
    pub fn with_registry(
        config: EngineConfig,
        catalog: GpuCatalog,
        node_count: u32,
        registry: &SeedsRegistry,
    ) -> Result<Self, ConfigError> {
        config.validate_with(registry)?;
        let scores = config.score_list();
        let reads_utilisation = scores.iter().any(|s| {
            registry
                .score(&s.plugin)
                .is_some_and(|r| r.reads_utilisation)
        });
        let scores: Vec<(&str, f64)> = scores
            .iter()
            .map(|s| (s.plugin.as_str(), s.weight))
            .collect();
        let profile = registry
            .build_profile(
                config.policy.as_str(),
                &config.filter_list(),
                &scores,
                &SeedsBuild::new(&config, &catalog, node_count),
            )
            .map_err(|e| ConfigError::Invalid {
                key: format!("{}s", e.kind),
                problem: e.to_string(),
            })?;
        Ok(Self {
            config,
            catalog,
            profile,
            reads_utilisation,
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
        self.index = Some(CapacityIndex::new(KeyConfig {
            max_utilisation: self.config.fit.max_utilisation,
            exact_utilisation: self.reads_utilisation,
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
        let allocated = resolved.spec().allocate(&AllocInput {
            node,
            gpu: g,
            req,
            replica,
            slice: resolved,
            share_pct,
            slot: &slot,
            config: &self.config,
        });
        let Allocated {
            slice,
            mode: sharing,
            mps,
            mig,
            time_slicing,
            text: mode_text,
        } = allocated;
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
        let mut best: Option<(usize, Vec<Victim>, PreemptKey)> = None;
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

/// Node sharing a placement leaves the node in (what the simulator and live adapter set).
pub fn node_sharing_after(p: &Placement, before: NodeSharing) -> NodeSharing {
    p.node_config.as_ref().map_or(before, |c| c.to)
}

#[cfg(test)]
mod tests {
    //! The schedule cycle end to end through [`Engine::place`]: PreFilter → Filter → Score →
    //! NormalizeScore → select (ties to the lowest index) → assign, and PostFilter preemption.
    use super::*;
    use crate::admission::SharingPolicy;
    use crate::config::{PolicyName, WeightedScore};
    use crate::framework::ScorePlugin;
    use crate::registry::ScoreRegistration;
    use crate::view::{AllocSlice, AllocationView, SharingMode};
    use crate::workload::SizeClass;
    use crate::GpuModel;

    fn node(name: &str, ordinal: u32, model: GpuModel, gpus: u8) -> NodeView {
        let mem = GpuCatalog::default().spec(model).memory_gb;
        NodeView::new(name, ordinal, model.as_str(), model, gpus, mem)
    }

    /// Occupies GPU `g` of `n` with an exclusive replica of priority class `pc`.
    fn occupy(n: &mut NodeView, g: u8, replica: u64, pc: i32) {
        let mem = n.gpus[g as usize].memory_total_gb;
        n.gpus[g as usize].add_allocation(
            AllocationView {
                workload: format!("low-{replica}"),
                replica,
                class: SizeClass::Large,
                share_pct: 100,
                memory_gb: mem,
                slice: AllocSlice::Whole,
                priority_class: pc,
            },
            SharingMode::Exclusive,
        );
    }

    fn engine_with(n: usize, f: impl FnOnce(&mut EngineConfig)) -> Engine {
        let mut cfg = EngineConfig::default();
        f(&mut cfg);
        Engine::new(cfg, GpuCatalog::default(), n as u32).unwrap()
    }

    fn chosen(d: &Decision) -> &str {
        match d {
            Decision::Place(p) => &p.node,
            other => panic!("expected a placement, got {other:?}"),
        }
    }

    fn workload(gb: f64, priority_class: i32) -> WorkloadSpec {
        let mut w = WorkloadSpec::new("w", gb);
        w.priority_class = Some(priority_class);
        w
    }

    #[test]
    fn the_seeds_profile_filters_scores_normalises_and_sums_by_weight() {
        let mut h = node("h100", 0, GpuModel::H100_80GB, 1);
        h.gpus[0].utilisation = 0.3;
        let a = node("a100", 1, GpuModel::A100_80GB, 1);
        let mut c = node("cordoned", 2, GpuModel::A100_80GB, 1);
        c.cordoned = true;
        let nodes = [h, a, c];
        let mut e = engine_with(nodes.len(), |_| {});
        // A tiny model prefers the A100 family (affinity) and its better TOPS/W (efficiency).
        let d = e.place(&nodes, &WorkloadSpec::new("tiny", 3.0), 0, true);
        assert_eq!(chosen(&d), "a100");
        let Decision::Place(p) = d else {
            unreachable!()
        };
        let m = p.matrix.expect("asked for a matrix");
        assert_eq!(m.rows.len(), 3);
        let rej = m.rows.iter().find(|r| !r.feasible).unwrap();
        assert_eq!(rej.node, "cordoned");
        assert_eq!(rej.rejection.as_ref().unwrap().plugin, "NodeSchedulable");
        let w = EngineConfig::default().weights;
        for row in m.rows.iter().filter(|r| r.feasible) {
            let names: Vec<_> = row.terms.iter().map(|t| t.plugin).collect();
            assert_eq!(
                names,
                [
                    "Efficiency",
                    "Affinity",
                    "Utilisation",
                    "PowerBonus",
                    "SharingHeadroom"
                ]
            );
            let weights: Vec<_> = row.terms.iter().map(|t| t.weight).collect();
            assert_eq!(
                weights,
                [
                    w.efficiency,
                    w.affinity,
                    w.utilisation,
                    w.power_bonus,
                    w.sharing_headroom
                ]
            );
            assert!(row
                .terms
                .iter()
                .all(|t| (0.0..=100.0).contains(&t.normalized)));
            let sum: f64 = row.terms.iter().map(|t| t.weight * t.normalized).sum();
            assert!((sum - row.total).abs() < 1e-9, "{sum} vs {}", row.total);
        }
        let best = m
            .rows
            .iter()
            .filter(|r| r.feasible)
            .map(|r| r.total)
            .fold(0.0, f64::max);
        assert_eq!(p.score, best);
        assert_eq!(p.node_index, 1);
        // Affinity: the A100 matches (1 → 100), the H100 does not (mismatch 0 → 0).
        let aff = |n: &str| {
            let row = m.rows.iter().find(|r| r.node == n).unwrap();
            row.terms[1].normalized
        };
        assert_eq!((aff("a100"), aff("h100")), (100.0, 0.0));
        // Without a matrix the same node and score.
        let d = e.place(&nodes, &WorkloadSpec::new("tiny", 3.0), 0, false);
        let Decision::Place(q) = d else {
            unreachable!()
        };
        assert_eq!((q.node_index, q.score, q.matrix), (1, p.score, None));
    }

    #[test]
    fn nothing_feasible_names_the_commonest_rejection() {
        let mut a = node("a", 0, GpuModel::A100_80GB, 1);
        a.cordoned = true;
        let mut b = node("b", 1, GpuModel::A100_80GB, 1);
        b.cordoned = true;
        let mut c = node("c", 2, GpuModel::A100_80GB, 1);
        occupy(&mut c, 0, 7, 1000);
        let nodes = [a, b, c];
        let mut e = engine_with(3, |c| c.sharing = SharingPolicy::Exclusive);
        let d = e.place(&nodes, &workload(10.0, 1000), 0, false);
        let Decision::Unschedulable { reason, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(
            reason,
            "0/3 nodes available: 2 node(s) rejected by NodeSchedulable: node is cordoned"
        );
        let v = e.filter_verdicts(&nodes, &workload(10.0, 1000));
        let plugins: Vec<_> = v.iter().map(|r| r.as_ref().unwrap().plugin).collect();
        assert_eq!(
            plugins,
            ["NodeSchedulable", "NodeSchedulable", "MemoryFits"]
        );
    }

    #[test]
    fn ties_go_to_the_lowest_index_and_scores_break_them() {
        let nodes: Vec<NodeView> = (0..3)
            .map(|i| node(&format!("n{i}"), i, GpuModel::H100_80GB, 2))
            .collect();
        for policy in PolicyName::ALL {
            let mut e = engine_with(3, |c| c.policy = policy);
            let d = e.place(&nodes, &workload(40.0, 500), 0, false);
            assert_eq!(
                chosen(&d),
                "n0",
                "{policy:?}: identical nodes tie, the first wins"
            );
            let mut later = nodes.clone();
            later[0].cordoned = true;
            let d = e.place(&later, &workload(40.0, 500), 0, false);
            assert_eq!(chosen(&d), "n1", "{policy:?}");
        }
        // Once n1 is half full, BestFit packs onto it, WorstFit spreads to n0, FirstFit stays
        // on n0 by ordinal.
        let mut part = nodes.clone();
        occupy(&mut part[1], 0, 9, 500);
        for (policy, want) in [
            (PolicyName::BestFit, "n1"),
            (PolicyName::WorstFit, "n0"),
            (PolicyName::FirstFit, "n0"),
        ] {
            let mut e = engine_with(3, |c| {
                c.policy = policy;
                c.sharing = SharingPolicy::Exclusive;
            });
            let d = e.place(&part, &workload(40.0, 500), 0, false);
            assert_eq!(chosen(&d), want, "{policy:?}");
        }
    }

    #[test]
    fn explicit_scores_by_name_are_the_preset() {
        let mut nodes: Vec<NodeView> = (0..4)
            .map(|i| node(&format!("n{i}"), i, GpuModel::A100_80GB, 2))
            .collect();
        occupy(&mut nodes[2], 1, 5, 500);
        let mut preset = engine_with(4, |c| c.policy = PolicyName::BestFit);
        let mut named = engine_with(4, |c| {
            c.scores = Some(vec![WeightedScore::new("BestFit", 2.0)]);
        });
        for gb in [3.0, 10.0, 40.0] {
            let a = preset.place(&nodes, &WorkloadSpec::new("w", gb), 0, false);
            let b = named.place(&nodes, &WorkloadSpec::new("w", gb), 0, false);
            assert_eq!(chosen(&a), chosen(&b), "{gb} GB");
        }
    }

    #[test]
    fn preemption_evicts_the_lowest_priority_that_makes_room() {
        let mut a = node("a", 0, GpuModel::A100_80GB, 1);
        occupy(&mut a, 0, 1, 500);
        let mut b = node("b", 1, GpuModel::A100_80GB, 1);
        occupy(&mut b, 0, 2, 100);
        let nodes = [a, b];
        let mut e = engine_with(2, |c| c.sharing = SharingPolicy::Exclusive);
        // Node b's victim has the lower priority, so b is chosen although a comes first.
        let d = e.place(&nodes, &workload(40.0, 1000), 3, false);
        let Decision::Preempt {
            node,
            node_index,
            victims,
            replica,
            priority_class,
            ..
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(
            (node.as_str(), node_index, replica, priority_class),
            ("b", 1, 3, 1000)
        );
        assert_eq!(victims.len(), 1);
        assert_eq!((victims[0].replica, victims[0].priority_class), (2, 100));
        // Equal or lower priority never evicts.
        let d = e.place(&nodes, &workload(40.0, 100), 3, false);
        assert!(matches!(d, Decision::Unschedulable { .. }), "{d:?}");
        // Nor does an engine with preemption off.
        let mut off = engine_with(2, |c| {
            c.sharing = SharingPolicy::Exclusive;
            c.preemption = false;
        });
        let d = off.place(&nodes, &workload(40.0, 1000), 3, false);
        assert!(matches!(d, Decision::Unschedulable { .. }), "{d:?}");
        // A cordoned node is no preemption target.
        let mut cordoned = nodes.clone();
        cordoned[1].cordoned = true;
        let d = e.place(&cordoned, &workload(40.0, 1000), 3, false);
        let Decision::Preempt { node, victims, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!((node.as_str(), victims[0].priority_class), ("a", 500));
    }

    #[test]
    fn unknown_plugin_names_are_refused_listing_the_registered_ones() {
        let cfg = EngineConfig {
            scores: Some(vec![WeightedScore::new("BestFitt", 1.0)]),
            ..EngineConfig::default()
        };
        let err = Engine::new(cfg, GpuCatalog::default(), 1).err().unwrap();
        assert_eq!(
            err.to_string(),
            "engine.scores[0].plugin: unknown score plugin `BestFitt`; registered score plugins: \
             Efficiency, Affinity, Utilisation, PowerBonus, SharingHeadroom, BestFit, FirstFit, WorstFit"
        );
        let cfg = EngineConfig {
            filters: vec!["NodeSchedulable".into(), "Taints".into()],
            ..EngineConfig::default()
        };
        let err = cfg.validate().err().unwrap().to_string();
        assert!(
            err.starts_with("engine.filters[1]: unknown filter plugin `Taints`; registered filter plugins: NodeSchedulable, GpuAffinity,"),
            "{err}"
        );
    }

    struct Coin;
    impl ScorePlugin<NodeView, PlacementRequest> for Coin {
        fn name(&self) -> &'static str {
            "Coin"
        }
        fn score(&mut self, _: &PlacementRequest, n: &NodeView) -> f64 {
            -(n.ordinal as f64)
        }
    }

    #[test]
    fn the_capacity_index_follows_the_registrations() {
        let mut cluster = crate::cluster::ClusterState::new(
            (0..6)
                .map(|i| node(&format!("n{i}"), i, GpuModel::H100_80GB, 2))
                .collect(),
        );
        let mut e = engine_with(6, |c| c.policy = PolicyName::BestFit);
        e.enable_index();
        assert!(e.index_enabled());
        let mut scan = engine_with(6, |c| c.policy = PolicyName::BestFit);
        for r in 0..8u64 {
            let w = WorkloadSpec::new(format!("w{r}"), [3.0, 10.0, 40.0][r as usize % 3]);
            let a = e.place(cluster.nodes(), &w, r, false);
            let b = scan.place(cluster.nodes(), &w, r, false);
            assert_eq!(a, b, "replica {r}");
            if let Decision::Place(p) = a {
                cluster.apply(&p, w.model_memory_gb);
                cluster.flush_to(&mut e);
            }
        }
        // A profile with a plugin registered as not class-safe keeps the full scan.
        let mut own = crate::registry::builtin_seeds().unwrap();
        own.register_score(ScoreRegistration {
            name: "Coin",
            class_safe: false,
            reads_utilisation: false,
            factory: |_| Box::new(Coin),
        })
        .unwrap();
        let cfg = EngineConfig {
            scores: Some(vec![WeightedScore::new("Coin", 1.0)]),
            ..EngineConfig::default()
        };
        assert!(Engine::new(cfg.clone(), GpuCatalog::default(), 6).is_err());
        let mut e = Engine::with_registry(cfg, GpuCatalog::default(), 6, &own).unwrap();
        e.enable_index();
        assert!(!e.index_enabled());
        let d = e.place(cluster.nodes(), &WorkloadSpec::new("w", 3.0), 99, false);
        assert!(matches!(d, Decision::Place(_)), "{d:?}");
    }
}
