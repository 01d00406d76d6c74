//! Reads the measured runs of `reference/llm-serving/` (SOURCE.md there says what each column
//! means): vLLM load stages on H100 and Splitwise's static-batch phase times on A100 and H100.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Row {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// One constant-rate stage of a vLLM run, with what the client measured.
#[derive(Debug, Clone, PartialEq)]
pub struct VllmStage {
    /// The run's folder name, e.g. `20260217-231439-llama-2-7b-tp1-general`.
    pub run: String,
    pub stage: u32,
    pub model: String,
    pub gpu: String,
    pub tp: u32,
    pub rate: f64,
    pub duration_s: f64,
    /// Measured mean lengths of the stage's requests.
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub max_num_batched_tokens: u32,
    pub max_num_seqs: u32,
    pub max_model_len: u32,
    /// The workload's system prompt, shared by every request (`system_prompt_len` in notes).
    pub shared_prefix: u32,
    /// metric name → value (ms for latencies).
    pub measured: BTreeMap<String, f64>,
}

impl VllmStage {
    pub fn get(&self, metric: &str) -> f64 {
        self.measured.get(metric).copied().unwrap_or(f64::NAN)
    }
    /// `general` or `codegen`.
    pub fn workload(&self) -> &str {
        self.run.rsplit('-').next().unwrap_or("")
    }
}

/// One Splitwise static-batch configuration with its measured phase times (ms).
#[derive(Debug, Clone, PartialEq)]
pub struct SplitwisePoint {
    pub gpu: String,
    pub model: String,
    pub tp: u32,
    pub batch: u32,
    pub prompt: u32,
    pub output: u32,
    pub prefill_ms: f64,
    pub decode_iteration_ms: f64,
    pub e2e_ms: f64,
}

impl SplitwisePoint {
    /// SOURCE.md: TP2 at batch 64 ran memory-limited (faster than batch 32); not for fitting.
    pub fn suspect(&self) -> bool {
        self.tp == 2 && self.batch == 64
    }
    pub fn is_h100(&self) -> bool {
        self.gpu.starts_with("H100")
    }
}

/// A CSV row by column name, with its line number.
type Row = (u64, BTreeMap<String, String>);

fn read_rows(path: &Path) -> Result<Vec<Row>, ReferenceError> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| ReferenceError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let headers = rdr
        .headers()
        .map_err(|e| row_err(path, 1, e.to_string()))?
        .clone();
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let rec = rec.map_err(|e| row_err(path, line, e.to_string()))?;
        out.push((
            line,
            headers
                .iter()
                .map(str::to_string)
                .zip(rec.iter().map(str::to_string))
                .collect(),
        ));
    }
    Ok(out)
}

fn row_err(path: &Path, line: u64, message: String) -> ReferenceError {
    ReferenceError::Row {
        path: path.to_path_buf(),
        line,
        message,
    }
}

fn field<'a>(
    path: &Path,
    line: u64,
    row: &'a BTreeMap<String, String>,
    key: &str,
) -> Result<&'a str, ReferenceError> {
    row.get(key)
        .map(String::as_str)
        .ok_or_else(|| row_err(path, line, format!("missing column '{key}'")))
}

fn number<T: std::str::FromStr>(
    path: &Path,
    line: u64,
    key: &str,
    v: &str,
) -> Result<T, ReferenceError> {
    v.trim()
        .parse()
        .map_err(|_| row_err(path, line, format!("{key} = '{v}' is not a number")))
}

