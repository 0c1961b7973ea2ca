//! Predictions out as CSV: the input's records as they were, then the predicted columns.

use std::io::{BufRead, Read, Write};

use super::{Predicted, PredictedColumn};
use crate::data::frame::Frame;

/// A CSV cell: quoted when it holds a separator, a quote, a line break or outer spaces.
fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    let needs = text.contains([',', '"', '\n', '\r'])
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace);
    if needs {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

/// Writes the header and each record of `frame` followed by its predictions. The records are
/// copied byte for byte from `input` (the CSV the frame was read from) when it is given, else
/// written from the frame's cells.
pub fn write_csv(
    out: &mut dyn Write,
    frame: &Frame,
    input: Option<&mut dyn Read>,
    predicted: &Predicted,
) -> std::io::Result<()> {
    let header: Vec<String> = frame
        .names
        .iter()
        .chain(&predicted.names)
        .map(|n| csv_cell(n).into_owned())
        .collect();
    writeln!(out, "{}", header.join(","))?;
    // Labels quoted once, not once a record.
    let labels: Vec<Option<Vec<String>>> = predicted
        .columns
        .iter()
        .map(|column| match column {
            PredictedColumn::Labels { names, .. } => {
                Some(names.iter().map(|n| csv_cell(n).into_owned()).collect())
            }
            PredictedColumn::Numbers(_) => None,
        })
        .collect();
    let extra = |out: &mut dyn Write, r: usize| -> std::io::Result<()> {
        for (column, quoted) in predicted.columns.iter().zip(&labels) {
            match (column, quoted) {
                (PredictedColumn::Labels { index, .. }, Some(quoted)) => {
                    write!(out, ",{}", quoted[index[r]])?;
                }
                (PredictedColumn::Numbers(values), _) => write!(out, ",{}", values[r])?,
                (column, None) => write!(out, ",{}", csv_cell(&column.text(r)))?,
            }
        }
        out.write_all(b"\n")
    };
    match (input, &frame.spans) {
        (Some(input), Some(spans)) => {
            // The input is read once, front to back, in large pieces: each record's bytes go
            // straight from the buffer to the output.
            let mut input = std::io::BufReader::with_capacity(1 << 20, input);
            let mut at = 0u64;
            for (r, &(start, end)) in spans.iter().enumerate() {
                pass(&mut input, start - at, &mut std::io::sink())?;
                pass(&mut input, end - start, out)?;
                at = end;
                extra(out, r)?;
            }
        }
        _ => {
            for r in 0..frame.n_rows() {
                let cells: Vec<String> = frame
                    .record(r)
                    .iter()
                    .map(|c| csv_cell(c).into_owned())
                    .collect();
                write!(out, "{}", cells.join(","))?;
                extra(out, r)?;
            }
        }
    }
    Ok(())
}

/// Moves the next `bytes` bytes of `input` to `out`.
fn pass(input: &mut impl BufRead, mut bytes: u64, out: &mut dyn Write) -> std::io::Result<()> {
    while bytes > 0 {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            return Err(std::io::Error::other("the input changed while it was read"));
        }
        let n = buffer
            .len()
            .min(usize::try_from(bytes).unwrap_or(usize::MAX));
        out.write_all(&buffer[..n])?;
        input.consume(n);
        bytes -= n as u64;
    }
    Ok(())
}
