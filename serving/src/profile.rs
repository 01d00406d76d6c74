//! Serving stacks as named, fitted profiles. The two reference sets disagree on efficiency by
//! about 1.5× (reference/llm-serving/SOURCE.md), so the constants that turn datasheet peaks into
//! time belong to a stack, not to the model or the GPU. The shipped profiles live in
//! `serving/profiles.toml`, written by `gpusched serving fit --write` (never by hand).

use crate::cost::Constants;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The shipped profiles, as `gpusched serving fit --write` left them.
pub const SHIPPED: &str = include_str!("../profiles.toml");

/// One serving stack's fitted constants and scheduler defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackProfile {
    pub name: String,
    pub description: String,
    /// Fixed time of every iteration (scheduling, kernel launches), ms.
    pub iteration_overhead_ms: f64,
    /// Achieved fraction of HBM bandwidth (weights and KV reads).
    pub mbu: f64,
    /// Achieved fraction of HBM bandwidth reading the KV cache (paged attention).
    pub kv_mbu: f64,
    /// Achieved fraction of dense tensor-core peak (matrix and attention FLOPs).
    pub mfu: f64,
    /// Extra time per decoding sequence per iteration (attention kernels over paged blocks,
    /// sampling), µs.
    pub decode_seq_us: f64,
    /// Latency of one all-reduce per log2(tp) step, µs (2 all-reduces per layer when tp > 1).
    pub allreduce_latency_us: f64,
    /// Compute time per GPU grows as tp^this (thin matrices under tensor parallelism).
    pub tp_compute_exponent: f64,
    /// Time outside the engine per request (HTTP, tokenisation, detokenisation, streaming),
    /// added to TTFT and end-to-end latency, ms.
    pub request_overhead_ms: f64,
    /// Long prompts are prefilled in chunks that share iterations with decodes (vLLM V1);
    /// without it a prompt is prefilled whole in one iteration.
    pub chunked_prefill: bool,
    pub defaults: EngineDefaults,
    /// How the constants were obtained (data, method, residuals), as `fit` wrote it.
    pub fit: FitRecord,
}

/// A GPU's achievable fraction of its datasheet compute and bandwidth relative to the H100's,
/// fitted where one stack was measured on both (Splitwise); every stack uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuFactor {
    /// Matches GPU names by prefix, e.g. "A100".
    pub gpu: String,
    pub compute: f64,
    pub memory: f64,
}

/// Scheduler limits a service inherits from its stack unless it sets its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineDefaults {
    pub max_num_seqs: u32,
    pub max_num_batched_tokens: u32,
    pub block_size: u32,
    pub gpu_memory_utilization: f64,
    /// Memory outside weights and KV cache per GPU (activations at the token budget, CUDA
    /// graphs, NCCL buffers), GB.
    pub activation_reserve_gb: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitRecord {
    pub data: String,
    pub method: String,
    pub rows: u32,
    /// Median and worst absolute relative error of the fitted quantity over the rows.
    pub median_abs_error: f64,
    pub max_abs_error: f64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    pub profile: Vec<StackProfile>,
    #[serde(default)]
    pub gpu: Vec<GpuFactor>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown serving stack '{name}'; known stacks: {known}")]
    Unknown { name: String, known: String },
    #[error("profiles file: {0}")]
    Parse(String),
}

/// Parses a profiles file (`[[profile]]` and `[[gpu]]` tables).
pub fn parse(text: &str) -> Result<ProfileFile, ProfileError> {
    let f: ProfileFile = toml::from_str(text).map_err(|e| ProfileError::Parse(e.to_string()))?;
    for p in &f.profile {
        p.validate().map_err(ProfileError::Parse)?;
    }
    for g in &f.gpu {
        if !(g.compute > 0.0 && g.compute.is_finite() && g.memory > 0.0 && g.memory.is_finite()) {
            return Err(ProfileError::Parse(format!(
                "gpu '{}': factors must be positive",
                g.gpu
            )));
        }
    }
    Ok(f)
}

