//! The model beside the measurements: every row of `reference/llm-serving/` replayed as it was
//! measured (same model, GPU, tensor parallelism, engine limits, constant-rate stages, the
//! measured mean lengths), with signed errors and the targets they are held to.

use crate::arch::{self, ModelArch};
use crate::cost::{IterationCost, Work};
use crate::dtype::Dtype;
use crate::engine::{kv_cache_blocks, EngineConfig, ReplicaEngine};
use crate::hardware::Accelerator;
use crate::profile::StackProfile;
use crate::reference::{SplitwisePoint, VllmStage};
use crate::replay::{run_stages, Stage, StageResult};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Targets of issue 15 (fractions).
pub const E2E_P50_TARGET: f64 = 0.15;
pub const DECODE_TARGET: f64 = 0.15;
pub const TTFT_P50_TARGET: f64 = 0.25;
pub const TTFT_P50_ABS_MS: f64 = 15.0;
pub const PHASE_TARGET: f64 = 0.15;
pub const RATIO_TARGET: f64 = 0.15;

/// A client timeout long enough never to cut a healthy stage (inference-perf's default is far
/// longer than any latency in the reference runs).
pub const CLIENT_TIMEOUT_S: f64 = 300.0;

#[derive(Debug, Clone)]
pub struct VllmRow {
    pub measured: VllmStage,
    pub ours: StageResult,
}

