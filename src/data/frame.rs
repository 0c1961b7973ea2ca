//! Records as typed columns: what every reader (CSV, NumPy, Parquet) produces, and what the
//! schema types and the encoder encodes. A number is parsed once, where it is read; a text
//! cell is a code into its column's levels; nothing is kept as text per cell.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The code of an empty cell.
pub const EMPTY: u32 = u32::MAX;
/// The code of a number whose text was not kept (the column's `numbers` holds it).
pub const UNTRACKED: u32 = u32::MAX - 1;

/// How a reader stores a column, decided before reading from what the user said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not read (`--drop`, or a column a model does not use).
    Skip,
    /// Text levels, whatever the cells look like (`--categorical`, `--date`, class labels).
    Text,
    /// Numbers, or text levels when some cell is not a number.
    Infer,
    /// Numbers and the text of each cell (a target: regression values or class labels);
    /// the text of numbers is kept for up to [`ReadPlan::levels_kept`] distinct values.
    Target,
}

/// The role of each column by name; unnamed columns get `default`.
#[derive(Clone, Debug)]
pub struct ReadPlan {
    pub roles: HashMap<String, Role>,
    pub default: Role,
    /// Distinct numbers whose text a [`Role::Target`] column keeps (class names are text).
    pub levels_kept: usize,
    /// Keep each CSV record's byte range ([`Frame::spans`]), to copy records out as they were.
    pub keep_spans: bool,
}

impl ReadPlan {
    /// Every column inferred.
    pub fn infer_all() -> Self {
        ReadPlan {
            roles: HashMap::new(),
            default: Role::Infer,
            levels_kept: 0,
            keep_spans: false,
        }
    }

    /// Every column as text: a reader's view of the cells as written (tests, tools).
    pub fn text_all() -> Self {
        ReadPlan {
            default: Role::Text,
            ..Self::infer_all()
        }
    }

    pub fn role(&self, name: &str) -> Role {
        self.roles.get(name).copied().unwrap_or(self.default)
    }
}

/// A column's cells as text levels: `codes[r]` indexes `levels`, or is [`EMPTY`] or
/// [`UNTRACKED`].
#[derive(Clone, Debug, Default)]
pub struct Levels {
    pub levels: Vec<String>,
    pub codes: Vec<u32>,
}

/// One column: numbers (NaN where a cell is empty or not a number), text levels, or both.
#[derive(Clone, Debug, Default)]
pub struct Column {
    pub numbers: Option<Vec<f64>>,
    pub text: Option<Levels>,
}

/// A cell as the schema and the encoder see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    Empty,
    Number(f64),
    Text(&'a str),
}

impl Cell<'_> {
    /// The cell's value when it is (or is written as) a finite number.
    pub fn number(self) -> Option<f64> {
        match self {
            Cell::Number(v) => Some(v),
            Cell::Text(t) => parse_number(t),
            Cell::Empty => None,
        }
    }

    pub fn is_empty(self) -> bool {
        self == Cell::Empty
    }

    /// The cell as text: its level, or the shortest text that reads back as its number.
    pub fn to_text(self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Number(v) => v.to_string(),
            Cell::Text(t) => t.to_string(),
        }
    }
}

/// A finite number written as text (`inf` and `nan` are words here, like any other).
pub fn parse_number(cell: &str) -> Option<f64> {
    let bytes = cell.as_bytes();
    fast_float2::parse::<f64, _>(bytes)
        .ok()
        .filter(|v: &f64| v.is_finite())
}

impl Levels {
    /// The text of each number (its shortest form, as CSV writes it) as levels, for up to
    /// `kept` distinct values; the rest [`UNTRACKED`], NaN [`EMPTY`].
    fn of_numbers(numbers: &[f64], kept: usize) -> Levels {
        let mut index: HashMap<u64, u32> = HashMap::new();
        let mut levels = Vec::new();
        let codes = numbers
            .iter()
            .map(|&v| {
                if v.is_nan() {
                    return EMPTY;
                }
                // -0 and 0 are one level.
                let key = (v + 0.0).to_bits();
                if let Some(&k) = index.get(&key) {
                    return k;
                }
                if levels.len() >= kept {
                    return UNTRACKED;
                }
                let k = levels.len() as u32;
                levels.push(v.to_string());
                index.insert(key, k);
                k
            })
            .collect();
        Levels { levels, codes }
    }
}

/// Text cells collected one by one into levels (first seen first) and codes.
#[derive(Default)]
pub struct LevelsBuilder {
    index: HashMap<String, u32>,
    levels: Levels,
}

impl LevelsBuilder {
    pub fn with_capacity(rows: usize) -> Self {
        let mut builder = LevelsBuilder::default();
        builder.levels.codes.reserve(rows);
        builder
    }

