//! Readers: one per format, each producing a [`Frame`] of typed columns. The format follows
//! the file's extension: `.npy` (with `--target` another `.npy`), `.npz`, `.parquet`;
//! anything else is CSV.

pub mod arrays;
pub mod blocks;
pub mod csv;
pub mod parquet;

use std::path::{Path, PathBuf};

use super::frame::{Frame, ReadPlan};
use crate::error::Result;
use crate::guard::memory::{host_available, MemoryPlan};

/// Where the data comes from.
#[derive(Clone, Debug)]
pub enum Source {
    File(PathBuf),
    /// Inputs and targets in two `.npy` files with the same rows (`--data X.npy --target
    /// y.npy`).
    Arrays {
        inputs: PathBuf,
        targets: PathBuf,
    },
    /// The bike-sharing data shipped in the binary.
    BuiltIn,
}

impl Source {
    /// The name messages use: the file's path, or `built-in bike-sharing data`.
    pub fn name(&self) -> PathBuf {
        match self {
            Source::File(p) | Source::Arrays { inputs: p, .. } => p.clone(),
            Source::BuiltIn => PathBuf::from("built-in bike-sharing data"),
        }
    }

    /// The source `--data` and `--target` name, and the target columns left to name: an
    /// `.npy` of inputs with an `.npy` of targets is a pair of arrays whose targets are the
    /// second array's columns.
    pub fn from_flags(data: Option<&Path>, targets: &[String]) -> (Source, Vec<String>) {
        match (data, targets) {
            (None, _) => (Source::BuiltIn, targets.to_vec()),
            (Some(inputs), [target])
                if Format::of(inputs) == Format::Npy
                    && Format::of(Path::new(target)) == Format::Npy =>
            {
                let arrays = Source::Arrays {
                    inputs: inputs.into(),
                    targets: target.into(),
                };
                (arrays, Vec::new())
            }
            (Some(path), _) => (Source::File(path.into()), targets.to_vec()),
        }
    }
}

/// The formats a data file can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Npy,
    Npz,
    Parquet,
}

impl Format {
    /// The format a file's extension names (case-insensitive); CSV for any other.
    pub fn of(path: &Path) -> Format {
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            Some("npy") => Format::Npy,
            Some("npz") => Format::Npz,
            Some("parquet" | "parq" | "pq") => Format::Parquet,
            _ => Format::Csv,
        }
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
        Source::Arrays { inputs, targets } => arrays::read_npy(inputs, Some(targets), plan),
        Source::File(path) => {
            let metadata = crate::io::readable(path)?;
            match Format::of(path) {
                Format::Npy => arrays::read_npy(path, None, plan),
                Format::Npz => arrays::read_npz(path, plan),
                Format::Parquet => {
                    parquet::read(path, plan, &|done| progress(done, metadata.len()))
                }
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

/// Checks, before a typed reader allocates anything, that `rows` records of `kept` columns
/// (and their row numbers) fit in memory; `path` names the file in the error.
fn check_columns_fit(path: &Path, rows: usize, kept: usize) -> Result<()> {
    let mut memory = MemoryPlan::new();
    memory.add(
        format!("{rows} records x {kept} columns read, and their row numbers"),
        &[rows, kept + 1],
        8,
    )?;
    memory
        .check("host memory", host_available()?.as_ref())
        .map_err(|e| crate::error::Error::File {
            path: path.into(),
            message: e.to_string(),
        })
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
