//! Where requests come from: Poisson and diurnal rate processes (non-homogeneous Poisson by
//! thinning), batches, and CSV trace replay. Each source is seeded on its own so that adding a
//! service does not perturb the arrivals of another. Sources are pulled lazily, one arrival at a
//! time, so memory does not grow with the length of the run or of a trace.

use crate::events::{secs, SimTime};
use crate::perf::interpolate;
use crate::scenario::TrafficSpec;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub t: SimTime,
    pub service: usize,
    /// Service demand in ms on an exclusive H100, when the trace gives it.
    pub demand_ms: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: column `{field}`: {problem}")]
pub struct TraceError {
    pub path: String,
    pub line: u64,
    pub field: String,
    pub problem: String,
}

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

impl Rate {
    fn at(&self, t_s: f64) -> f64 {
        match self {
            Rate::Constant(q) => *q,
            Rate::Daily { anchors, scale } => {
                interpolate(anchors, (t_s / 3600.0).rem_euclid(24.0)) * scale
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
    Trace(TraceReader),
}

impl ArrivalSource {
    /// Builds a source; `stream` separates the random streams of different sources.
    pub fn new(
        spec: &TrafficSpec,
        target: Target,
        seed: u64,
        stream: u64,
        end_s: f64,
        resolve: impl Fn(&Path) -> PathBuf,
        service_names: &[String],
    ) -> Result<Self, TraceError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
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
            TrafficSpec::Trace { path, time_scale } => ArrivalSource::Trace(TraceReader::open(
                &resolve(path),
                *time_scale,
                target,
                service_names.to_vec(),
                rng,
            )?),
        })
    }

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
                }))
            }
            ArrivalSource::Trace(r) => r.next(),
        }
    }
}

/// Streams a CSV trace: `arrival_s` (required, non-decreasing), `service`, `demand_ms`.
pub struct TraceReader {
    path: String,
    records: csv::StringRecordsIntoIter<File>,
    col_arrival: usize,
    col_service: Option<usize>,
    col_demand: Option<usize>,
    time_scale: f64,
    target: Target,
    services: Vec<String>,
    last_t: f64,
    rng: ChaCha8Rng,
}

impl TraceReader {
    pub fn open(
        path: &Path,
        time_scale: f64,
        target: Target,
        services: Vec<String>,
        rng: ChaCha8Rng,
    ) -> Result<Self, TraceError> {
        let shown = path.display().to_string();
        let err = |line, field: &str, problem: String| TraceError {
            path: shown.clone(),
            line,
            field: field.into(),
            problem,
        };
        let file = File::open(path).map_err(|e| err(0, "-", format!("cannot open: {e}")))?;
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(file);
        let headers = rdr
            .headers()
            .map_err(|e| err(1, "-", format!("cannot read the header: {e}")))?
            .clone();
        if headers.is_empty() {
            return Err(err(
                1,
                "-",
                "the file is empty: expected a header with `arrival_s`".into(),
            ));
        }
        let find = |n: &str| headers.iter().position(|h| h == n);
        let col_arrival = find("arrival_s").ok_or_else(|| {
            err(
                1,
                "arrival_s",
                format!(
                    "missing; the header has [{}]",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        Ok(Self {
            path: shown,
            records: rdr.into_records(),
            col_arrival,
            col_service: find("service"),
            col_demand: find("demand_ms"),
            time_scale,
            target,
            services,
            last_t: f64::NEG_INFINITY,
            rng,
        })
    }

    fn next(&mut self) -> Result<Option<Arrival>, TraceError> {
        let Some(rec) = self.records.next() else {
            return Ok(None);
        };
        let err = |line: u64, field: &str, problem: String| TraceError {
            path: self.path.clone(),
            line,
            field: field.into(),
            problem,
        };
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            err(line, "-", e.to_string())
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let raw = rec.get(self.col_arrival).unwrap_or("");
        let t: f64 = raw
            .parse()
            .map_err(|_| err(line, "arrival_s", format!("`{raw}` is not a number")))?;
        if !(t >= 0.0 && t.is_finite()) {
            return Err(err(line, "arrival_s", format!("{t} must be a time >= 0")));
        }
        if t < self.last_t {
            return Err(err(
                line,
                "arrival_s",
                format!(
                    "{t} is earlier than the previous row's {}; rows must be in time order",
                    self.last_t
                ),
            ));
        }
        self.last_t = t;
        let service = match self
            .col_service
            .and_then(|c| rec.get(c))
            .filter(|s| !s.is_empty())
        {
            Some(name) => self
                .services
                .iter()
                .position(|s| s == name)
                .ok_or_else(|| {
                    err(
                        line,
                        "service",
                        format!(
                            "unknown service `{name}`; the scenario has [{}]",
                            self.services.join(", ")
                        ),
                    )
                })?,
            None => self.target.pick(&mut self.rng),
        };
        let demand_ms = match self
            .col_demand
            .and_then(|c| rec.get(c))
            .filter(|s| !s.is_empty())
        {
            Some(d) => {
                let v: f64 = d
                    .parse()
                    .map_err(|_| err(line, "demand_ms", format!("`{d}` is not a number")))?;
                if !(v > 0.0 && v.is_finite()) {
                    return Err(err(line, "demand_ms", format!("{v} must be positive")));
                }
                Some(v)
            }
            None => None,
        };
        Ok(Some(Arrival {
            t: secs(t * self.time_scale),
            service,
            demand_ms,
        }))
    }
}
