//! Reports and plots from gpusched runs.

pub mod fgd;
pub mod font;
