//! GPU models and their published figures.
//!
//! Sources (DOMAIN.md): NVIDIA H100 SXM5 and A100 SXM4 datasheets. The seeds quote "H100 1000
//! TOPS, A100 624 TOPS"; the first is H100's dense FP16 figure and the second A100's dense INT8,
//! so they are not like for like. The scoring term keeps the seeds' figures (they are the seeds'
//! inputs), while the *performance model* compares like with like through `relative_speed`,
//! whose default is the memory-bandwidth ratio (LLM decoding is bandwidth-bound).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The GPU models gpusched knows. An unknown name in a scenario is an error that lists these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GpuModel {
    #[serde(rename = "H100-80GB")]
    H100_80GB,
    #[serde(rename = "A100-40GB")]
    A100_40GB,
    #[serde(rename = "A100-80GB")]
    A100_80GB,
}

impl GpuModel {
    pub const ALL: [GpuModel; 3] = [
        GpuModel::H100_80GB,
        GpuModel::A100_40GB,
        GpuModel::A100_80GB,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GpuModel::H100_80GB => "H100-80GB",
            GpuModel::A100_40GB => "A100-40GB",
            GpuModel::A100_80GB => "A100-80GB",
        }
    }

    /// The family used for soft affinity ("large models prefer H100").
    pub fn family(self) -> GpuFamily {
        match self {
            GpuModel::H100_80GB => GpuFamily::H100,
            GpuModel::A100_40GB | GpuModel::A100_80GB => GpuFamily::A100,
        }
    }

    /// Published figures; every one can be overridden per scenario (`[gpu_models."H100-80GB"]`).
    pub fn default_spec(self) -> GpuSpec {
        match self {
            GpuModel::H100_80GB => GpuSpec {
                memory_gb: 80.0,
                tdp_w: 700.0,
                // Measured here (calibration/h100-sharing-2026-11-23.md): 76 W settled idle.
                idle_w: 76.0,
                seeds_tops: 1000.0,
                fp16_dense_tflops: 989.0,
                memory_bandwidth_tbs: 3.35,
                sms: 132,
                relative_speed: 1.0,
                price_per_hour: 4.00,
            },
            GpuModel::A100_40GB => GpuSpec {
                memory_gb: 40.0,
                tdp_w: 400.0,
                // Typical settled idle of an SXM4 A100 (nvidia-smi readings reported 50–60 W).
                idle_w: 55.0,
                seeds_tops: 624.0,
                fp16_dense_tflops: 312.0,
                memory_bandwidth_tbs: 1.555,
                sms: 108,
                // Bandwidth ratio 1.555 / 3.35.
                relative_speed: 1.555 / 3.35,
                price_per_hour: 1.80,
            },
            GpuModel::A100_80GB => GpuSpec {
                memory_gb: 80.0,
                tdp_w: 400.0,
                idle_w: 60.0,
                seeds_tops: 624.0,
                fp16_dense_tflops: 312.0,
                memory_bandwidth_tbs: 2.039,
                sms: 108,
                relative_speed: 2.039 / 3.35,
                price_per_hour: 2.20,
            },
        }
    }
}

impl fmt::Display for GpuModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuFamily {
    H100,
    A100,
}

/// Figures for one GPU model. `seeds_tops / tdp_w` is the seeds' efficiency (TOPS/W).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    pub memory_gb: f64,
    pub tdp_w: f64,
    pub idle_w: f64,
    /// The seeds' TOPS figure (used by the efficiency score and the autoscaler's efficiency).
    pub seeds_tops: f64,
    pub fp16_dense_tflops: f64,
    pub memory_bandwidth_tbs: f64,
    pub sms: u32,
    /// Speed relative to an exclusive H100 for the same request (1.0 = H100).
    pub relative_speed: f64,
    /// Rental or amortised price, $ per GPU-hour (energy is charged separately).
    pub price_per_hour: f64,
}

impl GpuSpec {
    /// TOPS per watt at TDP, the seeds' efficiency figure.
    pub fn tops_per_watt(&self) -> f64 {
        self.seeds_tops / self.tdp_w
    }
}

/// The specs in force for a run: defaults overridden by the scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuCatalog {
    specs: [GpuSpec; 3],
}

impl Default for GpuCatalog {
    fn default() -> Self {
        Self {
            specs: GpuModel::ALL.map(GpuModel::default_spec),
        }
    }
}

impl GpuCatalog {
    pub fn spec(&self, model: GpuModel) -> &GpuSpec {
        &self.specs[model as usize]
    }
    pub fn set(&mut self, model: GpuModel, spec: GpuSpec) {
        self.specs[model as usize] = spec;
    }
    pub fn max_tdp(&self) -> f64 {
        self.specs.iter().map(|s| s.tdp_w).fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_efficiency_figures_cannot_reach_ten_tops_per_watt() {
        let c = GpuCatalog::default();
        let h = c.spec(GpuModel::H100_80GB).tops_per_watt();
        let a = c.spec(GpuModel::A100_40GB).tops_per_watt();
        assert!((h - 1000.0 / 700.0).abs() < 1e-9);
        assert!(a > h, "A100 is the more efficient by the seeds' figures");
        assert!(h < 10.0 && a < 10.0);
    }

    #[test]
    fn unknown_model_error_lists_the_known_ones() {
        let e = serde_json::from_str::<GpuModel>("\"B200\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("H100-80GB") && e.contains("A100-40GB"), "{e}");
    }
}
