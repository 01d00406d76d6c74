//! `gpusched live agent|controller|rollout|snapshot`: the engine on a real Kubernetes cluster. The work is
//! in the `gpusched-live` crate; this module only parses flags and maps errors to exit codes.

use gpusched_live::cmd::{self, CmdError};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct LiveArgs {
    #[command(subcommand)]
    pub command: LiveCommand,
}

#[derive(clap::Subcommand)]
pub enum LiveCommand {
    /// Per-node GPU agent (DaemonSet): NVML readings as Prometheus metrics and a node annotation.
    Agent(cmd::AgentArgs),
    /// Place `schedulerName: gpusched` pods with the engine and apply its decisions (use --dry-run first).
    Controller(Box<cmd::ControllerArgs>),
    /// Change several nodes' sharing config with a strategy, the QPS gate and the canary watch
    /// (the simulator's `[reconfig]`), readings from Prometheus (use --dry-run first).
    Rollout(Box<cmd::RolloutArgs>),
    /// Write the live cluster as a scenario file that `gpusched run` accepts.
    Snapshot(cmd::SnapshotArgs),
}

pub fn execute(a: &LiveArgs) -> ExitCode {
    let r = match &a.command {
        LiveCommand::Agent(x) => cmd::agent(x),
        LiveCommand::Controller(x) => cmd::controller(x),
        LiveCommand::Rollout(x) => cmd::rollout(x),
        LiveCommand::Snapshot(x) => cmd::snapshot(x),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(CmdError::BadInput(m)) => super::bad_input(m),
        Err(CmdError::Failed(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}