    /// Appends a cell: `None` or blank text is empty; text is trimmed, as CSV cells are.
    pub fn push(&mut self, cell: Option<&str>) {
        let code = match cell.map(str::trim).filter(|t| !t.is_empty()) {
            None => EMPTY,
            Some(text) => match self.index.get(text) {
                Some(&k) => k,
                None => {
                    let k = self.levels.levels.len() as u32;
                    self.levels.levels.push(text.to_string());
                    self.index.insert(text.to_string(), k);
                    k
                }
            },
        };
        self.levels.codes.push(code);
    }

    pub fn len(&self) -> usize {
        self.levels.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn finish(self) -> Levels {
        self.levels
    }
}

impl Column {
    /// A typed reader's column of numbers (NaN where a cell is empty), stored as `role`
    /// says: as text levels for a text role (`--categorical` on numbers), as numbers and the
    /// text of up to `levels_kept` distinct values for a target, as numbers otherwise.
    pub fn of_numbers(numbers: Vec<f64>, role: Role, levels_kept: usize) -> Column {
        match role {
            Role::Skip => Column::default(),
            Role::Infer => Column {
                numbers: Some(numbers),
                text: None,
            },
            Role::Text => Column {
                text: Some(Levels::of_numbers(&numbers, usize::MAX)),
                numbers: None,
            },
            Role::Target => Column {
                text: Some(Levels::of_numbers(&numbers, levels_kept)),
                numbers: Some(numbers),
            },
        }
    }

    /// A typed reader's column of booleans (1 and 0, NaN where empty): numbers as inputs; as
    /// a target or a category, the labels `false` and `true`, so that a column of flags trains
    /// a classifier, as scikit-learn's `type_of_target` calls it binary.
    pub fn of_flags(numbers: Vec<f64>, role: Role) -> Column {
        match role {
            Role::Target | Role::Text => {
                let mut labels = LevelsBuilder::with_capacity(numbers.len());
                for &v in &numbers {
                    labels.push(match v {
                        v if v.is_nan() => None,
                        v if v != 0.0 => Some("true"),
                        _ => Some("false"),
                    });
                }
                Column::of_text(labels.finish(), role)
            }
            Role::Infer | Role::Skip => Column::of_numbers(numbers, role, 0),
        }
    }

    /// A typed reader's column of text, stored as `role` says: a target also keeps the
    /// number each level is written as (NaN for words), as a CSV target does.
    pub fn of_text(text: Levels, role: Role) -> Column {
        match role {
            Role::Skip => Column::default(),
            Role::Target => {
                let values: Vec<f64> = text
                    .levels
                    .iter()
                    .map(|l| parse_number(l).unwrap_or(f64::NAN))
                    .collect();
                let numbers = text
                    .codes
                    .iter()
                    .map(|&k| values.get(k as usize).copied().unwrap_or(f64::NAN))
                    .collect();
                Column {
                    numbers: Some(numbers),
                    text: Some(text),
                }
            }
            Role::Text | Role::Infer => Column {
                numbers: None,
                text: Some(text),
            },
        }
    }

    pub fn len(&self) -> usize {
        match (&self.numbers, &self.text) {
            (Some(n), _) => n.len(),
            (None, Some(t)) => t.codes.len(),
            (None, None) => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the reader skipped the column.
    pub fn is_skipped(&self) -> bool {
        self.numbers.is_none() && self.text.is_none()
    }

    /// The numbers of a column that holds nothing else (NaN where empty): the fast path.
    pub fn only_numbers(&self) -> Option<&[f64]> {
        match (&self.text, &self.numbers) {
            (None, Some(n)) => Some(n),
            _ => None,
        }
    }

    /// Row `r` as a number, when it is (or is written as) one.
    pub fn number(&self, r: usize) -> Option<f64> {
        match (&self.text, &self.numbers) {
            (None, Some(n)) => Some(n[r]).filter(|v| !v.is_nan()),
            _ => self.cell(r).number(),
        }
    }

    pub fn cell(&self, r: usize) -> Cell<'_> {
        match (&self.text, &self.numbers) {
            (Some(t), numbers) => match t.codes[r] {
                EMPTY => Cell::Empty,
                UNTRACKED => numbers
                    .as_ref()
                    .map(|n| n[r])
                    .filter(|v| !v.is_nan())
                    .map_or(Cell::Empty, Cell::Number),
                k => Cell::Text(&t.levels[k as usize]),
            },
            (None, Some(n)) if n[r].is_nan() => Cell::Empty,
            (None, Some(n)) => Cell::Number(n[r]),
            (None, None) => Cell::Empty,
        }
    }
}

/// Where each record is in its file, as messages name it (`line 7` of a CSV, `row 7` of an
/// array): stored as runs of consecutive numbers, so a file of one line per record costs one
/// entry, not eight bytes a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lines {
    /// `line` or `row`.
    pub unit: &'static str,
    /// (first record, its number) of each run.
    runs: Vec<(usize, u64)>,
    len: usize,
}

impl Lines {
    pub fn new(unit: &'static str) -> Self {
        Lines {
            unit,
            runs: Vec::new(),
            len: 0,
        }
    }

