//! The discrete-event simulation: arrivals, dispatch to replicas, completions, pod start-up,
//! and the 30-second monitoring loop that measures, autoscales and retries pending placements.
//! Placement and scaling are the engine's; this module only applies its decisions.

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

/// LLM replicas driven through their serving engines.
#[path = "llm_replica.rs"]
mod llm_replica;

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
    win_hist: Histogram<u64>,
    all_hist: Histogram<u64>,
    win_failed: u64,
    /// The next completion token (see [`crate::state::InFlight`]).
    next_token: u64,
    placements: u64,
    unschedulable: u64,
    scale_events: u64,
    allocated_gpu_sum: f64,
    peak_allocated: u32,
    models: Vec<GpuModel>,
    preemptions: u64,
    reconfig_gpu_seconds: f64,
    reconfigurations: u64,
    /// The `[reconfig]` rollout's executor (it reaches the simulation through
    /// [`RolloutWorld`]).
    rollout: Option<RolloutExecutor>,
    /// The start-up of the pod the rollout is placing now (its readiness probe's answer).
    startup_override: Option<(u32, f64)>,
    /// Reused buffer of requests an LLM engine finished.
    llm_done: Vec<gpusched_serving::Finished>,
    win_ttft: Histogram<u64>,
    win_tpot: Histogram<u64>,
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

impl<'a> Sim<'a> {
    fn new(sc: &'a LoadedScenario) -> Result<Self, SimError> {
        let s = &sc.scenario;
        let mut nodes = Vec::new();
        let mut gpus = Vec::new();
        let mut node_gpu_base = Vec::new();
        for pool in &s.pools {
            let spec = sc.catalog.spec(pool.gpu_model);
            for i in 1..=pool.nodes {
                let name = format!("{}-{}", pool.name, i);
                let ordinal = nodes.len() as u32;
                let mut node = NodeView::new(
                    name.clone(),
                    ordinal,
                    pool.name.clone(),
                    pool.gpu_model,
                    pool.gpus_per_node,
                    spec.memory_gb,
                );
                let state = s.node_state.iter().find(|n| n.node == name);
                let background = state.map_or(0.0, |n| n.background_utilisation);
                node.cordoned = state.is_some_and(|n| n.cordoned);
                if let Some(d) = pool.sharing {
                    node.designated = Some(d);
                    node.sharing = d;
                }
                let layout =
                    gpusched_policies::mig::layout_from_names(&pool.mig_layout, pool.gpu_model)
                        .unwrap_or_default();
                node_gpu_base.push(gpus.len() as u32);
                for g in 0..pool.gpus_per_node {
                    node.gpus[g as usize].utilisation = background;
                    if !layout.is_empty() {
                        node.gpus[g as usize].mig = layout
                            .iter()
                            .map(|i| MigSlot {
                                instance: *i,
                                replica: None,
                            })
                            .collect();
                        node.gpus[g as usize].mode = SharingMode::Mig;
                    }
                    gpus.push(GpuSim::new(
                        ordinal,
                        g,
                        pool.gpu_model,
                        spec.idle_w,
                        spec.tdp_w,
                        background,
                        &s.perf,
                    ));
                }
                nodes.push(node);
            }
        }
        let mut engine = Engine::new(s.engine.clone(), sc.catalog.clone(), nodes.len() as u32)?;
        // Decisions without a matrix go through the capacity index; the cluster state records
        // every change to `nodes` and reports it with `flush_to(&mut engine)`.
        engine.enable_index();
        let services: Vec<ServiceSim> = s
            .services
            .iter()
            .map(|spec| ServiceSim::new(spec.clone(), s.autoscaler.build()))
            .collect();
        let demand = s
            .services
            .iter()
            .map(|x| {
                let cv = x.service_time_cv;
                // Gamma with mean m and coefficient of variation cv: shape 1/cv², scale m·cv².
                // A cv so small that cv² underflows (1e-200) gives shape = inf, which Gamma
                // refuses: such a demand is constant, as with cv = 0 (it used to panic here).
                (cv > 0.0)
                    .then(|| Gamma::new(1.0 / (cv * cv), x.service_time_ms * cv * cv).ok())
                    .flatten()
            })
            .collect();
        let end = secs(sc.duration_s());
        let names: Vec<String> = s.services.iter().map(|x| x.name.clone()).collect();
        let mut sources = Vec::new();
        let resolve = |p: &std::path::Path| sc.resolve(p);
        if let Some(t) = &s.traffic {
            let weighted: Vec<(usize, f64)> = s
                .services
                .iter()
                .enumerate()
                .filter(|(_, x)| x.traffic.is_none())
                .map(|(i, x)| (i, x.traffic_weight))
                .collect();
            if !weighted.is_empty() {
                sources.push(ArrivalSource::new(
                    t,
                    Target::Mix(ServiceMix::new(&weighted)),
                    s.seed,
                    0,
                    to_secs(end),
                    resolve,
                    &names,
                    s.skip_bad_rows,
                )?);
            }
        }
        for (i, x) in s.services.iter().enumerate() {
            if let Some(t) = &x.traffic {
                sources.push(ArrivalSource::new(
                    t,
                    Target::One(i),
                    s.seed,
                    1 + i as u64,
                    to_secs(end),
                    resolve,
                    &names,
                    s.skip_bad_rows,
                )?);
            }
        }
        let mut demand_rng = ChaCha8Rng::seed_from_u64(s.seed);
        demand_rng.set_stream(1_000_000);
        let mut models: Vec<GpuModel> = s.pools.iter().map(|p| p.gpu_model).collect();
        models.sort();
        models.dedup();
        let diag = crate::diagnosis::Tracker::new(&services, &models, &gpus, &s.autoscaler);
        Ok(Self {
            sc,
            engine,
            nodes: ClusterState::new(nodes),
            node_gpu_base,
            gpus,
            replicas: Vec::new(),
            services,
            sources,
            demand,
            demand_rng,
            queue: EventQueue::default(),
            end,
            tick: secs(s.tick_s),
            decisions: Vec::new(),
            rows: Vec::new(),
            win_hist: latency_histogram(),
            all_hist: latency_histogram(),
            win_failed: 0,
            next_token: 0,
            placements: 0,
            unschedulable: 0,
            scale_events: 0,
            allocated_gpu_sum: 0.0,
            peak_allocated: 0,
            models,
            preemptions: 0,
            reconfig_gpu_seconds: 0.0,
            reconfigurations: 0,
            rollout: None,
            startup_override: None,
            llm_done: Vec::new(),
            win_ttft: latency_histogram(),
            win_tpot: latency_histogram(),
            route_rng: {
                let mut r = ChaCha8Rng::seed_from_u64(s.seed);
                r.set_stream(2_000_000);
                r
            },
            diag,
        })
    }

