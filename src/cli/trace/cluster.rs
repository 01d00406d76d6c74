//! `gpusched trace cluster`: a node inventory (openb, spot-GPU, PAI) as scenario `[[pools]]`.

use crate::cli::bad_input;
use gpusched_sim::trace::inventory;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ClusterArgs {
    pub file: PathBuf,
    /// Fraction of each node group to keep (at least one node per group).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

pub(super) fn print_inventory(path: &Path, inv: &inventory::Inventory, scale: f64) {
    println!(
        "# {}: {} nodes ({} CPU-only), {} GPUs",
        path.display(),
        inv.nodes(),
        inv.cpu_only_nodes,
        inv.gpus()
    );
    for ((ty, g), n) in &inv.groups {
        let to =
            inventory::map_model(ty).map_or("(no engine model)".to_string(), |m| format!("-> {m}"));
        println!("#   {ty:<16} {g} GPUs/node x {n:>5} nodes {to}");
    }
    let (pools, unmapped) = inventory::to_pools(inv, scale);
    for (ty, gpus) in &unmapped {
        println!("# not mapped: {gpus} {ty} GPUs");
    }
    println!("# scale {scale}\n");
    print!("{}", inventory::pools_toml(&pools));
}

pub fn execute(a: &ClusterArgs) -> ExitCode {
    if !(a.scale > 0.0 && a.scale <= 1.0) {
        return bad_input(format!("--scale {}: must be within (0, 1]", a.scale));
    }
    let head = match gpusched_sim::trace::first_line(&a.file, None) {
        Ok(h) => h,
        Err(e) => return bad_input(e),
    };
    let Some(f) = inventory::detect(&a.file, &head) else {
        return bad_input(format!("{}: not a node inventory (openb node list, spot-GPU node_info_df.csv or PAI pai_machine_spec)", a.file.display()));
    };
    match inventory::read(&a.file, f) {
        Ok(inv) => {
            print_inventory(&a.file, &inv, a.scale);
            ExitCode::SUCCESS
        }
        Err(e) => bad_input(e),
    }
}
