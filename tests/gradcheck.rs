//! Finite differences: every delta (weights and biases) equals -lr * dE/dθ, for every hidden
//! activation x output x loss combination, with and without biases. E is the batch mean of
//! the per-record loss whose output error term the kernels compute: ½Σ(t - y)² for squared
//! error, -Σ t·ln y for softmax + cross-entropy, -Σ (t·ln y + (1 - t)·ln(1 - y)) for sigmoid +
//! cross-entropy.

mod common;

use backprop::validate::{all_specs, problem, Case};
use backprop::{cpu, Activation, Loss, Network, Spec};
use ndarray::{Array1, Array2, ArrayView2};

fn batch_loss(network: &Network<f64>, x: ArrayView2<f64>, target: ArrayView2<f64>) -> f64 {
    let outputs = cpu::forward(network, x);
    let y = &outputs[outputs.len() - 1];
    let spec = network.spec();
    let per_value = |t: f64, y: f64| match (spec.loss, spec.output) {
        (Loss::Mse, _) => 0.5 * (t - y) * (t - y),
        (Loss::CrossEntropy, Activation::Softmax) => -t * y.ln(),
        (Loss::CrossEntropy, _) => -(t * y.ln() + (1.0 - t) * (1.0 - y).ln()),
    };
    y.iter()
        .zip(target)
        .map(|(&y, &t)| per_value(t, y))
        .sum::<f64>()
        / x.nrows() as f64
}

/// Central differences of the batch loss in each parameter that `perturb` shifts: truncation
/// error O(h²) ≈ 1e-10 and rounding error ≈ 1e-16 / h ≈ 1e-11 relative to E, far below 1e-6.
fn numeric_gradient(count: usize, mut loss_with: impl FnMut(usize, f64) -> f64) -> Array1<f64> {
    let h = 1e-5;
    Array1::from_shape_fn(count, |i| (loss_with(i, h) - loss_with(i, -h)) / (2.0 * h))
}

fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    let norm = |a: &[f64]| a.iter().map(|v| v * v).sum::<f64>().sqrt();
    let diff: Vec<f64> = got.iter().zip(want).map(|(a, b)| a - b).collect();
    norm(&diff) / norm(got).max(norm(want)).max(1e-300)
}

#[test]
fn deltas_are_minus_lr_times_the_gradient_for_every_network_kind() {
    let learnrate = 0.7;
    let mut checked = 0;
    let seeds = [
        Spec::seeds(Activation::Sigmoid),
        Spec::seeds(Activation::Identity),
    ];
    for spec in all_specs().into_iter().chain(seeds) {
        for bias in [false, true] {
            for (sizes, records) in [
                (vec![1, 1, 1], 1),
                (vec![3, 5, 2], 5),
                (vec![4, 6, 5, 3], 4),
            ] {
                let case = Case {
                    records,
                    layer_sizes: sizes.clone(),
                    spec,
                    bias,
                };
                let (network, x, target) = problem(&case, checked as u64).unwrap();
                let deltas = cpu::backward(&network, x.view(), target.view(), learnrate).unwrap();
                let what = case.describe();
                for l in 0..network.weights().len() {
                    let shape = network.weights()[l].dim();
                    let expected = numeric_gradient(shape.0 * shape.1, |i, by| {
                        let mut weights = network.weights().to_vec();
                        weights[l][[i / shape.1, i % shape.1]] += by;
                        let biases = network.biases().map(|b| b.to_vec());
                        let net = Network::with_spec(weights, biases, spec).unwrap();
                        batch_loss(&net, x.view(), target.view())
                    }) * -learnrate;
                    let got: Vec<f64> = deltas.weights[l].iter().copied().collect();
                    let error = relative_error(&got, expected.as_slice().unwrap());
                    assert!(
                        error < 1e-6,
                        "{what}, weights {l}: relative error {error:e}"
                    );
                    checked += 1;
                    let (Some(biases), Some(got)) = (network.biases(), &deltas.biases) else {
                        continue;
                    };
                    let expected = numeric_gradient(biases[l].len(), |i, by| {
                        let mut shifted = biases.to_vec();
                        shifted[l][i] += by;
                        let net =
                            Network::with_spec(network.weights().to_vec(), Some(shifted), spec)
                                .unwrap();
                        batch_loss(&net, x.view(), target.view())
                    }) * -learnrate;
                    let error =
                        relative_error(got[l].as_slice().unwrap(), expected.as_slice().unwrap());
                    assert!(error < 1e-6, "{what}, biases {l}: relative error {error:e}");
                    checked += 1;
                }
                assert_eq!(deltas.biases.is_some(), bias, "{what}");
            }
        }
    }
    // 5 hidden activations x 4 output/loss pairs + the 2 seeds' networks = 22 kinds; with and
    // without biases, over 2 + 2 + 3 layers: 22 x (7 + 14) weight and bias checks.
    assert_eq!(checked, 22 * (7 + 14));
}

#[test]
fn the_seeds_network_gives_the_seeds_deltas_without_biases() {
    let x = Array2::from_shape_vec((1, 3), vec![0.5, 0.1, -0.2]).unwrap();
    let target = Array2::from_elem((1, 1), 0.6);
    let network = Network::new(
        vec![
            Array2::from_shape_vec((3, 2), vec![0.5, -0.6, 0.1, -0.2, 0.1, 0.7]).unwrap(),
            Array2::from_shape_vec((2, 1), vec![0.1, -0.3]).unwrap(),
        ],
        Activation::Sigmoid,
    )
    .unwrap();
    let deltas = cpu::backward(&network, x.view(), target.view(), 0.5).unwrap();
    assert!(deltas.biases.is_none());
    let h_o = &deltas.weights[1];
    let (a, b): (f64, f64) = (h_o[[0, 0]], h_o[[1, 0]]);
    assert!((a - 0.00804047).abs() < 1e-8 && (b - 0.00555918).abs() < 1e-8);
}
