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

    /// A value that the backend's precision cannot hold (or NaN/infinity on the way in).
    #[error("`{array}` at index {index:?}: {message}")]
    Value {
        array: String,
        index: Vec<usize>,
        message: String,
    },

    /// A computed result that is NaN or infinite: where it first appeared.
    #[error("non-finite result: {0}")]
    NonFinite(String),

    /// A run that would need more memory than there is, refused before allocating.
    #[error("{0}")]
    Memory(String),

    /// SIGINT or SIGTERM arrived; the run stopped at a clean point.
    #[error("interrupted by {name}{detail}", name = signal_name(*signal))]
    Interrupted { signal: i32, detail: String },

    #[error("no usable GPU adapter: {0}")]
    NoAdapter(String),

    #[error("GPU error: {0}")]
    Gpu(String),

    /// A distributed run that cannot go on: a launcher without MPI support, a collective that
    /// failed, ranks that disagree.
    #[error("{0}")]
    Distributed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }

    pub(crate) fn argument(flag: &str, message: impl Into<String>) -> Self {
        Error::Argument {
            flag: flag.into(),
            message: message.into(),
        }
    }

    /// An `Error::Value` about a record of a part of some records, its record numbered by
    /// `record` (the part's first record is the whole's `start`, say); any other error as it is.
    pub fn with_record(self, record: impl Fn(usize) -> usize) -> Self {
        match self {
            Error::Value {
                array,
                mut index,
                message,
            } => {
                if let Some(r) = index.first_mut() {
                    *r = record(*r);
                }
                Error::Value {
                    array,
                    index,
                    message,
                }
            }
            other => other,
        }
    }

    /// The conventional exit status of a process stopped by this error: 128 + the signal for
    /// an interruption (130 for SIGINT, 143 for SIGTERM), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Interrupted { signal, .. } => u8::try_from(128 + signal).unwrap_or(1),
            _ => 1,
        }
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        signal_hook::consts::SIGINT => "SIGINT".into(),
        signal_hook::consts::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}
