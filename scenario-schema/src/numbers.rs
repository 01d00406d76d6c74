//! The one numeric check every scenario key goes through, at any depth: a walk over the TOML
//! the user wrote (after `--set` overrides), not over the Rust structs, so that a key added to
//! the schema later is covered the day it is added (by the default rule below) without anyone
//! remembering to validate it.
//!
//! Every number must be finite (TOML accepts `nan` and `inf`), and within the range of the most
//! specific rule whose pattern matches the end of its dotted key (list indices left out, `*`
//! for any one part). Keys no rule names get the default: 0 ..= 10¹², since nearly every
//! scenario number is a count, a duration, a rate, a size or a price, and a negative one, or
//! one beyond a trillion, is a typo that would otherwise silently change the results or make
//! the simulator spin. Relations between keys (idle power under TDP, min <= max replicas) and
//! the resource limits are checked after deserialising, in `crate::validate` and
//! `crate::limits`.

use crate::limits;
use crate::scenario::ScenarioError;

/// A closed or half-open range, with the reason a user reads when outside it.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Dotted key suffix; `*` matches any one part (a GPU model name).
    pub key: &'static str,
    pub min: f64,
    /// `min` itself is not allowed (must be positive).
    pub min_exclusive: bool,
    pub max: f64,
    pub unit: &'static str,
}

const fn range(key: &'static str, min: f64, max: f64, unit: &'static str) -> Rule {
    Rule {
        key,
        min,
        min_exclusive: false,
        max,
        unit,
    }
}

const fn positive(key: &'static str, max: f64, unit: &'static str) -> Rule {
    Rule {
        key,
        min: 0.0,
        min_exclusive: true,
        max,
        unit,
    }
}

/// Keys no rule names.
pub const DEFAULT_RULE: Rule = range("*", 0.0, 1e12, "");

const DAY_S: f64 = 86_400.0;

