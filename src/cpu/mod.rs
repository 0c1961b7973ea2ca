//! The CPU reference: the seeds' lines, one to one, in ndarray, generic over f32 and f64, and
//! the same lines with biases, other activations and cross-entropy beside them.
//!
//! `matmul(a, b)` is `np.dot(a, b)` (see `linalg.rs`). Each function here has a WGSL twin in
//! `shaders/` with the same name and formula; the GPU
//! backend is tested against these. A batch holds one record per row; the deltas of a batch are
//! the mean of its per-record deltas (seed 004's `delta / n_records`), so a batch of one is the
//! seed exercise exactly.

mod backend;

pub use backend::CpuBackend;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Zip};

use crate::error::{Error, Result};
use crate::linalg::{map_inplace, matmul, scaled_matmul, zip_map};
use crate::model::{Activation, Deltas, Float, Loss, Network};
use crate::ops::activation::softmax_row;

/// `1 / (1 + np.exp(-x))`
pub fn sigmoid<T: Float>(x: T) -> T {
    Activation::Sigmoid.apply(x)
}

/// One layer of the forward pass, `activation(np.dot(layer_input, weights) + bias)`:
/// `hidden_layer_out = sigmoid(np.dot(x, weights_input_to_hidden))` for a seeds' hidden layer.
/// Twin of `shaders/forward.wgsl` (and of `shaders/softmax.wgsl` for a softmax output).
pub fn layer_forward<T: Float>(
    layer_input: ArrayView2<T>,
    weights: ArrayView2<T>,
    bias: Option<ArrayView1<T>>,
    activation: Activation,
) -> Array2<T> {
    let mut layer_out = matmul(layer_input, weights);
    if let Some(bias) = bias {
        layer_out.zip_mut_with(&bias, |v, &b| *v = *v + b);
    }
    activate(&mut layer_out, activation);
    layer_out
}

/// A layer's activation applied in place to its pre-activation (softmax row by row).
pub fn activate<T: Float>(layer_out: &mut Array2<T>, activation: Activation) {
    match activation {
        Activation::Identity => {}
        Activation::Softmax => {
            for mut row in layer_out.rows_mut() {
                if let Some(values) = row.as_slice_mut() {
                    softmax_row(values);
                }
            }
        }
        other => map_inplace(layer_out, |v| other.apply(v)),
    }
}

/// The forward pass: every layer's output, hidden layers first, `output_layer_out` last.
pub fn forward<T: Float>(network: &Network<T>, x: ArrayView2<T>) -> Vec<Array2<T>> {
    let weights = network.weights();
    let mut layer_outputs: Vec<Array2<T>> = Vec::with_capacity(weights.len());
    for (l, w) in weights.iter().enumerate() {
        let layer_input = layer_outputs.last().map_or(x, |h| h.view());
        let bias = network.biases().map(|b| b[l].view());
        let out = layer_forward(layer_input, w.view(), bias, network.activation(l));
        layer_outputs.push(out);
    }
    layer_outputs
}

/// `error = target - output_layer_out`, then for the seeds' squared error
/// `output_error_term = error * output_layer_out * (1 - output_layer_out)` for a sigmoid output
/// and `output_error_term = error` for an identity output (seed 004); with cross-entropy (and a
/// sigmoid or softmax output) the slope cancels: `output_error_term = error`.
/// Twin of `output_error_term` in `shaders/error_terms.wgsl`.
pub fn output_error_term<T: Float>(
    target: ArrayView2<T>,
    output_layer_out: ArrayView2<T>,
    activation: Activation,
    loss: Loss,
) -> Array2<T> {
    zip_map(target, output_layer_out, |t, y| {
        loss.output_error_term(activation, t, y)
    })
}

/// `hidden_error = np.dot(output_error_term, weights_hidden_to_output.T)`, then
/// `hidden_error_term = hidden_error * hidden_layer_out * (1 - hidden_layer_out)` for the seeds'
/// sigmoid (the activation's slope, from its output, in general). For deeper networks the
/// "output" side is the next layer. Twin of `hidden_error_term` in `shaders/error_terms.wgsl`.
pub fn hidden_error_term<T: Float>(
    next_error_term: ArrayView2<T>,
    weights_to_next: ArrayView2<T>,
    hidden_layer_out: ArrayView2<T>,
    activation: Activation,
) -> Array2<T> {
    let hidden_error = matmul(next_error_term, weights_to_next.t());
    zip_map(hidden_error.view(), hidden_layer_out, |e, h| {
        e * activation.slope_from_output(h)
    })
}

/// `delta_w = learnrate * np.outer(layer_input, error_term)`, averaged over the batch:
/// `learnrate / n_records * np.dot(layer_input.T, error_term)`. Twin of `shaders/weight_update.wgsl`.
pub fn delta_weights<T: Float>(
    learnrate: T,
    error_term: ArrayView2<T>,
    layer_input: ArrayView2<T>,
) -> Array2<T> {
    let n_records = T::from_usize(layer_input.nrows()).unwrap_or_else(T::one);
    scaled_matmul(learnrate / n_records, layer_input.t(), error_term)
}

