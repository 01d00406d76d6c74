//! Writes one run's folder: summary.json, timeseries.csv, decisions.jsonl, report.md and plots.

use crate::charts::{
    bars_to_files, log_cdf_to_files, log_y_to_files, panels_to_files, Bars, LinePanel, Series,
};
use gpusched_policies::decision::Decision;
use gpusched_sim::RunResult;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Other { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The files a run wrote, for the command line to print.
pub struct Written {
    pub files: Vec<PathBuf>,
}

pub fn write_run(dir: &Path, result: &RunResult, plots: bool) -> Result<Written, ReportError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = Vec::new();

    let p = dir.join("summary.json");
    let json = serde_json::to_string_pretty(&result.summary).map_err(|e| ReportError::Other {
        path: p.clone(),
        message: e.to_string(),
    })?;
    fs::write(&p, json + "\n").map_err(io(&p))?;
    files.push(p);

    let p = dir.join("timeseries.csv");
    let f = File::create(&p).map_err(io(&p))?;
    result
        .timeseries
        .write_csv(BufWriter::new(f))
        .map_err(|e| ReportError::Other {
            path: p.clone(),
            message: e.to_string(),
        })?;
    files.push(p);

    let p = dir.join("decisions.jsonl");
    let mut w = BufWriter::new(File::create(&p).map_err(io(&p))?);
    for d in &result.decisions {
        let line = serde_json::to_string(d).map_err(|e| ReportError::Other {
            path: p.clone(),
            message: e.to_string(),
        })?;
        writeln!(w, "{line}").map_err(io(&p))?;
    }
    w.flush().map_err(io(&p))?;
    files.push(p);

    let mut plot_files = Vec::new();
    if plots {
        let pd = dir.join("plots");
        fs::create_dir_all(&pd).map_err(io(&pd))?;
        for stem in write_plots(&pd, result).map_err(|message| ReportError::Other {
            path: pd.clone(),
            message,
        })? {
            plot_files.push(format!("plots/{stem}.svg"));
            files.push(pd.join(format!("{stem}.svg")));
            files.push(pd.join(format!("{stem}.png")));
        }
    }

    let p = dir.join("report.md");
    fs::write(&p, markdown(result, &plot_files)).map_err(io(&p))?;
    files.push(p);
    Ok(Written { files })
}

fn hours(t: f64) -> f64 {
    t / 3600.0
}

fn column(
    result: &RunResult,
    f: impl Fn(&gpusched_sim::metrics::WindowRow) -> f64,
) -> Vec<(f64, f64)> {
    result
        .timeseries
        .rows
        .iter()
        .map(|r| (hours(r.t_s), f(r)))
        .collect()
}