/// The rules. Order does not matter: the longest matching pattern wins.
pub const RULES: &[Rule] = &[
    // Any u64 is a seed.
    range("seed", 0.0, 1.8446744073709552e19, ""),
    positive(
        "duration_h",
        limits::MAX_DURATION_S / 3600.0,
        "h (10 years)",
    ),
    positive("duration_s", limits::MAX_DURATION_S, "s (10 years)"),
    positive("tick_s", DAY_S, "s"),
    // Per-GPU-model catalog overrides.
    positive("gpu_models.*.memory_gb", 4096.0, "GB"),
    positive("gpu_models.*.tdp_w", 10_000.0, "W"),
    range("gpu_models.*.idle_w", 0.0, 10_000.0, "W"),
    positive("gpu_models.*.seeds_tops", 1e7, "TOPS"),
    positive("gpu_models.*.relative_speed", 1000.0, "× H100"),
    range("gpu_models.*.price_per_hour", 0.0, 10_000.0, "$/h"),
    range("costs.energy_usd_per_kwh", 0.0, 100.0, "$/kWh"),
    range("disruption.plugin_restart_s", 0.0, DAY_S, "s"),
    range("disruption.mig_reconfigure_s", 0.0, DAY_S, "s"),
    // The cluster.
    range("pools.nodes", 0.0, limits::MAX_NODES as f64, "nodes"),
    range("pools.gpus_per_node", 1.0, 255.0, "GPUs"),
    range("pools.sharing.replicas", 2.0, 48.0, "replicas"),
    positive("pools_from.scale", 1000.0, "×"),
    range("node_state.background_utilisation", 0.0, 1.0, ""),
    // Services.
    positive("services.model_memory_gb", 4096.0, "GB"),
    positive("services.service_time_ms", DAY_S * 1000.0, "ms"),
    positive("services.model_params_b", 100_000.0, "billion parameters"),
    range("services.service_time_cv", 0.0, 10.0, ""),
    positive("services.latency_sla_ms", DAY_S * 1000.0, "ms"),
    positive("services.sla_per_output_token_ms", 3_600_000.0, "ms"),
    range("services.share_pct", 1.0, 100.0, "%"),
    // Kubernetes priority-class values are any 32-bit integer, negative included.
    range(
        "services.priority_class",
        -2_147_483_648.0,
        2_147_483_647.0,
        "",
    ),
    range(
        "services.concurrency",
        1.0,
        limits::MAX_CONCURRENCY as f64,
        "requests",
    ),
    range(
        "services.initial_replicas",
        0.0,
        limits::MAX_REPLICAS as f64,
        "replicas",
    ),
    range(
        "services.min_replicas",
        0.0,
        limits::MAX_REPLICAS as f64,
        "replicas",
    ),
    range(
        "services.max_replicas",
        0.0,
        limits::MAX_REPLICAS as f64,
        "replicas",
    ),
    range("services.startup_s", 0.0, DAY_S, "s"),
    range("services.start_at_s", 0.0, limits::MAX_DURATION_S, "s"),
    range("services.queue_timeout_s", 0.0, limits::MAX_DURATION_S, "s"),
    // A queue is held in memory (a batch arrives all at once).
    range(
        "services.max_queue",
        0.0,
        limits::MAX_QUEUE as f64,
        "requests",
    ),
    range("services.traffic_weight", 0.0, 1e6, ""),
    // Traffic, wherever it is (top level or per service).
    range("traffic.qps", 0.0, limits::MAX_RATE_QPS, "req/s"),
    range(
        "traffic.anchors",
        0.0,
        limits::MAX_RATE_QPS,
        "(hour 0..=24, req/s)",
    ),
    range("traffic.scale", 0.0, 1e6, "×"),
    range("traffic.count", 0.0, limits::MAX_REQUESTS, "requests"),
    range("traffic.at_s", 0.0, limits::MAX_DURATION_S, "s"),
    range("traffic.states.qps", 0.0, limits::MAX_RATE_QPS, "req/s"),
    // A state shorter than a millisecond would switch billions of times per simulated hour.
    range("traffic.states.mean_s", 0.001, limits::MAX_DURATION_S, "s"),
    range("traffic.from_qps", 0.0, limits::MAX_RATE_QPS, "req/s"),
    range("traffic.to_qps", 0.0, limits::MAX_RATE_QPS, "req/s"),
    range("traffic.start_s", 0.0, limits::MAX_DURATION_S, "s"),
    range("traffic.end_s", 0.0, limits::MAX_DURATION_S, "s"),
    // One rate per bin is held in memory: bins under a second would be billions.
    range("traffic.bin_s", 1.0, limits::MAX_DURATION_S, "s"),
    positive("traffic.rate_scale", limits::MAX_RATE_SCALE, "×"),
    positive("traffic.time_scale", 1e6, "×"),
    range("traffic.window_start_s", 0.0, limits::MAX_TRACE_TIME_S, "s"),
    // An end at 0 is an empty window.
    positive("traffic.window_end_s", limits::MAX_TRACE_TIME_S, "s"),
    range("traffic.superpose_jitter_s", 0.0, DAY_S, "s"),
    range("traffic.reorder_rows", 0.0, 10_000_000.0, "rows"),
    // The autoscaler: thresholds and stabilisation windows.
    range("autoscaler.up_stabilisation_s", 0.0, DAY_S, "s"),
    range("autoscaler.down_stabilisation_s", 0.0, DAY_S, "s"),
    range(
        "autoscaler.step_up",
        1.0,
        limits::MAX_REPLICAS as f64,
        "replicas",
    ),
    range(
        "autoscaler.step_down",
        1.0,
        limits::MAX_REPLICAS as f64,
        "replicas",
    ),
    positive("autoscaler.target", 1e9, ""),
    range("autoscaler.tolerance", 0.0, 0.999, ""),
    range(
        "autoscaler.up_max_pods",
        0.0,
        limits::MAX_REPLICAS as f64,
        "pods",
    ),
    range("autoscaler.up_max_percent", 0.0, 1e6, "%"),
    range("autoscaler.down_max_percent", 0.0, 100.0, "%"),
    // Engine terms in 0..=1.
    range("engine.affinity_mismatch", 0.0, 1.0, ""),
    // Performance model fractions.
    range("perf.mps_loss_per_extra_client", 0.0, 1.0, ""),
    range("perf.timeslice_loss", 0.0, 1.0, ""),
    // (thread cap %, throughput fraction) and (work fraction, power fraction) points.
    range("perf.mps_alone_curve", 0.0, 100.0, ""),
    range("perf.power_curve", 0.0, 1.0, ""),
    positive("perf.tokens.prefill_mfu", 1.0, ""),
    positive("perf.tokens.decode_mbu", 1.0, ""),
    positive("perf.tokens.bytes_per_param", 64.0, "bytes"),
    // Specs of the other commands (sweep, `[fgd]`, `[openb_replay]`) go through the same walk.
    range("seeds", 0.0, 1.8446744073709552e19, ""),
    positive("growth", 1e6, "× traffic"),
    // Axis values are scenario values: checked by the scenario's rules once applied.
    range(
        "axes.values",
        -1.8446744073709552e19,
        1.8446744073709552e19,
        "",
    ),
    range("search.samples", 1.0, limits::MAX_RUNS as f64, "fleets"),
    range("search.seed", 0.0, 1.8446744073709552e19, ""),
    positive(
        "fgd.tune",
        limits::MAX_TOP_UP,
        "× (pods after top-up = pods × tune)",
    ),
    positive(
        "openb_replay.static_tune",
        limits::MAX_TOP_UP,
        "× (pods after top-up = pods × tune)",
    ),
    positive("openb_replay.speedup", 1e9, "×"),
    range("openb_replay.buckets", 1.0, 100_000.0, "buckets"),
    range("openb_replay.retry_cap", 0.0, 1e6, "retries"),
    range(
        "openb_replay.retry_delay_s",
        0.0,
        limits::MAX_DURATION_S,
        "s",
    ),
    range("openb_replay.tail_s", 0.0, limits::MAX_DURATION_S, "s"),
    range(
        "openb_replay.window_start_s",
        0.0,
        limits::MAX_TRACE_TIME_S,
        "s",
    ),
    range(
        "openb_replay.window_end_s",
        0.0,
        limits::MAX_TRACE_TIME_S,
        "s",
    ),
    // Rollouts.
    positive("reconfig.qps_gate.safe_qps", limits::MAX_RATE_QPS, "req/s"),
    positive(
        "reconfig.qps_gate.caution_qps",
        limits::MAX_RATE_QPS,
        "req/s",
    ),
    positive(
        "reconfig.qps_gate.no_update_qps",
        limits::MAX_RATE_QPS,
        "req/s",
    ),
    range("reconfig.drain_timeout_s", 0.0, DAY_S, "s"),
    range("reconfig.surge_timeout_s", 0.0, DAY_S, "s"),
    range("reconfig.pods_timeout_s", 0.0, DAY_S, "s"),
];

