//! Records read where they lie: the rows of a numeric `.npy` in a memory map, each value
//! standardised as a batch gathers it. A data set larger than memory trains without a copy:
//! only the batch in hand (and the page cache, which the kernel reclaims) is ever resident.
//!
//! A gathered value is the one the in-memory encoder would have written: the file's number
//! widened to f64, standardised with the same statistics by the same function, rounded once
//! through the precision the encoder writes in, then converted to the backend's. The model is
//! therefore the one the in-memory path trains, bit for bit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Array2;

use crate::data::encode::standardize;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::guard::numeric::Precision;
use crate::io::npy::NumbersInPlace;
use crate::io::InputBytes;

/// A C-order array of numbers in a file, kept mapped.
pub struct MappedArray {
    path: PathBuf,
    bytes: InputBytes,
    numbers: NumbersInPlace,
    rows: usize,
    columns: usize,
}

impl std::fmt::Debug for MappedArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MappedArray({}, {} x {})",
            self.path.display(),
            self.rows,
            self.columns
        )
    }
}

impl MappedArray {
    /// The `rows` x `columns` numbers (C order) that `numbers` locates in `bytes`, read from
    /// `path`.
    pub fn new(
        path: &Path,
        bytes: InputBytes,
        numbers: NumbersInPlace,
        (rows, columns): (usize, usize),
    ) -> MappedArray {
        MappedArray {
            path: path.into(),
            bytes,
            numbers,
            rows,
            columns,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn columns(&self) -> usize {
        self.columns
    }

    /// The bytes of one row in the file.
    pub fn row_bytes(&self) -> usize {
        self.numbers.element_bytes() * self.columns
    }

    /// The numbers of row `row` at `columns` (ascending), widened to f64 (NaN for a missing
    /// value), into `out`.
    pub fn read_row(&self, row: usize, columns: &[usize], out: &mut [f64]) {
        self.numbers.read(
            &self.bytes,
            (row * self.columns, self.columns),
            columns,
            out,
        );
    }
}

/// The records of one part of a mapped array (training, validation or test): which rows of
/// the file, which of its columns are features, and each feature's mean and deviation.
#[derive(Debug)]
pub struct MappedRecords {
    array: Arc<MappedArray>,
    /// The file row of each record, in the part's order.
    rows: Vec<usize>,
    /// The file column of each feature.
    columns: Arc<[usize]>,
    /// Each feature's training mean and deviation.
    statistics: Arc<[(f64, f64)]>,
    /// The precision the encoder writes (what the in-memory table would hold).
    precision: Precision,
}

impl MappedRecords {
    pub fn new(
        array: Arc<MappedArray>,
        rows: Vec<usize>,
        columns: Arc<[usize]>,
        statistics: Arc<[(f64, f64)]>,
        precision: Precision,
    ) -> MappedRecords {
        MappedRecords {
            array,
            rows,
            columns,
            statistics,
            precision,
        }
    }

    /// The same features (array, columns, statistics, precision) of other rows.
    pub fn with_rows(&self, rows: Vec<usize>) -> MappedRecords {
        MappedRecords {
            rows,
            array: Arc::clone(&self.array),
            columns: Arc::clone(&self.columns),
            statistics: Arc::clone(&self.statistics),
            precision: self.precision,
        }
    }

    pub fn statistics(&self) -> &[(f64, f64)] {
        &self.statistics
    }

    /// The file column feature `feature` reads.
    pub fn column(&self, feature: usize) -> usize {
        self.columns[feature]
    }

    /// The number feature `feature` reads in row `row` of the file, as it is there.
    pub fn array_number(&self, row: usize, feature: usize) -> f64 {
        let mut value = [0.0];
        self.array
            .read_row(row, &self.columns[feature..=feature], &mut value);
        value[0]
    }

    pub fn n_records(&self) -> usize {
        self.rows.len()
    }

    pub fn n_features(&self) -> usize {
        self.columns.len()
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The features of record `record` as the encoder writes them, into `out`: standardised
    /// (a missing value, which only `--missing mean` lets through, is the mean: 0), rounded
    /// through the encoder's precision (infinite where it overflows it).
    pub fn read_record(&self, record: usize, out: &mut [f64]) {
        self.array.read_row(self.rows[record], &self.columns, out);
        for (v, &(mean, std)) in out.iter_mut().zip(self.statistics.iter()) {
            let z = if v.is_nan() {
                0.0
            } else {
                standardize(*v, mean, std)
            };
            *v = match self.precision {
                Precision::F32 => f64::from(z as f32),
                Precision::F64 => z,
            };
        }
    }

    /// Feature `feature` of record `record` (see [`MappedRecords::read_record`]).
    pub fn value(&self, record: usize, feature: usize) -> f64 {
        let mut row = vec![0.0; self.n_features()];
        self.read_record(record, &mut row);
        row[feature]
    }

    /// Records `records` (indices into this part, counted from `base` in messages), row-major
    /// in `T`. A value `T` (or the encoder's precision) cannot hold is an `Error::Value`
    /// naming `array` and its [record, feature].
    pub fn gather<T: Float>(
        &self,
        records: impl ExactSizeIterator<Item = usize>,
        array: &str,
        base: usize,
    ) -> Result<Array2<T>> {
        let (n, width) = (records.len(), self.n_features());
        let largest = Precision::of::<T>().largest().min(self.precision.largest());
        let mut out = Vec::with_capacity(n.saturating_mul(width));
        let mut row = vec![0.0; width];
        for record in records {
            self.read_record(record, &mut row);
            if let Some(feature) = row.iter().position(|v| v.is_nan() || v.abs() > largest) {
                return Err(Error::Value {
                    array: array.into(),
                    index: vec![record - base, feature],
                    message: format!(
                        "{:e} (standardised) is beyond {}'s range (±{largest:.3e}), which this backend computes in",
                        row[feature],
                        Precision::of::<T>().name()
                    ),
                });
            }
            out.extend(row.iter().map(|&v| T::from_f64(v).unwrap_or_else(T::nan)));
        }
        Array2::from_shape_vec((n, width), out).map_err(|e| Error::Shape(e.to_string()))
    }
}

/// Some consecutive records of a [`MappedRecords`]: what a [`super::Matrix`] borrows.
#[derive(Clone, Copy, Debug)]
pub struct MappedView<'a> {
    pub records: &'a Arc<MappedRecords>,
    pub range: (usize, usize),
}

impl<'a> MappedView<'a> {
    /// All records of `records`.
    pub fn all(records: &'a Arc<MappedRecords>) -> Self {
        MappedView {
            records,
            range: (0, records.n_records()),
        }
    }

    pub fn dim(&self) -> (usize, usize) {
        (self.range.1 - self.range.0, self.records.n_features())
    }

    /// Records `start..end` of this view.
    pub fn rows(&self, start: usize, end: usize) -> Self {
        MappedView {
            records: self.records,
            range: (self.range.0 + start, self.range.0 + end),
        }
    }

    /// Record `r`, feature `j` of this view.
    pub fn get(&self, r: usize, j: usize) -> f64 {
        self.records.value(self.range.0 + r, j)
    }

    /// Record `r` of this view.
    pub fn row(&self, r: usize) -> Vec<f64> {
        let mut row = vec![0.0; self.records.n_features()];
        self.records.read_record(self.range.0 + r, &mut row);
        row
    }

    /// Records `records` of this view, in `T`, in that order; an error names a record by its
    /// place in the view.
    pub fn select<T: Float>(&self, records: &[usize], array: &str) -> Result<Array2<T>> {
        let base = self.range.0;
        if let Some(&bad) = records.iter().find(|&&r| r >= self.dim().0) {
            return Err(Error::Shape(format!(
                "record {bad} of a view of {} records",
                self.dim().0
            )));
        }
        self.records
            .gather(records.iter().map(|&r| r + base), array, base)
    }

    /// Every record of this view, in `T`.
    pub fn to_precision<T: Float>(&self, array: &str) -> Result<Array2<T>> {
        let (start, end) = self.range;
        self.records.gather(start..end, array, start)
    }

    /// An owned handle on the same records.
    pub fn to_owned(&self) -> MappedSlice {
        MappedSlice {
            records: Arc::clone(self.records),
            range: self.range,
        }
    }
}

/// [`MappedView`] with the records shared rather than borrowed: what a backend keeps.
#[derive(Clone, Debug)]
pub struct MappedSlice {
    records: Arc<MappedRecords>,
    range: (usize, usize),
}

impl MappedSlice {
    pub fn view(&self) -> MappedView<'_> {
        MappedView {
            records: &self.records,
            range: self.range,
        }
    }
}
