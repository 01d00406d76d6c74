//! The discrete-event simulation: arrivals, dispatch to replicas, completions, pod start-up,
//! and the 30-second monitoring loop that measures, autoscales and retries pending placements.
//! Placement and scaling are the engine's; this module only applies its decisions.
//!
//! This file holds the simulator's state (`Sim`), its events and the event loop; each job is a
//! child module that adds `Sim`'s methods for it:
//! * `build` — the cluster, engine, services and traffic sources from the scenario;
//! * `placement` — replicas as pods: placement, start-up, kill, release, GPU busy accounting;
//! * `requests` — the request lifecycle (arrival, dispatch, queue, service, completion);
//! * `llm_replica` — LLM replicas driven through their serving engines;
//! * `monitor` — the per-tick measurement window (timeseries.csv) and retries;
//! * `autoscaling` — autoscaler signals and scale up/down;
//! * `rollout_world` — the rollout's hooks and `Sim`'s side of [`RolloutWorld`], through
//!   which the rollout executor (`crate::rollout`, a module of its own) reaches the simulation;
//! * `summary` — the run's summary.json.

use crate::events::{secs, to_secs, EventQueue, SimTime};
use crate::metrics::*;
use crate::perf::{Batching, Demand};
use crate::scenario::LoadedScenario;
use crate::state::{GpuSim, InFlight, Replica, ReplicaState, ServiceSim};

use crate::reconfig::ReconfigReport;
use crate::rollout::{PodView, RolloutExecutor, RolloutWorld, Transcript};
use crate::trace::pipeline::ReplayReport;
use crate::traffic::{ArrivalSource, ServiceMix, Target, TraceError};
use gpusched_policies::autoscale::ServiceSignals;
use gpusched_policies::cluster::ClusterState;
use gpusched_policies::decision::Placement;
use gpusched_policies::decision::{Decision, ScaleDecision};
use gpusched_policies::gpu::GpuFamily;
use gpusched_policies::rollout::RolloutStep;
use gpusched_policies::sharing::NodeSharing;
use gpusched_policies::view::{AllocSlice, MigSlot, NodeView, SharingMode};
use gpusched_policies::{Engine, GpuModel};
use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

mod autoscaling;
mod build;
pub use build::cluster_nodes;
/// LLM replicas driven through their serving engines.
mod llm_replica;
mod monitor;
mod placement;
mod requests;
mod rollout_world;
mod summary;

use monitor::Window;
use summary::RunTotals;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Trace(#[from] TraceError),
    #[error("engine configuration: {0}")]
    Engine(#[from] gpusched_policies::config::ConfigError),
}

impl SimError {
    /// Every way a run can stop early is a problem with what it was given (a malformed trace
    /// row, an engine setting): exit code 2, like a malformed scenario, under every command.
    pub fn is_input_error(&self) -> bool {
        match self {
            SimError::Trace(_) | SimError::Engine(_) => true,
        }
    }
}

/// One line of decisions.jsonl (shared with live mode, so it lives in the engine crate).
pub use gpusched_policies::DecisionRecord;

pub struct RunResult {
    pub summary: Summary,
    pub timeseries: Timeseries,
    pub decisions: Vec<DecisionRecord>,
    /// What each trace replay skipped or filtered (empty without traces).
    pub trace_reports: Vec<ReplayReport>,
    /// The `[reconfig]` rollout's machine transcripts, one per attempt (empty without one):
    /// every event the executor gave the rollout machine and the command it got back.
    pub rollout_transcripts: Vec<Transcript>,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Arrival {
        source: u32,
        service: u32,
        demand: Demand,
    },
    Completion {
        replica: u32,
        generation: u32,
        /// The request's current token ([`crate::state::InFlight`]); an older one is stale.
        token: u64,
    },
    ReplicaReady {
        replica: u32,
        /// The pod incarnation that becomes ready (a pod killed meanwhile is not).
        generation: u32,
    },
    /// A deployment is created: its initial replicas are placed now.
    ServiceStart {
        service: u32,
    },
    Tick,
    /// A timer of the sharing-layout rollout.
    RolloutWake,
    /// An LLM replica's engine finishes its work in progress (a batch change).
    LlmStep {
        replica: u32,
        generation: u32,
        token: u64,
    },
}

struct Sim<'a> {
    sc: &'a LoadedScenario,
    engine: Engine,
    /// The cluster state (node views and their change tracking), shared with live mode.
    nodes: ClusterState,
    /// First flat GPU index of each node.
    node_gpu_base: Vec<u32>,
    gpus: Vec<GpuSim>,
    replicas: Vec<Replica>,
    services: Vec<ServiceSim>,
    sources: Vec<ArrivalSource>,
    demand: Vec<Option<Gamma<f64>>>,
    demand_rng: ChaCha8Rng,
    queue: EventQueue<Event>,
    end: SimTime,
    tick: SimTime,
    decisions: Vec<DecisionRecord>,
    rows: Vec<WindowRow>,
    /// The measurement window under way (see `monitor`).
    window: Window,
    all_hist: Histogram<u64>,
    /// The next completion token (see [`crate::state::InFlight`]).
    next_token: u64,
    /// The run's counters for the summary (see `summary`).
    totals: RunTotals,
    models: Vec<GpuModel>,
    /// The `[reconfig]` rollout's executor (it reaches the simulation through
    /// [`RolloutWorld`]).
    rollout: Option<RolloutExecutor>,
    /// The start-up of the pod the rollout is placing now (its readiness probe's answer).
    startup_override: Option<(u32, f64)>,
    /// Reused buffer of requests an LLM engine finished.
    llm_done: Vec<gpusched_serving::Finished>,
    /// Random draws of the LLM request router (its own stream: other draws do not shift).
    route_rng: ChaCha8Rng,
    /// What bound the run (read-only counters: see [`crate::diagnosis`]).
    diag: crate::diagnosis::Tracker,
}

