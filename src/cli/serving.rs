//! `gpusched serving …`: the LLM serving model's catalogues, the fit that writes
//! `serving/profiles.toml`, and the fidelity table against the measured runs.

use super::bad_input;
use clap::{Args, Subcommand};
use gpusched_serving::{arch, fidelity, fit, profile, reference, Dtype};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ServingArgs {
    #[command(subcommand)]
    pub command: ServingCommand,
}

#[derive(Debug, Subcommand)]
pub enum ServingCommand {
    /// The model catalogue: architectures, parameters, KV-cache bytes per token.
    Models,
    /// The shipped serving-stack profiles and GPU factors, with how they were fitted.
    Profiles,
    /// Fit the stacks' constants on reference/llm-serving/ and print them with their residuals;
    /// `--write` rewrites the profiles file (serving/profiles.toml).
    Fit {
        /// Folder with the reference CSVs (default ../shared/reference/llm-serving).
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Write the fitted profiles here (e.g. serving/profiles.toml).
        #[arg(long)]
        write: Option<PathBuf>,
        /// Objective evaluations per Nelder–Mead pass of the vLLM fit (two passes).
        #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(10..=100_000))]
        max_evals: u64,
    },
    /// Replay every reference row as measured and print ours beside measured, signed errors.
    Fidelity {
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Also print the per-point Splitwise table (300 lines).
        #[arg(long)]
        all: bool,
    },
}

pub fn execute(a: &ServingArgs) -> ExitCode {
    match &a.command {
        ServingCommand::Models => {
            models();
            ExitCode::SUCCESS
        }
        ServingCommand::Profiles => {
            profiles();
            ExitCode::SUCCESS
        }
        ServingCommand::Fit {
            reference,
            write,
            max_evals,
        } => run_fit(reference.clone(), write.clone(), *max_evals as usize),
        ServingCommand::Fidelity { reference, all } => run_fidelity(reference.clone(), *all),
    }
}

fn models() {
    println!("| model | layers | hidden | heads | KV heads | head | params B | active B | KV KiB/token (bf16) | context |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for m in arch::CATALOG {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.0} | {} |",
            m.name,
            m.layers,
            m.hidden,
            m.heads,
            m.kv_heads,
            m.head_dim,
            m.params_b,
            m.active_params_b,
            m.kv_bytes_per_token(Dtype::Bf16) / 1024.0,
            m.max_position
        );
    }
}

fn profiles() {
    for p in profile::shipped() {
        println!("{}: {}", p.name, p.description);
        println!(
            "  iteration overhead {:.3} ms, mbu {:.3}, kv_mbu {:.3}, mfu {:.3}, per decode sequence {:.3} µs, all-reduce {:.3} µs/step, TP compute exponent {:.3}, request overhead {:.3} ms, chunked prefill {}",
            p.iteration_overhead_ms, p.mbu, p.kv_mbu, p.mfu, p.decode_seq_us, p.allreduce_latency_us, p.tp_compute_exponent, p.request_overhead_ms, p.chunked_prefill
        );
        println!(
            "  fitted on {} ({} rows) by {}: median |error| {:.1} %, max {:.1} %",
            p.fit.data,
            p.fit.rows,
            p.fit.method,
            p.fit.median_abs_error * 100.0,
            p.fit.max_abs_error * 100.0
        );
    }
    let f = profile::parse(profile::SHIPPED).expect("shipped file parses");
    for g in &f.gpu {
        println!(
            "GPU {}: compute {:.3}, memory {:.3} of the H100's achieved fraction",
            g.gpu, g.compute, g.memory
        );
    }
}

fn load_reference(
    dir: Option<PathBuf>,
) -> Result<(Vec<reference::VllmStage>, Vec<reference::SplitwisePoint>), reference::ReferenceError>
{
    let dir = dir.unwrap_or_else(reference::default_dir);
    Ok((
        reference::read_vllm(&dir.join(reference::VLLM_FILE))?,
        reference::read_splitwise(&dir.join(reference::SPLITWISE_FILE))?,
    ))
}