/// `key=value` out of free text (the notes column carries vLLM's flags that way).
fn flag(text: &str, key: &str) -> Option<u32> {
    let at = text.find(&format!("{key}="))? + key.len() + 1;
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The vLLM stages (the per-run "summary over" rows are left out: they mix two loads).
pub fn read_vllm(path: &Path) -> Result<Vec<VllmStage>, ReferenceError> {
    let mut stages: BTreeMap<(String, u32), VllmStage> = BTreeMap::new();
    for (line, row) in read_rows(path)? {
        let prov = field(path, line, &row, "provenance")?;
        let Some(file) = prov.rsplit('/').next() else {
            continue;
        };
        let Some(stage) = file
            .strip_prefix("stage_")
            .and_then(|s| s.split('_').next())
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let run = prov.rsplit('/').nth(2).unwrap_or("").to_string();
        let load = field(path, line, &row, "batch_or_concurrency_or_qps")?;
        let rate: f64 = match load
            .strip_prefix("qps=")
            .and_then(|s| s.split_whitespace().next())
        {
            Some(r) => number(path, line, "batch_or_concurrency_or_qps", r)?,
            None => continue,
        };
        let duration_s = load
            .split(", ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(600.0);
        let notes = field(path, line, &row, "notes")?;
        let e = stages
            .entry((run.clone(), stage))
            .or_insert_with(|| VllmStage {
                run,
                stage,
                model: String::new(),
                gpu: String::new(),
                tp: 1,
                rate,
                duration_s,
                input_tokens: 0.0,
                output_tokens: 0.0,
                max_num_batched_tokens: flag(notes, "max_num_batched_tokens").unwrap_or(2048),
                max_num_seqs: flag(notes, "max_num_seqs").unwrap_or(256),
                max_model_len: flag(notes, "max_model_len").unwrap_or(4096),
                shared_prefix: flag(notes, "system_prompt_len").unwrap_or(0),
                measured: BTreeMap::new(),
            });
        e.model = field(path, line, &row, "model")?.to_string();
        e.gpu = field(path, line, &row, "gpu")?.to_string();
        e.tp = number(path, line, "tp", field(path, line, &row, "tp")?)?;
        e.input_tokens = number(
            path,
            line,
            "input_tokens",
            field(path, line, &row, "input_tokens")?,
        )?;
        e.output_tokens = number(
            path,
            line,
            "output_tokens",
            field(path, line, &row, "output_tokens")?,
        )?;
        let metric = field(path, line, &row, "metric")?.to_string();
        let value: f64 = number(path, line, "value", field(path, line, &row, "value")?)?;
        let unit = field(path, line, &row, "unit")?;
        // Latencies are stated in s or ms; keep ms.
        let value = if unit == "s" { value * 1000.0 } else { value };
        e.measured.insert(metric, value);
    }
    Ok(stages.into_values().collect())
}

/// The Splitwise points, one per (GPU, model, TP, batch, prompt, output).
pub fn read_splitwise(path: &Path) -> Result<Vec<SplitwisePoint>, ReferenceError> {
    let mut pts: BTreeMap<(String, String, u32, u32, u32, u32), SplitwisePoint> = BTreeMap::new();
    for (line, row) in read_rows(path)? {
        let gpu = field(path, line, &row, "gpu")?
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let model = field(path, line, &row, "model")?.to_string();
        let tp: u32 = number(path, line, "tp", field(path, line, &row, "tp")?)?;
        let load = field(path, line, &row, "batch_or_concurrency_or_qps")?;
        let batch: u32 = match load
            .strip_prefix("batch_size=")
            .and_then(|s| s.split_whitespace().next())
        {
            Some(b) => number(path, line, "batch_or_concurrency_or_qps", b)?,
            None => {
                return Err(row_err(
                    path,
                    line,
                    format!("expected batch_size=N, found '{load}'"),
                ))
            }
        };
        let prompt: u32 = number(
            path,
            line,
            "input_tokens",
            field(path, line, &row, "input_tokens")?,
        )?;
        let output: u32 = number(
            path,
            line,
            "output_tokens",
            field(path, line, &row, "output_tokens")?,
        )?;
        let value: f64 = number(path, line, "value", field(path, line, &row, "value")?)?;
        let p = pts
            .entry((gpu.clone(), model.clone(), tp, batch, prompt, output))
            .or_insert_with(|| SplitwisePoint {
                gpu,
                model,
                tp,
                batch,
                prompt,
                output,
                prefill_ms: f64::NAN,
                decode_iteration_ms: f64::NAN,
                e2e_ms: f64::NAN,
            });
        match field(path, line, &row, "metric")? {
            "prompt_phase_time_batch_median" => p.prefill_ms = value,
            "token_phase_time_per_iteration_median" => p.decode_iteration_ms = value,
            "e2e_time_median" => p.e2e_ms = value,
            other => return Err(row_err(path, line, format!("unexpected metric '{other}'"))),
        }
    }
    Ok(pts.into_values().collect())
}

/// `../shared/reference/llm-serving` as seen from the workspace root or a crate folder.
pub fn default_dir() -> PathBuf {
    for c in [
        "../shared/reference/llm-serving",
        "../../shared/reference/llm-serving",
    ] {
        let p = PathBuf::from(c);
        if p.is_dir() {
            return p;
        }
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.join("../../shared/reference/llm-serving")
}

pub const VLLM_FILE: &str = "vllm-h100-inference-sim.csv";
pub const SPLITWISE_FILE: &str = "splitwise-perf-model-a100-h100.csv";
