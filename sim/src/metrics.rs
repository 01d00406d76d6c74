//! What a run measures: per-window rows for timeseries.csv and the run's summary.json.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// Latency histogram in microseconds, 3 significant digits, up to one hour.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

/// A service's latencies within one monitoring window: two significant digits (percentiles
/// within 1 %), about 26 KB instead of the run histogram's ~190 KB, because there is one per
/// service and each is cleared every window.
pub fn window_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static histogram bounds are valid")
}

pub fn percentile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Why a request failed.
/// The quantiles at which [`Summary::latency_cdf_ms`] samples the run's latency distribution:
/// fixed points so that runs (and seeds) line up point by point and a CDF can be averaged.
pub const CDF_QUANTILES: [f64; 21] = [
    0.01, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.75, 0.80, 0.85, 0.90, 0.925, 0.95,
    0.965, 0.975, 0.98, 0.99, 0.995, 0.999,
];

/// The latency (ms) at each of [`CDF_QUANTILES`]; empty when nothing was served.
pub fn latency_cdf_ms(h: &Histogram<u64>) -> Vec<f64> {
    if h.is_empty() {
        return Vec::new();
    }
    CDF_QUANTILES.iter().map(|&q| percentile_ms(h, q)).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailCause {
    /// Waited in the queue longer than the service's `queue_timeout_s`.
    Timeout,
    /// The service's queue was full on arrival.
    QueueFull,
    /// In flight on a replica evicted for a higher-priority one.
    Preempted,
    /// In flight on a pod that lost its GPU context (device-plugin / MPS server restart).
    PodRestart,
    /// Refused by an LLM engine: longer than its max_model_len, larger than its KV cache, or
    /// without token counts.
    Rejected,
}

impl FailCause {
    pub const ALL: [FailCause; 5] = [
        FailCause::Timeout,
        FailCause::QueueFull,
        FailCause::Preempted,
        FailCause::PodRestart,
        FailCause::Rejected,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            FailCause::Timeout => "timeout",
            FailCause::QueueFull => "queue_full",
            FailCause::Preempted => "preempted",
            FailCause::PodRestart => "pod_restart",
            FailCause::Rejected => "rejected",
        }
    }
}

/// Request accounting. `arrived = served + failed + queued_at_end + in_service_at_end`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestCounts {
    pub arrived: u64,
    pub served: u64,
    pub failed: u64,
    pub failed_by_cause: BTreeMap<&'static str, u64>,
    pub queued_at_end: u64,
    pub in_service_at_end: u64,
    /// Served within the service's latency SLA.
    pub served_within_sla: u64,
}

