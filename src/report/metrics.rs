//! Error figures that stay finite: a root mean square computed in two passes over values
//! scaled by the largest, so that errors near f64's range (a target of 1e300) or below it (a
//! target of 1e-310) neither overflow nor underflow, and a way to print a figure that does not
//! fit f64 without writing `inf`.

/// `sqrt(mean(v²))` over `values`, without overflow or underflow in the squares. `None` for no
/// values or a non-finite one.
pub fn root_mean_square(values: &[f64]) -> Option<f64> {
    root_mean_square_of(values.len(), |i| values[i])
}

/// [`root_mean_square`] of the `n` values `value(0)`, `value(1)`, …, computed where they
/// are needed (no array of them is made).
fn root_mean_square_of(n: usize, value: impl Fn(usize) -> f64) -> Option<f64> {
    if n == 0 || (0..n).any(|i| !value(i).is_finite()) {
        return None;
    }
    let scale = (0..n).fold(0.0f64, |m, i| m.max(value(i).abs()));
    if scale == 0.0 {
        return Some(0.0);
    }
    let mean_square = (0..n).map(|i| (value(i) / scale).powi(2)).sum::<f64>() / n as f64;
    Some(scale * mean_square.sqrt())
}

/// `value` for people to read, with `decimals` decimals: fixed-point (`{:.N}`) while that
/// shows it, with at least one significant digit and fewer than ten digits before the point;
/// else scientific notation with as many decimals in the mantissa (`1.98e300`, `3.10e-12`),
/// so no figure runs to hundreds of digits or rounds to a zero it is not. Zero, NaN and the
/// infinities as `{:.N}` writes them. Every figure the summaries print goes through here.
pub fn readable(value: f64, decimals: usize) -> String {
    // 10^-decimals by a correctly rounded division (0.01 exactly as the literal 0.01).
    let smallest = 1.0 / 10f64.powi(i32::try_from(decimals).unwrap_or(i32::MAX));
    let magnitude = value.abs();
    if value == 0.0 || !value.is_finite() || (smallest..1e9).contains(&magnitude) {
        format!("{value:.decimals$}")
    } else {
        format!("{value:.decimals$e}")
    }
}

/// A figure for a message: [`readable`] to four decimals, and words when it is beyond f64 (so
/// no `inf` or `NaN` is printed).
pub fn figure(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => readable(v, 4),
        _ => "beyond float64's range".into(),
    }
}

/// How well predicted classes match the true ones.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassReport {
    pub accuracy: f64,
    /// The unweighted mean of the classes' F1.
    pub macro_f1: f64,
    pub per_class: Vec<ClassFigures>,
    /// `confusion_matrix[true class][predicted class]`, in the classes' order.
    pub confusion_matrix: Vec<Vec<usize>>,
}

