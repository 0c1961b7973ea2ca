//! `backprop train`: CSV in (the built-in bike-sharing data by default), a trained model, a
//! summary, metrics and plots out.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use serde_json::json;

use backprop::backend;
use backprop::comm::{check_same_on_every_rank, checksum, Communicator};
use backprop::data::{
    self, Dataset, Encoder, Missing, PipelineOptions, SeparateSets, Source, SplitKind,
    SplitOptions, DEFAULT_MAX_CATEGORIES,
};
use backprop::device::CpuPrecision;
use backprop::guard::memory::host_available;
use backprop::guard::numeric::{check_flag_value, Precision};
use backprop::guard::paths::FilePlan;
use backprop::model::Init;
use backprop::model_file::{self, SavedModel};
use backprop::ops::optimizer::{short, Method, Optimizer, OptimizerState};
use backprop::parallel::{flatten, parameters, DataParallel, HiddenParallel, Parallel};
use backprop::report::metrics::{ClassReport, RegressionReport};
use backprop::report::plot;
use backprop::report::summary::{self, Figures};
use backprop::train::schedule::{Schedule, ScheduleKind};
use backprop::train::{
    self, EarlyStopping, Evaluation, Loaded, Outcome, Progress, TrainConfig, TrainingState,
    EXPLODED_FACTOR,
};
use backprop::{Activation, Backend, Error, Loss, Network, Spec};

use super::{errln, outln};

/// Defaults that train the built-in data past the seed project's bar (training loss < 0.09,
/// validation loss < 0.18) well within two minutes on two CPU cores.
const DEFAULT_EPOCHS: usize = 80;
const DEFAULT_BATCH: usize = 32;

/// `--lr`: a number, or `auto` for the optimizer's default.
#[derive(Clone, Copy, Debug)]
pub enum LearnRate {
    Auto,
    Value(f64),
}

impl std::str::FromStr for LearnRate {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "auto" {
            return Ok(LearnRate::Auto);
        }
        s.parse()
            .map(LearnRate::Value)
            .map_err(|_| format!("`{s}` is neither a number nor `auto`"))
    }
}

