//! gpusched-experiments: experiments over many simulator runs — policy comparison with
//! confidence intervals and a CI gate (`compare`), capacity-planning sweeps with sharding onto
//! Kubernetes Jobs and merging (`sweep`, [`k8s`]), and weight search (`tune`). Everything here
//! is a pure function of run summaries except [`runner`], which runs the simulations in
//! parallel; outputs are deterministic (ordered maps, runs in job order).
//!
//! Owns: the metric registry ([`METRICS`]) that compare, sweep, tune, the gate and the reports
//! read; statistics over seeds; the experiment specs. Depends on the simulator (it runs
//! scenarios and reads their summaries). Must never depend on reports or live.

pub mod compare;
pub mod gate;
pub mod k8s;
pub mod metric;
pub mod runner;
pub mod stats;
pub mod sweep;
pub mod tune;

pub use metric::{MetricDef, METRICS};
pub use runner::{Job, RunRecord, ScenarioRef};
pub use stats::Estimate;

/// What can go wrong in an experiment. `BadInput` problems are the user's (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Scenario(#[from] gpusched_sim::ScenarioError),
    #[error("{0}")]
    BadInput(String),
    #[error("{scenario} / {variant} / seed {seed}: {source}")]
    Run {
        scenario: String,
        variant: String,
        seed: u64,
        /// Boxed: keeps `ExperimentError` (every experiment function's `Err`) small.
        source: Box<gpusched_sim::SimError>,
    },
}

impl ExperimentError {
    /// Whether the error is in the user's input (a scenario, a spec, a flag, a trace a run
    /// read) rather than a run that failed: the one rule behind exit code 2 for `compare`,
    /// `sweep` and `tune` alike (a bad trace used to be exit 1 here and exit 2 under `run`).
    pub fn is_bad_input(&self) -> bool {
        match self {
            ExperimentError::Scenario(_) | ExperimentError::BadInput(_) => true,
            ExperimentError::Run { source, .. } => source.is_input_error(),
        }
    }
}
