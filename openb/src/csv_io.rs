//! Readers for the openb node and pod lists. Rows are typed with serde; a malformed row is an
//! error naming the file, line and field, never a panic. Columns a file lacks that the
//! experiment does not need (the `multigpu*` lists have only five) default to empty.

use super::error::{OpenbError, Result};
use gpusched_policies::openb::{GpuModels, OpenbNode, OpenbPod};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
struct NodeRow {
    sn: String,
    cpu_milli: u64,
    memory_mib: u64,
    gpu: u8,
    #[serde(default)]
    model: String,
}

#[derive(Debug, Deserialize)]
struct PodRow {
    name: String,
    cpu_milli: u64,
    memory_mib: u64,
    num_gpu: u8,
    gpu_milli: u32,
    #[serde(default)]
    gpu_spec: String,
}

/// A pod row with the trace times the dynamic replay needs.
#[derive(Debug, Deserialize)]
struct TimedPodRow {
    // Spelled out rather than `#[serde(flatten)]`: csv cannot type flattened fields.
    name: String,
    cpu_milli: u64,
    memory_mib: u64,
    num_gpu: u8,
    gpu_milli: u32,
    #[serde(default)]
    gpu_spec: String,
    creation_time: Option<u64>,
    deletion_time: Option<u64>,
}

/// A pod with its trace times, in integer seconds from the trace start.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedPod {
    pub pod: OpenbPod,
    pub creation_s: u64,
    /// `None`: the pod was never deleted in the trace, so it stays to the end of a replay.
    pub deletion_s: Option<u64>,
}

