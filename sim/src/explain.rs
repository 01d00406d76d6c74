//! The decision matrix for one placement, as `gpusched explain` prints it.

use crate::scenario::LoadedScenario;
use gpusched_policies::framework::DecisionMatrix;
use gpusched_policies::Decision;
use std::fmt::Write as _;

/// Places (optionally) the initial replicas, then asks the engine for one more replica of
/// `service` with the full matrix.
pub fn explain(
    sc: &LoadedScenario,
    service: &str,
    after_initial: bool,
) -> Result<Decision, String> {
    crate::sim::explain_placement(sc, service, after_initial).map_err(|e| e.to_string())
}

/// A fixed-width table: one row per node, one column per score term, then the total.
pub fn matrix_table(m: &DecisionMatrix) -> String {
    let mut out = String::new();
    let plugins: Vec<&str> = m
        .rows
        .iter()
        .find(|r| r.feasible)
        .map(|r| r.terms.iter().map(|t| t.plugin).collect())
        .unwrap_or_default();
    let _ = write!(out, "{:<14}", "node");
    for p in &plugins {
        let _ = write!(out, " {:>22}", p);
    }
    let _ = writeln!(out, " {:>8}", "total");
    let mut rows: Vec<_> = m.rows.iter().collect();
    rows.sort_by(|a, b| {
        b.total
            .partial_cmp(&a.total)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for r in rows {
        let _ = write!(out, "{:<14}", r.node);
        if r.feasible {
            for t in &r.terms {
                let _ = write!(
                    out,
                    " {:>22}",
                    format!("{:.3}→{:.1} ×{:.2}", t.raw, t.normalized, t.weight)
                );
            }
            let _ = writeln!(out, " {:>8.2}", r.total);
        } else if let Some(rej) = &r.rejection {
            let _ = writeln!(out, " filtered by {}: {}", rej.plugin, rej.reason);
        }
    }
    out
}
