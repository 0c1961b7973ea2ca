//! The front door: a multi-layer perceptron to configure, fit on arrays (f32 or f64), and use.
//! `backprop train` (flags), the Python package (scikit-learn's parameters) and Rust programs
//! all go through it: the same [`Settings`], the same backend creation (GPU when present, the
//! CPU otherwise, ranks under MPI), the same trainer.
//!
//! ```
//! use backprop::mlp::{Mlp, Targets};
//! use ndarray::Array2;
//!
//! // Two noisy blobs, labelled by text.
//! let x = Array2::from_shape_fn((60, 2), |(i, j)| {
//!     let centre = if i < 30 { -1.0 } else { 1.0 };
//!     centre + 0.1 * ((i * 7 + j * 3) % 5) as f32
//! });
//! let labels: Vec<&str> = (0..60).map(|i| if i < 30 { "left" } else { "right" }).collect();
//! let model = Mlp::classifier()
//!     .hidden(&[8])
//!     .epochs(50)
//!     .device_cpu()
//!     .fit(&x, &Targets::labels(&labels))?;
//! let classes = model.predict_classes(&x)?;
//! let names = model.classes().unwrap();
//! assert_eq!(names[classes[0]], "left");
//! assert_eq!(names[classes[59]], "right");
//! # Ok::<(), backprop::Error>(())
//! ```
//!
//! Two stopping rules are named apart: early stopping on the validation loss
//! ([`Mlp::early_stopping`], which holds out [`Mlp::validation_fraction`] of the records) and
//! convergence of the training loss ([`Mlp::convergence`], scikit-learn's default rule).

mod diverged;
mod model;
mod run;
mod settings;
mod targets;

pub use diverged::{cause as divergence_cause, largest_feature, what as divergence};
pub use model::{Model, Placement};
pub use run::{
    create_backend, layer_sizes, spec_of, standardizes_targets, Checkpoint, Env, Notice, Notify,
    Part, Run, Start,
};
pub use settings::{
    Batch, Compute, Device, LearnRate, Settings, DEFAULT_BATCH, DEFAULT_EPOCHS, DEFAULT_HIDDEN,
    DEFAULT_SEED,
};
pub use targets::{encode as encode_targets, EncodedTargets, Labels, Targets};

pub use crate::data::encode::LabelType;
pub use crate::device::BackendChoice;
pub use crate::guard::interrupt::CancelToken;
pub use crate::model::{Activation, Init, Loss};
pub use crate::ops::optimizer::Method;
pub use crate::parallel::Parallel;
pub use crate::train::schedule::{Schedule, ScheduleKind};
pub use crate::train::{Convergence, EarlyStopping, EpochRecord};

use ndarray::ArrayView2;

use crate::device::CpuPrecision;
use crate::error::Result;
use crate::guard::numeric::check_flag_value;
use crate::matrix::Matrix;
use crate::model::{Deltas, Network};

/// A callback after each epoch of a fit.
pub type OnEpoch<'f> = Box<dyn FnMut(&EpochRecord) + 'f>;

/// What a fit may be given besides its data.
#[derive(Default)]
pub struct FitOptions<'f> {
    /// The features' names (`x0`, `x1`, … when absent), saved with the model.
    pub feature_names: Option<Vec<String>>,
    /// Stops the fit between batches once cancelled: the fit then fails with
    /// `Error::Interrupted` and nothing is changed.
    pub cancel: Option<CancelToken>,
    /// Called after each epoch with its losses.
    pub on_epoch: Option<OnEpoch<'f>>,
    /// Where notices go (dropped when absent).
    pub notify: Option<Notify>,
}

/// A multi-layer perceptron to fit: [`Settings`] behind a builder, a method per setting.
///
/// ```
/// use backprop::mlp::{Activation, Convergence, Device, EarlyStopping, Method, Mlp, Targets};
/// use ndarray::Array2;
///
/// let mlp = Mlp::regressor()
///     .hidden(&[32, 16])
///     .activation(Activation::Tanh)
///     .optimizer(Method::Momentum)
///     .momentum(0.9)
///     .nesterov(true)
///     .learning_rate(0.01)
///     .alpha(1e-4)
///     .epochs(500)
///     .batch(16)
///     .seed(3)
///     .early_stopping(Some(EarlyStopping { patience: 5, min_delta: 0.0 }))
///     .validation_fraction(0.2)
///     .convergence(Some(Convergence { tol: 1e-6, n_iter_no_change: 10 }))
///     .device(Device::cpu());
/// assert_eq!(mlp.settings.hidden, [32, 16]);
/// let x = Array2::from_shape_fn((100, 2), |(i, j)| ((i + j) as f64 / 10.0).sin());
/// let y = x.column(0).mapv(|v| 2.0 * v).insert_axis(ndarray::Axis(1));
/// let model = mlp.fit(&x, &Targets::values(&y))?;
/// // Early stopping ended the run before its 500 epochs, keeping its best epoch.
/// assert!(model.history().len() < 500 && model.state().best.is_some());
/// # Ok::<(), backprop::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mlp {
    pub settings: Settings,
}