impl Rule {
    fn allows(&self, v: f64) -> bool {
        let low = if self.min_exclusive {
            v > self.min
        } else {
            v >= self.min
        };
        low && v <= self.max
    }

    /// "0 < x <= 4096 GB", "0 <= x <= 1".
    pub fn describe(&self) -> String {
        if self.min_exclusive && self.min == 0.0 {
            // The word users look for first; the range follows.
            return format!(
                "a positive number, 0 < x <= {}{}",
                num(self.max),
                unit(self.unit)
            );
        }
        let op = if self.min_exclusive { "<" } else { "<=" };
        let unit = if self.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", self.unit)
        };
        format!("{} {op} x <= {}{unit}", num(self.min), num(self.max))
    }
}

fn unit(u: &str) -> String {
    if u.is_empty() {
        String::new()
    } else {
        format!(" {u}")
    }
}

fn num(v: f64) -> String {
    if v.abs() >= 1e7 && v.fract() == 0.0 {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// The parts of a dotted key that rules match: list indices dropped.
fn parts(path: &[String]) -> Vec<&str> {
    path.iter()
        .map(String::as_str)
        .filter(|p| p.parse::<usize>().is_err())
        .collect()
}

/// The rule for a key (its parts, indices already dropped).
pub fn rule_for(parts: &[&str]) -> &'static Rule {
    let mut best: Option<(&'static Rule, usize)> = None;
    for r in RULES {
        let pat: Vec<&str> = r.key.split('.').collect();
        if pat.len() > parts.len() {
            continue;
        }
        let tail = &parts[parts.len() - pat.len()..];
        let hit = pat.iter().zip(tail).all(|(p, k)| *p == "*" || p == k);
        if hit && best.is_none_or(|(_, n)| pat.len() > n) {
            best = Some((r, pat.len()));
        }
    }
    best.map(|(r, _)| r).unwrap_or(&DEFAULT_RULE)
}

/// Checks a command-line flag against the rule of the scenario key it stands for, so that
/// `--qps` and `traffic.qps` accept the same numbers: "--qps nan: not a number; allowed: …".
pub fn check_flag(flag: &str, key: &str, v: f64) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let rule = rule_for(&parts);
    if !v.is_finite() {
        Err(format!(
            "{flag} {v}: not a number; allowed: {}",
            rule.describe()
        ))
    } else if !rule.allows(v) {
        Err(format!(
            "{flag} {v}: out of range; allowed: {}",
            rule.describe()
        ))
    } else {
        Ok(())
    }
}

/// A key as the rest of the validation writes it: `services[2].traffic.qps`,
/// `gpu_models."H100-80GB".tdp_w` (quoted where TOML needs quotes).
fn shown_key(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if p.parse::<usize>().is_ok() {
            s.push_str(&format!("[{p}]"));
            continue;
        }
        if !s.is_empty() {
            s.push('.');
        }
        if p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            s.push_str(p);
        } else {
            s.push_str(&format!("{p:?}"));
        }
    }
    s
}

