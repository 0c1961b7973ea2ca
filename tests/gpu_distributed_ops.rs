//! The two operations distributed training adds to a backend, on the GPU against their CPU
//! twins: the deltas of a batch from an output error term the caller computes from the
//! backend's output in one forward pass (`delta_weights_from_output`), and one optimizer step
//! from a gradient computed elsewhere (`apply_gradient`). Shapes are 1, primes and widths that are not tile multiples;
//! one test splits layers across bindings. Without an adapter these tests skip, except under
//! `BACKPROP_REQUIRE_GPU=1` (CI), where they fail.

mod common;

use std::sync::{Arc, OnceLock};

use backprop::gpu::context::GpuContext;
use backprop::gpu::tuning::TuningOptions;
use backprop::gpu::{GpuBackend, GpuDevice, GpuOptions};
use backprop::model::{Deltas, Spec};
use backprop::ops::optimizer::{Method, Optimizer, OptimizerState};
use backprop::validate::{self, Case, F32_UNIT_ROUNDOFF as U};
use backprop::{cpu, Activation, Backend, CpuBackend, Loss, Network, Result};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::Rng;

fn device() -> Option<Arc<GpuDevice>> {
    static DEVICE: OnceLock<Option<Arc<GpuDevice>>> = OnceLock::new();
    DEVICE
        .get_or_init(|| GpuContext::for_tests().map(|ctx| GpuDevice::new(ctx).unwrap()))
        .clone()
}

/// A device whose output layer is never fused with its error term: the default device fuses
/// every element-wise output, so this one takes the separate `output_error_term` path.
fn unfused_device() -> Option<Arc<GpuDevice>> {
    static DEVICE: OnceLock<Option<Arc<GpuDevice>>> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            GpuContext::for_tests().map(|ctx| {
                let config = backprop::gpu::gemm::select::guess(13, 17, 11, &ctx.limits);
                let options = TuningOptions {
                    force: Some((config, false)),
                    ..TuningOptions::default()
                };
                GpuDevice::with_tuning(ctx, options).unwrap()
            })
        })
        .clone()
}

fn guarded(device: &Arc<GpuDevice>, network: &Network<f64>) -> GpuBackend {
    let options = GpuOptions {
        guard_regions: true,
        ..GpuOptions::default()
    };
    GpuBackend::new(device.clone(), network, options).unwrap()
}

fn case(records: usize, layer_sizes: &[usize], spec: Spec, bias: bool) -> Case {
    Case {
        records,
        layer_sizes: layer_sizes.to_vec(),
        spec,
        bias,
    }
}

fn spec(hidden: Activation, output: Activation, loss: Loss) -> Spec {
    Spec {
        hidden,
        output,
        loss,
    }
}

/// Batch 1, primes, widths on both sides of the 64-wide tile, one and two hidden layers,
/// sigmoid and ReLU hidden layers, identity, sigmoid and softmax outputs, with and without
/// biases.
fn cases() -> Vec<Case> {
    use Activation::{Identity, Relu, Sigmoid, Softmax};
    vec![
        case(1, &[7, 13, 5], spec(Sigmoid, Identity, Loss::Mse), true),
        case(
            7,
            &[13, 17, 11, 3],
            spec(Relu, Softmax, Loss::CrossEntropy),
            true,
        ),
        case(13, &[5, 3, 1], spec(Sigmoid, Sigmoid, Loss::Mse), false),
        case(13, &[11, 67, 2], spec(Relu, Identity, Loss::Mse), false),
        case(
            2,
            &[3, 65, 7, 4],
            spec(Sigmoid, Sigmoid, Loss::CrossEntropy),
            true,
        ),
    ]
}

fn random(shape: (usize, usize), rng: &mut impl Rng) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

/// A gradient shaped like `network`'s parameters, every value in [-1, 1).
fn random_gradient(network: &Network<f64>, rng: &mut impl Rng) -> Deltas<f64> {
    Deltas {
        weights: network
            .weights()
            .iter()
            .map(|w| random(w.dim(), rng))
            .collect(),
        biases: network.biases().map(|bs| {
            bs.iter()
                .map(|b| Array1::from_shape_simple_fn(b.len(), || rng.random_range(-1.0..1.0)))
                .collect()
        }),
    }
}

