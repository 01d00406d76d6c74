//! `gpusched tune`: searches the seeds' scoring weights (`engine.weights.*`) on training
//! scenarios and seeds and reports tuned against default weights on held-out seeds and
//! scenarios. The search itself is in `gpusched_experiments::tune` (why a seeded random
//! search rather than an optimisation crate is explained there).

use super::bad_input;
use gpusched_experiments::metric;
use gpusched_experiments::runner::ScenarioRef;
use gpusched_experiments::tune::{tune, Objective, TuneConfig, TuneScenario};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TuneArgs {
    /// Training scenario (repeatable); the built-in default when none is given.
    #[arg(long = "train", value_name = "SCENARIO")]
    pub train: Vec<PathBuf>,
    /// Held-out scenario, never seen by the search (repeatable).
    #[arg(long = "holdout", value_name = "SCENARIO")]
    pub holdout: Vec<PathBuf>,
    /// Training seeds: 1 … N.
    #[arg(long, default_value_t = 3)]
    pub train_seeds: u64,
    /// Held-out seeds: 1001 … 1000+N (disjoint from the training seeds).
    #[arg(long, default_value_t = 5)]
    pub holdout_seeds: u64,
    /// The metric to optimise (maximised when higher is better, e.g. slo_attainment).
    #[arg(long, default_value = "slo_attainment")]
    pub objective: String,
    /// Constraint: mean p99 per scenario at most this (ms).
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Constraint: failed requests at most this (% of arrivals).
    #[arg(long)]
    pub max_failed_pct: Option<f64>,
    /// Candidate weight vectors to evaluate besides the defaults.
    #[arg(long, default_value_t = 24)]
    pub budget: usize,
    /// Seed of the search itself.
    #[arg(long, default_value_t = 1)]
    pub search_seed: u64,
    /// Override for every run, e.g. --set duration_h=6.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[arg(long, default_value = "out/tune")]
    pub out: PathBuf,
}

fn scenarios(paths: &[PathBuf], sets: &[String]) -> Result<Vec<TuneScenario>, String> {
    let mut out: Vec<TuneScenario> = Vec::new();
    for p in paths {
        let r = ScenarioRef::File(p.clone());
        let sc = r.load(sets).map_err(|e| e.to_string())?;
        let mut label = sc.scenario.name.clone();
        if out.iter().any(|o| o.label == label) {
            label = format!("{label}-{}", out.len() + 1);
        }
        out.push(TuneScenario { scenario: r, label });
    }
    Ok(out)
}

pub fn execute(a: &TuneArgs) -> ExitCode {
    let Some(m) = metric::find(&a.objective) else {
        return bad_input(format!(
            "--objective {}: unknown metric; known metrics are {}",
            a.objective,
            metric::known()
        ));
    };
    if a.train_seeds == 0 || a.holdout_seeds == 0 {
        return bad_input("--train-seeds and --holdout-seeds must be at least 1");
    }
    let mut train = match scenarios(&a.train, &a.sets) {
        Ok(s) => s,
        Err(e) => return bad_input(e),
    };
    if train.is_empty() {
        if let Err(e) = ScenarioRef::Default.load(&a.sets) {
            return bad_input(e);
        }
        train.push(TuneScenario {
            scenario: ScenarioRef::Default,
            label: "default".into(),
        });
    }
    let mut holdout = match scenarios(&a.holdout, &a.sets) {
        Ok(s) => s,
        Err(e) => return bad_input(e),
    };
    for h in &mut holdout {
        if train.iter().any(|t| t.label == h.label) {
            h.label = format!("{} (held out)", h.label);
        }
    }
    for (flag, n) in [
        ("--train-seeds", a.train_seeds),
        ("--holdout-seeds", a.holdout_seeds),
    ] {
        if n > gpusched_sim::limits::MAX_SEEDS {
            return super::bad_input(format!(
                "{flag} {n}: the limit is {}",
                gpusched_sim::limits::MAX_SEEDS
            ));
        }
    }
    let runs = (a.budget as u64 + 1)
        .saturating_mul(a.train_seeds.max(a.holdout_seeds))
        .saturating_mul((a.train.len() + a.holdout.len()) as u64);
    if runs > gpusched_sim::limits::MAX_RUNS {
        return super::bad_input(format!(
            "--budget {} × seeds × scenarios is about {runs} runs; the limit is {}",
            a.budget,
            gpusched_sim::limits::MAX_RUNS
        ));
    }
    for (flag, v) in [
        ("--max-p99-ms", a.max_p99_ms),
        ("--max-failed-pct", a.max_failed_pct),
    ] {
        if let Some(v) = v {
            if !(v >= 0.0 && v.is_finite()) {
                return super::bad_input(format!("{flag} {v}: must be a finite number >= 0"));
            }
        }
    }
    let cfg = TuneConfig {
        train,
        train_seeds: (1..=a.train_seeds).collect(),
        holdout,
        holdout_seeds: (1001..=1000 + a.holdout_seeds).collect(),
        sets: a.sets.clone(),
        objective: Objective {
            metric: m,
            max_p99_ms: a.max_p99_ms,
            max_failed_pct: a.max_failed_pct,
        },
        budget: a.budget,
        search_seed: a.search_seed,
    };
    // An unusable --out is refused before the search; tune.md and tune.json appear together.
    let stage = match super::stage_out(&a.out) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let started = std::time::Instant::now();
    let report = match tune(&cfg, &|done, total| {
        tracing::info!(done, total, "tune: candidates evaluated")
    }) {
        Ok(r) => r,
        Err(e) => {
            return super::fail(e);
        }
    };
    let md = report.to_markdown();
    let json = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
    let written = std::fs::write(stage.path().join("tune.md"), &md)
        .map_err(|e| stage.write_error(&stage.path().join("tune.md"), e))
        .and_then(|_| {
            std::fs::write(stage.path().join("tune.json"), json)
                .map_err(|e| stage.write_error(&stage.path().join("tune.json"), e))
        })
        .and_then(|_| stage.commit());
    if let Err(e) = written {
        return super::fail(e);
    }
    print!("{md}");
    tracing::info!(
        wall_s = started.elapsed().as_secs_f64(),
        out = %a.out.display(),
        "tuned; wrote tune.md and tune.json"
    );
    ExitCode::SUCCESS
}
