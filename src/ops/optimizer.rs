//! How a step turns the batch's gradient into a change of the weights: the seeds' plain
//! gradient descent, SGD with weight decay, momentum (with Nesterov's variant), Adam and AdamW,
//! following PyTorch's `torch.optim` formulas. [`update`] is one parameter's update, the CPU
//! twin of `optimizer_update` in `shaders/optimizer.wgsl`; its state (the moments and the step
//! count) is [`OptimizerState`], kept by each backend beside its weights.

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::model::{Deltas, Network};
use crate::report::metrics::readable;

/// The update rule.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Stochastic gradient descent: `w -= lr · g`, the seeds' step.
    #[default]
    Sgd,
    /// Heavy-ball momentum (PyTorch's SGD with `momentum`): `b = μ·b + g; w -= lr · b`.
    Momentum,
    /// Adam (Kingma & Ba, 2015), with PyTorch's bias corrections; `--weight-decay` is L2.
    Adam,
    /// AdamW (Loshchilov & Hutter, 2019): Adam with the weight decay decoupled from the gradient.
    Adamw,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Sgd => "sgd",
            Method::Momentum => "momentum",
            Method::Adam => "adam",
            Method::Adamw => "adamw",
        }
    }

    /// The learning rate `--lr auto` picks: the seeds' 0.1-scale step for plain gradient
    /// descent, PyTorch's and scikit-learn's 1e-3 for Adam.
    pub fn default_learnrate(self) -> f64 {
        match self {
            Method::Sgd | Method::Momentum => 0.1,
            Method::Adam | Method::Adamw => 1e-3,
        }
    }
}

/// An optimizer and its hyperparameters (saved with checkpoints).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    pub method: Method,
    /// μ of momentum.
    pub momentum: f64,
    pub nesterov: bool,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    /// L2 (added to the gradient) for sgd, momentum and adam; decoupled for adamw. Weights
    /// and biases alike (PyTorch's `weight_decay`).
    pub weight_decay: f64,
    /// An L2 term `λ·w` added to the gradient of the weights only, never the biases:
    /// scikit-learn's `alpha` penalty `α/2·‖W‖²` on each batch's summed loss is this with
    /// `λ = α / batch` (see `mlp::Settings::alpha`).
    #[serde(default)]
    pub l2_weights: f64,
}

impl Default for Optimizer {
    /// The seeds' plain gradient descent (and PyTorch's defaults for the others' settings).
    fn default() -> Self {
        Optimizer {
            method: Method::Sgd,
            momentum: 0.9,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            l2_weights: 0.0,
        }
    }
}

/// The update a kernel runs, as its code in the WGSL flag (`OPT_*` in `shaders/common.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `w += lr/B · inputᵀδ` computed by the update itself: the seeds' step, bit for bit.
    Plain = 0,
    Sgd = 1,
    Momentum = 2,
    Nesterov = 3,
    Adam = 4,
}

impl Optimizer {
    /// The rule the kernels run: the seeds' fused step where nothing else is asked for.
    pub fn rule(&self) -> Rule {
        match self.method {
            Method::Sgd if self.weight_decay == 0.0 && self.l2_weights == 0.0 => Rule::Plain,
            Method::Sgd => Rule::Sgd,
            Method::Momentum if self.nesterov => Rule::Nesterov,
            Method::Momentum => Rule::Momentum,
            Method::Adam | Method::Adamw => Rule::Adam,
        }
    }

    /// Moment arrays of the shape of the weights the rule keeps: 0, 1 (momentum) or 2 (Adam).
    pub fn n_moments(&self) -> usize {
        match self.rule() {
            Rule::Plain | Rule::Sgd => 0,
            Rule::Momentum | Rule::Nesterov => 1,
            Rule::Adam => 2,
        }
    }

