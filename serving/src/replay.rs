//! Drives one replica engine through constant-rate load stages, as a load generator such as
//! inference-perf does: requests of fixed lengths sent every 1/rate seconds, results attributed
//! to the stage that sent them. The fidelity check and the vLLM fit both stand on it; the
//! simulator drives the very same engine per replica.

use crate::engine::{Finished, ReplicaEngine, Request};

/// One load stage: `rate` requests/s for `duration_s`, each of `prompt` + `output` tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub rate: f64,
    pub duration_s: f64,
    pub prompt: u32,
    pub output: u32,
    /// Leading prompt tokens shared by every request (a system prompt the prefix cache keeps).
    pub shared_prefix: u32,
}

/// What a client measures over one stage. Latencies in ms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageResult {
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub ttft_mean: f64,
    pub ttft_p50: f64,
    pub ttft_p99: f64,
    pub e2e_mean: f64,
    pub e2e_p50: f64,
    pub e2e_p99: f64,
    /// (mean E2E − mean TTFT) / (mean output − 1), as SOURCE.md derives it.
    pub decode_ms_per_token: f64,
    pub output_tokens_per_s: f64,
    pub preemptions: u64,
}

/// Runs the stages back to back on `engine` (warm state carries over, as on a real server),
/// then lets the last requests finish. `request_overhead_ms` is the client-side time added to
/// every TTFT and E2E; requests still without a first token after `timeout_s` fail.
pub fn run_stages(
    engine: &mut ReplicaEngine,
    stages: &[Stage],
    request_overhead_ms: f64,
    timeout_s: f64,
) -> Vec<StageResult> {
    let mut sent_in: Vec<Vec<u64>> = vec![Vec::new(); stages.len()];
    let mut arrivals: Vec<(f64, usize, Stage)> = Vec::new();
    let mut t0 = 0.0;
    for (i, s) in stages.iter().enumerate() {
        let n = (s.rate * s.duration_s).round() as u64;
        for j in 0..n {
            arrivals.push((t0 + j as f64 * 1e6 / s.rate, i, *s));
        }
        t0 += s.duration_s * 1e6;
    }
    let mut stage_of = Vec::with_capacity(arrivals.len());
    let mut finished: Vec<Finished> = Vec::with_capacity(arrivals.len());
    let mut failed = vec![0u64; stages.len()];
    let timeout_us = timeout_s * 1e6;
    let mut next_sweep = timeout_us;
    let mut a = 0;
    loop {
        let ta = arrivals.get(a).map(|x| x.0);
        let te = engine.next_event();
        match (ta, te) {
            (None, None) => break,
            (Some(ta), te) if te.is_none_or(|te| ta < te) => {
                let (t, stage, s) = arrivals[a];
                let id = a as u64;
                stage_of.push(stage);
                sent_in[stage].push(id);
                let req = Request {
                    id,
                    arrival: t,
                    prompt: s.prompt,
                    output: s.output,
                    cached_prefix: if a == 0 { 0 } else { s.shared_prefix },
                };
                if engine.submit(t, req, &mut finished).is_err() {
                    failed[stage] += 1;
                }
                a += 1;
            }
            (_, Some(te)) => engine.advance(te, &mut finished),
            _ => unreachable!(),
        }
        let now = ta.into_iter().chain(te).fold(f64::INFINITY, f64::min);
        if now >= next_sweep {
            for id in engine.abort_waiting_before(now - timeout_us) {
                failed[stage_of[id as usize]] += 1;
            }
            next_sweep = now + 1e6;
        }
    }
    let mut per_stage: Vec<Vec<&Finished>> = vec![Vec::new(); stages.len()];
    for f in &finished {
        per_stage[stage_of[f.id as usize]].push(f);
    }
    stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            summarise(
                &per_stage[i],
                sent_in[i].len() as u64,
                failed[i],
                s.duration_s,
                request_overhead_ms,
            )
        })
        .collect()
}

fn summarise(
    done: &[&Finished],
    sent: u64,
    failed: u64,
    duration_s: f64,
    overhead_ms: f64,
) -> StageResult {
    let mut ttft: Vec<f64> = done
        .iter()
        .map(|f| (f.first_token - f.arrival) / 1000.0 + overhead_ms)
        .collect();
    let mut e2e: Vec<f64> = done
        .iter()
        .map(|f| (f.end - f.arrival) / 1000.0 + overhead_ms)
        .collect();
    let n = done.len().max(1) as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
    let out_mean = done.iter().map(|f| f.output as f64).sum::<f64>() / n;
    let (ttft_mean, e2e_mean) = (mean(&ttft), mean(&e2e));
    ttft.sort_by(f64::total_cmp);
    e2e.sort_by(f64::total_cmp);
    StageResult {
        sent,
        succeeded: done.len() as u64,
        failed,
        ttft_mean,
        ttft_p50: percentile(&ttft, 0.50),
        ttft_p99: percentile(&ttft, 0.99),
        e2e_mean,
        e2e_p50: percentile(&e2e, 0.50),
        e2e_p99: percentile(&e2e, 0.99),
        decode_ms_per_token: if out_mean > 1.0 {
            (e2e_mean - ttft_mean) / (out_mean - 1.0)
        } else {
            0.0
        },
        output_tokens_per_s: done.iter().map(|f| f.output as f64).sum::<f64>() / duration_s,
        preemptions: done.iter().map(|f| f.preemptions as u64).sum(),
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
