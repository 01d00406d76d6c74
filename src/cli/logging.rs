//! Diagnostics and progress as `tracing` events, with one subscriber for the whole process (set
//! up in `main` before any subcommand runs). Results go to stdout and the `error: …` line of a
//! refused input or a failed run stays a plain line on stderr (its wording and exit code are
//! the interface scripts and tests use); everything else a command says on stderr, including
//! everything `gpusched live` logs, is an event here.
//!
//! `--log-format human` (the default) prints `LEVEL message field=value …` lines on stderr;
//! `json` prints one JSON object per event (timestamp, level, target, fields), what cluster log
//! pipelines ingest. The level comes from `--log-level` (for gpusched's crates; the libraries
//! under them say warnings only), else `RUST_LOG` (full `EnvFilter` directives, e.g.
//! `gpusched_live=debug,kube=info`), else `info`.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `LEVEL message field=value` lines (with timestamps for the long-running `live` commands).
    Human,
    /// One JSON object per line.
    Json,
}

/// `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }

    /// The level for gpusched's own crates; the libraries under them (kube, hyper, …) log
    /// warnings and errors only unless `RUST_LOG` says otherwise.
    fn directive(self) -> String {
        let deps = if self == Self::Error { "error" } else { "warn" };
        let l = self.name();
        format!("{deps},gpusched={l},gpusched_live={l},gpusched_sim={l},gpusched_reports={l}")
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// How diagnostics are written to stderr.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// The least severe level written (default: $RUST_LOG, else info).
    #[arg(long, global = true, value_enum)]
    pub log_level: Option<LogLevel>,
}

/// Installs the process's subscriber; `timestamps` for daemons (human format; JSON always has
/// them).
pub fn init(a: &LogArgs, timestamps: bool) {
    let filter = match a.log_level {
        Some(l) => EnvFilter::new(l.directive()),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|e| {
            // Unset is the usual case; a value that does not parse is said, not swallowed.
            if std::env::var_os(EnvFilter::DEFAULT_ENV).is_some_and(|v| !v.is_empty()) {
                eprintln!("warning: RUST_LOG is not a valid filter ({e}); logging at info (see --log-level)");
            }
            EnvFilter::new(LogLevel::Info.directive())
        }),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match a.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Human => {
            let b = builder
                .with_target(false)
                .with_ansi(std::io::stderr().is_terminal());
            if timestamps {
                b.try_init()
            } else {
                b.without_time().try_init()
            }
        }
    };
    // Only a second call can fail (the subscriber is already there): nothing to do then.
    let _ = installed;
}
