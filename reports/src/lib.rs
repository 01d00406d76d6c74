//! Reports and plots from gpusched runs.

pub mod charts;
pub mod compare;
pub mod fgd;
pub mod font;
pub mod html;
pub mod openb_dynamic;
pub mod run_report;
pub mod staged;

pub use run_report::{write_run, ReportError};