#[derive(Debug, thiserror::Error)]
pub enum FidelityError {
    #[error(transparent)]
    Model(#[from] arch::UnknownModel),
    #[error("unknown GPU '{0}' (known: H100-*, A100-80GB, A100-40GB)")]
    Gpu(String),
    #[error(transparent)]
    Fit(#[from] crate::engine::DoesNotFit),
}

/// Builds a replica engine as a reference run configured it.
pub fn engine_for(
    arch: &ModelArch,
    gpu: &Accelerator,
    tp: u32,
    profile: &StackProfile,
    max_num_seqs: u32,
    max_num_batched_tokens: u32,
    max_model_len: u32,
) -> Result<ReplicaEngine, FidelityError> {
    let d = &profile.defaults;
    let blocks = kv_cache_blocks(
        arch,
        Dtype::Bf16,
        gpu,
        tp,
        d.gpu_memory_utilization,
        d.activation_reserve_gb,
        d.block_size,
    )?;
    let cfg = EngineConfig {
        max_num_seqs,
        max_num_batched_tokens,
        max_model_len,
        block_size: d.block_size,
        kv_blocks: blocks,
        chunked_prefill: profile.chunked_prefill,
    };
    Ok(ReplicaEngine::new(
        cfg,
        IterationCost::new(arch, Dtype::Bf16, gpu, tp, profile),
    ))
}

/// Replays every vLLM run (its stages back to back on one warm engine).
pub fn replay_vllm(
    stages: &[VllmStage],
    profile: &StackProfile,
) -> Result<Vec<VllmRow>, FidelityError> {
    let mut runs: BTreeMap<&str, Vec<&VllmStage>> = BTreeMap::new();
    for s in stages {
        runs.entry(s.run.as_str()).or_default().push(s);
    }
    let mut rows = Vec::new();
    for (_, mut run) in runs {
        run.sort_by_key(|s| s.stage);
        let first = run[0];
        let arch = arch::lookup(&first.model)?;
        let gpu = Accelerator::by_name(&first.gpu)
            .ok_or_else(|| FidelityError::Gpu(first.gpu.clone()))?;
        let mut engine = engine_for(
            arch,
            &gpu,
            first.tp,
            profile,
            first.max_num_seqs,
            first.max_num_batched_tokens,
            first.max_model_len,
        )?;
        let load: Vec<Stage> = run
            .iter()
            .map(|s| Stage {
                rate: s.rate,
                duration_s: s.duration_s,
                prompt: s.input_tokens.round() as u32,
                output: s.output_tokens.round() as u32,
                shared_prefix: s.shared_prefix,
            })
            .collect();
        let results = run_stages(
            &mut engine,
            &load,
            profile.request_overhead_ms,
            CLIENT_TIMEOUT_S,
        );
        for (s, r) in run.into_iter().zip(results) {
            rows.push(VllmRow {
                measured: s.clone(),
                ours: r,
            });
        }
    }
    Ok(rows)
}

/// Splitwise's phase times as the model gives them for one static batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhaseTimes {
    pub prefill_ms: f64,
    pub decode_iteration_ms: f64,
    pub e2e_ms: f64,
}

/// The work of a static batch's prefill: `batch` prompts of `prompt` tokens in one iteration.
pub fn prefill_work(batch: u32, prompt: u32) -> Work {
    let mut w = Work::default();
    for _ in 0..batch {
        w.add_prefill(prompt as f64, 0.0);
    }
    w
}

/// The work of the median decode iteration of a static batch: context prompt + output/2.
pub fn decode_work(batch: u32, prompt: u32, output: u32) -> Work {
    Work {
        decode_seqs: batch as f64,
        decode_ctx: batch as f64 * (prompt as f64 + output as f64 / 2.0),
        ..Work::default()
    }
}

pub fn phase_times(
    p: &SplitwisePoint,
    profile: &StackProfile,
) -> Result<PhaseTimes, FidelityError> {
    let arch = arch::lookup(&p.model)?;
    let gpu = Accelerator::by_name(&p.gpu).ok_or_else(|| FidelityError::Gpu(p.gpu.clone()))?;
    let cost = IterationCost::new(arch, Dtype::Bf16, &gpu, p.tp, profile);
    let prefill = cost.iteration_ms(&prefill_work(p.batch, p.prompt));
    let decode = cost.iteration_ms(&decode_work(p.batch, p.prompt, p.output));
    // E2E: the prefill, then output − 1 decode iterations whose context grows by one each.
    let b = p.batch as f64;
    let decodes = cost
        .decode_line(b)
        .run_ms(b * p.prompt as f64, b, (p.output.max(1) - 1) as u64);
    Ok(PhaseTimes {
        prefill_ms: prefill,
        decode_iteration_ms: decode,
        e2e_ms: prefill + decodes,
    })
}

/// Signed relative error of `ours` against `measured`.
pub fn rel(ours: f64, measured: f64) -> f64 {
    (ours - measured) / measured
}

/// One line of the Splitwise table.
#[derive(Debug, Clone)]
pub struct SplitwiseRow {
    pub point: SplitwisePoint,
    pub ours: PhaseTimes,
}

pub fn replay_splitwise(
    points: &[SplitwisePoint],
    profile: &StackProfile,
) -> Result<Vec<SplitwiseRow>, FidelityError> {
    points
        .iter()
        .map(|p| {
            Ok(SplitwiseRow {
                point: p.clone(),
                ours: phase_times(p, profile)?,
            })
        })
        .collect()
}

/// A100 ÷ H100 time for every configuration measured on both, (measured, ours) per phase.
pub fn a100_h100_ratios(rows: &[SplitwiseRow]) -> Vec<(String, f64, f64, f64, f64)> {
    let key = |r: &SplitwiseRow| {
        (
            r.point.model.clone(),
            r.point.tp,
            r.point.batch,
            r.point.prompt,
            r.point.output,
        )
    };
    let h100: BTreeMap<_, &SplitwiseRow> = rows
        .iter()
        .filter(|r| r.point.is_h100())
        .map(|r| (key(r), r))
        .collect();
    rows.iter()
        .filter(|r| !r.point.is_h100() && !r.point.suspect())
        .filter_map(|a| {
            let h = h100.get(&key(a))?;
            let p = &a.point;
            Some((
                format!(
                    "{} tp{} b{} p{} o{}",
                    p.model, p.tp, p.batch, p.prompt, p.output
                ),
                p.prefill_ms / h.point.prefill_ms,
                a.ours.prefill_ms / h.ours.prefill_ms,
                p.decode_iteration_ms / h.point.decode_iteration_ms,
                a.ours.decode_iteration_ms / h.ours.decode_iteration_ms,
            ))
        })
        .collect()
}

/// Pass/fail counts against the targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub vllm_rows: usize,
    pub vllm_within: usize,
    pub splitwise_values: usize,
    pub splitwise_within: usize,
    pub ratios: usize,
    pub ratios_within: usize,
    pub median_abs_e2e_p50: f64,
    pub median_abs_decode: f64,
    pub median_abs_ttft_p50: f64,
    pub median_abs_phase: f64,
    pub median_abs_ratio: f64,
}

