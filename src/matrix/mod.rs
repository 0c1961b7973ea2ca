//! Records as they cross into a backend: a matrix of f32 or f64 values, whichever the caller
//! holds (a NumPy array, an encoded CSV), converted once to the precision the backend computes
//! in, with every value checked on the way; or records read where they lie in a mapped file
//! ([`mapped`]), standardised as they are gathered.

pub mod mapped;

use std::sync::Arc;

use ndarray::{s, Array2, ArrayView2, Axis, CowArray, Ix2};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::guard::numeric::Precision;

pub use mapped::{MappedArray, MappedRecords, MappedSlice, MappedView};

/// A view of records x values in either float type, or of mapped records.
#[derive(Clone, Copy, Debug)]
pub enum Matrix<'a> {
    F32(ArrayView2<'a, f32>),
    F64(ArrayView2<'a, f64>),
    Mapped(MappedView<'a>),
}

impl<'a> From<ArrayView2<'a, f32>> for Matrix<'a> {
    fn from(view: ArrayView2<'a, f32>) -> Self {
        Matrix::F32(view)
    }
}

impl<'a> From<ArrayView2<'a, f64>> for Matrix<'a> {
    fn from(view: ArrayView2<'a, f64>) -> Self {
        Matrix::F64(view)
    }
}

impl<'a> From<&'a Array2<f32>> for Matrix<'a> {
    fn from(array: &'a Array2<f32>) -> Self {
        Matrix::F32(array.view())
    }
}

impl<'a> From<&'a Array2<f64>> for Matrix<'a> {
    fn from(array: &'a Array2<f64>) -> Self {
        Matrix::F64(array.view())
    }
}

/// Records x values owned, in either float type: encoded data in the precision it trains in;
/// or records of a mapped file, read when used.
#[derive(Clone, Debug)]
pub enum Values {
    F32(Array2<f32>),
    F64(Array2<f64>),
    Mapped(Arc<MappedRecords>),
}

impl<'a> From<&'a Values> for Matrix<'a> {
    fn from(values: &'a Values) -> Self {
        values.view()
    }
}

impl Values {
    /// `rows` x `cols` zeros in `precision`, column by column in memory (an encoder writes a
    /// feature at a time; backends load them row-major).
    pub fn zeros_column_major(precision: Precision, rows: usize, cols: usize) -> Values {
        use ndarray::ShapeBuilder;
        match precision {
            Precision::F32 => Values::F32(Array2::zeros((rows, cols).f())),
            Precision::F64 => Values::F64(Array2::zeros((rows, cols).f())),
        }
    }

    /// `rows` x `cols` zeros in `precision`.
    pub fn zeros(precision: Precision, rows: usize, cols: usize) -> Values {
        match precision {
            Precision::F32 => Values::F32(Array2::zeros((rows, cols))),
            Precision::F64 => Values::F64(Array2::zeros((rows, cols))),
        }
    }

    pub fn view(&self) -> Matrix<'_> {
        match self {
            Values::F32(a) => Matrix::F32(a.view()),
            Values::F64(a) => Matrix::F64(a.view()),
            Values::Mapped(m) => Matrix::Mapped(MappedView::all(m)),
        }
    }

    pub fn nrows(&self) -> usize {
        self.view().nrows()
    }

    pub fn ncols(&self) -> usize {
        self.view().ncols()
    }

    pub fn precision(&self) -> Precision {
        self.view().precision()
    }

    /// Every value, row by row, widened to f64.
    pub fn iter_f64(&self) -> Box<dyn Iterator<Item = f64> + '_> {
        match self {
            Values::F32(a) => Box::new(a.iter().map(|&v| f64::from(v))),
            Values::F64(a) => Box::new(a.iter().copied()),
            Values::Mapped(m) => Box::new((0..m.n_records()).flat_map(move |r| {
                let mut row = vec![0.0; m.n_features()];
                m.read_record(r, &mut row);
                row
            })),
        }
    }

    /// The values widened to f64 (exact from f32; mapped records read and standardised).
    pub fn to_f64(&self) -> Array2<f64> {
        match self {
            Values::F32(a) => a.mapv(f64::from),
            Values::F64(a) => a.clone(),
            Values::Mapped(m) => {
                let mut out = Array2::zeros((m.n_records(), m.n_features()));
                let mut row = vec![0.0; m.n_features()];
                for (r, mut values) in out.rows_mut().into_iter().enumerate() {
                    m.read_record(r, &mut row);
                    values.assign(&ndarray::ArrayView1::from(&row));
                }
                out
            }
        }
    }

    /// Record `r`'s values, widened to f64.
    pub fn row(&self, r: usize) -> Vec<f64> {
        self.view().row(r)
    }
}

