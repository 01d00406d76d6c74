//! `gpusched fgd compare`: result tables against a reference folder; exit 1 beyond the
//! tolerance (also run by `gpusched fgd run --reference`).

use gpusched_openb::compare;
use gpusched_openb::tables::{read_table, ALLO_FILE};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    #[arg(long, default_value = "../shared/reference/fgd-atc23")]
    pub reference: PathBuf,
    #[arg(long)]
    pub results: PathBuf,
    #[arg(long, default_value_t = 1.0)]
    pub tolerance_pp: f64,
    /// Policy pairs the paper separates by more than this must keep their order.
    #[arg(long, default_value_t = 0.5)]
    pub order_margin_pp: f64,
    /// Write the Markdown report here as well as to stdout.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

pub fn execute(
    reference: &Path,
    results: &Path,
    tolerance_pp: f64,
    order_margin_pp: f64,
    report: Option<&Path>,
) -> Result<ExitCode, String> {
    if !(tolerance_pp >= 0.0) || !(order_margin_pp >= 0.0) {
        return Err("tolerances must be non-negative".into());
    }
    let paper = read_table(&reference.join(ALLO_FILE)).map_err(|e| e.to_string())?;
    let ours = read_table(&results.join(ALLO_FILE)).map_err(|e| e.to_string())?;
    let c = compare(&paper, &ours, tolerance_pp, order_margin_pp);
    let md = c.to_markdown();
    println!("{md}");
    if let Some(path) = report {
        gpusched_reports::staged::write_file(path, md.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(if c.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
