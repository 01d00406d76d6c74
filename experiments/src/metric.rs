//! The metrics an experiment reports, by name: what `--fail-if`, the tables and the sweep's
//! constraints refer to. One registry so every command spells a metric the same way.

use gpusched_sim::metrics::Summary;

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
    /// Where the metric is shown: the reports read these flags instead of keeping lists.
    pub show: Show,
}

/// Which reports show a metric (the registry is the one list: issue 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Show {
    /// A row of a run's report.md headline table.
    pub run: bool,
    /// A bar chart with 95 % intervals in `compare`.
    pub bars: bool,
    /// A column of the sweep's table and CSV.
    pub sweep: bool,
}

const fn show(run: bool, bars: bool, sweep: bool) -> Show {
    Show { run, bars, sweep }
}

/// The metrics a report shows, in registry order.
pub fn shown(pick: impl Fn(&Show) -> bool) -> impl Iterator<Item = &'static MetricDef> {
    METRICS.iter().filter(move |m| pick(&m.show))
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

/// A figure of the run's `binding_constraints` (NaN, so left out, when absent).
fn binding(
    s: &Summary,
    f: impl Fn(&gpusched_sim::diagnosis::BindingConstraints, f64) -> f64,
) -> f64 {
    match &s.binding_constraints {
        Some(b) if s.duration_s > 0.0 => f(b, s.duration_s),
        _ => f64::NAN,
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
        show: show(true, true, false),
    },
    MetricDef {
        name: "p95_ms",
        unit: "ms",
        help: "95th percentile latency",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.latency.p95_ms,
        show: show(true, true, false),
    },
    MetricDef {
        name: "p99_ms",
        unit: "ms",
        help: "99th percentile latency",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.latency.p99_ms,
        show: show(true, true, true),
    },
    MetricDef {
        name: "mean_ms",
        unit: "ms",
        help: "mean latency",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.latency.mean_ms,
        show: show(true, false, false),
    },
    MetricDef {
        name: "slo_attainment",
        unit: "%",
        help: "requests served within their SLA, % of finished",
        percent: true,
        higher_is_better: true,
        decimals: 2,
        get: |s| s.slo_attainment * 100.0,
        show: show(true, true, true),
    },
    MetricDef {
        name: "ttft_p50_ms",
        unit: "ms",
        help: "median time to first token (LLM services; 0 without)",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.ttft.as_ref().map_or(0.0, |l| l.p50_ms),
        show: show(false, false, false),
    },
    MetricDef {
        name: "ttft_p99_ms",
        unit: "ms",
        help: "99th percentile time to first token (LLM services; 0 without)",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.ttft.as_ref().map_or(0.0, |l| l.p99_ms),
        show: show(false, false, true),
    },
    MetricDef {
        name: "tpot_p50_ms",
        unit: "ms",
        help: "median time per output token (LLM services; 0 without)",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.tpot.as_ref().map_or(0.0, |l| l.p50_ms),
        show: show(false, false, false),
    },
    MetricDef {
        name: "tpot_p99_ms",
        unit: "ms",
        help: "99th percentile time per output token (LLM services; 0 without)",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.tpot.as_ref().map_or(0.0, |l| l.p99_ms),
        show: show(false, false, true),
    },
    MetricDef {
        name: "failed_pct",
        unit: "%",
        help: "failed requests, % of arrived",
        percent: true,
        higher_is_better: false,
        decimals: 3,
        get: failed_pct,
        show: show(true, true, true),
    },
    MetricDef {
        name: "energy_kwh",
        unit: "kWh",
        help: "GPU energy",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.energy_kwh,
        show: show(true, true, true),
    },
    MetricDef {
        name: "cost_usd",
        unit: "$",
        help: "total cost: GPU-hours plus energy",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.cost.total_usd,
        show: show(true, true, false),
    },
    MetricDef {
        name: "usd_per_hour",
        unit: "$/h",
        help: "fleet cost per hour including energy",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: usd_per_hour,
        show: show(true, false, true),
    },
    MetricDef {
        name: "usd_per_1k",
        unit: "$",
        help: "cost per 1000 inferences served",
        percent: false,
        higher_is_better: false,
        decimals: 5,
        get: |s| s.cost.usd_per_1k_inferences,
        show: show(true, true, false),
    },
    MetricDef {
        name: "mean_allocated_gpus",
        unit: "GPUs",
        help: "mean GPUs with at least one replica",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.mean_allocated_gpus,
        show: show(true, true, true),
    },
    MetricDef {
        name: "peak_allocated_gpus",
        unit: "GPUs",
        help: "peak GPUs with at least one replica",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.peak_allocated_gpus as f64,
        show: show(true, false, true),
    },
    MetricDef {
        name: "mean_power_w",
        unit: "W",
        help: "mean fleet GPU power",
        percent: false,
        higher_is_better: false,
        decimals: 0,
        get: |s| s.mean_power_w,
        show: show(true, false, false),
    },
    MetricDef {
        name: "unschedulable",
        unit: "",
        help: "placements that found no node",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.unschedulable as f64,
        show: show(true, false, true),
    },
    MetricDef {
        name: "served",
        unit: "",
        help: "requests served",
        percent: false,
        higher_is_better: true,
        decimals: 0,
        get: |s| s.requests.served as f64,
        show: show(false, false, false),
    },
    // What bound the run (summary.json `binding_constraints`).
    MetricDef {
        name: "cap_bound_pct",
        unit: "%",
        help: "run time some service sat at its replica cap with requests waiting (worst service)",
        percent: true,
        higher_is_better: false,
        decimals: 1,
        get: |s| {
            binding(s, |b, d| {
                b.services
                    .iter()
                    .map(|x| x.at_cap_backlogged_s / d * 100.0)
                    .fold(0.0, f64::max)
            })
        },
        show: show(true, false, true),
    },
    MetricDef {
        name: "gpus_exhausted_pct",
        unit: "%",
        help: "run time some GPU model had no GPU entirely free while replicas waited for a node",
        percent: true,
        higher_is_better: false,
        decimals: 1,
        get: |s| {
            binding(s, |b, d| {
                b.gpu_models
                    .values()
                    .map(|x| x.exhausted_while_pending_s / d * 100.0)
                    .fold(0.0, f64::max)
            })
        },
        show: show(true, false, true),
    },
    MetricDef {
        name: "pending_replica_h",
        unit: "replica-h",
        help: "replica-hours spent waiting for a node (placements refused)",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| {
            binding(s, |b, _| {
                b.services.iter().map(|x| x.pending_replica_s).sum::<f64>() / 3600.0
            })
        },
        show: show(true, false, true),
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
        show: show(false, true, false),
    },
    MetricDef {
        name: "change_p99_ms",
        unit: "ms",
        help: "worst 30 s p99 during a sharing change",
        percent: false,
        higher_is_better: false,
        decimals: 1,
        get: |s| s.reconfig.as_ref().map_or(f64::NAN, |r| r.p99_during_ms),
        show: show(false, true, false),
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
        show: show(false, false, false),
    },
    MetricDef {
        name: "change_gpu_hours_lost",
        unit: "GPU-h",
        help: "GPU-hours out of service during a sharing change",
        percent: false,
        higher_is_better: false,
        decimals: 2,
        get: |s| s.reconfig.as_ref().map_or(f64::NAN, |r| r.gpu_hours_lost),
        show: show(false, false, false),
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
