//! From a trace file to the requests a run replays: the order and range checks, the bad-row
//! policy, a bounded reorder buffer, the time window, time-scale and rate-scale.
//!
//! Rate-scale ×N keeps the trace's burstiness: N ≥ 1 superposes ⌊N⌋ copies of the trace
//! (copy 0 as is, the others shifted by a seeded offset below `superpose_jitter_s`) plus one
//! copy thinned to the fractional part; N < 1 thins one copy. Every copy is its own streaming
//! reader and the copies are merged by time, so memory is O(copies), not O(rows).

use super::{open, ReaderOptions, RequestStream, TraceError, TraceFormat, TraceRequest};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

/// How many bad-row reasons a report keeps.
pub const REASONS_KEPT: usize = 5;

/// `kind = "trace"` in a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    /// The trace file; relative paths resolve against the scenario's folder.
    pub path: PathBuf,
    /// The format; detected from the header when absent.
    #[serde(default)]
    pub format: Option<TraceFormat>,
    /// The member of a `.tar.gz` to read (default: its first `.csv`).
    #[serde(default)]
    pub member: Option<String>,
    /// The column whose value is the request's service key (`assign = "column"` or `"hash"`).
    #[serde(default)]
    pub key_column: Option<String>,
    /// Replay only rows with window_start_s <= t < window_end_s (trace seconds); times are
    /// re-based so the window starts at 0.
    #[serde(default)]
    pub window_start_s: Option<f64>,
    #[serde(default)]
    pub window_end_s: Option<f64>,
    /// Multiplies arrival times (1/168 plays a week in an hour).
    #[serde(default = "one")]
    pub time_scale: f64,
    /// Also multiply each row's demand by `time_scale`: for churn traces (DLRM, openb) whose
    /// "demand" is an instance lifetime, so that a compressed month keeps its occupancy.
    #[serde(default)]
    pub scale_demand: bool,
    /// Multiplies the request rate (superposition above 1, thinning below).
    #[serde(default = "one")]
    pub rate_scale: f64,
    /// Upper bound of the seeded time offset of each superposed copy, s.
    #[serde(default = "one")]
    pub superpose_jitter_s: f64,
    /// Look-ahead rows sorted before the order check (default: the format's own, 0 for sorted files).
    #[serde(default)]
    pub reorder_rows: Option<usize>,
    /// How rows map to services.
    #[serde(default)]
    pub assign: Assign,
    /// Skip malformed rows (counted, first reasons shown) instead of stopping the run.
    #[serde(default)]
    pub skip_bad_rows: bool,
}

fn one() -> f64 {
    1.0
}

/// Mapping rows to services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assign {
    /// A seeded pick by `traffic_weight` (the default).
    #[default]
    Weighted,
    /// Services in turn.
    RoundRobin,
    /// The key column names the service; an unknown name is a row error.
    Column,
    /// A stable hash of the key picks the service: all rows of one app/client go together.
    Hash,
}

impl TraceSpec {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            format: None,
            member: None,
            key_column: None,
            window_start_s: None,
            window_end_s: None,
            time_scale: 1.0,
            scale_demand: false,
            rate_scale: 1.0,
            superpose_jitter_s: 1.0,
            reorder_rows: None,
            assign: Assign::Weighted,
            skip_bad_rows: false,
        }
    }

    /// Range checks (the file's existence is checked by the scenario validator).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (k, v) in [
            ("time_scale", self.time_scale),
            ("rate_scale", self.rate_scale),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err((k, format!("{v} must be a positive number")));
            }
        }
        if self.rate_scale > 1000.0 {
            return Err((
                "rate_scale",
                format!(
                    "{} is above the limit of 1000 superposed copies",
                    self.rate_scale
                ),
            ));
        }
        if !(self.superpose_jitter_s >= 0.0 && self.superpose_jitter_s.is_finite()) {
            return Err((
                "superpose_jitter_s",
                format!("{} must be >= 0", self.superpose_jitter_s),
            ));
        }
        if let (Some(a), Some(b)) = (self.window_start_s, self.window_end_s) {
            if !(b > a) {
                return Err((
                    "window_end_s",
                    format!("{b} must be after window_start_s {a}"),
                ));
            }
        }
        Ok(())
    }

    fn reader_options(&self) -> ReaderOptions {
        ReaderOptions {
            format: self.format,
            member: self.member.clone(),
            key_column: self.key_column.clone(),
        }
    }
}

/// What a replay dropped, for the summary and the console.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayReport {
    pub rows_ok: u64,
    pub bad_rows_skipped: u64,
    /// The first [`REASONS_KEPT`] reasons.
    pub reasons: Vec<String>,
    /// Rows dropped on purpose, by reason (format filters, outside the window).
    pub filtered: Vec<(String, u64)>,
}

