//! Property-based fuzzing of everything a user feeds gpusched: the scenario parser (mutated
//! copies of the shipped scenarios), the trace readers (mutated rows of the small trace slices
//! in traces/), and the command line (flags with extreme values). The property is always the
//! same: no panic, no hang; an input is either refused with an error value (exit code 2 for the
//! CLI) or runs cleanly.
//!
//! Bounded for CI: each property runs a modest number of cases (see `cases`); set
//! `PROPTEST_CASES=5000` (or more) for a longer local run. A failing case proptest finds goes
//! into tests/corpus/bad-input/ (see tests/bad_input_corpus.rs) once fixed.

mod common;

use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// Cases per property: `PROPTEST_CASES` when set, else `default`.
fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        // The inputs are files; shrinking a failure to its smallest mutation is still useful,
        // but bounded.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// With `FUZZ_VERBOSE=1`, one line per case on stderr (`fuzz <kind> refused|ran|panicked`),
/// for counting what a long run tried.
fn tally<T, E>(kind: &str, r: &std::thread::Result<Result<T, E>>) {
    if std::env::var_os("FUZZ_VERBOSE").is_some() {
        let what = match r {
            Err(_) => "panicked",
            Ok(Err(_)) => "refused",
            Ok(Ok(_)) => "ran",
        };
        eprintln!("fuzz {kind} {what}");
    }
}

/// Values that break naive parsers: non-finite, negative, zero, huge, overflowing, wrong type.
const EXTREMES: &[&str] = &[
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "-0.0",
    "1e300",
    "-1e300",
    "9223372036854775807",
    "18446744073709551616",
    "4294967296",
    "0.000000001",
    "\"x\"",
    "[]",
    "{}",
    "true",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace byte `at` (modulo the length) with `byte`.
    Flip { at: usize, byte: u8 },
    /// Delete line `line` (modulo the count).
    DeleteLine { line: usize },
    /// Replace the `nth` number in the text with an extreme value.
    Number { nth: usize, value: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        any::<usize>().prop_map(|line| Mutation::DeleteLine { line }),
        (any::<usize>(), 0..EXTREMES.len())
            .prop_map(|(nth, value)| Mutation::Number { nth, value }),
        // Numbers twice as often: they are where the sense checks live.
        (any::<usize>(), 0..EXTREMES.len())
            .prop_map(|(nth, value)| Mutation::Number { nth, value }),
    ]
}

/// Byte ranges of the numbers in `text` (digits with an optional sign, point and exponent).
fn numbers(text: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let starts = text[i].is_ascii_digit()
            && (i == 0
                || !(text[i - 1].is_ascii_alphanumeric()
                    || text[i - 1] == b'_'
                    || text[i - 1] == b'-' && i >= 2 && text[i - 2].is_ascii_alphanumeric()));
        if starts {
            let s = if i > 0 && (text[i - 1] == b'-' || text[i - 1] == b'+') {
                i - 1
            } else {
                i
            };
            let mut e = i;
            while e < text.len()
                && (text[e].is_ascii_digit()
                    || matches!(text[e], b'.' | b'e' | b'E' | b'_')
                    || (matches!(text[e], b'-' | b'+') && matches!(text[e - 1], b'e' | b'E')))
            {
                e += 1;
            }
            v.push((s, e));
            i = e;
        } else {
            i += 1;
        }
    }
    v
}

fn mutate(text: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut t = text.to_vec();
    for m in muts {
        match m {
            Mutation::Flip { at, byte } if !t.is_empty() => {
                let n = t.len();
                t[at % n] = *byte;
            }
            Mutation::DeleteLine { line } => {
                let lines: Vec<&[u8]> = t.split(|&b| b == b'\n').collect();
                if lines.len() > 1 {
                    let k = line % lines.len();
                    let kept: Vec<&[u8]> = lines
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != k)
                        .map(|(_, l)| *l)
                        .collect();
                    t = kept.join(&b'\n');
                }
            }
            Mutation::Number { nth, value } => {
                let nums = numbers(&t);
                if !nums.is_empty() {
                    let (s, e) = nums[nth % nums.len()];
                    let mut u = t[..s].to_vec();
                    u.extend_from_slice(EXTREMES[*value].as_bytes());
                    u.extend_from_slice(&t[e..]);
                    t = u;
                }
            }
            _ => {}
        }
    }
    t
}

