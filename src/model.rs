//! The network: layer sizes, weights (stored inputs x outputs as in the seeds,
//! `np.dot(x, weights_input_to_hidden)`), optional biases, and its [`Spec`]: the hidden layers'
//! activation, the output layer's and the loss. The seeds' network, the default, has sigmoid
//! hidden layers, no biases, a sigmoid (seeds 000-003) or identity (seed 004) output and the
//! squared error.

use ndarray::{Array1, Array2};
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::float::Float;
pub use crate::ops::{Activation, Loss};

/// What kind of network: the hidden layers' activation, the output layer's, and the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spec {
    pub hidden: Activation,
    pub output: Activation,
    pub loss: Loss,
}

impl Spec {
    /// The seeds' network with the given output: sigmoid hidden layers, squared error.
    pub fn seeds(output: Activation) -> Self {
        Spec {
            hidden: Activation::Sigmoid,
            output,
            loss: Loss::Mse,
        }
    }

    /// Refuses combinations the tool does not train: a hidden activation that is not
    /// element-wise, an output other than identity/sigmoid/softmax, or an output the loss does
    /// not go with (cross-entropy needs sigmoid or softmax; softmax needs cross-entropy).
    pub fn check(&self) -> Result<()> {
        // Named by the flags that set them (`--activation`, `--output`, `--loss`).
        if !Activation::HIDDEN.contains(&self.hidden) {
            return Err(Error::argument(
                "--activation",
                format!(
                    "a hidden layer cannot be {}: use {}",
                    self.hidden,
                    Activation::HIDDEN.map(Activation::name).join(", ")
                ),
            ));
        }
        if !self.loss.outputs().contains(&self.output) {
            let fits: Vec<&str> = self.loss.outputs().iter().map(|a| a.name()).collect();
            return Err(Error::argument(
                "--output",
                format!(
                    "a {} output does not go with --loss {} (use {})",
                    self.output,
                    self.loss,
                    fits.join(" or ")
                ),
            ));
        }
        Ok(())
    }
}

/// The change a step makes to every weight matrix and, where the network has them, every
/// bias vector (the seeds' `delta_w_i_h`, …, `delta_w_h_o`, and `delta_b_h`, …, `delta_b_o`).
#[derive(Clone, Debug, PartialEq)]
pub struct Deltas<T> {
    pub weights: Vec<Array2<T>>,
    pub biases: Option<Vec<Array1<T>>>,
}

impl<T: Float> Deltas<T> {
    /// Whether `other` has the same tensors of the same shapes.
    pub fn same_layout<U>(&self, other: &Deltas<U>) -> bool {
        let biases = match (&self.biases, &other.biases) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.len() == b.len())
            }
            _ => false,
        };
        biases
            && self.weights.len() == other.weights.len()
            && self
                .weights
                .iter()
                .zip(&other.weights)
                .all(|(a, b)| a.dim() == b.dim())
    }

    /// The same deltas in another precision.
    pub fn cast<U: Float>(&self) -> Deltas<U> {
        let cast = |v: &T| U::from(*v).unwrap_or_else(U::nan);
        Deltas {
            weights: self.weights.iter().map(|w| w.map(cast)).collect(),
            biases: self
                .biases
                .as_ref()
                .map(|bs| bs.iter().map(|b| b.map(cast)).collect()),
        }
    }
}

/// A fully connected network with one or more hidden layers.
///
/// `weights[0]` is `weights_input_to_hidden` (inputs x hidden), the last is
/// `weights_hidden_to_output` (hidden x outputs); deeper networks have hidden-to-hidden matrices
/// between them. `biases[l]`, when present, has one value per unit of layer `l`'s outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Network<T> {
    weights: Vec<Array2<T>>,
    biases: Option<Vec<Array1<T>>>,
    spec: Spec,
}

