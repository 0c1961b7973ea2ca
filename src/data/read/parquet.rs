//! Parquet in: typed columns read as they are stored, with no text round trip. Numbers (of
//! every width, decimals scaled) become numbers, a null an empty cell; booleans are 0 and 1
//! as inputs and the labels `false` and `true` as a target;
//! strings become text levels; dates and timestamps become ISO text (`2011-01-01`, or
//! `2011-01-01 05:00:00` when there is a time of day), which `--date` reads. Row groups are
//! read in order, their columns on every core. pandas' stored index (`__index_level_0__`)
//! is not a column of the data. Nested columns (lists, structs, maps) are not read: they are
//! no features, and cannot be targets or categories.

use std::path::Path;

use chrono::DateTime;
use parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as PhysicalType};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnDescriptor;
use rayon::prelude::*;

use crate::data::frame::{Column, Frame, LevelsBuilder, Lines, ReadPlan, Role};
use crate::error::{Error, Result};

/// Records decoded per call: bounds the memory a column's batch takes.
const BATCH: usize = 65_536;

/// What the values of a column mean, from its physical and logical types.
#[derive(Clone, Copy, Debug)]
enum Meaning {
    Number,
    /// Unsigned integers, stored in a signed physical type.
    Unsigned,
    /// Booleans, stored as 1 and 0 (see [`Column::of_flags`]).
    Flag,
    /// A decimal: the stored integer divided by this power of ten.
    Decimal(f64),
    /// Days since 1970-01-01.
    Date,
    /// Ticks since 1970-01-01 00:00, this many per second.
    Timestamp(i64),
    Text,
}

/// One column as it is read: numbers or text levels.
enum Sink {
    Numbers(Vec<f64>),
    Text(LevelsBuilder),
}

/// A column of the file being read, and where its values go.
struct Reading {
    index: usize,
    name: String,
    meaning: Meaning,
    max_def: i16,
    sink: Sink,
    role: Role,
}

/// Reads the Parquet file `path` as `plan` says, telling `progress` the compressed bytes of
/// the row groups read so far. The footer is checked before any column is read; a decoder
/// that still fails on damaged pages by panicking (the parquet crate asserts in places) is
/// caught and reported as the file's error.
pub fn read(path: &Path, plan: &ReadPlan, progress: &dyn Fn(u64)) -> Result<Frame> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_checked(path, plan, progress)
    }))
    .unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no reason given");
        Err(Error::File {
            path: path.into(),
            message: format!("the Parquet decoder failed on it (a damaged file?): {reason}"),
        })
    })
}