/// Every tensor of a `Deltas` (weights, then biases) as a matrix.
fn tensors(d: &Deltas<f64>) -> Vec<Array2<f64>> {
    let biases = d.biases.iter().flatten();
    d.weights
        .iter()
        .cloned()
        .chain(biases.map(|b| b.view().insert_axis(Axis(0)).to_owned()))
        .collect()
}

fn parameters(n: &Network<f64>) -> Deltas<f64> {
    Deltas {
        weights: n.weights().to_vec(),
        biases: n.biases().map(<[_]>::to_vec),
    }
}

/// The deltas of a batch from a given output error term: `delta_weights_from_output` with a
/// callback that ignores the output (after checking its shape) and returns `term`.
fn deltas_from_term(
    backend: &mut dyn Backend,
    x: ArrayView2<f64>,
    term: ArrayView2<f64>,
    learnrate: f64,
) -> Result<Deltas<f64>> {
    let mut calls = 0;
    let deltas = backend.delta_weights_from_output(x, learnrate, &mut |output| {
        calls += 1;
        assert_eq!(output.nrows(), x.nrows());
        Ok(term.to_owned())
    });
    if deltas.is_ok() {
        assert_eq!(calls, 1, "one forward pass, one call");
    }
    deltas
}

/// `max |a − b|` over every value.
fn max_abs_difference(a: &Deltas<f64>, b: &Deltas<f64>) -> f64 {
    tensors(a)
        .iter()
        .zip(tensors(b))
        .map(|(a, b)| validate::errors(a.view(), b.view()).0)
        .fold(0.0, f64::max)
}

fn max_abs(d: &Deltas<f64>) -> f64 {
    tensors(d)
        .iter()
        .flat_map(|t| t.iter().map(|v| v.abs()).collect::<Vec<_>>())
        .fold(0.0, f64::max)
}

/// The normwise tolerance of layer `l`'s deltas (weights and biases) computed in fp32 from
/// an output error term: `validate::tolerance` over the reductions they depend on, the forward
/// pass through the layers below the output (its inputs' widths), the hidden error terms above
/// layer `l` (each a sum over the next layer's units) and the sum over the batch's records.
/// `conditioning` is 1 for a given output error term (it is only rounded to fp32); computed
/// from targets, it is `validate::check_case`'s κ = max|y| / max|target − y|.
fn delta_tolerance(case: &Case, l: usize, conditioning: f64) -> f64 {
    let sizes = &case.layer_sizes;
    let n_layers = sizes.len() - 1;
    let forward: usize = sizes[..n_layers].iter().sum();
    let backward: usize = sizes[l + 2..].iter().sum();
    validate::tolerance(forward + backward + case.records, conditioning)
}

/// Checks every delta of `got` against `want` (normwise, per tensor) and returns the largest
/// relative error over its tolerance.
fn check_deltas(
    what: &str,
    case: &Case,
    got: &Deltas<f64>,
    want: &Deltas<f64>,
    conditioning: f64,
) -> f64 {
    let n_layers = case.layer_sizes.len() - 1;
    assert_eq!(got.weights.len(), n_layers);
    assert_eq!(got.biases.is_some(), case.bias, "{what}");
    let mut worst: f64 = 0.0;
    let mut compare = |name: String, l: usize, g: ArrayView2<f64>, w: ArrayView2<f64>| {
        assert_eq!(g.dim(), w.dim(), "{what} {name}");
        let (_, rel) = validate::errors(g, w);
        let tol = delta_tolerance(case, l, conditioning);
        assert!(
            rel <= tol,
            "{what} {}: {name} off by {rel:e} > {tol:e}",
            case.describe()
        );
        worst = worst.max(rel / tol);
    };
    for l in 0..n_layers {
        compare(
            format!("delta weights {l}"),
            l,
            got.weights[l].view(),
            want.weights[l].view(),
        );
        if let (Some(g), Some(w)) = (&got.biases, &want.biases) {
            compare(
                format!("delta bias {l}"),
                l,
                g[l].view().insert_axis(Axis(0)),
                w[l].view().insert_axis(Axis(0)),
            );
        }
    }
    worst
}

