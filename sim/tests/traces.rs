//! Trace readers, pipeline transforms, generators and bad-row handling, on the slices in
//! `traces/` (see traces/README.md) and on small files written here.

use gpusched_policies::GpuModel;
use gpusched_sim::trace::inventory::{self, InventoryFormat};
use gpusched_sim::trace::pipeline::{Pipeline, TraceSpec};
use gpusched_sim::trace::servegen::{ServeGen, ServeGenSpec};
use gpusched_sim::trace::synth::{FitSpec, Generator, MmppSpec, MmppState, RampSpec, RateCurve};
use gpusched_sim::trace::{self, genai, TraceFormat, TraceRequest};
use std::path::{Path, PathBuf};

fn slice(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../traces")
        .join(name)
}

fn all(spec: &TraceSpec) -> Result<Vec<TraceRequest>, trace::TraceError> {
    Pipeline::open(spec, &spec.path, 42, 0)?.collect()
}

fn read(name: &str) -> Vec<TraceRequest> {
    all(&TraceSpec::new(slice(name))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn tmp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gpusched-trace-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn formats_are_detected_from_the_header() {
    let cases = [
        ("azure-conv-head300.csv", TraceFormat::Azure),
        ("mooncake-conversation-head200.jsonl", TraceFormat::Mooncake),
        ("genai-requests-head200.csv", TraceFormat::Genai),
        ("dlrm-gpu-slice.csv", TraceFormat::Dlrm),
        ("openb-pods-head300.csv", TraceFormat::OpenbPods),
        ("vidur-example.csv", TraceFormat::Vidur),
    ];
    for (f, want) in cases {
        let head = trace::first_line(&slice(f), None).unwrap();
        assert_eq!(TraceFormat::from_header(&head), Some(want), "{f}");
    }
}

#[test]
fn azure_timestamps_become_seconds_from_the_first_row_with_tokens() {
    let rows = read("azure-conv-head300.csv");
    assert_eq!(rows.len(), 300);
    assert_eq!(rows[0].t_s, 0.0);
    // 18:15:46.6805900 -> 18:15:50.9951690
    assert!((rows[1].t_s - 4.314579).abs() < 1e-6, "{}", rows[1].t_s);
    assert_eq!(
        (rows[0].input_tokens, rows[0].output_tokens),
        (Some(374), Some(44))
    );
    assert!(rows.windows(2).all(|w| w[1].t_s >= w[0].t_s));
}

#[test]
fn mooncake_milliseconds_and_lengths() {
    let rows = read("mooncake-conversation-head200.jsonl");
    assert_eq!(rows.len(), 200);
    assert_eq!(rows[0].input_tokens, Some(6758));
    assert_eq!(rows[0].output_tokens, Some(500));
    let last_ms: f64 = std::fs::read_to_string(slice("mooncake-conversation-head200.jsonl"))
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .split(&[':', ','][..])
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((rows[199].t_s - last_ms / 1000.0).abs() < 1e-9);
}

#[test]
fn genai_requests_have_demand_and_a_model_key() {
    let rows = read("genai-requests-head200.csv");
    assert_eq!(rows.len(), 200);
    assert_eq!(rows[0].demand_ms, Some(32_000.0));
    assert_eq!(rows[0].key.as_deref(), Some("M0000"));
    // 16:57:50 -> 18:16:14
    assert_eq!(rows[1].t_s, 4704.0);
}

#[test]
fn genai_pod_series_is_streamed_from_the_tar_gz_skipping_appledouble() {
    let rd =
        genai::SeriesReader::open(&slice("genai-pod-gpu-memory-head500.tar.gz"), None).unwrap();
    let samples: Vec<_> = rd.collect::<Result<_, _>>().unwrap();
    assert_eq!(samples.len(), 500);
    assert!(samples
        .iter()
        .all(|s| s.value > 1e9 && s.container.len() == 32));
}

#[test]
fn dlrm_instances_are_reordered_within_the_lookahead_and_cpu_rows_filtered() {
    let spec = TraceSpec::new(slice("dlrm-gpu-slice.csv"));
    let mut p = Pipeline::open(&spec, &spec.path, 1, 0).unwrap();
    let rows: Vec<_> = (&mut p).collect::<Result<_, _>>().unwrap();
    assert_eq!(rows.len(), 400);
    assert!(
        rows.windows(2).all(|w| w[1].t_s >= w[0].t_s),
        "sorted by the reorder buffer"
    );
    assert!(rows
        .iter()
        .all(|r| r.key.as_deref().is_some_and(|k| k.starts_with("app_"))));
    let report = p.report();
    assert!(
        report
            .filtered
            .iter()
            .any(|(why, n)| why.contains("CPU-only") && *n == 20),
        "{:?}",
        report.filtered
    );
    // Without the look-ahead the same file is out of order.
    let mut strict = TraceSpec::new(slice("dlrm-gpu-slice.csv"));
    strict.reorder_rows = Some(0);
    let e = all(&strict).unwrap_err().to_string();
    assert!(e.contains("creation_time") && e.contains("earlier"), "{e}");
}

#[test]
fn openb_pods_hold_a_slot_from_creation_to_deletion() {
    let rows = read("openb-pods-head300.csv");
    assert!(
        !rows.is_empty() && rows.len() < 300,
        "CPU-only pods are filtered"
    );
    // openb-pod-0000: created 0, deleted 12537496.
    assert_eq!(rows[0].demand_ms, Some(12_537_496_000.0));
}

#[test]
fn vidur_rows() {
    let rows = read("vidur-example.csv");
    assert_eq!(rows.len(), 4);
    assert_eq!(
        (rows[3].t_s, rows[3].input_tokens, rows[3].output_tokens),
        (1.5, Some(2048), Some(32))
    );
}

#[test]
fn inventories_map_a100_80gb_and_h800_and_report_the_rest() {
    let inv = inventory::read(&slice("spot-node-info.csv"), InventoryFormat::SpotNodes).unwrap();
    assert_eq!(inv.nodes(), 4278);
    assert_eq!(inv.gpus(), 10_412);
    let (pools, unmapped) = inventory::to_pools(&inv, 1.0);
    let gpus = |m: GpuModel| {
        pools
            .iter()
            .filter(|p| p.gpu_model == m)
            .map(|p| p.nodes as u64 * p.gpus_per_node as u64)
            .sum::<u64>()
    };
    assert_eq!(gpus(GpuModel::H100_80GB), 1752, "H800");
    assert_eq!(
        gpus(GpuModel::A100_80GB),
        3456 + 176,
        "A100-SXM4-80GB + A800"
    );
    let unmapped_gpus: u64 = unmapped.iter().map(|x| x.1).sum();
    assert_eq!(
        gpus(GpuModel::H100_80GB) + gpus(GpuModel::A100_80GB) + unmapped_gpus,
        inv.gpus(),
        "nothing dropped silently"
    );
    let openb = inventory::read(
        &slice("openb-node-list-gpu-node.csv"),
        InventoryFormat::OpenbNodes,
    )
    .unwrap();
    assert_eq!((openb.nodes(), openb.gpus()), (1213, 6212));
}

// ---- bad rows ----

fn bad(text: &str) -> String {
    let p = tmp(
        &format!(
            "bad-{:x}.csv",
            text.len() * 31 + text.bytes().map(|b| b as usize).sum::<usize>()
        ),
        text,
    );
    let e = all(&TraceSpec::new(&p)).unwrap_err().to_string();
    assert!(e.contains(&p.display().to_string()), "names the file: {e}");
    e
}

#[test]
fn bad_rows_name_the_file_line_and_column() {
    let e = bad("arrival_s,demand_ms\n0.0,5\n1.0\n");
    assert!(
        e.contains(":3:") && e.contains("1 fields but the header has 2"),
        "truncated line: {e}"
    );
    let e = bad("arrival_s,demand_ms\n0.0,5\n1.0,fast\n");
    assert!(
        e.contains(":3:") && e.contains("demand_ms") && e.contains("`fast` is not a number"),
        "text in a number: {e}"
    );
    let e = bad("arrival_s,demand_ms\n-1.0,5\n");
    assert!(
        e.contains(":2:") && e.contains("arrival_s") && e.contains("negative"),
        "negative time: {e}"
    );
    let e = bad("arrival_s,demand_ms\n5.0,5\n4.0,5\n");
    assert!(
        e.contains(":3:") && e.contains("earlier"),
        "out of order: {e}"
    );
    let e = bad("");
    assert!(e.contains("empty"), "empty file: {e}");
    let e = bad("arrival_s,demand_ms\n");
    assert!(e.contains("no request rows"), "header only: {e}");
    let e = bad("when,demand_ms\n0.0,5\n");
    assert!(e.contains("unrecognised header"), "wrong header: {e}");
    let p = tmp(
        "wrong-azure.csv",
        "TIMESTAMP,ContextTokens,Generated\n2023-11-16 18:15:46.68,1,2\n",
    );
    let mut spec = TraceSpec::new(&p);
    spec.format = Some(TraceFormat::Azure);
    let e = all(&spec).unwrap_err().to_string();
    assert!(
        e.contains(":1:") && e.contains("GeneratedTokens") && e.contains("header has"),
        "wrong header, named format: {e}"
    );
}

#[test]
fn skip_bad_rows_counts_and_keeps_the_first_reasons() {
    let mut text = String::from("arrival_s,demand_ms\n");
    for i in 0..20 {
        text.push_str(&format!("{i}.0,5\n"));
        if i % 2 == 0 {
            text.push_str("oops,5\n");
        }
    }
    let p = tmp("skippable.csv", &text);
    let mut spec = TraceSpec::new(&p);
    spec.skip_bad_rows = true;
    let mut pl = Pipeline::open(&spec, &p, 1, 0).unwrap();
    let rows: Vec<_> = (&mut pl).collect::<Result<_, _>>().unwrap();
    assert_eq!(rows.len(), 20);
    let r = pl.report();
    assert_eq!(r.bad_rows_skipped, 10);
    assert_eq!(r.reasons.len(), gpusched_sim::trace::pipeline::REASONS_KEPT);
    assert!(
        r.reasons[0].contains(":3:") && r.reasons[0].contains("`oops`"),
        "{:?}",
        r.reasons
    );
}

// ---- transforms ----

#[test]
fn rate_scale_superposes_copies_keeping_the_shape_and_thins_below_one() {
    let base = read("azure-conv-head300.csv");
    let mut spec = TraceSpec::new(slice("azure-conv-head300.csv"));
    spec.rate_scale = 3.0;
    let x3 = all(&spec).unwrap();
    assert_eq!(x3.len(), 900);
    assert!(
        x3.windows(2).all(|w| w[1].t_s >= w[0].t_s),
        "merged in time order"
    );
    // Per 10-s bin, three copies (shifted < 1 s) give about three times the counts: burstiness kept.
    let bins = |v: &[TraceRequest]| {
        let mut c = vec![0i64; 200];
        v.iter().for_each(|r| c[(r.t_s / 10.0) as usize] += 1);
        c
    };
    let (b1, b3) = (bins(&base), bins(&x3));
    let off: i64 = b1.iter().zip(&b3).map(|(a, b)| (3 * a - b).abs()).sum();
    assert!(off <= 60, "shape kept: {off}");
    spec.rate_scale = 0.5;
    let half = all(&spec).unwrap();
    assert!(half.len() > 110 && half.len() < 190, "{}", half.len());
    assert_eq!(half, all(&spec).unwrap(), "seeded");
    spec.rate_scale = 2.5;
    let n = all(&spec).unwrap().len();
    assert!(n > 680 && n < 820, "{n}");
}

#[test]
fn window_and_time_scale() {
    let base = read("azure-conv-head300.csv");
    let mut spec = TraceSpec::new(slice("azure-conv-head300.csv"));
    spec.window_start_s = Some(10.0);
    spec.window_end_s = Some(30.0);
    spec.time_scale = 0.5;
    let w = all(&spec).unwrap();
    let want: Vec<f64> = base
        .iter()
        .filter(|r| r.t_s >= 10.0 && r.t_s < 30.0)
        .map(|r| (r.t_s - 10.0) * 0.5)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(w.iter().map(|r| r.t_s).collect::<Vec<_>>(), want);
}

// ---- generators ----

fn count_in(v: &[TraceRequest], a: f64, b: f64) -> usize {
    v.iter().filter(|r| r.t_s >= a && r.t_s < b).count()
}

#[test]
fn mmpp_is_bursty_and_deterministic() {
    let spec = MmppSpec {
        states: vec![
            MmppState {
                qps: 2.0,
                mean_s: 300.0,
            },
            MmppState {
                qps: 100.0,
                mean_s: 30.0,
            },
        ],
    };
    let a: Vec<_> = Generator::mmpp(&spec, 7200.0, 9, 0).collect();
    let b: Vec<_> = Generator::mmpp(&spec, 7200.0, 9, 0).collect();
    assert_eq!(a, b);
    let per_min: Vec<usize> = (0..120)
        .map(|m| count_in(&a, m as f64 * 60.0, (m + 1) as f64 * 60.0))
        .collect();
    let mean = per_min.iter().sum::<usize>() as f64 / 120.0;
    let var = per_min
        .iter()
        .map(|c| (*c as f64 - mean).powi(2))
        .sum::<f64>()
        / 120.0;
    assert!(
        var / mean > 5.0,
        "counts are over-dispersed (Poisson would be ~1): {}",
        var / mean
    );
    let c: Vec<_> = Generator::mmpp(&spec, 7200.0, 10, 0).collect();
    assert_ne!(a, c, "another seed, other arrivals");
}

#[test]
fn ramp_rises() {
    let spec = RampSpec {
        from_qps: 1.0,
        to_qps: 40.0,
        start_s: 0.0,
        end_s: 1000.0,
    };
    let v: Vec<_> = Generator::curve(RateCurve::Ramp(spec), 1000.0, 3, 0).collect();
    let (early, late) = (count_in(&v, 0.0, 200.0), count_in(&v, 800.0, 1000.0));
    assert!(late > 4 * early, "{early} -> {late}");
}

#[test]
fn fit_matches_the_trace_rate_per_bin_and_its_tokens() {
    let path = slice("azure-conv-head300.csv");
    let base = read("azure-conv-head300.csv");
    let span = base.last().unwrap().t_s;
    let spec = FitSpec {
        path: path.clone(),
        format: None,
        member: None,
        bin_s: 10.0,
        rate_scale: 1.0,
    };
    let mut total = 0usize;
    for seed in 0..20 {
        let g: Vec<_> = Generator::fit(&spec, &path, span, seed, 0)
            .unwrap()
            .collect();
        total += g.len();
        assert!(
            g.iter().all(|r| r
                .input_tokens
                .is_some_and(|t| base.iter().any(|b| b.input_tokens == Some(t)))),
            "tokens come from the trace"
        );
    }
    let mean = total as f64 / 20.0;
    assert!((mean - 300.0).abs() < 20.0, "{mean}");
}

#[test]
fn servegen_generates_per_client_traffic_deterministically() {
    let spec = ServeGenSpec {
        path: slice("servegen-deepseek-r1"),
        clients: None,
        rate_scale: 1.0,
        assign: Default::default(),
    };
    let a: Vec<_> = ServeGen::open(&spec, &spec.path, 86_400.0, 5, 0)
        .unwrap()
        .collect();
    let b: Vec<_> = ServeGen::open(&spec, &spec.path, 86_400.0, 5, 0)
        .unwrap()
        .collect();
    assert_eq!(a, b);
    assert!(a.len() > 100, "{}", a.len());
    assert!(a.windows(2).all(|w| w[1].t_s >= w[0].t_s));
    let clients: std::collections::BTreeSet<_> = a.iter().filter_map(|r| r.key.clone()).collect();
    assert_eq!(clients.len(), 2);
    assert!(a
        .iter()
        .all(|r| r.input_tokens.is_some() && r.output_tokens.is_some()));
    let mut doubled = spec.clone();
    doubled.rate_scale = 2.0;
    let n2 = ServeGen::open(&doubled, &spec.path, 86_400.0, 5, 0)
        .unwrap()
        .count();
    let ratio = n2 as f64 / a.len() as f64;
    assert!(ratio > 1.6 && ratio < 2.4, "{ratio}");
}

#[test]
fn a_scenario_cluster_can_come_from_an_inventory() {
    let text = r#"
name = "fleet"
duration_s = 60.0
pools_from = { path = "spot-node-info.csv", scale = 0.01 }

[[services]]
name = "s"
model_memory_gb = 16.0
service_time_ms = 10.0
traffic = { kind = "poisson", qps = 1.0 }
"#;
    let base = slice("");
    let l = gpusched_sim::scenario::load_str(text, "fleet.toml", base.clone(), &[]).unwrap();
    let pools = &l.scenario.pools;
    assert_eq!(pools.len(), 3, "{pools:?}");
    assert!(pools
        .iter()
        .any(|p| p.gpu_model == GpuModel::H100_80GB && p.nodes == 2 && p.gpus_per_node == 8));
    let bad = text.replace("spot-node-info.csv", "azure-conv-head300.csv");
    let e = gpusched_sim::scenario::load_str(&bad, "fleet.toml", base, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pools_from") && e.contains("not a node inventory"),
        "{e}"
    );
}

#[test]
fn scale_demand_compresses_lifetimes_with_time() {
    let mut spec = TraceSpec::new(slice("openb-pods-head300.csv"));
    let base = all(&spec).unwrap();
    spec.time_scale = 0.1;
    spec.scale_demand = true;
    let fast = all(&spec).unwrap();
    assert_eq!(base.len(), fast.len());
    for (a, b) in base.iter().zip(&fast) {
        assert!((b.t_s - a.t_s * 0.1).abs() < 1e-6);
        assert!((b.demand_ms.unwrap() - a.demand_ms.unwrap() * 0.1).abs() < 1e-3);
    }
}

#[test]
fn a_trace_replay_run_is_deterministic_and_counts_every_request() {
    let text = r#"
name = "replay"
duration_s = 400.0
seed = 7

[[pools]]
name = "h100"
gpu_model = "H100-80GB"
nodes = 2

[traffic]
kind = "trace"
path = "azure-conv-head300.csv"
rate_scale = 2.5
assign = "round_robin"

[[services]]
name = "a"
model_memory_gb = 16.0
service_time_ms = 100.0
concurrency = 16

[[services]]
name = "b"
model_memory_gb = 16.0
service_time_ms = 100.0
concurrency = 16
"#;
    let l = gpusched_sim::scenario::load_str(text, "replay.toml", slice(""), &[]).unwrap();
    let run = || gpusched_sim::run(&l, &mut |_| {}).unwrap();
    let (x, y) = (run(), run());
    let (sx, sy) = (
        serde_json::to_string(&x.summary).unwrap(),
        serde_json::to_string(&y.summary).unwrap(),
    );
    assert_eq!(sx, sy, "same seed, same run");
    let mut spec = TraceSpec::new(slice("azure-conv-head300.csv"));
    spec.rate_scale = 2.5;
    let want = Pipeline::open(&spec, &spec.path, 7, 0).unwrap().count() as u64;
    assert_eq!(
        x.summary.requests.arrived, want,
        "every replayed row arrives once"
    );
    let per: Vec<u64> = x
        .summary
        .services
        .iter()
        .map(|s| s.requests.arrived)
        .collect();
    assert!(per[0].abs_diff(per[1]) <= 1, "round-robin: {per:?}");
}

#[test]
fn a_per_output_token_sla_gives_long_answers_the_time_they_need() {
    let text = |sla: &str| {
        format!(
            r#"
name = "token-sla"
duration_s = 400.0
seed = 7

[[pools]]
name = "h100"
gpu_model = "H100-80GB"
nodes = 4

[traffic]
kind = "trace"
path = "azure-conv-head300.csv"

[[services]]
name = "chat"
model_memory_gb = 16.0
model_params_b = 8.0
service_time_ms = 100.0
concurrency = 16
initial_replicas = 4
{sla}
"#
        )
    };
    let attainment = |sla: &str| {
        let l =
            gpusched_sim::scenario::load_str(&text(sla), "token-sla.toml", slice(""), &[]).unwrap();
        gpusched_sim::run(&l, &mut |_| {})
            .unwrap()
            .summary
            .slo_attainment
    };
    // 500 ms end to end: every answer of more than a few tokens misses, however idle the fleet.
    let e2e = attainment("latency_sla_ms = 500.0");
    // The same 500 ms to the first token plus 50 ms per output token (an 8B model decodes a
    // token in ~8 ms on an H100): an unloaded fleet meets nearly all of them.
    let per_token = attainment("latency_sla_ms = 500.0\nsla_per_output_token_ms = 50.0");
    assert!(e2e < 0.5, "end-to-end 500 ms: {e2e}");
    assert!(per_token > 0.95, "per token: {per_token}");
    // Without latency_sla_ms the per-token part has nothing to add to: refused, naming the key.
    let e = gpusched_sim::scenario::load_str(
        &text("sla_per_output_token_ms = 50.0"),
        "token-sla.toml",
        slice(""),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("sla_per_output_token_ms") && e.contains("latency_sla_ms"),
        "{e}"
    );
}

#[test]
fn processor_sharing_re_rates_the_batch_when_a_request_joins_or_leaves() {
    // Two 1000 ms requests on one exclusive H100 replica with two slots; the second arrives at
    // 0.5 s; a batch of two runs each at 1 / 1.5 of full pace (batch_slowdown 0.5).
    let csv = tmp("ps.csv", "arrival_s,demand_ms\n0.0,1000\n0.5,1000\n");
    let text = |batching: &str| {
        format!(
            r#"
name = "ps"
duration_s = 10.0
seed = 1

[perf]
batch_slowdown = 0.5
batching = "{batching}"

[[pools]]
name = "h100"
gpu_model = "H100-80GB"
nodes = 1

[traffic]
kind = "trace"
path = {path:?}

[[services]]
name = "one"
model_memory_gb = 40.0
service_time_ms = 1000.0
concurrency = 2
"#,
            path = csv.to_str().unwrap()
        )
    };
    let max_ms = |batching: &str| {
        let l =
            gpusched_sim::scenario::load_str(&text(batching), "ps.toml", slice(""), &[]).unwrap();
        let s = gpusched_sim::run(&l, &mut |_| {}).unwrap().summary;
        assert_eq!(s.requests.served, 2);
        (s.latency.max_ms, s.latency.mean_ms)
    };
    // Fixed at start: the first runs alone (1.0 s); the second is priced for a batch of two for
    // its whole life (1.5 s), though it runs alone after 1.0 s.
    let (fixed_max, fixed_mean) = max_ms("fixed_at_start");
    assert!((fixed_max - 1500.0).abs() < 15.0, "{fixed_max}");
    // Processor sharing: the first slows when the second joins (done at 1.25 s); the second
    // speeds up when the first leaves (done at 1.75 s, 1.25 s after it arrived).
    let (ps_max, ps_mean) = max_ms("processor_sharing");
    assert!((ps_max - 1250.0).abs() < 15.0, "{ps_max}");
    assert!((ps_mean - 1250.0).abs() < 15.0, "{ps_mean}");
    assert!((fixed_mean - 1250.0).abs() < 15.0, "{fixed_mean}");
}
