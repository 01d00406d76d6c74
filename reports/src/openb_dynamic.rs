//! Figures of the openb dynamic replay (`gpusched run` on an `[openb_replay]` scenario):
//! allocation, fragmentation and pending pods over time, one line per policy, and waiting-time
//! percentiles per policy. Each is written as SVG and PNG.

use crate::charts::{panels_to_files, LinePanel, Series};
use crate::fgd::{bars, BarGroup};
use gpusched_openb::dynamic::ReplayResult;
use gpusched_openb::replay::ReplayOutcome;
use std::path::Path;

/// Seconds per unit of the time axis: hours for long replays, seconds for short ones.
fn time_unit(o: &ReplayOutcome) -> (f64, &'static str) {
    if o.summary.horizon_s > 7200.0 {
        (3600.0, "simulated time (h)")
    } else {
        (1.0, "simulated time (s)")
    }
}

/// Seed mean of one bucket measure, per policy, as (bucket midpoint, value).
fn lines(o: &ReplayOutcome, f: fn(&ReplayResult, usize) -> f64) -> Vec<Series> {
    let n = o.summary.config.buckets;
    let width_h = o.summary.horizon_s.max(1.0) / n as f64 / time_unit(o).0;
    o.summary
        .policies
        .iter()
        .map(|p| {
            let runs: Vec<&ReplayResult> = o
                .results
                .iter()
                .filter(|r| r.policy.label() == p.policy)
                .collect();
            let points = (0..n)
                .map(|k| {
                    let v = runs.iter().map(|r| f(r, k)).sum::<f64>() / runs.len().max(1) as f64;
                    ((k as f64 + 0.5) * width_h, v)
                })
                .collect();
            Series {
                name: p.policy.clone(),
                points,
            }
        })
        .collect()
}

/// Writes `allocation.{svg,png}` and `waiting.{svg,png}` into `dir`; returns the SVG names.
pub fn write_plots(dir: &Path, o: &ReplayOutcome) -> Result<Vec<String>, String> {
    let x = time_unit(o).1.to_string();
    panels_to_files(
        dir,
        "allocation",
        (1000, 900),
        &[
            LinePanel {
                title: "Allocated GPU (%)".into(),
                x_label: x.clone(),
                y_label: "%".into(),
                series: lines(o, |r, k| r.buckets[k].alloc_pct),
            },
            LinePanel {
                title: "Fragmented GPU (%)".into(),
                x_label: x.clone(),
                y_label: "%".into(),
                series: lines(o, |r, k| r.buckets[k].frag_pct),
            },
            LinePanel {
                title: "Pending pods".into(),
                x_label: x,
                y_label: "pods".into(),
                series: lines(o, |r, k| r.buckets[k].pending_mean),
            },
        ],
    )?;
    let groups: Vec<BarGroup> = [("p50", 0usize), ("p95", 1), ("p99", 2)]
        .iter()
        .map(|&(label, i)| BarGroup {
            label: label.into(),
            bars: o
                .summary
                .policies
                .iter()
                .map(|p| {
                    let w = [p.wait_s.p50, p.wait_s.p95, p.wait_s.p99];
                    (p.policy.clone(), w[i])
                })
                .collect(),
        })
        .collect();
    bars(
        &dir.join("waiting"),
        "Waiting time of placed pods",
        "seconds",
        &groups,
    )
    .map_err(|e| e.to_string())?;
    Ok(vec!["allocation.svg".into(), "waiting.svg".into()])
}
