//! `backprop step`: one backward pass on the seed exercise or on a user's NumPy arrays.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ndarray::{Array2, ArrayD, IxDyn};

use backprop::backend;
use backprop::device::CpuPrecision;
use backprop::guard::memory::host_available;
use backprop::guard::numeric::{check_finite_result, check_flag_value};
use backprop::guard::paths::FilePlan;
use backprop::io::{self, WeightsFile};
use backprop::report::numpy_format::format_array;
use backprop::{bias_delta_names, delta_names, seed, Activation, Error, Loss, Network, Spec};

use super::outln;

#[derive(clap::Args)]
pub struct StepArgs {
    /// Weights (.npz): `weights_input_to_hidden`, `weights_hidden_to_output` (see README for
    /// deeper networks). With no files the seed exercise runs.
    #[arg(long, value_name = "W.npz", requires_all = ["input", "target"])]
    weights: Option<PathBuf>,
    /// Inputs (.npy): records x features, or 1-D for one record.
    #[arg(long, value_name = "X.npy", requires_all = ["weights", "target"])]
    input: Option<PathBuf>,
    /// Targets (.npy): records x outputs, or 1-D for one record or one output unit.
    #[arg(long, value_name = "T.npy", requires_all = ["weights", "input"])]
    target: Option<PathBuf>,
    /// Learning rate (the seeds' `learnrate`); the seed exercise uses 0.5.
    #[arg(long, value_name = "LR", allow_hyphen_values = true)]
    lr: Option<f64>,
    /// The hidden layers' activation (the seeds': sigmoid).
    #[arg(long, value_enum, default_value_t = Activation::Sigmoid)]
    activation: Activation,
    /// The output layer's activation.
    #[arg(long, value_enum, default_value_t = Activation::Sigmoid)]
    output: Activation,
    /// The loss whose gradient the deltas follow (the seeds': mse).
    #[arg(long, value_enum, default_value_t = Loss::Mse)]
    loss: Loss,
    /// Where the deltas go (.npz, `delta_w_i_h`, `delta_w_h_o`, and `delta_b_h`, `delta_b_o`
    /// when W.npz holds biases); written atomically.
    #[arg(long, value_name = "D.npz")]
    out: Option<PathBuf>,
    /// Print the deltas as one JSON object keyed by their names.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: crate::commands::BackendArgs,
}

/// A batch problem read from files or taken from the seed exercise.
struct Problem {
    weights: WeightsFile,
    x: Array2<f64>,
    target: Array2<f64>,
    learnrate: f64,
    /// Where the arrays came from, for messages.
    names: String,
}

pub fn run(args: StepArgs) -> Result<()> {
    FilePlan::new()
        .input("--weights", args.weights.as_deref())
        .input("--input", args.input.as_deref())
        .input("--target", args.target.as_deref())
        .output("--out", args.out.as_deref())
        .check()?;
    let problem = load(&args)?;
    backend::memory_plan(
        &problem.weights.network.layer_sizes(),
        problem.x.nrows(),
        8,
        args.backend.device().may_compute_on_host(),
    )?
    .check("host memory", host_available()?.as_ref())?;
    let mut backend = args
        .backend
        .create(
            &problem.weights.network,
            CpuPrecision::F64,
            problem.x.nrows(),
        )
        .with_context(|| problem.names.clone())?;
    check_flag_value("--lr", problem.learnrate, backend.precision())?;
    let deltas = backend
        .delta_weights(problem.x.view(), problem.target.view(), problem.learnrate)
        .with_context(|| problem.names.clone())
        .context("computing the backward pass")?;

    let n_layers = deltas.weights.len();
    let mut shaped: Vec<(String, ArrayD<f64>)> = delta_names(n_layers)
        .into_iter()
        .zip(deltas.weights)
        .zip(&problem.weights.stored_shapes)
        .map(|((name, delta), shape)| {
            let delta = delta
                .into_shape_with_order(IxDyn(shape))
                .context("reshaping a delta to its weights' shape")?;
            Ok((name, delta))
        })
        .collect::<Result<_>>()?;
    shaped.extend(
        bias_delta_names(n_layers)
            .into_iter()
            .zip(deltas.biases.into_iter().flatten().map(|b| b.into_dyn())),
    );
    for (name, delta) in &shaped {
        check_finite_result(name, "the backward pass", delta.view()).with_context(|| {
            format!(
                "{}: the values are too large for {}; nothing was written",
                problem.names,
                backend.description()
            )
        })?;
    }

    if let Some(out) = &args.out {
        io::write_npz(out, &shaped)?;
    }
    if args.json {
        let object: serde_json::Map<String, serde_json::Value> = shaped
            .iter()
            .map(|(name, delta)| (name.clone(), to_json(delta)))
            .collect();
        outln!("{}", serde_json::Value::Object(object))?;
    } else {
        // The seeds print the later layer first; biases after the weights.
        let (weights, biases) = shaped.split_at(n_layers);
        for (name, delta) in weights.iter().rev().chain(biases.iter().rev()) {
            let what = if name.starts_with("delta_b_") {
                "biases"
            } else {
                "weights"
            };
            outln!("Change in {what} for {} ({name}):", layer_words(name))?;
            outln!("{}", format_array(delta.view()))?;
        }
    }
    Ok(())
}

