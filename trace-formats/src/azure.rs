//! Azure LLM inference trace 2023 (Splitwise, ISCA'24): `TIMESTAMP,ContextTokens,GeneratedTokens`.
//! TIMESTAMP is a wall clock with 7 fractional digits and no zone; arrivals are seconds after
//! the first row.

use super::rows::CsvRows;
use super::time::{parse_datetime, since};
use super::{key_col, RequestStream, TraceError, TraceRequest};
use std::path::Path;

pub struct Reader {
    rows: CsvRows,
    c_t: usize,
    c_in: usize,
    c_out: usize,
    c_key: Option<usize>,
    origin: Option<(i64, f64)>,
}

impl Reader {
    pub fn open(path: &Path, member: Option<&str>, key: Option<&str>) -> Result<Self, TraceError> {
        let rows = CsvRows::open(path, member, None)?;
        Ok(Self {
            c_t: rows.col("TIMESTAMP", "Azure LLM")?,
            c_in: rows.col("ContextTokens", "Azure LLM")?,
            c_out: rows.col("GeneratedTokens", "Azure LLM")?,
            c_key: key_col(&rows, key, None, "Azure LLM")?,
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
                format!("`{raw}` is not a timestamp `YYYY-MM-DD HH:MM:SS.fffffff` with a year within 1900..=2200"),
            )
        })?;
        let input = r.tokens(self.c_in)?;
        let output = r.tokens(self.c_out)?;
        let origin = *self.origin.get_or_insert(ts);
        Ok(TraceRequest {
            t_s: since(origin, ts),
            key: self.c_key.map(|c| r.str(c).to_string()),
            input_tokens: Some(input),
            output_tokens: Some(output),
            demand_ms: None,
            line: r.line,
        })
    }
}

impl RequestStream for Reader {
    super::rows::csv_stream_methods!("TIMESTAMP");
}
