//! Every option a training run takes, in one value that knows no front end: `backprop train`
//! fills it from its flags, the Python package from scikit-learn's parameters, a Rust user
//! through [`super::Mlp`]'s builder. A bad value is an `Error::Argument` named by the
//! command line's flag (the Python package translates the name).

use crate::device::{BackendChoice, CpuPrecision};
use crate::error::{Error, Result};
use crate::guard::numeric::{check_flag_value, Precision};
use crate::model::{Activation, Init, Loss};
use crate::ops::optimizer::{Method, Optimizer};
use crate::parallel::Parallel;
use crate::train::schedule::Schedule;
use crate::train::{Convergence, EarlyStopping};

/// The learning rate: a number, or `Auto` for the optimizer's default.
#[derive(Clone, Copy, Debug, PartialEq)]
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

impl LearnRate {
    /// The rate for `optimizer`: the value given, or for `Auto` the seed project's 0.3 on
    /// standardised data for SGD, the same effective step lr/(1 − μ) for momentum, and Adam's
    /// customary 1e-3 (PyTorch's and scikit-learn's default).
    pub fn resolve(self, optimizer: &Optimizer) -> f64 {
        match (self, optimizer.method) {
            (LearnRate::Value(lr), _) => lr,
            (LearnRate::Auto, Method::Sgd) => 0.3,
            // Rounded so that the summary shows 0.03, not 0.029999999999999992.
            (LearnRate::Auto, Method::Momentum) => {
                (0.3 * (1.0 - optimizer.momentum) * 1e12).round() / 1e12
            }
            (LearnRate::Auto, Method::Adam | Method::Adamw) => 1e-3,
        }
    }
}

/// Records per mini-batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// This many (clipped to the training set, with a notice).
    Records(usize),
    /// scikit-learn's `batch_size="auto"`: 200, or the whole training set when smaller.
    Auto,
}

/// Where to compute: a backend choice and, for a GPU, part of an adapter's name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Device {
    pub choice: BackendChoice,
    /// A case-insensitive part of the adapter's name (`backprop info` lists them).
    pub adapter: Option<String>,
}

impl Device {
    /// A hardware GPU when there is one, else the CPU (saying why).
    pub fn auto() -> Self {
        Device::default()
    }

    pub fn cpu() -> Self {
        Device {
            choice: BackendChoice::Cpu,
            adapter: None,
        }
    }

    /// The GPU (the adapter whose name contains `adapter`, when given); none is an error.
    pub fn gpu(adapter: Option<&str>) -> Self {
        Device {
            choice: BackendChoice::Gpu,
            adapter: adapter.map(str::to_string),
        }
    }

    /// Refuses an empty adapter name, which would match every adapter.
    pub fn check(&self) -> Result<()> {
        if self.adapter.as_deref().is_some_and(|a| a.trim().is_empty()) {
            return Err(argument(
                "--adapter",
                "an empty name matches every adapter; name one (`backprop info` lists them)",
            ));
        }
        Ok(())
    }

    /// Whether the computing may happen in host memory (the CPU backend, or `auto` falling
    /// back to it): the memory planner then counts the backend's copies on the host.
    pub fn may_compute_on_host(&self) -> bool {
        self.choice != BackendChoice::Gpu
    }
}

/// The precision of the computation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compute {
    /// f32 on every backend (what the GPU computes in).
    #[default]
    F32,
    /// f64: the reference's precision, on the CPU only.
    F64,
    /// The data's own: f32 on a GPU; on the CPU, f32 for f32 data and f64 for f64 data
    /// (scikit-learn's habit of keeping the input's dtype).
    Data,
}

impl Compute {
    /// The CPU backend's precision for data held in `data`.
    pub fn on_cpu(self, data: Precision) -> CpuPrecision {
        match (self, data) {
            (Compute::F64, _) | (Compute::Data, Precision::F64) => CpuPrecision::F64,
            _ => CpuPrecision::F32,
        }
    }
}