pub fn vllm_row_within(r: &VllmRow) -> bool {
    let m = &r.measured;
    let e2e = rel(r.ours.e2e_p50, m.get("e2e_latency_p50")).abs() <= E2E_P50_TARGET;
    let dec = rel(
        r.ours.decode_ms_per_token,
        m.get("decode_time_per_token_from_means"),
    )
    .abs()
        <= DECODE_TARGET;
    let ttft_m = m.get("ttft_p50");
    let ttft = rel(r.ours.ttft_p50, ttft_m).abs() <= TTFT_P50_TARGET
        || (r.ours.ttft_p50 - ttft_m).abs() <= TTFT_P50_ABS_MS;
    e2e && dec && ttft
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn verdict(vllm: &[VllmRow], splitwise: &[SplitwiseRow]) -> Verdict {
    let fitted: Vec<&SplitwiseRow> = splitwise.iter().filter(|r| !r.point.suspect()).collect();
    let phase_errs: Vec<f64> = fitted
        .iter()
        .flat_map(|r| {
            [
                rel(r.ours.prefill_ms, r.point.prefill_ms),
                rel(r.ours.decode_iteration_ms, r.point.decode_iteration_ms),
            ]
        })
        .collect();
    let ratios = a100_h100_ratios(splitwise);
    let ratio_errs: Vec<f64> = ratios
        .iter()
        .flat_map(|(_, mp, op, md, od)| [rel(*op, *mp), rel(*od, *md)])
        .collect();
    Verdict {
        vllm_rows: vllm.len(),
        vllm_within: vllm.iter().filter(|r| vllm_row_within(r)).count(),
        splitwise_values: phase_errs.len(),
        splitwise_within: phase_errs
            .iter()
            .filter(|e| e.abs() <= PHASE_TARGET)
            .count(),
        ratios: ratio_errs.len(),
        ratios_within: ratio_errs
            .iter()
            .filter(|e| e.abs() <= RATIO_TARGET)
            .count(),
        median_abs_e2e_p50: median(
            vllm.iter()
                .map(|r| rel(r.ours.e2e_p50, r.measured.get("e2e_latency_p50")).abs())
                .collect(),
        ),
        median_abs_decode: median(
            vllm.iter()
                .map(|r| {
                    rel(
                        r.ours.decode_ms_per_token,
                        r.measured.get("decode_time_per_token_from_means"),
                    )
                    .abs()
                })
                .collect(),
        ),
        median_abs_ttft_p50: median(
            vllm.iter()
                .map(|r| rel(r.ours.ttft_p50, r.measured.get("ttft_p50")).abs())
                .collect(),
        ),
        median_abs_phase: median(phase_errs.iter().map(|e| e.abs()).collect()),
        median_abs_ratio: median(ratio_errs.iter().map(|e| e.abs()).collect()),
    }
}

fn pct(e: f64) -> String {
    format!("{:+.1}%", e * 100.0)
}

/// The vLLM table in markdown: ours beside measured, signed errors.
pub fn vllm_table(rows: &[VllmRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| run | stage | req/s | TTFT p50 ms (ours / measured / err) | TTFT p99 ms | E2E p50 ms | E2E p99 ms | decode ms/token | output tok/s | failed | within |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let m = &r.measured;
        let o = &r.ours;
        let cell = |ours: f64, key: &str| {
            let meas = m.get(key);
            let abs = if meas < 100.0 {
                format!(", {:+.1} ms", ours - meas)
            } else {
                String::new()
            };
            format!("{ours:.1} / {meas:.1} / {}{abs}", pct(rel(ours, meas)))
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
            m.run,
            m.stage,
            m.rate,
            cell(o.ttft_p50, "ttft_p50"),
            cell(o.ttft_p99, "ttft_p99"),
            cell(o.e2e_p50, "e2e_latency_p50"),
            cell(o.e2e_p99, "e2e_latency_p99"),
            cell(o.decode_ms_per_token, "decode_time_per_token_from_means"),
            cell(o.output_tokens_per_s, "output_tokens_per_sec"),
            o.failed,
            m.get("requests_failed"),
            if vllm_row_within(r) { "yes" } else { "NO" }
        );
    }
    s
}

/// The Splitwise table in markdown.
pub fn splitwise_table(rows: &[SplitwiseRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| GPU | model | TP | batch | prompt | output | prefill ms (ours / measured / err) | decode iteration ms | E2E ms |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let p = &r.point;
        let c = |o: f64, m: f64| format!("{o:.1} / {m:.1} / {}", pct(rel(o, m)));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}{} | {} | {} | {} | {} | {} |",
            p.gpu,
            p.model,
            p.tp,
            p.batch,
            if p.suspect() {
                " (suspect, not fitted)"
            } else {
                ""
            },
            p.prompt,
            p.output,
            c(r.ours.prefill_ms, p.prefill_ms),
            c(r.ours.decode_iteration_ms, p.decode_iteration_ms),
            c(r.ours.e2e_ms, p.e2e_ms)
        );
    }
    s
}

