//! The CSV reader: blocks of whole records ([`blocks`](super::blocks)) parsed on every core
//! and joined in order, each cell parsed where it lies in the block (no `String` per cell):
//! numbers straight into `f64` columns, text into per-column levels. A column whose role is
//! [`Role::Infer`] starts as numbers; its first cell that is not a number turns it to text, and
//! the block is parsed again (the schema decides later whether that is a category or a typo).
//!
//! The dialect is RFC 4180 as the `csv` crate reads it: `,` separates, a field that starts with
//! `"` is quoted (`""` is a quote, newlines are text), a quote elsewhere is text, empty lines
//! are skipped, and cells are trimmed of surrounding whitespace.

use std::path::Path;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::blocks::{Block, Blocks, BLOCK_BYTES};
use crate::data::frame::{Column, Frame, Levels, Lines, ReadPlan, Role, EMPTY, UNTRACKED};
use crate::error::{Error, Result};
use crate::guard::memory::{host_available, MemoryPlan};

/// Reads a CSV file, or bytes in memory (`path` names them), into a frame. `progress` is
/// told the bytes read so far.
pub fn read(
    path: &Path,
    bytes: Option<&[u8]>,
    plan: &ReadPlan,
    progress: &dyn Fn(u64),
) -> Result<Frame> {
    read_in_blocks(path, bytes, plan, progress, BLOCK_BYTES)
}

/// [`read`] in blocks of about `block_bytes` (tests cut small inputs into many blocks).
pub fn read_in_blocks(
    path: &Path,
    bytes: Option<&[u8]>,
    plan: &ReadPlan,
    progress: &dyn Fn(u64),
    block_bytes: usize,
) -> Result<Frame> {
    let mut blocks = match bytes {
        Some(bytes) => Blocks::memory(path, bytes, block_bytes),
        None => {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            Blocks::file(path, file, block_bytes)
        }
    };
    let file_error = |message: String| Error::File {
        path: path.into(),
        message,
    };
    // Blank lines before the header may fill whole blocks.
    let first = loop {
        match blocks.next_block()? {
            None => return Err(file_error("the file is empty".into())),
            Some(block) if block.bytes.iter().all(|b| b.is_ascii_whitespace()) => {}
            Some(block) => break block,
        }
    };
    let (names, body_at, body_line) = header(&first, path)?;
    let first_bytes = first.bytes.len() - body_at;
    let roles: Vec<Role> = names.iter().map(|n| plan.role(n)).collect();
    let mut text: Vec<bool> = roles.iter().map(|r| *r == Role::Text).collect();
    let shape = Shape {
        roles: &roles,
        levels_kept: plan.levels_kept,
        keep_spans: plan.keep_spans,
        path,
    };
    let first = Block {
        bytes: std::borrow::Cow::Borrowed(&first.bytes[body_at..]),
        offset: first.offset + body_at as u64,
        line: body_line,
        newlines: first.newlines,
    };
    let first = shape.parse(&first, &mut text, Spare::default())?;
    // The columns' room for the whole file, estimated from the first block's records (only
    // what is written takes memory).
    let expected = match (bytes, blocks.total()) {
        (_, Some(total)) if !first.lines.is_empty() => {
            let per_record = (first_bytes as f64 / first.lines.len() as f64).max(1.0);
            (total as f64 / per_record * 1.1) as usize + 16
        }
        _ => first.lines.len(),
    };
    let mut frame = Builder::new(names.len(), expected);
    let mut spares = vec![frame.append(first)];
    let available = host_available()?;
    let batch_size = 2 * rayon::current_num_threads().max(1);
    let mut batch = read_batch(&mut blocks, batch_size)?;
    while !batch.is_empty() {
        progress(blocks.offset());
        let known = text.clone();
        spares.resize_with(batch.len().max(spares.len()), Spare::default);
        let this_batch = spares.drain(..batch.len()).collect::<Vec<_>>();
        // The next blocks are read while these are parsed.
        let (parsed, next) = rayon::join(
            || -> Vec<Result<Chunk>> {
                batch
                    .par_iter()
                    .zip(this_batch)
                    .map(|(block, spare)| shape.parse(block, &mut known.clone(), spare))
                    .collect()
            },
            || read_batch(&mut blocks, batch_size),
        );
        for chunk in parsed {
            let chunk = chunk?;
            for (t, c) in text.iter_mut().zip(&chunk.columns) {
                *t |= c.is_text();
            }
            spares.push(frame.append(chunk));
        }
        blocks.recycle(std::mem::replace(&mut batch, next?));
        let mut memory = MemoryPlan::new();
        memory.add_bytes("the columns read so far", frame.bytes());
        memory
            .check("host memory", available.as_ref())
            .map_err(|e| file_error(e.to_string()))?;
    }
    frame.finish(path, names, plan.keep_spans)
}

