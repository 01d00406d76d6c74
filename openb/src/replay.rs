//! The `[openb_replay]` scenario kind of `gpusched run`: one openb pod list replayed over time
//! ([`super::dynamic`]) under several policies and seeds, beside the paper's static protocol on
//! the same pods, so that the report can say whether the static ranking holds when pods come
//! and go. This module loads the scenario, runs it in parallel and renders the summary, the
//! timeseries and the Markdown report as strings; the CLI writes them and draws the plots.

use super::csv_io::{read_nodes, read_timed_pods};
use super::dynamic::{percentile, replay, ReplayConfig, ReplayResult, ReplayTrace};
use super::error::{OpenbError, Result};
use super::protocol;
use gpusched_policies::openb::{GpuModels, OpenbPolicy};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Static gaps at or below this (pp) are noise across seeds: such pairs are not counted.
pub const ORDER_MARGIN_PP: f64 = 0.5;

/// The top-level key that marks a scenario file as an openb replay.
pub const KEY: &str = "openb_replay";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayFile {
    openb_replay: ReplaySpec,
}

/// The `[openb_replay]` table. Paths are relative to the scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySpec {
    /// Output folder name; defaults to the scenario file's stem.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub pod_list: PathBuf,
    pub node_list: PathBuf,
    #[serde(default = "all_policies")]
    pub policies: Vec<String>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub window_start_s: Option<u64>,
    #[serde(default)]
    pub window_end_s: Option<u64>,
    #[serde(default = "one")]
    pub speedup: f64,
    #[serde(default)]
    pub retry_delay_s: f64,
    #[serde(default)]
    pub retry_cap: usize,
    #[serde(default = "default_buckets")]
    pub buckets: usize,
    #[serde(default)]
    pub tail_s: f64,
    /// Also run the paper's static protocol on the same pods for the ranking to compare with.
    #[serde(default = "yes")]
    pub static_ranking: bool,
    /// The static protocol's top-up target (the paper's 1.3); its ranking is read at arrived 100 %.
    #[serde(default = "paper_tune")]
    pub static_tune: f64,
}

fn all_policies() -> Vec<String> {
    OpenbPolicy::ALL.iter().map(|p| p.label().into()).collect()
}
fn default_seeds() -> Vec<u64> {
    vec![42]
}
fn one() -> f64 {
    1.0
}
fn default_buckets() -> usize {
    100
}
fn yes() -> bool {
    true
}
fn paper_tune() -> f64 {
    super::runner::PAPER_TUNE
}

/// A loaded replay scenario: the spec, the file it came from, and resolved input paths.
#[derive(Debug, Clone)]
pub struct LoadedReplay {
    pub source: PathBuf,
    pub name: String,
    pub spec: ReplaySpec,
    pub pod_list: PathBuf,
    pub node_list: PathBuf,
    pub policies: Vec<OpenbPolicy>,
    pub config: ReplayConfig,
}

/// True when `path` is a TOML file with a top-level `[openb_replay]` table. Anything unreadable
/// is "no": the ordinary scenario loader then reports the problem.
pub fn is_replay_scenario(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key(KEY))
}

/// Applies `key=value` overrides (`speedup=300`, `openb_replay.seeds=[1,2]`) to the table.
fn apply_sets(table: &mut toml::Table, sets: &[String]) -> Result<()> {
    for s in sets {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| OpenbError::Invalid(format!("--set {s}: expected KEY=VALUE")))?;
        let k = k.trim();
        let k = k.strip_prefix("openb_replay.").unwrap_or(k);
        if k.is_empty() || k.contains('.') {
            return Err(OpenbError::Invalid(format!(
                "--set {s}: openb_replay keys are flat (e.g. speedup=300)"
            )));
        }
        // A TOML value when it parses as one, a bare string otherwise.
        let value = format!("v = {}", v.trim())
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(v.trim().to_string()));
        let inner = table
            .get_mut(KEY)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| OpenbError::Invalid(format!("no [{KEY}] table")))?;
        inner.insert(k.to_string(), value);
    }
    Ok(())
}

