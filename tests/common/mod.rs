//! Helpers shared by the integration tests.
#![allow(dead_code)]

use gpusched_sim::{LoadedScenario, RunResult};
use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn scenario(name: &str, sets: &[&str]) -> LoadedScenario {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    gpusched_sim::load_file(&root().join("scenarios").join(name), &sets)
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn run(sc: &LoadedScenario) -> RunResult {
    gpusched_sim::run(sc, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the gpusched binary; returns (exit code, stdout, stderr).
pub fn gpusched(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpusched"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the gpusched binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
