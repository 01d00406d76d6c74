//! `gpusched fgd run`: pod lists × policies × seeds, the paper's tables and plots.

use gpusched_openb::tables::write_all;
use gpusched_openb::{
    run_experiment, Experiment, RunResult, PAPER_POD_LISTS, PAPER_SEEDS, PAPER_TUNE,
};
use gpusched_policies::openb::OpenbPolicy;
use gpusched_reports::fgd::{alloc_curves, bars, BarGroup, Series};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A scenario TOML (`[fgd]` table: pod_lists, policies, seeds, tune, node_list, traces_dir).
    /// Flags given on the command line override it.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    #[arg(long)]
    pub traces_dir: Option<PathBuf>,
    /// Comma-separated pod lists (file names without .csv; `default` is short for
    /// openb_pod_list_default). Default: the paper's 17.
    #[arg(long, value_delimiter = ',')]
    pub pod_lists: Vec<String>,
    /// Comma-separated policies (`FGD`, `06-FGD`, ...). Default: all six.
    #[arg(long, value_delimiter = ',')]
    pub policies: Vec<String>,
    /// Comma-separated seeds, or a range `42..51` (inclusive). Default: 42..51.
    #[arg(long)]
    pub seeds: Option<String>,
    #[arg(long)]
    pub tune: Option<f64>,
    #[arg(long, default_value = "fgd-results")]
    pub out: PathBuf,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Skip the SVG/PNG figures.
    #[arg(long)]
    pub no_plots: bool,
    /// Also compare with this reference folder after the run (exit 1 beyond tolerance).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    #[arg(long, default_value_t = 1.0)]
    pub tolerance_pp: f64,
}

const DEFAULT_TRACES: &str = "../shared/traces/alibaba-gpu-v2023-openb";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    fgd: ScenarioFgd,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFgd {
    traces_dir: Option<PathBuf>,
    node_list: Option<String>,
    pod_lists: Option<Vec<String>>,
    policies: Option<Vec<String>>,
    seeds: Option<Vec<u64>>,
    tune: Option<f64>,
}

fn pod_list_name(s: &str) -> String {
    let s = s.trim().trim_end_matches(".csv");
    if s.starts_with("openb_") {
        s.to_string()
    } else {
        format!("openb_pod_list_{s}")
    }
}

fn parse_seeds(s: &str) -> Result<Vec<u64>, String> {
    if let Some((a, b)) = s.split_once("..") {
        let a: u64 = a
            .trim()
            .parse()
            .map_err(|_| format!("bad seed range `{s}`"))?;
        let b: u64 = b
            .trim()
            .trim_start_matches('=')
            .parse()
            .map_err(|_| format!("bad seed range `{s}`"))?;
        if b < a {
            return Err(format!("empty seed range `{s}`"));
        }
        // Counted before collected: `0..=18446744073709551615` must not allocate.
        if b - a >= gpusched_sim::limits::MAX_SEEDS {
            return Err(format!(
                "seed range `{s}` has more than {} seeds",
                gpusched_sim::limits::MAX_SEEDS
            ));
        }
        return Ok((a..=b).collect());
    }
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<u64>()
                .map_err(|_| format!("bad seed `{x}`"))
        })
        .collect()
}

fn parse_policies(v: &[String]) -> Result<Vec<OpenbPolicy>, String> {
    v.iter()
        .map(|p| {
            OpenbPolicy::parse(p).ok_or_else(|| {
                format!(
                    "unknown policy `{p}` (one of {})",
                    OpenbPolicy::ALL.map(|p| p.short()).join(", ")
                )
            })
        })
        .collect()
}