/// Loads and checks a replay scenario; `seed` replaces the seed list.
pub fn load_replay(path: &Path, sets: &[String], seed: Option<u64>) -> Result<LoadedReplay> {
    let data = |message: String| OpenbError::Data {
        path: path.into(),
        message,
    };
    let text = gpusched_sim::text::read_utf8(path)
        .map_err(|source| OpenbError::Io {
            path: path.into(),
            source,
        })?
        .map_err(data)?;
    let mut table: toml::Table = text.parse().map_err(|e| data(format!("{e}")))?;
    apply_sets(&mut table, sets).map_err(|e| data(e.to_string()))?;
    // Every number through the scenario's range rules (crate::numbers).
    let value = toml::Value::Table(table);
    gpusched_sim::numbers::check(&path.display().to_string(), &value).map_err(|e| match e {
        gpusched_sim::ScenarioError::Invalid { key, problem, .. } => {
            data(format!("{key}: {problem}"))
        }
        e => data(e.to_string()),
    })?;
    let toml::Value::Table(table) = value else {
        unreachable!("built from a table above")
    };
    let file: ReplayFile = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| data(format!("{e}")))?;
    let mut spec = file.openb_replay;
    if let Some(s) = seed {
        spec.seeds = vec![s];
    }
    if spec.seeds.is_empty() {
        return Err(data("[openb_replay] seeds: at least one seed".into()));
    }
    if spec.seeds.len() as u64 > gpusched_sim::limits::MAX_SEEDS {
        return Err(data(format!(
            "[openb_replay] seeds: {} seeds; the limit is {}",
            spec.seeds.len(),
            gpusched_sim::limits::MAX_SEEDS
        )));
    }
    let policies = spec
        .policies
        .iter()
        .map(|p| {
            OpenbPolicy::parse(p).ok_or_else(|| {
                data(format!(
                    "[openb_replay] policies: unknown policy `{p}` (one of {})",
                    all_policies().join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if policies.is_empty() {
        return Err(data("[openb_replay] policies: at least one policy".into()));
    }
    let config = ReplayConfig {
        window_start_s: spec.window_start_s,
        window_end_s: spec.window_end_s,
        speedup: spec.speedup,
        retry_delay_s: spec.retry_delay_s,
        retry_cap: spec.retry_cap,
        buckets: spec.buckets,
        tail_s: spec.tail_s,
    };
    config.validate().map_err(|e| data(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = spec.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map_or("openb-replay".into(), |s| s.to_string_lossy().into_owned())
    });
    Ok(LoadedReplay {
        source: path.into(),
        name,
        pod_list: dir.join(&spec.pod_list),
        node_list: dir.join(&spec.node_list),
        spec,
        policies,
        config,
    })
}

/// Seed-aggregated figures of one policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySummary {
    pub policy: String,
    pub mean_alloc_pct: f64,
    pub mean_frag_pct: f64,
    pub peak_alloc_pct: f64,
    pub mean_pending: f64,
    pub wait_s: WaitStats,
    /// Seed mean of the static protocol's allocation at arrived 100 %.
    pub static_alloc_pct_at_100: Option<f64>,
    pub static_rank: Option<usize>,
    pub dynamic_rank: usize,
    pub runs: Vec<RunCounts>,
}

/// Waiting time of placed pods (placed − arrived), pooled over seeds, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WaitStats {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Per-seed pod counts: `placed + never_placed == pods`, `departed <= placed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCounts {
    pub seed: u64,
    pub pods: usize,
    pub placed: usize,
    pub placed_after_retry: usize,
    pub never_placed: usize,
    pub abandoned: usize,
    pub pending_at_end: usize,
    pub departed: usize,
    pub peak_pending: usize,
    pub retry_cycles: u64,
    pub mean_alloc_pct: f64,
}

/// The whole `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplaySummary {
    pub scenario: String,
    pub pod_list: String,
    pub node_list: String,
    pub pods: usize,
    pub horizon_s: f64,
    pub seeds: Vec<u64>,
    pub config: ReplayConfig,
    pub static_tune: Option<f64>,
    pub policies: Vec<PolicySummary>,
    /// Best first, by the static protocol's allocation at arrived 100 %.
    pub static_ranking: Vec<String>,
    /// Best first, by time-weighted mean allocation, then fewer never placed, then shorter
    /// p95 wait.
    pub dynamic_ranking: Vec<String>,
    pub ranking_kept: Option<bool>,
    /// Policy pairs the static protocol separates by more than [`ORDER_MARGIN_PP`] that the
    /// replay orders the same way, of all such pairs.
    pub pairs_kept: Option<(usize, usize)>,
}

/// Everything a replay scenario produced.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    pub summary: ReplaySummary,
    pub results: Vec<ReplayResult>,
}

/// Runs every policy × seed of the scenario (and the static protocol when asked) in parallel.
pub fn run_replay(l: &LoadedReplay) -> Result<ReplayOutcome> {
    let mut models = GpuModels::default();
    let nodes = read_nodes(&l.node_list, &mut models)?;
    let pods = read_timed_pods(&l.pod_list, &models)?;
    let wname = l
        .pod_list
        .file_stem()
        .map_or("pods".into(), |s| s.to_string_lossy().into_owned());
    let trace = ReplayTrace::new(&wname, pods, &l.config)?;
    let tasks: Vec<(OpenbPolicy, u64)> = l
        .policies
        .iter()
        .flat_map(|&p| l.spec.seeds.iter().map(move |&s| (p, s)))
        .collect();
    let results = tasks
        .par_iter()
        .map(|&(p, s)| replay(&nodes, &trace, p, s, &l.config))
        .collect::<Result<Vec<_>>>()?;
    let statics: Option<Vec<(OpenbPolicy, f64)>> = l.spec.static_ranking.then(|| {
        tasks
            .par_iter()
            .map(|&(p, s)| {
                let r = protocol::run(&nodes, &trace.workload, p, s, l.spec.static_tune);
                (
                    p,
                    r.curves
                        .allo
                        .get(100)
                        .copied()
                        .flatten()
                        .unwrap_or(f64::NAN),
                )
            })
            .collect()
    });
    Ok(ReplayOutcome {
        summary: summarize(l, &trace, &results, statics.as_deref()),
        results,
    })
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

fn summarize(
    l: &LoadedReplay,
    trace: &ReplayTrace,
    results: &[ReplayResult],
    statics: Option<&[(OpenbPolicy, f64)]>,
) -> ReplaySummary {
    let mut policies: Vec<PolicySummary> = l
        .policies
        .iter()
        .map(|&p| {
            let runs: Vec<&ReplayResult> = results.iter().filter(|r| r.policy == p).collect();
            let mut waits: Vec<f64> = runs
                .iter()
                .flat_map(|r| r.waits_s.iter().copied())
                .collect();
            waits.sort_by(f64::total_cmp);
            PolicySummary {
                policy: p.label().into(),
                mean_alloc_pct: mean(runs.iter().map(|r| r.mean_alloc_pct)),
                mean_frag_pct: mean(runs.iter().map(|r| r.mean_frag_pct)),
                peak_alloc_pct: mean(runs.iter().map(|r| r.peak_alloc_pct)),
                mean_pending: mean(runs.iter().map(|r| r.mean_pending)),
                wait_s: WaitStats {
                    mean: if waits.is_empty() {
                        0.0
                    } else {
                        mean(waits.iter().copied())
                    },
                    p50: percentile(&waits, 50.0),
                    p95: percentile(&waits, 95.0),
                    p99: percentile(&waits, 99.0),
                    max: waits.last().copied().unwrap_or(0.0),
                },
                static_alloc_pct_at_100: statics
                    .map(|s| mean(s.iter().filter(|(q, _)| *q == p).map(|(_, v)| *v))),
                static_rank: None,
                dynamic_rank: 0,
                runs: runs
                    .iter()
                    .map(|r| RunCounts {
                        seed: r.seed,
                        pods: r.pods,
                        placed: r.placed,
                        placed_after_retry: r.placed_after_retry,
                        never_placed: r.never_placed,
                        abandoned: r.abandoned,
                        pending_at_end: r.pending_at_end,
                        departed: r.departed,
                        peak_pending: r.peak_pending,
                        retry_cycles: r.retry_cycles,
                        mean_alloc_pct: r.mean_alloc_pct,
                    })
                    .collect(),
            }
        })
        .collect();
    let never = |p: &PolicySummary| p.runs.iter().map(|r| r.never_placed).sum::<usize>();
    let mut dynamic: Vec<usize> = (0..policies.len()).collect();
    dynamic.sort_by(|&a, &b| {
        let (x, y) = (&policies[a], &policies[b]);
        y.mean_alloc_pct
            .total_cmp(&x.mean_alloc_pct)
            .then(never(x).cmp(&never(y)))
            .then(x.wait_s.p95.total_cmp(&y.wait_s.p95))
            .then(a.cmp(&b))
    });
    for (rank, &i) in dynamic.iter().enumerate() {
        policies[i].dynamic_rank = rank + 1;
    }
    let dynamic_ranking: Vec<String> = dynamic
        .iter()
        .map(|&i| policies[i].policy.clone())
        .collect();
    let mut static_ranking = Vec::new();
    let (mut ranking_kept, mut pairs_kept) = (None, None);
    if statics.is_some() {
        let mut order: Vec<usize> = (0..policies.len()).collect();
        let keys: Vec<f64> = policies
            .iter()
            .map(|p| p.static_alloc_pct_at_100.unwrap_or(f64::NAN))
            .collect();
        let key = |i: usize| keys[i];
        order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
        for (rank, &i) in order.iter().enumerate() {
            policies[i].static_rank = Some(rank + 1);
        }
        static_ranking = order.iter().map(|&i| policies[i].policy.clone()).collect();
        ranking_kept = Some(static_ranking == dynamic_ranking);
        let (mut kept, mut total) = (0, 0);
        for a in 0..policies.len() {
            for b in 0..policies.len() {
                if key(a) > key(b) + ORDER_MARGIN_PP {
                    total += 1;
                    if policies[a].mean_alloc_pct > policies[b].mean_alloc_pct {
                        kept += 1;
                    }
                }
            }
        }
        pairs_kept = Some((kept, total));
    }
    ReplaySummary {
        scenario: l.name.clone(),
        pod_list: l.spec.pod_list.display().to_string(),
        node_list: l.spec.node_list.display().to_string(),
        pods: trace.len(),
        horizon_s: trace.horizon as f64 / gpusched_sim::events::US_PER_S as f64,
        seeds: l.spec.seeds.clone(),
        config: l.config.clone(),
        static_tune: l.spec.static_ranking.then_some(l.spec.static_tune),
        policies,
        static_ranking,
        dynamic_ranking,
        ranking_kept,
        pairs_kept,
    }
}

impl ReplayOutcome {
    /// Per policy per bucket, seed means (pending_max: the largest over seeds).
    pub fn timeseries_csv(&self) -> String {
        let mut s = String::from(
            "policy,bucket,t_start_s,t_end_s,alloc_pct,frag_pct,pending_mean,pending_max\n",
        );
        let buckets = self.summary.config.buckets;
        let width = self.summary.horizon_s.max(1.0) / buckets as f64;
        for p in &self.summary.policies {
            let runs: Vec<&ReplayResult> = self
                .results
                .iter()
                .filter(|r| r.policy.label() == p.policy)
                .collect();
            for k in 0..buckets {
                let b = |f: fn(&super::dynamic::BucketStat) -> f64| {
                    mean(runs.iter().map(|r| f(&r.buckets[k])))
                };
                let _ = writeln!(
                    s,
                    "{},{},{:.3},{:.3},{:.4},{:.4},{:.4},{}",
                    p.policy,
                    k,
                    k as f64 * width,
                    (k + 1) as f64 * width,
                    b(|x| x.alloc_pct),
                    b(|x| x.frag_pct),
                    b(|x| x.pending_mean),
                    runs.iter()
                        .map(|r| r.buckets[k].pending_max)
                        .max()
                        .unwrap_or(0)
                );
            }
        }
        s
    }

    pub fn summary_json(&self) -> String {
        serde_json::to_string_pretty(&self.summary)
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The Markdown report; `figures` are file names to link.
    pub fn report_md(&self, figures: &[String]) -> String {
        let s = &self.summary;
        let c = &s.config;
        let mut m = String::new();
        let _ = writeln!(m, "# openb dynamic replay: {}\n", s.scenario);
        let _ =
            writeln!(
            m,
            "Pod list `{}` ({} pods) on node list `{}`, seeds {:?}. Arrivals at creation time, \
             departures at deletion time; speed-up {} (gaps between arrivals divided, lifetimes \
             kept), window {}..{} s, retry delay {} s, retry cap {}. Means are time-weighted \
             over the measured period: {:.0} s of simulated time, up to {} s past the last \
             arrival.\n",
            s.pod_list,
            s.pods,
            s.node_list,
            s.seeds,
            c.speedup,
            c.window_start_s.map_or("start".into(), |v| v.to_string()),
            c.window_end_s.map_or("end".into(), |v| v.to_string()),
            c.retry_delay_s,
            if c.retry_cap == 0 { "none".into() } else { c.retry_cap.to_string() },
            s.horizon_s,
            c.tail_s
        );
        let _ = writeln!(
            m,
            "| policy | static alloc @100 % (rank) | mean alloc % (rank) | mean frag % | peak alloc % | mean pending | placed | after retry | never placed | wait p50 / p95 / p99 s |"
        );
        let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|---|");
        let mut rows: Vec<&PolicySummary> = s.policies.iter().collect();
        rows.sort_by_key(|p| p.dynamic_rank);
        for p in rows {
            let sum = |f: fn(&RunCounts) -> usize| p.runs.iter().map(f).sum::<usize>();
            let stat = match (p.static_alloc_pct_at_100, p.static_rank) {
                (Some(v), Some(r)) => format!("{v:.2} ({r})"),
                _ => "–".into(),
            };
            let _ = writeln!(
                m,
                "| {} | {} | {:.2} ({}) | {:.2} | {:.2} | {:.1} | {} | {} | {} | {:.0} / {:.0} / {:.0} |",
                p.policy,
                stat,
                p.mean_alloc_pct,
                p.dynamic_rank,
                p.mean_frag_pct,
                p.peak_alloc_pct,
                p.mean_pending,
                sum(|r| r.placed),
                sum(|r| r.placed_after_retry),
                sum(|r| r.never_placed),
                p.wait_s.p50,
                p.wait_s.p95,
                p.wait_s.p99
            );
        }
        let _ = writeln!(m, "\nDynamic ranking: {}.", s.dynamic_ranking.join(" > "));
        if let (Some(kept), Some((k, n))) = (s.ranking_kept, s.pairs_kept) {
            let _ = writeln!(m, "Static ranking:  {}.", s.static_ranking.join(" > "));
            let _ = writeln!(
                m,
                "\nThe replay {} the static order exactly; {k} of {n} policy pairs that the static \
                 protocol separates by more than {ORDER_MARGIN_PP} pp keep their order.",
                if kept { "keeps" } else { "does not keep" }
            );
        }
        let never_short = s.policies.iter().all(|p| {
            p.runs
                .iter()
                .all(|r| r.peak_pending == 0 && r.never_placed == 0)
        });
        if never_short {
            let _ = writeln!(
                m,
                "\nNo pod ever waited under any policy: the cluster never ran short, so \
                 allocation is set by demand alone and the policies cannot differ on it. Raise \
                 `speedup` to load the cluster."
            );
        }
        if !figures.is_empty() {
            let _ = writeln!(m);
            for f in figures {
                let _ = writeln!(m, "![{f}]({f})");
            }
        }
        m
    }
}
