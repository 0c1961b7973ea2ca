//! `backprop train`: CSV in (the built-in bike-sharing data by default), a trained model, a
//! summary, metrics and plots out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use serde_json::json;

use backprop::backend::CpuPrecision;
use backprop::data::{self, Dataset, Encoder, PipelineOptions, Source, SplitKind};
use backprop::model_file::{self, SavedModel};
use backprop::report::plot;
use backprop::train::{self, Loaded, Outcome, TrainConfig, TrainingState, EXPLODED_FACTOR};
use backprop::{cpu, Activation, Error, Network};

/// Defaults that train the built-in data past the seed project's bar (training loss < 0.09,
/// validation loss < 0.18) well within two minutes on two CPU cores.
const DEFAULT_EPOCHS: usize = 80;
const DEFAULT_BATCH: usize = 32;
const DEFAULT_LR: f64 = 0.3;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The CSV to train on; without it, the built-in hourly bike-sharing data (target `cnt`,
    /// `casual` and `registered` dropped, date `dteday`).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Target column(s), comma-separated.
    #[arg(long, value_name = "COL[,COL...]", value_delimiter = ',')]
    target: Vec<String>,
    /// Columns to one-hot encode even though they hold numbers (text columns always are).
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    categorical: Vec<String>,
    /// Columns to ignore.
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    drop: Vec<String>,
    /// A date column (YYYY-MM-DD): gives year and month features, the time split, and fills
    /// empty weekday cells.
    #[arg(long, value_name = "COL")]
    date: Option<String>,
    /// `time`: the last 21 days are the test set, the 60 before them validation (default with a
    /// date); `random`: 10% test, 10% validation (default without).
    #[arg(long, value_enum)]
    split: Option<SplitKind>,
    /// Seed of the weights, the random split and the per-epoch shuffles.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Hidden layer sizes, e.g. `25` or `512,128`.
    #[arg(
        long,
        value_name = "N[,N...]",
        value_delimiter = ',',
        default_value = "25"
    )]
    hidden: Vec<usize>,
    #[arg(long, default_value_t = DEFAULT_EPOCHS)]
    epochs: usize,
    /// Records per mini-batch; each batch steps by the mean of its records' deltas.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = DEFAULT_LR, allow_negative_numbers = true)]
    lr: f64,
    /// Output activation: identity for regression (targets standardised), sigmoid for targets
    /// in [0, 1] (one-hot targets also report accuracy).
    #[arg(long, value_enum, default_value_t = Activation::Identity)]
    output: Activation,
    #[command(flatten)]
    backend: super::BackendArgs,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Write each epoch's losses and the final test loss as JSON.
    #[arg(long, value_name = "FILE.json")]
    metrics: Option<PathBuf>,
    /// Draw the training and validation loss curves (PNG).
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
    /// Draw the test set's predictions against the truth over time (PNG).
    #[arg(long, value_name = "FILE.png")]
    plot_predictions: Option<PathBuf>,
    /// Save the trained model (safetensors: weights, layer sizes, activations, encoding).
    #[arg(long, value_name = "FILE.safetensors")]
    save: Option<PathBuf>,
    /// Where checkpoints go.
    #[arg(long, value_name = "FILE", default_value = "checkpoint.safetensors")]
    checkpoint: PathBuf,
    /// Write a checkpoint every N epochs.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Continue the run saved in --checkpoint (same data and flags) up to --epochs.
    #[arg(long)]
    resume: bool,
}

fn argument(flag: &str, message: String) -> anyhow::Error {
    Error::Argument {
        flag: flag.into(),
        message,
    }
    .into()
}