/// The learning rate `--lr auto` gives each optimizer: the seed project's 0.3 on standardised
/// data for SGD, the same effective step lr/(1 − μ) for momentum, and Adam's customary 1e-3
/// (PyTorch's and scikit-learn's default).
fn auto_learnrate(method: Method, momentum: f64) -> f64 {
    match method {
        Method::Sgd => 0.3,
        // Rounded so that the summary shows 0.03, not 0.029999999999999992.
        Method::Momentum => (0.3 * (1.0 - momentum) * 1e12).round() / 1e12,
        Method::Adam | Method::Adamw => 1e-3,
    }
}

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
    /// date); `random`: --test-fraction test, --val-fraction validation (default without),
    /// stratified by class for classification.
    #[arg(long, value_enum)]
    split: Option<SplitKind>,
    /// The random split's fractions of test and validation records.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.1,
        allow_hyphen_values = true
    )]
    test_fraction: f64,
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.1,
        allow_hyphen_values = true
    )]
    val_fraction: f64,
    /// Validation records from a file of their own (the columns of --data), encoded with the
    /// training data's encoder; the split then makes no validation set.
    #[arg(long, value_name = "FILE")]
    val: Option<PathBuf>,
    /// Test records from a file of their own, likewise.
    #[arg(long, value_name = "FILE")]
    test: Option<PathBuf>,
    /// What an empty feature cell becomes: an error naming it (the default with --data), the
    /// record left out, or the training mean, median or most frequent value (categories under
    /// mean and median: their own level `(missing)`; the built-in data's default: mean).
    #[arg(long, value_enum)]
    missing: Option<Missing>,
    /// Seed of the initial weights (and, unless given apart, of the split and the shuffles).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Seed of the random split (default: --seed), so that changing the initialisation
    /// keeps the test set.
    #[arg(long, value_name = "S")]
    split_seed: Option<u64>,
    /// Seed of the per-epoch shuffles (default: --seed).
    #[arg(long, value_name = "S")]
    shuffle_seed: Option<u64>,
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
    /// Records per mini-batch; each batch steps by the mean of its records' deltas. Larger
    /// than the training set: clipped to it, with a notice. The last batch of an epoch holds
    /// the remainder (a smaller batch, its mean over fewer records) unless --drop-last.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// Leave out each epoch's partial last batch (other epochs shuffle those records in).
    #[arg(long)]
    drop_last: bool,
    /// Learning rate: a finite number above 0, or `auto`: 0.3 for sgd (the seed project's),
    /// 0.3·(1 − momentum) for momentum, 0.001 for adam and adamw.
    #[arg(long, default_value = "auto", allow_hyphen_values = true)]
    lr: LearnRate,
    /// How each batch's gradient changes the weights (sgd: the seeds').
    #[arg(long, value_enum, default_value_t = Method::Sgd)]
    optimizer: Method,
    /// Momentum μ of --optimizer momentum.
    #[arg(long, default_value_t = 0.9, allow_hyphen_values = true)]
    momentum: f64,
    /// Nesterov's momentum (with --optimizer momentum).
    #[arg(long)]
    nesterov: bool,
    /// Adam's β1 and β2 and its ε.
    #[arg(long, default_value_t = 0.9, allow_hyphen_values = true)]
    beta1: f64,
    #[arg(long, default_value_t = 0.999, allow_hyphen_values = true)]
    beta2: f64,
    #[arg(long, default_value_t = 1e-8, allow_hyphen_values = true)]
    epsilon: f64,
    /// Weight decay λ: L2 (λ·w added to the gradient) for sgd, momentum and adam, decoupled
    /// (w scaled by 1 − lr·λ) for adamw. Applies to biases too. Default: 0, and PyTorch's 0.01
    /// for adamw.
    #[arg(long, allow_hyphen_values = true)]
    weight_decay: Option<f64>,
    /// The learning rate over the epochs.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Constant)]
    lr_schedule: ScheduleKind,
    /// Epochs of linear warm-up before the schedule: epoch e trains at lr·e/(warmup + 1).
    #[arg(long, value_name = "EPOCHS", default_value_t = 0)]
    warmup: usize,
    /// --lr-schedule step: the period in epochs and the factor.
    #[arg(long, value_name = "EPOCHS", default_value_t = 30)]
    lr_step: usize,
    #[arg(long, default_value_t = 0.1, allow_hyphen_values = true)]
    lr_gamma: f64,
    /// Stop when the validation loss has not improved for N epochs, keeping the best epoch's
    /// weights.
    #[arg(long, value_name = "N")]
    patience: Option<usize>,
    /// The improvement of the validation loss that counts (with --patience).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    min_delta: f64,
    /// Refuse a categorical column with more distinct values than this (one-hot encoding makes
    /// one feature per value).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CATEGORIES)]
    max_categories: usize,
    /// The hidden layers' activation (the seeds': sigmoid); weights start Glorot-scaled for
    /// sigmoid and tanh, He-scaled for the ReLUs.
    #[arg(long, value_enum, default_value_t = Activation::Sigmoid)]
    activation: Activation,
    /// The loss: mse (regression, the seeds'), or cross-entropy (classes in a text or integer
    /// target column, or probabilities in [0, 1]).
    #[arg(long, value_enum, default_value_t = Loss::Mse)]
    loss: Loss,
    /// Output activation. Default: identity with mse (targets standardised); with
    /// cross-entropy, softmax for three or more classes and one sigmoid output for two
    /// classes or for probabilities. Sigmoid with mse needs targets in [0, 1].
    #[arg(long, value_enum)]
    output: Option<Activation>,
    /// No biases: the seeds' network (and the seeds' initialisation).
    #[arg(long)]
    no_bias: bool,
    /// The first weights: auto (Glorot for sigmoid and tanh, He for the ReLUs), he, glorot,
    /// or glorot-uniform (scikit-learn's MLP: weights and biases uniform). Not with --no-bias,
    /// which keeps the seeds' initialisation.
    #[arg(long, value_enum, default_value_t = Init::Auto)]
    init: Init,
    #[command(flatten)]
    backend: super::BackendArgs,
    /// The CPU backend's precision: f32 (fast; what the GPU computes in) or f64 (the
    /// reference's).
    #[arg(long, value_enum, default_value_t = CpuPrecision::F32)]
    precision: CpuPrecision,
    /// Under mpirun/srun (built with `--features mpi`): split each batch's records across the
    /// ranks (data), or the hidden layer's units (hidden: for a layer too large for one device).
    #[arg(long, value_enum, default_value_t = Parallel::Data)]
    parallel: Parallel,
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

