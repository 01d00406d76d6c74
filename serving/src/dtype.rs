//! Numeric formats of weights and KV cache.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    #[default]
    Bf16,
    Fp16,
    Fp8,
    Int8,
    Int4,
}

impl Dtype {
    pub fn bytes(self) -> f64 {
        match self {
            Dtype::Bf16 | Dtype::Fp16 => 2.0,
            Dtype::Fp8 | Dtype::Int8 => 1.0,
            Dtype::Int4 => 0.5,
        }
    }

    /// Tensor-core throughput relative to 16-bit: FP8 doubles it on Hopper; weight-only integer
    /// formats dequantise to 16-bit and compute at 16-bit speed.
    pub fn compute_speedup(self, fp8_tensor_cores: bool) -> f64 {
        match self {
            Dtype::Fp8 if fp8_tensor_cores => 2.0,
            _ => 1.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            Dtype::Fp16 => "fp16",
            Dtype::Fp8 => "fp8",
            Dtype::Int8 => "int8",
            Dtype::Int4 => "int4",
        }
    }
}
