//! `compare`: named variants (a policy, or any set of overrides) run over scenarios and seeds,
//! each metric summarised as a mean with a 95 % interval, written as a PR-ready markdown table,
//! CSV and JSON. The JSON is also what a later run's `--baseline` reads.

use super::metric::{self, METRICS};
use super::runner::RunRecord;
use super::stats::Estimate;
use super::ExperimentError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The JSON layout's version, bumped on incompatible changes.
pub const REPORT_VERSION: u32 = 1;

/// A named configuration: `--policy best_fit` is `best_fit` with `engine.policy=best_fit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    pub sets: Vec<String>,
}

impl Variant {
    /// `--policy NAME`.
    pub fn policy(name: &str) -> Result<Variant, ExperimentError> {
        let known = gpusched_policies::config::PolicyName::ALL;
        if !known.iter().any(|p| p.as_str() == name) {
            return Err(ExperimentError::BadInput(format!(
                "--policy {name}: unknown policy; known policies are {}",
                known.map(|p| p.as_str()).join(", ")
            )));
        }
        Ok(Variant {
            name: name.to_string(),
            sets: vec![format!("engine.policy={name}")],
        })
    }

    /// `--variant name:key=value,key=value`. Commas inside brackets, braces or quotes belong
    /// to the value, so lists and inline tables survive: `hpa:autoscaler={kind="hpa",target=4}`.
    pub fn parse(arg: &str) -> Result<Variant, ExperimentError> {
        let bad = |why: &str| {
            ExperimentError::BadInput(format!(
                "--variant {arg}: {why} (expected name:key=value,key=value)"
            ))
        };
        let (name, rest) = arg.split_once(':').ok_or_else(|| bad("no `:`"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad("the name must be letters, digits, - _ or ."));
        }
        let mut sets: Vec<String> = Vec::new();
        let (mut depth, mut quote, mut cur) = (0i32, None::<char>, String::new());
        for c in rest.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '[' | '{') => depth += 1,
                (None, ']' | '}') => depth -= 1,
                (None, ',') if depth == 0 => {
                    sets.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        sets.push(cur);
        let sets: Vec<String> = sets.into_iter().map(|s| s.trim().to_string()).collect();
        if let Some(p) = sets.iter().find(|p| !p.contains('=')) {
            return Err(bad(&format!("`{p}` is not key=value")));
        }
        Ok(Variant {
            name: name.to_string(),
            sets,
        })
    }
}

/// One (scenario, variant) over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub scenario: String,
    pub variant: String,
    pub seeds: Vec<u64>,
    pub metrics: BTreeMap<String, Estimate>,
    /// Mean over seeds of the latency at each of [`CDF_QUANTILES`](gpusched_sim::metrics::CDF_QUANTILES)
    /// (quantile averaging: the CDF of the "average run").
    pub latency_cdf_ms: Vec<f64>,
}

/// Everything a compare run produced; serialised as compare.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    pub version: u32,
    pub scenarios: Vec<String>,
    pub variants: Vec<Variant>,
    pub seeds: Vec<u64>,
    pub cdf_quantiles: Vec<f64>,
    pub groups: Vec<Group>,
    pub runs: Vec<RunRecord>,
}

/// Groups runs by (scenario, variant) in order of first appearance.
pub fn aggregate(runs: &[RunRecord]) -> Vec<Group> {
    let mut order: Vec<(String, String)> = Vec::new();
    for r in runs {
        let k = (r.scenario.clone(), r.variant.clone());
        if !order.contains(&k) {
            order.push(k);
        }
    }
    order
        .into_iter()
        .map(|(scenario, variant)| {
            let mine: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| r.scenario == scenario && r.variant == variant)
                .collect();
            let mut metrics = BTreeMap::new();
            for m in METRICS {
                let xs: Vec<f64> = mine
                    .iter()
                    .filter_map(|r| r.metrics.get(m.name).copied())
                    .collect();
                if let Some(e) = Estimate::from_values(&xs) {
                    metrics.insert(m.name.to_string(), e);
                }
            }
            Group {
                seeds: mine.iter().map(|r| r.seed).collect(),
                latency_cdf_ms: mean_cdf(&mine),
                scenario,
                variant,
                metrics,
            }
        })
        .collect()
}

fn mean_cdf(runs: &[&RunRecord]) -> Vec<f64> {
    let with: Vec<&Vec<f64>> = runs
        .iter()
        .map(|r| &r.latency_cdf_ms)
        .filter(|c| !c.is_empty())
        .collect();
    let Some(first) = with.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| with.iter().filter_map(|c| c.get(i)).sum::<f64>() / with.len() as f64)
        .collect()
}

impl CompareReport {
    pub fn new(
        scenarios: Vec<String>,
        variants: Vec<Variant>,
        seeds: Vec<u64>,
        runs: Vec<RunRecord>,
    ) -> Self {
        CompareReport {
            version: REPORT_VERSION,
            groups: aggregate(&runs),
            scenarios,
            variants,
            seeds,
            cdf_quantiles: gpusched_sim::metrics::CDF_QUANTILES.to_vec(),
            runs,
        }
    }