/// The backend that trains: the one `--backend` names, wrapped for `--parallel` when the run
/// has several ranks.
fn create_backend<'a>(
    args: &'a TrainArgs,
    network: &Network<f64>,
    batch: usize,
    comm: &'a dyn Communicator,
) -> Result<Box<dyn Backend + 'a>> {
    let create = |network: &Network<f64>| {
        args.backend
            .create_for_rank(network, args.precision, batch, comm)
    };
    if comm.size() == 1 {
        if args.parallel == Parallel::Hidden {
            errln!("notice: --parallel hidden splits the hidden layer across MPI ranks (see README, \"Beyond one machine\"); one process trains the whole layer");
        }
        return create(network);
    }
    Ok(match args.parallel {
        Parallel::Data => Box::new(DataParallel::new(create(network)?, comm)?),
        Parallel::Hidden => {
            let inner = create(&HiddenParallel::slice_of(network, comm)?)?;
            Box::new(HiddenParallel::new(network, comm, inner)?)
        }
    })
}

/// Every file the run reads and writes, checked before any work (`guard::paths`).
fn files(args: &TrainArgs) -> FilePlan {
    let writes_checkpoints = args.checkpoint_every.is_some();
    let checkpoint = Some(args.checkpoint.as_path());
    let mut plan = FilePlan::new()
        .input("--data", args.data.as_deref())
        .input("--val", args.val.as_deref())
        .input("--test", args.test.as_deref())
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
    if args.precision == CpuPrecision::F64 && !args.backend.is_cpu() {
        return Err(argument(
            "--precision",
            "f64 is the CPU backend's precision (the GPU computes in f32): add --backend cpu"
                .into(),
        ));
    }
    if args.epochs == 0 {
        return Err(argument("--epochs", "must be at least 1".into()));
    }
    if args.batch == 0 {
        return Err(argument("--batch", "must be at least 1".into()));
    }
    if let LearnRate::Value(lr) = args.lr {
        if !lr.is_finite() || lr <= 0.0 {
            return Err(argument(
                "--lr",
                format!("{lr} is not a positive finite number"),
            ));
        }
        check_flag_value("--lr", lr, Precision::F32)?;
    }
    if args.no_bias && args.init != Init::Auto {
        return Err(argument(
            "--init",
            "--no-bias trains the seeds' network from the seeds' initialisation".into(),
        ));
    }
    if args.patience == Some(0) {
        return Err(argument("--patience", "must be at least 1 epoch".into()));
    }
    if !(args.min_delta.is_finite() && args.min_delta >= 0.0) {
        return Err(argument(
            "--min-delta",
            format!("{} is not a finite number >= 0", args.min_delta),
        ));
    }
    optimizer_of(args).check()?;
    schedule_of(args).check(args.epochs)?;
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
    SplitOptions {
        test_fraction: args.test_fraction,
        validation_fraction: args.val_fraction,
        ..SplitOptions::new(SplitKind::Random, 0)
    }
    .check()?;
    if args.max_categories == 0 {
        return Err(argument("--max-categories", "must be at least 1".into()));
    }
    if args.loss == Loss::CrossEntropy && args.plot_predictions.is_some() {
        return Err(argument(
            "--plot-predictions",
            "draws a regression target over time; with --loss cross-entropy the summary has the confusion matrix".into(),
        ));
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

fn optimizer_of(args: &TrainArgs) -> Optimizer {
    Optimizer {
        method: args.optimizer,
        momentum: args.momentum,
        nesterov: args.nesterov,
        beta1: args.beta1,
        beta2: args.beta2,
        epsilon: args.epsilon,
        weight_decay: args.weight_decay.unwrap_or(match args.optimizer {
            Method::Adamw => 0.01,
            _ => 0.0,
        }),
    }
}

fn schedule_of(args: &TrainArgs) -> Schedule {
    Schedule {
        kind: args.lr_schedule,
        warmup: args.warmup,
        step: args.lr_step,
        gamma: args.lr_gamma,
    }
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
    let classify = args.loss == Loss::CrossEntropy;
    let standardize_targets =
        !classify && args.output.unwrap_or(Activation::Identity) == Activation::Identity;
    let max_categories = args.max_categories;
    let output = args.output;
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
                classify,
                output,
                missing: args.missing.unwrap_or(Missing::Error),
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
                    classify,
                    output,
                    // The seed project fills the data's empty temperatures with the mean.
                    missing: args.missing.unwrap_or(Missing::Mean),
                },
                Some("rides per hour".into()),
            )
        }
    }
}