/// Up to `size` blocks.
fn read_batch<'a>(blocks: &mut Blocks<'a>, size: usize) -> Result<Vec<Block<'a>>> {
    let mut batch = Vec::with_capacity(size);
    while batch.len() < size {
        match blocks.next_block()? {
            Some(block) => batch.push(block),
            None => break,
        }
    }
    Ok(batch)
}

/// The header's names (trimmed), where the records start and their first line.
fn header(block: &Block, path: &Path) -> Result<(Vec<String>, usize, u64)> {
    let file_error = |message: String| Error::File {
        path: path.into(),
        message,
    };
    let bytes = &block.bytes[..];
    let mut at = skip_blank_lines(bytes, 0);
    if bytes[at..].iter().all(|b| b.is_ascii_whitespace()) {
        return Err(file_error("the file is empty".into()));
    }
    let line = block.line + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64;
    let mut names = Vec::new();
    let mut scratch = Vec::new();
    loop {
        let field = next_field(bytes, at, &mut scratch);
        let column = names.len() + 1;
        let name = std::str::from_utf8(field.text(bytes, &scratch)).map_err(|e| {
            file_error(format!(
                "line {line}, column {column}: the cell is not UTF-8 text (invalid byte after {} valid ones); save the file as UTF-8",
                e.valid_up_to()
            ))
        })?;
        // A byte-order mark (Excel's "CSV UTF-8") is not part of the first name.
        let name = name.trim_start_matches('\u{feff}').trim();
        if name.is_empty() {
            return Err(file_error(format!(
                "line {line}, column {column}: the header has an empty name"
            )));
        }
        if names.iter().any(|n| n == name) {
            return Err(file_error(format!(
                "line {line}, column {column}: column `{name}` appears twice"
            )));
        }
        names.push(name.to_string());
        at = field.next;
        if field.ends_record {
            break;
        }
    }
    let body_line = block.line + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64;
    Ok((names, at, body_line))
}

fn skip_blank_lines(bytes: &[u8], mut at: usize) -> usize {
    while let Some(&b) = bytes.get(at) {
        match b {
            b'\n' => at += 1,
            b'\r' if bytes.get(at + 1) == Some(&b'\n') => at += 2,
            _ => break,
        }
    }
    at
}

/// One field: its bytes (in the block, or unquoted into the scratch buffer) and what follows.
struct Field {
    start: usize,
    end: usize,
    /// The field's text is in the scratch buffer (a quoted field with `""` or text after its
    /// closing quote).
    in_scratch: bool,
    /// Where the next field or record starts.
    next: usize,
    ends_record: bool,
    /// The field opened with a quote (and may hold line breaks).
    quoted: bool,
}

impl Field {
    fn text<'b>(&self, bytes: &'b [u8], scratch: &'b [u8]) -> &'b [u8] {
        let raw = if self.in_scratch {
            scratch
        } else {
            &bytes[self.start..self.end]
        };
        raw.trim_ascii()
    }
}

