//! Figures of the FGD paper's openb evaluation: allocation against arrived workload, one line
//! per policy (the paper's Fig. 9a), and unallocated GPUs at arrived 100 % per policy across a
//! family of pod lists (Figs. 11–14). Each figure is written as SVG and PNG.

use crate::font::{ensure_font, FONT};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("nothing to plot: {0}")]
    Empty(String),
}

/// One line of an allocation figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// (arrived %, allocated %).
    pub points: Vec<(f64, f64)>,
}

/// One group of bars: a pod list and each policy's value.
#[derive(Debug, Clone, PartialEq)]
pub struct BarGroup {
    pub label: String,
    pub bars: Vec<(String, f64)>,
}

use crate::charts::PALETTE;

const SIZE: (u32, u32) = (960, 600);

fn err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Something that draws itself on any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

struct AllocFigure<'a> {
    title: &'a str,
    series: &'a [Series],
}

impl Figure for AllocFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_alloc(root, self.title, self.series)
    }
}

struct BarFigure<'a> {
    title: &'a str,
    y_desc: &'a str,
    groups: &'a [BarGroup],
}

impl Figure for BarFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_bars(root, self.title, self.y_desc, self.groups)
    }
}

/// Renders `fig` into `<stem>.svg` and `<stem>.png`; returns both paths.
fn both(stem: &Path, fig: &impl Figure) -> Result<Vec<PathBuf>, PlotError> {
    ensure_font();
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        fig.draw(&root).map_err(|e| err(&svg, e))?;
        root.present().map_err(|e| err(&svg, e))?;
    }
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        fig.draw(&root).map_err(|e| err(&png, e))?;
        root.present().map_err(|e| err(&png, e))?;
    }
    Ok(vec![svg, png])
}

fn draw_alloc<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[Series],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let lo = ys.fold(f64::INFINITY, f64::min).min(100.0);
    let y0 = if lo.is_finite() {
        (lo / 10.0).floor() * 10.0
    } else {
        0.0
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..130f64, y0..100f64)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("Arrived workloads (% of GPU capacity)")
        .y_desc("GPU allocation ratio (%)")
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Allocation against arrived workload, one line per policy (Fig. 9a).
pub fn alloc_curves(
    stem: &Path,
    title: &str,
    series: &[Series],
) -> Result<Vec<PathBuf>, PlotError> {
    if series.iter().all(|s| s.points.is_empty()) {
        return Err(PlotError::Empty(title.into()));
    }
    both(stem, &AllocFigure { title, series })
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    groups: &[BarGroup],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let policies: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for g in groups {
            for (p, _) in &g.bars {
                if !v.contains(p) {
                    v.push(p.clone());
                }
            }
        }
        v
    };
    let top = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.1))
        .fold(0.0, f64::max);
    let y1 = ((top * 1.15) / 2.0).ceil().max(1.0) * 2.0;
    let n = groups.len();
    let labels: Vec<String> = groups.iter().map(|g| g.label.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1))
        // Groups sit at integer x, so the integer ticks carry their labels.
        .x_label_formatter(&|x| {
            let r = x.round();
            if (x - r).abs() < 1e-6 && r >= 0.0 {
                labels.get(r as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(|e| e.to_string())?;
    let width = 0.8 / policies.len().max(1) as f64;
    for (pi, p) in policies.iter().enumerate() {
        let color = PALETTE[pi % PALETTE.len()];
        let rects: Vec<Rectangle<(f64, f64)>> = groups
            .iter()
            .enumerate()
            .filter_map(|(gi, g)| {
                let v = g.bars.iter().find(|b| &b.0 == p)?.1;
                let x0 = gi as f64 - 0.4 + pi as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, v)],
                    color.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(|e| e.to_string())?
            .label(p.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Grouped bars, e.g. unallocated GPU % at arrived 100 % per policy per pod list (Figs. 11–14).
pub fn bars(
    stem: &Path,
    title: &str,
    y_desc: &str,
    groups: &[BarGroup],
) -> Result<Vec<PathBuf>, PlotError> {
    if groups.iter().all(|g| g.bars.is_empty()) {
        return Err(PlotError::Empty(title.into()));
    }
    both(
        stem,
        &BarFigure {
            title,
            y_desc,
            groups,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_svg_and_png() {
        let dir = std::env::temp_dir().join(format!("gpusched-fgd-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = vec![Series {
            name: "FGD".into(),
            points: vec![(0.0, 0.0), (100.0, 95.0), (130.0, 96.0)],
        }];
        let files = alloc_curves(&dir.join("alloc"), "default", &s).unwrap();
        assert!(files
            .iter()
            .all(|f| std::fs::metadata(f).unwrap().len() > 1000));
        let g = vec![BarGroup {
            label: "cpu050".into(),
            bars: vec![("FGD".into(), 4.8), ("DotProd".into(), 9.4)],
        }];
        let files = bars(&dir.join("bars"), "non-GPU", "Unallocated GPU (%)", &g).unwrap();
        assert!(files
            .iter()
            .all(|f| std::fs::metadata(f).unwrap().len() > 1000));
        assert!(bars(&dir.join("none"), "x", "y", &[]).is_err());
    }
}
