//! LLM services in the simulator: a service that names a `model` is served by one
//! [`gpusched_serving::ReplicaEngine`] per replica (iteration-level continuous batching, KV
//! cache, preemption) instead of the fixed-demand model. This module owns the scenario keys for
//! it (`model`, `dtype`, `[services.serving]`, `[services.slo]`), resolves them at load time, and
//! builds a replica's engine for the GPU it was placed on.

use crate::scenario::{Scenario, ScenarioError, ServiceSpec};
use gpusched_policies::{GpuModel, GpuSpec};
use gpusched_serving::engine::{kv_cache_blocks, DoesNotFit};
use gpusched_serving::profile::{self, StackProfile};
use gpusched_serving::{Accelerator, Dtype, EngineConfig, IterationCost, ModelArch, ReplicaEngine};
use serde::{Deserialize, Serialize};

/// `[services.serving]`: the serving stack and its engine limits (vLLM's flags of the same names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingSpec {
    /// A fitted stack of `serving/profiles.toml` (`gpusched serving profiles`).
    #[serde(default = "default_stack")]
    pub stack: String,
    #[serde(default)]
    pub max_num_seqs: Option<u32>,
    #[serde(default)]
    pub max_num_batched_tokens: Option<u32>,
    /// Longest prompt + output accepted; default the model's trained context (capped at 32k).
    #[serde(default)]
    pub max_model_len: Option<u32>,
    #[serde(default)]
    pub gpu_memory_utilization: Option<f64>,
    #[serde(default)]
    pub block_size: Option<u32>,
    /// Leading prompt tokens every request shares (a system prompt): the prefix cache keeps
    /// them, so they are not prefilled again.
    #[serde(default)]
    pub shared_prefix_tokens: u32,
    /// Token counts for requests that carry none (synthetic traffic); trace rows bring theirs.
    #[serde(default)]
    pub prompt_tokens: Option<u32>,
    #[serde(default)]
    pub output_tokens: Option<u32>,
}

fn default_stack() -> String {
    profile::DEFAULT_STACK.to_string()
}

impl Default for ServingSpec {
    fn default() -> Self {
        Self {
            stack: default_stack(),
            max_num_seqs: None,
            max_num_batched_tokens: None,
            max_model_len: None,
            gpu_memory_utilization: None,
            block_size: None,
            shared_prefix_tokens: 0,
            prompt_tokens: None,
            output_tokens: None,
        }
    }
}

/// `[services.slo]`: LLM objectives as MLPerf and DistServe state them — a percentile of time to
/// first token and of time per output token. A request meets it when both of its own values are
/// within the bounds; the service meets it when the stated percentile of each is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSlo {
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    #[serde(default)]
    pub tpot_ms: Option<f64>,
    #[serde(default = "p99")]
    pub percentile: f64,
}

fn p99() -> f64 {
    99.0
}

/// A service's serving setup, resolved against the catalogues.
#[derive(Debug, Clone)]
pub struct LlmService {
    pub arch: &'static ModelArch,
    pub dtype: Dtype,
    pub tp: u32,
    pub stack: StackProfile,
    pub spec: ServingSpec,
}

impl LlmService {
    pub fn max_num_seqs(&self) -> u32 {
        self.spec
            .max_num_seqs
            .unwrap_or(self.stack.defaults.max_num_seqs)
    }
    pub fn max_num_batched_tokens(&self) -> u32 {
        self.spec
            .max_num_batched_tokens
            .unwrap_or(self.stack.defaults.max_num_batched_tokens)
    }
    pub fn max_model_len(&self) -> u32 {
        self.spec
            .max_model_len
            .unwrap_or(self.arch.max_position.min(32_768))
    }
    pub fn gpu_memory_utilization(&self) -> f64 {
        self.spec
            .gpu_memory_utilization
            .unwrap_or(self.stack.defaults.gpu_memory_utilization)
    }
    pub fn block_size(&self) -> u32 {
        self.spec
            .block_size
            .unwrap_or(self.stack.defaults.block_size)
    }