/// The field that starts at `at`.
fn next_field(bytes: &[u8], at: usize, scratch: &mut Vec<u8>) -> Field {
    let finish = |end: usize| match bytes.get(end) {
        Some(b',') => (end + 1, false),
        Some(_) => (end + 1, true),
        None => (end, true),
    };
    if bytes.get(at) != Some(&b'"') {
        let end = bytes[at..]
            .iter()
            .position(|&b| b == b',' || b == b'\n')
            .map_or(bytes.len(), |k| at + k);
        let (next, ends_record) = finish(end);
        return Field {
            start: at,
            end,
            in_scratch: false,
            next,
            ends_record,
            quoted: false,
        };
    }
    // Quoted: up to the closing quote, `""` a quote; text after the closing quote (to the next
    // separator) is appended as it is.
    scratch.clear();
    let mut from = at + 1;
    let mut simple = true;
    let close = loop {
        match memchr::memchr(b'"', &bytes[from..]) {
            None => {
                scratch.extend_from_slice(&bytes[from..]);
                break bytes.len();
            }
            Some(k) if bytes.get(from + k + 1) == Some(&b'"') => {
                scratch.extend_from_slice(&bytes[from..from + k + 1]);
                from += k + 2;
                simple = false;
            }
            Some(k) => {
                scratch.extend_from_slice(&bytes[from..from + k]);
                break from + k;
            }
        }
    };
    let after = (close + 1).min(bytes.len());
    let end = bytes[after..]
        .iter()
        .position(|&b| b == b',' || b == b'\n')
        .map_or(bytes.len(), |k| after + k);
    let trailing = &bytes[after..end];
    if !trailing.trim_ascii().is_empty() {
        scratch.extend_from_slice(trailing);
        simple = false;
    }
    let (next, ends_record) = finish(end);
    Field {
        start: at + 1,
        end: close,
        in_scratch: !simple,
        next,
        ends_record,
        quoted: true,
    }
}

/// Distinct texts of one column in one block, and each cell's code.
#[derive(Default)]
struct Dictionary {
    index: FxHashMap<Box<[u8]>, u32>,
    levels: Vec<Box<[u8]>>,
    codes: Vec<u32>,
    /// Levels that are numbers (capped for targets).
    numbers: usize,
}

impl Dictionary {
    fn code(&mut self, text: &[u8]) -> u32 {
        if let Some(&k) = self.index.get(text) {
            return k;
        }
        let k = self.levels.len() as u32;
        self.levels.push(text.into());
        self.index.insert(text.into(), k);
        k
    }
}

/// One column of one block.
enum Part {
    Skipped,
    Numbers(Vec<f64>),
    Text(Dictionary),
    /// A target: numbers, and the text of every cell (numbers' up to a cap).
    Target(Vec<f64>, Dictionary),
}

impl Part {
    fn is_text(&self) -> bool {
        matches!(self, Part::Text(_))
    }
}

/// The records of one block, column by column.
struct Chunk {
    columns: Vec<Part>,
    lines: Vec<u64>,
    spans: Vec<(u64, u64)>,
}

/// What a block parser needs to know about the columns.
struct Shape<'a> {
    roles: &'a [Role],
    levels_kept: usize,
    keep_spans: bool,
    path: &'a Path,
}

/// Why a block's parse stopped: an error, or a column found to hold text.
enum Stop {
    Error(Error),
    Text(usize),
}

