//! One module per subcommand (a folder with one file per sub-subcommand where a command has
//! several); what they share is in [`support`], the exit-code rule below.

pub mod bench;
pub mod compare;
pub mod explain;
pub mod fgd;
pub mod live;
pub mod logging;
pub mod openb_replay;
pub mod run;
pub mod serving;
pub mod support;
pub mod sweep;
pub mod trace;
pub mod tune;

use std::process::ExitCode;

/// The one exit-code rule of every subcommand: 0 done, [`EXIT_FAILED`] a run failed (or a
/// write, or a CI gate tripped), [`EXIT_BAD_INPUT`] the input was refused (a scenario, a trace,
/// a spec, a flag, an `--out` path). Errors say which they are through [`Classify`], so no
/// command decides it case by case.
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_FAILED: u8 = 1;

pub fn bad_input(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_BAD_INPUT)
}

/// An error that knows whether it is the user's input (exit 2) or a failed run (exit 1).
pub trait Classify: std::fmt::Display {
    fn is_input_error(&self) -> bool;
}

impl Classify for gpusched_sim::ScenarioError {
    fn is_input_error(&self) -> bool {
        true
    }
}
impl Classify for gpusched_sim::SimError {
    fn is_input_error(&self) -> bool {
        gpusched_sim::SimError::is_input_error(self)
    }
}
impl Classify for gpusched_experiments::ExperimentError {
    fn is_input_error(&self) -> bool {
        self.is_bad_input()
    }
}
impl Classify for gpusched_reports::staged::OutputError {
    fn is_input_error(&self) -> bool {
        gpusched_reports::staged::OutputError::is_input_error(self)
    }
}
/// A report that could not be written is a failed run; its `--out` was checked beforehand.
impl Classify for gpusched_reports::ReportError {
    fn is_input_error(&self) -> bool {
        false
    }
}

/// Prints the error and returns the exit code its class calls for.
pub fn fail(e: impl Classify) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(if e.is_input_error() {
        EXIT_BAD_INPUT
    } else {
        EXIT_FAILED
    })
}

/// A report writer's error inside a staged folder: the earlier output is untouched (exit 1).
pub fn write_failed(
    stage: &gpusched_reports::staged::StagedDir,
    e: gpusched_reports::ReportError,
) -> ExitCode {
    let (path, source) = match e {
        gpusched_reports::ReportError::Io { path, source } => (path, source),
        gpusched_reports::ReportError::Other { path, message } => {
            (path, std::io::Error::other(message))
        }
    };
    fail(stage.write_error(&path, source))
}

/// Checks `--out` and opens its staging folder before any work starts (exit 2 when unusable).
pub fn stage_out(out: &std::path::Path) -> Result<gpusched_reports::staged::StagedDir, ExitCode> {
    gpusched_reports::staged::StagedDir::new(out).map_err(fail)
}

/// Loads the scenario named on the command line, or the built-in default.
pub fn load_scenario(
    path: Option<&std::path::Path>,
    seed: Option<u64>,
    sets: &[String],
) -> Result<gpusched_sim::LoadedScenario, gpusched_sim::ScenarioError> {
    let mut overrides = sets.to_vec();
    if let Some(s) = seed {
        overrides.push(format!("seed={s}"));
    }
    match path {
        Some(p) => gpusched_sim::load_file(p, &overrides),
        None => gpusched_sim::load_default(&overrides),
    }
}
