//! The optimizers: Adam against its published update on a two-step example worked by hand, and
//! every optimizer's steps on the CPU (f32) and the GPU against the f64 reference over several
//! epochs, on networks with biases, awkward widths and a layer split across bindings.

mod common;

use std::sync::{Arc, OnceLock};

use backprop::gpu::context::GpuContext;
use backprop::gpu::{GpuBackend, GpuDevice, GpuOptions};
use backprop::model::{Init, Spec};
use backprop::ops::optimizer::{
    update, Method, Optimizer, OptimizerState, Rule, L2_OF_BIASES, L2_OF_WEIGHTS,
};
use backprop::train::epoch_order;
use backprop::{Activation, Backend, CpuBackend, Loss, Network};
use ndarray::Array2;
use rand::Rng;

/// Adam (Kingma & Ba, Algorithm 1, with PyTorch's order of operations) on one weight w = 1
/// with gradients 0.5 then −0.25, lr 0.1, β1 0.9, β2 0.999, ε 1e-8, worked by hand:
///   t=1: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25, w = 1 − 0.1·0.5/(0.5 + ε) = 0.900000002
///   t=2: m = 0.9·0.05 − 0.1·0.25 = 0.02, v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225,
///        m̂ = 0.02/0.19, v̂ = 0.00031225/0.001999, w = 0.900000002 − 0.1·m̂/(√v̂ + ε)
///        = 0.873366299 (to 9 places)
/// AdamW with λ = 0.01 first scales w by 1 − lr·λ = 0.999: 0.899000002, then 0.871467299.
#[test]
fn adam_and_adamw_match_their_published_update_on_a_two_step_example() {
    let run = |method: Method, weight_decay: f64| {
        let optimizer = Optimizer {
            method,
            weight_decay,
            ..Optimizer::default()
        };
        let (mut w, mut m, mut v) = (1.0f64, 0.0, 0.0);
        let mut after = Vec::new();
        for (t, g) in [(1, 0.5), (2, -0.25)] {
            let values = optimizer.step_values(0.1, t).0;
            [w, m, v] = update(Rule::Adam, (&values, L2_OF_WEIGHTS), w, g, m, v);
            after.push((w, m, v));
        }
        after
    };
    let adam = run(Method::Adam, 0.0);
    assert!((adam[0].0 - 0.900000002).abs() < 1e-12, "{adam:?}");
    assert!((adam[0].1 - 0.05).abs() < 1e-15 && (adam[0].2 - 0.00025).abs() < 1e-15);
    assert!((adam[1].1 - 0.02).abs() < 1e-15 && (adam[1].2 - 0.00031225).abs() < 1e-15);
    assert!((adam[1].0 - 0.873366299).abs() < 1e-9, "{adam:?}");
    let adamw = run(Method::Adamw, 0.01);
    assert!((adamw[0].0 - 0.899000002).abs() < 1e-12, "{adamw:?}");
    assert!((adamw[1].0 - 0.871467299).abs() < 1e-9, "{adamw:?}");
}

/// Momentum and Nesterov on one weight, gradients 1 then 1, lr 0.1, μ 0.9 (PyTorch's SGD):
/// momentum: b = 1, w = 0.9; b = 1.9, w = 0.71. Nesterov: b = 1, step 1 + 0.9 = 1.9, w = 0.81;
/// b = 1.9, step 1 + 1.71 = 2.71, w = 0.539. SGD with L2 λ = 0.5: g = 1 + 0.5, w = 0.85.
#[test]
fn momentum_nesterov_and_l2_follow_pytorch() {
    let two_steps = |optimizer: Optimizer| {
        let rule = optimizer.rule();
        let (mut w, mut m, mut v) = (1.0f64, 0.0, 0.0);
        for t in 1..=2 {
            let values = optimizer.step_values(0.1, t).0;
            [w, m, v] = update(rule, (&values, L2_OF_WEIGHTS), w, 1.0, m, v);
        }
        w
    };
    let momentum = Optimizer {
        method: Method::Momentum,
        ..Optimizer::default()
    };
    assert!((two_steps(momentum) - 0.71).abs() < 1e-12);
    let nesterov = Optimizer {
        nesterov: true,
        ..momentum
    };
    assert!((two_steps(nesterov) - 0.539).abs() < 1e-12);
    let l2 = Optimizer {
        weight_decay: 0.5,
        ..Optimizer::default()
    };
    let values = l2.step_values(0.1, 1).0;
    let step = |l2_of| update(l2.rule(), (&values, l2_of), 1.0f64, 1.0, 0.0, 0.0)[0];
    assert!((step(L2_OF_WEIGHTS) - 0.85).abs() < 1e-12);
    assert!((step(L2_OF_BIASES) - 0.85).abs() < 1e-12);
    assert_eq!(Optimizer::default().rule(), Rule::Plain);
    // scikit-learn's alpha: an L2 term on the weights only, so the bias steps by the bare
    // gradient (w = 1 − 0.1·1 = 0.9) while a weight also decays (1 − 0.1·1.5 = 0.85).
    let weights_only = Optimizer {
        l2_weights: 0.5,
        ..Optimizer::default()
    };
    assert_eq!(weights_only.rule(), Rule::Sgd);
    let values = weights_only.step_values(0.1, 1).0;
    let step = |l2_of| update(Rule::Sgd, (&values, l2_of), 1.0f64, 1.0, 0.0, 0.0)[0];
    assert!((step(L2_OF_WEIGHTS) - 0.85).abs() < 1e-12);
    assert!((step(L2_OF_BIASES) - 0.9).abs() < 1e-12);
}

