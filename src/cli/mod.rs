//! One module per subcommand.

pub mod bench;
pub mod compare;
pub mod explain;
pub mod fgd;
pub mod live;
pub mod openb_replay;
pub mod run;
pub mod serving;
pub mod sweep;
pub mod trace;
pub mod tune;

use std::process::ExitCode;

/// Exit code for bad input (a scenario, a flag, a file): distinct from a failed run.
pub const EXIT_BAD_INPUT: u8 = 2;

pub fn bad_input(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_BAD_INPUT)
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
