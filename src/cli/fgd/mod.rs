//! `gpusched fgd`: run the FGD paper's openb experiment (any pod lists × policies × seeds),
//! write its tables and plots, and compare them with a reference folder. One file per
//! subcommand.

mod compare;
mod run;

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct FgdArgs {
    #[command(subcommand)]
    pub command: FgdCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum FgdCommand {
    /// Run pod lists × policies × seeds and write the paper's tables (and plots).
    Run(RunArgs),
    /// Compare result tables with a reference folder; exit 1 beyond the tolerance.
    Compare(CompareArgs),
}

pub use compare::CompareArgs;
pub use run::RunArgs;

pub fn execute(args: &FgdArgs) -> Result<ExitCode, String> {
    match &args.command {
        FgdCommand::Run(a) => run::execute(a),
        FgdCommand::Compare(a) => compare::execute(
            &a.reference,
            &a.results,
            a.tolerance_pp,
            a.order_margin_pp,
            a.report.as_deref(),
        ),
    }
}