/// The f64 reference's output error term of a batch, as `delta_weights` computes it.
fn reference_output_error_term(
    network: &Network<f64>,
    x: ArrayView2<f64>,
    target: ArrayView2<f64>,
) -> Array2<f64> {
    let outputs = cpu::forward(network, x);
    let spec = network.spec();
    cpu::output_error_term(
        target,
        outputs[outputs.len() - 1].view(),
        spec.output,
        spec.loss,
    )
}

/// `validate::check_case`'s κ: how much the cancellation in `target − y` magnifies the forward
/// pass's relative error in the output error term.
fn conditioning(network: &Network<f64>, x: ArrayView2<f64>, target: ArrayView2<f64>) -> f64 {
    let outputs = cpu::forward(network, x);
    let y = &outputs[outputs.len() - 1];
    let residual = (&target - y).fold(0.0f64, |m, v| m.max(v.abs()));
    y.fold(0.0f64, |m, v| m.max(v.abs())) / residual.max(f64::MIN_POSITIVE)
}

#[test]
fn deltas_from_a_given_output_error_term_match_the_f64_reference() {
    let devices = [("fused", device()), ("separate", unfused_device())];
    let mut worst: f64 = 0.0;
    for (path, device) in devices {
        let Some(device) = device else { return };
        for (n, case) in cases().iter().enumerate() {
            let (network, x, _) = validate::problem(case, 11 + n as u64).unwrap();
            let mut rng = common::rng(100 + n as u64);
            let mut gpu = guarded(&device, &network);
            let mut reference = CpuBackend::<f64>::new(&network);
            let outputs = *case.layer_sizes.last().unwrap();
            // Twice on the same backend, with another term and learning rate: the plan is
            // reused, the learning rate rescaled.
            for learnrate in [0.5, -1.0] {
                let term = random((case.records, outputs), &mut rng);
                let want =
                    deltas_from_term(&mut reference, x.view(), term.view(), learnrate).unwrap();
                let got = deltas_from_term(&mut gpu, x.view(), term.view(), learnrate).unwrap();
                let what = format!("{path}, learnrate {learnrate}");
                worst = worst.max(check_deltas(&what, case, &got, &want, 1.0));
            }
            // The network is unchanged (only rounded to fp32 on upload).
            let after = parameters(&gpu.network().unwrap());
            let moved = max_abs_difference(&after, &parameters(&network));
            assert!(moved <= U * max_abs(&parameters(&network)), "{moved:e}");
            gpu.check_guards().unwrap();
        }
    }
    eprintln!("delta_weights_from_output: worst error / tolerance {worst:.3}");
}

#[test]
fn a_given_output_error_term_gives_the_deltas_computed_from_targets() {
    let devices = [("fused", device()), ("separate", unfused_device())];
    let mut worst: f64 = 0.0;
    for (path, device) in devices {
        let Some(device) = device else { return };
        for (n, case) in cases().iter().enumerate() {
            let (network, x, target) = validate::problem(case, 21 + n as u64).unwrap();
            let mut gpu = guarded(&device, &network);
            let learnrate = 0.3;
            let from_targets = gpu
                .delta_weights(x.view(), target.view(), learnrate)
                .unwrap();
            let term = reference_output_error_term(&network, x.view(), target.view());
            let given = deltas_from_term(&mut gpu, x.view(), term.view(), learnrate).unwrap();
            let want = cpu::backward(&network, x.view(), target.view(), learnrate).unwrap();
            // Each is within the delta tolerance of the reference (the one from targets with
            // the output error's conditioning κ), so they are within the sum of the two of
            // each other (normwise, against the scale of the one from the given term).
            let kappa = conditioning(&network, x.view(), target.view());
            let what = format!("{path}: from targets");
            worst = worst.max(check_deltas(&what, case, &from_targets, &want, kappa));
            let what = format!("{path}: given");
            worst = worst.max(check_deltas(&what, case, &given, &want, 1.0));
            for (l, (a, b)) in tensors(&from_targets)
                .iter()
                .zip(tensors(&given))
                .enumerate()
            {
                let scale = b
                    .iter()
                    .fold(0.0f64, |m, v| m.max(v.abs()))
                    .max(f64::MIN_POSITIVE);
                let diff = validate::errors(a.view(), b.view()).0 / scale;
                let layer = l % (case.layer_sizes.len() - 1);
                let tol = delta_tolerance(case, layer, kappa) + delta_tolerance(case, layer, 1.0);
                assert!(
                    diff <= tol,
                    "{path} {}: tensor {l}: {diff:e} > {tol:e}",
                    case.describe()
                );
            }
            gpu.check_guards().unwrap();
        }
    }
    eprintln!("delta_weights vs from the output error term: worst error / tolerance {worst:.3}");
}

