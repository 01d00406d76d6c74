//! `gpusched serving models` and `gpusched serving profiles`: the shipped catalogues.

use gpusched_serving::{arch, profile, Dtype};

pub fn models() {
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

pub fn profiles() {
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
