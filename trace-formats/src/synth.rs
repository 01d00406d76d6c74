//! Synthetic traffic: Poisson, the seeds' diurnal day, Markov-modulated bursts, ramps, and
//! "fit to a trace" (the trace's rate per bin and its joint token/demand distribution).
//! All generators are non-homogeneous Poisson processes sampled by thinning (Lewis & Shedler)
//! from a seeded ChaCha8 stream: the same seed gives the same requests.

use super::pipeline::{Pipeline, TraceSpec};
use super::{ReaderOptions, TraceError, TraceFormat, TraceRequest};
use crate::curve::interpolate;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One state of a Markov-modulated Poisson process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmppState {
    /// Arrival rate in this state.
    pub qps: f64,
    /// Mean time spent in the state (exponential), s.
    pub mean_s: f64,
}

/// `kind = "mmpp"`: bursts. The process stays in a state for an exponential time, then moves
/// to one of the other states uniformly at random.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmppSpec {
    pub states: Vec<MmppState>,
}

/// `kind = "ramp"`: a linear change of rate from `from_qps` at `start_s` to `to_qps` at
/// `end_s`, constant before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RampSpec {
    pub from_qps: f64,
    pub to_qps: f64,
    #[serde(default)]
    pub start_s: f64,
    pub end_s: f64,
}

/// `kind = "fit"`: traffic that matches a real trace's rate per `bin_s` (repeated after the
/// trace's span) and its joint distribution of tokens and demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitSpec {
    pub path: PathBuf,
    #[serde(default)]
    pub format: Option<TraceFormat>,
    #[serde(default)]
    pub member: Option<String>,
    #[serde(default = "hour")]
    pub bin_s: f64,
    #[serde(default = "one")]
    pub rate_scale: f64,
}

fn hour() -> f64 {
    3600.0
}
fn one() -> f64 {
    1.0
}

impl MmppSpec {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.states.is_empty() {
            return Err(("states", "needs at least one {qps, mean_s} state".into()));
        }
        for s in &self.states {
            if !(s.qps >= 0.0 && s.qps.is_finite() && s.mean_s > 0.0 && s.mean_s.is_finite()) {
                return Err((
                    "states",
                    format!("qps {} must be >= 0 and mean_s {} > 0", s.qps, s.mean_s),
                ));
            }
        }
        Ok(())
    }
}

impl RampSpec {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(self.from_qps >= 0.0
            && self.to_qps >= 0.0
            && self.from_qps.is_finite()
            && self.to_qps.is_finite())
        {
            return Err(("from_qps", "from_qps and to_qps must be >= 0".into()));
        }
        if !(self.end_s > self.start_s && self.start_s >= 0.0) {
            return Err((
                "end_s",
                format!(
                    "{} must be after start_s {} (>= 0)",
                    self.end_s, self.start_s
                ),
            ));
        }
        Ok(())
    }
}

impl FitSpec {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(self.bin_s > 0.0 && self.bin_s.is_finite()) {
            return Err(("bin_s", format!("{} must be positive", self.bin_s)));
        }
        if !(self.rate_scale > 0.0 && self.rate_scale.is_finite()) {
            return Err((
                "rate_scale",
                format!("{} must be positive", self.rate_scale),
            ));
        }
        Ok(())
    }
}

/// A rate curve, QPS at time t.
#[derive(Debug, Clone)]
pub enum RateCurve {
    Constant(f64),
    /// (hour, QPS) anchors over a day, repeated.
    Daily {
        anchors: Vec<(f64, f64)>,
        scale: f64,
    },
    Ramp(RampSpec),
    /// QPS per bin, repeated after the last bin.
    Bins {
        bin_s: f64,
        qps: Vec<f64>,
    },
}