/// Runs a scenario to its end. `progress` is called at every tick with the fraction done.
pub fn run(sc: &LoadedScenario, progress: &mut dyn FnMut(f64)) -> Result<RunResult, SimError> {
    let mut sim = Sim::new(sc)?;
    sim.init_rollout();
    sim.start()?;
    while let Some(t) = sim.queue.peek_time() {
        if t > sim.end {
            break;
        }
        let (t, ev) = sim.queue.pop().expect("peeked");
        match ev {
            Event::Arrival {
                source,
                service,
                demand,
            } => sim.on_arrival(t, source, service, demand)?,
            Event::Completion {
                replica,
                generation,
                token,
            } => {
                // A stale generation means the pod died with the request in flight; the request
                // was failed then.
                if sim.replicas[replica as usize].generation == generation {
                    sim.on_completion(t, replica, token)
                }
            }
            Event::ReplicaReady {
                replica,
                generation,
            } => {
                if sim.replicas[replica as usize].generation == generation {
                    sim.on_ready(t, replica)
                }
            }
            Event::RolloutWake => sim.rollout_wake(t),
            Event::LlmStep {
                replica,
                generation,
                token,
            } => {
                let rep = &sim.replicas[replica as usize];
                if rep.generation == generation && rep.llm_token == token {
                    sim.llm_step(t, replica)
                }
            }
            Event::ServiceStart { service } => {
                for _ in 0..sim.services[service as usize].spec.initial_replicas {
                    let r = sim.new_replica(service);
                    sim.try_place(t, r, false);
                }
            }
            Event::Tick => {
                sim.on_tick(t);
                progress(t as f64 / sim.end.max(1) as f64);
            }
        }
    }
    Ok(sim.finish())
}

impl Sim<'_> {
    /// Appends one line of decisions.jsonl.
    fn log(&mut self, t: SimTime, decision: Decision) {
        self.decisions.push(DecisionRecord {
            t_s: to_secs(t),
            decision,
        });
    }
}

/// For `explain`: builds the scenario's cluster, optionally places the initial replicas, then
/// returns the engine's decision (with its full matrix) for one more replica of `service`.
pub fn explain_placement(
    sc: &LoadedScenario,
    service: &str,
    after_initial: bool,
) -> Result<Decision, SimError> {
    let mut sim = Sim::new(sc)?;
    if after_initial {
        for s in 0..sim.services.len() {
            for _ in 0..sim.services[s].spec.initial_replicas {
                let r = sim.new_replica(s as u32);
                sim.try_place(0, r, true);
            }
        }
    }
    let s = sim
        .services
        .iter()
        .position(|x| x.spec.name == service)
        .unwrap_or(0);
    let replica = sim.replicas.len() as u64;
    Ok(sim
        .engine
        .place(&sim.nodes, &sim.services[s].workload, replica, true))
}