/// Sigmoid outputs live in (0, 1): a target outside [0, 1] can never be reached.
fn check_sigmoid_targets(parts: [&Dataset; 3]) -> Result<()> {
    for part in parts {
        for (i, row) in part.target.outer_iter().enumerate() {
            if let Some(t) = row.iter().find(|t| !(0.0..=1.0).contains(*t)) {
                bail!(
                    "{}: line {}: target {t} is outside [0, 1], which a sigmoid output cannot reach; use --output identity",
                    part.source.display(),
                    part.lines[i]
                );
            }
        }
    }
    Ok(())
}

/// The network's kind from the flags and, for classes, from the data: with cross-entropy two
/// classes take one sigmoid output unless softmax was asked for, more take softmax.
fn spec_of(args: &TrainArgs, encoder: &Encoder) -> Result<Spec> {
    let output = match (args.loss, &encoder.classes, args.output) {
        (Loss::CrossEntropy, Some(c), _) if c.single_output => Activation::Sigmoid,
        (_, _, Some(output)) => output,
        (Loss::CrossEntropy, Some(_), None) => Activation::Softmax,
        (Loss::CrossEntropy, None, None) => Activation::Sigmoid,
        (Loss::Mse, _, None) => Activation::Identity,
    };
    let spec = Spec {
        hidden: args.activation,
        output,
        loss: args.loss,
    };
    spec.check()?;
    Ok(spec)
}