fn read_checked(path: &Path, plan: &ReadPlan, progress: &dyn Fn(u64)) -> Result<Frame> {
    let error = |message: String| Error::File {
        path: path.into(),
        message,
    };
    // Mapped and shared: column readers on several threads each read their own ranges (a
    // `File` would share one seek position among them).
    let bytes = bytes::Bytes::from_owner(crate::io::map_input(path)?);
    let bytes_len = bytes.len() as u64;
    let reader = SerializedFileReader::new(bytes)
        .map_err(|e| error(format!("not a readable Parquet file ({e})")))?;
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema_descr();
    let rows = usize::try_from(metadata.file_metadata().num_rows())
        .map_err(|_| error("the footer declares a negative number of rows".into()))?;
    check_chunks(metadata, bytes_len, &error)?;
    if rows == 0 {
        return Err(error("holds no records".into()));
    }
    // A nested column (a list's, a struct's or a map's leaves) goes by its top-level name and
    // is not read: it is no feature (a frame column left empty), and naming it as a target or
    // a category is an error. `None` marks it.
    let mut columns: Vec<(Option<usize>, String)> = Vec::with_capacity(schema.num_columns());
    for i in 0..schema.num_columns() {
        let descr = schema.column(i);
        let parts = descr.path().parts();
        let name = parts.first().cloned().unwrap_or_default();
        let nested = descr.max_rep_level() > 0 || parts.len() > 1;
        match (nested, plan.roles.get(&name)) {
            _ if is_pandas_index(&name) => {}
            (true, Some(Role::Target | Role::Text)) => {
                return Err(error(format!(
                    "column `{name}` is nested (a list, struct or map); only flat columns can be targets or categories: flatten it first"
                )))
            }
            (true, _) if columns.iter().any(|(_, n)| *n == name) => {}
            (true, _) => columns.push((None, name)),
            (false, _) => columns.push((Some(i), name)),
        }
    }
    if columns.iter().all(|(i, _)| i.is_none()) {
        return Err(error("holds no flat column to read".into()));
    }
    let read_here =
        |(i, name): &&(Option<usize>, String)| i.is_some() && plan.role(name) != Role::Skip;
    let kept = columns.iter().filter(read_here).count();
    super::check_columns_fit(path, rows, kept)?;
    let mut readings = columns
        .iter()
        .filter(read_here)
        .filter_map(|(i, name)| i.map(|i| (i, name)))
        .map(|(i, name)| {
            let descr = schema.column(i);
            let meaning = meaning(&descr).map_err(|m| error(format!("column `{name}`: {m}")))?;
            let sink = match meaning {
                Meaning::Text | Meaning::Date | Meaning::Timestamp(_) => {
                    Sink::Text(LevelsBuilder::with_capacity(rows))
                }
                Meaning::Number | Meaning::Unsigned | Meaning::Decimal(_) | Meaning::Flag => {
                    Sink::Numbers(Vec::with_capacity(rows))
                }
            };
            Ok(Reading {
                index: i,
                name: name.clone(),
                meaning,
                max_def: descr.max_def_level(),
                sink,
                role: plan.role(name),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut done = 0u64;
    for g in 0..metadata.num_row_groups() {
        let group = reader
            .get_row_group(g)
            .map_err(|e| error(format!("row group {g}: {e}")))?;
        let group_rows = usize::try_from(metadata.row_group(g).num_rows()).unwrap_or(0);
        readings.par_iter_mut().try_for_each(|reading| {
            let before = reading.len();
            group
                .get_column_reader(reading.index)
                .and_then(|r| reading.read(r))
                .map_err(|e| e.to_string())
                .and_then(|stored| stored)
                .map_err(|e| error(format!("row group {g}, column `{}`: {e}", reading.name)))?;
            match reading.len() - before == group_rows {
                true => Ok(()),
                false => Err(error(format!(
                    "row group {g}, column `{}`: {} values where the footer declares {group_rows} rows",
                    reading.name,
                    reading.len() - before
                ))),
            }
        })?;
        done += u64::try_from(metadata.row_group(g).compressed_size()).unwrap_or(0);
        progress(done);
    }
    let mut readings = readings.into_iter().peekable();
    let mut names = Vec::with_capacity(columns.len());
    let mut out = Vec::with_capacity(columns.len());
    for (i, name) in columns {
        let column = match readings.next_if(|r| Some(r.index) == i) {
            Some(reading) => match reading.sink {
                Sink::Numbers(n) if matches!(reading.meaning, Meaning::Flag) => {
                    Column::of_flags(n, reading.role)
                }
                Sink::Numbers(n) => Column::of_numbers(n, reading.role, plan.levels_kept),
                Sink::Text(t) => Column::of_text(t.finish(), reading.role),
            },
            None => Column::default(),
        };
        names.push(name);
        out.push(column);
    }
    Frame::new(path.into(), names, out, Lines::rows(rows))
}

/// Checks that every column chunk the footer declares lies inside the file (the parquet
/// crate asserts it, and a damaged footer must be an error, not a panic), and that the row
/// groups hold the rows the file declares.
fn check_chunks(
    metadata: &parquet::file::metadata::ParquetMetaData,
    file_bytes: u64,
    error: &dyn Fn(String) -> Error,
) -> Result<()> {
    let mut rows = 0i64;
    for g in 0..metadata.num_row_groups() {
        let group = metadata.row_group(g);
        if group.num_rows() < 0 {
            return Err(error(format!(
                "row group {g} declares a negative number of rows"
            )));
        }
        rows = rows.saturating_add(group.num_rows());
        for (c, chunk) in group.columns().iter().enumerate() {
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or_else(|| chunk.data_page_offset());
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(chunk.compressed_size()).ok())
                .and_then(|(start, length)| start.checked_add(length))
                .is_some_and(|end| end <= file_bytes);
            if !inside {
                return Err(error(format!(
                    "row group {g}, column {c}: the footer places its data outside the file's {file_bytes} bytes (the file is damaged)"
                )));
            }
        }
    }
    if rows != metadata.file_metadata().num_rows() {
        return Err(error(format!(
            "the row groups hold {rows} rows but the footer declares {} (the file is damaged)",
            metadata.file_metadata().num_rows()
        )));
    }
    Ok(())
}

/// The column pandas stores a named or non-default index in.
fn is_pandas_index(name: &str) -> bool {
    name.starts_with("__index_level_") && name.ends_with("__")
}

/// What a column's values mean, or why it cannot be read.
fn meaning(descr: &ColumnDescriptor) -> std::result::Result<Meaning, String> {
    let physical = descr.physical_type();
    // Writers before the logical types (Spark 2, Hive) annotate with converted types only.
    let legacy = match descr.converted_type() {
        ConvertedType::DECIMAL => Some(Meaning::Decimal(10f64.powi(descr.type_scale()))),
        ConvertedType::DATE => Some(Meaning::Date),
        ConvertedType::TIMESTAMP_MILLIS => Some(Meaning::Timestamp(1_000)),
        ConvertedType::TIMESTAMP_MICROS => Some(Meaning::Timestamp(1_000_000)),
        ConvertedType::UINT_8 | ConvertedType::UINT_16 | ConvertedType::UINT_32 => {
            Some(Meaning::Unsigned)
        }
        ConvertedType::UINT_64 => Some(Meaning::Unsigned),
        _ => None,
    };
    let meaning = match (descr.logical_type_ref(), physical) {
        (Some(LogicalType::Decimal(d)), _) => Meaning::Decimal(10f64.powi(d.scale)),
        (Some(LogicalType::Date), _) => Meaning::Date,
        (Some(LogicalType::Timestamp(t)), _) => Meaning::Timestamp(match t.unit {
            TimeUnit::MILLIS => 1_000,
            TimeUnit::MICROS => 1_000_000,
            _ => 1_000_000_000,
        }),
        (Some(LogicalType::Integer(i)), _) if !i.is_signed => Meaning::Unsigned,
        (None, PhysicalType::INT32 | PhysicalType::INT64 | PhysicalType::BYTE_ARRAY)
        | (None, PhysicalType::FIXED_LEN_BYTE_ARRAY)
            if legacy.is_some() =>
        {
            legacy.unwrap_or(Meaning::Number)
        }
        (_, PhysicalType::INT96) => Meaning::Timestamp(1_000_000_000),
        (_, PhysicalType::BOOLEAN) => Meaning::Flag,
        (_, PhysicalType::BYTE_ARRAY) => Meaning::Text,
        (Some(LogicalType::Float16), PhysicalType::FIXED_LEN_BYTE_ARRAY) => Meaning::Number,
        (_, PhysicalType::FIXED_LEN_BYTE_ARRAY) => {
            return Err("fixed-length bytes that are not a decimal or a float16 (a UUID?) cannot be trained on: --drop it".into())
        }
        _ => Meaning::Number,
    };
    // A decimal's unscaled value is an integer or big-endian two's complement bytes.
    if matches!(meaning, Meaning::Decimal(_)) && physical == PhysicalType::BOOLEAN {
        return Err("a boolean declared a decimal".into());
    }
    Ok(meaning)
}

impl Reading {
    fn len(&self) -> usize {
        match &self.sink {
            Sink::Numbers(n) => n.len(),
            Sink::Text(t) => t.len(),
        }
    }

    /// Reads one column chunk to its end. The outer error is the file's; the inner, a value
    /// that cannot be trained on.
    fn read(&mut self, reader: ColumnReader) -> parquet::errors::Result<Stored> {
        let meaning = self.meaning;
        let scale = match meaning {
            Meaning::Decimal(s) => s,
            _ => 1.0,
        };
        match reader {
            ColumnReader::BoolColumnReader(r) => {
                self.each(r, |b, sink| sink.number(Some(f64::from(u8::from(*b)))))
            }
            ColumnReader::Int32ColumnReader(r) => self.each(r, |&v, sink| match meaning {
                Meaning::Date => sink.text(date(i64::from(v))),
                Meaning::Unsigned => sink.number(Some(f64::from(v as u32))),
                _ => sink.number(Some(f64::from(v) / scale)),
            }),
            ColumnReader::Int64ColumnReader(r) => self.each(r, |&v, sink| match meaning {
                Meaning::Timestamp(per_second) => sink.text(timestamp(v, per_second)),
                Meaning::Date => sink.text(date(v)),
                Meaning::Unsigned => sink.number(Some(v as u64 as f64)),
                _ => sink.number(Some(v as f64 / scale)),
            }),
            ColumnReader::Int96ColumnReader(r) => self.each(r, |v, sink| {
                sink.text(timestamp(v.to_nanos(), 1_000_000_000))
            }),
            ColumnReader::FloatColumnReader(r) => {
                self.each(r, |&v, sink| sink.number(Some(f64::from(v))))
            }
            ColumnReader::DoubleColumnReader(r) => self.each(r, |&v, sink| sink.number(Some(v))),
            ColumnReader::ByteArrayColumnReader(r) => self.each(r, |v, sink| match meaning {
                Meaning::Decimal(_) => sink.number(Some(big_endian_integer(v.data()) / scale)),
                _ => sink.text(Some(String::from_utf8_lossy(v.data()).into_owned())),
            }),
            ColumnReader::FixedLenByteArrayColumnReader(r) => {
                self.each(r, |v, sink| match meaning {
                    Meaning::Decimal(_) => sink.number(Some(big_endian_integer(v.data()) / scale)),
                    _ => sink.number(Some(half(v.data()))),
                })
            }
        }
    }

    /// Hands `store` each value of the chunk in record order; a null is an empty cell.
    fn each<T: DataType>(
        &mut self,
        mut reader: ColumnReaderImpl<T>,
        mut store: impl FnMut(&T::T, &mut Cells) -> Stored,
    ) -> parquet::errors::Result<Stored> {
        let mut values = Vec::with_capacity(BATCH);
        let mut levels = Vec::with_capacity(BATCH);
        let mut cells = Cells {
            sink: &mut self.sink,
        };
        loop {
            values.clear();
            levels.clear();
            let defined = (self.max_def > 0).then_some(&mut levels);
            let (records, _, _) = reader.read_records(BATCH, defined, None, &mut values)?;
            if records == 0 {
                return Ok(Ok(()));
            }
            let stored = match self.max_def {
                0 => values.iter().try_for_each(|v| store(v, &mut cells)),
                max => {
                    let mut next = values.iter();
                    levels.iter().try_for_each(|&level| {
                        match (level == max).then(|| next.next()).flatten() {
                            Some(v) => store(v, &mut cells),
                            None => cells.empty(),
                        }
                    })
                }
            };
            if let Err(e) = stored {
                return Ok(Err(e));
            }
        }
    }
}

/// Whether a value could be stored: the error names its row.
type Stored = std::result::Result<(), String>;

/// Where one column's cells go, checked on the way.
struct Cells<'a> {
    sink: &'a mut Sink,
}

impl Cells<'_> {
    fn number(&mut self, value: Option<f64>) -> Stored {
        match self.sink {
            Sink::Numbers(n) => {
                // NaN is how pandas writes a missing float: an empty cell.
                let v = value.unwrap_or(f64::NAN);
                if v.is_infinite() {
                    return Err(format!(
                        "row {}: the value is {v}; only finite numbers (or null) can be trained on",
                        n.len()
                    ));
                }
                n.push(v);
            }
            Sink::Text(t) => t.push(value.map(|v| v.to_string()).as_deref()),
        }
        Ok(())
    }

    fn text(&mut self, value: Option<String>) -> Stored {
        match self.sink {
            Sink::Text(t) => t.push(value.as_deref()),
            Sink::Numbers(n) => n.push(f64::NAN),
        }
        Ok(())
    }

    fn empty(&mut self) -> Stored {
        match self.sink {
            Sink::Numbers(n) => n.push(f64::NAN),
            Sink::Text(t) => t.push(None),
        }
        Ok(())
    }
}

/// `YYYY-MM-DD` for days since the epoch.
fn date(days: i64) -> Option<String> {
    let seconds = days.checked_mul(86_400)?;
    DateTime::from_timestamp(seconds, 0).map(|t| t.format("%Y-%m-%d").to_string())
}

/// ISO text for `ticks` at `per_second` since the epoch: the date alone at midnight.
fn timestamp(ticks: i64, per_second: i64) -> Option<String> {
    let seconds = ticks.div_euclid(per_second);
    let nanos = ticks.rem_euclid(per_second) * (1_000_000_000 / per_second);
    let time = DateTime::from_timestamp(seconds, u32::try_from(nanos).ok()?)?;
    let midnight = seconds.rem_euclid(86_400) == 0 && nanos == 0;
    Some(match midnight {
        true => time.format("%Y-%m-%d").to_string(),
        false => time.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
    })
}

/// A big-endian two's complement integer (a decimal's unscaled value) as f64.
fn big_endian_integer(bytes: &[u8]) -> f64 {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let magnitude = bytes.iter().fold(0.0, |acc, &b| {
        acc * 256.0 + f64::from(if negative { !b } else { b })
    });
    match negative {
        true => -(magnitude + 1.0),
        false => magnitude,
    }
}

/// A little-endian IEEE half as f64.
fn half(bytes: &[u8]) -> f64 {
    match bytes {
        [lo, hi] => crate::io::npy::half_to_f64(u16::from_le_bytes([*lo, *hi])),
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_timestamps_and_decimals_convert() {
        assert_eq!(date(0).as_deref(), Some("1970-01-01"));
        assert_eq!(date(15_340).as_deref(), Some("2012-01-01"));
        assert_eq!(timestamp(86_400_000, 1_000).as_deref(), Some("1970-01-02"));
        assert_eq!(
            timestamp(3_600_000_001, 1_000_000).as_deref(),
            Some("1970-01-01 01:00:00.000001")
        );
        assert_eq!(timestamp(-1, 1).as_deref(), Some("1969-12-31 23:59:59"));
        assert_eq!(big_endian_integer(&[0x01, 0x00]), 256.0);
        assert_eq!(big_endian_integer(&[0xff, 0xfe]), -2.0);
        assert_eq!(half(&[0x00, 0x3c]), 1.0);
        assert!(is_pandas_index("__index_level_0__"));
        assert!(!is_pandas_index("index"));
    }
}
