//! Random: a uniformly random feasible node. The upstream draws one index among the filtered
//! nodes in PreScore and gives it full marks; here every feasible node draws an independent
//! uniform score, whose maximum is a uniformly random feasible node, so no PreScore hook is
//! needed in the framework.

use crate::framework::ScorePlugin;
use crate::openb::model::{OpenbNode, OpenbPod};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct RandomScore {
    rng: ChaCha8Rng,
}

impl RandomScore {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl RandomScore {
    /// The registered name ([`crate::registry::openb`]).
    pub const NAME: &'static str = "RandomScore";
}

impl ScorePlugin<OpenbNode, OpenbPod> for RandomScore {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn score(&mut self, _pod: &OpenbPod, _node: &OpenbNode) -> f64 {
        self.rng.random::<f64>() * 100.0
    }

    fn normalize(&self, scores: &mut [f64]) {
        super::keep_as_is(scores)
    }
}
