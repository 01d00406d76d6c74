//! FGD's "typical pods": the target workload's distribution of pod shapes, taken from the pod
//! list itself. Shapes are counted, sorted by popularity, and the most popular are kept until
//! they cover the popularity threshold (95 % in the paper's runs, growing the list one shape at a
//! time), then renormalised so that their frequencies sum to 1.

use super::model::{GpuSpec, OpenbPod};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::HashMap;

/// kube's default CPU request for a container that asks for none (GetNonzeroRequests): the
/// upstream keys typical pods by the non-zero CPU.
pub const DEFAULT_MILLI_CPU_REQUEST: u64 = 100;

/// The knobs of the upstream's `typicalPodsConfig`, with the values the paper's runs used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypicalPodsConfig {
    pub involve_cpu_pods: bool,
    /// Percent of (weighted) pods the kept shapes must cover.
    pub popularity_threshold: f64,
    /// How many shapes are added per step while growing the list.
    pub increase_step: usize,
    /// Extra weight per GPU of whole-GPU pods (0 = plain counts).
    pub gpu_res_weight: f64,
}

impl Default for TypicalPodsConfig {
    fn default() -> Self {
        Self {
            involve_cpu_pods: true,
            popularity_threshold: 95.0,
            increase_step: 1,
            gpu_res_weight: 0.0,
        }
    }
}

/// One typical pod shape and its frequency (0..=1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypicalPod {
    pub cpu_milli: u64,
    pub gpu_milli: u32,
    pub num_gpu: u8,
    pub spec: GpuSpec,
    pub spec_label: String,
    pub freq: f64,
}

impl TypicalPod {
    /// The upstream's `PodResource.Less`: cpu, then gpu share, then gpu count, then model label.
    fn resource_cmp(&self, other: &Self) -> Ordering {
        self.cpu_milli
            .cmp(&other.cpu_milli)
            .then(self.gpu_milli.cmp(&other.gpu_milli))
            .then(self.num_gpu.cmp(&other.num_gpu))
            .then(self.spec_label.cmp(&other.spec_label))
    }
}

/// The typical-pod distribution of `pods` under `cfg`.
pub fn typical_pods(pods: &[OpenbPod], cfg: &TypicalPodsConfig) -> Vec<TypicalPod> {
    let mut counts: HashMap<(u64, u32, u8, &str), (f64, GpuSpec)> = HashMap::new();
    let mut total = 0.0;
    for p in pods {
        if !cfg.involve_cpu_pods && p.num_gpu == 0 {
            continue;
        }
        let cpu = if p.cpu_milli == 0 {
            DEFAULT_MILLI_CPU_REQUEST
        } else {
            p.cpu_milli
        };
        let weight = if cfg.gpu_res_weight > 0.0 && p.gpu_milli == super::model::MILLI {
            1.0 + p.num_gpu as f64 * cfg.gpu_res_weight
        } else {
            1.0
        };
        counts
            .entry((cpu, p.gpu_milli, p.num_gpu, p.spec_label.as_str()))
            .or_insert((0.0, p.spec))
            .0 += weight;
        total += weight;
    }
    let mut list: Vec<TypicalPod> = counts
        .into_iter()
        .map(
            |((cpu_milli, gpu_milli, num_gpu, label), (count, spec))| TypicalPod {
                cpu_milli,
                gpu_milli,
                num_gpu,
                spec,
                spec_label: label.to_string(),
                freq: count,
            },
        )
        .collect();
    // Most popular first; equal counts in reverse resource order (the upstream sorts with
    // sort.Reverse over "count, then resource" ascending).
    list.sort_by(|a, b| b.freq.total_cmp(&a.freq).then_with(|| b.resource_cmp(a)));
    if list.is_empty() || total <= 0.0 {
        return list;
    }

    let expected = cfg.popularity_threshold * total / 100.0;
    let step = cfg.increase_step.max(1);
    let (mut kept, mut cum) = (0usize, 0.0);
    while cum < expected && kept < list.len() {
        let upto = (kept + step).min(list.len());
        while kept < upto {
            cum += list[kept].freq;
            kept += 1;
        }
    }
    if kept >= list.len() {
        list.iter_mut().for_each(|t| t.freq /= total);
        return list;
    }
    list.truncate(kept);
    // freq/total renormalised by the covered share cum/total is freq/cum.
    list.iter_mut()
        .for_each(|t| t.freq = (t.freq / total) / (cum / total));
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu: u64, n: u8, milli: u32) -> OpenbPod {
        OpenbPod::new("p", cpu, 1, n, milli, GpuSpec::Any, "")
    }

    #[test]
    fn keeps_the_popular_shapes_up_to_the_threshold_and_renormalises() {
        let mut pods = vec![];
        pods.extend((0..60).map(|_| pod(1000, 1, 1000)));
        pods.extend((0..36).map(|_| pod(2000, 1, 500)));
        pods.extend((0..4).map(|_| pod(0, 0, 0)));
        let t = typical_pods(&pods, &TypicalPodsConfig::default());
        assert_eq!(t.len(), 2, "60+36 = 96 % ≥ 95 %");
        assert!((t[0].freq - 60.0 / 96.0).abs() < 1e-12);
        assert!((t.iter().map(|t| t.freq).sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn ties_go_to_the_larger_resource_and_cpu_zero_counts_as_default() {
        let pods = vec![pod(0, 0, 0), pod(5000, 0, 0)];
        let t = typical_pods(&pods, &TypicalPodsConfig::default());
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].cpu_milli, 5000);
        assert_eq!(t[1].cpu_milli, DEFAULT_MILLI_CPU_REQUEST);
        assert!((t[0].freq - 0.5).abs() < 1e-12);
    }
}
