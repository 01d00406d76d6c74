//! The CI gate: `--fail-if` expressions checked against a baseline.
//!
//! Forms (`OP` is `>`, `>=`, `<` or `<=`):
//! * `p99_ms > 800` — absolute: the candidate's mean itself;
//! * `p99_ms > +5%` — relative change against the baseline's mean, in percent;
//! * `slo_attainment < -1pp` — change in percentage points (percent metrics only);
//! * `mean_allocated_gpus > +0.5` — a signed number without a unit: change in the metric's unit.
//!
//! A gate compares means over seeds: the interval is reported next to it so a reviewer can tell
//! a regression from noise, but the decision stays a plain, predictable threshold.

use super::compare::Group;
use super::metric::{self, MetricDef};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// What the right-hand side means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Absolute(f64),
    /// Percent change against the baseline.
    Relative(f64),
    /// Change in percentage points.
    Points(f64),
    /// Change in the metric's own unit.
    Delta(f64),
}

impl Threshold {
    pub fn needs_baseline(self) -> bool {
        !matches!(self, Threshold::Absolute(_))
    }
}

#[derive(Debug, Clone)]
pub struct GateExpr {
    pub text: String,
    pub metric: &'static MetricDef,
    pub op: Op,
    pub threshold: Threshold,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--fail-if '{expr}': {problem}")]
pub struct GateError {
    pub expr: String,
    pub problem: String,
}

impl GateExpr {
    pub fn parse(text: &str) -> Result<GateExpr, GateError> {
        let err = |problem: String| GateError {
            expr: text.to_string(),
            problem,
        };
        let t = text.trim();
        let (pos, op, len) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
            .iter()
            .find_map(|(s, op)| t.find(s).map(|p| (p, *op, s.len())))
            .ok_or_else(|| {
                err("expected METRIC OP VALUE, e.g. 'p99_ms > +5%' (OP is >, >=, < or <=)".into())
            })?;
        let name = t[..pos].trim();
        let rhs = t[pos + len..].trim();
        let metric = metric::find(name).ok_or_else(|| {
            err(format!(
                "unknown metric `{name}`; known metrics are {}",
                metric::known()
            ))
        })?;
        let signed = rhs.starts_with(['+', '-']);
        let (num, threshold): (&str, fn(f64) -> Threshold) = if let Some(n) = rhs.strip_suffix("pp")
        {
            (n, Threshold::Points)
        } else if let Some(n) = rhs.strip_suffix('%') {
            (n, Threshold::Relative)
        } else if signed {
            (rhs, Threshold::Delta)
        } else {
            (rhs, Threshold::Absolute)
        };
        let v: f64 = num.trim().parse().map_err(|_| {
            err(format!(
                "`{rhs}` is not a number, a signed change (+5%, -1pp, +0.5) or an absolute value"
            ))
        })?;
        if !v.is_finite() {
            return Err(err(format!("`{rhs}` is not finite")));
        }
        let threshold = threshold(v);
        if matches!(threshold, Threshold::Points(_)) && !metric.percent {
            return Err(err(format!(
                "`pp` applies to percent metrics (slo_attainment, failed_pct); use % for {}",
                metric.name
            )));
        }
        if matches!(threshold, Threshold::Relative(_) | Threshold::Points(_)) && !signed {
            return Err(err(format!(
                "a change needs its sign: `+{rhs}` or `-{rhs}`"
            )));
        }
        Ok(GateExpr {
            text: t.to_string(),
            metric,
            op,
            threshold,
        })
    }

    /// The value compared with the threshold, given the candidate's and the baseline's means.
    fn lhs(&self, v: f64, base: Option<f64>) -> Option<f64> {
        match self.threshold {
            Threshold::Absolute(_) => Some(v),
            Threshold::Relative(_) => base.map(|b| {
                if b != 0.0 {
                    (v - b) / b.abs() * 100.0
                } else if v == b {
                    0.0
                } else {
                    f64::INFINITY.copysign(v - b)
                }
            }),
            Threshold::Points(_) | Threshold::Delta(_) => base.map(|b| v - b),
        }
    }

    fn rhs(&self) -> f64 {
        match self.threshold {
            Threshold::Absolute(x)
            | Threshold::Relative(x)
            | Threshold::Points(x)
            | Threshold::Delta(x) => x,
        }
    }
}

/// One expression that held: a regression.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Violation {
    pub scenario: String,
    pub variant: String,
    pub expr: String,
    pub value: f64,
    pub ci95: f64,
    pub baseline: Option<f64>,
    pub baseline_label: Option<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = metric::find(self.expr.split(['<', '>']).next().unwrap_or("").trim());
        let d = m.map_or(3, |m| m.decimals);
        write!(
            f,
            "{} / {}: {} — {:.*} ± {:.*}",
            self.scenario, self.variant, self.expr, d, self.value, d, self.ci95
        )?;
        if let (Some(b), Some(label), Some(m)) = (self.baseline, &self.baseline_label, m) {
            write!(
                f,
                " against {label} {:.*} ({})",
                d,
                b,
                super::compare::change(m, b, self.value)
            )?;
        }
        Ok(())
    }
}