/// The normwise tolerance of a network's output computed in fp32: the forward pass's
/// reductions, over every layer's inputs.
fn output_tolerance(case: &Case) -> f64 {
    let sizes = &case.layer_sizes;
    validate::tolerance(sizes[..sizes.len() - 1].iter().sum(), 1.0)
}

/// The output `delta_weights_from_output` hands its callback, for `x`.
fn output_seen_by_the_callback(backend: &mut dyn Backend, x: ArrayView2<f64>) -> Array2<f64> {
    let mut seen = None;
    backend
        .delta_weights_from_output(x, 0.1, &mut |output| {
            let term = Array2::zeros(output.dim());
            seen = Some(output);
            Ok(term)
        })
        .unwrap();
    seen.expect("the callback was called")
}

#[test]
fn the_callback_gets_the_output_predict_gives() {
    for (n, case) in cases().iter().enumerate() {
        let (network, x, _) = validate::problem(case, 81 + n as u64).unwrap();
        // The CPU computes the same forward pass for both: bit for bit, in f64 and f32.
        let mut cpu64 = CpuBackend::<f64>::new(&network);
        let seen = output_seen_by_the_callback(&mut cpu64, x.view());
        assert_eq!(
            seen,
            cpu64.predict(x.view().into()).unwrap(),
            "{}",
            case.describe()
        );
        let mut cpu32 = CpuBackend::<f32>::new(&network);
        let seen = output_seen_by_the_callback(&mut cpu32, x.view());
        assert_eq!(
            seen,
            cpu32.predict(x.view().into()).unwrap(),
            "{}",
            case.describe()
        );
        // The GPU: within fp32's tolerance of its own prediction and of the f64 reference.
        let outputs = cpu::forward(&network, x.view());
        let reference = &outputs[outputs.len() - 1];
        for (path, device) in [("fused", device()), ("separate", unfused_device())] {
            let Some(device) = device else { return };
            let mut gpu = guarded(&device, &network);
            let seen = output_seen_by_the_callback(&mut gpu, x.view());
            let predicted = gpu.predict(x.view().into()).unwrap();
            let tolerance = output_tolerance(case);
            for (what, want) in [("predict", &predicted), ("the f64 reference", reference)] {
                assert_eq!(seen.dim(), want.dim());
                let (_, rel) = validate::errors(seen.view(), want.view());
                assert!(
                    rel <= tolerance,
                    "{path} {}: the callback's output is {rel:e} from {what}'s (> {tolerance:e})",
                    case.describe()
                );
            }
            gpu.check_guards().unwrap();
        }
    }
}

#[test]
fn a_wrong_term_or_a_failing_callback_is_an_error_on_the_cpu_too() {
    let c = case(
        3,
        &[4, 5, 2],
        spec(Activation::Sigmoid, Activation::Identity, Loss::Mse),
        true,
    );
    let (network, x, _) = validate::problem(&c, 91).unwrap();
    let backends: Vec<(&str, Box<dyn Backend>)> = vec![
        ("f64", Box::new(CpuBackend::<f64>::new(&network))),
        ("f32", Box::new(CpuBackend::<f32>::new(&network))),
    ];
    for (name, mut backend) in backends {
        for wrong in [(3, 3), (2, 2), (3, 1), (4, 2)] {
            let error =
                deltas_from_term(backend.as_mut(), x.view(), Array2::zeros(wrong).view(), 0.1)
                    .unwrap_err()
                    .to_string();
            assert!(
                error.contains("output error term"),
                "{name} {wrong:?}: {error}"
            );
        }
        let mut bad_term = Array2::<f64>::zeros((3, 2));
        bad_term[(2, 0)] = if name == "f32" { 1e39 } else { f64::NAN };
        let error = deltas_from_term(backend.as_mut(), x.view(), bad_term.view(), 0.1)
            .unwrap_err()
            .to_string();
        assert!(error.contains("output error term"), "{name}: {error}");
        let error = backend
            .delta_weights_from_output(x.view(), 0.1, &mut |_| {
                Err(backprop::Error::Shape("the callback's own error".into()))
            })
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the callback's own error"),
            "{name}: {error}"
        );
        let after = parameters(&backend.network().unwrap());
        let moved = max_abs_difference(&after, &parameters(&network));
        assert!(
            moved <= U * max_abs(&parameters(&network)),
            "{name}: {moved:e}"
        );
    }
}

