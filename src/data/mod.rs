//! Data in: a CSV read as text, columns typed and encoded (one-hot categories, standardised
//! numbers, features derived from a date), missing cells filled by a stated policy, and the
//! records split into training, validation and test sets.
//!
//! Policy for empty cells:
//! - a target cell: the record is dropped (and counted in the summary);
//! - a numeric feature: the training mean (0 after standardisation);
//! - a categorical column whose values are the weekday of the date column (e.g. `weekday` with
//!   `--date dteday`): recomputed from the date, so nothing is lost;
//! - any other categorical cell: its own category, `(missing)`.

pub mod csv;
pub mod encode;
pub mod split;

use ndarray::Array2;

pub use self::csv::{read_csv, Source, Table};
pub use encode::{Encoder, PipelineOptions};
pub use split::{Split, SplitKind};

/// The built-in default: the UCI hourly bike-sharing data (Fanaee-T and Gama, CC BY 4.0).
pub const BIKE_SHARING_CSV: &[u8] = include_bytes!("../../data/bike-rental-dataset.csv");

/// Encoded records: features and targets in model units, with where each came from.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub x: Array2<f64>,
    pub target: Array2<f64>,
    /// The CSV line of each record, for messages and for writing predictions.
    pub lines: Vec<u64>,
    /// A sortable time key per record (days since the epoch * 24 + hour), when there is a date.
    pub time: Option<Vec<f64>>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.x.nrows()
    }

    pub fn is_empty(&self) -> bool {
        self.x.nrows() == 0
    }
}

/// The three parts of a prepared data set.
#[derive(Clone, Debug)]
pub struct Splits {
    pub train: Dataset,
    pub validation: Dataset,
    pub test: Dataset,
    /// Records dropped because their target was empty.
    pub dropped: usize,
}

/// Reads, types, splits and encodes a CSV: the encoder is fitted on the training split only.
/// Each part is in time order when there is a date.
pub fn prepare(
    source: &Source,
    options: &PipelineOptions,
    kind: SplitKind,
    seed: u64,
) -> crate::Result<(Encoder, Splits)> {
    let table = read_csv(source)?;
    let schema = encode::Schema::detect(&table, options)?;
    let mut parts = split::split(&schema.usable_rows, schema.dates.as_deref(), kind, seed)?;
    let encoder = Encoder::fit(&table, &schema, options, &parts.train);
    let encode = |rows: &mut Vec<usize>| -> crate::Result<Dataset> {
        if schema.dates.is_some() {
            rows.sort_by(|&a, &b| {
                schema
                    .time_key(&table, a)
                    .total_cmp(&schema.time_key(&table, b))
            });
        }
        encoder.transform(&table, rows, true)
    };
    let splits = Splits {
        train: encode(&mut parts.train)?,
        validation: encode(&mut parts.validation)?,
        test: encode(&mut parts.test)?,
        dropped: table.rows.len() - schema.usable_rows.len(),
    };
    Ok((encoder, splits))
}