/// The shipped scenarios (not the specs of other commands), as (name, text).
fn shipped() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(common::root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .filter(|(_, t)| {
            let s = String::from_utf8_lossy(t);
            !(s.contains("[fgd]") || s.contains("[[axes]]") || s.contains("[openb_replay]"))
        })
        .collect();
    v.sort();
    v
}

/// Loads a mutated scenario; when it loads, runs it for ten simulated minutes. Panics are the
/// failure; errors are fine (they are refusals).
fn load_and_run(name: &str, bytes: &[u8]) -> Result<(), String> {
    let dir = common::root().join("scenarios");
    let text = match String::from_utf8(bytes.to_vec()) {
        Ok(t) => t,
        Err(_) => {
            // Through the file loader, which names the line of the bad byte.
            let tmp = tempfile::tempdir().unwrap();
            let p = tmp.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let e = gpusched_sim::load_file(&p, &[]).expect_err("non-UTF-8 is refused");
            assert!(e.to_string().contains("line"), "names the line: {e}");
            return Err(e.to_string());
        }
    };
    let l = gpusched_sim::scenario::load_str(&text, name, dir.clone(), &[])
        .map_err(|e| e.to_string())?;
    // Bound the run: ten minutes, whatever the mutation did to the duration.
    let mut t: toml::Table = toml::from_str(&text).map_err(|e| e.to_string())?;
    t.remove("duration_h");
    t.insert("duration_s".into(), toml::Value::Float(600.0));
    let short = toml::to_string(&t).unwrap();
    let l = gpusched_sim::scenario::load_str(&short, name, dir, &[]).unwrap_or(l);
    if l.duration_s() > 3600.0 * 24.0 {
        return Ok(()); // still long (a typo the limits accept): not run here
    }
    gpusched_sim::run(&l, &mut |_| {})
        .map(|_| ())
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(cases(200))]

    #[test]
    fn mutated_scenarios_never_panic(
        which in any::<usize>(),
        muts in proptest::collection::vec(mutation(), 1..4),
    ) {
        let all = shipped();
        let (name, text) = &all[which % all.len()];
        let m = mutate(text, &muts);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load_and_run(name, &m)));
        tally("scenario", &r);
        prop_assert!(r.is_ok(), "{name} mutated by {muts:?} panicked:\n{}", String::from_utf8_lossy(&m));
    }
}

/// The small trace slices, each cut to its first 40 lines (so a case reads in microseconds).
fn trace_slices() -> Vec<(String, Vec<u8>)> {
    [
        "azure-conv-head300.csv",
        "dlrm-gpu-slice.csv",
        "genai-requests-head200.csv",
        "openb-pods-head300.csv",
        "vidur-example.csv",
        "mooncake-conversation-head200.jsonl",
    ]
    .iter()
    .map(|f| {
        let t = std::fs::read(common::root().join("traces").join(f)).unwrap();
        let head: Vec<&[u8]> = t.split(|&b| b == b'\n').take(40).collect();
        (f.to_string(), head.join(&b'\n'))
    })
    .collect()
}

/// Field values that break naive trace readers: far-future dates, huge and non-finite times.
const TRACE_EXTREMES: &[&str] = &[
    "9999-12-31 23:59:59",
    "0001-01-01 00:00:00",
    "-292277022657-01-27 08:29:52",
    "2023-02-30 25:61:61",
    "1e300",
    "-1e300",
    "nan",
    "inf",
    "18446744073709551616",
    "-1",
    "",
    "\"",
    "4294967296",
];

#[derive(Debug, Clone)]
enum TraceMutation {
    Flip {
        at: usize,
        byte: u8,
    },
    DeleteLine {
        line: usize,
    },
    /// Replace field `field` of line `line` with an extreme value.
    Field {
        line: usize,
        field: usize,
        value: usize,
    },
}

fn trace_mutation() -> impl Strategy<Value = TraceMutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| TraceMutation::Flip { at, byte }),
        any::<usize>().prop_map(|line| TraceMutation::DeleteLine { line }),
        (any::<usize>(), any::<usize>(), 0..TRACE_EXTREMES.len())
            .prop_map(|(line, field, value)| TraceMutation::Field { line, field, value }),
        (any::<usize>(), any::<usize>(), 0..TRACE_EXTREMES.len())
            .prop_map(|(line, field, value)| TraceMutation::Field { line, field, value }),
    ]
}

