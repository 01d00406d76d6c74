//! The decision record: one line of decisions.jsonl, written alike by the simulator (at
//! simulated time) and by live mode (at wall-clock time since it started), so both worlds'
//! logs read the same.

use crate::decision::Decision;
use serde::Serialize;

/// One line of decisions.jsonl: the time, then the decision.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    pub t_s: f64,
    #[serde(flatten)]
    pub decision: Decision,
}
