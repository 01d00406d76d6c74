//! `tune`: searches the seeds' five scoring weights (`engine.weights.*`) on training scenarios
//! and seeds, then reports the tuned weights against the defaults on held-out ones.
//!
//! Why a hand-written search rather than an optimisation crate: the objective is a black box
//! that is piecewise constant in the weights (a placement changes only when the argmax over
//! nodes flips), so gradient and simplex methods (argmin's Nelder–Mead, BFGS …) stall on its
//! plateaus, and only the weights' ratios matter (the search lives on a simplex). A seeded
//! random search — sparse Dirichlet draws on the simplex, then multiplicative perturbations of the best
//! with a shrinking step — needs none of that, and evaluates a fixed batch of candidates in
//! parallel. Training runs share seeds across candidates (common random numbers), so
//! differences come from the weights, not from the traffic.

use super::metric::{self, MetricDef};
use super::runner::{run_jobs, Job, RunRecord, ScenarioRef};
use super::stats::Estimate;
use super::ExperimentError;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Gamma, StandardNormal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The weights searched, in `engine.weights` order.
pub const WEIGHT_NAMES: [&str; 5] = [
    "efficiency",
    "affinity",
    "utilisation",
    "power_bonus",
    "sharing_headroom",
];

/// The seeds' defaults.
pub const DEFAULT_WEIGHTS: [f64; 5] = [0.30, 0.25, 0.20, 0.15, 0.10];

/// Candidates evaluated together (fixed, so the search does not depend on the thread count).
pub const BATCH: usize = 4;

/// What to minimise: a metric (maximised instead when higher is better), subject to SLOs that
/// every scenario's mean must meet (a violation costs more than any feasible score).
#[derive(Debug, Clone)]
pub struct Objective {
    pub metric: &'static MetricDef,
    pub max_p99_ms: Option<f64>,
    pub max_failed_pct: Option<f64>,
}

impl Objective {
    /// Lower is better.
    pub fn score(&self, runs: &[RunRecord]) -> f64 {
        let mut by_scenario: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
        for r in runs {
            by_scenario.entry(r.scenario.as_str()).or_default().push(r);
        }
        let mean = |rs: &[&RunRecord], m: &str| {
            rs.iter().filter_map(|r| r.metrics.get(m)).sum::<f64>() / rs.len().max(1) as f64
        };
        let mut value = 0.0;
        let mut violation = 0.0;
        for rs in by_scenario.values() {
            value += mean(rs, self.metric.name);
            if let Some(max) = self.max_p99_ms {
                violation += (mean(rs, "p99_ms") / max - 1.0).max(0.0);
            }
            if let Some(max) = self.max_failed_pct {
                violation += (mean(rs, "failed_pct") - max).max(0.0);
            }
        }
        value /= by_scenario.len().max(1) as f64;
        let signed = if self.metric.higher_is_better {
            -value
        } else {
            value
        };
        if violation > 0.0 {
            1e9 * (1.0 + violation)
        } else {
            signed
        }
    }
}

/// A scenario taking part in tuning.
#[derive(Debug, Clone)]
pub struct TuneScenario {
    pub scenario: ScenarioRef,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct TuneConfig {
    pub train: Vec<TuneScenario>,
    pub train_seeds: Vec<u64>,
    pub holdout: Vec<TuneScenario>,
    pub holdout_seeds: Vec<u64>,
    /// Overrides for every run (e.g. a shorter duration).
    pub sets: Vec<String>,
    pub objective: Objective,
    /// Candidates evaluated besides the defaults.
    pub budget: usize,
    pub search_seed: u64,
}

/// One evaluated candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub iteration: usize,
    pub weights: [f64; 5],
    pub score: f64,
}

