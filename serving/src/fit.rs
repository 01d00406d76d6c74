//! Fits the serving stacks' constants on the reference measurements — and only on them — so
//! `profiles.toml` is reproducible: `gpusched serving fit --write` rewrites it.
//!
//! * `splitwise-2024` and the GPU factors: Splitwise's static batches are single iterations
//!   (prefill) or runs of identical ones (decode), so the cost model is compared with them
//!   directly. Fitted: the five stack constants and the A100's compute and memory factors
//!   relative to the H100 (the one place both GPUs ran one stack).
//! * `vllm-0.15`: the client-side measurements are replayed through the replica engine (the same
//!   mechanisms the simulator uses), and the five constants plus the per-request overhead are
//!   fitted to the stages' E2E p50, TTFT p50 and decode time per token. The GPU factors come
//!   from the Splitwise fit (vLLM was measured on H100 only).
//!
//! Both minimise the sum of squared log errors (relative errors, symmetric in over- and
//! under-prediction) with Nelder–Mead from fixed starting points: deterministic.

use crate::arch;
use crate::cost::{Constants, IterationCost};
use crate::dtype::Dtype;
use crate::fidelity::{self, decode_work, prefill_work, FidelityError};
use crate::hardware::Accelerator;
use crate::profile::{FitRecord, GpuFactor, StackProfile};
use crate::reference::{SplitwisePoint, VllmStage};

