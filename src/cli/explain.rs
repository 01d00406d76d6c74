//! `gpusched explain`: what kube-scheduler-simulator shows for one pod — every node's filter
//! verdict with the failing plugin and reason, and every score plugin's raw and normalised score —
//! for one service of a scenario, against the cluster as the scenario starts.

use super::{bad_input, load_scenario};
use gpusched_policies::framework::DecisionMatrix;
use gpusched_policies::Decision;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Scenario file (TOML); the built-in default when omitted.
    pub scenario: Option<PathBuf>,
    /// The service whose next replica to explain (default: the first service).
    #[arg(long)]
    pub service: Option<String>,
    /// Place the scenario's initial replicas first, then explain one more.
    #[arg(long)]
    pub after_initial: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

pub fn execute(a: &ExplainArgs) -> ExitCode {
    let sc = match load_scenario(a.scenario.as_deref(), None, &a.sets) {
        Ok(s) => s,
        Err(e) => return bad_input(e),
    };
    let names: Vec<&str> = sc
        .scenario
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let service = match &a.service {
        Some(n) => match sc.scenario.services.iter().find(|s| &s.name == n) {
            Some(s) => s,
            None => {
                return bad_input(format!(
                    "--service {n}: no such service; the scenario has [{}]",
                    names.join(", ")
                ))
            }
        },
        None => &sc.scenario.services[0],
    };
    let decision = match gpusched_sim::explain::explain(&sc, &service.name, a.after_initial) {
        Ok(d) => d,
        Err(e) => return bad_input(e),
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&decision).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let (summary, matrix): (String, Option<&DecisionMatrix>) = match &decision {
        Decision::Place(p) => (
            format!(
                "→ {} {} at {} %: {}",
                p.node,
                gpu_list(&p.gpus),
                p.share_pct,
                p.reason
            ),
            p.matrix.as_ref(),
        ),
        Decision::Unschedulable { reason, matrix, .. } => {
            (format!("unschedulable: {reason}"), matrix.as_ref())
        }
        _ => (String::new(), None),
    };
    println!("{}  ({})", service.name, summary);
    if let Some(m) = matrix {
        print!("{}", gpusched_sim::explain::matrix_table(m));
    }
    ExitCode::SUCCESS
}

/// `GPU 3`, or `GPUs 0,1,2,3` for a tensor-parallel replica.
fn gpu_list(gpus: &[u8]) -> String {
    let list: Vec<String> = gpus.iter().map(u8::to_string).collect();
    match list.len() {
        1 => format!("GPU {}", list[0]),
        _ => format!("GPUs {}", list.join(",")),
    }
}
