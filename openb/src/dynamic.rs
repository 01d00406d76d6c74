//! The openb pod lists replayed over time instead of in the paper's static protocol: each pod
//! arrives at its `creation_time` and leaves at its `deletion_time`, on the same node list and
//! through the same scheduling profile, so that a user sees whether the static ranking of the
//! six policies holds when pods come and go.
//!
//! Rules, chosen to stay close to what a kube-scheduler would see:
//! - an arriving pod is scheduled at once (a full Filter → Score cycle over every node);
//! - a pod that fits nowhere waits in a FIFO pending queue; when a departure frees capacity a
//!   retry round runs `retry_delay_s` later (coalesced), trying pending pods oldest first,
//!   at most `retry_cap` full scheduling cycles per round (0: no cap; a capped round that
//!   leaves pods untried schedules the next round);
//! - a pending pod whose deletion time comes before it was placed is withdrawn (abandoned);
//!   a pod without a deletion time stays to the end; pods still pending when no event is left
//!   count as never placed, like the abandoned ones;
//! - nodes are permuted with the seed as in the static protocol, so ties between equal nodes
//!   (and Random's draws) depend on the seed and nothing else.
//!
//! Retries are exact but cheap: placements only take capacity, so a pending pod can only fit
//! again on a node that lost a pod since its last attempt. The replay logs every freed node;
//! a pending pod is re-scheduled only when one of the nodes freed since its last try passes the
//! profile's filters (checked directly while fewer than [`QUICK_CHECK_MAX`] nodes were freed).
//! Skipped pods cost no full cycle and do not count against `retry_cap`.
//!
//! Time is integer microseconds ([`gpusched_sim::events`]); `speedup` divides the gaps between
//! arrivals while every pod keeps its trace lifetime (`deletion − creation`), so the offered
//! load grows by that factor. (The trace itself loads the 6,212-GPU cluster to ~1 %: at most
//! 56 pods run at once in `default`.) Means are time-weighted over the measured period, from
//! the first arrival to the last plus `tail_s`, and so are the timeseries buckets; the replay
//! itself runs on until no event is left.

use super::csv_io::TimedPod;
use super::error::{OpenbError, Result};
use super::protocol::{node_order, Workload};
use gpusched_policies::openb::{
    select_gpus, GpuMask, OpenbNode, OpenbPolicy, TypicalPodsConfig, MILLI,
};
use gpusched_sim::events::{EventQueue, SimTime, US_PER_S};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::VecDeque;

/// Above this many nodes freed since a pod's last try, a retry runs the full cycle directly.
pub const QUICK_CHECK_MAX: usize = 64;

/// How the trace is turned into a replay, and how pending pods are retried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayConfig {
    /// Only pods created in `[window_start_s, window_end_s)` (trace seconds) are replayed.
    pub window_start_s: Option<u64>,
    pub window_end_s: Option<u64>,
    /// Divides the gaps between arrivals; lifetimes are kept. Must be > 0.
    pub speedup: f64,
    /// Delay between a departure and the retry round it triggers, seconds.
    pub retry_delay_s: f64,
    /// Full scheduling cycles per retry round; 0 = no cap.
    pub retry_cap: usize,
    /// Time buckets of the timeseries over the measured period.
    pub buckets: usize,
    /// The measured period runs this long past the last arrival (simulated seconds), so that
    /// the pods still pending then, and how soon they get placed, are seen.
    pub tail_s: f64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            window_start_s: None,
            window_end_s: None,
            speedup: 1.0,
            retry_delay_s: 0.0,
            retry_cap: 0,
            buckets: 100,
            tail_s: 0.0,
        }
    }
}