    fn start(&mut self) -> Result<(), SimError> {
        // Initial replicas are warm: the cluster was already serving when the run begins.
        for s in 0..self.services.len() {
            if self.services[s].spec.start_at_s > 0.0 {
                self.queue.push(
                    secs(self.services[s].spec.start_at_s),
                    Event::ServiceStart { service: s as u32 },
                );
                continue;
            }
            for _ in 0..self.services[s].spec.initial_replicas {
                let r = self.new_replica(s as u32);
                self.try_place(0, r, true);
            }
        }
        for src in 0..self.sources.len() {
            self.pull_arrival(src as u32)?;
        }
        if self.tick <= self.end {
            self.queue.push(self.tick, Event::Tick);
        }
        Ok(())
    }

    fn pull_arrival(&mut self, source: u32) -> Result<(), SimError> {
        if let Some(a) = self.sources[source as usize].next()? {
            let demand = Demand {
                ms: a.demand_ms.unwrap_or(f64::NAN),
                tokens: a.tokens,
            };
            self.queue.push(
                a.t,
                Event::Arrival {
                    source,
                    service: a.service as u32,
                    demand,
                },
            );
        }
        Ok(())
    }

    fn log(&mut self, t: SimTime, decision: Decision) {
        self.decisions.push(DecisionRecord {
            t_s: to_secs(t),
            decision,
        });
    }

    fn new_replica(&mut self, service: u32) -> u32 {
        let idx = self.replicas.len() as u32;
        self.replicas.push(Replica {
            service,
            state: ReplicaState::Pending,
            loc: None,
            extra_gpus: Vec::new(),
            share_pct: 0,
            slice: AllocSlice::Whole,
            generation: 0,
            in_flight: 0,
            running: Vec::new(),
            busy_since: 0,
            win_busy_us: 0,
            last_reason: None,
            llm: None,
            llm_next: None,
            llm_token: 0,
        });
        self.services[service as usize].replicas.push(idx);
        idx
    }

    /// Asks the engine for a node; applies a placement (after any preemption it asks for) or
    /// records why none was possible.
    fn try_place(&mut self, t: SimTime, r: u32, warm: bool) {
        let svc = self.replicas[r as usize].service as usize;
        let want = self.sc.scenario.record_matrix;
        let mut decision =
            self.engine
                .place(&self.nodes, &self.services[svc].workload, r as u64, want);
        if let Decision::Preempt { victims, .. } = &decision {
            let victims = victims.clone();
            self.preemptions += 1;
            self.log(t, decision);
            for v in victims {
                self.kill(t, v.replica as u32, FailCause::Preempted, "preempted");
            }
            decision = self
                .engine
                .place(&self.nodes, &self.services[svc].workload, r as u64, want);
            if let Decision::Preempt {
                workload, reason, ..
            } = decision
            {
                // Preempting twice in a row for one replica would loop: wait for the next tick.
                decision = Decision::Unschedulable {
                    workload,
                    replica: r as u64,
                    reason,
                    matrix: None,
                };
            }
        }
        match &decision {
            Decision::Place(p) => {
                self.apply_placement(t, r, p, warm);
                self.log(t, decision);
            }
            Decision::Unschedulable { reason, .. } => {
                self.unschedulable += 1;
                self.diag.refused(svc, reason);
                let rep = &mut self.replicas[r as usize];
                rep.state = ReplicaState::Pending;
                if rep.last_reason.as_deref() != Some(reason.as_str()) {
                    rep.last_reason = Some(reason.clone());
                    self.log(t, decision);
                }
            }
            _ => unreachable!("place returns Place, Preempt or Unschedulable"),
        }
    }

    /// Applies a placement: node config, MIG layout, the allocation, and the pod's start-up
    /// (delayed by a plugin restart or MIG re-layout when one is needed).
    fn apply_placement(&mut self, t: SimTime, r: u32, p: &Placement, warm: bool) {
        let svc = self.replicas[r as usize].service as usize;
        let d = &self.sc.scenario.disruption;
        let mut delay_s = 0.0;
        let gpu_count = self.nodes[p.node_index].gpus.len() as f64;
        // The cluster state applies the placement (config, MIG layout, every GPU's allocation);
        // the simulator charges the disruption it reports.
        let memory_gb = self.services[svc].workload.memory_per_gpu_gb();
        let applied = self.nodes.apply(p, memory_gb);
        if let Some(from) = applied.config_changed_from {
            if !warm && from != NodeSharing::Unset {
                delay_s += d.plugin_restart_s;
                self.reconfigurations += 1;
                self.reconfig_gpu_seconds += d.plugin_restart_s * gpu_count;
            }
        }
        if applied.mig_relayout && !warm {
            delay_s += d.mig_reconfigure_s;
            self.reconfigurations += 1;
            self.reconfig_gpu_seconds += d.mig_reconfigure_s;
        }
        self.nodes.flush_to(&mut self.engine);
        let base = self.node_gpu_base[p.node_index];
        let flat = base + p.gpu as u32;
        let rep = &mut self.replicas[r as usize];
        rep.loc = Some((p.node_index as u32, p.gpu, flat));
        rep.extra_gpus = p.gpus.iter().skip(1).map(|&g| base + g as u32).collect();
        rep.share_pct = p.share_pct;
        rep.slice = p.slice;
        rep.last_reason = None;
        self.placements += 1;
        self.llm_place(r);
        let rep = &mut self.replicas[r as usize];
        if warm && delay_s == 0.0 {
            rep.state = ReplicaState::Ready;
        } else {
            rep.state = ReplicaState::Starting;
            let startup = secs(self.pod_startup_s(r, svc) + delay_s);
            let generation = self.replicas[r as usize].generation;
            self.queue.push(
                t + startup,
                Event::ReplicaReady {
                    replica: r,
                    generation,
                },
            );
        }
    }

