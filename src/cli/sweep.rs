//! `gpusched sweep SPEC`: capacity planning — the cheapest fleet meeting the SLOs at each traffic
//! growth level. `--shard i/N` runs one part (for many machines), `gpusched sweep merge DIR…`
//! joins the parts into what one machine would have written, and `--emit-k8s-job` writes the
//! Kubernetes Indexed Job that runs the parts on a cluster.

use super::bad_input;
use super::support::run_jobs_with_bar;
use gpusched_experiments::k8s::{dns_label, job_manifest, JobParams, MOUNT};
use gpusched_experiments::sweep::{merge, recommend, Shard, Slo, Sweep, SweepPart};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub cmd: Option<SweepCmd>,
    /// The sweep spec (TOML), e.g. scenarios/sweep-fleet.toml.
    #[arg(required = true)]
    pub spec: Option<PathBuf>,
    /// p99 SLO in ms (overrides the spec's `slo.max_p99_ms`).
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Failed-request SLO in % of arrivals (overrides the spec's `slo.max_failed_pct`).
    #[arg(long)]
    pub max_failed_pct: Option<f64>,
    /// Run only part i of N (points i, i+N, …); writes sweep-part-i-of-N.json.
    #[arg(long, value_name = "i/N")]
    pub shard: Option<Shard>,
    /// Output folder (default: out/sweep/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub no_plots: bool,
    /// Write a Kubernetes Indexed Job (JSON) that runs the sweep in --shards parts, and exit.
    #[arg(long, value_name = "FILE")]
    pub emit_k8s_job: Option<PathBuf>,
    /// Parts of the Job (completions).
    #[arg(long, default_value_t = 4)]
    pub shards: usize,
    /// Pods running at once (default: all).
    #[arg(long)]
    pub parallelism: Option<usize>,
    #[arg(long, default_value = "ghcr.io/gpusched/gpusched:latest")]
    pub image: String,
    /// PersistentVolumeClaim the parts are written to.
    #[arg(long, default_value = "gpusched-results")]
    pub pvc: String,
}

#[derive(clap::Subcommand)]
pub enum SweepCmd {
    /// Join sweep-part-*.json files from shard runs into the full result.
    Merge(MergeArgs),
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// Folders holding sweep-part-*.json files.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Output folder (default: the first folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    #[arg(long)]
    pub max_failed_pct: Option<f64>,
    #[arg(long)]
    pub no_plots: bool,
}

fn slo_with(base: &Slo, p99: Option<f64>, failed: Option<f64>) -> Slo {
    Slo {
        max_p99_ms: p99.or(base.max_p99_ms),
        max_failed_pct: failed.or(base.max_failed_pct),
        ..base.clone()
    }
}

/// The SLO flags: finite and >= 0 (NaN would make every fleet fail the SLO, silently).
fn check_slo_flags(p99: Option<f64>, failed: Option<f64>) -> Result<(), String> {
    for (flag, v) in [("--max-p99-ms", p99), ("--max-failed-pct", failed)] {
        if let Some(v) = v {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("{flag} {v}: must be a finite number >= 0"));
            }
        }
    }
    Ok(())
}

