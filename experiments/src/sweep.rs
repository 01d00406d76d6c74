//! Capacity-planning sweeps: fleet shapes (any scenario keys: node counts, GPUs per node,
//! sharing, policy) × traffic growth, each point run over a few seeds; the answer is, per growth
//! level, the cheapest fleet ($/hour including energy) whose mean p99 and failure rate meet the
//! SLOs. Points are numbered once from the spec, so a sweep splits into shards (`index mod N`)
//! and merges back into exactly the result of one machine.

use super::runner::{Job, RunRecord, ScenarioRef};
use super::stats::Estimate;
use super::ExperimentError;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A sweep spec file (TOML), e.g. scenarios/sweep-fleet.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The base scenario, relative to the spec's folder; the built-in default when absent.
    #[serde(default)]
    pub scenario: Option<PathBuf>,
    /// Overrides applied to every point (e.g. a shorter duration).
    #[serde(default)]
    pub sets: Vec<String>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub search: Search,
    /// Traffic multipliers: every fleet is run at each of them.
    #[serde(default = "default_growth")]
    pub growth: Vec<f64>,
    /// The scenario key the growth multiplier sets.
    #[serde(default = "default_growth_key")]
    pub growth_key: String,
    /// Per-service settings that grow with the traffic (each service's value × growth, rounded
    /// up); every other setting, the axes' included, stays as the fleet sets it.
    #[serde(default)]
    pub scale_with_traffic: Vec<Scalable>,
    pub axes: Vec<Axis>,
    #[serde(default)]
    pub slo: Slo,
}

/// A per-service setting a planner lets grow with the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scalable {
    MaxReplicas,
    MinReplicas,
    InitialReplicas,
    MaxQueue,
}

impl Scalable {
    pub const ALL: [Scalable; 4] = [
        Scalable::MaxReplicas,
        Scalable::MinReplicas,
        Scalable::InitialReplicas,
        Scalable::MaxQueue,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Scalable::MaxReplicas => "max_replicas",
            Scalable::MinReplicas => "min_replicas",
            Scalable::InitialReplicas => "initial_replicas",
            Scalable::MaxQueue => "max_queue",
        }
    }

    /// The service's current value.
    pub fn get(self, s: &gpusched_sim::scenario::ServiceSpec) -> u64 {
        match self {
            Scalable::MaxReplicas => s.max_replicas as u64,
            Scalable::MinReplicas => s.min_replicas as u64,
            Scalable::InitialReplicas => s.initial_replicas as u64,
            Scalable::MaxQueue => s.max_queue,
        }
    }
}

/// The `key=value` overrides that grow `grow` settings of every service of `sc` by `growth`
/// (rounded up, so a cap never shrinks below what the traffic's share needs).
pub fn growth_sets(
    sc: &gpusched_sim::scenario::Scenario,
    grow: &[Scalable],
    growth: f64,
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, svc) in sc.services.iter().enumerate() {
        for &k in grow {
            let v = (k.get(svc) as f64 * growth).ceil().max(1.0) as u64;
            out.push(format!("services.{i}.{}={v}", k.key()));
        }
    }
    out
}

fn default_seeds() -> Vec<u64> {
    vec![1, 2]
}
fn default_growth() -> Vec<f64> {
    vec![1.0]
}
fn default_growth_key() -> String {
    "traffic.scale".into()
}

/// Grid: every combination of axis levels. Random: `samples` distinct combinations drawn with
/// a seeded generator (the same every time and on every shard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Search {
    #[default]
    Grid,
    Random {
        samples: usize,
        seed: u64,
    },
}

/// One dimension of the fleet. Either `keys` + `values` (every key set to the value) or
/// `options`: named levels, each a list of `key=value` overrides (e.g. a sharing mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    pub name: String,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub values: Vec<toml::Value>,
    #[serde(default)]
    pub options: BTreeMap<String, Vec<String>>,
}

/// The service-level objectives a recommended fleet must meet (on the mean over seeds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    pub max_p99_ms: Option<f64>,
    pub max_failed_pct: Option<f64>,
    /// LLM objectives over every LLM service's requests (MLPerf style: TTFT and TPOT p99).
    #[serde(default)]
    pub max_ttft_p99_ms: Option<f64>,
    #[serde(default)]
    pub max_tpot_p99_ms: Option<f64>,
}

impl Slo {
    /// Whether a point meets every objective; `mean` reads a metric (mean over seeds).
    pub fn met(&self, mean: impl Fn(&str) -> f64) -> bool {
        self.max_p99_ms.is_none_or(|m| mean("p99_ms") <= m)
            && self.max_failed_pct.is_none_or(|m| mean("failed_pct") <= m)
            && self
                .max_ttft_p99_ms
                .is_none_or(|m| mean("ttft_p99_ms") <= m)
            && self
                .max_tpot_p99_ms
                .is_none_or(|m| mean("tpot_p99_ms") <= m)
    }
}

