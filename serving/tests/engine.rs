//! The replica engine's behaviour: conservation, continuous batching, KV-cache pressure,
//! refusals, and event counts that grow with arrivals rather than tokens.

use gpusched_serving::engine::{
    kv_cache_blocks, EngineConfig, Finished, Refusal, ReplicaEngine, Request,
};
use gpusched_serving::{lookup_model, profile, Accelerator, Dtype, IterationCost};

fn engine(model: &str, kv_blocks: Option<u64>, max_num_seqs: u32) -> ReplicaEngine {
    let arch = lookup_model(model).unwrap();
    let gpu = Accelerator::h100_sxm_80gb();
    let stack = profile::lookup(profile::DEFAULT_STACK).unwrap();
    let blocks = kv_blocks
        .unwrap_or_else(|| kv_cache_blocks(arch, Dtype::Bf16, &gpu, 1, 0.9, 3.0, 16).unwrap());
    let cfg = EngineConfig {
        max_num_seqs,
        max_num_batched_tokens: 2048,
        max_model_len: 4096,
        block_size: 16,
        kv_blocks: blocks,
        chunked_prefill: true,
    };
    ReplicaEngine::new(cfg, IterationCost::new(arch, Dtype::Bf16, &gpu, 1, stack))
}

/// Submits `n` requests every `gap_us` and runs the engine dry; returns what finished and the
/// number of callbacks the engine asked for.
fn drive(
    e: &mut ReplicaEngine,
    n: u64,
    gap_us: f64,
    prompt: u32,
    output: u32,
) -> (Vec<Finished>, u64) {
    let mut done = Vec::new();
    let mut events = 0;
    for i in 0..n {
        let t = i as f64 * gap_us;
        while let Some(te) = e.next_event() {
            if te > t {
                break;
            }
            e.advance(te, &mut done);
            events += 1;
        }
        e.submit(
            t,
            Request {
                id: i,
                arrival: t,
                prompt,
                output,
                cached_prefix: 0,
            },
            &mut done,
        )
        .unwrap();
    }
    while let Some(te) = e.next_event() {
        e.advance(te, &mut done);
        events += 1;
    }
    (done, events)
}

#[test]
fn every_request_finishes_once_with_its_tokens() {
    let mut e = engine("llama-2-7b", None, 128);
    let (done, _) = drive(&mut e, 500, 100_000.0, 575, 210);
    assert_eq!(done.len(), 500);
    let mut ids: Vec<u64> = done.iter().map(|f| f.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 500, "each request finishes exactly once");
    for f in &done {
        assert!(f.arrival < f.first_token && f.first_token < f.end, "{f:?}");
    }
    let s = e.stats();
    assert_eq!(
        s.decode_tokens + 500,
        500 * 210,
        "one sampled token per iteration per sequence (the first comes with the prefill)"
    );
    assert_eq!(e.in_system(), 0);
    assert_eq!(
        e.kv_usage(),
        0.0,
        "the cache is empty once everything finished"
    );
}

#[test]
fn a_lone_request_takes_one_prefill_and_output_minus_one_decodes() {
    let mut e = engine("llama-2-7b", None, 128);
    let (done, events) = drive(&mut e, 1, 1.0, 1000, 300);
    let f = done[0];
    // 2 × 6.74e9 × 1000 FLOPs at 989 TFLOP/s × mfu ≥ 13.6 ms; 13.5 GB of weights per decode at
    // 3.35 TB/s × mbu ≥ 4 ms.
    let ttft_ms = (f.first_token - f.arrival) / 1000.0;
    let tpot_ms = (f.end - f.first_token) / 1000.0 / 299.0;
    assert!(ttft_ms > 13.6 && ttft_ms < 40.0, "{ttft_ms}");
    assert!(tpot_ms > 4.0 && tpot_ms < 10.0, "{tpot_ms}");
    // 300 iterations ran, in 2 events: the prefill step and one closed-form decode run.
    assert_eq!(e.stats().iterations, 300);
    assert!(events <= 3, "{events} events for 300 iterations");
}

