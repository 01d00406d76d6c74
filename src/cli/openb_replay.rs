//! `gpusched run SCENARIO` when the scenario has an `[openb_replay]` table: the openb pod list
//! replayed over time under several policies, written to out/<name>/ (summary.json,
//! timeseries.csv, report.md, plots).

use super::run::RunArgs;
use super::{bad_input, fail, stage_out};
use gpusched_openb::replay::{load_replay, run_replay};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

pub fn execute(a: &RunArgs, scenario: &Path) -> ExitCode {
    let l = match load_replay(scenario, &a.sets, a.seed) {
        Ok(l) => l,
        Err(e) => return bad_input(e),
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(&l.name));
    // Checked before the replay; written whole or not at all (see gpusched_reports::staged).
    let stage = match stage_out(&out) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let started = Instant::now();
    let o = match run_replay(&l) {
        Ok(o) => o,
        Err(e) => return bad_input(format!("{}: {e}", l.source.display())),
    };
    let wall = started.elapsed().as_secs_f64();
    let figures = if a.no_plots {
        Vec::new()
    } else {
        match gpusched_reports::openb_dynamic::write_plots(stage.path(), &o) {
            Ok(f) => f,
            Err(e) => {
                return fail(stage.write_error(stage.path(), std::io::Error::other(e)));
            }
        }
    };
    let files = [
        ("summary.json", o.summary_json()),
        ("timeseries.csv", o.timeseries_csv()),
        ("report.md", o.report_md(&figures)),
    ];
    for (name, body) in &files {
        let p = stage.path().join(name);
        if let Err(e) = std::fs::write(&p, body) {
            return fail(stage.write_error(&p, e));
        }
    }
    if let Err(e) = stage.commit() {
        return fail(e);
    }
    let s = &o.summary;
    println!(
        "{}: {} pods × {} policies × {} seeds replayed in {:.2} s",
        s.scenario,
        s.pods,
        s.policies.len(),
        s.seeds.len(),
        wall
    );
    println!("dynamic ranking: {}", s.dynamic_ranking.join(" > "));
    if !s.static_ranking.is_empty() {
        println!("static ranking:  {}", s.static_ranking.join(" > "));
    }
    println!(
        "wrote {} files to {}",
        files.len() + 2 * figures.len(),
        out.display()
    );
    ExitCode::SUCCESS
}
