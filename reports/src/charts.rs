//! Chart primitives shared by every report: line panels and bar charts, drawn once per backend
//! so each figure is written as both SVG and PNG.

use crate::font::{ensure_font, FONT};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One named line.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel of lines sharing axes.
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

pub type ChartResult = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws panels stacked vertically on `root`.
pub fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[LinePanel],
) -> ChartResult {
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for s in &panel.series {
            for &(x, y) in &s.points {
                x0 = x0.min(x);
                x1 = x1.max(x);
                if y.is_finite() {
                    y1 = y1.max(y);
                }
            }
        }
        if !(x1 > x0) {
            x0 = 0.0;
            x1 = 1.0;
        }
        let y1 = if y1 > 0.0 { y1 * 1.08 } else { 1.0 };
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FONT, 18))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(err)?;
        draw_lines(&mut chart, panel, |_| true, SeriesLabelPosition::UpperRight)?;
    }
    root.present().map_err(err)
}

/// Draws the mesh, every series as a line and the legend: the part all line charts share,
/// whatever their axes (linear or logarithmic).
fn draw_lines<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    panel: &LinePanel,
    keep: fn(&(f64, f64)) -> bool,
    legend_at: SeriesLabelPosition,
) -> ChartResult
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .label_style((FONT, 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    for (i, s) in panel.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied().filter(keep),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    if panel.series.len() > 1 || panel.series.first().is_some_and(|s| !s.name.is_empty()) {
        chart
            .configure_series_labels()
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(legend_at)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Horizontal-label bar chart: one bar per (label, value), optional error half-widths.
pub struct Bars {
    pub title: String,
    pub y_label: String,
    pub bars: Vec<(String, f64, Option<f64>)>,
}

pub fn draw_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, b: &Bars) -> ChartResult {
    draw_bars_with(root, b, 2)
}

/// Bars with optional whiskers, labelled under each bar on a segmented axis (so labels sit at
/// the bars' centres whatever their number); values printed with `decimals` places.
pub fn draw_bars_with<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    b: &Bars,
    decimals: usize,
) -> ChartResult {
    use plotters::coord::ranged1d::SegmentValue;
    root.fill(&WHITE).map_err(err)?;
    let n = b.bars.len().max(1) as i32;
    let top = b
        .bars
        .iter()
        .map(|(_, v, h)| v + h.unwrap_or(0.0))
        .fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let labels: Vec<String> = b.bars.iter().map(|(l, _, _)| l.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(&b.title, (FONT, 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        // A segmented 0..k range has k + 1 segments: k = n - 1 gives one per bar.
        .build_cartesian_2d((0..(n - 1).max(0)).into_segmented(), 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n as usize + 1)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc(&b.y_label)
        .label_style((FONT, 12))
        .draw()
        .map_err(err)?;
    for (i, (_, v, h)) in b.bars.iter().enumerate() {
        let i = i as i32;
        let color = PALETTE[i as usize % PALETTE.len()];
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *v),
            ],
            color.filled(),
        );
        bar.set_margin(0, 0, 12, 12);
        chart.draw_series(std::iter::once(bar)).map_err(err)?;
        let c = SegmentValue::CenterOf(i);
        let text = match h {
            Some(h) if *h > 0.0 => {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(c.clone(), v - h), (c.clone(), v + h)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(err)?;
                format!("{v:.decimals$} ± {h:.decimals$}")
            }
            _ => format!("{v:.decimals$}"),
        };
        let h = h.unwrap_or(0.0);
        chart
            .draw_series(std::iter::once(Text::new(
                text,
                (c, v + h + top * 0.02),
                (FONT, 11).into_font(),
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// Draws one figure twice, to `<stem>.svg` and `<stem>.png` in `dir`: every chart of the
/// reports is written in both forms by this one macro (a macro because the drawing function
/// is generic over the backend).
macro_rules! to_files {
    ($dir:expr, $stem:expr, $size:expr, $draw:ident, $what:expr) => {{
        ensure_font();
        let svg = $dir.join(format!("{}.svg", $stem));
        let png = $dir.join(format!("{}.png", $stem));
        $draw(&SVGBackend::new(&svg, $size).into_drawing_area(), $what)?;
        let result = $draw(&BitMapBackend::new(&png, $size).into_drawing_area(), $what);
        result
    }};
}

/// The whole decades around `[lo, hi]` (both > 0), so log-axis ticks read 1, 10, 100…
fn decades(lo: f64, hi: f64) -> (f64, f64) {
    (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()),
    )
}

/// Renders a set of line panels to SVG and PNG.
pub fn panels_to_files(
    dir: &Path,
    stem: &str,
    size: (u32, u32),
    what: &[LinePanel],
) -> ChartResult {
    to_files!(dir, stem, size, draw_panels, what)
}

/// Renders a bar chart to SVG and PNG.
pub fn bars_to_files(dir: &Path, stem: &str, size: (u32, u32), what: &Bars) -> ChartResult {
    to_files!(dir, stem, size, draw_bars, what)
}

/// Latency CDF panels on a logarithmic latency axis: heavy tails spread over decades, and a
/// linear axis squeezes everything but the tail into its first pixels. x: latency (> 0), y: %.
pub fn draw_log_cdf_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[LinePanel],
) -> ChartResult {
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let ((mut x0, mut x1), _) = extent(panel, positive_x);
        if !(x1 > x0) {
            (x0, x1) = (1.0, 10.0);
        }
        let (x0, x1) = decades(x0, x1);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FONT, 18))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d((x0..x1).log_scale(), 0.0..100.0)
            .map_err(err)?;
        draw_lines(
            &mut chart,
            panel,
            positive_x,
            SeriesLabelPosition::LowerRight,
        )?;
    }
    root.present().map_err(err)
}

/// Time-series panels on a logarithmic value axis: latency percentiles per window span
/// decades under load (ms when idle, seconds when queues build), and a linear axis flattens
/// all but the worst windows. x: time, y: a positive value (windows without one are skipped).
pub fn draw_log_y_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[LinePanel],
) -> ChartResult {
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let ((mut x0, mut x1), (mut y0, mut y1)) = extent(panel, positive_y);
        if !(x1 > x0) {
            (x0, x1) = (0.0, 1.0);
        }
        if !(y1 > y0) {
            (y0, y1) = (
                if y0.is_finite() { y0 } else { 1.0 },
                if y1.is_finite() { y1 * 10.0 } else { 10.0 },
            );
        }
        let (y0, y1) = decades(y0, y1);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FONT, 18))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
            .map_err(err)?;
        draw_lines(
            &mut chart,
            panel,
            positive_y,
            SeriesLabelPosition::UpperRight,
        )?;
    }
    root.present().map_err(err)
}

