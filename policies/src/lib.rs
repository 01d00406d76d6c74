//! gpusched's policy engine. Pure: no I/O, no clock, no async, no Kubernetes types. It sees the
//! cluster through read-only views and returns decisions; the simulator and the live adapter
//! apply them.

pub mod framework;
pub mod openb;
