//! gpusched's discrete-event simulator: a cluster of H100 and A100 nodes, services whose
//! replicas the policy engine places and scales, traffic from generators or traces, and the
//! measurements a capacity planner needs (latency, queueing, SLO misses, utilisation, power,
//! energy, cost).

pub mod bench;
pub mod diagnosis;
pub mod events;
pub mod explain;
pub mod metrics;
pub mod rollout;
pub mod sim;
pub mod state;
/// The trace readers (crate `gpusched-traces`) and, with them, the node inventories that
/// become a scenario's pools.
pub mod trace {
    pub use gpusched_scenario::inventory;
    pub use gpusched_traces::*;
}
pub mod traffic;

/// The scenario schema (crate `gpusched-scenario`), re-exported under the paths the
/// simulator's modules and its users have always named.
pub use gpusched_scenario::{
    inventory, limits, llm, numbers, perf, reconfig, scenario, text, validate,
};
pub use scenario::{load_default, load_file, LoadedScenario, Scenario, ScenarioError};
pub use sim::{run, DecisionRecord, RunResult, SimError};
