//! `gpusched bench`: speed figures as a command, not as timed tests. Build with `--release`.

use super::{bad_input, load_scenario};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value = "default-day")]
    pub what: BenchTarget,
    /// Scenario for `default-day` (the built-in default when omitted).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Repetitions; the best and the median are reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BenchTarget {
    /// The default scenario's day end to end (no report writing): events/s and requests/s.
    DefaultDay,
}

/// Peak resident memory of this process, from /proc (Linux); None elsewhere.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn execute(a: &BenchArgs) -> ExitCode {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; figures are only meaningful from `cargo run --release -- bench`");
    }
    match a.what {
        BenchTarget::DefaultDay => {
            let sc = match load_scenario(a.scenario.as_deref(), None, &a.sets) {
                Ok(s) => s,
                Err(e) => return bad_input(e),
            };
            let mut walls = Vec::new();
            let (mut events, mut requests) = (0, 0);
            for _ in 0..a.repeat.max(1) {
                let t = Instant::now();
                let r = match gpusched_sim::run(&sc, &mut |_| {}) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(1);
                    }
                };
                walls.push(t.elapsed().as_secs_f64());
                events = r.summary.events;
                requests = r.summary.requests.arrived;
            }
            walls.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let best = walls[0];
            let median = walls[walls.len() / 2];
            println!(
                "bench default-day: scenario {} ({:.1} h simulated), {} runs",
                sc.scenario.name,
                sc.duration_s() / 3600.0,
                walls.len()
            );
            println!("  wall: best {best:.3} s, median {median:.3} s");
            println!(
                "  events: {events} → {:.2} M events/s (best)",
                events as f64 / best / 1e6
            );
            println!(
                "  requests: {requests} → {:.2} M simulated requests/s (best)",
                requests as f64 / best / 1e6
            );
            if let Some(m) = peak_rss_mib() {
                println!("  peak RSS: {m:.1} MiB");
            }
            ExitCode::SUCCESS
        }
    }
}
