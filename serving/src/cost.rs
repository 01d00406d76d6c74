//! How long one engine iteration takes, from the work in it.
//!
//! An iteration runs every layer once over a batch of tokens: chunks of prompts being prefilled
//! and one token for each decoding sequence. On each GPU of a `tp`-way replica it takes
//!
//! ```text
//! t = overhead                                          fixed per iteration (scheduler, launches)
//!   + max( weights / (HBM × mbu) + KV / (HBM × kv_mbu),   roofline: memory traffic and compute
//!          (linear + attention FLOPs) / (peak × mfu) )    overlap, the slower one sets the pace
//!   + decode sequences × per-sequence cost               paged-attention kernels, sampling
//!          (compute per GPU × tp^e: thin per-GPU matrices run below peak)
//!   + all-reduces × latency × log2(tp)                   2 per layer when tp > 1 (NCCL tree/NVLS)
//!   + all-reduce bytes / NVLink bandwidth                ring: 2(tp−1)/tp of the activations
//! ```
//!
//! The roofline is why continuous batching pays: a decode batch of n tokens reads the weights
//! once, so up to ~peak/bandwidth tokens (≈ 300 on an H100, 150 on an A100) ride along almost
//! for free, and a prefill chunk mixed into a decode iteration costs little until it makes the
//! iteration compute-bound. Datasheet peaks are scaled by the GPU's achievable fraction relative
//! to the H100 (`[[gpu]]` in profiles.toml, fitted on Splitwise's A100/H100 pairs), then by the
//! stack's own mfu/mbu.

use crate::arch::ModelArch;
use crate::dtype::Dtype;
use crate::hardware::Accelerator;
use crate::profile::StackProfile;

/// The work in one iteration, summed over the sequences in it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Work {
    /// Prompt tokens computed (all prefill chunks).
    pub prefill_tokens: f64,
    /// Σ over prefill chunks of (query, key) pairs: c·o + c(c+1)/2 for a chunk of c tokens
    /// after o tokens already in the cache.
    pub prefill_pairs: f64,
    /// Σ over prefill chunks of the tokens already cached before them (read once).
    pub prefill_cached: f64,
    /// Sequences decoding one token each.
    pub decode_seqs: f64,
    /// Σ over decoding sequences of their context (attention reads every cached token).
    pub decode_ctx: f64,
}

impl Work {
    pub fn tokens(&self) -> f64 {
        self.prefill_tokens + self.decode_seqs
    }
    /// A prefill chunk of `chunk` tokens after `cached` tokens already in the cache.
    pub fn add_prefill(&mut self, chunk: f64, cached: f64) {
        self.prefill_tokens += chunk;
        self.prefill_pairs += chunk * cached + chunk * (chunk + 1.0) / 2.0;
        self.prefill_cached += cached;
    }
}

/// The stack's constants as the cost model uses them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constants {
    pub overhead_ms: f64,
    pub mbu: f64,
    /// Achieved bandwidth of KV-cache reads (paged attention gathers 16-token blocks: it
    /// streams less efficiently than a weight matrix).
    pub kv_mbu: f64,
    pub mfu: f64,
    pub decode_seq_us: f64,
    pub allreduce_latency_us: f64,
    /// Tensor parallelism thins every GPU's matrices (hidden/tp columns each), and thin GEMMs
    /// run below peak: compute time per GPU is multiplied by tp^this (0 = perfect scaling).
    pub tp_compute_exponent: f64,
}

/// A decode-only iteration of a fixed set of sequences, as lines in the total context `x`:
/// `fixed + max(mem.0 + mem.1·x, cmp.0 + cmp.1·x)` ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeLine {
    pub fixed: f64,
    pub mem: (f64, f64),
    pub cmp: (f64, f64),
}

impl DecodeLine {
    pub fn at(&self, x: f64) -> f64 {
        self.fixed + (self.mem.0 + self.mem.1 * x).max(self.cmp.0 + self.cmp.1 * x)
    }