impl ReplayConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.speedup.is_finite() && self.speedup > 0.0) {
            return Err(OpenbError::Invalid(format!(
                "speedup must be a positive number, got {}",
                self.speedup
            )));
        }
        if !(self.retry_delay_s.is_finite() && self.retry_delay_s >= 0.0) {
            return Err(OpenbError::Invalid(format!(
                "retry_delay_s must be >= 0, got {}",
                self.retry_delay_s
            )));
        }
        if !(self.tail_s.is_finite() && self.tail_s >= 0.0) {
            return Err(OpenbError::Invalid(format!(
                "tail_s must be >= 0, got {}",
                self.tail_s
            )));
        }
        if self.buckets == 0 {
            return Err(OpenbError::Invalid("buckets must be at least 1".into()));
        }
        if let (Some(a), Some(b)) = (self.window_start_s, self.window_end_s) {
            if a >= b {
                return Err(OpenbError::Invalid(format!(
                    "empty window: window_start_s {a} >= window_end_s {b}"
                )));
            }
        }
        Ok(())
    }
}

/// A pod list ready to replay: the pods (name-sorted, with shape ids and their typical-pod
/// model) and, per pod, its arrival and (optional) deletion time in simulated microseconds.
#[derive(Debug, Clone)]
pub struct ReplayTrace {
    pub workload: Workload,
    pub arrival: Vec<SimTime>,
    pub end: Vec<Option<SimTime>>,
    /// End of the measured period: the last arrival plus `tail_s`.
    pub horizon: SimTime,
}

impl ReplayTrace {
    /// Applies the window and the speed-up. The typical pods FGD measures fragmentation against
    /// are taken from the replayed pods, as the static protocol takes them from its list.
    pub fn new(name: &str, mut pods: Vec<TimedPod>, cfg: &ReplayConfig) -> Result<Self> {
        cfg.validate()?;
        let lo = cfg.window_start_s.unwrap_or(0);
        let hi = cfg.window_end_s.unwrap_or(u64::MAX);
        pods.retain(|p| p.creation_s >= lo && p.creation_s < hi);
        if pods.is_empty() {
            return Err(OpenbError::Invalid(format!(
                "{name}: no pod is created inside the window [{lo}, {hi})"
            )));
        }
        // Name order first (stable), so that Workload::new's own sort keeps times aligned.
        pods.sort_by(|a, b| a.pod.name.cmp(&b.pod.name));
        let us = |s: f64| (s * US_PER_S as f64).round() as SimTime;
        let arrival: Vec<SimTime> = pods
            .iter()
            .map(|p| us((p.creation_s - lo) as f64 / cfg.speedup))
            .collect();
        let end = pods
            .iter()
            .zip(&arrival)
            .map(|(p, &a)| p.deletion_s.map(|d| a + us((d - p.creation_s) as f64)))
            .collect();
        let horizon = arrival.iter().copied().max().unwrap_or(0) + us(cfg.tail_s);
        let workload = Workload::new(
            name,
            pods.into_iter().map(|p| p.pod).collect(),
            &TypicalPodsConfig::default(),
        );
        Ok(Self {
            workload,
            arrival,
            end,
            horizon,
        })
    }

    pub fn len(&self) -> usize {
        self.arrival.len()
    }

    pub fn is_empty(&self) -> bool {
        self.arrival.is_empty()
    }
}

/// Time-weighted means over one bucket of the arrival period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BucketStat {
    pub alloc_pct: f64,
    pub frag_pct: f64,
    pub pending_mean: f64,
    pub pending_max: usize,
}

/// The outcome of one replay (one pod list × policy × seed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayResult {
    pub workload: String,
    pub policy: OpenbPolicy,
    pub seed: u64,
    pub pods: usize,
    pub placed: usize,
    /// Placed on a retry rather than on arrival.
    pub placed_after_retry: usize,
    /// Abandoned (deleted while pending) plus still pending at the end.
    pub never_placed: usize,
    pub abandoned: usize,
    pub pending_at_end: usize,
    pub departed: usize,
    /// Full scheduling cycles run for pending pods.
    pub retry_cycles: u64,
    pub events: u64,
    pub horizon_s: f64,
    /// Time-weighted over the measured period.
    pub mean_alloc_pct: f64,
    pub mean_frag_pct: f64,
    pub mean_pending: f64,
    pub peak_alloc_pct: f64,
    pub peak_pending: usize,
    /// Waiting time (placed − arrived) of every placed pod, seconds, ascending.
    pub waits_s: Vec<f64>,
    pub buckets: Vec<BucketStat>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PodState {
    NotArrived,
    Pending,
    Running(u32, GpuMask),
    Departed,
    Abandoned,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Arrive(u32),
    End(u32),
    Retry,
}

