//! `backprop train`: a CSV in (the built-in bike-sharing data by default), a trained model, a
//! summary, metrics and plots out. A thin layer: flags become the facade's settings
//! (`flags`), the facade trains (`backprop::mlp::Run`), checkpoints come and go (`resume`),
//! and the report is written (`summary`).

mod flags;
mod resume;
mod summary;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use backprop::comm::{check_same_on_every_rank, checksum, Communicator};
use backprop::data::split::{TEST_DAYS, VALIDATION_DAYS};
use backprop::data::{self, Missing, SplitKind, DEFAULT_MAX_CATEGORIES};
use backprop::device::CpuPrecision;
use backprop::guard::interrupt;
use backprop::mlp::{Env, LearnRate, Part, Run, DEFAULT_BATCH, DEFAULT_EPOCHS};
use backprop::model::Init;
use backprop::ops::optimizer::Method;
use backprop::parallel::Parallel;
use backprop::report::metrics::readable;
use backprop::train::schedule::ScheduleKind;
use backprop::{Activation, Loss, Matrix};

use super::errln;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The records to train on, by extension: CSV, `.parquet`, `.npz` (arrays `x` or `X`, and
    /// `y`) or `.npy` (the inputs, with --target y.npy); without it, the built-in hourly
    /// bike-sharing data (target `cnt`, `casual` and `registered` dropped, date `dteday`).
    #[arg(long, value_name = "FILE")]
    pub(super) data: Option<PathBuf>,
    /// Target column(s), comma-separated; with --data X.npy, the .npy of targets (columns
    /// `y`, or `y0`, `y1`, …). An .npz's `y` needs no --target.
    #[arg(long, value_name = "COL[,COL...]", value_delimiter = ',')]
    pub(super) target: Vec<String>,
    /// Columns to one-hot encode even though they hold numbers (text columns always are).
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    pub(super) categorical: Vec<String>,
    /// Columns to ignore.
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    pub(super) drop: Vec<String>,
    /// A date column (YYYY-MM-DD): gives year and month features, the time split, and fills
    /// empty weekday cells.
    #[arg(long, value_name = "COL")]
    pub(super) date: Option<String>,
    /// `time`: the last --test-days days are the test set, the --val-days before them
    /// validation (default with a date); `random`: --test-fraction test, --val-fraction
    /// validation (default without), stratified by class for classification.
    #[arg(long, value_enum)]
    pub(super) split: Option<SplitKind>,
    /// The random split's fractions of test and validation records; 0 holds none out (with
    /// --val-fraction 0 every other record trains, and nothing watches for early stopping).
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.1,
        allow_hyphen_values = true
    )]
    pub(super) test_fraction: f64,
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.1,
        allow_hyphen_values = true
    )]
    pub(super) val_fraction: f64,
    /// The time split's days of test records (the last ones) and of validation records (the
    /// days before them); 0 holds none out.
    #[arg(long, value_name = "DAYS", default_value_t = TEST_DAYS as u32)]
    pub(super) test_days: u32,
    #[arg(long, value_name = "DAYS", default_value_t = VALIDATION_DAYS as u32)]
    pub(super) val_days: u32,
    /// Validation records from a file of their own (the columns of --data), encoded with the
    /// training data's encoder; the split then makes no validation set.
    #[arg(long, value_name = "FILE")]
    pub(super) val: Option<PathBuf>,
    /// Test records from a file of their own, likewise.
    #[arg(long, value_name = "FILE")]
    pub(super) test: Option<PathBuf>,
    /// What an empty feature cell becomes: an error naming it (the default with --data), the
    /// record left out, or the training mean, median or most frequent value (categories under
    /// mean and median: their own level `(missing)`; the built-in data's default: mean).
    #[arg(long, value_enum)]
    pub(super) missing: Option<Missing>,
    /// Seed of the initial weights (and, unless given apart, of the split and the shuffles).
    #[arg(long, default_value_t = 42)]
    pub(super) seed: u64,
    /// Seed of the random split (default: --seed), so that changing the initialisation
    /// keeps the test set.
    #[arg(long, value_name = "S")]
    pub(super) split_seed: Option<u64>,
    /// Seed of the per-epoch shuffles (default: --seed).
    #[arg(long, value_name = "S")]
    pub(super) shuffle_seed: Option<u64>,
    /// Hidden layer sizes, e.g. `25` or `512,128`.
    #[arg(
        long,
        value_name = "N[,N...]",
        value_delimiter = ',',
        default_value = "25"
    )]
    pub(super) hidden: Vec<usize>,
    #[arg(long, default_value_t = DEFAULT_EPOCHS)]
    pub(super) epochs: usize,
    /// Records per mini-batch; each batch steps by the mean of its records' deltas. Larger
    /// than the training set: clipped to it, with a notice. The last batch of an epoch holds
    /// the remainder (a smaller batch, its mean over fewer records) unless --drop-last.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub(super) batch: usize,
    /// Leave out each epoch's partial last batch (other epochs shuffle those records in).
    #[arg(long)]
    pub(super) drop_last: bool,
    /// Visit the records in their order every epoch instead of a new random order.
    #[arg(long)]
    pub(super) no_shuffle: bool,
    /// Learning rate: a finite number above 0, or `auto`: 0.3 for sgd (the seed project's),
    /// 0.3·(1 − momentum) for momentum, 0.001 for adam and adamw.
    #[arg(long, default_value = "auto", allow_hyphen_values = true)]
    pub(super) lr: LearnRate,
    /// How each batch's gradient changes the weights (sgd: the seeds').
    #[arg(long, value_enum, default_value_t = Method::Sgd)]
    pub(super) optimizer: Method,
    /// Momentum μ of --optimizer momentum.
    #[arg(long, default_value_t = 0.9, allow_hyphen_values = true)]
    pub(super) momentum: f64,
    /// Nesterov's momentum (with --optimizer momentum).
    #[arg(long)]
    pub(super) nesterov: bool,
    /// Adam's β1 and β2 and its ε.
    #[arg(long, default_value_t = 0.9, allow_hyphen_values = true)]
    beta1: f64,
    #[arg(long, default_value_t = 0.999, allow_hyphen_values = true)]
    beta2: f64,
    #[arg(long, default_value_t = 1e-8, allow_hyphen_values = true)]
    pub(super) epsilon: f64,
    /// Weight decay λ: L2 (λ·w added to the gradient) for sgd, momentum and adam, decoupled
    /// (w scaled by 1 − lr·λ) for adamw. Applies to biases too. Default: 0, and PyTorch's 0.01
    /// for adamw.
    #[arg(long, allow_hyphen_values = true)]
    pub(super) weight_decay: Option<f64>,
    /// scikit-learn's alpha: an L2 penalty α/2·‖W‖² on the weights (not the biases) of each
    /// batch's summed loss, adding α·W/B to the mean gradient of a batch of B.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub(super) alpha: f64,
    /// The learning rate over the epochs.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Constant)]
    pub(super) lr_schedule: ScheduleKind,
    /// Epochs of linear warm-up before the schedule: epoch e trains at lr·e/(warmup + 1).
    #[arg(long, value_name = "EPOCHS", default_value_t = 0)]
    pub(super) warmup: usize,
    /// --lr-schedule step: the period in epochs and the factor.
    #[arg(long, value_name = "EPOCHS", default_value_t = 30)]
    pub(super) lr_step: usize,
    #[arg(long, default_value_t = 0.1, allow_hyphen_values = true)]
    pub(super) lr_gamma: f64,
    /// Early stopping: stop when the validation loss has not improved for N epochs, keeping
    /// the best epoch's weights (needs validation records).
    #[arg(long, value_name = "N")]
    pub(super) patience: Option<usize>,
    /// The improvement of the validation loss that counts (with --patience).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub(super) min_delta: f64,
    /// Stop when the training loss has not improved on its best by more than TOL for more than
    /// --n-iter-no-change epochs in a row (scikit-learn's convergence rule; the last epoch's
    /// weights are kept).
    #[arg(long, value_name = "TOL", allow_hyphen_values = true)]
    pub(super) tol: Option<f64>,
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub(super) n_iter_no_change: usize,
    /// Refuse a categorical column with more distinct values than this (one-hot encoding makes
    /// one feature per value).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CATEGORIES)]
    pub(super) max_categories: usize,
    /// The hidden layers' activation (the seeds': sigmoid); weights start Glorot-scaled for
    /// sigmoid and tanh, He-scaled for the ReLUs.
    #[arg(long, value_enum, default_value_t = Activation::Sigmoid)]
    pub(super) activation: Activation,
    /// The loss: mse (regression, the seeds'), or cross-entropy (classes in a text or integer
    /// target column, or probabilities in [0, 1]).
    /// Without it: mse, or cross-entropy when the target column holds text labels (as
    /// scikit-learn's `type_of_target` decides; a column of integers stays regression).
    #[arg(long, value_enum)]
    pub(super) loss: Option<Loss>,
    /// Output activation. Default: identity with mse (targets standardised); with
    /// cross-entropy, softmax for three or more classes and one sigmoid output for two
    /// classes or for probabilities. Sigmoid with mse needs targets in [0, 1].
    #[arg(long, value_enum)]
    pub(super) output: Option<Activation>,
    /// No biases: the seeds' network (and the seeds' initialisation).
    #[arg(long)]
    pub(super) no_bias: bool,
    /// The first weights: auto (Glorot for sigmoid and tanh, He for the ReLUs), he, glorot,
    /// or glorot-uniform (scikit-learn's MLP: weights and biases uniform). Not with --no-bias,
    /// which keeps the seeds' initialisation.
    #[arg(long, value_enum, default_value_t = Init::Auto)]
    pub(super) init: Init,
    #[command(flatten)]
    pub(super) backend: super::BackendArgs,
    /// The CPU backend's precision: f32 (fast; what the GPU computes in) or f64 (the
    /// reference's).
    #[arg(long, value_enum, default_value_t = CpuPrecision::F32)]
    pub(super) precision: CpuPrecision,
    /// Under mpirun/srun (built with `--features mpi`): split each batch's records across the
    /// ranks (data), or the hidden layer's units (hidden: for a layer too large for one device).
    #[arg(long, value_enum, default_value_t = Parallel::Data)]
    pub(super) parallel: Parallel,
    /// No progress bar.
    #[arg(long)]
    pub(super) quiet: bool,
    /// Write each epoch's losses and the final test loss as JSON.
    #[arg(long, value_name = "FILE.json")]
    pub(super) metrics: Option<PathBuf>,
    /// Draw the training and validation loss curves (.png or .svg).
    #[arg(long, value_name = "FILE.png|svg")]
    pub(super) plot: Option<PathBuf>,
    /// Draw the test set's predictions against the truth over time (.png or .svg).
    #[arg(long, value_name = "FILE.png|svg")]
    pub(super) plot_predictions: Option<PathBuf>,
    /// Save the trained model (safetensors: weights, layer sizes, activations, encoding).
    #[arg(long, value_name = "FILE.safetensors")]
    pub(super) save: Option<PathBuf>,
    /// Where checkpoints go.
    #[arg(long, value_name = "FILE", default_value = "checkpoint.safetensors")]
    pub(super) checkpoint: PathBuf,
    /// Write a checkpoint every N epochs.
    #[arg(long, value_name = "N")]
    pub(super) checkpoint_every: Option<usize>,
    /// Continue the run saved in --checkpoint (same data and flags) up to --epochs.
    #[arg(long)]
    pub(super) resume: bool,
}