/// Draws the standard plots; returns their stems.
pub fn write_plots(dir: &Path, result: &RunResult) -> Result<Vec<&'static str>, String> {
    let ts = &result.timeseries;
    let x = "time (h)".to_string();
    let window = ts.window_s;
    let mut qps = vec![Series {
        name: "total".into(),
        points: column(result, |r| r.arrivals as f64 / window),
    }];
    let mut reps = Vec::new();
    for (i, s) in ts.services.iter().enumerate() {
        qps.push(Series {
            name: s.clone(),
            points: column(result, |r| r.qps_by_service[i]),
        });
        reps.push(Series {
            name: s.clone(),
            points: column(result, |r| r.replicas_by_service[i] as f64),
        });
    }
    panels_to_files(
        dir,
        "qps_replicas",
        (1000, 700),
        &[
            LinePanel {
                title: "Arrivals (QPS)".into(),
                x_label: x.clone(),
                y_label: "QPS".into(),
                series: qps,
            },
            LinePanel {
                title: "Replicas".into(),
                x_label: x.clone(),
                y_label: "replicas".into(),
                series: reps,
            },
        ],
    )?;
    // Percentiles over time on a log axis: under load they span decades.
    let latency = [LinePanel {
        title: "Latency per window (log scale)".into(),
        x_label: x.clone(),
        y_label: "ms".into(),
        series: vec![
            Series {
                name: "p50".into(),
                points: column(result, |r| r.p50_ms),
            },
            Series {
                name: "p95".into(),
                points: column(result, |r| r.p95_ms),
            },
            Series {
                name: "p99".into(),
                points: column(result, |r| r.p99_ms),
            },
        ],
    }];
    // Each service's p99 per window: the overall percentile hides a small service's tail.
    let by_service: Vec<Series> = ts
        .services
        .iter()
        .enumerate()
        .map(|(i, name)| Series {
            name: name.clone(),
            points: column(result, |r| {
                r.p99_ms_by_service.get(i).copied().unwrap_or(0.0)
            }),
        })
        .collect();
    let latency = [
        latency.into_iter().next().expect("one overall panel"),
        LinePanel {
            title: "p99 by service per window (log scale)".into(),
            x_label: x.clone(),
            y_label: "ms".into(),
            series: by_service,
        },
    ];
    log_y_to_files(dir, "latency", (1000, 800), &latency)?;
    let util = ts
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| Series {
            name: m.clone(),
            points: column(result, |r| r.util_by_model[i] * 100.0),
        })
        .collect();
    let mut power: Vec<Series> = ts
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| Series {
            name: m.clone(),
            points: column(result, |r| r.power_w_by_model[i] / 1000.0),
        })
        .collect();
    power.push(Series {
        name: "total".into(),
        points: column(result, |r| r.power_w_total / 1000.0),
    });
    panels_to_files(
        dir,
        "gpu_util_power",
        (1000, 700),
        &[
            LinePanel {
                title: "GPU utilisation by model (busy %)".into(),
                x_label: x.clone(),
                y_label: "%".into(),
                series: util,
            },
            LinePanel {
                title: "Power by GPU model".into(),
                x_label: x.clone(),
                y_label: "kW".into(),
                series: power,
            },
        ],
    )?;
    bars_to_files(
        dir,
        "placement_mix",
        (900, 500),
        &Bars {
            title: "Placements by GPU model and share".into(),
            y_label: "placements".into(),
            bars: placement_mix(result),
        },
    )?;
    let mut names = vec!["qps_replicas", "latency", "gpu_util_power", "placement_mix"];
    // Latency distributions on a log axis, overall and per service (and TTFT / TPOT for LLM
    // services): a heavy tail is visible, not squeezed into the last pixels.
    let s = &result.summary;
    let cdf = |name: &str, v: &[f64]| Series {
        name: name.to_string(),
        points: v
            .iter()
            .zip(gpusched_sim::metrics::CDF_QUANTILES)
            .map(|(ms, q)| (*ms, q * 100.0))
            .collect(),
    };
    let mut e2e = vec![cdf("all", &s.latency_cdf_ms)];
    e2e.extend(s.services.iter().map(|x| cdf(&x.name, &x.latency_cdf_ms)));
    let mut panels = vec![LinePanel {
        title: "End-to-end latency CDF".into(),
        x_label: "latency (ms, log scale)".into(),
        y_label: "requests (%)".into(),
        series: e2e,
    }];
    let llm: Vec<_> = s
        .services
        .iter()
        .filter_map(|x| x.llm.as_ref().map(|l| (x, l)))
        .collect();
    if !llm.is_empty() {
        panels.push(LinePanel {
            title: "Time to first token CDF".into(),
            x_label: "TTFT (ms, log scale)".into(),
            y_label: "requests (%)".into(),
            series: llm
                .iter()
                .map(|(x, l)| cdf(&x.name, &l.ttft_cdf_ms))
                .collect(),
        });
        panels.push(LinePanel {
            title: "Time per output token CDF".into(),
            x_label: "TPOT (ms, log scale)".into(),
            y_label: "requests (%)".into(),
            series: llm
                .iter()
                .map(|(x, l)| cdf(&x.name, &l.tpot_cdf_ms))
                .collect(),
        });
    }
    let h = 380 * panels.len() as u32;
    log_cdf_to_files(dir, "latency_cdf", (1000, h), &panels)?;
    names.push("latency_cdf");
    if ts.llm {
        // The LLM latency split: TTFT and time per output token per window, on log axes
        // (TTFT goes from tens of ms to seconds once prompts queue).
        log_y_to_files(
            dir,
            "llm_latency",
            (1000, 700),
            &[
                LinePanel {
                    title: "Time to first token per window (log scale)".into(),
                    x_label: x.clone(),
                    y_label: "ms".into(),
                    series: vec![
                        Series {
                            name: "TTFT p50".into(),
                            points: column(result, |r| r.ttft_p50_ms),
                        },
                        Series {
                            name: "TTFT p99".into(),
                            points: column(result, |r| r.ttft_p99_ms),
                        },
                    ],
                },
                LinePanel {
                    title: "Time per output token per window".into(),
                    x_label: x.clone(),
                    y_label: "ms".into(),
                    series: vec![
                        Series {
                            name: "TPOT p50".into(),
                            points: column(result, |r| r.tpot_p50_ms),
                        },
                        Series {
                            name: "TPOT p99".into(),
                            points: column(result, |r| r.tpot_p99_ms),
                        },
                    ],
                },
            ],
        )?;
        names.push("llm_latency");
    }
    Ok(names)
}

