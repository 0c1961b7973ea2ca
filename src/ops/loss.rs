//! Losses and the output error term they give. With the seeds' squared error the output error
//! term is `(t − y)·f'(y)`; with cross-entropy and its matching output (sigmoid for binary or
//! multi-label targets, softmax for classes) the slope cancels and it is `t − y`, which is what
//! the kernels compute directly (twin of `output_error_term_of` in `shaders/common.wgsl`).

use std::fmt;

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use super::Activation;
use crate::float::Float;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// The seeds' squared error, reported as the mean of `(t − y)²` (MSE).
    #[default]
    Mse,
    /// Cross-entropy: `−Σ t·ln y` with softmax, `−(t·ln y + (1 − t)·ln(1 − y))` with sigmoid,
    /// averaged over records (and over outputs for sigmoid).
    CrossEntropy,
}

/// Probabilities are kept this far from 0 and 1 when their logarithm is taken (fp32 outputs
/// reach exactly 0 and 1).
const PROBABILITY_FLOOR: f64 = 1e-12;

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::CrossEntropy => "cross-entropy",
        }
    }

    /// How a summary labels the loss's value.
    pub fn label(self) -> &'static str {
        match self {
            Loss::Mse => "MSE",
            Loss::CrossEntropy => "cross-entropy",
        }
    }

    /// The output activations this loss goes with.
    pub fn outputs(self) -> &'static [Activation] {
        match self {
            Loss::Mse => &[Activation::Identity, Activation::Sigmoid],
            Loss::CrossEntropy => &[Activation::Sigmoid, Activation::Softmax],
        }
    }

    /// The output error term, `−∂E/∂z` of one output: `t − y` for cross-entropy, `(t − y)·f'(y)`
    /// for squared error.
    pub fn output_error_term<T: Float>(self, output: Activation, t: T, y: T) -> T {
        match self {
            Loss::CrossEntropy => t - y,
            Loss::Mse => (t - y) * output.slope_from_output(y),
        }
    }

    /// The loss of outputs `y` against targets `t` (records x outputs), averaged over records.
    pub fn evaluate(self, output: Activation, y: ArrayView2<f64>, t: ArrayView2<f64>) -> f64 {
        let records = y.nrows().max(1) as f64;
        let ln = |p: f64| p.clamp(PROBABILITY_FLOOR, 1.0).ln();
        match (self, output) {
            (Loss::Mse, _) => {
                let sum: f64 = y.iter().zip(t).map(|(y, t)| (t - y) * (t - y)).sum();
                sum / (y.len().max(1) as f64)
            }
            (Loss::CrossEntropy, Activation::Softmax) => {
                -y.iter().zip(t).map(|(&y, &t)| t * ln(y)).sum::<f64>() / records
            }
            (Loss::CrossEntropy, _) => {
                let sum: f64 = y
                    .iter()
                    .zip(t)
                    .map(|(&y, &t)| t * ln(y) + (1.0 - t) * ln(1.0 - y))
                    .sum();
                -sum / (y.len().max(1) as f64)
            }
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
