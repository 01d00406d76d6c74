//! gpusched-traces: real traces and synthetic workload sources, and nothing else.
//!
//! Every public trace format gpusched replays has one streaming reader here (csv + serde, one
//! row in memory at a time) that yields the common [`TraceRequest`]. [`pipeline`] then applies
//! the order check, the bad-row policy, the time window, time- and rate-scaling; the
//! simulator's `traffic` maps the requests to services. [`servegen`] and [`synth`] generate
//! traffic, and [`stats`] summarises any of them.
//!
//! Owns: trace formats, their readers, the replay pipeline, the synthetic generators, and the
//! located [`TraceError`]. Must never depend on the simulator, the scenario schema, the
//! experiments, reports or live: a trace is read the same whoever asks (the scenario schema
//! embeds this crate's specs, not the other way round).

pub mod archive;
pub mod azure;
pub mod curve;
pub mod dlrm;
pub mod genai;
pub mod gpusched;
pub mod limits;
pub mod mooncake;
pub mod openb;
pub mod pipeline;
pub mod rows;
pub mod servegen;
pub mod stats;
pub mod synth;
pub mod time;
pub mod vidur;

mod error;

pub use error::TraceError;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// One request of any trace, in the units the performance model needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceRequest {
    /// Arrival, seconds from the start of the trace.
    pub t_s: f64,
    /// The value of the trace's service column (model id, app, client), when it has one.
    pub key: Option<String>,
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
    /// Service demand in ms on an exclusive H100, when the trace gives a duration instead of tokens.
    pub demand_ms: Option<f64>,
    /// Line in the source file (0 for generated requests), for error messages.
    pub line: u64,
}

/// A lazily read sequence of requests. A row error does not end the stream: the pipeline
/// decides whether to stop or to skip the row.
pub trait RequestStream: Send {
    fn next_request(&mut self) -> Option<Result<TraceRequest, TraceError>>;
    /// The column the arrival time comes from (named in order and range errors).
    fn time_column(&self) -> &'static str;
    /// The file being read (for errors raised after the reader, e.g. out-of-order rows).
    fn path(&self) -> &str;
    /// Rows dropped on purpose, not because they were malformed (e.g. instances created
    /// outside the trace window, CPU-only pods), with the reason; reported, never silent.
    fn filtered(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// True when the key is a service name (gpusched's own `service` column).
    fn keys_name_services(&self) -> bool {
        false
    }
    /// Rows of look-ahead the pipeline sorts within; 0 for files sorted by time.
    fn reorder_rows(&self) -> usize {
        0
    }
}

/// The request-trace formats, named in a scenario as `format = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// gpusched's own CSV: `arrival_s` (+ `service`, `demand_ms`, `input_tokens`, `output_tokens`).
    Gpusched,
    /// Azure LLM inference 2023: `TIMESTAMP,ContextTokens,GeneratedTokens`.
    Azure,
    /// Vidur / Splitwise simulators: `arrived_at,num_prefill_tokens,num_decode_tokens`.
    Vidur,
    /// Mooncake FAST'25 JSON lines: `timestamp` (ms), `input_length`, `output_length`, `hash_ids`.
    Mooncake,
    /// Alibaba GenAI (SoCC'25) `lora_request_trace.csv`: `gmt_create`, `exec_time_seconds`, ...
    Genai,
    /// Alibaba GPU v2025 DLRM instances: `creation_time`, `deletion_time`, `app_name`, ...
    Dlrm,
    /// Alibaba GPU v2023 (openb) pod lists: `creation_time`, `deletion_time`, `num_gpu`, ...
    OpenbPods,
}

