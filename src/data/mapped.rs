//! Training from a mapped `.npy` of inputs (`--data X.npy --target y.npy`), which is never read
//! into memory: a data set larger than memory trains. The targets are read as usual (a frame
//! of their columns); the inputs are visited where they lie, row by row: once to check them
//! (infinities; missing values as `--missing` says), twice more for the training split's
//! statistics (the in-memory encoder's sums, in its order: the same figures). Each part of the
//! split is then a [`MappedRecords`], standardised as a backend gathers its batches.
//!
//! Arrays of numbers in C order whose columns are all plain numeric features, under
//! `--missing error`, `drop` or `mean`, take this path; the rest (booleans, text, Fortran
//! order, `--categorical` inputs, medians) are read into memory by [`super::read`].

use std::path::Path;
use std::sync::Arc;

use super::encode::{columns_mean_std, stats::Rows, Feature, MISSING_HINT};
use super::frame::{Frame, Role};
use super::read::arrays;
use super::{split, Encoder, Missing, PipelineOptions, SeparateSets, Splits, SplitOptions};
use crate::error::{Error, Result};
use crate::guard::memory::{host_available, MemoryPlan};
use crate::matrix::{MappedArray, MappedRecords, Values};

/// Rows between two reports of progress.
const PROGRESS_ROWS: usize = 1 << 16;

/// Prepares `inputs` (mapped) and `targets` as [`super::prepare`] does, or `None` when the
/// inputs need the in-memory path (see the module documentation).
pub(super) fn prepare(
    (inputs, targets): (&Path, &Path),
    options: &PipelineOptions,
    split_options: &SplitOptions,
    separate: &SeparateSets,
    progress: &dyn Fn(u64, u64),
) -> Result<Option<(Encoder, Splits)>> {
    let Some((array, columns)) = open(inputs, options)? else {
        return Ok(None);
    };
    let array = Arc::new(array);
    // The targets' frame: the inputs' columns are named (for messages) but not read.
    let mut plan = options.read_plan();
    for j in 0..array.columns() {
        plan.roles.insert(format!("x{j}"), Role::Skip);
    }
    let frame = arrays::read_npy(inputs, Some(targets), &plan)?;
    let mut schema = super::Schema::detect_with(&frame, options, true)?;
    let missing = check_inputs(&array, &columns, &frame, options.missing, progress)?;
    let mut usable = std::mem::take(&mut schema.usable_rows);
    if let Some(missing) = &missing {
        usable.retain(|&r| !missing[r]);
        if usable.is_empty() {
            return Err(frame.file_error(
                "every record has an empty cell, and --missing drop left them all out".into(),
            ));
        }
    }
    drop(missing);
    let usable_count = usable.len();
    let split_options = SplitOptions {
        separate_validation: separate.validation.is_some(),
        separate_test: separate.test.is_some(),
        ..*split_options
    };
    let labels = schema.class_labels(&frame);
    let parts = split::split(usable, None, labels.as_deref(), &split_options)?;
    drop(labels);
    let mut encoder = Encoder::fit(&frame, &schema, options, &parts.train)?;
    let names: Vec<String> = columns.iter().map(|j| format!("x{j}")).collect();
    let statistics = columns_mean_std(
        &names,
        &TrainingRows {
            array: &array,
            rows: &parts.train,
            columns: &columns,
        },
    )
    .map_err(|e| frame.file_error(e.to_string()))?;
    check_memory(&frame, usable_count, encoder.n_outputs())?;
    let dropped = frame.n_rows() - usable_count;
    // The targets of each part (the encoder has no features yet: the frame holds none).
    let sets = encoder.transform_owned(
        frame,
        &[&parts.validation, &parts.test, &parts.train],
        options.precision,
    )?;
    encoder.features = names
        .iter()
        .zip(statistics.iter())
        .map(|(name, &(mean, std))| Feature::Numeric {
            column: name.clone(),
            mean,
            std,
            fill: None,
        })
        .collect();
    let (columns, statistics): (Arc<[usize]>, Arc<[(f64, f64)]>) =
        (columns.into(), statistics.into());
    let mut sets = sets
        .into_iter()
        .zip([parts.validation, parts.test, parts.train])
        .map(|(mut set, rows)| {
            set.x = Values::Mapped(Arc::new(MappedRecords::new(
                Arc::clone(&array),
                rows,
                Arc::clone(&columns),
                Arc::clone(&statistics),
                options.precision,
            )));
            set
        });
    let mut next = || {
        sets.next()
            .ok_or_else(|| Error::Shape("an encoded part is missing".into()))
    };
    let (validation, test, train) = (next()?, next()?, next()?);
    let mut dropped = dropped;
    let mut separate_set = |file: &Option<super::Source>| -> Result<Option<super::Dataset>> {
        file.as_ref()
            .map(|file| {
                let (set, left_out) = super::encode_separate(&encoder, options, file)?;
                dropped += left_out;
                Ok(set)
            })
            .transpose()
    };
    let validation = separate_set(&separate.validation)?.unwrap_or(validation);
    let test = separate_set(&separate.test)?.unwrap_or(test);
    let splits = Splits {
        train,
        validation,
        test,
        dropped,
        warnings: Vec::new(),
    };
    Ok(Some((encoder, splits)))
}

