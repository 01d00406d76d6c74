//! The performance and power model: how fast a replica serves a request on a given GPU model and
//! share, and how many watts a GPU draws for the work it delivers.
//!
//! Defaults come from measurements on a real H100 (`shared/calibration/h100-sharing-2026-11-23.md`):
//! * an MPS client capped at p % of threads, running alone, gets 32 % (p = 25) and 57 % (p = 50)
//!   of full throughput: the cap limits SMs, and one client rarely fills every SM;
//! * co-running MPS clients share compute almost losslessly: −0.1 % with 2 clients, −2.7 % with
//!   4 clients of 25 %, i.e. about 0.9 % per extra client;
//! * time-slicing 2 processes loses 9.5 % to context switches;
//! * power follows delivered work: 413 W at 32 %, 562 W at 57 %, ~697 W at 100 %, 76 W idle.
//!
//! Across GPU models a request's demand (milliseconds on an exclusive H100) is divided by the
//! model's `relative_speed` (default: memory-bandwidth ratio, see `gpusched_policies::gpu`).

use gpusched_policies::GpuSpec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerfConfig {
    /// (thread cap %, fraction of full throughput) for an MPS client running alone.
    pub mps_alone_curve: Vec<(f64, f64)>,
    /// Throughput lost per extra co-running MPS client.
    pub mps_loss_per_extra_client: f64,
    /// Throughput lost when two or more time-sliced processes share a GPU.
    pub timeslice_loss: f64,
    /// (delivered work fraction, fraction of the idle→TDP range) for power.
    pub power_curve: Vec<(f64, f64)>,
    /// Each extra concurrent request on a replica slows every request on it by this fraction
    /// (continuous batching: throughput grows sub-linearly with the batch).
    pub batch_slowdown: f64,
    /// Tokens → time for requests that carry token counts (see [`TokenPerf`]).
    pub tokens: TokenPerf,
    /// How the batch a request shares its replica with sets its pace (see [`Batching`]).
    pub batching: Batching,
}

/// How the requests in flight on a replica slow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Batching {
    /// A request's time is set when it starts, from the batch size then, and kept: cheap, and
    /// what the default scenario was calibrated with.
    #[default]
    FixedAtStart,
    /// Continuous batching as serving stacks run it: whenever a request joins or leaves the
    /// replica, every request in flight continues at the pace of the new batch size (its
    /// remaining work is re-rated), so a long answer speeds up when the batch drains.
    ProcessorSharing,
}

/// Turns a request's prompt and output tokens into time on a given GPU model (roofline):
/// * prefill is compute-bound: ≈ 2 FLOPs per parameter per prompt token (Kaplan et al. 2020,
///   "Scaling Laws", §2.1), at `prefill_mfu` of the model's dense FP16 peak;
/// * decode is memory-bound: every output token reads all weights once (Williams et al.'s
///   roofline applied to LLM decoding; NVIDIA "Mastering LLM Techniques: Inference
///   Optimization", 2023), at `decode_mbu` of the model's memory bandwidth.
///
/// Peaks are the datasheet figures in `gpusched_policies::gpu` (H100 SXM 989 TFLOPS / 3.35 TB/s,
/// A100 SXM 312 TFLOPS / 1.555–2.039 TB/s). So prefill on an A100 takes 3.2× the H100's time
/// and decode 1.6–2.2×: the H100 gains most in the prompt phase, as Splitwise (Patel et al.,
/// ISCA'24, the paper of the Azure trace) observes when it runs token phases on A100s. The utilisations are conservative
/// rule-of-thumb defaults (serving stacks report 40–60 % MFU for prefill and 60–85 % MBU for
/// decode); override them in `[perf.tokens]`. Batching is the replica's `concurrency` with
/// `batch_slowdown`, and GPU sharing (MPS / time-slicing) divides by the calibrated share,
/// exactly as for millisecond demands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenPerf {
    pub prefill_mfu: f64,
    pub decode_mbu: f64,
    /// Bytes per weight (2 = FP16/BF16); also turns `model_memory_gb` into parameters when a
    /// service has no `model_params_b`.
    pub bytes_per_param: f64,
    /// Fixed time per request (scheduling, tokenisation, sampling), ms.
    pub overhead_ms: f64,
    /// Decode slowdown per extra request batched on the replica. Decode is memory-bound: a
    /// batched step reads the weights once for the whole batch, and each extra sequence adds
    /// only its KV cache (Kwon et al., vLLM, SOSP '23). For an 8B GQA model (Llama-3-8B: 32
    /// layers × 8 KV heads × 128 × 2 (K, V) × 2 bytes = 128 KiB per token) at ~1.2k tokens of
    /// context that is ~160 MB against 16 GB of weights, ~1 % per sequence; 0.02 leaves room
    /// for attention compute and longer contexts. Prefill is compute-bound and batches with
    /// `perf.batch_slowdown` like any other work.
    pub decode_batch_slowdown: f64,
}

