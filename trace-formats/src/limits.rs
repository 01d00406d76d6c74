//! The limits a trace is read under; the scenario's own limits re-export them.

/// Simulated time: ten years.
pub const MAX_DURATION_S: f64 = 10.0 * 365.0 * 86_400.0;
/// A trace row's time after the trace's start: 10¹⁰ s, about 317 years (a row in the year
/// 9999, or at 1e300 ms, is refused with its file and line).
pub const MAX_TRACE_TIME_S: f64 = 1e10;
