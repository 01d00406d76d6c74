//! Every numeric key of the scenario schema, with NaN, ±inf, negative, zero and huge values:
//! each must end in a located refusal (the file and the key named) or be a documented
//! acceptance (the allow-lists below, each with its reason). The keys are not listed by hand:
//! they come from serialising the built-in default and every shipped scenario (defaults filled
//! in) and walking the TOML, so a key added to the schema later is covered by this test the
//! day it is added. The values go in through `--set`, the mechanism the CLI uses.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The bad values and their class names (for the allow-lists).
const VALUES: &[(&str, &str)] = &[
    ("nan", "nan"),
    ("inf", "inf"),
    ("-inf", "inf"),
    ("-1", "negative"),
    ("-0.5", "negative"),
    ("0", "zero"),
    ("1e300", "huge"),
    ("9223372036854775807", "huge"),
];

/// (key pattern, value class, why it is accepted). The key pattern is the dotted key with list
/// indices written `[]`; `*` stands for one part (a GPU model's name).
const ACCEPTED: &[(&str, &str, &str)] = &[
    ("seed", "zero", "any u64 is a seed"),
    ("seed", "huge", "any u64 is a seed (i64::MAX is one)"),
    (
        "services.[].start_at_s",
        "zero",
        "0 = deployed at the start",
    ),
    ("services.[].min_replicas", "zero", "scale to zero"),
    (
        "services.[].serving.shared_prefix_tokens",
        "zero",
        "no shared system prompt",
    ),
    (
        "services.[].initial_replicas",
        "zero",
        "created with no replica, scaled up on demand",
    ),
    (
        "services.[].traffic_weight",
        "zero",
        "a service without a share of the shared traffic",
    ),
    (
        "services.[].startup_s",
        "zero",
        "an instant start (a model already in memory)",
    ),
    (
        "services.[].queue_timeout_s",
        "zero",
        "fail anything that has to queue",
    ),
    (
        "services.[].max_queue",
        "zero",
        "no queue: reject when every slot is busy",
    ),
    (
        "services.[].service_time_cv",
        "zero",
        "constant service time",
    ),
    ("services.[].traffic.qps", "zero", "an idle service"),
    ("services.[].traffic.scale", "zero", "an idle service"),
    (
        "services.[].traffic.at_s",
        "zero",
        "the batch arrives at the start",
    ),
    ("services.[].traffic.count", "zero", "an empty batch"),
    (
        "services.[].traffic.start_s",
        "zero",
        "the ramp starts at once",
    ),
    (
        "services.[].traffic.from_qps",
        "zero",
        "a ramp up from idle",
    ),
    ("services.[].traffic.to_qps", "zero", "a ramp down to idle"),
    (
        "services.[].traffic.states.[].qps",
        "zero",
        "an MMPP off state",
    ),
    (
        "services.[].traffic.superpose_jitter_s",
        "zero",
        "superposed copies in lockstep",
    ),
    (
        "services.[].traffic.window_start_s",
        "zero",
        "the window starts at the trace's start",
    ),
    ("services.[].traffic.reorder_rows", "zero", "a sorted trace"),
    (
        "services.[].priority_class",
        "zero",
        "any Kubernetes priority value",
    ),
    (
        "services.[].priority_class",
        "negative",
        "Kubernetes priority values may be negative",
    ),
    ("traffic.qps", "zero", "no shared traffic"),
    ("traffic.scale", "zero", "no shared traffic"),
    (
        "traffic.anchors.[].[]",
        "zero",
        "hour 0 and idle hours are anchors",
    ),
    ("traffic.at_s", "zero", "the batch arrives at the start"),
    ("traffic.count", "zero", "an empty batch"),
    ("traffic.start_s", "zero", "the ramp starts at once"),
    ("traffic.from_qps", "zero", "a ramp up from idle"),
    ("traffic.to_qps", "zero", "a ramp down to idle"),
    ("traffic.states.[].qps", "zero", "an MMPP off state"),
    (
        "traffic.superpose_jitter_s",
        "zero",
        "superposed copies in lockstep",
    ),
    (
        "traffic.window_start_s",
        "zero",
        "the window starts at the trace's start",
    ),
    ("traffic.reorder_rows", "zero", "a sorted trace"),
    (
        "services.[].traffic.anchors.[].[]",
        "zero",
        "hour 0 and idle hours are anchors",
    ),
    (
        "perf.mps_alone_curve.[].[]",
        "zero",
        "the curve starts at (0 % thread cap, 0 throughput)",
    ),
    (
        "perf.power_curve.[].[]",
        "zero",
        "the curve starts at (no work, idle power)",
    ),
    (
        "costs.energy_usd_per_kwh",
        "zero",
        "free energy (a cost of hardware only)",
    ),
    (
        "disruption.plugin_restart_s",
        "zero",
        "an instant device-plugin restart",
    ),
    (
        "disruption.mig_reconfigure_s",
        "zero",
        "an instant MIG re-layout",
    ),
    (
        "gpu_models.*.idle_w",
        "zero",
        "a GPU that draws nothing idle",
    ),
    (
        "gpu_models.*.price_per_hour",
        "zero",
        "owned hardware: energy cost only",
    ),
    (
        "node_state.[].background_utilisation",
        "zero",
        "no other tenant",
    ),
    (
        "autoscaler.up_stabilisation_s",
        "zero",
        "no stabilisation (Kubernetes' own default up)",
    ),
    (
        "autoscaler.down_stabilisation_s",
        "zero",
        "no stabilisation",
    ),
    (
        "autoscaler.tolerance",
        "zero",
        "HPA without a tolerance band",
    ),
    (
        "autoscaler.up_max_pods",
        "zero",
        "no pod-count limit on scale-up",
    ),
    (
        "autoscaler.up_max_percent",
        "zero",
        "no percentage limit on scale-up",
    ),
    (
        "autoscaler.down_max_percent",
        "zero",
        "no percentage limit on scale-down",
    ),
    ("autoscaler.queue_up_above", "zero", "scale up on any queue"),
    (
        "autoscaler.queue_down_below",
        "zero",
        "never scale down on the queue",
    ),
    (
        "autoscaler.efficiency_min_tops_per_w",
        "zero",
        "no efficiency condition",
    ),
    (
        "autoscaler.cost_per_inference_above",
        "zero",
        "scale down whenever idle enough",
    ),
    (
        "engine.affinity_mismatch",
        "zero",
        "the seeds' affinity term off for other families",
    ),
    (
        "engine.headroom_free_gpu",
        "zero",
        "no sharing-headroom credit for free GPUs",
    ),
    (
        "engine.weights.*",
        "zero",
        "a score term switched off (the sum must stay > 0)",
    ),
    ("perf.mps_loss_per_extra_client", "zero", "ideal MPS"),
    ("perf.timeslice_loss", "zero", "ideal time-slicing"),
    ("perf.batch_slowdown", "zero", "batching without slowdown"),
    ("perf.tokens.overhead_ms", "zero", "no per-request overhead"),
    (
        "perf.tokens.decode_batch_slowdown",
        "zero",
        "decode batching without slowdown",
    ),
    (
        "pools.[].nodes",
        "zero",
        "an empty pool (others hold the GPUs)",
    ),
];