impl Default for TokenPerf {
    fn default() -> Self {
        Self {
            prefill_mfu: 0.5,
            decode_mbu: 0.6,
            bytes_per_param: 2.0,
            overhead_ms: 2.0,
            decode_batch_slowdown: 0.02,
        }
    }
}

/// A request's demand: milliseconds on an exclusive H100 (`ms` finite), or token counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    pub ms: f64,
    pub tokens: Option<(u32, u32)>,
}

impl Demand {
    pub fn ms(ms: f64) -> Self {
        Self { ms, tokens: None }
    }
    /// Nothing given: the service's own distribution decides.
    pub fn unknown() -> Self {
        Self {
            ms: f64::NAN,
            tokens: None,
        }
    }
    pub fn is_known(&self) -> bool {
        self.ms.is_finite() || self.tokens.is_some()
    }
}

impl TokenPerf {
    /// Prefill and decode time, ms, for `params_b` billion parameters on an exclusive `gpu`.
    pub fn ms(&self, gpu: &GpuSpec, params_b: f64, input: u32, output: u32) -> f64 {
        let (prefill, decode) = self.phases_ms(gpu, params_b, input, output);
        self.overhead_ms + prefill + decode
    }

    /// (prefill, decode) ms on an exclusive `gpu`, without the fixed overhead.
    pub fn phases_ms(&self, gpu: &GpuSpec, params_b: f64, input: u32, output: u32) -> (f64, f64) {
        let params = params_b * 1e9;
        let prefill_s =
            2.0 * params * input as f64 / (gpu.fp16_dense_tflops * 1e12 * self.prefill_mfu);
        let decode_s = output as f64 * params * self.bytes_per_param
            / (gpu.memory_bandwidth_tbs * 1e12 * self.decode_mbu);
        (prefill_s * 1000.0, decode_s * 1000.0)
    }
}

impl Default for PerfConfig {
    fn default() -> Self {
        Self {
            mps_alone_curve: vec![(0.0, 0.0), (25.0, 0.32), (50.0, 0.57), (100.0, 1.0)],
            mps_loss_per_extra_client: 0.009,
            timeslice_loss: 0.095,
            power_curve: vec![
                (0.0, 0.0),
                (0.32, (413.0 - 76.0) / (697.0 - 76.0)),
                (0.57, (562.0 - 76.0) / (697.0 - 76.0)),
                (1.0, 1.0),
            ],
            batch_slowdown: 0.10,
            tokens: TokenPerf::default(),
            batching: Batching::default(),
        }
    }
}

pub use gpusched_traces::curve::interpolate;