    /// The replica's pod dies now (evicted, or its GPU context lost): requests in flight fail
    /// with `cause`, its GPU slice is freed, and it goes back to pending to be placed again.
    fn kill(&mut self, t: SimTime, r: u32, cause: FailCause, why: &str) {
        self.llm_abort(r);
        let s = self.replicas[r as usize].service as usize;
        if self.replicas[r as usize].in_flight > 0 {
            self.set_replica_busy(t, r, false);
        }
        let rep = &mut self.replicas[r as usize];
        if rep.in_flight > 0 {
            for _ in 0..rep.in_flight {
                self.services[s].counts.fail(cause);
                self.win_failed += 1;
            }
            rep.in_flight = 0;
            rep.running.clear();
        }
        rep.generation += 1;
        self.free_slot(t, r, why);
        let rep = &mut self.replicas[r as usize];
        if rep.state != ReplicaState::Gone {
            rep.state = ReplicaState::Pending;
            rep.last_reason = None;
        }
    }

    /// Flat indices of every GPU replica `r` holds: its first, then a tensor-parallel
    /// replica's others. Empty when it is not placed.
    fn replica_flat_gpus(&self, r: u32) -> impl Iterator<Item = u32> + '_ {
        self.replicas[r as usize].flat_gpus()
    }

    /// Replica `r` went busy (its first request in flight) or idle (its last one done) at `t`:
    /// every GPU it holds changes busy state and power together (a tensor-parallel replica
    /// computes on all N). The one place the busy/idle accounting happens.
    fn set_replica_busy(&mut self, t: SimTime, r: u32, busy: bool) {
        let perf = &self.sc.scenario.perf;
        let rep = &self.replicas[r as usize];
        let delta = if busy { 1 } else { -1 };
        for flat in rep.flat_gpus() {
            let g = &mut self.gpus[flat as usize];
            let mode = self.nodes[g.node as usize].gpus[g.gpu as usize].mode;
            let (units, mig) = slice_units(rep.slice, rep.share_pct, g.model);
            g.client_change(t, delta, units, mig, mode, perf);
        }
    }

    fn sample_demand(&mut self, svc: usize, given: Demand) -> Demand {
        if given.is_known() {
            return given;
        }
        Demand::ms(match &self.demand[svc] {
            Some(g) => g.sample(&mut self.demand_rng).max(1e-3),
            None => self.services[svc].spec.service_time_ms,
        })
    }

    /// Billions of parameters of a service's model, for the token model.
    fn params_b(&self, svc: usize) -> f64 {
        let spec = &self.services[svc].spec;
        spec.model_params_b
            .unwrap_or(spec.model_memory_gb / self.sc.scenario.perf.tokens.bytes_per_param)
    }

    fn on_arrival(
        &mut self,
        t: SimTime,
        source: u32,
        service: u32,
        demand: Demand,
    ) -> Result<(), SimError> {
        let s = service as usize;
        if self.services[s].llm.is_some() {
            let svc = &mut self.services[s];
            svc.counts.arrived += 1;
            svc.win_arrivals += 1;
            self.llm_arrival(t, s, demand);
            return self.pull_arrival(source);
        }
        let demand = self.sample_demand(s, demand);
        let svc = &mut self.services[s];
        svc.counts.arrived += 1;
        svc.win_arrivals += 1;
        let concurrency = svc.spec.concurrency;
        // Least-loaded ready replica with a free slot; ties go to the oldest replica.
        let mut best: Option<(u32, u32)> = None;
        for &r in &svc.replicas {
            let rep = &self.replicas[r as usize];
            if rep.state == ReplicaState::Ready
                && rep.in_flight < concurrency
                && best.is_none_or(|(_, f)| rep.in_flight < f)
            {
                best = Some((r, rep.in_flight));
            }
        }
        match best {
            Some((r, _)) => self.start_request(t, r, t, demand),
            None if svc.queue.len() as u64 >= svc.spec.max_queue => {
                svc.counts.fail(FailCause::QueueFull);
                self.win_failed += 1;
            }
            None => svc.queue.push_back((t, demand)),
        }
        self.pull_arrival(source)
    }

    fn start_request(&mut self, t: SimTime, r: u32, arrived: SimTime, demand: Demand) {
        self.diag
            .waited(self.replicas[r as usize].service as usize, t - arrived);
        let params_b = self.params_b(self.replicas[r as usize].service as usize);
        let rep = &mut self.replicas[r as usize];
        let (node, gpu, flat) = rep.loc.expect("a ready replica is placed");
        rep.in_flight += 1;
        let k = rep.in_flight;
        if k == 1 {
            rep.busy_since = t;
            self.set_replica_busy(t, r, true);
        }
        let perf = &self.sc.scenario.perf;
        let rep = &self.replicas[r as usize];
        let share = rep.share_pct;
        let mode = self.nodes[node as usize].gpus[gpu as usize].mode;
        let g = &self.gpus[flat as usize];
        let (units, mig_share) = slice_units(rep.slice, share, g.model);
        let eff = match mode {
            SharingMode::Mps => perf.mps_effective(share, g.busy_share_pct, g.busy_clients),
            // Fair share by weight among the busy clients, less the context-switch loss.
            SharingMode::TimeSlicing { .. } => {
                perf.timeslice_effective(g.busy_clients) * g.busy_clients as f64 * units as f64
                    / g.busy_share_pct.max(1) as f64
            }
            SharingMode::Mig => mig_share,
            SharingMode::Exclusive | SharingMode::Free => 1.0,
        };
        let full_us =
            perf.batched_ms(&demand, self.sc.catalog.spec(g.model), params_b, k) * 1000.0 / eff;
        let token = self.next_token;
        self.next_token += 1;
        let rep = &mut self.replicas[r as usize];
        rep.running.push(InFlight {
            token,
            arrived,
            demand,
            eff,
            remaining: 1.0,
            since: t,
            full_us,
        });
        if perf.batching == Batching::ProcessorSharing {
            self.rerate(t, r);
        } else {
            let generation = rep.generation;
            self.queue.push(
                t + (full_us.round().max(1.0) as SimTime),
                Event::Completion {
                    replica: r,
                    generation,
                    token,
                },
            );
        }
    }

    /// Processor sharing: every request in flight on replica `r` continues at the pace of the
    /// batch size now; its completion is rescheduled (the earlier event becomes stale).
    fn rerate(&mut self, t: SimTime, r: u32) {
        let service = self.replicas[r as usize].service as usize;
        let params_b = self.params_b(service);
        let Some((_, _, flat)) = self.replicas[r as usize].loc else {
            return;
        };
        let spec = self.sc.catalog.spec(self.gpus[flat as usize].model);
        let perf = &self.sc.scenario.perf;
        let rep = &mut self.replicas[r as usize];
        let k = rep.running.len() as u32;
        for e in rep.running.iter_mut() {
            let done = (t - e.since) as f64 / e.full_us.max(1.0);
            e.remaining = (e.remaining - done).max(0.0);
            e.since = t;
            e.full_us = perf.batched_ms(&e.demand, spec, params_b, k) * 1000.0 / e.eff;
            e.token = self.next_token;
            self.next_token += 1;
            self.queue.push(
                t + ((e.remaining * e.full_us).round().max(1.0) as SimTime),
                Event::Completion {
                    replica: r,
                    generation: rep.generation,
                    token: e.token,
                },
            );
        }
    }

    fn on_completion(&mut self, t: SimTime, r: u32, token: u64) {
        let rep = &mut self.replicas[r as usize];
        // A request re-rated since this event was scheduled has a newer token: stale event.
        let Some(i) = rep.running.iter().position(|e| e.token == token) else {
            return;
        };
        let InFlight {
            arrived, demand, ..
        } = rep.running.swap_remove(i);
        rep.in_flight -= 1;
        debug_assert!(rep.loc.is_some(), "a serving replica is placed");
        if rep.in_flight == 0 {
            rep.win_busy_us += t - rep.busy_since;
            self.set_replica_busy(t, r, false);
        }
        let perf = &self.sc.scenario.perf;
        let rep = &self.replicas[r as usize];
        let s = rep.service as usize;
        let state = rep.state;
        let latency = (t - arrived).max(1) as u64;
        // Reference work: the request's time on an exclusive H100.
        let ref_ms = perf.exclusive_ms(
            &demand,
            self.sc.catalog.spec(GpuModel::H100_80GB),
            self.params_b(s),
        );
        let svc = &mut self.services[s];
        svc.counts.served += 1;
        svc.win_served += 1;
        svc.win_ref_work_ms += ref_ms;
        let output_tokens = demand.tokens.map_or(0, |(_, o)| o);
        let deadline_us = |sla: i64| sla + (svc.sla_per_token_us * output_tokens as f64) as i64;
        if svc
            .sla_us
            .is_none_or(|sla| latency as i64 <= deadline_us(sla))
        {
            svc.counts.served_within_sla += 1;
        }
        let _ = svc.hist.record(latency);
        let _ = svc.win_hist.record(latency);
        let _ = self.win_hist.record(latency);
        if perf.batching == Batching::ProcessorSharing {
            // The rest of the batch speeds up now (queued work may join it just below).
            self.rerate(t, r);
        }
        match state {
            ReplicaState::Ready => self.pull_queued(t, r),
            ReplicaState::Draining if self.replicas[r as usize].in_flight == 0 => {
                self.release(t, r, "scale-down drained")
            }
            _ => {}
        }
    }

    /// Gives replica `r` queued work until its slots are full, failing requests that timed out.
    fn pull_queued(&mut self, t: SimTime, r: u32) {
        let s = self.replicas[r as usize].service as usize;
        if self.services[s].llm.is_some() {
            // An engine queues what it cannot run yet: hand it everything still in time.
            while let Some((arrived, demand)) = self.services[s].queue.pop_front() {
                if t - arrived > self.services[s].timeout_us {
                    self.services[s].counts.fail(FailCause::Timeout);
                    self.win_failed += 1;
                    continue;
                }
                self.llm_submit(t, r, arrived, demand);
            }
            return;
        }
        let concurrency = self.services[s].spec.concurrency;
        while self.replicas[r as usize].in_flight < concurrency {
            let svc = &mut self.services[s];
            let Some((arrived, demand)) = svc.queue.pop_front() else {
                break;
            };
            if t - arrived > svc.timeout_us {
                svc.counts.fail(FailCause::Timeout);
                self.win_failed += 1;
                continue;
            }
            self.start_request(t, r, arrived, demand);
        }
    }

    fn on_ready(&mut self, t: SimTime, r: u32) {
        if self.replicas[r as usize].state == ReplicaState::Starting {
            self.replicas[r as usize].state = ReplicaState::Ready;
            self.pull_queued(t, r);
        }
    }

    /// Gives a replica's GPU slice back (if it holds one) and logs the release.
    fn free_slot(&mut self, t: SimTime, r: u32, why: &str) {
        self.llm_retire(r);
        let rep = &mut self.replicas[r as usize];
        let s = rep.service as usize;
        let Some((node, gpu, _)) = rep.loc.take() else {
            return;
        };
        rep.extra_gpus.clear();
        // All of its GPUs: a tensor-parallel replica holds several.
        let gpus = self.nodes.release(node as usize, r as u64);
        self.nodes.flush_to(&mut self.engine);
        let name = self.nodes[node as usize].name.clone();
        let workload = self.services[s].spec.name.clone();
        self.log(
            t,
            Decision::Release {
                workload,
                replica: r as u64,
                node: name,
                gpu,
                gpus,
                reason: why.to_string(),
            },
        );
    }

    /// Frees a replica's GPU share and forgets it.
    fn release(&mut self, t: SimTime, r: u32, why: &str) {
        let rep = &mut self.replicas[r as usize];
        let s = rep.service as usize;
        rep.state = ReplicaState::Gone;
        self.free_slot(t, r, why);
        self.services[s].replicas.retain(|&x| x != r);
    }

    fn on_tick(&mut self, t: SimTime) {
        let window_s = to_secs(self.tick);
        for g in &mut self.gpus {
            g.integrate(t);
        }
        self.llm_timeouts(t);
        // Requests that waited past their timeout fail now, so queue lengths are honest.
        for svc in &mut self.services {
            while let Some(&(arrived, _)) = svc.queue.front() {
                if t - arrived <= svc.timeout_us {
                    break;
                }
                svc.queue.pop_front();
                svc.counts.fail(FailCause::Timeout);
                self.win_failed += 1;
            }
        }
        // Replica busy time up to now.
        for rep in &mut self.replicas {
            if rep.in_flight > 0
                && matches!(rep.state, ReplicaState::Ready | ReplicaState::Draining)
            {
                rep.win_busy_us += t - rep.busy_since;
                rep.busy_since = t;
            }
        }
        let row = self.measure(t, window_s);
        let signals = self.service_signals(t, window_s);
        self.rows.push(row);
        self.autoscale(t, signals);
        self.rollout_tick(t);
        // Retry pending replicas in creation order.
        let pending: Vec<u32> = (0..self.replicas.len() as u32)
            .filter(|&r| self.replicas[r as usize].state == ReplicaState::Pending)
            .collect();
        for r in pending {
            self.try_place(t, r, false);
        }
        // New window.
        for g in &mut self.gpus {
            g.reset_window();
        }
        for rep in &mut self.replicas {
            rep.win_busy_us = 0;
        }
        for svc in &mut self.services {
            svc.win_arrivals = 0;
            svc.win_served = 0;
            svc.win_ref_work_ms = 0.0;
            svc.win_hist.reset();
        }
        self.win_hist.reset();
        self.win_ttft.reset();
        self.win_tpot.reset();
        self.win_failed = 0;
        if t + self.tick <= self.end {
            self.queue.push(t + self.tick, Event::Tick);
        }
    }

    fn measure(&mut self, t: SimTime, window_s: f64) -> WindowRow {
        let window_us = self.tick as f64;
        let mut util = vec![0.0; self.models.len()];
        let mut power = vec![0.0; self.models.len()];
        let mut count = vec![0u32; self.models.len()];
        // Every GPU is re-measured: one report for the whole cluster.
        self.nodes.all_changed();
        for g in &self.gpus {
            let m = self.models.binary_search(&g.model).expect("known model");
            let busy = g.win_busy_us as f64 / window_us;
            util[m] += busy.max(g.background);
            power[m] += g.win_energy_j / window_s;
            count[m] += 1;
            // The view's utilisation is what NVML would report for the last window.
            self.nodes
                .set_utilisation(g.node as usize, g.gpu, busy.max(g.background).min(1.0));
        }
        self.nodes.flush_to(&mut self.engine);
        for (u, c) in util.iter_mut().zip(&count) {
            *u /= (*c).max(1) as f64;
        }
        let (mut allocated, mut free_partial, mut free_all) = (0u32, 0.0, 0.0);
        for n in &self.nodes {
            for g in &n.gpus {
                let free = g.share_free_pct() as f64;
                free_all += free;
                if !g.allocations.is_empty() {
                    allocated += 1;
                    free_partial += free;
                }
            }
        }
        self.allocated_gpu_sum += allocated as f64;
        self.peak_allocated = self.peak_allocated.max(allocated);
        let mut row = WindowRow {
            t_s: to_secs(t),
            failed: self.win_failed,
            p50_ms: percentile_ms(&self.win_hist, 0.50),
            p95_ms: percentile_ms(&self.win_hist, 0.95),
            p99_ms: percentile_ms(&self.win_hist, 0.99),
            ttft_p50_ms: percentile_ms(&self.win_ttft, 0.50),
            ttft_p99_ms: percentile_ms(&self.win_ttft, 0.99),
            tpot_p50_ms: percentile_ms(&self.win_tpot, 0.50),
            tpot_p99_ms: percentile_ms(&self.win_tpot, 0.99),
            allocated_gpus: allocated,
            fragmentation: if free_all > 0.0 {
                free_partial / free_all
            } else {
                0.0
            },
            power_w_total: power.iter().sum(),
            util_by_model: util,
            power_w_by_model: power,
            energy_kwh_cum: self.gpus.iter().map(|g| g.energy_j).sum::<f64>() / 3.6e6,
            ..Default::default()
        };
        for svc in &mut self.services {
            row.arrivals += svc.win_arrivals;
            row.served += svc.win_served;
            row.queue_len += svc.queue.len() as u64;
            let mut n = 0;
            for &r in &svc.replicas {
                let rep = &self.replicas[r as usize];
                row.in_flight += rep.in_flight as u64;
                match rep.state {
                    ReplicaState::Ready => {
                        row.replicas_ready += 1;
                        n += 1;
                    }
                    ReplicaState::Starting | ReplicaState::Pending => n += 1,
                    _ => {}
                }
            }
            row.replicas += n;
            svc.replicas_min = svc.replicas_min.min(n);
            svc.replicas_max = svc.replicas_max.max(n);
            let placed = svc
                .replicas
                .iter()
                .filter(|&&r| self.replicas[r as usize].loc.is_some())
                .count();
            svc.replica_seconds += placed as f64 * window_s;
            row.replicas_by_service.push(n);
            row.qps_by_service.push(svc.win_arrivals as f64 / window_s);
            row.p99_ms_by_service
                .push(percentile_ms(&svc.win_hist, 0.99));
        }
        let (sv, rp, gp, nd, md) = (
            &self.services,
            &self.replicas,
            &self.gpus,
            &self.nodes,
            &self.models,
        );
        self.diag.observe(to_secs(t), window_s, sv, rp, gp, nd, md);
        row
    }

    /// Per-service signals for the autoscaler: queue, efficiency, cost per inference.
    fn service_signals(&self, t: SimTime, window_s: f64) -> Vec<ServiceSignals> {
        let ref_tops = self.sc.catalog.spec(GpuModel::H100_80GB).seeds_tops;
        let kwh_price = self.sc.scenario.costs.energy_usd_per_kwh;
        self.services
            .iter()
            .map(|svc| {
                let (mut replicas, mut ready, mut in_flight) = (0u32, 0u32, 0u64);
                let (mut energy_j, mut gpu_usd, mut busy) = (0.0, 0.0, 0.0);
                for &r in &svc.replicas {
                    let rep = &self.replicas[r as usize];
                    in_flight += rep.in_flight as u64;
                    match rep.state {
                        ReplicaState::Ready => {
                            ready += 1;
                            replicas += 1;
                            busy += rep.win_busy_us as f64 / (window_s * 1e6);
                        }
                        ReplicaState::Starting | ReplicaState::Pending => replicas += 1,
                        _ => {}
                    }
                    // Each of its GPUs (N for a tensor-parallel replica) bills its share.
                    for flat in self.replica_flat_gpus(r) {
                        let gs = &self.gpus[flat as usize];
                        let g = &self.nodes[gs.node as usize].gpus[gs.gpu as usize];
                        let total = g.share_allocated_pct.max(1) as f64;
                        energy_j += gs.win_energy_j * rep.share_pct as f64 / total;
                        gpu_usd += rep.share_pct as f64 / 100.0
                            * self.sc.catalog.spec(gs.model).price_per_hour
                            * window_s
                            / 3600.0;
                    }
                }
                let cost = gpu_usd + energy_j / 3.6e6 * kwh_price;
                let watts = energy_j / window_s;
                let tops = svc.win_ref_work_ms / 1000.0 / window_s * ref_tops;
                ServiceSignals {
                    t_s: to_secs(t),
                    replicas,
                    ready_replicas: ready,
                    queue_len: svc.queue.len() as u64,
                    in_flight,
                    efficiency_tops_per_w: if watts > 0.0 { tops / watts } else { 0.0 },
                    cost_per_inference: if svc.win_served > 0 {
                        cost / svc.win_served as f64
                    } else {
                        f64::INFINITY
                    },
                    utilisation: if ready > 0 { busy / ready as f64 } else { 0.0 },
                }
            })
            .collect()
    }

    fn autoscale(&mut self, t: SimTime, signals: Vec<ServiceSignals>) {
        for (s, sig) in signals.into_iter().enumerate() {
            let (min, max) = (
                self.services[s].spec.min_replicas,
                self.services[s].spec.max_replicas,
            );
            let Some(scaler) = self.services[s].autoscaler.as_mut() else {
                continue;
            };
            let rec = scaler.recommend(&sig, min, max);
            let name = scaler.name();
            if rec.desired == sig.replicas {
                continue;
            }
            self.scale_events += 1;
            let svc = &mut self.services[s];
            if rec.desired > sig.replicas {
                svc.scale_ups += 1;
            } else {
                svc.scale_downs += 1;
            }
            let service = svc.spec.name.clone();
            self.log(
                t,
                Decision::Scale(ScaleDecision {
                    service,
                    autoscaler: name,
                    from: sig.replicas,
                    to: rec.desired,
                    reason: rec.reason,
                }),
            );
            if rec.desired > sig.replicas {
                self.diag.scaled_up(s, to_secs(t));
                for _ in sig.replicas..rec.desired {
                    let r = self.new_replica(s as u32);
                    self.try_place(t, r, false);
                }
            } else {
                self.scale_down(t, s, sig.replicas - rec.desired);
            }
        }
    }

    /// Removes `n` replicas: pending first, then starting, then the newest ready ones (drained).
    fn scale_down(&mut self, t: SimTime, s: usize, mut n: u32) {
        for wanted in [
            ReplicaState::Pending,
            ReplicaState::Starting,
            ReplicaState::Ready,
        ] {
            let victims: Vec<u32> = self.services[s]
                .replicas
                .iter()
                .rev()
                .copied()
                .filter(|&r| self.replicas[r as usize].state == wanted)
                .filter(|&r| !self.rollout_protected(r))
                .collect();
            for r in victims {
                if n == 0 {
                    return;
                }
                n -= 1;
                match wanted {
                    ReplicaState::Pending => {
                        self.replicas[r as usize].state = ReplicaState::Gone;
                        self.services[s].replicas.retain(|&x| x != r);
                    }
                    ReplicaState::Starting => self.release(t, r, "scale-down before ready"),
                    _ => {
                        if self.replicas[r as usize].in_flight == 0 {
                            self.release(t, r, "scale-down");
                        } else {
                            self.replicas[r as usize].state = ReplicaState::Draining;
                        }
                    }
                }
            }
        }
    }

    fn finish(mut self) -> RunResult {
        for r in 0..self.replicas.len() as u32 {
            self.llm_retire_counts(r);
        }
        let reconfig = self.rollout_report();
        let trace_reports: Vec<ReplayReport> =
            self.sources.iter().filter_map(|x| x.report()).collect();
        // The run-wide histogram is the per-service ones merged (same counts, one record per
        // completion instead of two: the histograms were a profiled hot spot).
        for svc in &self.services {
            let _ = self.all_hist.add(&svc.hist);
        }
        let end = self.end;
        for g in &mut self.gpus {
            g.integrate(end);
        }
        let s = &self.sc.scenario;
        let dur_s = to_secs(end);
        let mut total = RequestCounts::default();
        let mut services = Vec::new();
        for svc in &mut self.services {
            svc.counts.queued_at_end = svc.queue.len() as u64;
            svc.counts.in_service_at_end = svc
                .replicas
                .iter()
                .map(|&r| self.replicas[r as usize].in_flight as u64)
                .sum();
            let c = &svc.counts;
            total.arrived += c.arrived;
            total.served += c.served;
            total.failed += c.failed;
            total.queued_at_end += c.queued_at_end;
            total.in_service_at_end += c.in_service_at_end;
            total.served_within_sla += c.served_within_sla;
            for (k, v) in &c.failed_by_cause {
                *total.failed_by_cause.entry(k).or_default() += v;
            }
            let finished = c.served + c.failed;
            services.push(ServiceSummary {
                name: svc.spec.name.clone(),
                requests: c.clone(),
                latency: LatencySummary::from_histogram(&svc.hist),
                latency_sla_ms: svc.spec.latency_sla_ms,
                slo_attainment: if finished > 0 {
                    c.served_within_sla as f64 / finished as f64
                } else {
                    1.0
                },
                replicas_min: if svc.replicas_min == u32::MAX {
                    0
                } else {
                    svc.replicas_min
                },
                replicas_max: svc.replicas_max,
                replica_hours: svc.replica_seconds / 3600.0,
                scale_ups: svc.scale_ups,
                scale_downs: svc.scale_downs,
                llm: llm_summary(svc, dur_s),
                latency_cdf_ms: crate::metrics::latency_cdf_ms(&svc.hist),
            });
        }
        let mut by_model = std::collections::BTreeMap::new();
        let (mut busy, mut idle, mut energy, mut gpu_usd) = (0.0, 0.0, 0.0, 0.0);
        for g in &self.gpus {
            let spec = self.sc.catalog.spec(g.model);
            let e: &mut GpuModelSummary = by_model.entry(g.model.as_str().to_string()).or_default();
            e.gpus += 1;
            e.gpu_seconds += dur_s;
            e.busy_seconds += g.busy_us as f64 / 1e6;
            e.idle_seconds += g.idle_us as f64 / 1e6;
            e.energy_kwh += g.energy_j / 3.6e6;
            e.gpu_cost_usd += spec.price_per_hour * dur_s / 3600.0;
            busy += g.busy_us as f64 / 1e6;
            idle += g.idle_us as f64 / 1e6;
            energy += g.energy_j / 3.6e6;
            gpu_usd += spec.price_per_hour * dur_s / 3600.0;
        }
        for e in by_model.values_mut() {
            let t = e.busy_seconds + e.idle_seconds;
            e.utilisation = if t > 0.0 { e.busy_seconds / t } else { 0.0 };
            e.mean_power_w = if dur_s > 0.0 {
                e.energy_kwh * 3.6e6 / dur_s
            } else {
                0.0
            };
        }
        let energy_usd = energy * s.costs.energy_usd_per_kwh;
        let total_usd = gpu_usd + energy_usd;
        let finished = total.served + total.failed;
        let gpus_total = self.gpus.len() as u32;
        let summary = Summary {
            scenario: s.name.clone(),
            seed: s.seed,
            policy: self.engine.profile_name().to_string(),
            autoscaler: self
                .services
                .first()
                .and_then(|x| x.autoscaler.as_ref())
                .map_or("none", |a| a.name())
                .to_string(),
            duration_s: dur_s,
            latency: LatencySummary::from_histogram(&self.all_hist),
            slo_attainment: if finished > 0 {
                total.served_within_sla as f64 / finished as f64
            } else {
                1.0
            },
            requests: total.clone(),
            services,
            gpu_models: by_model,
            gpus_total,
            gpu_seconds_total: gpus_total as f64 * dur_s,
            busy_seconds_total: busy,
            idle_seconds_total: idle,
            energy_kwh: energy,
            mean_power_w: if dur_s > 0.0 {
                energy * 3.6e6 / dur_s
            } else {
                0.0
            },
            cost: CostSummary {
                gpu_usd,
                energy_usd,
                total_usd,
                usd_per_1k_inferences: if total.served > 0 {
                    total_usd / total.served as f64 * 1000.0
                } else {
                    0.0
                },
                usd_per_gpu_hour_effective: if gpus_total > 0 && dur_s > 0.0 {
                    total_usd / (gpus_total as f64 * dur_s / 3600.0)
                } else {
                    0.0
                },
            },
            placements: self.placements,
            unschedulable: self.unschedulable,
            scale_events: self.scale_events,
            peak_allocated_gpus: self.peak_allocated,
            mean_allocated_gpus: if self.rows.is_empty() {
                0.0
            } else {
                self.allocated_gpu_sum / self.rows.len() as f64
            },
            events: self.queue.popped(),
            bad_trace_rows_skipped: trace_reports.iter().map(|r| r.bad_rows_skipped).sum(),
            preemptions: self.preemptions,
            reconfig_gpu_seconds: self.reconfig_gpu_seconds,
            reconfigurations: self.reconfigurations,
            consolidation: gpusched_policies::consolidation::analyse(&self.nodes, 0.5),
            latency_cdf_ms: crate::metrics::latency_cdf_ms(&self.all_hist),
            reconfig,
            ttft: llm_overall(&self.services, |s| &s.ttft_hist),
            tpot: llm_overall(&self.services, |s| &s.tpot_hist),
            binding_constraints: None,
        };
        let mut summary = summary;
        summary.binding_constraints = Some(self.diag.report(dur_s, &summary.services));
        let timeseries = Timeseries {
            models: self.models.iter().map(|m| m.as_str().to_string()).collect(),
            services: self.services.iter().map(|x| x.spec.name.clone()).collect(),
            window_s: to_secs(self.tick),
            rows: self.rows,
            llm: self.services.iter().any(|s| s.llm.is_some()),
        };
        RunResult {
            summary,
            timeseries,
            decisions: self.decisions,
            trace_reports,
            rollout_transcripts: self
                .rollout
                .map(RolloutExecutor::into_transcripts)
                .unwrap_or_default(),
        }
    }
}