/// Integrates piecewise-constant cluster measures over time into buckets of the measured period.
struct Integrator {
    horizon: f64,
    width: f64,
    /// Per bucket: ∫alloc, ∫frag, ∫pending, covered time, max pending.
    acc: Vec<[f64; 4]>,
    max_pending: Vec<usize>,
}

impl Integrator {
    fn new(horizon: SimTime, buckets: usize) -> Self {
        // A trace whose pods all arrive at once still gets a measured period of one second.
        let horizon = (horizon.max(US_PER_S)) as f64;
        Self {
            horizon,
            width: horizon / buckets as f64,
            acc: vec![[0.0; 4]; buckets],
            max_pending: vec![0; buckets],
        }
    }

    /// Adds the constant values over `[t0, t1)`, clipped to the measured period.
    fn add(&mut self, t0: SimTime, t1: SimTime, alloc: f64, frag: f64, pending: usize) {
        let (a, b) = (t0 as f64, (t1 as f64).min(self.horizon));
        if b <= a {
            return;
        }
        let n = self.acc.len();
        let first = ((a / self.width) as usize).min(n - 1);
        for k in first..n {
            let lo = (k as f64 * self.width).max(a);
            let hi = (if k + 1 == n {
                self.horizon
            } else {
                (k + 1) as f64 * self.width
            })
            .min(b);
            if hi > lo {
                let dt = hi - lo;
                let e = &mut self.acc[k];
                e[0] += alloc * dt;
                e[1] += frag * dt;
                e[2] += pending as f64 * dt;
                e[3] += dt;
                self.max_pending[k] = self.max_pending[k].max(pending);
            }
            if hi >= b {
                break;
            }
        }
    }

    fn finish(&self) -> (Vec<BucketStat>, [f64; 3]) {
        let mut total = [0.0; 4];
        let stats = self
            .acc
            .iter()
            .zip(&self.max_pending)
            .map(|(e, &m)| {
                for i in 0..4 {
                    total[i] += e[i];
                }
                let t = e[3].max(f64::MIN_POSITIVE);
                BucketStat {
                    alloc_pct: e[0] / t,
                    frag_pct: e[1] / t,
                    pending_mean: e[2] / t,
                    pending_max: m,
                }
            })
            .collect();
        let t = total[3].max(f64::MIN_POSITIVE);
        (stats, [total[0] / t, total[1] / t, total[2] / t])
    }
}

/// The cluster during a replay: nodes in scheduler order, cached per-node fragmentation and
/// the running totals every sample reads.
struct Cluster<'a> {
    w: &'a Workload,
    nodes: Vec<OpenbNode>,
    node_frag: Vec<f64>,
    frag_sum: f64,
    used: u64,
    capacity: f64,
}

impl Cluster<'_> {
    fn refresh(&mut self, i: usize) {
        let f = self.w.frag.node_frag(&self.nodes[i]);
        self.frag_sum += f - self.node_frag[i];
        self.node_frag[i] = f;
    }
    fn alloc_pct(&self) -> f64 {
        100.0 * self.used as f64 / self.capacity
    }
    fn frag_pct(&self) -> f64 {
        100.0 * self.frag_sum.max(0.0) / self.capacity
    }
}

