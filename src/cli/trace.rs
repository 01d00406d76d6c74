//! `gpusched trace …`: look at a trace before replaying it (`inspect`), write synthetic traffic
//! (`synth`), turn a node inventory into scenario pools (`cluster`), and measure the readers
//! (`bench`).

use super::bad_input;
use gpusched_reports::charts::{panels_to_files, LinePanel, Series};
use gpusched_sim::trace::pipeline::{Pipeline, ReplayReport, TraceSpec};
use gpusched_sim::trace::servegen::{ServeGen, ServeGenSpec};
use gpusched_sim::trace::stats::{InspectReport, Inspector};
use gpusched_sim::trace::synth::{FitSpec, Generator, MmppSpec, MmppState, RampSpec, RateCurve};
use gpusched_sim::trace::{genai, gpusched, inventory, TraceFormat, TraceRequest};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct TraceArgs {
    #[command(subcommand)]
    pub command: TraceCommand,
}

#[derive(clap::Subcommand)]
pub enum TraceCommand {
    /// Rows, span, request rate over 1/5/15-minute windows, token distributions and a QPS plot.
    Inspect(InspectArgs),
    /// Write synthetic traffic as a gpusched trace CSV.
    Synth(SynthArgs),
    /// Print a node inventory (openb, spot-GPU, PAI) as scenario [[pools]].
    Cluster(ClusterArgs),
    /// Rows parsed per second per format, and peak memory of a replay at 1× and 10×.
    Bench(BenchArgs),
    /// Stream a trace through the replay pipeline and print rows and peak memory (used by bench).
    #[command(hide = true)]
    Replay(ReplayArgs),
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// A trace file, a `.tar.gz` member's archive, an inventory, or a ServeGen folder.
    pub file: PathBuf,
    /// The format (default: detected from the header).
    #[arg(long)]
    pub format: Option<String>,
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

#[derive(clap::Args)]
pub struct SynthArgs {
    /// poisson, diurnal, mmpp, ramp, fit (needs --from) or servegen (needs --from FOLDER).
    #[arg(long)]
    pub kind: String,
    /// The output CSV (gpusched format).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 3600.0)]
    pub duration_s: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// poisson: the rate.
    #[arg(long, default_value_t = 10.0)]
    pub qps: f64,
    /// diurnal: multiplies the seeds' day.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// mmpp: states as QPS:MEAN_S pairs, e.g. 5:600,80:30.
    #[arg(long, default_value = "5:600,80:30")]
    pub states: String,
    /// ramp: from/to QPS over [ramp_start_s, ramp_end_s].
    #[arg(long, default_value_t = 1.0)]
    pub from_qps: f64,
    #[arg(long, default_value_t = 50.0)]
    pub to_qps: f64,
    #[arg(long, default_value_t = 0.0)]
    pub ramp_start_s: f64,
    #[arg(long)]
    pub ramp_end_s: Option<f64>,
    /// fit: the trace to fit; servegen: the folder.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// fit: the rate bin, s.
    #[arg(long, default_value_t = 3600.0)]
    pub bin_s: f64,
    /// fit / servegen: multiplies the rate.
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
}

#[derive(clap::Args)]
pub struct ClusterArgs {
    pub file: PathBuf,
    /// Fraction of each node group to keep (at least one node per group).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The folder with the shared traces.
    #[arg(long, default_value = "../shared/traces")]
    pub traces: PathBuf,
    /// Minimum seconds spent parsing each format.
    #[arg(long, default_value_t = 1.0)]
    pub min_s: f64,
    /// Rows of the synthetic long trace used to show memory does not grow with length.
    #[arg(long, default_value_t = 2_000_000)]
    pub long_rows: u64,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    pub file: PathBuf,
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
}

pub fn execute(a: &TraceArgs) -> ExitCode {
    match &a.command {
        TraceCommand::Inspect(x) => inspect(x),
        TraceCommand::Synth(x) => synth(x),
        TraceCommand::Cluster(x) => cluster(x),
        TraceCommand::Bench(x) => bench(x),
        TraceCommand::Replay(x) => replay(x),
    }
}

/// Prints what trace replays skipped and filtered (`gpusched run`).
pub fn print_replay_reports(reports: &[ReplayReport]) {
    for r in reports {
        if r.bad_rows_skipped > 0 {
            eprintln!(
                "warning: skipped {} bad trace rows; the first reasons:",
                r.bad_rows_skipped
            );
            for reason in &r.reasons {
                eprintln!("  {reason}");
            }
        }
        for (why, n) in &r.filtered {
            eprintln!("note: {n} trace rows not replayed: {why}");
        }
    }
}

fn parse_format(f: &Option<String>) -> Result<Option<TraceFormat>, String> {
    match f {
        None => Ok(None),
        Some(s) => TraceFormat::from_name(s).map(Some).ok_or_else(|| {
            format!(
                "--format {s}: unknown; known formats are {}",
                TraceFormat::ALL.map(|f| f.name()).join(", ")
            )
        }),
    }
}

fn inspect(a: &InspectArgs) -> ExitCode {
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
                print_inventory(&a.file, &inv, 1.0);
                ExitCode::SUCCESS
            }
            Err(e) => bad_input(e),
        };
    }
    let mut spec = TraceSpec::new(&a.file);
    spec.format = match parse_format(&a.format) {
        Ok(f) => f,
        Err(e) => return bad_input(e),
    };
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
    print_replay_reports(&[p.report()]);
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
    let stage = match super::stage_out(&dir) {
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
        Err(e) => super::fail(e),
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
                eprintln!("warning: skipped: {e}");
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

fn print_inventory(path: &Path, inv: &inventory::Inventory, scale: f64) {
    println!(
        "# {}: {} nodes ({} CPU-only), {} GPUs",
        path.display(),
        inv.nodes(),
        inv.cpu_only_nodes,
        inv.gpus()
    );
    for ((ty, g), n) in &inv.groups {
        let to =
            inventory::map_model(ty).map_or("(no engine model)".to_string(), |m| format!("-> {m}"));
        println!("#   {ty:<16} {g} GPUs/node x {n:>5} nodes {to}");
    }
    let (pools, unmapped) = inventory::to_pools(inv, scale);
    for (ty, gpus) in &unmapped {
        println!("# not mapped: {gpus} {ty} GPUs");
    }
    println!("# scale {scale}\n");
    print!("{}", inventory::pools_toml(&pools));
}

fn cluster(a: &ClusterArgs) -> ExitCode {
    if !(a.scale > 0.0 && a.scale <= 1.0) {
        return bad_input(format!("--scale {}: must be within (0, 1]", a.scale));
    }
    let head = match gpusched_sim::trace::first_line(&a.file, None) {
        Ok(h) => h,
        Err(e) => return bad_input(e),
    };
    let Some(f) = inventory::detect(&a.file, &head) else {
        return bad_input(format!("{}: not a node inventory (openb node list, spot-GPU node_info_df.csv or PAI pai_machine_spec)", a.file.display()));
    };
    match inventory::read(&a.file, f) {
        Ok(inv) => {
            print_inventory(&a.file, &inv, a.scale);
            ExitCode::SUCCESS
        }
        Err(e) => bad_input(e),
    }
}

fn synth(a: &SynthArgs) -> ExitCode {
    // The flags go through the rules of the scenario keys they stand for.
    use gpusched_sim::numbers::check_flag;
    let flags = [
        ("--duration-s", "duration_s", a.duration_s),
        ("--qps", "traffic.qps", a.qps),
        ("--scale", "traffic.scale", a.scale),
        ("--from-qps", "traffic.from_qps", a.from_qps),
        ("--to-qps", "traffic.to_qps", a.to_qps),
        ("--ramp-start-s", "traffic.start_s", a.ramp_start_s),
        (
            "--ramp-end-s",
            "traffic.end_s",
            a.ramp_end_s.unwrap_or(a.duration_s),
        ),
        ("--bin-s", "traffic.bin_s", a.bin_s),
        ("--rate-scale", "traffic.rate_scale", a.rate_scale),
    ];
    for (flag, key, v) in flags {
        if let Err(e) = check_flag(flag, key, v) {
            return bad_input(e);
        }
    }
    let peak = match a.kind.as_str() {
        "poisson" => a.qps,
        "diurnal" => 300.0 * a.scale,
        "ramp" => a.from_qps.max(a.to_qps),
        _ => 0.0,
    };
    if peak * a.duration_s > gpusched_sim::limits::MAX_REQUESTS {
        return bad_input(format!(
            "--duration-s {} at {peak} req/s is {:.3e} requests; the limit is {:e}",
            a.duration_s,
            peak * a.duration_s,
            gpusched_sim::limits::MAX_REQUESTS
        ));
    }
    let gen: Box<dyn Iterator<Item = TraceRequest>> = match a.kind.as_str() {
        "poisson" => Box::new(Generator::curve(
            RateCurve::Constant(a.qps),
            a.duration_s,
            a.seed,
            0,
        )),
        "diurnal" => Box::new(Generator::curve(
            RateCurve::Daily {
                anchors: gpusched_sim::scenario::seeds_diurnal(),
                scale: a.scale,
            },
            a.duration_s,
            a.seed,
            0,
        )),
        "mmpp" => {
            let mut states = Vec::new();
            for part in a.states.split(',') {
                let Some((q, m)) = part.split_once(':') else {
                    return bad_input(format!("--states: `{part}` is not QPS:MEAN_S"));
                };
                match (q.trim().parse(), m.trim().parse()) {
                    (Ok(qps), Ok(mean_s)) => states.push(MmppState { qps, mean_s }),
                    _ => return bad_input(format!("--states: `{part}` is not QPS:MEAN_S")),
                }
            }
            let spec = MmppSpec { states };
            if let Err((_, p)) = spec.check() {
                return bad_input(format!("--states: {p}"));
            }
            Box::new(Generator::mmpp(&spec, a.duration_s, a.seed, 0))
        }
        "ramp" => {
            let spec = RampSpec {
                from_qps: a.from_qps,
                to_qps: a.to_qps,
                start_s: a.ramp_start_s,
                end_s: a.ramp_end_s.unwrap_or(a.duration_s),
            };
            if let Err((k, p)) = spec.check() {
                return bad_input(format!("ramp {k}: {p}"));
            }
            Box::new(Generator::curve(
                RateCurve::Ramp(spec),
                a.duration_s,
                a.seed,
                0,
            ))
        }
        "fit" => {
            let Some(from) = &a.from else {
                return bad_input("--kind fit needs --from TRACE");
            };
            let spec = FitSpec {
                path: from.clone(),
                format: None,
                member: None,
                bin_s: a.bin_s,
                rate_scale: a.rate_scale,
            };
            if let Err((k, p)) = spec.check() {
                return bad_input(format!("--{}: {p}", k.replace('_', "-")));
            }
            match Generator::fit(&spec, from, a.duration_s, a.seed, 0) {
                Ok(g) => Box::new(g),
                Err(e) => return bad_input(e),
            }
        }
        "servegen" => {
            let Some(from) = &a.from else {
                return bad_input("--kind servegen needs --from FOLDER");
            };
            let spec = ServeGenSpec {
                path: from.clone(),
                clients: None,
                rate_scale: a.rate_scale,
                assign: Default::default(),
            };
            match ServeGen::open(&spec, from, a.duration_s, a.seed, 0) {
                Ok(g) => Box::new(g),
                Err(e) => return bad_input(e),
            }
        }
        k => {
            return bad_input(format!(
                "--kind {k}: one of poisson, diurnal, mmpp, ramp, fit, servegen"
            ))
        }
    };
    // Written to a temporary sibling and renamed: a failure part-way leaves no cut-off trace.
    let mut n = 0u64;
    let res = gpusched_reports::staged::write_file_with(&a.out, |w| {
        writeln!(w, "{}", gpusched::HEADER)?;
        for r in gen {
            gpusched::write_row(w, &r)?;
            n += 1;
        }
        Ok(())
    });
    if let Err(e) = res {
        return super::fail(e);
    }
    println!(
        "wrote {n} requests ({} s, kind {}, seed {}) to {}",
        a.duration_s,
        a.kind,
        a.seed,
        a.out.display()
    );
    ExitCode::SUCCESS
}

/// Peak resident memory of this process, KiB (Linux `VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn replay(a: &ReplayArgs) -> ExitCode {
    let mut spec = TraceSpec::new(&a.file);
    spec.rate_scale = a.rate_scale;
    if let Err((k, p)) = spec.check() {
        return bad_input(format!("{k}: {p}"));
    }
    let started = Instant::now();
    let mut p = match Pipeline::open(&spec, &a.file, 42, 0) {
        Ok(p) => p,
        Err(e) => return bad_input(e),
    };
    let mut n = 0u64;
    let mut last = 0.0;
    for r in &mut p {
        match r {
            Ok(r) => {
                n += 1;
                last = r.t_s;
            }
            Err(e) => return bad_input(e),
        }
    }
    println!(
        "rows {n} last_t {last:.3} wall_s {:.3} peak_rss_kib {}",
        started.elapsed().as_secs_f64(),
        peak_rss_kib().unwrap_or(0)
    );
    ExitCode::SUCCESS
}