fn check_flags(args: &TrainArgs) -> Result<()> {
    if args.epochs == 0 {
        return Err(argument("--epochs", "must be at least 1".into()));
    }
    if args.batch == 0 {
        return Err(argument("--batch", "must be at least 1".into()));
    }
    if !args.lr.is_finite() || args.lr <= 0.0 {
        return Err(argument(
            "--lr",
            format!("{} is not a positive finite number", args.lr),
        ));
    }
    if args.hidden.is_empty() || args.hidden.contains(&0) {
        return Err(argument(
            "--hidden",
            format!("{:?}: every layer needs at least one unit", args.hidden),
        ));
    }
    if args.checkpoint_every == Some(0) {
        return Err(argument("--checkpoint-every", "must be at least 1".into()));
    }
    if args.data.is_some() && args.target.is_empty() {
        return Err(argument(
            "--target",
            "name the target column(s) of --data".into(),
        ));
    }
    Ok(())
}

/// The data options, with the built-in data's defaults filled in.
fn pipeline(args: &TrainArgs) -> (Source, PipelineOptions, Option<String>) {
    let standardize_targets = args.output == Activation::Identity;
    match &args.data {
        Some(path) => (
            Source::File(path.clone()),
            PipelineOptions {
                targets: args.target.clone(),
                categorical: args.categorical.clone(),
                drop: args.drop.clone(),
                date: args.date.clone(),
                standardize_targets,
            },
            None,
        ),
        None => {
            let or = |given: &Vec<String>, default: &[&str]| {
                if given.is_empty() {
                    default.iter().map(|s| s.to_string()).collect()
                } else {
                    given.clone()
                }
            };
            (
                Source::BuiltIn,
                PipelineOptions {
                    targets: or(&args.target, &["cnt"]),
                    categorical: args.categorical.clone(),
                    drop: or(&args.drop, &["casual", "registered"]),
                    date: args.date.clone().or(Some("dteday".into())),
                    standardize_targets,
                },
                Some("rides per hour".into()),
            )
        }
    }
}

/// Sigmoid outputs live in (0, 1): a target outside [0, 1] can never be reached.
fn check_sigmoid_targets(source: &Path, parts: [&Dataset; 3]) -> Result<()> {
    for part in parts {
        for (i, row) in part.target.outer_iter().enumerate() {
            if let Some(t) = row.iter().find(|t| !(0.0..=1.0).contains(*t)) {
                bail!(
                    "{}: line {}: target {t} is outside [0, 1], which a sigmoid output cannot reach; use --output identity",
                    source.display(),
                    part.lines[i]
                );
            }
        }
    }
    Ok(())
}

/// Accuracy when the targets are one-hot (two or more 0/1 columns summing to 1).
fn accuracy(y: ArrayView2<f64>, target: ArrayView2<f64>) -> Option<f64> {
    let one_hot = target.ncols() >= 2
        && target
            .outer_iter()
            .all(|r| r.iter().all(|&v| v == 0.0 || v == 1.0) && r.sum() == 1.0);
    if !one_hot {
        return None;
    }
    let argmax = |r: ndarray::ArrayView1<f64>| {
        r.iter()
            .enumerate()
            .fold(
                (0, f64::MIN),
                |best, (i, &v)| if v > best.1 { (i, v) } else { best },
            )
            .0
    };
    let hits = y
        .outer_iter()
        .zip(target.outer_iter())
        .filter(|(a, b)| argmax(*a) == argmax(*b))
        .count();
    Some(hits as f64 / target.nrows() as f64)
}