impl PerfConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, pts) in [
            ("mps_alone_curve", &self.mps_alone_curve),
            ("power_curve", &self.power_curve),
        ] {
            if pts.is_empty() || pts.windows(2).any(|w| w[1].0 < w[0].0) {
                return Err(format!(
                    "perf.{name} must be a non-empty list of [x, y] points with x ascending"
                ));
            }
        }
        for (name, v) in [
            ("mps_loss_per_extra_client", self.mps_loss_per_extra_client),
            ("timeslice_loss", self.timeslice_loss),
            ("batch_slowdown", self.batch_slowdown),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("perf.{name} = {v} must be within 0..1"));
            }
        }
        let t = &self.tokens;
        for (name, v) in [("prefill_mfu", t.prefill_mfu), ("decode_mbu", t.decode_mbu)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("perf.tokens.{name} = {v} must be within (0, 1]"));
            }
        }
        if !(0.0..1.0).contains(&t.decode_batch_slowdown) {
            return Err(format!(
                "perf.tokens.decode_batch_slowdown = {} must be within 0..1",
                t.decode_batch_slowdown
            ));
        }
        if !(t.bytes_per_param > 0.0 && t.overhead_ms >= 0.0 && t.overhead_ms.is_finite()) {
            return Err("perf.tokens: bytes_per_param must be > 0 and overhead_ms >= 0".into());
        }
        Ok(())
    }

    /// Time of a request on an exclusive GPU of `gpu`, ms: a millisecond demand divided by the
    /// model's `relative_speed`, or the token model for `params_b` billion parameters.
    pub fn exclusive_ms(&self, d: &Demand, gpu: &GpuSpec, params_b: f64) -> f64 {
        match d.tokens {
            Some((i, o)) if !d.ms.is_finite() => self.tokens.ms(gpu, params_b, i, o),
            _ => d.ms / gpu.relative_speed,
        }
    }

    /// Time of a request that starts while `k` requests (itself included) run on its replica,
    /// on an exclusive GPU of `gpu`, ms. Millisecond demands batch with `batch_slowdown`; token
    /// demands batch their prefill that way and their memory-bound decode with
    /// `tokens.decode_batch_slowdown`.
    pub fn batched_ms(&self, d: &Demand, gpu: &GpuSpec, params_b: f64, k: u32) -> f64 {
        match d.tokens {
            Some((i, o)) if !d.ms.is_finite() => {
                let (prefill, decode) = self.tokens.phases_ms(gpu, params_b, i, o);
                let extra = k.max(1) as f64 - 1.0;
                self.tokens.overhead_ms
                    + prefill * self.batch_factor(k)
                    + decode * (1.0 + self.tokens.decode_batch_slowdown * extra)
            }
            _ => self.exclusive_ms(d, gpu, params_b) * self.batch_factor(k),
        }
    }

    /// Share of full GPU throughput an MPS client capped at `pct` gets.
    /// `busy_share_pct` is the sum of caps of all busy clients (this one included) and `busy`
    /// their count.
    pub fn mps_effective(&self, pct: u8, busy_share_pct: u32, busy: u32) -> f64 {
        let alone = interpolate(&self.mps_alone_curve, pct as f64).max(1e-3);
        if busy <= 1 {
            return alone;
        }
        let loss = 1.0 - self.mps_loss_per_extra_client * (busy - 1) as f64;
        let contended = pct as f64 / (busy_share_pct.max(100) as f64) * loss.max(0.0);
        contended.min(alone).max(1e-3)
    }

    /// Share of a time-sliced GPU one of `busy` busy processes gets.
    pub fn timeslice_effective(&self, busy: u32) -> f64 {
        if busy <= 1 {
            1.0
        } else {
            (1.0 - self.timeslice_loss) / busy as f64
        }
    }

    /// Fraction of the GPU's work delivered by busy MPS clients whose caps add to `busy_share_pct`.
    pub fn mps_delivered(&self, busy_share_pct: u32, busy: u32) -> f64 {
        if busy == 0 {
            return 0.0;
        }
        let loss = 1.0 - self.mps_loss_per_extra_client * (busy - 1) as f64;
        (interpolate(&self.mps_alone_curve, busy_share_pct.min(100) as f64) * loss).clamp(0.0, 1.0)
    }

    /// Watts for a GPU delivering `work` (0..=1) of its full throughput.
    pub fn power_w(&self, idle_w: f64, tdp_w: f64, work: f64) -> f64 {
        idle_w + (tdp_w - idle_w) * interpolate(&self.power_curve, work.clamp(0.0, 1.0))
    }

    /// Multiplier on service time when `k` requests run together on one replica.
    pub fn batch_factor(&self, k: u32) -> f64 {
        1.0 + self.batch_slowdown * (k.max(1) - 1) as f64
    }
}

