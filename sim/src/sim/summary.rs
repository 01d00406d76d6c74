//! The run's summary: totals, per-service latency and SLO outcome, LLM serving figures,
//! utilisation, power, energy and cost, the rollout report and the binding constraints.

use super::*;

/// What the run counts for its summary, beside the services' own counts.
#[derive(Debug, Default)]
pub(super) struct RunTotals {
    pub(super) placements: u64,
    pub(super) unschedulable: u64,
    pub(super) preemptions: u64,
    pub(super) scale_events: u64,
    /// Allocated GPUs summed over the ticks (the mean is this over the tick count).
    pub(super) allocated_gpu_sum: f64,
    pub(super) peak_allocated: u32,
    /// Node config changes (plugin restarts, MIG re-layouts) and the GPU-seconds they cost.
    pub(super) reconfigurations: u64,
    pub(super) reconfig_gpu_seconds: f64,
}

impl<'a> Sim<'a> {
    pub(super) fn finish(mut self) -> RunResult {
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
            placements: self.totals.placements,
            unschedulable: self.totals.unschedulable,
            scale_events: self.totals.scale_events,
            peak_allocated_gpus: self.totals.peak_allocated,
            mean_allocated_gpus: if self.rows.is_empty() {
                0.0
            } else {
                self.totals.allocated_gpu_sum / self.rows.len() as f64
            },
            events: self.queue.popped(),
            bad_trace_rows_skipped: trace_reports.iter().map(|r| r.bad_rows_skipped).sum(),
            preemptions: self.totals.preemptions,
            reconfig_gpu_seconds: self.totals.reconfig_gpu_seconds,
            reconfigurations: self.totals.reconfigurations,
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

/// One distribution over every LLM service's requests (None without LLM services).
pub(super) fn llm_overall(
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
pub(super) fn llm_summary(svc: &ServiceSim, dur_s: f64) -> Option<LlmServiceSummary> {
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