/// A level of an axis: its label and its overrides.
#[derive(Debug, Clone, PartialEq)]
struct Level {
    label: String,
    sets: Vec<String>,
}

impl Axis {
    fn levels(&self) -> Result<Vec<Level>, ExperimentError> {
        let bad = |why: String| ExperimentError::BadInput(format!("axis `{}`: {why}", self.name));
        match (self.values.is_empty(), self.options.is_empty()) {
            (false, true) => {
                if self.keys.is_empty() {
                    return Err(bad(
                        "`values` needs `keys` (the scenario keys they set)".into()
                    ));
                }
                Ok(self
                    .values
                    .iter()
                    .map(|v| {
                        let text = match v {
                            toml::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        Level {
                            sets: self.keys.iter().map(|k| format!("{k}={text}")).collect(),
                            label: text,
                        }
                    })
                    .collect())
            }
            (true, false) => Ok(self
                .options
                .iter()
                .map(|(label, sets)| Level {
                    label: label.clone(),
                    sets: sets.clone(),
                })
                .collect()),
            _ => Err(bad("give either `keys` and `values`, or `options`".into())),
        }
    }
}

/// One point of the sweep: a fleet at a growth level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub index: usize,
    /// Axis name → level label.
    pub fleet: BTreeMap<String, String>,
    pub growth: f64,
    pub sets: Vec<String>,
    /// Per-service settings multiplied by `growth` (on the value the point's sets give).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grows: Vec<Scalable>,
}

/// A loaded spec: where its scenario is, its points, and a fingerprint shards must share.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub spec: SweepSpec,
    pub scenario: ScenarioRef,
    pub points: Vec<Point>,
    pub fingerprint: String,
}

impl Sweep {
    pub fn load(path: &Path) -> Result<Sweep, ExperimentError> {
        let text = gpusched_sim::text::read_utf8(path)
            .map_err(|e| {
                ExperimentError::BadInput(format!(
                    "{}: cannot read the sweep spec: {e}",
                    path.display()
                ))
            })?
            .map_err(|e| ExperimentError::BadInput(format!("{}: {e}", path.display())))?;
        let spec: SweepSpec = toml::from_str(&text).map_err(|e| {
            ExperimentError::BadInput(format!("{}: {}", path.display(), e.to_string().trim_end()))
        })?;
        // Every number through the one range check (gpusched_sim::numbers), naming the spec's key.
        if let Ok(v) = toml::from_str::<toml::Value>(&text) {
            gpusched_sim::numbers::check(&path.display().to_string(), &v)
                .map_err(|e| ExperimentError::BadInput(e.to_string()))?;
        }
        let base = path.parent().unwrap_or(Path::new(""));
        // Every refusal names the spec file, not only the key.
        Sweep::from_spec(spec, base).map_err(|e| match e {
            ExperimentError::BadInput(m) => {
                ExperimentError::BadInput(format!("{}: {m}", path.display()))
            }
            e => e,
        })
    }

