//! The request format of the Vidur and Splitwise simulators:
//! `arrived_at,num_prefill_tokens,num_decode_tokens` (seconds, tokens, tokens).

use super::rows::CsvRows;
use super::{key_col, RequestStream, TraceError, TraceRequest};
use std::path::Path;

pub struct Reader {
    rows: CsvRows,
    c_t: usize,
    c_in: usize,
    c_out: usize,
    c_key: Option<usize>,
}

impl Reader {
    pub fn open(path: &Path, member: Option<&str>, key: Option<&str>) -> Result<Self, TraceError> {
        let rows = CsvRows::open(path, member, None)?;
        Ok(Self {
            c_t: rows.col("arrived_at", "Vidur")?,
            c_in: rows.col("num_prefill_tokens", "Vidur")?,
            c_out: rows.col("num_decode_tokens", "Vidur")?,
            c_key: key_col(&rows, key, None, "Vidur")?,
            rows,
        })
    }

    fn parse(&self) -> Result<TraceRequest, TraceError> {
        let r = &self.rows;
        Ok(TraceRequest {
            t_s: r.f64(self.c_t)?,
            key: self.c_key.map(|c| r.str(c).to_string()),
            input_tokens: Some(r.tokens(self.c_in)?),
            output_tokens: Some(r.tokens(self.c_out)?),
            demand_ms: None,
            line: r.line,
        })
    }
}

impl RequestStream for Reader {
    super::rows::csv_stream_methods!("arrived_at");
}
