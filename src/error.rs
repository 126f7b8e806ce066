//! The one error type of the medlink library.
//!
//! Every variant carries the context a user needs to fix the problem: the file and line of a
//! malformed record, the path of an I/O failure, the two models of a mismatched index.
//! [`Error::kind`] sorts errors into user, runtime and internal faults; the CLI maps that to an
//! exit code and a server maps it to an HTTP status in one `match`.

use std::path::{Path, PathBuf};

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who is at fault, which decides the exit code or HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: a malformed file, an unknown format, an out-of-range argument.
    User,
    /// The environment failed: I/O, a missing asset, a model that cannot run.
    Runtime,
    /// A bug in medlink.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A record in an input file that cannot be read; `line` is 1-based.
    #[error("{}:{line}: {}{message}", path.display(), field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        line: usize,
        field: Option<String>,
        message: String,
    },

    #[error("unknown ontology format `{found}` (expected one of: {expected})")]
    UnknownFormat { found: String, expected: String },

    #[error("invalid input: {0}")]
    InvalidInput(String),

    #[error("{}: not a medlink {expected} file (found {found})", path.display())]
    FileFormat {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("{}: data is corrupt: {comment}", path.display())]
    DataCorruption { path: PathBuf, comment: String },

    #[error("vector dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch { expected: usize, got: usize },

    #[error("index was built with model `{index}` but the loaded model is `{loaded}`; rebuild the index or pass the model it was built with")]
    ModelMismatch { index: String, loaded: String },

    #[error("model error: {0}")]
    Model(String),

    /// A model directory of an architecture medlink does not implement.
    #[error("{}: model_type `{found}` is not supported: medlink runs {supported}", path.display())]
    UnsupportedModel {
        path: PathBuf,
        found: String,
        supported: String,
    },

    #[error("missing asset: {0}")]
    MissingAsset(String),

    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse { .. }
            | Error::UnknownFormat { .. }
            | Error::InvalidInput(_)
            | Error::FileFormat { .. }
            | Error::DimensionMismatch { .. }
            | Error::ModelMismatch { .. }
            | Error::UnsupportedModel { .. } => ErrorKind::User,
            Error::Io { .. }
            | Error::DataCorruption { .. }
            | Error::Model(_)
            | Error::MissingAsset(_) => ErrorKind::Runtime,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// An I/O error that names its path.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A malformed record at `path:line`, optionally naming the field.
    pub fn parse(
        path: impl AsRef<Path>,
        line: usize,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Error::Parse {
            path: path.as_ref().to_path_buf(),
            line,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn model(message: impl std::fmt::Display) -> Self {
        Error::Model(message.to_string())
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Model(e.to_string())
    }
}