    pub fn from_spec(spec: SweepSpec, base_dir: &Path) -> Result<Sweep, ExperimentError> {
        if spec.seeds.is_empty() {
            return Err(ExperimentError::BadInput("sweep: `seeds` is empty".into()));
        }
        if spec.growth.is_empty() || spec.growth.iter().any(|g| !(*g > 0.0) || !g.is_finite()) {
            return Err(ExperimentError::BadInput(
                "sweep: `growth` must list positive multipliers".into(),
            ));
        }
        if spec.seeds.len() as u64 > gpusched_sim::limits::MAX_SEEDS {
            return Err(ExperimentError::BadInput(format!(
                "sweep: seeds: {} seeds; the limit is {}",
                spec.seeds.len(),
                gpusched_sim::limits::MAX_SEEDS
            )));
        }
        for (k, v) in [
            ("max_p99_ms", spec.slo.max_p99_ms),
            ("max_failed_pct", spec.slo.max_failed_pct),
            ("max_ttft_p99_ms", spec.slo.max_ttft_p99_ms),
            ("max_tpot_p99_ms", spec.slo.max_tpot_p99_ms),
        ] {
            if let Some(v) = v {
                if !(v >= 0.0 && v.is_finite()) {
                    return Err(ExperimentError::BadInput(format!(
                        "sweep: slo.{k}: {v} must be a finite number >= 0"
                    )));
                }
            }
        }
        for (i, k) in spec.scale_with_traffic.iter().enumerate() {
            if spec.scale_with_traffic[..i].contains(k) {
                return Err(ExperimentError::BadInput(format!(
                    "sweep: scale_with_traffic[{i}]: `{}` is listed twice (allowed: {})",
                    k.key(),
                    Scalable::ALL.map(Scalable::key).join(", ")
                )));
            }
        }
        if spec.growth.iter().any(|g| *g > 1e6) {
            return Err(ExperimentError::BadInput(
                "sweep: growth: multipliers above 1e6 would exceed the rate limit".into(),
            ));
        }
        let scenario = match &spec.scenario {
            None => ScenarioRef::Default,
            Some(p) if p.is_absolute() => ScenarioRef::File(p.clone()),
            Some(p) => ScenarioRef::File(base_dir.join(p)),
        };
        let levels: Vec<Vec<Level>> = spec
            .axes
            .iter()
            .map(Axis::levels)
            .collect::<Result<_, _>>()?;
        if levels.iter().any(Vec::is_empty) {
            return Err(ExperimentError::BadInput(
                "sweep: an axis has no levels".into(),
            ));
        }
        // Count the runs before listing them: a grid of many long axes must be refused, not
        // allocated (or overflow the product).
        let fleets_n = match spec.search {
            Search::Grid => levels
                .iter()
                .try_fold(1u64, |a, l| a.checked_mul(l.len() as u64)),
            Search::Random { samples, .. } => Some(samples as u64),
        };
        let runs = fleets_n
            .and_then(|n| n.checked_mul(spec.growth.len() as u64))
            .and_then(|n| n.checked_mul(spec.seeds.len() as u64));
        match runs {
            Some(n) if n <= gpusched_sim::limits::MAX_RUNS => {}
            _ => {
                return Err(ExperimentError::BadInput(format!(
                    "sweep: axes × growth × seeds is {} runs; the limit is {}",
                    runs.map_or("more than 2^64".to_string(), |n| n.to_string()),
                    gpusched_sim::limits::MAX_RUNS
                )))
            }
        }
        let combos = fleets(&levels, &spec.search)?;
        let mut points = Vec::new();
        for combo in &combos {
            for &g in &spec.growth {
                let mut sets = spec.sets.clone();
                let mut fleet = BTreeMap::new();
                for (ai, (axis, &li)) in spec.axes.iter().zip(combo).enumerate() {
                    let level = &levels[ai][li];
                    fleet.insert(axis.name.clone(), level.label.clone());
                    sets.extend(level.sets.iter().cloned());
                }
                sets.push(format!("{}={g}", spec.growth_key));
                points.push(Point {
                    index: points.len(),
                    fleet,
                    growth: g,
                    sets,
                    grows: spec.scale_with_traffic.clone(),
                });
            }
        }
        let fingerprint = fingerprint(&spec, &scenario, &points);
        Ok(Sweep {
            spec,
            scenario,
            points,
            fingerprint,
        })
    }

    /// The points of shard `i` of `n`: every n-th, starting at i.
    pub fn shard(&self, shard: Shard) -> Vec<&Point> {
        self.points
            .iter()
            .filter(|p| p.index % shard.count == shard.index)
            .collect()
    }

    /// The jobs for some points: each point over every seed.
    pub fn jobs(&self, points: &[&Point]) -> Vec<Job> {
        points
            .iter()
            .flat_map(|p| {
                self.spec.seeds.iter().map(move |&seed| Job {
                    scenario: self.scenario.clone(),
                    scenario_label: self.spec.name.clone(),
                    variant: format!("point-{}", p.index),
                    sets: p.sets.clone(),
                    seed,
                    grow: (!p.grows.is_empty()).then(|| (p.growth, p.grows.clone())),
                })
            })
            .collect()
    }

    /// Rows from the runs of some points (runs in `jobs` order).
    pub fn rows(&self, points: &[&Point], runs: &[RunRecord]) -> Vec<Row> {
        points
            .iter()
            .map(|p| {
                let name = format!("point-{}", p.index);
                let mine: Vec<&RunRecord> = runs.iter().filter(|r| r.variant == name).collect();
                let mut metrics = BTreeMap::new();
                for m in super::metric::METRICS {
                    let xs: Vec<f64> = mine
                        .iter()
                        .filter_map(|r| r.metrics.get(m.name).copied())
                        .collect();
                    if let Some(e) = Estimate::from_values(&xs) {
                        metrics.insert(m.name.to_string(), e);
                    }
                }
                Row {
                    point: (*p).clone(),
                    metrics,
                    binding: common_binding(&mine),
                }
            })
            .collect()
    }
}

/// The primary finding most runs share (by kind and subject); ties go to the larger mean
/// share, then the first run's.
fn common_binding(runs: &[&RunRecord]) -> Option<gpusched_sim::diagnosis::Finding> {
    let mut by: BTreeMap<(gpusched_sim::diagnosis::ConstraintKind, String), (usize, f64, usize)> =
        BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        if let Some(b) = &r.binding {
            let e = by.entry((b.kind, b.subject.clone())).or_insert((0, 0.0, i));
            e.0 += 1;
            e.1 += b.share;
        }
    }
    let (_, &(n, sum, first)) = by.iter().max_by(|a, b| {
        (a.1 .0)
            .cmp(&b.1 .0)
            .then((a.1 .1).total_cmp(&b.1 .1))
            .then((b.1 .2).cmp(&a.1 .2))
    })?;
    let mut f = runs[first].binding.clone()?;
    f.share = sum / n as f64;
    Some(f)
}