impl<'a> Matrix<'a> {
    pub fn dim(&self) -> (usize, usize) {
        match self {
            Matrix::F32(v) => v.dim(),
            Matrix::F64(v) => v.dim(),
            Matrix::Mapped(v) => v.dim(),
        }
    }

    pub fn nrows(&self) -> usize {
        self.dim().0
    }

    pub fn ncols(&self) -> usize {
        self.dim().1
    }

    /// The element type the caller holds.
    pub fn precision(&self) -> Precision {
        match self {
            Matrix::F32(_) => Precision::F32,
            Matrix::F64(_) => Precision::F64,
            Matrix::Mapped(v) => v.records.precision(),
        }
    }

    /// The same view with a shorter lifetime (ndarray's views are invariant in theirs).
    pub fn reborrow<'b>(self) -> Matrix<'b>
    where
        'a: 'b,
    {
        match self {
            Matrix::F32(v) => Matrix::F32(v.reborrow()),
            Matrix::F64(v) => Matrix::F64(v.reborrow()),
            Matrix::Mapped(v) => Matrix::Mapped(v),
        }
    }

    /// Rows `start..end`.
    pub fn rows(&self, start: usize, end: usize) -> Matrix<'a> {
        match *self {
            Matrix::F32(v) => Matrix::F32(v.slice_move(s![start..end, ..])),
            Matrix::F64(v) => Matrix::F64(v.slice_move(s![start..end, ..])),
            Matrix::Mapped(v) => Matrix::Mapped(v.rows(start, end)),
        }
    }

    /// Record `r`'s values, widened to f64 (a mapped record read once).
    pub fn row(&self, r: usize) -> Vec<f64> {
        match self {
            Matrix::F32(v) => v.row(r).iter().map(|&x| f64::from(x)).collect(),
            Matrix::F64(v) => v.row(r).to_vec(),
            Matrix::Mapped(v) => v.row(r),
        }
    }

    /// Record `r`, value `j`, widened to f64 (for a mapped record, this reads the record:
    /// use [`Matrix::row`] for more than one of its values).
    pub fn get(&self, r: usize, j: usize) -> f64 {
        match self {
            Matrix::F32(v) => f64::from(v[[r, j]]),
            Matrix::F64(v) => v[[r, j]],
            Matrix::Mapped(v) => v.get(r, j),
        }
    }

    /// Records `rows`, in that order, in the caller's element type (mapped records in the
    /// precision they were encoded for).
    pub fn select(&self, rows: &[usize]) -> Result<Values> {
        Ok(match self {
            Matrix::F32(v) => Values::F32(v.select(Axis(0), rows)),
            Matrix::F64(v) => Values::F64(v.select(Axis(0), rows)),
            Matrix::Mapped(v) => match v.records.precision() {
                Precision::F32 => Values::F32(v.select(rows, "input")?),
                Precision::F64 => Values::F64(v.select(rows, "input")?),
            },
        })
    }

    /// The values in `T`, row-major, in one pass that also checks each: NaN, infinity, or a
    /// value beyond `T`'s range is an error naming `array` and the value's [row, column].
    pub fn to_precision<T: Float>(&self, array: &str) -> Result<Array2<T>> {
        match self {
            Matrix::F32(v) => convert(*v, array),
            Matrix::F64(v) => convert(*v, array),
            Matrix::Mapped(v) => v.to_precision(array),
        }
    }
}

