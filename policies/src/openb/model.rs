//! The openb cluster model: nodes with CPU, memory and up to eight GPUs whose free share is
//! tracked in milli-GPU, and pods that ask for CPU, memory and `num_gpu × gpu_milli` of one of a
//! set of GPU models. This is the resource view the FGD authors' simulator gives every plugin
//! (its `NodeResource` / `PodResource`), kept flat so that a node is cheap to copy and compare.

use serde::Serialize;

/// One GPU, in the unit every openb quantity uses.
pub const MILLI: u32 = 1000;
/// The largest node in the trace has eight GPUs; the upstream pads node states to this width.
pub const MAX_GPUS: usize = 8;
/// Allocatable pods per node in the upstream's node YAML (`pods: '1001'`).
pub const DEFAULT_MAX_PODS: u32 = 1001;

/// Index of a GPU model in a [`GpuModels`] registry.
pub type ModelId = u8;

/// Interns GPU model names (G2, T4, ...) so that constraints are bit tests, not string compares.
#[derive(Debug, Clone, Default)]
pub struct GpuModels {
    names: Vec<String>,
}

impl GpuModels {
    /// The id of `name`, registering it when new. At most 32 models fit the constraint mask;
    /// `None` beyond that.
    pub fn intern(&mut self, name: &str) -> Option<ModelId> {
        if let Some(id) = self.id(name) {
            return Some(id);
        }
        if self.names.len() >= 32 {
            return None;
        }
        self.names.push(name.to_string());
        Some((self.names.len() - 1) as ModelId)
    }

    pub fn id(&self, name: &str) -> Option<ModelId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| i as ModelId)
    }

    pub fn name(&self, id: ModelId) -> &str {
        self.names
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("?")
    }

    /// Parses a `|`-separated `gpu_spec`. Empty parts are ignored; an empty spec allows any
    /// model. A named model that no node has stays in the spec as "matches nothing", exactly as
    /// the upstream treats a pod asking for an absent model.
    pub fn parse_spec(&self, spec: &str) -> GpuSpec {
        let parts: Vec<&str> = spec.split('|').filter(|p| !p.is_empty()).collect();
        if parts.is_empty() {
            return GpuSpec::Any;
        }
        let mask = parts
            .iter()
            .filter_map(|p| self.id(p))
            .fold(0u32, |m, id| m | (1 << id));
        GpuSpec::OneOf(mask)
    }
}

/// Which GPU models a pod accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum GpuSpec {
    Any,
    /// Bit `i` set: model `i` is accepted. May be 0 (only absent models named).
    OneOf(u32),
}

impl GpuSpec {
    /// The upstream's `IsNodeAccessibleToPodByType`: no constraint → any node (CPU-only nodes
    /// too); a constraint never matches a CPU-only node.
    #[inline]
    pub fn allows(self, model: Option<ModelId>) -> bool {
        match (self, model) {
            (GpuSpec::Any, _) => true,
            (GpuSpec::OneOf(_), None) => false,
            (GpuSpec::OneOf(mask), Some(m)) => mask & (1 << m) != 0,
        }
    }
}

/// A pod of an openb pod list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenbPod {
    pub name: String,
    pub cpu_milli: u64,
    pub memory_mib: u64,
    /// GPUs asked for; 0 for CPU-only pods.
    pub num_gpu: u8,
    /// Share of each GPU, 1..=1000; 0 exactly when `num_gpu == 0`.
    pub gpu_milli: u32,
    pub spec: GpuSpec,
    /// The spec as written (empty parts dropped): typical pods are keyed and ordered by it.
    pub spec_label: String,
    /// Dense id of the pod's resource shape (see [`assign_kinds`]); score caches key on it.
    /// `u32::MAX` when unassigned.
    pub kind: u32,
}

impl OpenbPod {
    /// Builds a pod the way the upstream's CSV→YAML converter does: a GPU share above 1000 is
    /// clamped to a whole GPU, and a pod with GPUs but no share is CPU-only.
    pub fn new(
        name: impl Into<String>,
        cpu_milli: u64,
        memory_mib: u64,
        num_gpu: u8,
        gpu_milli: u32,
        spec: GpuSpec,
        spec_label: impl Into<String>,
    ) -> Self {
        let (num_gpu, gpu_milli) = if num_gpu == 0 || gpu_milli == 0 {
            (0, 0)
        } else {
            (num_gpu, gpu_milli.min(MILLI))
        };
        let spec_label = if num_gpu == 0 {
            String::new()
        } else {
            spec_label.into()
        };
        let spec = if num_gpu == 0 { GpuSpec::Any } else { spec };
        Self {
            name: name.into(),
            cpu_milli,
            memory_mib,
            num_gpu,
            gpu_milli,
            spec,
            spec_label,
            kind: u32::MAX,
        }
    }

