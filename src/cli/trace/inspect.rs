//! `gpusched trace inspect`: rows, span, request rate over 1/5/15-minute windows, token
//! distributions and a QPS plot of a trace (or a per-pod series, an inventory, a ServeGen folder).

use crate::cli::support::log_replay_reports;
use crate::cli::{bad_input, fail, stage_out};
use gpusched_reports::charts::{panels_to_files, LinePanel, Series};
use gpusched_sim::trace::pipeline::{Pipeline, TraceSpec};
use gpusched_sim::trace::servegen::{ServeGen, ServeGenSpec};
use gpusched_sim::trace::stats::{InspectReport, Inspector};
use gpusched_sim::trace::{genai, inventory, TraceFormat};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// A trace file, a `.tar.gz` member's archive, an inventory, or a ServeGen folder.
    pub file: PathBuf,
    /// The format (default: detected from the header).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// The `.tar.gz` member to read.
    #[arg(long)]
    pub member: Option<String>,
    /// Skip malformed rows instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    #[arg(long)]
    pub rate_scale: Option<f64>,
    #[arg(long)]
    pub time_scale: Option<f64>,
    /// Where the QPS plot goes (default: out/trace-inspect/<file stem>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub no_plot: bool,
    /// For generators (ServeGen folders): seconds to generate and the seed.
    #[arg(long, default_value_t = 86_400.0)]
    pub duration_s: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// `--format`: a [`TraceFormat`] by its scenario name (`gpusched`, `azure`, …, `openb_pods`).
#[derive(Clone, Copy)]
pub struct FormatArg(pub TraceFormat);

const FORMAT_ARGS: [FormatArg; TraceFormat::ALL.len()] = {
    let mut v = [FormatArg(TraceFormat::ALL[0]); TraceFormat::ALL.len()];
    let mut i = 0;
    while i < v.len() {
        v[i] = FormatArg(TraceFormat::ALL[i]);
        i += 1;
    }
    v
};

impl clap::ValueEnum for FormatArg {
    fn value_variants<'a>() -> &'a [Self] {
        &FORMAT_ARGS
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.name()))
    }
}

pub fn execute(a: &InspectArgs) -> ExitCode {
    if a.file.is_dir() {
        let spec = ServeGenSpec {
            path: a.file.clone(),
            clients: None,
            rate_scale: a.rate_scale.unwrap_or(1.0),
            assign: Default::default(),
        };
        let g = match ServeGen::open(&spec, &a.file, a.duration_s, a.seed, 0) {
            Ok(g) => g,
            Err(e) => return bad_input(e),
        };
        println!(
            "{}: ServeGen generator, {} s generated with seed {}",
            a.file.display(),
            a.duration_s,
            a.seed
        );
        let mut ins = Inspector::default();
        g.for_each(|r| ins.add(&r));
        return show(a, ins.finish());
    }
    let member = a.member.as_deref();
    let head = match gpusched_sim::trace::first_line(&a.file, member) {
        Ok(h) => h,
        Err(e) => return bad_input(e),
    };
    if genai::SeriesReader::is_series_header(&head) {
        return inspect_series(a);
    }
    if let Some(f) = inventory::detect(&a.file, &head) {
        return match inventory::read(&a.file, f) {
            Ok(inv) => {
                super::cluster::print_inventory(&a.file, &inv, 1.0);
                ExitCode::SUCCESS
            }
            Err(e) => bad_input(e),
        };
    }
    let mut spec = TraceSpec::new(&a.file);
    spec.format = a.format.map(|f| f.0);
    spec.member = a.member.clone();
    spec.skip_bad_rows = a.skip_bad_rows;
    spec.rate_scale = a.rate_scale.unwrap_or(1.0);
    spec.time_scale = a.time_scale.unwrap_or(1.0);
    if let Err((k, p)) = spec.check() {
        return bad_input(format!("--{}: {p}", k.replace('_', "-")));
    }
    let mut p = match Pipeline::open(&spec, &a.file, a.seed, 0) {
        Ok(p) => p,
        Err(e) => return bad_input(e),
    };
    let mut ins = Inspector::default();
    for r in &mut p {
        match r {
            Ok(r) => ins.add(&r),
            Err(e) => return bad_input(e),
        }
    }
    println!("{}", a.file.display());
    log_replay_reports(&[p.report()]);
    show(a, ins.finish())
}

