//! Replicas as pods: created pending, placed through the engine (after any preemption it
//! asks for), started (delayed by a plugin restart or MIG re-layout), ready, killed, released;
//! and the busy/idle accounting of the GPUs they hold.

use super::*;

impl<'a> Sim<'a> {
    pub(super) fn new_replica(&mut self, service: u32) -> u32 {
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
    pub(super) fn try_place(&mut self, t: SimTime, r: u32, warm: bool) {
        let svc = self.replicas[r as usize].service as usize;
        let want = self.sc.scenario.record_matrix;
        let mut decision =
            self.engine
                .place(&self.nodes, &self.services[svc].workload, r as u64, want);
        if let Decision::Preempt { victims, .. } = &decision {
            let victims = victims.clone();
            self.totals.preemptions += 1;
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
                self.totals.unschedulable += 1;
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
    pub(super) fn apply_placement(&mut self, t: SimTime, r: u32, p: &Placement, warm: bool) {
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
                self.totals.reconfigurations += 1;
                self.totals.reconfig_gpu_seconds += d.plugin_restart_s * gpu_count;
            }
        }
        if applied.mig_relayout && !warm {
            delay_s += d.mig_reconfigure_s;
            self.totals.reconfigurations += 1;
            self.totals.reconfig_gpu_seconds += d.mig_reconfigure_s;
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
        self.totals.placements += 1;
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
    pub(super) fn kill(&mut self, t: SimTime, r: u32, cause: FailCause, why: &str) {
        self.llm_abort(r);
        let s = self.replicas[r as usize].service as usize;
        if self.replicas[r as usize].in_flight > 0 {
            self.set_replica_busy(t, r, false);
        }
        let rep = &mut self.replicas[r as usize];
        if rep.in_flight > 0 {
            for _ in 0..rep.in_flight {
                self.services[s].counts.fail(cause);
                self.window.failed += 1;
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
    pub(super) fn replica_flat_gpus(&self, r: u32) -> impl Iterator<Item = u32> + '_ {
        self.replicas[r as usize].flat_gpus()
    }

    /// Replica `r` went busy (its first request in flight) or idle (its last one done) at `t`:
    /// every GPU it holds changes busy state and power together (a tensor-parallel replica
    /// computes on all N). The one place the busy/idle accounting happens.
    pub(super) fn set_replica_busy(&mut self, t: SimTime, r: u32, busy: bool) {
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

    pub(super) fn on_ready(&mut self, t: SimTime, r: u32) {
        if self.replicas[r as usize].state == ReplicaState::Starting {
            self.replicas[r as usize].state = ReplicaState::Ready;
            self.pull_queued(t, r);
        }
    }

    /// Gives a replica's GPU slice back (if it holds one) and logs the release.
    pub(super) fn free_slot(&mut self, t: SimTime, r: u32, why: &str) {
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
    pub(super) fn release(&mut self, t: SimTime, r: u32, why: &str) {
        let rep = &mut self.replicas[r as usize];
        let s = rep.service as usize;
        rep.state = ReplicaState::Gone;
        self.free_slot(t, r, why);
        self.services[s].replicas.retain(|&x| x != r);
    }
}

/// A replica's weight in its GPU's busy accounting: MPS thread percentage or time-slice weight,
/// and the throughput share of a MIG instance.
pub(super) fn slice_units(slice: AllocSlice, share_pct: u8, model: GpuModel) -> (u32, f64) {
    slice.spec().slice_units(slice, share_pct, model)
}

#[cfg(test)]
mod tests {
    use super::super::unit_scenario;
    use super::*;

    #[test]
    fn a_killed_pod_frees_its_gpu_and_is_placed_again_as_a_new_incarnation() {
        let sc = unit_scenario(1, "");
        let mut sim = Sim::new(&sc).unwrap();
        let a = sim.new_replica(0);
        sim.try_place(0, a, true);
        assert_eq!(sim.replicas[a as usize].state, ReplicaState::Ready);
        // The one GPU is taken: a second replica stays pending.
        let b = sim.new_replica(0);
        sim.try_place(0, b, true);
        assert_eq!(sim.replicas[b as usize].state, ReplicaState::Pending);
        let generation = sim.replicas[a as usize].generation;
        sim.kill(secs(1.0), a, FailCause::PodRestart, "unit test");
        let rep = &sim.replicas[a as usize];
        assert_eq!(rep.state, ReplicaState::Pending);
        assert!(rep.loc.is_none());
        assert!(
            rep.generation > generation,
            "events of the killed pod are stale"
        );
        assert!(
            sim.nodes[0].gpus[0].allocations.is_empty(),
            "its GPU is free"
        );
        // Now the other replica fits.
        sim.try_place(secs(1.0), b, false);
        assert_eq!(sim.replicas[b as usize].state, ReplicaState::Starting);
    }
}
