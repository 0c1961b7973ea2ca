//! Predictions out, by the output's extension: CSV (the input's records as they were, then
//! the predicted columns), NumPy `.npy` (the predictions alone, as `model.predict` returns
//! them) or Parquet (the input's columns typed, then the predicted columns). Every output is
//! written atomically.

mod csv;
mod npy;
mod parquet;

use std::io::Read;
use std::path::Path;

use super::frame::Frame;
use crate::error::{Error, Result};

pub use csv::write_csv;

/// What a model predicted for each record, column by column: the predictions, then (for a
/// classifier) the probability of each class.
#[derive(Clone, Debug)]
pub struct Predicted {
    /// The predicted columns' names (`cnt_predicted`, `species_p_setosa`).
    pub names: Vec<String>,
    pub columns: Vec<PredictedColumn>,
    /// How many of the columns are predictions (the rest are probabilities).
    pub predictions: usize,
}

#[derive(Clone, Debug)]
pub enum PredictedColumn {
    Numbers(Vec<f64>),
    /// A class label per record: an index into `names`.
    Labels {
        names: Vec<String>,
        index: Vec<usize>,
    },
}

impl PredictedColumn {
    pub fn len(&self) -> usize {
        match self {
            PredictedColumn::Numbers(v) => v.len(),
            PredictedColumn::Labels { index, .. } => index.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn text(&self, r: usize) -> String {
        match self {
            PredictedColumn::Numbers(v) => v[r].to_string(),
            PredictedColumn::Labels { names, index } => names[index[r]].clone(),
        }
    }
}

/// The formats predictions can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutFormat {
    Csv,
    Npy,
    Parquet,
}

impl OutFormat {
    /// The format an output's extension names (case-insensitive); CSV for any other.
    pub fn of(path: &Path) -> OutFormat {
        match super::read::Format::of(path) {
            super::read::Format::Npy => OutFormat::Npy,
            super::read::Format::Parquet => OutFormat::Parquet,
            _ => OutFormat::Csv,
        }
    }

    /// Whether the output holds the input's records, copied byte for byte from a CSV.
    pub fn echoes_csv(self) -> bool {
        self == OutFormat::Csv
    }
}

/// Writes `predicted` for `frame` to `path` (atomically) in the format its extension names.
pub fn write_predictions(
    path: &Path,
    frame: &Frame,
    input: Option<&mut dyn Read>,
    predicted: &Predicted,
) -> Result<()> {
    crate::io::write_atomic(path, |w| match OutFormat::of(path) {
        OutFormat::Csv => write_csv(w, frame, input, predicted).map_err(|e| Error::io(path, e)),
        OutFormat::Npy => npy::write(w, predicted).map_err(|e| Error::io(path, e)),
        OutFormat::Parquet => parquet::write(w, frame, predicted).map_err(|e| Error::File {
            path: path.into(),
            message: format!("writing Parquet: {e}"),
        }),
    })
}
