//! Errors of the openb experiment: bad input files name the file, line and field.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OpenbError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}, field `{field}`: {message}")]
    Field {
        path: PathBuf,
        line: u64,
        field: String,
        message: String,
    },
    #[error("{path}: no column `{column}`: {why}")]
    MissingColumn {
        path: PathBuf,
        column: String,
        why: String,
    },
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, OpenbError>;
