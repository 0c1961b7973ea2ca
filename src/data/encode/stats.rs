//! Statistics of training columns: mean and spread without cancellation or overflow, the
//! median, and standardising with them.

use crate::error::{Error, Result};

/// `(v - mean) / std`, or `v / std - mean / std` where the difference overflows (values near
/// f64's range on both sides of the mean): finite whenever the result is.
pub(crate) fn standardize(v: f64, mean: f64, std: f64) -> f64 {
    let z = (v - mean) / std;
    if z.is_finite() {
        z
    } else {
        v / std - mean / std
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(sorted[n / 2 - 1] / 2.0 + sorted[n / 2] / 2.0),
    }
}

/// The mean and standard deviation of `values`, computed in two passes over values scaled by
/// their largest magnitude: no cancellation (`Σx²/n − mean²` loses every digit of
/// `1e9 + noise`) and no overflow (`1e300²`). A column with a single value has std 1, which
/// keeps it at 0 instead of dividing by 0. `column` names the column in the error when the
/// statistics are still not finite.
pub(crate) fn mean_std(column: &str, values: &[f64]) -> Result<(f64, f64)> {
    if values.is_empty() {
        return Ok((0.0, 1.0));
    }
    let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 {
        return Ok((0.0, 1.0));
    }
    let n = values.len() as f64;
    let scaled_mean = values.iter().map(|v| v / scale).sum::<f64>() / n;
    let scaled_var = values
        .iter()
        .map(|v| (v / scale - scaled_mean).powi(2))
        .sum::<f64>()
        / n;
    let mean = scaled_mean * scale;
    let std = scaled_var.sqrt() * scale;
    if !(mean.is_finite() && std.is_finite()) {
        return Err(Error::Value {
            array: column.into(),
            index: Vec::new(),
            message: format!(
                "its mean ({mean:e}) or standard deviation ({std:e}) is beyond float64's range"
            ),
        });
    }
    // A spread below a few units in the last place of the mean is rounding, not information.
    let std = if std > mean.abs() * 4.0 * f64::EPSILON {
        std
    } else {
        1.0
    };
    Ok((mean, std))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardisation_keeps_its_digits_on_a_large_offset_and_its_range_on_huge_values() {
        // 1e9 + i/1000: Σx²/n − mean² cancels 18 digits here and is off by ~200 in the
        // variance; the exact figures are mean 1e9 + 0.4995, std 0.001·√((n² − 1)/12).
        let n = 1000;
        let values: Vec<f64> = (0..n).map(|i| 1e9 + f64::from(i) / 1000.0).collect();
        let (mean, std) = mean_std("c", &values).unwrap();
        let exact_std = 0.001 * ((f64::from(n).powi(2) - 1.0) / 12.0).sqrt();
        assert!((mean - (1e9 + 0.4995)).abs() < 1e-6, "{mean}");
        assert!((std / exact_std - 1.0).abs() < 1e-6, "{std} vs {exact_std}");
        // Values whose squares overflow f64 still have a mean and a spread.
        let (mean, std) = mean_std("c", &[1e300, -1e300, 3e300]).unwrap();
        assert!((mean / 1e300 - 1.0).abs() < 1e-12 && std.is_finite() && std > 1e300);
        // A constant column has std 1 (it stays 0 after standardising), an empty one too.
        assert_eq!(mean_std("c", &[5.0; 3]).unwrap(), (5.0, 1.0));
        assert_eq!(mean_std("c", &[]).unwrap(), (0.0, 1.0));
    }
}
