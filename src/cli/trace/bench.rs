//! `gpusched trace bench`: rows parsed per second per format, and peak memory of a replay at
//! 1× and 10× (each replay in a child process, `gpusched trace replay`, so that its peak is its own).

use crate::cli::bad_input;
use gpusched_sim::trace::pipeline::{Pipeline, TraceSpec};
use gpusched_sim::trace::synth::{Generator, RateCurve};
use gpusched_sim::trace::{genai, gpusched};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The folder with the shared traces.
    #[arg(long, default_value = "../shared/traces")]
    pub traces: PathBuf,
    /// Minimum seconds spent parsing each format.
    #[arg(long, default_value_t = 1.0)]
    pub min_s: f64,
    /// Rows of the synthetic long trace used to show memory does not grow with length.
    #[arg(long, default_value_t = 2_000_000)]
    pub long_rows: u64,
}

pub fn execute(a: &BenchArgs) -> ExitCode {
    let t = &a.traces;
    let cases: Vec<(&str, PathBuf, Option<&str>)> = vec![
        (
            "azure (conv)",
            t.join("azure-llm-2023/AzureLLMInferenceTrace_conv.csv"),
            None,
        ),
        (
            "azure (code)",
            t.join("azure-llm-2023/AzureLLMInferenceTrace_code.csv"),
            None,
        ),
        (
            "mooncake (conversation)",
            t.join("mooncake-fast25/conversation_trace.jsonl"),
            None,
        ),
        (
            "genai requests",
            t.join("alibaba-genai-v2026/lora_request_trace.csv"),
            None,
        ),
        (
            "dlrm",
            t.join("alibaba-gpu-v2025-dlrm/disaggregated_DLRM_trace.csv"),
            None,
        ),
        (
            "openb pods (default)",
            t.join("alibaba-gpu-v2023-openb/openb_pod_list_default.csv"),
            None,
        ),
    ];
    println!("| format | file | rows parsed | requests | rows/s | MB/s |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, path, member) in &cases {
        let mut spec = TraceSpec::new(path);
        spec.member = member.map(String::from);
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let started = Instant::now();
        let (mut rows, mut parsed, mut passes) = (0u64, 0u64, 0u32);
        while passes == 0 || started.elapsed().as_secs_f64() < a.min_s {
            let mut p = match Pipeline::open(&spec, path, 42, 0) {
                Ok(p) => p,
                Err(e) => return bad_input(e),
            };
            for r in &mut p {
                if let Err(e) = r {
                    return bad_input(e);
                }
                rows += 1;
            }
            // Rows the format filters (CPU-only, outside the window) were parsed too.
            let rep = p.report();
            parsed += rep.rows_ok + rep.filtered.iter().map(|f| f.1).sum::<u64>();
            passes += 1;
        }
        let s = started.elapsed().as_secs_f64();
        println!(
            "| {name} | {} | {} | {} | {:.0} | {:.1} |",
            path.file_name().unwrap_or_default().to_string_lossy(),
            parsed / passes as u64,
            rows / passes as u64,
            parsed as f64 / s,
            bytes as f64 * passes as f64 / s / 1e6
        );
    }
    // GenAI per-pod series straight out of its .tar.gz (gunzip + tar + csv).
    let series = t.join("alibaba-genai-v2026/pod_gpu_memory_used_bytes_anon.tar.gz");
    let started = Instant::now();
    let mut n = 0u64;
    match genai::SeriesReader::open(&series, None) {
        Ok(rd) => {
            for s in rd {
                if let Err(e) = s {
                    return bad_input(e);
                }
                n += 1;
            }
        }
        Err(e) => return bad_input(e),
    }
    println!(
        "| genai per-pod GPU memory (.tar.gz) | {} | {n} | - | {:.0} | - |",
        series.file_name().unwrap_or_default().to_string_lossy(),
        n as f64 / started.elapsed().as_secs_f64()
    );

    // Peak memory of a replay, in a child process each so that VmHWM is the replay's own.
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return bad_input(e),
    };
    let long = std::env::temp_dir().join(format!("gpusched-bench-long-{}.csv", std::process::id()));
    {
        let gen = Generator::curve(RateCurve::Constant(100.0), a.long_rows as f64 / 100.0, 1, 0);
        let Ok(f) = std::fs::File::create(&long) else {
            return bad_input(format!("cannot write {}", long.display()));
        };
        let mut w = std::io::BufWriter::new(f);
        let _ = writeln!(w, "{}", gpusched::HEADER);
        for mut r in gen {
            r.input_tokens = Some(1000);
            r.output_tokens = Some(200);
            let _ = gpusched::write_row(&mut w, &r);
        }
    }
    println!("\n| replay | rate-scale | rows out | wall s | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|");
    let largest = [
        (
            "genai requests (most rows)",
            t.join("alibaba-genai-v2026/lora_request_trace.csv"),
        ),
        (
            "mooncake conversation (most bytes)",
            t.join("mooncake-fast25/conversation_trace.jsonl"),
        ),
        ("synthetic long trace", long.clone()),
    ];
    for (name, path) in &largest {
        for scale in [1.0, 10.0] {
            let out = std::process::Command::new(&exe)
                .args(["trace", "replay"])
                .arg(path)
                .args(["--rate-scale", &scale.to_string()])
                .output();
            let text = out
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            let field = |k: &str| {
                text.split_whitespace()
                    .skip_while(|w| *w != k)
                    .nth(1)
                    .unwrap_or("?")
                    .to_string()
            };
            let mib = field("peak_rss_kib")
                .parse::<f64>()
                .map(|k| format!("{:.1}", k / 1024.0))
                .unwrap_or("?".into());
            println!(
                "| {name} | {scale}x | {} | {} | {mib} |",
                field("rows"),
                field("wall_s")
            );
        }
    }
    let _ = std::fs::remove_file(&long);
    ExitCode::SUCCESS
}