impl From<CpuPrecision> for Compute {
    fn from(precision: CpuPrecision) -> Self {
        match precision {
            CpuPrecision::F32 => Compute::F32,
            CpuPrecision::F64 => Compute::F64,
        }
    }
}

/// Every option of a training run. [`Settings::default`] is `backprop train`'s defaults: the
/// seed project's network (25 sigmoid hidden units, biases, SGD at 0.3 for 80 epochs of
/// batches of 32, standardised inputs and targets).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Hidden layer sizes (`--hidden`).
    pub hidden: Vec<usize>,
    /// The hidden layers' activation (`--activation`).
    pub activation: Activation,
    /// The output activation (`--output`); by default identity for squared error, and for
    /// cross-entropy softmax over three or more classes, one sigmoid otherwise.
    pub output: Option<Activation>,
    /// `--loss`: squared error (regression) or cross-entropy (classes).
    pub loss: Loss,
    /// Biases (`--no-bias` turns them off: the seeds' network, from the seeds' initialisation).
    pub bias: bool,
    /// The first weights (`--init`).
    pub init: Init,
    /// The update rule and its settings (`--optimizer`, `--momentum`, `--nesterov`, `--beta1`,
    /// `--beta2`, `--epsilon`, `--weight-decay`).
    pub optimizer: Optimizer,
    /// scikit-learn's `alpha` (`--alpha`): an L2 penalty `α/2·‖W‖²` on the weights (not the
    /// biases) of each batch's summed loss, which adds `α·W/B` to a batch of `B`'s mean
    /// gradient; `B` is the batch size (scikit-learn divides a last, partial batch's by its own
    /// size).
    pub alpha: f64,
    /// `--lr`.
    pub learnrate: LearnRate,
    /// The learning rate over the epochs (`--lr-schedule`, `--warmup`, `--lr-step`,
    /// `--lr-gamma`).
    pub schedule: Schedule,
    /// The most epochs (`--epochs`).
    pub epochs: usize,
    /// `--batch`.
    pub batch: Batch,
    /// Leave out each epoch's partial last batch (`--drop-last`).
    pub drop_last: bool,
    /// A new random order of the records each epoch (`--no-shuffle` keeps theirs).
    pub shuffle: bool,
    /// The seed of the initial weights, and of the split and shuffles unless given apart
    /// (`--seed`, `--split-seed`, `--shuffle-seed`).
    pub seed: u64,
    pub split_seed: Option<u64>,
    pub shuffle_seed: Option<u64>,
    /// Stop when the validation loss stops improving (`--patience`, `--min-delta`).
    pub early_stopping: Option<EarlyStopping>,
    /// Stop when the training loss stops improving (`--tol`, `--n-iter-no-change`).
    pub convergence: Option<Convergence>,
    /// The share of the records an array fit holds out for early stopping (`--val-fraction`).
    pub validation_fraction: f64,
    /// `--backend`, `--adapter`.
    pub device: Device,
    /// `--precision`.
    pub compute: Compute,
    /// How ranks of a distributed run share the work (`--parallel`).
    pub parallel: Parallel,
    /// Standardise the inputs (and regression targets) with the training records' mean and
    /// deviation, saved with the model: the command line's way. Off, inputs and targets are
    /// used as given (scikit-learn's way: scaling belongs in a pipeline).
    pub standardize: bool,
    /// Time the GEMM variants on this GPU and cache the winners (`--no-tune` turns it off).
    pub tune: bool,
}