fn mutate_trace(text: &[u8], muts: &[TraceMutation]) -> Vec<u8> {
    let mut t = text.to_vec();
    for m in muts {
        match m {
            TraceMutation::Flip { at, byte } if !t.is_empty() => {
                let n = t.len();
                t[at % n] = *byte;
            }
            TraceMutation::DeleteLine { line } => {
                t = mutate(&t, &[Mutation::DeleteLine { line: *line }])
            }
            TraceMutation::Field { line, field, value } => {
                let s = String::from_utf8_lossy(&t).into_owned();
                let mut lines: Vec<String> = s.split('\n').map(str::to_string).collect();
                let k = line % lines.len();
                let sep = if lines[k].trim_start().starts_with('{') {
                    ':'
                } else {
                    ','
                };
                let mut fields: Vec<String> = lines[k].split(sep).map(str::to_string).collect();
                let f = field % fields.len();
                let v = TRACE_EXTREMES[*value];
                fields[f] = if sep == ':' {
                    // JSON: keep the line's shape, replace a value.
                    let tail = if fields[f].trim_end().ends_with('}') {
                        "}"
                    } else {
                        ", \"x\""
                    };
                    format!(" {v}{tail}")
                } else {
                    v.to_string()
                };
                lines[k] = fields.join(&sep.to_string());
                t = lines.join("\n").into_bytes();
            }
            _ => {}
        }
    }
    t
}

/// Replays a trace file through the full pipeline (reader, checks, window, superposition).
/// Panics are the failure; a bounded number of requests is read (no hang).
fn replay(path: &Path, skip: bool) -> Result<u64, String> {
    let mut spec = gpusched_sim::trace::pipeline::TraceSpec::new(path);
    spec.skip_bad_rows = skip;
    spec.rate_scale = 2.5;
    let mut p = gpusched_sim::trace::pipeline::Pipeline::open(&spec, path, 7, 0)
        .map_err(|e| e.to_string())?;
    let mut n = 0u64;
    while let Some(r) = p.next_request() {
        let r = r.map_err(|e| e.to_string())?;
        assert!(
            r.t_s.is_finite() && r.t_s >= 0.0,
            "a replayed time is sane: {r:?}"
        );
        n += 1;
        assert!(
            n < 1_000_000,
            "a 40-line trace cannot make a million requests"
        );
    }
    Ok(n)
}

proptest! {
    #![proptest_config(cases(200))]

    #[test]
    fn mutated_traces_never_panic(
        which in any::<usize>(),
        muts in proptest::collection::vec(trace_mutation(), 1..5),
        skip in any::<bool>(),
    ) {
        let all = trace_slices();
        let (name, text) = &all[which % all.len()];
        let m = mutate_trace(text, &muts);
        let tmp = tempfile::tempdir().unwrap();
        let p: PathBuf = tmp.path().join(name);
        std::fs::write(&p, &m).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replay(&p, skip)));
        tally("trace", &r);
        prop_assert!(r.is_ok(), "{name} mutated by {muts:?} panicked:\n{}", String::from_utf8_lossy(&m));
        if let Ok(Err(e)) = r {
            // Refusals are located: the file, and a line for row problems.
            prop_assert!(e.contains(name.as_str()), "names the file: {e}");
        }
    }
}

/// Flags with extreme values, on commands that stay cheap whatever the value.
fn flag_case() -> impl Strategy<Value = Vec<String>> {
    let value = (0..EXTREMES.len()).prop_map(|i| EXTREMES[i].trim_matches('"').to_string());
    let key = proptest::sample::select(vec![
        "seed",
        "duration_s",
        "tick_s",
        "pools.0.nodes",
        "pools.1.gpus_per_node",
        "services.0.concurrency",
        "services.0.max_replicas",
        "services.2.service_time_ms",
        "traffic.scale",
        "costs.energy_usd_per_kwh",
        "autoscaler.up_stabilisation_s",
        "gpu_models.H100-80GB.tdp_w",
        "engine.weights.efficiency",
        "services.0.traffic.qps",
    ]);
    let cmd = prop_oneof![
        (key, value.clone()).prop_map(|(k, v)| vec![
            "run".into(),
            "--no-plots".into(),
            "--set".into(),
            "duration_h=0.05".into(),
            "--set".into(),
            format!("{k}={v}"),
        ]),
        value.clone().prop_map(|v| vec![
            "run".into(),
            "--no-plots".into(),
            "--set".into(),
            "duration_h=0.05".into(),
            "--seed".into(),
            v
        ]),
        (
            proptest::sample::select(vec![
                "--qps",
                "--duration-s",
                "--scale",
                "--rate-scale",
                "--from-qps",
                "--to-qps",
                "--bin-s"
            ]),
            value.clone()
        )
            .prop_map(|(f, v)| vec![
                "trace".into(),
                "synth".into(),
                "--kind".into(),
                "ramp".into(),
                "--duration-s".into(),
                "5".into(),
                f.into(),
                v
            ]),
        (
            proptest::sample::select(vec!["--seeds", "--first-seed"]),
            value.clone()
        )
            .prop_map(|(f, v)| vec![
                "compare".into(),
                "--no-plots".into(),
                "--set".into(),
                "duration_h=0.01".into(),
                f.into(),
                v
            ]),
        (proptest::sample::select(vec!["--seeds", "--tune"]), value).prop_map(|(f, v)| vec![
            "fgd".into(),
            "run".into(),
            "--pod-lists".into(),
            "none".into(),
            f.into(),
            v
        ]),
    ];
    cmd
}