/// A small scenario for the jobs' unit tests: one node of `gpus` H100s, one service `svc`
/// (40 GB model, whole GPUs, no initial replicas; the Sim is driven by hand, so its traffic
/// never arrives) plus `extra` TOML lines.
#[cfg(test)]
pub(crate) fn unit_scenario(gpus: u32, extra: &str) -> LoadedScenario {
    let text = format!(
        r#"
name = "unit"
duration_s = 60.0
seed = 1

[engine]
sharing = "exclusive"

[[pools]]
name = "h100"
gpu_model = "H100-80GB"
nodes = 1
gpus_per_node = {gpus}

[[services]]
name = "svc"
model_memory_gb = 40.0
service_time_ms = 100.0
min_replicas = 0
initial_replicas = 0
traffic = {{ kind = "poisson", qps = 1.0 }}
{extra}
"#
    );
    crate::scenario::load_str(&text, "unit.toml", std::env::temp_dir(), &[])
        .expect("the unit scenario loads")
}

#[cfg(test)]
mod tests {
    //! The request lifecycle on one replica, where every latency can be worked out by hand.

    use crate::scenario::load_str;
    use crate::{RunResult, ScenarioError};

    /// Two 1,000 ms requests (at 0 s and 0.5 s) on one exclusive H100 replica.
    fn two_requests(service: &str) -> Result<RunResult, ScenarioError> {
        let dir = std::env::temp_dir().join(format!("gpusched-sim-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // One file per call: the tests run in parallel.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let trace = dir.join(format!("two-{n}.csv"));
        std::fs::write(&trace, "arrival_s,demand_ms\n0.0,1000\n0.5,1000\n").unwrap();
        let text = format!(
            r#"
name = "unit"
duration_s = 10.0
seed = 1

[[pools]]
name = "h100"
gpu_model = "H100-80GB"
nodes = 1

[traffic]
kind = "trace"
path = {path:?}

[[services]]
name = "one"
model_memory_gb = 40.0
service_time_ms = 1000.0
{service}
"#,
            path = trace.to_str().unwrap()
        );
        let l = load_str(&text, "unit.toml", dir.clone(), &[])?;
        Ok(crate::run(&l, &mut |_| {}).expect("the run completes"))
    }

    #[test]
    fn a_busy_replica_queues_the_second_request_until_the_first_leaves() {
        let r = two_requests("concurrency = 1").unwrap();
        let s = &r.summary;
        assert_eq!(
            (s.requests.arrived, s.requests.served, s.requests.failed),
            (2, 2, 0)
        );
        // The first runs 1.0 s; the second waits 0.5 s for it, then runs 1.0 s.
        assert!((s.latency.max_ms - 1500.0).abs() < 15.0, "{:?}", s.latency);
        assert!((s.latency.mean_ms - 1250.0).abs() < 15.0, "{:?}", s.latency);
    }

    #[test]
    fn a_queue_timeout_fails_the_waiting_request_and_keeps_the_count() {
        let r = two_requests("concurrency = 1\nqueue_timeout_s = 0.2").unwrap();
        let c = &r.summary.requests;
        // The second would wait 0.5 s; it gives up after 0.2 s.
        assert_eq!((c.arrived, c.served, c.failed), (2, 1, 1));
        assert_eq!(c.failed_by_cause.get("timeout"), Some(&1), "{c:?}");
        assert!((r.summary.latency.max_ms - 1000.0).abs() < 10.0);
    }

    #[test]
    fn two_slots_serve_both_at_once() {
        let r = two_requests("concurrency = 2").unwrap();
        let s = &r.summary;
        assert_eq!(s.requests.served, 2);
        // No queueing: each request's latency is its own service time at the batch's pace,
        // never the 1.5 s of waiting behind the other.
        assert!(s.latency.max_ms < 1500.0 - 15.0, "{:?}", s.latency);
        assert!(s.latency.max_ms >= 1000.0 - 10.0, "{:?}", s.latency);
    }
}
