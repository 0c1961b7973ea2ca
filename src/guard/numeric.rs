//! The numeric guard. On the way in, every value a backend is given must be finite and fit the
//! precision it computes in (1e300 is a perfectly good f64 but infinity in fp32, and an infinity
//! turns every sum it meets into NaN). On the way out, every result must be finite: the first
//! non-finite value is an error that says which tensor and which index, never a NaN printed or
//! written with exit 0.

use ndarray::{ArrayView, Dimension, IntoDimension};

use crate::error::{Error, Result};
use crate::model::{weight_names, Float, Network};

/// The precision a backend computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F64,
}

impl Precision {
    /// The precision of the element type `T`.
    pub fn of<T: Float>() -> Self {
        if std::mem::size_of::<T>() == 4 {
            Precision::F32
        } else {
            Precision::F64
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "float32",
            Precision::F64 => "float64",
        }
    }

    /// The largest finite magnitude.
    pub fn largest(self) -> f64 {
        match self {
            Precision::F32 => f64::from(f32::MAX),
            Precision::F64 => f64::MAX,
        }
    }

    /// Whether `v`, rounded to this precision, is finite.
    pub fn holds(self, v: f64) -> bool {
        match self {
            Precision::F32 => (v as f32).is_finite(),
            Precision::F64 => v.is_finite(),
        }
    }
}

/// Checks a flag's value (a learning rate) against the precision it will be computed in.
pub fn check_flag_value(flag: &str, value: f64, precision: Precision) -> Result<()> {
    if value.abs() > precision.largest() {
        return Err(Error::argument(
            flag,
            format!(
                "{value:e} is beyond {}'s range (±{:.3e}), which this backend computes in",
                precision.name(),
                precision.largest()
            ),
        ));
    }
    Ok(())
}

/// Fails at the first value of `values` that is NaN, infinite, or beyond `precision`'s range,
/// naming `array` and the value's index.
pub fn check_representable<T: Float, D: Dimension>(
    array: &str,
    values: ArrayView<T, D>,
    precision: Precision,
) -> Result<()> {
    let largest = precision.largest();
    let bad = values
        .indexed_iter()
        .map(|(index, v)| (index, v.to_f64().unwrap_or(f64::NAN)))
        .find(|(_, v)| !v.is_finite() || v.abs() > largest);
    match bad {
        None => Ok(()),
        Some((index, v)) => Err(Error::Value {
            array: array.into(),
            index: coordinates::<D>(index),
            message: if v.is_finite() {
                format!(
                    "{v:e} is beyond {}'s range (±{largest:.3e}), which this backend computes in",
                    precision.name()
                )
            } else {
                format!("{v} is not a number this backend can compute with")
            },
        }),
    }
}

/// Checks every weight matrix of `network` (read from a user's file) against `precision`.
pub fn check_network(network: &Network<f64>, precision: Precision) -> Result<()> {
    let names = weight_names(network.weights().len());
    names
        .iter()
        .zip(network.weights())
        .try_for_each(|(name, w)| check_representable(name, w.view(), precision))
}

/// The index and value of the first NaN or infinity in `values`.
pub fn first_non_finite<T: Float, D: Dimension>(
    values: ArrayView<T, D>,
) -> Option<(Vec<usize>, T)> {
    values
        .indexed_iter()
        .find(|(_, v)| !v.is_finite())
        .map(|(index, &v)| (coordinates::<D>(index), v))
}

/// Fails at the first non-finite value of the computed `tensor`, saying where (`context`, e.g.
/// "the test set's predictions") and at which index.
pub fn check_finite_result<T: Float, D: Dimension>(
    tensor: &str,
    context: &str,
    values: ArrayView<T, D>,
) -> Result<()> {
    match first_non_finite(values) {
        None => Ok(()),
        Some((index, v)) => Err(Error::NonFinite(format!(
            "{tensor}{index:?} is {v} in {context}"
        ))),
    }
}

/// An ndarray index pattern as a plain list of coordinates.
fn coordinates<D: Dimension>(index: D::Pattern) -> Vec<usize> {
    index.into_dimension().slice().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, ArrayD, IxDyn};

    #[test]
    fn values_beyond_fp32_are_refused_with_their_index() {
        let x = array![[1.0, 2.0], [1e300, 3.0]];
        let err = check_representable("input", x.view(), Precision::F32)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`input` at index [1, 0]"), "{err}");
        assert!(err.contains("1e300") && err.contains("float32"), "{err}");
        assert!(check_representable("input", x.view(), Precision::F64).is_ok());
        let y = ArrayD::from_elem(IxDyn(&[2, 1, 2]), f64::NAN);
        let err = check_representable("t", y.view(), Precision::F64)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[0, 0, 0]") && err.contains("NaN"), "{err}");
    }

    #[test]
    fn the_first_non_finite_result_is_named() {
        let y = array![[0.5f32, 1.0], [f32::INFINITY, f32::NAN]];
        assert_eq!(
            first_non_finite(y.view()),
            Some((vec![1, 0], f32::INFINITY))
        );
        let err = check_finite_result("output_layer_out", "the test set", y.view())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("output_layer_out[1, 0] is inf in the test set"),
            "{err}"
        );
        assert!(check_finite_result("y", "x", y.slice(ndarray::s![0..1, ..])).is_ok());
    }
}
