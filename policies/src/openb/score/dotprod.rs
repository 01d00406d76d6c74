//! DotProd (Tetris-style alignment) with the paper's settings: GPU dimensions merged into one
//! (total free milli-GPU), both vectors normalised by the largest node (128 CPUs, 8 GPUs).
//! A larger dot product of free and asked resources means a worse node: score = 100·(1 − dot/2).

use super::{MAX_NODE_SCORE, MAX_SPEC_CPU, MAX_SPEC_GPU};
use crate::framework::ScorePlugin;
use crate::openb::model::{OpenbNode, OpenbPod};

#[derive(Debug, Default, Clone, Copy)]
pub struct DotProductScore;

impl DotProductScore {
    pub fn raw(pod: &OpenbPod, node: &OpenbNode) -> i64 {
        if node.cpu_left < pod.cpu_milli {
            return 0;
        }
        let gpu = MAX_SPEC_GPU as f64;
        let node_vec = [
            node.cpu_left as f64 / MAX_SPEC_CPU,
            node.gpu_left_total() as f64 / gpu,
        ];
        let pod_vec = [
            pod.cpu_milli as f64 / MAX_SPEC_CPU,
            pod.total_gpu_milli() as f64 / gpu,
        ];
        let mut dot = 0.0;
        for (a, b) in node_vec.iter().zip(pod_vec) {
            dot += a * b;
        }
        let score = 1.0 - dot / 2.0;
        (MAX_NODE_SCORE as f64 * score) as i64
    }
}

impl DotProductScore {
    /// The registered name ([`crate::registry::openb`]).
    pub const NAME: &'static str = "DotProductScore";
}

impl ScorePlugin<OpenbNode, OpenbPod> for DotProductScore {
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
    fn emptier_nodes_score_lower() {
        let full = OpenbNode::new("a", 96000, 1, 8, Some(0));
        let mut used = full.clone();
        used.cpu_left = 16000;
        used.gpu_left = [0, 0, 0, 0, 0, 0, 1000, 1000];
        let p = OpenbPod::new("p", 8000, 1, 1, 1000, GpuSpec::Any, "");
        // full: dot = 0.75*0.0625 + 1*0.125 = 0.171875 → 100*(1-0.0859375) = 91
        assert_eq!(DotProductScore::raw(&p, &full), 91);
        assert!(DotProductScore::raw(&p, &used) > 91);
    }
}
