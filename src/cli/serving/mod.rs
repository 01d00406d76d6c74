//! `gpusched serving …`: the LLM serving model's catalogues, the fit that writes
//! `serving/profiles.toml`, and the fidelity table against the measured runs. One file per
//! subcommand.

mod catalogue;
mod fidelity;
mod fit;

use clap::{Args, Subcommand};
use gpusched_serving::reference;
use std::path::PathBuf;
use std::process::ExitCode;
#[derive(Debug, Args)]
pub struct ServingArgs {
    #[command(subcommand)]
    pub command: ServingCommand,
}

#[derive(Debug, Subcommand)]
pub enum ServingCommand {
    /// The model catalogue: architectures, parameters, KV-cache bytes per token.
    Models,
    /// The shipped serving-stack profiles and GPU factors, with how they were fitted.
    Profiles,
    /// Fit the stacks' constants on reference/llm-serving/ and print them with their residuals;
    /// `--write` rewrites the profiles file (serving/profiles.toml).
    Fit {
        /// Folder with the reference CSVs (default ../shared/reference/llm-serving).
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Write the fitted profiles here (e.g. serving/profiles.toml).
        #[arg(long)]
        write: Option<PathBuf>,
        /// Objective evaluations per Nelder–Mead pass of the vLLM fit (two passes).
        #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(10..=100_000))]
        max_evals: u64,
    },
    /// Replay every reference row as measured and print ours beside measured, signed errors.
    Fidelity {
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Also print the per-point Splitwise table (300 lines).
        #[arg(long)]
        all: bool,
    },
}

pub fn execute(a: &ServingArgs) -> ExitCode {
    match &a.command {
        ServingCommand::Models => {
            catalogue::models();
            ExitCode::SUCCESS
        }
        ServingCommand::Profiles => {
            catalogue::profiles();
            ExitCode::SUCCESS
        }
        ServingCommand::Fit {
            reference,
            write,
            max_evals,
        } => fit::execute(reference.clone(), write.clone(), *max_evals as usize),
        ServingCommand::Fidelity { reference, all } => fidelity::execute(reference.clone(), *all),
    }
}

fn load_reference(
    dir: Option<PathBuf>,
) -> Result<(Vec<reference::VllmStage>, Vec<reference::SplitwisePoint>), reference::ReferenceError>
{
    let dir = dir.unwrap_or_else(reference::default_dir);
    Ok((
        reference::read_vllm(&dir.join(reference::VLLM_FILE))?,
        reference::read_splitwise(&dir.join(reference::SPLITWISE_FILE))?,
    ))
}