pub fn run(args: TrainArgs, comm: &dyn Communicator) -> Result<()> {
    let mut settings = flags::settings(&args);
    let data = flags::check(&args, &settings)?;
    let (encoder, splits) = {
        let bar = reading_bar(args.quiet || !comm.writes_outputs());
        let read = data::prepare_with(
            &data.source,
            &data.options,
            &data.split,
            &data.separate,
            &|done, total| bar.show(done, total),
        );
        bar.finish();
        read?
    };
    if let (None, Some(classes)) = (args.loss, &encoder.classes) {
        flags::check_classifier(&args)?;
        settings.loss = Loss::CrossEntropy;
        if comm.writes_outputs() {
            errln!(
                "target `{}` holds class labels ({} classes: {}): training a classifier (cross-entropy); --loss mse would refuse them",
                classes.column,
                classes.names.len(),
                some_names(&classes.names)
            );
        }
    }
    // Every rank reads the data itself (from a path all can see): check that all read the same
    // (alone, there is nothing to compare, and a checksum of millions of values costs time).
    if comm.size() > 1 {
        let records = [&splits.train, &splits.validation, &splits.test];
        let values = records
            .iter()
            .flat_map(|s| s.x.iter_f64().chain(s.target.iter().copied()));
        check_same_on_every_rank(comm, "the data", checksum(values))?;
    }
    let says = comm.writes_outputs();
    for warning in splits.warnings.iter().filter(|_| says) {
        errln!("warning: {warning}");
    }
    let start = resume::start(&args, &settings, &encoder)?;
    fn part(set: &data::Dataset) -> Part<'_> {
        Part {
            x: Matrix::from(&set.x),
            target: set.target.view(),
        }
    }
    let validation = (!splits.validation.is_empty()).then(|| part(&splits.validation));
    let locate = |name: &str, e| {
        let set = if name == "validation" {
            &splits.validation
        } else {
            &splits.train
        };
        set.locate(e, &set.source, name, &encoder)
    };
    let env = Env {
        comm,
        cancel: interrupt::process(),
        notify: super::notify(),
    };
    let mut run = Run::start(
        &settings,
        &encoder,
        (part(&splits.train), validation),
        start,
        env,
        &locate,
    )?;
    let bar = progress_bar(&run, args.quiet || !says);
    let mut checkpoints = resume::Checkpoints::new(&args, &encoder, says);
    // From here the first SIGINT/SIGTERM stops training between batches.
    let polling = interrupt::Polling::start();
    let started = Instant::now();
    let finished = run.train(|record, progress, backend| {
        bar.set_position(record.epoch as u64);
        bar.set_message(match record.val_loss {
            Some(v) => format!(
                "train {} val {}",
                readable(record.train_loss, 4),
                readable(v, 4)
            ),
            None => format!("train {}", readable(record.train_loss, 4)),
        });
        checkpoints.after_epoch(record, progress, backend)
    });
    drop(polling);
    bar.finish_and_clear();
    let finished = finished.map_err(|e| checkpoints.explain(e))?;
    let seconds = started.elapsed().as_secs_f64();
    checkpoints.fail_if_diverged(&finished, &splits.train)?;
    summary::report(
        &args,
        &mut run,
        (&encoder, &splits),
        &data,
        (finished, seconds),
        says,
    )
}