#[derive(Debug)]
struct Pending(TraceRequest, u64);
impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    // Reversed: BinaryHeap is a max-heap and we want the earliest (then the first read).
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.t_s.total_cmp(&self.0.t_s).then(o.1.cmp(&self.1))
    }
}

/// The longest service demand a row may give: the simulated-time limit.
const MAX_DEMAND_MS: f64 = crate::limits::MAX_DURATION_S * 1000.0;

/// One copy of the trace: a reader with its checks, window, thinning and shift.
struct Copy {
    stream: Box<dyn RequestStream>,
    primary: bool,
    keep: f64,
    shift: f64,
    rng: ChaCha8Rng,
    buf: BinaryHeap<Pending>,
    cap: usize,
    seq: u64,
    eof: bool,
    watermark: f64,
    skip: bool,
    window: (f64, f64),
    time_scale: f64,
    demand_scale: f64,
    report: ReplayReport,
    before_window: u64,
    after_window: bool,
}

impl Copy {
    fn bad(&mut self, e: TraceError) -> Result<(), TraceError> {
        if !self.skip {
            return Err(e);
        }
        self.report.bad_rows_skipped += 1;
        if self.report.reasons.len() < REASONS_KEPT {
            self.report.reasons.push(e.to_string());
        }
        Ok(())
    }

    fn fill(&mut self) -> Result<(), TraceError> {
        while !self.eof && self.buf.len() <= self.cap {
            match self.stream.next_request() {
                None => self.eof = true,
                Some(Err(e)) => self.bad(e)?,
                Some(Ok(r)) => {
                    let col = self.stream.time_column();
                    let err = |problem: String| TraceError {
                        path: self.stream.path().to_string(),
                        line: r.line,
                        field: col.into(),
                        problem,
                    };
                    if !r.t_s.is_finite() {
                        let e = err(format!("{} s is not a valid time", r.t_s));
                        self.bad(e)?;
                    } else if r
                        .demand_ms
                        .is_some_and(|d| !(d.is_finite() && (0.0..=MAX_DEMAND_MS).contains(&d)))
                    {
                        // A demand of 1e300 ms would hold a slot for ever, silently.
                        let e = TraceError {
                            path: self.stream.path().to_string(),
                            line: r.line,
                            field: "demand".into(),
                            problem: format!(
                                "{:e} ms is not a service demand within 0..={MAX_DEMAND_MS:e} ms (10 years)",
                                r.demand_ms.unwrap_or_default()
                            ),
                        };
                        self.bad(e)?;
                    } else if r.t_s > crate::limits::MAX_TRACE_TIME_S {
                        // Refused, not replayed: a row centuries on would make the replay run
                        // for ever (or overflow the simulator's microsecond clock).
                        let e = err(format!(
                            "{:e} s after the trace's start is beyond the limit of {:e} s (about 317 years)",
                            r.t_s,
                            crate::limits::MAX_TRACE_TIME_S
                        ));
                        self.bad(e)?;
                    } else if r.t_s < 0.0 {
                        let e = err(format!(
                            "{:.3} s is negative: before the trace's start (time 0, or the first row for absolute timestamps); rows must be in time order",
                            r.t_s
                        ));
                        self.bad(e)?;
                    } else if r.t_s < self.watermark {
                        let hint = if self.cap == 0 {
                            "; rows must be in time order (or set reorder_rows)".to_string()
                        } else {
                            format!(", more than reorder_rows = {} rows late", self.cap)
                        };
                        let e = err(format!(
                            "{} s is earlier than an earlier row's {} s{hint}",
                            r.t_s, self.watermark
                        ));
                        self.bad(e)?;
                    } else {
                        self.seq += 1;
                        self.buf.push(Pending(r, self.seq));
                    }
                }
            }
        }
        Ok(())
    }

    fn next(&mut self) -> Option<Result<TraceRequest, TraceError>> {
        loop {
            if self.after_window {
                return None;
            }
            if let Err(e) = self.fill() {
                self.eof = true;
                self.buf.clear();
                return Some(Err(e));
            }
            let Pending(mut r, _) = self.buf.pop()?;
            self.watermark = r.t_s;
            self.report.rows_ok += 1;
            if r.t_s < self.window.0 {
                self.before_window += 1;
                continue;
            }
            if r.t_s >= self.window.1 {
                self.after_window = true;
                return None;
            }
            if self.keep < 1.0 && self.rng.random::<f64>() >= self.keep {
                continue;
            }
            r.t_s = (r.t_s - self.window.0) * self.time_scale + self.shift;
            r.demand_ms = r.demand_ms.map(|d| (d * self.demand_scale).max(1e-3));
            return Some(Ok(r));
        }
    }
}