/// A builder method per setting.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($value:ident: $ty:ty) => $field:ident $(. $sub:ident)* $(= $wrap:expr)?;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $value: $ty) -> Self {
                self.settings.$field$(.$sub)* = setters!(@value $value $(, $wrap)?);
                self
            }
        )*
    };
    (@value $value:ident) => { $value };
    (@value $value:ident, $wrap:expr) => { $wrap };
}

impl Mlp {
    /// A regressor: squared error, identity output, `backprop train`'s defaults otherwise.
    pub fn regressor() -> Self {
        Mlp::default()
    }

    /// A classifier: cross-entropy, softmax over three or more classes and one sigmoid output
    /// for two, `backprop train`'s defaults otherwise.
    pub fn classifier() -> Self {
        Mlp::default().loss(Loss::CrossEntropy)
    }

    /// An MLP of these settings.
    pub fn with_settings(settings: Settings) -> Self {
        Mlp { settings }
    }

    setters! {
        /// Hidden layer sizes, e.g. `&[512, 128]`.
        hidden(sizes: &[usize]) => hidden = sizes.to_vec();
        /// The hidden layers' activation.
        activation(activation: Activation) => activation;
        /// The output activation (see [`Settings::output`]).
        output(activation: Activation) => output = Some(activation);
        /// The loss.
        loss(loss: Loss) => loss;
        /// Biases (on by default; off: the seeds' network).
        bias(bias: bool) => bias;
        /// How the first weights are drawn.
        init(init: Init) => init;
        /// The update rule.
        optimizer(method: Method) => optimizer.method;
        /// Momentum μ (with `Method::Momentum`).
        momentum(momentum: f64) => optimizer.momentum;
        /// Nesterov's momentum (with `Method::Momentum`).
        nesterov(nesterov: bool) => optimizer.nesterov;
        /// Adam's β1.
        beta1(beta1: f64) => optimizer.beta1;
        /// Adam's β2.
        beta2(beta2: f64) => optimizer.beta2;
        /// Adam's ε.
        epsilon(epsilon: f64) => optimizer.epsilon;
        /// Weight decay λ on weights and biases (L2, decoupled for AdamW).
        weight_decay(decay: f64) => optimizer.weight_decay;
        /// scikit-learn's `alpha` (see [`Settings::alpha`]).
        alpha(alpha: f64) => alpha;
        /// The learning rate.
        learning_rate(lr: f64) => learnrate = LearnRate::Value(lr);
        /// The learning rate over the epochs.
        schedule(schedule: Schedule) => schedule;
        /// The most epochs.
        epochs(epochs: usize) => epochs;
        /// Records per mini-batch.
        batch(records: usize) => batch = Batch::Records(records);
        /// scikit-learn's batches: 200 records, or all when fewer.
        batch_auto(auto: bool) => batch = if auto { Batch::Auto } else { Batch::Records(DEFAULT_BATCH) };
        /// Leave out each epoch's partial last batch.
        drop_last(drop_last: bool) => drop_last;
        /// A new random order of the records each epoch (on by default).
        shuffle(shuffle: bool) => shuffle;
        /// The seed of the first weights (and of the split and shuffles).
        seed(seed: u64) => seed;
        /// The seed of the held-out split alone.
        split_seed(seed: u64) => split_seed = Some(seed);
        /// The seed of the shuffles alone.
        shuffle_seed(seed: u64) => shuffle_seed = Some(seed);
        /// Stop when the validation loss has not improved by more than `min_delta` for
        /// `patience` epochs, keeping the best epoch's weights.
        early_stopping(stopping: Option<EarlyStopping>) => early_stopping;
        /// Stop when the training loss has not improved by more than `tol` for more than
        /// `n_iter_no_change` epochs (scikit-learn's default rule).
        convergence(rule: Option<Convergence>) => convergence;
        /// The share of the records early stopping holds out.
        validation_fraction(fraction: f64) => validation_fraction;
        /// Where to compute.
        device(device: Device) => device;
        /// The precision of the computation.
        compute(compute: Compute) => compute;
        /// How ranks of a distributed run share the work.
        parallel(parallel: Parallel) => parallel;
        /// Standardise inputs and regression targets (on by default, as the command line does).
        standardize(standardize: bool) => standardize;
        /// Tune the GEMM variants on this GPU (on by default).
        tune(tune: bool) => tune;
    }

    /// Computes on the CPU backend.
    pub fn device_cpu(self) -> Self {
        self.device(Device::cpu())
    }

