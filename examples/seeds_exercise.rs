//! The seeds' worked exercise through the facade: one backward pass of the 3-2-1 sigmoid
//! network on x = [0.5, 0.1, -0.2], target 0.6, learning rate 0.5, on the CPU reference.
//! Seed 002 gives `delta_w_h_o = [0.00804047, 0.00555918]`.
//!
//! ```sh
//! cargo run --example seeds_exercise
//! ```

use backprop::mlp::{step, Device};
use backprop::{Activation, Network};
use ndarray::array;

fn main() -> Result<(), backprop::Error> {
    let weights_input_to_hidden = array![[0.5, -0.6], [0.1, -0.2], [0.1, 0.7]];
    let weights_hidden_to_output = array![[0.1], [-0.3]];
    let network = Network::new(
        vec![weights_input_to_hidden, weights_hidden_to_output],
        Activation::Sigmoid,
    )?;
    let x = array![[0.5, 0.1, -0.2]];
    let target = array![[0.6]];
    let deltas = step(&network, x.view(), target.view(), 0.5, &Device::cpu())?;
    println!("delta_w_i_h =\n{:.8}", deltas.weights[0]);
    println!("delta_w_h_o = {:.8}", deltas.weights[1].column(0));
    let expected = [0.00804047, 0.00555918];
    for (got, want) in deltas.weights[1].iter().zip(expected) {
        assert!((got - want).abs() < 5e-9, "{got} is not the seed's {want}");
    }
    println!("matches seed 002: [0.00804047, 0.00555918]");
    Ok(())
}