pub fn execute(a: &SweepArgs) -> ExitCode {
    if let Some(SweepCmd::Merge(m)) = &a.cmd {
        return execute_merge(m);
    }
    let Some(spec_path) = &a.spec else {
        return bad_input("give a sweep spec, e.g. scenarios/sweep-fleet.toml");
    };
    let sweep = match Sweep::load(spec_path) {
        Ok(s) => s,
        Err(e) => return bad_input(e),
    };
    if let Err(e) = check_slo_flags(a.max_p99_ms, a.max_failed_pct) {
        return bad_input(e);
    }
    let slo = slo_with(&sweep.spec.slo, a.max_p99_ms, a.max_failed_pct);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out/sweep").join(&sweep.spec.name));

    if let Some(file) = &a.emit_k8s_job {
        // An Indexed Job's completions are a 32-bit count, and a shard without points is a
        // pod that does nothing: at most one shard per point.
        if a.shards == 0 || a.shards > sweep.points.len() {
            return bad_input(format!(
                "--shards {}: must be 1..={} (the sweep's points)",
                a.shards,
                sweep.points.len()
            ));
        }
        if let Some(p) = a.parallelism {
            if p == 0 || p > a.shards {
                return bad_input(format!("--parallelism {p}: must be 1..={}", a.shards));
            }
        }
        let mut extra = Vec::new();
        if let Some(v) = a.max_p99_ms {
            extra.extend(["--max-p99-ms".to_string(), v.to_string()]);
        }
        if let Some(v) = a.max_failed_pct {
            extra.extend(["--max-failed-pct".to_string(), v.to_string()]);
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        let in_image = match gpusched_experiments::k8s::image_spec_path(spec_path, &cwd) {
            Ok(p) => p,
            Err(e) => return bad_input(e),
        };
        let params = JobParams {
            name: sweep.spec.name.clone(),
            image: a.image.clone(),
            spec_path: in_image,
            shards: a.shards,
            parallelism: a.parallelism.unwrap_or(a.shards),
            pvc: a.pvc.clone(),
            extra_args: extra,
        };
        let text = serde_json::to_string_pretty(&job_manifest(&params)).unwrap_or_default() + "\n";
        if let Err(e) = gpusched_reports::staged::write_file(file, text.as_bytes()) {
            return super::fail(e);
        }
        println!(
            "wrote {} ({} points in {} shards; needs {}). Then: kubectl apply -f {}; when it \
             completes, gpusched sweep merge {MOUNT}/{} (on the volume)",
            file.display(),
            sweep.points.len(),
            a.shards,
            gpusched_experiments::k8s::REQUIRES,
            file.display(),
            dns_label(&sweep.spec.name)
        );
        return ExitCode::SUCCESS;
    }

    // An unusable --out is refused before any run (the staging folder is opened again, and
    // filled, once the results are in).
    let out_ok = if a.shard.is_some() {
        gpusched_reports::staged::check_file_target(&out.join("sweep-part.json"))
    } else {
        gpusched_reports::staged::StagedDir::new(&out).map(drop)
    };
    if let Err(e) = out_ok {
        return super::fail(e);
    }
    // Validate every point's scenario before running any.
    let shard = a.shard.unwrap_or(Shard { index: 0, count: 1 });
    let points = sweep.shard(shard);
    let jobs = sweep.jobs(&points);
    if let Err(e) = gpusched_experiments::runner::prepare(&jobs) {
        // Name the spec: the point's overrides came from its axes.
        return bad_input(format!("{}: {e}", spec_path.display()));
    }
    eprintln!("{}", growth_line(&sweep));
    let started = Instant::now();
    let runs = match run_jobs_with_bar("sweep", &jobs) {
        Ok(r) => r,
        Err(e) => return super::fail(e),
    };
    let rows = sweep.rows(&points, &runs);
    tracing::info!(
        points = points.len(),
        seeds = sweep.spec.seeds.len(),
        wall_s = started.elapsed().as_secs_f64(),
        "sweep done"
    );
    if a.shard.is_some() {
        let part = SweepPart {
            name: sweep.spec.name.clone(),
            fingerprint: sweep.fingerprint.clone(),
            shard,
            points_total: sweep.points.len(),
            slo,
            rows,
        };
        // Shards share one folder: each part is one file, written whole (temp + rename).
        let path = out.join(part.file_name());
        let text = serde_json::to_string_pretty(&part).unwrap_or_default() + "\n";
        return match gpusched_reports::staged::write_file(&path, text.as_bytes()) {
            Ok(()) => {
                println!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => super::fail(e),
        };
    }
    let result = recommend(&sweep.spec.name, &sweep.fingerprint, &slo, rows);
    // The base scenario's assumptions (before the sweep's axes and growth), for report.html.
    let assumptions = sweep
        .scenario
        .load(&sweep.spec.sets)
        .map(|sc| gpusched_reports::html::assumptions_markdown(&sc))
        .unwrap_or_default();
    finish(&out, &result, &assumptions, !a.no_plots)
}

fn finish(
    out: &Path,
    result: &gpusched_experiments::sweep::SweepResult,
    assumptions_md: &str,
    plots: bool,
) -> ExitCode {
    let stage = match super::stage_out(out) {
        Ok(s) => s,
        Err(code) => return code,
    };
    // `sweep merge` writes into its first shard folder by default: keep the shard files.
    if let Err(e) =
        stage.keep_from_existing(|n| n.starts_with("sweep-part-") && n.ends_with(".json"))
    {
        return super::fail(e);
    }
    match gpusched_reports::compare::write_sweep(stage.path(), result, assumptions_md, plots) {
        Ok(files) => {
            if let Err(e) = stage.commit() {
                return super::fail(e);
            }
            for r in &result.recommendations {
                println!("{}", r.explain());
            }
            println!("wrote {} files to {}", files.len(), out.display());
            ExitCode::SUCCESS
        }
        Err(e) => super::write_failed(&stage, e),
    }
}

fn execute_merge(m: &MergeArgs) -> ExitCode {
    let mut parts = Vec::new();
    for dir in &m.dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return bad_input(format!("{}: {e}", dir.display())),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("sweep-part-") && n.ends_with(".json"))
            })
            .collect();
        files.sort();
        for f in files {
            let part: Result<SweepPart, String> = std::fs::read_to_string(&f)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()));
            match part {
                Ok(p) => parts.push(p),
                Err(e) => return bad_input(format!("{}: {e}", f.display())),
            }
        }
    }
    let (name, fingerprint, slo, rows) = match merge(&parts) {
        Ok(x) => x,
        Err(e) => return bad_input(e),
    };
    if let Err(e) = check_slo_flags(m.max_p99_ms, m.max_failed_pct) {
        return bad_input(e);
    }
    let slo = slo_with(&slo, m.max_p99_ms, m.max_failed_pct);
    let result = recommend(&name, &fingerprint, &slo, rows);
    let out = m.out.clone().unwrap_or_else(|| m.dirs[0].clone());
    // A merge has the shards' results, not their scenario: no assumptions section.
    finish(&out, &result, "", !m.no_plots)
}

/// Which settings grow with the traffic and which stay fixed, said before the runs.
fn growth_line(sweep: &Sweep) -> String {
    let grows = &sweep.spec.scale_with_traffic;
    let fixed: Vec<&str> = gpusched_experiments::sweep::Scalable::ALL
        .iter()
        .filter(|k| !grows.contains(k))
        .map(|k| k.key())
        .collect();
    format!(
        "growth {:?} sets `{}`; grows with it: {}; stays fixed: the axes ({}), services' {}",
        sweep.spec.growth,
        sweep.spec.growth_key,
        if grows.is_empty() {
            "nothing else".to_string()
        } else {
            grows
                .iter()
                .map(|k| format!("every service's {}", k.key()))
                .collect::<Vec<_>>()
                .join(", ")
        },
        sweep
            .spec
            .axes
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if fixed.is_empty() {
            "-".to_string()
        } else {
            fixed.join(", ")
        }
    )
}
