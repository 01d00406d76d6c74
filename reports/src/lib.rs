//! Reports and plots.