    /// Total GPU request in milli-GPU (what the arrived-% axis accumulates).
    #[inline]
    pub fn total_gpu_milli(&self) -> u64 {
        self.num_gpu as u64 * self.gpu_milli as u64
    }

    #[inline]
    pub fn wants_gpu(&self) -> bool {
        self.gpu_milli > 0
    }

    /// A fraction of one GPU (the upstream's `IsGpuShare`).
    #[inline]
    pub fn is_gpu_share(&self) -> bool {
        self.num_gpu == 1 && self.gpu_milli < MILLI
    }

    /// The GpuClustering "affinity" tag: share-gpu → 0, `n` whole GPUs → n, CPU-only → None.
    #[inline]
    pub fn affinity_tag(&self) -> Option<usize> {
        if !self.wants_gpu() {
            None
        } else if self.gpu_milli < MILLI {
            Some(0)
        } else {
            Some(self.num_gpu as usize)
        }
    }
}

/// Gives every distinct (cpu, gpu count, gpu share, spec) shape a dense id in `kind`, so that
/// per-node score caches can be indexed by it. Returns the number of kinds.
pub fn assign_kinds(pods: &mut [OpenbPod]) -> usize {
    let mut shapes: std::collections::HashMap<(u64, u8, u32, GpuSpec), u32> = Default::default();
    for p in pods.iter_mut() {
        let n = shapes.len() as u32;
        p.kind = *shapes
            .entry((p.cpu_milli, p.num_gpu, p.gpu_milli, p.spec))
            .or_insert(n);
    }
    shapes.len()
}

/// Which GPUs of a node a pod was given (bit `i` = GPU `i`).
pub type GpuMask = u8;

/// A node of the openb cluster with what is left on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenbNode {
    pub name: String,
    pub cpu_capacity: u64,
    pub memory_capacity: u64,
    pub cpu_left: u64,
    pub memory_left: u64,
    pub num_gpus: u8,
    /// Free milli-GPU of each GPU; entries past `num_gpus` are 0.
    pub gpu_left: [u16; MAX_GPUS],
    pub model: Option<ModelId>,
    pub pods: u32,
    pub max_pods: u32,
    /// Pods per GpuClustering tag (index as [`OpenbPod::affinity_tag`]).
    pub affinity: [u32; MAX_GPUS + 1],
    /// Position in the scheduler's node list (score caches index by it).
    pub idx: u32,
    /// Bumped on every change, so that caches know when a node's scores went stale.
    pub version: u64,
}

impl OpenbNode {
    pub fn new(
        name: impl Into<String>,
        cpu_milli: u64,
        memory_mib: u64,
        num_gpus: u8,
        model: Option<ModelId>,
    ) -> Self {
        let num_gpus = num_gpus.min(MAX_GPUS as u8);
        let mut gpu_left = [0u16; MAX_GPUS];
        gpu_left[..num_gpus as usize]
            .iter_mut()
            .for_each(|g| *g = MILLI as u16);
        Self {
            name: name.into(),
            cpu_capacity: cpu_milli,
            memory_capacity: memory_mib,
            cpu_left: cpu_milli,
            memory_left: memory_mib,
            num_gpus,
            gpu_left,
            model,
            pods: 0,
            max_pods: DEFAULT_MAX_PODS,
            affinity: [0; MAX_GPUS + 1],
            idx: 0,
            version: 0,
        }
    }

    #[inline]
    pub fn gpus(&self) -> &[u16] {
        &self.gpu_left[..self.num_gpus as usize]
    }

    #[inline]
    pub fn gpu_left_total(&self) -> u64 {
        self.gpus().iter().map(|&g| g as u64).sum()
    }

    #[inline]
    pub fn gpu_used_milli(&self) -> u64 {
        self.num_gpus as u64 * MILLI as u64 - self.gpu_left_total()
    }

    #[inline]
    pub fn fully_free_gpus(&self) -> usize {
        self.gpus().iter().filter(|&&g| g as u32 == MILLI).count()
    }

