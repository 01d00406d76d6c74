//! Alibaba GenAI serving trace (cluster-trace-v2026-GenAI, SoCC'25): Stable-Diffusion + LoRA
//! requests, and the per-pod GPU memory / duty-cycle series in its `.tar.gz` members.
//!
//! Requests: `gmt_create` (wall clock, seconds) is the arrival; `exec_time_seconds` becomes the
//! demand (the trace does not name the GPU; we treat it as H100 time, which a scenario can
//! rescale with the service's GPU `relative_speed`). The service key defaults to
//! `checkpoint_model_version_id` (the base model).

use super::rows::CsvRows;
use super::time::{parse_datetime, since};
use super::{key_col, RequestStream, TraceError, TraceRequest};
use std::path::Path;

pub struct Reader {
    rows: CsvRows,
    c_t: usize,
    c_exec: usize,
    c_key: Option<usize>,
    origin: Option<(i64, f64)>,
}

impl Reader {
    pub fn open(path: &Path, member: Option<&str>, key: Option<&str>) -> Result<Self, TraceError> {
        let rows = CsvRows::open(path, member, None)?;
        Ok(Self {
            c_t: rows.col("gmt_create", "Alibaba GenAI request")?,
            c_exec: rows.col("exec_time_seconds", "Alibaba GenAI request")?,
            c_key: key_col(
                &rows,
                key,
                Some("checkpoint_model_version_id"),
                "Alibaba GenAI request",
            )?,
            rows,
            origin: None,
        })
    }

    fn parse(&mut self) -> Result<TraceRequest, TraceError> {
        let r = &self.rows;
        let raw = r.str(self.c_t);
        let ts = parse_datetime(raw).ok_or_else(|| {
            r.err(
                self.c_t,
                format!("`{raw}` is not a timestamp `YYYY-MM-DD HH:MM:SS` with a year within 1900..=2200"),
            )
        })?;
        let demand_ms = match r.opt_f64(self.c_exec)? {
            Some(v) if v < 0.0 => return Err(r.err(self.c_exec, format!("{v} s is negative"))),
            // 0 s (failed before running) still occupies a slot briefly: 1 ms.
            Some(v) => Some((v * 1000.0).max(1.0)),
            None => None,
        };
        let origin = *self.origin.get_or_insert(ts);
        Ok(TraceRequest {
            t_s: since(origin, ts),
            key: self
                .c_key
                .map(|c| r.str(c).to_string())
                .filter(|s| !s.is_empty()),
            input_tokens: None,
            output_tokens: None,
            demand_ms,
            line: r.line,
        })
    }
}

impl RequestStream for Reader {
    super::rows::csv_stream_methods!("gmt_create");
}

/// One sample of a per-pod series (`timestamp_anon,value,container_ip`, in either column order).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub t_s: f64,
    pub container: String,
    pub value: f64,
}

/// Streams a per-pod series: GPU memory used (bytes), GPU duty cycle (%), memory util (%), QPS...
pub struct SeriesReader {
    rows: CsvRows,
    c_t: usize,
    c_v: usize,
    c_c: usize,
}

impl SeriesReader {
    pub fn open(path: &Path, member: Option<&str>) -> Result<Self, TraceError> {
        let rows = CsvRows::open(path, member, None)?;
        Ok(Self {
            c_t: rows.col("timestamp_anon", "Alibaba GenAI per-pod series")?,
            c_v: rows.col("value", "Alibaba GenAI per-pod series")?,
            c_c: rows.col("container_ip", "Alibaba GenAI per-pod series")?,
            rows,
        })
    }

    pub fn is_series_header(first_line: &str) -> bool {
        first_line.contains("timestamp_anon") && first_line.contains("container_ip")
    }

    pub fn path(&self) -> &str {
        &self.rows.path
    }
}

impl Iterator for SeriesReader {
    type Item = Result<Sample, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.rows.advance()? {
            Err(e) => Some(Err(e)),
            Ok(()) => {
                let r = &self.rows;
                Some((|| {
                    Ok(Sample {
                        t_s: r.f64(self.c_t)?,
                        value: r.f64(self.c_v)?,
                        container: r.str(self.c_c).to_string(),
                    })
                })())
            }
        }
    }
}