/// Default against tuned on the held-out runs, for one scenario and metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutRow {
    pub scenario: String,
    pub metric: String,
    pub default: Estimate,
    pub tuned: Estimate,
    /// Tuned − default, seed by seed (common random numbers make this interval the tight one).
    pub paired_difference: Estimate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneReport {
    pub objective: String,
    pub constraints: BTreeMap<String, f64>,
    pub train_scenarios: Vec<String>,
    pub train_seeds: Vec<u64>,
    pub holdout_scenarios: Vec<String>,
    pub holdout_seeds: Vec<u64>,
    pub default_weights: BTreeMap<String, f64>,
    pub best_weights: BTreeMap<String, f64>,
    pub train_default_score: f64,
    pub train_best_score: f64,
    pub holdout_default_score: f64,
    pub holdout_best_score: f64,
    pub trials: Vec<Trial>,
    pub holdout: Vec<HoldoutRow>,
}

fn named(w: &[f64; 5]) -> BTreeMap<String, f64> {
    WEIGHT_NAMES
        .iter()
        .zip(w)
        .map(|(n, v)| (n.to_string(), round6(*v)))
        .collect()
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The overrides that select the seeds' policy with these weights.
pub fn weight_sets(w: &[f64; 5]) -> Vec<String> {
    let mut s = vec!["engine.policy=seeds".to_string()];
    s.extend(
        WEIGHT_NAMES
            .iter()
            .zip(w)
            .map(|(n, v)| format!("engine.weights.{n}={}", round6(*v))),
    );
    s
}

fn normalise(mut w: [f64; 5]) -> [f64; 5] {
    let sum: f64 = w.iter().sum();
    for x in &mut w {
        *x = round6(*x / sum);
    }
    w
}

fn jobs(
    scenarios: &[TuneScenario],
    seeds: &[u64],
    sets: &[String],
    w: &[f64; 5],
    tag: &str,
) -> Vec<Job> {
    let mut out = Vec::new();
    for sc in scenarios {
        for &seed in seeds {
            let mut s = sets.to_vec();
            s.extend(weight_sets(w));
            out.push(Job {
                scenario: sc.scenario.clone(),
                scenario_label: sc.label.clone(),
                variant: tag.to_string(),
                sets: s,
                seed,
                grow: None,
            });
        }
    }
    out
}

/// Runs the search and the held-out comparison. `progress(done, total)` after each batch.
pub fn tune(
    cfg: &TuneConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<TuneReport, ExperimentError> {
    if cfg.train.is_empty() || cfg.train_seeds.is_empty() || cfg.holdout_seeds.is_empty() {
        return Err(ExperimentError::BadInput(
            "tune needs training scenarios, training seeds and held-out seeds".into(),
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.search_seed);
    let mut trials: Vec<Trial> = Vec::new();
    let evaluate = |cands: &[[f64; 5]], first: usize| -> Result<Vec<Trial>, ExperimentError> {
        let mut all = Vec::new();
        for (i, w) in cands.iter().enumerate() {
            all.extend(jobs(
                &cfg.train,
                &cfg.train_seeds,
                &cfg.sets,
                w,
                &format!("c{i}"),
            ));
        }
        let runs = run_jobs(&all, &|_| {})?;
        Ok(cands
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let tag = format!("c{i}");
                let mine: Vec<RunRecord> =
                    runs.iter().filter(|r| r.variant == tag).cloned().collect();
                Trial {
                    iteration: first + i,
                    weights: *w,
                    score: cfg.objective.score(&mine),
                }
            })
            .collect())
    };
    trials.extend(evaluate(&[DEFAULT_WEIGHTS], 0)?);
    let total = cfg.budget + 1;
    progress(1, total);
    let explore = cfg.budget / 2;
    let mut sigma = 0.6;
    let mut vertex = 0;
    while trials.len() < total {
        let n = BATCH.min(total - trials.len());
        let best = best_of(&trials).weights;
        let cands: Vec<[f64; 5]> = (0..n)
            .map(|_| {
                let mut w = [0.0; 5];
                if vertex < 5 && vertex < explore {
                    // First the simplex's corners (one term alone): in the seeds' scenarios the
                    // objective's plateaus end only where a term dominates outright.
                    w[vertex] = 1.0;
                    vertex += 1;
                } else if trials.len() <= explore {
                    // Sparse Dirichlet(0.3,…): most mass near the simplex's faces and corners,
                    // where one or two terms dominate — the objective is flat in the interior
                    // (the default scenario's placements only change once a term dominates).
                    let g = Gamma::new(0.3, 1.0).expect("valid Gamma parameters");
                    for x in &mut w {
                        *x = g.sample(&mut rng);
                    }
                    if w.iter().sum::<f64>() <= 0.0 {
                        w = DEFAULT_WEIGHTS;
                    }
                } else {
                    for (x, b) in w.iter_mut().zip(best) {
                        let z: f64 = StandardNormal.sample(&mut rng);
                        *x = (b.max(0.005)) * (sigma * z).exp();
                    }
                    // Now and then switch a term off entirely: zero is a legitimate weight.
                    if rng.random_range(0..5) == 0 {
                        w[rng.random_range(0..5)] = 0.0;
                    }
                }
                normalise(w)
            })
            .collect();
        let before = best_of(&trials).score;
        let batch = evaluate(&cands, trials.len())?;
        trials.extend(batch);
        if trials.len() > explore + 1 && best_of(&trials).score >= before {
            sigma = (sigma * 0.6_f64).max(0.05);
        }
        progress(trials.len(), total);
    }
    let best = best_of(&trials).clone();

    // Held out: the training scenarios on new seeds, and the held-out scenarios.
    let mut hold_sc = cfg.train.clone();
    hold_sc.extend(cfg.holdout.iter().cloned());
    let mut hold_jobs = jobs(
        &hold_sc,
        &cfg.holdout_seeds,
        &cfg.sets,
        &DEFAULT_WEIGHTS,
        "default",
    );
    hold_jobs.extend(jobs(
        &hold_sc,
        &cfg.holdout_seeds,
        &cfg.sets,
        &best.weights,
        "tuned",
    ));
    let runs = run_jobs(&hold_jobs, &|_| {})?;
    let (d_runs, t_runs): (Vec<RunRecord>, Vec<RunRecord>) =
        runs.into_iter().partition(|r| r.variant == "default");
    let mut holdout = Vec::new();
    for sc in &hold_sc {
        let pick = |rs: &[RunRecord], m: &str| -> Vec<f64> {
            rs.iter()
                .filter(|r| r.scenario == sc.label)
                .filter_map(|r| r.metrics.get(m).copied())
                .collect()
        };
        let mut names = vec![
            cfg.objective.metric.name,
            "p99_ms",
            "slo_attainment",
            "failed_pct",
            "usd_per_1k",
            "energy_kwh",
        ];
        names.dedup();
        let mut seen = Vec::new();
        for m in names {
            if seen.contains(&m) || metric::find(m).is_none() {
                continue;
            }
            seen.push(m);
            let (d, t) = (pick(&d_runs, m), pick(&t_runs, m));
            let diff: Vec<f64> = t.iter().zip(&d).map(|(a, b)| a - b).collect();
            if let (Some(default), Some(tuned), Some(paired_difference)) = (
                Estimate::from_values(&d),
                Estimate::from_values(&t),
                Estimate::from_values(&diff),
            ) {
                holdout.push(HoldoutRow {
                    scenario: sc.label.clone(),
                    metric: m.to_string(),
                    default,
                    tuned,
                    paired_difference,
                });
            }
        }
    }
    let mut constraints = BTreeMap::new();
    if let Some(v) = cfg.objective.max_p99_ms {
        constraints.insert("max_p99_ms".to_string(), v);
    }
    if let Some(v) = cfg.objective.max_failed_pct {
        constraints.insert("max_failed_pct".to_string(), v);
    }
    Ok(TuneReport {
        objective: cfg.objective.metric.name.to_string(),
        constraints,
        train_scenarios: cfg.train.iter().map(|s| s.label.clone()).collect(),
        train_seeds: cfg.train_seeds.clone(),
        holdout_scenarios: hold_sc.iter().map(|s| s.label.clone()).collect(),
        holdout_seeds: cfg.holdout_seeds.clone(),
        default_weights: named(&DEFAULT_WEIGHTS),
        best_weights: named(&best.weights),
        train_default_score: trials[0].score,
        train_best_score: best.score,
        holdout_default_score: cfg.objective.score(&d_runs),
        holdout_best_score: cfg.objective.score(&t_runs),
        trials,
        holdout,
    })
}

/// The best trial; ties go to the earliest (the defaults win a tie).
fn best_of(trials: &[Trial]) -> &Trial {
    trials
        .iter()
        .reduce(|a, b| if b.score < a.score { b } else { a })
        .expect("at least the defaults were evaluated")
}

impl TuneReport {
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "# Weight tuning\n\nObjective: {} {}{}. Trained on {} × seeds {:?}; held out: seeds {:?} on {}.\n\n",
            if metric::find(&self.objective).is_some_and(|m| m.higher_is_better) { "maximise" } else { "minimise" },
            self.objective,
            if self.constraints.is_empty() {
                String::new()
            } else {
                format!(
                    " subject to {}",
                    self.constraints.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
                )
            },
            self.train_scenarios.join(", "),
            self.train_seeds,
            self.holdout_seeds,
            self.holdout_scenarios.join(", ")
        );
        out.push_str("| weight | default | tuned |\n|---|---:|---:|\n");
        for n in WEIGHT_NAMES {
            out.push_str(&format!(
                "| {n} | {:.3} | {:.3} |\n",
                self.default_weights.get(n).copied().unwrap_or(f64::NAN),
                self.best_weights.get(n).copied().unwrap_or(f64::NAN)
            ));
        }
        out.push_str(&format!(
            "\nScore (lower is better): training {:.6} → {:.6} ({} candidates); held out {:.6} → {:.6}.\n\n",
            self.train_default_score,
            self.train_best_score,
            self.trials.len(),
            self.holdout_default_score,
            self.holdout_best_score
        ));
        out.push_str("| held-out scenario | metric | default | tuned | tuned − default (paired, 95 % CI) |\n|---|---|---:|---:|---:|\n");
        for r in &self.holdout {
            let d = metric::find(&r.metric).map_or(3, |m| m.decimals);
            out.push_str(&format!(
                "| {} | {} | {:.*} ± {:.*} | {:.*} ± {:.*} | {:+.*} ± {:.*} |\n",
                r.scenario,
                r.metric,
                d,
                r.default.mean,
                d,
                r.default.ci95,
                d,
                r.tuned.mean,
                d,
                r.tuned.ci95,
                d,
                r.paired_difference.mean,
                d,
                r.paired_difference.ci95
            ));
        }
        out.push_str("\nTo use the tuned weights:\n\n```toml\n[engine.weights]\n");
        for n in WEIGHT_NAMES {
            out.push_str(&format!(
                "{n} = {}\n",
                self.best_weights.get(n).copied().unwrap_or(0.0)
            ));
        }
        out.push_str("```\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(scenario: &str, p99: f64, slo: f64) -> RunRecord {
        RunRecord {
            scenario: scenario.into(),
            variant: "v".into(),
            seed: 1,
            metrics: [
                ("p99_ms".to_string(), p99),
                ("slo_attainment".to_string(), slo),
                ("failed_pct".to_string(), 0.0),
            ]
            .into_iter()
            .collect(),
            latency_cdf_ms: vec![],
            binding: None,
        }
    }

    #[test]
    fn objective_maximises_and_penalises() {
        let o = Objective {
            metric: metric::find("slo_attainment").unwrap(),
            max_p99_ms: Some(500.0),
            max_failed_pct: None,
        };
        let good = o.score(&[rec("a", 400.0, 99.0)]);
        let better = o.score(&[rec("a", 450.0, 99.5)]);
        let infeasible = o.score(&[rec("a", 600.0, 100.0)]);
        assert!(better < good && good < infeasible);
        assert_eq!(
            normalise([1.0, 1.0, 1.0, 1.0, 0.0]),
            [0.25, 0.25, 0.25, 0.25, 0.0]
        );
        assert_eq!(
            weight_sets(&DEFAULT_WEIGHTS)[1],
            "engine.weights.efficiency=0.3"
        );
    }
}
