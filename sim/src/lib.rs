//! gpusched's discrete-event simulator: a cluster of H100 and A100 nodes, services whose
//! replicas the policy engine places and scales, traffic from generators or traces, and the
//! measurements a capacity planner needs (latency, queueing, SLO misses, utilisation, power,
//! energy, cost).

pub mod bench;
pub mod diagnosis;
pub mod events;
pub mod experiment;
pub mod explain;
pub mod limits;
pub mod llm;
pub mod metrics;
pub mod numbers;
pub mod openb;
pub mod perf;
pub mod reconfig;
pub mod scenario;
pub mod sim;
pub mod state;
pub mod text;
pub mod trace;
pub mod traffic;
pub mod validate;

pub use scenario::{load_default, load_file, LoadedScenario, Scenario, ScenarioError};
pub use sim::{run, DecisionRecord, RunResult, SimError};
