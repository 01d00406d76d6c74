//! The stated resource limits (README, "Limits"): sizes checked before anything is allocated
//! or simulated, so that a typo (a node count with three zeros too many, hours given as
//! seconds) is a located error in a second, not an allocator abort or a run that never ends.
//! Each limit is far beyond the shipped scenarios (the largest, fleet-10k-week, has 1,250 nodes,
//! 10,000 GPUs and about 6×10⁸ requests) and well inside what one machine can hold.

use crate::scenario::{LoadedScenario, ScenarioError, TrafficSpec};
/// The limits a trace is read under (they live with the readers that enforce them).
pub use gpusched_traces::limits::{MAX_DURATION_S, MAX_TRACE_TIME_S};

/// Nodes in the whole cluster (each node is a few hundred bytes of state per tick).
pub const MAX_NODES: u64 = 100_000;
/// GPUs in the whole cluster.
pub const MAX_GPUS: u64 = 1_000_000;
/// Services in one scenario.
pub const MAX_SERVICES: usize = 10_000;
/// Replicas of one service (`max_replicas`, `initial_replicas`).
pub const MAX_REPLICAS: u64 = 100_000;
/// Pods the whole scenario may ask for: the sum of every service's `max_replicas`.
pub const MAX_PODS: u64 = 1_000_000;
/// Requests one replica serves at once.
pub const MAX_CONCURRENCY: u64 = 100_000;
/// Requests queued at one service (`max_queue`): the queue is held in memory.
pub const MAX_QUEUE: u64 = 10_000_000;
/// The arrival rate of one traffic source, requests per second.
pub const MAX_RATE_QPS: f64 = 1e6;
/// Requests a run may generate (simulated duration × rate, summed over the sources): about
/// an hour of simulation at the simulator's few million events per second.
pub const MAX_REQUESTS: f64 = 1e10;
/// Superposed copies of a trace (`rate_scale`).
pub const MAX_RATE_SCALE: f64 = 1000.0;
/// Seeds of one compare, sweep, tune or fgd run.
pub const MAX_SEEDS: u64 = 10_000;
/// Simulation runs of one compare, sweep, tune or fgd invocation.
pub const MAX_RUNS: u64 = 100_000;
/// The FGD top-up target (pods after top-up = pods × this).
pub const MAX_TOP_UP: f64 = 10.0;

/// Memory the per-tick timeseries may take (one row per monitoring tick, with a column per
/// service and per GPU model, kept until the run writes timeseries.csv).
pub const MAX_TIMESERIES_BYTES: f64 = 4.0 * 1024.0 * 1024.0 * 1024.0;

/// Checks the cluster, service and traffic sizes of a loaded scenario.
pub fn check(l: &LoadedScenario) -> Result<(), ScenarioError> {
    let s = &l.scenario;
    let bad = |key: &str, problem: String| ScenarioError::Invalid {
        path: l.source.clone(),
        key: key.to_string(),
        problem,
    };
    let nodes: u64 = s.pools.iter().map(|p| p.nodes as u64).sum();
    if nodes > MAX_NODES {
        return Err(bad(
            "pools[].nodes",
            format!("{nodes} nodes in all; the limit is {MAX_NODES}"),
        ));
    }
    let gpus: u64 = s
        .pools
        .iter()
        .map(|p| p.nodes as u64 * p.gpus_per_node as u64)
        .sum();
    if gpus > MAX_GPUS {
        return Err(bad(
            "pools[].gpus_per_node",
            format!("{gpus} GPUs in all; the limit is {MAX_GPUS}"),
        ));
    }
    if s.services.len() > MAX_SERVICES {
        return Err(bad(
            "services",
            format!("{} services; the limit is {MAX_SERVICES}", s.services.len()),
        ));
    }
    let pods: u64 = s.services.iter().map(|x| x.max_replicas as u64).sum();
    if pods > MAX_PODS {
        return Err(bad(
            "services[].max_replicas",
            format!("the services may ask for {pods} pods in all; the limit is {MAX_PODS}"),
        ));
    }
    let duration = l.duration_s();
    // A row is ~320 bytes plus 20 per service and 16 per GPU model (metrics::WindowRow).
    let ticks = duration / s.tick_s;
    let row = 320.0 + 20.0 * s.services.len() as f64 + 16.0 * 3.0;
    if ticks * row > MAX_TIMESERIES_BYTES {
        return Err(bad(
            "tick_s",
            format!(
                "{ticks:.0} ticks × {} services need about {:.1} GiB of timeseries; the limit is 4 GiB (raise tick_s or shorten the run)",
                s.services.len(),
                ticks * row / (1024.0 * 1024.0 * 1024.0)
            ),
        ));
    }
    // Each source with its key, so the error can name the largest.
    let mut sources: Vec<(String, f64)> = Vec::new();
    if let Some(t) = &s.traffic {
        sources.push(("traffic".into(), expected_requests(t, duration)));
    }
    for (i, x) in s.services.iter().enumerate() {
        if let Some(t) = &x.traffic {
            sources.push((
                format!("services[{i}].traffic"),
                expected_requests(t, duration),
            ));
        }
    }
    let requests: f64 = sources.iter().map(|s| s.1).sum();
    if !(requests <= MAX_REQUESTS) {
        let largest = sources
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or("traffic".to_string(), |s| s.0.clone());
        return Err(bad(
            &largest,
            format!(
                "{requests:.3e} requests over {duration} s (duration × rate); the limit is {MAX_REQUESTS:e}: shorten the run or lower the rate"
            ),
        ));
    }
    Ok(())
}

/// The arrivals a generator would make over `duration` s, at its peak rate (traces and fitted
/// traffic are bounded by their file and `rate_scale`, so they count 0 here).
fn expected_requests(t: &TrafficSpec, duration: f64) -> f64 {
    match t {
        TrafficSpec::Poisson { qps } => qps * duration,
        TrafficSpec::Diurnal { anchors, scale } => {
            anchors.iter().map(|a| a.1).fold(0.0, f64::max) * scale * duration
        }
        TrafficSpec::Batch { count, .. } => *count as f64,
        TrafficSpec::Mmpp(m) => m.states.iter().map(|x| x.qps).fold(0.0, f64::max) * duration,
        TrafficSpec::Ramp(r) => r.from_qps.max(r.to_qps) * duration,
        TrafficSpec::Trace(_) | TrafficSpec::Fit(_) | TrafficSpec::Servegen(_) => 0.0,
    }
}
