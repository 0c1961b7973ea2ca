//! Readers: one per format, each producing a [`Frame`] of typed columns. The format follows
//! the file's extension: `.npy` (with `--target` another `.npy`), `.npz`, `.parquet`;
//! anything else is CSV.

pub mod blocks;
pub mod csv;

use std::path::{Path, PathBuf};

use super::frame::{Frame, ReadPlan};
use crate::error::Result;

/// Where the data comes from.
#[derive(Clone, Debug)]
pub enum Source {
    File(PathBuf),
    /// The bike-sharing data shipped in the binary.
    BuiltIn,
}

impl Source {
    /// The name messages use: the file's path, or `built-in bike-sharing data`.
    pub fn name(&self) -> PathBuf {
        match self {
            Source::File(p) => p.clone(),
            Source::BuiltIn => PathBuf::from("built-in bike-sharing data"),
        }
    }
}

/// The formats a data file can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
}

impl Format {
    pub fn of(_path: &Path) -> Format {
        Format::Csv
    }
}

/// Reads `source` as `plan` says, telling `progress` the bytes read so far (and the total,
/// when known).
pub fn read(source: &Source, plan: &ReadPlan, progress: &dyn Fn(u64, u64)) -> Result<Frame> {
    match source {
        Source::BuiltIn => {
            let bytes = super::BIKE_SHARING_CSV;
            let total = bytes.len() as u64;
            csv::read(&source.name(), Some(bytes), plan, &|done| {
                progress(done, total)
            })
        }
        Source::File(path) => {
            let metadata = crate::io::readable(path)?;
            match Format::of(path) {
                Format::Csv if metadata.is_file() => {
                    let total = metadata.len();
                    csv::read(path, None, plan, &|done| progress(done, total))
                }
                // A pipe: read whole (its size is unknown until it ends).
                Format::Csv => {
                    let bytes = crate::io::read_input(path)?;
                    csv::read(path, Some(&bytes), plan, &|done| progress(done, 0))
                }
            }
        }
    }
}

/// Reads a CSV as text cells (every column [`Role::Text`](super::frame::Role::Text)): the
/// cells as written, trimmed.
pub fn read_text(source: &Source) -> Result<Frame> {
    read(source, &ReadPlan::text_all(), &|_, _| {})
}

/// Parses CSV `bytes` (`path` names them) as `plan` says.
pub fn parse_csv(path: PathBuf, bytes: &[u8], plan: &ReadPlan) -> Result<Frame> {
    csv::read(&path, Some(bytes), plan, &|_| {})
}
