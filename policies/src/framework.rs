//! The scheduling framework: kube-scheduler's extension points (Filter, Score, NormalizeScore,
//! then a weighted sum that picks a node), generic over the cluster model so that the seeds'
//! H100/A100 model and the Alibaba openb model run through the same machinery.
//!
//! A [`Profile`] is the engine-side twin of a KubeSchedulerConfiguration profile: an ordered list
//! of filter plugins and weighted score plugins. Plugins are pure: they see a node and a pod (and
//! whatever cluster-wide context they were built with) and return a verdict or a number.

use crate::index::ClassSpan;
use serde::Serialize;

/// Why a node was filtered out, and by which plugin (what `explain` prints).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub plugin: &'static str,
    pub reason: String,
}

/// A Filter extension point: may this node take this pod at all?
pub trait FilterPlugin<N, P>: Send + Sync {
    fn name(&self) -> &'static str;
    /// `Ok(())` when the node is feasible, otherwise a human-readable reason.
    fn filter(&self, pod: &P, node: &N) -> Result<(), String>;
    /// The verdict alone, without building a reason. Profiles call it on the hot path (no
    /// decision matrix asked for) and fall back to [`FilterPlugin::filter`] only for the first
    /// rejection per plugin; plugins that format reasons should override it.
    fn passes(&self, pod: &P, node: &N) -> bool {
        self.filter(pod, node).is_ok()
    }
}

/// A Score extension point with its NormalizeScore step.
///
/// `score` takes `&mut self` so that stateful plugins (the Random policy's seeded generator) stay
/// deterministic without interior mutability.
pub trait ScorePlugin<N, P>: Send {
    fn name(&self) -> &'static str;
    /// Raw score of a feasible node; higher is better. The scale is the plugin's own.
    fn score(&mut self, pod: &P, node: &N) -> f64;
    /// Maps the raw scores of all feasible nodes onto 0..=100 in place (kube's NormalizeScore).
    /// The default is min-max scaling; a plugin whose raw score is already 0..=100 overrides it.
    fn normalize(&self, scores: &mut [f64]) {
        normalize_min_max(scores);
    }
}

/// Min-max scaling onto 0..=100. When every score is equal all become 100: a term that does not
/// separate the candidates must not penalise any of them.
pub fn normalize_min_max(scores: &mut [f64]) {
    let (lo, hi) = scores
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        });
    if !(hi > lo) {
        scores.iter_mut().for_each(|s| *s = 100.0);
        return;
    }
    scores
        .iter_mut()
        .for_each(|s| *s = (*s - lo) / (hi - lo) * 100.0);
}

/// Leaves scores already on a 0..=1 scale as 0..=100 (no relative stretching), so that an absolute
/// quantity such as "fraction of the GPU free" keeps its meaning across candidates.
pub fn normalize_unit(scores: &mut [f64]) {
    scores
        .iter_mut()
        .for_each(|s| *s = (s.clamp(0.0, 1.0)) * 100.0);
}

/// One plugin's score on one node, raw and normalised (the rows of a decision matrix).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TermScore {
    pub plugin: &'static str,
    pub weight: f64,
    pub raw: f64,
    pub normalized: f64,
}

/// Every node's verdict and, for feasible nodes, every term: what kube-scheduler-simulator shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateRow {
    pub node: String,
    pub feasible: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<TermScore>,
    pub total: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct DecisionMatrix {
    pub rows: Vec<CandidateRow>,
}

/// The outcome of one scheduling cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Index into the node slice of the chosen node, `None` when no node is feasible.
    pub chosen: Option<usize>,
    /// Weighted, normalised total of the chosen node.
    pub total: f64,
    /// Present when the caller asked for it (decisions log, `explain`).
    pub matrix: Option<DecisionMatrix>,
    /// Feasible-node count, for the reason string when nothing fits.
    pub feasible: usize,
    /// The most common rejection among infeasible nodes (plugin, reason, how many nodes).
    pub top_rejection: Option<(Rejection, usize)>,
}