    /// GPU memory a replica claims on each of its GPUs, GB: what the engine needs at least
    /// (weights share + activation reserve) scaled up by the memory utilisation it runs at, so
    /// the scheduler's MemoryFits filter agrees with [`kv_cache_blocks`].
    pub fn memory_per_gpu_gb(&self) -> f64 {
        const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
        let weights = self.arch.weight_bytes(self.dtype) / self.tp as f64 / GIB;
        (weights + self.stack.defaults.activation_reserve_gb) / self.gpu_memory_utilization() * 1.02
    }

    /// The engine of a replica placed on `tp` GPUs of `model` (datasheet figures from the
    /// scenario's catalogue, so its overrides apply).
    pub fn build_engine(
        &self,
        model: GpuModel,
        spec: &GpuSpec,
    ) -> Result<ReplicaEngine, DoesNotFit> {
        let base = Accelerator::by_name(model.as_str()).unwrap_or_else(Accelerator::h100_sxm_80gb);
        let gpu = Accelerator {
            fp16_tflops: spec.fp16_dense_tflops,
            hbm_tbs: spec.memory_bandwidth_tbs,
            memory_gb: spec.memory_gb,
            ..base
        };
        let d = &self.stack.defaults;
        let kv_blocks = kv_cache_blocks(
            self.arch,
            self.dtype,
            &gpu,
            self.tp,
            self.gpu_memory_utilization(),
            d.activation_reserve_gb,
            self.block_size(),
        )?;
        let cfg = EngineConfig {
            max_num_seqs: self.max_num_seqs(),
            max_num_batched_tokens: self.max_num_batched_tokens(),
            max_model_len: self.max_model_len(),
            block_size: self.block_size(),
            kv_blocks,
            chunked_prefill: self.stack.chunked_prefill,
        };
        Ok(ReplicaEngine::new(
            cfg,
            IterationCost::new(self.arch, self.dtype, &gpu, self.tp, &self.stack),
        ))
    }

    /// The request's (prompt, output) tokens: its own, or the service's defaults.
    pub fn tokens(&self, given: Option<(u32, u32)>) -> Option<(u32, u32)> {
        given.or(match (self.spec.prompt_tokens, self.spec.output_tokens) {
            (Some(p), Some(o)) => Some((p, o)),
            _ => None,
        })
    }
}

/// The resolved serving setup of an LLM service (`None` for other services). The scenario was
/// validated when it loaded, so lookups cannot fail here.
pub fn for_service(spec: &ServiceSpec) -> Option<LlmService> {
    let arch = gpusched_serving::lookup_model(spec.model.as_deref()?).ok()?;
    let serving = spec.serving.clone().unwrap_or_default();
    let stack = profile::lookup(&serving.stack).ok()?.clone();
    Some(LlmService {
        arch,
        dtype: spec.dtype,
        tp: tensor_parallel(spec),
        stack,
        spec: serving,
    })
}

/// Tensor-parallel degree of a service's replicas.
pub fn tensor_parallel(spec: &ServiceSpec) -> u32 {
    spec.tensor_parallel.max(1)
}

