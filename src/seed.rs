//! The seeds' worked exercise (seeds 000-002): the built-in problem of `backprop step`.

use ndarray::{array, Array2};

use crate::io::WeightsFile;
use crate::model::{Activation, Network};

/// The seed exercise: x = [0.5, 0.1, -0.2], target 0.6, learnrate 0.5 and the seed's weights,
/// with `weights_hidden_to_output` a 1-D vector as the seed writes it.
pub struct SeedExercise {
    pub weights: WeightsFile,
    pub x: Array2<f64>,
    pub target: Array2<f64>,
    pub learnrate: f64,
}

pub fn exercise() -> SeedExercise {
    let weights_input_to_hidden = array![[0.5, -0.6], [0.1, -0.2], [0.1, 0.7]];
    let weights_hidden_to_output = array![[0.1], [-0.3]];
    SeedExercise {
        weights: WeightsFile {
            network: Network::new(
                vec![weights_input_to_hidden, weights_hidden_to_output],
                Activation::Sigmoid,
            )
            .expect("the seed's weights chain"),
            stored_shapes: vec![vec![3, 2], vec![2]],
        },
        x: array![[0.5, 0.1, -0.2]],
        target: array![[0.6]],
        learnrate: 0.5,
    }
}
