//! `gpusched compare`: scenarios × variants × seeds in parallel, means with 95 % intervals,
//! markdown/CSV/JSON and plots; with `--fail-if`, a CI gate against a baseline (a previous
//! compare.json or one of this run's variants). Exit 0: no regression; 1: regressions (each
//! listed); 2: bad arguments.

use super::bad_input;
use super::support::run_jobs_with_bar;
use gpusched_experiments::compare::{CompareReport, Group, Variant};
use gpusched_experiments::gate::{evaluate, GateExpr, Pair, Violation};
use gpusched_experiments::runner::{Job, ScenarioRef};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct CompareArgs {
    /// Scenario files (TOML); the built-in default scenario when none is given.
    pub scenarios: Vec<PathBuf>,
    /// A policy to compare (shorthand for a variant setting engine.policy); repeatable.
    #[arg(long = "policy", value_name = "NAME")]
    pub policies: Vec<String>,
    /// A named configuration, `name:key=value,key=value` (any scenario key); repeatable.
    #[arg(long = "variant", value_name = "NAME:KEY=VALUE,…")]
    pub variants: Vec<String>,
    /// Seeds per (scenario, variant): seeds first-seed … first-seed+N−1.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    #[arg(long, default_value_t = 1)]
    pub first_seed: u64,
    /// Override for every run, e.g. --set duration_h=6.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output folder.
    #[arg(long, default_value = "out/compare")]
    pub out: PathBuf,
    /// A previous compare.json, or the name of one of this run's variants.
    #[arg(long)]
    pub baseline: Option<String>,
    /// A regression condition, e.g. 'p99_ms > +5%', 'slo_attainment < -1pp', 'p99_ms > 800'.
    #[arg(long = "fail-if", value_name = "EXPR")]
    pub fail_if: Vec<String>,
    /// Skip the plots.
    #[arg(long)]
    pub no_plots: bool,
}

enum Baseline {
    Variant(String),
    File(PathBuf, Box<CompareReport>),
}

