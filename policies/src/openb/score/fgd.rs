//! FGD (Fragmentation Gradient Descent): the node whose fragmentation, measured against the
//! typical pods, grows least (or shrinks most) when the pod lands there:
//! `int(sigmoid((frag_before − frag_after)/1000) × 100)`; for a GPU-share pod the best GPU of the
//! node counts.
//!
//! A node's score only changes when the node does, so the simulator builds the plugin with a
//! cache indexed by node position (`OpenbNode::idx`) and pod shape (`OpenbPod::kind`), checked
//! against `OpenbNode::version`. That turns the upstream's quadratic recomputation into work
//! proportional to the nodes that changed since a shape was last scheduled.

use crate::framework::ScorePlugin;
use crate::openb::frag::FragModel;
use crate::openb::gpu_select::fgd_choice;
use crate::openb::model::{OpenbNode, OpenbPod};
use std::sync::Arc;

#[derive(Clone, Copy)]
struct Entry {
    version: u64,
    score: i64,
}

pub struct FgdScore {
    frag: Arc<FragModel>,
    /// `cache[node.idx][pod.kind]`, used only when built with [`FgdScore::cached`].
    cache: Option<Vec<Vec<Entry>>>,
}

impl FgdScore {
    /// Uncached: safe for any node slice (e.g. `explain`).
    pub fn new(frag: Arc<FragModel>) -> Self {
        Self { frag, cache: None }
    }

    /// Cached by node position and pod kind. The caller guarantees that `idx` is unique per
    /// node and that every change to a node bumps its `version` (as `OpenbNode::bind` does).
    pub fn cached(frag: Arc<FragModel>) -> Self {
        Self {
            frag,
            cache: Some(Vec::new()),
        }
    }

    pub fn raw(frag: &FragModel, pod: &OpenbPod, node: &OpenbNode) -> i64 {
        fgd_choice(frag, pod, node).map_or(0, |(s, _)| s)
    }
}

impl FgdScore {
    /// The registered name ([`crate::registry::openb`]).
    pub const NAME: &'static str = "FGDScore";
}

impl ScorePlugin<OpenbNode, OpenbPod> for FgdScore {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn score(&mut self, pod: &OpenbPod, node: &OpenbNode) -> f64 {
        let frag = &self.frag;
        let Some(cache) = self.cache.as_mut().filter(|_| pod.kind != u32::MAX) else {
            return Self::raw(frag, pod, node) as f64;
        };
        let (n, k) = (node.idx as usize, pod.kind as usize);
        if cache.len() <= n {
            cache.resize_with(n + 1, Vec::new);
        }
        let row = &mut cache[n];
        if row.len() <= k {
            row.resize(
                k + 1,
                Entry {
                    version: u64::MAX,
                    score: 0,
                },
            );
        }
        let e = &mut row[k];
        if e.version != node.version {
            *e = Entry {
                version: node.version,
                score: Self::raw(frag, pod, node),
            };
        }
        e.score as f64
    }

    fn normalize(&self, scores: &mut [f64]) {
        super::keep_as_is(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openb::model::GpuSpec;
    use crate::openb::typical::TypicalPod;

    #[test]
    fn cache_follows_node_versions() {
        let t = TypicalPod {
            cpu_milli: 100,
            gpu_milli: 1000,
            num_gpu: 1,
            spec: GpuSpec::Any,
            spec_label: String::new(),
            freq: 1.0,
        };
        let frag = Arc::new(FragModel::new(&[t]));
        let mut cached = FgdScore::cached(frag.clone());
        let mut plain = FgdScore::new(frag);
        let mut node = OpenbNode::new("n", 32000, 1000, 2, Some(0));
        let mut pod = OpenbPod::new("p", 100, 1, 1, 500, GpuSpec::Any, "");
        pod.kind = 0;
        assert_eq!(cached.score(&pod, &node), plain.score(&pod, &node));
        node.bind(&pod, 1).unwrap();
        assert_eq!(cached.score(&pod, &node), plain.score(&pod, &node));
        // The second half-GPU pod closes the fragment on GPU 0: better than opening GPU 1.
        let s = cached.score(&pod, &node);
        assert!(s > 50.0, "{s}");
    }
}