/// The calibrated primitives the sharing modes' perf hooks combine
/// (`gpusched_policies::modes::SharingModeSpec::effective_share` / `delivered_work`).
impl gpusched_policies::modes::SharingPerf for PerfConfig {
    fn mps_effective(&self, pct: u8, busy_share_pct: u32, busy: u32) -> f64 {
        PerfConfig::mps_effective(self, pct, busy_share_pct, busy)
    }
    fn timeslice_effective(&self, busy: u32) -> f64 {
        PerfConfig::timeslice_effective(self, busy)
    }
    fn mps_delivered(&self, busy_share_pct: u32, busy: u32) -> f64 {
        PerfConfig::mps_delivered(self, busy_share_pct, busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_points_are_reproduced() {
        let p = PerfConfig::default();
        assert!((p.mps_effective(25, 25, 1) - 0.32).abs() < 1e-9);
        assert!((p.mps_effective(50, 50, 1) - 0.57).abs() < 1e-9);
        // 4 × 25 % together: 649.5 / 667.5 = 0.973 total, i.e. ~0.243 each.
        let each = p.mps_effective(25, 100, 4);
        assert!((each * 4.0 - 0.973).abs() < 0.01, "{each}");
        // Two time-sliced processes: 604 / 667.5 = 0.905 total.
        assert!((p.timeslice_effective(2) * 2.0 - 0.905).abs() < 1e-9);
        assert!((p.power_w(76.0, 697.0, 0.32) - 413.0).abs() < 1e-6);
        assert!((p.power_w(76.0, 697.0, 0.57) - 562.0).abs() < 1e-6);
        assert!((p.power_w(76.0, 697.0, 0.0) - 76.0).abs() < 1e-9);
    }

    #[test]
    fn batched_decode_costs_far_less_than_batched_compute() {
        let p = PerfConfig::default();
        let cat = gpusched_policies::GpuCatalog::default();
        let h100 = cat.spec(gpusched_policies::GpuModel::H100_80GB);
        let chat = Demand {
            ms: f64::NAN,
            tokens: Some((1000, 200)),
        };
        let alone = p.batched_ms(&chat, h100, 8.0, 1);
        assert!((alone - p.exclusive_ms(&chat, h100, 8.0)).abs() < 1e-9);
        let sixteen = p.batched_ms(&chat, h100, 8.0, 16);
        // Decode dominates this request: 16 in a batch cost ~1.3×, not the 2.5× of compute.
        assert!(
            sixteen / alone > 1.2 && sixteen / alone < 1.5,
            "{}",
            sixteen / alone
        );
        let fixed = Demand::ms(100.0);
        let ratio = p.batched_ms(&fixed, h100, 8.0, 16) / p.batched_ms(&fixed, h100, 8.0, 1);
        assert!((ratio - p.batch_factor(16)).abs() < 1e-9);
    }

    #[test]
    fn token_model_follows_compute_for_prefill_and_bandwidth_for_decode() {
        use gpusched_policies::{GpuCatalog, GpuModel};
        let p = PerfConfig::default();
        let c = GpuCatalog::default();
        let (h, a) = (c.spec(GpuModel::H100_80GB), c.spec(GpuModel::A100_80GB));
        let pre = |g| p.tokens.ms(g, 8.0, 2000, 0) - p.tokens.overhead_ms;
        let dec = |g| p.tokens.ms(g, 8.0, 0, 200) - p.tokens.overhead_ms;
        assert!(
            (pre(a) / pre(h) - 989.0 / 312.0).abs() < 1e-6,
            "prefill scales with FP16 peak"
        );
        assert!(
            (dec(a) / dec(h) - 3.35 / 2.039).abs() < 1e-6,
            "decode scales with bandwidth"
        );
        // 8B FP16 on an H100: ~8 ms per output token at 60 % MBU, the order vLLM reports.
        let per_token = dec(h) / 200.0;
        assert!(per_token > 5.0 && per_token < 12.0, "{per_token}");
        // A millisecond demand keeps the relative_speed path.
        let d = Demand::ms(100.0);
        assert!((p.exclusive_ms(&d, a, 8.0) - 100.0 / a.relative_speed).abs() < 1e-9);
        let t = Demand {
            ms: f64::NAN,
            tokens: Some((2000, 200)),
        };
        assert!(p.exclusive_ms(&t, a, 8.0) > p.exclusive_ms(&t, h, 8.0));
    }

    #[test]
    fn uncontended_caps_below_full_gpu_do_not_compete() {
        let p = PerfConfig::default();
        // 50 % + 25 % busy leaves idle SMs: the 50 % client keeps at least its cap.
        let e = p.mps_effective(50, 75, 2);
        assert!((0.49..=0.57).contains(&e), "{e}");
    }
}
