//! The FGD paper's openb evaluation (USENIX ATC '23, "Beware of Fragmentation"): read the traces,
//! run the protocol for any pod lists × policies × seeds, write the paper's tables, compare
//! against its published results.

pub mod compare;
pub mod csv_io;
pub mod dynamic;
pub mod error;
pub mod metrics;
pub mod protocol;
pub mod replay;
pub mod runner;
pub mod tables;

pub use compare::{compare, Comparison};
pub use error::{OpenbError, Result};
pub use protocol::{run, RunResult, Workload};
pub use runner::{load, run_experiment, Experiment, PAPER_POD_LISTS, PAPER_SEEDS, PAPER_TUNE};
