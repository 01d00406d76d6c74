//! Outputs appear whole or not at all, and an unusable `--out` is bad input (exit 2) naming
//! the path, under every command that writes one.

mod common;

use std::path::{Path, PathBuf};

/// A short run of the default scenario (a few hundred KB of output).
const SHORT: &[&str] = &["--set", "duration_h=2", "--no-plots"];

fn run_to(out: &Path) -> (i32, String, String) {
    let o = out.to_str().unwrap();
    let mut args = vec!["run", "--out", o];
    args.extend_from_slice(SHORT);
    common::gpusched(&args)
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let data = if e.path().is_file() {
                std::fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            (e.file_name().to_string_lossy().into_owned(), data)
        })
        .collect();
    v.sort();
    v
}

fn names(dir: &Path) -> Vec<String> {
    listing(dir).into_iter().map(|(n, _)| n).collect()
}

/// A write that fails part-way (the file-size limit stands in for a full disk: writes past it
/// fail with EFBIG) leaves the earlier folder byte for byte, and no staging folder behind.
#[test]
fn a_write_failing_part_way_leaves_the_earlier_run_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (code, _, err) = run_to(&out);
    assert_eq!(code, 0, "{err}");
    // Mark the earlier output so a replacement would show.
    std::fs::write(out.join("report.md"), "earlier run\n").unwrap();
    let before = listing(&out);

    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        // Ignore SIGXFSZ so the write returns EFBIG instead of killing the process; 64 blocks
        // of 512 bytes: summary.json fits, decisions.jsonl does not.
        .arg("trap '' XFSZ; ulimit -f 64; exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_gpusched"))
        .args(["run", "--out", out.to_str().unwrap()])
        .args(SHORT)
        .current_dir(common::root());
    let r = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(
        r.status.code(),
        Some(1),
        "a failed write is a failed run: {err}"
    );
    assert!(
        err.contains("untouched") && err.contains(out.to_str().unwrap()),
        "says the earlier output is kept: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(listing(&out), before, "the earlier folder is untouched");
    assert_eq!(
        names(tmp.path()),
        vec!["run".to_string()],
        "no staging folder left"
    );

    // And a good run replaces it whole.
    let (code, _, err) = run_to(&out);
    assert_eq!(code, 0, "{err}");
    assert_ne!(
        std::fs::read_to_string(out.join("report.md")).unwrap(),
        "earlier run\n"
    );
    assert_eq!(names(tmp.path()), vec!["run".to_string()]);
}

/// A place nothing can be written: a read-only folder, or (as root, who ignores permissions)
/// /sys, which refuses new entries.
fn unwritable(tmp: &Path) -> PathBuf {
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(true);
    if is_root {
        PathBuf::from("/sys/gpusched-unwritable/out")
    } else {
        use std::os::unix::fs::PermissionsExt;
        let ro = tmp.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        ro.join("out")
    }
}

/// Every command that writes a folder or a file refuses a bad `--out` up front with exit 2,
/// naming the path.
#[test]
fn bad_out_paths_are_bad_input_under_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let below = file.join("run");
    let ro = unwritable(tmp.path());
    let spec = tmp.path().join("sweep.toml");
    std::fs::write(
        &spec,
        "name = \"t\"\nseeds = [1]\nsets = [\"duration_h=0.1\"]\n[search]\nkind = \"grid\"\n[slo]\nmax_p99_ms = 800.0\n[[axes]]\nname = \"n\"\nkeys = [\"pools.0.nodes\"]\nvalues = [2]\n",
    )
    .unwrap();
    let spec = spec.to_str().unwrap().to_string();
    for out in [&file, &below, &ro] {
        let o = out.to_str().unwrap();
        let commands: Vec<Vec<&str>> = vec![
            vec!["run", "--set", "duration_h=0.1", "--no-plots", "--out", o],
            vec![
                "compare",
                "--seeds",
                "1",
                "--set",
                "duration_h=0.1",
                "--no-plots",
                "--out",
                o,
            ],
            vec!["sweep", &spec, "--no-plots", "--out", o],
            vec![
                "tune",
                "--train",
                "scenarios/default.toml",
                "--holdout",
                "scenarios/default.toml",
                "--budget",
                "1",
                "--train-seeds",
                "1",
                "--holdout-seeds",
                "1",
                "--set",
                "duration_h=0.1",
                "--out",
                o,
            ],
            vec![
                "trace",
                "synth",
                "--kind",
                "poisson",
                "--duration-s",
                "10",
                "--out",
                o,
            ],
            vec![
                "fgd",
                "run",
                "--pod-lists",
                "openb_pod_list_default",
                "--seeds",
                "1",
                "--out",
                o,
            ],
            vec![
                "run",
                "scenarios/openb-dynamic.toml",
                "--no-plots",
                "--out",
                o,
            ],
        ];
        for args in commands {
            let (code, _, err) = common::gpusched(&args);
            // The file itself is a fine target for `trace synth` (it writes a file).
            if args[1] == "synth" && out == &file {
                assert_eq!(code, 0, "{args:?}: {err}");
                continue;
            }
            assert_eq!(code, 2, "{args:?}: {err}");
            assert!(
                err.contains(o) || err.contains(file.to_str().unwrap()),
                "{args:?} names the path: {err}"
            );
            assert!(
                !err.contains("os error"),
                "{args:?}: a clear message, not a raw OS error: {err}"
            );
        }
    }
}

/// The same under `compare`: its report files are small, so a limit of one block fails the
/// first write larger than 512 bytes.
#[test]
fn a_compare_whose_write_fails_leaves_the_earlier_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let o = out.to_str().unwrap();
    let args = [
        "compare",
        "--seeds",
        "1",
        "--set",
        "duration_h=0.05",
        "--no-plots",
        "--out",
        o,
    ];
    let (code, _, err) = common::gpusched(&args);
    assert_eq!(code, 0, "{err}");
    let before = listing(&out);
    let r = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1; exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_gpusched"))
        .args(args)
        .current_dir(common::root())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("untouched"), "{err}");
    assert_eq!(listing(&out), before, "the earlier report is untouched");
    assert_eq!(
        names(tmp.path()),
        vec!["cmp".to_string()],
        "no staging folder left"
    );
}