impl Shape<'_> {
    /// Parses `block`, turning columns to text as it finds them (recorded in `text`).
    fn parse(&self, block: &Block, text: &mut [bool], mut spare: Spare) -> Result<Chunk> {
        loop {
            match self.try_parse(block, text, &mut spare) {
                Ok(chunk) => return Ok(chunk),
                Err(Stop::Text(c)) => text[c] = true,
                Err(Stop::Error(e)) => return Err(e),
            }
        }
    }

    fn try_parse(
        &self,
        block: &Block,
        text: &[bool],
        spare: &mut Spare,
    ) -> std::result::Result<Chunk, Stop> {
        let bytes = &block.bytes[..];
        let estimate = block.newlines + 1;
        let mut numbers = || {
            let mut v = spare.numbers.pop().unwrap_or_default();
            v.clear();
            v.reserve(estimate);
            v
        };
        let mut columns: Vec<Part> = self
            .roles
            .iter()
            .zip(text)
            .map(|(role, &is_text)| match role {
                Role::Skip => Part::Skipped,
                Role::Target => Part::Target(numbers(), Dictionary::default()),
                _ if is_text => Part::Text(Dictionary::default()),
                _ => Part::Numbers(numbers()),
            })
            .collect();
        let mut chunk_lines = std::mem::take(&mut spare.lines);
        chunk_lines.clear();
        chunk_lines.reserve(estimate);
        let mut spans = std::mem::take(&mut spare.spans);
        spans.clear();
        spans.reserve(estimate);
        let mut scratch = Vec::new();
        let mut line = block.line;
        let mut at = 0;
        while at < bytes.len() {
            let blank = skip_blank_lines(bytes, at);
            line += bytes[at..blank].iter().filter(|&&b| b == b'\n').count() as u64;
            at = blank;
            if at >= bytes.len() {
                break;
            }
            let start = at;
            let mut count = 0;
            // Line breaks inside quoted cells, and the one that ends the record.
            let mut newlines = 0;
            loop {
                if let Some(Part::Numbers(numbers)) = columns.get_mut(count) {
                    if let Some((value, next, ends_record)) = number_in_place(bytes, at) {
                        numbers.push(value);
                        count += 1;
                        at = next;
                        if ends_record {
                            newlines += u64::from(next > 0 && bytes[next - 1] == b'\n');
                            break;
                        }
                        continue;
                    }
                }
                let field = next_field(bytes, at, &mut scratch);
                if let Some(part) = columns.get_mut(count) {
                    let cell = field.text(bytes, &scratch);
                    self.store(part, cell, count, line)?;
                }
                if field.quoted {
                    newlines += memchr::memchr_iter(b'\n', &bytes[at..field.next]).count() as u64;
                } else if field.ends_record {
                    newlines += u64::from(bytes.get(field.next.wrapping_sub(1)) == Some(&b'\n'));
                }
                count += 1;
                at = field.next;
                if field.ends_record {
                    break;
                }
            }
            if count != self.roles.len() {
                return Err(Stop::Error(self.ragged(line, count, bytes)));
            }
            chunk_lines.push(line);
            let end = if self.keep_spans {
                bytes[..at].trim_ascii_end().len().max(start)
            } else {
                0
            };
            if self.keep_spans {
                spans.push((block.offset + start as u64, block.offset + end as u64));
            }
            line += newlines;
        }
        Ok(Chunk {
            columns,
            lines: chunk_lines,
            spans,
        })
    }

    /// Stores one cell of column `c`.
    fn store(
        &self,
        part: &mut Part,
        cell: &[u8],
        c: usize,
        line: u64,
    ) -> std::result::Result<(), Stop> {
        match part {
            Part::Skipped => {}
            Part::Numbers(numbers) => {
                if cell.is_empty() {
                    numbers.push(f64::NAN);
                } else {
                    match number(cell) {
                        Some(v) => numbers.push(v),
                        None => return Err(Stop::Text(c)),
                    }
                }
            }
            Part::Text(dictionary) => {
                let code = if cell.is_empty() {
                    EMPTY
                } else {
                    self.level(dictionary, cell, c, line)?
                };
                dictionary.codes.push(code);
            }
            Part::Target(numbers, dictionary) => {
                let value = number(cell);
                numbers.push(value.unwrap_or(f64::NAN));
                let code = match value {
                    _ if cell.is_empty() => EMPTY,
                    Some(_) if dictionary.numbers >= self.levels_kept => {
                        match dictionary.index.get(cell) {
                            Some(&k) => k,
                            None => UNTRACKED,
                        }
                    }
                    Some(_) => {
                        let before = dictionary.levels.len();
                        let k = self.level(dictionary, cell, c, line)?;
                        dictionary.numbers += dictionary.levels.len() - before;
                        k
                    }
                    None => self.level(dictionary, cell, c, line)?,
                };
                dictionary.codes.push(code);
            }
        }
        Ok(())
    }

    /// The code of a text cell; a new level must be UTF-8.
    fn level(
        &self,
        dictionary: &mut Dictionary,
        cell: &[u8],
        c: usize,
        line: u64,
    ) -> std::result::Result<u32, Stop> {
        if !dictionary.index.contains_key(cell) {
            if let Err(e) = std::str::from_utf8(cell) {
                return Err(Stop::Error(Error::File {
                    path: self.path.into(),
                    message: format!(
                        "line {line}, column {}: the cell is not UTF-8 text (invalid byte after {} valid ones); save the file as UTF-8",
                        c + 1,
                        e.valid_up_to()
                    ),
                }));
            }
        }
        Ok(dictionary.code(cell))
    }

    fn ragged(&self, line: u64, count: usize, bytes: &[u8]) -> Error {
        Error::File {
            path: self.path.into(),
            message: format!(
                "line {line}: {count} cells where the header has {}{}",
                self.roles.len(),
                if bytes.contains(&b'"') {
                    " (a cell that opens a quote and never closes it runs on to the next quote, lines later: is one unterminated?)"
                } else {
                    ""
                }
            ),
        }
    }
}

