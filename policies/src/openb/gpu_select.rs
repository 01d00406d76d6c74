//! The GPU-share step (the upstream's Open-Gpu-Share Reserve): once a node is chosen, which of its
//! GPUs the pod gets. Whole-GPU pods take the first fully free GPUs by index; a GPU-share pod
//! goes to the tightest GPU that fits (`best`), a random one that fits (`random`, the Random
//! policy's setting), or the one FGD's score prefers (`FGD`).

use super::frag::FragModel;
use super::model::{GpuMask, OpenbNode, OpenbPod, MAX_GPUS, MILLI};
use rand::{Rng, RngExt};
use serde::Serialize;

/// How a GPU-share pod's GPU is picked inside the chosen node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GpuSelMethod {
    /// Tightest fit: least free milli that still fits, lowest index on ties.
    BestFit,
    /// Uniformly among the GPUs that fit.
    Random,
    /// The GPU whose use lowers the node's fragmentation most (FGD's own choice).
    Fgd,
}

/// FGD's node score for a fragmentation change, as the upstream truncates it:
/// `int(sigmoid((before − after) / 1000) × 100)`.
#[inline]
pub fn fgd_score(before: f64, after: f64) -> i64 {
    let x = (before - after) / 1000.0;
    (100.0 / (1.0 + (-x).exp())) as i64
}

/// The first `num_gpu` fully free GPUs by index (the upstream's `AllocateExclusiveGpuId`); for
/// the rare multi-GPU pod with a partial share, the first GPUs with that share free.
pub fn exclusive_gpus(pod: &OpenbPod, node: &OpenbNode) -> Option<GpuMask> {
    let need = if pod.gpu_milli >= MILLI {
        MILLI
    } else {
        pod.gpu_milli
    };
    let mut mask: GpuMask = 0;
    let mut left = pod.num_gpu as u32;
    for (i, &g) in node.gpus().iter().enumerate() {
        if left == 0 {
            break;
        }
        if g as u32 >= need {
            mask |= 1 << i;
            left -= 1;
        }
    }
    (left == 0).then_some(mask)
}

/// FGD's evaluation of `pod` on `node`: the score and the GPUs it implies. For a GPU-share pod
/// every GPU that fits is tried and the best score wins (lowest index on ties); any other pod is
/// evaluated on the node after packing it onto the least-free GPUs that fit, as upstream.
/// `None` when the pod cannot be placed on the node's GPUs.
pub fn fgd_choice(frag: &FragModel, pod: &OpenbPod, node: &OpenbNode) -> Option<(i64, GpuMask)> {
    let before = frag.node_frag(node);
    let cpu_after = node.cpu_left.saturating_sub(pod.cpu_milli);
    let mut gpus = [0u16; MAX_GPUS];
    let n = node.num_gpus as usize;
    gpus[..n].copy_from_slice(node.gpus());
    if pod.is_gpu_share() {
        let mut best: Option<(i64, GpuMask)> = None;
        for i in 0..n {
            if (node.gpu_left[i] as u32) < pod.gpu_milli {
                continue;
            }
            gpus[i] -= pod.gpu_milli as u16;
            let s = fgd_score(before, frag.frag(node.model, cpu_after, &gpus[..n]));
            gpus[i] += pod.gpu_milli as u16;
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, 1 << i));
            }
        }
        return best;
    }
    let mask = if pod.wants_gpu() {
        exclusive_gpus(pod, node)?
    } else {
        0
    };
    if pod.wants_gpu() {
        // Upstream `Sub`: ascending free milli (stable), take each GPU that fits until done.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| gpus[i]);
        let mut need = pod.num_gpu;
        for i in order {
            if need == 0 {
                break;
            }
            if gpus[i] as u32 >= pod.gpu_milli {
                gpus[i] -= pod.gpu_milli as u16;
                need -= 1;
            }
        }
    }
    Some((
        fgd_score(before, frag.frag(node.model, cpu_after, &gpus[..n])),
        mask,
    ))
}