/// Resolves every LLM service of a scenario (model, stack, limits), fills in the GPU memory its
/// replicas claim and keeps them off shared GPUs (an engine that sizes its KV cache from GPU
/// memory owns its GPUs). Errors name the key.
pub fn resolve(s: &mut Scenario, source: &str) -> Result<Vec<Option<LlmService>>, ScenarioError> {
    let mut out = Vec::with_capacity(s.services.len());
    for (i, svc) in s.services.iter_mut().enumerate() {
        let bad = |k: &str, problem: String| ScenarioError::Invalid {
            path: source.to_string(),
            key: format!("services[{i}].{k} (service `{}`)", svc.name),
            problem,
        };
        let Some(name) = &svc.model else {
            if svc.serving.is_some() || svc.slo.is_some() {
                let k = if svc.serving.is_some() {
                    "serving"
                } else {
                    "slo"
                };
                return Err(bad(k, "needs `model` (the LLM this service serves)".into()));
            }
            out.push(None);
            continue;
        };
        let arch = gpusched_serving::lookup_model(name).map_err(|e| bad("model", e.to_string()))?;
        let spec = svc.serving.clone().unwrap_or_default();
        let stack = profile::lookup(&spec.stack)
            .map_err(|e| bad("serving.stack", e.to_string()))?
            .clone();
        let llm = LlmService {
            arch,
            dtype: svc.dtype,
            tp: tensor_parallel(svc),
            stack,
            spec,
        };
        check_limits(&llm, &bad)?;
        if let Some(slo) = &svc.slo {
            for (k, v) in [("slo.ttft_ms", slo.ttft_ms), ("slo.tpot_ms", slo.tpot_ms)] {
                if let Some(v) = v {
                    if !(v > 0.0 && v.is_finite() && v <= 3.6e6) {
                        return Err(bad(
                            k,
                            format!("{v} must be a positive number of ms (at most one hour)"),
                        ));
                    }
                }
            }
            if slo.ttft_ms.is_none() && slo.tpot_ms.is_none() {
                return Err(bad("slo", "give ttft_ms, tpot_ms or both".into()));
            }
            if !(slo.percentile > 0.0 && slo.percentile <= 100.0) {
                return Err(bad(
                    "slo.percentile",
                    format!("{} must be within (0, 100]", slo.percentile),
                ));
            }
        }
        if svc.model_memory_gb == 0.0 {
            // The whole replica's: the scheduler gives each of its `tp` GPUs an equal share.
            svc.model_memory_gb = llm.memory_per_gpu_gb() * llm.tp as f64;
        }
        svc.opt_out = true;
        out.push(Some(llm));
    }
    Ok(out)
}

fn check_limits(
    l: &LlmService,
    bad: &dyn Fn(&str, String) -> ScenarioError,
) -> Result<(), ScenarioError> {
    let s = &l.spec;
    let range_u = |k: &str, v: Option<u32>, lo: u32, hi: u32| -> Result<(), ScenarioError> {
        match v {
            Some(v) if v < lo || v > hi => Err(bad(k, format!("{v} must be within {lo}..={hi}"))),
            _ => Ok(()),
        }
    };
    range_u("serving.max_num_seqs", s.max_num_seqs, 1, 65_536)?;
    range_u(
        "serving.max_num_batched_tokens",
        s.max_num_batched_tokens,
        1,
        1 << 20,
    )?;
    range_u("serving.max_model_len", s.max_model_len, 2, 1 << 20)?;
    range_u("serving.block_size", s.block_size, 1, 1024)?;
    range_u("serving.prompt_tokens", s.prompt_tokens, 1, 1 << 20)?;
    range_u("serving.output_tokens", s.output_tokens, 1, 1 << 20)?;
    if s.prompt_tokens.is_some() != s.output_tokens.is_some() {
        return Err(bad(
            "serving.prompt_tokens",
            "give prompt_tokens and output_tokens together".into(),
        ));
    }
    if let Some(u) = s.gpu_memory_utilization {
        if !(u > 0.05 && u <= 1.0) {
            return Err(bad(
                "serving.gpu_memory_utilization",
                format!("{u} must be within (0.05, 1]"),
            ));
        }
    }
    if !l.stack.chunked_prefill && l.max_num_batched_tokens() < l.max_model_len() {
        return Err(bad(
            "serving.max_num_batched_tokens",
            format!(
                "{} < max_model_len {}: stack `{}` prefills whole prompts, so the token budget must hold the longest one",
                l.max_num_batched_tokens(),
                l.max_model_len(),
                l.stack.name
            ),
        ));
    }
    Ok(())
}
