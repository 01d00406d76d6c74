//! The plugin registry: every Filter and Score plugin by name, with the factory that builds it,
//! as kube-scheduler's `frameworkruntime.Registry` maps a plugin name to its `PluginFactory`.
//! Profiles ([`crate::config::EngineConfig`]'s `filters` and `scores`, the FGD paper's six
//! configurations) name plugins and weights, as a KubeSchedulerConfiguration profile does, and
//! [`Registry::build_profile`] turns the names into a [`Profile`]. An unknown name is refused with
//! the list of registered ones.
//!
//! A registration also carries what the capacity index ([`crate::index`]) must know about the
//! plugin, so that no caller has to match on plugin identities:
//! * `class_safe`: the plugin's verdict or score is a function of the state that the index's
//!   class key holds (and, for a score, non-increasing in node index among identical states, with
//!   a NormalizeScore that depends only on the set's extremes and the value itself; stateful
//!   plugins such as a seeded generator are not). A profile may select by classes only when every
//!   plugin in it is class-safe ([`Profile::class_safe`]).
//! * `reads_utilisation`: the score reads the node's exact measured utilisation, so the index must
//!   key on it (the seeds' Utilisation term).
//!
//! There is one registry per cluster model, since a plugin is typed by the node and pod it reads:
//! [`seeds`] for the engine's [`NodeView`]/[`PlacementRequest`] and [`openb`] for the Alibaba
//! openb model of the FGD paper. A new plugin is its type plus one registration line here.

use crate::framework::{FilterPlugin, Profile, ScorePlugin};
use crate::gpu::GpuCatalog;
use crate::openb::frag::FragModel;
use crate::openb::model::{OpenbNode, OpenbPod};
use crate::plugins::filters::FitCtx;
use crate::view::NodeView;
use crate::workload::PlacementRequest;
use std::sync::{Arc, OnceLock};

/// Builds a Score plugin from the build context `C` (kube's `PluginFactory`).
pub type ScoreFactory<N, P, C> = fn(&C) -> Box<dyn ScorePlugin<N, P>>;
/// Builds a Filter plugin from the build context `C`.
pub type FilterFactory<N, P, C> = fn(&C) -> Box<dyn FilterPlugin<N, P>>;

/// One registered Score plugin.
pub struct ScoreRegistration<N, P, C> {
    pub name: &'static str,
    /// See the module documentation.
    pub class_safe: bool,
    /// See the module documentation.
    pub reads_utilisation: bool,
    pub factory: ScoreFactory<N, P, C>,
}

/// One registered Filter plugin.
pub struct FilterRegistration<N, P, C> {
    pub name: &'static str,
    /// See the module documentation.
    pub class_safe: bool,
    pub factory: FilterFactory<N, P, C>,
}

/// A plugin name that is not registered, with the names that are (what a scenario error says).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown {kind} plugin `{name}`; registered {kind} plugins: {}", registered.join(", "))]
pub struct UnknownPlugin {
    /// `score` or `filter`.
    pub kind: &'static str,
    pub name: String,
    pub registered: Vec<&'static str>,
}

/// A second registration under a name already taken (kube's "a plugin named X already exists").
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("a {kind} plugin named `{name}` is already registered")]
pub struct DuplicatePlugin {
    pub kind: &'static str,
    pub name: &'static str,
}

/// Name → factory for the Filter and Score plugins of one cluster model; `C` is what the
/// factories are built from (configuration, catalogue, seeds).
pub struct Registry<N, P, C> {
    filters: Vec<FilterRegistration<N, P, C>>,
    scores: Vec<ScoreRegistration<N, P, C>>,
}

impl<N, P, C> Default for Registry<N, P, C> {
    fn default() -> Self {
        Self {
            filters: Vec::new(),
            scores: Vec::new(),
        }
    }
}

