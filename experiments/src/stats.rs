//! Mean and a Student-t 95 % confidence interval over seeds.
//!
//! Seeds are independent replications of the same experiment, so the interval for the mean is
//! `mean ± t(0.975, n−1) · s / √n`. The t quantile comes from `statrs` (0.18, built without its
//! nalgebra and rand features, so it adds two small crates; 0.19 would raise the MSRV to 1.89).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// A metric over seeds: the mean and the half-width of its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    /// Half-width of the 95 % interval (0 with a single seed: no spread can be estimated).
    pub ci95: f64,
    pub std: f64,
    pub n: usize,
    pub min: f64,
    pub max: f64,
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (`df` ≥ 1).
pub fn t975(df: usize) -> f64 {
    StudentsT::new(0.0, 1.0, df.max(1) as f64)
        .map(|t| t.inverse_cdf(0.975))
        .unwrap_or(f64::NAN)
}

impl Estimate {
    /// The estimate from per-seed values; `None` for no values.
    pub fn from_values(xs: &[f64]) -> Option<Estimate> {
        let n = xs.len();
        if n == 0 {
            return None;
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let (std, ci95) = if n > 1 {
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let std = var.sqrt();
            (std, t975(n - 1) * std / (n as f64).sqrt())
        } else {
            (0.0, 0.0)
        };
        Some(Estimate {
            mean,
            ci95,
            std,
            n,
            min: xs.iter().copied().fold(f64::INFINITY, f64::min),
            max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_tables() {
        // Published two-sided 95 % critical values.
        for (df, t) in [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)] {
            assert!((t975(df) - t).abs() < 1e-3, "df {df}: {}", t975(df));
        }
    }

    #[test]
    fn interval_of_known_sample() {
        let e = Estimate::from_values(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(e.mean, 3.0);
        // s = sqrt(2.5), t(4) = 2.776 → 2.776 * 1.5811 / 2.2361 = 1.963
        assert!((e.ci95 - 1.963).abs() < 1e-3, "{}", e.ci95);
        assert_eq!(Estimate::from_values(&[7.0]).unwrap().ci95, 0.0);
        assert!(Estimate::from_values(&[]).is_none());
    }
}
