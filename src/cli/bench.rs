//! `gpusched bench`: speed figures as a command, not as timed tests. Build with `--release`.
//! The measurement code lives in `gpusched_sim::bench`; this module runs it and prints the
//! figures (and the placement plot) that BENCHMARKS.md records.

use super::support::peak_rss_mib;
use super::{bad_input, load_scenario};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value = "default-day")]
    pub what: BenchTarget,
    /// Scenario for `default-day` (the built-in default when omitted).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Repetitions; the best and the median are reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// `event-loop`: events per loop.
    #[arg(long, default_value_t = 20_000_000)]
    pub events: u64,
    /// `event-loop`: events pending in the queue (the hold model's population).
    #[arg(long, default_value_t = 10_000)]
    pub pending: usize,
    /// `placement`: cluster sizes in nodes.
    #[arg(long, value_delimiter = ',', default_value = "12,100,1000,10000")]
    pub sizes: Vec<usize>,
    /// `placement`: seconds of decisions timed per (policy, size, mode).
    #[arg(long, default_value_t = 0.3)]
    pub budget_s: f64,
    /// `placement`: also time the full scan (the index off) for comparison.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub full_scan: bool,
    /// `placement`: write placement-cost.{svg,png,csv} into this folder.
    #[arg(long)]
    pub plot_dir: Option<PathBuf>,
    /// `openb`: the openb traces folder.
    #[arg(long, default_value = "../shared/traces/alibaba-gpu-v2023-openb")]
    pub traces_dir: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BenchTarget {
    /// The default scenario's day end to end (no report writing): events/s and requests/s.
    DefaultDay,
    /// The simulator's event queue alone vs a bare std BinaryHeap loop doing the same events.
    EventLoop,
    /// One placement decision against 12 … 10,000 nodes per policy, indexed and full scan.
    Placement,
    /// One FGD run on openb_pod_list_default (seed 42), vs the paper's Go simulator.
    Openb,
    /// The largest real request trace replayed through the simulator (GenAI by default).
    Trace,
}

pub fn execute(a: &BenchArgs) -> ExitCode {
    if cfg!(debug_assertions) {
        tracing::warn!("this is a debug build; figures are only meaningful from `cargo run --release -- bench`");
    }
    match a.what {
        BenchTarget::EventLoop => event_loop(a),
        BenchTarget::Placement => placement(a),
        BenchTarget::Openb => openb(a),
        BenchTarget::Trace => {
            let path = a
                .scenario
                .clone()
                .unwrap_or_else(|| PathBuf::from("scenarios/trace-genai.toml"));
            scenario_bench(a, Some(&path), "trace")
        }
        BenchTarget::DefaultDay => scenario_bench(a, a.scenario.as_deref(), "default-day"),
    }
}

/// A scenario end to end, `repeat` times: wall, events/s, requests/s, peak RSS.
fn scenario_bench(a: &BenchArgs, path: Option<&std::path::Path>, label: &str) -> ExitCode {
    {
        {
            let sc = match load_scenario(path, None, &a.sets) {
                Ok(s) => s,
                Err(e) => return bad_input(e),
            };
            let mut walls = Vec::new();
            let (mut events, mut requests) = (0, 0);
            for _ in 0..a.repeat.max(1) {
                let t = Instant::now();
                let r = match gpusched_sim::run(&sc, &mut |_| {}) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(1);
                    }
                };
                walls.push(t.elapsed().as_secs_f64());
                events = r.summary.events;
                requests = r.summary.requests.arrived;
            }
            walls.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let best = walls[0];
            let median = walls[walls.len() / 2];
            println!(
                "bench {label}: scenario {} ({:.1} h simulated), {} runs",
                sc.scenario.name,
                sc.duration_s() / 3600.0,
                walls.len()
            );
            println!("  wall: best {best:.3} s, median {median:.3} s");
            println!(
                "  events: {events} → {:.2} M events/s (best)",
                events as f64 / best / 1e6
            );
            println!(
                "  requests: {requests} → {:.2} M simulated requests/s (best)",
                requests as f64 / best / 1e6
            );
            if let Some(m) = peak_rss_mib() {
                println!("  peak RSS: {m:.1} MiB");
            }
            ExitCode::SUCCESS
        }
    }
}

