//! LLM services through the simulator: each replica runs the serving engine (gpusched-serving);
//! the run reports TTFT, TPOT and end-to-end latency, keeps every request accounted for, and
//! overloads the way real servers do.

use gpusched_sim::scenario::{load_str, LoadedScenario};
use std::process::Command;

fn scenario(body: &str) -> String {
    format!(
        r#"name = "llm"
seed = 3
duration_s = 300.0
tick_s = 30.0
[autoscaler]
kind = "none"
[[pools]]
name = "h100"
gpu_model = "H100-80GB"
nodes = 1
gpus_per_node = 4
{body}"#
    )
}

const CHAT_7B: &str = r#"
[[services]]
name = "chat"
model = "meta-llama/Llama-2-7b-hf"
service_time_ms = 1000.0
traffic = { kind = "poisson", qps = QPS }
queue_timeout_s = 20.0
serving = { max_num_seqs = 128, max_num_batched_tokens = 2048, max_model_len = 4096, prompt_tokens = 575, output_tokens = 210 }
slo = { ttft_ms = TTFT, tpot_ms = 50.0, percentile = 99 }
"#;

fn chat(qps: f64, ttft_slo_ms: f64) -> String {
    scenario(
        &CHAT_7B
            .replace("QPS", &qps.to_string())
            .replace("TTFT", &ttft_slo_ms.to_string()),
    )
}