/// Replays `trace` on `nodes` under `policy`.
pub fn replay(
    nodes: &[OpenbNode],
    trace: &ReplayTrace,
    policy: OpenbPolicy,
    seed: u64,
    cfg: &ReplayConfig,
) -> Result<ReplayResult> {
    cfg.validate()?;
    let w = &trace.workload;
    let n_pods = trace.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ordered = node_order(nodes, &mut rng);
    let mut profile = policy.profile(w.frag.clone(), rng.next_u64(), true);
    let gpu_sel = policy.gpu_selection();
    let node_frag: Vec<f64> = ordered.iter().map(|n| w.frag.node_frag(n)).collect();
    let total_gpus: u64 = ordered.iter().map(|n| n.num_gpus as u64).sum();
    if total_gpus == 0 {
        return Err(OpenbError::Invalid("the node list has no GPU".into()));
    }
    let mut c = Cluster {
        w,
        frag_sum: node_frag.iter().sum(),
        used: ordered.iter().map(OpenbNode::gpu_used_milli).sum(),
        nodes: ordered,
        node_frag,
        capacity: (total_gpus * MILLI as u64) as f64,
    };

    let mut q: EventQueue<Ev> = EventQueue::default();
    let mut by_arrival: Vec<u32> = (0..n_pods as u32).collect();
    by_arrival.sort_by_key(|&i| (trace.arrival[i as usize], i));
    for &i in &by_arrival {
        q.push(trace.arrival[i as usize], Ev::Arrive(i));
    }
    let retry_delay = (cfg.retry_delay_s * US_PER_S as f64).round() as SimTime;

    let mut state = vec![PodState::NotArrived; n_pods];
    let mut pending: VecDeque<u32> = VecDeque::new();
    let mut pending_n = 0usize;
    // Nodes freed by departures, in order; `tried_at[i]` is the log length at pod i's last try.
    let mut freed: Vec<u32> = Vec::new();
    let mut tried_at = vec![0usize; n_pods];
    let mut retry_scheduled = false;
    let mut integ = Integrator::new(trace.horizon, cfg.buckets);
    let (mut last_t, mut peak_alloc, mut peak_pending) = (0, 0.0f64, 0usize);
    let mut waits = Vec::with_capacity(n_pods);
    let (mut placed_after_retry, mut abandoned, mut departed, mut retry_cycles) = (0, 0, 0, 0u64);

    // One full scheduling cycle; binds and returns true when the pod is placed.
    let place = |c: &mut Cluster,
                 profile: &mut gpusched_policies::framework::Profile<
        OpenbNode,
        gpusched_policies::openb::OpenbPod,
    >,
                 rng: &mut ChaCha8Rng,
                 i: usize,
                 state: &mut [PodState]|
     -> bool {
        let pod = &c.w.pods[i];
        let Some(n) = profile.select(pod, &c.nodes, false).chosen else {
            return false;
        };
        let Some(gpus) = select_gpus(gpu_sel, pod, &c.nodes[n], &c.w.frag, rng) else {
            return false;
        };
        if c.nodes[n].bind(pod, gpus).is_err() {
            return false;
        }
        c.used += pod.total_gpu_milli();
        c.refresh(n);
        state[i] = PodState::Running(n as u32, gpus);
        true
    };

    while let Some((now, ev)) = q.pop() {
        integ.add(last_t, now, c.alloc_pct(), c.frag_pct(), pending_n);
        last_t = now;
        match ev {
            Ev::Arrive(i) => {
                let i = i as usize;
                if let Some(end) = trace.end[i] {
                    q.push(end, Ev::End(i as u32));
                }
                if place(&mut c, &mut profile, &mut rng, i, &mut state) {
                    waits.push(0.0);
                } else {
                    state[i] = PodState::Pending;
                    pending.push_back(i as u32);
                    pending_n += 1;
                    tried_at[i] = freed.len();
                }
            }
            Ev::End(i) => {
                let i = i as usize;
                match state[i] {
                    PodState::Running(n, gpus) => {
                        let pod = &w.pods[i];
                        c.nodes[n as usize]
                            .unbind(pod, gpus)
                            .map_err(|e| OpenbError::Invalid(format!("replay bookkeeping: {e}")))?;
                        c.used -= pod.total_gpu_milli();
                        c.refresh(n as usize);
                        state[i] = PodState::Departed;
                        departed += 1;
                        freed.push(n);
                        if pending_n > 0 && !retry_scheduled {
                            q.push(now + retry_delay, Ev::Retry);
                            retry_scheduled = true;
                        }
                    }
                    PodState::Pending => {
                        state[i] = PodState::Abandoned;
                        pending_n -= 1;
                        abandoned += 1;
                    }
                    _ => {}
                }
            }
            Ev::Retry => {
                retry_scheduled = false;
                let mut keep = VecDeque::with_capacity(pending.len());
                let mut cycles = 0usize;
                let mut capped = false;
                while let Some(i) = pending.pop_front() {
                    let iu = i as usize;
                    if state[iu] != PodState::Pending {
                        continue;
                    }
                    let since = &freed[tried_at[iu]..];
                    if since.is_empty() {
                        keep.push_back(i);
                        continue;
                    }
                    if cfg.retry_cap > 0 && cycles >= cfg.retry_cap {
                        capped = true;
                        keep.push_back(i);
                        continue;
                    }
                    let pod = &w.pods[iu];
                    let may_fit = since.len() > QUICK_CHECK_MAX
                        || since.iter().any(|&n| {
                            let node = &c.nodes[n as usize];
                            profile.filters.iter().all(|f| f.passes(pod, node))
                        });
                    tried_at[iu] = freed.len();
                    if !may_fit {
                        keep.push_back(i);
                        continue;
                    }
                    cycles += 1;
                    retry_cycles += 1;
                    if place(&mut c, &mut profile, &mut rng, iu, &mut state) {
                        pending_n -= 1;
                        placed_after_retry += 1;
                        waits.push((now - trace.arrival[iu]) as f64 / US_PER_S as f64);
                    } else {
                        keep.push_back(i);
                    }
                }
                pending = keep;
                if capped && !retry_scheduled {
                    q.push(now + retry_delay, Ev::Retry);
                    retry_scheduled = true;
                }
            }
        }
        if now <= trace.horizon {
            peak_alloc = peak_alloc.max(c.alloc_pct());
            peak_pending = peak_pending.max(pending_n);
        }
    }
    let (buckets, [mean_alloc_pct, mean_frag_pct, mean_pending]) = integ.finish();
    waits.sort_by(f64::total_cmp);
    let placed = waits.len();
    Ok(ReplayResult {
        workload: w.name.clone(),
        policy,
        seed,
        pods: n_pods,
        placed,
        placed_after_retry,
        never_placed: n_pods - placed,
        abandoned,
        pending_at_end: pending_n,
        departed,
        retry_cycles,
        events: q.popped(),
        horizon_s: trace.horizon as f64 / US_PER_S as f64,
        mean_alloc_pct,
        mean_frag_pct,
        mean_pending,
        peak_alloc_pct: peak_alloc,
        peak_pending,
        waits_s: waits,
        buckets,
    })
}

