//! Where requests come from: Poisson and diurnal rate processes (non-homogeneous Poisson by
//! thinning), batches, and CSV trace replay. Each source is seeded on its own so that adding a
//! service does not perturb the arrivals of another. Sources are pulled lazily, one arrival at a
//! time, so memory does not grow with the length of the run or of a trace.

use crate::events::{secs, SimTime};
use crate::scenario::TrafficSpec;
use gpusched_traces::curve::interpolate;
use gpusched_traces::pipeline::{Assign, Pipeline, ReplayReport, REASONS_KEPT};
use gpusched_traces::servegen::ServeGen;
use gpusched_traces::synth::Generator;
use gpusched_traces::TraceRequest;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub t: SimTime,
    pub service: usize,
    /// Service demand in ms on an exclusive H100, when the trace gives it.
    pub demand_ms: Option<f64>,
    /// (prompt, output) tokens, when the source gives them.
    pub tokens: Option<(u32, u32)>,
}

pub use gpusched_traces::TraceError;

/// Picks the service of an arrival from the shared traffic by weight.
#[derive(Debug, Clone)]
pub struct ServiceMix {
    services: Vec<usize>,
    cumulative: Vec<f64>,
}

impl ServiceMix {
    pub fn new(weighted: &[(usize, f64)]) -> Self {
        let mut acc = 0.0;
        let mut services = Vec::new();
        let mut cumulative = Vec::new();
        for &(s, w) in weighted {
            if w > 0.0 {
                acc += w;
                services.push(s);
                cumulative.push(acc);
            }
        }
        Self {
            services,
            cumulative,
        }
    }
    /// The services with a positive weight, in order.
    pub fn services(&self) -> &[usize] {
        &self.services
    }
    fn pick(&self, rng: &mut impl Rng) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let x = rng.random::<f64>() * total;
        let i = self
            .cumulative
            .partition_point(|c| *c <= x)
            .min(self.services.len() - 1);
        self.services[i]
    }
}

/// Who gets an arrival: one fixed service, or a weighted pick.
#[derive(Debug, Clone)]
pub enum Target {
    One(usize),
    Mix(ServiceMix),
}

impl Target {
    fn pick(&self, rng: &mut impl Rng) -> usize {
        match self {
            Target::One(s) => *s,
            Target::Mix(m) => m.pick(rng),
        }
    }
    fn services(&self) -> &[usize] {
        match self {
            Target::One(s) => std::slice::from_ref(s),
            Target::Mix(m) => m.services(),
        }
    }
}

/// A rate curve over the day, QPS as a function of time.
#[derive(Debug, Clone)]
pub enum Rate {
    Constant(f64),
    Daily {
        anchors: Vec<(f64, f64)>,
        scale: f64,
    },
}

/// `h.rem_euclid(24.0)`, bit for bit, without the software `fmod` that made it a hot spot of
/// arrival generation (profiled: ~5 % of a run). For 0 <= h < 2^48 the whole-day base `24k` is
/// exact and `h - 24k` is exact by Sterbenz's lemma (24k <= h < 24k + 24 <= 2·24k for k >= 1),
/// as `fmod` is; anything else takes `rem_euclid`.
#[inline]
pub fn hour_of_day(h: f64) -> f64 {
    if (0.0..24.0).contains(&h) {
        return h;
    }
    if !(0.0..281_474_976_710_656.0).contains(&h) {
        return h.rem_euclid(24.0);
    }
    let mut base = (h / 24.0).floor() * 24.0;
    if base > h {
        base -= 24.0;
    } else if base + 24.0 <= h {
        base += 24.0;
    }
    h - base
}

impl Rate {
    fn at(&self, t_s: f64) -> f64 {
        match self {
            Rate::Constant(q) => *q,
            Rate::Daily { anchors, scale } => {
                interpolate(anchors, hour_of_day(t_s / 3600.0)) * scale
            }
        }
    }
    fn max(&self) -> f64 {
        match self {
            Rate::Constant(q) => *q,
            Rate::Daily { anchors, scale } => {
                anchors.iter().map(|a| a.1).fold(0.0, f64::max) * scale
            }
        }
    }
}

pub enum ArrivalSource {
    Process {
        rate: Rate,
        t_s: f64,
        end_s: f64,
        target: Target,
        rng: ChaCha8Rng,
    },
    Batch {
        remaining: u64,
        at: SimTime,
        target: Target,
        rng: ChaCha8Rng,
    },
    /// Trace replays and the trace-like generators (bursts, ramps, fits, ServeGen).
    Requests(RequestSource),
}

