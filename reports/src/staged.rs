//! Outputs that appear whole or not at all. Every folder a command writes (a run's report, a
//! compare, a sweep, a tune, an FGD reproduction, a synthesised trace) is written into a hidden
//! sibling `.NAME.tmp-<pid>` and renamed into place only once complete; a single output file
//! goes the same way. A reader (a CI job, a dashboard) therefore never sees a new summary.json
//! beside a truncated decisions.jsonl and the previous run's report.md: a failed write leaves
//! the earlier folder exactly as it was.
//!
//! The target is checked before any work starts ([`StagedDir::new`] is cheap), so a bad `--out`
//! (an existing file, a path below a file, a folder that cannot be written) is refused as bad
//! input, with the path, instead of failing after an hour of simulation with a raw OS error.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What can go wrong with an output path. `Target` is the user's (exit 2); `Write` is a run
/// that failed part-way (exit 1, the earlier output untouched).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("--out {path}: {problem}")]
    Target { path: PathBuf, problem: String },
    #[error(
        "writing {path} failed: {source}; nothing was replaced (any earlier {shown} is untouched)"
    )]
    Write {
        path: PathBuf,
        shown: String,
        source: io::Error,
    },
}

impl OutputError {
    /// Whether the error is in the user's input (the `--out` path) rather than a failed write.
    pub fn is_input_error(&self) -> bool {
        matches!(self, OutputError::Target { .. })
    }
}

/// Checks that `path` can become an output (a folder when `dir`, else a file) and returns its
/// parent folder, created if missing.
fn prepare_target(path: &Path, dir: bool) -> Result<PathBuf, OutputError> {
    let bad = |problem: String| OutputError::Target {
        path: path.to_path_buf(),
        problem,
    };
    if path.as_os_str().is_empty() {
        return Err(bad("the path is empty".into()));
    }
    let name = path
        .file_name()
        .ok_or_else(|| bad("names no file or folder (it ends in `..` or is a root)".into()))?;
    if name.to_str().is_none() {
        return Err(bad("the name is not valid UTF-8".into()));
    }
    match fs::metadata(path) {
        Ok(m) if dir && !m.is_dir() => {
            return Err(bad(
                "exists and is a file, not a folder; give a folder path".into(),
            ))
        }
        Ok(m) if !dir && m.is_dir() => {
            return Err(bad("exists and is a folder, not a file".into()))
        }
        _ => {}
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // The first ancestor that exists must be a folder: `--out results.json/run` is a mistake.
    for a in parent.ancestors() {
        if a.as_os_str().is_empty() {
            break;
        }
        if let Ok(m) = fs::metadata(a) {
            if !m.is_dir() {
                return Err(bad(format!(
                    "{} is a file, so nothing can be written below it",
                    a.display()
                )));
            }
            break;
        }
    }
    fs::create_dir_all(&parent).map_err(|e| {
        bad(format!(
            "cannot create the folder {}: {}",
            parent.display(),
            describe(&e)
        ))
    })?;
    Ok(parent)
}

/// An OS error in words a user can act on (the raw text says "os error 13").
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied (not writable)".into(),
        io::ErrorKind::ReadOnlyFilesystem => "the file system is read-only".into(),
        io::ErrorKind::NotADirectory => "a part of the path is a file, not a folder".into(),
        io::ErrorKind::StorageFull => "no space left on the device".into(),
        _ => e.to_string(),
    }
}

fn sibling(parent: &Path, name: &str, tag: &str) -> PathBuf {
    parent.join(format!(".{name}.{tag}-{}", std::process::id()))
}

/// An output folder being written: write everything under [`StagedDir::path`], then call
/// [`StagedDir::commit`]. Dropped without a commit, the staging folder is removed.
pub struct StagedDir {
    target: PathBuf,
    staging: PathBuf,
    parent: PathBuf,
    name: String,
    committed: bool,
}

