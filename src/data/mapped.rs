//! Training from a mapped `.npy` of inputs (`--data X.npy --target y.npy`), which is never read
//! into memory: a data set larger than memory trains. The targets are read as usual (a frame
//! of their columns); the inputs are visited where they lie, row by row: once to check them
//! (infinities; missing values as `--missing` says; each column's range), three times more for
//! the training split's statistics (the in-memory encoder's sums, in its order: the same
//! figures), and once for the label-leak warnings. Each part of the split is then a
//! [`MappedRecords`], standardised as a backend gathers its batches. Every check the in-memory
//! path makes is made here, in its order, with its message.
//!
//! The file must not be rewritten while it trains: it is read again at every epoch (a shorter
//! file faults the reads, as with NumPy's `mmap_mode`).
//!
//! Arrays of numbers in C order whose columns are all plain numeric features (each holding a
//! number), under `--missing error`, `drop` or `mean`, take this path; the rest (booleans,
//! text, Fortran order, `--categorical` inputs, a column of NaN only, medians) are read into
//! memory by [`super::read`].

use std::path::Path;
use std::sync::Arc;

use super::encode::feature::beyond_precision;
use super::encode::{columns_mean_std, standardize, stats::Rows, Feature, MISSING_HINT};
use super::frame::{Cell, Frame, Role};
use super::read::arrays;
use super::schema::{indicator_warning, leak_warning, same};
use super::{split, Encoder, Missing, PipelineOptions, SeparateSets, SplitOptions, Splits};
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
    let scan = scan_inputs(&array, &columns, options.missing, progress)?;
    if scan.numbers.contains(&0) {
        // A column without a number is a category (of empty cells) to the in-memory path.
        return Ok(None);
    }
    let array = Arc::new(array);
    let frame = targets_frame((inputs, targets), array.columns(), options)?;
    let mut schema = super::Schema::detect_with(&frame, options, true)?;
    let usable = usable_rows(
        std::mem::take(&mut schema.usable_rows),
        &scan,
        &frame,
        options.missing,
    )?;
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
    let training = TrainingRows {
        array: &array,
        rows: &parts.train,
        columns: &columns,
    };
    let statistics =
        columns_mean_std(&names, &training).map_err(|e| frame.file_error(e.to_string()))?;
    let features = MappedRecords::new(
        Arc::clone(&array),
        Vec::new(),
        columns.as_slice().into(),
        statistics.into(),
        options.precision,
    );
    check_range(&features, &scan, &frame, &parts)?;
    let warnings = label_leaks(&training, &frame, &schema, &names);
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
        .zip(features.statistics())
        .map(|(name, &(mean, std))| Feature::Numeric {
            column: name.clone(),
            mean,
            std,
            fill: None,
        })
        .collect();
    let sets = sets
        .into_iter()
        .zip([parts.validation, parts.test, parts.train])
        .map(|(mut set, rows)| {
            set.x = Values::Mapped(Arc::new(features.with_rows(rows)));
            set
        })
        .collect();
    let splits = super::assemble(&encoder, options, separate, sets, dropped, warnings)?;
    Ok(Some((encoder, splits)))
}

/// The targets' frame: the inputs' `width` columns are named (for messages) but not read.
fn targets_frame(
    (inputs, targets): (&Path, &Path),
    width: usize,
    options: &PipelineOptions,
) -> Result<Frame> {
    let mut plan = options.read_plan();
    for j in 0..width {
        plan.roles.insert(format!("x{j}"), Role::Skip);
    }
    arrays::read_npy(inputs, Some(targets), &plan)
}

/// The records whose targets are filled (`usable`) that `--missing` keeps: a missing input is
/// an error under `error`, its record left out under `drop`.
fn usable_rows(
    mut usable: Vec<usize>,
    scan: &Scan,
    frame: &Frame,
    missing: Missing,
) -> Result<Vec<usize>> {
    match (missing, scan.first_missing) {
        (Missing::Error, Some((r, c))) => {
            Err(frame.cell_error(r, c, format!("the cell is empty; {MISSING_HINT}")))
        }
        (Missing::Drop, Some(_)) => {
            usable.retain(|&r| !scan.missing_rows[r]);
            if usable.is_empty() {
                return Err(frame.file_error(
                    "every record has an empty cell, and --missing drop left them all out".into(),
                ));
            }
            Ok(usable)
        }
        _ => Ok(usable),
    }
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
    if rows == 0 || width == 0 {
        // The in-memory path says what is wrong.
        return Ok(None);
    }
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
    if columns.is_empty() {
        return Ok(None);
    }
    Ok(Some((
        MappedArray::new(inputs, bytes, numbers, (rows, width)),
        columns,
    )))
}

/// What the first pass over the inputs found.
struct Scan {
    /// The first missing value (NaN), by row then column.
    first_missing: Option<(usize, usize)>,
    /// Under `--missing drop`, whether each row holds one (empty otherwise).
    missing_rows: Vec<bool>,
    /// Each feature's count of numbers, smallest and largest.
    numbers: Vec<usize>,
    range: Vec<(f64, f64)>,
}

