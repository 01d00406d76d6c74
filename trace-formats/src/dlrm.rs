//! Alibaba cluster-trace-gpu-v2025 (Prism, NSDI'25): GPU-disaggregated DLRM inference
//! instances with creation and deletion times over ~31 days.
//!
//! Each GPU instance (role HN, `gpu_request` > 0) becomes one long request that arrives at
//! `creation_time` and holds a serving slot for `deletion_time − creation_time`: replaying the
//! trace against a service with `concurrency = 1` reproduces the instance churn an autoscaler
//! sees. CPU-only instances (CN) and instances created before the window (empty / NaN
//! `creation_time`) are counted as filtered. An instance still alive at the window's end has
//! no demand and falls back to the service's `service_time_ms`. Rows are grouped by app rather
//! than sorted by time (up to ~1,000 rows apart), so this format asks the pipeline for a
//! bounded reorder buffer.

use super::rows::CsvRows;
use super::{key_col, RequestStream, TraceError, TraceRequest};
use std::path::Path;

/// Rows of look-ahead the pipeline sorts within (the shipped file needs < 1,000).
pub const REORDER_ROWS: usize = 4096;

pub struct Reader {
    rows: CsvRows,
    c_create: usize,
    c_delete: usize,
    c_gpu: usize,
    c_key: Option<usize>,
    cpu_only: u64,
    outside: u64,
}

impl Reader {
    pub fn open(path: &Path, member: Option<&str>, key: Option<&str>) -> Result<Self, TraceError> {
        let rows = CsvRows::open(path, member, None)?;
        Ok(Self {
            c_create: rows.col("creation_time", "Alibaba DLRM")?,
            c_delete: rows.col("deletion_time", "Alibaba DLRM")?,
            c_gpu: rows.col("gpu_request", "Alibaba DLRM")?,
            c_key: key_col(&rows, key, Some("app_name"), "Alibaba DLRM")?,
            rows,
            cpu_only: 0,
            outside: 0,
        })
    }

    /// `Ok(None)`: a row filtered on purpose.
    fn parse(&mut self) -> Result<Option<TraceRequest>, TraceError> {
        let r = &self.rows;
        if r.f64(self.c_gpu)? <= 0.0 {
            self.cpu_only += 1;
            return Ok(None);
        }
        let Some(created) = r.opt_f64(self.c_create)? else {
            self.outside += 1;
            return Ok(None);
        };
        let demand_ms = match r.opt_f64(self.c_delete)? {
            Some(d) if d < created => {
                return Err(r.err(
                    self.c_delete,
                    format!("{d} is before creation_time {created}"),
                ))
            }
            Some(d) => Some(((d - created) * 1000.0).max(1.0)),
            None => None,
        };
        Ok(Some(TraceRequest {
            t_s: created,
            key: self.c_key.map(|c| r.str(c).to_string()),
            input_tokens: None,
            output_tokens: None,
            demand_ms,
            line: r.line,
        }))
    }
}

impl RequestStream for Reader {
    super::rows::csv_stream_methods!(filtering "creation_time");
    fn reorder_rows(&self) -> usize {
        REORDER_ROWS
    }
    fn filtered(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("CPU-only instance (gpu_request 0)", self.cpu_only),
            (
                "created before the trace window (no creation_time)",
                self.outside,
            ),
        ]
    }
}
