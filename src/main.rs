//! The `gpusched` command line.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gpusched",
    version,
    about = "GPU scheduling policy engine: simulate a cluster, compare policies, run live"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: cli::logging::LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (the built-in default when none is given) and write its report and plots.
    Run(cli::run::RunArgs),
    /// Show, for one workload, every node's filter verdict and every score term.
    Explain(cli::explain::ExplainArgs),
    /// Measure speed: events and simulated requests per second (use a release build).
    Bench(cli::bench::BenchArgs),
    /// Reproduce the FGD paper's (USENIX ATC '23) openb evaluation and compare it with the paper.
    Fgd(cli::fgd::FgdArgs),
    /// Live mode on a Kubernetes cluster: GPU agent, controller, snapshot.
    Live(cli::live::LiveArgs),
    /// Compare policies or configurations over scenarios and seeds (means, 95 % CIs, CI gate).
    Compare(cli::compare::CompareArgs),
    /// Capacity planning: the cheapest fleet meeting the SLOs per traffic growth (shardable).
    Sweep(cli::sweep::SweepArgs),
    /// Search the seeds' scoring weights on training scenarios; report on held-out ones.
    Tune(cli::tune::TuneArgs),
    /// Inspect, synthesise and benchmark traces; turn node inventories into pools.
    Trace(cli::trace::TraceArgs),
    /// The LLM serving model: model catalogue, fitted stack profiles, fit, fidelity table.
    Serving(cli::serving::ServingArgs),
}

fn main() -> ExitCode {
    // Behave like other Unix tools when the reader goes away (`gpusched … | head`): exit
    // quietly instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // One subscriber for the process; the long-running `live` commands stamp their lines.
    cli::logging::init(&cli.log, matches!(cli.command, Command::Live(_)));
    match cli.command {
        Command::Run(a) => cli::run::execute(&a),
        Command::Explain(a) => cli::explain::execute(&a),
        Command::Bench(a) => cli::bench::execute(&a),
        Command::Fgd(a) => cli::fgd::execute(&a).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            ExitCode::from(cli::EXIT_BAD_INPUT)
        }),
        Command::Live(a) => cli::live::execute(&a),
        Command::Compare(a) => cli::compare::execute(&a),
        Command::Sweep(a) => cli::sweep::execute(&a),
        Command::Tune(a) => cli::tune::execute(&a),
        Command::Trace(a) => cli::trace::execute(&a),
        Command::Serving(a) => cli::serving::execute(&a),
    }
}
