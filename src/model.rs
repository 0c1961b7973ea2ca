//! The network: layer sizes, activations and weights, stored inputs x outputs as in the seeds
//! (`np.dot(x, weights_input_to_hidden)`). Hidden layers are sigmoid; the output layer is sigmoid
//! (seeds 000-003) or identity (seed 004's regression). No bias terms, as in the seeds.

use std::fmt;

use ndarray::Array2;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::float::Float;

/// The output layer's activation. Hidden layers are always sigmoid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `1 / (1 + exp(-x))`: the seeds' classifier output, targets in [0, 1].
    Sigmoid,
    /// `x`: seed 004's regression output.
    Identity,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Identity => "identity",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fully connected network with one or more sigmoid hidden layers.
///
/// `weights[0]` is `weights_input_to_hidden` (inputs x hidden), the last is
/// `weights_hidden_to_output` (hidden x outputs); deeper networks have hidden-to-hidden matrices
/// between them.
#[derive(Clone, Debug, PartialEq)]
pub struct Network<T> {
    weights: Vec<Array2<T>>,
    output_activation: Activation,
}

impl<T: Float> Network<T> {
    /// Builds a network from its weight matrices, checking that they chain
    /// (`weights[l].ncols() == weights[l + 1].nrows()`) and hold only finite numbers.
    pub fn new(weights: Vec<Array2<T>>, output_activation: Activation) -> Result<Self> {
        if weights.len() < 2 {
            return Err(Error::Network(format!(
                "need at least one hidden layer (two weight matrices), got {}",
                weights.len()
            )));
        }
        let names = weight_names(weights.len());
        for (l, w) in weights.iter().enumerate() {
            if w.is_empty() {
                return Err(Error::Network(format!(
                    "`{}` has an empty shape {:?}",
                    names[l],
                    w.shape()
                )));
            }
            if let Some(next) = weights.get(l + 1) {
                if w.ncols() != next.nrows() {
                    return Err(Error::Network(format!(
                        "`{}` is {:?} but `{}` is {:?}: {} outputs cannot feed {} inputs",
                        names[l],
                        w.shape(),
                        names[l + 1],
                        next.shape(),
                        w.ncols(),
                        next.nrows()
                    )));
                }
            }
            if w.iter().any(|v| !v.is_finite()) {
                return Err(Error::Network(format!(
                    "`{}` holds NaN or infinite values",
                    names[l]
                )));
            }
        }
        Ok(Network {
            weights,
            output_activation,
        })
    }

