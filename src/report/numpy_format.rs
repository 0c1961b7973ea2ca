//! Arrays printed as NumPy prints them (`np.set_printoptions` defaults: precision 8,
//! `floatmode='maxprec'`, summarised past 1000 elements), so `backprop step` can be read side
//! by side with the seeds' output.

use ndarray::{ArrayView1, ArrayView2, ArrayViewD, Axis, Ix2};

const PRECISION: usize = 8;
const THRESHOLD: usize = 1000;
const EDGE_ITEMS: usize = 3;

/// Formats a 1-D or 2-D array like `print(np_array)`; other ranks print flattened.
pub fn format_array(a: ArrayViewD<f64>) -> String {
    let summarise = a.len() > THRESHOLD;
    let shown: Vec<f64> = match a.ndim() {
        2 => {
            let m = a.view().into_dimensionality::<Ix2>().expect("2-D");
            kept(m.nrows(), summarise)
                .flatten()
                .flat_map(|r| kept(m.ncols(), summarise).flatten().map(move |c| m[[r, c]]))
                .collect()
        }
        _ => a.iter().copied().collect(),
    };
    let style = Style::for_values(&shown);
    let width = shown
        .iter()
        .map(|&v| style.format(v).len())
        .max()
        .unwrap_or(0);
    let cell = |v: f64| format!("{:>width$}", style.format(v));
    match a.ndim() {
        2 => {
            let m = a.into_dimensionality::<Ix2>().expect("2-D");
            format_matrix(m, summarise, &cell)
        }
        _ => {
            let flat = a.iter().copied().collect::<ndarray::Array1<f64>>();
            format_row(flat.view(), summarise, &cell)
        }
    }
}

fn format_row(row: ArrayView1<f64>, summarise: bool, cell: &dyn Fn(f64) -> String) -> String {
    let parts: Vec<String> = kept(row.len(), summarise)
        .map(|i| i.map_or_else(|| "...".to_string(), |i| cell(row[i])))
        .collect();
    format!("[{}]", parts.join(" "))
}

fn format_matrix(m: ArrayView2<f64>, summarise: bool, cell: &dyn Fn(f64) -> String) -> String {
    let rows: Vec<String> = kept(m.nrows(), summarise)
        .map(|r| {
            r.map_or_else(
                || "...".to_string(),
                |r| format_row(m.index_axis(Axis(0), r), summarise, cell),
            )
        })
        .collect();
    format!("[{}]", rows.join("\n "))
}

/// The indices shown along an axis of length `n`: all of them, or the first and last
/// `EDGE_ITEMS` around a `None` that prints as `...`.
fn kept(n: usize, summarise: bool) -> impl Iterator<Item = Option<usize>> {
    let cut = summarise && n > 2 * EDGE_ITEMS;
    (0..n).filter_map(move |i| {
        if !cut || i < EDGE_ITEMS || i >= n - EDGE_ITEMS {
            Some(Some(i))
        } else if i == EDGE_ITEMS {
            Some(None)
        } else {
            None
        }
    })
}

/// Fixed or scientific notation with one digit count for the whole array, as NumPy chooses.
struct Style {
    scientific: bool,
    digits: usize,
    signed: bool,
}

impl Style {
    fn for_values(values: &[f64]) -> Self {
        let finite_abs = values.iter().filter(|v| v.is_finite()).map(|v| v.abs());
        let max = finite_abs.clone().fold(0.0, f64::max);
        let min = finite_abs
            .filter(|&v| v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let scientific = max >= 1e8 || (min.is_finite() && (min < 1e-4 || max / min > 1e3));
        let digits = values
            .iter()
            .map(|&v| unique_digits(v, scientific))
            .max()
            .unwrap_or(0);
        Style {
            scientific,
            digits,
            signed: values.iter().any(|v| v.is_sign_negative()),
        }
    }

    fn format(&self, v: f64) -> String {
        let body = if v.is_nan() {
            "nan".to_string()
        } else if v.is_infinite() {
            if v > 0.0 { "inf" } else { "-inf" }.to_string()
        } else if self.scientific {
            render(v, true, self.digits)
        } else {
            // In fixed notation NumPy prints each value with as few digits as identify it
            // (at most 8), keeps the point (`1.`), and pads the fraction with spaces.
            let own = unique_digits(v, false);
            let s = render(v, false, own);
            let s = if own == 0 { s + "." } else { s };
            format!("{s:<width$}", width = s.len() + self.digits - own)
        };
        if self.signed && !body.starts_with('-') {
            format!(" {body}")
        } else {
            body
        }
    }
}

/// The fewest fraction digits (at most `PRECISION`) that print `v` so it reads back unchanged.
fn unique_digits(v: f64, scientific: bool) -> usize {
    if !v.is_finite() {
        return 0;
    }
    (0..PRECISION)
        .find(|&d| render(v, scientific, d).parse::<f64>().ok() == Some(v))
        .unwrap_or(PRECISION)
}

fn render(v: f64, scientific: bool, digits: usize) -> String {
    if !scientific {
        return format!("{v:.digits$}");
    }
    let s = format!("{v:.digits$e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, magnitude) = match exp.strip_prefix('-') {
                Some(m) => ('-', m),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{magnitude:0>2}")
        }
        None => s,
    }
}

/// Formats a 1-D array (a convenience for vectors).
pub fn format_vector(v: ArrayView1<f64>) -> String {
    format_array(
        v.into_dyn()
            .into_dimensionality::<ndarray::IxDyn>()
            .expect("dyn"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array1};

    #[test]
    fn prints_the_seed_output_as_numpy_does() {
        let delta_w_h_o = array![0.008040470136, 0.005559183];
        assert_eq!(
            format_array(delta_w_h_o.view().into_dyn()),
            "[0.00804047 0.00555918]"
        );
        let delta_w_i_h = array![
            [1.77005547e-04, -5.11178506e-04],
            [3.54011093e-05, -1.02235701e-04],
            [-7.08022187e-05, 2.04471402e-04]
        ];
        assert_eq!(
            format_array(delta_w_i_h.view().into_dyn()),
            "[[ 1.77005547e-04 -5.11178506e-04]\n [ 3.54011093e-05 -1.02235701e-04]\n [-7.08022187e-05  2.04471402e-04]]"
        );
    }

    #[test]
    fn short_values_use_few_digits_and_big_arrays_are_summarised() {
        // Each expected string is what NumPy 2.4 prints for the same array.
        assert_eq!(
            format_vector(array![0.5, -0.25, 1.0].view()),
            "[ 0.5  -0.25  1.  ]"
        );
        assert_eq!(
            format_vector(array![1e-5, 2.5e-5].view()),
            "[1.0e-05 2.5e-05]"
        );
        assert_eq!(
            format_array(array![[0.5, 0.1], [3.0, 4.25]].view().into_dyn()),
            "[[0.5  0.1 ]\n [3.   4.25]]"
        );
        let long = Array1::from_iter((0..2000).map(f64::from));
        assert_eq!(
            format_vector(long.view()),
            "[0.000e+00 1.000e+00 2.000e+00 ... 1.997e+03 1.998e+03 1.999e+03]"
        );
    }
}