/// Reads every input value the features read: an infinity is an error (the first, by row
/// then column, as the in-memory reader finds it); missing values and each feature's range
/// are noted.
fn scan_inputs(
    array: &MappedArray,
    columns: &[usize],
    missing: Missing,
    progress: &dyn Fn(u64, u64),
) -> Result<Scan> {
    let mut scan = Scan {
        first_missing: None,
        missing_rows: vec![
            false;
            if missing == Missing::Drop {
                array.rows()
            } else {
                0
            }
        ],
        numbers: vec![0; columns.len()],
        range: vec![(f64::INFINITY, f64::NEG_INFINITY); columns.len()],
    };
    let (rows, row_bytes) = (array.rows() as u64, array.row_bytes() as u64);
    let mut row = vec![0.0; columns.len()];
    for r in 0..array.rows() {
        if r % PROGRESS_ROWS == 0 {
            progress(r as u64 * row_bytes, rows * row_bytes);
        }
        array.read_row(r, columns, &mut row);
        for (j, &v) in row.iter().enumerate() {
            if v.is_nan() {
                scan.first_missing.get_or_insert((r, columns[j]));
                if let Some(flag) = scan.missing_rows.get_mut(r) {
                    *flag = true;
                }
            } else if v.is_infinite() {
                return Err(Error::File {
                    path: array.path().into(),
                    message: format!(
                        "row {r}, column `x{}`: the value is {v}; only finite numbers (or NaN for a missing value) can be trained on",
                        columns[j]
                    ),
                });
            } else {
                scan.numbers[j] += 1;
                let (low, high) = &mut scan.range[j];
                *low = low.min(v);
                *high = high.max(v);
            }
        }
    }
    progress(rows * row_bytes, rows * row_bytes);
    Ok(scan)
}

/// Fails, as the in-memory encoder does, on the first record whose standardised feature the
/// encoder's precision cannot hold: by feature, then part (validation, test, training), then
/// record. Each feature's range decides whether its records need looking at.
fn check_range(
    features: &MappedRecords,
    scan: &Scan,
    frame: &Frame,
    parts: &split::Split,
) -> Result<()> {
    let precision = features.precision();
    for (j, &(low, high)) in scan.range.iter().enumerate() {
        let (mean, std) = features.statistics()[j];
        let fits = |v: f64| precision.holds(standardize(v, mean, std));
        if fits(low) && fits(high) {
            continue;
        }
        for rows in [&parts.validation, &parts.test, &parts.train] {
            for &r in rows.iter() {
                let v = features.array_number(r, j);
                if !v.is_nan() && !fits(v) {
                    let name = format!("x{}", features.column(j));
                    return Err(beyond_precision(
                        frame,
                        r,
                        &name,
                        standardize(v, mean, std),
                        precision,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The in-memory path's label-leak warnings ([`super::Schema::label_leaks`]), in one pass over
/// the training rows: a feature equal to a target in every training record, or (for classes)
/// 1 exactly where the target is one class.
fn label_leaks(
    training: &TrainingRows,
    frame: &Frame,
    schema: &super::Schema,
    names: &[String],
) -> Vec<String> {
    if training.rows.is_empty() {
        return Vec::new();
    }
    let targets = &schema.targets;
    let width = names.len();
    let mut equal = vec![true; width * targets.len()];
    // Per feature, for a class target: still an indicator, the class its 1s mark, and the
    // labels its 0s saw (classes are few).
    let class_target = schema.class_target.then(|| targets[0]);
    let mut indicator = vec![class_target.is_some(); width];
    let mut class: Vec<Option<String>> = vec![None; width];
    let mut zeros: Vec<std::collections::HashSet<String>> = vec![Default::default(); width];
    let cell = |v: f64| {
        if v.is_nan() {
            Cell::Empty
        } else {
            Cell::Number(v)
        }
    };
    let mut k = 0;
    training.for_each(|row| {
        let r = training.rows[k];
        k += 1;
        for (j, &v) in row.iter().enumerate() {
            for (i, &t) in targets.iter().enumerate() {
                let e = &mut equal[j * targets.len() + i];
                *e = *e && same(cell(v), frame.cell(r, t));
            }
            if let (Some(t), true) = (class_target, indicator[j]) {
                let label = frame.cell(r, t).to_text();
                indicator[j] = if v == 1.0 {
                    *class[j].get_or_insert_with(|| label.clone()) == label
                } else if v == 0.0 {
                    zeros[j].insert(label);
                    true
                } else {
                    false
                };
            }
        }
    });
    let mut warnings = Vec::new();
    for (j, feature) in names.iter().enumerate() {
        for (i, &t) in targets.iter().enumerate() {
            let target = &frame.names[t];
            if equal[j * targets.len() + i] {
                warnings.push(leak_warning(feature, target));
            } else if let (true, Some(class)) = (indicator[j], &class[j]) {
                if !zeros[j].contains(class) {
                    warnings.push(indicator_warning(feature, target, class));
                }
            }
        }
    }
    warnings
}

/// Checks that what this path holds fits: each record's row number, its encoded targets
/// and the backend's f32 copy of them.
fn check_memory(frame: &Frame, records: usize, outputs: usize) -> Result<()> {
    let mut plan = MemoryPlan::new();
    plan.add(format!("{records} records' row numbers"), &[records], 8)?;
    plan.add(
        format!("{records} records x {outputs} encoded targets"),
        &[records, outputs],
        8 + 4,
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
