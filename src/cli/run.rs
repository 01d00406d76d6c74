//! `gpusched run [SCENARIO]`: simulate and write out/<scenario>/.

use super::support::{log_replay_reports, SimulationBar};
use super::{bad_input, fail, load_scenario, stage_out, write_failed};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Scenario file (TOML). Without one, the built-in default scenario (scenarios/default.toml).
    pub scenario: Option<PathBuf>,
    /// Random seed (overrides the scenario's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output folder (default: out/<scenario name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override any scenario key, e.g. --set engine.policy=best_fit --set services.0.concurrency=8
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Skip the plots (faster; summary, timeseries, decisions and report are still written).
    #[arg(long)]
    pub no_plots: bool,
    /// Skip malformed trace rows (counted in summary.json, first reasons shown) instead of failing.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

pub fn execute(a: &RunArgs) -> ExitCode {
    // An `[openb_replay]` scenario is its own kind: the openb pod list replayed over time.
    if let Some(p) = a.scenario.as_deref() {
        if gpusched_openb::replay::is_replay_scenario(p) {
            return super::openb_replay::execute(a, p);
        }
        if let Some(hint) = other_command_for(p) {
            return bad_input(format!("{}: {hint}", p.display()));
        }
    }
    let mut sets = a.sets.clone();
    if a.skip_bad_rows {
        sets.push("skip_bad_rows=true".into());
    }
    let sc = match load_scenario(a.scenario.as_deref(), a.seed, &sets) {
        Ok(s) => s,
        Err(e) => return bad_input(e),
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(&sc.scenario.name));
    // Refuse an unusable --out before simulating, and write into a staging sibling so a
    // failure part-way leaves any earlier run's folder as it was.
    let stage = match stage_out(&out) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let started = Instant::now();
    let mut bar = SimulationBar::new(sc.scenario.name.clone());
    let result = match gpusched_sim::run(&sc, &mut |f| bar.set_fraction(f)) {
        Ok(r) => r,
        Err(e) => {
            bar.finish();
            return fail(Located(&sc.source, e));
        }
    };
    bar.finish();
    log_replay_reports(&result.trace_reports);
    let wall = started.elapsed().as_secs_f64();
    let mut written = match gpusched_reports::write_run(stage.path(), &result, !a.no_plots) {
        Ok(w) => w,
        Err(e) => return write_failed(&stage, e),
    };
    // report.html: report.md, its plots inline and the scenario's assumptions, in one file.
    match gpusched_reports::html::write_html(
        stage.path(),
        &format!("gpusched run: {}", sc.scenario.name),
        "report.md",
        &gpusched_reports::html::assumptions_markdown(&sc),
    ) {
        Ok(p) => written.files.push(p),
        Err(e) => return write_failed(&stage, e),
    }
    if let Err(e) = stage.commit() {
        return fail(e);
    }
    let s = &result.summary;
    println!(
        "{}: {} requests, {} served, {} failed, p99 {:.1} ms, SLO {:.2} %, {:.1} kWh, ${:.2} (${:.4}/1k inferences)",
        s.scenario, s.requests.arrived, s.requests.served, s.requests.failed, s.latency.p99_ms, s.slo_attainment * 100.0, s.energy_kwh, s.cost.total_usd, s.cost.usd_per_1k_inferences
    );
    println!(
        "simulated {:.1} h in {:.2} s ({} events, {:.1} M events/s)",
        s.duration_s / 3600.0,
        wall,
        s.events,
        s.events as f64 / wall.max(1e-9) / 1e6
    );
    println!("wrote {} files to {}", written.files.len(), out.display());
    ExitCode::SUCCESS
}

/// A run's error prefixed with the scenario it came from, keeping its class.
struct Located<'a>(&'a str, gpusched_sim::SimError);

impl std::fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0, self.1)
    }
}

impl super::Classify for Located<'_> {
    fn is_input_error(&self) -> bool {
        self.1.is_input_error()
    }
}

/// Spec files for other commands live in scenarios/ too: say which command runs them rather
/// than failing on their first unknown key.
fn other_command_for(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let p = path.display();
    if table.contains_key("fgd") {
        Some(format!("this is an FGD experiment spec, not a scenario: run it with `gpusched fgd run --scenario {p}`"))
    } else if table.contains_key("axes") || table.contains_key("search") {
        Some(format!(
            "this is a sweep spec, not a scenario: run it with `gpusched sweep {p}`"
        ))
    } else {
        None
    }
}
