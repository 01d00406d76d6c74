//! gpusched-scenario: the scenario schema both worlds share — what a cluster, its services,
//! their traffic, serving and performance figures and the engine's configuration are, how a
//! scenario file is loaded (with `--set` overrides), and the one validation layer every input
//! goes through: every number's range ([`numbers`]), the stated resource limits ([`limits`]),
//! cross-key consistency ([`validate`]), located errors.
//!
//! Owns: the typed configuration (serde), loading and validation, the closed-form performance
//! figures of non-LLM services ([`perf`]) and the LLM serving resolution ([`llm`]: model names
//! to architectures and fitted stack profiles), node inventories as pools ([`inventory`]).
//! Depends on the policy engine (its configuration types), the serving model (model and stack
//! catalogues) and the trace readers (trace specs embedded in traffic). Must never depend on the
//! simulator, experiments, reports or live: the simulator runs a loaded scenario, and live
//! writes one (`live snapshot`) without pulling in the simulator.

pub mod inventory;
pub mod limits;
pub mod llm;
pub mod numbers;
pub mod perf;
pub mod reconfig;
pub mod scenario;
pub mod text;
pub mod validate;

pub use scenario::{load_default, load_file, LoadedScenario, Scenario, ScenarioError};
