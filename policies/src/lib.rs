//! gpusched's policy engine. Pure: no I/O, no clock, no async, no Kubernetes types. It sees the
//! cluster through read-only views ([`view`]) and returns [`decision::Decision`]s; the simulator
//! and the live adapter apply them.

pub mod admission;
pub mod autoscale;
pub mod cluster;
pub mod config;
pub mod consolidation;
pub mod decision;
pub mod engine;
pub mod framework;
pub mod gpu;
pub mod index;
pub mod mig;
pub mod modes;
pub mod mps;
pub mod openb;
pub mod plugins;
pub mod record;
pub mod registry;
pub mod rollout;
pub mod sharing;
pub mod view;
pub mod workload;

pub use cluster::ClusterState;
pub use config::EngineConfig;
pub use decision::Decision;
pub use engine::Engine;
pub use gpu::{GpuCatalog, GpuModel, GpuSpec};
pub use record::DecisionRecord;
pub use view::{GpuView, NodeView, SharingMode};
pub use workload::{PlacementRequest, Priority, WorkloadSpec};