pub fn run(args: TrainArgs) -> Result<()> {
    check_flags(&args)?;
    let (source, options, unit) = pipeline(&args);
    let split = args.split.unwrap_or(if options.date.is_some() {
        SplitKind::Time
    } else {
        SplitKind::Random
    });
    let (encoder, splits) = data::prepare(&source, &options, split, args.seed)?;
    if args.output == Activation::Sigmoid {
        check_sigmoid_targets(
            &source.name(),
            [&splits.train, &splits.validation, &splits.test],
        )?;
    }
    let mut layer_sizes = vec![encoder.n_features()];
    layer_sizes.extend(&args.hidden);
    layer_sizes.push(encoder.targets.len());
    let config = TrainConfig {
        epochs: args.epochs,
        batch: args.batch,
        learnrate: args.lr,
        seed: args.seed,
    };

    let (network, resumed) = initial_network(&args, &encoder, &layer_sizes, &config)?;

    let mut backend = args.backend.create(&network, CpuPrecision::F32)?;
    let description = backend.description();
    let loaded = Loaded {
        train: backend.load_data(splits.train.x.view(), splits.train.target.view())?,
        train_target: splits.train.target.view(),
        validation: backend
            .load_data(splits.validation.x.view(), splits.validation.target.view())?,
        validation_target: splits.validation.target.view(),
    };
    let state = match resumed {
        Some(state) => TrainingState {
            config: config.clone(),
            ..state
        },
        None => TrainingState {
            config: config.clone(),
            initial_loss: train::loss(backend.as_mut(), loaded.train, loaded.train_target)?,
            history: Vec::new(),
        },
    };
    if state.epochs_done() >= config.epochs {
        bail!(
            "{}: already trained for {} epochs; ask for more with --epochs",
            args.checkpoint.display(),
            state.epochs_done()
        );
    }

    let bar = ProgressBar::new(config.epochs as u64).with_position(state.epochs_done() as u64);
    if args.quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("epoch {pos}/{len} {bar:30} {msg} [{elapsed} < {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut checkpoint_written = false;
    let train::Finished {
        outcome,
        state,
        records_per_second,
    } = train::run(
        backend.as_mut(),
        &loaded,
        state,
        |record, state, backend| {
            bar.set_position(record.epoch as u64);
            bar.set_message(format!(
                "train {:.4} val {:.4}",
                record.train_loss, record.val_loss
            ));
            if let Some(every) = args.checkpoint_every {
                if record.epoch % every == 0 {
                    model_file::save(
                        &args.checkpoint,
                        &SavedModel {
                            network: backend.network()?,
                            encoder: encoder.clone(),
                            training: Some(state.clone()),
                        },
                    )?;
                    checkpoint_written = true;
                }
            }
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();

    if let Outcome::Diverged {
        epoch,
        train_loss,
        val_loss,
    } = outcome
    {
        let kept = if checkpoint_written {
            format!(
                "; the last good checkpoint, {}, is kept",
                args.checkpoint.display()
            )
        } else {
            String::new()
        };
        bail!(
            "training diverged at epoch {epoch}: training loss {train_loss:.4e}, validation loss {val_loss:.4e} (NaN, or over {EXPLODED_FACTOR}x the untrained {:.4}); try a smaller learning rate, e.g. --lr {}{kept}",
            state.initial_loss,
            args.lr / 4.0
        );
    }

    let test = backend.load_data(splits.test.x.view(), splits.test.target.view())?;
    let parts = [
        (
            "training",
            backend.predict_data(loaded.train)?,
            &splits.train,
        ),
        (
            "validation",
            backend.predict_data(loaded.validation)?,
            &splits.validation,
        ),
        ("test", backend.predict_data(test)?, &splits.test),
    ];
    let names = encoder.target_names();
    println!(
        "trained {:?} ({} output) for {} epochs on {description}: {} training records, {:.0} records/s, {:.1} s",
        layer_sizes, args.output, config.epochs, splits.train.len(), records_per_second, seconds
    );
    if splits.dropped > 0 {
        println!("{} records without a target were left out", splits.dropped);
    }
    let unit_label = unit.clone().unwrap_or_else(|| "data units".into());
    let summary = print_summary(&encoder, &parts, &unit_label);

    if let Some(path) = &args.metrics {
        let mut metrics = summary.clone();
        metrics.insert("backend".into(), json!(description));
        metrics.insert("layer_sizes".into(), json!(layer_sizes));
        metrics.insert("config".into(), json!(config));
        metrics.insert("records_per_second".into(), json!(records_per_second));
        metrics.insert("epochs".into(), json!(state.history));
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(metrics))?;
        backprop::io::write_atomic(path, |w| {
            std::io::Write::write_all(w, text.as_bytes()).map_err(|e| Error::Io {
                path: path.clone(),
                cause: e,
            })
        })?;
    }
    if let Some(path) = &args.plot {
        plot::loss_curves(
            path,
            &state.history,
            &format!("{} on {}", names.join(", "), source.name().display()),
        )?;
    }
    if let Some(path) = &args.plot_predictions {
        let (_, y, part) = &parts[2];
        let hours: Vec<f64> = match &part.time {
            Some(t) => t.iter().map(|v| v - t[0]).collect(),
            None => (0..part.len()).map(|i| i as f64).collect(),
        };
        let truth = encoder.destandardize(&part.target);
        let predicted = encoder.destandardize(y);
        plot::predictions(
            path,
            &hours,
            &truth.column(0).to_vec(),
            &predicted.column(0).to_vec(),
            &format!("test set: {} predicted and observed", names[0]),
            &format!("{} ({unit_label})", names[0]),
        )?;
    }
    if let Some(path) = &args.save {
        model_file::save(
            path,
            &SavedModel {
                network: backend.network()?,
                encoder,
                training: Some(state),
            },
        )?;
    }
    Ok(())
}

/// The network to start from: the checkpoint's with `--resume` (which must come from the same
/// data, layers and flags), else seed 004's random initialisation.
fn initial_network(
    args: &TrainArgs,
    encoder: &Encoder,
    layer_sizes: &[usize],
    config: &TrainConfig,
) -> Result<(Network<f64>, Option<TrainingState>)> {
    if args.resume {
        let saved = model_file::load(&args.checkpoint).context("--resume")?;
        let Some(state) = saved.training else {
            bail!(
                "{}: holds no training state to resume",
                args.checkpoint.display()
            );
        };
        if saved.encoder != *encoder
            || saved.network.layer_sizes() != *layer_sizes
            || saved.network.output_activation() != args.output
        {
            bail!("{}: the checkpoint was made with other data or flags (layers {:?}, {} output); resume with the same ones", args.checkpoint.display(), saved.network.layer_sizes(), saved.network.output_activation());
        }
        let same_run = TrainConfig {
            epochs: state.config.epochs,
            ..config.clone()
        } == state.config;
        if !same_run {
            bail!("{}: the checkpoint was made with --batch {} --lr {} --seed {}; resume with the same", args.checkpoint.display(), state.config.batch, state.config.learnrate, state.config.seed);
        }
        Ok((saved.network, Some(state)))
    } else {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
        Ok((Network::random(layer_sizes, args.output, &mut rng)?, None))
    }
}

/// Prints the loss of each split in standardised units and the RMSE in the data's units (plus
/// accuracy for one-hot targets) and returns the same figures for `--metrics`.
fn print_summary(
    encoder: &Encoder,
    parts: &[(&str, Array2<f64>, &Dataset)],
    unit_label: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let names = encoder.target_names();
    println!(
        "{:<11} {:>19}  {}",
        "",
        "MSE (standardised)",
        names
            .iter()
            .map(|n| format!("{:>22}", format!("RMSE {n} ({unit_label})")))
            .collect::<String>()
    );
    let mut summary = serde_json::Map::new();
    for (name, y, part) in parts {
        let mse = cpu::mean_squared_error(y.view(), part.target.view());
        let rmse: Vec<f64> = encoder
            .targets
            .iter()
            .enumerate()
            .map(|(j, t)| {
                let col = |a: &Array2<f64>| a.index_axis(Axis(1), j).to_owned();
                let diff = col(y) - col(&part.target);
                (diff.mapv(|d| d * d).mean().unwrap_or(f64::NAN)).sqrt() * t.std
            })
            .collect();
        let acc = accuracy(y.view(), part.target.view());
        println!(
            "{name:<11} {mse:>19.4}  {}{}",
            rmse.iter()
                .map(|r| format!("{r:>22.2}"))
                .collect::<String>(),
            acc.map_or(String::new(), |a| format!("  accuracy {:.1}%", a * 100.0))
        );
        summary.insert(format!("{name}_loss"), json!(mse));
        let rmse_by_name: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(&rmse)
            .map(|(n, r)| (n.clone(), json!(r)))
            .collect();
        summary.insert(format!("{name}_rmse_original_units"), json!(rmse_by_name));
        if let Some(a) = acc {
            summary.insert(format!("{name}_accuracy"), json!(a));
        }
    }
    summary
}
