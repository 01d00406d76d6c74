//! ServeGen (Alibaba Model Studio, arXiv 2505.09999) aggregated per-client workload as a
//! generator. Each client `N` has `chunk-N-trace.csv` (no header:
//! `window_start_s,rate_rps,cv,dist,arg1,arg2`, 600-s windows over one day; `dist` is Gamma
//! (shape, scale) or Weibull (shape, scale) of the inter-arrival time, empty for no traffic)
//! and `chunk-N-dataset.json` (window start → Python-dict-literal PMFs of `input_tokens` and
//! `output_tokens`). Semantics follow upstream `servegen/clientpool.py`.
//!
//! Each client is a renewal process within a window, restarted at window boundaries; the day
//! repeats. `rate_scale` divides the inter-arrival times (same CV, N× rate). Clients are merged
//! by time with a heap: memory is the dataset's size, independent of the generated length.

use super::pipeline::Assign;
use super::{TraceError, TraceRequest};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Weibull};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::{Path, PathBuf};

/// `kind = "servegen"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeGenSpec {
    /// The folder with `chunk-N-trace.csv` and `chunk-N-dataset.json`.
    pub path: PathBuf,
    /// Client (chunk) numbers to use; all when absent.
    #[serde(default)]
    pub clients: Option<Vec<u32>>,
    #[serde(default = "one")]
    pub rate_scale: f64,
    /// How clients map to services (`hash` keeps each client on one service).
    #[serde(default)]
    pub assign: Assign,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy)]
enum Dist {
    None,
    Gamma(Gamma<f64>),
    Weibull(Weibull<f64>),
}

struct Window {
    start: f64,
    dist: Dist,
}

/// Cumulative PMF over integer bins.
struct Pmf {
    values: Vec<u32>,
    cum: Vec<f64>,
}

impl Pmf {
    fn sample(&self, r: &mut ChaCha8Rng) -> Option<u32> {
        let total = *self.cum.last()?;
        let x = r.random::<f64>() * total;
        let i = self
            .cum
            .partition_point(|c| *c <= x)
            .min(self.values.len() - 1);
        Some(self.values[i])
    }
}

struct Client {
    name: String,
    windows: Vec<Window>,
    /// (window start, input PMF, output PMF), sorted by start.
    tokens: Vec<(f64, Pmf, Pmf)>,
}

const DAY_S: f64 = 86_400.0;
const WINDOW_S: f64 = 600.0;

pub struct ServeGen {
    clients: Vec<Client>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    end_s: f64,
    rate_scale: f64,
    rng: ChaCha8Rng,
}

fn bad(path: &Path, line: u64, field: &str, problem: String) -> TraceError {
    TraceError {
        path: path.display().to_string(),
        line,
        field: field.into(),
        problem,
    }
}

/// Parses `{45: 0.0096, 46: 0.0117}` (a Python dict literal) into a PMF.
fn parse_pmf(path: &Path, field: &str, s: &str) -> Result<Pmf, TraceError> {
    let body = s.trim().trim_start_matches('{').trim_end_matches('}');
    let mut values = Vec::new();
    let mut cum = Vec::new();
    let mut acc = 0.0;
    for item in body.split(',').filter(|x| !x.trim().is_empty()) {
        let (k, v) = item.split_once(':').ok_or_else(|| {
            bad(
                path,
                0,
                field,
                format!("`{item}` is not `bin: probability`"),
            )
        })?;
        let k: f64 = k
            .trim()
            .parse()
            .map_err(|_| bad(path, 0, field, format!("bin `{k}` is not a number")))?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| bad(path, 0, field, format!("probability `{v}` is not a number")))?;
        if !(k >= 0.0 && v >= 0.0) {
            return Err(bad(
                path,
                0,
                field,
                format!("bin {k} / probability {v} must be >= 0"),
            ));
        }
        acc += v;
        values.push(k.round() as u32);
        cum.push(acc);
    }
    Ok(Pmf { values, cum })
}