#[test]
fn batching_shares_the_weight_reads() {
    // 64 requests at once: each decodes barely slower than alone, and the batch finishes far
    // sooner than 64 requests one after another.
    let mut alone = engine("llama-2-7b", None, 128);
    let (a, _) = drive(&mut alone, 1, 1.0, 500, 200);
    let single = a[0].end - a[0].arrival;
    let mut batch = engine("llama-2-7b", None, 128);
    let (b, _) = drive(&mut batch, 64, 1.0, 500, 200);
    let last = b.iter().map(|f| f.end).fold(0.0, f64::max);
    assert!(
        last < 4.0 * single,
        "64 batched took {last} µs vs {single} µs alone"
    );
    assert!(last > single);
}

#[test]
fn max_num_seqs_caps_the_batch_and_the_rest_waits() {
    let mut e = engine("llama-2-7b", None, 8);
    let (done, _) = drive(&mut e, 32, 1.0, 200, 100);
    assert_eq!(done.len(), 32);
    assert_eq!(e.stats().peak_running, 8);
    // Later requests waited for slots: their TTFT is far above the first ones'.
    let ttft = |f: &Finished| f.first_token - f.arrival;
    assert!(ttft(&done[done.len() - 1]) > 3.0 * ttft(&done[0]));
}

#[test]
fn a_full_kv_cache_preempts_and_recomputes_without_losing_requests() {
    // Room for ~4 sequences of 1,500 tokens: 40 long requests must preempt.
    let mut e = engine("llama-2-7b", Some(400), 128);
    let (done, _) = drive(&mut e, 40, 1_000.0, 1000, 500);
    assert_eq!(
        done.len(),
        40,
        "preempted requests are recomputed, not lost"
    );
    assert!(e.stats().preemptions > 0);
    assert!(done.iter().any(|f| f.preemptions > 0));
    assert!(e.stats().peak_kv_blocks <= 400);
}

#[test]
fn requests_beyond_the_limits_are_refused() {
    let mut e = engine("llama-2-7b", Some(100), 128);
    let mut done = Vec::new();
    let r = |p, o| Request {
        id: 1,
        arrival: 0.0,
        prompt: p,
        output: o,
        cached_prefix: 0,
    };
    assert!(matches!(
        e.submit(0.0, r(4000, 200), &mut done),
        Err(Refusal::TooLong {
            tokens: 4200,
            limit: 4096
        })
    ));
    assert!(matches!(
        e.submit(0.0, r(1000, 1000), &mut done),
        Err(Refusal::ExceedsKvCache { .. })
    ));
    assert!(matches!(
        e.submit(0.0, r(0, 10), &mut done),
        Err(Refusal::Empty)
    ));
    assert_eq!(e.in_system(), 0);
}

#[test]
fn an_arrival_cuts_a_decode_run_at_the_iteration_in_progress() {
    let mut e = engine("llama-2-7b", None, 128);
    let mut done = Vec::new();
    e.submit(
        0.0,
        Request {
            id: 0,
            arrival: 0.0,
            prompt: 100,
            output: 1000,
            cached_prefix: 0,
        },
        &mut done,
    )
    .unwrap();
    let prefill_end = e.next_event().unwrap();
    e.advance(prefill_end, &mut done);
    let run_end = e.next_event().unwrap();
    assert!(
        run_end - prefill_end > 500_000.0,
        "one event covers the whole decode run"
    );
    let t = prefill_end + 100_000.0;
    e.submit(
        t,
        Request {
            id: 1,
            arrival: t,
            prompt: 100,
            output: 10,
            cached_prefix: 0,
        },
        &mut done,
    )
    .unwrap();
    let cut = e.next_event().unwrap();
    assert!(
        cut >= t && cut < t + 10_000.0,
        "the run now ends with the iteration in progress: {cut} vs {t}"
    );
    while let Some(te) = e.next_event() {
        e.advance(te, &mut done);
    }
    assert_eq!(done.len(), 2);
    let newcomer = done.iter().find(|f| f.id == 1).unwrap();
    assert!(
        newcomer.first_token - t < 30_000.0,
        "admitted at the next iteration, not after the long request"
    );
}

