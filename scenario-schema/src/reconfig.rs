//! The scenario's `[reconfig]` section (issue 5): a sharing-layout change that falls due during
//! the run, how it is rolled out, the faults injected into it; and what summary.json reports
//! about it. The pure logic (plan, gate, breaker, the rollout state machine) is
//! `gpusched_policies::rollout`; the simulator's executor of the machine is
//! `gpusched_sim::rollout`.
//!
//! The layout is a time-sliced pool's replicas per GPU (the device plugin's
//! `sharing.timeSlicing.replicas`, seed 004's optimal-replicas table): changing it rewrites the
//! node's plugin config, which restarts the plugin under the node's pods.

use gpusched_policies::rollout::{
    CircuitBreakerConfig, GateConfig, ReadinessProbe, Strategy, StrategyConfig, UpdateClass,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconfigConfig {
    pub strategy: Strategy,
    /// The seeds' update class: its limits feed the gate and the disruption budget.
    pub class: UpdateClass,
    /// Apply the seeds' timing gate before each batch (false: go as soon as it is due).
    pub gate: bool,
    /// The pool whose nodes change (every node of it).
    pub pool: String,
    pub trigger: Trigger,
    pub qps_gate: GateConfig,
    pub params: StrategyConfig,
    pub readiness: ReadinessProbe,
    pub breaker: CircuitBreakerConfig,
    pub faults: Faults,
    /// Evicted pods still busy after this long are killed (their requests fail), s.
    pub drain_timeout_s: f64,
    /// Pre-warmed replacements not ready after this long: drain anyway, s.
    pub surge_timeout_s: f64,
    /// Pods not back after this long: go on anyway, s.
    pub pods_timeout_s: f64,
}

impl Default for ReconfigConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::Rolling,
            class: UpdateClass::Routine,
            gate: true,
            pool: String::new(),
            trigger: Trigger::default(),
            qps_gate: GateConfig::default(),
            params: StrategyConfig::default(),
            readiness: ReadinessProbe::default(),
            breaker: CircuitBreakerConfig::default(),
            faults: Faults::default(),
            drain_timeout_s: 120.0,
            surge_timeout_s: 600.0,
            pods_timeout_s: 600.0,
        }
    }
}

/// When the new layout falls due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// An operator's planned change: `replicas` time-sliced replicas per GPU from `at_s`.
    Scheduled { at_s: f64, replicas: u8 },
    /// Seed 004's optimal-replicas table over the pool's measured utilisation, evaluated every
    /// `window_s` on that window's samples.
    OptimalReplicas {
        #[serde(default = "half_hour")]
        window_s: f64,
    },
}

fn half_hour() -> f64 {
    1800.0
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger::OptimalReplicas {
            window_s: half_hour(),
        }
    }
}

/// Fault injection: exercises rollback and the circuit breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Nodes whose new config fails to apply (the plugin never advertises it): rolled back.
    pub fail_apply: Vec<String>,
    /// How many attempts on those nodes fail before one succeeds.
    pub fail_apply_times: u32,
    /// Nodes that never come back after the change (lost for the rest of the run).
    pub never_returns: Vec<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            fail_apply: Vec::new(),
            fail_apply_times: u32::MAX,
            never_returns: Vec::new(),
        }
    }
}

impl ReconfigConfig {
    /// Checks values serde cannot: `Err((key under reconfig, problem))`.
    pub fn validate(&self, pools: &[String], nodes: &[String]) -> Result<(), (String, String)> {
        let e = |k: &str, p: String| Err((format!("reconfig.{k}"), p));
        if !pools.iter().any(|p| p == &self.pool) {
            return e(
                "pool",
                format!(
                    "no pool named `{}`; pools are {}",
                    self.pool,
                    pools.join(", ")
                ),
            );
        }
        match self.trigger {
            Trigger::Scheduled { at_s, replicas } => {
                if !(at_s >= 0.0 && at_s.is_finite()) {
                    return e("trigger.at_s", format!("{at_s} must be ≥ 0"));
                }
                if replicas < 2 {
                    return e(
                        "trigger.replicas",
                        format!("{replicas}: time slicing needs ≥ 2"),
                    );
                }
            }
            Trigger::OptimalReplicas { window_s } => {
                if !(window_s > 0.0 && window_s.is_finite()) {
                    return e("trigger.window_s", format!("{window_s} must be > 0"));
                }
            }
        }
        self.qps_gate.validate().or_else(|p| e("qps_gate", p))?;
        self.params.validate().or_else(|p| e("params", p))?;
        self.readiness.validate().or_else(|p| e("readiness", p))?;
        if !(self.breaker.failure_threshold >= 1 && self.breaker.cooldown_s >= 0.0) {
            return e("breaker", "failure_threshold ≥ 1 and cooldown_s ≥ 0".into());
        }
        for (k, list) in [
            ("faults.fail_apply", &self.faults.fail_apply),
            ("faults.never_returns", &self.faults.never_returns),
        ] {
            if let Some(n) = list.iter().find(|n| !nodes.contains(n)) {
                return e(k, format!("no node named `{n}`"));
            }
        }
        for (k, v) in [
            ("drain_timeout_s", self.drain_timeout_s),
            ("surge_timeout_s", self.surge_timeout_s),
            ("pods_timeout_s", self.pods_timeout_s),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return e(k, format!("{v} must be ≥ 0"));
            }
        }
        Ok(())
    }
}

/// What summary.json says about the run's rollout(s).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReconfigReport {
    pub strategy: String,
    pub class: String,
    pub gated: bool,
    /// `not_due`, `postponed` (due, never started), `in_progress`, `done`, `breaker_open`.
    pub outcome: String,
    pub from_replicas: u8,
    pub to_replicas: u8,
    pub due_s: Option<f64>,
    pub started_s: Option<f64>,
    pub converged_s: Option<f64>,
    /// From due to converged, s.
    pub time_to_converge_s: Option<f64>,
    /// Failed requests (every cause) from the start of the change to 5 minutes after it ended.
    pub failed_requests: u64,
    /// Requests that were in flight on a pod that lost its context.
    pub failed_pod_restart: u64,
    /// The worst 30-second p99 during the change, ms.
    pub p99_during_ms: f64,
    /// GPU-hours the target nodes were out of service (cordoned or restarting) plus the GPU
    /// shares of pods restarting after losing their context.
    pub gpu_hours_lost: f64,
    pub pods_restarted: u64,
    pub postponements: u64,
    pub attempts: u32,
    pub failures: u32,
    pub rollbacks: u32,
    pub nodes_lost: Vec<String>,
}
