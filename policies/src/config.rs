//! The engine's typed configuration. Every weight and threshold is here, with the seeds' value
//! as its default; a scenario's `[engine]` table overrides any of them.

use crate::admission::{AdmissionConfig, SharingPolicy, TimeSlicingConfig};
use crate::plugins::fit::{FitConfig, GpuSelection};
use crate::plugins::{filters, seeds};
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

/// A profile's reference to a registered plugin ([`crate::registry::seeds`]), as a
/// KubeSchedulerConfiguration profile names its plugins: `"NodeSchedulable"`, `"BestFit"`, …
pub type PluginName = String;

/// A Score plugin by name with its weight. `name` is accepted for `plugin`, as
/// KubeSchedulerConfiguration spells it (`{ name = "BestFit", weight = 1 }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedScore {
    #[serde(alias = "name")]
    pub plugin: PluginName,
    pub weight: f64,
}

impl WeightedScore {
    pub fn new(plugin: impl Into<PluginName>, weight: f64) -> Self {
        Self {
            plugin: plugin.into(),
            weight,
        }
    }
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
    /// An explicit list of score plugins (registered names) and weights; overrides `policy`
    /// when set.
    pub scores: Option<Vec<WeightedScore>>,
    /// Filter plugins by registered name, in the order they run (`SharingFits` is always added
    /// when missing: the GPU-selection step relies on it).
    pub filters: Vec<PluginName>,
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
            filters: [
                filters::NODE_SCHEDULABLE,
                filters::GPU_AFFINITY,
                filters::MEMORY_FITS,
                filters::UTILISATION_BELOW,
                filters::SHARING_FITS,
            ]
            .map(PluginName::from)
            .to_vec(),
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
        let w = WeightedScore::new;
        match self.policy {
            PolicyName::Seeds => vec![
                w(seeds::EFFICIENCY, self.weights.efficiency),
                w(seeds::AFFINITY, self.weights.affinity),
                w(seeds::UTILISATION, self.weights.utilisation),
                w(seeds::POWER_BONUS, self.weights.power_bonus),
                w(seeds::SHARING_HEADROOM, self.weights.sharing_headroom),
            ],
            PolicyName::BestFit => vec![w(seeds::BEST_FIT, 1.0)],
            PolicyName::FirstFit => vec![w(seeds::FIRST_FIT, 1.0)],
            PolicyName::WorstFit => vec![w(seeds::WORST_FIT, 1.0)],
        }
    }

    /// The filter plugin names the engine runs: `filters`, plus `SharingFits` when missing.
    pub fn filter_list(&self) -> Vec<&str> {
        let mut f: Vec<&str> = self.filters.iter().map(String::as_str).collect();
        if !f.contains(&filters::SHARING_FITS) {
            f.push(filters::SHARING_FITS);
        }
        f
    }

    /// PreFilter under this configuration: the workload's class and sharing mode (what
    /// [`crate::Engine::classify`] gives; scenario validation calls it without an engine).
    pub fn request_for(&self, w: &crate::WorkloadSpec) -> crate::PlacementRequest {
        let mut req = self.classify.classify(w);
        crate::admission::apply(self.sharing, &mut req, w, &self.admission);
        req
    }

    /// Checks what serde cannot: plugin names, ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(crate::registry::seeds())
    }

    /// [`EngineConfig::validate`] against a given plugin registry.
    pub fn validate_with(
        &self,
        registry: &crate::registry::SeedsRegistry,
    ) -> Result<(), ConfigError> {
        for (i, f) in self.filters.iter().enumerate() {
            registry
                .require_filter(f)
                .map_err(|e| invalid(format!("filters[{i}]"), e.to_string()))?;
        }
        let scores = self.score_list();
        for (i, s) in scores.iter().enumerate() {
            let key = if self.scores.is_some() {
                format!("scores[{i}].plugin")
            } else {
                format!("policy ({})", self.policy.as_str())
            };
            registry
                .require_score(&s.plugin)
                .map_err(|e| invalid(key, e.to_string()))?;
        }
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
