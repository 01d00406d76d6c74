//! gpusched-openb: the FGD paper's openb evaluation (USENIX ATC '23, "Beware of
//! Fragmentation"): read the traces, run the protocol for any pod lists × policies × seeds,
//! write the paper's tables, compare against its published results; and the dynamic openb
//! replay (pods that arrive and leave).
//!
//! Owns: the openb trace formats, the paper's protocol and tables, the comparison with the
//! published runs. Depends on the policy engine (the six FGD-paper Score plugins and the openb
//! node/pod model) and on the simulator only for its event queue and its input rules (numbers,
//! limits, UTF-8 reading), so that a replay refuses what a scenario refuses. Must never
//! depend on reports, experiments or live.

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
