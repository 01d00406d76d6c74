//! BestFit: the node left with the least (CPU, GPU) after placing the pod, each normalised by
//! the largest node and weighted 0.5; 100·(1 − leftover), then min-max normalised over the
//! feasible nodes as upstream.

use super::{MAX_NODE_SCORE, MAX_SPEC_CPU, MAX_SPEC_GPU};
use crate::framework::ScorePlugin;
use crate::openb::model::{OpenbNode, OpenbPod};

#[derive(Debug, Default, Clone, Copy)]
pub struct BestFitScore;

impl BestFitScore {
    pub fn raw(pod: &OpenbPod, node: &OpenbNode) -> i64 {
        let free = [node.cpu_left as f64, node.gpu_left_total() as f64];
        let req = [pod.cpu_milli as f64, pod.total_gpu_milli() as f64];
        let max = [MAX_SPEC_CPU, MAX_SPEC_GPU as f64];
        let mut score = 0.0;
        for i in 0..2 {
            if free[i] < req[i] {
                return 0;
            }
            score += (free[i] - req[i]) / max[i] * 0.5;
        }
        ((1.0 - score) * MAX_NODE_SCORE as f64) as i64
    }
}

impl BestFitScore {
    /// The registered name ([`crate::registry::openb`]).
    pub const NAME: &'static str = "BestFitScore";
}

impl ScorePlugin<OpenbNode, OpenbPod> for BestFitScore {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn score(&mut self, pod: &OpenbPod, node: &OpenbNode) -> f64 {
        Self::raw(pod, node) as f64
    }

    fn normalize(&self, scores: &mut [f64]) {
        super::normalize_int_min_max(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openb::model::GpuSpec;

    #[test]
    fn tighter_nodes_score_higher() {
        let p = OpenbPod::new("p", 8000, 1, 1, 1000, GpuSpec::Any, "");
        let big = OpenbNode::new("b", 96000, 1, 8, Some(0));
        let small = OpenbNode::new("s", 8000, 1, 1, Some(0));
        // big: 0.5*88/128 + 0.5*7/8 = 0.34375+0.4375 = 0.78125 → 21
        assert_eq!(BestFitScore::raw(&p, &big), 21);
        assert_eq!(BestFitScore::raw(&p, &small), 100);
    }
}
