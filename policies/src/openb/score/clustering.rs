//! GpuClustering: keep pods with the same GPU shape together. Bands of 25 points: a node that
//! hosts only this pod's shape (75..100), hosts it among others (50..75), is empty of GPU pods
//! (25..50), hosts only other shapes (0..25); within a band, fuller nodes score higher.
//! CPU-only pods get 0 everywhere.

use super::{MAX_NODE_SCORE, MAX_SPEC_GPU};
use crate::framework::ScorePlugin;
use crate::openb::model::{OpenbNode, OpenbPod};

#[derive(Debug, Default, Clone, Copy)]
pub struct GpuClusteringScore;

impl GpuClusteringScore {
    pub fn raw(pod: &OpenbPod, node: &OpenbNode) -> i64 {
        let Some(tag) = pod.affinity_tag() else {
            return 0;
        };
        let fill =
            MAX_NODE_SCORE / 4 * (MAX_SPEC_GPU - node.gpu_left_total() as i64) / MAX_SPEC_GPU;
        let kinds = node.affinity_kinds();
        let band = if node.affinity[tag.min(node.affinity.len() - 1)] > 0 {
            if kinds == 1 {
                3
            } else {
                2
            }
        } else if kinds == 0 {
            1
        } else {
            0
        };
        fill + MAX_NODE_SCORE * band / 4
    }
}

impl GpuClusteringScore {
    /// The registered name ([`crate::registry::openb`]).
    pub const NAME: &'static str = "GpuClusteringScore";
}

impl ScorePlugin<OpenbNode, OpenbPod> for GpuClusteringScore {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn score(&mut self, pod: &OpenbPod, node: &OpenbNode) -> f64 {
        Self::raw(pod, node) as f64
    }

    fn normalize(&self, scores: &mut [f64]) {
        super::keep_as_is(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openb::model::GpuSpec;

    #[test]
    fn bands_follow_the_shapes_on_the_node() {
        let share = OpenbPod::new("s", 100, 1, 1, 500, GpuSpec::Any, "");
        let whole = OpenbPod::new("w", 100, 1, 1, 1000, GpuSpec::Any, "");
        let mut n = OpenbNode::new("n", 96000, 1000, 8, Some(0));
        assert_eq!(GpuClusteringScore::raw(&share, &n), 25);
        n.bind(&share, 1).unwrap();
        // 7500 free: 25*(8000-7500)/8000 = 1 → 76
        assert_eq!(GpuClusteringScore::raw(&share, &n), 76);
        assert_eq!(GpuClusteringScore::raw(&whole, &n), 1);
        n.bind(&whole, 2).unwrap();
        assert_eq!(GpuClusteringScore::raw(&share, &n), 54);
        let cpu = OpenbPod::new("c", 100, 1, 0, 0, GpuSpec::Any, "");
        assert_eq!(GpuClusteringScore::raw(&cpu, &n), 0);
    }
}