/// `delta_b = learnrate * error_term`, averaged over the batch: a bias is a weight whose input
/// is always 1. Twin of `shaders/bias_update.wgsl`.
pub fn delta_bias<T: Float>(learnrate: T, error_term: ArrayView2<T>) -> Array1<T> {
    let n_records = T::from_usize(error_term.nrows()).unwrap_or_else(T::one);
    error_term.sum_axis(Axis(0)) * (learnrate / n_records)
}

/// Every layer's error term, computed from the output back to the first hidden layer with the
/// weights as they are before this step's update.
pub fn error_terms<T: Float>(
    network: &Network<T>,
    layer_outputs: &[Array2<T>],
    target: ArrayView2<T>,
) -> Vec<Array2<T>> {
    let spec = network.spec();
    let output_term = output_error_term(
        target,
        layer_outputs[layer_outputs.len() - 1].view(),
        spec.output,
        spec.loss,
    );
    error_terms_from_output(network, layer_outputs, output_term)
}

/// [`error_terms`] from an output error term computed elsewhere (hidden-layer-parallel training
/// computes it from the output pre-activation summed over the ranks' slices of the hidden layer).
pub fn error_terms_from_output<T: Float>(
    network: &Network<T>,
    layer_outputs: &[Array2<T>],
    output_error_term: Array2<T>,
) -> Vec<Array2<T>> {
    let weights = network.weights();
    let mut terms = vec![output_error_term];
    for l in (0..weights.len() - 1).rev() {
        let next = &terms[terms.len() - 1];
        let term = hidden_error_term(
            next.view(),
            weights[l + 1].view(),
            layer_outputs[l].view(),
            network.spec().hidden,
        );
        terms.push(term);
    }
    terms.reverse();
    terms
}

/// One backward pass on a batch: the mean deltas of every layer, first layer first
/// (`delta_w_i_h`, …, `delta_w_h_o`, and the biases' `delta_b_h`, …). The weights are not
/// changed.
pub fn backward<T: Float>(
    network: &Network<T>,
    x: ArrayView2<T>,
    target: ArrayView2<T>,
    learnrate: T,
) -> Result<Deltas<T>> {
    check_batch(
        network.n_inputs(),
        network.n_outputs(),
        x.dim(),
        target.dim(),
    )?;
    let layer_outputs = forward(network, x);
    Ok(deltas_from_outputs(
        network,
        x,
        &layer_outputs,
        target,
        learnrate,
    ))
}

/// The second half of [`backward`]: the deltas of every layer from the forward pass's
/// `layer_outputs` (so a caller can look at the outputs first).
pub fn deltas_from_outputs<T: Float>(
    network: &Network<T>,
    x: ArrayView2<T>,
    layer_outputs: &[Array2<T>],
    target: ArrayView2<T>,
    learnrate: T,
) -> Deltas<T> {
    let terms = error_terms(network, layer_outputs, target);
    deltas_from_error_terms(network, x, layer_outputs, &terms, learnrate)
}

/// The deltas of every layer, `learnrate / n_records · layer_inputᵀ · error_term`, and the
/// biases' when the network has them.
pub fn deltas_from_error_terms<T: Float>(
    network: &Network<T>,
    x: ArrayView2<T>,
    layer_outputs: &[Array2<T>],
    terms: &[Array2<T>],
    learnrate: T,
) -> Deltas<T> {
    let weights = terms
        .iter()
        .enumerate()
        .map(|(l, term)| {
            let layer_input = if l == 0 {
                x
            } else {
                layer_outputs[l - 1].view()
            };
            delta_weights(learnrate, term.view(), layer_input)
        })
        .collect();
    let biases = network.biases().map(|_| {
        terms
            .iter()
            .map(|term| delta_bias(learnrate, term.view()))
            .collect()
    });
    Deltas { weights, biases }
}

/// The seeds' loss on a batch: the mean over records and outputs of `(target - output)^2`.
pub fn mean_squared_error<T: Float>(output: ArrayView2<T>, target: ArrayView2<T>) -> T {
    Zip::from(&output)
        .and(&target)
        .fold(T::zero(), |acc, &y, &t| acc + (t - y) * (t - y))
        / T::from_usize(output.len().max(1)).unwrap_or_else(T::one)
}

/// Checks that a batch `x` (records x inputs) and `target` (records x outputs) fit a network
/// with `n_inputs` inputs and `n_outputs` outputs.
pub fn check_batch(
    n_inputs: usize,
    n_outputs: usize,
    x: (usize, usize),
    target: (usize, usize),
) -> Result<()> {
    if x.0 == 0 {
        return Err(Error::Shape("the batch holds no records".into()));
    }
    if x.1 != n_inputs {
        return Err(Error::Shape(format!(
            "input is {x:?} (records x features) but `weights_input_to_hidden` expects {n_inputs} features"
        )));
    }
    if target != (x.0, n_outputs) {
        return Err(Error::Shape(format!(
            "target is {target:?} but the input has {} records and the network {n_outputs} outputs, so it must be {:?}",
            x.0,
            (x.0, n_outputs)
        )));
    }
    Ok(())
}