fn load(args: &StepArgs) -> Result<Problem> {
    let learnrate = args.lr.unwrap_or(0.5);
    if !learnrate.is_finite() || learnrate <= 0.0 {
        return Err(Error::Argument {
            flag: "--lr".into(),
            message: format!("{learnrate} is not a positive finite number"),
        }
        .into());
    }
    let spec = Spec {
        hidden: args.activation,
        output: args.output,
        loss: args.loss,
    };
    spec.check()?;
    let (Some(weights_path), Some(input_path), Some(target_path)) =
        (&args.weights, &args.input, &args.target)
    else {
        let seed = seed::exercise();
        let network = &seed.weights.network;
        let network = Network::with_spec(network.weights().to_vec(), None, spec)?;
        return Ok(Problem {
            weights: WeightsFile {
                network,
                ..seed.weights
            },
            x: seed.x,
            target: seed.target,
            learnrate: args.lr.unwrap_or(seed.learnrate),
            names: "the seed exercise".into(),
        });
    };
    let weights = io::read_weights_npz(weights_path, spec)?;
    let x = io::records(input_path, "input", io::read_npy(input_path)?)?;
    let target = read_target(target_path, x.nrows(), weights.network.n_outputs())?;
    let network = &weights.network;
    backprop::cpu::check_batch(
        network.n_inputs(),
        network.n_outputs(),
        x.dim(),
        target.dim(),
    )
    .with_context(|| {
        format!(
            "{} does not fit {} and {}",
            input_path.display(),
            weights_path.display(),
            target_path.display()
        )
    })?;
    if args.output == Activation::Sigmoid {
        if let Some(t) = target.iter().find(|t| !(0.0..=1.0).contains(*t)) {
            bail!(
                "{}: target {t} is outside [0, 1], which a sigmoid output cannot reach; use --output identity for regression",
                target_path.display()
            );
        }
    }
    Ok(Problem {
        weights,
        x,
        target,
        learnrate,
        names: format!(
            "{}, {} and {}",
            weights_path.display(),
            input_path.display(),
            target_path.display()
        ),
    })
}

/// Targets as records x outputs: a 0-D or 1-D array is reshaped when that is unambiguous
/// (one record, or one output unit).
fn read_target(path: &Path, n_records: usize, n_outputs: usize) -> Result<Array2<f64>> {
    let values = io::read_npy(path)?;
    let shape = values.shape().to_vec();
    let fits_flat = values.ndim() <= 1 && values.len() == n_records * n_outputs;
    let target = if fits_flat {
        values.into_shape_with_order((n_records, n_outputs)).ok()
    } else {
        values.into_dimensionality().ok()
    };
    match target {
        Some(t) if t.dim() == (n_records, n_outputs) => Ok(t),
        _ => bail!(
            "{}: target has shape {shape:?} but the input has {n_records} records and the weights {n_outputs} outputs, so it must be ({n_records}, {n_outputs})",
            path.display()
        ),
    }
}

/// `delta_w_h_o` -> "hidden layer to output layer", as the seeds' printout says.
fn layer_words(name: &str) -> String {
    let word = |s: &str| match s {
        "i" => "input layer".to_string(),
        "o" => "output layer".to_string(),
        "h" => "hidden layer".to_string(),
        h => format!("hidden layer {}", h.trim_start_matches('h')),
    };
    let mut ends = name
        .trim_start_matches("delta_w_")
        .trim_start_matches("delta_b_")
        .split('_');
    let from = ends.next().unwrap_or_default();
    let to = ends.next().unwrap_or_default();
    format!("{} to {}", word(from), word(to))
}

fn to_json(a: &ArrayD<f64>) -> serde_json::Value {
    match a.ndim() {
        0 => serde_json::json!(a.iter().next().copied().unwrap_or(f64::NAN)),
        _ => serde_json::Value::Array(a.outer_iter().map(|sub| to_json(&sub.to_owned())).collect()),
    }
}
