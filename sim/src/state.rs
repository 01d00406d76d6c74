//! The simulator's mutable state beside the engine's view: per-GPU power and busy-time
//! integrators, replicas, and per-service queues and counters.

use crate::events::SimTime;
use crate::metrics::{latency_histogram, RequestCounts};
use crate::perf::PerfConfig;
use crate::scenario::ServiceSpec;
use gpusched_policies::autoscale::Autoscaler;
use gpusched_policies::modes::BusyGpu;
use gpusched_policies::view::{AllocSlice, SharingMode};
use gpusched_policies::{GpuModel, WorkloadSpec};
use hdrhistogram::Histogram;
use std::collections::VecDeque;

/// Integrates one GPU's busy time and energy between state changes (O(1) per change).
#[derive(Debug, Clone)]
pub struct GpuSim {
    pub node: u32,
    pub gpu: u8,
    pub model: GpuModel,
    pub idle_w: f64,
    pub tdp_w: f64,
    /// Load from outside the simulation (another tenant), 0..=1.
    pub background: f64,
    pub busy_clients: u32,
    /// Sum over busy clients of their MPS thread percentage or time-slice weight.
    pub busy_share_pct: u32,
    /// Sum over busy MIG instances of their throughput share.
    pub busy_mig_share: f64,
    pub power_w: f64,
    pub last_t: SimTime,
    pub busy_us: i64,
    pub idle_us: i64,
    pub energy_j: f64,
    pub win_busy_us: i64,
    pub win_energy_j: f64,
}

impl GpuSim {
    pub fn new(
        node: u32,
        gpu: u8,
        model: GpuModel,
        idle_w: f64,
        tdp_w: f64,
        background: f64,
        perf: &PerfConfig,
    ) -> Self {
        let mut g = Self {
            node,
            gpu,
            model,
            idle_w,
            tdp_w,
            background,
            busy_clients: 0,
            busy_share_pct: 0,
            busy_mig_share: 0.0,
            power_w: idle_w,
            last_t: 0,
            busy_us: 0,
            idle_us: 0,
            energy_j: 0.0,
            win_busy_us: 0,
            win_energy_j: 0.0,
        };
        g.power_w = perf.power_w(idle_w, tdp_w, background);
        g
    }

    /// Accounts the time since the last change at the current state.
    pub fn integrate(&mut self, t: SimTime) {
        let dt = t - self.last_t;
        if dt <= 0 {
            return;
        }
        if self.busy_clients > 0 {
            self.busy_us += dt;
            self.win_busy_us += dt;
        } else {
            self.idle_us += dt;
        }
        let e = self.power_w * dt as f64 / 1e6;
        self.energy_j += e;
        self.win_energy_j += e;
        self.last_t = t;
    }

    /// A client became busy (`+1`) or idle (`-1`) at `t`. `units` is its MPS thread percentage
    /// or time-slice weight, `mig_share` the throughput share of its MIG instance.
    pub fn client_change(
        &mut self,
        t: SimTime,
        delta: i32,
        units: u32,
        mig_share: f64,
        mode: SharingMode,
        perf: &PerfConfig,
    ) {
        self.integrate(t);
        if delta > 0 {
            self.busy_clients += 1;
            self.busy_share_pct += units;
            self.busy_mig_share += mig_share;
        } else {
            self.busy_clients -= 1;
            self.busy_share_pct -= units;
            self.busy_mig_share = (self.busy_mig_share - mig_share).max(0.0);
        }
        let work = mode.spec().delivered_work(perf, &self.busy());
        self.power_w = perf.power_w(self.idle_w, self.tdp_w, (work + self.background).min(1.0));
    }

    /// What runs on the GPU now, as the sharing modes' perf hooks read it.
    pub fn busy(&self) -> BusyGpu {
        BusyGpu {
            clients: self.busy_clients,
            units: self.busy_share_pct,
            mig_share: self.busy_mig_share,
        }
    }

