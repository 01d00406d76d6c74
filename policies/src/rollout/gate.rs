//! The seeds' timing gate (seed 002): is now a safe time to change a sharing config?
//!
//! * QPS levels: < 50 safe, 50–100 caution (proceed), 100–200 high risk (wait), > 200 no update.
//! * Windows: the rate over the last 1, 5 and 15 minutes. The level is taken from the larger of
//!   the 1- and 5-minute rates (a lull of one minute does not open the gate); the 15-minute window
//!   gives the trend (last sample above the first = rising), the average and the recent peak.
//! * Postpone when the current rate is over 1.5× the 15-minute average and rising, or when the
//!   15-minute peak is over the no-update level.
//! * Update classes (routine / emergency / capacity expansion) add limits: max QPS, max error
//!   rate, max GPU utilisation, required free capacity, allowed UTC windows, max disruption.
//!
//! * A reading that is not a number (NaN, infinite: a live observer that could not read it)
//!   closes the gate (`unreadable`): the gate never opens on a missing reading.
//!
//! Pure: the caller passes the samples and the clock (seconds since midnight UTC of day 0).

use serde::{Deserialize, Serialize};

/// QPS thresholds and the trend rule. Defaults are the seeds' values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    pub safe_qps: f64,
    pub caution_qps: f64,
    pub no_update_qps: f64,
    /// "Rising fast": current rate over this multiple of the 15-minute average, and rising.
    pub trend_factor: f64,
    /// Multiplies every QPS threshold, the classes' `max_qps` included (for scaled-down traffic
    /// in tests and small clusters; 1 = the seeds' cluster-wide figures).
    pub qps_scale: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            safe_qps: 50.0,
            caution_qps: 100.0,
            no_update_qps: 200.0,
            trend_factor: 1.5,
            qps_scale: 1.0,
        }
    }
}

impl GateConfig {
    pub fn validate(&self) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if !(ok(self.safe_qps) && ok(self.caution_qps) && ok(self.no_update_qps)) {
            return Err("QPS thresholds must be positive".into());
        }
        if !(self.safe_qps <= self.caution_qps && self.caution_qps <= self.no_update_qps) {
            return Err("thresholds must rise: safe_qps ≤ caution_qps ≤ no_update_qps".into());
        }
        if !ok(self.trend_factor) || !ok(self.qps_scale) {
            return Err("trend_factor and qps_scale must be positive".into());
        }
        Ok(())
    }
}

/// The seeds' update classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpdateClass {
    /// Routine optimisation: the strictest limits, 02:00–04:00 and 14:00–16:00 UTC.
    #[default]
    Routine,
    /// Emergency fix: any time, high tolerances.
    Emergency,
    /// Capacity expansion: 01:00–05:00 UTC, the most free capacity.
    CapacityExpansion,
}

/// One class's limits (seed 002's `mps-update-rules`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassLimits {
    pub max_qps: f64,
    pub max_error_rate: f64,
    pub max_gpu_util: f64,
    pub min_free_capacity: f64,
    /// Allowed windows as (start hour, end hour) UTC; empty = any time.
    pub allowed_windows: Vec<(f64, f64)>,
    pub max_disruption_pct: f64,
}

impl UpdateClass {
    pub fn limits(self) -> ClassLimits {
        match self {
            UpdateClass::Routine => ClassLimits {
                max_qps: 50.0,
                max_error_rate: 0.01,
                max_gpu_util: 0.7,
                min_free_capacity: 0.3,
                allowed_windows: vec![(2.0, 4.0), (14.0, 16.0)],
                max_disruption_pct: 10.0,
            },
            UpdateClass::Emergency => ClassLimits {
                max_qps: 1000.0,
                max_error_rate: 0.05,
                max_gpu_util: 0.9,
                min_free_capacity: 0.1,
                allowed_windows: Vec::new(),
                max_disruption_pct: 50.0,
            },
            UpdateClass::CapacityExpansion => ClassLimits {
                max_qps: 100.0,
                max_error_rate: 0.005,
                max_gpu_util: 0.6,
                min_free_capacity: 0.4,
                allowed_windows: vec![(1.0, 5.0)],
                max_disruption_pct: 5.0,
            },
        }
    }
}

