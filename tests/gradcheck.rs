//! Finite differences: every delta equals -lr * dE/dw, with E the batch mean of ½Σ(t - y)².

mod common;

use backprop::{cpu, Activation, Network};
use ndarray::{Array2, ArrayView2};

fn half_squared_error(network: &Network<f64>, x: ArrayView2<f64>, target: ArrayView2<f64>) -> f64 {
    let outputs = cpu::forward(network, x);
    let y = &outputs[outputs.len() - 1];
    0.5 * (&target - y).mapv(|e| e * e).sum() / x.nrows() as f64
}

fn numeric_gradient(
    network: &Network<f64>,
    x: ArrayView2<f64>,
    target: ArrayView2<f64>,
    l: usize,
) -> Array2<f64> {
    // Central differences: truncation error O(h²) ≈ 1e-10 and rounding error ≈ 1e-16 / h ≈ 1e-11
    // relative to E, both far below the 1e-6 bound.
    let h = 1e-5;
    let shape = network.weights()[l].dim();
    Array2::from_shape_fn(shape, |(i, j)| {
        let shifted = |by: f64| {
            let mut weights = network.weights().to_vec();
            weights[l][[i, j]] += by;
            let net = Network::new(weights, network.output_activation()).unwrap();
            half_squared_error(&net, x, target)
        };
        (shifted(h) - shifted(-h)) / (2.0 * h)
    })
}

#[test]
fn deltas_are_minus_lr_times_the_gradient() {
    let mut rng = common::rng(11);
    let learnrate = 0.7;
    let mut checked = 0;
    for sizes in [
        vec![1, 1, 1],
        vec![3, 5, 2],
        vec![7, 4, 3],
        vec![4, 6, 5, 3],
        vec![2, 3, 3, 1],
    ] {
        for output in [Activation::Sigmoid, Activation::Identity] {
            for n_records in [1, 5] {
                let p = common::problem(&sizes, n_records, output, &mut rng);
                let deltas =
                    cpu::backward(&p.network, p.x.view(), p.target.view(), learnrate).unwrap();
                for (l, delta) in deltas.iter().enumerate() {
                    let expected =
                        numeric_gradient(&p.network, p.x.view(), p.target.view(), l) * -learnrate;
                    let norm = |a: &Array2<f64>| a.mapv(|v| v * v).sum().sqrt();
                    let error =
                        norm(&(delta - &expected)) / norm(delta).max(norm(&expected)).max(1e-300);
                    assert!(
                        error < 1e-6,
                        "sizes {sizes:?}, {output}, {n_records} records, layer {l}: relative error {error:e}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 2 * 2 * (2 + 2 + 2 + 3 + 3));
}
