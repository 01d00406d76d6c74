//! Reusable measurement code behind `gpusched bench`: workloads and clusters built the same way
//! every time (fixed seeds), so figures from different machines measure the same work. Timing
//! lives here; assertions about speed do not (no timed tests).

pub mod event_loop;
pub mod placement;
