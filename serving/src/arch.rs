//! Model architectures from their public Hugging Face `config.json` files, and what follows from
//! them: weight bytes, KV-cache bytes per token, FLOPs per token, all-reduce payloads.
//!
//! Parameter counts are the published totals (model cards); `tests::params_follow_from_shape`
//! checks each against the count its shape implies, so a typo in a shape is caught.

use crate::dtype::Dtype;
use serde::Serialize;

/// One decoder-only transformer (dense, or mixture-of-experts when `experts > 1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelArch {
    /// The Hugging Face repository id, e.g. `meta-llama/Llama-2-7b-hf`.
    pub name: &'static str,
    /// Other names accepted for it (case-insensitive), e.g. the bare `Llama-2-7b-hf`.
    pub aliases: &'static [&'static str],
    pub layers: u32,
    pub hidden: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    /// Feed-forward (per expert) intermediate size.
    pub intermediate: u32,
    pub vocab: u32,
    /// Experts per MoE layer (1 = dense) and experts each token is routed to.
    pub experts: u32,
    pub experts_per_token: u32,
    /// Total parameters, billions (published).
    pub params_b: f64,
    /// Parameters one token passes through, billions (= `params_b` for dense models).
    pub active_params_b: f64,
    /// Longest context the model was trained for.
    pub max_position: u32,
    /// Input and output embeddings are one matrix (counted once).
    pub tied_embeddings: bool,
}

const fn dense(
    name: &'static str,
    aliases: &'static [&'static str],
    shape: [u32; 7],
    params_b: f64,
    max_position: u32,
) -> ModelArch {
    let [layers, hidden, heads, kv_heads, head_dim, intermediate, vocab] = shape;
    ModelArch {
        name,
        aliases,
        layers,
        hidden,
        heads,
        kv_heads,
        head_dim,
        intermediate,
        vocab,
        experts: 1,
        experts_per_token: 1,
        params_b,
        active_params_b: params_b,
        max_position,
        tied_embeddings: false,
    }
}

/// The catalogue. Shapes: [layers, hidden, heads, KV heads, head size, intermediate, vocabulary].
pub const CATALOG: &[ModelArch] = &[
    dense(
        "meta-llama/Llama-2-7b-hf",
        &["llama-2-7b", "llama2-7b", "Llama-2-7b-chat-hf"],
        [32, 4096, 32, 32, 128, 11008, 32000],
        6.74,
        4096,
    ),
    dense(
        "meta-llama/Llama-2-13b-hf",
        &["llama-2-13b", "llama2-13b", "Llama-2-13b-chat-hf"],
        [40, 5120, 40, 40, 128, 13824, 32000],
        13.02,
        4096,
    ),
    dense(
        "meta-llama/Llama-2-70b-hf",
        &["llama-2-70b", "llama2-70b", "Llama-2-70b-chat-hf"],
        [80, 8192, 64, 8, 128, 28672, 32000],
        68.98,
        4096,
    ),
    dense(
        "meta-llama/Meta-Llama-3-8B",
        &["llama-3-8b", "llama3-8b", "Meta-Llama-3-8B-Instruct"],
        [32, 4096, 32, 8, 128, 14336, 128256],
        8.03,
        8192,
    ),
    dense(
        "meta-llama/Meta-Llama-3-70B",
        &["llama-3-70b", "llama3-70b", "Meta-Llama-3-70B-Instruct"],
        [80, 8192, 64, 8, 128, 28672, 128256],
        70.55,
        8192,
    ),
    dense(
        "meta-llama/Llama-3.1-8B",
        &["llama-3.1-8b", "Meta-Llama-3.1-8B", "Llama-3.1-8B-Instruct"],
        [32, 4096, 32, 8, 128, 14336, 128256],
        8.03,
        131072,
    ),
    dense(
        "meta-llama/Llama-3.1-70B",
        &[
            "llama-3.1-70b",
            "Meta-Llama-3.1-70B",
            "Llama-3.1-70B-Instruct",
        ],
        [80, 8192, 64, 8, 128, 28672, 128256],
        70.55,
        131072,
    ),
    dense(
        "codellama/CodeLlama-34b-hf",
        &[
            "codellama-34b",
            "CodeLlama-34b-Instruct-hf",
            "codellama/CodeLlama-34b-Instruct-hf",
            "CodeLlama-34b-Python-hf",
        ],
        [48, 8192, 64, 8, 128, 22016, 32000],
        33.74,
        16384,
    ),
    dense(
        "mistralai/Mistral-7B-v0.1",
        &[
            "mistral-7b",
            "Mistral-7B-Instruct-v0.1",
            "Mistral-7B-Instruct-v0.2",
            "Mistral-7B-Instruct-v0.3",
            "Mistral-7B-v0.3",
        ],
        [32, 4096, 32, 8, 128, 14336, 32000],
        7.24,
        32768,
    ),
    ModelArch {
        name: "mistralai/Mixtral-8x7B-v0.1",
        aliases: &["mixtral-8x7b", "Mixtral-8x7B-Instruct-v0.1"],
        layers: 32,
        hidden: 4096,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        intermediate: 14336,
        vocab: 32000,
        experts: 8,
        experts_per_token: 2,
        params_b: 46.70,
        active_params_b: 12.88,
        max_position: 32768,
        tied_embeddings: false,
    },
    dense(
        "Qwen/Qwen2.5-7B",
        &["qwen2.5-7b", "Qwen2.5-7B-Instruct"],
        [28, 3584, 28, 4, 128, 18944, 152064],
        7.62,
        131072,
    ),
    dense(
        "Qwen/Qwen2.5-72B",
        &["qwen2.5-72b", "Qwen2.5-72B-Instruct"],
        [80, 8192, 64, 8, 128, 29568, 152064],
        72.71,
        131072,
    ),
    // BLOOM: multi-head attention, a 4·hidden MLP without gating, tied embeddings (Splitwise's
    // second model).
    ModelArch {
        name: "bigscience/bloom",
        aliases: &["bloom-176b", "bloom"],
        layers: 70,
        hidden: 14336,
        heads: 112,
        kv_heads: 112,
        head_dim: 128,
        intermediate: 57344,
        vocab: 250880,
        experts: 1,
        experts_per_token: 1,
        params_b: 176.25,
        active_params_b: 176.25,
        max_position: 2048,
        tied_embeddings: true,
    },
];