impl StagedDir {
    /// Checks `target` and creates the empty staging folder beside it.
    pub fn new(target: &Path) -> Result<Self, OutputError> {
        let parent = prepare_target(target, true)?;
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("out")
            .to_string();
        let staging = sibling(&parent, &name, "tmp");
        // A staging folder left by a killed process with our pid would be stale: start afresh.
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir(&staging).map_err(|e| OutputError::Target {
            path: target.to_path_buf(),
            problem: format!("cannot write in {}: {}", parent.display(), describe(&e)),
        })?;
        Ok(Self {
            target: target.to_path_buf(),
            staging,
            parent,
            name,
            committed: false,
        })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The folder the files will be in after the commit.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Maps a path under the staging folder to where it ends up (for "wrote …" messages).
    pub fn final_path(&self, staged: &Path) -> PathBuf {
        match staged.strip_prefix(&self.staging) {
            Ok(rest) => self.target.join(rest),
            Err(_) => staged.to_path_buf(),
        }
    }

    /// Wraps an error met while writing into the staging folder: exit 1, earlier output kept.
    pub fn write_error(&self, path: &Path, source: io::Error) -> OutputError {
        OutputError::Write {
            path: self.final_path(path),
            shown: self.target.display().to_string(),
            source,
        }
    }

    /// Copies the files of the existing target whose names `keep` accepts into the staging
    /// folder, so they survive the replacement (a sweep merged into its shards' folder keeps
    /// the shard files).
    pub fn keep_from_existing(&self, keep: impl Fn(&str) -> bool) -> Result<(), OutputError> {
        let Ok(entries) = fs::read_dir(&self.target) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(n) = name.to_str() else { continue };
            let to = self.staging.join(n);
            if keep(n) && e.path().is_file() && !to.exists() {
                fs::copy(e.path(), &to).map_err(|err| self.write_error(&to, err))?;
            }
        }
        Ok(())
    }

    /// Moves the complete folder into place, replacing an earlier one only now.
    pub fn commit(mut self) -> Result<PathBuf, OutputError> {
        let old = sibling(&self.parent, &self.name, "old");
        let had_old = self.target.exists();
        if had_old {
            let _ = fs::remove_dir_all(&old);
            fs::rename(&self.target, &old).map_err(|e| self.write_error(&self.target, e))?;
        }
        if let Err(e) = fs::rename(&self.staging, &self.target) {
            if had_old {
                // Put the earlier output back: the promise is "untouched".
                let _ = fs::rename(&old, &self.target);
            }
            return Err(self.write_error(&self.target, e));
        }
        self.committed = true;
        if had_old {
            let _ = fs::remove_dir_all(&old);
        }
        Ok(self.target.clone())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// Checks that `path` can be written as a single output file, before any work starts.
pub fn check_file_target(path: &Path) -> Result<(), OutputError> {
    prepare_target(path, false).map(|_| ())
}

/// Writes one output file atomically: into `.NAME.tmp-<pid>` beside it, then renamed over it.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    write_file_with(path, |f| io::Write::write_all(f, bytes))
}

/// Like [`write_file`], with the content streamed by `fill`.
pub fn write_file_with(
    path: &Path,
    fill: impl FnOnce(&mut io::BufWriter<fs::File>) -> io::Result<()>,
) -> Result<(), OutputError> {
    let parent = prepare_target(path, false)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = sibling(&parent, name, "tmp");
    let failed = |source: io::Error| {
        let _ = fs::remove_file(&tmp);
        OutputError::Write {
            path: path.to_path_buf(),
            shown: path.display().to_string(),
            source,
        }
    };
    let f = fs::File::create(&tmp).map_err(|e| OutputError::Target {
        path: path.to_path_buf(),
        problem: format!("cannot write in {}: {}", parent.display(), describe(&e)),
    })?;
    let mut w = io::BufWriter::new(f);
    fill(&mut w).map_err(failed)?;
    io::Write::flush(&mut w).map_err(failed)?;
    drop(w);
    fs::rename(&tmp, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_stage_leaves_the_earlier_folder_and_no_litter() {
        let d = tempfile_dir();
        let target = d.join("out");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("report.md"), "old").unwrap();
        {
            let s = StagedDir::new(&target).unwrap();
            fs::write(s.path().join("report.md"), "half").unwrap();
        }
        assert_eq!(fs::read_to_string(target.join("report.md")).unwrap(), "old");
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            1,
            "no staging folder left"
        );
        let s = StagedDir::new(&target).unwrap();
        fs::write(s.path().join("summary.json"), "new").unwrap();
        s.commit().unwrap();
        assert!(!target.join("report.md").exists(), "replaced whole");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_path_below_a_file_is_a_target_error() {
        let d = tempfile_dir();
        fs::write(d.join("f"), "x").unwrap();
        let e = StagedDir::new(&d.join("f").join("run")).err().unwrap();
        assert!(
            e.is_input_error() && e.to_string().contains("is a file"),
            "{e}"
        );
        let e = StagedDir::new(&d.join("f")).err().unwrap();
        assert!(e.is_input_error(), "{e}");
        let _ = fs::remove_dir_all(&d);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "gpusched-staged-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }
}