/// A prefix of the key that accepts zero wherever it is (new subsections of `reconfig` and
/// `engine` hold counts and thresholds for which 0 means "off").
const ACCEPTED_ZERO_UNDER: &[(&str, &str)] = &[
    (
        "reconfig.",
        "rollout counts, budgets and delays: 0 = none / off",
    ),
    ("engine.fit.", "fit thresholds: 0 = no minimum"),
    (
        "engine.classify.",
        "size-class bounds: 0 = the smallest class",
    ),
    ("engine.time_slicing.", "time-slicing settings: 0 = off"),
    ("engine.admission.", "admission thresholds: 0 = off"),
];

fn pattern(path: &[String]) -> String {
    path.iter()
        .map(|p| {
            if p.parse::<usize>().is_ok() {
                "[]".to_string()
            } else {
                p.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn accepted(pat: &str, class: &str) -> bool {
    let gpu = |p: &str| {
        // gpu_models.<name>.key → gpu_models.*.key
        let parts: Vec<&str> = p.split('.').collect();
        if parts.len() == 3 && parts[0] == "gpu_models" {
            format!("gpu_models.*.{}", parts[2])
        } else if parts.len() == 3 && parts[0] == "engine" && parts[1] == "weights" {
            "engine.weights.*".to_string()
        } else {
            p.to_string()
        }
    };
    let p = gpu(pat);
    ACCEPTED.iter().any(|(k, c, _)| *k == p && *c == class)
        || (class == "zero" && ACCEPTED_ZERO_UNDER.iter().any(|(k, _)| p.starts_with(k)))
}

fn leaves(v: &toml::Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, bool)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                path.push(k.clone());
                leaves(x, path, out);
                path.pop();
            }
        }
        toml::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(i.to_string());
                leaves(x, path, out);
                path.pop();
            }
        }
        toml::Value::Integer(_) => out.push((path.clone(), true)),
        toml::Value::Float(_) => out.push((path.clone(), false)),
        _ => {}
    }
}

