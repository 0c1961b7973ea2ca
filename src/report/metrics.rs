//! Error figures that stay finite: a root mean square computed in two passes over values
//! scaled by the largest, so that errors near f64's range (a target of 1e300) or below it (a
//! target of 1e-310) neither overflow nor underflow, and a way to print a figure that does not
//! fit f64 without writing `inf`.

/// `sqrt(mean(v²))` over `values`, without overflow or underflow in the squares. `None` for no
/// values or a non-finite one.
pub fn root_mean_square(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 {
        return Some(0.0);
    }
    let mean_square = values.iter().map(|v| (v / scale).powi(2)).sum::<f64>() / values.len() as f64;
    Some(scale * mean_square.sqrt())
}

/// A figure for a message: `{:.4}` when finite and printable that way, scientific when tiny or
/// huge, and words when it is beyond f64 (so no `inf` or `NaN` is printed).
pub fn figure(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() && (v == 0.0 || (1e-3..1e9).contains(&v.abs())) => {
            format!("{v:.4}")
        }
        Some(v) if v.is_finite() => format!("{v:.4e}"),
        _ => "beyond float64's range".into(),
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
    fn figures_never_print_inf_or_nan() {
        assert_eq!(figure(Some(0.25)), "0.2500");
        assert_eq!(figure(Some(1e300)), "1.0000e300");
        assert_eq!(figure(Some(f64::INFINITY)), "beyond float64's range");
        assert_eq!(figure(None), "beyond float64's range");
    }
}