fn load_client(dir: &Path, n: u32) -> Result<Client, TraceError> {
    let tpath = dir.join(format!("chunk-{n}-trace.csv"));
    let mut rows = super::rows::CsvRows::open(
        &tpath,
        None,
        Some(&["window_start_s", "rate_rps", "cv", "dist", "arg1", "arg2"]),
    )?;
    let mut windows = Vec::new();
    while let Some(step) = rows.advance() {
        step?;
        let start = rows.f64(0)?;
        let rate = rows.opt_f64(1)?.unwrap_or(0.0);
        let dist = match rows.str(3) {
            "" => Dist::None,
            _ if rate <= 0.0 => Dist::None,
            d => {
                let (a, b) = (rows.f64(4)?, rows.f64(5)?);
                let bad_params = || rows.err(4, format!("{d}({a}, {b}) has invalid parameters"));
                match d {
                    "Gamma" => Dist::Gamma(Gamma::new(a, b).map_err(|_| bad_params())?),
                    "Weibull" => Dist::Weibull(Weibull::new(b, a).map_err(|_| bad_params())?),
                    other => {
                        return Err(rows.err(
                            3,
                            format!("unknown distribution `{other}` (Gamma or Weibull)"),
                        ))
                    }
                }
            }
        };
        windows.push(Window { start, dist });
    }
    let dpath = dir.join(format!("chunk-{n}-dataset.json"));
    let text = std::fs::read_to_string(&dpath)
        .map_err(|e| bad(&dpath, 0, "-", format!("cannot read: {e}")))?;
    let json: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(&text)
        .map_err(|e| bad(&dpath, e.line() as u64, "-", e.to_string()))?;
    let mut tokens = Vec::new();
    for (k, m) in &json {
        let start: f64 = k
            .parse()
            .map_err(|_| bad(&dpath, 0, k, "window key is not a number".into()))?;
        let get = |f: &str| {
            m.get(f)
                .ok_or_else(|| bad(&dpath, 0, f, format!("missing in window {k}")))
                .and_then(|s| parse_pmf(&dpath, f, s))
        };
        tokens.push((start, get("input_tokens")?, get("output_tokens")?));
    }
    tokens.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(Client {
        name: format!("client-{n}"),
        windows,
        tokens,
    })
}

impl ServeGen {
    pub fn open(
        spec: &ServeGenSpec,
        dir: &Path,
        end_s: f64,
        seed: u64,
        stream: u64,
    ) -> Result<Self, TraceError> {
        let ids: Vec<u32> = match &spec.clients {
            Some(c) => c.clone(),
            None => {
                let rd = std::fs::read_dir(dir)
                    .map_err(|e| bad(dir, 0, "-", format!("cannot list: {e}")))?;
                let mut v: Vec<u32> = rd
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name().to_str().and_then(|n| {
                            n.strip_prefix("chunk-")?
                                .strip_suffix("-trace.csv")?
                                .parse()
                                .ok()
                        })
                    })
                    .collect();
                v.sort();
                v
            }
        };
        if ids.is_empty() {
            return Err(bad(
                dir,
                0,
                "-",
                "no chunk-N-trace.csv files: not a ServeGen folder".into(),
            ));
        }
        let clients = ids
            .iter()
            .map(|n| load_client(dir, *n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        let mut g = Self {
            clients,
            heap: BinaryHeap::new(),
            end_s,
            rate_scale: spec.rate_scale,
            rng,
        };
        for c in 0..g.clients.len() {
            if let Some(t) = g.next_after(c, 0.0) {
                g.heap.push(Reverse((t.to_bits(), c)));
            }
        }
        Ok(g)
    }

    /// The client's first arrival after `t` (None past the end).
    fn next_after(&mut self, c: usize, mut t: f64) -> Option<f64> {
        let client = &self.clients[c];
        if client.windows.is_empty() {
            return None;
        }
        loop {
            if t >= self.end_s {
                return None;
            }
            let day = (t / DAY_S).floor();
            let tod = t - day * DAY_S;
            let w = client
                .windows
                .partition_point(|x| x.start <= tod)
                .saturating_sub(1);
            let win_end = day * DAY_S
                + client
                    .windows
                    .get(w + 1)
                    .map_or(DAY_S.max(client.windows[w].start + WINDOW_S), |x| x.start);
            let ia = match client.windows[w].dist {
                Dist::None => None,
                Dist::Gamma(g) => Some(g.sample(&mut self.rng)),
                Dist::Weibull(x) => Some(x.sample(&mut self.rng)),
            };
            match ia {
                Some(ia) if t + ia / self.rate_scale < win_end => {
                    return Some(t + ia / self.rate_scale)
                }
                // No traffic, or the next arrival falls past the window: restart in the next one.
                _ => t = win_end.max(t + 1e-9),
            }
        }
    }
}

impl Iterator for ServeGen {
    type Item = TraceRequest;
    fn next(&mut self) -> Option<TraceRequest> {
        let Reverse((bits, c)) = self.heap.pop()?;
        let t = f64::from_bits(bits);
        if let Some(n) = self.next_after(c, t) {
            self.heap.push(Reverse((n.to_bits(), c)));
        }
        let client = &self.clients[c];
        let tod = t.rem_euclid(DAY_S);
        let k = client
            .tokens
            .partition_point(|x| x.0 <= tod)
            .saturating_sub(1);
        let (input, output) = match client.tokens.get(k) {
            Some((_, i, o)) => (i.sample(&mut self.rng), o.sample(&mut self.rng)),
            None => (None, None),
        };
        Some(TraceRequest {
            t_s: t,
            key: Some(client.name.clone()),
            input_tokens: input,
            output_tokens: output,
            demand_ms: None,
            line: 0,
        })
    }
}
