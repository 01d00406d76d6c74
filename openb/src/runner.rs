//! Runs any set of pod lists × policies × seeds in parallel (rayon), loading each input once.

use super::csv_io::{read_nodes, read_pods};
use super::error::{OpenbError, Result};
use super::protocol::{run, RunResult, Workload};
use gpusched_policies::openb::{GpuModels, OpenbNode, OpenbPolicy, TypicalPodsConfig};
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The cluster the paper simulates.
pub const DEFAULT_NODE_LIST: &str = "openb_node_list_gpu_node";
/// The paper's 17 pod lists (its run scripts' FILELIST).
pub const PAPER_POD_LISTS: [&str; 17] = [
    "openb_pod_list_default",
    "openb_pod_list_cpu050",
    "openb_pod_list_cpu100",
    "openb_pod_list_cpu200",
    "openb_pod_list_cpu250",
    "openb_pod_list_gpushare100",
    "openb_pod_list_gpushare40",
    "openb_pod_list_gpushare60",
    "openb_pod_list_gpushare80",
    "openb_pod_list_gpuspec10",
    "openb_pod_list_gpuspec20",
    "openb_pod_list_gpuspec25",
    "openb_pod_list_gpuspec33",
    "openb_pod_list_multigpu20",
    "openb_pod_list_multigpu30",
    "openb_pod_list_multigpu40",
    "openb_pod_list_multigpu50",
];
pub const PAPER_SEEDS: [u64; 10] = [42, 43, 44, 45, 46, 47, 48, 49, 50, 51];
pub const PAPER_TUNE: f64 = 1.3;

/// What to run. Pod and node lists are named as their files without `.csv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    pub traces_dir: PathBuf,
    pub node_list: String,
    pub pod_lists: Vec<String>,
    pub policies: Vec<OpenbPolicy>,
    pub seeds: Vec<u64>,
    pub tune: f64,
}

impl Experiment {
    /// The paper's whole evaluation: 17 pod lists × 6 policies × seeds 42–51 at tune 1.3.
    pub fn paper(traces_dir: impl Into<PathBuf>) -> Self {
        Self {
            traces_dir: traces_dir.into(),
            node_list: DEFAULT_NODE_LIST.into(),
            pod_lists: PAPER_POD_LISTS.iter().map(|s| s.to_string()).collect(),
            policies: OpenbPolicy::ALL.to_vec(),
            seeds: PAPER_SEEDS.to_vec(),
            tune: PAPER_TUNE,
        }
    }

    pub fn runs(&self) -> usize {
        self.pod_lists.len() * self.policies.len() * self.seeds.len()
    }
}

fn csv_path(dir: &Path, name: &str) -> PathBuf {
    let file = if name.ends_with(".csv") {
        name.to_string()
    } else {
        format!("{name}.csv")
    };
    dir.join(file)
}

/// Reads the node list and the pod lists of `exp`.
pub fn load(exp: &Experiment) -> Result<(Vec<OpenbNode>, Vec<Workload>)> {
    let mut models = GpuModels::default();
    let nodes = read_nodes(&csv_path(&exp.traces_dir, &exp.node_list), &mut models)?;
    let cfg = TypicalPodsConfig::default();
    let workloads = exp
        .pod_lists
        .par_iter()
        .map(|name| {
            let pods = read_pods(&csv_path(&exp.traces_dir, name), &models)?;
            Ok(Workload::new(name.trim_end_matches(".csv"), pods, &cfg))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((nodes, workloads))
}

/// Runs every job of `exp` on `jobs` threads (0 = all cores); `progress` sees each finished run.
/// Results come back sorted by pod list, policy, seed.
pub fn run_experiment(
    exp: &Experiment,
    jobs: usize,
    progress: &(dyn Fn(&RunResult) + Sync),
) -> Result<Vec<RunResult>> {
    if exp.runs() == 0 {
        return Err(OpenbError::Invalid(
            "nothing to run: no pod lists, policies or seeds".into(),
        ));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| OpenbError::Invalid(format!("thread pool: {e}")))?;
    pool.install(|| {
        let (nodes, workloads) = load(exp)?;
        let mut tasks = Vec::with_capacity(exp.runs());
        for w in &workloads {
            for &p in &exp.policies {
                for &s in &exp.seeds {
                    tasks.push((w, p, s));
                }
            }
        }
        let mut results: Vec<RunResult> = tasks
            .into_par_iter()
            .map(|(w, p, s)| {
                let r = run(&nodes, w, p, s, exp.tune);
                progress(&r);
                r
            })
            .collect();
        results
            .sort_by(|a, b| (&a.workload, a.policy, a.seed).cmp(&(&b.workload, b.policy, b.seed)));
        Ok(results)
    })
}