/// How far fp32 may carry `steps` element-wise optimizer steps from the f64 reference, in
/// weight units. The weights start rounded to fp32 (u·|w|); each step computes a weight from
/// its value, its gradient (rounded to fp32: u relative) and its moments in at most ~10 fp32
/// operations, each rounding by u relative to the larger of the weight and the step, so
/// 16u·(|w| + |step|) per step. With |g| < 1 the step is at most lr·(1 + λ|w|)·s, where s is
/// 1 for SGD, 1/(1 − μ) = 10 for momentum (a sum of decaying gradients), (1 + μ)/(1 − μ) = 19
/// for Nesterov, and for Adam √t (m̂ is an average of the gradients, √v̂ the root mean square
/// of them) ≤ 2 here. Adam's `1 − β2` is computed in fp32 (as on the CPU twin) from β2
/// rounded to fp32, off by u·β2/(1 − β2) ≈ 1000u relative, which v carries and the step half
/// of (through √v): that adds β2/(1 − β2)·u·lr·s per step. A wrong formula, a lost moment or
/// a missed bias correction moves a weight by a good part of lr per step, far beyond this.
fn step_tolerance(optimizer: &Optimizer, steps: usize, learnrate: f64, max_weight: f64) -> f64 {
    let mu = optimizer.momentum;
    let (s, cancellation) = match optimizer.method {
        Method::Sgd => (1.0, 0.0),
        Method::Momentum if optimizer.nesterov => ((1.0 + mu) / (1.0 - mu), 0.0),
        Method::Momentum => (1.0 / (1.0 - mu), 0.0),
        Method::Adam | Method::Adamw => (2.0, optimizer.beta2 / (1.0 - optimizer.beta2)),
    };
    let step = learnrate * (1.0 + optimizer.weight_decay * max_weight) * s;
    U * steps as f64 * (16.0 * (max_weight + step) + cancellation * step)
}

/// The normwise tolerance of moment `k` after `steps` steps: a moment is a weighted average
/// of the gradients (k = 0) or of their squares (k = 1), `β·m + (1 − β)·g`, whose `1 − β` in
/// fp32 is off by u·β/(1 − β) relative (≈ 9u for β1 = 0.9, ≈ 1000u for β2 = 0.999), plus a
/// few roundings per step.
fn moment_tolerance(optimizer: &Optimizer, k: usize, steps: usize, scale: f64) -> f64 {
    let beta = match (optimizer.method, k) {
        (Method::Momentum, _) => optimizer.momentum,
        (_, 0) => optimizer.beta1,
        _ => optimizer.beta2,
    };
    16.0 * U * steps as f64 * (1.0 + beta / (1.0 - beta)) * scale.max(1e-6)
}

