//! When a new layout is worth rolling out, and how: strategies as batches of nodes.
//!
//! The rollout state machine ([`super::machine`], executed by the simulator's `rollout` module
//! and the live adapter's `rollout_exec`) runs each batch as: cordon → per traffic-shift step,
//! replacements elsewhere and the step's evictions (after the replacements are ready when
//! pre-warming), each step watched where the batch says so → apply the config (label +
//! ConfigMap entry, previous kept for rollback) → wait for the plugin → uncordon → wait for pods
//! → watch health. In-place skips the cordon and the drain: the config is applied under running
//! pods, which lose their context.

use crate::sharing::optimal_replicas;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The naive baseline: every target node at once, under its pods.
    InPlace,
    /// Node by node within the disruption budget: cordon, drain (replacements start elsewhere
    /// as the old pods drain), apply, wait for the plugin, uncordon, wait for pods.
    #[default]
    Rolling,
    /// Rolling, but each batch's replacements are scaled up elsewhere and ready before its pods
    /// are drained (seed 002's pre-warming).
    Prewarm,
    /// Half the nodes (blue) are emptied and converted first; the rest (green) hand their pods
    /// over to blue in traffic steps 10 → 50 → 100 %, each watched, then are converted empty.
    BlueGreen,
    /// 10 % of the nodes first, watched (error rate > 5 % or p99 > 2000 ms → roll back), then the
    /// rest rolling.
    Canary,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Strategy::InPlace,
        Strategy::Rolling,
        Strategy::Prewarm,
        Strategy::BlueGreen,
        Strategy::Canary,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::InPlace => "in_place",
            Strategy::Rolling => "rolling",
            Strategy::Prewarm => "prewarm",
            Strategy::BlueGreen => "blue_green",
            Strategy::Canary => "canary",
        }
    }
}

/// Strategy parameters; defaults are the seeds' values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategyConfig {
    /// Nodes out of service at once; 0 = from the update class's maximum disruption (at least 1).
    pub max_unavailable: u32,
    /// Share of the target nodes in the canary (seeds: 10 %, at least one node).
    pub canary_fraction: f64,
    /// How long the canary is watched before the rest follows, s (seeds: 1 h).
    pub canary_watch_s: f64,
    /// Blue-green traffic steps, % of green's pods handed to blue (seeds: 10, 50, 100).
    pub shift_steps_pct: Vec<u8>,
    /// How long each blue-green step is watched, s.
    pub step_watch_s: f64,
    pub health: HealthCheck,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        Self {
            max_unavailable: 0,
            canary_fraction: 0.10,
            canary_watch_s: 3600.0,
            shift_steps_pct: vec![10, 50, 100],
            step_watch_s: 300.0,
            health: HealthCheck::default(),
        }
    }
}

impl StrategyConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.canary_fraction > 0.0 && self.canary_fraction <= 1.0) {
            return Err("canary_fraction must be in (0, 1]".into());
        }
        if !(self.canary_watch_s >= 0.0 && self.step_watch_s >= 0.0) {
            return Err("watch times must be ≥ 0".into());
        }
        let s = &self.shift_steps_pct;
        if s.is_empty() || s.windows(2).any(|w| w[0] >= w[1]) || s.last() != Some(&100) {
            return Err("shift_steps_pct must rise and end at 100, e.g. [10, 50, 100]".into());
        }
        self.health.validate()
    }
}

/// The canary's (and each watched step's) health check (seeds: error rate > 5 % or p99 > 2 s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    pub max_error_rate: f64,
    pub max_p99_ms: f64,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            max_error_rate: 0.05,
            max_p99_ms: 2000.0,
        }
    }
}

impl HealthCheck {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.max_error_rate > 0.0 && self.max_error_rate <= 1.0 && self.max_p99_ms > 0.0) {
            return Err("health: max_error_rate in (0, 1] and max_p99_ms > 0".into());
        }
        Ok(())
    }
    /// `Err(why)` when the watched window is unhealthy.
    pub fn judge(&self, error_rate: f64, p99_ms: f64) -> Result<(), String> {
        if error_rate > self.max_error_rate {
            return Err(format!(
                "error rate {:.2} % > {:.2} %",
                error_rate * 100.0,
                self.max_error_rate * 100.0
            ));
        }
        if p99_ms > self.max_p99_ms {
            return Err(format!("p99 {p99_ms:.0} ms > {:.0} ms", self.max_p99_ms));
        }
        Ok(())
    }
}

