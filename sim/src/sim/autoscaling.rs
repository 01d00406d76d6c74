//! Autoscaling: per-service signals (queue, efficiency, cost per inference) for the engine's
//! autoscaler, and carrying out its decisions (scale up; scale down pending replicas first, then
//! starting ones, then the newest ready ones, drained).

use super::*;

impl<'a> Sim<'a> {
    /// Per-service signals for the autoscaler: queue, efficiency, cost per inference.
    pub(super) fn service_signals(&self, t: SimTime, window_s: f64) -> Vec<ServiceSignals> {
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

    pub(super) fn autoscale(&mut self, t: SimTime, signals: Vec<ServiceSignals>) {
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
            self.totals.scale_events += 1;
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
    pub(super) fn scale_down(&mut self, t: SimTime, s: usize, mut n: u32) {
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
}

#[cfg(test)]
mod tests {
    use super::super::unit_scenario;
    use super::*;

    #[test]
    fn scale_down_takes_pending_then_starting_then_the_newest_ready_drained() {
        let sc = unit_scenario(4, "");
        let mut sim = Sim::new(&sc).unwrap();
        let ready_old = sim.new_replica(0);
        sim.try_place(0, ready_old, true);
        let ready_new = sim.new_replica(0);
        sim.try_place(0, ready_new, true);
        // Serving a request: a scale-down drains it rather than cutting it off.
        sim.replicas[ready_new as usize].in_flight = 1;
        let starting = sim.new_replica(0);
        sim.try_place(0, starting, false);
        let pending = sim.new_replica(0);
        let state = |sim: &Sim, r: u32| sim.replicas[r as usize].state;
        assert_eq!(
            [ready_old, ready_new, starting, pending].map(|r| state(&sim, r)),
            [
                ReplicaState::Ready,
                ReplicaState::Ready,
                ReplicaState::Starting,
                ReplicaState::Pending
            ]
        );
        sim.scale_down(secs(30.0), 0, 3);
        assert_eq!(state(&sim, pending), ReplicaState::Gone, "pending first");
        assert_eq!(state(&sim, starting), ReplicaState::Gone, "then starting");
        assert_eq!(
            state(&sim, ready_new),
            ReplicaState::Draining,
            "then the newest ready"
        );
        assert_eq!(
            state(&sim, ready_old),
            ReplicaState::Ready,
            "three asked, three taken"
        );
        // The starting pod's GPU is free again; the draining one keeps its GPU until it is done.
        let used = sim.nodes[0]
            .gpus
            .iter()
            .filter(|g| !g.allocations.is_empty())
            .count();
        assert_eq!(used, 2);
        assert_eq!(sim.services[0].replicas, vec![ready_old, ready_new]);
    }
}