/// Where the traffic stands (seed 002's four bands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QpsLevel {
    Safe,
    Caution,
    HighRisk,
    NoUpdate,
}

/// What the gate sees now.
#[derive(Debug, Clone, PartialEq)]
pub struct GateInput<'a> {
    /// Seconds since midnight UTC of day 0.
    pub now_s: f64,
    /// Recent (time s, QPS over the sample's window) samples, oldest first; at least the last
    /// 15 minutes when available.
    pub samples: &'a [(f64, f64)],
    /// Failed / arrived over the last 5 minutes.
    pub error_rate: f64,
    /// Mean measured GPU utilisation, 0..=1.
    pub gpu_util: f64,
    /// Unallocated fraction of the cluster's GPU capacity, 0..=1.
    pub free_capacity: f64,
}

/// The gate's answer, with every figure it used (logged with a postponement).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateVerdict {
    pub open: bool,
    pub level: QpsLevel,
    pub qps_1m: f64,
    pub qps_5m: f64,
    pub qps_15m: f64,
    pub peak_15m: f64,
    pub rising: bool,
    /// The checks that failed, by name (empty when open).
    pub failed: Vec<String>,
    pub reason: String,
}

/// Mean rate over samples no older than `window_s` before `now_s` (0 without samples).
pub fn window_mean(samples: &[(f64, f64)], now_s: f64, window_s: f64) -> f64 {
    let xs: Vec<f64> = samples
        .iter()
        .filter(|(t, _)| *t > now_s - window_s - 1e-9)
        .map(|&(_, q)| q)
        .collect();
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn in_windows(now_s: f64, windows: &[(f64, f64)]) -> bool {
    let h = (now_s / 3600.0).rem_euclid(24.0);
    windows.is_empty() || windows.iter().any(|&(a, b)| h >= a && h < b)
}

/// Evaluates the gate for one update class.
pub fn evaluate(cfg: &GateConfig, class: UpdateClass, input: &GateInput) -> GateVerdict {
    let k = cfg.qps_scale;
    let lim = class.limits();
    let now = input.now_s;
    let qps_1m = window_mean(input.samples, now, 60.0);
    let qps_5m = window_mean(input.samples, now, 300.0);
    let recent: Vec<f64> = input
        .samples
        .iter()
        .filter(|(t, _)| *t > now - 900.0 - 1e-9)
        .map(|&(_, q)| q)
        .collect();
    let qps_15m = window_mean(input.samples, now, 900.0);
    let peak_15m = recent.iter().copied().fold(0.0, f64::max);
    let rising = match (recent.first(), recent.last()) {
        (Some(a), Some(b)) => b > a,
        _ => false,
    };
    let current = qps_1m.max(qps_5m);
    let level = if current > cfg.no_update_qps * k {
        QpsLevel::NoUpdate
    } else if current > cfg.caution_qps * k {
        QpsLevel::HighRisk
    } else if current > cfg.safe_qps * k {
        QpsLevel::Caution
    } else {
        QpsLevel::Safe
    };
    let mut failed = Vec::new();
    let mut why = Vec::new();
    // A reading that is not a number (a live observer that could not read it passes NaN) must
    // never open the gate: every comparison below is false for NaN, so it is refused here.
    let mut unreadable = Vec::new();
    if !now.is_finite() {
        unreadable.push("the clock");
    }
    if input
        .samples
        .iter()
        .any(|(t, q)| !t.is_finite() || !q.is_finite())
    {
        unreadable.push("the QPS samples");
    }
    for (name, v) in [
        ("the error rate", input.error_rate),
        ("the GPU utilisation", input.gpu_util),
        ("the free capacity", input.free_capacity),
    ] {
        if !v.is_finite() {
            unreadable.push(name);
        }
    }
    if !unreadable.is_empty() {
        failed.push("unreadable".to_string());
        why.push(format!(
            "no valid reading of {}: the gate does not open without one",
            unreadable.join(", ")
        ));
    }
    match level {
        QpsLevel::NoUpdate => {
            failed.push("qps_no_update".to_string());
            why.push(format!(
                "QPS {current:.1} is over {:.0}: no update",
                cfg.no_update_qps * k
            ));
        }
        QpsLevel::HighRisk => {
            failed.push("qps_high_risk".to_string());
            why.push(format!(
                "QPS {current:.1} is high risk (over {:.0})",
                cfg.caution_qps * k
            ));
        }
        _ => {}
    }
    if rising && qps_1m > cfg.trend_factor * qps_15m {
        failed.push("qps_rising".to_string());
        why.push(format!(
            "QPS rising fast: {qps_1m:.1} > {}× the 15-minute average {qps_15m:.1}",
            cfg.trend_factor
        ));
    }
    if peak_15m > cfg.no_update_qps * k {
        failed.push("recent_peak".to_string());
        why.push(format!(
            "15-minute peak {peak_15m:.1} is over {:.0}",
            cfg.no_update_qps * k
        ));
    }
    if current >= lim.max_qps * k {
        failed.push("class_max_qps".to_string());
        why.push(format!(
            "QPS {current:.1} ≥ the class's {:.0}",
            lim.max_qps * k
        ));
    }
    if input.error_rate >= lim.max_error_rate {
        failed.push("error_rate".to_string());
        why.push(format!(
            "error rate {:.2} % ≥ {:.2} %",
            input.error_rate * 100.0,
            lim.max_error_rate * 100.0
        ));
    }
    if input.gpu_util >= lim.max_gpu_util {
        failed.push("gpu_utilisation".to_string());
        why.push(format!(
            "GPU utilisation {:.0} % ≥ {:.0} %",
            input.gpu_util * 100.0,
            lim.max_gpu_util * 100.0
        ));
    }
    if input.free_capacity <= lim.min_free_capacity {
        failed.push("free_capacity".to_string());
        why.push(format!(
            "free capacity {:.0} % ≤ the required {:.0} %",
            input.free_capacity * 100.0,
            lim.min_free_capacity * 100.0
        ));
    }
    if !in_windows(now, &lim.allowed_windows) {
        failed.push("time_window".to_string());
        why.push(format!(
            "{:05.2} h UTC is outside the allowed windows",
            (now / 3600.0).rem_euclid(24.0)
        ));
    }
    let open = failed.is_empty();
    let reason = if open {
        format!(
            "{} QPS {current:.1} (1 m {qps_1m:.1}, 5 m {qps_5m:.1}, 15 m {qps_15m:.1}); every check passed",
            match level {
                QpsLevel::Safe => "safe:",
                _ => "caution:",
            }
        )
    } else {
        why.join("; ")
    };
    GateVerdict {
        open,
        level,
        qps_1m,
        qps_5m,
        qps_15m,
        peak_15m,
        rising,
        failed,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(qps: f64, now: f64) -> Vec<(f64, f64)> {
        (0..30)
            .map(|i| (now - 870.0 + i as f64 * 30.0, qps))
            .collect()
    }

    fn input(samples: &[(f64, f64)], now_s: f64) -> GateInput<'_> {
        GateInput {
            now_s,
            samples,
            error_rate: 0.0,
            gpu_util: 0.3,
            free_capacity: 0.5,
        }
    }

    const THREE_AM: f64 = 3.0 * 3600.0;

    #[test]
    fn qps_levels_follow_the_seeds_bands() {
        let cfg = GateConfig::default();
        for (qps, level) in [
            (30.0, QpsLevel::Safe),
            (70.0, QpsLevel::Caution),
            (150.0, QpsLevel::HighRisk),
            (250.0, QpsLevel::NoUpdate),
        ] {
            let s = flat(qps, THREE_AM);
            let v = evaluate(&cfg, UpdateClass::Emergency, &input(&s, THREE_AM));
            assert_eq!(v.level, level, "{qps}");
            // Emergency: safe and caution proceed, high risk and no-update wait.
            assert_eq!(v.open, qps < 100.0, "{qps}: {}", v.reason);
        }
    }

    #[test]
    fn routine_needs_a_window_and_low_qps() {
        let cfg = GateConfig::default();
        let s = flat(30.0, THREE_AM);
        assert!(evaluate(&cfg, UpdateClass::Routine, &input(&s, THREE_AM)).open);
        let noon = 12.0 * 3600.0;
        let s = flat(30.0, noon);
        let v = evaluate(&cfg, UpdateClass::Routine, &input(&s, noon));
        assert_eq!(v.failed, vec!["time_window"]);
        // 14:00–16:00 of the next day is a window too.
        let t = (24.0 + 15.0) * 3600.0;
        let s = flat(30.0, t);
        assert!(evaluate(&cfg, UpdateClass::Routine, &input(&s, t)).open);
        // 70 QPS is "caution" but over routine's 50.
        let s = flat(70.0, THREE_AM);
        let v = evaluate(&cfg, UpdateClass::Routine, &input(&s, THREE_AM));
        assert_eq!(v.failed, vec!["class_max_qps"]);
    }

    #[test]
    fn rising_fast_and_recent_peaks_postpone() {
        let cfg = GateConfig::default();
        // Steady 20 QPS, then the last minute jumps to 45: rising and over 1.5× the average.
        let mut s = flat(20.0, THREE_AM);
        let n = s.len();
        s[n - 1].1 = 45.0;
        s[n - 2].1 = 45.0;
        let v = evaluate(&cfg, UpdateClass::Emergency, &input(&s, THREE_AM));
        assert!(
            !v.open && v.failed.contains(&"qps_rising".to_string()),
            "{v:?}"
        );
        // A peak of 250 ten minutes ago, quiet now.
        let mut s = flat(20.0, THREE_AM);
        s[10].1 = 250.0;
        let v = evaluate(&cfg, UpdateClass::Emergency, &input(&s, THREE_AM));
        assert_eq!(v.failed, vec!["recent_peak"]);
        // Falling from the peak is not "rising".
        assert!(!v.rising);
    }

    #[test]
    fn class_limits_on_errors_utilisation_and_free_capacity() {
        let cfg = GateConfig::default();
        let s = flat(30.0, THREE_AM);
        let mut i = input(&s, THREE_AM);
        i.error_rate = 0.02;
        i.gpu_util = 0.8;
        i.free_capacity = 0.2;
        let v = evaluate(&cfg, UpdateClass::Routine, &i);
        assert_eq!(
            v.failed,
            vec!["error_rate", "gpu_utilisation", "free_capacity"]
        );
        // Emergency tolerates all three.
        assert!(evaluate(&cfg, UpdateClass::Emergency, &i).open);
        assert_eq!(
            UpdateClass::CapacityExpansion.limits().max_disruption_pct,
            5.0
        );
    }

    #[test]
    fn a_reading_that_is_not_a_number_never_opens_the_gate() {
        let cfg = GateConfig::default();
        let s = flat(5.0, THREE_AM);
        let mut nan_qps = s.clone();
        nan_qps.push((THREE_AM, f64::NAN));
        let v = evaluate(&cfg, UpdateClass::Emergency, &input(&nan_qps, THREE_AM));
        assert!(!v.open);
        assert_eq!(v.failed, vec!["unreadable"]);
        assert!(v.reason.contains("QPS samples"), "{}", v.reason);
        for field in 0..3 {
            let mut i = input(&s, THREE_AM);
            match field {
                0 => i.error_rate = f64::NAN,
                1 => i.gpu_util = f64::NAN,
                _ => i.free_capacity = f64::INFINITY,
            }
            let v = evaluate(&cfg, UpdateClass::Emergency, &i);
            assert!(
                !v.open && v.failed.contains(&"unreadable".to_string()),
                "{v:?}"
            );
        }
        assert!(evaluate(&cfg, UpdateClass::Emergency, &input(&s, THREE_AM)).open);
    }

    #[test]
    fn qps_scale_scales_every_threshold() {
        let cfg = GateConfig {
            qps_scale: 0.1,
            ..Default::default()
        };
        let s = flat(7.0, THREE_AM);
        let v = evaluate(&cfg, UpdateClass::Emergency, &input(&s, THREE_AM));
        assert_eq!(v.level, QpsLevel::Caution);
        assert!(GateConfig {
            safe_qps: 300.0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