#[test]
fn apply_gradient_steps_every_optimizer_like_the_f64_reference() {
    let Some(device) = device() else { return };
    let networks = [
        case(
            1,
            &[7, 13, 5],
            spec(Activation::Sigmoid, Activation::Identity, Loss::Mse),
            true,
        ),
        case(
            1,
            &[11, 67, 17, 1],
            spec(Activation::Relu, Activation::Softmax, Loss::CrossEntropy),
            false,
        ),
    ];
    let (mut worst, mut worst_moment): (f64, f64) = (0.0, 0.0);
    for (n, case) in networks.iter().enumerate() {
        for (name, optimizer) in common::every_optimizer() {
            let (network, _, _) = validate::problem(case, 31 + n as u64).unwrap();
            let state = OptimizerState::zeros(&optimizer, &network);
            let mut reference = CpuBackend::<f64>::new(&network);
            reference.set_optimizer(&optimizer, &state).unwrap();
            let mut gpu = guarded(&device, &network);
            gpu.set_optimizer(&optimizer, &state).unwrap();
            let mut rng = common::rng(41 + n as u64);
            let base = match optimizer.method {
                Method::Adam | Method::Adamw => 0.01,
                _ => 0.1,
            };
            let steps = 3;
            for step in 1..=steps {
                // A learning rate that changes between steps: the seeds' step keeps it in its
                // dispatches' scale, which must follow.
                let learnrate = base * (1.0 + 0.25 * step as f64);
                let gradient = random_gradient(&network, &mut rng);
                reference.apply_gradient(&gradient, learnrate).unwrap();
                gpu.apply_gradient(&gradient, learnrate).unwrap();
                let want = parameters(&reference.network().unwrap());
                let got = parameters(&gpu.network().unwrap());
                let error = max_abs_difference(&got, &want);
                let tolerance = step_tolerance(&optimizer, step, base * 2.0, max_abs(&want));
                assert!(
                    error <= tolerance,
                    "{name} {}: step {step}: {error:e} > {tolerance:e}",
                    case.describe()
                );
                worst = worst.max(error / tolerance);
                let moved = max_abs_difference(&want, &parameters(&network));
                assert!(moved > 0.1 * base, "{name}: the weights moved by {moved}");
            }
            let (got, want) = (
                gpu.optimizer_state().unwrap(),
                reference.optimizer_state().unwrap(),
            );
            assert_eq!(got.step, steps as u64, "{name}: one step per gradient");
            assert_eq!(want.step, steps as u64);
            assert_eq!(got.moments.len(), optimizer.n_moments(), "{name}");
            for (k, (g, w)) in got.moments.iter().zip(&want.moments).enumerate() {
                let error = max_abs_difference(g, w);
                let tolerance = moment_tolerance(&optimizer, k, steps, max_abs(w));
                assert!(
                    error <= tolerance,
                    "{name}: moment {k} off by {error:e} > {tolerance:e}"
                );
                worst_moment = worst_moment.max(error / tolerance);
            }
            gpu.check_guards().unwrap();
        }
    }
    eprintln!(
        "apply_gradient: worst error / tolerance {worst:.3} (weights), {worst_moment:.3} (moments)"
    );
}

/// A gradient the distributed trainer would compute (the deltas at learning rate −1) and
/// applied at `learnrate` is one training step: for the seeds' step, `w + lr·(−g)` with
/// `g = (−1/B)·Σ` against the fused `w + (lr/B)·Σ`, the same sum with the scale rounded in
/// another order (≤ 3u of the delta apart) and the final addition rounded (u of the weight);
/// for an optimizer the gradient is the fused epilogue's, bit for bit, and the update the same
/// formula. 4u·(max|w| + max|Δw|) per step, over 3 steps.
#[test]
fn a_gradient_at_learnrate_minus_one_applied_is_one_training_step() {
    let Some(device) = device() else { return };
    let adam = Optimizer {
        method: Method::Adam,
        ..Optimizer::default()
    };
    let setups = [
        (
            case(
                7,
                &[13, 17, 11, 3],
                spec(Activation::Relu, Activation::Softmax, Loss::CrossEntropy),
                true,
            ),
            Optimizer::default(),
        ),
        (
            case(
                13,
                &[5, 67, 2],
                spec(Activation::Sigmoid, Activation::Identity, Loss::Mse),
                false,
            ),
            Optimizer::default(),
        ),
        (
            case(
                1,
                &[7, 13, 5],
                spec(Activation::Sigmoid, Activation::Sigmoid, Loss::Mse),
                true,
            ),
            adam,
        ),
    ];
    let mut worst: f64 = 0.0;
    for (n, (case, optimizer)) in setups.iter().enumerate() {
        let (network, x, target) = validate::problem(case, 51 + n as u64).unwrap();
        let state = OptimizerState::zeros(optimizer, &network);
        let mut distributed = guarded(&device, &network);
        let mut fused = guarded(&device, &network);
        distributed.set_optimizer(optimizer, &state).unwrap();
        fused.set_optimizer(optimizer, &state).unwrap();
        // Not a power of two, so that `lr·(−g)` and `(lr/B)·Σ` round differently.
        let learnrate = 0.3;
        let mut before = parameters(&network);
        for step in 1..=3 {
            let gradient = distributed
                .delta_weights(x.view(), target.view(), -1.0)
                .unwrap();
            distributed.apply_gradient(&gradient, learnrate).unwrap();
            fused
                .train_step(x.view(), target.view(), learnrate)
                .unwrap();
            let got = parameters(&distributed.network().unwrap());
            let want = parameters(&fused.network().unwrap());
            let error = max_abs_difference(&got, &want);
            let step_size = max_abs_difference(&want, &before);
            assert!(step_size > 0.0);
            let tolerance = 4.0 * U * step as f64 * (max_abs(&want) + step_size);
            assert!(
                error <= tolerance,
                "{} {}: step {step}: {error:e} > {tolerance:e}",
                optimizer.method.name(),
                case.describe()
            );
            worst = worst.max(error / tolerance);
            before = want;
        }
        assert_eq!(distributed.optimizer_state().unwrap().step, 3);
        assert_eq!(fused.optimizer_state().unwrap().step, 3);
        distributed.check_guards().unwrap();
    }
    eprintln!(
        "apply_gradient(delta_weights(lr = -1)) vs train_step: worst error / tolerance {worst:.3}"
    );
}