/// The rollout's hooks: the executor is taken out of the simulation while it runs, and reaches
/// the simulation only through [`RolloutWorld`].
impl Sim<'_> {
    /// Sets up the scenario's rollout, if it has a `[reconfig]` section.
    fn init_rollout(&mut self) {
        if let Some(cfg) = self.sc.scenario.reconfig.clone() {
            self.rollout = Some(RolloutExecutor::new(cfg, &self.nodes, &self.engine));
        }
    }

    fn with_rollout(&mut self, f: impl FnOnce(&mut RolloutExecutor, &mut Self)) {
        if let Some(mut x) = self.rollout.take() {
            f(&mut x, self);
            self.rollout = Some(x);
        }
    }

    /// Called after each tick's measurement.
    fn rollout_tick(&mut self, t: SimTime) {
        self.with_rollout(|x, sim| x.tick(sim, t));
    }

    /// A wake-up the rollout asked for.
    fn rollout_wake(&mut self, t: SimTime) {
        self.with_rollout(|x, sim| x.wake(sim, t));
    }

    /// Start-up of replica `r` of service `svc`: with the readiness probe when a rollout
    /// (re)started it.
    fn pod_startup_s(&self, r: u32, svc: usize) -> f64 {
        let startup = self.services[svc].spec.startup_s;
        match (&self.startup_override, &self.rollout) {
            (Some((x, s)), _) if *x == r => *s,
            (_, Some(x)) => x.startup_s(r, startup),
            _ => startup,
        }
    }

    /// A pod the rollout is moving or waiting for: the autoscaler leaves it alone.
    fn rollout_protected(&self, r: u32) -> bool {
        self.rollout.as_ref().is_some_and(|x| x.protects(r))
    }

    /// The rollout's report for summary.json.
    fn rollout_report(&mut self) -> Option<ReconfigReport> {
        let mut x = self.rollout.take()?;
        let r = x.report(self, self.end);
        self.rollout = Some(x);
        Some(r)
    }
}

