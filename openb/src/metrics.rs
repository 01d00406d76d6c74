//! The "arrived %" curves of the paper's tables, computed as the authors' analysis scripts do.
//!
//! After every pod (placed or failed) the cluster is sampled: arrived GPU request, allocated
//! milli-GPU, fragmented milli-GPU and the fragment share of idle GPU. Column `k` (0..=130) of a
//! table is the mean over all samples whose arrived % rounds (half to even, as Python's `round`)
//! to `k`; when none does, the samples rounding to `k−1` or `k+1`; otherwise it stays empty.
//! Allocation is rounded to 2 decimals per sample and the mean again to 2; fragmentation is
//! printed by the simulator with 2 decimals, so samples are rounded that way too.

/// Number of table columns: 0..=130.
pub const COLUMNS: usize = 131;
/// Samples may arrive a little past 130 % (a last multi-GPU pod); they are kept in spare buckets
/// so that the ±1 fallback of column 130 sees them.
const BUCKETS: usize = COLUMNS + 8;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    n: u32,
    alloc: f64,
    frag_milli: f64,
    frag_ratio: f64,
}

/// One run's three curves, each `COLUMNS` long; `None` where no sample fell near the column.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Curves {
    pub allo: Vec<Option<f64>>,
    pub frag: Vec<Option<f64>>,
    pub frag_ratio: Vec<Option<f64>>,
}

/// Accumulates samples of one run.
#[derive(Debug, Clone)]
pub struct ArrivalCurves {
    total_gpus: f64,
    buckets: Vec<Bucket>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round_ties_even() / 100.0
}

impl ArrivalCurves {
    pub fn new(total_gpus: u64) -> Self {
        Self {
            total_gpus: total_gpus as f64,
            buckets: vec![Bucket::default(); BUCKETS],
        }
    }

    /// One sample: milli-GPU arrived so far, allocated, fragmented and idle.
    pub fn sample(
        &mut self,
        arrived_milli: u64,
        used_milli: u64,
        frag_milli: f64,
        idle_milli: u64,
    ) {
        let arrive = (arrived_milli as f64 / self.total_gpus / 10.0).round_ties_even();
        if !(arrive >= 0.0) {
            return;
        }
        let k = (arrive as usize).min(BUCKETS - 1);
        let b = &mut self.buckets[k];
        b.n += 1;
        b.alloc += round2(used_milli as f64 / self.total_gpus / 10.0);
        let frag = round2(frag_milli);
        b.frag_milli += frag;
        b.frag_ratio += if idle_milli > 0 {
            round2(100.0 * frag_milli / idle_milli as f64)
        } else {
            f64::NAN
        };
    }

    /// The three table rows.
    pub fn finish(&self) -> Curves {
        let mut c = Curves::default();
        for k in 0..COLUMNS {
            let mut acc = self.buckets[k];
            if acc.n == 0 {
                for j in [k.wrapping_sub(1), k + 1] {
                    if let Some(b) = self.buckets.get(j) {
                        acc.n += b.n;
                        acc.alloc += b.alloc;
                        acc.frag_milli += b.frag_milli;
                        acc.frag_ratio += b.frag_ratio;
                    }
                }
            }
            if acc.n == 0 {
                c.allo.push(None);
                c.frag.push(None);
                c.frag_ratio.push(None);
                continue;
            }
            let n = acc.n as f64;
            c.allo.push(Some(round2(acc.alloc / n)));
            c.frag.push(Some(round2(
                100.0 * (acc.frag_milli / n) / 1000.0 / self.total_gpus,
            )));
            let r = acc.frag_ratio / n;
            c.frag_ratio.push(r.is_finite().then_some(r));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_average_samples_and_fall_back_to_neighbours() {
        let mut a = ArrivalCurves::new(100); // 100 GPUs = 100_000 milli; 1 % = 1000 milli
        a.sample(0, 0, 0.0, 100_000);
        a.sample(1000, 1000, 500.0, 99_000);
        a.sample(1400, 1400, 500.0, 98_600);
        a.sample(3000, 2000, 1000.0, 98_000);
        let c = a.finish();
        assert_eq!(c.allo[0], Some(0.0));
        assert_eq!(c.allo[1], Some(1.2), "mean of 1.0 and 1.4");
        assert_eq!(
            c.allo[2],
            Some((1.2 * 2.0 + 2.0) / 3.0 * 100.0).map(|x: f64| x.round() / 100.0)
        );
        assert_eq!(c.allo[3], Some(2.0));
        assert_eq!(c.allo[5], None);
        assert_eq!(c.frag[3], Some(1.0));
    }

    #[test]
    fn arrived_percent_rounds_half_to_even() {
        let mut a = ArrivalCurves::new(10); // 1 % = 100 milli
        a.sample(250, 10, 0.0, 1);
        let c = a.finish();
        assert!(c.allo[2].is_some() && c.allo[3].is_some());
        let mut b = ArrivalCurves::new(10);
        b.sample(250, 10, 0.0, 1);
        b.sample(350, 20, 0.0, 1);
        let c = b.finish();
        assert_eq!(c.allo[2], Some(0.1));
        assert_eq!(c.allo[4], Some(0.2));
    }
}
