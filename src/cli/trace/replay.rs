//! `gpusched trace replay` (hidden): streams a trace through the replay pipeline and prints rows
//! and peak memory; `gpusched trace bench` runs it in a child process per measurement.

use crate::cli::bad_input;
use crate::cli::support::peak_rss_kib;
use gpusched_sim::trace::pipeline::{Pipeline, TraceSpec};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct ReplayArgs {
    pub file: PathBuf,
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
}

pub fn execute(a: &ReplayArgs) -> ExitCode {
    let mut spec = TraceSpec::new(&a.file);
    spec.rate_scale = a.rate_scale;
    if let Err((k, p)) = spec.check() {
        return bad_input(format!("{k}: {p}"));
    }
    let started = Instant::now();
    let mut p = match Pipeline::open(&spec, &a.file, 42, 0) {
        Ok(p) => p,
        Err(e) => return bad_input(e),
    };
    let mut n = 0u64;
    let mut last = 0.0;
    for r in &mut p {
        match r {
            Ok(r) => {
                n += 1;
                last = r.t_s;
            }
            Err(e) => return bad_input(e),
        }
    }
    println!(
        "rows {n} last_t {last:.3} wall_s {:.3} peak_rss_kib {}",
        started.elapsed().as_secs_f64(),
        peak_rss_kib().unwrap_or(0)
    );
    ExitCode::SUCCESS
}
