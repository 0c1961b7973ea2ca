//! Reading a CSV file (or the built-in data) as a header and rows of text cells.

use std::path::PathBuf;

use crate::error::{Error, Result};

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

/// A CSV as text: one header, rows of equal length, and the line each row started on.
#[derive(Clone, Debug)]
pub struct Table {
    pub source: PathBuf,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub lines: Vec<u64>,
}

impl Table {
    /// The index of `name`, or an error naming the columns there are.
    pub fn column(&self, name: &str, flag: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| Error::Argument {
                flag: flag.into(),
                message: format!(
                    "{}: no column `{name}`; the columns are {}",
                    self.source.display(),
                    self.columns.join(", ")
                ),
            })
    }

    pub fn file_error(&self, message: String) -> Error {
        Error::File {
            path: self.source.clone(),
            message,
        }
    }
}

/// Reads `source`; ragged rows, an empty file, a missing header and duplicate column names
/// are errors naming the line.
pub fn read_csv(source: &Source) -> Result<Table> {
    let path = source.name();
    let bytes = match source {
        Source::File(p) => std::fs::read(p).map_err(|e| Error::io(p, e))?,
        Source::BuiltIn => super::BIKE_SHARING_CSV.to_vec(),
    };
    let file_error = |message: String| Error::File {
        path: path.clone(),
        message,
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(file_error("the file is empty".into()));
    }
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes.as_slice());
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| file_error(format!("cannot read the header: {e}")))?
        .iter()
        .map(|c| c.trim().to_string())
        .collect();
    for (i, c) in columns.iter().enumerate() {
        if c.is_empty() {
            return Err(file_error(format!(
                "line 1, column {}: the header has an empty name",
                i + 1
            )));
        }
        if columns[..i].contains(c) {
            return Err(file_error(format!("line 1: column `{c}` appears twice")));
        }
    }
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.kind() {
            ::csv::ErrorKind::UnequalLengths {
                pos,
                expected_len,
                len,
            } => file_error(format!(
                "line {}: {len} cells where the header has {expected_len}",
                pos.as_ref().map_or(0, |p| p.line())
            )),
            _ => file_error(e.to_string()),
        })?;
        lines.push(record.position().map_or(0, |p| p.line()));
        rows.push(record.iter().map(|c| c.trim().to_string()).collect());
    }
    if rows.is_empty() {
        return Err(file_error("the header is followed by no records".into()));
    }
    Ok(Table {
        source: path,
        columns,
        rows,
        lines,
    })
}