#[test]
fn wrong_gradients_and_output_error_terms_are_errors_that_change_nothing() {
    let Some(device) = device() else { return };
    let c = case(
        3,
        &[4, 5, 2],
        spec(Activation::Sigmoid, Activation::Identity, Loss::Mse),
        true,
    );
    let (network, x, _) = validate::problem(&c, 61).unwrap();
    let adam = Optimizer {
        method: Method::Adam,
        ..Optimizer::default()
    };
    let mut gpu = guarded(&device, &network);
    gpu.set_optimizer(&adam, &OptimizerState::zeros(&adam, &network))
        .unwrap();
    let good = random_gradient(&network, &mut common::rng(62));
    let mut transposed = good.clone();
    transposed.weights[0] = Array2::zeros((5, 4));
    let mut missing_layer = good.clone();
    missing_layer.weights.pop();
    let mut no_biases = good.clone();
    no_biases.biases = None;
    let mut short_bias = good.clone();
    short_bias.biases.as_mut().unwrap()[1] = Array1::zeros(1);
    let mut not_a_number = good.clone();
    not_a_number.weights[1][(2, 1)] = f64::NAN;
    let mut too_large = good.clone();
    too_large.biases.as_mut().unwrap()[0][3] = 1e39;
    for (what, gradient) in [
        ("transposed", &transposed),
        ("missing layer", &missing_layer),
        ("no biases", &no_biases),
        ("short bias", &short_bias),
    ] {
        let error = gpu.apply_gradient(gradient, 0.1).unwrap_err().to_string();
        assert!(error.contains("does not fit"), "{what}: {error}");
    }
    let error = gpu
        .apply_gradient(&not_a_number, 0.1)
        .unwrap_err()
        .to_string();
    assert!(error.contains("weights_hidden_to_output"), "{error}");
    let error = gpu.apply_gradient(&too_large, 0.1).unwrap_err().to_string();
    assert!(error.contains("range"), "{error}");
    // A network without biases refuses a gradient with them.
    let plain = Network::with_spec(network.weights().to_vec(), None, network.spec()).unwrap();
    let mut gpu_plain = guarded(&device, &plain);
    assert!(gpu_plain.apply_gradient(&good, 0.1).is_err());

    let wrong_term = Array2::<f64>::zeros((3, 3));
    let error = deltas_from_term(&mut gpu, x.view(), wrong_term.view(), 0.1).unwrap_err();
    assert!(error.to_string().contains("output error term"), "{error}");
    let fewer_records = Array2::<f64>::zeros((2, 2));
    assert!(deltas_from_term(&mut gpu, x.view(), fewer_records.view(), 0.1).is_err());
    let mut bad_term = Array2::<f64>::zeros((3, 2));
    bad_term[(1, 1)] = f64::INFINITY;
    let error = deltas_from_term(&mut gpu, x.view(), bad_term.view(), 0.1)
        .unwrap_err()
        .to_string();
    assert!(error.contains("output error term"), "{error}");
    let error = gpu
        .delta_weights_from_output(x.view(), 0.1, &mut |_| {
            Err(backprop::Error::Shape("the callback's own error".into()))
        })
        .unwrap_err()
        .to_string();
    assert!(error.contains("the callback's own error"), "{error}");

    // Nothing stepped.
    assert_eq!(gpu.optimizer_state().unwrap().step, 0);
    let after = parameters(&gpu.network().unwrap());
    let moved = max_abs_difference(&after, &parameters(&network));
    assert!(moved <= U * max_abs(&parameters(&network)), "{moved:e}");
    gpu.check_guards().unwrap();
}

