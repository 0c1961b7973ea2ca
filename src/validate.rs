//! Checking a backend against the f64 CPU reference on random problems of awkward shapes, with
//! tolerances derived from fp32 rounding and the reduction lengths involved.

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::backend::Backend;
use crate::cpu;
use crate::error::Result;
use crate::model::{bias_delta_names, delta_names, Activation, Loss, Network, Spec};

/// fp32's unit roundoff, 2^-24: the relative error of one correctly rounded operation.
pub const F32_UNIT_ROUNDOFF: f64 = 5.960_464_477_539_063e-8;

/// The normwise tolerance for a tensor computed in fp32 against the f64 reference:
/// `4 u (L + 16) κ`, where L is the total length of the reductions (dot products) the tensor
/// depends on, 16 covers the element-wise operations (exp, sigmoid, the error terms: a few
/// roundings each) and κ ≥ 1 is the conditioning of `target - output` (how much cancellation
/// in the output error magnifies the forward pass's error). A dot product of length K in fp32
/// is within K·u·Σ|aᵢbᵢ| of the exact value in the worst case (typically √K·u); factor 4 keeps
/// the bound above the worst case while a wrong index or formula, an O(1) error, fails it.
pub fn tolerance(reduction_length: usize, conditioning: f64) -> f64 {
    4.0 * F32_UNIT_ROUNDOFF * (reduction_length as f64 + 16.0) * conditioning.max(1.0)
}

/// `max |got - want|`, and the same relative to `max |want|` (normwise, so entries near zero
/// do not make the relative error meaningless).
pub fn errors(got: ArrayView2<f64>, want: ArrayView2<f64>) -> (f64, f64) {
    let max_abs = Zip::from(&got)
        .and(&want)
        .fold(0.0f64, |m, g, w| m.max((g - w).abs()));
    let scale = want.fold(0.0f64, |m, w| m.max(w.abs()));
    (
        max_abs,
        if scale > 0.0 {
            max_abs / scale
        } else {
            max_abs
        },
    )
}

/// One random problem.
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    pub records: usize,
    pub layer_sizes: Vec<usize>,
    pub spec: Spec,
    pub bias: bool,
}

impl Case {
    /// A case of the seeds' network (sigmoid hidden layers, no biases, squared error).
    pub fn seeds(records: usize, layer_sizes: Vec<usize>, output: Activation) -> Self {
        Case {
            records,
            layer_sizes,
            spec: Spec::seeds(output),
            bias: false,
        }
    }

    pub fn describe(&self) -> String {
        let sizes: Vec<String> = self.layer_sizes.iter().map(|s| s.to_string()).collect();
        let seeds = self.spec == Spec::seeds(self.spec.output) && !self.bias;
        if seeds {
            format!(
                "B={} {} {}",
                self.records,
                sizes.join("-"),
                self.spec.output
            )
        } else {
            format!(
                "B={} {} {}/{}/{}{}",
                self.records,
                sizes.join("-"),
                self.spec.hidden,
                self.spec.output,
                self.spec.loss,
                if self.bias { "+bias" } else { "" }
            )
        }
    }
}

/// Every valid (hidden, output, loss) combination.
pub fn all_specs() -> Vec<Spec> {
    let mut specs = Vec::new();
    for hidden in Activation::HIDDEN {
        for loss in [Loss::Mse, Loss::CrossEntropy] {
            for &output in loss.outputs() {
                specs.push(Spec {
                    hidden,
                    output,
                    loss,
                });
            }
        }
    }
    specs
}

/// `n` cases: first the awkward ones every run includes (batch 1, single units, primes on both
/// sides of the 64-wide tile, three hidden layers, both output activations), then random ones
/// drawn from `seed`.
pub fn cases(n: usize, seed: u64) -> Vec<Case> {
    let fixed = [
        (1, vec![3, 2, 1], Activation::Sigmoid),
        (1, vec![1, 1, 1], Activation::Identity),
        (7, vec![5, 3, 2], Activation::Sigmoid),
        (67, vec![131, 65, 3], Activation::Identity),
        (64, vec![64, 64, 64], Activation::Sigmoid),
        (13, vec![17, 11, 7, 5, 2], Activation::Sigmoid),
        (129, vec![2, 97, 1], Activation::Identity),
        (3, vec![61, 127, 67, 10], Activation::Identity),
    ];
    let specs = all_specs();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let odd = |rng: &mut ChaCha8Rng| rng.random_range(1..=150usize);
    // After the seeds' awkward cases: every activation x output x loss combination once, with
    // biases, on awkward shapes of its own, then random ones.
    let combinations = specs.clone().into_iter().enumerate().map(|(i, spec)| {
        let shapes = [
            (5, vec![7, 11, 3]),
            (9, vec![13, 17, 4]),
            (1, vec![3, 5, 2]),
            (31, vec![6, 65, 5, 7]),
        ];
        let (records, layer_sizes) = shapes[i % shapes.len()].clone();
        Case {
            records,
            layer_sizes,
            spec,
            bias: true,
        }
    });
    fixed
        .into_iter()
        .map(|(records, layer_sizes, output)| Case::seeds(records, layer_sizes, output))
        .chain(combinations)
        .chain(std::iter::from_fn(|| {
            let hidden_layers = rng.random_range(1..=3);
            let mut layer_sizes: Vec<usize> =
                (0..hidden_layers + 1).map(|_| odd(&mut rng)).collect();
            layer_sizes.push(rng.random_range(1..=12));
            let spec = specs[rng.random_range(0..specs.len())];
            Some(Case {
                records: odd(&mut rng),
                layer_sizes,
                spec,
                bias: rng.random_bool(0.5),
            })
        }))
        .take(n)
        .collect()
}

