//! GpuPacking: prefer, in order, GPUs already shared (score 50..100, fuller GPUs higher), then
//! free GPUs on a used node (33..50), then a wholly free node (0..33). CPU-only pods get 0.

use super::MAX_NODE_SCORE;
use crate::framework::ScorePlugin;
use crate::openb::model::{OpenbNode, OpenbPod, MILLI};

#[derive(Debug, Default, Clone, Copy)]
pub struct GpuPackingScore;

impl GpuPackingScore {
    pub fn raw(pod: &OpenbPod, node: &OpenbNode) -> i64 {
        if !pod.wants_gpu() {
            return 0;
        }
        let free = node.fully_free_gpus() as i64;
        if free == node.num_gpus as i64 {
            return (MAX_NODE_SCORE / 3 - free).max(free);
        }
        let gpus = node.gpus();
        let mut order: Vec<usize> = (0..gpus.len()).collect();
        order.sort_by_key(|&i| gpus[i]); // stable: least free first
        let mut need = pod.num_gpu as usize;
        let (mut whole_used, mut free_ratio_sum) = (0i64, 0i64);
        for i in order {
            if need == 0 {
                break;
            }
            if gpus[i] as u32 >= pod.gpu_milli {
                need -= 1;
                free_ratio_sum += gpus[i] as i64 * 100 / MILLI as i64;
                if gpus[i] as u32 == MILLI {
                    whole_used += 1;
                }
            }
        }
        if need != 0 {
            return 0;
        }
        if whole_used > 0 {
            return (MAX_NODE_SCORE / 2 - whole_used).max(MAX_NODE_SCORE / 3);
        }
        (MAX_NODE_SCORE - free_ratio_sum / 10).max(MAX_NODE_SCORE / 2)
    }
}

impl GpuPackingScore {
    /// The registered name ([`crate::registry::openb`]).
    pub const NAME: &'static str = "GpuPackingScore";
}

impl ScorePlugin<OpenbNode, OpenbPod> for GpuPackingScore {
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
    fn shared_gpus_beat_used_nodes_beat_free_nodes() {
        let p = OpenbPod::new("p", 100, 1, 1, 300, GpuSpec::Any, "");
        let free = OpenbNode::new("f", 96000, 1000, 8, Some(0));
        assert_eq!(GpuPackingScore::raw(&p, &free), 25);
        let mut used = free.clone();
        used.gpu_left[0] = 0;
        assert_eq!(GpuPackingScore::raw(&p, &used), 49);
        let mut shared = free.clone();
        shared.gpu_left[0] = 400;
        // 400*100/1000 = 40 → 100 - 4 = 96
        assert_eq!(GpuPackingScore::raw(&p, &shared), 96);
    }
}