/// A network with biases and its data: `spec` on `layer_sizes`, 41 records (batches of 16, 16
/// and 9), targets one-hot for softmax and in [0, 1) otherwise.
fn problem(
    layer_sizes: &[usize],
    spec: Spec,
    seed: u64,
) -> (Network<f64>, Array2<f64>, Array2<f64>) {
    let mut rng = common::rng(seed);
    let network = Network::random_with(layer_sizes, spec, Init::Auto, true, &mut rng).unwrap();
    let outputs = layer_sizes[layer_sizes.len() - 1];
    let x = Array2::from_shape_simple_fn((41, layer_sizes[0]), || rng.random_range(-1.0..1.0));
    let target = match spec.output {
        Activation::Softmax => Array2::from_shape_fn((41, outputs), |(r, o)| {
            f64::from(u8::from((r * 7 + 3) % outputs == o))
        }),
        _ => Array2::from_shape_simple_fn((41, outputs), || rng.random_range(0.0..1.0)),
    };
    (network, x, target)
}

/// Three epochs of `optimizer` on `backend` from `network`: the weights after, and the state.
fn train(
    backend: &mut dyn Backend,
    optimizer: &Optimizer,
    network: &Network<f64>,
    (x, target): (&Array2<f64>, &Array2<f64>),
    learnrate: f64,
) -> (Network<f64>, OptimizerState<f64>) {
    backend
        .set_optimizer(optimizer, &OptimizerState::zeros(optimizer, network))
        .unwrap();
    let data = backend
        .load_data(x.view().into(), target.view().into())
        .unwrap();
    for epoch in 1..=3 {
        let order = epoch_order(5, epoch, x.nrows());
        let bad = backend
            .train_epoch(data, &order, 16, learnrate, &Default::default())
            .unwrap();
        assert_eq!(bad, None);
    }
    (
        backend.network().unwrap(),
        backend.optimizer_state().unwrap(),
    )
}

/// The largest difference of any weight or bias, over `scale`.
fn max_difference(a: &Network<f64>, b: &Network<f64>) -> f64 {
    let weights = a.weights().iter().zip(b.weights()).flat_map(|(a, b)| {
        a.iter()
            .zip(b.iter())
            .map(|(x, y)| (x - y).abs())
            .collect::<Vec<_>>()
    });
    let biases = a
        .biases()
        .unwrap_or_default()
        .iter()
        .zip(b.biases().unwrap_or_default())
        .flat_map(|(a, b)| {
            a.iter()
                .zip(b.iter())
                .map(|(x, y)| (x - y).abs())
                .collect::<Vec<_>>()
        });
    weights.chain(biases).fold(0.0, f64::max)
}

/// How far fp32 may carry nine steps from the f64 reference, in weight units. Every step moves
/// a weight by at most about lr (Adam's normalised step is bounded by lr·√(1−β2ᵗ)/(1−β1ᵗ)
/// ≈ lr; SGD's by lr·|g| with |g| < 1 here), and fp32 perturbs each step's gradient by about
/// K·2⁻²⁴ ≈ 2.4e-6 relative (K ≤ 41 terms): 2e-6 of lr per step for SGD and momentum. Adam
/// divides by √v, which amplifies the error of a coordinate whose gradient is small against its
/// history: 1e-4 of lr per step. Measured on lavapipe (2026-11-25): at most 2.6e-7 (SGD,
/// momentum; bound 1.8e-6) and 7.4e-7 (Adam; bound 9e-6), while a wrong formula, a missed bias
/// correction or a lost moment moves a weight by a good part of lr per step.
fn tolerance(optimizer: &Optimizer, learnrate: f64) -> f64 {
    let steps = 9.0;
    match optimizer.method {
        Method::Adam | Method::Adamw => 1e-4 * learnrate * steps,
        _ => 2e-6 * learnrate * steps,
    }
}

fn device() -> Option<Arc<GpuDevice>> {
    static DEVICE: OnceLock<Option<Arc<GpuDevice>>> = OnceLock::new();
    DEVICE
        .get_or_init(|| GpuContext::for_tests().map(|ctx| GpuDevice::new(ctx).unwrap()))
        .clone()
}