    /// Checks every setting, naming the flag of a bad one.
    pub fn check(&self) -> Result<()> {
        let bad = |flag: &str, message: String| {
            Err(Error::Argument {
                flag: flag.into(),
                message,
            })
        };
        let unit = |v: f64| v.is_finite() && (0.0..1.0).contains(&v);
        if !unit(self.momentum) {
            return bad("--momentum", format!("{} is not in [0, 1)", self.momentum));
        }
        if !unit(self.beta1) {
            return bad("--beta1", format!("{} is not in [0, 1)", self.beta1));
        }
        if !unit(self.beta2) {
            return bad("--beta2", format!("{} is not in [0, 1)", self.beta2));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return bad(
                "--epsilon",
                format!("{} is not a finite number above 0", self.epsilon),
            );
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "--weight-decay",
                format!("{} is not a finite number >= 0", self.weight_decay),
            );
        }
        if !(self.l2_weights.is_finite() && self.l2_weights >= 0.0) {
            return bad(
                "--alpha",
                format!(
                    "an L2 term of {} is not a finite number >= 0",
                    self.l2_weights
                ),
            );
        }
        if self.nesterov && self.method != Method::Momentum {
            return bad("--nesterov", "needs --optimizer momentum".into());
        }
        Ok(())
    }

    /// What one step's kernels read besides the gradient, for step number `step` (from 1) at
    /// learning rate `learnrate`, computed in f64 once on the host so that every backend
    /// starts from the same rounded values.
    pub fn step_values(&self, learnrate: f64, step: u64) -> StepValues {
        let decoupled = self.method == Method::Adamw;
        let t = step.min(i32::MAX as u64) as i32;
        let (beta1, beta2) = match self.method {
            Method::Momentum => (self.momentum, 0.0),
            _ => (self.beta1, self.beta2),
        };
        let l2 = if decoupled { 0.0 } else { self.weight_decay };
        StepValues([
            learnrate,
            beta1,
            beta2,
            self.epsilon,
            l2 + self.l2_weights,
            l2,
            1.0 - if decoupled {
                learnrate * self.weight_decay
            } else {
                0.0
            },
            learnrate / (1.0 - self.beta1.powi(t)),
            (1.0 - self.beta2.powi(t)).sqrt(),
        ])
    }

    /// A one-line description for the summary.
    pub fn describe(&self) -> String {
        let mut decay = if self.weight_decay > 0.0 {
            let kind = if self.method == Method::Adamw {
                "decoupled"
            } else {
                "L2"
            };
            format!(", weight decay {} ({kind})", short(self.weight_decay))
        } else {
            String::new()
        };
        if self.l2_weights > 0.0 {
            decay += &format!(", L2 {} on the weights", short(self.l2_weights));
        }
        match self.method {
            Method::Sgd => format!("sgd{decay}"),
            Method::Momentum => format!(
                "momentum {}{}{decay}",
                short(self.momentum),
                if self.nesterov { " (Nesterov)" } else { "" }
            ),
            Method::Adam | Method::Adamw => format!(
                "{} (β1 {}, β2 {}, ε {}){decay}",
                self.method.name(),
                short(self.beta1),
                short(self.beta2),
                short(self.epsilon)
            ),
        }
    }
}

/// `x` to six decimals (six significant digits below 1e-3), without trailing zeros: 0.03,
/// 0.999, 1e-8, and 7.5e29 where [`readable`] goes scientific (no flag's value is echoed with
/// thirty digits).
pub fn short(x: f64) -> String {
    let trim = |digits: &str| {
        digits
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    };
    let text = if x != 0.0 && x.abs() < 1e-3 {
        format!("{x:.5e}")
    } else {
        readable(x, 6)
    };
    match text.split_once('e') {
        Some((mantissa, exponent)) => format!("{}e{exponent}", trim(mantissa)),
        None => trim(&text),
    }
}

/// The per-step values of `optimizer_update` (the `step_values` array of
/// `shaders/optimizer.wgsl`, in this order): learning rate, β1 (or μ), β2, ε, the L2 term of
/// the weights and that of the biases, the decoupled decay factor `1 − lr·λ`, Adam's step size
/// `lr / (1 − β1ᵗ)` and `√(1 − β2ᵗ)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepValues(pub [f64; STEP_VALUES]);

