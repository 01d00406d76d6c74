//! gpusched live mode: the policy engine driving a real Kubernetes cluster.
//!
//! * [`agent`] — per-node GPU readings through NVML ([`nvml`]), as Prometheus metrics and a node
//!   annotation.
//! * [`view`] — the engine's cluster state from Nodes and Pods (a pure function); [`codec`] — the
//!   one codec between that state and pod annotations, node labels and ConfigMap entries, for
//!   every slice type ([`slices`]: its MIG / time-slice part).
//! * [`node_filter`] — taints and readiness, as kube-scheduler filters nodes;
//!   [`unschedulable`] — the "0/N nodes are available" message.
//! * [`client`] — the kube client without the retry layer that hid 429s; [`names`] — names and
//!   lengths the API server accepts.
//! * [`controller`] — reflectors + [`lease`] election + placement of `schedulerName: gpusched` pods.
//! * [`apply`] / [`dryrun`] — decisions as exact API requests, sent or printed.
//! * [`autoscale`] / [`signals`] — the simulator's autoscalers scaling opted-in Deployments from
//!   the pods' Prometheus metrics and the agent's GPU readings.
//! * [`rollback`] — sharing-config rollouts that can always be undone, behind the shared circuit
//!   breaker; [`rollout_exec`] — executes the engine crate's rollout state machine (strategies,
//!   QPS gate, canary watch) with API requests; [`prom_observer`] — its gate and watch
//!   readings from Prometheus; [`pool_rollout`] — `gpusched live rollout`, an operator's planned
//!   change of several nodes with the simulator's strategies.
//! * [`snapshot`] — the live cluster as a simulator scenario; [`decisions`] — decisions.jsonl in
//!   the simulator's format.

pub mod agent;
pub mod apply;
pub mod autoscale;
pub mod client;
pub mod cmd;
pub mod codec;
pub mod controller;
pub mod decisions;
pub mod dryrun;
pub mod keys;
pub mod lease;
pub mod manifests;
pub mod names;
pub mod node_filter;
pub mod nvml;
pub mod pool_rollout;
pub mod prom_observer;
pub mod rollback;
pub mod rollout_exec;
pub mod signals;
pub mod slices;
pub mod snapshot;
pub mod testutil;
pub mod unschedulable;
pub mod view;