/// The experiment from the scenario file (if any) and the flags.
fn experiment(a: &RunArgs) -> Result<Experiment, String> {
    let sc = match &a.scenario {
        Some(path) => {
            let text = gpusched_sim::text::read_utf8(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let sc = toml::from_str::<ScenarioFile>(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .fgd;
            // Every number through the one range check (gpusched_sim::numbers).
            if let Ok(v) = toml::from_str::<toml::Value>(&text) {
                gpusched_sim::numbers::check(&path.display().to_string(), &v)
                    .map_err(|e| e.to_string())?;
            }
            sc
        }
        None => ScenarioFgd::default(),
    };
    let traces = a
        .traces_dir
        .clone()
        .or(sc.traces_dir)
        .unwrap_or_else(|| DEFAULT_TRACES.into());
    let mut exp = Experiment::paper(traces);
    if let Some(n) = sc.node_list {
        exp.node_list = n;
    }
    if !a.pod_lists.is_empty() {
        exp.pod_lists = a.pod_lists.iter().map(|s| pod_list_name(s)).collect();
    } else if let Some(p) = sc.pod_lists {
        exp.pod_lists = p.iter().map(|s| pod_list_name(s)).collect();
    } else {
        exp.pod_lists = PAPER_POD_LISTS.iter().map(|s| s.to_string()).collect();
    }
    if !a.policies.is_empty() {
        exp.policies = parse_policies(&a.policies)?;
    } else if let Some(p) = sc.policies {
        exp.policies = parse_policies(&p)?;
    }
    exp.seeds = match (&a.seeds, sc.seeds) {
        (Some(s), _) => parse_seeds(s)?,
        (None, Some(s)) => s,
        (None, None) => PAPER_SEEDS.to_vec(),
    };
    exp.tune = a.tune.or(sc.tune).unwrap_or(PAPER_TUNE);
    if exp.runs() == 0 {
        return Err("nothing to run".into());
    }
    if !(exp.tune > 0.0 && exp.tune <= gpusched_sim::limits::MAX_TOP_UP) {
        return Err(format!(
            "--tune {}: the top-up target must be within 0 < x <= {} (pods after top-up = pods × tune)",
            exp.tune,
            gpusched_sim::limits::MAX_TOP_UP
        ));
    }
    if exp.seeds.len() as u64 > gpusched_sim::limits::MAX_SEEDS
        || exp.runs() as u64 > gpusched_sim::limits::MAX_RUNS
    {
        return Err(format!(
            "{} seeds, {} runs: the limits are {} seeds and {} runs",
            exp.seeds.len(),
            exp.runs(),
            gpusched_sim::limits::MAX_SEEDS,
            gpusched_sim::limits::MAX_RUNS
        ));
    }
    Ok(exp)
}

pub fn execute(a: &RunArgs) -> Result<ExitCode, String> {
    let exp = experiment(a)?;
    // The tables and plots appear whole or not at all (gpusched_reports::staged); an unusable
    // --out is refused before the runs.
    let stage = gpusched_reports::staged::StagedDir::new(&a.out).map_err(|e| e.to_string())?;
    let n = exp.runs();
    tracing::info!(
        pod_lists = exp.pod_lists.len(),
        policies = exp.policies.len(),
        seeds = exp.seeds.len(),
        runs = n,
        tune = exp.tune,
        "fgd run"
    );
    let started = Instant::now();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let progress = |r: &RunResult| {
        let k = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n <= 24 || k.is_multiple_of(50) || k == n {
            tracing::info!(
                done = k,
                runs = n,
                workload = %r.workload,
                policy = %r.policy,
                seed = r.seed,
                alloc_pct = r.final_alloc_pct,
                failed_pods = r.failed_pods,
                elapsed_s = started.elapsed().as_secs_f64(),
                "fgd run finished"
            );
        }
    };
    let results = run_experiment(&exp, a.jobs, &progress).map_err(|e| e.to_string())?;
    tracing::info!(
        runs = n,
        wall_s = started.elapsed().as_secs_f64(),
        "fgd runs done"
    );
    // A write that fails part-way is a failed run (exit 1), not bad input.
    let written = write_all(stage.path(), &results)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            if a.no_plots {
                Ok(())
            } else {
                plots(stage.path(), &results)
            }
        })
        .map_err(|e| stage.write_error(stage.path(), std::io::Error::other(e)))
        .and_then(|_| stage.commit());
    if let Err(e) = written {
        return Ok(crate::cli::fail(e));
    }
    tracing::info!(out = %a.out.display(), "fgd tables written");
    match &a.reference {
        Some(r) => super::compare::execute(r, &a.out, a.tolerance_pp, 0.5, None),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Seed means of a run's allocation curve, per (pod list, policy).
fn mean_curves(results: &[RunResult]) -> BTreeMap<(String, OpenbPolicy), Vec<(f64, f64)>> {
    let mut acc: BTreeMap<(String, OpenbPolicy), Vec<(f64, usize)>> = BTreeMap::new();
    for r in results {
        let e = acc
            .entry((r.workload.clone(), r.policy))
            .or_insert_with(|| vec![(0.0, 0); r.curves.allo.len()]);
        for (slot, v) in e.iter_mut().zip(&r.curves.allo) {
            if let Some(v) = v {
                slot.0 += v;
                slot.1 += 1;
            }
        }
    }
    acc.into_iter()
        .map(|(k, v)| {
            let pts = v
                .iter()
                .enumerate()
                .filter(|(_, (_, n))| *n > 0)
                .map(|(x, (s, n))| (x as f64, s / *n as f64))
                .collect();
            (k, pts)
        })
        .collect()
}

/// Fig. 9a per pod list, and Figs. 11–14-style bars of unallocated GPU at arrived 100 % per
/// pod-list family (cpu*, gpushare*, gpuspec*, multigpu*), under `<out>/plots`.
fn plots(out: &Path, results: &[RunResult]) -> Result<(), String> {
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let curves = mean_curves(results);
    let mut workloads: Vec<&String> = curves.keys().map(|k| &k.0).collect();
    workloads.dedup();
    let mut written = 0;
    for w in &workloads {
        let series: Vec<Series> = curves
            .iter()
            .filter(|((cw, _), _)| cw == *w)
            .map(|((_, p), pts)| Series {
                name: p.short().to_string(),
                points: pts.clone(),
            })
            .collect();
        let short = w.trim_start_matches("openb_pod_list_");
        written += alloc_curves(
            &dir.join(format!("alloc_{short}")),
            &format!("GPU allocation, {short}"),
            &series,
        )
        .map_err(|e| e.to_string())?
        .len();
    }
    for (family, title) in [
        ("cpu", "Non-GPU tasks (Fig. 14)"),
        ("gpushare", "GPU-sharing tasks (Fig. 11)"),
        ("gpuspec", "GPU-type constraints (Fig. 13)"),
        ("multigpu", "Multi-GPU tasks (Fig. 12)"),
    ] {
        let groups: Vec<BarGroup> = workloads
            .iter()
            .map(|w| w.trim_start_matches("openb_pod_list_"))
            .filter(|w| w.starts_with(family))
            .map(|short| BarGroup {
                label: short.to_string(),
                bars: curves
                    .iter()
                    .filter(|((cw, _), _)| cw.trim_start_matches("openb_pod_list_") == short)
                    .filter_map(|((_, p), pts)| {
                        pts.iter()
                            .find(|(x, _)| *x == 100.0)
                            .map(|(_, y)| (p.short().to_string(), 100.0 - y))
                    })
                    .collect(),
            })
            .collect();
        if groups.is_empty() {
            continue;
        }
        written += bars(
            &dir.join(format!("unallocated_{family}")),
            title,
            "Unallocated GPU at arrived 100 % (%)",
            &groups,
        )
        .map_err(|e| e.to_string())?
        .len();
    }
    tracing::info!(figures = written, out = %dir.display(), "fgd figures written");
    Ok(())
}
