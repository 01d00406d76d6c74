//! The engine's typed configuration. Every weight and threshold is here, with the seeds' value
//! as its default; a scenario's `[engine]` table overrides any of them.

use crate::admission::{AdmissionConfig, SharingPolicy, TimeSlicingConfig};
use crate::plugins::fit::{FitConfig, GpuSelection};
use crate::workload::ClassifyConfig;
use serde::{Deserialize, Serialize};

/// A named placement policy: a preset of score plugins (what `--set engine.policy=…` picks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PolicyName {
    /// The seeds' five weighted terms.
    #[default]
    Seeds,
    BestFit,
    FirstFit,
    WorstFit,
}

impl PolicyName {
    pub const ALL: [PolicyName; 4] = [
        PolicyName::Seeds,
        PolicyName::BestFit,
        PolicyName::FirstFit,
        PolicyName::WorstFit,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::Seeds => "seeds",
            PolicyName::BestFit => "best_fit",
            PolicyName::FirstFit => "first_fit",
            PolicyName::WorstFit => "worst_fit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FilterName {
    NodeSchedulable,
    GpuAffinity,
    MemoryFits,
    UtilisationBelow,
    SharingFits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScoreName {
    Efficiency,
    Affinity,
    Utilisation,
    PowerBonus,
    SharingHeadroom,
    BestFit,
    FirstFit,
    WorstFit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedScore {
    pub plugin: ScoreName,
    pub weight: f64,
}

/// The seeds' weights for their five terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedsWeights {
    pub efficiency: f64,
    pub affinity: f64,
    pub utilisation: f64,
    pub power_bonus: f64,
    pub sharing_headroom: f64,
}

impl Default for SeedsWeights {
    fn default() -> Self {
        Self {
            efficiency: 0.30,
            affinity: 0.25,
            utilisation: 0.20,
            power_bonus: 0.15,
            sharing_headroom: 0.10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub policy: PolicyName,
    pub weights: SeedsWeights,
    /// An explicit list of score plugins and weights; overrides `policy` when set.
    pub scores: Option<Vec<WeightedScore>>,
    pub filters: Vec<FilterName>,
    pub fit: FitConfig,
    pub classify: ClassifyConfig,
    pub gpu_selection: GpuSelection,
    /// Affinity term for a node of the non-preferred family (0..=1).
    pub affinity_mismatch: f64,
    /// Sharing-headroom term for a free GPU, against 1 for joining an MPS partition with room.
    pub headroom_free_gpu: f64,
    /// How replicas share GPUs (`classes` = the seeds' MPS shares by size class).
    pub sharing: SharingPolicy,
    pub time_slicing: TimeSlicingConfig,
    pub admission: AdmissionConfig,
    /// Evict lower-priority replicas when nothing fits (seed 003's priority classes).
    pub preemption: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            policy: PolicyName::Seeds,
            weights: SeedsWeights::default(),
            scores: None,
            filters: vec![
                FilterName::NodeSchedulable,
                FilterName::GpuAffinity,
                FilterName::MemoryFits,
                FilterName::UtilisationBelow,
                FilterName::SharingFits,
            ],
            fit: FitConfig::default(),
            classify: ClassifyConfig::default(),
            gpu_selection: GpuSelection::BestFit,
            affinity_mismatch: 0.0,
            headroom_free_gpu: 0.5,
            sharing: SharingPolicy::Classes,
            time_slicing: TimeSlicingConfig::default(),
            admission: AdmissionConfig::default(),
            preemption: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("engine.{key}: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

impl EngineConfig {
    /// The score plugins and weights this configuration selects.
    pub fn score_list(&self) -> Vec<WeightedScore> {
        if let Some(s) = &self.scores {
            return s.clone();
        }
        let w = |plugin, weight| WeightedScore { plugin, weight };
        match self.policy {
            PolicyName::Seeds => vec![
                w(ScoreName::Efficiency, self.weights.efficiency),
                w(ScoreName::Affinity, self.weights.affinity),
                w(ScoreName::Utilisation, self.weights.utilisation),
                w(ScoreName::PowerBonus, self.weights.power_bonus),
                w(ScoreName::SharingHeadroom, self.weights.sharing_headroom),
            ],
            PolicyName::BestFit => vec![w(ScoreName::BestFit, 1.0)],
            PolicyName::FirstFit => vec![w(ScoreName::FirstFit, 1.0)],
            PolicyName::WorstFit => vec![w(ScoreName::WorstFit, 1.0)],
        }
    }

    /// PreFilter under this configuration: the workload's class and sharing mode (what
    /// [`crate::Engine::classify`] gives; scenario validation calls it without an engine).
    pub fn request_for(&self, w: &crate::WorkloadSpec) -> crate::PlacementRequest {
        let mut req = self.classify.classify(w);
        crate::admission::apply(self.sharing, &mut req, w, &self.admission);
        req
    }

    /// Checks what serde cannot: ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let scores = self.score_list();
        for (i, s) in scores.iter().enumerate() {
            if !s.weight.is_finite() || s.weight < 0.0 {
                return Err(invalid(
                    format!("scores[{i}].weight"),
                    format!("{} must be a finite number >= 0", s.weight),
                ));
            }
        }
        if scores.iter().map(|s| s.weight).sum::<f64>() <= 0.0 {
            return Err(invalid(
                "weights",
                "at least one score weight must be positive",
            ));
        }
        if !(0.0..=1.0).contains(&self.fit.max_utilisation) {
            return Err(invalid(
                "fit.max_utilisation",
                format!("{} must be within 0..=1", self.fit.max_utilisation),
            ));
        }
        if self.fit.mps_client_limit == 0
            || self.fit.mps_client_limit > crate::plugins::fit::MPS_HARD_CLIENT_LIMIT
        {
            return Err(invalid(
                "fit.mps_client_limit",
                format!(
                    "{} must be 1..=48 (CUDA MPS's hard limit is 48 clients per GPU)",
                    self.fit.mps_client_limit
                ),
            ));
        }
        let c = &self.classify;
        if !(c.tiny_below_gb > 0.0 && c.large_above_gb >= c.tiny_below_gb) {
            return Err(invalid(
                "classify",
                "need 0 < tiny_below_gb <= large_above_gb",
            ));
        }
        for (name, t) in [
            ("tiny", &c.tiny),
            ("medium", &c.medium),
            ("large", &c.large),
        ] {
            if t.share_pct == 0 || t.share_pct > 100 {
                return Err(invalid(
                    format!("classify.{name}.share_pct"),
                    format!("{} must be 1..=100", t.share_pct),
                ));
            }
        }
        for (key, r) in [
            (
                "time_slicing.a100_replicas",
                self.time_slicing.a100_replicas,
            ),
            (
                "time_slicing.h100_replicas",
                self.time_slicing.h100_replicas,
            ),
        ] {
            if !(2..=48).contains(&r) {
                return Err(invalid(
                    key,
                    format!("{r} must be 2..=48 (the device plugin needs replicas >= 2)"),
                ));
            }
        }
        if !(self.admission.mig_below_gb >= 0.0 && self.admission.mig_below_gb.is_finite()) {
            return Err(invalid(
                "admission.mig_below_gb",
                format!("{} must be >= 0", self.admission.mig_below_gb),
            ));
        }
        for (key, v) in [
            ("affinity_mismatch", self.affinity_mismatch),
            ("headroom_free_gpu", self.headroom_free_gpu),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(key, format!("{v} must be within 0..=1")));
            }
        }
        Ok(())
    }
}
