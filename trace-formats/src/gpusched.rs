//! gpusched's own trace CSV (documented in traces/README.md): one row per request,
//! `arrival_s` (seconds, required, non-decreasing) and optionally `service` (a service name),
//! `demand_ms` (ms on an exclusive H100), `input_tokens` and `output_tokens`. A row needs
//! neither demand nor tokens: the service's `service_time_ms` distribution fills in.

use super::rows::CsvRows;
use super::{key_col, RequestStream, TraceError, TraceRequest};
use std::path::Path;

pub const HEADER: &str = "arrival_s,service,input_tokens,output_tokens,demand_ms";

pub struct Reader {
    rows: CsvRows,
    c_t: usize,
    c_key: Option<usize>,
    c_demand: Option<usize>,
    c_in: Option<usize>,
    c_out: Option<usize>,
    names_services: bool,
}

impl Reader {
    pub fn open(path: &Path, member: Option<&str>, key: Option<&str>) -> Result<Self, TraceError> {
        let rows = CsvRows::open(path, member, None)?;
        Ok(Self {
            c_t: rows.col("arrival_s", "gpusched")?,
            c_key: key_col(&rows, key, Some("service"), "gpusched")?,
            names_services: key.is_none_or(|k| k == "service"),
            c_demand: rows.find("demand_ms"),
            c_in: rows.find("input_tokens"),
            c_out: rows.find("output_tokens"),
            rows,
        })
    }

    fn parse(&self) -> Result<TraceRequest, TraceError> {
        let r = &self.rows;
        let demand_ms = match self.c_demand {
            Some(c) => match r.opt_f64(c)? {
                Some(v) if v <= 0.0 => {
                    return Err(r.err(c, format!("{v} must be a positive number of ms")))
                }
                v => v,
            },
            None => None,
        };
        let tok = |c: Option<usize>| c.map(|c| r.opt_tokens(c)).transpose().map(Option::flatten);
        Ok(TraceRequest {
            t_s: r.f64(self.c_t)?,
            key: self
                .c_key
                .map(|c| r.str(c).to_string())
                .filter(|s| !s.is_empty()),
            input_tokens: tok(self.c_in)?,
            output_tokens: tok(self.c_out)?,
            demand_ms,
            line: r.line,
        })
    }
}

impl RequestStream for Reader {
    super::rows::csv_stream_methods!("arrival_s");
    fn keys_name_services(&self) -> bool {
        self.names_services
    }
}

/// Writes requests in this format (used by `gpusched trace synth`).
pub fn write_row(w: &mut impl std::io::Write, r: &TraceRequest) -> std::io::Result<()> {
    let opt = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_default();
    let key = r.key.as_deref().unwrap_or("");
    let demand = r.demand_ms.map(|d| format!("{d:.3}")).unwrap_or_default();
    writeln!(
        w,
        "{:.6},{},{},{},{}",
        r.t_s,
        key,
        opt(r.input_tokens),
        opt(r.output_tokens),
        demand
    )
}