/// Minimises `f` from `x0` by Nelder–Mead (standard coefficients), at most `max_evals` calls.
pub fn nelder_mead(
    f: &mut dyn FnMut(&[f64]) -> f64,
    x0: &[f64],
    step: f64,
    max_evals: usize,
) -> (Vec<f64>, f64) {
    let n = x0.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    simplex.push((x0.to_vec(), f(x0)));
    for i in 0..n {
        let mut x = x0.to_vec();
        x[i] += step;
        let v = f(&x);
        simplex.push((x, v));
    }
    let mut evals = n + 1;
    while evals < max_evals {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[n].1);
        if (worst - best).abs() <= 1e-10 * (1.0 + best.abs()) {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|p| p.0[j]).sum::<f64>() / n as f64)
            .collect();
        let along = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|j| centroid[j] + t * (simplex[n].0[j] - centroid[j]))
                .collect()
        };
        let xr = along(-1.0);
        let fr = f(&xr);
        evals += 1;
        if fr < simplex[0].1 {
            let xe = along(-2.0);
            let fe = f(&xe);
            evals += 1;
            simplex[n] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (xr, fr);
        } else {
            let (xc, fc) = if fr < simplex[n].1 {
                let x = along(-0.5);
                let v = f(&x);
                (x, v)
            } else {
                let x = along(0.5);
                let v = f(&x);
                (x, v)
            };
            evals += 1;
            if fc < simplex[n].1.min(fr) {
                simplex[n] = (xc, fc);
            } else {
                // Shrink towards the best point.
                let b = simplex[0].0.clone();
                for p in simplex.iter_mut().skip(1) {
                    for (x, bj) in p.0.iter_mut().zip(&b) {
                        *x = bj + 0.5 * (*x - bj);
                    }
                    p.1 = f(&p.0);
                    evals += 1;
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Unconstrained coordinates ↔ constants: efficiencies through a logistic (0..1), the rest
/// through exp (positive).
fn decode_constants(x: &[f64]) -> Constants {
    Constants {
        overhead_ms: x[0].exp(),
        mbu: sigmoid(x[1]),
        mfu: sigmoid(x[2]),
        decode_seq_us: x[3].exp(),
        allreduce_latency_us: x[4].exp(),
        kv_mbu: sigmoid(x[5]),
        tp_compute_exponent: sigmoid(x[6]),
    }
}
fn encode_constants(k: &Constants) -> Vec<f64> {
    vec![
        k.overhead_ms.ln(),
        logit(k.mbu),
        logit(k.mfu),
        k.decode_seq_us.ln(),
        k.allreduce_latency_us.ln(),
        logit(k.kv_mbu),
        logit(k.tp_compute_exponent),
    ]
}

fn log_err(ours: f64, measured: f64) -> f64 {
    if ours > 0.0 && measured > 0.0 && ours.is_finite() {
        (ours / measured).ln()
    } else {
        10.0
    }
}

/// Starting point of both fits: middling published figures (overhead a few ms, 60 % of HBM
/// bandwidth, 50 % of tensor peak, tens of µs per sequence and per all-reduce).
fn start() -> Constants {
    Constants {
        overhead_ms: 3.0,
        mbu: 0.6,
        kv_mbu: 0.6,
        mfu: 0.5,
        decode_seq_us: 30.0,
        allreduce_latency_us: 20.0,
        tp_compute_exponent: 0.1,
    }
}

/// Result of the Splitwise fit.
#[derive(Debug, Clone)]
pub struct SplitwiseFit {
    pub constants: Constants,
    pub a100: GpuFactor,
    pub rows: usize,
    pub errors: Vec<f64>,
}

fn splitwise_time(
    p: &SplitwisePoint,
    k: Constants,
    a100: (f64, f64),
) -> Result<(f64, f64), FidelityError> {
    let arch = arch::lookup(&p.model)?;
    let gpu = Accelerator::by_name(&p.gpu).ok_or_else(|| FidelityError::Gpu(p.gpu.clone()))?;
    let (cf, mf) = if p.is_h100() { (1.0, 1.0) } else { a100 };
    let cost = IterationCost::with(arch, Dtype::Bf16, &gpu, p.tp, k, cf, mf);
    Ok((
        cost.iteration_ms(&prefill_work(p.batch, p.prompt)),
        cost.iteration_ms(&decode_work(p.batch, p.prompt, p.output)),
    ))
}

/// Fits the Splitwise stack and the A100's factors on every point SOURCE.md does not mark suspect.
pub fn fit_splitwise(points: &[SplitwisePoint]) -> Result<SplitwiseFit, FidelityError> {
    let pts: Vec<&SplitwisePoint> = points.iter().filter(|p| !p.suspect()).collect();
    for p in &pts {
        splitwise_time(p, start(), (1.0, 1.0))?;
    }
    let objective = |x: &[f64]| -> f64 {
        let k = decode_constants(x);
        let a = (x[7].exp(), x[8].exp());
        pts.iter()
            .map(|p| {
                let (pre, dec) = splitwise_time(p, k, a).expect("checked above");
                log_err(pre, p.prefill_ms).powi(2) + log_err(dec, p.decode_iteration_ms).powi(2)
            })
            .sum()
    };
    let mut x = encode_constants(&start());
    x.extend([0.0, 0.0]);
    let mut f = objective;
    // Restarts from the best point shake the simplex out of narrow valleys.
    for _ in 0..4 {
        x = nelder_mead(&mut f, &x, 0.5, 4000).0;
    }
    let k = decode_constants(&x);
    let a = (x[7].exp(), x[8].exp());
    let mut errors = Vec::new();
    for p in &pts {
        let (pre, dec) = splitwise_time(p, k, a)?;
        errors.push(fidelity::rel(pre, p.prefill_ms));
        errors.push(fidelity::rel(dec, p.decode_iteration_ms));
    }
    Ok(SplitwiseFit {
        constants: k,
        a100: GpuFactor {
            gpu: "A100".into(),
            compute: a.0,
            memory: a.1,
        },
        rows: pts.len(),
        errors,
    })
}

/// Fits the vLLM stack on the vLLM stages. `base` supplies everything but the fitted values.
pub fn fit_vllm(
    stages: &[VllmStage],
    base: &StackProfile,
    max_evals: usize,
) -> Result<(StackProfile, Vec<f64>), FidelityError> {
    // The search runs over 7 coordinates: the 8 of `decode_constants` less the TP compute
    // exponent, held at 0 (vLLM's TP runs are different models, so the exponent cannot be told
    // apart from their efficiencies; fitted free it came out at 0.03), plus the request overhead.
    const NO_TP_LOSS: f64 = -40.0;
    let expand = |y: &[f64]| -> Vec<f64> {
        let mut x = y[..6].to_vec();
        x.push(NO_TP_LOSS);
        x.push(y[6]);
        x
    };
    let mut profile = base.clone();
    let objective = |y: &[f64], p: &mut StackProfile| -> Result<f64, FidelityError> {
        let x = expand(y);
        p.set_constants(decode_constants(&x));
        p.request_overhead_ms = x[7].exp();
        let rows = fidelity::replay_vllm(stages, p)?;
        Ok(rows
            .iter()
            .map(|r| {
                let m = &r.measured;
                log_err(r.ours.e2e_p50, m.get("e2e_latency_p50")).powi(2)
                    + log_err(r.ours.ttft_p50, m.get("ttft_p50")).powi(2)
                    + log_err(
                        r.ours.decode_ms_per_token,
                        m.get("decode_time_per_token_from_means"),
                    )
                    .powi(2)
            })
            .sum())
    };
    let mut y = encode_constants(&start());
    y.truncate(6);
    y.push(5.0f64.ln());
    objective(&y, &mut profile)?;
    // Passes with shrinking simplexes: the first explores, the later ones refine.
    for step in [0.5, 0.25, 0.1] {
        let mut f = |y: &[f64]| objective(y, &mut profile.clone()).unwrap_or(f64::INFINITY);
        y = nelder_mead(&mut f, &y, step, max_evals).0;
    }
    let best = expand(&y);
    profile.set_constants(decode_constants(&best));
    profile.request_overhead_ms = best[7].exp();
    let rows = fidelity::replay_vllm(stages, &profile)?;
    let errors = rows
        .iter()
        .flat_map(|r| {
            let m = &r.measured;
            [
                fidelity::rel(r.ours.e2e_p50, m.get("e2e_latency_p50")),
                fidelity::rel(r.ours.ttft_p50, m.get("ttft_p50")),
                fidelity::rel(
                    r.ours.decode_ms_per_token,
                    m.get("decode_time_per_token_from_means"),
                ),
            ]
        })
        .collect();
    Ok((profile, errors))
}

/// Median and largest absolute value.
pub fn error_summary(errors: &[f64]) -> (f64, f64) {
    let mut a: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    a.sort_by(f64::total_cmp);
    (
        a.get(a.len() / 2).copied().unwrap_or(0.0),
        a.last().copied().unwrap_or(0.0),
    )
}

/// Fills a profile's fit record.
pub fn record(data: &str, method: &str, rows: usize, errors: &[f64]) -> FitRecord {
    let (median, max) = error_summary(errors);
    let round = |v: f64| (v * 1e4).round() / 1e4;
    FitRecord {
        data: data.into(),
        method: method.into(),
        rows: rows as u32,
        median_abs_error: round(median),
        max_abs_error: round(max),
    }
}