#[test]
fn a_cached_prefix_shortens_the_prefill() {
    let run = |prefix| {
        let mut e = engine("llama-2-7b", None, 128);
        let mut done = Vec::new();
        e.submit(
            0.0,
            Request {
                id: 0,
                arrival: 0.0,
                prompt: 2000,
                output: 2,
                cached_prefix: prefix,
            },
            &mut done,
        )
        .unwrap();
        while let Some(te) = e.next_event() {
            e.advance(te, &mut done);
        }
        done[0].first_token
    };
    assert!(run(1500) < 0.5 * run(0));
}

#[test]
fn the_same_input_gives_the_same_times() {
    let a = drive(&mut engine("mistral-7b", None, 64), 300, 50_000.0, 700, 150).0;
    let b = drive(&mut engine("mistral-7b", None, 64), 300, 50_000.0, 700, 150).0;
    assert_eq!(a, b);
}

/// A small deterministic generator, so the randomised test needs no extra crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

#[test]
fn random_mixes_of_limits_and_requests_conserve_and_never_overfill() {
    let mut g = Lcg(42);
    for case in 0..60 {
        let chunked = g.next(2) == 0;
        let max_model_len = 256 + g.next(4000) as u32;
        let budget = if chunked {
            16 + g.next(4096) as u32
        } else {
            max_model_len + g.next(2048) as u32
        };
        let cfg = EngineConfig {
            max_num_seqs: 1 + g.next(64) as u32,
            max_num_batched_tokens: budget,
            max_model_len,
            block_size: [1, 8, 16, 32][g.next(4) as usize],
            kv_blocks: 50 + g.next(3000),
            chunked_prefill: chunked,
        };
        let arch =
            lookup_model(["llama-2-7b", "llama-3-8b", "mistral-7b"][g.next(3) as usize]).unwrap();
        let gpu = Accelerator::h100_sxm_80gb();
        let stack = profile::lookup(profile::DEFAULT_STACK).unwrap();
        let mut e = ReplicaEngine::new(
            cfg.clone(),
            IterationCost::new(arch, Dtype::Bf16, &gpu, 1, stack),
        );
        let mut done = Vec::new();
        let (mut accepted, mut t) = (0u64, 0.0);
        for id in 0..300u64 {
            t += g.next(200_000) as f64;
            while let Some(te) = e.next_event() {
                if te > t {
                    break;
                }
                e.advance(te, &mut done);
                assert!(e.kv_usage() <= 1.0 + 1e-12, "case {case}: cache overfilled");
            }
            let r = Request {
                id,
                arrival: t,
                prompt: 1 + g.next(3000) as u32,
                output: 1 + g.next(600) as u32,
                cached_prefix: g.next(200) as u32,
            };
            if e.submit(t, r, &mut done).is_ok() {
                accepted += 1;
            }
            assert!(e.running() <= cfg.max_num_seqs as usize, "case {case}");
        }
        let mut guard = 0u64;
        while let Some(te) = e.next_event() {
            e.advance(te, &mut done);
            guard += 1;
            assert!(guard < 10_000_000, "case {case}: the engine does not drain");
        }
        assert_eq!(done.len() as u64, accepted, "case {case}: {cfg:?}");
        assert_eq!(e.in_system(), 0);
        for f in &done {
            assert!(
                f.arrival <= f.first_token && f.first_token <= f.end,
                "case {case}: {f:?}"
            );
        }
    }
}
