//! Node inventories as a scenario's cluster: the openb node lists (`sn,cpu_milli,memory_mib,
//! gpu,model`), the spot-GPU fleet (`gpu_model,gpu_capacity_num,cpu_num,node_name`) and PAI's
//! machine spec (`.tar.gz` without a header; columns from the sibling `.header` file:
//! `machine,gpu_type,cap_cpu,cap_mem,cap_gpu`).
//!
//! GPU names map to the engine's models where the hardware is the same for inference:
//! * `A100-SXM4-80GB` → `A100-80GB`;
//! * `A800-SXM4-80GB` → `A100-80GB`: the A800 is the China-market A100 whose only change is
//!   NVLink cut from 600 to 400 GB/s (same SMs, 80 GB HBM2e at 2.0 TB/s, 400 W);
//! * `H800` → `H100-80GB`: the H800 SXM is the China-market H100 SXM with NVLink cut to
//!   400 GB/s (and FP64 reduced); FP16/BF16 tensor throughput, 80 GB HBM3 at 3.35 TB/s and
//!   700 W are the H100 SXM's, so a single-GPU replica performs the same. gpusched does not
//!   model NVLink, so a separate `H800-80GB` model would carry identical figures.
//!
//! Other types (A10, T4, P100, V100, the undisclosed G1–G3 / GPU-series-*, MISC) have no
//! engine model; they are counted and reported as unmapped, never dropped silently.

use crate::scenario::PoolSpec;
use gpusched_policies::GpuModel;
use gpusched_traces::rows::CsvRows;
use gpusched_traces::TraceError;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryFormat {
    OpenbNodes,
    SpotNodes,
    PaiMachines,
}

/// Node counts by (GPU type, GPUs per node).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub groups: BTreeMap<(String, u32), u64>,
    pub cpu_only_nodes: u64,
}

impl Inventory {
    pub fn nodes(&self) -> u64 {
        self.groups.values().sum::<u64>() + self.cpu_only_nodes
    }
    pub fn gpus(&self) -> u64 {
        self.groups.iter().map(|((_, g), n)| *g as u64 * n).sum()
    }
}

/// The engine model a GPU type maps to (see the module doc for why).
pub fn map_model(gpu_type: &str) -> Option<GpuModel> {
    match gpu_type {
        "A100-SXM4-80GB" | "A100-80GB" | "A800-SXM4-80GB" => Some(GpuModel::A100_80GB),
        "A100-SXM4-40GB" | "A100-40GB" => Some(GpuModel::A100_40GB),
        "H800" | "H100" | "H100-80GB" | "H100-SXM5-80GB" => Some(GpuModel::H100_80GB),
        _ => None,
    }
}

/// The inventory format of a file, from its name or header.
pub fn detect(path: &Path, first_line: &str) -> Option<InventoryFormat> {
    let l = first_line.trim_start_matches('\u{feff}').trim();
    if l.starts_with("sn,") && l.contains("model") {
        Some(InventoryFormat::OpenbNodes)
    } else if l.starts_with("gpu_model,gpu_capacity_num") {
        Some(InventoryFormat::SpotNodes)
    } else if path.to_string_lossy().contains("pai_machine_spec") {
        Some(InventoryFormat::PaiMachines)
    } else {
        None
    }
}