/// Something that names a node in a decision matrix.
pub trait NamedNode {
    fn node_name(&self) -> &str;
}

/// A scheduling profile: filters, then weighted scores. Ties go to the lowest node index, so a
/// profile is deterministic for a given node order (the simulator fixes that order).
pub struct Profile<N, P> {
    pub name: String,
    pub filters: Vec<Box<dyn FilterPlugin<N, P>>>,
    pub scores: Vec<(Box<dyn ScorePlugin<N, P>>, f64)>,
    /// May [`Profile::select_classes`] evaluate one node per class? Set by
    /// [`crate::registry::Registry::build_profile`] from the plugins' registrations.
    class_safe: bool,
    // Scratch buffers reused across cycles: the hot path allocates nothing once warm.
    feasible: Vec<usize>,
    raw: Vec<Vec<f64>>,
}

impl<N: NamedNode, P> Profile<N, P> {
    pub fn new(
        name: impl Into<String>,
        filters: Vec<Box<dyn FilterPlugin<N, P>>>,
        scores: Vec<(Box<dyn ScorePlugin<N, P>>, f64)>,
    ) -> Self {
        let raw = scores.iter().map(|_| Vec::new()).collect();
        Self {
            name: name.into(),
            filters,
            scores,
            class_safe: false,
            feasible: Vec::new(),
            raw,
        }
    }

    /// Declares whether every plugin of this profile is class-safe (see [`crate::registry`]):
    /// a profile built by hand is not, unless its builder says so.
    pub fn with_class_safe(mut self, class_safe: bool) -> Self {
        self.class_safe = class_safe;
        self
    }

    /// Runs Filter → Score → NormalizeScore → weighted sum over `nodes`.
    pub fn select(&mut self, pod: &P, nodes: &[N], want_matrix: bool) -> Selection {
        self.select_among(pod, nodes, 0..nodes.len(), want_matrix)
    }

    /// Like [`Profile::select`] but over a subset of node indices (an index over free capacity
    /// hands in only nodes that can possibly fit).
    pub fn select_among(
        &mut self,
        pod: &P,
        nodes: &[N],
        candidates: impl IntoIterator<Item = usize>,
        want_matrix: bool,
    ) -> Selection {
        self.feasible.clear();
        let mut rows: Vec<CandidateRow> = Vec::new();
        let mut rejections: Vec<(Rejection, usize)> = Vec::new();
        for i in candidates {
            let node = &nodes[i];
            if !want_matrix {
                // Hot path: verdicts only; a reason is built once per rejecting plugin.
                match self.filters.iter().find(|f| !f.passes(pod, node)) {
                    None => self.feasible.push(i),
                    Some(f) => match rejections.iter_mut().find(|(r, _)| r.plugin == f.name()) {
                        Some((_, n)) => *n += 1,
                        None => {
                            let reason = f.filter(pod, node).err().unwrap_or_default();
                            rejections.push((
                                Rejection {
                                    plugin: f.name(),
                                    reason,
                                },
                                1,
                            ));
                        }
                    },
                }
                continue;
            }
            let verdict = self.filters.iter().find_map(|f| {
                f.filter(pod, node).err().map(|reason| Rejection {
                    plugin: f.name(),
                    reason,
                })
            });
            match verdict {
                None => self.feasible.push(i),
                Some(rej) => {
                    match rejections.iter_mut().find(|(r, _)| r.plugin == rej.plugin) {
                        Some((_, n)) => *n += 1,
                        None => rejections.push((rej.clone(), 1)),
                    }
                    if want_matrix {
                        rows.push(CandidateRow {
                            node: node.node_name().to_string(),
                            feasible: false,
                            rejection: Some(rej),
                            terms: Vec::new(),
                            total: 0.0,
                        });
                    }
                }
            }
        }
        let top_rejection = rejections.into_iter().max_by_key(|(_, n)| *n);
        if self.feasible.is_empty() {
            return Selection {
                chosen: None,
                total: 0.0,
                matrix: want_matrix.then_some(DecisionMatrix { rows }),
                feasible: 0,
                top_rejection,
            };
        }
        for (k, (plugin, _)) in self.scores.iter_mut().enumerate() {
            let buf = &mut self.raw[k];
            buf.clear();
            buf.extend(self.feasible.iter().map(|&i| plugin.score(pod, &nodes[i])));
        }
        let mut best: Option<(usize, f64)> = None;
        let mut totals = vec![0.0; self.feasible.len()];
        let mut normalized: Vec<Vec<f64>> = Vec::with_capacity(self.scores.len());
        for (k, (plugin, weight)) in self.scores.iter().enumerate() {
            let mut n = self.raw[k].clone();
            plugin.normalize(&mut n);
            for (t, v) in totals.iter_mut().zip(&n) {
                *t += weight * v;
            }
            normalized.push(n);
        }
        for (j, &i) in self.feasible.iter().enumerate() {
            // Strictly greater: ties keep the earliest node, which keeps runs deterministic.
            if best.is_none_or(|(_, b)| totals[j] > b) {
                best = Some((i, totals[j]));
            }
        }
        let (chosen, total) = best.expect("feasible is non-empty");
        let matrix = want_matrix.then(|| {
            for (j, &i) in self.feasible.iter().enumerate() {
                let terms = self
                    .scores
                    .iter()
                    .enumerate()
                    .map(|(k, (p, w))| TermScore {
                        plugin: p.name(),
                        weight: *w,
                        raw: self.raw[k][j],
                        normalized: normalized[k][j],
                    })
                    .collect();
                rows.push(CandidateRow {
                    node: nodes[i].node_name().to_string(),
                    feasible: true,
                    rejection: None,
                    terms,
                    total: totals[j],
                });
            }
            DecisionMatrix { rows }
        });
        Selection {
            chosen: Some(chosen),
            total,
            matrix,
            feasible: self.feasible.len(),
            top_rejection,
        }
    }
}

