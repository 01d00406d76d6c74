//! FGD's GPU fragmentation of a node, measured against the typical-pod distribution (the
//! upstream's `NodeGpuShareFragAmountScore`):
//!
//! for each typical pod `p` with frequency `f`, the node's idle GPU milli counts as fragmented
//! (weighted by `f`) unless `p` fits the node: a CPU-only `p` never "uses" GPUs, so all idle GPU
//! is fragment for it; a `p` the node's GPU model is not allowed for, or that lacks CPU or enough
//! GPUs with `gpu_milli` free, sees all idle GPU as fragment; a `p` that fits sees only the GPUs
//! with less than its `gpu_milli` free as fragment. Memory plays no part, as upstream.
//!
//! Typical pods are grouped by their GPU shape so that one node is scored in a few dozen steps.

use super::model::{GpuSpec, ModelId, OpenbNode};
use super::typical::TypicalPod;

/// Typical pods sharing one GPU shape, with their CPU asks sorted for a prefix lookup.
#[derive(Debug, Clone)]
struct Group {
    gpu_milli: u32,
    num_gpu: usize,
    spec: GpuSpec,
    /// CPU asks ascending, and the cumulative frequency up to and including each.
    cpus: Vec<u64>,
    cum: Vec<f64>,
    freq: f64,
}

/// The fragmentation measure for one typical-pod distribution.
#[derive(Debug, Clone)]
pub struct FragModel {
    /// Total frequency of CPU-only typical pods: for them every idle GPU is a fragment.
    cpu_only: f64,
    groups: Vec<Group>,
    typical: Vec<TypicalPod>,
}

impl FragModel {
    pub fn new(typical: &[TypicalPod]) -> Self {
        let mut cpu_only = 0.0;
        let mut groups: Vec<Group> = Vec::new();
        for t in typical {
            if t.gpu_milli == 0 {
                cpu_only += t.freq;
                continue;
            }
            let g = match groups.iter_mut().find(|g| {
                g.gpu_milli == t.gpu_milli && g.num_gpu == t.num_gpu as usize && g.spec == t.spec
            }) {
                Some(g) => g,
                None => {
                    groups.push(Group {
                        gpu_milli: t.gpu_milli,
                        num_gpu: t.num_gpu as usize,
                        spec: t.spec,
                        cpus: vec![],
                        cum: vec![],
                        freq: 0.0,
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            g.cpus.push(t.cpu_milli);
            g.cum.push(t.freq);
            g.freq += t.freq;
        }
        for g in &mut groups {
            let mut pairs: Vec<(u64, f64)> =
                g.cpus.iter().copied().zip(g.cum.iter().copied()).collect();
            pairs.sort_by_key(|p| p.0);
            let mut acc = 0.0;
            g.cpus = pairs.iter().map(|p| p.0).collect();
            g.cum = pairs
                .iter()
                .map(|p| {
                    acc += p.1;
                    acc
                })
                .collect();
        }
        Self {
            cpu_only,
            groups,
            typical: typical.to_vec(),
        }
    }

    pub fn typical(&self) -> &[TypicalPod] {
        &self.typical
    }

    /// Fragmented milli-GPU of a node state (model, CPU left, free milli of each GPU).
    pub fn frag(&self, model: Option<ModelId>, cpu_left: u64, gpus: &[u16]) -> f64 {
        let total: u64 = gpus.iter().map(|&g| g as u64).sum();
        if total == 0 {
            return 0.0;
        }
        let total = total as f64;
        let mut frag = self.cpu_only * total;
        for g in &self.groups {
            if !g.spec.allows(model) {
                frag += g.freq * total;
                continue;
            }
            let (mut fit, mut small) = (0usize, 0u64);
            for &left in gpus {
                if left as u32 >= g.gpu_milli {
                    fit += 1;
                } else {
                    small += left as u64;
                }
            }
            if fit < g.num_gpu {
                frag += g.freq * total;
                continue;
            }
            // Pods of this shape with cpu <= cpu_left fit; the rest lack CPU.
            let n = g.cpus.partition_point(|&c| c <= cpu_left);
            let fitting = if n == 0 { 0.0 } else { g.cum[n - 1] };
            frag += fitting * small as f64 + (g.freq - fitting) * total;
        }
        frag
    }

    /// Fragmented milli-GPU of `node` as it stands.
    pub fn node_frag(&self, node: &OpenbNode) -> f64 {
        self.frag(node.model, node.cpu_left, node.gpus())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(cpu: u64, n: u8, milli: u32, freq: f64) -> TypicalPod {
        TypicalPod {
            cpu_milli: cpu,
            gpu_milli: milli,
            num_gpu: n,
            spec: GpuSpec::Any,
            spec_label: String::new(),
            freq,
        }
    }

    #[test]
    fn matches_the_per_pod_definition() {
        // 50 % CPU-only, 25 % half-GPU pods with 4 CPU, 25 % 2-GPU pods with 1 CPU.
        let m = FragModel::new(&[
            tp(1000, 0, 0, 0.5),
            tp(4000, 1, 500, 0.25),
            tp(1000, 2, 1000, 0.25),
        ]);
        // Two GPUs: 300 and 1000 free, 8 CPU left.
        // CPU-only: 0.5*1300; half-GPU fits (one GPU ≥ 500): 0.25*300; 2-GPU: only one full → 0.25*1300.
        let f = m.frag(Some(0), 8000, &[300, 1000]);
        assert!((f - (0.5 * 1300.0 + 0.25 * 300.0 + 0.25 * 1300.0)).abs() < 1e-9);
        // Lacking CPU for the half-GPU pod: all idle GPU is fragment.
        let f = m.frag(Some(0), 2000, &[300, 1000]);
        assert!((f - 1300.0).abs() < 1e-9);
        assert_eq!(m.frag(Some(0), 8000, &[0, 0]), 0.0);
    }

    #[test]
    fn models_the_pod_is_barred_from_are_all_fragment() {
        let t = TypicalPod {
            spec: GpuSpec::OneOf(0b10),
            ..tp(1000, 1, 1000, 1.0)
        };
        let m = FragModel::new(&[t]);
        assert_eq!(m.frag(Some(0), 8000, &[1000]), 1000.0);
        assert_eq!(m.frag(Some(1), 8000, &[1000]), 0.0);
    }
}