fn show(a: &InspectArgs, r: InspectReport) -> ExitCode {
    let span = (r.last_s - r.first_s).max(0.0);
    println!("rows: {}", r.rows);
    println!(
        "span: {:.1} s ({:.2} h), first {:.3} s, last {:.3} s, mean {:.3} req/s",
        span,
        span / 3600.0,
        r.first_s,
        r.last_s,
        r.mean_qps
    );
    println!("request rate (req/s) over windows:");
    println!(
        "  {:>7} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "window", "windows", "p50", "p90", "p99", "max"
    );
    for x in &r.rates {
        println!(
            "  {:>5}min {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            x.window_min, x.windows, x.p50, x.p90, x.p99, x.max
        );
    }
    if !r.dists.is_empty() {
        println!(
            "distributions{}:",
            if r.exact {
                ""
            } else {
                " (quantiles from a uniform sample)"
            }
        );
        println!(
            "  {:<14} {:>9} {:>10} {:>9} {:>9} {:>9} {:>10}",
            "", "n", "mean", "p50", "p90", "p99", "max"
        );
        for d in &r.dists {
            println!(
                "  {:<14} {:>9} {:>10.1} {:>9.0} {:>9.0} {:>9.0} {:>10.0}",
                d.name, d.n, d.mean, d.p50, d.p90, d.p99, d.max
            );
        }
    }
    if a.no_plot || r.qps_per_min.is_empty() {
        return ExitCode::SUCCESS;
    }
    let stem = a
        .file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("trace")
        .trim_end_matches(".tar")
        .to_string();
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out/trace-inspect").join(&stem));
    let stage = match stage_out(&dir) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let panel = LinePanel {
        title: format!("{stem}: requests per second, 1-minute windows"),
        x_label: "minute".into(),
        y_label: "req/s".into(),
        series: vec![Series {
            name: "QPS".into(),
            points: r.qps_per_min.clone(),
        }],
    };
    let written = panels_to_files(stage.path(), "qps", (1100, 420), &[panel])
        .map_err(|e| stage.write_error(stage.path(), std::io::Error::other(e)))
        .and_then(|_| stage.commit());
    match written {
        Ok(_) => {
            println!("plot: {}/qps.svg and qps.png", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn inspect_series(a: &InspectArgs) -> ExitCode {
    let rd = match genai::SeriesReader::open(&a.file, a.member.as_deref()) {
        Ok(r) => r,
        Err(e) => return bad_input(e),
    };
    let (mut n, mut t0, mut t1) = (0u64, f64::INFINITY, f64::NEG_INFINITY);
    let mut containers = std::collections::BTreeSet::new();
    let mut values = Vec::new();
    for s in rd {
        let s = match s {
            Ok(s) => s,
            Err(e) if a.skip_bad_rows => {
                tracing::warn!(error = %e, "bad sample skipped");
                continue;
            }
            Err(e) => return bad_input(e),
        };
        n += 1;
        t0 = t0.min(s.t_s);
        t1 = t1.max(s.t_s);
        containers.insert(s.container);
        values.push(s.value);
    }
    values.sort_by(f64::total_cmp);
    let q = |p: f64| {
        values
            .get(((values.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!("{}: per-pod series", a.file.display());
    println!(
        "samples: {n}, containers: {}, span: {:.1} h",
        containers.len(),
        (t1 - t0) / 3600.0
    );
    println!(
        "value p50 {:.4e}, p90 {:.4e}, p99 {:.4e}, max {:.4e}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
    if values.first().is_some_and(|_| q(0.5) > 1e6) {
        println!(
            "as GiB (memory bytes): p50 {:.1}, p90 {:.1}, max {:.1}",
            q(0.5) / 1073741824.0,
            q(0.9) / 1073741824.0,
            q(1.0) / 1073741824.0
        );
    }
    ExitCode::SUCCESS
}
