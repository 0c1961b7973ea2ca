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

/// What the passes of [`mean_std`] and [`columns_mean_std`] add up for one column: one
/// arithmetic, whether a column is visited alone or row by row among others.
#[derive(Clone, Copy)]
struct Moments {
    /// The largest magnitude: values are scaled by it, so nothing overflows.
    scale: f64,
    count: usize,
    /// `Iterator::sum` starts from −0.0: so do these sums.
    sum: f64,
    squares: f64,
}

impl Moments {
    const NEW: Moments = Moments {
        scale: 0.0,
        count: 0,
        sum: -0.0,
        squares: -0.0,
    };

    /// The first pass; a missing value (NaN) is left out of every pass.
    fn see(&mut self, v: f64) {
        if !v.is_nan() {
            self.scale = self.scale.max(v.abs());
            self.count += 1;
        }
    }

    /// The second pass.
    fn add(&mut self, v: f64) {
        if !v.is_nan() {
            self.sum += v / self.scale;
        }
    }

    fn scaled_mean(&self) -> f64 {
        self.sum / self.count as f64
    }

    /// The third pass, with the second's `scaled_mean`.
    fn add_square(&mut self, v: f64, scaled_mean: f64) {
        if !v.is_nan() {
            self.squares += (v / self.scale - scaled_mean).powi(2);
        }
    }

    fn finish(&self, column: &str) -> Result<(f64, f64)> {
        if self.count == 0 || self.scale == 0.0 {
            return Ok((0.0, 1.0));
        }
        let variance = self.squares / self.count as f64;
        let (mean, std) = (
            self.scaled_mean() * self.scale,
            variance.sqrt() * self.scale,
        );
        if !(mean.is_finite() && std.is_finite()) {
            return Err(Error::Value {
                array: column.into(),
                index: Vec::new(),
                message: format!(
                    "its mean ({mean:e}) or standard deviation ({std:e}) is beyond float64's range"
                ),
            });
        }
        // A spread below a few units in the last place of the mean is rounding, not
        // information.
        let std = if std > mean.abs() * 4.0 * f64::EPSILON {
            std
        } else {
            1.0
        };
        Ok((mean, std))
    }
}

/// The mean and standard deviation of `values` (NaN: missing, left out), computed in passes
/// over values scaled by their largest magnitude: no cancellation (`Σx²/n − mean²` loses every
/// digit of `1e9 + noise`) and no overflow (`1e300²`). A column with a single value has std 1,
/// which keeps it at 0 instead of dividing by 0; so has an empty one. `column` names the
/// column in the error when the statistics are still not finite.
pub(crate) fn mean_std(column: &str, values: &[f64]) -> Result<(f64, f64)> {
    let mut moments = Moments::NEW;
    values.iter().for_each(|&v| moments.see(v));
    values.iter().for_each(|&v| moments.add(v));
    let scaled_mean = moments.scaled_mean();
    values
        .iter()
        .for_each(|&v| moments.add_square(v, scaled_mean));
    moments.finish(column)
}

/// Rows of values that [`columns_mean_std`] visits, in the same order each time it asks.
pub(crate) trait Rows {
    /// Values per row.
    fn width(&self) -> usize;
    /// Calls `f` with each row's values, in order (NaN: a missing value).
    fn for_each(&self, f: impl FnMut(&[f64]));
}

/// [`mean_std`] of each column of `rows` (named by `columns`), visited row by row: each
/// column's sums run over its rows in order, so a column gets the same figures as alone.
pub(crate) fn columns_mean_std<R: Rows>(columns: &[String], rows: &R) -> Result<Vec<(f64, f64)>> {
    let mut moments = vec![Moments::NEW; rows.width()];
    rows.for_each(|row| moments.iter_mut().zip(row).for_each(|(m, &v)| m.see(v)));
    rows.for_each(|row| moments.iter_mut().zip(row).for_each(|(m, &v)| m.add(v)));
    let scaled_means: Vec<f64> = moments.iter().map(Moments::scaled_mean).collect();
    rows.for_each(|row| {
        for ((m, &v), &mean) in moments.iter_mut().zip(row).zip(&scaled_means) {
            m.add_square(v, mean);
        }
    });
    moments
        .iter()
        .zip(columns)
        .map(|(m, name)| m.finish(name))
        .collect()
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

    /// Rows of a small table, for [`columns_mean_std`].
    struct Table(Vec<[f64; 3]>);

    impl Rows for Table {
        fn width(&self) -> usize {
            3
        }

        fn for_each(&self, mut f: impl FnMut(&[f64])) {
            self.0.iter().for_each(|row| f(row));
        }
    }

    #[test]
    fn columns_together_get_the_figures_each_gets_alone_missing_values_left_out() {
        let table = Table(
            (0..97)
                .map(|i| {
                    let i = f64::from(i);
                    [
                        1e9 + i / 7.0,
                        if i as u32 % 5 == 0 {
                            f64::NAN
                        } else {
                            -i * 0.3
                        },
                        f64::NAN,
                    ]
                })
                .collect(),
        );
        let names = ["a".to_string(), "b".into(), "c".into()];
        let together = columns_mean_std(&names, &table).unwrap();
        for (j, name) in names.iter().enumerate() {
            let alone: Vec<f64> = table
                .0
                .iter()
                .map(|row| row[j])
                .filter(|v| !v.is_nan())
                .collect();
            let (mean, std) = mean_std(name, &alone).unwrap();
            assert_eq!(together[j].0.to_bits(), mean.to_bits(), "{name}");
            assert_eq!(together[j].1.to_bits(), std.to_bits(), "{name}");
        }
        // A column of missing values only is left as it is.
        assert_eq!(together[2], (0.0, 1.0));
    }
}