    /// Rows `0..n`.
    pub fn rows(n: usize) -> Self {
        let mut lines = Lines::new("row");
        if n > 0 {
            lines.runs.push((0, 0));
            lines.len = n;
        }
        lines
    }

    pub fn push(&mut self, number: u64) {
        let continues = self
            .runs
            .last()
            .is_some_and(|&(first, at)| at + (self.len - first) as u64 == number);
        if !continues {
            self.runs.push((self.len, number));
        }
        self.len += 1;
    }

    /// The number of record `r` (0 past the end).
    pub fn get(&self, r: usize) -> u64 {
        if r >= self.len {
            return 0;
        }
        let run = self.runs.partition_point(|&(first, _)| first <= r) - 1;
        let (first, at) = self.runs[run];
        at + (r - first) as u64
    }

    /// The numbers of records `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Lines {
        let mut lines = Lines::new(self.unit);
        for &r in rows {
            lines.push(self.get(r));
        }
        lines
    }

    pub fn extend(&mut self, numbers: impl IntoIterator<Item = u64>) {
        for number in numbers {
            self.push(number);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every record's number, in order.
    pub fn to_vec(&self) -> Vec<u64> {
        let mut numbers = Vec::with_capacity(self.len);
        for (k, &(first, at)) in self.runs.iter().enumerate() {
            let end = self.runs.get(k + 1).map_or(self.len, |&(next, _)| next);
            numbers.extend((0..(end - first) as u64).map(|i| at + i));
        }
        numbers
    }
}

/// Records read from `source`: named, typed columns, and where each record came from.
#[derive(Clone, Debug)]
pub struct Frame {
    pub source: PathBuf,
    pub names: Vec<String>,
    pub columns: Vec<Column>,
    /// Where each record starts, as messages name it (`line 7` of a CSV, `row 7` of an array).
    pub lines: Lines,
    /// Each record's byte range in a CSV (so that `predict` writes records as they were).
    pub spans: Option<Vec<(u64, u64)>>,
    /// The columns the file itself holds as targets (an array file's `y`): the targets when
    /// the user names none.
    pub targets: Vec<String>,
    index: HashMap<String, usize>,
}

impl Frame {
    /// A frame of `columns` named `names`; names must be unique and the columns one length.
    pub fn new(
        source: PathBuf,
        names: Vec<String>,
        columns: Vec<Column>,
        lines: Lines,
    ) -> Result<Frame> {
        let mut index = HashMap::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if index.insert(name.clone(), i).is_some() {
                return Err(Error::File {
                    path: source,
                    message: format!("column `{name}` appears twice"),
                });
            }
        }
        Ok(Frame {
            source,
            names,
            columns,
            lines,
            spans: None,
            targets: Vec::new(),
            index,
        })
    }

    pub fn n_rows(&self) -> usize {
        self.lines.len()
    }

    pub fn cell(&self, row: usize, column: usize) -> Cell<'_> {
        self.columns[column].cell(row)
    }

    /// Record `row` as text, column by column (skipped columns empty).
    pub fn record(&self, row: usize) -> Vec<String> {
        self.columns.iter().map(|c| c.cell(row).to_text()).collect()
    }

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
        if self.names.len() <= SHOWN {
            self.names.join(", ")
        } else {
            format!(
                "{}, … ({} in all)",
                self.names[..SHOWN].join(", "),
                self.names.len()
            )
        }
    }

    pub fn file_error(&self, message: String) -> Error {
        Error::File {
            path: self.source.clone(),
            message,
        }
    }

    /// An error at one cell: `line 7, column 3 (`temp`): message`.
    /// (A record numbered by row, from an array or Parquet file, names its column only: the
    /// frame's column count is not the file's.)
    pub fn cell_error(&self, row: usize, column: usize, message: String) -> Error {
        let (unit, line, name) = (self.lines.unit, self.lines.get(row), &self.names[column]);
        self.file_error(match unit {
            "line" => format!("line {line}, column {} (`{name}`): {message}", column + 1),
            _ => format!("{unit} {line}, column `{name}`: {message}"),
        })
    }

    /// The bytes the columns hold.
    pub fn bytes(&self) -> u64 {
        self.columns
            .iter()
            .map(|c| {
                let numbers = c.numbers.as_ref().map_or(0, |n| n.len() * 8);
                let text = c.text.as_ref().map_or(0, |t| {
                    t.codes.len() * 4 + t.levels.iter().map(|l| l.len() + 24).sum::<usize>()
                });
                (numbers + text) as u64
            })
            .sum()
    }
}

/// A cell as messages quote it: whole when short, else its start (a cell may be megabytes).
pub fn quoted(cell: &str) -> String {
    const MAX: usize = 40;
    match cell.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &cell[..end]),
        None => cell.to_string(),
    }
}