/// A network and batch for `case`: inputs in [-1, 1), targets in [0, 1) (valid for a sigmoid
/// output; rows that sum to 1 for softmax), weights initialised as seed 004 does for the seeds'
/// network and for the activation otherwise, and random biases (so that they matter).
pub fn problem(case: &Case, seed: u64) -> Result<(Network<f64>, Array2<f64>, Array2<f64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let network = if case.spec == Spec::seeds(case.spec.output) && !case.bias {
        Network::random(&case.layer_sizes, case.spec.output, &mut rng)?
    } else {
        let initialised = Network::random_with(
            &case.layer_sizes,
            case.spec,
            crate::model::Init::Auto,
            false,
            &mut rng,
        )?;
        let biases = case.bias.then(|| {
            case.layer_sizes[1..]
                .iter()
                .map(|&n| Array1::from_shape_simple_fn(n, || rng.random_range(-0.5..0.5)))
                .collect()
        });
        Network::with_spec(initialised.weights().to_vec(), biases, case.spec)?
    };
    let x = Array2::from_shape_simple_fn((case.records, case.layer_sizes[0]), || {
        rng.random_range(-1.0..1.0)
    });
    let n_outputs = case.layer_sizes[case.layer_sizes.len() - 1];
    let mut target: Array2<f64> =
        Array2::from_shape_simple_fn((case.records, n_outputs), || rng.random_range(0.0..1.0));
    if case.spec.output == Activation::Softmax {
        for mut row in target.rows_mut() {
            let sum: f64 = row.sum();
            let sum = sum.max(f64::MIN_POSITIVE);
            row.mapv_inplace(|v| v / sum);
        }
    }
    Ok((network, x, target))
}

/// One line of the validation table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub case: String,
    pub tensor: String,
    pub max_abs_error: f64,
    pub max_rel_error: f64,
    pub tolerance: f64,
    pub pass: bool,
}

/// Runs `case` on `backend` (holding the case's network) and on the f64 reference: the
/// prediction and every delta, each with its tolerance.
pub fn check_case(
    backend: &mut dyn Backend,
    case: &Case,
    network: &Network<f64>,
    x: ArrayView2<f64>,
    target: ArrayView2<f64>,
    learnrate: f64,
) -> Result<Vec<Row>> {
    let outputs = cpu::forward(network, x);
    let want_deltas = cpu::backward(network, x, target, learnrate)?;
    let got_deltas = backend.delta_weights(x, target, learnrate)?;
    let got_output = backend.predict(x.into())?;

    let sizes = &case.layer_sizes;
    let n_layers = sizes.len() - 1;
    let y = &outputs[n_layers - 1];
    let forward_length: usize = sizes[..n_layers].iter().sum();
    // κ: the output error term is `target - y`; its relative error is the forward pass's
    // relative error times max|y| / max|target - y|.
    let residual = (&target - y).fold(0.0f64, |m, v| m.max(v.abs()));
    let conditioning = y.fold(0.0f64, |m, v| m.max(v.abs())) / residual.max(f64::MIN_POSITIVE);

    let row = |tensor: String, got: ArrayView2<f64>, want: ArrayView2<f64>, tol: f64| {
        let (max_abs_error, max_rel_error) = errors(got, want);
        Row {
            case: case.describe(),
            tensor,
            max_abs_error,
            max_rel_error,
            tolerance: tol,
            pass: max_rel_error <= tol,
        }
    };
    let mut rows = vec![row(
        "output_layer_out".into(),
        got_output.view(),
        y.view(),
        tolerance(forward_length, 1.0),
    )];
    let bias_names = bias_delta_names(n_layers);
    for (l, name) in delta_names(n_layers).into_iter().enumerate() {
        // Forward through every layer, back through the error terms above layer l (their
        // reductions run over the next layer's units), then the sum over the batch.
        let backward_length: usize = sizes[l + 2..].iter().sum();
        let tol = tolerance(
            forward_length + backward_length + case.records,
            conditioning,
        );
        rows.push(row(
            name,
            got_deltas.weights[l].view(),
            want_deltas.weights[l].view(),
            tol,
        ));
        // A bias delta is the same sum over the batch with an input of 1.
        if let (Some(got), Some(want)) = (&got_deltas.biases, &want_deltas.biases) {
            let as_row = |b: &Array1<f64>| b.view().insert_axis(Axis(0)).to_owned();
            rows.push(row(
                bias_names[l].clone(),
                as_row(&got[l]).view(),
                as_row(&want[l]).view(),
                tol,
            ));
        }
    }
    Ok(rows)
}
