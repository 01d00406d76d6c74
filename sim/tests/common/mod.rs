//! Helpers shared by the simulator's integration tests: the workspace's shipped scenarios,
//! loaded and run through the library (no binary).
#![allow(dead_code)]

use gpusched_sim::{LoadedScenario, RunResult};
use std::path::PathBuf;

/// The workspace root (scenarios/, traces/ and ../shared are found from it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sim/ sits in the workspace")
        .to_path_buf()
}

pub fn scenario(name: &str, sets: &[&str]) -> LoadedScenario {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    gpusched_sim::load_file(&root().join("scenarios").join(name), &sets)
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn run(sc: &LoadedScenario) -> RunResult {
    gpusched_sim::run(sc, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"))
}