/// Rounds to 5 significant digits, so a refit that changes nothing rewrites the same file.
fn sig5(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(4 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

fn run_fit(dir: Option<PathBuf>, write: Option<PathBuf>, max_evals: usize) -> ExitCode {
    let (vllm, splitwise) = match load_reference(dir) {
        Ok(x) => x,
        Err(e) => return bad_input(e),
    };
    let mut file = profile::parse(profile::SHIPPED).expect("shipped file parses");
    let sw = match fit::fit_splitwise(&splitwise) {
        Ok(x) => x,
        Err(e) => return bad_input(e),
    };
    let (med, max) = fit::error_summary(&sw.errors);
    let k = sw.constants;
    println!(
        "splitwise-2024 ({} points, prefill and decode iteration):",
        sw.rows
    );
    println!(
        "  overhead {:.4} ms, mbu {:.4}, kv_mbu {:.4}, mfu {:.4}, per sequence {:.3} µs, all-reduce {:.3} µs/step, TP compute exponent {:.4}; A100 factors compute {:.4}, memory {:.4}",
        k.overhead_ms, k.mbu, k.kv_mbu, k.mfu, k.decode_seq_us, k.allreduce_latency_us, k.tp_compute_exponent, sw.a100.compute, sw.a100.memory
    );
    println!(
        "  residuals: median |error| {:.1} %, max {:.1} %",
        med * 100.0,
        max * 100.0
    );
    // The GPU factors are in force for the vLLM fit that follows (it runs on H100 only, so they
    // do not change it; they carry the A100 ratio to every stack).
    file.gpu = vec![profile::GpuFactor {
        gpu: "A100".into(),
        compute: sig5(sw.a100.compute),
        memory: sig5(sw.a100.memory),
    }];
    for p in file.profile.iter_mut() {
        if p.name == "splitwise-2024" {
            p.set_constants(round_constants(k));
            p.fit = fit::record(reference::SPLITWISE_FILE, "Nelder–Mead on squared log errors of prefill and decode-iteration times (static batches)", sw.rows, &sw.errors);
        }
    }
    let base = file
        .profile
        .iter()
        .find(|p| p.name == profile::DEFAULT_STACK)
        .cloned();
    if let Some(base) = base {
        let (fitted, errors) = match fit::fit_vllm(&vllm, &base, max_evals) {
            Ok(x) => x,
            Err(e) => return bad_input(e),
        };
        let (med, max) = fit::error_summary(&errors);
        let k = fitted.constants();
        println!(
            "{} ({} stages: E2E p50, TTFT p50, decode ms/token):",
            fitted.name,
            vllm.len()
        );
        println!(
            "  overhead {:.4} ms, mbu {:.4}, kv_mbu {:.4}, mfu {:.4}, per sequence {:.3} µs, all-reduce {:.3} µs/step, TP compute exponent {:.4}, request overhead {:.3} ms",
            k.overhead_ms, k.mbu, k.kv_mbu, k.mfu, k.decode_seq_us, k.allreduce_latency_us, k.tp_compute_exponent, fitted.request_overhead_ms
        );
        println!(
            "  residuals: median |error| {:.1} %, max {:.1} %",
            med * 100.0,
            max * 100.0
        );
        for p in file.profile.iter_mut() {
            if p.name == fitted.name {
                p.set_constants(round_constants(k));
                p.request_overhead_ms = sig5(fitted.request_overhead_ms);
                p.fit = fit::record(
                    reference::VLLM_FILE,
                    "Nelder–Mead on squared log errors of E2E p50, TTFT p50 and decode ms/token, each stage replayed through the replica engine",
                    vllm.len(),
                    &errors,
                );
            }
        }
    }
    if let Some(path) = write {
        let text = match toml::to_string(&file) {
            Ok(t) => format!("# Serving-stack profiles and GPU factors. Written by `gpusched serving fit --write`; do not edit by hand.\n{t}"),
            Err(e) => return bad_input(e),
        };
        let tmp = path.with_extension("toml.tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path)) {
            return bad_input(format!("{}: {e}", path.display()));
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

fn round_constants(k: gpusched_serving::cost::Constants) -> gpusched_serving::cost::Constants {
    gpusched_serving::cost::Constants {
        overhead_ms: sig5(k.overhead_ms),
        mbu: sig5(k.mbu),
        kv_mbu: sig5(k.kv_mbu),
        mfu: sig5(k.mfu),
        decode_seq_us: sig5(k.decode_seq_us),
        allreduce_latency_us: sig5(k.allreduce_latency_us),
        tp_compute_exponent: sig5(k.tp_compute_exponent),
    }
}

fn run_fidelity(dir: Option<PathBuf>, all: bool) -> ExitCode {
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
        eprintln!("note: {s}: not in the model or GPU catalogue (`gpusched serving models`); its rows are left out");
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
