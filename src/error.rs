//! The library's one error type: every variant says what went wrong and where (file, array, shape).

use std::path::PathBuf;

/// Everything the library can report. The binary adds context with `anyhow`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },

    #[error("{path}: array `{array}`: {message}")]
    Array {
        path: PathBuf,
        array: String,
        message: String,
    },

    #[error("shape mismatch: {0}")]
    Shape(String),

    #[error("invalid network: {0}")]
    Network(String),

    #[error("invalid value for {flag}: {message}")]
    Argument { flag: String, message: String },

    #[error("no usable GPU adapter: {0}")]
    NoAdapter(String),

    #[error("GPU error: {0}")]
    Gpu(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
}
