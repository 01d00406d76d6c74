//! Planned sharing-config rollouts (issue 5), shared by the simulator and the live adapter.
//!
//! Changing a node's device-plugin config restarts the plugin and the MPS server: every GPU pod on
//! the node loses its context (DOMAIN.md). The engine never does that as a side effect of a
//! placement; a new layout is rolled out on purpose, and this module holds the pure parts:
//!
//! * [`breaker`]: the circuit breaker (3 failed rollouts → open for an hour → one trial);
//! * [`gate`]: the seeds' timing gate (QPS levels over 1/5/15-minute windows, trend and peak
//!   postponement, allowed windows, update classes with their limits);
//! * [`plan`]: when a new layout is worth it (seed 004's optimal-replicas table), the strategies
//!   (in-place, rolling, pre-warming, blue-green, canary) as batches of nodes, the canary health
//!   check and the pods' readiness probe;
//! * [`machine`]: the rollout state machine (state + event → next command) that the simulator
//!   and live mode both execute;
//! * [`step`]: the steps a rollout logs in decisions.jsonl, in the form the live adapter applies.
//!
//! Pure: time is data (seconds on the caller's clock), so the simulator and live mode agree.

pub mod breaker;
pub mod gate;
pub mod machine;
pub mod plan;
pub mod step;

pub use breaker::{BreakerState, CircuitBreaker, CircuitBreakerConfig};
pub use gate::{GateConfig, GateInput, GateVerdict, QpsLevel, UpdateClass};
pub use machine::{
    step_share, Command, Event, Failure, GateSample, Hold, MachineConfig, Outcome, RolloutMachine,
    Target, WatchKind,
};
pub use plan::{Batch, HealthCheck, ReadinessProbe, Strategy, StrategyConfig};
pub use step::{RolloutStep, StepKind};
