//! The paper's result tables: writers in exactly the reference layout
//! (`workload,sc_policy,tune,seed,[total_gpus,]0,…,130`, numbers as Python prints them) plus a
//! failed-pods table, and a reader for comparing against a reference folder.

use super::error::{OpenbError, Result};
use super::metrics::COLUMNS;
use super::protocol::RunResult;
use std::io::Write;
use std::path::Path;

pub const ALLO_FILE: &str = "analysis_allo_discrete.csv";
pub const FRAG_FILE: &str = "analysis_frag_discrete.csv";
pub const FRAG_RATIO_FILE: &str = "analysis_frag_ratio_discrete.csv";
pub const FAIL_FILE: &str = "analysis_fail.csv";

/// One row of a result table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    pub workload: String,
    pub policy: String,
    pub tune: String,
    pub seed: u64,
    pub values: Vec<Option<f64>>,
}

/// Python's `repr` of a float for the values we write (shortest round-trip, `2.0` not `2`).
pub fn py_float(x: f64) -> String {
    if x.is_finite() {
        format!("{x:?}")
    } else {
        String::new()
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> OpenbError + '_ {
    move |source| OpenbError::Io {
        path: path.into(),
        source,
    }
}

fn write_table(
    path: &Path,
    results: &[RunResult],
    with_total: bool,
    pick: impl Fn(&RunResult) -> &[Option<f64>],
) -> Result<()> {
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut out = std::io::BufWriter::new(file);
    let mut header = String::from("workload,sc_policy,tune,seed");
    if with_total {
        header.push_str(",total_gpus");
    }
    for k in 0..COLUMNS {
        header.push_str(&format!(",{k}"));
    }
    writeln!(out, "{header}").map_err(io_err(path))?;
    for r in results {
        let mut line = format!(
            "{},{},{},{}",
            r.workload,
            r.policy.label(),
            py_float(r.tune),
            r.seed
        );
        if with_total {
            line.push_str(&format!(",{}", r.total_gpus));
        }
        for v in pick(r) {
            line.push(',');
            if let Some(v) = v {
                line.push_str(&py_float(*v));
            }
        }
        writeln!(out, "{line}").map_err(io_err(path))?;
    }
    out.flush().map_err(io_err(path))
}

/// Writes the three tables and the failed-pods table into `dir` (created if needed).
pub fn write_all(dir: &Path, results: &[RunResult]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    write_table(&dir.join(ALLO_FILE), results, true, |r| &r.curves.allo)?;
    write_table(&dir.join(FRAG_FILE), results, false, |r| &r.curves.frag)?;
    write_table(&dir.join(FRAG_RATIO_FILE), results, false, |r| {
        &r.curves.frag_ratio
    })?;
    let path = dir.join(FAIL_FILE);
    let file = std::fs::File::create(&path).map_err(io_err(&path))?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "workload,sc_policy,tune,seed,arrived_pods,failed_pods,failed_gpu_milli,final_alloc_pct,final_frag_pct")
        .map_err(io_err(&path))?;
    for r in results {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{:.2},{:.2}",
            r.workload,
            r.policy.label(),
            py_float(r.tune),
            r.seed,
            r.arrived_pods,
            r.failed_pods,
            r.failed_gpu_milli,
            r.final_alloc_pct,
            r.final_frag_pct
        )
        .map_err(io_err(&path))?;
    }
    out.flush().map_err(io_err(&path))
}

/// Reads a table in the reference layout (with or without `total_gpus`).
pub fn read_table(path: &Path) -> Result<Vec<TableRow>> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(file);
    let headers = rdr
        .headers()
        .map_err(|e| OpenbError::Data {
            path: path.into(),
            message: e.to_string(),
        })?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(w), Some(p), Some(t), Some(s), Some(first)) = (
        col("workload"),
        col("sc_policy"),
        col("tune"),
        col("seed"),
        col("0"),
    ) else {
        return Err(OpenbError::Data {
            path: path.into(),
            message: "header lacks workload, sc_policy, tune, seed or the 0 column".into(),
        });
    };
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let rec = rec.map_err(|e| OpenbError::Data {
            path: path.into(),
            message: format!("line {line}: {e}"),
        })?;
        let field = |idx: usize| rec.get(idx).unwrap_or("");
        let seed = field(s).parse::<u64>().map_err(|e| OpenbError::Field {
            path: path.into(),
            line,
            field: "seed".into(),
            message: e.to_string(),
        })?;
        let mut values = Vec::with_capacity(COLUMNS);
        for idx in first..rec.len() {
            let v = field(idx).trim();
            values.push(if v.is_empty() {
                None
            } else {
                Some(v.parse::<f64>().map_err(|e| OpenbError::Field {
                    path: path.into(),
                    line,
                    field: headers.get(idx).unwrap_or("?").into(),
                    message: e.to_string(),
                })?)
            });
        }
        rows.push(TableRow {
            workload: field(w).into(),
            policy: field(p).into(),
            tune: field(t).into(),
            seed,
            values,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        assert_eq!(py_float(2.0), "2.0");
        assert_eq!(py_float(12.99), "12.99");
        assert_eq!(py_float(1.3), "1.3");
        assert_eq!(py_float(f64::NAN), "");
    }
}