/// One class's precision, recall and F1 (0 where a class is never predicted or never true, as
/// scikit-learn reports with `zero_division=0`), and how many records hold it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassFigures {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// The classification figures of `predicted` against `truth` (indices into `classes`).
pub fn classification(classes: &[String], truth: &[usize], predicted: &[usize]) -> ClassReport {
    let n = classes.len();
    let mut confusion = vec![vec![0usize; n]; n];
    for (&t, &p) in truth.iter().zip(predicted) {
        if t < n && p < n {
            confusion[t][p] += 1;
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassFigures> = (0..n)
        .map(|k| {
            let hits = confusion[k][k];
            let predicted_k: usize = confusion.iter().map(|row| row[k]).sum();
            let support: usize = confusion[k].iter().sum();
            let (precision, recall) = (ratio(hits, predicted_k), ratio(hits, support));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassFigures {
                class: classes[k].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let correct: usize = (0..n).map(|k| confusion[k][k]).sum();
    ClassReport {
        accuracy: ratio(correct, truth.len()),
        macro_f1: per_class.iter().map(|c| c.f1).sum::<f64>() / n.max(1) as f64,
        per_class,
        confusion_matrix: confusion,
    }
}

/// Regression figures in the target's own units.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RegressionReport {
    pub rmse: Option<f64>,
    pub mae: f64,
    /// 1 − SS_res / SS_tot (scikit-learn's convention for a constant truth: 1 when predicted
    /// exactly, else 0).
    pub r2: f64,
}

/// RMSE, MAE and R² of `predicted` against `truth`.
pub fn regression(truth: &[f64], predicted: &[f64]) -> RegressionReport {
    regression_of(
        truth.len().min(predicted.len()),
        |i| truth[i],
        |i| predicted[i],
    )
}

/// [`regression`] of `n` records whose true and predicted values `truth(i)` and
/// `predicted(i)` are computed where they are needed: a data set's figures without copies of
/// its columns.
pub fn regression_of(
    n: usize,
    truth: impl Fn(usize) -> f64,
    predicted: impl Fn(usize) -> f64,
) -> RegressionReport {
    let error = |i: usize| predicted(i) - truth(i);
    let records = n.max(1) as f64;
    let mean = (0..n).map(&truth).sum::<f64>() / records;
    let (residual, total) = (
        root_mean_square_of(n, error),
        root_mean_square_of(n, |i| truth(i) - mean),
    );
    let r2 = match (residual, total) {
        (Some(r), Some(t)) if t > 0.0 => 1.0 - (r / t).powi(2),
        (Some(0.0), _) => 1.0,
        _ => 0.0,
    };
    RegressionReport {
        rmse: residual,
        mae: (0..n).map(|i| error(i).abs()).sum::<f64>() / records,
        r2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_mean_squares_of_extreme_values_stay_finite_and_exact() {
        assert_eq!(root_mean_square(&[3.0, 4.0, 0.0, 0.0]), Some(2.5));
        let huge = root_mean_square(&[1e300, -1e300]).unwrap();
        assert!((huge / 1e300 - 1.0).abs() < 1e-15);
        let tiny = root_mean_square(&[1e-310, -1e-310]).unwrap();
        assert!((tiny / 1e-310 - 1.0).abs() < 1e-9, "{tiny:e}");
        assert_eq!(root_mean_square(&[]), None);
        assert_eq!(root_mean_square(&[f64::INFINITY]), None);
    }

    #[test]
    fn classification_figures_follow_their_definitions() {
        let classes = ["a".to_string(), "b".to_string(), "c".to_string()];
        // truth a a b b c, predicted a b b b a
        let r = classification(&classes, &[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0]);
        assert_eq!(r.confusion_matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]]);
        assert!((r.accuracy - 0.6).abs() < 1e-12);
        assert!((r.per_class[0].precision - 0.5).abs() < 1e-12);
        assert!((r.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((r.per_class[2].precision, r.per_class[2].f1), (0.0, 0.0));
        let f1_b = 2.0 * (2.0 / 3.0) / (2.0 / 3.0 + 1.0);
        assert!((r.macro_f1 - (0.5 + f1_b) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn regression_figures_follow_their_definitions() {
        let r = regression(&[1.0, 2.0, 3.0], &[1.0, 2.0, 5.0]);
        assert!((r.rmse.unwrap() - (4.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((r.mae - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.r2 - (1.0 - 4.0 / 2.0)).abs() < 1e-12);
        assert_eq!(regression(&[2.0, 2.0], &[2.0, 2.0]).r2, 1.0);
    }

    #[test]
    fn readable_figures_keep_fixed_point_and_go_scientific_only_beyond_it() {
        // Ordinary figures as `{:.N}` writes them.
        assert_eq!(readable(0.25, 4), "0.2500");
        assert_eq!(readable(85.7042, 2), "85.70");
        assert_eq!(readable(-1.4623, 3), "-1.462");
        assert_eq!(readable(0.01, 2), "0.01");
        assert_eq!(readable(123_456_789.0, 2), "123456789.00");
        assert_eq!(readable(0.0, 2), "0.00");
        assert_eq!(readable(-0.0, 2), "-0.00");
        // Huge: no run of hundreds of digits.
        assert_eq!(readable(1.98e300, 2), "1.98e300");
        assert_eq!(readable(-1.0916e300, 4), "-1.0916e300");
        assert_eq!(readable(1e9, 2), "1.00e9");
        assert_eq!(readable(f64::MAX, 2), "1.80e308");
        // Tiny: not rounded to a zero they are not.
        assert_eq!(readable(3.1e-12, 1), "3.1e-12");
        assert_eq!(readable(3.1e-12, 2), "3.10e-12");
        assert_eq!(readable(0.004, 2), "4.00e-3");
        assert_eq!(readable(-5e-324, 3), "-4.941e-324");
        // Not numbers: as Rust writes them, never as digits.
        assert_eq!(readable(f64::NAN, 2), "NaN");
        assert_eq!(readable(f64::INFINITY, 4), "inf");
        assert_eq!(readable(f64::NEG_INFINITY, 4), "-inf");
        for v in [1e300, -1e-300, 7.5e29, 1e-12, 123.456, f64::MIN_POSITIVE] {
            for decimals in 0..=6 {
                let text = readable(v, decimals);
                assert!(text.len() <= 16, "{v:e} to {decimals}: {text}");
                let parsed: f64 = text.parse().unwrap();
                assert!((parsed - v).abs() <= v.abs() * 0.5, "{v:e}: {text}");
            }
        }
    }

    #[test]
    fn figures_never_print_inf_or_nan() {
        assert_eq!(figure(Some(0.25)), "0.2500");
        assert_eq!(figure(Some(1e300)), "1.0000e300");
        assert_eq!(figure(Some(2e-12)), "2.0000e-12");
        assert_eq!(figure(Some(f64::NAN)), "beyond float64's range");
        assert_eq!(figure(Some(f64::INFINITY)), "beyond float64's range");
        assert_eq!(figure(None), "beyond float64's range");
    }
}
