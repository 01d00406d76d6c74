//! The `gpusched` command line.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "gpusched", version, about = "GPU scheduling policy engine: simulate a cluster, compare policies, run live")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (the built-in default when none is given) and write its report and plots.
    Run(cli::run::RunArgs),
    /// Show, for one workload, every node's filter verdict and every score term.
    Explain(cli::explain::ExplainArgs),
    /// Inspect, synthesise and benchmark traces; turn node inventories into pools.
    Trace(cli::trace::TraceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(a) => cli::run::execute(&a),
        Command::Explain(a) => cli::explain::execute(&a),
        Command::Trace(a) => cli::trace::execute(&a),
    }
}