/// The replay of one trace spec: merged copies, in time order.
pub struct Pipeline {
    copies: Vec<Copy>,
    heads: Vec<Option<TraceRequest>>,
    started: bool,
    emitted: u64,
    path: String,
}

impl Pipeline {
    /// Opens `spec` with its path already resolved to `path`; `seed`/`stream` seed the
    /// thinning and the copies' offsets.
    pub fn open(spec: &TraceSpec, path: &Path, seed: u64, stream: u64) -> Result<Self, TraceError> {
        let n = spec.rate_scale;
        let full = n.floor() as usize;
        let frac = n - full as f64;
        let mut keeps: Vec<f64> = vec![1.0; full];
        if frac > 1e-9 {
            keeps.push(frac);
        }
        let mut copies = Vec::new();
        for (i, keep) in keeps.into_iter().enumerate() {
            let s = open(path, &spec.reader_options())?;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(stream.wrapping_mul(1009).wrapping_add(i as u64));
            let shift = if i == 0 {
                0.0
            } else {
                rng.random::<f64>() * spec.superpose_jitter_s
            };
            let cap = spec.reorder_rows.unwrap_or_else(|| s.reorder_rows());
            copies.push(Copy {
                stream: s,
                primary: i == 0,
                keep,
                shift,
                rng,
                buf: BinaryHeap::new(),
                cap,
                seq: 0,
                eof: false,
                watermark: f64::NEG_INFINITY,
                skip: spec.skip_bad_rows,
                window: (
                    spec.window_start_s.unwrap_or(0.0),
                    spec.window_end_s.unwrap_or(f64::INFINITY),
                ),
                time_scale: spec.time_scale,
                demand_scale: if spec.scale_demand {
                    spec.time_scale
                } else {
                    1.0
                },
                report: ReplayReport::default(),
                before_window: 0,
                after_window: false,
            });
        }
        let heads = vec![None; copies.len()];
        Ok(Self {
            copies,
            heads,
            started: false,
            emitted: 0,
            path: path.display().to_string(),
        })
    }

    /// The next request of the merged copies, or a fatal error.
    pub fn next_request(&mut self) -> Option<Result<TraceRequest, TraceError>> {
        if !self.started {
            self.started = true;
            for i in 0..self.copies.len() {
                match self.copies[i].next() {
                    Some(Err(e)) => return Some(Err(e)),
                    h => self.heads[i] = h.map(|r| r.expect("errors handled above")),
                }
            }
        }
        let i = (0..self.heads.len())
            .filter(|&i| self.heads[i].is_some())
            .min_by(|&a, &b| {
                let (x, y) = (
                    self.heads[a].as_ref().unwrap().t_s,
                    self.heads[b].as_ref().unwrap().t_s,
                );
                x.total_cmp(&y).then(a.cmp(&b))
            });
        let Some(i) = i else {
            if self.emitted == 0 && self.copies.first().is_some_and(|c| c.report.rows_ok == 0) {
                self.emitted = u64::MAX; // report once
                let skipped = self.copies[0].report.bad_rows_skipped;
                let why = if skipped > 0 {
                    format!("all {skipped} rows were bad and skipped")
                } else {
                    "it has no request rows".to_string()
                };
                return Some(Err(TraceError {
                    path: self.path.clone(),
                    line: 0,
                    field: "-".into(),
                    problem: format!("the trace cannot be replayed: {why}"),
                }));
            }
            return None;
        };
        let out = self.heads[i].take();
        match self.copies[i].next() {
            Some(Err(e)) => return Some(Err(e)),
            h => self.heads[i] = h.map(|r| r.expect("errors handled above")),
        }
        self.emitted = self.emitted.saturating_add(1);
        out.map(Ok)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn keys_name_services(&self) -> bool {
        self.copies
            .first()
            .is_some_and(|c| c.stream.keys_name_services())
    }

    /// Rows read, skipped and filtered (counted on the primary copy: the others read the same rows).
    pub fn report(&self) -> ReplayReport {
        let Some(c) = self.copies.iter().find(|c| c.primary) else {
            return ReplayReport::default();
        };
        let mut r = c.report.clone();
        r.filtered = c
            .stream
            .filtered()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.to_string(), n))
            .collect();
        if c.before_window > 0 {
            r.filtered
                .push(("before the time window".into(), c.before_window));
        }
        r
    }
}

impl Iterator for Pipeline {
    type Item = Result<TraceRequest, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_request()
    }
}
