//! Reports and plots from gpusched runs.

pub mod font;
