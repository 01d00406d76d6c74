//! Runs many (scenario, variant, seed) simulations in parallel with rayon and keeps, per run,
//! the metrics and latency CDF an experiment needs (not the time series or decisions).
//!
//! Results come back in job order whatever the thread count, and each run is seeded by its
//! job alone, so an experiment's output does not depend on how many cores ran it.

use super::{metric, ExperimentError};
use gpusched_sim::scenario::LoadedScenario;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where a scenario comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScenarioRef {
    /// The built-in default scenario.
    Default,
    File(PathBuf),
}

impl ScenarioRef {
    pub fn load(&self, sets: &[String]) -> Result<LoadedScenario, gpusched_sim::ScenarioError> {
        match self {
            ScenarioRef::Default => gpusched_sim::load_default(sets),
            ScenarioRef::File(p) => gpusched_sim::load_file(p, sets),
        }
    }
}

/// One simulation to run.
#[derive(Debug, Clone)]
pub struct Job {
    pub scenario: ScenarioRef,
    /// How reports name the scenario (its `name`, made unique by the caller).
    pub scenario_label: String,
    pub variant: String,
    /// `--set` overrides: the experiment's, then the variant's.
    pub sets: Vec<String>,
    pub seed: u64,
    /// A sweep's growth and the per-service settings that grow with it (on the values the
    /// sets give): applied as further sets after a first load.
    pub grow: Option<(f64, Vec<super::sweep::Scalable>)>,
}

/// What an experiment keeps of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub scenario: String,
    pub variant: String,
    pub seed: u64,
    /// Every metric of [`metric::METRICS`], by name.
    pub metrics: BTreeMap<String, f64>,
    /// Latency (ms) at [`gpusched_sim::metrics::CDF_QUANTILES`].
    pub latency_cdf_ms: Vec<f64>,
    /// What bound the run most (summary.json's `binding_constraints.primary`).
    #[serde(default)]
    pub binding: Option<gpusched_sim::diagnosis::Finding>,
}

impl Job {
    /// The job's overrides as loaded: its sets, its seed, and no decision matrix (an experiment
    /// never writes decisions.jsonl, and the matrix is most of a run's memory).
    fn overrides(&self) -> Vec<String> {
        let mut o = self.sets.clone();
        o.push(format!("seed={}", self.seed));
        o.push("record_matrix=false".into());
        o
    }

    pub fn load(&self) -> Result<LoadedScenario, ExperimentError> {
        let first = self.scenario.load(&self.overrides())?;
        match &self.grow {
            Some((g, keys)) if !keys.is_empty() => {
                let mut o = self.overrides();
                o.extend(super::sweep::growth_sets(&first.scenario, keys, *g));
                Ok(self.scenario.load(&o)?)
            }
            _ => Ok(first),
        }
    }
}

/// Loads every job's scenario first, so that bad input is reported before hours of running.
pub fn prepare(jobs: &[Job]) -> Result<Vec<LoadedScenario>, ExperimentError> {
    jobs.iter().map(Job::load).collect()
}

/// Runs the jobs in parallel (rayon's global pool: `RAYON_NUM_THREADS` sets its size).
/// `done` is called with the number of finished runs after each one.
pub fn run_jobs(
    jobs: &[Job],
    done: &(dyn Fn(usize) + Sync),
) -> Result<Vec<RunRecord>, ExperimentError> {
    let loaded = prepare(jobs)?;
    let finished = AtomicUsize::new(0);
    jobs.par_iter()
        .zip(loaded.par_iter())
        .map(|(job, sc)| {
            let r = gpusched_sim::run(sc, &mut |_| {}).map_err(|source| ExperimentError::Run {
                scenario: job.scenario_label.clone(),
                variant: job.variant.clone(),
                seed: job.seed,
                source: Box::new(source),
            })?;
            done(finished.fetch_add(1, Ordering::Relaxed) + 1);
            Ok(RunRecord {
                scenario: job.scenario_label.clone(),
                variant: job.variant.clone(),
                seed: job.seed,
                metrics: metric::extract(&r.summary),
                binding: r
                    .summary
                    .binding_constraints
                    .as_ref()
                    .and_then(|b| b.primary.clone()),
                latency_cdf_ms: r.summary.latency_cdf_ms,
            })
        })
        .collect()
}