/// A candidate group and, when there is one, the baseline group it is judged against.
pub struct Pair<'a> {
    pub candidate: &'a Group,
    pub baseline: Option<(&'a Group, String)>,
}

/// Every expression that holds for some pair. Relative expressions skip pairs without a
/// baseline (the caller checks that relative gates have one).
pub fn evaluate(exprs: &[GateExpr], pairs: &[Pair<'_>]) -> Vec<Violation> {
    let mut out = Vec::new();
    for p in pairs {
        for e in exprs {
            let Some(c) = p.candidate.metrics.get(e.metric.name) else {
                continue;
            };
            let base = p
                .baseline
                .as_ref()
                .and_then(|(b, _)| b.metrics.get(e.metric.name))
                .map(|b| b.mean);
            let Some(lhs) = e.lhs(c.mean, base) else {
                continue;
            };
            if e.op.holds(lhs, e.rhs()) {
                out.push(Violation {
                    scenario: p.candidate.scenario.clone(),
                    variant: p.candidate.variant.clone(),
                    expr: format!("{} {} {}", e.metric.name, e.op.as_str(), rhs_text(e)),
                    value: c.mean,
                    ci95: c.ci95,
                    baseline: if e.threshold.needs_baseline() {
                        base
                    } else {
                        None
                    },
                    baseline_label: if e.threshold.needs_baseline() {
                        p.baseline.as_ref().map(|(_, l)| l.clone())
                    } else {
                        None
                    },
                });
            }
        }
    }
    out
}

fn rhs_text(e: &GateExpr) -> String {
    match e.threshold {
        Threshold::Absolute(x) => format!("{x}"),
        Threshold::Relative(x) => format!("{x:+}%"),
        Threshold::Points(x) => format!("{x:+}pp"),
        Threshold::Delta(x) => format!("{x:+}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Estimate;

    fn group(variant: &str, p99: f64, slo: f64) -> Group {
        let est = |v| Estimate::from_values(&[v]).unwrap();
        Group {
            scenario: "s".into(),
            variant: variant.into(),
            seeds: vec![1],
            metrics: [
                ("p99_ms".to_string(), est(p99)),
                ("slo_attainment".to_string(), est(slo)),
            ]
            .into_iter()
            .collect(),
            latency_cdf_ms: vec![],
        }
    }

    #[test]
    fn parses_every_form() {
        let e = GateExpr::parse("p99_ms > +5%").unwrap();
        assert_eq!((e.op, e.threshold), (Op::Gt, Threshold::Relative(5.0)));
        let e = GateExpr::parse(" slo_attainment<-1pp").unwrap();
        assert_eq!((e.op, e.threshold), (Op::Lt, Threshold::Points(-1.0)));
        let e = GateExpr::parse("p99_ms >= 800").unwrap();
        assert_eq!((e.op, e.threshold), (Op::Ge, Threshold::Absolute(800.0)));
        let e = GateExpr::parse("mean_allocated_gpus > +0.5").unwrap();
        assert_eq!(e.threshold, Threshold::Delta(0.5));
    }

    #[test]
    fn rejects_bad_expressions_with_reasons() {
        let e = GateExpr::parse("p98_ms > +5%").unwrap_err();
        assert!(e.problem.contains("known metrics are") && e.problem.contains("p99_ms"));
        assert!(GateExpr::parse("p99_ms +5%").is_err());
        assert!(GateExpr::parse("p99_ms > lots").is_err());
        assert!(GateExpr::parse("p99_ms > +5pp")
            .unwrap_err()
            .problem
            .contains("percent metrics"));
        assert!(GateExpr::parse("p99_ms > 5%")
            .unwrap_err()
            .problem
            .contains("sign"));
    }

    #[test]
    fn flags_only_real_regressions() {
        let base = group("main", 100.0, 99.0);
        let ok = group("pr", 104.0, 98.5);
        let bad = group("pr", 106.0, 97.5);
        let exprs: Vec<GateExpr> = ["p99_ms > +5%", "slo_attainment < -1pp", "p99_ms > 105.5"]
            .iter()
            .map(|t| GateExpr::parse(t).unwrap())
            .collect();
        let pair = |c| Pair {
            candidate: c,
            baseline: Some((&base, "baseline".into())),
        };
        assert!(evaluate(&exprs, &[pair(&ok)]).is_empty());
        let v = evaluate(&exprs, &[pair(&bad)]);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].to_string().contains("+6.0 %"), "{}", v[0]);
        assert!(v[1].to_string().contains("-1.50 pp"), "{}", v[1]);
    }
}