impl<N, P, C> Registry<N, P, C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a Filter plugin; a name is registered once.
    pub fn register_filter(
        &mut self,
        r: FilterRegistration<N, P, C>,
    ) -> Result<&mut Self, DuplicatePlugin> {
        if self.filter(r.name).is_some() {
            return Err(DuplicatePlugin {
                kind: "filter",
                name: r.name,
            });
        }
        self.filters.push(r);
        Ok(self)
    }

    /// Registers a Score plugin; a name is registered once.
    pub fn register_score(
        &mut self,
        r: ScoreRegistration<N, P, C>,
    ) -> Result<&mut Self, DuplicatePlugin> {
        if self.score(r.name).is_some() {
            return Err(DuplicatePlugin {
                kind: "score",
                name: r.name,
            });
        }
        self.scores.push(r);
        Ok(self)
    }

    pub fn filter(&self, name: &str) -> Option<&FilterRegistration<N, P, C>> {
        self.filters.iter().find(|r| r.name == name)
    }

    pub fn score(&self, name: &str) -> Option<&ScoreRegistration<N, P, C>> {
        self.scores.iter().find(|r| r.name == name)
    }

    /// Registered Filter plugin names, in registration order.
    pub fn filter_names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|r| r.name).collect()
    }

    /// Registered Score plugin names, in registration order.
    pub fn score_names(&self) -> Vec<&'static str> {
        self.scores.iter().map(|r| r.name).collect()
    }

    /// The Filter registration named `name`, or the error listing the registered ones.
    pub fn require_filter(
        &self,
        name: &str,
    ) -> Result<&FilterRegistration<N, P, C>, UnknownPlugin> {
        self.filter(name).ok_or_else(|| UnknownPlugin {
            kind: "filter",
            name: name.to_string(),
            registered: self.filter_names(),
        })
    }

    /// The Score registration named `name`, or the error listing the registered ones.
    pub fn require_score(&self, name: &str) -> Result<&ScoreRegistration<N, P, C>, UnknownPlugin> {
        self.score(name).ok_or_else(|| UnknownPlugin {
            kind: "score",
            name: name.to_string(),
            registered: self.score_names(),
        })
    }

    /// A profile from plugin names: `filters` in order, then `scores` with their weights. Its
    /// class safety is that of every named plugin's registration.
    pub fn build_profile<F: AsRef<str>, S: AsRef<str>>(
        &self,
        profile: impl Into<String>,
        filters: &[F],
        scores: &[(S, f64)],
        ctx: &C,
    ) -> Result<Profile<N, P>, UnknownPlugin>
    where
        N: crate::framework::NamedNode,
    {
        let mut class_safe = true;
        let mut fs = Vec::with_capacity(filters.len());
        for f in filters {
            let r = self.require_filter(f.as_ref())?;
            class_safe &= r.class_safe;
            fs.push((r.factory)(ctx));
        }
        let mut ss = Vec::with_capacity(scores.len());
        for (s, w) in scores {
            let r = self.require_score(s.as_ref())?;
            class_safe &= r.class_safe;
            ss.push(((r.factory)(ctx), *w));
        }
        Ok(Profile::new(profile, fs, ss).with_class_safe(class_safe))
    }
}

/// What the engine's plugins are built from: the configuration's limits and terms, the GPU
/// catalogue and the cluster size (FirstFit's ordinal scale).
#[derive(Debug, Clone)]
pub struct SeedsBuild {
    pub catalog: GpuCatalog,
    pub fit: FitCtx,
    pub node_count: u32,
    /// Affinity term for a node of the non-preferred family.
    pub affinity_mismatch: f64,
    /// Sharing-headroom term for a free GPU.
    pub headroom_free_gpu: f64,
}

impl SeedsBuild {
    pub fn new(cfg: &crate::EngineConfig, catalog: &GpuCatalog, node_count: u32) -> Self {
        Self {
            catalog: catalog.clone(),
            fit: FitCtx {
                fit: cfg.fit.clone(),
                ts: cfg.time_slicing.clone(),
            },
            node_count,
            affinity_mismatch: cfg.affinity_mismatch,
            headroom_free_gpu: cfg.headroom_free_gpu,
        }
    }
}

pub type SeedsRegistry = Registry<NodeView, PlacementRequest, SeedsBuild>;

/// The engine's registry: the five filters, the seeds' five weighted terms and seed 004's
/// bin-packing scores (BestFit, FirstFit, WorstFit).
pub fn seeds() -> &'static SeedsRegistry {
    static REGISTRY: OnceLock<SeedsRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| builtin_seeds().expect("built-in plugin names are distinct"))
}