    /// Total time of `k` iterations of `n` sequences starting from total context `s0`, ms:
    /// iteration j (0-based) runs at context s0 + n(j+1). A max of two lines crosses at most
    /// once, so the sum is two arithmetic series.
    pub fn run_ms(&self, s0: f64, n: f64, k: u64) -> f64 {
        let series = |(a, d): (f64, f64), from: f64, to: f64| {
            // Σ_{j=from}^{to-1} a + d(s0 + n(j+1))
            let cnt = to - from;
            if cnt <= 0.0 {
                return 0.0;
            }
            let sum_j1 = (from + 1.0 + to) * cnt / 2.0;
            cnt * (a + d * s0) + d * n * sum_j1
        };
        let k = k as f64;
        let (m, c) = (self.mem, self.cmp);
        // Iteration index where the compute line overtakes (or falls below) the memory line.
        let slope = (c.1 - m.1) * n;
        let at0 = (c.0 + c.1 * (s0 + n)) - (m.0 + m.1 * (s0 + n));
        let split = if slope == 0.0 {
            if at0 > 0.0 {
                0.0
            } else {
                k
            }
        } else {
            (-at0 / slope).ceil().clamp(0.0, k)
        };
        let body = if slope > 0.0 || (slope == 0.0 && at0 > 0.0) {
            // memory first, compute from `split` on
            series(m, 0.0, split) + series(c, split, k)
        } else {
            series(c, 0.0, split) + series(m, split, k)
        };
        k * self.fixed + body
    }
}

/// The time model of one replica: a model at a dtype, on `tp` GPUs of one kind, run by a stack.
#[derive(Debug, Clone)]
pub struct IterationCost {
    arch: ModelArch,
    dtype: Dtype,
    tp: f64,
    /// Bytes per ms of HBM and FLOPs per ms of tensor cores, achievable (after mbu, mfu and
    /// the GPU's factor); bytes per ms of NVLink.
    hbm: f64,
    hbm_kv: f64,
    flops: f64,
    nvlink: f64,
    kv_per_token_gpu: f64,
    k: Constants,
}

impl IterationCost {
    pub fn new(
        arch: &ModelArch,
        dtype: Dtype,
        gpu: &Accelerator,
        tp: u32,
        profile: &StackProfile,
    ) -> Self {
        let (cf, mf) = crate::profile::gpu_factors(&gpu.name);
        Self::with(arch, dtype, gpu, tp, profile.constants(), cf, mf)
    }

    /// With explicit constants and GPU factors (what the fit explores).
    pub fn with(
        arch: &ModelArch,
        dtype: Dtype,
        gpu: &Accelerator,
        tp: u32,
        k: Constants,
        compute_factor: f64,
        memory_factor: f64,
    ) -> Self {
        Self {
            arch: arch.clone(),
            dtype,
            tp: tp.max(1) as f64,
            hbm: gpu.hbm_tbs * 1e9 * k.mbu * memory_factor,
            hbm_kv: gpu.hbm_tbs * 1e9 * k.kv_mbu * memory_factor,
            flops: gpu.fp16_tflops * 1e9 * dtype.compute_speedup(gpu.fp8) * k.mfu * compute_factor,
            nvlink: gpu.nvlink_gbs * 1e6,
            kv_per_token_gpu: arch.kv_bytes_per_token_per_gpu(dtype, tp.max(1)),
            k,
        }
    }

    /// (fixed ms, memory ms, compute ms) of an iteration.
    fn parts(&self, w: &Work) -> (f64, f64, f64) {
        let a = &self.arch;
        let tokens = w.tokens();
        let weights = a.weight_bytes_read(self.dtype, tokens) / self.tp;
        let kv = (w.decode_ctx + w.prefill_cached) * self.kv_per_token_gpu;
        let mem = weights / self.hbm + kv / self.hbm_kv;
        let attention = a.attention_flops_per_pair() * (w.prefill_pairs + w.decode_ctx);
        let cmp = (a.linear_flops_per_token() * tokens + attention) / self.tp / self.flops
            * self.tp.powf(self.k.tp_compute_exponent);
        let comm = if self.tp > 1.0 {
            let calls = 2.0 * a.layers as f64;
            let bytes = calls * 2.0 * (self.tp - 1.0) / self.tp * tokens * a.hidden as f64 * 2.0;
            calls * self.tp.log2() * self.k.allreduce_latency_us / 1000.0 + bytes / self.nvlink
        } else {
            0.0
        };
        let fixed = self.k.overhead_ms + w.decode_seqs * self.k.decode_seq_us / 1000.0 + comm;
        (fixed, mem, cmp)
    }