fn event_loop(a: &BenchArgs) -> ExitCode {
    use gpusched_sim::bench::event_loop::{run_bare_heap, run_event_queue};
    let (mut best_q, mut best_h) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..a.repeat.max(1) {
        // Alternate so that machine noise hits both loops alike.
        let q = run_event_queue(a.pending, a.events);
        let h = run_bare_heap(a.pending, a.events);
        if q.checksum != h.checksum || q.events != h.events {
            eprintln!("error: the two loops did different work");
            return ExitCode::from(1);
        }
        best_q = best_q.min(q.seconds);
        best_h = best_h.min(h.seconds);
    }
    let ev = a.events as f64;
    println!(
        "bench event-loop: {} events, {} pending, best of {}",
        a.events,
        a.pending,
        a.repeat.max(1)
    );
    println!(
        "  sim EventQueue:         {best_q:.3} s  {:.1} M events/s  {:.1} ns/event",
        ev / best_q / 1e6,
        best_q / ev * 1e9
    );
    println!(
        "  bare BinaryHeap (base): {best_h:.3} s  {:.1} M events/s  {:.1} ns/event",
        ev / best_h / 1e6,
        best_h / ev * 1e9
    );
    let ratio = best_q / best_h;
    println!(
        "  ratio EventQueue / bare heap: {ratio:.2}x (target <= 3x: {})",
        if ratio <= 3.0 { "met" } else { "MISSED" }
    );
    ExitCode::SUCCESS
}

fn placement(a: &BenchArgs) -> ExitCode {
    use gpusched_policies::config::PolicyName;
    use gpusched_sim::bench::placement::{measure, PlacementRow};
    let mut rows: Vec<PlacementRow> = Vec::new();
    println!(
        "bench placement: µs per decision (prefilled to ~50 % of GPUs), budget {} s each",
        a.budget_s
    );
    println!(
        "{:<10} {:>7} {:>12} {:>9} {:>12} {:>9}",
        "policy", "nodes", "indexed µs", "classes", "full µs", "speed-up"
    );
    for policy in PolicyName::ALL {
        for &n in &a.sizes {
            let ix = measure(policy, n, true, a.budget_s);
            let full = a.full_scan.then(|| measure(policy, n, false, a.budget_s));
            println!(
                "{:<10} {:>7} {:>12.2} {:>9} {:>12} {:>9}",
                policy.as_str(),
                n,
                ix.us_per_decision,
                ix.classes,
                full.as_ref()
                    .map_or("-".into(), |f| format!("{:.2}", f.us_per_decision)),
                full.as_ref().map_or("-".into(), |f| format!(
                    "{:.1}x",
                    f.us_per_decision / ix.us_per_decision
                )),
            );
            rows.push(ix);
            rows.extend(full);
        }
    }
    // Growth: cost at the largest size over cost at the smallest, against the node ratio.
    let (lo, hi) = (
        a.sizes.iter().copied().min().unwrap_or(1),
        a.sizes.iter().copied().max().unwrap_or(1),
    );
    println!(
        "growth from {lo} to {hi} nodes ({:.0}x the nodes):",
        hi as f64 / lo as f64
    );
    for policy in PolicyName::ALL {
        for indexed in [true, false] {
            let at = |n| {
                rows.iter()
                    .find(|r| r.policy == policy && r.nodes == n && r.indexed == indexed)
                    .map(|r| r.us_per_decision)
            };
            if let (Some(a0), Some(a1)) = (at(lo), at(hi)) {
                println!(
                    "  {:<10} {:<9} {:.1}x the cost",
                    policy.as_str(),
                    if indexed { "indexed" } else { "full scan" },
                    a1 / a0
                );
            }
        }
    }
    if let Some(dir) = &a.plot_dir {
        if let Err(e) = write_placement_plot(dir, &rows) {
            eprintln!("error: writing the plot: {e}");
            return ExitCode::from(1);
        }
        println!("wrote {}/placement-cost.{{svg,png,csv}}", dir.display());
    }
    ExitCode::SUCCESS
}

