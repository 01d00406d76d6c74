//! The request lifecycle: arrivals from the traffic sources, dispatch to a ready replica or
//! the service's queue, processor-sharing service re-rated as the batch changes, completions,
//! queue timeouts. (LLM services go through their serving engines: `llm_replica`.)

use super::placement::slice_units;
use super::*;
use gpusched_policies::modes::SliceLoad;

impl<'a> Sim<'a> {
    pub(super) fn pull_arrival(&mut self, source: u32) -> Result<(), SimError> {
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

    pub(super) fn sample_demand(&mut self, svc: usize, given: Demand) -> Demand {
        if given.is_known() {
            return given;
        }
        Demand::ms(match &self.demand[svc] {
            Some(g) => g.sample(&mut self.demand_rng).max(1e-3),
            None => self.services[svc].spec.service_time_ms,
        })
    }

    /// Billions of parameters of a service's model, for the token model.
    pub(super) fn params_b(&self, svc: usize) -> f64 {
        let spec = &self.services[svc].spec;
        spec.model_params_b
            .unwrap_or(spec.model_memory_gb / self.sc.scenario.perf.tokens.bytes_per_param)
    }

    pub(super) fn on_arrival(
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
                self.window.failed += 1;
            }
            None => svc.queue.push_back((t, demand)),
        }
        self.pull_arrival(source)
    }

    pub(super) fn start_request(&mut self, t: SimTime, r: u32, arrived: SimTime, demand: Demand) {
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
        let load = SliceLoad {
            share_pct: share,
            units,
            mig_share,
        };
        let eff = mode.spec().effective_share(perf, &g.busy(), &load);
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
    pub(super) fn rerate(&mut self, t: SimTime, r: u32) {
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

    pub(super) fn on_completion(&mut self, t: SimTime, r: u32, token: u64) {
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
        let _ = self.window.latency.record(latency);
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
    pub(super) fn pull_queued(&mut self, t: SimTime, r: u32) {
        let s = self.replicas[r as usize].service as usize;
        if self.services[s].llm.is_some() {
            // An engine queues what it cannot run yet: hand it everything still in time.
            while let Some((arrived, demand)) = self.services[s].queue.pop_front() {
                if t - arrived > self.services[s].timeout_us {
                    self.services[s].counts.fail(FailCause::Timeout);
                    self.window.failed += 1;
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
                self.window.failed += 1;
                continue;
            }
            self.start_request(t, r, arrived, demand);
        }
    }
}
