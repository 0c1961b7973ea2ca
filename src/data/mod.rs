//! Data in: a file read into typed columns (`read`: CSV, NumPy, Parquet), the columns typed
//! (`schema`) and encoded (`encode`: one-hot categories, standardised numbers, features derived
//! from a date), missing cells filled by a stated policy, and the records split into training,
//! validation and test sets (`split`).
//!
//! Empty cells follow `--missing` ([`encode::Missing`]): an error by default, or the record
//! left out, or the training mean, median or most frequent value (categories: their own level
//! `(missing)` under mean and median). A categorical column whose values are the weekday of the
//! date column (e.g. `weekday` with `--date dteday`) is recomputed from the date under every
//! policy, so nothing is lost. Validation and test records may come from files of their own,
//! encoded with the training split's encoder.

pub mod encode;
pub mod frame;
mod mapped;
pub mod read;
pub mod schema;
pub mod split;
pub mod write;

use ndarray::Array2;

use crate::guard::memory::{host_available, MemoryPlan};
use crate::guard::numeric::Precision;
use crate::matrix::Values;

pub use encode::{Classes, Classify, Encoder, Missing, PipelineOptions, DEFAULT_MAX_CATEGORIES};
pub use frame::{Cell, Frame, Lines, ReadPlan, Role};
pub use read::{parse_csv, read, read_text, Source};
pub use schema::Schema;
pub use split::{Split, SplitKind, SplitOptions};

/// The built-in default: the UCI hourly bike-sharing data (Fanaee-T and Gama, CC BY 4.0).
pub const BIKE_SHARING_CSV: &[u8] = include_bytes!("../../data/bike-rental-dataset.csv");

/// Encoded records: features and targets in model units, with where each came from.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The inputs, in the precision the model trains in.
    pub x: Values,
    pub target: Array2<f64>,
    /// The file the records came from.
    pub source: std::path::PathBuf,
    /// Where each record is in its file (a CSV line, an array or Parquet row), for messages.
    pub lines: Lines,
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
    /// Things the user should know (a feature that gives the target away).
    pub warnings: Vec<String>,
}

/// The memory `records` encoded records take: features in `precision` and targets in f64,
/// and the f32 copy a backend keeps of them.
pub fn encoding_plan(
    encoder: &Encoder,
    records: usize,
    precision: Precision,
) -> crate::Result<MemoryPlan> {
    let mut plan = MemoryPlan::new();
    let bytes = match precision {
        Precision::F32 => 4,
        Precision::F64 => 8,
    };
    plan.add(
        format!(
            "{records} encoded records x {} features",
            encoder.n_features()
        ),
        &[records, encoder.n_features()],
        bytes + 4,
    )?;
    plan.add(
        format!(
            "{records} encoded records x {} targets",
            encoder.n_outputs()
        ),
        &[records, encoder.n_outputs()],
        8 + 4,
    )?;
    Ok(plan)
}

/// Validation and test records from files of their own (`--val`, `--test`) instead of the
/// split.
#[derive(Clone, Debug, Default)]
pub struct SeparateSets {
    pub validation: Option<Source>,
    pub test: Option<Source>,
}

/// Reads, types, splits and encodes a data file: the encoder is fitted on the training split
/// only, and encodes separate validation and test files the same way. Each part is in time
/// order when there is a date.
pub fn prepare(
    source: &Source,
    options: &PipelineOptions,
    split: &SplitOptions,
    separate: &SeparateSets,
) -> crate::Result<(Encoder, Splits)> {
    prepare_with(source, options, split, separate, &|_, _| {})
}

/// [`prepare`], telling `progress` the bytes of `source` read so far and its size.
pub fn prepare_with(
    source: &Source,
    options: &PipelineOptions,
    split: &SplitOptions,
    separate: &SeparateSets,
    progress: &dyn Fn(u64, u64),
) -> crate::Result<(Encoder, Splits)> {
    if let Source::Arrays { inputs, targets } = source {
        let mapped = mapped::prepare((inputs, targets), options, split, separate, progress)?;
        if let Some(prepared) = mapped {
            return Ok(prepared);
        }
    }
    let frame = read(source, &options.read_plan(), progress)?;
    prepare_frame(frame, options, split, separate)
}

/// [`prepare`] on a frame already read, which it consumes: each typed column is released
/// once every part has its features (see [`Encoder::transform_owned`]).
pub fn prepare_frame(
    frame: Frame,
    options: &PipelineOptions,
    split: &SplitOptions,
    separate: &SeparateSets,
) -> crate::Result<(Encoder, Splits)> {
    let mut schema = Schema::detect(&frame, options)?;
    let split = SplitOptions {
        separate_validation: separate.validation.is_some(),
        separate_test: separate.test.is_some(),
        ..*split
    };
    let labels = schema.class_labels(&frame);
    // The parts hold the usable rows from here.
    let usable_rows = std::mem::take(&mut schema.usable_rows);
    let usable = usable_rows.len();
    let mut parts = split::split(
        usable_rows,
        schema.dates.as_deref(),
        labels.as_deref(),
        &split,
    )?;
    drop(labels);
    let encoder = Encoder::fit(&frame, &schema, options, &parts.train)?;
    encoding_plan(&encoder, usable, options.precision)?
        .check("host memory", host_available()?.as_ref())
        .map_err(|e| frame.file_error(e.to_string()))?;
    let warnings = schema.label_leaks(&frame, &parts.train);
    if schema.dates.is_some() {
        for rows in [&mut parts.validation, &mut parts.test, &mut parts.train] {
            rows.sort_by(|&a, &b| {
                schema
                    .time_key(&frame, a)
                    .total_cmp(&schema.time_key(&frame, b))
            });
        }
    }
    let dropped = frame.n_rows() - usable;
    let sets = encoder.transform_owned(
        frame,
        &[&parts.validation, &parts.test, &parts.train],
        options.precision,
    )?;
    let splits = assemble(&encoder, options, separate, sets, dropped, warnings)?;
    Ok((encoder, splits))
}

