//! `gpusched trace synth`: synthetic traffic written as a gpusched trace CSV.

use crate::cli::{bad_input, fail};
use gpusched_sim::trace::servegen::{ServeGen, ServeGenSpec};
use gpusched_sim::trace::synth::{FitSpec, Generator, MmppSpec, MmppState, RampSpec, RateCurve};
use gpusched_sim::trace::{gpusched, TraceRequest};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct SynthArgs {
    /// poisson, diurnal, mmpp, ramp, fit (needs --from) or servegen (needs --from FOLDER).
    #[arg(long, value_enum)]
    pub kind: SynthKind,
    /// The output CSV (gpusched format).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 3600.0)]
    pub duration_s: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// poisson: the rate.
    #[arg(long, default_value_t = 10.0)]
    pub qps: f64,
    /// diurnal: multiplies the seeds' day.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// mmpp: states as QPS:MEAN_S pairs, e.g. 5:600,80:30.
    #[arg(long, default_value = "5:600,80:30")]
    pub states: String,
    /// ramp: from/to QPS over [ramp_start_s, ramp_end_s].
    #[arg(long, default_value_t = 1.0)]
    pub from_qps: f64,
    #[arg(long, default_value_t = 50.0)]
    pub to_qps: f64,
    #[arg(long, default_value_t = 0.0)]
    pub ramp_start_s: f64,
    #[arg(long)]
    pub ramp_end_s: Option<f64>,
    /// fit: the trace to fit; servegen: the folder.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// fit: the rate bin, s.
    #[arg(long, default_value_t = 3600.0)]
    pub bin_s: f64,
    /// fit / servegen: multiplies the rate.
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
}

/// `--kind`: the generator.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthKind {
    /// A constant rate (`--qps`).
    Poisson,
    /// The seeds' day times `--scale`.
    Diurnal,
    /// A Markov-modulated Poisson process (`--states`).
    Mmpp,
    /// A linear ramp (`--from-qps`, `--to-qps`, `--ramp-start-s`, `--ramp-end-s`).
    Ramp,
    /// A rate curve fitted to a trace (`--from TRACE`).
    Fit,
    /// Alibaba ServeGen client mixes (`--from FOLDER`).
    Servegen,
}

impl SynthKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Poisson => "poisson",
            Self::Diurnal => "diurnal",
            Self::Mmpp => "mmpp",
            Self::Ramp => "ramp",
            Self::Fit => "fit",
            Self::Servegen => "servegen",
        }
    }
}

pub fn execute(a: &SynthArgs) -> ExitCode {
    // The flags go through the rules of the scenario keys they stand for.
    use gpusched_sim::numbers::check_flag;
    let flags = [
        ("--duration-s", "duration_s", a.duration_s),
        ("--qps", "traffic.qps", a.qps),
        ("--scale", "traffic.scale", a.scale),
        ("--from-qps", "traffic.from_qps", a.from_qps),
        ("--to-qps", "traffic.to_qps", a.to_qps),
        ("--ramp-start-s", "traffic.start_s", a.ramp_start_s),
        (
            "--ramp-end-s",
            "traffic.end_s",
            a.ramp_end_s.unwrap_or(a.duration_s),
        ),
        ("--bin-s", "traffic.bin_s", a.bin_s),
        ("--rate-scale", "traffic.rate_scale", a.rate_scale),
    ];
    for (flag, key, v) in flags {
        if let Err(e) = check_flag(flag, key, v) {
            return bad_input(e);
        }
    }
    let peak = match a.kind {
        SynthKind::Poisson => a.qps,
        SynthKind::Diurnal => 300.0 * a.scale,
        SynthKind::Ramp => a.from_qps.max(a.to_qps),
        SynthKind::Mmpp | SynthKind::Fit | SynthKind::Servegen => 0.0,
    };
    if peak * a.duration_s > gpusched_sim::limits::MAX_REQUESTS {
        return bad_input(format!(
            "--duration-s {} at {peak} req/s is {:.3e} requests; the limit is {:e}",
            a.duration_s,
            peak * a.duration_s,
            gpusched_sim::limits::MAX_REQUESTS
        ));
    }
    let gen: Box<dyn Iterator<Item = TraceRequest>> = match a.kind {
        SynthKind::Poisson => Box::new(Generator::curve(
            RateCurve::Constant(a.qps),
            a.duration_s,
            a.seed,
            0,
        )),
        SynthKind::Diurnal => Box::new(Generator::curve(
            RateCurve::Daily {
                anchors: gpusched_sim::scenario::seeds_diurnal(),
                scale: a.scale,
            },
            a.duration_s,
            a.seed,
            0,
        )),
        SynthKind::Mmpp => {
            let mut states = Vec::new();
            for part in a.states.split(',') {
                let Some((q, m)) = part.split_once(':') else {
                    return bad_input(format!("--states: `{part}` is not QPS:MEAN_S"));
                };
                match (q.trim().parse(), m.trim().parse()) {
                    (Ok(qps), Ok(mean_s)) => states.push(MmppState { qps, mean_s }),
                    _ => return bad_input(format!("--states: `{part}` is not QPS:MEAN_S")),
                }
            }
            let spec = MmppSpec { states };
            if let Err((_, p)) = spec.check() {
                return bad_input(format!("--states: {p}"));
            }
            Box::new(Generator::mmpp(&spec, a.duration_s, a.seed, 0))
        }
        SynthKind::Ramp => {
            let spec = RampSpec {
                from_qps: a.from_qps,
                to_qps: a.to_qps,
                start_s: a.ramp_start_s,
                end_s: a.ramp_end_s.unwrap_or(a.duration_s),
            };
            if let Err((k, p)) = spec.check() {
                return bad_input(format!("ramp {k}: {p}"));
            }
            Box::new(Generator::curve(
                RateCurve::Ramp(spec),
                a.duration_s,
                a.seed,
                0,
            ))
        }
        SynthKind::Fit => {
            let Some(from) = &a.from else {
                return bad_input("--kind fit needs --from TRACE");
            };
            let spec = FitSpec {
                path: from.clone(),
                format: None,
                member: None,
                bin_s: a.bin_s,
                rate_scale: a.rate_scale,
            };
            if let Err((k, p)) = spec.check() {
                return bad_input(format!("--{}: {p}", k.replace('_', "-")));
            }
            match Generator::fit(&spec, from, a.duration_s, a.seed, 0) {
                Ok(g) => Box::new(g),
                Err(e) => return bad_input(e),
            }
        }
        SynthKind::Servegen => {
            let Some(from) = &a.from else {
                return bad_input("--kind servegen needs --from FOLDER");
            };
            let spec = ServeGenSpec {
                path: from.clone(),
                clients: None,
                rate_scale: a.rate_scale,
                assign: Default::default(),
            };
            match ServeGen::open(&spec, from, a.duration_s, a.seed, 0) {
                Ok(g) => Box::new(g),
                Err(e) => return bad_input(e),
            }
        }
    };
    // Written to a temporary sibling and renamed: a failure part-way leaves no cut-off trace.
    let mut n = 0u64;
    let res = gpusched_reports::staged::write_file_with(&a.out, |w| {
        writeln!(w, "{}", gpusched::HEADER)?;
        for r in gen {
            gpusched::write_row(w, &r)?;
            n += 1;
        }
        Ok(())
    });
    if let Err(e) = res {
        return fail(e);
    }
    println!(
        "wrote {n} requests ({} s, kind {}, seed {}) to {}",
        a.duration_s,
        a.kind.name(),
        a.seed,
        a.out.display()
    );
    ExitCode::SUCCESS
}