/// The fleet combinations (one level index per axis), in a fixed order.
fn fleets(levels: &[Vec<Level>], search: &Search) -> Result<Vec<Vec<usize>>, ExperimentError> {
    let total: usize = levels
        .iter()
        .try_fold(1usize, |a, l| a.checked_mul(l.len()))
        .ok_or_else(|| {
            ExperimentError::BadInput("sweep: the grid has more than 2^64 fleets".into())
        })?;
    let decode = |mut k: usize| -> Vec<usize> {
        // Last axis fastest, like nested loops written in axis order.
        let mut idx = vec![0; levels.len()];
        for (i, l) in levels.iter().enumerate().rev() {
            idx[i] = k % l.len();
            k /= l.len();
        }
        idx
    };
    match search {
        Search::Grid => Ok((0..total).map(decode).collect()),
        Search::Random { samples, seed } => {
            if *samples == 0 {
                return Err(ExperimentError::BadInput(
                    "sweep: random search needs samples ≥ 1".into(),
                ));
            }
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(*seed);
            let want = (*samples).min(total);
            let mut picked: Vec<usize> = Vec::with_capacity(want);
            // A set for the membership test: `picked.contains` was quadratic in `samples`.
            let mut seen = std::collections::HashSet::with_capacity(want);
            while picked.len() < want {
                let k = rng.random_range(0..total);
                if seen.insert(k) {
                    picked.push(k);
                }
            }
            Ok(picked.into_iter().map(decode).collect())
        }
    }
}

/// FNV-1a over the canonical JSON of what determines the results: shards from different specs
/// refuse to merge.
fn fingerprint(spec: &SweepSpec, scenario: &ScenarioRef, points: &[Point]) -> String {
    let canon = serde_json::to_string(&(&spec.seeds, scenario, points)).unwrap_or_default();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in canon.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// `--shard i/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: expected i/N, e.g. 0/4"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: `{i}` is not a shard index"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: `{n}` is not a shard count"))?;
        if count == 0 || index >= count {
            return Err(format!("`{s}`: need 0 ≤ i < N"));
        }
        Ok(Shard { index, count })
    }
}

/// One point's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub point: Point,
    pub metrics: BTreeMap<String, Estimate>,
    /// What bound the point most: the primary finding most of its seeds share.
    #[serde(default)]
    pub binding: Option<gpusched_sim::diagnosis::Finding>,
}

impl Row {
    fn mean(&self, m: &str) -> f64 {
        self.metrics.get(m).map_or(f64::NAN, |e| e.mean)
    }
    pub fn usd_per_hour(&self) -> f64 {
        self.mean("usd_per_hour")
    }
    pub fn p99_ms(&self) -> f64 {
        self.mean("p99_ms")
    }
    pub fn failed_pct(&self) -> f64 {
        self.mean("failed_pct")
    }
}

/// What one shard writes: its rows and enough to check that the parts belong together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPart {
    pub name: String,
    pub fingerprint: String,
    pub shard: Shard,
    pub points_total: usize,
    /// The SLOs the shard was run with (a merge uses them unless told otherwise).
    pub slo: Slo,
    pub rows: Vec<Row>,
}

impl SweepPart {
    pub fn file_name(&self) -> String {
        format!(
            "sweep-part-{}-of-{}.json",
            self.shard.index, self.shard.count
        )
    }
}

/// Joins shard parts; every shard of one sweep must be there exactly once.
pub fn merge(parts: &[SweepPart]) -> Result<(String, String, Slo, Vec<Row>), ExperimentError> {
    let bad = |m: String| ExperimentError::BadInput(format!("sweep merge: {m}"));
    let first = parts
        .first()
        .ok_or_else(|| bad("no sweep-part-*.json files found".into()))?;
    let count = first.shard.count;
    let mut seen = vec![false; count];
    for p in parts {
        if p.fingerprint != first.fingerprint || p.name != first.name {
            return Err(bad(format!(
                "{} comes from another sweep (spec fingerprint {} vs {})",
                p.file_name(),
                p.fingerprint,
                first.fingerprint
            )));
        }
        if p.shard.count != count {
            return Err(bad(format!(
                "{} is one of {} shards, others of {count}",
                p.file_name(),
                p.shard.count
            )));
        }
        if std::mem::replace(&mut seen[p.shard.index], true) {
            return Err(bad(format!(
                "shard {}/{count} appears twice",
                p.shard.index
            )));
        }
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| !**s)
        .map(|(i, _)| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!("missing shard(s) {}", missing.join(", "))));
    }
    let mut rows: Vec<Row> = parts.iter().flat_map(|p| p.rows.iter().cloned()).collect();
    rows.sort_by_key(|r| r.point.index);
    if rows.len() != first.points_total || rows.iter().enumerate().any(|(i, r)| r.point.index != i)
    {
        return Err(bad(format!(
            "the parts hold {} of {} points",
            rows.len(),
            first.points_total
        )));
    }
    Ok((
        first.name.clone(),
        first.fingerprint.clone(),
        first.slo.clone(),
        rows,
    ))
}