impl<N: NamedNode, P> Profile<N, P> {
    /// Every plugin allows class-based selection: a filter whose verdict and reason, and a score
    /// whose raw value, are functions of the state the classes share; a score non-increasing in
    /// node index among identical states (constant, or FirstFit's ordinal term) and whose
    /// `normalize` depends only on the set's minimum and maximum and on each value itself. A
    /// stateful plugin (a seeded generator) is not: scoring fewer nodes would change its stream.
    /// Declared by the plugins' registrations ([`crate::registry`]).
    pub fn class_safe(&self) -> bool {
        self.class_safe
    }

    /// [`Profile::select`] over equivalence classes of nodes in identical state (from
    /// [`crate::index::CapacityIndex`]), ordered by their lowest member. Gives exactly the full
    /// scan's selection (chosen node, total, feasible count, top rejection) when the filters'
    /// verdicts and reasons are functions of the state the classes share and every score plugin
    /// is class-safe ([`Profile::class_safe`]):
    /// * a class's verdict is its lowest member's, and the first rejecting class per plugin is
    ///   the first rejected node a scan would meet, so reasons and their order agree;
    /// * NormalizeScore sees each feasible class's lowest and highest member, which carry the
    ///   set's extremes, so every normalisation gets the scan's parameters bit for bit;
    /// * the best node of a class is its lowest member (ties go to the lowest index), and
    ///   classes are compared in scan order with the same strict `>`.
    ///
    /// No decision matrix: callers that want one use [`Profile::select`].
    pub fn select_classes(&mut self, pod: &P, nodes: &[N], classes: &[ClassSpan]) -> Selection {
        let mut feasible: Vec<ClassSpan> = Vec::new();
        let mut rejections: Vec<(Rejection, usize)> = Vec::new();
        for c in classes {
            let node = &nodes[c.min];
            match self.filters.iter().find(|f| !f.passes(pod, node)) {
                None => feasible.push(*c),
                Some(f) => match rejections.iter_mut().find(|(r, _)| r.plugin == f.name()) {
                    Some((_, n)) => *n += c.count,
                    None => {
                        let reason = f.filter(pod, node).err().unwrap_or_default();
                        rejections.push((
                            Rejection {
                                plugin: f.name(),
                                reason,
                            },
                            c.count,
                        ));
                    }
                },
            }
        }
        let top_rejection = rejections.into_iter().max_by_key(|(_, n)| *n);
        let feasible_nodes: usize = feasible.iter().map(|c| c.count).sum();
        if feasible.is_empty() {
            return Selection {
                chosen: None,
                total: 0.0,
                matrix: None,
                feasible: 0,
                top_rejection,
            };
        }
        // Raw scores at [2j] for class j's lowest member and [2j+1] for its highest.
        let mut totals = vec![0.0; feasible.len()];
        for (k, (plugin, weight)) in self.scores.iter_mut().enumerate() {
            let buf = &mut self.raw[k];
            buf.clear();
            for c in &feasible {
                let lo = plugin.score(pod, &nodes[c.min]);
                let hi = if c.max != c.min {
                    plugin.score(pod, &nodes[c.max])
                } else {
                    lo
                };
                buf.push(lo);
                buf.push(hi);
            }
            plugin.normalize(buf);
            for (j, t) in totals.iter_mut().enumerate() {
                *t += *weight * buf[2 * j];
            }
        }
        let mut best: Option<(usize, f64)> = None;
        for (j, c) in feasible.iter().enumerate() {
            if best.is_none_or(|(_, b)| totals[j] > b) {
                best = Some((c.min, totals[j]));
            }
        }
        let (chosen, total) = best.expect("feasible is non-empty");
        Selection {
            chosen: Some(chosen),
            total,
            matrix: None,
            feasible: feasible_nodes,
            top_rejection,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct N(&'static str, f64);
    impl NamedNode for N {
        fn node_name(&self) -> &str {
            self.0
        }
    }
    struct MinFree;
    impl FilterPlugin<N, f64> for MinFree {
        fn name(&self) -> &'static str {
            "MinFree"
        }
        fn filter(&self, pod: &f64, node: &N) -> Result<(), String> {
            if node.1 >= *pod {
                Ok(())
            } else {
                Err(format!("free {} < {}", node.1, pod))
            }
        }
    }
    struct MostFree;
    impl ScorePlugin<N, f64> for MostFree {
        fn name(&self) -> &'static str {
            "MostFree"
        }
        fn score(&mut self, _pod: &f64, node: &N) -> f64 {
            node.1
        }
    }

    #[test]
    fn filters_then_picks_highest_weighted_score() {
        let nodes = [N("a", 1.0), N("b", 5.0), N("c", 3.0)];
        let mut p = Profile::new(
            "t",
            vec![Box::new(MinFree)],
            vec![(Box::new(MostFree), 1.0)],
        );
        let s = p.select(&2.0, &nodes, true);
        assert_eq!(s.chosen, Some(1));
        let m = s.matrix.unwrap();
        assert_eq!(m.rows.len(), 3);
        assert!(!m.rows[0].feasible);
        assert_eq!(m.rows[0].rejection.as_ref().unwrap().plugin, "MinFree");
    }

    #[test]
    fn nothing_feasible_reports_the_commonest_rejection() {
        let nodes = [N("a", 1.0), N("b", 1.5)];
        let mut p = Profile::new(
            "t",
            vec![Box::new(MinFree)],
            vec![(Box::new(MostFree), 1.0)],
        );
        let s = p.select(&2.0, &nodes, false);
        assert_eq!(s.chosen, None);
        assert_eq!(s.top_rejection.unwrap().1, 2);
    }

    #[test]
    fn equal_scores_normalise_to_full_marks_and_ties_keep_first() {
        let mut v = vec![3.0, 3.0];
        normalize_min_max(&mut v);
        assert_eq!(v, vec![100.0, 100.0]);
        let nodes = [N("a", 5.0), N("b", 5.0)];
        let mut p = Profile::new("t", vec![], vec![(Box::new(MostFree), 1.0)]);
        assert_eq!(p.select(&0.0, &nodes, false).chosen, Some(0));
    }
}
