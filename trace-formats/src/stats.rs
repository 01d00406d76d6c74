//! `trace inspect`: rows, span, the request rate over 1/5/15-minute windows, token and demand
//! distributions, and the QPS curve. Counts are kept per minute that has rows (sparse: a row
//! centuries after the others costs one entry, not a vector as long as the span) and
//! distributions from a bounded sample (exact up to its size).

use super::synth::Reservoir;
use super::TraceRequest;

/// Rows kept for the distributions; every shipped trace fits, so their quantiles are exact.
pub const SAMPLE_ROWS: usize = 65_536;

pub struct Inspector {
    rows: u64,
    first: f64,
    last: f64,
    per_min: std::collections::BTreeMap<u64, u64>,
    sample: Reservoir,
    sums: [(u64, f64, f64); 3],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dist {
    pub name: &'static str,
    pub n: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateRow {
    pub window_min: u32,
    pub windows: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InspectReport {
    pub rows: u64,
    pub first_s: f64,
    pub last_s: f64,
    pub mean_qps: f64,
    pub rates: Vec<RateRow>,
    pub dists: Vec<Dist>,
    pub exact: bool,
    /// (minute, QPS averaged over the minute).
    pub qps_per_min: Vec<(f64, f64)>,
}

impl Default for Inspector {
    fn default() -> Self {
        Self {
            rows: 0,
            first: f64::NAN,
            last: f64::NAN,
            per_min: std::collections::BTreeMap::new(),
            sample: Reservoir::new(SAMPLE_ROWS, 7),
            sums: [(0, 0.0, 0.0); 3],
        }
    }
}

/// Minutes the QPS curve lists one by one (about two years); a longer span lists only the
/// minutes with rows, so the plot's size stays bounded by the rows.
const DENSE_CURVE_MINUTES: u64 = 1_000_000;

fn qps_curve(
    per_min: &std::collections::BTreeMap<u64, u64>,
    first_min: u64,
    span_mins: u64,
) -> Vec<(f64, f64)> {
    if span_mins <= DENSE_CURVE_MINUTES {
        (first_min..first_min + span_mins)
            .map(|m| {
                (
                    m as f64,
                    per_min.get(&m).copied().unwrap_or(0) as f64 / 60.0,
                )
            })
            .collect()
    } else {
        per_min
            .range(first_min..)
            .map(|(&m, &c)| (m as f64, c as f64 / 60.0))
            .collect()
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

impl Inspector {
    pub fn add(&mut self, r: &TraceRequest) {
        if self.rows == 0 {
            self.first = r.t_s;
        }
        self.rows += 1;
        self.last = r.t_s;
        let m = (r.t_s.max(0.0) / 60.0) as u64;
        *self.per_min.entry(m).or_insert(0) += 1;
        self.sample.add(r);
        for (i, v) in [
            r.input_tokens.map(f64::from),
            r.output_tokens.map(f64::from),
            r.demand_ms,
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(v) = v {
                let s = &mut self.sums[i];
                s.0 += 1;
                s.1 += v;
                s.2 = s.2.max(v);
            }
        }
    }

    pub fn finish(self) -> InspectReport {
        let span = (self.last - self.first).max(0.0);
        let first_min = if self.rows > 0 {
            (self.first.max(0.0) / 60.0) as u64
        } else {
            0
        };
        // Minutes from the first row's to the last one with rows, empty minutes included.
        let span_mins = self
            .per_min
            .keys()
            .next_back()
            .map_or(0, |last| last.saturating_sub(first_min) + 1);
        let mut rates = Vec::new();
        for w in [1u64, 5, 15] {
            // Whole windows only; a trace shorter than one window gives its one partial window.
            let windows = if span_mins < w { 1 } else { span_mins / w };
            let mut sums: std::collections::BTreeMap<u64, u64> = Default::default();
            for (&m, &c) in self.per_min.range(first_min..) {
                let j = (m - first_min) / w;
                if j < windows {
                    *sums.entry(j).or_insert(0) += c;
                }
            }
            let mut v: Vec<f64> = sums
                .values()
                .map(|&c| c as f64 / (w as f64 * 60.0))
                .collect();
            v.sort_by(f64::total_cmp);
            if span_mins > 0 {
                // The windows without rows are zeros below every counted one.
                let zeros = windows as usize - v.len();
                let at = |q: f64| {
                    let i = ((windows as f64 - 1.0) * q).round() as usize;
                    if i < zeros {
                        0.0
                    } else {
                        v[i - zeros]
                    }
                };
                rates.push(RateRow {
                    window_min: w as u32,
                    windows: windows as usize,
                    p50: at(0.5),
                    p90: at(0.9),
                    p99: at(0.99),
                    max: v.last().copied().unwrap_or(0.0),
                });
            }
        }
        let mut dists = Vec::new();
        for (i, name) in ["input_tokens", "output_tokens", "demand_ms"]
            .into_iter()
            .enumerate()
        {
            let (n, sum, max) = self.sums[i];
            if n == 0 {
                continue;
            }
            let mut v: Vec<f64> = self
                .sample
                .rows
                .iter()
                .filter_map(|r| match i {
                    0 => r.0.map(f64::from),
                    1 => r.1.map(f64::from),
                    _ => r.2,
                })
                .collect();
            v.sort_by(f64::total_cmp);
            dists.push(Dist {
                name,
                n,
                mean: sum / n as f64,
                p50: quantile(&v, 0.5),
                p90: quantile(&v, 0.9),
                p99: quantile(&v, 0.99),
                max,
            });
        }
        InspectReport {
            rows: self.rows,
            first_s: self.first,
            last_s: self.last,
            mean_qps: if span > 0.0 {
                self.rows as f64 / span
            } else {
                f64::NAN
            },
            rates,
            dists,
            exact: self.sample.exact(),
            qps_per_min: qps_curve(&self.per_min, first_min, span_mins),
        }
    }
}