fn load(text: &str) -> LoadedScenario {
    load_str(text, "<llm>", ".".into(), &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn run(text: &str) -> gpusched_sim::RunResult {
    gpusched_sim::run(&load(text), &mut |_| {}).unwrap()
}

fn conserved(s: &gpusched_sim::metrics::Summary) {
    let r = &s.requests;
    assert_eq!(
        r.arrived,
        r.served + r.failed + r.queued_at_end + r.in_service_at_end,
        "{r:?}"
    );
}

#[test]
fn an_llm_service_reports_ttft_tpot_and_end_to_end() {
    let out = run(&chat(8.0, 500.0));
    let s = &out.summary;
    conserved(s);
    let svc = &s.services[0];
    let llm = svc
        .llm
        .as_ref()
        .expect("an LLM service has its serving summary");
    assert_eq!(llm.model, "meta-llama/Llama-2-7b-hf");
    assert_eq!(llm.stack, "vllm-0.15");
    assert!(
        svc.requests.served > 2000 && svc.requests.failed == 0,
        "{:?}",
        svc.requests
    );
    // One H100 at 8 req/s of 575 + 210 tokens is lightly loaded: TTFT tens of ms, a decode
    // step of ~10 ms, so ~2 s end to end (vLLM measured 27 ms, 9.7 ms and 2.05 s).
    assert!(
        llm.ttft.p50_ms > 15.0 && llm.ttft.p50_ms < 80.0,
        "{:?}",
        llm.ttft
    );
    assert!(
        llm.tpot.p50_ms > 5.0 && llm.tpot.p50_ms < 15.0,
        "{:?}",
        llm.tpot
    );
    assert!(
        svc.latency.p50_ms > 1200.0 && svc.latency.p50_ms < 3200.0,
        "{:?}",
        svc.latency
    );
    assert!(llm.ttft.p99_ms < svc.latency.p50_ms);
    assert!(llm.counts.kv_blocks > 5000 && llm.counts.preemptions == 0);
    assert!(llm.slo.as_ref().unwrap().met);
    assert_eq!(svc.slo_attainment, 1.0);
    // Events grow with requests, not tokens: ~1M output tokens in well under 10 events each.
    assert!(
        s.events < 10 * svc.requests.arrived,
        "{} events for {} requests",
        s.events,
        svc.requests.arrived
    );
    let csv = {
        let mut b = Vec::new();
        out.timeseries.write_csv(&mut b).unwrap();
        String::from_utf8(b).unwrap()
    };
    let header = csv.lines().next().unwrap();
    let services = out.timeseries.services.len();
    let cols: Vec<&str> = header.split(',').collect();
    // The LLM columns, then each service's p99 per window (last).
    assert_eq!(
        cols[cols.len() - services - 4..cols.len() - services],
        ["ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms"],
        "{header}"
    );
    assert!(cols[cols.len() - 1].starts_with("p99_ms_"), "{header}");
}

#[test]
fn the_same_scenario_and_seed_give_identical_results() {
    let a = serde_json::to_string(&run(&chat(12.0, 500.0)).summary).unwrap();
    let b = serde_json::to_string(&run(&chat(12.0, 500.0)).summary).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_tight_ttft_objective_is_missed_and_said_so() {
    let s = run(&chat(8.0, 20.0)).summary;
    let svc = &s.services[0];
    let slo = svc.llm.as_ref().unwrap().slo.as_ref().unwrap();
    assert!(!slo.met && slo.ttft_at_percentile_ms > 20.0, "{slo:?}");
    assert!(svc.slo_attainment < 0.5, "{}", svc.slo_attainment);
}

#[test]
fn overload_queues_preempts_and_times_out_but_loses_nothing() {
    // 60 req/s of 575 + 210 tokens is ~3× what one H100 serves: latency climbs, the KV cache
    // fills (preemptions) and clients give up after 20 s.
    let out = run(&chat(60.0, 500.0));
    let s = &out.summary;
    conserved(s);
    let svc = &s.services[0];
    let llm = svc.llm.as_ref().unwrap();
    assert!(
        svc.requests
            .failed_by_cause
            .get("timeout")
            .copied()
            .unwrap_or(0)
            > 100,
        "{:?}",
        svc.requests
    );
    assert!(llm.ttft.p99_ms > 5_000.0, "{:?}", llm.ttft);
    assert!(llm.counts.peak_running as u64 <= 128);
    // Served throughput is capped near the replica's capacity, far below the offered load.
    assert!(
        llm.output_tokens_per_s < 0.6 * 60.0 * 210.0,
        "{}",
        llm.output_tokens_per_s
    );
}

#[test]
fn a_tensor_parallel_replica_serves_a_model_one_gpu_cannot_hold() {
    let body = r#"
[[services]]
name = "big"
model = "meta-llama/Llama-2-70b-hf"
tensor_parallel = 4
service_time_ms = 1000.0
traffic = { kind = "poisson", qps = 5.0 }
serving = { max_num_seqs = 128, max_num_batched_tokens = 2048, max_model_len = 4096, prompt_tokens = 575, output_tokens = 246 }
"#;
    let out = run(&scenario(body));
    let s = &out.summary;
    conserved(s);
    let llm = s.services[0].llm.as_ref().unwrap();
    assert_eq!(llm.tensor_parallel, 4);
    assert_eq!(s.peak_allocated_gpus, 4);
    // vLLM measured 51 ms TTFT and 17.5 ms per token for this model at 5 req/s on 4 H100s.
    assert!(
        llm.tpot.p50_ms > 10.0 && llm.tpot.p50_ms < 30.0,
        "{:?}",
        llm.tpot
    );
    assert!(s.services[0].requests.failed == 0);
    // On one GPU the 138 GB of weights do not fit: refused before the run.
    let one = scenario(&body.replace("tensor_parallel = 4", "tensor_parallel = 1"));
    let e = load_str(&one, "<llm>", ".".into(), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("services[0].tensor_parallel") && e.contains("raise tensor_parallel"),
        "{e}"
    );
}

#[test]
fn prompts_beyond_max_model_len_are_rejected_and_counted() {
    let s = run(&scenario(
        &CHAT_7B
            .replace("QPS", "2.0")
            .replace("TTFT", "500.0")
            .replace("prompt_tokens = 575", "prompt_tokens = 4000")
            .replace("output_tokens = 210", "output_tokens = 200"),
    ))
    .summary;
    conserved(&s);
    let svc = &s.services[0];
    assert_eq!(svc.requests.served, 0);
    assert_eq!(
        svc.requests.failed_by_cause.get("rejected").copied(),
        Some(svc.requests.arrived)
    );
}

#[test]
fn unknown_models_and_stacks_are_refused_with_exit_2_naming_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    for (from, to, want) in [
        (
            "meta-llama/Llama-2-7b-hf",
            "gpt-5",
            "known models: meta-llama/Llama-2-7b-hf",
        ),
        (
            "max_num_seqs = 128,",
            "stack = \"tgi-1\", max_num_seqs = 128,",
            "known stacks: vllm-0.15",
        ),
        (
            "max_num_seqs = 128,",
            "max_num_seqs = 0,",
            "serving.max_num_seqs",
        ),
    ] {
        let p = dir.path().join("s.toml");
        std::fs::write(&p, chat(8.0, 500.0).replace(from, to)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_gpusched"))
            .args(["run"])
            .arg(&p)
            .arg("--out")
            .arg(dir.path().join("o"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want) && err.contains("s.toml"), "{err}");
    }
}