fn open(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|source| OpenbError::Io {
        path: path.into(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(file))
}

/// Turns a csv error into one that names the line and the column.
fn row_error(path: &Path, headers: &csv::StringRecord, err: csv::Error) -> OpenbError {
    let line = err.position().map_or(0, |p| p.line());
    match err.kind() {
        csv::ErrorKind::Deserialize { err: de, .. } => {
            let field = de
                .field()
                .and_then(|i| headers.get(i as usize))
                .map_or_else(|| "?".to_string(), str::to_string);
            OpenbError::Field {
                path: path.into(),
                line,
                field,
                message: de.kind().to_string(),
            }
        }
        _ => OpenbError::Data {
            path: path.into(),
            message: format!("line {line}: {err}"),
        },
    }
}

fn rows<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<(u64, T)>> {
    let mut rdr = open(path)?;
    let headers = rdr
        .headers()
        .map_err(|e| row_error(path, &csv::StringRecord::new(), e))?
        .clone();
    let mut out = Vec::new();
    for rec in rdr.deserialize::<T>() {
        let pos_line = out.len() as u64 + 2;
        out.push((pos_line, rec.map_err(|e| row_error(path, &headers, e))?));
    }
    Ok(out)
}

/// Reads a node list, registering its GPU models. Nodes with more than eight GPUs or a GPU
/// count without a model are refused.
pub fn read_nodes(path: &Path, models: &mut GpuModels) -> Result<Vec<OpenbNode>> {
    let mut nodes = Vec::new();
    for (line, r) in rows::<NodeRow>(path)? {
        let field_err = |field: &str, message: String| OpenbError::Field {
            path: path.into(),
            line,
            field: field.into(),
            message,
        };
        if r.gpu as usize > gpusched_policies::openb::model::MAX_GPUS {
            return Err(field_err(
                "gpu",
                format!("{} GPUs; at most 8 per node are modelled", r.gpu),
            ));
        }
        let model = if r.model.is_empty() {
            if r.gpu > 0 {
                return Err(field_err("model", "GPU node without a GPU model".into()));
            }
            None
        } else {
            Some(
                models
                    .intern(&r.model)
                    .ok_or_else(|| field_err("model", "more than 32 GPU models".into()))?,
            )
        };
        nodes.push(OpenbNode::new(
            r.sn,
            r.cpu_milli,
            r.memory_mib,
            r.gpu,
            model,
        ));
    }
    if nodes.is_empty() {
        return Err(OpenbError::Data {
            path: path.into(),
            message: "no nodes".into(),
        });
    }
    Ok(nodes)
}

/// openb's GPU request: a fraction of one GPU (`num_gpu` 1, `gpu_milli` 1..=1000) or whole GPUs
/// (`num_gpu` > 1 with `gpu_milli` 1000). Anything else would silently never fit.
fn check_gpu_request(path: &Path, line: u64, num_gpu: u8, gpu_milli: u32) -> Result<()> {
    let bad = |field: &str, message: String| OpenbError::Field {
        path: path.into(),
        line,
        field: field.into(),
        message,
    };
    if gpu_milli > 1000 {
        return Err(bad(
            "gpu_milli",
            format!("{gpu_milli} is more than one GPU (1000); ask for whole GPUs with num_gpu"),
        ));
    }
    if num_gpu > 1 && gpu_milli != 1000 {
        return Err(bad(
            "gpu_milli",
            format!(
                "{gpu_milli} with num_gpu = {num_gpu}: a multi-GPU pod takes whole GPUs (1000)"
            ),
        ));
    }
    Ok(())
}

/// Reads a pod list; `gpu_spec` names are resolved against the node list's models.
pub fn read_pods(path: &Path, models: &GpuModels) -> Result<Vec<OpenbPod>> {
    let mut pods = Vec::new();
    for (line, r) in rows::<PodRow>(path)? {
        check_gpu_request(path, line, r.num_gpu, r.gpu_milli)?;
        let label: Vec<&str> = r.gpu_spec.split('|').filter(|s| !s.is_empty()).collect();
        let spec = models.parse_spec(&r.gpu_spec);
        pods.push(OpenbPod::new(
            r.name,
            r.cpu_milli,
            r.memory_mib,
            r.num_gpu,
            r.gpu_milli,
            spec,
            label.join("|"),
        ));
    }
    if pods.is_empty() {
        return Err(OpenbError::Data {
            path: path.into(),
            message: "no pods".into(),
        });
    }
    Ok(pods)
}

/// Columns a pod list must have to be replayed over time.
pub const TIME_COLUMNS: [&str; 2] = ["creation_time", "deletion_time"];

/// Reads a pod list with its creation and deletion times for the dynamic replay. A list
/// without those columns (the `multigpu*` lists have only five) is refused with an error that
/// names the file and the missing column; a row without a creation time, or deleted before it
/// was created, names its line.
pub fn read_timed_pods(path: &Path, models: &GpuModels) -> Result<Vec<TimedPod>> {
    let headers = open(path)?
        .headers()
        .map_err(|e| row_error(path, &csv::StringRecord::new(), e))?
        .clone();
    for column in TIME_COLUMNS {
        if !headers.iter().any(|h| h == column) {
            return Err(OpenbError::MissingColumn {
                path: path.into(),
                column: column.into(),
                why: "this pod list has no arrival/departure times, so it cannot be replayed \
                      dynamically (the multigpu* lists carry only name, cpu_milli, memory_mib, \
                      num_gpu, gpu_milli); use it with the static `gpusched fgd run` instead"
                    .into(),
            });
        }
    }
    let mut pods = Vec::new();
    for (line, r) in rows::<TimedPodRow>(path)? {
        let field_err = |field: &str, message: &str| OpenbError::Field {
            path: path.into(),
            line,
            field: field.into(),
            message: message.into(),
        };
        let creation_s = r
            .creation_time
            .ok_or_else(|| field_err("creation_time", "empty; a replayed pod needs one"))?;
        if r.deletion_time.is_some_and(|d| d < creation_s) {
            return Err(field_err("deletion_time", "before creation_time"));
        }
        check_gpu_request(path, line, r.num_gpu, r.gpu_milli)?;
        let deletion_s = r.deletion_time;
        let p = r;
        let label: Vec<&str> = p.gpu_spec.split('|').filter(|s| !s.is_empty()).collect();
        let spec = models.parse_spec(&p.gpu_spec);
        pods.push(TimedPod {
            pod: OpenbPod::new(
                p.name,
                p.cpu_milli,
                p.memory_mib,
                p.num_gpu,
                p.gpu_milli,
                spec,
                label.join("|"),
            ),
            creation_s,
            deletion_s,
        });
    }
    if pods.is_empty() {
        return Err(OpenbError::Data {
            path: path.into(),
            message: "no pods".into(),
        });
    }
    Ok(pods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tmp(name: &str, body: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gpusched-openb-{}-{}", std::process::id(), name));
        let mut f = std::fs::File::create(&dir).unwrap();
        f.write_all(body.as_bytes()).unwrap();
        dir
    }

    #[test]
    fn reads_both_pod_layouts() {
        let mut models = GpuModels::default();
        let nodes = read_nodes(
            &tmp(
                "n.csv",
                "sn,cpu_milli,memory_mib,gpu,model\nn0,8000,100,2,T4\nn1,4000,10,0,\n",
            ),
            &mut models,
        )
        .unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].model, None);
        let five = read_pods(
            &tmp(
                "p5.csv",
                "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,100,1,2,1000\n",
            ),
            &models,
        )
        .unwrap();
        assert_eq!(five[0].num_gpu, 2);
        let full = read_pods(
            &tmp(
                "p11.csv",
                "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\np0,100,1,1,500,T4|P100,LS,Running,0,1,\n",
            ),
            &models,
        )
        .unwrap();
        assert_eq!(full[0].spec_label, "T4|P100");
        assert!(full[0].spec.allows(Some(0)));
    }

    #[test]
    fn timed_pods_need_their_time_columns() {
        let models = GpuModels::default();
        let five = tmp(
            "t5.csv",
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,100,1,2,1000\n",
        );
        let err = read_timed_pods(&five, &models).unwrap_err().to_string();
        assert!(
            err.contains("t5.csv") && err.contains("`creation_time`"),
            "{err}"
        );
        let head = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n";
        let ok = tmp(
            "t11.csv",
            &format!("{head}p0,100,1,1,500,,LS,Running,5,9,5\np1,100,1,0,0,,LS,Pending,7,,\n"),
        );
        let pods = read_timed_pods(&ok, &models).unwrap();
        assert_eq!((pods[0].creation_s, pods[0].deletion_s), (5, Some(9)));
        assert_eq!((pods[1].creation_s, pods[1].deletion_s), (7, None));
        let back = tmp(
            "tb.csv",
            &format!("{head}p0,100,1,1,500,,LS,Running,5,9,5\np1,100,1,1,500,,LS,Running,9,3,9\n"),
        );
        let err = read_timed_pods(&back, &models).unwrap_err().to_string();
        assert!(
            err.contains("line 3") && err.contains("deletion_time"),
            "{err}"
        );
        let no_start = tmp("tn.csv", &format!("{head}p0,100,1,1,500,,LS,Running,,9,\n"));
        let err = read_timed_pods(&no_start, &models).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("creation_time"),
            "{err}"
        );
    }

    #[test]
    fn bad_rows_name_file_line_and_field() {
        let models = GpuModels::default();
        let p = tmp(
            "bad.csv",
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,100,1,1,500\np1,lots,1,1,500\n",
        );
        let err = read_pods(&p, &models).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("cpu_milli"), "{err}");
        let missing = read_pods(Path::new("/nonexistent/x.csv"), &models)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("/nonexistent/x.csv"));
    }

    #[test]
    fn gpu_requests_openb_cannot_express_are_refused() {
        let models = GpuModels::default();
        let head = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,100,1,1,500\n";
        for (row, says) in [
            ("p1,100,1,1,5000\n", "more than one GPU"),
            ("p1,100,1,2,500\n", "whole GPUs"),
        ] {
            let p = tmp("gpu.csv", &format!("{head}{row}"));
            let err = read_pods(&p, &models).unwrap_err().to_string();
            assert!(
                err.contains("line 3") && err.contains("gpu_milli") && err.contains(says),
                "{err}"
            );
        }
        let ok = tmp("ok.csv", &format!("{head}p1,100,1,4,1000\np2,1,1,0,0\n"));
        assert_eq!(read_pods(&ok, &models).unwrap().len(), 3);
    }
}