pub fn run(args: TrainArgs, comm: &dyn Communicator) -> Result<()> {
    check_flags(&args)?;
    files(&args).check()?;
    let (source, options, unit) = pipeline(&args);
    let split = args.split.unwrap_or(if options.date.is_some() {
        SplitKind::Time
    } else {
        SplitKind::Random
    });
    let split = SplitOptions {
        test_fraction: args.test_fraction,
        validation_fraction: args.val_fraction,
        ..SplitOptions::new(split, args.split_seed.unwrap_or(args.seed))
    };
    let separate = SeparateSets {
        validation: args.val.clone().map(Source::File),
        test: args.test.clone().map(Source::File),
    };
    let (encoder, splits) = data::prepare(&source, &options, &split, &separate)?;
    // Every rank reads the data itself (from a path all can see): check that all read the same.
    check_same_on_every_rank(
        comm,
        "the data",
        checksum(
            [&splits.train, &splits.validation, &splits.test]
                .iter()
                .flat_map(|set| set.x.iter().chain(set.target.iter()).copied()),
        ),
    )?;
    let says = comm.writes_outputs();
    for warning in splits.warnings.iter().filter(|_| says) {
        errln!("warning: {warning}");
    }
    let spec = spec_of(&args, &encoder)?;
    if spec.output == Activation::Sigmoid && spec.loss == Loss::Mse {
        check_sigmoid_targets([&splits.train, &splits.validation, &splits.test])?;
    }
    let mut layer_sizes = vec![encoder.n_features()];
    layer_sizes.extend(&args.hidden);
    layer_sizes.push(encoder.n_outputs());
    let batch = args.batch.min(splits.train.len());
    if batch < args.batch && says {
        errln!(
            "notice: --batch {} is more than the {} training records: each epoch is one batch of {batch}",
            args.batch,
            splits.train.len()
        );
    }
    let optimizer = optimizer_of(&args);
    let learnrate = match args.lr {
        LearnRate::Value(lr) => lr,
        LearnRate::Auto => auto_learnrate(optimizer.method, optimizer.momentum),
    };
    let config = TrainConfig {
        epochs: args.epochs,
        batch,
        learnrate,
        seed: args.seed,
        shuffle_seed: args.shuffle_seed,
        optimizer,
        schedule: schedule_of(&args),
        drop_last: args.drop_last,
        early_stopping: args.patience.map(|patience| EarlyStopping {
            patience,
            min_delta: args.min_delta,
        }),
    };
    let value_bytes = match args.precision {
        CpuPrecision::F32 => 4,
        CpuPrecision::F64 => 8,
    };
    backend::memory_plan(
        &layer_sizes,
        batch,
        value_bytes,
        args.backend.may_compute_on_host(),
    )?
    .check("host memory", host_available()?.as_ref())?;
    if says {
        warn_if_learning_rate_is_lost(learnrate, &layer_sizes);
    }

    let (network, resumed) = initial_network(&args, &encoder, &layer_sizes, spec, &config)?;
    let optimizer_state = resumed
        .as_ref()
        .and_then(|r| r.optimizer.clone())
        .unwrap_or_else(|| OptimizerState::zeros(&optimizer, &network));
    check_same_on_every_rank(
        comm,
        if args.resume {
            "the checkpoint"
        } else {
            "the initial weights"
        },
        checksum(
            flatten(&parameters(&network))
                .into_iter()
                .chain(optimizer_state.moments.iter().flat_map(flatten)),
        ),
    )?;
    let epoch_metrics =
        |y: ArrayView2<f64>, t: ArrayView2<f64>| summary::epoch_metrics(&encoder, y, t);
    let evaluation = Evaluation {
        spec,
        metrics: &epoch_metrics,
    };

    let mut backend = create_backend(&args, &network, batch, comm)?;
    backend.set_optimizer(&optimizer, &optimizer_state)?;
    let description = backend.description();
    let source_name = source.name();
    let feature_names = encoder.feature_names();
    let load = |backend: &mut dyn Backend, part: &str, set: &Dataset| {
        backend
            .load_data(set.x.view(), set.target.view())
            .map_err(|e| set.locate(e, &set.source, part, &encoder))
    };
    let loaded = Loaded {
        train: load(backend.as_mut(), "training", &splits.train)?,
        train_target: splits.train.target.view(),
        validation: load(backend.as_mut(), "validation", &splits.validation)?,
        validation_target: splits.validation.target.view(),
    };
    let progress = match resumed {
        Some(saved) => Progress {
            state: TrainingState {
                config: config.clone(),
                ..saved.state
            },
            best_network: saved.best_network,
        },
        None => {
            let (initial_loss, _) = train::evaluate(
                backend.as_mut(),
                loaded.train,
                loaded.train_target,
                &evaluation,
            )?;
            if !initial_loss.is_finite() {
                bail!(
                    "{}: the untrained network's loss on the training data is {initial_loss}: the inputs are too large for fp32 (largest feature {})",
                    source_name.display(),
                    largest_feature(&splits.train, &feature_names)
                );
            }
            Progress {
                state: TrainingState::new(config.clone(), initial_loss),
                best_network: None,
            }
        }
    };
    if progress.state.is_complete() {
        bail!(
            "{}: already trained for {} epochs{}; ask for more with --epochs",
            args.checkpoint.display(),
            progress.state.epochs_done(),
            if progress.state.stopped_early.is_some() {
                " (stopped early)"
            } else {
                ""
            }
        );
    }

    let bar =
        ProgressBar::new(config.epochs as u64).with_position(progress.state.epochs_done() as u64);
    if args.quiet || !says {
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
        &evaluation,
        progress,
        |record, progress, backend| {
            bar.set_position(record.epoch as u64);
            bar.set_message(format!(
                "train {:.4} val {:.4}",
                record.train_loss, record.val_loss
            ));
            if let Some(every) = args.checkpoint_every {
                if record.epoch % every == 0 {
                    // Every rank reads its part back (a sum over ranks for split layers);
                    // rank 0 writes.
                    let checkpoint = SavedModel {
                        network: backend.network()?,
                        encoder: encoder.clone(),
                        training: Some(progress.state.clone()),
                        optimizer: Some(backend.optimizer_state()?),
                        best_network: progress.best_network.clone(),
                    };
                    if says {
                        model_file::save(&args.checkpoint, &checkpoint)?;
                    }
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
                splits.train.len().div_ceil(config.batch),
                batch * config.batch + 1,
                ((batch + 1) * config.batch).min(splits.train.len())
            ),
            None => format!(
                "the {which} loss {loss:.4e} is over {EXPLODED_FACTOR}x the untrained network's {:.4}",
                state.initial_loss
            ),
        };
        bail!(
            "training diverged at epoch {epoch}: {what}; {}{kept}",
            divergence_cause(&splits.train, &feature_names, learnrate, &optimizer)
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
    let trained = backend.network()?;
    if !says {
        // Rank 0 writes the model, metrics, plots and summary.
        return Ok(());
    }
    // The model first: a closed standard output or a later failure must not lose it.
    if let Some(path) = &args.save {
        model_file::save(
            path,
            &SavedModel {
                training: Some(state.clone()),
                ..SavedModel::model(trained, encoder.clone())
            },
        )?;
    }
    for (name, y, part) in &parts {
        part.check_predictions(&part.source, name, &feature_names, y.view())
            .with_context(|| match &args.save {
                Some(path) => format!(
                    "the model was saved to {}, but no metrics or plots were written",
                    path.display()
                ),
                None => "no metrics or plots were written".into(),
            })?;
    }
    let names = encoder.target_columns();
    let unit_label = unit.clone().unwrap_or_else(|| "data units".into());
    let summary = summarise(&encoder, spec, &parts);

    if let Some(path) = &args.metrics {
        let mut metrics = summary.json();
        metrics.insert("backend".into(), json!(description));
        metrics.insert("layer_sizes".into(), json!(layer_sizes));
        metrics.insert("config".into(), json!(config));
        metrics.insert("records_per_second".into(), json!(records_per_second));
        metrics.insert("epochs".into(), json!(state.history));
        metrics.insert("learnrate".into(), json!(learnrate));
        metrics.insert("best_epoch".into(), json!(state.best.map(|b| b.epoch)));
        metrics.insert("stopped_early".into(), json!(state.stopped_early));
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
        "trained {:?} ({} hidden, {} output, {} loss{}) for {} epochs on {description}: {} training records, {:.0} records/s, {:.1} s",
        layer_sizes,
        spec.hidden,
        spec.output,
        spec.loss,
        if args.no_bias { ", no biases" } else { "" },
        state.epochs_done(),
        splits.train.len(),
        records_per_second,
        seconds
    )?;
    outln!(
        "optimizer {}, learning rate {}{}, {}{}",
        optimizer.describe(),
        short(learnrate),
        match args.lr {
            LearnRate::Auto => format!(" (--lr auto for {})", optimizer.method.name()),
            LearnRate::Value(_) => String::new(),
        },
        config.schedule.describe(),
        match (state.stopped_early, state.best) {
            (Some(stopped), Some(best)) => format!(
                "; early stopping after epoch {stopped} kept epoch {}'s weights (validation loss {:.4})",
                best.epoch, best.val_loss
            ),
            (None, Some(best)) => format!(
                "; kept epoch {}'s weights, the best validation loss ({:.4})",
                best.epoch, best.val_loss
            ),
            _ => String::new(),
        }
    )?;
    if splits.dropped > 0 {
        outln!("{} records without a target were left out", splits.dropped)?;
    }
    if let Some(classes) = &encoder.classes {
        outln!(
            "{} classes of `{}` ({}): {}",
            classes.names.len(),
            classes.column,
            classes.names.join(", "),
            if classes.single_output {
                format!(
                    "one sigmoid output, the probability of `{}`",
                    classes.names[1]
                )
            } else {
                format!("a {}-way {} output", classes.names.len(), spec.output)
            }
        )?;
    }
    summary.print(&unit_label)
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
fn divergence_cause(
    train: &Dataset,
    feature_names: &[String],
    lr: f64,
    optimizer: &Optimizer,
) -> String {
    let largest = train.x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if largest > LARGE_FEATURE {
        format!(
            "the inputs are the likely cause, not the learning rate: {} standard deviations from the training mean; look for outliers in that column, or drop it",
            largest_feature(train, feature_names)
        )
    } else {
        // A decay step of lr·λ ≥ 1 flips or zeroes every weight by itself.
        let decay = if optimizer.weight_decay * lr >= 1.0 {
            format!(
                ", or a smaller --weight-decay ({} x the learning rate {lr} is at least 1)",
                short(optimizer.weight_decay)
            )
        } else {
            String::new()
        };
        format!(
            "the inputs are standardised (no feature beyond {largest:.1} standard deviations), so the step is too large: try a smaller learning rate, e.g. --lr {}{decay}",
            lr / 4.0
        )
    }
}

/// What a checkpoint holds besides the network.
struct Resumed {
    state: TrainingState,
    optimizer: Option<OptimizerState<f64>>,
    best_network: Option<Network<f64>>,
}

/// The network to start from: the checkpoint's with `--resume` (which must come from the same
/// data, layers and flags), else seed 004's random initialisation.
fn initial_network(
    args: &TrainArgs,
    encoder: &Encoder,
    layer_sizes: &[usize],
    spec: Spec,
    config: &TrainConfig,
) -> Result<(Network<f64>, Option<Resumed>)> {
    if args.resume {
        let saved = model_file::load(&args.checkpoint).context("--resume")?;
        let Some(state) = saved.training else {
            bail!(
                "{}: holds no training state to resume",
                args.checkpoint.display()
            );
        };
        let saved_spec = saved.network.spec();
        if saved.encoder != *encoder
            || saved.network.layer_sizes() != *layer_sizes
            || saved_spec != spec
            || saved.network.biases().is_none() != args.no_bias
        {
            bail!(
                "{}: the checkpoint was made with other data or flags (layers {:?}, --activation {} --output {} --loss {}{}); resume with the same ones",
                args.checkpoint.display(),
                saved.network.layer_sizes(),
                saved_spec.hidden,
                saved_spec.output,
                saved_spec.loss,
                if saved.network.biases().is_none() { " --no-bias" } else { "" }
            );
        }
        let same_run = TrainConfig {
            epochs: state.config.epochs,
            ..config.clone()
        } == state.config;
        if !same_run {
            let c = &state.config;
            bail!(
                "{}: the checkpoint was made with --batch {} --lr {} --seed {}{} --optimizer {} ({}), schedule {}{}{}; resume with the same",
                args.checkpoint.display(),
                c.batch,
                c.learnrate,
                c.seed,
                c.shuffle_seed
                    .map_or(String::new(), |s| format!(" --shuffle-seed {s}")),
                c.optimizer.method.name(),
                c.optimizer.describe(),
                c.schedule.describe(),
                if c.drop_last { ", --drop-last" } else { "" },
                c.early_stopping.map_or(String::new(), |e| format!(
                    ", --patience {} --min-delta {}",
                    e.patience, e.min_delta
                ))
            );
        }
        Ok((
            saved.network,
            Some(Resumed {
                state,
                optimizer: saved.optimizer,
                best_network: saved.best_network,
            }),
        ))
    } else {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
        let network = if args.no_bias {
            // The seeds' network: their initialisation, no biases.
            let seeds = Network::random(layer_sizes, spec.output, &mut rng)?;
            Network::with_spec(seeds.weights().to_vec(), None, spec)?
        } else {
            Network::random_with(layer_sizes, spec, args.init, true, &mut rng)?
        };
        Ok((network, None))
    }
}

/// The figures of each split: the loss, then for classes accuracy and macro F1 (and the test
/// set's per-class figures and confusion matrix), for numbers RMSE, MAE and R² in the data's
/// units per target (and accuracy where numeric targets are one-hot).
struct Summary {
    spec: Spec,
    rows: Vec<SummaryRow>,
}

struct SummaryRow {
    name: &'static str,
    loss: f64,
    figures: Figures,
    one_hot_accuracy: Option<f64>,
}

fn summarise(
    encoder: &Encoder,
    spec: Spec,
    parts: &[(&'static str, Array2<f64>, &Dataset)],
) -> Summary {
    let rows = parts
        .iter()
        .map(|(name, y, part)| SummaryRow {
            name,
            loss: spec
                .loss
                .evaluate(spec.output, y.view(), part.target.view()),
            figures: summary::figures(encoder, y.view(), part.target.view()),
            one_hot_accuracy: summary::one_hot_accuracy(y.view(), part.target.view()),
        })
        .collect();
    Summary { spec, rows }
}

impl Summary {
    /// The same figures for `--metrics`.
    fn json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut summary = serde_json::Map::new();
        summary.insert("loss".into(), json!(summary::loss_label(self.spec)));
        for row in &self.rows {
            let name = row.name;
            summary.insert(format!("{name}_loss"), json!(row.loss));
            match &row.figures {
                Figures::Classes(c) => {
                    summary.insert(format!("{name}_accuracy"), json!(c.accuracy));
                    summary.insert(format!("{name}_macro_f1"), json!(c.macro_f1));
                    summary.insert(format!("{name}_per_class"), json!(c.per_class));
                    summary.insert(
                        format!("{name}_confusion_matrix"),
                        json!(c.confusion_matrix),
                    );
                }
                Figures::Regression(reports) => {
                    let by_target = |pick: &dyn Fn(&RegressionReport) -> serde_json::Value| {
                        reports
                            .iter()
                            .map(|(n, r)| (n.clone(), pick(r)))
                            .collect::<serde_json::Map<_, _>>()
                    };
                    summary.insert(
                        format!("{name}_rmse_original_units"),
                        json!(by_target(&|r| json!(r.rmse))),
                    );
                    summary.insert(
                        format!("{name}_mae_original_units"),
                        json!(by_target(&|r| json!(r.mae))),
                    );
                    summary.insert(format!("{name}_r2"), json!(by_target(&|r| json!(r.r2))));
                }
            }
            if let Some(a) = row.one_hot_accuracy {
                summary.insert(format!("{name}_accuracy"), json!(a));
            }
        }
        summary
    }

    fn print(&self, unit_label: &str) -> Result<()> {
        let loss = summary::loss_label(self.spec);
        match self.rows.first().map(|r| &r.figures) {
            Some(Figures::Classes(_)) => {
                outln!(
                    "{:<11} {:>14} {:>9} {:>9}",
                    "",
                    loss,
                    "accuracy",
                    "macro F1"
                )?;
                for row in &self.rows {
                    if let Figures::Classes(c) = &row.figures {
                        outln!(
                            "{:<11} {:>14.4} {:>8.1}% {:>9.3}",
                            row.name,
                            row.loss,
                            c.accuracy * 100.0,
                            c.macro_f1
                        )?;
                    }
                }
                if let Some(Figures::Classes(test)) = self.rows.last().map(|r| &r.figures) {
                    print_classes(test)?;
                }
            }
            Some(Figures::Regression(reports)) => {
                // Each column as wide as its title (a long target name) and never narrower
                // than its figures.
                let titles: Vec<[String; 3]> = reports
                    .keys()
                    .map(|n| {
                        [
                            format!("RMSE {n} ({unit_label})"),
                            format!("MAE {n}"),
                            format!("R² {n}"),
                        ]
                    })
                    .collect();
                let widths: Vec<[usize; 3]> = titles
                    .iter()
                    .map(|t| {
                        let w = |i: usize, least: usize| (t[i].chars().count() + 2).max(least);
                        [w(0, 24), w(1, 12), w(2, 8)]
                    })
                    .collect();
                let header: String = titles
                    .iter()
                    .zip(&widths)
                    .map(|([rmse, mae, r2], [a, b, c])| format!("  {rmse:>a$}{mae:>b$}{r2:>c$}"))
                    .collect();
                outln!("{:<11} {:>19}{header}", "", loss)?;
                for row in &self.rows {
                    let Figures::Regression(reports) = &row.figures else {
                        continue;
                    };
                    let values: String = reports
                        .values()
                        .zip(&widths)
                        .map(|(r, [a, b, c])| {
                            format!(
                                "  {:>a$}{:>b$.2}{:>c$.3}",
                                r.rmse.map_or("-".into(), |v| format!("{v:.2}")),
                                r.mae,
                                r.r2
                            )
                        })
                        .collect();
                    outln!(
                        "{:<11} {:>19.4}{values}{}",
                        row.name,
                        row.loss,
                        row.one_hot_accuracy
                            .map_or(String::new(), |a| format!("  accuracy {:.1}%", a * 100.0))
                    )?;
                }
            }
            None => {}
        }
        Ok(())
    }
}

/// The test set's per-class figures and confusion matrix.
fn print_classes(test: &ClassReport) -> Result<()> {
    let width = test
        .per_class
        .iter()
        .map(|c| c.class.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    outln!(
        "test set, per class:\n{:<width$} {:>9} {:>7} {:>6} {:>8}",
        "class",
        "precision",
        "recall",
        "F1",
        "support"
    )?;
    for c in &test.per_class {
        outln!(
            "{:<width$} {:>9.3} {:>7.3} {:>6.3} {:>8}",
            c.class,
            c.precision,
            c.recall,
            c.f1,
            c.support
        )?;
    }
    outln!("confusion matrix (rows: true class, columns: predicted, in the order above):")?;
    for (c, row) in test.per_class.iter().zip(&test.confusion_matrix) {
        let counts: String = row.iter().map(|n| format!("{n:>7}")).collect();
        outln!("{:<width$} {counts}", c.class)?;
    }
    Ok(())
}