/// The seed project's defaults.
pub const DEFAULT_HIDDEN: usize = 25;
pub const DEFAULT_EPOCHS: usize = 80;
pub const DEFAULT_BATCH: usize = 32;
pub const DEFAULT_SEED: u64 = 42;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            hidden: vec![DEFAULT_HIDDEN],
            activation: Activation::Sigmoid,
            output: None,
            loss: Loss::Mse,
            bias: true,
            init: Init::Auto,
            optimizer: Optimizer::default(),
            alpha: 0.0,
            learnrate: LearnRate::Auto,
            schedule: Schedule::default(),
            epochs: DEFAULT_EPOCHS,
            batch: Batch::Records(DEFAULT_BATCH),
            drop_last: false,
            shuffle: true,
            seed: DEFAULT_SEED,
            split_seed: None,
            shuffle_seed: None,
            early_stopping: None,
            convergence: None,
            validation_fraction: crate::data::split::RANDOM_VALIDATION_FRACTION,
            device: Device::auto(),
            compute: Compute::F32,
            parallel: Parallel::Data,
            standardize: true,
            tune: true,
        }
    }
}

fn argument(flag: &str, message: impl Into<String>) -> Error {
    Error::argument(flag, message)
}

impl Settings {
    /// Checks every option, naming the flag of a bad one, before any data is read or memory
    /// allocated.
    pub fn check(&self) -> Result<()> {
        if self.compute == Compute::F64 && self.device.choice != BackendChoice::Cpu {
            return Err(argument(
                "--precision",
                "f64 is the CPU backend's precision (the GPU computes in f32): add --backend cpu",
            ));
        }
        self.device.check()?;
        if self.epochs == 0 {
            return Err(argument("--epochs", "must be at least 1"));
        }
        if self.batch == Batch::Records(0) {
            return Err(argument("--batch", "must be at least 1"));
        }
        if let LearnRate::Value(lr) = self.learnrate {
            if !lr.is_finite() || lr <= 0.0 {
                return Err(argument(
                    "--lr",
                    format!("{lr} is not a positive finite number"),
                ));
            }
            check_flag_value("--lr", lr, Precision::F32)?;
        }
        if !self.bias && self.init != Init::Auto {
            return Err(argument(
                "--init",
                "--no-bias trains the seeds' network from the seeds' initialisation",
            ));
        }
        if let Some(stopping) = self.early_stopping {
            if stopping.patience == 0 {
                return Err(argument("--patience", "must be at least 1 epoch"));
            }
            if !(stopping.min_delta.is_finite() && stopping.min_delta >= 0.0) {
                return Err(argument(
                    "--min-delta",
                    format!("{} is not a finite number >= 0", stopping.min_delta),
                ));
            }
        }
        if let Some(rule) = self.convergence {
            if !(rule.tol.is_finite() && rule.tol >= 0.0) {
                return Err(argument(
                    "--tol",
                    format!("{} is not a finite number >= 0", rule.tol),
                ));
            }
            if rule.n_iter_no_change == 0 {
                return Err(argument("--n-iter-no-change", "must be at least 1 epoch"));
            }
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(argument(
                "--alpha",
                format!("{} is not a finite number >= 0", self.alpha),
            ));
        }
        if !(self.validation_fraction.is_finite() && (0.0..1.0).contains(&self.validation_fraction))
        {
            return Err(argument(
                "--val-fraction",
                format!("{} is not a fraction in [0, 1)", self.validation_fraction),
            ));
        }
        self.optimizer(DEFAULT_BATCH).check()?;
        self.schedule.check(self.epochs)?;
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(argument(
                "--hidden",
                format!("{:?}: every layer needs at least one unit", self.hidden),
            ));
        }
        Ok(())
    }

    /// The batch size for a training set of `records`: the size asked for, clipped to the
    /// records (the second value says whether it was).
    pub fn batch_for(&self, records: usize) -> (usize, bool) {
        match self.batch {
            Batch::Records(b) => (b.min(records).max(1), b > records),
            Batch::Auto => (records.clamp(1, 200), false),
        }
    }

    /// The optimizer a run with batches of `batch` steps with: the one set, with `alpha`
    /// turned into its L2 term on the weights.
    pub fn optimizer(&self, batch: usize) -> Optimizer {
        Optimizer {
            l2_weights: self.alpha / batch.max(1) as f64,
            ..self.optimizer
        }
    }
}