/// Checks every number under `v`; `source` names the file in the error.
pub fn check(source: &str, v: &toml::Value) -> Result<(), ScenarioError> {
    let mut path = Vec::new();
    walk(source, v, &mut path)
}

fn walk(source: &str, v: &toml::Value, path: &mut Vec<String>) -> Result<(), ScenarioError> {
    let value = match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                path.push(k.clone());
                let r = walk(source, x, path);
                path.pop();
                r?;
            }
            return Ok(());
        }
        toml::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(i.to_string());
                let r = walk(source, x, path);
                path.pop();
                r?;
            }
            return Ok(());
        }
        toml::Value::Integer(i) => *i as f64,
        toml::Value::Float(f) => *f,
        _ => return Ok(()),
    };
    // `variants.*.set` are `--set` strings, checked when a variant is applied; `gpu_models`
    // keys and every other table are numbers the rules know.
    let p = parts(path);
    let rule = rule_for(&p);
    let problem = if !value.is_finite() {
        Some(format!(
            "{value} is not a number; allowed: {}",
            rule.describe()
        ))
    } else if !rule.allows(value) {
        Some(format!(
            "{value} is out of range; allowed: {}",
            rule.describe()
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ScenarioError::Invalid {
            path: source.to_string(),
            key: shown_key(path),
            problem,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_pattern_wins() {
        assert_eq!(rule_for(&["gpu_models", "H100-80GB", "idle_w"]).min, 0.0);
        assert!(rule_for(&["gpu_models", "H100-80GB", "tdp_w"]).min_exclusive);
        assert_eq!(rule_for(&["services", "traffic", "qps"]).key, "traffic.qps");
        assert_eq!(rule_for(&["something_new"]).key, "*");
    }

    #[test]
    fn nan_is_refused_with_the_dotted_key_and_the_range() {
        let v: toml::Value = toml::from_str("[costs]\nenergy_usd_per_kwh = nan").unwrap();
        let e = check("x.toml", &v).unwrap_err().to_string();
        assert!(
            e.contains("x.toml")
                && e.contains("costs.energy_usd_per_kwh")
                && e.contains("0 <= x <= 100"),
            "{e}"
        );
    }
}
