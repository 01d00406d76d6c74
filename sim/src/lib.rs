//! The discrete-event simulator.
pub mod openb;