/// The mapped inputs and the columns that are features, when this path can read them.
fn open(inputs: &Path, options: &PipelineOptions) -> Result<Option<(MappedArray, Vec<usize>)>> {
    let fills = matches!(
        options.missing,
        Missing::Error | Missing::Drop | Missing::Mean
    );
    if !fills || options.date.is_some() {
        return Ok(None);
    }
    let bytes = crate::io::map_input(inputs)?;
    let npy = arrays::parsed(&bytes, inputs, "inputs")?;
    let in_row_order = npy.shape.len() == 1 || !npy.fortran_order;
    let numbers = npy
        .numbers_in_place(&bytes)
        .filter(|_| in_row_order && !npy.is_bool());
    let Some(numbers) = numbers else {
        return Ok(None);
    };
    let (rows, width) = (npy.shape[0], npy.shape.get(1).copied().unwrap_or(1));
    arrays::check_column_count(inputs, width)?;
    let plan = options.read_plan();
    let mut columns = Vec::with_capacity(width);
    for j in 0..width {
        match plan.role(&format!("x{j}")) {
            Role::Infer => columns.push(j),
            Role::Skip => {}
            Role::Text | Role::Target => return Ok(None),
        }
    }
    if columns.is_empty() || rows == 0 {
        // The in-memory path says what is wrong.
        return Ok(None);
    }
    Ok(Some((
        MappedArray::new(inputs, bytes, numbers, (rows, width)),
        columns,
    )))
}

/// Checks every input value the features read: an infinity is an error, and so is a
/// missing value (NaN) under `--missing error`; under `drop`, returns the rows holding one.
fn check_inputs(
    array: &MappedArray,
    columns: &[usize],
    frame: &Frame,
    missing: Missing,
    progress: &dyn Fn(u64, u64),
) -> Result<Option<Vec<bool>>> {
    let mut dropped = (missing == Missing::Drop).then(|| vec![false; array.rows()]);
    let total = array.rows() as u64;
    let mut row = vec![0.0; columns.len()];
    for r in 0..array.rows() {
        if r % PROGRESS_ROWS == 0 {
            progress(r as u64, total);
        }
        array.read_row(r, columns, &mut row);
        for (&c, &v) in columns.iter().zip(&row) {
            if v.is_infinite() {
                return Err(Error::File {
                    path: array.path().into(),
                    message: format!(
                        "row {r}, column `x{c}`: the value is {v}; only finite numbers (or NaN for a missing value) can be trained on"
                    ),
                });
            }
            if v.is_nan() {
                match (&mut dropped, missing) {
                    (Some(dropped), _) => dropped[r] = true,
                    (None, Missing::Error) => {
                        return Err(frame.cell_error(
                            r,
                            c,
                            format!("the cell is empty; {MISSING_HINT}"),
                        ))
                    }
                    (None, _) => {}
                }
            }
        }
    }
    progress(total, total);
    Ok(dropped)
}

/// Checks that what this path holds fits: each record's row number and targets.
fn check_memory(frame: &Frame, records: usize, outputs: usize) -> Result<()> {
    let mut plan = MemoryPlan::new();
    plan.add(
        format!("{records} records' row numbers and {outputs} encoded targets"),
        &[records, outputs + 1],
        8,
    )?;
    plan.check("host memory", host_available()?.as_ref())
        .map_err(|e| frame.file_error(e.to_string()))
}

/// The training rows of the mapped inputs, each row's features in order.
struct TrainingRows<'a> {
    array: &'a MappedArray,
    rows: &'a [usize],
    columns: &'a [usize],
}

impl Rows for TrainingRows<'_> {
    fn width(&self) -> usize {
        self.columns.len()
    }

    fn for_each(&self, mut f: impl FnMut(&[f64])) {
        let mut row = vec![0.0; self.columns.len()];
        for &r in self.rows {
            self.array.read_row(r, self.columns, &mut row);
            f(&row);
        }
    }
}
