//! The simulator's side of LLM replicas: it hands requests to each replica's serving engine,
//! schedules one event for the engine's next change of batch (never one per token or iteration),
//! and records time to first token, time per output token and end-to-end latency.
//! One of `sim`'s jobs (the LLM half of the request lifecycle), a child module like the others.

use super::*;
use gpusched_serving::engine::Refusal;
use gpusched_serving::{Finished, Request};
use rand::RngExt;

/// Up to this many replicas an arrival goes to the least loaded one, found exactly.
const EXACT_ROUTING_MAX: usize = 32;

impl Sim<'_> {
    /// Builds a placed replica's engine for the GPU model it landed on.
    pub(super) fn llm_place(&mut self, r: u32) {
        let svc = self.replicas[r as usize].service as usize;
        let Some(llm) = &self.services[svc].llm else {
            return;
        };
        let Some((_, _, flat)) = self.replicas[r as usize].loc else {
            return;
        };
        let model = self.gpus[flat as usize].model;
        let engine = llm.build_engine(model, self.sc.catalog.spec(model)).ok();
        if let Some(e) = &engine {
            self.services[svc].llm_counts.kv_blocks = e.config().kv_blocks;
        }
        let rep = &mut self.replicas[r as usize];
        rep.llm = engine.map(Box::new);
        rep.llm_next = None;
    }

    /// An arrival for an LLM service: to a ready replica with few requests in its engine (an
    /// engine has no slot limit of its own: it queues), else the service queue. Up to
    /// [`EXACT_ROUTING_MAX`] replicas the least loaded is found exactly; beyond, as gateways do
    /// at scale (Envoy's LEAST_REQUEST), the less loaded of two picked at random, so dispatch
    /// stays O(1) on a thousand-replica fleet.
    pub(super) fn llm_arrival(&mut self, t: SimTime, s: usize, demand: Demand) {
        let load = |rep: &Replica| {
            (rep.state == ReplicaState::Ready)
                .then(|| rep.llm.as_ref().map_or(usize::MAX, |e| e.in_system()))
        };
        let n = self.services[s].replicas.len();
        let mut best: Option<(u32, usize)> = None;
        if n <= EXACT_ROUTING_MAX {
            for &r in &self.services[s].replicas {
                if let Some(l) = load(&self.replicas[r as usize]) {
                    if best.is_none_or(|(_, b)| l < b) {
                        best = Some((r, l));
                    }
                }
            }
        } else {
            // Two ready replicas drawn at random (a few extra draws skip ones still starting).
            let mut seen = 0;
            for _ in 0..8 {
                let r = self.services[s].replicas[self.route_rng.random_range(0..n)];
                if let Some(l) = load(&self.replicas[r as usize]) {
                    if best.is_none_or(|(_, b)| l < b) {
                        best = Some((r, l));
                    }
                    seen += 1;
                    if seen == 2 {
                        break;
                    }
                }
            }
        }
        let svc = &mut self.services[s];
        match best {
            Some((r, _)) => self.llm_submit(t, r, t, demand),
            None if svc.queue.len() as u64 >= svc.spec.max_queue => {
                svc.counts.fail(FailCause::QueueFull);
                self.window.failed += 1;
            }
            None => svc.queue.push_back((t, demand)),
        }
    }

    /// Hands one request to replica `r`'s engine.
    pub(super) fn llm_submit(&mut self, t: SimTime, r: u32, arrived: SimTime, demand: Demand) {
        let s = self.replicas[r as usize].service as usize;
        let tokens = self.services[s]
            .llm
            .as_ref()
            .and_then(|l| l.tokens(demand.tokens));
        let shared = self.services[s]
            .llm
            .as_ref()
            .map_or(0, |l| l.spec.shared_prefix_tokens);
        let id = self.next_token;
        self.next_token += 1;
        let mut done = std::mem::take(&mut self.llm_done);
        let outcome = match (tokens, self.replicas[r as usize].llm.as_mut()) {
            (Some((prompt, output)), Some(engine)) => engine.submit(
                t as f64,
                Request {
                    id,
                    arrival: arrived as f64,
                    prompt,
                    output,
                    cached_prefix: shared.min(prompt),
                },
                &mut done,
            ),
            _ => Err(Refusal::Empty),
        };
        if outcome.is_err() {
            self.services[s].llm_counts.rejected += 1;
            self.services[s].counts.fail(FailCause::Rejected);
            self.window.failed += 1;
        }
        self.llm_finished(t, r, &mut done);
        self.llm_done = done;
        self.llm_sync(t, r);
    }

    /// The engine's step event: everything due by `t` happens.
    pub(super) fn llm_step(&mut self, t: SimTime, r: u32) {
        self.replicas[r as usize].llm_next = None;
        let mut done = std::mem::take(&mut self.llm_done);
        if let Some(e) = self.replicas[r as usize].llm.as_mut() {
            e.advance(t as f64, &mut done);
        }
        self.llm_finished(t, r, &mut done);
        self.llm_done = done;
        self.llm_sync(t, r);
    }

    /// Records finished requests.
    fn llm_finished(&mut self, t: SimTime, r: u32, done: &mut Vec<Finished>) {
        if done.is_empty() {
            return;
        }
        let s = self.replicas[r as usize].service as usize;
        let perf = &self.sc.scenario.perf;
        let params_b = self.params_b(s);
        let h100 = self.sc.catalog.spec(GpuModel::H100_80GB);
        let svc = &mut self.services[s];
        let overhead_us = svc
            .llm
            .as_ref()
            .map_or(0.0, |l| l.stack.request_overhead_ms * 1000.0);
        for f in done.drain(..) {
            let e2e = ((f.end - f.arrival + overhead_us).round() as u64).max(1);
            let ttft = ((f.first_token - f.arrival + overhead_us).round() as u64).max(1);
            let tpot = (f.output > 1)
                .then(|| (((f.end - f.first_token) / (f.output - 1) as f64).round() as u64).max(1));
            svc.counts.served += 1;
            svc.win_served += 1;
            svc.llm_counts.prompt_tokens += f.prompt as u64;
            svc.llm_counts.output_tokens += f.output as u64;
            let demand = Demand {
                ms: f64::NAN,
                tokens: Some((f.prompt, f.output)),
            };
            svc.win_ref_work_ms += perf.exclusive_ms(&demand, h100, params_b);
            let within = match &svc.spec.slo {
                Some(slo) => {
                    slo.ttft_ms.is_none_or(|b| ttft as f64 <= b * 1000.0)
                        && slo
                            .tpot_ms
                            .is_none_or(|b| tpot.is_none_or(|v| v as f64 <= b * 1000.0))
                }
                None => svc.sla_us.is_none_or(|sla| {
                    e2e as i64 <= sla + (svc.sla_per_token_us * f.output as f64) as i64
                }),
            };
            if within {
                svc.counts.served_within_sla += 1;
            }
            let _ = svc.hist.record(e2e);
            let _ = svc.win_hist.record(e2e);
            let _ = svc.ttft_hist.record(ttft);
            let _ = self.window.latency.record(e2e);
            let _ = self.window.ttft.record(ttft);
            if let Some(v) = tpot {
                let _ = svc.tpot_hist.record(v);
                let _ = self.window.tpot.record(v);
            }
        }
        let _ = t;
    }

    /// After the engine changed: the replica's request count, its GPUs' busy state, the next
    /// step event, and a draining replica's release.
    pub(super) fn llm_sync(&mut self, t: SimTime, r: u32) {
        let rep = &mut self.replicas[r as usize];
        let Some(engine) = rep.llm.as_ref() else {
            return;
        };
        let now_in = engine.in_system() as u32;
        let next = engine.next_event().map(|e| (e.ceil() as SimTime).max(t));
        let stats = engine.stats();
        let kv = engine.kv_usage();
        let was = rep.in_flight;
        rep.in_flight = now_in;
        if was == 0 && now_in > 0 {
            rep.busy_since = t;
            self.set_replica_busy(t, r, true);
        } else if was > 0 && now_in == 0 {
            let rep = &mut self.replicas[r as usize];
            rep.win_busy_us += t - rep.busy_since;
            self.set_replica_busy(t, r, false);
        }
        let s = self.replicas[r as usize].service as usize;
        let c = &mut self.services[s].llm_counts;
        c.peak_running = c.peak_running.max(stats.peak_running);
        c.peak_kv_usage = c.peak_kv_usage.max(kv);
        let rep = &mut self.replicas[r as usize];
        if let Some(at) = next {
            if rep.llm_next != Some(at) {
                rep.llm_token += 1;
                rep.llm_next = Some(at);
                let (generation, token) = (rep.generation, rep.llm_token);
                self.queue.push(
                    at,
                    Event::LlmStep {
                        replica: r,
                        generation,
                        token,
                    },
                );
            }
        }
        if now_in == 0 && self.replicas[r as usize].state == ReplicaState::Draining {
            self.llm_retire(r);
            self.release(t, r, "scale-down drained");
        }
    }

    /// Folds a replica's engine counters into its service before the engine goes away.
    pub(super) fn llm_retire(&mut self, r: u32) {
        let rep = &mut self.replicas[r as usize];
        let s = rep.service as usize;
        if let Some(e) = rep.llm.take() {
            let st = e.stats();
            let c = &mut self.services[s].llm_counts;
            c.preemptions += st.preemptions;
            c.iterations += st.iterations;
        }
        rep.llm_next = None;
    }

    /// At the end of the run: engines still running report their counters (they keep running).
    pub(super) fn llm_retire_counts(&mut self, r: u32) {
        let rep = &self.replicas[r as usize];
        let s = rep.service as usize;
        if let Some(e) = rep.llm.as_ref() {
            let st = e.stats();
            let c = &mut self.services[s].llm_counts;
            c.preemptions += st.preemptions;
            c.iterations += st.iterations;
        }
    }

    /// The replica's pod dies: its engine's requests are lost (counted by the caller from
    /// `in_flight`), and the engine with them.
    pub(super) fn llm_abort(&mut self, r: u32) {
        if let Some(e) = self.replicas[r as usize].llm.as_mut() {
            e.abort_all();
        }
        self.llm_retire(r);
    }

    /// Requests that waited in an engine past the service's queue timeout without a first
    /// token fail (their clients gave up).
    pub(super) fn llm_timeouts(&mut self, t: SimTime) {
        for r in 0..self.replicas.len() as u32 {
            let rep = &mut self.replicas[r as usize];
            let s = rep.service as usize;
            let Some(e) = rep.llm.as_mut() else { continue };
            let cutoff = (t - self.services[s].timeout_us) as f64;
            let gone = e.abort_waiting_before(cutoff);
            if gone.is_empty() {
                continue;
            }
            for _ in &gone {
                self.services[s].counts.fail(FailCause::Timeout);
                self.window.failed += 1;
            }
            self.llm_sync(t, r);
        }
    }
}