/// The number that starts at `at` and fills its cell (no quotes or spaces around it), where
/// the next cell starts, and whether it ended the record: the common cell parsed in one pass.
/// Anything else (an empty, quoted or padded cell, text, a non-finite number) is `None`, and
/// goes the general way.
fn number_in_place(bytes: &[u8], at: usize) -> Option<(f64, usize, bool)> {
    let (value, length) = fast_float2::parse_partial::<f64, _>(&bytes[at..]).ok()?;
    if length == 0 || !value.is_finite() {
        return None;
    }
    let end = at + length;
    match bytes.get(end) {
        Some(b',') => Some((value, end + 1, false)),
        Some(b'\n') => Some((value, end + 1, true)),
        Some(b'\r') if bytes.get(end + 1) == Some(&b'\n') => Some((value, end + 2, true)),
        None => Some((value, end, true)),
        Some(_) => None,
    }
}

/// A cell that is a finite number.
fn number(cell: &[u8]) -> Option<f64> {
    fast_float2::parse::<f64, _>(cell)
        .ok()
        .filter(|v: &f64| v.is_finite())
}

/// Vectors of a parsed block, emptied and handed back for the next (fresh memory costs a
/// page fault per page: reusing it is several times faster).
#[derive(Default)]
struct Spare {
    numbers: Vec<Vec<f64>>,
    lines: Vec<u64>,
    spans: Vec<(u64, u64)>,
}

/// One column of the frame as it grows.
#[derive(Default)]
struct Growing {
    skipped: bool,
    numbers: Option<Vec<f64>>,
    levels: Vec<String>,
    index: FxHashMap<String, u32>,
    codes: Option<Vec<u32>>,
}

/// The frame as blocks are appended in order: numbers concatenated, levels merged (first
/// seen first) and codes renumbered. A column that is text in some blocks and numbers in
/// others keeps both: its numbers (NaN elsewhere) and its text (numbers untracked).
struct Builder {
    columns: Vec<Growing>,
    rows: usize,
    expected: usize,
    lines: Lines,
    spans: Vec<(u64, u64)>,
}