/// Cost against cluster size on log–log axes (log10 of nodes, log10 of ns per decision: the
/// chart primitives draw linear axes), one panel per mode, one line per policy.
fn write_placement_plot(
    dir: &std::path::Path,
    rows: &[gpusched_sim::bench::placement::PlacementRow],
) -> Result<(), String> {
    use gpusched_policies::config::PolicyName;
    use gpusched_reports::charts::{panels_to_files, LinePanel, Series};
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut csv = String::from("policy,nodes,mode,us_per_decision,decisions,classes\n");
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{:.3},{},{}\n",
            r.policy.as_str(),
            r.nodes,
            if r.indexed { "indexed" } else { "full_scan" },
            r.us_per_decision,
            r.decisions,
            r.classes
        ));
    }
    std::fs::write(dir.join("placement-cost.csv"), csv).map_err(|e| e.to_string())?;
    let panel = |indexed: bool, title: &str| LinePanel {
        title: title.into(),
        x_label: "log10(nodes)".into(),
        y_label: "log10(ns per decision)".into(),
        series: PolicyName::ALL
            .iter()
            .map(|&p| Series {
                name: p.as_str().into(),
                points: rows
                    .iter()
                    .filter(|r| r.policy == p && r.indexed == indexed)
                    .map(|r| ((r.nodes as f64).log10(), (r.us_per_decision * 1e3).log10()))
                    .collect(),
            })
            .collect(),
    };
    let panels = vec![
        panel(false, "Placement cost, full scan (slope 1 = linear)"),
        panel(true, "Placement cost, capacity index"),
    ];
    panels_to_files(dir, "placement-cost", (900, 900), &panels)
}

fn openb(a: &BenchArgs) -> ExitCode {
    use gpusched_openb::{load, run, Experiment, PAPER_TUNE};
    use gpusched_policies::openb::OpenbPolicy;
    /// The FGD paper's Go simulator on this machine for the same run: its CPU time measured with
    /// `/usr/bin/time -v` in the same session as ours (BENCH-PEERS.md; wall was 3,685 s under load).
    const GO_SIMULATOR_S: f64 = 2_482.0;
    let mut exp = Experiment::paper(a.traces_dir.clone());
    exp.pod_lists = vec!["openb_pod_list_default".into()];
    exp.policies = vec![OpenbPolicy::Fgd];
    exp.seeds = vec![42];
    let t0 = Instant::now();
    let (nodes, workloads) = match load(&exp) {
        Ok(x) => x,
        Err(e) => return bad_input(e),
    };
    let load_s = t0.elapsed().as_secs_f64();
    let mut walls = Vec::new();
    let mut pods = 0;
    for _ in 0..a.repeat.max(1) {
        let t = Instant::now();
        let r = run(&nodes, &workloads[0], OpenbPolicy::Fgd, 42, PAPER_TUNE);
        walls.push(t.elapsed().as_secs_f64());
        pods = r.arrived_pods;
    }
    walls.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let best = walls[0];
    let with_load = best + load_s;
    println!(
        "bench openb: one FGD run, openb_pod_list_default, seed 42, tune {PAPER_TUNE}, {pods} pods"
    );
    println!("  reading the node and pod CSVs: {load_s:.3} s");
    println!(
        "  the run: best {best:.3} s, median {:.3} s",
        walls[walls.len() / 2]
    );
    println!(
        "  vs the paper's Go simulator ({:.1} CPU-min for this run, measured on this machine, BENCH-PEERS.md): {:.0}x faster incl. reading ({:.0}x the run alone; target >= 500x: {})",
        GO_SIMULATOR_S / 60.0,
        GO_SIMULATOR_S / with_load,
        GO_SIMULATOR_S / best,
        if GO_SIMULATOR_S / with_load >= 500.0 { "met" } else { "MISSED" }
    );
    println!(
        "  the paper's whole evaluation is 1,020 such runs (17 pod lists x 6 policies x 10 seeds): `gpusched fgd run --scenario scenarios/fgd-openb.toml` (see BENCH-FGD.md)"
    );
    if let Some(m) = peak_rss_mib() {
        println!("  peak RSS: {m:.1} MiB");
    }
    ExitCode::SUCCESS
}
