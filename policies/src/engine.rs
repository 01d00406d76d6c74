//! The engine: PreFilter (classify) → Filter → Score → NormalizeScore → pick a node → pick the
//! GPU inside it → work out the GPU's sharing layout. One call, one decision.

use crate::config::{ConfigError, EngineConfig, FilterName, ScoreName};
use crate::decision::{Decision, Placement};
use crate::framework::{FilterPlugin, Profile, ScorePlugin};
use crate::gpu::GpuCatalog;
use crate::mps::plan_partition;
use crate::plugins::filters::{
    GpuAffinity, MemoryFits, NodeSchedulable, SharingFits, UtilisationBelow,
};
use crate::plugins::fit::select_gpu;
use crate::plugins::seeds::{
    Affinity, Efficiency, Packing, PackingKind, PowerBonus, SharingHeadroom, Utilisation,
};
use crate::view::{NodeView, SharingMode};
use crate::workload::{PlacementRequest, WorkloadSpec};

pub type SeedsProfile = Profile<NodeView, PlacementRequest>;

pub struct Engine {
    pub config: EngineConfig,
    pub catalog: GpuCatalog,
    profile: SeedsProfile,
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
        })
    }

    pub fn profile_name(&self) -> &str {
        &self.profile.name
    }

    /// PreFilter: the classification of a workload.
    pub fn classify(&self, w: &WorkloadSpec) -> PlacementRequest {
        self.config.classify.classify(w)
    }

    /// Places one replica of `w` on `nodes`. Returns a `Place` or an `Unschedulable` decision.
    pub fn place(
        &mut self,
        nodes: &[NodeView],
        w: &WorkloadSpec,
        replica: u64,
        want_matrix: bool,
    ) -> Decision {
        let req = self.classify(w);
        let sel = self.profile.select(&req, nodes, want_matrix);
        let Some(idx) = sel.chosen else {
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
        let node = &nodes[idx];
        let gpu = select_gpu(node, &req, &self.config.fit, self.config.gpu_selection)
            .expect("a node that passed SharingFits has a fitting GPU");
        let g = &node.gpus[gpu as usize];
        let exclusive = req.share_pct >= 100;
        let sharing = if exclusive {
            SharingMode::Exclusive
        } else {
            SharingMode::Mps
        };
        let (mps, device_plugin_config) = if exclusive {
            (None, None)
        } else {
            let mut clients: Vec<(String, u64, u8)> = g
                .allocations
                .iter()
                .map(|a| (a.workload.clone(), a.replica, a.share_pct))
                .collect();
            clients.push((req.workload.clone(), replica, req.share_pct));
            let plan = plan_partition(&clients, g.memory_total_gb)
                .expect("SharingFits checked the share and client limit");
            let yaml = plan.device_plugin_config_yaml();
            (Some(plan), Some(yaml))
        };
        let reason = format!(
            "{:?} {:?}-priority workload ({:.1} GB) → {} GPU {} at {} % ({}); score {:.1} best of {} feasible",
            req.class, req.priority, req.memory_gb, node.name, gpu, req.share_pct,
            if exclusive { "exclusive" } else { "MPS" }, sel.total, sel.feasible
        );
        Decision::Place(Placement {
            workload: req.workload,
            replica,
            class: req.class,
            priority: req.priority,
            node_index: idx,
            node: node.name.clone(),
            gpu,
            share_pct: req.share_pct,
            sharing,
            mps,
            device_plugin_config,
            score: sel.total,
            reason,
            matrix: sel.matrix,
        })
    }
}

fn build_profile(cfg: &EngineConfig, catalog: &GpuCatalog, node_count: u32) -> SeedsProfile {
    let filters: Vec<Box<dyn FilterPlugin<NodeView, PlacementRequest>>> = cfg
        .filters
        .iter()
        .map(|f| -> Box<dyn FilterPlugin<NodeView, PlacementRequest>> {
            match f {
                FilterName::NodeSchedulable => Box::new(NodeSchedulable),
                FilterName::GpuAffinity => Box::new(GpuAffinity),
                FilterName::MemoryFits => Box::new(MemoryFits),
                FilterName::UtilisationBelow => Box::new(UtilisationBelow(cfg.fit.clone())),
                FilterName::SharingFits => Box::new(SharingFits(cfg.fit.clone())),
            }
        })
        .collect();
    let scores: Vec<(Box<dyn ScorePlugin<NodeView, PlacementRequest>>, f64)> = cfg
        .score_list()
        .into_iter()
        .map(
            |s| -> (Box<dyn ScorePlugin<NodeView, PlacementRequest>>, f64) {
                let p: Box<dyn ScorePlugin<NodeView, PlacementRequest>> = match s.plugin {
                    ScoreName::Efficiency => Box::new(Efficiency(catalog.clone())),
                    ScoreName::Affinity => Box::new(Affinity {
                        mismatch: cfg.affinity_mismatch,
                    }),
                    ScoreName::Utilisation => Box::new(Utilisation),
                    ScoreName::PowerBonus => Box::new(PowerBonus(catalog.clone())),
                    ScoreName::SharingHeadroom => Box::new(SharingHeadroom {
                        fit: cfg.fit.clone(),
                        free_gpu: cfg.headroom_free_gpu,
                    }),
                    ScoreName::BestFit => Box::new(Packing {
                        kind: PackingKind::BestFit,
                        node_count,
                    }),
                    ScoreName::FirstFit => Box::new(Packing {
                        kind: PackingKind::FirstFit,
                        node_count,
                    }),
                    ScoreName::WorstFit => Box::new(Packing {
                        kind: PackingKind::WorstFit,
                        node_count,
                    }),
                };
                (p, s.weight)
            },
        )
        .collect();
    // The sharing filter is mandatory: without it the GPU-selection step could find no GPU.
    let mut filters = filters;
    if !cfg.filters.contains(&FilterName::SharingFits) {
        filters.push(Box::new(SharingFits(cfg.fit.clone())));
    }
    Profile::new(cfg.policy.as_str(), filters, scores)
}
