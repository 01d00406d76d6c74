//! gpusched's LLM serving model: what one replica of an LLM server does with the requests it
//! is given, and how long it takes.
//!
//! It owns
//! * the catalogue of model architectures ([`arch`]) and numeric formats ([`dtype`]),
//! * the accelerators' datasheet figures ([`hardware`]),
//! * the serving stacks' fitted constants ([`profile`], shipped in `profiles.toml`),
//! * the time of one engine iteration from the work in it ([`cost`]),
//! * the replica engine: vLLM-style continuous batching with chunked prefill, a paged KV cache,
//!   preemption by recompute, tensor parallelism ([`engine`]),
//! * the reference measurements' reader, the fit that produces `profiles.toml`, and the
//!   fidelity table that compares the model with them ([`reference`], [`fit`], [`fidelity`]).
//!
//! It must never depend on the simulator, the policy engine or the live adapter: the simulator
//! drives one [`engine::ReplicaEngine`] per replica, and anything else that wants to know how a
//! model serves on a GPU (capacity planning, live what-ifs) can do the same.

pub mod arch;
pub mod cost;
pub mod dtype;
pub mod engine;
pub mod fidelity;
pub mod fit;
pub mod hardware;
pub mod profile;
pub mod reference;
pub mod replay;

pub use arch::{lookup as lookup_model, ModelArch, UnknownModel};
pub use cost::{IterationCost, Work};
pub use dtype::Dtype;
pub use engine::{EngineConfig, Finished, ReplicaEngine, Request};
pub use hardware::Accelerator;
pub use profile::StackProfile;