/// The (x, y) ranges of a panel's points that `keep` accepts (inverted when there are none).
fn extent(panel: &LinePanel, keep: fn(&(f64, f64)) -> bool) -> ((f64, f64), (f64, f64)) {
    let (mut x, mut y) = (
        (f64::INFINITY, f64::NEG_INFINITY),
        (f64::INFINITY, f64::NEG_INFINITY),
    );
    for p in panel
        .series
        .iter()
        .flat_map(|s| &s.points)
        .filter(|p| keep(p))
    {
        x = (x.0.min(p.0), x.1.max(p.0));
        y = (y.0.min(p.1), y.1.max(p.1));
    }
    (x, y)
}

fn positive_x(p: &(f64, f64)) -> bool {
    p.0 > 0.0 && p.0.is_finite()
}

fn positive_y(p: &(f64, f64)) -> bool {
    p.1 > 0.0 && p.1.is_finite() && p.0.is_finite()
}

/// Renders log-value time-series panels to SVG and PNG.
pub fn log_y_to_files(dir: &Path, stem: &str, size: (u32, u32), what: &[LinePanel]) -> ChartResult {
    to_files!(dir, stem, size, draw_log_y_panels, what)
}

/// Renders log-latency CDF panels to SVG and PNG.
pub fn log_cdf_to_files(
    dir: &Path,
    stem: &str,
    size: (u32, u32),
    what: &[LinePanel],
) -> ChartResult {
    to_files!(dir, stem, size, draw_log_cdf_panels, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svg_of(panels: &[LinePanel]) -> Result<String, String> {
        ensure_font();
        let mut out = String::new();
        draw_log_y_panels(
            &SVGBackend::with_string(&mut out, (800, 400)).into_drawing_area(),
            panels,
        )?;
        Ok(out)
    }

    fn panel(points: Vec<(f64, f64)>) -> LinePanel {
        LinePanel {
            title: "t".into(),
            x_label: "h".into(),
            y_label: "ms".into(),
            series: vec![Series {
                name: "p99".into(),
                points,
            }],
        }
    }

    #[test]
    fn log_y_panels_span_whole_decades_and_skip_windows_without_a_value() {
        // Idle windows (0), a missing one (NaN) and a queueing spike four decades up.
        let svg = svg_of(&[panel(vec![
            (0.0, 12.0),
            (0.5, 0.0),
            (1.0, f64::NAN),
            (1.5, 45_000.0),
        ])])
        .unwrap();
        // The axis runs from the decade below the smallest value (12 → 10) to the one above the
        // largest (45,000 → 100,000), one tick per decade.
        let labels: Vec<&str> = svg
            .split("</text>")
            .map(|t| t.rsplit('>').next().unwrap_or("").trim())
            .collect();
        for decade in ["10.0", "100.0", "1000.0", "10000.0", "100000.0"] {
            assert!(
                labels.contains(&decade),
                "no {decade} ms tick in {labels:?}"
            );
        }
        assert!(!labels.contains(&"1000000.0"), "{labels:?}");
        assert!(!svg.contains("NaN"), "a NaN window reached the drawing");
    }

    #[test]
    fn log_y_panels_draw_with_no_positive_values() {
        // A run where nothing was served: every window is 0; the chart still renders.
        assert!(svg_of(&[panel(vec![(0.0, 0.0), (1.0, 0.0)])]).is_ok());
        assert!(svg_of(&[panel(vec![])]).is_ok());
    }
}