/// A name no entry of the catalogue answers to.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown model '{name}'; known models: {}", known_models().join(", "))]
pub struct UnknownModel {
    pub name: String,
}

/// Every catalogue name (the Hugging Face ids), for error messages and `--help`.
pub fn known_models() -> Vec<&'static str> {
    CATALOG.iter().map(|m| m.name).collect()
}

/// Finds a model by its Hugging Face id or an alias, ignoring case; an `org/` prefix may be
/// left out.
pub fn lookup(name: &str) -> Result<&'static ModelArch, UnknownModel> {
    let want = name.trim();
    let bare = |s: &str| s.rsplit('/').next().unwrap_or(s).to_ascii_lowercase();
    CATALOG
        .iter()
        .find(|m| {
            m.name.eq_ignore_ascii_case(want)
                || bare(m.name) == bare(want)
                || m.aliases
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(want) || bare(a) == bare(want))
        })
        .ok_or_else(|| UnknownModel {
            name: name.to_string(),
        })
}

impl ModelArch {
    pub fn is_moe(&self) -> bool {
        self.experts > 1
    }

    /// Bytes of all weights at `dtype`.
    pub fn weight_bytes(&self, dtype: Dtype) -> f64 {
        self.params_b * 1e9 * dtype.bytes()
    }

    /// Parameters of the experts' feed-forward blocks (0 for dense models): gate, up and down
    /// projections of every expert of every layer.
    pub fn expert_params(&self) -> f64 {
        if !self.is_moe() {
            return 0.0;
        }
        3.0 * self.layers as f64
            * self.experts as f64
            * self.hidden as f64
            * self.intermediate as f64
    }

    /// KV-cache bytes per token of context: K and V, for every layer and KV head.
    pub fn kv_bytes_per_token(&self, kv_dtype: Dtype) -> f64 {
        2.0 * self.layers as f64 * self.kv_heads as f64 * self.head_dim as f64 * kv_dtype.bytes()
    }

    /// KV bytes per token held by one GPU of a `tp`-way tensor-parallel replica: KV heads are
    /// split across the GPUs, and replicated when there are fewer heads than GPUs (as vLLM does).
    pub fn kv_bytes_per_token_per_gpu(&self, kv_dtype: Dtype, tp: u32) -> f64 {
        let heads_per_gpu = (self.kv_heads as f64 / tp as f64).max(1.0);
        2.0 * self.layers as f64 * heads_per_gpu * self.head_dim as f64 * kv_dtype.bytes()
    }

    /// FLOPs of the weight matrices per token: 2 per active parameter (multiply and add).
    pub fn linear_flops_per_token(&self) -> f64 {
        2.0 * self.active_params_b * 1e9
    }

