//! What several subcommands share, in one place: the progress bars, the parallel job runner
//! behind them, the peak-memory reader and the notes a trace replay leaves.

use gpusched_experiments::runner::{run_jobs, Job, RunRecord};
use gpusched_experiments::ExperimentError;
use gpusched_sim::trace::pipeline::ReplayReport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Instant;

/// Peak resident memory of this process, KiB (Linux `VmHWM` in /proc/self/status); None
/// elsewhere.
pub fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// [`peak_rss_kib`] in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    peak_rss_kib().map(|k| k as f64 / 1024.0)
}

/// Runs experiment jobs in parallel (`gpusched_experiments::runner::run_jobs`) behind a
/// `{label} [====>   ] done/total runs` bar on stderr, cleared when they finish.
pub fn run_jobs_with_bar(label: &str, jobs: &[Job]) -> Result<Vec<RunRecord>, ExperimentError> {
    let bar = ProgressBar::new(jobs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {label} [{{bar:40}}] {{pos}}/{{len}} runs ({{elapsed}})"
        ))
        .expect("static template")
        .progress_chars("=> "),
    );
    let runs = run_jobs(jobs, &|n| bar.set_position(n as u64));
    bar.finish_and_clear();
    runs
}

/// The bar of one simulation: `simulating NAME [====>   ] 42% (elapsed)`, drawn only once the
/// run has taken more than a second (short runs print nothing).
pub struct SimulationBar {
    bar: ProgressBar,
    started: Instant,
    shown: bool,
}

impl SimulationBar {
    pub fn new(name: String) -> Self {
        let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} simulating {msg} [{bar:40}] {percent}% ({elapsed})",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_message(name);
        SimulationBar {
            bar,
            started: Instant::now(),
            shown: false,
        }
    }

    /// The share of simulated time done, 0 … 1.
    pub fn set_fraction(&mut self, f: f64) {
        if !self.shown && self.started.elapsed().as_secs_f64() > 1.0 {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
        self.bar.set_position((f * 1000.0) as u64);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Logs what trace replays skipped and filtered (`gpusched run`, `gpusched trace inspect`).
pub fn log_replay_reports(reports: &[ReplayReport]) {
    for r in reports {
        if r.bad_rows_skipped > 0 {
            tracing::warn!(
                skipped = r.bad_rows_skipped,
                "skipped {} bad trace rows; the first reasons follow",
                r.bad_rows_skipped
            );
            for reason in &r.reasons {
                tracing::warn!(%reason, "bad trace row skipped");
            }
        }
        for (why, n) in &r.filtered {
            tracing::info!(rows = n, reason = %why, "trace rows not replayed");
        }
    }
}