impl<T: Float> Network<T> {
    /// The seeds' network (sigmoid hidden layers, no biases, squared error) from its weight
    /// matrices, checking that they chain and hold only finite numbers.
    pub fn new(weights: Vec<Array2<T>>, output_activation: Activation) -> Result<Self> {
        Self::with_spec(weights, None, Spec::seeds(output_activation))
    }

    /// A network of any [`Spec`], with biases or without; every shape is checked (weights
    /// chain, one bias per unit) and every value must be finite.
    pub fn with_spec(
        weights: Vec<Array2<T>>,
        biases: Option<Vec<Array1<T>>>,
        spec: Spec,
    ) -> Result<Self> {
        spec.check()?;
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
        if let Some(biases) = &biases {
            let bias_names = bias_names(weights.len());
            if biases.len() != weights.len() {
                return Err(Error::Network(format!(
                    "{} bias vectors for {} weight matrices",
                    biases.len(),
                    weights.len()
                )));
            }
            for ((b, w), name) in biases.iter().zip(&weights).zip(&bias_names) {
                if b.len() != w.ncols() {
                    return Err(Error::Network(format!(
                        "`{name}` has {} values but its layer has {} units",
                        b.len(),
                        w.ncols()
                    )));
                }
                if b.iter().any(|v| !v.is_finite()) {
                    return Err(Error::Network(format!(
                        "`{name}` holds NaN or infinite values"
                    )));
                }
            }
        }
        Ok(Network {
            weights,
            biases,
            spec,
        })
    }

    /// Seed 004's initialisation of the seeds' network: each weight drawn from
    /// N(0, n_in^-0.5), where n_in is the number of inputs to the layer, so that every unit
    /// starts in sigmoid's linear region.
    pub fn random(
        layer_sizes: &[usize],
        output_activation: Activation,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let weights = random_weights(layer_sizes, rng, |n_in, _| {
            Draw::Normal((n_in as f64).powf(-0.5))
        })?;
        Network::new(weights, output_activation)
    }

    /// A network of `spec`, initialised as `init` says (for `Init::Auto`, by its hidden
    /// activation: Glorot for sigmoid and tanh, He for the ReLUs); biases, when wanted, start
    /// at 0, except under `Init::GlorotUniform`, which draws them like the weights.
    pub fn random_with(
        layer_sizes: &[usize],
        spec: Spec,
        init: Init,
        with_biases: bool,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let relu = matches!(spec.hidden, Activation::Relu | Activation::LeakyRelu);
        let init = match init {
            Init::Auto if relu => Init::He,
            Init::Auto => Init::Glorot,
            other => other,
        };
        // scikit-learn's factor: 2 for a logistic network, 6 otherwise.
        let uniform_factor = if spec.hidden == Activation::Sigmoid {
            2.0
        } else {
            6.0
        };
        let draw = |n_in: usize, n_out: usize| match init {
            Init::He => Draw::Normal((2.0 / n_in as f64).sqrt()),
            Init::GlorotUniform => Draw::Uniform((uniform_factor / (n_in + n_out) as f64).sqrt()),
            Init::Auto | Init::Glorot => Draw::Normal((2.0 / (n_in + n_out) as f64).sqrt()),
        };
        let weights = random_weights(layer_sizes, rng, draw)?;
        let biases = with_biases.then(|| {
            layer_sizes
                .windows(2)
                .map(|pair| match (init, draw(pair[0], pair[1])) {
                    (Init::GlorotUniform, Draw::Uniform(bound)) => {
                        Array1::from_shape_simple_fn(pair[1], || {
                            T::from_f64(rng.random_range(-bound..=bound)).unwrap_or_else(T::zero)
                        })
                    }
                    _ => Array1::zeros(pair[1]),
                })
                .collect()
        });
        Network::with_spec(weights, biases, spec)
    }

    pub fn weights(&self) -> &[Array2<T>] {
        &self.weights
    }