impl RolloutWorld for Sim<'_> {
    fn nodes(&self) -> &[NodeView] {
        &self.nodes
    }

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn rows(&self) -> &[WindowRow] {
        &self.rows
    }

    fn tick_s(&self) -> f64 {
        to_secs(self.tick)
    }

    fn plugin_restart_s(&self) -> f64 {
        self.sc.scenario.disruption.plugin_restart_s
    }

    fn service_name(&self, service: usize) -> &str {
        &self.services[service].spec.name
    }

    fn service_startup_s(&self, service: usize) -> f64 {
        self.services[service].spec.startup_s
    }

    fn service_pods(&self, service: usize) -> &[u32] {
        &self.services[service].replicas
    }

    fn pod(&self, r: u32) -> PodView {
        let rep = &self.replicas[r as usize];
        PodView {
            service: rep.service as usize,
            state: rep.state,
            node: rep.loc.map(|(n, _, _)| n as usize),
            share_pct: rep.share_pct,
            in_flight: rep.in_flight,
        }
    }

    fn pods_on(&self, n: usize) -> Vec<u32> {
        (0..self.replicas.len() as u32)
            .filter(|&r| {
                let rep = &self.replicas[r as usize];
                rep.loc.is_some_and(|(node, _, _)| node as usize == n)
                    && matches!(
                        rep.state,
                        ReplicaState::Starting | ReplicaState::Ready | ReplicaState::Draining
                    )
            })
            .collect()
    }

    fn set_cordoned(&mut self, n: usize, cordoned: bool) {
        self.nodes.set_cordoned(n, cordoned);
        self.nodes.flush_to(&mut self.engine);
    }

    fn start_pod(&mut self, t: SimTime, service: usize, startup_s: f64) -> u32 {
        let r = self.new_replica(service as u32);
        self.startup_override = Some((r, startup_s));
        self.try_place(t, r, false);
        self.startup_override = None;
        r
    }

    fn evict(&mut self, t: SimTime, r: u32) {
        if self.replicas[r as usize].in_flight == 0 {
            self.release(t, r, "evicted for a config rollout");
        } else {
            self.replicas[r as usize].state = ReplicaState::Draining;
        }
    }

    fn restart_pod(&mut self, t: SimTime, r: u32) -> u64 {
        let rep = &self.replicas[r as usize];
        let draining = rep.state == ReplicaState::Draining;
        let svc = rep.service as usize;
        let before = self.services[svc].counts.failed;
        self.kill(
            t,
            r,
            FailCause::PodRestart,
            "lost its GPU context (device-plugin restart)",
        );
        if draining {
            // It was leaving anyway: its replacement exists.
            self.replicas[r as usize].state = ReplicaState::Gone;
            self.services[svc].replicas.retain(|&y| y != r);
        }
        self.services[svc].counts.failed - before
    }

    fn apply_node_config(&mut self, n: usize, sharing: NodeSharing) {
        self.nodes.set_sharing(n, sharing);
        self.nodes.flush_to(&mut self.engine);
        let d = &self.sc.scenario.disruption;
        self.reconfigurations += 1;
        self.reconfig_gpu_seconds += d.plugin_restart_s * self.nodes[n].gpus.len() as f64;
    }

    fn set_time_slicing_replicas(&mut self, family: GpuFamily, replicas: u8) {
        let mut cfg = self.engine.config.clone();
        match family {
            GpuFamily::H100 => cfg.time_slicing.h100_replicas = replicas,
            GpuFamily::A100 => cfg.time_slicing.a100_replicas = replicas,
        }
        if let Ok(mut e) = Engine::new(cfg, self.engine.catalog.clone(), self.nodes.len() as u32) {
            // A fresh engine gets a fresh capacity index over the current nodes.
            e.enable_index();
            e.all_nodes_changed();
            self.engine = e;
        }
    }

    fn log_step(&mut self, t: SimTime, step: RolloutStep) {
        self.log(t, Decision::Rollout(step));
    }

    fn wake_at(&mut self, t: SimTime) {
        self.queue.push(t, Event::RolloutWake);
    }
}