/// How far one SLO metric is from its limit at a point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headroom {
    pub metric: String,
    pub value: f64,
    pub limit: f64,
    /// (limit − value) / limit × 100: positive is room to spare, negative a miss by that much.
    pub margin_pct: f64,
}

/// The fleet that came closest when none met the SLOs, what bound it and what to change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NearestMiss {
    pub point: usize,
    pub fleet: BTreeMap<String, String>,
    pub usd_per_hour: f64,
    /// Every SLO metric against its limit (the misses have a negative margin).
    pub slo: Vec<Headroom>,
    /// What bound it most (the most frequent primary finding over its seeds).
    pub binding: Option<gpusched_sim::diagnosis::Finding>,
    /// What to change, most direct first.
    pub change: Vec<String>,
}

/// The cheapest SLO-meeting fleet at one growth level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub growth: f64,
    /// The recommended point's index, or None when no fleet met the SLOs.
    pub point: Option<usize>,
    pub fleet: BTreeMap<String, String>,
    pub usd_per_hour: Option<f64>,
    pub p99_ms: Option<f64>,
    pub failed_pct: Option<f64>,
    pub feasible_points: usize,
    /// Points on the cost–p99 Pareto front at this growth (cheaper or faster than all others).
    pub pareto: Vec<usize>,
    /// The recommended fleet's distance from each SLO limit.
    #[serde(default)]
    pub headroom: Vec<Headroom>,
    /// What binds the recommended fleet (the first constraint more traffic would meet).
    #[serde(default)]
    pub binding: Option<gpusched_sim::diagnosis::Finding>,
    /// When no fleet met the SLOs.
    #[serde(default)]
    pub nearest_miss: Option<NearestMiss>,
}

/// The whole sweep's answer; serialised as sweep.json (identical from one machine or merged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    pub name: String,
    pub fingerprint: String,
    pub slo: Slo,
    pub rows: Vec<Row>,
    pub recommendations: Vec<Recommendation>,
}

