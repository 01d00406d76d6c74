//! `gpusched serving fidelity`: every reference row replayed as measured, ours beside measured.

use super::load_reference;
use crate::cli::bad_input;
use gpusched_serving::{fidelity, profile};
use std::path::PathBuf;
use std::process::ExitCode;

pub fn execute(dir: Option<PathBuf>, all: bool) -> ExitCode {
    let (vllm, splitwise) = match load_reference(dir) {
        Ok(x) => x,
        Err(e) => return bad_input(e),
    };
    // Rows of models or GPUs the catalogue does not know are noted and left out, so one unknown
    // model does not hide the table for the rest.
    let known = |model: &str, gpu: &str| {
        gpusched_serving::lookup_model(model).is_ok()
            && gpusched_serving::Accelerator::by_name(gpu).is_some()
    };
    let mut skipped = std::collections::BTreeSet::new();
    let vllm: Vec<_> = vllm
        .into_iter()
        .filter(|s| {
            let ok = known(&s.model, &s.gpu);
            if !ok {
                skipped.insert(format!("{} on {}", s.model, s.gpu));
            }
            ok
        })
        .collect();
    let splitwise: Vec<_> = splitwise
        .into_iter()
        .filter(|p| {
            let ok = known(&p.model, &p.gpu);
            if !ok {
                skipped.insert(format!("{} on {}", p.model, p.gpu));
            }
            ok
        })
        .collect();
    for s in &skipped {
        tracing::info!(
            name = %s,
            "not in the model or GPU catalogue (`gpusched serving models`); its rows are left out"
        );
    }
    let vp = profile::lookup(profile::DEFAULT_STACK).expect("shipped");
    let sp = profile::lookup("splitwise-2024").expect("shipped");
    let rows = match fidelity::replay_vllm(&vllm, vp) {
        Ok(r) => r,
        Err(e) => return bad_input(e),
    };
    let sw = match fidelity::replay_splitwise(&splitwise, sp) {
        Ok(r) => r,
        Err(e) => return bad_input(e),
    };
    println!(
        "## vLLM on H100 (stack {}), each stage replayed as measured\n",
        vp.name
    );
    println!("{}", fidelity::vllm_table(&rows));
    if all {
        println!("## Splitwise phase times (stack {})\n", sp.name);
        println!("{}", fidelity::splitwise_table(&sw));
    }
    println!("## A100:H100 time ratios (Splitwise, same stack on both)\n");
    println!("{}", fidelity::ratio_table(&sw));
    println!("{}", fidelity::verdict_text(&fidelity::verdict(&rows, &sw)));
    ExitCode::SUCCESS
}