#[test]
fn split_layers_take_given_error_terms_and_gradients_block_by_block() {
    // 4 KiB bindings at 16 records split the 97-unit layer in two and the 89-unit layer in
    // five (its weights' blocks must fit too): the given error term feeds hidden error terms
    // summed over blocks, and every block of weights, biases and moments steps on its own.
    let Some(mut ctx) = GpuContext::for_tests() else {
        return;
    };
    ctx.max_binding_bytes = 4096;
    let device = GpuDevice::new(ctx).unwrap();
    let options = GpuOptions {
        guard_regions: true,
        max_records: 16,
    };
    let c = case(
        13,
        &[13, 97, 89, 3],
        spec(
            Activation::LeakyRelu,
            Activation::Sigmoid,
            Loss::CrossEntropy,
        ),
        true,
    );
    let (network, x, target) = validate::problem(&c, 71).unwrap();
    let mut rng = common::rng(72);

    let mut gpu = GpuBackend::new(device.clone(), &network, options).unwrap();
    assert_eq!(gpu.blocks_per_layer(), [1, 2, 5, 1]);
    let mut reference = CpuBackend::<f64>::new(&network);
    let term = random((13, 3), &mut rng);
    let want = deltas_from_term(&mut reference, x.view(), term.view(), 0.7).unwrap();
    let got = deltas_from_term(&mut gpu, x.view(), term.view(), 0.7).unwrap();
    let worst = check_deltas("split", &c, &got, &want, 1.0);
    // The output read back block by block is the prediction's.
    let seen = output_seen_by_the_callback(&mut gpu, x.view());
    let (_, rel) = validate::errors(seen.view(), gpu.predict(x.view().into()).unwrap().view());
    assert!(
        rel <= output_tolerance(&c),
        "split: callback output off by {rel:e}"
    );
    // Consistency with the deltas from targets on the same split backend.
    let term = reference_output_error_term(&network, x.view(), target.view());
    let given = deltas_from_term(&mut gpu, x.view(), term.view(), 0.7).unwrap();
    let from_targets = gpu.delta_weights(x.view(), target.view(), 0.7).unwrap();
    let kappa = conditioning(&network, x.view(), target.view());
    let reference_deltas = cpu::backward(&network, x.view(), target.view(), 0.7).unwrap();
    check_deltas("split, given", &c, &given, &reference_deltas, 1.0);
    check_deltas(
        "split, targets",
        &c,
        &from_targets,
        &reference_deltas,
        kappa,
    );
    gpu.check_guards().unwrap();

    for optimizer in [
        Optimizer::default(),
        Optimizer {
            method: Method::Adamw,
            weight_decay: 0.05,
            ..Optimizer::default()
        },
    ] {
        let state = OptimizerState::zeros(&optimizer, &network);
        let mut gpu = GpuBackend::new(device.clone(), &network, options).unwrap();
        gpu.set_optimizer(&optimizer, &state).unwrap();
        let mut reference = CpuBackend::<f64>::new(&network);
        reference.set_optimizer(&optimizer, &state).unwrap();
        let learnrate = 0.05;
        for step in 1..=3 {
            let gradient = random_gradient(&network, &mut rng);
            reference.apply_gradient(&gradient, learnrate).unwrap();
            gpu.apply_gradient(&gradient, learnrate).unwrap();
            let want = parameters(&reference.network().unwrap());
            let got = parameters(&gpu.network().unwrap());
            let error = max_abs_difference(&got, &want);
            let tolerance = step_tolerance(&optimizer, step, learnrate, max_abs(&want));
            assert!(
                error <= tolerance,
                "split {}: step {step}: {error:e} > {tolerance:e}",
                optimizer.method.name()
            );
        }
        assert_eq!(gpu.optimizer_state().unwrap().step, 3);
        gpu.check_guards().unwrap();
    }
    eprintln!("split layers: deltas worst error / tolerance {worst:.3}");
}