impl RequestCounts {
    pub fn fail(&mut self, cause: FailCause) {
        self.failed += 1;
        *self.failed_by_cause.entry(cause.as_str()).or_default() += 1;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            mean_ms: h.mean() / 1000.0,
            p50_ms: percentile_ms(h, 0.50),
            p95_ms: percentile_ms(h, 0.95),
            p99_ms: percentile_ms(h, 0.99),
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceSummary {
    pub name: String,
    pub requests: RequestCounts,
    pub latency: LatencySummary,
    pub latency_sla_ms: Option<f64>,
    /// Served within SLA / (arrived − still queued or in service at the end).
    pub slo_attainment: f64,
    pub replicas_min: u32,
    pub replicas_max: u32,
    pub replica_hours: f64,
    pub scale_ups: u32,
    pub scale_downs: u32,
    /// LLM services: time to first token, time per output token, and the engine's counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmServiceSummary>,
    /// This service's latency (ms) at each of [`CDF_QUANTILES`] (for per-service CDF plots).
    pub latency_cdf_ms: Vec<f64>,
}

/// What an LLM service measured, beside its end-to-end `latency`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LlmServiceSummary {
    pub model: String,
    pub dtype: String,
    pub stack: String,
    pub tensor_parallel: u32,
    pub ttft: LatencySummary,
    /// Time per output token of each request: (end − first token) / (output − 1).
    pub tpot: LatencySummary,
    /// TTFT and TPOT (ms) at each of [`CDF_QUANTILES`].
    pub ttft_cdf_ms: Vec<f64>,
    pub tpot_cdf_ms: Vec<f64>,
    /// The `[services.slo]` percentiles and whether they were met (`None` without an SLO).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<LlmSloOutcome>,
    #[serde(flatten)]
    pub counts: crate::state::LlmCounts,
    /// Output tokens per second over the run.
    pub output_tokens_per_s: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LlmSloOutcome {
    pub percentile: f64,
    pub ttft_ms: Option<f64>,
    pub ttft_at_percentile_ms: f64,
    pub tpot_ms: Option<f64>,
    pub tpot_at_percentile_ms: f64,
    pub met: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuModelSummary {
    pub gpus: u32,
    pub gpu_seconds: f64,
    pub busy_seconds: f64,
    pub idle_seconds: f64,
    /// busy / (busy + idle): NVML's "GPU busy" sense.
    pub utilisation: f64,
    pub energy_kwh: f64,
    pub mean_power_w: f64,
    pub gpu_cost_usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CostSummary {
    pub gpu_usd: f64,
    pub energy_usd: f64,
    pub total_usd: f64,
    pub usd_per_1k_inferences: f64,
    pub usd_per_gpu_hour_effective: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub seed: u64,
    pub policy: String,
    pub autoscaler: String,
    pub duration_s: f64,
    pub requests: RequestCounts,
    pub latency: LatencySummary,
    pub slo_attainment: f64,
    pub services: Vec<ServiceSummary>,
    pub gpu_models: BTreeMap<String, GpuModelSummary>,
    pub gpus_total: u32,
    pub gpu_seconds_total: f64,
    pub busy_seconds_total: f64,
    pub idle_seconds_total: f64,
    pub energy_kwh: f64,
    pub mean_power_w: f64,
    pub cost: CostSummary,
    pub placements: u64,
    pub unschedulable: u64,
    pub scale_events: u64,
    pub peak_allocated_gpus: u32,
    pub mean_allocated_gpus: f64,
    pub events: u64,
    pub bad_trace_rows_skipped: u64,
    pub preemptions: u64,
    /// GPU-seconds lost to MIG re-layouts and device-plugin restarts.
    pub reconfig_gpu_seconds: f64,
    pub reconfigurations: u64,
    /// Seed 004's consolidation report on the cluster as the run ends.
    pub consolidation: gpusched_policies::consolidation::ConsolidationReport,
    /// Latency (ms) at each of [`CDF_QUANTILES`], all services together (for CDF plots).
    pub latency_cdf_ms: Vec<f64>,
    /// The sharing-layout rollout, when the scenario has a `[reconfig]` section (issue 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconfig: Option<crate::reconfig::ReconfigReport>,
    /// Time to first token and time per output token over every LLM service's requests (absent
    /// without LLM services).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft: Option<LatencySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot: Option<LatencySummary>,
    /// What kept the SLOs from being met, measured from the run (see [`crate::diagnosis`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding_constraints: Option<crate::diagnosis::BindingConstraints>,
}

/// One 30-second row of timeseries.csv. Columns per GPU model and per service are in the
/// scenario's fixed order so that files from the same scenario line up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowRow {
    pub t_s: f64,
    pub arrivals: u64,
    pub served: u64,
    pub failed: u64,
    pub queue_len: u64,
    pub in_flight: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub replicas: u32,
    pub replicas_ready: u32,
    pub allocated_gpus: u32,
    pub fragmentation: f64,
    pub util_by_model: Vec<f64>,
    pub power_w_by_model: Vec<f64>,
    pub power_w_total: f64,
    pub energy_kwh_cum: f64,
    pub replicas_by_service: Vec<u32>,
    pub qps_by_service: Vec<f64>,
    /// Each service's end-to-end p99 in the window, ms (0 when it served nothing).
    pub p99_ms_by_service: Vec<f64>,
    pub ttft_p50_ms: f64,
    pub ttft_p99_ms: f64,
    pub tpot_p50_ms: f64,
    pub tpot_p99_ms: f64,
}

pub struct Timeseries {
    pub models: Vec<String>,
    pub services: Vec<String>,
    pub window_s: f64,
    pub rows: Vec<WindowRow>,
    /// The run has LLM services: the TTFT/TPOT columns are written.
    pub llm: bool,
}

impl Timeseries {
    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = [
            "t_s",
            "qps",
            "arrivals",
            "served",
            "failed",
            "queue_len",
            "in_flight",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "replicas",
            "replicas_ready",
            "allocated_gpus",
            "fragmentation",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        h.extend(self.models.iter().map(|m| format!("util_{m}")));
        h.extend(self.models.iter().map(|m| format!("power_w_{m}")));
        h.push("power_w_total".into());
        h.push("energy_kwh_cum".into());
        h.extend(self.services.iter().map(|s| format!("replicas_{s}")));
        h.extend(self.services.iter().map(|s| format!("qps_{s}")));
        if self.llm {
            h.extend(
                ["ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms"].map(String::from),
            );
        }
        // Last, so the columns before keep their places for readers of older files.
        h.extend(self.services.iter().map(|s| format!("p99_ms_{s}")));
        h
    }

    /// Writes the CSV with fixed decimal places, so files are byte-identical across runs.
    pub fn write_csv<W: std::io::Write>(&self, w: W) -> csv::Result<()> {
        let mut out = csv::Writer::from_writer(w);
        out.write_record(self.header())?;
        for r in &self.rows {
            let mut rec: Vec<String> = vec![
                format!("{:.0}", r.t_s),
                format!("{:.3}", r.arrivals as f64 / self.window_s),
                r.arrivals.to_string(),
                r.served.to_string(),
                r.failed.to_string(),
                r.queue_len.to_string(),
                r.in_flight.to_string(),
                format!("{:.3}", r.p50_ms),
                format!("{:.3}", r.p95_ms),
                format!("{:.3}", r.p99_ms),
                r.replicas.to_string(),
                r.replicas_ready.to_string(),
                r.allocated_gpus.to_string(),
                format!("{:.4}", r.fragmentation),
            ];
            rec.extend(r.util_by_model.iter().map(|v| format!("{v:.4}")));
            rec.extend(r.power_w_by_model.iter().map(|v| format!("{v:.1}")));
            rec.push(format!("{:.1}", r.power_w_total));
            rec.push(format!("{:.4}", r.energy_kwh_cum));
            rec.extend(r.replicas_by_service.iter().map(|v| v.to_string()));
            rec.extend(r.qps_by_service.iter().map(|v| format!("{v:.3}")));
            if self.llm {
                for v in [r.ttft_p50_ms, r.ttft_p99_ms, r.tpot_p50_ms, r.tpot_p99_ms] {
                    rec.push(format!("{v:.3}"));
                }
            }
            rec.extend(r.p99_ms_by_service.iter().map(|v| format!("{v:.3}")));
            out.write_record(rec)?;
        }
        out.flush()?;
        Ok(())
    }
}