pub fn ratio_table(rows: &[SplitwiseRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| configuration | prefill A100:H100 (measured / ours / err) | decode A100:H100 |"
    );
    let _ = writeln!(s, "|---|---|---|");
    for (k, mp, op, md, od) in a100_h100_ratios(rows) {
        let _ = writeln!(
            s,
            "| {k} | {mp:.2} / {op:.2} / {} | {md:.2} / {od:.2} / {} |",
            pct(rel(op, mp)),
            pct(rel(od, md))
        );
    }
    s
}

pub fn verdict_text(v: &Verdict) -> String {
    format!(
        "vLLM stages within every target (E2E p50 ±{e2e:.0}%, decode/token ±{dec:.0}%, TTFT p50 ±{ttft:.0}% or ±{abs:.0} ms): {}/{}\n\
         median |error|: E2E p50 {:.1}%, decode/token {:.1}%, TTFT p50 {:.1}%\n\
         Splitwise phase times within ±{ph:.0}%: {}/{} (median |error| {:.1}%)\n\
         A100:H100 ratios within ±{ra:.0}%: {}/{} (median |error| {:.1}%)\n",
        v.vllm_within,
        v.vllm_rows,
        v.median_abs_e2e_p50 * 100.0,
        v.median_abs_decode * 100.0,
        v.median_abs_ttft_p50 * 100.0,
        v.splitwise_within,
        v.splitwise_values,
        v.median_abs_phase * 100.0,
        v.ratios_within,
        v.ratios,
        v.median_abs_ratio * 100.0,
        e2e = E2E_P50_TARGET * 100.0,
        dec = DECODE_TARGET * 100.0,
        ttft = TTFT_P50_TARGET * 100.0,
        abs = TTFT_P50_ABS_MS,
        ph = PHASE_TARGET * 100.0,
        ra = RATIO_TARGET * 100.0,
    )
}