/// The length of [`StepValues`].
pub const STEP_VALUES: usize = 9;
/// Where [`StepValues`] holds the L2 term of the weights and of the biases.
pub const L2_OF_WEIGHTS: usize = 4;
pub const L2_OF_BIASES: usize = 5;

impl StepValues {
    pub fn to_f32(&self) -> [f32; STEP_VALUES] {
        self.0.map(|v| v as f32)
    }
}

/// One parameter's update from its gradient `g` (of the batch's mean loss), with the L2 term
/// `values[l2]` ([`L2_OF_WEIGHTS`] or [`L2_OF_BIASES`]): returns the new weight, first and
/// second moments. The CPU twin of `optimizer_update` in `shaders/optimizer.wgsl`, in the same
/// order of operations.
pub fn update<T: Float>(
    rule: Rule,
    (values, l2): (&[T; STEP_VALUES], usize),
    w: T,
    g: T,
    m: T,
    v: T,
) -> [T; 3] {
    let [lr, beta1, beta2, epsilon, _, _, decay_factor, step_size, sqrt_bc2] = *values;
    let one = T::one();
    let g = g + values[l2] * w;
    match rule {
        Rule::Plain | Rule::Sgd => [w - lr * g, m, v],
        Rule::Momentum | Rule::Nesterov => {
            let m = beta1 * m + g;
            let step = if rule == Rule::Nesterov {
                g + beta1 * m
            } else {
                m
            };
            [w - lr * step, m, v]
        }
        Rule::Adam => {
            let m = beta1 * m + (one - beta1) * g;
            let v = beta2 * v + (one - beta2) * g * g;
            let denominator = v.sqrt() / sqrt_bc2 + epsilon;
            [w * decay_factor - step_size * (m / denominator), m, v]
        }
    }
}

/// An optimizer's state: the step count and its moments, shaped like the network's
/// parameters (`moments[k].weights[l]` like `weights[l]`).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState<T> {
    pub step: u64,
    pub moments: Vec<Deltas<T>>,
}

impl<T: Float> OptimizerState<T> {
    /// The state before the first step: every moment 0.
    pub fn zeros(optimizer: &Optimizer, network: &Network<T>) -> Self {
        let zero = || Deltas {
            weights: network
                .weights()
                .iter()
                .map(|w| Array2::zeros(w.dim()))
                .collect(),
            biases: network
                .biases()
                .map(|bs| bs.iter().map(|b| Array1::zeros(b.len())).collect()),
        };
        OptimizerState {
            step: 0,
            moments: (0..optimizer.n_moments()).map(|_| zero()).collect(),
        }
    }

    pub fn cast<U: Float>(&self) -> OptimizerState<U> {
        OptimizerState {
            step: self.step,
            moments: self.moments.iter().map(Deltas::cast).collect(),
        }
    }

    /// Checks that the state fits `optimizer` on `network` (a checkpoint's, before use).
    pub fn check(&self, optimizer: &Optimizer, network: &Network<T>) -> Result<()> {
        let expected = Self::zeros(optimizer, network);
        let same_shapes = self.moments.len() == expected.moments.len()
            && self.moments.iter().all(|m| {
                m.weights.len() == network.weights().len()
                    && m.weights
                        .iter()
                        .zip(network.weights())
                        .all(|(a, b)| a.dim() == b.dim())
                    && match (&m.biases, network.biases()) {
                        (Some(a), Some(b)) => {
                            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.len() == b.len())
                        }
                        (None, None) => true,
                        _ => false,
                    }
            });
        if same_shapes {
            Ok(())
        } else {
            Err(Error::Shape(format!(
                "the optimizer state holds {} moments that do not match the network's parameters ({} expected for {})",
                self.moments.len(),
                expected.moments.len(),
                optimizer.method.name()
            )))
        }
    }
}

