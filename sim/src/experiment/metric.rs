//! The metrics an experiment reports, by name: what `--fail-if`, the tables and the sweep's
//! constraints refer to. One registry so every command spells a metric the same way.

use crate::metrics::Summary;

/// One reported metric: how to read it from a run's [`Summary`] and how to show it.
pub struct MetricDef {
    pub name: &'static str,
    pub unit: &'static str,
    pub help: &'static str,
    /// Expressed in percent (0–100): `pp` thresholds apply to these.
    pub percent: bool,
    /// Whether a larger value is the better one (for the reports' arrows).
    pub higher_is_better: bool,
    /// Decimal places in tables (fixed, so reports are byte-stable).
    pub decimals: usize,
    pub get: fn(&Summary) -> f64,
}

impl std::fmt::Debug for MetricDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

fn failed_pct(s: &Summary) -> f64 {
    if s.requests.arrived == 0 {
        0.0
    } else {
        s.requests.failed as f64 / s.requests.arrived as f64 * 100.0
    }
}

fn usd_per_hour(s: &Summary) -> f64 {
    if s.duration_s > 0.0 {
        s.cost.total_usd / (s.duration_s / 3600.0)
    } else {
        0.0
    }
}

/// Every metric, in report order.
pub const METRICS: &[MetricDef] = &[
    MetricDef {
        name: "p50_ms",
        unit: "ms",
        help: "median latency",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.latency.p50_ms,
    },
    MetricDef {
        name: "p95_ms",
        unit: "ms",
        help: "95th percentile latency",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.latency.p95_ms,
    },
    MetricDef {
        name: "p99_ms",
        unit: "ms",
        help: "99th percentile latency",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.latency.p99_ms,
    },
    MetricDef {
        name: "mean_ms",
        unit: "ms",
        help: "mean latency",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.latency.mean_ms,
    },
    MetricDef {
        name: "slo_attainment",
        unit: "%",
        help: "requests served within their SLA, % of finished",
        percent: true,
        higher_is_better: true,
        decimals: 2,
        get: |s| s.slo_attainment * 100.0,
    },
    MetricDef {
        name: "ttft_p50_ms",
        unit: "ms",
        help: "median time to first token (LLM services; 0 without)",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.ttft.as_ref().map_or(0.0, |l| l.p50_ms),
    },
    MetricDef {
        name: "ttft_p99_ms",
        unit: "ms",
        help: "99th percentile time to first token (LLM services; 0 without)",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.ttft.as_ref().map_or(0.0, |l| l.p99_ms),
    },
    MetricDef {
        name: "tpot_p50_ms",
        unit: "ms",
        help: "median time per output token (LLM services; 0 without)",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.tpot.as_ref().map_or(0.0, |l| l.p50_ms),
    },
    MetricDef {
        name: "tpot_p99_ms",
        unit: "ms",
        help: "99th percentile time per output token (LLM services; 0 without)",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.tpot.as_ref().map_or(0.0, |l| l.p99_ms),
    },
    MetricDef {
        name: "failed_pct",
        unit: "%",
        help: "failed requests, % of arrived",
        percent: true,
        higher_is_better: false,
        decimals: 3,
        get: failed_pct,
    },
    MetricDef {
        name: "energy_kwh",
        unit: "kWh",
        help: "GPU energy",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.energy_kwh,
    },
    MetricDef {
        name: "cost_usd",
        unit: "$",
        help: "total cost: GPU-hours plus energy",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.cost.total_usd,
    },
    MetricDef {
        name: "usd_per_hour",
        unit: "$/h",
        help: "fleet cost per hour including energy",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: usd_per_hour,
    },
    MetricDef {
        name: "usd_per_1k",
        unit: "$",
        help: "cost per 1000 inferences served",
        percent: false,
        higher_is_better: false,
        decimals: 5,
        get: |s| s.cost.usd_per_1k_inferences,
    },
    MetricDef {
        name: "mean_allocated_gpus",
        unit: "GPUs",
        help: "mean GPUs with at least one replica",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.mean_allocated_gpus,
    },
    MetricDef {
        name: "peak_allocated_gpus",
        unit: "GPUs",
        help: "peak GPUs with at least one replica",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.peak_allocated_gpus as f64,
    },
    MetricDef {
        name: "mean_power_w",
        unit: "W",
        help: "mean fleet GPU power",
        percent: false,
        higher_is_better: false,
        decimals: 0,
        get: |s| s.mean_power_w,
    },
    MetricDef {
        name: "unschedulable",
        unit: "",
        help: "placements that found no node",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.unschedulable as f64,
    },
    MetricDef {
        name: "served",
        unit: "",
        help: "requests served",
        percent: false,
        higher_is_better: true,
        decimals: 0,
        get: |s| s.requests.served as f64,
    },
    // A planned sharing change's cost (runs with a `[reconfig]`; absent otherwise).
    MetricDef {
        name: "change_failed",
        unit: "",
        help: "requests failed from the start of a sharing change to 5 min after it",
        percent: false,
        higher_is_better: false,
        decimals: 0,
        get: |s| {
            s.reconfig
                .as_ref()
                .map_or(f64::NAN, |r| r.failed_requests as f64)
        },
    },
    MetricDef {
        name: "change_p99_ms",
        unit: "ms",
        help: "worst 30 s p99 during a sharing change",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.reconfig.as_ref().map_or(f64::NAN, |r| r.p99_during_ms),
    },
    MetricDef {
        name: "change_converge_s",
        unit: "s",
        help: "time from a sharing change falling due to its convergence",
        percent: false,
        higher_is_better: false,
        decimals: 0,
        get: |s| {
            s.reconfig
                .as_ref()
                .and_then(|r| r.time_to_converge_s)
                .unwrap_or(f64::NAN)
        },
    },
    MetricDef {
        name: "change_gpu_hours_lost",
        unit: "GPU-h",
        help: "GPU-hours out of service during a sharing change",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.reconfig.as_ref().map_or(f64::NAN, |r| r.gpu_hours_lost),
    },
];

/// The metric called `name`.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
}

/// The known metric names, comma-separated (for error messages).
pub fn known() -> String {
    METRICS
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every metric of one run that applies to it, by name (a metric that does not apply, such as a
/// sharing change's cost in a run without one, is left out rather than reported as 0).
pub fn extract(s: &Summary) -> std::collections::BTreeMap<String, f64> {
    METRICS
        .iter()
        .map(|m| (m.name.to_string(), (m.get)(s)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}
