//! Mooncake (Kimi) FAST'25 request traces: JSON lines with `timestamp` (ms from the start),
//! `input_length`, `output_length` and `hash_ids` (512-token prefix-cache block ids; shared
//! leading ids mean a reusable prefix). Lines are read one at a time into a reused buffer.

use super::{RequestStream, TraceError, TraceRequest};
use serde::Deserialize;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

#[derive(Deserialize)]
struct Row {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    #[allow(dead_code)]
    hash_ids: serde::de::IgnoredAny,
}

/// The longest JSON line read (the shipped trace's longest is a few KB).
const MAX_LINE_BYTES: u64 = 1 << 20;

pub struct Reader {
    path: String,
    r: Box<dyn BufRead + Send>,
    buf: String,
    line: u64,
    done: bool,
}

impl Reader {
    pub fn open(path: &Path, member: Option<&str>) -> Result<Self, TraceError> {
        let shown = path.display().to_string();
        let r: Box<dyn BufRead + Send> = if super::archive::is_tar_gz(path) {
            Box::new(BufReader::new(super::rows::open_bytes(path, member)?))
        } else {
            let f = File::open(path).map_err(|e| TraceError {
                path: shown.clone(),
                line: 0,
                field: "-".into(),
                problem: format!("cannot open: {e}"),
            })?;
            Box::new(BufReader::with_capacity(1 << 16, f))
        };
        Ok(Self {
            path: shown,
            r,
            buf: String::new(),
            line: 0,
            done: false,
        })
    }

    fn err(&self, field: &str, problem: String) -> TraceError {
        TraceError {
            path: self.path.clone(),
            line: self.line,
            field: field.into(),
            problem,
        }
    }
}

impl RequestStream for Reader {
    fn next_request(&mut self) -> Option<Result<TraceRequest, TraceError>> {
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            // Bytes first, then text: a line that is not UTF-8 is a row error on its own line
            // (read_line would fail before counting it), and a line is bounded in length so a
            // file without newlines cannot grow the buffer without limit.
            let mut bytes = Vec::new();
            match std::io::Read::take(&mut self.r, MAX_LINE_BYTES + 1).read_until(b'\n', &mut bytes)
            {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => self.line += 1,
                Err(e) => {
                    self.done = true;
                    return Some(Err(self.err("-", format!("cannot read: {e}"))));
                }
            }
            if bytes.len() as u64 > MAX_LINE_BYTES {
                self.done = true;
                return Some(Err(self.err(
                    "-",
                    format!("the line is longer than {MAX_LINE_BYTES} bytes: not a request"),
                )));
            }
            match String::from_utf8(bytes) {
                Ok(t) => self.buf = t,
                Err(e) => {
                    let at = e.utf8_error().valid_up_to() + 1;
                    return Some(Err(
                        self.err("-", format!("byte {at}: not valid UTF-8 text"))
                    ));
                }
            }
            if self.buf.trim().is_empty() {
                continue; // a blank line is not a request (e.g. a trailing newline)
            }
            let row: Row = match serde_json::from_str(self.buf.trim_end()) {
                Ok(r) => r,
                Err(e) => {
                    let problem =
                        format!("not a JSON request object at character {}: {e}", e.column());
                    return Some(Err(self.err("-", problem)));
                }
            };
            if !row.timestamp.is_finite() {
                return Some(Err(self.err(
                    "timestamp",
                    format!("{} is not a finite time", row.timestamp),
                )));
            }
            return Some(Ok(TraceRequest {
                t_s: row.timestamp / 1000.0,
                key: None,
                input_tokens: Some(row.input_length),
                output_tokens: Some(row.output_length),
                demand_ms: None,
                line: self.line,
            }));
        }
    }
    fn time_column(&self) -> &'static str {
        "timestamp"
    }
    fn path(&self) -> &str {
        &self.path
    }
}
