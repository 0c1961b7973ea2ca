//! Activations: the seeds' sigmoid (the default), identity (seed 004's regression output),
//! tanh, ReLU and leaky ReLU for hidden layers, and softmax for a multi-class output. Each knows
//! its formula and its slope *from its output* (what the backward pass has at hand), twins of
//! `activate` and `slope_from_output` in `shaders/common.wgsl`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::float::Float;

/// The slope of leaky ReLU below 0 (PyTorch's default).
pub const LEAKY_RELU_SLOPE: f64 = 0.01;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// `1 / (1 + exp(-x))`: the seeds' hidden layers and classifier output.
    Sigmoid,
    /// `x`: seed 004's regression output.
    Identity,
    /// `tanh(x)`.
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// `x` above 0, `0.01 x` below.
    LeakyRelu,
    /// `exp(x_i) / Σ_j exp(x_j)` over a record's outputs (computed as exp(x_i − max)): the
    /// multi-class output, with cross-entropy.
    Softmax,
}

impl Activation {
    /// Those a hidden layer may use (identity: a linear bottleneck, as scikit-learn offers).
    pub const HIDDEN: [Activation; 5] = [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Identity,
    ];

    /// Those an output layer may use.
    pub const OUTPUT: [Activation; 3] = [
        Activation::Identity,
        Activation::Sigmoid,
        Activation::Softmax,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Identity => "identity",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky-relu",
            Activation::Softmax => "softmax",
        }
    }

    /// The code the WGSL kernels switch on (`ACT_*` in common.wgsl). Softmax is applied by
    /// its own row kernel after an identity forward pass.
    pub fn wgsl_code(self) -> u32 {
        match self {
            Activation::Sigmoid => 0,
            Activation::Identity | Activation::Softmax => 1,
            Activation::Tanh => 2,
            Activation::Relu => 3,
            Activation::LeakyRelu => 4,
        }
    }

    /// Whether it acts on each value alone (softmax acts on a record's row).
    pub fn is_elementwise(self) -> bool {
        self != Activation::Softmax
    }

    /// The activation of one value (softmax: see [`softmax_row`]).
    pub fn apply<T: Float>(self, x: T) -> T {
        match self {
            Activation::Sigmoid => T::one() / (T::one() + (-x).exp()),
            Activation::Identity | Activation::Softmax => x,
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.max(T::zero()),
            Activation::LeakyRelu => {
                if x > T::zero() {
                    x
                } else {
                    x * T::from_f64(LEAKY_RELU_SLOPE).unwrap_or_else(T::zero)
                }
            }
        }
    }

    /// The derivative at the input that gave output `y`: `y(1 − y)` for sigmoid, `1 − y²` for
    /// tanh, 1 or 0 (or 0.01) for the ReLUs by the sign of `y`, 1 for identity.
    pub fn slope_from_output<T: Float>(self, y: T) -> T {
        match self {
            Activation::Sigmoid => y * (T::one() - y),
            Activation::Identity | Activation::Softmax => T::one(),
            Activation::Tanh => T::one() - y * y,
            Activation::Relu => {
                if y > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::LeakyRelu => {
                if y > T::zero() {
                    T::one()
                } else {
                    T::from_f64(LEAKY_RELU_SLOPE).unwrap_or_else(T::zero)
                }
            }
        }
    }
}

/// Softmax over one record's outputs, in place: `exp(z_i − max z) / Σ_j exp(z_j − max z)`, which
/// never overflows. Twin of `softmax_rows` in `shaders/softmax.wgsl`.
pub fn softmax_row<T: Float>(row: &mut [T]) {
    let max = row.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
    let mut sum = T::zero();
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum = sum + *v;
    }
    for v in row.iter_mut() {
        *v = *v / sum;
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_from_outputs_are_the_derivatives() {
        for a in Activation::HIDDEN {
            for x in [-2.0f64, -0.3, 0.4, 1.7] {
                let h = 1e-6;
                let numeric = (a.apply(x + h) - a.apply(x - h)) / (2.0 * h);
                let slope = a.slope_from_output(a.apply(x));
                assert!(
                    (numeric - slope).abs() < 1e-6,
                    "{a} at {x}: {numeric} vs {slope}"
                );
            }
        }
    }

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let mut row = [1000.0f64, 1001.0, 999.0];
        softmax_row(&mut row);
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!(row[1] > row[0] && row[0] > row[2]);
        let mut one = [3.0f32];
        softmax_row(&mut one);
        assert_eq!(one, [1.0]);
    }
}