/// Records a backend keeps on the host in its precision `T`: converted once, or, for mapped
/// records, a handle that gathers them as they are used.
#[derive(Debug)]
pub enum HostRecords<T> {
    Owned(Array2<T>),
    Mapped(MappedSlice),
}

impl<T: Float> HostRecords<T> {
    /// Keeps `x`: values are converted (and checked, naming `array`), mapped records shared.
    pub fn load(x: Matrix<'_>, array: &str) -> Result<Self> {
        Ok(match x {
            Matrix::Mapped(v) => HostRecords::Mapped(v.to_owned()),
            other => HostRecords::Owned(other.to_precision(array)?),
        })
    }

    pub fn nrows(&self) -> usize {
        match self {
            HostRecords::Owned(a) => a.nrows(),
            HostRecords::Mapped(m) => m.view().dim().0,
        }
    }

    /// Records `records`, in that order.
    pub fn select(&self, records: &[usize]) -> Result<Array2<T>> {
        match self {
            HostRecords::Owned(a) => Ok(a.select(Axis(0), records)),
            HostRecords::Mapped(m) => m.view().select(records, "input"),
        }
    }

    /// Records `start..end`: borrowed where they are held, gathered where they are mapped.
    pub fn rows(&self, start: usize, end: usize) -> Result<CowArray<'_, T, Ix2>> {
        match self {
            HostRecords::Owned(a) => Ok(a.slice(s![start..end, ..]).into()),
            HostRecords::Mapped(m) => {
                let rows = m.view().rows(start, end);
                rows.to_precision("input")
                    .map(CowArray::from)
                    .map_err(|e| e.with_record(|r| r + start))
            }
        }
    }
}

/// `values` in `T`, each checked for `T`'s range on the way.
fn convert<S: Float, T: Float>(values: ArrayView2<S>, array: &str) -> Result<Array2<T>> {
    let precision = Precision::of::<T>();
    let largest = precision.largest();
    let mut out = Vec::with_capacity(values.len());
    let mut push = |v: S| -> bool {
        let wide = v.to_f64().unwrap_or(f64::NAN);
        if !wide.is_finite() || wide.abs() > largest {
            return false;
        }
        out.push(T::from_f64(wide).unwrap_or_else(T::nan));
        true
    };
    let all_good = match values.as_slice() {
        Some(row_major) => row_major.iter().all(|&v| push(v)),
        None => values.iter().all(|&v| push(v)),
    };
    if !all_good {
        // The slow path runs once, to say where.
        crate::guard::numeric::check_representable(array, values, precision)?;
    }
    Array2::from_shape_vec(values.dim(), out).map_err(|e| Error::Shape(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn conversion_keeps_values_and_names_the_first_bad_one() {
        let x = array![[1.5f64, -2.0], [3.25, 4.0]];
        let f = Matrix::from(&x).to_precision::<f32>("input").unwrap();
        assert_eq!(f, array![[1.5f32, -2.0], [3.25, 4.0]]);
        // Fortran order comes out row-major.
        let t = x.t();
        let back = Matrix::F64(t).to_precision::<f64>("input").unwrap();
        assert_eq!(back, array![[1.5, 3.25], [-2.0, 4.0]]);
        let bad = array![[1.0f64, 2.0], [1e300, f64::NAN]];
        let err = Matrix::from(&bad)
            .to_precision::<f32>("input")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`input` at index [1, 0]") && err.contains("float32"),
            "{err}"
        );
        let err = Matrix::from(&bad)
            .to_precision::<f64>("input")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[1, 1]") && err.contains("NaN"), "{err}");
        let inf = array![[f32::INFINITY]];
        let err = Matrix::from(&inf)
            .to_precision::<f64>("input")
            .unwrap_err()
            .to_string();
        assert!(err.contains("inf"), "{err}");
    }

    #[test]
    fn a_slice_of_rows_keeps_its_order() {
        let x = array![[0.0f32], [1.0], [2.0], [3.0]];
        let m = Matrix::from(&x);
        assert_eq!(
            m.rows(1, 3).to_precision::<f64>("x").unwrap(),
            array![[1.0], [2.0]]
        );
    }
}