/// Placements counted by (GPU model of the node's pool, share).
fn placement_mix(result: &RunResult) -> Vec<(String, f64, Option<f64>)> {
    let mut mix: BTreeMap<String, f64> = BTreeMap::new();
    for d in &result.decisions {
        if let Decision::Place(p) = &d.decision {
            let pool = p.node.rsplit_once('-').map_or(p.node.as_str(), |(a, _)| a);
            let mode = if p.share_pct >= 100 {
                "excl".to_string()
            } else {
                format!("{}%", p.share_pct)
            };
            *mix.entry(format!("{pool} {mode}")).or_default() += 1.0;
        }
    }
    mix.into_iter().map(|(k, v)| (k, v, None)).collect()
}

fn markdown(result: &RunResult, plots: &[String]) -> String {
    let s = &result.summary;
    let mut md = String::new();
    let _ = writeln!(md, "# gpusched run: {}\n", s.scenario);
    let _ = writeln!(
        md,
        "Seed {}, {:.1} h simulated, policy `{}`, autoscaler `{}`.\n",
        s.seed,
        s.duration_s / 3600.0,
        s.policy,
        s.autoscaler
    );
    let r = &s.requests;
    let _ = writeln!(md, "| metric | value |\n|---|---|");
    let rows: Vec<(String, String)> = vec![
        ("requests arrived".into(), r.arrived.to_string()),
        ("served".into(), r.served.to_string()),
        (
            "failed".into(),
            format!(
                "{} ({})",
                r.failed,
                r.failed_by_cause
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (
            "queued / in service at end".into(),
            format!("{} / {}", r.queued_at_end, r.in_service_at_end),
        ),
        (
            "placements / unschedulable attempts / scale events".into(),
            format!(
                "{} / {} / {}",
                s.placements, s.unschedulable, s.scale_events
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    // The headline metrics: the registry's list (`show.run`), named and rounded as everywhere.
    let values = gpusched_experiments::metric::extract(s);
    for m in gpusched_experiments::metric::shown(|x| x.run) {
        if let Some(v) = values.get(m.name) {
            let d = m.decimals;
            let _ = writeln!(md, "| {} — {} | {v:.d$} {} |", m.name, m.help, m.unit);
        }
    }
    let _ = writeln!(md, "\n## Services\n\n| service | arrived | served | failed | p50 ms | p99 ms | SLA ms | SLO attainment | replicas min–max | replica-hours |\n|---|---|---|---|---|---|---|---|---|---|");
    for x in &s.services {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {} | {:.3} % | {}–{} | {:.1} |",
            x.name,
            x.requests.arrived,
            x.requests.served,
            x.requests.failed,
            x.latency.p50_ms,
            x.latency.p99_ms,
            x.latency_sla_ms.map_or("-".into(), |v| format!("{v:.0}")),
            x.slo_attainment * 100.0,
            x.replicas_min,
            x.replicas_max,
            x.replica_hours
        );
    }
    let llm: Vec<_> = s
        .services
        .iter()
        .filter_map(|x| x.llm.as_ref().map(|l| (x, l)))
        .collect();
    if !llm.is_empty() {
        let _ = writeln!(md, "\n## LLM services\n\n| service | model (dtype, TP) | stack | TTFT p50 / p99 ms | TPOT p50 / p99 ms | E2E p50 / p99 ms | output tok/s | preemptions | rejected | peak batch | peak KV | SLO |\n|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (x, l) in llm {
            let slo = l.slo.as_ref().map_or("-".to_string(), |o| {
                format!(
                    "p{}: TTFT {:.0}/{} ms, TPOT {:.1}/{} ms: {}",
                    o.percentile,
                    o.ttft_at_percentile_ms,
                    o.ttft_ms.map_or("-".into(), |v| format!("{v:.0}")),
                    o.tpot_at_percentile_ms,
                    o.tpot_ms.map_or("-".into(), |v| format!("{v:.0}")),
                    if o.met { "met" } else { "missed" }
                )
            });
            let _ = writeln!(
                md,
                "| {} | {} ({}, TP{}) | {} | {:.1} / {:.1} | {:.2} / {:.2} | {:.0} / {:.0} | {:.0} | {} | {} | {} | {:.0} % | {} |",
                x.name,
                l.model,
                l.dtype,
                l.tensor_parallel,
                l.stack,
                l.ttft.p50_ms,
                l.ttft.p99_ms,
                l.tpot.p50_ms,
                l.tpot.p99_ms,
                x.latency.p50_ms,
                x.latency.p99_ms,
                l.output_tokens_per_s,
                l.counts.preemptions,
                l.counts.rejected,
                l.counts.peak_running,
                l.counts.peak_kv_usage * 100.0,
                slo
            );
        }
    }
    let _ = writeln!(md, "\n## GPUs\n\n| model | GPUs | utilisation (busy) | energy kWh | mean W | GPU cost $ |\n|---|---|---|---|---|---|");
    for (m, g) in &s.gpu_models {
        let _ = writeln!(
            md,
            "| {m} | {} | {:.1} % | {:.1} | {:.0} | {:.2} |",
            g.gpus,
            g.utilisation * 100.0,
            g.energy_kwh,
            g.mean_power_w,
            g.gpu_cost_usd
        );
    }
    if let Some(b) = &s.binding_constraints {
        md.push_str(&binding_markdown(b));
    }
    if !plots.is_empty() {
        let _ = writeln!(md, "\n## Plots\n");
        for p in plots {
            let _ = writeln!(md, "![{p}]({p})");
        }
    }
    let _ = writeln!(md, "\nFiles: `summary.json` (every headline metric), `timeseries.csv` (every {:.0} s), `decisions.jsonl` (every decision with its reason and scores).", result.timeseries.window_s);
    md
}

/// The report's "Binding constraints" section: the ranked findings, then the measurements
/// behind them per service and GPU model.
pub fn binding_markdown(b: &gpusched_sim::diagnosis::BindingConstraints) -> String {
    let mut md = String::from("\n## Binding constraints\n\n");
    if b.findings.is_empty() {
        md.push_str("Nothing bound this run for 1 % of its time or more (no service at its replica cap with requests waiting, no GPU model exhausted, no replica waiting for a node).\n");
    } else {
        for (i, f) in b.findings.iter().enumerate() {
            let _ = writeln!(
                md,
                "{}. **{}** on `{}` ({:.0} %{}): {}. Change: {}.",
                i + 1,
                f.kind.label(),
                f.subject,
                f.share * 100.0,
                if f.kind == gpusched_sim::diagnosis::ConstraintKind::Queueing {
                    " of mean latency"
                } else {
                    " of the run"
                },
                f.detail,
                f.change
            );
        }
    }
    let _ = writeln!(md, "\n| service | peak / max replicas | at cap (s) | at cap, requests waiting (s) | requests waiting (s) | replica-s waiting for a node | refused placements (by filter) | may not fall back | latency: queueing / service (ms) | backlog → scale-up (n, mean s, max s) |\n|---|---|---|---|---|---|---|---|---|---|");
    for x in &b.services {
        let refusals = if x.refusals.is_empty() {
            "–".to_string()
        } else {
            x.refusals
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let split = match (x.latency.queue_ms, x.latency.ttft_ms) {
            (Some(q), _) => format!("{q:.1} / {:.1}", x.latency.service_ms.unwrap_or(0.0)),
            (None, Some(t)) => format!(
                "TTFT {t:.1} / decode {:.1}",
                x.latency.decode_ms.unwrap_or(0.0)
            ),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} / {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {}, {:.0}, {:.0} |",
            x.name,
            x.peak_replicas,
            x.max_replicas,
            x.at_cap_s,
            x.at_cap_backlogged_s,
            x.backlogged_s,
            x.pending_replica_s,
            refusals,
            x.no_fallback_refusals,
            split,
            x.scale_up_lag.episodes,
            x.scale_up_lag.mean_s,
            x.scale_up_lag.max_s
        );
    }
    let _ = writeln!(md, "\n| GPU model | GPUs | every GPU fully allocated (s) | no GPU entirely free (s) | … while replicas waited for a node (s) |\n|---|---|---|---|---|");
    for (m, g) in &b.gpu_models {
        let _ = writeln!(
            md,
            "| {m} | {} | {:.0} | {:.0} | {:.0} |",
            g.gpus, g.exhausted_s, g.no_whole_gpu_free_s, g.exhausted_while_pending_s
        );
    }
    if let Some(w) = b.up_stabilisation_s {
        let _ = writeln!(md, "\nAutoscaler scale-up stabilisation window: {w:.0} s.");
    }
    md
}