/// A fresh copy of [`seeds`] to extend with one's own plugins (then
/// [`crate::Engine::with_registry`]).
pub fn builtin_seeds() -> Result<SeedsRegistry, DuplicatePlugin> {
    use crate::plugins::filters as f;
    use crate::plugins::seeds as s;
    type Ff = FilterFactory<NodeView, PlacementRequest, SeedsBuild>;
    type Sf = ScoreFactory<NodeView, PlacementRequest, SeedsBuild>;
    // Filters read only what the index's class key holds (cordon, model, pool designation,
    // sharing config, per-GPU memory, share, clients, mode, MIG layout, and whether the GPU is
    // under the utilisation threshold): all class-safe.
    fn filter(
        name: &'static str,
        factory: Ff,
    ) -> FilterRegistration<NodeView, PlacementRequest, SeedsBuild> {
        FilterRegistration {
            name,
            class_safe: true,
            factory,
        }
    }
    // Every score is a pure function of the keyed state (FirstFit's ordinal term falls with
    // node index, which the index allows); Utilisation reads the exact mean utilisation.
    fn score(
        name: &'static str,
        reads_utilisation: bool,
        factory: Sf,
    ) -> ScoreRegistration<NodeView, PlacementRequest, SeedsBuild> {
        ScoreRegistration {
            name,
            class_safe: true,
            reads_utilisation,
            factory,
        }
    }
    let mut r = SeedsRegistry::new();
    r.register_filter(filter(f::NODE_SCHEDULABLE, |_| {
        Box::new(f::NodeSchedulable)
    }))?;
    r.register_filter(filter(f::GPU_AFFINITY, |_| Box::new(f::GpuAffinity)))?;
    r.register_filter(filter(f::MEMORY_FITS, |c| {
        Box::new(f::MemoryFits(c.fit.clone()))
    }))?;
    r.register_filter(filter(f::UTILISATION_BELOW, |c| {
        Box::new(f::UtilisationBelow(c.fit.clone()))
    }))?;
    r.register_filter(filter(f::SHARING_FITS, |c| {
        Box::new(f::SharingFits(c.fit.clone()))
    }))?;
    r.register_score(score(s::EFFICIENCY, false, |c| {
        Box::new(s::Efficiency(c.catalog.clone()))
    }))?;
    r.register_score(score(s::AFFINITY, false, |c| {
        Box::new(s::Affinity {
            mismatch: c.affinity_mismatch,
        })
    }))?;
    r.register_score(score(s::UTILISATION, true, |_| Box::new(s::Utilisation)))?;
    r.register_score(score(s::POWER_BONUS, false, |c| {
        Box::new(s::PowerBonus(c.catalog.clone()))
    }))?;
    r.register_score(score(s::SHARING_HEADROOM, false, |c| {
        Box::new(s::SharingHeadroom {
            ctx: c.fit.clone(),
            free_gpu: c.headroom_free_gpu,
        })
    }))?;
    r.register_score(score(s::BEST_FIT, false, |c| {
        Box::new(s::Packing::new(s::PackingKind::BestFit, c))
    }))?;
    r.register_score(score(s::FIRST_FIT, false, |c| {
        Box::new(s::Packing::new(s::PackingKind::FirstFit, c))
    }))?;
    r.register_score(score(s::WORST_FIT, false, |c| {
        Box::new(s::Packing::new(s::PackingKind::WorstFit, c))
    }))?;
    Ok(r)
}

/// What the openb plugins are built from: the fragmentation model (FGD), the seed (Random) and
/// whether FGD may cache by node position (callers that keep `OpenbNode::idx` unique and bump
/// versions, like the simulator).
#[derive(Clone)]
pub struct OpenbBuild {
    pub frag: Arc<FragModel>,
    pub seed: u64,
    pub cached: bool,
}

pub type OpenbRegistry = Registry<OpenbNode, OpenbPod, OpenbBuild>;

/// The openb registry: NodeResourcesFit, Open-Gpu-Share and the FGD paper's six score plugins.
/// None is class-safe: the capacity index covers the engine's model only.
pub fn openb() -> &'static OpenbRegistry {
    static REGISTRY: OnceLock<OpenbRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| builtin_openb().expect("built-in plugin names are distinct"))
}