/// Reads a whole inventory (streaming; only the counts are kept).
pub fn read(path: &Path, format: InventoryFormat) -> Result<Inventory, TraceError> {
    let pai_names: Vec<String>;
    let (mut rows, c_type, c_gpus) = match format {
        InventoryFormat::OpenbNodes => {
            let r = CsvRows::open(path, None, None)?;
            let (t, g) = (
                r.col("model", "openb node list")?,
                r.col("gpu", "openb node list")?,
            );
            (r, t, g)
        }
        InventoryFormat::SpotNodes => {
            let r = CsvRows::open(path, None, None)?;
            let (t, g) = (
                r.col("gpu_model", "spot-GPU node list")?,
                r.col("gpu_capacity_num", "spot-GPU node list")?,
            );
            (r, t, g)
        }
        InventoryFormat::PaiMachines => {
            let header = path.with_file_name("pai_machine_spec.header");
            pai_names = match std::fs::read_to_string(&header) {
                Ok(h) => h.trim().split(',').map(|s| s.trim().to_string()).collect(),
                Err(_) => ["machine", "gpu_type", "cap_cpu", "cap_mem", "cap_gpu"]
                    .map(String::from)
                    .to_vec(),
            };
            let names: Vec<&str> = pai_names.iter().map(String::as_str).collect();
            let r = CsvRows::open(path, None, Some(&names))?;
            let (t, g) = (
                r.col("gpu_type", "PAI machine spec")?,
                r.col("cap_gpu", "PAI machine spec")?,
            );
            (r, t, g)
        }
    };
    let mut inv = Inventory::default();
    while let Some(step) = rows.advance() {
        step?;
        let gpus = rows.f64(c_gpus)?;
        if !(gpus >= 0.0 && gpus.fract() == 0.0 && gpus <= 255.0) {
            return Err(rows.err(c_gpus, format!("{gpus} is not a GPU count (0..=255)")));
        }
        let ty = rows.str(c_type).to_string();
        if gpus == 0.0 || ty.is_empty() || ty == "CPU" {
            inv.cpu_only_nodes += 1;
        } else {
            *inv.groups.entry((ty, gpus as u32)).or_default() += 1;
        }
    }
    if inv.nodes() == 0 {
        return Err(TraceError {
            path: path.display().to_string(),
            line: 0,
            field: "-".into(),
            problem: "the inventory has no nodes".into(),
        });
    }
    Ok(inv)
}

/// Pools for the mappable GPU types, `scale` of the nodes each (at least 1 where there are
/// any), and the unmapped (type, GPUs) counts.
pub fn to_pools(inv: &Inventory, scale: f64) -> (Vec<PoolSpec>, Vec<(String, u64)>) {
    let mut pools = Vec::new();
    let mut unmapped: BTreeMap<String, u64> = BTreeMap::new();
    for ((ty, per_node), n) in &inv.groups {
        match map_model(ty) {
            Some(model) => {
                let nodes = ((*n as f64 * scale).round() as u32).max(1);
                let name = format!(
                    "{}-{}x{}",
                    ty.to_lowercase()
                        .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
                    per_node,
                    "gpu"
                );
                pools.push(PoolSpec {
                    name,
                    gpu_model: model,
                    nodes,
                    gpus_per_node: *per_node as u8,
                    sharing: None,
                    mig_layout: Vec::new(),
                });
            }
            None => *unmapped.entry(ty.clone()).or_default() += *per_node as u64 * n,
        }
    }
    (pools, unmapped.into_iter().collect())
}

/// `pools_from = { path = "...", scale = 0.01 }` in a scenario.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventorySpec {
    /// An openb node list, the spot-GPU `node_info_df.csv` or PAI's `pai_machine_spec.tar.gz`;
    /// relative to the scenario's folder.
    pub path: std::path::PathBuf,
    /// Fraction of each node group to keep (at least one node per group).
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

/// Reads an inventory and returns its mappable pools; an error names the file, the scale, or
/// the lack of any GPU type the engine models.
pub fn pools_from(path: &Path, scale: f64) -> Result<Vec<PoolSpec>, String> {
    if !(scale > 0.0 && scale <= 1.0) {
        return Err(format!("scale {scale} must be within (0, 1]"));
    }
    let head = gpusched_traces::first_line(path, None).map_err(|e| e.to_string())?;
    let format = detect(path, &head).ok_or_else(|| {
        format!("{} is not a node inventory (openb node list, spot-GPU node_info_df.csv or PAI pai_machine_spec)", path.display())
    })?;
    let inv = read(path, format).map_err(|e| e.to_string())?;
    let (pools, unmapped) = to_pools(&inv, scale);
    if pools.is_empty() {
        let types: Vec<String> = unmapped.iter().map(|(t, n)| format!("{n} {t}")).collect();
        return Err(format!(
            "{}: no GPU type the engine models (has {})",
            path.display(),
            types.join(", ")
        ));
    }
    Ok(pools)
}

/// The pools as scenario TOML.
pub fn pools_toml(pools: &[PoolSpec]) -> String {
    let mut s = String::new();
    for p in pools {
        s.push_str(&format!(
            "[[pools]]\nname = \"{}\"\ngpu_model = \"{}\"\nnodes = {}\ngpus_per_node = {}\n\n",
            p.name,
            p.gpu_model.as_str(),
            p.nodes,
            p.gpus_per_node
        ));
    }
    s
}
