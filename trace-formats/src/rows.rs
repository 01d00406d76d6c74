//! A CSV row cursor shared by the CSV readers: opens plain files and `.tar.gz` members, finds
//! columns by name, and parses fields into errors that name the file, line and column.
//! One record buffer is reused for every row, so memory does not grow with the file.

use super::archive;
use crate::TraceError;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

pub struct CsvRows {
    pub path: String,
    rdr: csv::Reader<Box<dyn Read + Send>>,
    headers: Vec<String>,
    rec: csv::StringRecord,
    /// Line of the current record (the header is line 1).
    pub line: u64,
    done: bool,
}

/// Opens a file or, for `.tar.gz`, one of its members (`member`, or the first `.csv`).
pub fn open_bytes(path: &Path, member: Option<&str>) -> Result<Box<dyn Read + Send>, TraceError> {
    let shown = path.display().to_string();
    let fail = |e: std::io::Error| TraceError {
        path: shown.clone(),
        line: 0,
        field: "-".into(),
        problem: format!("cannot open: {e}"),
    };
    if archive::is_tar_gz(path) {
        let (_, m) = archive::open_member(path, member).map_err(fail)?;
        Ok(Box::new(m))
    } else {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            File::open(path).map_err(fail)?,
        )))
    }
}

impl CsvRows {
    /// `names`: the column names when the file has no header line (PAI's machine spec).
    pub fn open(
        path: &Path,
        member: Option<&str>,
        names: Option<&[&str]>,
    ) -> Result<Self, TraceError> {
        let shown = path.display().to_string();
        let bytes = open_bytes(path, member)?;
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .has_headers(names.is_none())
            .from_reader(bytes);
        let headers: Vec<String> = match names {
            Some(n) => n.iter().map(|s| s.to_string()).collect(),
            None => {
                let h = rdr.headers().map_err(|e| TraceError {
                    path: shown.clone(),
                    line: 1,
                    field: "-".into(),
                    problem: format!("cannot read the header: {e}"),
                })?;
                h.iter()
                    .map(|s| s.trim_start_matches('\u{feff}').to_string())
                    .collect()
            }
        };
        if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
            return Err(TraceError {
                path: shown,
                line: 1,
                field: "-".into(),
                problem: "the file is empty: expected a header line".into(),
            });
        }
        Ok(Self {
            path: shown,
            rdr,
            headers,
            rec: csv::StringRecord::new(),
            line: 1,
            done: false,
        })
    }

    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// The index of a required column, or an error listing the header.
    pub fn col(&self, name: &str, format: &str) -> Result<usize, TraceError> {
        self.find(name).ok_or_else(|| TraceError {
            path: self.path.clone(),
            line: 1,
            field: name.into(),
            problem: format!(
                "missing from the header of this {format} file; the header has [{}]",
                self.headers.join(", ")
            ),
        })
    }

    /// Advances to the next record: `None` at the end, `Some(Err)` for a malformed row (the
    /// cursor stays usable, except after an I/O error, which ends the stream).
    pub fn advance(&mut self) -> Option<Result<(), TraceError>> {
        if self.done {
            return None;
        }
        match self.rdr.read_record(&mut self.rec) {
            Ok(true) => {
                self.line = self.rec.position().map_or(self.line + 1, |p| p.line());
                Some(Ok(()))
            }
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                let line = e.position().map_or(self.line + 1, |p| p.line());
                self.line = line;
                let problem = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => {
                        format!("the row has {len} fields but the header has {expected_len} (a truncated or malformed line)")
                    }
                    csv::ErrorKind::Io(_) => {
                        self.done = true;
                        e.to_string()
                    }
                    _ => e.to_string(),
                };
                Some(Err(TraceError {
                    path: self.path.clone(),
                    line,
                    field: "-".into(),
                    problem,
                }))
            }
        }
    }

    pub fn str(&self, col: usize) -> &str {
        self.rec.get(col).unwrap_or("")
    }

    pub fn err(&self, col: usize, problem: String) -> TraceError {
        let field = self
            .headers
            .get(col)
            .cloned()
            .unwrap_or_else(|| format!("#{}", col + 1));
        TraceError {
            path: self.path.clone(),
            line: self.line,
            field: format!("{field} (column {})", col + 1),
            problem,
        }
    }

    /// A required number.
    pub fn f64(&self, col: usize) -> Result<f64, TraceError> {
        self.opt_f64(col)?
            .ok_or_else(|| self.err(col, "empty: a number is required".into()))
    }

    /// An optional number: empty and `NaN` (pandas' missing value) give `None`.
    pub fn opt_f64(&self, col: usize) -> Result<Option<f64>, TraceError> {
        let raw = self.str(col);
        if raw.is_empty() || raw.eq_ignore_ascii_case("nan") {
            return Ok(None);
        }
        let v: f64 = raw
            .parse()
            .map_err(|_| self.err(col, format!("`{raw}` is not a number")))?;
        if !v.is_finite() {
            return Err(self.err(col, format!("`{raw}` is not a finite number")));
        }
        Ok(Some(v))
    }

    /// A token count (a non-negative integer; `12.0` is accepted).
    pub fn tokens(&self, col: usize) -> Result<u32, TraceError> {
        self.opt_tokens(col)?
            .ok_or_else(|| self.err(col, "empty: a token count is required".into()))
    }

    pub fn opt_tokens(&self, col: usize) -> Result<Option<u32>, TraceError> {
        match self.opt_f64(col)? {
            None => Ok(None),
            Some(v) if v >= 0.0 && v <= u32::MAX as f64 && v.fract() == 0.0 => Ok(Some(v as u32)),
            Some(v) => Err(self.err(
                col,
                format!("{v} is not a token count (a whole number >= 0)"),
            )),
        }
    }
}

/// The `RequestStream` methods every CSV reader shares: advance the row cursor, parse the row,
/// name the time column and the file. (A macro because `parse` borrows the reader that owns the
/// cursor.) The caller needs `TraceRequest` and `TraceError` in scope.
macro_rules! csv_stream_methods {
    // A reader whose `parse` may skip a row on purpose (`Ok(None)`: filtered, and counted).
    (filtering $time_column:literal) => {
        fn next_request(&mut self) -> Option<Result<TraceRequest, TraceError>> {
            loop {
                if let Err(e) = self.rows.advance()? {
                    return Some(Err(e));
                }
                match self.parse() {
                    Ok(Some(r)) => return Some(Ok(r)),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                }
            }
        }
        fn time_column(&self) -> &'static str {
            $time_column
        }
        fn path(&self) -> &str {
            &self.rows.path
        }
    };
    ($time_column:literal) => {
        fn next_request(&mut self) -> Option<Result<TraceRequest, TraceError>> {
            match self.rows.advance()? {
                Ok(()) => Some(self.parse()),
                Err(e) => Some(Err(e)),
            }
        }
        fn time_column(&self) -> &'static str {
            $time_column
        }
        fn path(&self) -> &str {
            &self.rows.path
        }
    };
}
pub(crate) use csv_stream_methods;