/// Nearest-rank percentile of ascending values; 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpusched_policies::openb::{GpuSpec, OpenbPod};

    fn tp(name: &str, gpus: u8, milli: u32, c: u64, d: Option<u64>) -> TimedPod {
        TimedPod {
            pod: OpenbPod::new(name, 1000, 100, gpus, milli, GpuSpec::Any, ""),
            creation_s: c,
            deletion_s: d,
        }
    }

    fn two_nodes() -> Vec<OpenbNode> {
        (0..2)
            .map(|i| OpenbNode::new(format!("n{i}"), 64000, 256000, 2, Some(0)))
            .collect()
    }

    #[test]
    fn a_pending_pod_is_placed_when_capacity_frees() {
        // 4 GPUs; four whole-GPU pods fill them, the fifth waits until "a" leaves at t=10.
        let mut pods: Vec<TimedPod> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| tp(n, 1, 1000, 0, if *n == "a" { Some(10) } else { None }))
            .collect();
        pods.push(tp("e", 1, 1000, 5, None));
        let cfg = ReplayConfig::default();
        let t = ReplayTrace::new("t", pods, &cfg).unwrap();
        for p in OpenbPolicy::ALL {
            let r = replay(&two_nodes(), &t, p, 1, &cfg).unwrap();
            assert_eq!((r.placed, r.never_placed, r.departed), (5, 0, 1), "{p}");
            assert_eq!(r.placed_after_retry, 1);
            assert_eq!(r.waits_s.last(), Some(&5.0), "e waited from 5 to 10");
            assert_eq!(r.peak_pending, 1);
        }
    }

    #[test]
    fn pending_pods_past_their_deletion_are_abandoned_and_backoff_delays_retries() {
        let pods = vec![
            tp("a", 2, 1000, 0, Some(10)),
            tp("b", 2, 1000, 0, None),
            tp("c", 2, 1000, 1, Some(5)), // gives up at 5, before capacity frees at 10
            tp("d", 1, 1000, 2, None),
        ];
        let cfg = ReplayConfig {
            retry_delay_s: 3.0,
            ..Default::default()
        };
        let t = ReplayTrace::new("t", pods, &cfg).unwrap();
        let r = replay(&two_nodes(), &t, OpenbPolicy::BestFit, 7, &cfg).unwrap();
        assert_eq!((r.placed, r.abandoned, r.pending_at_end), (3, 1, 0));
        assert_eq!(r.never_placed, 1);
        assert_eq!(r.waits_s, vec![0.0, 0.0, 11.0], "d: 2 → 10 + 3 s backoff");
    }

    #[test]
    fn retry_cap_spreads_placements_over_rounds() {
        let mut pods = vec![tp("a", 2, 1000, 0, Some(10)), tp("b", 2, 1000, 0, None)];
        for k in 0..4 {
            pods.push(tp(&format!("s{k}"), 1, 400, 1, None));
        }
        let cfg = ReplayConfig {
            retry_cap: 1,
            retry_delay_s: 1.0,
            ..Default::default()
        };
        let t = ReplayTrace::new("t", pods, &cfg).unwrap();
        let r = replay(&two_nodes(), &t, OpenbPolicy::Fgd, 3, &cfg).unwrap();
        assert_eq!(r.placed, 6);
        assert_eq!(r.waits_s[2..], [10.0, 11.0, 12.0, 13.0]);
    }

    #[test]
    fn speedup_compresses_arrivals_and_keeps_lifetimes() {
        let pods = vec![tp("a", 1, 500, 100, Some(160)), tp("b", 1, 500, 300, None)];
        let cfg = ReplayConfig {
            speedup: 10.0,
            window_start_s: Some(100),
            ..Default::default()
        };
        let t = ReplayTrace::new("t", pods, &cfg).unwrap();
        assert_eq!(t.arrival, vec![0, 20 * US_PER_S]);
        assert_eq!(t.end, vec![Some(60 * US_PER_S), None]);
        assert_eq!(t.horizon, 20 * US_PER_S);
        let tail = ReplayConfig {
            tail_s: 5.0,
            ..cfg.clone()
        };
        let t = ReplayTrace::new("t", vec![tp("a", 1, 500, 100, None)], &tail).unwrap();
        assert_eq!(t.horizon, 5 * US_PER_S);
        let bad = ReplayConfig {
            window_start_s: Some(1000),
            ..Default::default()
        };
        assert!(ReplayTrace::new("t", vec![tp("a", 1, 500, 1, None)], &bad).is_err());
    }

    #[test]
    fn time_weighted_means_over_the_arrival_period() {
        // One whole GPU of 4 from 0 to the horizon at 10 s: 25 % allocated throughout.
        let pods = vec![tp("a", 1, 1000, 0, None), tp("b", 0, 0, 10, None)];
        let cfg = ReplayConfig {
            buckets: 4,
            ..Default::default()
        };
        let t = ReplayTrace::new("t", pods, &cfg).unwrap();
        let r = replay(&two_nodes(), &t, OpenbPolicy::DotProd, 1, &cfg).unwrap();
        assert!(
            (r.mean_alloc_pct - 25.0).abs() < 1e-9,
            "{}",
            r.mean_alloc_pct
        );
        assert!(r.buckets.iter().all(|b| (b.alloc_pct - 25.0).abs() < 1e-9));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 99.0), 4.0);
    }
}