/// One distribution over every LLM service's requests (None without LLM services).
fn llm_overall(
    services: &[ServiceSim],
    h: fn(&ServiceSim) -> &Histogram<u64>,
) -> Option<LatencySummary> {
    let mut all = latency_histogram();
    let mut any = false;
    for s in services.iter().filter(|s| s.llm.is_some()) {
        any = true;
        let _ = all.add(h(s));
    }
    any.then(|| LatencySummary::from_histogram(&all))
}

/// An LLM service's TTFT/TPOT distributions, SLO outcome and engine counters.
fn llm_summary(svc: &ServiceSim, dur_s: f64) -> Option<LlmServiceSummary> {
    let llm = svc.llm.as_ref()?;
    let slo = svc.spec.slo.as_ref().map(|slo| {
        let q = slo.percentile / 100.0;
        let ttft = percentile_ms(&svc.ttft_hist, q);
        let tpot = percentile_ms(&svc.tpot_hist, q);
        LlmSloOutcome {
            percentile: slo.percentile,
            ttft_ms: slo.ttft_ms,
            ttft_at_percentile_ms: ttft,
            tpot_ms: slo.tpot_ms,
            tpot_at_percentile_ms: tpot,
            met: svc.counts.served > 0
                && slo.ttft_ms.is_none_or(|b| ttft <= b)
                && slo.tpot_ms.is_none_or(|b| tpot <= b),
        }
    });
    Some(LlmServiceSummary {
        model: llm.arch.name.to_string(),
        dtype: llm.dtype.as_str().to_string(),
        stack: llm.stack.name.clone(),
        tensor_parallel: llm.tp,
        ttft: LatencySummary::from_histogram(&svc.ttft_hist),
        tpot: LatencySummary::from_histogram(&svc.tpot_hist),
        ttft_cdf_ms: crate::metrics::latency_cdf_ms(&svc.ttft_hist),
        tpot_cdf_ms: crate::metrics::latency_cdf_ms(&svc.tpot_hist),
        slo,
        counts: svc.llm_counts.clone(),
        output_tokens_per_s: if dur_s > 0.0 {
            svc.llm_counts.output_tokens as f64 / dur_s
        } else {
            0.0
        },
    })
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

/// A replica's weight in its GPU's busy accounting: MPS thread percentage or time-slice weight,
/// and the throughput share of a MIG instance.
fn slice_units(slice: AllocSlice, share_pct: u8, model: GpuModel) -> (u32, f64) {
    match slice {
        AllocSlice::Mig { instance } => (0, instance.profile.throughput_share(model)),
        AllocSlice::TimeSlice { weight } => (weight, 0.0),
        AllocSlice::Mps { pct } => (pct as u32, 0.0),
        AllocSlice::Whole => (share_pct as u32, 0.0),
    }
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
