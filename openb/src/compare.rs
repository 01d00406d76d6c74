//! Our runs against a reference folder (the paper's published tables): per pod list and policy,
//! the seed mean of allocation at arrived 100 % and 130 % beside the paper's, the difference in
//! percentage points, and whether every pair of policies the paper separates by more than a
//! margin keeps its order. The verdict is what the CLI turns into its exit code.

use super::tables::TableRow;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Columns compared (arrived %).
pub const POINTS: [usize; 2] = [100, 130];

#[derive(Debug, Clone, PartialEq)]
pub struct CompareRow {
    pub workload: String,
    pub policy: String,
    pub seeds: usize,
    /// (ours, paper) at each of [`POINTS`].
    pub at: [(f64, f64); 2],
}

impl CompareRow {
    pub fn diff(&self, i: usize) -> f64 {
        self.at[i].0 - self.at[i].1
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderCheck {
    pub workload: String,
    pub point: usize,
    /// The policy the paper ranks higher, then the lower one.
    pub higher: String,
    pub lower: String,
    pub paper_gap: f64,
    pub our_gap: f64,
}

impl OrderCheck {
    pub fn kept(&self) -> bool {
        self.our_gap > 0.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub tolerance_pp: f64,
    pub order_margin_pp: f64,
    pub rows: Vec<CompareRow>,
    pub orders: Vec<OrderCheck>,
    /// (workload, policy) we ran that the reference lacks.
    pub missing: Vec<(String, String)>,
}

/// Per (workload, policy): rows seen, and the sum and count of each point's values.
type MeanAcc = (usize, [f64; 2], [usize; 2]);

fn means(rows: &[TableRow]) -> BTreeMap<(String, String), (usize, [f64; 2])> {
    let mut acc: BTreeMap<(String, String), MeanAcc> = BTreeMap::new();
    for r in rows {
        let e = acc
            .entry((r.workload.clone(), r.policy.clone()))
            .or_insert((0, [0.0; 2], [0; 2]));
        e.0 += 1;
        for (i, &k) in POINTS.iter().enumerate() {
            if let Some(Some(v)) = r.values.get(k) {
                e.1[i] += v;
                e.2[i] += 1;
            }
        }
    }
    acc.into_iter()
        .map(|(k, (n, s, c))| {
            let m = [0, 1].map(|i| {
                if c[i] > 0 {
                    s[i] / c[i] as f64
                } else {
                    f64::NAN
                }
            });
            (k, (n, m))
        })
        .collect()
}

/// Compares allocation tables.
pub fn compare(
    reference: &[TableRow],
    ours: &[TableRow],
    tolerance_pp: f64,
    order_margin_pp: f64,
) -> Comparison {
    let paper = means(reference);
    let mine = means(ours);
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for ((w, p), (n, m)) in &mine {
        match paper.get(&(w.clone(), p.clone())) {
            Some((_, pm)) => rows.push(CompareRow {
                workload: w.clone(),
                policy: p.clone(),
                seeds: *n,
                at: [(m[0], pm[0]), (m[1], pm[1])],
            }),
            None => missing.push((w.clone(), p.clone())),
        }
    }
    let mut orders = Vec::new();
    for (i, &point) in POINTS.iter().enumerate() {
        for a in &rows {
            for b in &rows {
                if a.workload != b.workload || a.policy >= b.policy {
                    continue;
                }
                let paper_gap = a.at[i].1 - b.at[i].1;
                if paper_gap.abs() <= order_margin_pp {
                    continue;
                }
                let (hi, lo, sign) = if paper_gap > 0.0 {
                    (a, b, 1.0)
                } else {
                    (b, a, -1.0)
                };
                orders.push(OrderCheck {
                    workload: a.workload.clone(),
                    point,
                    higher: hi.policy.clone(),
                    lower: lo.policy.clone(),
                    paper_gap: paper_gap.abs(),
                    our_gap: sign * (a.at[i].0 - b.at[i].0),
                });
            }
        }
    }
    Comparison {
        tolerance_pp,
        order_margin_pp,
        rows,
        orders,
        missing,
    }
}

impl Comparison {
    pub fn within_tolerance(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| (0..2).all(|i| r.diff(i).abs() <= self.tolerance_pp))
            .count()
    }

    pub fn max_abs_diff(&self) -> f64 {
        self.rows
            .iter()
            .flat_map(|r| [r.diff(0).abs(), r.diff(1).abs()])
            .fold(0.0, f64::max)
    }

    pub fn orders_kept(&self) -> usize {
        self.orders.iter().filter(|o| o.kept()).count()
    }

    /// True when every row is within tolerance (NaN counts as out) and every order is kept.
    pub fn passed(&self) -> bool {
        !self.rows.is_empty()
            && self.missing.is_empty()
            && self.within_tolerance() == self.rows.len()
            && self.orders_kept() == self.orders.len()
    }

    /// A Markdown report: the full table, the broken orders, the verdict.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| pod list | policy | seeds | ours @100 | paper @100 | diff pp | ours @130 | paper @130 | diff pp |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let flag = |i: usize| {
                if r.diff(i).abs() <= self.tolerance_pp {
                    ""
                } else {
                    " ⚠"
                }
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {:.2} | {:+.2}{} | {:.2} | {:.2} | {:+.2}{} |",
                r.workload.trim_start_matches("openb_pod_list_"),
                r.policy,
                r.seeds,
                r.at[0].0,
                r.at[0].1,
                r.diff(0),
                flag(0),
                r.at[1].0,
                r.at[1].1,
                r.diff(1),
                flag(1)
            );
        }
        let broken: Vec<&OrderCheck> = self.orders.iter().filter(|o| !o.kept()).collect();
        let _ = writeln!(
            s,
            "\nOrder: {} of {} policy pairs the paper separates by > {} pp keep their order.",
            self.orders_kept(),
            self.orders.len(),
            self.order_margin_pp
        );
        for o in broken {
            let _ = writeln!(
                s,
                "- {} @{}: paper {} > {} by {:.2} pp, ours by {:+.2} pp",
                o.workload.trim_start_matches("openb_pod_list_"),
                o.point,
                o.higher,
                o.lower,
                o.paper_gap,
                o.our_gap
            );
        }
        for (w, p) in &self.missing {
            let _ = writeln!(s, "- not in the reference: {w} {p}");
        }
        let _ = writeln!(
            s,
            "\n{} of {} (pod list, policy) means within {} pp at arrived 100 % and 130 % (max |diff| {:.2} pp). Verdict: {}.",
            self.within_tolerance(),
            self.rows.len(),
            self.tolerance_pp,
            self.max_abs_diff(),
            if self.passed() { "PASS" } else { "FAIL" }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(w: &str, p: &str, seed: u64, v100: f64, v130: f64) -> TableRow {
        let mut values = vec![None; 131];
        values[100] = Some(v100);
        values[130] = Some(v130);
        TableRow {
            workload: w.into(),
            policy: p.into(),
            tune: "1.3".into(),
            seed,
            values,
        }
    }

    #[test]
    fn tolerance_and_order_decide_the_verdict() {
        let paper = vec![
            row("w", "01-A", 1, 90.0, 92.0),
            row("w", "01-A", 2, 92.0, 94.0),
            row("w", "02-B", 1, 95.0, 96.0),
        ];
        let close = vec![
            row("w", "01-A", 7, 91.5, 93.2),
            row("w", "02-B", 7, 95.4, 96.1),
        ];
        let c = compare(&paper, &close, 1.0, 0.5);
        assert!(c.passed(), "{}", c.to_markdown());
        assert_eq!(c.orders.len(), 2);
        let swapped = vec![
            row("w", "01-A", 7, 91.0, 97.0),
            row("w", "02-B", 7, 95.0, 96.0),
        ];
        let c = compare(&paper, &swapped, 5.0, 0.5);
        assert!(!c.passed());
        assert_eq!(c.orders_kept(), 1);
        let far = vec![
            row("w", "01-A", 7, 89.0, 93.0),
            row("w", "02-B", 7, 95.0, 96.0),
        ];
        assert!(!compare(&paper, &far, 1.0, 0.5).passed());
    }
}