/// The splits from the encoded parts of the data file (validation, test and training, in
/// that order), validation and test records coming from files of their own where given,
/// encoded with the training encoder (the records they leave out counted in `dropped`).
fn assemble(
    encoder: &Encoder,
    options: &PipelineOptions,
    separate: &SeparateSets,
    sets: Vec<Dataset>,
    mut dropped: usize,
    warnings: Vec<String>,
) -> crate::Result<Splits> {
    let mut sets = sets.into_iter();
    let mut next = || {
        sets.next()
            .ok_or_else(|| crate::Error::Shape("an encoded part is missing".into()))
    };
    let (validation, test, train) = (next()?, next()?, next()?);
    let mut own_file = |file: &Option<Source>, part: Dataset| -> crate::Result<Dataset> {
        match file {
            None => Ok(part),
            Some(file) => {
                let (set, left_out) = encode_separate(encoder, options, file)?;
                dropped += left_out;
                Ok(set)
            }
        }
    };
    let validation = own_file(&separate.validation, validation)?;
    let test = own_file(&separate.test, test)?;
    Ok(Splits {
        train,
        validation,
        test,
        dropped,
        warnings,
    })
}

/// The records of a separate validation or test file, encoded with the training encoder: a
/// record with an empty target is an error under `--missing error` and left out (counted)
/// otherwise; `encoder.transform` names an unseen class or an empty feature cell it may not
/// fill.
fn encode_separate(
    encoder: &Encoder,
    options: &PipelineOptions,
    source: &Source,
) -> crate::Result<(Dataset, usize)> {
    let frame = read(source, &encoder.read_plan(), &|_, _| {})?;
    let target_columns = encoder
        .target_columns()
        .iter()
        .map(|name| frame.column(name, "--target"))
        .collect::<crate::Result<Vec<_>>>()
        .map_err(|e| frame.file_error(format!("{e} (it must hold the training data's columns)")))?;
    let mut rows = Vec::with_capacity(frame.n_rows());
    for r in 0..frame.n_rows() {
        match target_columns
            .iter()
            .find(|&&t| frame.cell(r, t).is_empty())
        {
            Some(&t) if options.missing == Missing::Error => {
                return Err(frame.cell_error(
                    r,
                    t,
                    "the target cell is empty; choose what happens to such records with --missing (every policy but error leaves them out)".into(),
                ));
            }
            Some(_) => {}
            None => rows.push(r),
        }
    }
    if rows.is_empty() {
        return Err(frame.file_error("no record has its target filled".into()));
    }
    let left_out = frame.n_rows() - rows.len();
    Ok((
        encoder.transform(&frame, &rows, true, options.precision)?,
        left_out,
    ))
}

impl Dataset {
    /// The feature of record `row` farthest from the training data (in standard deviations,
    /// as the model sees it): its name and value.
    fn most_extreme_feature(&self, row: usize, feature_names: &[String]) -> (String, f64) {
        let values = self.x.row(row);
        values
            .into_iter()
            .enumerate()
            .fold((String::new(), 0.0), |best, (j, v)| {
                if v.abs() > best.1.abs() || v.is_nan() {
                    (feature_names.get(j).cloned().unwrap_or_default(), v)
                } else {
                    best
                }
            })
    }

    /// Fails at the first prediction that is NaN or infinite, naming the record it belongs to
    /// and the feature that took it there.
    pub fn check_predictions(
        &self,
        source: &std::path::Path,
        part: &str,
        feature_names: &[String],
        predictions: ndarray::ArrayView2<f64>,
    ) -> crate::Result<()> {
        let Some((index, v)) = crate::guard::numeric::first_non_finite(predictions) else {
            return Ok(());
        };
        let row = index[0];
        let (feature, z) = self.most_extreme_feature(row, feature_names);
        Err(crate::Error::NonFinite(format!(
            "{}: {} {}: the {part} prediction is {v}: the record is far outside the training data (feature `{feature}` is {z:.3e} standard deviations from its training mean); no output was written with it",
            source.display(),
            self.lines.unit,
            self.lines.get(row)
        )))
    }

    /// Turns a backend's refusal of a value (`Error::Value` at [record, column] of the inputs
    /// or the targets) into one that names the record and the column.
    pub fn locate(
        &self,
        error: crate::Error,
        source: &std::path::Path,
        part: &str,
        encoder: &Encoder,
    ) -> crate::Error {
        match error {
            crate::Error::Value {
                array,
                index,
                message,
            } if index.len() == 2 && (array == "input" || array == "target") => {
                let (what, name) = if array == "input" {
                    ("feature", encoder.feature_names().get(index[1]).cloned())
                } else {
                    ("target", encoder.target_columns().get(index[1]).cloned())
                };
                crate::Error::File {
                    path: source.into(),
                    message: format!(
                        "{} {}: {part} record, {what} `{}`: {message} (the value is in standard deviations from the training mean: the record is far outside the training data)",
                        self.lines.unit,
                        self.lines.get(index[0]),
                        name.unwrap_or_default(),
                    ),
                }
            }
            other => other,
        }
    }
}