    pub fn group(&self, scenario: &str, variant: &str) -> Option<&Group> {
        self.groups
            .iter()
            .find(|g| g.scenario == scenario && g.variant == variant)
    }

    /// Reads a compare.json written earlier.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let r: CompareReport = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if r.version != REPORT_VERSION {
            return Err(format!(
                "report version {} (this gpusched reads version {REPORT_VERSION})",
                r.version
            ));
        }
        Ok(r)
    }

    /// One row per (scenario, variant, metric): mean, interval, spread.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "scenario,variant,metric,unit,mean,ci95_low,ci95_high,ci95_half,std,n,min,max\n",
        );
        for g in &self.groups {
            for m in METRICS {
                let Some(e) = g.metrics.get(m.name) else {
                    continue;
                };
                let _ = writeln!(
                    out,
                    "{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{},{:.6},{:.6}",
                    csv_field(&g.scenario),
                    csv_field(&g.variant),
                    m.name,
                    m.unit,
                    e.mean,
                    e.mean - e.ci95,
                    e.mean + e.ci95,
                    e.ci95,
                    e.std,
                    e.n,
                    e.min,
                    e.max
                );
            }
        }
        out
    }

    /// Per scenario, a table of metrics (rows) by variants (columns), `mean ± half-width`;
    /// with a baseline variant each other column also shows the change against it.
    pub fn to_markdown(&self, baseline_variant: Option<&str>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Mean over {} seed(s) ± half-width of the 95 % confidence interval (Student t).\n",
            self.seeds.len()
        );
        for sc in &self.scenarios {
            let _ = writeln!(out, "### {sc}\n");
            let groups: Vec<&Group> = self.groups.iter().filter(|g| &g.scenario == sc).collect();
            let base = baseline_variant.and_then(|b| groups.iter().find(|g| g.variant == b));
            out.push_str("| metric |");
            for g in &groups {
                let tag = if Some(g.variant.as_str()) == baseline_variant {
                    " (baseline)"
                } else {
                    ""
                };
                let _ = write!(out, " {}{tag} |", g.variant);
            }
            out.push_str("\n|---|");
            out.push_str(&"---:|".repeat(groups.len()));
            out.push('\n');
            for m in METRICS {
                // Rows no run of this scenario reports (e.g. a change's cost without a change).
                if groups.iter().all(|g| !g.metrics.contains_key(m.name)) {
                    continue;
                }
                let unit = if m.unit.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", m.unit)
                };
                let _ = write!(out, "| {}{unit} |", m.name);
                for g in &groups {
                    let cell = match g.metrics.get(m.name) {
                        Some(e) => {
                            let mut c =
                                format!("{:.*} ± {:.*}", m.decimals, e.mean, m.decimals, e.ci95);
                            if let Some(b) = base.filter(|b| b.variant != g.variant) {
                                if let Some(be) = b.metrics.get(m.name) {
                                    c.push_str(&format!(" ({})", change(m, be.mean, e.mean)));
                                }
                            }
                            c
                        }
                        None => "–".into(),
                    };
                    let _ = write!(out, " {cell} |");
                }
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }
}

/// The change from `base` to `v`: percentage points for percent metrics, else percent.
pub fn change(m: &metric::MetricDef, base: f64, v: f64) -> String {
    if m.percent {
        format!("{:+.2} pp", v - base)
    } else if base != 0.0 {
        format!("{:+.1} %", (v - base) / base.abs() * 100.0)
    } else if v == 0.0 {
        "±0 %".into()
    } else {
        "new".into()
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(variant: &str, seed: u64, p99: f64) -> RunRecord {
        RunRecord {
            scenario: "s".into(),
            variant: variant.into(),
            seed,
            metrics: [("p99_ms".to_string(), p99)].into_iter().collect(),
            latency_cdf_ms: vec![p99 / 2.0, p99],
            binding: None,
        }
    }

    #[test]
    fn variants_parse_with_lists() {
        let v =
            Variant::parse(r#"hpa:autoscaler={kind="hpa",target=4},engine.filters=[A,B],seed=3"#)
                .unwrap();
        assert_eq!(v.name, "hpa");
        assert_eq!(
            v.sets,
            vec![
                r#"autoscaler={kind="hpa",target=4}"#,
                "engine.filters=[A,B]",
                "seed=3"
            ]
        );
        assert!(Variant::parse("nocolon").is_err());
        assert!(Variant::parse("x:novalue").is_err());
        assert!(Variant::policy("nope").is_err());
        assert_eq!(
            Variant::policy("best_fit").unwrap().sets,
            vec!["engine.policy=best_fit"]
        );
    }

    #[test]
    fn groups_keep_order_and_average() {
        let runs = vec![rec("b", 1, 10.0), rec("a", 1, 20.0), rec("b", 2, 30.0)];
        let g = aggregate(&runs);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].variant, "b");
        assert_eq!(g[0].metrics["p99_ms"].mean, 20.0);
        assert_eq!(g[0].latency_cdf_ms, vec![10.0, 20.0]);
        assert_eq!(g[1].seeds, vec![1]);
    }
}