    /// Seed 004's initialisation: each weight drawn from N(0, n_in^-0.5), where n_in is the
    /// number of inputs to the layer, so that every unit starts in sigmoid's linear region.
    pub fn random(
        layer_sizes: &[usize],
        output_activation: Activation,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        if layer_sizes.contains(&0) {
            return Err(Error::Network(format!(
                "layer sizes must be at least 1, got {layer_sizes:?}"
            )));
        }
        let weights = layer_sizes
            .windows(2)
            .map(|pair| {
                let (n_in, n_out) = (pair[0], pair[1]);
                let std = (n_in as f64).powf(-0.5);
                let normal = Normal::new(0.0, std).map_err(|e| Error::Network(e.to_string()))?;
                Ok(Array2::from_shape_simple_fn((n_in, n_out), || {
                    T::from_f64(normal.sample(rng)).unwrap_or_else(T::zero)
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        Network::new(weights, output_activation)
    }

    pub fn weights(&self) -> &[Array2<T>] {
        &self.weights
    }

    pub fn output_activation(&self) -> Activation {
        self.output_activation
    }

    /// `[inputs, hidden..., outputs]`.
    pub fn layer_sizes(&self) -> Vec<usize> {
        std::iter::once(self.weights[0].nrows())
            .chain(self.weights.iter().map(|w| w.ncols()))
            .collect()
    }

    pub fn n_inputs(&self) -> usize {
        self.weights[0].nrows()
    }

    pub fn n_outputs(&self) -> usize {
        self.weights[self.weights.len() - 1].ncols()
    }

    /// `weights += delta_w` for every layer, as the seeds do after the backward pass.
    pub fn apply_deltas(&mut self, deltas: &[Array2<T>]) -> Result<()> {
        if deltas.len() != self.weights.len()
            || deltas
                .iter()
                .zip(&self.weights)
                .any(|(d, w)| d.dim() != w.dim())
        {
            return Err(Error::Shape(format!(
                "deltas {:?} do not match weights {:?}",
                deltas.iter().map(|d| d.dim()).collect::<Vec<_>>(),
                self.weights.iter().map(|w| w.dim()).collect::<Vec<_>>()
            )));
        }
        for (w, d) in self.weights.iter_mut().zip(deltas) {
            crate::linalg::add_assign(w, d.view());
        }
        Ok(())
    }

    /// The same network in another precision (f64 reference <-> f32 compute).
    pub fn cast<U: Float>(&self) -> Network<U> {
        Network {
            weights: self
                .weights
                .iter()
                .map(|w| w.mapv(|v| U::from(v).unwrap_or_else(U::nan)))
                .collect(),
            output_activation: self.output_activation,
        }
    }
}

/// The names of the weight matrices of a network with `n_layers` weight matrices, following
/// the seeds: `weights_input_to_hidden`, `weights_hidden_to_output` for one hidden layer;
/// `weights_input_to_hidden1`, `weights_hidden1_to_hidden2`, …, `weights_hiddenK_to_output`
/// for K > 1 hidden layers.
pub fn weight_names(n_layers: usize) -> Vec<String> {
    layer_ends(n_layers)
        .into_iter()
        .map(|(from, to)| format!("weights_{from}_to_{to}"))
        .collect()
}

/// The names of the delta-weight matrices, following the seeds: `delta_w_i_h`, `delta_w_h_o`
/// for one hidden layer; `delta_w_i_h1`, `delta_w_h1_h2`, …, `delta_w_hK_o` for K > 1.
pub fn delta_names(n_layers: usize) -> Vec<String> {
    let short = |end: &str| match end {
        "input" => "i".to_string(),
        "output" => "o".to_string(),
        hidden => hidden.replacen("hidden", "h", 1),
    };
    layer_ends(n_layers)
        .into_iter()
        .map(|(from, to)| format!("delta_w_{}_{}", short(&from), short(&to)))
        .collect()
}

fn layer_ends(n_layers: usize) -> Vec<(String, String)> {
    let n_hidden = n_layers.saturating_sub(1);
    let hidden = |k: usize| {
        if n_hidden == 1 {
            "hidden".to_string()
        } else {
            format!("hidden{k}")
        }
    };
    (0..n_layers)
        .map(|l| {
            let from = if l == 0 { "input".into() } else { hidden(l) };
            let to = if l + 1 == n_layers {
                "output".into()
            } else {
                hidden(l + 1)
            };
            (from, to)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_seeds() {
        assert_eq!(
            weight_names(2),
            ["weights_input_to_hidden", "weights_hidden_to_output"]
        );
        assert_eq!(delta_names(2), ["delta_w_i_h", "delta_w_h_o"]);
        assert_eq!(
            weight_names(3),
            [
                "weights_input_to_hidden1",
                "weights_hidden1_to_hidden2",
                "weights_hidden2_to_output"
            ]
        );
        assert_eq!(
            delta_names(3),
            ["delta_w_i_h1", "delta_w_h1_h2", "delta_w_h2_o"]
        );
    }

    #[test]
    fn mismatched_layers_are_rejected_with_both_names() {
        let err = Network::new(
            vec![Array2::<f64>::zeros((3, 2)), Array2::zeros((4, 1))],
            Activation::Sigmoid,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("weights_input_to_hidden"), "{err}");
        assert!(err.contains("weights_hidden_to_output"), "{err}");
        assert!(err.contains("[3, 2]") && err.contains("[4, 1]"), "{err}");
    }

    #[test]
    fn random_init_has_the_seed_scale() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let net = Network::<f64>::random(&[400, 300, 2], Activation::Identity, &mut rng).unwrap();
        assert_eq!(net.layer_sizes(), [400, 300, 2]);
        let w = &net.weights()[0];
        let var = w.mapv(|v| v * v).mean().unwrap();
        // 120,000 draws of N(0, 1/400): the sample variance is within 2% of 1/400 with
        // overwhelming probability (its relative std is sqrt(2/120000) = 0.4%).
        assert!((var * 400.0 - 1.0).abs() < 0.02, "variance {var}");
    }
}
