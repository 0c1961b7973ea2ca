//! Records as they cross into a backend: a matrix of f32 or f64 values, whichever the caller
//! holds (a NumPy array, an encoded CSV), converted once to the precision the backend computes
//! in, with every value checked on the way.

use ndarray::{s, Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::guard::numeric::Precision;

/// A view of records x values in either float type.
#[derive(Clone, Copy, Debug)]
pub enum Matrix<'a> {
    F32(ArrayView2<'a, f32>),
    F64(ArrayView2<'a, f64>),
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

/// Records x values owned, in either float type: encoded data in the precision it trains in.
#[derive(Clone, Debug)]
pub enum Values {
    F32(Array2<f32>),
    F64(Array2<f64>),
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
        }
    }

    /// The values widened to f64 (exact from f32).
    pub fn to_f64(&self) -> Array2<f64> {
        match self {
            Values::F32(a) => a.mapv(f64::from),
            Values::F64(a) => a.clone(),
        }
    }
}

impl<'a> Matrix<'a> {
    pub fn dim(&self) -> (usize, usize) {
        match self {
            Matrix::F32(v) => v.dim(),
            Matrix::F64(v) => v.dim(),
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
        }
    }

    /// Rows `start..end`.
    pub fn rows(&self, start: usize, end: usize) -> Matrix<'a> {
        match *self {
            Matrix::F32(v) => Matrix::F32(v.slice_move(s![start..end, ..])),
            Matrix::F64(v) => Matrix::F64(v.slice_move(s![start..end, ..])),
        }
    }

    /// The values in `T`, row-major, in one pass that also checks each: NaN, infinity, or a
    /// value beyond `T`'s range is an error naming `array` and the value's [row, column].
    pub fn to_precision<T: Float>(&self, array: &str) -> Result<Array2<T>> {
        match self {
            Matrix::F32(v) => convert(*v, array),
            Matrix::F64(v) => convert(*v, array),
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