impl Growing {
    /// Appends one block's part of this column (`len` records after the `rows` before it;
    /// room for `expected` in all); returns the part's emptied numbers.
    fn append(&mut self, part: Part, rows: usize, len: usize, expected: usize) -> Option<Vec<f64>> {
        let (numbers, dictionary) = match part {
            Part::Skipped => {
                self.skipped = true;
                return None;
            }
            Part::Numbers(n) => (Some(n), None),
            Part::Text(d) => (None, Some(d)),
            Part::Target(n, d) => (Some(n), Some(d)),
        };
        let untracked = |v: &f64| if v.is_nan() { EMPTY } else { UNTRACKED };
        if numbers.is_some() && self.numbers.is_none() {
            let mut all = Vec::with_capacity(expected.max(rows + len));
            all.resize(rows, f64::NAN);
            self.numbers = Some(all);
        }
        if dictionary.is_some() && self.codes.is_none() {
            let mut codes = Vec::with_capacity(expected.max(rows + len));
            codes.extend(self.numbers.iter().flatten().map(untracked));
            codes.resize(rows, EMPTY);
            self.codes = Some(codes);
        }
        if let Some(all) = self.numbers.as_mut() {
            match &numbers {
                Some(n) => all.extend_from_slice(n),
                None => all.resize(rows + len, f64::NAN),
            }
        }
        if let Some(codes) = self.codes.as_mut() {
            match dictionary {
                Some(d) => {
                    let renumber: Vec<u32> = d
                        .levels
                        .iter()
                        .map(|level| {
                            // Levels were checked as UTF-8 when first seen.
                            let level = String::from_utf8_lossy(level).trim().to_string();
                            let next = self.levels.len() as u32;
                            *self.index.entry(level.clone()).or_insert_with(|| {
                                self.levels.push(level);
                                next
                            })
                        })
                        .collect();
                    codes.extend(d.codes.iter().map(|&k| match k {
                        EMPTY | UNTRACKED => k,
                        k => renumber[k as usize],
                    }));
                }
                None => codes.extend(numbers.iter().flatten().map(untracked)),
            }
        }
        numbers
    }
}

impl Builder {
    fn new(n_columns: usize, expected: usize) -> Self {
        Builder {
            columns: (0..n_columns).map(|_| Growing::default()).collect(),
            rows: 0,
            expected,
            lines: Lines::new("line"),
            spans: Vec::new(),
        }
    }

    fn bytes(&self) -> u64 {
        let column = |c: &Growing| {
            c.numbers.as_ref().map_or(0, |n| n.len() * 8)
                + c.codes.as_ref().map_or(0, |k| k.len() * 4)
                + c.levels.iter().map(|l| 2 * l.len() + 48).sum::<usize>()
        };
        (self.columns.iter().map(column).sum::<usize>() + self.rows * 24) as u64
    }

    /// Appends `chunk`'s records, the columns on every core; returns its emptied vectors.
    fn append(&mut self, mut chunk: Chunk) -> Spare {
        let (rows, len, expected) = (self.rows, chunk.lines.len(), self.expected);
        let emptied: Vec<Option<Vec<f64>>> = self
            .columns
            .par_iter_mut()
            .zip(std::mem::take(&mut chunk.columns))
            .map(|(column, part)| column.append(part, rows, len, expected))
            .collect();
        self.lines.extend(chunk.lines.iter().copied());
        self.spans.append(&mut chunk.spans);
        self.rows += len;
        Spare {
            numbers: emptied.into_iter().flatten().collect(),
            lines: chunk.lines,
            spans: chunk.spans,
        }
    }

    fn finish(self, path: &Path, names: Vec<String>, keep_spans: bool) -> Result<Frame> {
        if self.rows == 0 {
            return Err(Error::File {
                path: path.into(),
                message: "the header is followed by no records".into(),
            });
        }
        let columns = self
            .columns
            .into_iter()
            .map(|c| match (c.numbers, c.codes) {
                (None, None) => Column::default(),
                (numbers, codes) => Column {
                    numbers,
                    text: codes.map(|codes| Levels {
                        levels: c.levels,
                        codes,
                    }),
                },
            })
            .collect();
        let mut frame = Frame::new(path.into(), names, columns, self.lines)?;
        frame.spans = keep_spans.then_some(self.spans);
        Ok(frame)
    }
}
