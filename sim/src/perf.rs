//! The performance and power model: how fast a replica serves a request on a given GPU model and
//! share, and how many watts a GPU draws for the work it delivers.
//!
//! Defaults come from measurements on a real H100 (`shared/calibration/h100-sharing-2026-11-23.md`):
//! * an MPS client capped at p % of threads, running alone, gets 32 % (p = 25) and 57 % (p = 50)
//!   of full throughput: the cap limits SMs, and one client rarely fills every SM;
//! * co-running MPS clients share compute almost losslessly: −0.1 % with 2 clients, −2.7 % with
//!   4 clients of 25 %, i.e. about 0.9 % per extra client;
//! * time-slicing 2 processes loses 9.5 % to context switches;
//! * power follows delivered work: 413 W at 32 %, 562 W at 57 %, ~697 W at 100 %, 76 W idle.
//!
//! Across GPU models a request's demand (milliseconds on an exclusive H100) is divided by the
//! model's `relative_speed` (default: memory-bandwidth ratio, see `gpusched_policies::gpu`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerfConfig {
    /// (thread cap %, fraction of full throughput) for an MPS client running alone.
    pub mps_alone_curve: Vec<(f64, f64)>,
    /// Throughput lost per extra co-running MPS client.
    pub mps_loss_per_extra_client: f64,
    /// Throughput lost when two or more time-sliced processes share a GPU.
    pub timeslice_loss: f64,
    /// (delivered work fraction, fraction of the idle→TDP range) for power.
    pub power_curve: Vec<(f64, f64)>,
    /// Each extra concurrent request on a replica slows every request on it by this fraction
    /// (continuous batching: throughput grows sub-linearly with the batch).
    pub batch_slowdown: f64,
}

impl Default for PerfConfig {
    fn default() -> Self {
        Self {
            mps_alone_curve: vec![(0.0, 0.0), (25.0, 0.32), (50.0, 0.57), (100.0, 1.0)],
            mps_loss_per_extra_client: 0.009,
            timeslice_loss: 0.095,
            power_curve: vec![
                (0.0, 0.0),
                (0.32, (413.0 - 76.0) / (697.0 - 76.0)),
                (0.57, (562.0 - 76.0) / (697.0 - 76.0)),
                (1.0, 1.0),
            ],
            batch_slowdown: 0.10,
        }
    }
}

/// Piecewise-linear interpolation through sorted points, clamped at both ends.
pub fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    match points {
        [] => x,
        [(_, y)] => *y,
        _ => {
            if x <= points[0].0 {
                return points[0].1;
            }
            for w in points.windows(2) {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                if x <= x1 {
                    return if x1 > x0 {
                        y0 + (y1 - y0) * (x - x0) / (x1 - x0)
                    } else {
                        y1
                    };
                }
            }
            points[points.len() - 1].1
        }
    }
}

impl PerfConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, pts) in [
            ("mps_alone_curve", &self.mps_alone_curve),
            ("power_curve", &self.power_curve),
        ] {
            if pts.is_empty() || pts.windows(2).any(|w| w[1].0 < w[0].0) {
                return Err(format!(
                    "perf.{name} must be a non-empty list of [x, y] points with x ascending"
                ));
            }
        }
        for (name, v) in [
            ("mps_loss_per_extra_client", self.mps_loss_per_extra_client),
            ("timeslice_loss", self.timeslice_loss),
            ("batch_slowdown", self.batch_slowdown),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("perf.{name} = {v} must be within 0..1"));
            }
        }
        Ok(())
    }

    /// Share of full GPU throughput an MPS client capped at `pct` gets.
    /// `busy_share_pct` is the sum of caps of all busy clients (this one included) and `busy`
    /// their count.
    pub fn mps_effective(&self, pct: u8, busy_share_pct: u32, busy: u32) -> f64 {
        let alone = interpolate(&self.mps_alone_curve, pct as f64).max(1e-3);
        if busy <= 1 {
            return alone;
        }
        let loss = 1.0 - self.mps_loss_per_extra_client * (busy - 1) as f64;
        let contended = pct as f64 / (busy_share_pct.max(100) as f64) * loss.max(0.0);
        contended.min(alone).max(1e-3)
    }

    /// Share of a time-sliced GPU one of `busy` busy processes gets.
    pub fn timeslice_effective(&self, busy: u32) -> f64 {
        if busy <= 1 {
            1.0
        } else {
            (1.0 - self.timeslice_loss) / busy as f64
        }
    }

    /// Fraction of the GPU's work delivered by busy MPS clients whose caps add to `busy_share_pct`.
    pub fn mps_delivered(&self, busy_share_pct: u32, busy: u32) -> f64 {
        if busy == 0 {
            return 0.0;
        }
        let loss = 1.0 - self.mps_loss_per_extra_client * (busy - 1) as f64;
        (interpolate(&self.mps_alone_curve, busy_share_pct.min(100) as f64) * loss).clamp(0.0, 1.0)
    }

    /// Watts for a GPU delivering `work` (0..=1) of its full throughput.
    pub fn power_w(&self, idle_w: f64, tdp_w: f64, work: f64) -> f64 {
        idle_w + (tdp_w - idle_w) * interpolate(&self.power_curve, work.clamp(0.0, 1.0))
    }

    /// Multiplier on service time when `k` requests run together on one replica.
    pub fn batch_factor(&self, k: u32) -> f64 {
        1.0 + self.batch_slowdown * (k.max(1) - 1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_points_are_reproduced() {
        let p = PerfConfig::default();
        assert!((p.mps_effective(25, 25, 1) - 0.32).abs() < 1e-9);
        assert!((p.mps_effective(50, 50, 1) - 0.57).abs() < 1e-9);
        // 4 × 25 % together: 649.5 / 667.5 = 0.973 total, i.e. ~0.243 each.
        let each = p.mps_effective(25, 100, 4);
        assert!((each * 4.0 - 0.973).abs() < 0.01, "{each}");
        // Two time-sliced processes: 604 / 667.5 = 0.905 total.
        assert!((p.timeslice_effective(2) * 2.0 - 0.905).abs() < 1e-9);
        assert!((p.power_w(76.0, 697.0, 0.32) - 413.0).abs() < 1e-6);
        assert!((p.power_w(76.0, 697.0, 0.57) - 562.0).abs() < 1e-6);
        assert!((p.power_w(76.0, 697.0, 0.0) - 76.0).abs() < 1e-9);
    }

    #[test]
    fn uncontended_caps_below_full_gpu_do_not_compete() {
        let p = PerfConfig::default();
        // 50 % + 25 % busy leaves idle SMs: the 50 % client keeps at least its cap.
        let e = p.mps_effective(50, 75, 2);
        assert!(e >= 0.49 && e <= 0.57, "{e}");
    }
}
