//! The six policies of the FGD paper as Score plugins. Each reproduces the upstream's integer
//! score (0..=100, truncated as Go's `int64(...)` does, because the truncation decides ties) and
//! its normalisation: only BestFit normalises (integer min-max); the others are already on
//! 0..=100 and are left as they are.

mod bestfit;
mod clustering;
mod dotprod;
mod fgd;
mod packing;
mod random;

pub use bestfit::BestFitScore;
pub use clustering::GpuClusteringScore;
pub use dotprod::DotProductScore;
pub use fgd::FgdScore;
pub use packing::GpuPackingScore;
pub use random::RandomScore;

/// kube's MaxNodeScore.
pub const MAX_NODE_SCORE: i64 = 100;
/// The largest node the upstream normalises against: 128 CPUs, 8 GPUs.
pub const MAX_SPEC_CPU: f64 = 128_000.0;
pub const MAX_SPEC_GPU: i64 = 8000;

/// Scores that are already on 0..=100 pass through unchanged (no ScoreExtensions upstream).
pub(crate) fn keep_as_is(_: &mut [f64]) {}

/// The upstream's NormalizeScore (integer min-max onto 0..=100; all equal → 0).
pub(crate) fn normalize_int_min_max(scores: &mut [f64]) {
    let hi = scores.iter().fold(i64::MIN, |m, &s| m.max(s as i64));
    let lo = scores.iter().fold(i64::MAX, |m, &s| m.min(s as i64));
    let range = hi - lo;
    for s in scores.iter_mut() {
        *s = if range == 0 {
            0.0
        } else {
            (((*s as i64) - lo) * MAX_NODE_SCORE / range) as f64
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_min_max_floors_and_zeroes_flat_lists() {
        let mut v = vec![10.0, 13.0, 11.0];
        normalize_int_min_max(&mut v);
        assert_eq!(v, vec![0.0, 100.0, 33.0]);
        let mut flat = vec![7.0, 7.0];
        normalize_int_min_max(&mut flat);
        assert_eq!(flat, vec![0.0, 0.0]);
    }
}