/// A fresh copy of [`openb`] to extend with one's own plugins.
pub fn builtin_openb() -> Result<OpenbRegistry, DuplicatePlugin> {
    use crate::openb::filter::{GpuShareFilter, ResourcesFit};
    use crate::openb::score::*;
    type Ff = FilterFactory<OpenbNode, OpenbPod, OpenbBuild>;
    type Sf = ScoreFactory<OpenbNode, OpenbPod, OpenbBuild>;
    fn filter(
        name: &'static str,
        factory: Ff,
    ) -> FilterRegistration<OpenbNode, OpenbPod, OpenbBuild> {
        FilterRegistration {
            name,
            class_safe: false,
            factory,
        }
    }
    fn score(
        name: &'static str,
        factory: Sf,
    ) -> ScoreRegistration<OpenbNode, OpenbPod, OpenbBuild> {
        ScoreRegistration {
            name,
            class_safe: false,
            reads_utilisation: false,
            factory,
        }
    }
    let mut r = OpenbRegistry::new();
    r.register_filter(filter(ResourcesFit::NAME, |_| Box::new(ResourcesFit)))?;
    r.register_filter(filter(GpuShareFilter::NAME, |_| Box::new(GpuShareFilter)))?;
    r.register_score(score(RandomScore::NAME, |c| {
        Box::new(RandomScore::new(c.seed))
    }))?;
    r.register_score(score(DotProductScore::NAME, |_| Box::new(DotProductScore)))?;
    r.register_score(score(GpuClusteringScore::NAME, |_| {
        Box::new(GpuClusteringScore)
    }))?;
    r.register_score(score(GpuPackingScore::NAME, |_| Box::new(GpuPackingScore)))?;
    r.register_score(score(BestFitScore::NAME, |_| Box::new(BestFitScore)))?;
    r.register_score(score(FgdScore::NAME, |c| {
        Box::new(if c.cached {
            FgdScore::cached(c.frag.clone())
        } else {
            FgdScore::new(c.frag.clone())
        })
    }))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::ScorePlugin;

    fn seeds_build() -> SeedsBuild {
        SeedsBuild::new(&crate::EngineConfig::default(), &GpuCatalog::default(), 4)
    }

    #[test]
    fn every_registration_builds_a_plugin_of_its_own_name() {
        let r = seeds();
        let c = seeds_build();
        assert_eq!(
            r.filter_names(),
            [
                "NodeSchedulable",
                "GpuAffinity",
                "MemoryFits",
                "UtilisationBelow",
                "SharingFits"
            ]
        );
        assert_eq!(
            r.score_names(),
            [
                "Efficiency",
                "Affinity",
                "Utilisation",
                "PowerBonus",
                "SharingHeadroom",
                "BestFit",
                "FirstFit",
                "WorstFit"
            ]
        );
        for n in r.filter_names() {
            assert_eq!((r.filter(n).unwrap().factory)(&c).name(), n);
        }
        for n in r.score_names() {
            assert_eq!((r.score(n).unwrap().factory)(&c).name(), n);
        }
        let o = openb();
        let oc = OpenbBuild {
            frag: Arc::new(FragModel::new(&[])),
            seed: 1,
            cached: true,
        };
        assert_eq!(o.filter_names(), ["NodeResourcesFit", "Open-Gpu-Share"]);
        assert_eq!(o.score_names().len(), 6);
        for n in o.filter_names() {
            assert_eq!((o.filter(n).unwrap().factory)(&oc).name(), n);
        }
        for n in o.score_names() {
            assert_eq!((o.score(n).unwrap().factory)(&oc).name(), n);
        }
    }

    #[test]
    fn class_safety_and_utilisation_keys_are_the_registrations() {
        let r = seeds();
        // What the capacity index decided before the registry: every seeds plugin class-safe,
        // only Utilisation keyed on the exact mean utilisation.
        assert!(r
            .score_names()
            .iter()
            .all(|n| r.score(n).unwrap().class_safe));
        let keyed: Vec<_> = r
            .score_names()
            .into_iter()
            .filter(|n| r.score(n).unwrap().reads_utilisation)
            .collect();
        assert_eq!(keyed, ["Utilisation"]);
        // The openb plugins never ran under the index (Random is stateful).
        assert!(!openb().score(RandomScore::NAME).unwrap().class_safe);
        let p = r
            .build_profile("t", &["SharingFits"], &[("BestFit", 1.0)], &seeds_build())
            .unwrap();
        assert!(p.class_safe());
    }

    struct Coin;
    impl ScorePlugin<NodeView, PlacementRequest> for Coin {
        fn name(&self) -> &'static str {
            "Coin"
        }
        fn score(&mut self, _: &PlacementRequest, _: &NodeView) -> f64 {
            0.5
        }
    }
    use crate::openb::score::RandomScore;

    #[test]
    fn unknown_and_duplicate_names_are_refused() {
        let r = seeds();
        let e = r
            .build_profile("t", &["SharingFits"], &[("Nope", 1.0)], &seeds_build())
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "unknown score plugin `Nope`; registered score plugins: Efficiency, Affinity, \
             Utilisation, PowerBonus, SharingHeadroom, BestFit, FirstFit, WorstFit"
        );
        let e = r
            .build_profile("t", &["Nope"], &[("BestFit", 1.0)], &seeds_build())
            .err()
            .unwrap();
        assert!(e.to_string().starts_with(
            "unknown filter plugin `Nope`; registered filter plugins: NodeSchedulable,"
        ));
        let mut own = builtin_seeds().unwrap();
        let coin = |name| ScoreRegistration {
            name,
            class_safe: false,
            reads_utilisation: false,
            factory: |_: &SeedsBuild| -> Box<dyn ScorePlugin<NodeView, PlacementRequest>> {
                Box::new(Coin)
            },
        };
        own.register_score(coin("Coin")).unwrap();
        assert_eq!(
            own.register_score(coin("BestFit"))
                .err()
                .unwrap()
                .to_string(),
            "a score plugin named `BestFit` is already registered"
        );
        let p = own
            .build_profile(
                "t",
                &["SharingFits"],
                &[("BestFit", 1.0), ("Coin", 1.0)],
                &seeds_build(),
            )
            .unwrap();
        assert!(
            !p.class_safe(),
            "one plugin that is not class-safe makes the profile not"
        );
        // The shared registry is untouched.
        assert!(seeds().score("Coin").is_none());
    }
}
