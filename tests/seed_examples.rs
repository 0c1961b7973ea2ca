//! The seeds' worked examples, reproduced by the CPU reference.

mod common;

use approx::assert_abs_diff_eq;
use backprop::report::numpy_format::format_array;
use backprop::{cpu, seed, Activation, Network};
use ndarray::{array, s, Array2, Axis};

/// NumPy 2.4's float64 result of seed 000's exercise, printed with 17 significant digits.
#[allow(clippy::excessive_precision)]
fn numpy_delta_w_h_o() -> Array2<f64> {
    array![[0.00804047394804529], [0.00555918091168283]]
}

#[allow(clippy::excessive_precision)]
fn numpy_delta_w_i_h() -> Array2<f64> {
    array![
        [1.7700554663735340e-04, -5.1117850598771553e-04],
        [3.5401109327470683e-05, -1.0223570119754312e-04],
        [-7.0802218654941366e-05, 2.0447140239508623e-04]
    ]
}

#[test]
fn seed_exercise_in_f64_matches_numpy_to_1e_10() {
    let ex = seed::exercise();
    let deltas = cpu::backward(
        &ex.weights.network,
        ex.x.view(),
        ex.target.view(),
        ex.learnrate,
    )
    .unwrap();
    // f64 against NumPy's f64 on a 3-2-1 network: a handful of roundings of 1e-16 each; 1e-10
    // is far above them and far below any formula mistake.
    assert_abs_diff_eq!(deltas.weights[0], numpy_delta_w_i_h(), epsilon = 1e-10);
    assert_abs_diff_eq!(deltas.weights[1], numpy_delta_w_h_o(), epsilon = 1e-10);
}

#[test]
fn seed_exercise_in_f32_matches_numpy_to_1e_6_relative() {
    let ex = seed::exercise();
    let net: Network<f32> = ex.weights.network.cast();
    let deltas = cpu::backward(
        &net,
        ex.x.mapv(|v| v as f32).view(),
        ex.target.mapv(|v| v as f32).view(),
        ex.learnrate as f32,
    )
    .unwrap();
    // f32 rounds at 6e-8 relative; about ten chained operations with no cancellation stay
    // within 1e-6 relative of the f64 result.
    for (got, want) in deltas
        .weights
        .iter()
        .zip([numpy_delta_w_i_h(), numpy_delta_w_h_o()])
    {
        for (g, w) in got.iter().zip(want.iter()) {
            let rel = (f64::from(*g) - w).abs() / w.abs();
            assert!(rel < 1e-6, "f32 {g} vs f64 {w}: relative error {rel}");
        }
    }
}

#[test]
fn seed_exercise_prints_the_seed_digits() {
    let ex = seed::exercise();
    let deltas = cpu::backward(
        &ex.weights.network,
        ex.x.view(),
        ex.target.view(),
        ex.learnrate,
    )
    .unwrap();
    let delta_w_h_o = deltas.weights[1].column(0).to_owned().into_dyn();
    assert_eq!(format_array(delta_w_h_o.view()), "[0.00804047 0.00555918]");
    assert_eq!(
        format_array(deltas.weights[0].view().into_dyn()),
        "[[ 1.77005547e-04 -5.11178506e-04]\n [ 3.54011093e-05 -1.02235701e-04]\n [-7.08022187e-05  2.04471402e-04]]"
    );
}

/// Seed 003's worked example: inputs x = (0.1, 0.3), weights w = (0.4, -0.2), one hidden unit,
/// W = 0.1 to one output unit, target 1, learning rate 0.5.
#[test]
fn seed_003_worked_example() {
    let network = Network::new(
        vec![array![[0.4], [-0.2]], array![[0.1]]],
        Activation::Sigmoid,
    )
    .unwrap();
    let (x, target) = (array![[0.1, 0.3]], array![[1.0]]);
    let outputs = cpu::forward(&network, x.view());
    // The seed rounds each intermediate to three decimals.
    assert_abs_diff_eq!(outputs[0][[0, 0]], 0.495, epsilon = 5e-4);
    assert_abs_diff_eq!(outputs[1][[0, 0]], 0.512, epsilon = 5e-4);
    let terms = cpu::error_terms(&network, &outputs, target.view());
    assert_abs_diff_eq!(terms[1][[0, 0]], 0.122, epsilon = 5e-4);
    assert_abs_diff_eq!(terms[0][[0, 0]], 0.003, epsilon = 5e-4);

    let deltas = cpu::backward(&network, x.view(), target.view(), 0.5).unwrap();
    // ΔW = 0.0302 at the seed's four decimals.
    assert_abs_diff_eq!(deltas.weights[1][[0, 0]], 0.0302, epsilon = 5e-5);
    // Δw = (0.00015, 0.00045): the seed rounds δh = 0.00305 down to 0.003 before multiplying,
    // so its figures are 1.7% low; 1e-5 covers that and nothing more.
    assert_abs_diff_eq!(
        deltas.weights[0],
        array![[0.00015], [0.00045]],
        epsilon = 1e-5
    );
}

#[test]
fn a_batch_steps_by_the_mean_of_its_one_record_steps() {
    let mut rng = common::rng(3);
    for (sizes, n_records, output) in [
        (vec![3, 2, 1], 1, Activation::Sigmoid),
        (vec![5, 7, 3], 4, Activation::Sigmoid),
        (vec![6, 5, 4, 2], 11, Activation::Identity),
    ] {
        let p = common::problem(&sizes, n_records, output, &mut rng);
        let batch = cpu::backward(&p.network, p.x.view(), p.target.view(), 0.3).unwrap();
        for (l, delta) in batch.weights.iter().enumerate() {
            let mean = (0..n_records)
                .map(|b| {
                    let one = cpu::backward(
                        &p.network,
                        p.x.slice(s![b..b + 1, ..]),
                        p.target.slice(s![b..b + 1, ..]),
                        0.3,
                    )
                    .unwrap();
                    one.weights[l].clone()
                })
                .reduce(|a, b| a + b)
                .unwrap()
                / n_records as f64;
            assert_abs_diff_eq!(*delta, mean, epsilon = 1e-14);
        }
    }
}

#[test]
fn applying_a_step_lowers_the_loss() {
    let mut rng = common::rng(4);
    let p = common::problem(&[4, 6, 2], 8, Activation::Sigmoid, &mut rng);
    let loss = |net: &Network<f64>| {
        let out = cpu::forward(net, p.x.view());
        cpu::mean_squared_error(out[1].view(), p.target.view())
    };
    let mut net = p.network.clone();
    let before = loss(&net);
    let deltas = cpu::backward(&net, p.x.view(), p.target.view(), 0.5).unwrap();
    net.apply_deltas(&deltas).unwrap();
    assert!(loss(&net) < before, "{} !< {before}", loss(&net));
    assert_eq!(net.weights()[0].len_of(Axis(0)), 4);
}