    pub fn reset_window(&mut self) {
        self.win_busy_us = 0;
        self.win_energy_j = 0.0;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Waiting for a node (unschedulable so far).
    Pending,
    /// Placed, loading the model.
    Starting,
    Ready,
    /// Scaled down: takes no new requests, leaves when its in-flight ones finish.
    Draining,
    Gone,
}

#[derive(Debug, Clone)]
pub struct Replica {
    pub service: u32,
    pub state: ReplicaState,
    /// (node index, GPU index in node, flat GPU index) of its first GPU.
    pub loc: Option<(u32, u8, u32)>,
    /// Flat indices of its other GPUs on the same node (a tensor-parallel replica); empty
    /// for a single-GPU replica.
    pub extra_gpus: Vec<u32>,
    pub share_pct: u8,
    pub slice: AllocSlice,
    /// Bumped when the replica's pod dies, so completions of its lost requests are ignored.
    pub generation: u32,
    pub in_flight: u32,
    /// The requests being served (`in_flight` of them), for their completion and re-rating.
    pub running: Vec<InFlight>,
    pub busy_since: SimTime,
    pub win_busy_us: i64,
    /// The last unschedulable reason logged, so a pending replica is not logged every tick.
    pub last_reason: Option<String>,
    /// An LLM service's serving engine (built when the replica is placed on its GPUs).
    pub llm: Option<Box<gpusched_serving::ReplicaEngine>>,
    /// When the engine's next step event is scheduled, and that event's token (older ones are
    /// stale).
    pub llm_next: Option<SimTime>,
    pub llm_token: u64,
}

impl Replica {
    /// Flat indices of every GPU the replica holds: its first, then a tensor-parallel
    /// replica's others. Empty when it is not placed.
    pub fn flat_gpus(&self) -> impl Iterator<Item = u32> + '_ {
        self.loc
            .map(|(_, _, flat)| flat)
            .into_iter()
            .chain(self.extra_gpus.iter().copied())
    }
}

/// A request being served on a replica.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// Matches the one live Completion event of this request; re-rating issues a new token, so
    /// the earlier event is recognised as stale.
    pub token: u64,
    pub arrived: SimTime,
    pub demand: crate::perf::Demand,
    /// Effective GPU share when it started.
    pub eff: f64,
    /// Fraction of the request's work still to do as of `since`.
    pub remaining: f64,
    pub since: SimTime,
    /// Time the whole request takes at the current batch size, µs.
    pub full_us: f64,
}

pub struct ServiceSim {
    pub spec: ServiceSpec,
    pub workload: WorkloadSpec,
    pub queue: VecDeque<(SimTime, crate::perf::Demand)>,
    /// Indices of replicas that are not Gone.
    pub replicas: Vec<u32>,
    pub autoscaler: Option<Box<dyn Autoscaler>>,
    pub counts: RequestCounts,
    pub hist: Histogram<u64>,
    pub sla_us: Option<i64>,
    /// Extra SLA per output token for token-carrying requests, µs.
    pub sla_per_token_us: f64,
    pub timeout_us: i64,
    pub win_arrivals: u64,
    pub win_served: u64,
    pub win_ref_work_ms: f64,
    /// End-to-end latencies of the current window ([`crate::metrics::window_histogram`]).
    pub win_hist: Histogram<u64>,
    pub replica_seconds: f64,
    pub replicas_min: u32,
    pub replicas_max: u32,
    pub scale_ups: u32,
    pub scale_downs: u32,
    /// The serving setup of an LLM service, and what its requests measured.
    pub llm: Option<crate::llm::LlmService>,
    pub ttft_hist: Histogram<u64>,
    pub tpot_hist: Histogram<u64>,
    pub llm_counts: LlmCounts,
}

/// What an LLM service's engines did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LlmCounts {
    /// Sequences preempted (KV cache full) and recomputed.
    pub preemptions: u64,
    /// Requests the engine refused (longer than max_model_len, or larger than the KV cache).
    pub rejected: u64,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub iterations: u64,
    /// Most sequences one replica ran at once.
    pub peak_running: u32,
    /// Highest KV-cache use of one replica, fraction.
    pub peak_kv_usage: f64,
    /// KV-cache blocks of one replica (on the last GPU model it was placed on).
    pub kv_blocks: u64,
}

impl ServiceSim {
    pub fn new(spec: ServiceSpec, autoscaler: Option<Box<dyn Autoscaler>>) -> Self {
        let workload = spec.workload();
        let sla_us = spec.latency_sla_ms.map(|ms| (ms * 1000.0).round() as i64);
        let sla_per_token_us = spec.sla_per_output_token_ms.unwrap_or(0.0) * 1000.0;
        let timeout_us = (spec.queue_timeout_s * 1e6).round() as i64;
        let spec_llm = spec.clone();
        Self {
            spec,
            workload,
            queue: VecDeque::new(),
            replicas: Vec::new(),
            autoscaler,
            counts: RequestCounts::default(),
            hist: latency_histogram(),
            win_hist: crate::metrics::window_histogram(),
            sla_us,
            sla_per_token_us,
            timeout_us,
            win_arrivals: 0,
            win_served: 0,
            win_ref_work_ms: 0.0,
            replica_seconds: 0.0,
            replicas_min: u32::MAX,
            replicas_max: 0,
            scale_ups: 0,
            scale_downs: 0,
            llm: crate::llm::for_service(&spec_llm),
            ttft_hist: latency_histogram(),
            tpot_hist: latency_histogram(),
            llm_counts: LlmCounts::default(),
        }
    }
}
