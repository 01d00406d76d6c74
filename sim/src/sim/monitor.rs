//! The monitoring loop: each tick integrates power, fails timed-out requests, measures the
//! window (one row of timeseries.csv), hands the signals to autoscaling and the rollout, retries
//! pending placements and opens the next window.

use super::*;

/// The window being measured: every request finished or failed since the last tick; a row of
/// timeseries.csv at the next one.
pub(super) struct Window {
    /// End-to-end latency of the requests served in the window.
    pub(super) latency: Histogram<u64>,
    pub(super) failed: u64,
    /// LLM services' time to first token and time per output token.
    pub(super) ttft: Histogram<u64>,
    pub(super) tpot: Histogram<u64>,
}

impl Window {
    pub(super) fn new() -> Self {
        Self {
            latency: latency_histogram(),
            failed: 0,
            ttft: latency_histogram(),
            tpot: latency_histogram(),
        }
    }

    /// Opens the next window.
    fn reset(&mut self) {
        self.latency.reset();
        self.ttft.reset();
        self.tpot.reset();
        self.failed = 0;
    }
}

impl<'a> Sim<'a> {
    pub(super) fn on_tick(&mut self, t: SimTime) {
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
                self.window.failed += 1;
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
        self.window.reset();
        if t + self.tick <= self.end {
            self.queue.push(t + self.tick, Event::Tick);
        }
    }

    pub(super) fn measure(&mut self, t: SimTime, window_s: f64) -> WindowRow {
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
        self.totals.allocated_gpu_sum += allocated as f64;
        self.totals.peak_allocated = self.totals.peak_allocated.max(allocated);
        let mut row = WindowRow {
            t_s: to_secs(t),
            failed: self.window.failed,
            p50_ms: percentile_ms(&self.window.latency, 0.50),
            p95_ms: percentile_ms(&self.window.latency, 0.95),
            p99_ms: percentile_ms(&self.window.latency, 0.99),
            ttft_p50_ms: percentile_ms(&self.window.ttft, 0.50),
            ttft_p99_ms: percentile_ms(&self.window.ttft, 0.99),
            tpot_p50_ms: percentile_ms(&self.window.tpot, 0.50),
            tpot_p99_ms: percentile_ms(&self.window.tpot, 0.99),
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
}