impl TraceFormat {
    pub const ALL: [TraceFormat; 7] = [
        Self::Gpusched,
        Self::Azure,
        Self::Vidur,
        Self::Mooncake,
        Self::Genai,
        Self::Dlrm,
        Self::OpenbPods,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Gpusched => "gpusched",
            Self::Azure => "azure",
            Self::Vidur => "vidur",
            Self::Mooncake => "mooncake",
            Self::Genai => "genai",
            Self::Dlrm => "dlrm",
            Self::OpenbPods => "openb_pods",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The format whose header this is, if any.
    pub fn from_header(first_line: &str) -> Option<Self> {
        let l = first_line.trim_start_matches('\u{feff}').trim();
        if l.starts_with('{') {
            return Some(Self::Mooncake);
        }
        let cols: Vec<&str> = l.split(',').map(str::trim).collect();
        let has = |c: &str| cols.contains(&c);
        if has("TIMESTAMP") && has("ContextTokens") {
            Some(Self::Azure)
        } else if has("arrived_at") && has("num_prefill_tokens") {
            Some(Self::Vidur)
        } else if has("gmt_create") && has("exec_time_seconds") {
            Some(Self::Genai)
        } else if has("instance_sn") && has("app_name") {
            Some(Self::Dlrm)
        } else if has("cpu_milli") && has("num_gpu") {
            Some(Self::OpenbPods)
        } else if has("arrival_s") {
            Some(Self::Gpusched)
        } else {
            None
        }
    }
}

/// How to open a request trace.
#[derive(Debug, Clone, Default)]
pub struct ReaderOptions {
    pub format: Option<TraceFormat>,
    /// The member of a `.tar.gz` to read (default: the first `.csv`).
    pub member: Option<String>,
    /// The column whose value becomes the request's service key (each format has a default).
    pub key_column: Option<String>,
}

/// The first line of a file (or of a `.tar.gz` member), for format detection.
pub fn first_line(path: &Path, member: Option<&str>) -> Result<String, TraceError> {
    let mut r = BufReader::new(rows::open_bytes(path, member)?);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| TraceError {
        path: path.display().to_string(),
        line: 1,
        field: "-".into(),
        problem: format!("cannot read: {e}"),
    })?;
    Ok(line)
}

/// Detects the format from the header (or uses the one named) and opens the reader.
pub fn open(path: &Path, o: &ReaderOptions) -> Result<Box<dyn RequestStream>, TraceError> {
    let shown = path.display().to_string();
    let format = match o.format {
        Some(f) => f,
        None => {
            let head = first_line(path, o.member.as_deref())?;
            if head.trim().is_empty() {
                return Err(TraceError {
                    path: shown,
                    line: 1,
                    field: "-".into(),
                    problem: "the file is empty: expected a header line".into(),
                });
            }
            TraceFormat::from_header(&head).ok_or_else(|| TraceError {
                path: shown.clone(),
                line: 1,
                field: "-".into(),
                problem: format!(
                    "unrecognised header `{}`; name the format with `format = ...` (one of {})",
                    head.trim(),
                    TraceFormat::ALL.map(|f| f.name()).join(", ")
                ),
            })?
        }
    };
    let key = o.key_column.as_deref();
    let member = o.member.as_deref();
    Ok(match format {
        TraceFormat::Gpusched => Box::new(gpusched::Reader::open(path, member, key)?),
        TraceFormat::Azure => Box::new(azure::Reader::open(path, member, key)?),
        TraceFormat::Vidur => Box::new(vidur::Reader::open(path, member, key)?),
        TraceFormat::Mooncake => Box::new(mooncake::Reader::open(path, member)?),
        TraceFormat::Genai => Box::new(genai::Reader::open(path, member, key)?),
        TraceFormat::Dlrm => Box::new(dlrm::Reader::open(path, member, key)?),
        TraceFormat::OpenbPods => Box::new(openb::PodReader::open(path, member, key)?),
    })
}

/// The optional key column: the one named, else the format's default when the file has it.
pub(crate) fn key_col(
    rows: &rows::CsvRows,
    named: Option<&str>,
    default: Option<&str>,
    format: &str,
) -> Result<Option<usize>, TraceError> {
    match named {
        Some(n) => rows.col(n, format).map(Some),
        None => Ok(default.and_then(|d| rows.find(d))),
    }
}
