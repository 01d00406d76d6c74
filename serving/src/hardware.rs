//! The accelerator figures the serving model needs: datasheet peaks, not measurements (the
//! efficiencies that turn peaks into time belong to a serving stack, see [`crate::profile`]).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accelerator {
    pub name: String,
    /// Dense 16-bit tensor-core peak, TFLOP/s.
    pub fp16_tflops: f64,
    /// HBM bandwidth, TB/s.
    pub hbm_tbs: f64,
    /// HBM capacity, GB (10⁹ bytes, as datasheets state it).
    pub memory_gb: f64,
    /// NVLink bandwidth per GPU, one direction, GB/s (what a ring all-reduce moves data at).
    pub nvlink_gbs: f64,
    /// FP8 tensor cores (Hopper and later).
    pub fp8: bool,
}

impl Accelerator {
    /// H100 SXM5 80 GB: 989 TFLOP/s dense BF16, 3.35 TB/s HBM3, NVLink 4 at 450 GB/s a direction.
    pub fn h100_sxm_80gb() -> Self {
        Self::new("H100-80GB", 989.0, 3.35, 80.0, 450.0, true)
    }
    /// A100 SXM4 80 GB: 312 TFLOP/s dense BF16, 2.039 TB/s HBM2e, NVLink 3 at 300 GB/s a direction.
    pub fn a100_sxm_80gb() -> Self {
        Self::new("A100-80GB", 312.0, 2.039, 80.0, 300.0, false)
    }
    /// A100 SXM4 40 GB: as the 80 GB part with 1.555 TB/s HBM2.
    pub fn a100_sxm_40gb() -> Self {
        Self::new("A100-40GB", 312.0, 1.555, 40.0, 300.0, false)
    }

    pub fn new(
        name: &str,
        fp16_tflops: f64,
        hbm_tbs: f64,
        memory_gb: f64,
        nvlink_gbs: f64,
        fp8: bool,
    ) -> Self {
        Self {
            name: name.to_string(),
            fp16_tflops,
            hbm_tbs,
            memory_gb,
            nvlink_gbs,
            fp8,
        }
    }

    /// The three parts the reference data and the simulator's pools use, by their names.
    pub fn by_name(name: &str) -> Option<Self> {
        let n = name.to_ascii_uppercase();
        if n.starts_with("H100") && n.contains("PCIE") {
            // H100 PCIe 80 GB: 756 TFLOP/s, 2.0 TB/s HBM2e, NVLink bridge 300 GB/s a direction.
            Some(Self::new("H100-PCIe-80GB", 756.0, 2.0, 80.0, 300.0, true))
        } else if n.starts_with("H100") {
            Some(Self::h100_sxm_80gb())
        } else if n.starts_with("A100") && n.contains("PCIE") && !n.contains("40") {
            // A100 PCIe 80 GB: the SXM part's compute at 1.935 TB/s.
            Some(Self::new(
                "A100-PCIe-80GB",
                312.0,
                1.935,
                80.0,
                300.0,
                false,
            ))
        } else if n.starts_with("A100") && n.contains("40") {
            Some(Self::a100_sxm_40gb())
        } else if n.starts_with("A100") {
            Some(Self::a100_sxm_80gb())
        } else {
            None
        }
    }
}
