//! `gpusched trace …`: look at a trace before replaying it (`inspect`), write synthetic traffic
//! (`synth`), turn a node inventory into scenario pools (`cluster`), and measure the readers
//! (`bench`, with the hidden `replay` it runs in child processes). One file per subcommand.

mod bench;
mod cluster;
mod inspect;
mod replay;
mod synth;

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TraceArgs {
    #[command(subcommand)]
    pub command: TraceCommand,
}

#[derive(clap::Subcommand)]
pub enum TraceCommand {
    /// Rows, span, request rate over 1/5/15-minute windows, token distributions and a QPS plot.
    Inspect(InspectArgs),
    /// Write synthetic traffic as a gpusched trace CSV.
    Synth(SynthArgs),
    /// Print a node inventory (openb, spot-GPU, PAI) as scenario [[pools]].
    Cluster(ClusterArgs),
    /// Rows parsed per second per format, and peak memory of a replay at 1× and 10×.
    Bench(BenchArgs),
    /// Stream a trace through the replay pipeline and print rows and peak memory (used by bench).
    #[command(hide = true)]
    Replay(ReplayArgs),
}

pub use bench::BenchArgs;
pub use cluster::ClusterArgs;
pub use inspect::InspectArgs;
pub use replay::ReplayArgs;
pub use synth::SynthArgs;

pub fn execute(a: &TraceArgs) -> ExitCode {
    match &a.command {
        TraceCommand::Inspect(x) => inspect::execute(x),
        TraceCommand::Synth(x) => synth::execute(x),
        TraceCommand::Cluster(x) => cluster::execute(x),
        TraceCommand::Bench(x) => bench::execute(x),
        TraceCommand::Replay(x) => replay::execute(x),
    }
}
