//! Predictions out as CSV: the input's records as they were, then the predicted columns.

use std::io::{Read, Write};

use super::Predicted;
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
    let extra = |out: &mut dyn Write, r: usize| -> std::io::Result<()> {
        for column in &predicted.columns {
            write!(out, ",{}", csv_cell(&column.text(r)))?;
        }
        writeln!(out)
    };
    match (input, &frame.spans) {
        (Some(input), Some(spans)) => {
            let mut at = 0u64;
            for (r, &(start, end)) in spans.iter().enumerate() {
                std::io::copy(&mut (&mut *input).take(start - at), &mut std::io::sink())?;
                let copied = std::io::copy(&mut (&mut *input).take(end - start), out)?;
                if copied != end - start {
                    return Err(std::io::Error::other("the input changed while it was read"));
                }
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