impl ArrivalSource {
    /// Builds a source; `stream` separates the random streams of different sources.
    /// `skip_bad_rows` (the scenario's) turns on skipping for every trace.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: &TrafficSpec,
        target: Target,
        seed: u64,
        stream: u64,
        end_s: f64,
        resolve: impl Fn(&Path) -> PathBuf,
        service_names: &[String],
        skip_bad_rows: bool,
    ) -> Result<Self, TraceError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        let requests = |inner: Inner, assign: Assign, rng: ChaCha8Rng| {
            ArrivalSource::Requests(RequestSource {
                inner,
                assign,
                target: target.clone(),
                services: service_names.to_vec(),
                rr: 0,
                rng,
                assign_skipped: ReplayReport::default(),
                skip: skip_bad_rows,
            })
        };
        Ok(match spec {
            TrafficSpec::Poisson { qps } => ArrivalSource::Process {
                rate: Rate::Constant(*qps),
                t_s: 0.0,
                end_s,
                target,
                rng,
            },
            TrafficSpec::Diurnal { anchors, scale } => ArrivalSource::Process {
                rate: Rate::Daily {
                    anchors: anchors.clone(),
                    scale: *scale,
                },
                t_s: 0.0,
                end_s,
                target,
                rng,
            },
            TrafficSpec::Batch { count, at_s } => ArrivalSource::Batch {
                remaining: *count,
                at: secs(*at_s),
                target,
                rng,
            },
            TrafficSpec::Trace(t) => {
                let mut t = t.clone();
                t.skip_bad_rows |= skip_bad_rows;
                let skip = t.skip_bad_rows;
                let p = Pipeline::open(&t, &resolve(&t.path), seed, stream)?;
                let mut src = requests(Inner::Trace(Box::new(p)), t.assign, rng);
                if let ArrivalSource::Requests(r) = &mut src {
                    r.skip = skip;
                }
                src
            }
            TrafficSpec::Mmpp(m) => requests(
                Inner::Gen(Box::new(Generator::mmpp(m, end_s, seed, stream + 7_000))),
                Assign::Weighted,
                rng,
            ),
            TrafficSpec::Ramp(r) => {
                let g = Generator::curve(
                    gpusched_traces::synth::RateCurve::Ramp(r.clone()),
                    end_s,
                    seed,
                    stream + 7_000,
                );
                requests(Inner::Gen(Box::new(g)), Assign::Weighted, rng)
            }
            TrafficSpec::Fit(f) => requests(
                Inner::Gen(Box::new(Generator::fit(
                    f,
                    &resolve(&f.path),
                    end_s,
                    seed,
                    stream + 7_000,
                )?)),
                Assign::Weighted,
                rng,
            ),
            TrafficSpec::Servegen(g) => {
                let sg = ServeGen::open(g, &resolve(&g.path), end_s, seed, stream + 7_000)?;
                requests(Inner::Gen(Box::new(sg)), g.assign, rng)
            }
        })
    }

    /// Rows skipped and filtered, for trace replays.
    pub fn report(&self) -> Option<ReplayReport> {
        match self {
            ArrivalSource::Requests(r) => Some(r.report()),
            _ => None,
        }
    }

    /// The next arrival, or `None` once the source is spent.
    #[allow(
        clippy::should_implement_trait,
        reason = "fallible (a bad trace row), so not Iterator::next; BENCHMARKS.md profiles it by this name"
    )]
    pub fn next(&mut self) -> Result<Option<Arrival>, TraceError> {
        match self {
            ArrivalSource::Process {
                rate,
                t_s,
                end_s,
                target,
                rng,
            } => {
                let max = rate.max();
                if max <= 0.0 {
                    return Ok(None);
                }
                // Thinning (Lewis & Shedler): candidates at the peak rate, kept with λ(t)/λmax.
                loop {
                    let u: f64 = rng.random::<f64>();
                    *t_s += -(1.0 - u).ln() / max;
                    if *t_s >= *end_s {
                        return Ok(None);
                    }
                    if rng.random::<f64>() * max < rate.at(*t_s) {
                        return Ok(Some(Arrival {
                            t: secs(*t_s),
                            service: target.pick(rng),
                            demand_ms: None,
                            tokens: None,
                        }));
                    }
                }
            }
            ArrivalSource::Batch {
                remaining,
                at,
                target,
                rng,
            } => {
                if *remaining == 0 {
                    return Ok(None);
                }
                *remaining -= 1;
                Ok(Some(Arrival {
                    t: *at,
                    service: target.pick(rng),
                    demand_ms: None,
                    tokens: None,
                }))
            }
            ArrivalSource::Requests(r) => r.next(),
        }
    }
}

