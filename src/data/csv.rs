//! Reading a CSV file (or the built-in data) as a header and rows of text cells.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::guard::memory::{host_available, MemoryPlan};

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
    /// Each column's position by name (a file may have hundreds of thousands of columns).
    index: HashMap<String, usize>,
}

impl Table {
    /// The index of `name`, or an error naming the columns there are.
    pub fn column(&self, name: &str, flag: &str) -> Result<usize> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| Error::Argument {
                flag: flag.into(),
                message: format!(
                    "{}: no column `{name}`; the columns are {}",
                    self.source.display(),
                    self.some_columns()
                ),
            })
    }

    /// The column names for a message: all of them, or the first 20 and how many there are.
    pub fn some_columns(&self) -> String {
        const SHOWN: usize = 20;
        if self.columns.len() <= SHOWN {
            self.columns.join(", ")
        } else {
            format!(
                "{}, … ({} in all)",
                self.columns[..SHOWN].join(", "),
                self.columns.len()
            )
        }
    }

    pub fn file_error(&self, message: String) -> Error {
        Error::File {
            path: self.source.clone(),
            message,
        }
    }
}

/// Reads `source`: ragged rows, an empty file, a missing header, duplicate column names and
/// bytes that are not UTF-8 are errors naming the line (and column).
pub fn read_csv(source: &Source) -> Result<Table> {
    match source {
        Source::File(p) => parse_csv(source.name(), &crate::io::read_input(p)?),
        Source::BuiltIn => parse_csv(source.name(), super::BIKE_SHARING_CSV),
    }
}

/// Bytes held per cell of a [`Table`] beyond its text: a `String`, and the smallest block the
/// allocator hands out for its text.
const CELL_OVERHEAD: u64 = std::mem::size_of::<String>() as u64 + 32;

/// Parses CSV text; `path` is what messages call it.
pub fn parse_csv(path: PathBuf, bytes: &[u8]) -> Result<Table> {
    let file_error = |message: String| Error::File {
        path: path.clone(),
        message,
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(file_error("the file is empty".into()));
    }
    // Every separator may start a cell: an upper bound on the table's size, checked before
    // the table is built (a file of commas is small on disk and large as strings).
    let separators = bytes.iter().filter(|&&b| b == b',' || b == b'\n').count() as u64;
    let mut plan = MemoryPlan::new();
    plan.add_bytes("the CSV's text", bytes.len() as u64);
    plan.add_bytes(
        "its cells",
        separators.saturating_add(1).saturating_mul(CELL_OVERHEAD),
    );
    plan.check("host memory", host_available()?.as_ref())
        .map_err(|e| file_error(e.to_string()))?;
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let csv_error = |e: ::csv::Error| {
        match e.kind() {
        ::csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => file_error(format!(
            "line {}: {len} cells where the header has {expected_len}{}",
            pos.as_ref().map_or(0, |p| p.line()),
            if bytes.contains(&b'"') {
                " (a cell that opens a quote and never closes it runs on to the next quote, lines later: is one unterminated?)"
            } else {
                ""
            }
        )),
        ::csv::ErrorKind::Utf8 { pos, err } => file_error(format!(
            "line {}, column {}: the cell is not UTF-8 text (invalid byte after {} valid ones); save the file as UTF-8",
            pos.as_ref().map_or(1, |p| p.line()),
            err.field() + 1,
            err.valid_up_to()
        )),
        _ => file_error(e.to_string()),
    }
    };
    let columns: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(|c| c.trim().to_string())
        .collect();
    let mut index = HashMap::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        if c.is_empty() {
            return Err(file_error(format!(
                "line 1, column {}: the header has an empty name",
                i + 1
            )));
        }
        if index.insert(c.clone(), i).is_some() {
            return Err(file_error(format!(
                "line 1, column {}: column `{c}` appears twice",
                i + 1
            )));
        }
    }
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
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
        index,
    })
}