    /// Fits a new model to records `x` (records x features, f32 or f64, any memory order) and
    /// targets `y`. The records cross into the backend once, converted to its precision.
    ///
    /// ```
    /// use backprop::mlp::{Mlp, Targets};
    /// use ndarray::Array2;
    ///
    /// let x = Array2::from_shape_fn((50, 3), |(i, j)| ((i * 3 + j) as f64).sin());
    /// let y = x.sum_axis(ndarray::Axis(1)).insert_axis(ndarray::Axis(1));
    /// let model = Mlp::regressor().epochs(20).device_cpu().fit(&x, &Targets::values(&y))?;
    /// assert_eq!(model.history().len(), 20);
    /// assert!(model.history()[19].train_loss < model.history()[0].train_loss);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn fit<'a>(&self, x: impl Into<Matrix<'a>>, y: &Targets) -> Result<Model> {
        self.fit_with(x, y, FitOptions::default())
    }

    /// [`Mlp::fit`] with feature names, a cancel token, an epoch callback or notices.
    ///
    /// ```
    /// use backprop::mlp::{FitOptions, Mlp, Targets};
    /// use backprop::CancelToken;
    /// use ndarray::Array2;
    ///
    /// let x = Array2::<f32>::from_shape_fn((20, 2), |(i, j)| (i + j) as f32 / 20.0);
    /// let y = Targets::values(&x);
    /// let cancel = CancelToken::new();
    /// let stop = cancel.clone();
    /// let result = Mlp::regressor().epochs(100).device_cpu().fit_with(&x, &y, FitOptions {
    ///     feature_names: Some(vec!["a".into(), "b".into()]),
    ///     cancel: Some(cancel),
    ///     // Cancels the fit after its third epoch, as Ctrl-C in another thread would.
    ///     on_epoch: Some(Box::new(move |record| if record.epoch == 3 { stop.cancel(2) })),
    ///     ..FitOptions::default()
    /// });
    /// assert!(matches!(result, Err(backprop::Error::Interrupted { .. })));
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn fit_with<'a>(
        &self,
        x: impl Into<Matrix<'a>>,
        y: &Targets,
        options: FitOptions,
    ) -> Result<Model> {
        model::fit(&self.settings, x.into(), y, model::From::Fresh, options)
    }

    /// Fits starting from `model`'s weights instead of fresh ones (scikit-learn's
    /// `warm_start`), with a fresh optimizer and history, encoding the data as `model` does.
    ///
    /// ```
    /// use backprop::mlp::{FitOptions, Mlp, Targets};
    /// use ndarray::Array2;
    ///
    /// let x = Array2::from_shape_fn((30, 2), |(i, j)| ((i + 2 * j) as f64).cos());
    /// let y = Targets::values(&x);
    /// let mlp = Mlp::regressor().epochs(10).device_cpu();
    /// let first = mlp.fit(&x, &y)?;
    /// let more = mlp.fit_from(&first, &x, &y, FitOptions::default())?;
    /// assert!(more.history()[9].train_loss < first.history()[0].train_loss);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn fit_from<'a>(
        &self,
        model: &Model,
        x: impl Into<Matrix<'a>>,
        y: &Targets,
        options: FitOptions,
    ) -> Result<Model> {
        model::fit(
            &self.settings,
            x.into(),
            y,
            model::From::Warm(model),
            options,
        )
    }
}

/// The seeds' exercise on any network: the mean deltas of one batch at `learnrate`
/// (`delta_w_i_h`, …, and the biases'), computed on `device` (the CPU in f64: the reference),
/// the network unchanged.
///
/// ```
/// use backprop::mlp::{step, Device};
/// use backprop::{Activation, Network};
/// use ndarray::array;
///
/// // Seed 002's worked example.
/// let network = Network::new(
///     vec![array![[0.5, -0.6], [0.1, -0.2], [0.1, 0.7]], array![[0.1], [-0.3]]],
///     Activation::Sigmoid,
/// )?;
/// let deltas = step(&network, array![[0.5, 0.1, -0.2]].view(), array![[0.6]].view(), 0.5, &Device::cpu())?;
/// assert!((deltas.weights[1][[0, 0]] - 0.00804047).abs() < 1e-8);
/// assert!((deltas.weights[1][[1, 0]] - 0.00555918).abs() < 1e-8);
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn step(
    network: &Network<f64>,
    x: ArrayView2<f64>,
    target: ArrayView2<f64>,
    learnrate: f64,
    device: &Device,
) -> Result<Deltas<f64>> {
    let mut backend = create_backend(
        (device, true),
        network,
        (CpuPrecision::F64, x.nrows().max(1)),
        Parallel::Data,
        &Env::quiet(),
    )?;
    check_flag_value("--lr", learnrate, backend.precision())?;
    backend.delta_weights(x, target, learnrate)
}
