//! `backprop train`: CSV in (the built-in bike-sharing data by default), a trained model, a
//! summary, metrics and plots out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use serde_json::json;

use backprop::backend;
use backprop::data::{
    self, Dataset, Encoder, PipelineOptions, Source, SplitKind, DEFAULT_MAX_CATEGORIES,
};
use backprop::device::CpuPrecision;
use backprop::guard::memory::host_available;
use backprop::guard::numeric::{check_flag_value, Precision};
use backprop::guard::paths::FilePlan;
use backprop::model_file::{self, SavedModel};
use backprop::report::plot;
use backprop::train::{self, Loaded, Outcome, TrainConfig, TrainingState, EXPLODED_FACTOR};
use backprop::{cpu, Activation, Backend, Error, Network};

use super::{errln, outln};

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
    /// Learning rate: a finite number above 0.
    #[arg(long, default_value_t = DEFAULT_LR, allow_hyphen_values = true)]
    lr: f64,
    /// Refuse a categorical column with more distinct values than this (one-hot encoding makes
    /// one feature per value).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CATEGORIES)]
    max_categories: usize,
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
    /// Draw the training and validation loss curves (.png or .svg).
    #[arg(long, value_name = "FILE.png|svg")]
    plot: Option<PathBuf>,
    /// Draw the test set's predictions against the truth over time (.png or .svg).
    #[arg(long, value_name = "FILE.png|svg")]
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

/// Every file the run reads and writes, checked before any work (`guard::paths`).
fn files(args: &TrainArgs) -> FilePlan {
    let writes_checkpoints = args.checkpoint_every.is_some();
    let checkpoint = Some(args.checkpoint.as_path());
    let mut plan = FilePlan::new()
        .input("--data", args.data.as_deref())
        .output("--metrics", args.metrics.as_deref())
        .output("--plot", args.plot.as_deref())
        .output("--plot-predictions", args.plot_predictions.as_deref())
        .output("--save", args.save.as_deref());
    if args.resume {
        plan = plan.input("--checkpoint", checkpoint);
    }
    match (writes_checkpoints, args.resume) {
        (true, true) => plan.updated("--checkpoint", checkpoint),
        (true, false) => plan.output("--checkpoint", checkpoint),
        (false, _) => plan,
    }
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
    check_flag_value("--lr", args.lr, Precision::F32)?;
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
    if args.max_categories == 0 {
        return Err(argument("--max-categories", "must be at least 1".into()));
    }
    for (flag, path) in [
        ("--plot", &args.plot),
        ("--plot-predictions", &args.plot_predictions),
    ] {
        if let Some(path) = path {
            plot::Format::of(path).map_err(|e| argument(flag, e.to_string()))?;
        }
    }
    Ok(())
}

/// Warns when the learning rate is so small that a step cannot change any weight in fp32: an
/// update smaller than half a unit in the last place of a weight rounds away. The weights start
/// near `n_in^-0.5` and the error terms and standardised inputs are of order one, so a learning
/// rate below `2^-25 · n_in^-0.5` leaves every weight as it was.
fn warn_if_learning_rate_is_lost(lr: f64, layer_sizes: &[usize]) {
    let widest = layer_sizes[..layer_sizes.len() - 1]
        .iter()
        .copied()
        .max()
        .unwrap_or(1);
    let typical_weight = (widest as f64).powf(-0.5);
    let half_ulp = typical_weight * f64::from(f32::EPSILON) / 2.0;
    if lr < half_ulp {
        errln!(
            "warning: --lr {lr:e} is so small that no weight can change in fp32 (a step of about lr x 1 is below half a unit in the last place, {half_ulp:.1e}, of weights of size {typical_weight:.2}); training will leave the network as it is"
        );
    }
}