#[test]
fn every_optimizer_on_the_cpu_and_the_gpu_follows_the_f64_reference() {
    let specs = [
        (
            vec![7, 13, 5],
            Spec {
                hidden: Activation::Tanh,
                output: Activation::Softmax,
                loss: Loss::CrossEntropy,
            },
        ),
        (
            vec![11, 31, 17, 1],
            Spec {
                hidden: Activation::Relu,
                output: Activation::Identity,
                loss: Loss::Mse,
            },
        ),
    ];
    let device = device();
    for (sizes, spec) in &specs {
        for (name, optimizer) in common::every_optimizer() {
            let learnrate = match optimizer.method {
                Method::Adam | Method::Adamw => 0.01,
                _ => 0.1,
            };
            let (network, x, target) = problem(sizes, *spec, 3);
            let data = (&x, &target);
            let (reference, reference_state) = train(
                &mut CpuBackend::<f64>::new(&network),
                &optimizer,
                &network,
                data,
                learnrate,
            );
            assert_eq!(reference_state.step, 9, "{name}: 3 epochs of 3 batches");
            assert_eq!(reference_state.moments.len(), optimizer.n_moments());
            let moved = max_difference(&reference, &network);
            assert!(
                moved > 1e-3 * learnrate,
                "{name}: the weights moved by {moved}"
            );
            let tolerance = tolerance(&optimizer, learnrate);
            let (cpu, cpu_state) = train(
                &mut CpuBackend::<f32>::new(&network),
                &optimizer,
                &network,
                data,
                learnrate,
            );
            let error = max_difference(&cpu, &reference);
            assert!(
                error <= tolerance,
                "{name} {sizes:?} cpu f32: {error:e} > {tolerance:e}"
            );
            assert_eq!(cpu_state.step, 9);
            let Some(device) = &device else {
                continue;
            };
            let mut gpu = GpuBackend::new(device.clone(), &network, GpuOptions::default()).unwrap();
            let (gpu_network, gpu_state) = train(&mut gpu, &optimizer, &network, data, learnrate);
            let error = max_difference(&gpu_network, &reference);
            assert!(
                error <= tolerance,
                "{name} {sizes:?} gpu: {error:e} > {tolerance:e}"
            );
            assert_eq!(gpu_state.step, 9);
            // The moments came back from the device as the reference kept them.
            for (g, r) in gpu_state.moments.iter().zip(&reference_state.moments) {
                for (g, r) in g.weights.iter().zip(&r.weights) {
                    let scale = r.iter().fold(1e-6f64, |a, v| a.max(v.abs()));
                    let diff = g
                        .iter()
                        .zip(r)
                        .fold(0.0f64, |a, (g, r)| a.max((g - r).abs()));
                    assert!(
                        diff <= 1e-2 * scale,
                        "{name}: moment off by {diff:e} of {scale:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn optimizer_state_on_split_layers_steps_block_by_block() {
    // 4 KiB bindings split the 97-unit hidden layer in two: each block's moments are their own
    // regions, bound beside the block's weights.
    let Some(mut ctx) = GpuContext::for_tests() else {
        return;
    };
    ctx.max_binding_bytes = 4096;
    let device = GpuDevice::new(ctx).unwrap();
    let options = GpuOptions {
        guard_regions: true,
        max_records: 16,
    };
    let spec = Spec {
        hidden: Activation::LeakyRelu,
        output: Activation::Sigmoid,
        loss: Loss::CrossEntropy,
    };
    let (network, x, target) = problem(&[13, 97, 3], spec, 8);
    let optimizer = Optimizer {
        method: Method::Adamw,
        weight_decay: 0.05,
        ..Optimizer::default()
    };
    let (reference, _) = train(
        &mut CpuBackend::<f64>::new(&network),
        &optimizer,
        &network,
        (&x, &target),
        0.01,
    );
    let mut gpu = GpuBackend::new(device, &network, options).unwrap();
    assert_eq!(gpu.blocks_per_layer(), [1, 2, 1]);
    let (got, _) = train(&mut gpu, &optimizer, &network, (&x, &target), 0.01);
    let error = max_difference(&got, &reference);
    assert!(error <= tolerance(&optimizer, 0.01), "{error:e}");
    gpu.check_guards().unwrap();
}

#[test]
fn a_state_that_does_not_fit_the_network_is_refused() {
    let spec = Spec::seeds(Activation::Identity);
    let (network, _, _) = problem(&[3, 4, 1], spec, 1);
    let adam = Optimizer {
        method: Method::Adam,
        ..Optimizer::default()
    };
    let momentum_state = OptimizerState::zeros(
        &Optimizer {
            method: Method::Momentum,
            ..adam
        },
        &network,
    );
    let mut cpu = CpuBackend::<f32>::new(&network);
    assert!(cpu.set_optimizer(&adam, &momentum_state).is_err());
    let bad = Optimizer { beta2: 1.0, ..adam };
    let error = cpu
        .set_optimizer(&bad, &OptimizerState::zeros(&bad, &network))
        .unwrap_err();
    assert!(error.to_string().contains("--beta2"), "{error}");
}