/// Up to five class names, and how many more.
fn some_names(names: &[String]) -> String {
    match names.len() {
        0..=5 => names.join(", "),
        n => format!("{}, … ({n} in all)", names[..5].join(", ")),
    }
}

/// A bar of bytes read and the speed, on standard error, shown only once a read has taken a
/// second (short reads stay silent).
struct ReadingBar {
    bar: ProgressBar,
    started: Instant,
    hidden: bool,
}

fn reading_bar(hidden: bool) -> ReadingBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template(
            "reading {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} [{elapsed} < {eta}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    ReadingBar {
        bar,
        started: Instant::now(),
        hidden,
    }
}

impl ReadingBar {
    fn show(&self, done: u64, total: u64) {
        if total > 0 {
            self.bar.set_length(total);
        }
        self.bar.set_position(done);
        if !self.hidden
            && self.bar.is_hidden()
            && self.started.elapsed() > std::time::Duration::from_secs(1)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The epoch bar on standard error (hidden with --quiet and on ranks other than 0).
fn progress_bar(run: &Run, hidden: bool) -> ProgressBar {
    let done = run.state().map_or(0, |s| s.epochs_done());
    let bar = ProgressBar::new(run.config.epochs as u64).with_position(done as u64);
    if hidden {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("epoch {pos}/{len} {bar:30} {msg} [{elapsed} < {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