pub fn execute(a: &CompareArgs) -> ExitCode {
    // Everything the user typed is checked before anything runs.
    let exprs: Vec<GateExpr> = match a.fail_if.iter().map(|t| GateExpr::parse(t)).collect() {
        Ok(e) => e,
        Err(e) => return bad_input(e),
    };
    let mut variants: Vec<Variant> = Vec::new();
    for p in &a.policies {
        match Variant::policy(p) {
            Ok(v) => variants.push(v),
            Err(e) => return bad_input(e),
        }
    }
    for v in &a.variants {
        match Variant::parse(v) {
            Ok(v) => variants.push(v),
            Err(e) => return bad_input(e),
        }
    }
    // A scenario file may carry the variants it is meant to be compared under.
    if variants.is_empty() {
        for path in &a.scenarios {
            match gpusched_sim::load_file(path, &[]) {
                Ok(sc) if !sc.scenario.variants.is_empty() => {
                    variants.extend(sc.scenario.variants.iter().map(|v| Variant {
                        name: v.name.clone(),
                        sets: v.set.clone(),
                    }));
                    break;
                }
                Ok(_) => {}
                Err(e) => return bad_input(e),
            }
        }
    }
    if variants.is_empty() {
        variants.push(Variant {
            name: "default".into(),
            sets: vec![],
        });
    }
    for (i, v) in variants.iter().enumerate() {
        if variants[..i].iter().any(|o| o.name == v.name) {
            return bad_input(format!("variant `{}` is given twice", v.name));
        }
    }
    if a.seeds == 0 || a.seeds > gpusched_sim::limits::MAX_SEEDS {
        return bad_input(format!(
            "--seeds {}: must be 1..={}",
            a.seeds,
            gpusched_sim::limits::MAX_SEEDS
        ));
    }
    let Some(last) = a.first_seed.checked_add(a.seeds) else {
        return bad_input(format!(
            "--first-seed {}: the seeds run past 2^64",
            a.first_seed
        ));
    };
    let seeds: Vec<u64> = (a.first_seed..last).collect();
    let baseline = match &a.baseline {
        None => None,
        Some(b) if variants.iter().any(|v| &v.name == b) && !Path::new(b).is_file() => {
            Some(Baseline::Variant(b.clone()))
        }
        Some(b) => {
            let text = match std::fs::read_to_string(b) {
                Ok(t) => t,
                Err(e) => {
                    return bad_input(format!(
                        "--baseline {b}: neither one of this run's variants ({}) nor a readable file: {e}",
                        variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                }
            };
            match CompareReport::from_json(&text) {
                Ok(r) => Some(Baseline::File(PathBuf::from(b), Box::new(r))),
                Err(e) => return bad_input(format!("--baseline {b}: not a compare.json: {e}")),
            }
        }
    };
    if baseline.is_none() && exprs.iter().any(|e| e.threshold.needs_baseline()) {
        return bad_input(
            "--fail-if with a change (+5%, -1pp, +0.5) needs --baseline (a compare.json or a variant name)",
        );
    }

    // Scenarios: load once with the global overrides, to validate and to name them.
    let refs: Vec<ScenarioRef> = if a.scenarios.is_empty() {
        vec![ScenarioRef::Default]
    } else {
        a.scenarios.iter().cloned().map(ScenarioRef::File).collect()
    };
    let mut labels: Vec<String> = Vec::new();
    // What each scenario assumes (fleet, models, calibrations, seed), for report.html.
    let mut assumptions = String::new();
    for r in &refs {
        let name = match r.load(&a.sets) {
            Ok(sc) => {
                assumptions.push_str(&gpusched_reports::html::assumptions_markdown(&sc));
                sc.scenario.name
            }
            Err(e) => return bad_input(e),
        };
        let mut label = name.clone();
        let mut k = 2;
        while labels.contains(&label) {
            label = format!("{name}-{k}");
            k += 1;
        }
        labels.push(label);
    }
    if let Some(Baseline::File(path, base)) = &baseline {
        // The same matching as the gate's, by name, before anything runs.
        for label in &labels {
            let same: Vec<&Group> = base
                .groups
                .iter()
                .filter(|b| &b.scenario == label)
                .collect();
            for v in &variants {
                if !(same.len() == 1 || same.iter().any(|b| b.variant == v.name)) {
                    return bad_input(format!(
                        "--baseline {}: no baseline for {label}/{} (the baseline has {})",
                        path.display(),
                        v.name,
                        base.groups
                            .iter()
                            .map(|b| format!("{}/{}", b.scenario, b.variant))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
    }
    let runs = refs.len() as u64 * variants.len() as u64 * seeds.len() as u64;
    if runs > gpusched_sim::limits::MAX_RUNS {
        return bad_input(format!(
            "scenarios × variants × seeds is {runs} runs; the limit is {}",
            gpusched_sim::limits::MAX_RUNS
        ));
    }
    let mut jobs = Vec::new();
    for (r, label) in refs.iter().zip(&labels) {
        for v in &variants {
            for &seed in &seeds {
                let mut sets = a.sets.clone();
                sets.extend(v.sets.iter().cloned());
                jobs.push(Job {
                    scenario: r.clone(),
                    scenario_label: label.clone(),
                    variant: v.name.clone(),
                    sets,
                    seed,
                    grow: None,
                });
            }
        }
    }

    // An unusable --out is refused before any run; the report is written whole or not at all.
    let stage = match super::stage_out(&a.out) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let started = Instant::now();
    let runs = match run_jobs_with_bar("compare", &jobs) {
        Ok(r) => r,
        Err(e) => return super::fail(e),
    };
    let wall = started.elapsed().as_secs_f64();
    let report = CompareReport::new(labels, variants, seeds, runs);

    // The gate.
    let (pairs, base_variant) = match pairs(&report, baseline.as_ref()) {
        Ok(p) => p,
        Err(e) => return bad_input(e),
    };
    let violations = evaluate(&exprs, &pairs);
    let gate_md = gate_markdown(&exprs, &violations);
    match gpusched_reports::compare::write_compare(
        stage.path(),
        &report,
        base_variant.as_deref(),
        &gate_md,
        &assumptions,
        !a.no_plots,
    ) {
        Ok(files) => {
            if let Err(e) = stage.commit() {
                return super::fail(e);
            }
            tracing::info!(
                runs = report.runs.len(),
                wall_s = wall,
                files = files.len(),
                out = %a.out.display(),
                "compare done"
            )
        }
        Err(e) => return super::write_failed(&stage, e),
    }
    print!("{}", report.to_markdown(base_variant.as_deref()));
    print!("{gate_md}");
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} regression(s):", violations.len());
        for v in &violations {
            eprintln!("  {v}");
        }
        ExitCode::from(1)
    }
}

/// Which group is judged against which; the baseline variant's name for the tables.
fn pairs<'a>(
    report: &'a CompareReport,
    baseline: Option<&'a Baseline>,
) -> Result<(Vec<Pair<'a>>, Option<String>), String> {
    let alone = |g: &'a Group| Pair {
        candidate: g,
        baseline: None,
    };
    match baseline {
        None => Ok((report.groups.iter().map(alone).collect(), None)),
        Some(Baseline::Variant(name)) => {
            let pairs = report
                .groups
                .iter()
                .map(|g| {
                    let b = report
                        .group(&g.scenario, name)
                        .filter(|b| b.variant != g.variant);
                    Pair {
                        candidate: g,
                        baseline: b.map(|b| (b, format!("variant {name}"))),
                    }
                })
                .collect();
            Ok((pairs, Some(name.clone())))
        }
        Some(Baseline::File(path, base)) => {
            let mut out = Vec::new();
            let mut missing = Vec::new();
            for g in &report.groups {
                // Same scenario and variant; or, when the baseline ran that scenario with a single
                // variant, that one (a PR's variants against main's one configuration).
                let same: Vec<&Group> = base
                    .groups
                    .iter()
                    .filter(|b| b.scenario == g.scenario)
                    .collect();
                let b = same
                    .iter()
                    .find(|b| b.variant == g.variant)
                    .or(if same.len() == 1 { same.first() } else { None });
                match b {
                    Some(b) => out.push(Pair {
                        candidate: g,
                        baseline: Some((b, format!("baseline {}", b.variant))),
                    }),
                    None => missing.push(format!("{}/{}", g.scenario, g.variant)),
                }
            }
            if !missing.is_empty() {
                return Err(format!(
                    "--baseline {}: no baseline for {} (the baseline has {})",
                    path.display(),
                    missing.join(", "),
                    base.groups
                        .iter()
                        .map(|b| format!("{}/{}", b.scenario, b.variant))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Ok((out, None))
        }
    }
}

fn gate_markdown(exprs: &[GateExpr], violations: &[Violation]) -> String {
    if exprs.is_empty() {
        return String::new();
    }
    let list = exprs
        .iter()
        .map(|e| format!("`{}`", e.text))
        .collect::<Vec<_>>()
        .join(", ");
    if violations.is_empty() {
        format!("**Gate passed**: no regression ({list}).\n")
    } else {
        let mut s = format!(
            "**Gate failed**: {} regression(s) ({list}):\n\n",
            violations.len()
        );
        for v in violations {
            s.push_str(&format!("- {v}\n"));
        }
        s
    }
}
