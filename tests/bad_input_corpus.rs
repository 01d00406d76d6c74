//! The regression corpus: every input in tests/corpus/bad-input/ that once slipped through
//! (accepted, panicked, hung or allocated without bound) must now be refused with exit code 2
//! and the message its header names. Header lines of each file:
//!
//! ```text
//! # expect: <a substring of the error>
//! # command: sweep          (optional: run (default), compare, sweep or fgd)
//! ```
//!
//! Add a case by dropping a file here: the test picks up every `*.toml`.

mod common;

#[test]
fn every_corpus_input_is_refused_with_its_message() {
    let dir = common::root().join("tests/corpus/bad-input");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let header = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("# {k}: ")))
                .map(|s| s.trim().to_string())
        };
        let expect =
            header("expect").unwrap_or_else(|| panic!("{}: no `# expect:` line", f.display()));
        let command = header("command").unwrap_or_else(|| "run".into());
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let p = f.to_str().unwrap();
        let o = out.to_str().unwrap();
        let args: Vec<&str> = match command.as_str() {
            "run" => vec!["run", p, "--no-plots", "--out", o],
            "compare" => vec!["compare", p, "--seeds", "1", "--no-plots", "--out", o],
            "sweep" => vec!["sweep", p, "--no-plots", "--out", o],
            "fgd" => vec!["fgd", "run", "--scenario", p, "--no-plots", "--out", o],
            c => panic!("{}: unknown command {c}", f.display()),
        };
        let (code, _, err) = common::gpusched(&args);
        let name = f.file_name().unwrap().to_string_lossy();
        if code != 2 || !err.contains(&expect) || err.contains("panicked") {
            failures.push(format!(
                "{name}: exit {code}, expected 2 and `{expect}`; stderr:\n{err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}