/// The data options, with the built-in data's defaults filled in.
fn pipeline(args: &TrainArgs) -> (Source, PipelineOptions, Option<String>) {
    let standardize_targets = args.output == Activation::Identity;
    let max_categories = args.max_categories;
    match &args.data {
        Some(path) => (
            Source::File(path.clone()),
            PipelineOptions {
                targets: args.target.clone(),
                categorical: args.categorical.clone(),
                drop: args.drop.clone(),
                date: args.date.clone(),
                standardize_targets,
                max_categories,
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
                    max_categories,
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
    files(&args).check()?;
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
    backend::memory_plan(
        &layer_sizes,
        args.batch.min(splits.train.len()),
        4,
        args.backend.may_compute_on_host(),
    )?
    .check("host memory", host_available()?.as_ref())?;
    warn_if_learning_rate_is_lost(args.lr, &layer_sizes);

    let (network, resumed) = initial_network(&args, &encoder, &layer_sizes, &config)?;

    let mut backend = args
        .backend
        .create(&network, CpuPrecision::F32, args.batch)?;
    let description = backend.description();
    let source_name = source.name();
    let feature_names = encoder.feature_names();
    let load = |backend: &mut dyn Backend, part: &str, set: &Dataset| {
        backend
            .load_data(set.x.view(), set.target.view())
            .map_err(|e| set.locate(e, &source_name, part, &encoder))
    };
    let loaded = Loaded {
        train: load(backend.as_mut(), "training", &splits.train)?,
        train_target: splits.train.target.view(),
        validation: load(backend.as_mut(), "validation", &splits.validation)?,
        validation_target: splits.validation.target.view(),
    };
    let state = match resumed {
        Some(state) => TrainingState {
            config: config.clone(),
            ..state
        },
        None => {
            let initial_loss = train::loss(backend.as_mut(), loaded.train, loaded.train_target)?;
            if !initial_loss.is_finite() {
                bail!(
                    "{}: the untrained network's loss on the training data is {initial_loss}: the inputs are too large for fp32 (largest feature {})",
                    source_name.display(),
                    largest_feature(&splits.train, &feature_names)
                );
            }
            TrainingState {
                config: config.clone(),
                initial_loss,
                history: Vec::new(),
            }
        }
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
    let mut last_checkpoint: Option<usize> = None;
    let finished = train::run(
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
                    last_checkpoint = Some(record.epoch);
                }
            }
            Ok(())
        },
    );
    bar.finish_and_clear();
    let kept = match last_checkpoint {
        Some(epoch) => format!(
            "; the last complete checkpoint, {} (epoch {epoch}), is kept",
            args.checkpoint.display()
        ),
        None => "; nothing was written".into(),
    };
    let train::Finished {
        outcome,
        state,
        records_per_second,
    } = finished.map_err(|e| match e {
        Error::Interrupted { signal, detail } => anyhow::Error::from(Error::Interrupted {
            signal,
            detail: format!("{detail}{kept}"),
        }),
        other => anyhow::Error::from(other).context(kept.trim_start_matches("; ").to_string()),
    })?;
    let seconds = started.elapsed().as_secs_f64();

    if let Outcome::Diverged {
        epoch,
        train_loss,
        val_loss,
        first_non_finite_batch,
    } = outcome
    {
        let (which, loss) =
            if train_loss.is_finite() && val_loss.is_finite() && val_loss > train_loss {
                ("validation", val_loss)
            } else {
                ("training", train_loss)
            };
        let what = match first_non_finite_batch {
            Some(batch) => format!(
                "output_layer_out first held a NaN or an infinity in batch {} of {} (records {} to {} of the epoch's shuffled order)",
                batch + 1,
                splits.train.len().div_ceil(args.batch),
                batch * args.batch + 1,
                ((batch + 1) * args.batch).min(splits.train.len())
            ),
            None => format!(
                "the {which} loss {loss:.4e} is over {EXPLODED_FACTOR}x the untrained network's {:.4}",
                state.initial_loss
            ),
        };
        bail!(
            "training diverged at epoch {epoch}: {what}; {}{kept}",
            divergence_cause(&splits.train, &feature_names, args.lr)
        );
    }

    let test = load(backend.as_mut(), "test", &splits.test)?;
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
    // The model first: a closed standard output or a later failure must not lose it.
    if let Some(path) = &args.save {
        model_file::save(
            path,
            &SavedModel {
                network: backend.network()?,
                encoder: encoder.clone(),
                training: Some(state.clone()),
            },
        )?;
    }
    for (name, y, part) in &parts {
        part.check_predictions(&source_name, name, &feature_names, y.view())
            .with_context(|| match &args.save {
                Some(path) => format!(
                    "the model was saved to {}, but no metrics or plots were written",
                    path.display()
                ),
                None => "no metrics or plots were written".into(),
            })?;
    }
    let names = encoder.target_names();
    let unit_label = unit.clone().unwrap_or_else(|| "data units".into());
    let summary = summarise(&encoder, &parts);

    if let Some(path) = &args.metrics {
        let mut metrics = summary.json(&names);
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
            &format!("{} on {}", names.join(", "), source_name.display()),
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

    outln!(
        "trained {:?} ({} output) for {} epochs on {description}: {} training records, {:.0} records/s, {:.1} s",
        layer_sizes, args.output, config.epochs, splits.train.len(), records_per_second, seconds
    )?;
    if splits.dropped > 0 {
        outln!("{} records without a target were left out", splits.dropped)?;
    }
    summary.print(&names, &unit_label)
}

/// The feature farthest from its training mean over a data set, as `name = value at line N`.
fn largest_feature(set: &Dataset, feature_names: &[String]) -> String {
    let mut best = (0usize, 0usize, 0.0f64);
    for ((r, c), &v) in set.x.indexed_iter() {
        if v.abs() > best.2.abs() {
            best = (r, c, v);
        }
    }
    format!(
        "`{}` = {:.3e} at line {}",
        feature_names.get(best.1).cloned().unwrap_or_default(),
        best.2,
        set.lines.get(best.0).copied().unwrap_or_default()
    )
}

/// Standardised features this many deviations from their mean are outliers that can overflow
/// fp32 by themselves; below it, a diverging run is the learning rate's doing.
const LARGE_FEATURE: f64 = 1e4;

/// What made a run diverge: outlying inputs when some feature is enormous, else the step size.
fn divergence_cause(train: &Dataset, feature_names: &[String], lr: f64) -> String {
    let largest = train.x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if largest > LARGE_FEATURE {
        format!(
            "the inputs are the likely cause, not the learning rate: {} standard deviations from the training mean; look for outliers in that column, or drop it",
            largest_feature(train, feature_names)
        )
    } else {
        format!(
            "the inputs are standardised (no feature beyond {largest:.1} standard deviations), so the step is too large: try a smaller learning rate, e.g. --lr {}",
            lr / 4.0
        )
    }
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

/// The figures of each split: the loss in standardised units, the RMSE in the data's units
/// per target, and accuracy for one-hot targets.
struct Summary {
    rows: Vec<SummaryRow>,
}

struct SummaryRow {
    name: &'static str,
    mse: f64,
    rmse: Vec<f64>,
    accuracy: Option<f64>,
}

fn summarise(encoder: &Encoder, parts: &[(&'static str, Array2<f64>, &Dataset)]) -> Summary {
    let rows = parts
        .iter()
        .map(|(name, y, part)| {
            let rmse = encoder
                .targets
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    let col = |a: &Array2<f64>| a.index_axis(Axis(1), j).to_owned();
                    let diff = col(y) - col(&part.target);
                    (diff.mapv(|d| d * d).mean().unwrap_or(0.0)).sqrt() * t.std
                })
                .collect();
            SummaryRow {
                name,
                mse: cpu::mean_squared_error(y.view(), part.target.view()),
                rmse,
                accuracy: accuracy(y.view(), part.target.view()),
            }
        })
        .collect();
    Summary { rows }
}

impl Summary {
    /// The same figures for `--metrics`.
    fn json(&self, names: &[String]) -> serde_json::Map<String, serde_json::Value> {
        let mut summary = serde_json::Map::new();
        for row in &self.rows {
            summary.insert(format!("{}_loss", row.name), json!(row.mse));
            let rmse_by_name: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .zip(&row.rmse)
                .map(|(n, r)| (n.clone(), json!(r)))
                .collect();
            summary.insert(
                format!("{}_rmse_original_units", row.name),
                json!(rmse_by_name),
            );
            if let Some(a) = row.accuracy {
                summary.insert(format!("{}_accuracy", row.name), json!(a));
            }
        }
        summary
    }

    fn print(&self, names: &[String], unit_label: &str) -> Result<()> {
        outln!(
            "{:<11} {:>19}  {}",
            "",
            "MSE (standardised)",
            names
                .iter()
                .map(|n| format!("{:>22}", format!("RMSE {n} ({unit_label})")))
                .collect::<String>()
        )?;
        for row in &self.rows {
            outln!(
                "{:<11} {:>19.4}  {}{}",
                row.name,
                row.mse,
                row.rmse
                    .iter()
                    .map(|r| format!("{r:>22.2}"))
                    .collect::<String>(),
                row.accuracy
                    .map_or(String::new(), |a| format!("  accuracy {:.1}%", a * 100.0))
            )?;
        }
        Ok(())
    }
}
