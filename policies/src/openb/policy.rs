//! The paper's six policies as scheduling profiles: the two filters, one score plugin (weight
//! 1000 as in the paper's scheduler config), and the GPU-share step each policy ran with
//! (Random: random GPU; FGD: its own choice; the rest: tightest fit).

use super::filter::{GpuShareFilter, ResourcesFit};
use super::frag::FragModel;
use super::gpu_select::GpuSelMethod;
use super::model::{OpenbNode, OpenbPod};
use super::score::{
    BestFitScore, DotProductScore, FgdScore, GpuClusteringScore, GpuPackingScore, RandomScore,
};
use crate::framework::{Profile, ScorePlugin};
use crate::registry::{self, OpenbBuild};
use serde::Serialize;
use std::sync::Arc;

/// Weight of the single score plugin in every profile (the paper's `-<Policy> 1000`).
pub const SCORE_WEIGHT: f64 = 1000.0;

/// The filters of every profile, in order: NodeResourcesFit, then Open-Gpu-Share.
pub const FILTERS: [&str; 2] = [ResourcesFit::NAME, GpuShareFilter::NAME];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum OpenbPolicy {
    Random,
    DotProd,
    GpuClustering,
    GpuPacking,
    BestFit,
    Fgd,
}

impl OpenbPolicy {
    pub const ALL: [OpenbPolicy; 6] = [
        OpenbPolicy::Random,
        OpenbPolicy::DotProd,
        OpenbPolicy::GpuClustering,
        OpenbPolicy::GpuPacking,
        OpenbPolicy::BestFit,
        OpenbPolicy::Fgd,
    ];

    /// The name the paper's result tables use (`sc_policy`).
    pub fn label(self) -> &'static str {
        match self {
            OpenbPolicy::Random => "01-Random",
            OpenbPolicy::DotProd => "02-DotProd",
            OpenbPolicy::GpuClustering => "03-GpuClustering",
            OpenbPolicy::GpuPacking => "04-GpuPacking",
            OpenbPolicy::BestFit => "05-BestFit",
            OpenbPolicy::Fgd => "06-FGD",
        }
    }

    /// The short name (`FGD`, `BestFit`, ...).
    pub fn short(self) -> &'static str {
        &self.label()[3..]
    }

    /// Accepts the table label (`06-FGD`) or the short name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|p| p.label().eq_ignore_ascii_case(s) || p.short().eq_ignore_ascii_case(s))
    }

    /// How the GPU-share step picks a share pod's GPU under this policy.
    pub fn gpu_selection(self) -> GpuSelMethod {
        match self {
            OpenbPolicy::Random => GpuSelMethod::Random,
            OpenbPolicy::Fgd => GpuSelMethod::Fgd,
            _ => GpuSelMethod::BestFit,
        }
    }

    /// The registered name of this policy's score plugin ([`crate::registry::openb`]).
    pub fn score_plugin_name(self) -> &'static str {
        match self {
            OpenbPolicy::Random => RandomScore::NAME,
            OpenbPolicy::DotProd => DotProductScore::NAME,
            OpenbPolicy::GpuClustering => GpuClusteringScore::NAME,
            OpenbPolicy::GpuPacking => GpuPackingScore::NAME,
            OpenbPolicy::BestFit => BestFitScore::NAME,
            OpenbPolicy::Fgd => FgdScore::NAME,
        }
    }

    /// The score plugin, from the registry. `seed` drives Random; `cached` enables FGD's
    /// per-node cache (only for callers that keep `OpenbNode::idx` unique and bump versions,
    /// like the simulator).
    pub fn score_plugin(
        self,
        frag: Arc<FragModel>,
        seed: u64,
        cached: bool,
    ) -> Box<dyn ScorePlugin<OpenbNode, OpenbPod>> {
        let r = registry::openb()
            .score(self.score_plugin_name())
            .expect("the six policies' plugins are registered");
        (r.factory)(&OpenbBuild { frag, seed, cached })
    }

    /// The full profile: NodeResourcesFit, Open-Gpu-Share, then this policy's score, by name
    /// from the registry.
    pub fn profile(
        self,
        frag: Arc<FragModel>,
        seed: u64,
        cached: bool,
    ) -> Profile<OpenbNode, OpenbPod> {
        registry::openb()
            .build_profile(
                self.label(),
                &FILTERS,
                &[(self.score_plugin_name(), SCORE_WEIGHT)],
                &OpenbBuild { frag, seed, cached },
            )
            .expect("the six policies' plugins are registered")
    }
}

impl std::fmt::Display for OpenbPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openb::model::GpuSpec;

    #[test]
    fn labels_round_trip() {
        for p in OpenbPolicy::ALL {
            assert_eq!(OpenbPolicy::parse(p.label()), Some(p));
            assert_eq!(OpenbPolicy::parse(&p.short().to_lowercase()), Some(p));
        }
        assert_eq!(OpenbPolicy::parse("nope"), None);
    }

    #[test]
    fn profiles_pick_feasible_nodes_and_explain() {
        let frag = Arc::new(FragModel::new(&[]));
        let mut a = OpenbNode::new("a", 4000, 1000, 1, Some(0));
        a.gpu_left[0] = 200;
        let b = OpenbNode::new("b", 4000, 1000, 1, Some(0));
        let pod = OpenbPod::new("p", 1000, 10, 1, 500, GpuSpec::Any, "");
        for p in OpenbPolicy::ALL {
            let mut prof = p.profile(frag.clone(), 7, false);
            let s = prof.select(&pod, &[a.clone(), b.clone()], true);
            assert_eq!(s.chosen, Some(1), "{p}");
            let m = s.matrix.unwrap();
            assert_eq!(
                m.rows[0].rejection.as_ref().unwrap().plugin,
                "Open-Gpu-Share"
            );
        }
    }
}