/// The pods' readiness probe (seed 002: initial delay 30 s, period 10 s, failure threshold 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadinessProbe {
    pub initial_delay_s: f64,
    pub period_s: f64,
    pub failure_threshold: u32,
}

impl Default for ReadinessProbe {
    fn default() -> Self {
        Self {
            initial_delay_s: 30.0,
            period_s: 10.0,
            failure_threshold: 3,
        }
    }
}

impl ReadinessProbe {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.initial_delay_s >= 0.0 && self.period_s > 0.0 && self.failure_threshold >= 1) {
            return Err(
                "readiness: initial_delay_s ≥ 0, period_s > 0, failure_threshold ≥ 1".into(),
            );
        }
        Ok(())
    }
    /// A pod whose app is up `startup_s` after its container starts is marked ready at the
    /// first probe at or after that (probes at initial delay + k × period).
    pub fn ready_after(&self, startup_s: f64) -> f64 {
        if startup_s <= self.initial_delay_s {
            return self.initial_delay_s;
        }
        let k = ((startup_s - self.initial_delay_s) / self.period_s - 1e-9).ceil();
        self.initial_delay_s + k * self.period_s
    }
    /// When a pod that never comes up is given up on: `failure_threshold` failed probes.
    pub fn gives_up_after(&self) -> f64 {
        self.initial_delay_s + self.period_s * self.failure_threshold as f64
    }
}

/// One batch of a rollout: nodes taken out and converted together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Batch {
    /// What the batch is ("all", "rolling", "canary", "blue", "green"), for the log.
    pub role: &'static str,
    /// Indices into the caller's target list.
    pub nodes: Vec<usize>,
    /// Cordon and drain before applying (false only in place).
    pub drain: bool,
    /// Replacements must be ready before the old pods are evicted.
    pub surge_first: bool,
    /// Cumulative % of the batch's pods moved per step (`[100]`: all at once).
    pub shift_pct: Vec<u8>,
    /// Watch after each shift step, s.
    pub step_watch_s: f64,
    /// Watch after the batch is converted, s (the canary).
    pub watch_s: f64,
}

/// Nodes out of service at once: the configured number, or the class's max disruption % of the
/// targets (at least one).
pub fn batch_size(targets: usize, cfg: &StrategyConfig, max_disruption_pct: f64) -> usize {
    let n = if cfg.max_unavailable > 0 {
        cfg.max_unavailable as usize
    } else {
        (targets as f64 * max_disruption_pct / 100.0).floor() as usize
    };
    n.clamp(1, targets.max(1))
}

/// The batches a strategy runs over `targets` nodes.
pub fn plan(
    strategy: Strategy,
    targets: usize,
    cfg: &StrategyConfig,
    max_disruption_pct: f64,
) -> Vec<Batch> {
    if targets == 0 {
        return Vec::new();
    }
    let all: Vec<usize> = (0..targets).collect();
    let size = batch_size(targets, cfg, max_disruption_pct);
    let batch = |role, nodes: &[usize], surge_first| Batch {
        role,
        nodes: nodes.to_vec(),
        drain: true,
        surge_first,
        shift_pct: vec![100],
        step_watch_s: 0.0,
        watch_s: 0.0,
    };
    match strategy {
        Strategy::InPlace => vec![Batch {
            drain: false,
            ..batch("all", &all, false)
        }],
        Strategy::Rolling => all
            .chunks(size)
            .map(|c| batch("rolling", c, false))
            .collect(),
        Strategy::Prewarm => all
            .chunks(size)
            .map(|c| batch("prewarm", c, true))
            .collect(),
        Strategy::BlueGreen => {
            let blue = targets.div_ceil(2);
            let mut out = vec![batch("blue", &all[..blue], true)];
            if blue < targets {
                out.push(Batch {
                    shift_pct: cfg.shift_steps_pct.clone(),
                    step_watch_s: cfg.step_watch_s,
                    ..batch("green", &all[blue..], true)
                });
            }
            out
        }
        Strategy::Canary => {
            let n = ((targets as f64 * cfg.canary_fraction).ceil() as usize).clamp(1, targets);
            let mut out = vec![Batch {
                watch_s: cfg.canary_watch_s,
                ..batch("canary", &all[..n], false)
            }];
            out.extend(all[n..].chunks(size).map(|c| batch("rolling", c, false)));
            out
        }
    }
}

