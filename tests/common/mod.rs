//! Helpers shared by the integration tests: seeded random problems.

#![allow(dead_code)]

use backprop::{Activation, Network};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A random batch problem: network with the given layer sizes, `n_records` inputs in [-1, 1),
/// targets in [0, 1) (valid for both output activations).
pub struct Problem {
    pub network: Network<f64>,
    pub x: Array2<f64>,
    pub target: Array2<f64>,
}

pub fn problem(
    layer_sizes: &[usize],
    n_records: usize,
    output: Activation,
    rng: &mut ChaCha8Rng,
) -> Problem {
    let network = Network::random(layer_sizes, output, rng).expect("valid sizes");
    let x =
        Array2::from_shape_simple_fn((n_records, layer_sizes[0]), || rng.random_range(-1.0..1.0));
    let n_outputs = layer_sizes[layer_sizes.len() - 1];
    let target =
        Array2::from_shape_simple_fn((n_records, n_outputs), || rng.random_range(0.0..1.0));
    Problem { network, x, target }
}

/// Whether the GPU tests must run (CI sets `BACKPROP_REQUIRE_GPU=1`).
pub fn gpu_required() -> bool {
    std::env::var("BACKPROP_REQUIRE_GPU").is_ok_and(|v| v == "1")
}