impl Slo {
    /// Each objective set: (metric name, limit).
    pub fn limits(&self) -> Vec<(&'static str, f64)> {
        [
            ("p99_ms", self.max_p99_ms),
            ("failed_pct", self.max_failed_pct),
            ("ttft_p99_ms", self.max_ttft_p99_ms),
            ("tpot_p99_ms", self.max_tpot_p99_ms),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    fn headroom(&self, r: &Row) -> Vec<Headroom> {
        self.limits()
            .into_iter()
            .map(|(k, limit)| {
                let value = r.mean(k);
                let margin_pct = if limit > 0.0 {
                    (limit - value) / limit * 100.0
                } else if value <= 0.0 {
                    0.0
                } else {
                    -100.0 * value
                };
                Headroom {
                    metric: k.to_string(),
                    value,
                    limit,
                    margin_pct,
                }
            })
            .collect()
    }
}

/// The worst SLO margin of a point (most negative first): how far it is from meeting them all.
fn worst_margin(h: &[Headroom]) -> f64 {
    h.iter()
        .map(|x| {
            if x.margin_pct.is_nan() {
                f64::NEG_INFINITY
            } else {
                x.margin_pct
            }
        })
        .fold(f64::INFINITY, f64::min)
}

/// The highest level of each numeric axis over the rows (to say "extend the axis").
fn axis_tops(rows: &[Row]) -> BTreeMap<String, f64> {
    let mut tops: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows {
        for (k, v) in &r.point.fleet {
            if let Ok(x) = v.parse::<f64>() {
                let e = tops.entry(k.clone()).or_insert(f64::NEG_INFINITY);
                *e = e.max(x);
            }
        }
    }
    tops
}

/// What to change at a missed point, from what bound it and where it sits in the axes.
fn advice(row: &Row, rows: &[Row], grows: &[Scalable]) -> Vec<String> {
    use gpusched_sim::diagnosis::ConstraintKind as K;
    let mut out = Vec::new();
    let tops = axis_tops(rows);
    let at_top: Vec<String> = row
        .point
        .fleet
        .iter()
        .filter(|(k, v)| v.parse::<f64>().ok() == tops.get(*k).copied())
        .map(|(k, v)| format!("extend axis `{k}` past {v}"))
        .collect();
    let alternatives: Vec<String> = row
        .point
        .fleet
        .iter()
        .filter(|(k, v)| v.parse::<f64>().is_err() && !k.is_empty() && !v.is_empty())
        .map(|(k, v)| format!("axis `{k}`: try a level other than `{v}`"))
        .collect();
    match &row.binding {
        Some(b) => {
            match b.kind {
                K::ReplicaCap if !grows.contains(&Scalable::MaxReplicas) => out.push(format!(
                    "{} is at its replica cap: raise its max_replicas, or add scale_with_traffic = [\"max_replicas\"] to the spec",
                    b.subject
                )),
                K::ReplicaCap => out.push(format!(
                    "{} is at its replica cap even grown with the traffic: raise its max_replicas in the scenario",
                    b.subject
                )),
                K::GpusExhausted | K::NoNode => out.extend(at_top.clone()),
                K::SharingNoFallback => out.extend(alternatives.clone()),
                _ => {}
            }
            out.push(b.change.clone());
        }
        None => {
            out.extend(at_top);
            out.extend(alternatives);
        }
    }
    out.dedup();
    out
}

/// Recommends, per growth level (in first-seen order), the cheapest fleet meeting `slo`; ties go
/// to the lower p99, then the lower index. Without one, the nearest miss (smallest worst SLO
/// excess, then the cheaper) with what bound it and what to change.
pub fn recommend(name: &str, fingerprint: &str, slo: &Slo, rows: Vec<Row>) -> SweepResult {
    let mut growths: Vec<f64> = Vec::new();
    for r in &rows {
        if !growths.contains(&r.point.growth) {
            growths.push(r.point.growth);
        }
    }
    let grows: Vec<Scalable> = rows
        .first()
        .map(|r| r.point.grows.clone())
        .unwrap_or_default();
    let recommendations = growths
        .iter()
        .map(|&g| {
            let at: Vec<&Row> = rows.iter().filter(|r| r.point.growth == g).collect();
            let feasible: Vec<&&Row> = at.iter().filter(|r| slo.met(|k| r.mean(k))).collect();
            let best = feasible.iter().min_by(|a, b| {
                a.usd_per_hour()
                    .total_cmp(&b.usd_per_hour())
                    .then(a.p99_ms().total_cmp(&b.p99_ms()))
                    .then(a.point.index.cmp(&b.point.index))
            });
            let pareto = at
                .iter()
                .filter(|r| {
                    !at.iter().any(|o| {
                        o.usd_per_hour() <= r.usd_per_hour()
                            && o.p99_ms() <= r.p99_ms()
                            && (o.usd_per_hour() < r.usd_per_hour() || o.p99_ms() < r.p99_ms())
                    })
                })
                .map(|r| r.point.index)
                .collect();
            let nearest_miss = if best.is_none() {
                at.iter()
                    .map(|r| (r, slo.headroom(r)))
                    .max_by(|(a, ha), (b, hb)| {
                        worst_margin(ha)
                            .total_cmp(&worst_margin(hb))
                            .then(b.usd_per_hour().total_cmp(&a.usd_per_hour()))
                            .then(b.point.index.cmp(&a.point.index))
                    })
                    .map(|(r, h)| NearestMiss {
                        point: r.point.index,
                        fleet: r.point.fleet.clone(),
                        usd_per_hour: r.usd_per_hour(),
                        slo: h,
                        binding: r.binding.clone(),
                        change: advice(r, &rows, &grows),
                    })
            } else {
                None
            };
            Recommendation {
                growth: g,
                point: best.map(|r| r.point.index),
                fleet: best.map(|r| r.point.fleet.clone()).unwrap_or_default(),
                usd_per_hour: best.map(|r| r.usd_per_hour()),
                p99_ms: best.map(|r| r.p99_ms()),
                failed_pct: best.map(|r| r.failed_pct()),
                feasible_points: feasible.len(),
                pareto,
                headroom: best.map(|r| slo.headroom(r)).unwrap_or_default(),
                binding: best.and_then(|r| r.binding.clone()),
                nearest_miss,
            }
        })
        .collect();
    SweepResult {
        name: name.to_string(),
        fingerprint: fingerprint.to_string(),
        slo: slo.clone(),
        rows,
        recommendations,
    }
}

fn fleet_text(f: &BTreeMap<String, String>) -> String {
    f.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn headroom_text(h: &[Headroom]) -> String {
    h.iter()
        .map(|x| {
            let d = super::metric::find(&x.metric).map_or(1, |m| m.decimals);
            format!(
                "{} {:.d$} vs {} ({:+.0} %)",
                x.metric, x.value, x.limit, x.margin_pct
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Recommendation {
    /// The plain-language answer for this growth level (the CLI prints it; sweep.md has it).
    pub fn explain(&self) -> String {
        match (self.point, &self.nearest_miss) {
            (Some(i), _) => format!(
                "traffic ×{}: cheapest fleet meeting the SLOs is point {i}: {} — ${:.2}/h; headroom: {}{}",
                self.growth,
                fleet_text(&self.fleet),
                self.usd_per_hour.unwrap_or(f64::NAN),
                headroom_text(&self.headroom),
                self.binding
                    .as_ref()
                    .map_or(String::new(), |b| format!("; binds first: {}", b.line()))
            ),
            (None, Some(m)) => format!(
                "traffic ×{}: no fleet in the sweep meets the SLOs. Nearest miss: point {}: {} — ${:.2}/h; {}. Binding: {}. Change: {}",
                self.growth,
                m.point,
                fleet_text(&m.fleet),
                m.usd_per_hour,
                headroom_text(&m.slo),
                m.binding.as_ref().map_or("none measured".to_string(), |b| b.what()),
                if m.change.is_empty() { "–".to_string() } else { m.change.join("; ") }
            ),
            (None, None) => format!("traffic ×{}: no points", self.growth),
        }
    }
}

impl SweepResult {
    fn axes(&self) -> Vec<String> {
        self.rows
            .first()
            .map(|r| r.point.fleet.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// What grows with the traffic and what stays fixed, in one sentence.
    pub fn growth_semantics(&self) -> String {
        let grows: Vec<Scalable> = self
            .rows
            .first()
            .map(|r| r.point.grows.clone())
            .unwrap_or_default();
        let grown = if grows.is_empty() {
            "nothing else".to_string()
        } else {
            grows
                .iter()
                .map(|k| format!("every service's `{}`", k.key()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let fixed: Vec<String> = Scalable::ALL
            .iter()
            .filter(|k| !grows.contains(k))
            .map(|k| format!("`{}`", k.key()))
            .collect();
        format!(
            "Growing the traffic grows {grown} (× growth, rounded up); the fleet axes ({}){} and every other setting stay fixed.",
            self.axes().join(", "),
            if fixed.is_empty() {
                String::new()
            } else {
                format!(", services' {}", fixed.join(", "))
            }
        )
    }

    /// The metrics the sweep shows (the registry's `show.sweep`), those some row has.
    fn shown(&self) -> Vec<&'static super::MetricDef> {
        super::metric::shown(|s| s.sweep)
            .filter(|m| self.rows.iter().any(|r| r.metrics.contains_key(m.name)))
            .collect()
    }

    /// One line per point: the fleet, growth, the registry's sweep metrics (mean and 95 % CI),
    /// whether it meets the SLOs and what bound it.
    pub fn to_csv(&self) -> String {
        let axes = self.axes();
        let shown = self.shown();
        let mut out = format!("point,{},growth", axes.join(","));
        for m in &shown {
            out.push_str(&format!(",{0},{0}_ci95", m.name));
        }
        out.push_str(",meets_slo,binding\n");
        for r in &self.rows {
            let fleet: Vec<String> = axes
                .iter()
                .map(|a| r.point.fleet.get(a).cloned().unwrap_or_default())
                .collect();
            out.push_str(&format!(
                "{},{},{}",
                r.point.index,
                fleet.join(","),
                r.point.growth
            ));
            for m in &shown {
                let e = r.metrics.get(m.name);
                let d = m.decimals + 2;
                out.push_str(&format!(
                    ",{:.d$},{:.d$}",
                    e.map_or(f64::NAN, |e| e.mean),
                    e.map_or(f64::NAN, |e| e.ci95)
                ));
            }
            out.push_str(&format!(
                ",{},{}\n",
                self.slo.met(|k| r.mean(k)),
                r.binding
                    .as_ref()
                    .map_or(String::new(), |b| format!("{:?}:{}", b.kind, b.subject)
                        .to_lowercase())
            ));
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let axes = self.axes();
        let shown = self.shown();
        let mut slo = format!(
            "p99 ≤ {} ms, failures ≤ {} %",
            self.slo.max_p99_ms.map_or("∞".into(), |v| v.to_string()),
            self.slo
                .max_failed_pct
                .map_or("∞".into(), |v| v.to_string())
        );
        if let Some(v) = self.slo.max_ttft_p99_ms {
            slo.push_str(&format!(", TTFT p99 ≤ {v} ms"));
        }
        if let Some(v) = self.slo.max_tpot_p99_ms {
            slo.push_str(&format!(", TPOT p99 ≤ {v} ms"));
        }
        let mut out = format!(
            "# Sweep `{}`\n\nSLOs (mean over seeds): {slo}.\n\n{}\n\n## Recommended fleets\n\n| growth | fleet | $/hour | p99 (ms) | failed % | headroom | feasible points |\n|---:|---|---:|---:|---:|---|---:|\n",
            self.name,
            self.growth_semantics()
        );
        for rec in &self.recommendations {
            let fleet = if rec.point.is_some() {
                fleet_text(&rec.fleet)
            } else {
                "**none meets the SLOs**".into()
            };
            let f = |v: Option<f64>, d: usize| v.map_or("–".into(), |v| format!("{v:.d$}"));
            out.push_str(&format!(
                "| ×{} | {} | {} | {} | {} | {} | {} |\n",
                rec.growth,
                fleet,
                f(rec.usd_per_hour, 2),
                f(rec.p99_ms, 1),
                f(rec.failed_pct, 3),
                if rec.headroom.is_empty() {
                    "–".to_string()
                } else {
                    headroom_text(&rec.headroom)
                },
                rec.feasible_points
            ));
        }
        out.push_str("\n## Why\n\n");
        for rec in &self.recommendations {
            out.push_str(&format!("- {}\n", rec.explain()));
        }
        out.push_str(&format!(
            "\n## All points\n\n| point | {} | growth |",
            axes.join(" | ")
        ));
        for m in &shown {
            out.push_str(&format!(" {} ({}) |", m.name, m.unit));
        }
        out.push_str(" meets SLOs | binding constraint |\n|---:|");
        out.push_str(&"---|".repeat(axes.len()));
        out.push_str("---:|");
        out.push_str(&"---:|".repeat(shown.len()));
        out.push_str("---|---|\n");
        for r in &self.rows {
            let fleet: Vec<String> = axes
                .iter()
                .map(|a| r.point.fleet.get(a).cloned().unwrap_or_default())
                .collect();
            out.push_str(&format!(
                "| {} | {} | ×{} |",
                r.point.index,
                fleet.join(" | "),
                r.point.growth
            ));
            for m in &shown {
                let d = m.decimals;
                out.push_str(&format!(
                    " {} |",
                    r.metrics
                        .get(m.name)
                        .map_or("–".to_string(), |e| format!("{:.d$}", e.mean))
                ));
            }
            out.push_str(&format!(
                " {} | {} |\n",
                if self.slo.met(|k| r.mean(k)) {
                    "yes"
                } else {
                    "no"
                },
                r.binding.as_ref().map_or("–".to_string(), |b| format!(
                    "{} on {} ({:.0} %)",
                    b.kind.label(),
                    b.subject,
                    b.share * 100.0
                ))
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(search: Search) -> SweepSpec {
        toml::from_str::<SweepSpec>(
            r#"
            name = "t"
            growth = [1.0, 2.0]
            [[axes]]
            name = "h100"
            keys = ["pools.0.nodes"]
            values = [1, 2, 3]
            [[axes]]
            name = "sharing"
            options = { mps = ["a=1"], exclusive = ["a=2"] }
            "#,
        )
        .map(|mut s| {
            s.search = search;
            s
        })
        .unwrap()
    }

    #[test]
    fn grid_numbers_points_in_axis_order() {
        let s = Sweep::from_spec(spec(Search::Grid), Path::new("")).unwrap();
        assert_eq!(s.points.len(), 3 * 2 * 2);
        let p = &s.points[3];
        assert_eq!(p.fleet["h100"], "1");
        assert_eq!(p.fleet["sharing"], "mps");
        assert_eq!(p.growth, 2.0);
        assert_eq!(p.sets, vec!["pools.0.nodes=1", "a=1", "traffic.scale=2"]);
        let shards: Vec<usize> = (0..3)
            .map(|i| s.shard(Shard { index: i, count: 3 }).len())
            .collect();
        assert_eq!(shards, vec![4, 4, 4]);
    }

    #[test]
    fn random_search_is_seeded_and_distinct() {
        let a = Sweep::from_spec(
            spec(Search::Random {
                samples: 4,
                seed: 9,
            }),
            Path::new(""),
        )
        .unwrap();
        let b = Sweep::from_spec(
            spec(Search::Random {
                samples: 4,
                seed: 9,
            }),
            Path::new(""),
        )
        .unwrap();
        assert_eq!(a.points, b.points);
        assert_eq!(a.points.len(), 8);
        let mut fleets: Vec<_> = a.points.iter().map(|p| p.fleet.clone()).collect();
        fleets.dedup();
        assert_eq!(fleets.len(), 4);
    }

    #[test]
    fn shard_parse_and_merge_checks() {
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        assert!("4/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        let part = |i| SweepPart {
            name: "t".into(),
            fingerprint: "f".into(),
            shard: Shard { index: i, count: 2 },
            points_total: 0,
            slo: Slo::default(),
            rows: vec![],
        };
        let e = merge(&[part(0)]).unwrap_err().to_string();
        assert!(e.contains("missing shard(s) 1/2"), "{e}");
        assert!(merge(&[part(0), part(0)]).is_err());
    }

    #[test]
    fn recommends_cheapest_feasible() {
        let row = |index, usd: f64, p99: f64| Row {
            point: Point {
                index,
                fleet: BTreeMap::new(),
                growth: 1.0,
                sets: vec![],
                grows: vec![],
            },
            binding: None,
            metrics: [
                (
                    "usd_per_hour".to_string(),
                    Estimate::from_values(&[usd]).unwrap(),
                ),
                ("p99_ms".to_string(), Estimate::from_values(&[p99]).unwrap()),
                (
                    "failed_pct".to_string(),
                    Estimate::from_values(&[0.0]).unwrap(),
                ),
            ]
            .into_iter()
            .collect(),
        };
        let slo = Slo {
            max_p99_ms: Some(500.0),
            max_failed_pct: Some(1.0),
            ..Slo::default()
        };
        let r = recommend(
            "t",
            "f",
            &slo,
            vec![
                row(0, 10.0, 900.0),
                row(1, 20.0, 400.0),
                row(2, 30.0, 300.0),
                row(3, 40.0, 450.0),
            ],
        );
        assert_eq!(r.recommendations[0].point, Some(1));
        assert_eq!(r.recommendations[0].pareto, vec![0, 1, 2]);
    }
}