    /// Attention FLOPs per (query token × context token): QKᵀ and AV, 2 FLOPs per
    /// multiply-add each, for every layer and query head.
    pub fn attention_flops_per_pair(&self) -> f64 {
        4.0 * self.layers as f64 * self.heads as f64 * self.head_dim as f64
    }

    /// Bytes of weights an iteration of `tokens` tokens reads: everything for a dense model; for
    /// MoE the shared part plus the experts some token was routed to (routing taken as uniform:
    /// an expert is untouched with probability (1 − k/E)^tokens).
    pub fn weight_bytes_read(&self, dtype: Dtype, tokens: f64) -> f64 {
        if !self.is_moe() {
            return self.weight_bytes(dtype);
        }
        let experts = self.expert_params();
        let shared = self.params_b * 1e9 - experts;
        let p_untouched =
            (1.0 - self.experts_per_token as f64 / self.experts as f64).powf(tokens.max(0.0));
        (shared + experts * (1.0 - p_untouched)) * dtype.bytes()
    }

    /// Parameters implied by the shape (embeddings, attention, feed-forward, norms ignored).
    pub fn params_from_shape(&self) -> f64 {
        let (h, l) = (self.hidden as f64, self.layers as f64);
        let q = h * (self.heads * self.head_dim) as f64;
        let kv = 2.0 * h * (self.kv_heads * self.head_dim) as f64;
        let o = (self.heads * self.head_dim) as f64 * h;
        let ffn_mats = if self.name.contains("bloom") {
            2.0
        } else {
            3.0
        };
        let ffn = ffn_mats * h * self.intermediate as f64 * self.experts as f64;
        let embeddings = if self.tied_embeddings { 1.0 } else { 2.0 } * h * self.vocab as f64;
        l * (q + kv + o + ffn) + embeddings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_follow_from_shape() {
        for m in CATALOG {
            let implied = m.params_from_shape() / 1e9;
            let err = (implied - m.params_b).abs() / m.params_b;
            assert!(
                err < 0.02,
                "{}: shape implies {implied:.2} B, catalogue says {}",
                m.name,
                m.params_b
            );
        }
    }

    #[test]
    fn kv_bytes_follow_the_attention_shape() {
        let l2 = lookup("meta-llama/Llama-2-7b-hf").unwrap();
        // 32 layers × 32 heads × 128 × 2 (K, V) × 2 bytes = 512 KiB.
        assert_eq!(l2.kv_bytes_per_token(Dtype::Fp16), 524_288.0);
        let l3 = lookup("llama-3-8b").unwrap();
        assert_eq!(
            l3.kv_bytes_per_token(Dtype::Bf16),
            131_072.0,
            "GQA: 8 KV heads"
        );
        // 70B at TP 8: one KV head per GPU; at TP 16 heads would be replicated, not split.
        let l70 = lookup("Llama-2-70b-hf").unwrap();
        assert_eq!(
            l70.kv_bytes_per_token_per_gpu(Dtype::Fp16, 8) * 8.0,
            l70.kv_bytes_per_token(Dtype::Fp16)
        );
        assert_eq!(
            l70.kv_bytes_per_token_per_gpu(Dtype::Fp16, 16),
            l70.kv_bytes_per_token_per_gpu(Dtype::Fp16, 8)
        );
    }

    #[test]
    fn lookup_accepts_ids_and_aliases_and_names_the_known_ones() {
        assert_eq!(lookup("META-LLAMA/LLAMA-2-70B-HF").unwrap().layers, 80);
        assert_eq!(lookup("CodeLlama-34b-Instruct-hf").unwrap().layers, 48);
        assert_eq!(lookup("Mixtral-8x7B-v0.1").unwrap().experts, 8);
        let e = lookup("gpt-5").unwrap_err().to_string();
        assert!(
            e.contains("unknown model 'gpt-5'")
                && e.contains("meta-llama/Llama-2-7b-hf")
                && e.contains("Qwen/Qwen2.5-72B"),
            "{e}"
        );
    }

    #[test]
    fn moe_reads_only_the_experts_tokens_are_routed_to() {
        let m = lookup("mixtral-8x7b").unwrap();
        let one = m.weight_bytes_read(Dtype::Bf16, 1.0);
        let many = m.weight_bytes_read(Dtype::Bf16, 64.0);
        // One token touches 2 of 8 experts: about the active parameters.
        assert!(
            (one / 2e9 - m.active_params_b).abs() / m.active_params_b < 0.05,
            "{}",
            one / 2e9
        );
        // A batch of 64 touches all of them.
        assert!((many - m.weight_bytes(Dtype::Bf16)).abs() / many < 1e-3);
    }
}