/// Where a [`RequestSource`]'s requests come from.
pub enum Inner {
    Trace(Box<Pipeline>),
    Gen(Box<dyn Iterator<Item = TraceRequest> + Send>),
}

/// Turns trace requests into arrivals: the service mapping (weighted, round-robin, by the key
/// column, or by a hash of the key) and the tokens/demand the performance model needs.
pub struct RequestSource {
    inner: Inner,
    assign: Assign,
    target: Target,
    services: Vec<String>,
    rr: usize,
    rng: ChaCha8Rng,
    assign_skipped: ReplayReport,
    skip: bool,
}

/// FNV-1a: a stable hash, so a key maps to the same service in every run and build.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

impl RequestSource {
    fn next(&mut self) -> Result<Option<Arrival>, TraceError> {
        loop {
            let r = match &mut self.inner {
                Inner::Trace(p) => match p.next_request() {
                    None => return Ok(None),
                    Some(r) => r?,
                },
                Inner::Gen(g) => match g.next() {
                    None => return Ok(None),
                    Some(r) => r,
                },
            };
            match self.service_of(&r) {
                Ok(service) => {
                    let tokens = match (r.input_tokens, r.output_tokens) {
                        (None, None) => None,
                        (i, o) => Some((i.unwrap_or(0), o.unwrap_or(0))),
                    };
                    return Ok(Some(Arrival {
                        t: secs(r.t_s),
                        service,
                        demand_ms: r.demand_ms,
                        tokens,
                    }));
                }
                Err(e) if self.skip => {
                    self.assign_skipped.bad_rows_skipped += 1;
                    if self.assign_skipped.reasons.len() < REASONS_KEPT {
                        self.assign_skipped.reasons.push(e.to_string());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn service_of(&mut self, r: &TraceRequest) -> Result<usize, TraceError> {
        let by_name = |key: &str, services: &[String]| services.iter().position(|s| s == key);
        match (self.assign, r.key.as_deref()) {
            (Assign::Column, key) | (Assign::Weighted, key @ Some(_)) if self.names_services() => {
                let key = key.unwrap_or("");
                by_name(key, &self.services).ok_or_else(|| TraceError {
                    path: self.path(),
                    line: r.line,
                    field: "service".into(),
                    problem: format!(
                        "unknown service `{key}`; the scenario has [{}]",
                        self.services.join(", ")
                    ),
                })
            }
            (Assign::Hash, Some(key)) => {
                let pool = self.target.services();
                Ok(pool[(fnv1a(key) % pool.len() as u64) as usize])
            }
            (Assign::RoundRobin, _) => {
                let pool = self.target.services();
                self.rr = (self.rr + 1) % pool.len();
                Ok(pool[self.rr])
            }
            _ => Ok(self.target.pick(&mut self.rng)),
        }
    }

    /// Keys are service names: `assign = "column"`, or gpusched's own `service` column.
    fn names_services(&self) -> bool {
        match (&self.inner, self.assign) {
            (_, Assign::Column) => true,
            (Inner::Trace(p), Assign::Weighted) => p.keys_name_services(),
            _ => false,
        }
    }

    fn path(&self) -> String {
        match &self.inner {
            Inner::Trace(p) => p.path().to_string(),
            Inner::Gen(_) => "<generator>".into(),
        }
    }

    pub fn report(&self) -> ReplayReport {
        let mut r = match &self.inner {
            Inner::Trace(p) => p.report(),
            Inner::Gen(_) => ReplayReport::default(),
        };
        r.bad_rows_skipped += self.assign_skipped.bad_rows_skipped;
        for x in &self.assign_skipped.reasons {
            if r.reasons.len() < REASONS_KEPT {
                r.reasons.push(x.clone());
            }
        }
        r
    }
}

#[cfg(test)]
mod hour_of_day_tests {
    use super::hour_of_day;

    #[test]
    fn equals_rem_euclid_bit_for_bit() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Hours across a year, with exact day boundaries mixed in.
            let h = if i % 7 == 0 {
                (x % 400) as f64 * 24.0
            } else {
                (x >> 11) as f64 / (1u64 << 53) as f64 * 9000.0
            };
            for v in [
                h,
                -h,
                f64::from_bits(h.to_bits() + 1),
                f64::from_bits((h * 24.0).to_bits().saturating_sub(1)),
            ] {
                assert_eq!(
                    hour_of_day(v).to_bits(),
                    v.rem_euclid(24.0).to_bits(),
                    "{v}"
                );
            }
        }
    }
}
