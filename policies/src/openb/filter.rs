//! The two Filter plugins the paper's scheduler profile runs: kube's NodeResourcesFit (pod
//! count, CPU, memory) and the GPU-share filter (Open-Gpu-Share: GPU model constraint and enough
//! GPUs with the asked share free).

use super::model::{OpenbNode, OpenbPod};
use crate::framework::FilterPlugin;

/// kube's NodeResourcesFit on the resources openb pods ask for.
#[derive(Debug, Default, Clone, Copy)]
pub struct ResourcesFit;

impl ResourcesFit {
    /// The registered name ([`crate::registry::openb`]).
    pub const NAME: &'static str = "NodeResourcesFit";
}

impl FilterPlugin<OpenbNode, OpenbPod> for ResourcesFit {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn filter(&self, pod: &OpenbPod, node: &OpenbNode) -> Result<(), String> {
        if node.pods >= node.max_pods {
            return Err(format!(
                "too many pods ({} of {})",
                node.pods, node.max_pods
            ));
        }
        if node.cpu_left < pod.cpu_milli {
            return Err(format!(
                "insufficient cpu: {}m free < {}m",
                node.cpu_left, pod.cpu_milli
            ));
        }
        if node.memory_left < pod.memory_mib {
            return Err(format!(
                "insufficient memory: {}Mi free < {}Mi",
                node.memory_left, pod.memory_mib
            ));
        }
        Ok(())
    }

    fn passes(&self, pod: &OpenbPod, node: &OpenbNode) -> bool {
        node.pods < node.max_pods
            && node.cpu_left >= pod.cpu_milli
            && node.memory_left >= pod.memory_mib
    }
}

/// The GPU-share filter: a GPU pod needs a GPU node of an allowed model with `num_gpu` GPUs that
/// each have `gpu_milli` free. CPU-only pods pass.
#[derive(Debug, Default, Clone, Copy)]
pub struct GpuShareFilter;

impl GpuShareFilter {
    /// The registered name ([`crate::registry::openb`]).
    pub const NAME: &'static str = "Open-Gpu-Share";
}

impl FilterPlugin<OpenbNode, OpenbPod> for GpuShareFilter {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn filter(&self, pod: &OpenbPod, node: &OpenbNode) -> Result<(), String> {
        if !pod.wants_gpu() {
            return Ok(());
        }
        if node.num_gpus == 0 {
            return Err("node has no GPU".into());
        }
        if !pod.spec.allows(node.model) {
            return Err(format!(
                "GPU model not in the pod's gpu_spec ({})",
                pod.spec_label
            ));
        }
        let fit = node.gpus_fitting(pod.gpu_milli);
        if fit < pod.num_gpu as usize {
            return Err(format!(
                "{} GPUs with {}m free < {} asked",
                fit, pod.gpu_milli, pod.num_gpu
            ));
        }
        Ok(())
    }

    fn passes(&self, pod: &OpenbPod, node: &OpenbNode) -> bool {
        !pod.wants_gpu()
            || (node.num_gpus > 0
                && pod.spec.allows(node.model)
                && node.gpus_fitting(pod.gpu_milli) >= pod.num_gpu as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openb::model::GpuSpec;

    #[test]
    fn filters_agree_with_their_fast_paths() {
        let mut node = OpenbNode::new("n", 8000, 1000, 2, Some(1));
        node.gpu_left = [1000, 400, 0, 0, 0, 0, 0, 0];
        let pods = [
            OpenbPod::new("cpu", 8000, 1000, 0, 0, GpuSpec::Any, ""),
            OpenbPod::new("cpu-big", 9000, 10, 0, 0, GpuSpec::Any, ""),
            OpenbPod::new("share", 100, 10, 1, 500, GpuSpec::Any, ""),
            OpenbPod::new("two", 100, 10, 2, 1000, GpuSpec::Any, ""),
            OpenbPod::new("spec", 100, 10, 1, 100, GpuSpec::OneOf(1 << 1), "T4"),
            OpenbPod::new("spec-no", 100, 10, 1, 100, GpuSpec::OneOf(1 << 3), "A10"),
        ];
        let want = [true, false, true, false, true, false];
        for (p, w) in pods.iter().zip(want) {
            let ok =
                ResourcesFit.filter(p, &node).is_ok() && GpuShareFilter.filter(p, &node).is_ok();
            assert_eq!(ok, w, "{}", p.name);
            assert_eq!(
                ResourcesFit.passes(p, &node) && GpuShareFilter.passes(p, &node),
                w
            );
        }
    }
}