    /// GPUs with at least `milli` free (the upstream's `CanNodeHostPodOnGpuMemory` counts these).
    #[inline]
    pub fn gpus_fitting(&self, milli: u32) -> usize {
        self.gpus().iter().filter(|&&g| g as u32 >= milli).count()
    }

    /// Number of distinct GpuClustering tags present on the node.
    #[inline]
    pub fn affinity_kinds(&self) -> usize {
        self.affinity.iter().filter(|&&c| c > 0).count()
    }

    /// Places `pod` on this node with the GPUs in `gpus`. The caller has filtered the node and
    /// picked GPUs with room; a pick that does not fit is refused rather than underflowing.
    pub fn bind(&mut self, pod: &OpenbPod, gpus: GpuMask) -> Result<(), String> {
        if self.cpu_left < pod.cpu_milli || self.memory_left < pod.memory_mib {
            return Err(format!(
                "{}: not enough CPU or memory for {}",
                self.name, pod.name
            ));
        }
        if pod.wants_gpu() {
            if gpus.count_ones() != pod.num_gpu as u32 || (gpus as u32) >> self.num_gpus != 0 {
                return Err(format!(
                    "{}: GPU pick {gpus:#010b} does not match {}",
                    self.name, pod.name
                ));
            }
            if (0..self.num_gpus as usize)
                .any(|i| gpus & (1 << i) != 0 && (self.gpu_left[i] as u32) < pod.gpu_milli)
            {
                return Err(format!(
                    "{}: a picked GPU lacks room for {}",
                    self.name, pod.name
                ));
            }
            for i in 0..self.num_gpus as usize {
                if gpus & (1 << i) != 0 {
                    self.gpu_left[i] -= pod.gpu_milli as u16;
                }
            }
        }
        self.cpu_left -= pod.cpu_milli;
        self.memory_left -= pod.memory_mib;
        self.pods += 1;
        if let Some(tag) = pod.affinity_tag() {
            self.affinity[tag.min(MAX_GPUS)] += 1;
        }
        self.version += 1;
        Ok(())
    }

    /// Takes `pod` off this node: the exact inverse of [`OpenbNode::bind`] with the same `gpus`,
    /// so that a dynamic replay can release a departing pod. Every resource returns to what it
    /// was before the bind; `version` is bumped again (never rolled back), because caches keyed
    /// on it must see the node as changed: an intervening bind may have cached a score at the
    /// version a rollback would revisit. Refuses, without changing anything, a release that
    /// would overflow a capacity or a count (a pod that was not bound here).
    pub fn unbind(&mut self, pod: &OpenbPod, gpus: GpuMask) -> Result<(), String> {
        let over = |left: u64, add: u64, cap: u64| left.checked_add(add).is_none_or(|v| v > cap);
        if over(self.cpu_left, pod.cpu_milli, self.cpu_capacity)
            || over(self.memory_left, pod.memory_mib, self.memory_capacity)
            || self.pods == 0
        {
            return Err(format!("{}: {} is not bound here", self.name, pod.name));
        }
        let tag = pod.affinity_tag().map(|t| t.min(MAX_GPUS));
        if tag.is_some_and(|t| self.affinity[t] == 0) {
            return Err(format!("{}: {} is not bound here", self.name, pod.name));
        }
        if pod.wants_gpu() {
            if gpus.count_ones() != pod.num_gpu as u32 || (gpus as u32) >> self.num_gpus != 0 {
                return Err(format!(
                    "{}: GPU pick {gpus:#010b} does not match {}",
                    self.name, pod.name
                ));
            }
            if (0..self.num_gpus as usize)
                .any(|i| gpus & (1 << i) != 0 && self.gpu_left[i] as u32 + pod.gpu_milli > MILLI)
            {
                return Err(format!(
                    "{}: releasing {} would overfill a GPU",
                    self.name, pod.name
                ));
            }
            for i in 0..self.num_gpus as usize {
                if gpus & (1 << i) != 0 {
                    self.gpu_left[i] += pod.gpu_milli as u16;
                }
            }
        }
        self.cpu_left += pod.cpu_milli;
        self.memory_left += pod.memory_mib;
        self.pods -= 1;
        if let Some(t) = tag {
            self.affinity[t] -= 1;
        }
        self.version += 1;
        Ok(())
    }
}