    pub fn biases(&self) -> Option<&[Array1<T>]> {
        self.biases.as_deref()
    }

    pub fn spec(&self) -> Spec {
        self.spec
    }

    pub fn output_activation(&self) -> Activation {
        self.spec.output
    }

    /// The activation of layer `l` (the output layer's for the last).
    pub fn activation(&self, l: usize) -> Activation {
        if l + 1 == self.weights.len() {
            self.spec.output
        } else {
            self.spec.hidden
        }
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

    /// The weights and biases, to be changed in place (by an optimizer: the shapes stay).
    pub fn parameters_mut(&mut self) -> (&mut [Array2<T>], Option<&mut Vec<Array1<T>>>) {
        (&mut self.weights, self.biases.as_mut())
    }

    /// `weights += delta_w` (and `biases += delta_b`) for every layer, as the seeds do after
    /// the backward pass.
    pub fn apply_deltas(&mut self, deltas: &Deltas<T>) -> Result<()> {
        let mismatch = deltas.weights.len() != self.weights.len()
            || deltas
                .weights
                .iter()
                .zip(&self.weights)
                .any(|(d, w)| d.dim() != w.dim())
            || match (&deltas.biases, &self.biases) {
                (Some(d), Some(b)) => {
                    d.len() != b.len() || d.iter().zip(b).any(|(d, b)| d.len() != b.len())
                }
                (None, None) => false,
                _ => true,
            };
        if mismatch {
            return Err(Error::Shape(format!(
                "deltas {:?} do not match weights {:?}",
                deltas.weights.iter().map(|d| d.dim()).collect::<Vec<_>>(),
                self.weights.iter().map(|w| w.dim()).collect::<Vec<_>>()
            )));
        }
        for (w, d) in self.weights.iter_mut().zip(&deltas.weights) {
            crate::linalg::add_assign(w, d.view());
        }
        if let (Some(biases), Some(deltas)) = (&mut self.biases, &deltas.biases) {
            for (b, d) in biases.iter_mut().zip(deltas) {
                b.zip_mut_with(d, |v, &d| *v = *v + d);
            }
        }
        Ok(())
    }

    /// The same network in another precision (f64 reference <-> f32 compute).
    pub fn cast<U: Float>(&self) -> Network<U> {
        let cast = |v: &T| U::from(*v).unwrap_or_else(U::nan);
        Network {
            weights: self.weights.iter().map(|w| w.map(cast)).collect(),
            biases: self
                .biases
                .as_ref()
                .map(|bs| bs.iter().map(|b| b.map(cast)).collect()),
            spec: self.spec,
        }
    }
}

/// How one layer's first weights are drawn.
enum Draw {
    /// N(0, std²).
    Normal(f64),
    /// U(−bound, bound).
    Uniform(f64),
}

fn random_weights<T: Float>(
    layer_sizes: &[usize],
    rng: &mut impl Rng,
    draw: impl Fn(usize, usize) -> Draw,
) -> Result<Vec<Array2<T>>> {
    if layer_sizes.contains(&0) {
        return Err(Error::Network(format!(
            "layer sizes must be at least 1, got {layer_sizes:?}"
        )));
    }
    layer_sizes
        .windows(2)
        .map(|pair| {
            let (n_in, n_out) = (pair[0], pair[1]);
            let value = |v: f64| T::from_f64(v).unwrap_or_else(T::zero);
            Ok(match draw(n_in, n_out) {
                Draw::Normal(std) => {
                    let normal =
                        Normal::new(0.0, std).map_err(|e| Error::Network(e.to_string()))?;
                    Array2::from_shape_simple_fn((n_in, n_out), || value(normal.sample(rng)))
                }
                Draw::Uniform(bound) => Array2::from_shape_simple_fn((n_in, n_out), || {
                    value(rng.random_range(-bound..=bound))
                }),
            })
        })
        .collect()
}

/// How `Network::random_with` draws the first weights (`--init`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Init {
    /// Glorot for sigmoid and tanh hidden layers, He for the ReLUs.
    #[default]
    Auto,
    /// He: N(0, 2/n_in).
    He,
    /// Glorot: N(0, 2/(n_in + n_out)).
    Glorot,
    /// scikit-learn's MLP: weights and biases U(±√(6/(n_in + n_out))) (√(2/…) for sigmoid).
    GlorotUniform,
}

