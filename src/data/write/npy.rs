//! Predictions out as NumPy `.npy`: the predictions alone, shaped as scikit-learn's
//! `predict` returns them: `(records,)` for one target, `(records, targets)` for several,
//! float64; a classifier's labels as float64 when every class is a number, else as text
//! (`<U`). The probabilities go to CSV and Parquet outputs.

use std::io::Write;

use super::{Predicted, PredictedColumn};
use crate::io::npy::header;

pub fn write(out: &mut dyn Write, predicted: &Predicted) -> std::io::Result<()> {
    let columns = &predicted.columns[..predicted.predictions];
    let rows = columns.first().map_or(0, PredictedColumn::len);
    let shape = match columns.len() {
        1 => vec![rows],
        k => vec![rows, k],
    };
    let numbers: Vec<Vec<f64>> = columns.iter().filter_map(as_numbers).collect();
    if numbers.len() == columns.len() {
        out.write_all(&header("<f8", &shape))?;
        let mut row = Vec::with_capacity(8 * columns.len());
        for r in 0..rows {
            row.clear();
            row.extend(numbers.iter().flat_map(|c| c[r].to_le_bytes()));
            out.write_all(&row)?;
        }
        return Ok(());
    }
    let text: Vec<Vec<String>> = columns
        .iter()
        .map(|c| (0..rows).map(|r| c.text(r)).collect())
        .collect();
    let width = text
        .iter()
        .flatten()
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(0)
        .max(1);
    out.write_all(&header(&format!("<U{width}"), &shape))?;
    let mut cell = Vec::with_capacity(4 * width);
    for r in 0..rows {
        for column in &text {
            cell.clear();
            cell.extend(column[r].chars().flat_map(|c| u32::from(c).to_le_bytes()));
            cell.resize(4 * width, 0);
            out.write_all(&cell)?;
        }
    }
    Ok(())
}

/// A column's values as numbers: predicted numbers, or labels that are all numbers.
fn as_numbers(column: &PredictedColumn) -> Option<Vec<f64>> {
    match column {
        PredictedColumn::Numbers(v) => Some(v.clone()),
        PredictedColumn::Labels { names, index } => {
            let values: Option<Vec<f64>> = names
                .iter()
                .map(|n| crate::data::frame::parse_number(n))
                .collect();
            values.map(|values| index.iter().map(|&k| values[k]).collect())
        }
    }
}