impl crate::framework::NamedNode for OpenbNode {
    fn node_name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_matching_follows_the_upstream() {
        let mut m = GpuModels::default();
        let t4 = m.intern("T4").unwrap();
        let g2 = m.intern("G2").unwrap();
        assert!(m.parse_spec("").allows(None));
        assert!(m.parse_spec("|").allows(Some(t4)));
        let s = m.parse_spec("T4|P100");
        assert!(s.allows(Some(t4)) && !s.allows(Some(g2)) && !s.allows(None));
        assert!(!m.parse_spec("H100").allows(Some(t4)));
    }

    #[test]
    fn pods_are_normalised_like_the_converter() {
        let p = OpenbPod::new("p", 1000, 10, 1, 1500, GpuSpec::Any, "");
        assert_eq!(p.gpu_milli, 1000);
        let q = OpenbPod::new("q", 1000, 10, 2, 0, GpuSpec::OneOf(1), "T4");
        assert_eq!((q.num_gpu, q.gpu_milli, q.spec), (0, 0, GpuSpec::Any));
        assert_eq!(
            OpenbPod::new("s", 1, 1, 1, 300, GpuSpec::Any, "").affinity_tag(),
            Some(0)
        );
        assert_eq!(
            OpenbPod::new("w", 1, 1, 4, 1000, GpuSpec::Any, "").affinity_tag(),
            Some(4)
        );
    }

    #[test]
    fn bind_takes_resources_and_refuses_bad_picks() {
        let mut n = OpenbNode::new("n", 8000, 1000, 2, Some(0));
        let p = OpenbPod::new("p", 2000, 100, 1, 300, GpuSpec::Any, "");
        assert!(n.bind(&p, 0b11).is_err());
        n.bind(&p, 0b10).unwrap();
        assert_eq!(n.gpus(), &[1000, 700]);
        assert_eq!((n.cpu_left, n.memory_left, n.version), (6000, 900, 1));
        assert_eq!(n.gpu_used_milli(), 300);
        let big = OpenbPod::new("b", 0, 0, 1, 800, GpuSpec::Any, "");
        assert!(n.bind(&big, 0b10).is_err());
    }

    /// Everything but the version, which only ever grows.
    fn state(n: &OpenbNode) -> OpenbNode {
        OpenbNode {
            version: 0,
            ..n.clone()
        }
    }

    #[test]
    fn unbind_exactly_undoes_bind_and_bumps_the_version() {
        let mut n = OpenbNode::new("n", 32000, 64000, 4, Some(0));
        let share = OpenbPod::new("s", 3000, 500, 1, 300, GpuSpec::Any, "");
        let whole = OpenbPod::new("w", 8000, 2000, 2, 1000, GpuSpec::Any, "");
        let cpu = OpenbPod::new("c", 1000, 100, 0, 0, GpuSpec::Any, "");
        n.bind(&share, 0b0001).unwrap();
        let before = state(&n);
        let v0 = n.version;
        for (p, mask) in [(&whole, 0b0110), (&cpu, 0), (&share, 0b0001)] {
            n.bind(p, mask).unwrap();
            assert_ne!(state(&n), before);
            n.unbind(p, mask).unwrap();
            assert_eq!(state(&n), before, "{}", p.name);
        }
        assert_eq!(n.version, v0 + 6, "every bind and unbind is a change");
        // Out of order: bind two, release the first, then the second.
        n.bind(&whole, 0b0110).unwrap();
        n.bind(&cpu, 0).unwrap();
        n.unbind(&whole, 0b0110).unwrap();
        n.unbind(&cpu, 0).unwrap();
        assert_eq!(state(&n), before);
    }

    #[test]
    fn unbind_refuses_what_was_not_bound() {
        let mut n = OpenbNode::new("n", 8000, 1000, 2, Some(0));
        let p = OpenbPod::new("p", 2000, 100, 1, 300, GpuSpec::Any, "");
        assert!(n.unbind(&p, 0b01).is_err(), "nothing bound");
        n.bind(&p, 0b01).unwrap();
        let before = n.clone();
        assert!(n.unbind(&p, 0b11).is_err(), "wrong GPU count");
        let whole = OpenbPod::new("w", 0, 0, 1, 1000, GpuSpec::Any, "");
        assert!(n.unbind(&whole, 0b01).is_err(), "would overfill GPU 0");
        assert_eq!(n, before, "refusals change nothing");
        n.unbind(&p, 0b01).unwrap();
        assert_eq!(n.gpus(), &[1000, 1000]);
    }
}
