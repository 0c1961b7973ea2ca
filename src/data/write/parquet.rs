//! Predictions out as Parquet: the input's columns, typed (numbers as doubles, anything else
//! as strings, empty cells null), then the predicted columns, Snappy-compressed in row
//! groups of a million records, as pandas and polars read them.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
use parquet::errors::Result;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::{Predicted, PredictedColumn};
use crate::data::frame::{Cell, Frame};

const ROW_GROUP: usize = 1 << 20;

/// A column to write: its name and how to read its cell in a row.
enum Source<'a> {
    /// Input column `c` of the frame, as numbers.
    Numbers(usize),
    /// Input column `c` of the frame, as text.
    Text(usize),
    Predicted(&'a PredictedColumn),
}

pub fn write<W: Write + Send>(out: W, frame: &Frame, predicted: &Predicted) -> Result<()> {
    let mut sources: Vec<(&str, Source)> = Vec::new();
    for (c, column) in frame.columns.iter().enumerate() {
        if column.is_skipped() {
            continue;
        }
        let numeric = column.only_numbers().is_some()
            || (0..frame.n_rows()).all(|r| !matches!(column.cell(r), Cell::Text(_)));
        let source = if numeric {
            Source::Numbers(c)
        } else {
            Source::Text(c)
        };
        sources.push((frame.names[c].as_str(), source));
    }
    for (name, column) in predicted.names.iter().zip(&predicted.columns) {
        sources.push((name, Source::Predicted(column)));
    }
    let fields = sources
        .iter()
        .map(|(name, source)| {
            let text = match source {
                Source::Text(_) => true,
                Source::Numbers(_) => false,
                Source::Predicted(p) => matches!(p, PredictedColumn::Labels { .. }),
            };
            let builder = match text {
                true => Type::primitive_type_builder(name, PhysicalType::BYTE_ARRAY)
                    .with_logical_type(Some(LogicalType::String)),
                false => Type::primitive_type_builder(name, PhysicalType::DOUBLE),
            };
            builder
                .with_repetition(Repetition::OPTIONAL)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>>>()?;
    let schema = Arc::new(
        Type::group_type_builder("predictions")
            .with_fields(fields)
            .build()?,
    );
    let properties = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("backprop {}", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let mut writer = SerializedFileWriter::new(out, schema, properties)?;
    let rows = frame.n_rows();
    for start in (0..rows).step_by(ROW_GROUP) {
        let end = (start + ROW_GROUP).min(rows);
        let mut group = writer.next_row_group()?;
        for (_, source) in &sources {
            let Some(mut column) = group.next_column()? else {
                break;
            };
            let mut levels = Vec::with_capacity(end - start);
            match source {
                Source::Numbers(_) | Source::Predicted(PredictedColumn::Numbers(_)) => {
                    let mut values = Vec::with_capacity(end - start);
                    for r in start..end {
                        let value = match source {
                            Source::Numbers(c) => frame.columns[*c].number(r),
                            Source::Predicted(p) => Some(number(p, r)),
                            Source::Text(_) => None,
                        };
                        levels.push(i16::from(value.is_some()));
                        values.extend(value);
                    }
                    column
                        .typed::<DoubleType>()
                        .write_batch(&values, Some(&levels), None)?;
                }
                _ => {
                    let mut values = Vec::with_capacity(end - start);
                    for r in start..end {
                        let text = match source {
                            Source::Text(c) => match frame.cell(r, *c) {
                                Cell::Empty => None,
                                cell => Some(cell.to_text()),
                            },
                            Source::Predicted(p) => Some(p.text(r)),
                            Source::Numbers(_) => None,
                        };
                        levels.push(i16::from(text.is_some()));
                        values.extend(text.map(|t| ByteArray::from(t.into_bytes())));
                    }
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&values, Some(&levels), None)?;
                }
            }
            column.close()?;
        }
        group.close()?;
    }
    writer.close()?;
    Ok(())
}

fn number(column: &PredictedColumn, r: usize) -> f64 {
    match column {
        PredictedColumn::Numbers(v) => v[r],
        PredictedColumn::Labels { .. } => f64::NAN,
    }
}