    /// The iteration's time, ms.
    pub fn iteration_ms(&self, w: &Work) -> f64 {
        let (fixed, mem, cmp) = self.parts(w);
        fixed + mem.max(cmp)
    }

    /// A decode-only iteration of `seqs` sequences as lines in their total context (the time of
    /// every term is linear in it), so a run of iterations sums in closed form.
    pub fn decode_line(&self, seqs: f64) -> DecodeLine {
        let at = |ctx| {
            self.parts(&Work {
                decode_seqs: seqs,
                decode_ctx: ctx,
                ..Work::default()
            })
        };
        let (f0, m0, c0) = at(0.0);
        let (_, m1, c1) = at(1.0e6);
        DecodeLine {
            fixed: f0,
            mem: (m0, (m1 - m0) / 1.0e6),
            cmp: (c0, (c1 - c0) / 1.0e6),
        }
    }

    pub fn kv_bytes_per_token_per_gpu(&self) -> f64 {
        self.kv_per_token_gpu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_decodes_sums_like_its_iterations() {
        let arch = crate::arch::lookup("llama-2-7b").unwrap();
        for gpu in [Accelerator::h100_sxm_80gb(), Accelerator::a100_sxm_40gb()] {
            let k = Constants {
                overhead_ms: 1.0,
                mbu: 0.8,
                kv_mbu: 0.5,
                mfu: 0.3,
                decode_seq_us: 30.0,
                allreduce_latency_us: 0.0,
                tp_compute_exponent: 0.0,
            };
            let cost = IterationCost::with(arch, Dtype::Bf16, &gpu, 1, k, 1.0, 1.0);
            // Big batches cross from memory- to compute-bound as contexts grow.
            for (n, s0) in [(1.0, 500.0), (64.0, 64.0 * 300.0), (250.0, 250.0 * 100.0)] {
                let line = cost.decode_line(n);
                let steps = 2000u64;
                let by_step: f64 = (0..steps).map(|j| line.at(s0 + n * (j as f64 + 1.0))).sum();
                let direct: f64 = (0..steps)
                    .map(|j| {
                        cost.iteration_ms(&Work {
                            decode_seqs: n,
                            decode_ctx: s0 + n * (j as f64 + 1.0),
                            ..Work::default()
                        })
                    })
                    .sum();
                let closed = line.run_ms(s0, n, steps);
                assert!(
                    (by_step - direct).abs() / direct < 1e-9,
                    "{by_step} {direct}"
                );
                assert!(
                    (closed - direct).abs() / direct < 1e-9,
                    "n={n}: {closed} vs {direct}"
                );
            }
        }
    }

    #[test]
    fn decode_reads_weights_once_for_the_batch() {
        let arch = crate::arch::lookup("llama-3-8b").unwrap();
        let gpu = Accelerator::h100_sxm_80gb();
        let k = Constants {
            overhead_ms: 0.0,
            mbu: 1.0,
            kv_mbu: 1.0,
            mfu: 1.0,
            decode_seq_us: 0.0,
            allreduce_latency_us: 0.0,
            tp_compute_exponent: 0.0,
        };
        let cost = IterationCost::with(arch, Dtype::Bf16, &gpu, 1, k, 1.0, 1.0);
        let one = cost.iteration_ms(&Work {
            decode_seqs: 1.0,
            decode_ctx: 1.0,
            ..Work::default()
        });
        let many = cost.iteration_ms(&Work {
            decode_seqs: 64.0,
            decode_ctx: 64.0,
            ..Work::default()
        });
        // 16 GB of weights at 3.35 TB/s ≈ 4.8 ms either way.
        assert!((one - 4.79).abs() < 0.1, "{one}");
        assert!(many / one < 1.05, "{many} vs {one}");
        // A 4096-token prefill is compute-bound: 2 × 8.03e9 × 4096 FLOPs ≈ 66 ms at 989 TFLOP/s.
        let mut w = Work::default();
        w.add_prefill(4096.0, 0.0);
        let pre = cost.iteration_ms(&w);
        assert!(pre > 66.0 && pre < 80.0, "{pre}");
    }
}