/// One step of `optimizer` on `network` from the batch's `gradient`, advancing `state`.
pub fn step<T: Float>(
    optimizer: &Optimizer,
    learnrate: f64,
    network: &mut Network<T>,
    gradient: &Deltas<T>,
    state: &mut OptimizerState<T>,
) {
    state.step += 1;
    let values = optimizer
        .step_values(learnrate, state.step)
        .0
        .map(|v| T::from_f64(v).unwrap_or_else(T::nan));
    let rule = optimizer.rule();
    let mut moments = state.moments.iter_mut();
    // Per tensor, its moments' values, for the rules that keep them.
    let mut first = moments
        .next()
        .map(|m| slices_mut(&mut m.weights, m.biases.as_mut()).into_iter());
    let mut second = moments
        .next()
        .map(|m| slices_mut(&mut m.weights, m.biases.as_mut()).into_iter());
    let (weights, biases) = network.parameters_mut();
    let n_weights = weights.len();
    // Row-major values of each gradient tensor, matching `slices_mut`'s.
    fn row_major<'a, T: Float, D: ndarray::Dimension>(
        a: &'a ndarray::Array<T, D>,
    ) -> std::borrow::Cow<'a, [T]> {
        match a.as_slice() {
            Some(values) => std::borrow::Cow::Borrowed(values),
            None => std::borrow::Cow::Owned(a.iter().copied().collect()),
        }
    }
    let gradients = gradient
        .weights
        .iter()
        .map(row_major)
        .chain(gradient.biases.iter().flatten().map(row_major));
    for (k, (w, g)) in slices_mut(weights, biases)
        .into_iter()
        .zip(gradients)
        .enumerate()
    {
        let m = first.as_mut().and_then(Iterator::next);
        let v = second.as_mut().and_then(Iterator::next);
        let l2 = if k < n_weights {
            L2_OF_WEIGHTS
        } else {
            L2_OF_BIASES
        };
        update_tensor(rule, (&values, l2), w, &g, m, v);
    }
}

/// [`update`] over one tensor's values (weights, gradient and moments in the same layout),
/// one loop per number of moments so that each is a plain pass over slices.
fn update_tensor<T: Float>(
    rule: Rule,
    values: (&[T; STEP_VALUES], usize),
    w: &mut [T],
    g: &[T],
    m: Option<&mut [T]>,
    v: Option<&mut [T]>,
) {
    let zero = T::zero();
    match (m, v) {
        (Some(m), Some(v)) => {
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
                [*w, *m, *v] = update(rule, values, *w, g, *m, *v);
            }
        }
        (Some(m), None) => {
            for ((w, &g), m) in w.iter_mut().zip(g).zip(m) {
                [*w, *m, _] = update(rule, values, *w, g, *m, zero);
            }
        }
        _ => {
            for (w, &g) in w.iter_mut().zip(g) {
                [*w, _, _] = update(rule, values, *w, g, zero, zero);
            }
        }
    }
}

/// Every tensor's values as one row-major slice, the weights then the biases. Arrays made by
/// this crate are row-major; one that is not is made so first.
fn slices_mut<'a, T: Float>(
    weights: &'a mut [Array2<T>],
    biases: Option<&'a mut Vec<Array1<T>>>,
) -> Vec<&'a mut [T]> {
    fn contiguous<T: Float, D: ndarray::Dimension>(a: &mut ndarray::Array<T, D>) -> &mut [T] {
        if !a.is_standard_layout() {
            *a = a.as_standard_layout().into_owned();
        }
        a.as_slice_mut().unwrap_or_default()
    }
    weights
        .iter_mut()
        .map(contiguous)
        .chain(biases.into_iter().flatten().map(contiguous))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn short_values_drop_trailing_zeros_and_never_run_to_dozens_of_digits() {
        assert_eq!(short(0.3), "0.3");
        assert_eq!(short(0.001), "0.001");
        assert_eq!(short(0.999), "0.999");
        assert_eq!(short(1e-8), "1e-8");
        assert_eq!(short(0.00025), "2.5e-4");
        assert_eq!(short(12.5), "12.5");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(7.5e29), "7.5e29");
        assert_eq!(short(1e200), "1e200");
    }
}
