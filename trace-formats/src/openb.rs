//! Alibaba cluster-trace-gpu-v2023 ("openb", FGD ATC'23) pod lists as a *workload source* for
//! `gpusched run`: each GPU pod arrives at `creation_time` and holds a slot until
//! `deletion_time` (its demand). CPU-only pods (`num_gpu` 0) are counted as filtered. The
//! fractional `gpu_milli` request is not mapped here; the FGD experiment has its own readers.
//! The node lists are read by [`super::inventory`].

use super::rows::CsvRows;
use super::{key_col, RequestStream, TraceError, TraceRequest};
use std::path::Path;

pub struct PodReader {
    rows: CsvRows,
    c_create: usize,
    c_delete: Option<usize>,
    c_gpu: usize,
    c_key: Option<usize>,
    cpu_only: u64,
}

impl PodReader {
    pub fn open(path: &Path, member: Option<&str>, key: Option<&str>) -> Result<Self, TraceError> {
        let rows = CsvRows::open(path, member, None)?;
        let c_create = rows
            .col("creation_time", "openb pod list")
            .map_err(|mut e| {
                e.problem.push_str(
                    " (the multigpu* variants have no arrival times and cannot be replayed)",
                );
                e
            })?;
        Ok(Self {
            c_create,
            c_delete: rows.find("deletion_time"),
            c_gpu: rows.col("num_gpu", "openb pod list")?,
            c_key: key_col(&rows, key, None, "openb pod list")?,
            rows,
            cpu_only: 0,
        })
    }

    fn parse(&mut self) -> Result<Option<TraceRequest>, TraceError> {
        let r = &self.rows;
        if r.f64(self.c_gpu)? <= 0.0 {
            self.cpu_only += 1;
            return Ok(None);
        }
        let created = r.f64(self.c_create)?;
        let demand_ms = match self
            .c_delete
            .map(|c| r.opt_f64(c).map(|v| (c, v)))
            .transpose()?
        {
            Some((c, Some(d))) if d < created => {
                return Err(r.err(c, format!("{d} is before creation_time {created}")))
            }
            Some((_, Some(d))) => Some(((d - created) * 1000.0).max(1.0)),
            _ => None,
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

impl RequestStream for PodReader {
    super::rows::csv_stream_methods!(filtering "creation_time");
    fn filtered(&self) -> Vec<(&'static str, u64)> {
        vec![("CPU-only pod (num_gpu 0)", self.cpu_only)]
    }
}