/// Seed 004's trigger: from the per-window utilisation of a time-sliced pool's GPUs, the
/// optimal-replicas table's answer when it differs from the current `replicas`, with the reason.
/// Burstiness = (peak − mean) / peak of the samples (0 steady, → 1 bursty).
pub fn optimal_replicas_due(current: u8, util_samples: &[f64]) -> Option<(u8, String)> {
    if util_samples.is_empty() {
        return None;
    }
    let mean = util_samples.iter().sum::<f64>() / util_samples.len() as f64;
    let peak = util_samples.iter().copied().fold(0.0, f64::max);
    let burstiness = if peak > 0.0 {
        (peak - mean) / peak
    } else {
        0.0
    };
    let want = optimal_replicas(mean, burstiness).max(2);
    (want != current).then(|| {
        (
            want,
            format!(
                "optimal-replicas table: mean utilisation {:.0} %, burstiness {:.2} → {want} time-sliced replicas per GPU (now {current})",
                mean * 100.0,
                burstiness
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(b: &[Batch]) -> Vec<(&str, Vec<usize>)> {
        b.iter().map(|x| (x.role, x.nodes.clone())).collect()
    }

    #[test]
    fn strategies_as_batches() {
        let cfg = StrategyConfig::default();
        let p = plan(Strategy::InPlace, 8, &cfg, 10.0);
        assert_eq!(p.len(), 1);
        assert!(!p[0].drain);
        // Routine: 10 % of 8 nodes rounds down to 0 → one node at a time.
        let p = plan(Strategy::Rolling, 8, &cfg, 10.0);
        assert_eq!(p.len(), 8);
        assert!(p.iter().all(|b| b.drain && !b.surge_first));
        // Emergency (50 %): four at a time.
        assert_eq!(plan(Strategy::Prewarm, 8, &cfg, 50.0).len(), 2);
        let p = plan(Strategy::BlueGreen, 8, &cfg, 10.0);
        assert_eq!(
            roles(&p),
            vec![("blue", vec![0, 1, 2, 3]), ("green", vec![4, 5, 6, 7])]
        );
        assert_eq!(p[1].shift_pct, vec![10, 50, 100]);
        let p = plan(Strategy::Canary, 8, &cfg, 10.0);
        assert_eq!(p[0].role, "canary");
        assert_eq!(p[0].nodes, vec![0]);
        assert_eq!(p[0].watch_s, 3600.0);
        assert_eq!(p.len(), 8);
        assert!(plan(Strategy::Rolling, 0, &cfg, 10.0).is_empty());
    }

    #[test]
    fn canary_health_check_uses_the_seeds_limits() {
        let h = HealthCheck::default();
        assert!(h.judge(0.01, 500.0).is_ok());
        assert!(h.judge(0.06, 500.0).is_err());
        assert!(h.judge(0.0, 2500.0).is_err());
    }

    #[test]
    fn readiness_probe_rounds_up_to_a_probe() {
        let p = ReadinessProbe::default();
        assert_eq!(p.ready_after(20.0), 30.0);
        assert_eq!(p.ready_after(45.0), 50.0);
        assert_eq!(p.ready_after(90.0), 90.0);
        assert_eq!(p.gives_up_after(), 60.0);
    }

    #[test]
    fn optimal_replicas_trigger() {
        // Quiet and bursty: the table says 8 (now 2).
        let bursty = [0.02, 0.03, 0.02, 0.40, 0.02, 0.03];
        let (want, why) = optimal_replicas_due(2, &bursty).unwrap();
        assert_eq!(want, 8);
        assert!(why.contains("optimal-replicas"));
        // Half busy and steady: 2, already there.
        assert_eq!(optimal_replicas_due(2, &[0.5, 0.5, 0.5]), None);
        assert_eq!(optimal_replicas_due(2, &[]), None);
        let cfg = StrategyConfig {
            shift_steps_pct: vec![50, 10, 100],
            ..Default::default()
        };
        assert!(cfg.validate().is_err());
    }
}