proptest! {
    // Each case starts the binary: fewer cases by default.
    #![proptest_config(cases(40))]

    #[test]
    fn extreme_flags_exit_0_or_2_without_panicking(args in flag_case()) {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        a.extend(["--out", out.to_str().unwrap()]);
        let (code, _, err) = common::gpusched(&a);
        if std::env::var_os("FUZZ_VERBOSE").is_some() {
            eprintln!("fuzz cli {}", if code == 0 { "ran" } else { "refused" });
        }
        prop_assert!(!err.contains("panicked"), "{a:?} panicked: {err}");
        prop_assert!(code == 0 || code == 2, "{a:?} exited {code}: {err}");
    }
}

proptest! {
    #![proptest_config(cases(100))]

    /// Sweep specs: mutated copies of scenarios/sweep-fleet.toml are loaded and every point's
    /// scenario prepared (the runs themselves are the scenario property's business).
    #[test]
    fn mutated_sweep_specs_never_panic(muts in proptest::collection::vec(mutation(), 1..4)) {
        let text = std::fs::read(common::root().join("scenarios/sweep-fleet.toml")).unwrap();
        let m = mutate(&text, &muts);
        let tmp = tempfile::tempdir().unwrap();
        // Beside the shipped scenarios, so that a relative `scenario` resolves as it would.
        let p = tmp.path().join("sweep.toml");
        std::fs::write(&p, &m).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            use gpusched_experiments::sweep::{Shard, Sweep};
            let s = Sweep::load(&p).map_err(|e| e.to_string())?;
            let points = s.shard(Shard { index: 0, count: 1 });
            gpusched_experiments::runner::prepare(&s.jobs(&points))
                .map(|_| ())
                .map_err(|e| e.to_string())
        }));
        tally("sweep", &r);
        prop_assert!(r.is_ok(), "mutated by {muts:?} panicked:\n{}", String::from_utf8_lossy(&m));
    }
}

proptest! {
    #![proptest_config(cases(100))]

    /// The openb node and pod lists (the FGD reproduction's inputs): mutated rows are refused
    /// with an error value or read; never a panic.
    #[test]
    fn mutated_openb_lists_never_panic(
        muts in proptest::collection::vec(trace_mutation(), 1..5),
        pods in any::<bool>(),
    ) {
        let name = if pods { "openb-pods-head300.csv" } else { "openb-node-list-gpu-node.csv" };
        let text = std::fs::read(common::root().join("traces").join(name)).unwrap();
        let head: Vec<&[u8]> = text.split(|&b| b == b'\n').take(40).collect();
        let m = mutate_trace(&head.join(&b'\n'), &muts);
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(name);
        std::fs::write(&p, &m).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            use gpusched_openb::csv_io::{read_nodes, read_pods, read_timed_pods};
            let mut models = gpusched_policies::openb::GpuModels::default();
            if pods {
                read_pods(&p, &models).map(|_| ()).and_then(|_| read_timed_pods(&p, &models).map(|_| ()))
            } else {
                read_nodes(&p, &mut models).map(|_| ())
            }
            .map_err(|e| e.to_string())
        }));
        tally("openb", &r);
        prop_assert!(r.is_ok(), "{name} mutated by {muts:?} panicked:\n{}", String::from_utf8_lossy(&m));
    }
}
