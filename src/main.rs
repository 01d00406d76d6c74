use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "gpusched",
    version,
    about = "GPU scheduling policy engine and simulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reproduce the FGD paper's (USENIX ATC '23) openb evaluation.
    Fgd(cli::fgd::FgdArgs),
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Fgd(args) => cli::fgd::execute(&args).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }),
    }
}