impl RateCurve {
    pub fn at(&self, t: f64) -> f64 {
        match self {
            RateCurve::Constant(q) => *q,
            RateCurve::Daily { anchors, scale } => {
                interpolate(anchors, (t / 3600.0).rem_euclid(24.0)) * scale
            }
            RateCurve::Ramp(r) => {
                let f = ((t - r.start_s) / (r.end_s - r.start_s)).clamp(0.0, 1.0);
                r.from_qps + (r.to_qps - r.from_qps) * f
            }
            RateCurve::Bins { bin_s, qps } => {
                if qps.is_empty() {
                    return 0.0;
                }
                qps[((t / bin_s) as usize) % qps.len()]
            }
        }
    }
    pub fn max(&self) -> f64 {
        match self {
            RateCurve::Constant(q) => *q,
            RateCurve::Daily { anchors, scale } => {
                anchors.iter().map(|a| a.1).fold(0.0, f64::max) * scale
            }
            RateCurve::Ramp(r) => r.from_qps.max(r.to_qps),
            RateCurve::Bins { qps, .. } => qps.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// A bounded uniform sample of (input, output, demand) rows (Vitter's algorithm R): the joint
/// distribution of a trace of any length in constant memory.
#[derive(Debug, Clone)]
pub struct Reservoir {
    pub rows: Vec<(Option<u32>, Option<u32>, Option<f64>)>,
    cap: usize,
    seen: u64,
    rng: ChaCha8Rng,
}

impl Reservoir {
    pub fn new(cap: usize, seed: u64) -> Self {
        Self {
            rows: Vec::new(),
            cap,
            seen: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
    pub fn add(&mut self, r: &TraceRequest) {
        self.seen += 1;
        let item = (r.input_tokens, r.output_tokens, r.demand_ms);
        if self.rows.len() < self.cap {
            self.rows.push(item);
        } else {
            let j = self.rng.random_range(0..self.seen);
            if (j as usize) < self.cap {
                self.rows[j as usize] = item;
            }
        }
    }
    /// True when every row is in the sample (its quantiles are exact).
    pub fn exact(&self) -> bool {
        self.seen as usize <= self.cap
    }
}

enum Process {
    Curve(RateCurve),
    Mmpp {
        states: Vec<MmppState>,
        state: usize,
        state_end: f64,
    },
}

/// A seeded request generator up to `end_s`.
pub struct Generator {
    process: Process,
    t: f64,
    end_s: f64,
    rng: ChaCha8Rng,
    sample: Option<Reservoir>,
}

impl Generator {
    pub fn curve(curve: RateCurve, end_s: f64, seed: u64, stream: u64) -> Self {
        Self {
            process: Process::Curve(curve),
            t: 0.0,
            end_s,
            rng: rng(seed, stream),
            sample: None,
        }
    }

    pub fn mmpp(spec: &MmppSpec, end_s: f64, seed: u64, stream: u64) -> Self {
        let mut r = rng(seed, stream);
        let state_end = exp(&mut r, 1.0 / spec.states[0].mean_s);
        Self {
            process: Process::Mmpp {
                states: spec.states.clone(),
                state: 0,
                state_end,
            },
            t: 0.0,
            end_s,
            rng: r,
            sample: None,
        }
    }

    /// Fits `spec` to its trace (one streaming pass) and generates from the fit.
    pub fn fit(
        spec: &FitSpec,
        path: &Path,
        end_s: f64,
        seed: u64,
        stream: u64,
    ) -> Result<Self, TraceError> {
        let (curve, sample) = fit_trace(spec, path, seed)?;
        let mut g = Self::curve(curve, end_s, seed, stream);
        g.sample = Some(sample);
        Ok(g)
    }
}

/// The fitted rate per bin and the token sample of a trace.
pub fn fit_trace(
    spec: &FitSpec,
    path: &Path,
    seed: u64,
) -> Result<(RateCurve, Reservoir), TraceError> {
    let mut ts = TraceSpec::new(path);
    let o = ReaderOptions {
        format: spec.format,
        member: spec.member.clone(),
        key_column: None,
    };
    ts.format = o.format;
    ts.member = o.member;
    let mut p = Pipeline::open(&ts, path, seed, 0)?;
    let mut counts: Vec<u64> = Vec::new();
    let mut sample = Reservoir::new(8192, seed ^ 0x5eed);
    for r in &mut p {
        let r = r?;
        let b = (r.t_s / spec.bin_s) as usize;
        if counts.len() <= b {
            counts.resize(b + 1, 0);
        }
        counts[b] += 1;
        sample.add(&r);
    }
    let qps = counts
        .iter()
        .map(|c| *c as f64 / spec.bin_s * spec.rate_scale)
        .collect();
    Ok((
        RateCurve::Bins {
            bin_s: spec.bin_s,
            qps,
        },
        sample,
    ))
}

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

fn exp(r: &mut ChaCha8Rng, rate: f64) -> f64 {
    -(1.0 - r.random::<f64>()).ln() / rate
}

impl Iterator for Generator {
    type Item = TraceRequest;
    fn next(&mut self) -> Option<TraceRequest> {
        loop {
            match &mut self.process {
                Process::Curve(c) => {
                    let max = c.max();
                    if max <= 0.0 {
                        return None;
                    }
                    self.t += exp(&mut self.rng, max);
                    if self.t >= self.end_s {
                        return None;
                    }
                    if self.rng.random::<f64>() * max >= c.at(self.t) {
                        continue;
                    }
                }
                Process::Mmpp {
                    states,
                    state,
                    state_end,
                } => {
                    let q = states[*state].qps;
                    let cand = if q > 0.0 {
                        self.t + exp(&mut self.rng, q)
                    } else {
                        f64::INFINITY
                    };
                    if cand >= *state_end {
                        // Memoryless: restarting the clock at the switch is exact.
                        self.t = *state_end;
                        if self.t >= self.end_s {
                            return None;
                        }
                        if states.len() > 1 {
                            let k = self.rng.random_range(0..states.len() - 1);
                            *state = if k >= *state { k + 1 } else { k };
                        }
                        *state_end = self.t + exp(&mut self.rng, 1.0 / states[*state].mean_s);
                        continue;
                    }
                    self.t = cand;
                    if self.t >= self.end_s {
                        return None;
                    }
                }
            }
            let mut r = TraceRequest {
                t_s: self.t,
                ..Default::default()
            };
            if let Some(s) = &self.sample {
                if !s.rows.is_empty() {
                    let (i, o, d) = s.rows[self.rng.random_range(0..s.rows.len())];
                    r.input_tokens = i;
                    r.output_tokens = o;
                    r.demand_ms = d;
                }
            }
            return Some(r);
        }
    }
}
