//! The engine's plugins: filters, the seeds' score terms, bin-packing, and the GPU-fit predicate
//! they share.

pub mod filters;
pub mod fit;
pub mod seeds;