fn shipped_file() -> &'static ProfileFile {
    static CELL: OnceLock<ProfileFile> = OnceLock::new();
    CELL.get_or_init(|| parse(SHIPPED).expect("the shipped profiles.toml parses (tested)"))
}

/// The shipped profiles (parsed once).
pub fn shipped() -> &'static [StackProfile] {
    &shipped_file().profile
}

/// (compute, memory) factor of a GPU relative to the H100 (1, 1 when none is shipped).
pub fn gpu_factors(gpu: &str) -> (f64, f64) {
    shipped_file()
        .gpu
        .iter()
        .find(|g| {
            gpu.to_ascii_uppercase()
                .starts_with(&g.gpu.to_ascii_uppercase())
        })
        .map_or((1.0, 1.0), |g| (g.compute, g.memory))
}

/// The stack used when a service names none.
pub const DEFAULT_STACK: &str = "vllm-0.15";

/// A shipped profile by name.
pub fn lookup(name: &str) -> Result<&'static StackProfile, ProfileError> {
    shipped()
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ProfileError::Unknown {
            name: name.to_string(),
            known: shipped()
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl StackProfile {
    pub fn constants(&self) -> Constants {
        Constants {
            overhead_ms: self.iteration_overhead_ms,
            mbu: self.mbu,
            kv_mbu: self.kv_mbu,
            mfu: self.mfu,
            decode_seq_us: self.decode_seq_us,
            allreduce_latency_us: self.allreduce_latency_us,
            tp_compute_exponent: self.tp_compute_exponent,
        }
    }

    pub fn set_constants(&mut self, k: Constants) {
        self.iteration_overhead_ms = k.overhead_ms;
        self.mbu = k.mbu;
        self.kv_mbu = k.kv_mbu;
        self.mfu = k.mfu;
        self.decode_seq_us = k.decode_seq_us;
        self.allreduce_latency_us = k.allreduce_latency_us;
        self.tp_compute_exponent = k.tp_compute_exponent;
    }

    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        for (k, v, lo, hi) in [
            ("mbu", self.mbu, 1e-3, 1.0),
            ("mfu", self.mfu, 1e-3, 1.0),
            ("kv_mbu", self.kv_mbu, 1e-3, 1.0),
            (
                "iteration_overhead_ms",
                self.iteration_overhead_ms,
                0.0,
                1e3,
            ),
            ("decode_seq_us", self.decode_seq_us, 0.0, 1e5),
            ("allreduce_latency_us", self.allreduce_latency_us, 0.0, 1e4),
            ("request_overhead_ms", self.request_overhead_ms, 0.0, 1e4),
            ("tp_compute_exponent", self.tp_compute_exponent, 0.0, 1.0),
            (
                "defaults.gpu_memory_utilization",
                self.defaults.gpu_memory_utilization,
                0.05,
                1.0,
            ),
            (
                "defaults.activation_reserve_gb",
                self.defaults.activation_reserve_gb,
                0.0,
                1e3,
            ),
        ] {
            if !(v.is_finite() && v >= lo && v <= hi) {
                return Err(format!(
                    "profile '{n}': {k} = {v} must be within {lo}..={hi}"
                ));
            }
        }
        let d = &self.defaults;
        if d.max_num_seqs == 0 || d.max_num_batched_tokens == 0 || d.block_size == 0 {
            return Err(format!("profile '{n}': defaults must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_parse_and_are_named() {
        assert!(shipped().len() >= 2);
        assert!(lookup(DEFAULT_STACK).is_ok());
        assert!(lookup("splitwise-2024").is_ok());
        let e = lookup("tgi-9").unwrap_err().to_string();
        assert!(e.contains("tgi-9") && e.contains("vllm-0.15"), "{e}");
    }

    #[test]
    fn constants_round_trip() {
        let mut p = lookup(DEFAULT_STACK).unwrap().clone();
        let c = p.constants();
        p.set_constants(c);
        assert_eq!(&p, lookup(DEFAULT_STACK).unwrap());
    }
}
