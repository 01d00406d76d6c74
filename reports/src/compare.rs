//! Files and plots of experiments: `compare` (tables, latency CDFs per variant, bars with 95 %
//! interval whiskers per metric) and `sweep` (table, Pareto plot of cost against p99).

use crate::charts::{log_cdf_to_files, Bars, LinePanel, Series, PALETTE};
use crate::font::{ensure_font, FONT};
use crate::ReportError;
use gpusched_experiments::compare::CompareReport;
use gpusched_experiments::metric;
use gpusched_experiments::sweep::SweepResult;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn other(path: &Path, message: impl ToString) -> ReportError {
    ReportError::Other {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn write(path: PathBuf, text: &str, files: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    fs::write(&path, text).map_err(io(&path))?;
    files.push(path);
    Ok(())
}

/// Writes compare.md, compare.csv, compare.json and, with `plots`, plots/latency_cdf and
/// plots/bar_<metric> (SVG and PNG). `extra_md` is appended to the markdown (the gate's verdict).
pub fn write_compare(
    dir: &Path,
    report: &CompareReport,
    baseline_variant: Option<&str>,
    extra_md: &str,
    assumptions_md: &str,
    plots: bool,
) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = Vec::new();
    let md = format!(
        "## gpusched compare\n\n{}{extra_md}",
        report.to_markdown(baseline_variant)
    );
    write(dir.join("compare.md"), &md, &mut files)?;
    write(dir.join("compare.csv"), &report.to_csv(), &mut files)?;
    let json = serde_json::to_string_pretty(report).map_err(|e| other(dir, e))?;
    write(dir.join("compare.json"), &(json + "\n"), &mut files)?;
    if plots {
        let pd = dir.join("plots");
        fs::create_dir_all(&pd).map_err(io(&pd))?;
        let panels: Vec<LinePanel> = report
            .scenarios
            .iter()
            .map(|sc| LinePanel {
                title: format!("Latency CDF — {sc}"),
                x_label: "latency (ms, log scale)".into(),
                y_label: "fraction of requests (%)".into(),
                series: report
                    .groups
                    .iter()
                    .filter(|g| &g.scenario == sc)
                    .map(|g| Series {
                        name: g.variant.clone(),
                        points: g
                            .latency_cdf_ms
                            .iter()
                            .zip(&report.cdf_quantiles)
                            .map(|(ms, q)| (*ms, q * 100.0))
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        let h = 380 * panels.len().max(1) as u32;
        log_cdf_to_files(&pd, "latency_cdf", (900, h), &panels).map_err(|e| other(&pd, e))?;
        files.push(pd.join("latency_cdf.svg"));
        // The registry says which metrics get a bar chart (`show.bars`).
        for m in metric::shown(|s| s.bars) {
            let name = m.name;
            let multi = report.scenarios.len() > 1;
            let bars = Bars {
                title: format!("{} — mean with 95 % CI", m.help),
                y_label: format!("{} ({})", m.name, m.unit),
                bars: report
                    .groups
                    .iter()
                    .filter_map(|g| {
                        let e = g.metrics.get(name)?;
                        let label = if multi {
                            format!("{}/{}", g.scenario, g.variant)
                        } else {
                            g.variant.clone()
                        };
                        Some((label, e.mean, Some(e.ci95)))
                    })
                    .collect(),
            };
            if bars.bars.is_empty() {
                // No run reports this metric (a change's cost without a change).
                continue;
            }
            let stem = format!("bar_{name}");
            let w = (160 * bars.bars.len() as u32).clamp(500, 1600);
            let (svg, png) = (
                pd.join(format!("{stem}.svg")),
                pd.join(format!("{stem}.png")),
            );
            ensure_font();
            draw_ci_bars(
                &SVGBackend::new(&svg, (w, 420)).into_drawing_area(),
                &bars,
                m.decimals,
            )
            .map_err(|e| other(&svg, e))?;
            draw_ci_bars(
                &BitMapBackend::new(&png, (w, 420)).into_drawing_area(),
                &bars,
                m.decimals,
            )
            .map_err(|e| other(&png, e))?;
            files.push(svg);
        }
    }
    // The HTML page shows every plot written (compare.md lists none: its plots sit beside it).
    let plots_md: String = files
        .iter()
        .filter_map(|f| {
            let name = f.file_name()?.to_str()?;
            name.ends_with(".svg")
                .then(|| format!("![{name}](plots/{name})\n"))
        })
        .collect();
    let mut extra = if plots_md.is_empty() {
        String::new()
    } else {
        format!("\n## Plots\n\n{plots_md}")
    };
    extra.push_str(assumptions_md);
    files.push(crate::html::write_html(
        dir,
        "gpusched compare",
        "compare.md",
        &extra,
    )?);
    Ok(files)
}

/// Bars with 95 % interval whiskers, one per variant (the shared chart, values with `decimals`).
fn draw_ci_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    b: &Bars,
    decimals: usize,
) -> Result<(), String> {
    crate::charts::draw_bars_with(root, b, decimals)
}

/// Writes sweep.json, sweep.csv, sweep.md, recommended.json and, with `plots`, plots/pareto.
pub fn write_sweep(
    dir: &Path,
    result: &SweepResult,
    assumptions_md: &str,
    plots: bool,
) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = Vec::new();
    let json = serde_json::to_string_pretty(result).map_err(|e| other(dir, e))?;
    write(dir.join("sweep.json"), &(json + "\n"), &mut files)?;
    let rec = serde_json::to_string_pretty(&result.recommendations).map_err(|e| other(dir, e))?;
    write(dir.join("recommended.json"), &(rec + "\n"), &mut files)?;
    write(dir.join("sweep.csv"), &result.to_csv(), &mut files)?;
    write(dir.join("sweep.md"), &result.to_markdown(), &mut files)?;
    if plots {
        let pd = dir.join("plots");
        fs::create_dir_all(&pd).map_err(io(&pd))?;
        ensure_font();
        let svg = pd.join("pareto.svg");
        let png = pd.join("pareto.png");
        let size = (900, 600);
        draw_pareto(&SVGBackend::new(&svg, size).into_drawing_area(), result)
            .map_err(|e| other(&svg, e))?;
        draw_pareto(&BitMapBackend::new(&png, size).into_drawing_area(), result)
            .map_err(|e| other(&png, e))?;
        files.push(svg);
        files.push(png);
        // The Pareto plot heads the HTML page (sweep.md is also read on GitHub without it).
        files.push(crate::html::write_html(
            dir,
            &format!("gpusched sweep {}", result.name),
            "sweep.md",
            &format!("\n## Plots\n\n![cost against p99](plots/pareto.svg)\n{assumptions_md}"),
        )?);
    } else {
        files.push(crate::html::write_html(
            dir,
            &format!("gpusched sweep {}", result.name),
            "sweep.md",
            assumptions_md,
        )?);
    }
    Ok(files)
}

/// Cost ($/h) against p99, one colour per growth level; the Pareto front joined by a line, the
/// recommended fleet circled, the p99 SLO as a dashed line.
fn draw_pareto<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &SweepResult,
) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let pts: Vec<(f64, f64)> = r
        .rows
        .iter()
        .map(|row| (row.usd_per_hour(), row.p99_ms()))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    // p99 spans milliseconds to queue timeouts: a log axis keeps both ends readable.
    let (mut x0, mut x1, mut y0, mut y1) =
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, 0.0f64);
    for &(x, y) in &pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if let Some(m) = r.slo.max_p99_ms {
        y0 = y0.min(m);
        y1 = y1.max(m);
    }
    let y0 = if y0.is_finite() && y0 > 0.0 {
        y0 * 0.7
    } else {
        1.0
    };
    if !(x1 > x0) {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let pad = (x1 - x0) * 0.05;
    let y1 = if y1 > y0 { y1 * 1.5 } else { y0 * 10.0 };
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Sweep {}: cost against p99 latency", r.name),
            (FONT, 18),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - pad)..(x1 + pad), (y0..y1).log_scale())
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("fleet cost incl. energy ($/hour)")
        .y_desc("p99 latency (ms, log scale)")
        .label_style((FONT, 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|x| e(&x))?;
    if let Some(m) = r.slo.max_p99_ms {
        chart
            .draw_series(DashedLineSeries::new(
                [(x0 - pad, m), (x1 + pad, m)],
                6,
                4,
                RED.stroke_width(1),
            ))
            .map_err(|x| e(&x))?
            .label(format!("p99 SLO {m} ms"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    }
    for (i, rec) in r.recommendations.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let at: Vec<(f64, f64)> = r
            .rows
            .iter()
            .filter(|row| row.point.growth == rec.growth)
            .map(|row| (row.usd_per_hour(), row.p99_ms()))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        chart
            .draw_series(at.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|x| e(&x))?
            .label(format!("traffic ×{}", rec.growth))
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        let mut front: Vec<(f64, f64)> = rec
            .pareto
            .iter()
            .filter_map(|&i| r.rows.get(i))
            .map(|row| (row.usd_per_hour(), row.p99_ms()))
            .collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(front, color.stroke_width(1)))
            .map_err(|x| e(&x))?;
        if let Some(row) = rec.point.and_then(|i| r.rows.get(i)) {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (row.usd_per_hour(), row.p99_ms()),
                    9,
                    BLACK.stroke_width(2),
                )))
                .map_err(|x| e(&x))?;
        }
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}