/// The names of the bias vectors: `bias_hidden`, `bias_output` for one hidden layer;
/// `bias_hidden1`, …, `bias_hiddenK`, `bias_output` for K > 1.
pub fn bias_names(n_layers: usize) -> Vec<String> {
    layer_ends(n_layers)
        .into_iter()
        .map(|(_, to)| format!("bias_{to}"))
        .collect()
}

/// The names of the bias deltas: `delta_b_h`, `delta_b_o`; `delta_b_h1`, …, `delta_b_o`.
pub fn bias_delta_names(n_layers: usize) -> Vec<String> {
    delta_names(n_layers)
        .into_iter()
        .map(|name| {
            let to = name.rsplit('_').next().unwrap_or_default().to_string();
            format!("delta_b_{to}")
        })
        .collect()
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
    fn each_initialisation_draws_at_its_scale() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let relu = Spec {
            hidden: Activation::Relu,
            output: Activation::Softmax,
            loss: Loss::CrossEntropy,
        };
        let sizes = [400, 200, 10];
        let spread = |init: Init, rng: &mut rand_chacha::ChaCha8Rng| {
            let n = Network::<f64>::random_with(&sizes, relu, init, true, rng).unwrap();
            let w = &n.weights()[0];
            let std = (w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64).sqrt();
            let largest = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let bias = n.biases().unwrap()[0]
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            (std, largest, bias)
        };
        // auto is He for ReLU: std √(2/400) ≈ 0.0707; Glorot: √(2/600) ≈ 0.0577.
        let (auto, _, bias) = spread(Init::Auto, &mut rng);
        assert!(
            (auto - 0.0707).abs() < 0.002 && bias == 0.0,
            "{auto} {bias}"
        );
        let (glorot, _, _) = spread(Init::Glorot, &mut rng);
        assert!((glorot - 0.0577).abs() < 0.002, "{glorot}");
        // glorot-uniform: U(±√(6/600)) = U(±0.1), std 0.1/√3; biases drawn too.
        let (std, largest, bias) = spread(Init::GlorotUniform, &mut rng);
        assert!((std - 0.1 / 3f64.sqrt()).abs() < 0.002, "{std}");
        assert!(largest <= 0.1 && largest > 0.099, "{largest}");
        assert!(bias > 0.0 && bias <= 0.1, "{bias}");
    }

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
    fn bias_names_follow_the_weight_names() {
        assert_eq!(bias_names(2), ["bias_hidden", "bias_output"]);
        assert_eq!(bias_delta_names(2), ["delta_b_h", "delta_b_o"]);
        assert_eq!(
            bias_names(3),
            ["bias_hidden1", "bias_hidden2", "bias_output"]
        );
        assert_eq!(
            bias_delta_names(3),
            ["delta_b_h1", "delta_b_h2", "delta_b_o"]
        );
    }

    #[test]
    fn specs_refuse_outputs_their_loss_does_not_go_with() {
        let bad = Spec {
            hidden: Activation::Relu,
            output: Activation::Identity,
            loss: Loss::CrossEntropy,
        };
        assert!(bad
            .check()
            .unwrap_err()
            .to_string()
            .contains("sigmoid or softmax"));
        let hidden_softmax = Spec {
            hidden: Activation::Softmax,
            ..Spec::seeds(Activation::Identity)
        };
        assert!(hidden_softmax.check().is_err());
        assert!(Spec::seeds(Activation::Sigmoid).check().is_ok());
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