/// The scenario files to walk: the built-in default first, then the shipped scenarios and the
/// test fixture that sets the optional keys no shipped scenario sets.
fn scenarios() -> Vec<(String, String, PathBuf)> {
    let mut v = vec![(
        "default".to_string(),
        gpusched_sim::scenario::DEFAULT_SCENARIO.to_string(),
        common::root().join("scenarios"),
    )];
    let mut files: Vec<PathBuf> = std::fs::read_dir(common::root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.push(common::root().join("tests/corpus/all-optional-keys.toml"));
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let t: toml::Table = toml::from_str(&text).unwrap();
        if ["axes", "fgd", "openb_replay"]
            .iter()
            .any(|k| t.contains_key(*k))
        {
            continue; // specs of other commands
        }
        v.push((
            f.file_name().unwrap().to_string_lossy().into_owned(),
            text,
            f.parent().unwrap().to_path_buf(),
        ));
    }
    v
}

#[test]
fn every_numeric_key_refuses_or_documents_bad_values() {
    // First occurrence of each key pattern: (scenario text with defaults filled in, base dir,
    // concrete dotted key, integer?).
    let mut keys: BTreeMap<String, (String, String, PathBuf, Vec<String>, bool)> = BTreeMap::new();
    for (name, text, base) in scenarios() {
        let l = gpusched_sim::scenario::load_str(&text, &name, base.clone(), &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut v = toml::Value::try_from(&l.scenario).unwrap();
        // Its pools are already expanded into `pools`.
        v.as_table_mut().unwrap().remove("pools_from");
        let full = toml::to_string(&v).unwrap();
        gpusched_sim::scenario::load_str(&full, &name, base.clone(), &[])
            .unwrap_or_else(|e| panic!("{name} does not round-trip: {e}"));
        let mut out = Vec::new();
        leaves(&v, &mut Vec::new(), &mut out);
        for (path, int) in out {
            keys.entry(pattern(&path)).or_insert((
                name.clone(),
                full.clone(),
                base.clone(),
                path,
                int,
            ));
        }
    }
    assert!(keys.len() > 60, "walked only {} keys", keys.len());
    let mut refused = 0;
    let mut accepted_n = 0;
    let mut problems = Vec::new();
    for (pat, (name, text, base, path, _int)) in &keys {
        let dotted = path.join(".");
        let bracketed = {
            // validate.rs writes list indices as services[2].
            let mut s = String::new();
            for p in path {
                if p.parse::<usize>().is_ok() {
                    s.push_str(&format!("[{p}]"));
                } else {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(p);
                }
            }
            s
        };
        let leaf = path.last().unwrap();
        for (raw, class) in VALUES {
            let set = format!("{dotted}={raw}");
            match gpusched_sim::scenario::load_str(
                text,
                name,
                base.clone(),
                std::slice::from_ref(&set),
            ) {
                Err(e) => {
                    let msg = e.to_string();
                    let located = msg.contains(&dotted)
                        || msg.contains(&bracketed)
                        || msg.contains(&format!("--set {set}"))
                        // A relation between keys names the key it blames (min <= max).
                        || msg.contains(leaf.as_str());
                    if !located {
                        problems.push(format!(
                            "{pat} = {raw}: refusal does not name the key: {msg}"
                        ));
                    }
                    refused += 1;
                }
                Ok(l) => {
                    if !accepted(pat, class) {
                        problems.push(format!(
                            "{pat} = {raw} ({class}): accepted, but not in the allow-list"
                        ));
                        continue;
                    }
                    accepted_n += 1;
                    // An accepted value runs cleanly (a short run: ten simulated minutes).
                    if !pat.starts_with("duration") {
                        let mut t: toml::Table = toml::from_str(text).unwrap();
                        t.remove("duration_h");
                        t.insert("duration_s".into(), toml::Value::Float(600.0));
                        let short = toml::to_string(&t).unwrap();
                        let l = gpusched_sim::scenario::load_str(
                            &short,
                            name,
                            base.clone(),
                            std::slice::from_ref(&set),
                        )
                        .unwrap_or(l);
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            gpusched_sim::run(&l, &mut |_| {})
                        }));
                        if r.is_err() {
                            problems
                                .push(format!("{pat} = {raw}: accepted, then the run panicked"));
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{} keys × {} values: {refused} located refusals, {accepted_n} documented acceptances",
        keys.len(),
        VALUES.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