/// The GPUs `pod` gets on `node` under `method`; `Some(0)` for CPU-only pods, `None` when the
/// node's GPUs cannot take the pod.
pub fn select_gpus<R: Rng + ?Sized>(
    method: GpuSelMethod,
    pod: &OpenbPod,
    node: &OpenbNode,
    frag: &FragModel,
    rng: &mut R,
) -> Option<GpuMask> {
    if !pod.wants_gpu() {
        return Some(0);
    }
    if !pod.is_gpu_share() {
        return exclusive_gpus(pod, node);
    }
    let fits = |i: usize| node.gpu_left[i] as u32 >= pod.gpu_milli;
    match method {
        GpuSelMethod::BestFit => (0..node.num_gpus as usize)
            .filter(|&i| fits(i))
            .min_by_key(|&i| (node.gpu_left[i], i))
            .map(|i| 1 << i),
        GpuSelMethod::Random => {
            // Reservoir sampling over the GPUs that fit, as upstream.
            let mut pick = None;
            for (k, i) in (0..node.num_gpus as usize).filter(|&i| fits(i)).enumerate() {
                let seen = k as u32 + 1;
                if rng.random_range(0..seen) == 0 {
                    pick = Some(1 << i);
                }
            }
            pick
        }
        GpuSelMethod::Fgd => fgd_choice(frag, pod, node).map(|(_, m)| m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openb::model::GpuSpec;
    use crate::openb::typical::TypicalPod;
    use rand::SeedableRng;

    fn node(gpus: &[u16]) -> OpenbNode {
        let mut n = OpenbNode::new("n", 32000, 1000, gpus.len() as u8, Some(0));
        n.gpu_left[..gpus.len()].copy_from_slice(gpus);
        n
    }

    #[test]
    fn sigmoid_score_is_truncated_like_upstream() {
        assert_eq!(fgd_score(1000.0, 1000.0), 50);
        assert_eq!(fgd_score(0.0, 1000.0), 26); // 100/(1+e) = 26.89
        assert_eq!(fgd_score(1000.0, 0.0), 73); // 73.10
    }

    #[test]
    fn share_pods_go_to_the_tightest_gpu_under_best_fit() {
        let n = node(&[1000, 600, 500, 600]);
        let p = OpenbPod::new("p", 100, 1, 1, 500, GpuSpec::Any, "");
        let frag = FragModel::new(&[]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            select_gpus(GpuSelMethod::BestFit, &p, &n, &frag, &mut rng),
            Some(0b0100)
        );
        let w = OpenbPod::new("w", 100, 1, 2, 1000, GpuSpec::Any, "");
        assert_eq!(
            select_gpus(GpuSelMethod::BestFit, &w, &n, &frag, &mut rng),
            None
        );
        let one = OpenbPod::new("o", 100, 1, 1, 1000, GpuSpec::Any, "");
        assert_eq!(
            select_gpus(GpuSelMethod::Random, &one, &n, &frag, &mut rng),
            Some(0b0001)
        );
        for _ in 0..20 {
            let m = select_gpus(GpuSelMethod::Random, &p, &n, &frag, &mut rng).unwrap();
            assert!(m.count_ones() == 1 && (n.gpu_left[m.trailing_zeros() as usize] >= 500));
        }
    }

    #[test]
    fn fgd_puts_a_share_pod_where_it_leaves_least_fragment() {
        // Typical pods: all want 500m. GPU 0 has 1000 free, GPU 1 has 500 free: placing a
        // 500m pod on GPU 1 keeps GPU 0 whole (no fragment either way), on GPU 0 leaves
        // two 500m halves (still usable). A 600m typical pod distinguishes them.
        let t = TypicalPod {
            cpu_milli: 100,
            gpu_milli: 600,
            num_gpu: 1,
            spec: GpuSpec::Any,
            spec_label: String::new(),
            freq: 1.0,
        };
        let frag = FragModel::new(&[t]);
        let n = node(&[1000, 500]);
        let p = OpenbPod::new("p", 100, 1, 1, 500, GpuSpec::Any, "");
        let (score, mask) = fgd_choice(&frag, &p, &n).unwrap();
        assert_eq!(mask, 0b10, "filling the 500m GPU removes a fragment");
        assert!(score > 50);
    }
}