fn bench(a: &BenchArgs) -> ExitCode {
    let t = &a.traces;
    let cases: Vec<(&str, PathBuf, Option<&str>)> = vec![
        (
            "azure (conv)",
            t.join("azure-llm-2023/AzureLLMInferenceTrace_conv.csv"),
            None,
        ),
        (
            "azure (code)",
            t.join("azure-llm-2023/AzureLLMInferenceTrace_code.csv"),
            None,
        ),
        (
            "mooncake (conversation)",
            t.join("mooncake-fast25/conversation_trace.jsonl"),
            None,
        ),
        (
            "genai requests",
            t.join("alibaba-genai-v2026/lora_request_trace.csv"),
            None,
        ),
        (
            "dlrm",
            t.join("alibaba-gpu-v2025-dlrm/disaggregated_DLRM_trace.csv"),
            None,
        ),
        (
            "openb pods (default)",
            t.join("alibaba-gpu-v2023-openb/openb_pod_list_default.csv"),
            None,
        ),
    ];
    println!("| format | file | rows parsed | requests | rows/s | MB/s |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, path, member) in &cases {
        let mut spec = TraceSpec::new(path);
        spec.member = member.map(String::from);
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let started = Instant::now();
        let (mut rows, mut parsed, mut passes) = (0u64, 0u64, 0u32);
        while passes == 0 || started.elapsed().as_secs_f64() < a.min_s {
            let mut p = match Pipeline::open(&spec, path, 42, 0) {
                Ok(p) => p,
                Err(e) => return bad_input(e),
            };
            for r in &mut p {
                if let Err(e) = r {
                    return bad_input(e);
                }
                rows += 1;
            }
            // Rows the format filters (CPU-only, outside the window) were parsed too.
            let rep = p.report();
            parsed += rep.rows_ok + rep.filtered.iter().map(|f| f.1).sum::<u64>();
            passes += 1;
        }
        let s = started.elapsed().as_secs_f64();
        println!(
            "| {name} | {} | {} | {} | {:.0} | {:.1} |",
            path.file_name().unwrap_or_default().to_string_lossy(),
            parsed / passes as u64,
            rows / passes as u64,
            parsed as f64 / s,
            bytes as f64 * passes as f64 / s / 1e6
        );
    }
    // GenAI per-pod series straight out of its .tar.gz (gunzip + tar + csv).
    let series = t.join("alibaba-genai-v2026/pod_gpu_memory_used_bytes_anon.tar.gz");
    let started = Instant::now();
    let mut n = 0u64;
    match genai::SeriesReader::open(&series, None) {
        Ok(rd) => {
            for s in rd {
                if let Err(e) = s {
                    return bad_input(e);
                }
                n += 1;
            }
        }
        Err(e) => return bad_input(e),
    }
    println!(
        "| genai per-pod GPU memory (.tar.gz) | {} | {n} | - | {:.0} | - |",
        series.file_name().unwrap_or_default().to_string_lossy(),
        n as f64 / started.elapsed().as_secs_f64()
    );

    // Peak memory of a replay, in a child process each so that VmHWM is the replay's own.
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return bad_input(e),
    };
    let long = std::env::temp_dir().join(format!("gpusched-bench-long-{}.csv", std::process::id()));
    {
        let gen = Generator::curve(RateCurve::Constant(100.0), a.long_rows as f64 / 100.0, 1, 0);
        let Ok(f) = std::fs::File::create(&long) else {
            return bad_input(format!("cannot write {}", long.display()));
        };
        let mut w = std::io::BufWriter::new(f);
        let _ = writeln!(w, "{}", gpusched::HEADER);
        for mut r in gen {
            r.input_tokens = Some(1000);
            r.output_tokens = Some(200);
            let _ = gpusched::write_row(&mut w, &r);
        }
    }
    println!("\n| replay | rate-scale | rows out | wall s | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|");
    let largest = [
        (
            "genai requests (most rows)",
            t.join("alibaba-genai-v2026/lora_request_trace.csv"),
        ),
        (
            "mooncake conversation (most bytes)",
            t.join("mooncake-fast25/conversation_trace.jsonl"),
        ),
        ("synthetic long trace", long.clone()),
    ];
    for (name, path) in &largest {
        for scale in [1.0, 10.0] {
            let out = std::process::Command::new(&exe)
                .args(["trace", "replay"])
                .arg(path)
                .args(["--rate-scale", &scale.to_string()])
                .output();
            let text = out
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            let field = |k: &str| {
                text.split_whitespace()
                    .skip_while(|w| *w != k)
                    .nth(1)
                    .unwrap_or("?")
                    .to_string()
            };
            let mib = field("peak_rss_kib")
                .parse::<f64>()
                .map(|k| format!("{:.1}", k / 1024.0))
                .unwrap_or("?".into());
            println!(
                "| {name} | {scale}x | {} | {} | {mib} |",
                field("rows"),
                field("wall_s")
            );
        }
    }
    let _ = std::fs::remove_file(&long);
    ExitCode::SUCCESS
}
