//! A fitted model: the network, how its inputs and targets are encoded, how training went, and
//! what it needs to go on training (`partial_fit`, a warm start).

use std::path::Path;

use ndarray::{Array1, Array2};

use super::run::{create_backend, Checkpoint, Env, Part, Run, Start};
use super::settings::{Compute, Device, Settings};
use super::targets::{self, Labels, Targets};
use super::{diverged, FitOptions};
use crate::backend::RECORDS_PER_PASS;
use crate::data::encode::{Classes, TargetColumn};
use crate::data::split::{split, SplitKind, SplitOptions};
use crate::data::Encoder;
use crate::error::{Error, Result};
use crate::guard::numeric::Precision;
use crate::matrix::{Matrix, Values};
use crate::model::{Loss, Network};
use crate::model_file::{self, SavedModel};
use crate::ops::optimizer::OptimizerState;
use crate::parallel::Parallel;
use crate::train::schedule::ScheduleKind;
use crate::train::{EpochRecord, Outcome, TrainingState};

/// Where and in what precision a model predicts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub device: Device,
    pub compute: Compute,
}

/// A trained network with its encoder and its training history.
#[derive(Clone, Debug)]
pub struct Model {
    settings: Settings,
    encoder: Encoder,
    network: Network<f64>,
    state: TrainingState,
    optimizer: OptimizerState<f64>,
    records_per_second: f64,
}

/// The column names `x0`, `x1`, … of `n` features.
fn default_feature_names(n: usize) -> Vec<String> {
    (0..n).map(|j| format!("x{j}")).collect()
}

/// The mean and deviation of each column of `x` over `rows`.
fn column_statistics(x: Matrix, rows: &[usize], names: &[String]) -> Result<Vec<(f64, f64)>> {
    (0..x.ncols())
        .map(|j| {
            let finite: Vec<f64> = rows
                .iter()
                .map(|&r| x.get(r, j))
                .filter(|v| v.is_finite())
                .collect();
            crate::data::encode::mean_std(&names[j], &finite)
        })
        .collect()
}

/// Rows `rows` of `x` standardised with `statistics`, in `x`'s own element type.
fn standardized(x: Matrix, rows: &[usize], statistics: &[(f64, f64)]) -> Values {
    let shape = (rows.len(), x.ncols());
    let z = |(i, j): (usize, usize)| {
        let (mean, std) = statistics[j];
        crate::data::encode::standardize(x.get(rows[i], j), mean, std)
    };
    match x.precision() {
        Precision::F32 => Values::F32(Array2::from_shape_fn(shape, |at| z(at) as f32)),
        Precision::F64 => Values::F64(Array2::from_shape_fn(shape, z)),
    }
}

/// Whether `statistics` change nothing (every mean 0, every deviation 1).
fn is_identity(statistics: &[(f64, f64)]) -> bool {
    statistics.iter().all(|&(m, s)| m == 0.0 && s == 1.0)
}

/// How a fit starts: fresh, warm from a model, or going on from one (`partial_fit`).
pub(super) enum From<'m> {
    Fresh,
    Warm(&'m Model),
    Continue(&'m Model),
}

/// Fits `settings` to records `x` with targets `y`.
pub(super) fn fit(
    settings: &Settings,
    x: Matrix,
    y: &Targets,
    from: From,
    options: FitOptions,
) -> Result<Model> {
    let base = match &from {
        From::Fresh => None,
        From::Warm(model) | From::Continue(model) => Some(*model),
    };
    // Going on from a model, the output is the model's (a two-class softmax stays one).
    let settings = &Settings {
        output: base.map(|m| m.network.spec().output).or(settings.output),
        ..settings.clone()
    };
    settings.check()?;
    if settings.early_stopping.is_some() && settings.validation_fraction == 0.0 {
        return Err(Error::argument(
            "--patience",
            "early stopping watches the validation loss, and --val-fraction 0 holds no records out",
        ));
    }
    y.check()?;
    let (records, features) = x.dim();
    if y.len() != records {
        return Err(Error::Shape(format!(
            "{records} records of features but {} targets",
            y.len()
        )));
    }
    if records == 0 || features == 0 {
        return Err(Error::Shape(format!(
            "{records} records of {features} features: a fit needs at least one of each"
        )));
    }
    let feature_names = match (&options.feature_names, base) {
        (Some(names), _) => names.clone(),
        (None, Some(model)) => model.encoder.feature_names(),
        (None, None) => default_feature_names(features),
    };
    if feature_names.len() != features {
        return Err(Error::Shape(format!(
            "{} feature names for {features} features",
            feature_names.len()
        )));
    }
    if let Some(model) = base {
        if model.n_features() != features {
            return Err(Error::Shape(format!(
                "the records have {features} features, but the model takes {}",
                model.n_features()
            )));
        }
    }
    // Early stopping holds out a share of the records, by class for labels.
    let held_out = match settings.early_stopping {
        Some(_) => {
            let all: Vec<usize> = (0..records).collect();
            let names: Option<Vec<&str>> = match y {
                Targets::Classes(labels) => Some(
                    labels
                        .of_record
                        .iter()
                        .map(|&k| labels.classes[k].as_str())
                        .collect(),
                ),
                Targets::Values { .. } => None,
            };
            let options = SplitOptions {
                validation_fraction: settings.validation_fraction,
                separate_test: true,
                ..SplitOptions::new(
                    SplitKind::Random,
                    settings.split_seed.unwrap_or(settings.seed),
                )
            };
            let parts = split(all, None, names.as_deref(), &options).map_err(|e| match e {
                Error::Argument { message, .. } => Error::argument("--val-fraction", message),
                other => other,
            })?;
            Some((parts.train, parts.validation))
        }
        None => None,
    };
    let train_rows: Vec<usize> = match &held_out {
        Some((train, _)) => train.clone(),
        None => (0..records).collect(),
    };
    let (encoder, encoded) = match base {
        Some(model) => {
            let statistics: Vec<(f64, f64)> = model
                .encoder
                .targets
                .iter()
                .map(|t| (t.mean, t.std))
                .collect();
            let encoded = targets::encode(y, settings.loss, settings.output, Some(&statistics))?;
            check_same_targets(&model.encoder, &encoded.columns, encoded.classes.as_ref())?;
            (model.encoder.clone(), encoded)
        }
        None => {
            let statistics = settings
                .standardize
                .then(|| column_statistics(x, &train_rows, &feature_names))
                .transpose()?;
            let target_statistics = match y {
                Targets::Values { values, names } if super::run::standardizes_targets(settings) => {
                    Some(column_statistics(*values, &train_rows, names)?)
                }
                _ => None,
            };
            let encoded = targets::encode(
                y,
                settings.loss,
                settings.output,
                target_statistics.as_deref(),
            )?;
            let encoder = Encoder::for_arrays(
                &feature_names,
                statistics.as_deref(),
                encoded.columns.clone(),
                encoded.classes.clone(),
            );
            (encoder, encoded)
        }
    };
    let statistics = encoder
        .numeric_statistics()
        .ok_or_else(|| Error::Shape("the model's inputs are not all numbers".into()))?;
    // The records as the backend takes them: the caller's own when nothing is held out or
    // standardised (the backend's conversion is then the only copy), else rows copied out.
    let transform = |rows: &[usize]| {
        if is_identity(&statistics) {
            x.select(rows)
        } else {
            Ok(standardized(x, rows, &statistics))
        }
    };
    let (train_x, validation_x) = match &held_out {
        None if is_identity(&statistics) => (None, None),
        None => (Some(transform(&train_rows)?), None),
        Some((train, validation)) => (Some(transform(train)?), Some(transform(validation)?)),
    };
    let train_target = match &held_out {
        Some((train, _)) => encoded.values.select(ndarray::Axis(0), train),
        None => encoded.values.clone(),
    };
    let validation_target = held_out
        .as_ref()
        .map(|(_, v)| encoded.values.select(ndarray::Axis(0), v));
    let train = Part {
        x: match &train_x {
            Some(owned) => owned.view(),
            None => x.reborrow(),
        },
        target: train_target.view(),
    };
    let validation = validation_x
        .as_ref()
        .zip(validation_target.as_ref())
        .map(|(x, t)| Part {
            x: x.view(),
            target: t.view(),
        });
    let start = match from {
        From::Fresh => Start::Fresh,
        From::Warm(model) => Start::Warm(model.network.clone()),
        From::Continue(model) => Start::Continue(Checkpoint {
            network: model.network.clone(),
            state: TrainingState {
                stopped_early: None,
                converged: None,
                ..model.state.clone()
            },
            optimizer: Some(model.optimizer.clone()),
            best_network: None,
        }),
    };
    let env = Env {
        comm: &crate::comm::Local,
        cancel: options.cancel.clone().unwrap_or_default(),
        notify: options
            .notify
            .clone()
            .unwrap_or_else(|| std::sync::Arc::new(|_| {})),
    };
    let held_out_rows = held_out.as_ref();
    let locate = |part: &str, e: Error| {
        let rows = match (part, held_out_rows) {
            ("validation", Some((_, v))) => Some(v.as_slice()),
            (_, Some((t, _))) => Some(t.as_slice()),
            _ => None,
        };
        e.with_record(|r| rows.and_then(|rows| rows.get(r)).copied().unwrap_or(r))
    };
    let mut run = Run::start(settings, &encoder, (train, validation), start, env, &locate)?;
    let mut on_epoch = options.on_epoch;
    let finished = run.train(|record, _, _| {
        if let Some(callback) = on_epoch.as_mut() {
            callback(record);
        }
        Ok(())
    })?;
    if let Outcome::Diverged {
        epoch,
        train_loss,
        val_loss,
        first_non_finite_batch,
    } = finished.outcome
    {
        let config = &finished.state.config;
        return Err(Error::NonFinite(format!(
            "{}; {}",
            diverged::what(
                (epoch, train_loss, val_loss),
                first_non_finite_batch,
                config,
                (train.x.nrows(), finished.state.initial_loss)
            ),
            diverged::cause(
                (train.x, !is_identity(&statistics)),
                &feature_names,
                None,
                config.learnrate,
                &config.optimizer
            )
        )));
    }
    let network = run.backend().network()?;
    let optimizer = run.backend().optimizer_state()?;
    drop(run);
    Ok(Model {
        settings: settings.clone(),
        encoder,
        network,
        state: finished.state,
        optimizer,
        records_per_second: finished.records_per_second,
    })
}

/// A model goes on learning the targets it learnt: the same classes, or the same columns.
fn check_same_targets(
    encoder: &Encoder,
    columns: &[TargetColumn],
    classes: Option<&Classes>,
) -> Result<()> {
    match (&encoder.classes, classes) {
        (Some(known), Some(given)) if known.names != given.names => Err(Error::Shape(format!(
            "the model learnt the classes {:?}; these labels are indexed by {:?}",
            known.names, given.names
        ))),
        (Some(_), None) | (None, Some(_)) => Err(Error::Shape(
            "the model learnt classes and these targets are numbers, or the other way round".into(),
        )),
        (None, None) if columns.len() != encoder.targets.len() => Err(Error::Shape(format!(
            "the model learnt {} target columns; these targets have {}",
            encoder.targets.len(),
            columns.len()
        ))),
        _ => Ok(()),
    }
}

impl Model {
    /// One more epoch over `x` and `y` from where the model stands, with its optimizer's state
    /// (scikit-learn's `partial_fit`). Labels must be indexed by the model's classes.
    ///
    /// ```
    /// use backprop::mlp::{Mlp, Targets};
    /// use ndarray::array;
    ///
    /// let x = array![[0.0f32, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]];
    /// let y = Targets::labels(&["a", "b", "b", "a"]);
    /// let mut model = Mlp::classifier().epochs(1).device_cpu().fit(&x, &y)?;
    /// model.partial_fit(&x, &y)?;
    /// assert_eq!(model.history().len(), 2);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn partial_fit<'a>(&mut self, x: impl Into<Matrix<'a>>, y: &Targets) -> Result<()> {
        self.partial_fit_with(x, y, FitOptions::default())
    }

    /// [`Model::partial_fit`] with a cancel token, an epoch callback or notices.
    pub fn partial_fit_with<'a>(
        &mut self,
        x: impl Into<Matrix<'a>>,
        y: &Targets,
        options: FitOptions,
    ) -> Result<()> {
        let schedule = self.settings.schedule;
        if schedule.kind != ScheduleKind::Constant || schedule.warmup > 0 {
            return Err(Error::argument(
                "--lr-schedule",
                "partial_fit trains one epoch at a time at a constant rate; a schedule or a warm-up plans the epochs of a whole fit",
            ));
        }
        let settings = Settings {
            epochs: self.state.epochs_done() + 1,
            early_stopping: None,
            ..self.settings.clone()
        };
        let mut next = fit(&settings, x.into(), y, From::Continue(self), options)?;
        next.settings = self.settings.clone();
        *self = next;
        Ok(())
    }

    /// The network's output for records `x` (records x features, in the order of
    /// [`Model::feature_names`]): regression targets in their own units, or for classes the
    /// output layer's probabilities (one column for a single sigmoid output).
    ///
    /// ```
    /// use backprop::mlp::{Mlp, Targets};
    /// use ndarray::{array, Array2};
    ///
    /// let x = Array2::from_shape_fn((40, 1), |(i, _)| i as f64 / 40.0);
    /// let y = x.mapv(|v| 3.0 * v + 1.0);
    /// let model = Mlp::regressor().epochs(200).device_cpu().fit(&x, &Targets::values(&y))?;
    /// let y_hat = model.predict(&array![[0.5]])?;
    /// assert!((y_hat[[0, 0]] - 2.5).abs() < 0.2, "{y_hat}");
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn predict<'a>(&self, x: impl Into<Matrix<'a>>) -> Result<Array2<f64>> {
        self.predict_on(x, &self.placement())
    }

    /// [`Model::predict`] computed where `at` says instead of where the model's settings say
    /// (a shared model predicting from several threads, each on its own device).
    ///
    /// ```
    /// use backprop::mlp::{Compute, Device, Mlp, Placement, Targets};
    /// use ndarray::array;
    ///
    /// let x = array![[0.5], [1.5]];
    /// let model = Mlp::regressor().epochs(3).device_cpu().fit(&x, &Targets::values(&x))?;
    /// // In float64 on the CPU instead of the default float32.
    /// let at = Placement { device: Device::cpu(), compute: Compute::F64 };
    /// let wide = model.predict_on(&x, &at)?;
    /// assert!((&wide - &model.predict(&x)?).iter().all(|d| d.abs() < 1e-5));
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn predict_on<'a>(&self, x: impl Into<Matrix<'a>>, at: &Placement) -> Result<Array2<f64>> {
        let outputs = self.outputs(x.into(), at)?;
        Ok(if self.encoder.classes.is_some() {
            outputs
        } else {
            self.encoder.destandardize(&outputs)
        })
    }

    /// Each class's probability for records `x` (records x classes, in the order of
    /// [`Model::classes`]); an error for a model of numbers.
    ///
    /// ```
    /// use backprop::mlp::{Mlp, Targets};
    /// use ndarray::array;
    ///
    /// let x = array![[0.0f32], [0.1], [0.9], [1.0]];
    /// let model = Mlp::classifier()
    ///     .epochs(300)
    ///     .device_cpu()
    ///     .fit(&x, &Targets::labels(&["low", "low", "high", "high"]))?;
    /// let p = model.predict_proba(&array![[0.95f32]])?;
    /// assert_eq!(model.classes().unwrap(), ["high", "low"]);
    /// assert!(p[[0, 0]] > 0.5 && (p.sum() - 1.0).abs() < 1e-6, "{p}");
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn predict_proba<'a>(&self, x: impl Into<Matrix<'a>>) -> Result<Array2<f64>> {
        self.predict_proba_on(x, &self.placement())
    }

    /// [`Model::predict_proba`] computed where `at` says.
    pub fn predict_proba_on<'a>(
        &self,
        x: impl Into<Matrix<'a>>,
        at: &Placement,
    ) -> Result<Array2<f64>> {
        let classes = self.encoder.classes.as_ref().ok_or_else(|| {
            Error::Shape("the model predicts numbers, not classes: use predict".into())
        })?;
        let outputs = self.outputs(x.into(), at)?;
        Ok(if classes.single_output {
            let p = outputs.column(0);
            ndarray::stack![ndarray::Axis(1), p.mapv(|p| 1.0 - p), p]
        } else {
            outputs
        })
    }

    /// The class of each record of `x`: an index into [`Model::classes`].
    ///
    /// ```
    /// use backprop::mlp::{Mlp, Targets};
    /// use ndarray::array;
    ///
    /// let x = array![[0.0f32], [0.1], [0.9], [1.0]];
    /// let model = Mlp::classifier()
    ///     .epochs(300)
    ///     .device_cpu()
    ///     .fit(&x, &Targets::labels(&["low", "low", "high", "high"]))?;
    /// let classes = model.classes().unwrap();
    /// let k = model.predict_classes(&array![[0.0f32], [1.0]])?;
    /// assert_eq!([classes[k[0]].as_str(), classes[k[1]].as_str()], ["low", "high"]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn predict_classes<'a>(&self, x: impl Into<Matrix<'a>>) -> Result<Vec<usize>> {
        let classes = self.encoder.classes.as_ref().ok_or_else(|| {
            Error::Shape("the model predicts numbers, not classes: use predict".into())
        })?;
        Ok(classes.predicted(self.outputs(x.into(), &self.placement())?.view()))
    }

    /// Where the model's settings say to predict.
    pub fn placement(&self) -> Placement {
        Placement {
            device: self.settings.device.clone(),
            compute: self.settings.compute,
        }
    }

    /// The output layer's values for `x`, computed where `at` says.
    fn outputs(&self, x: Matrix, at: &Placement) -> Result<Array2<f64>> {
        let features = self.n_features();
        if x.ncols() != features {
            return Err(Error::Shape(format!(
                "the records have {} features, but the model takes {features}",
                x.ncols()
            )));
        }
        let statistics = self
            .encoder
            .numeric_statistics()
            .ok_or_else(|| Error::Shape(format!(
                "the model encodes text or dates (columns {}): give it records as `backprop predict` reads them",
                self.encoder.input_columns().join(", ")
            )))?;
        let all: Vec<usize>;
        let standardized_x = if is_identity(&statistics) {
            None
        } else {
            all = (0..x.nrows()).collect();
            Some(standardized(x, &all, &statistics))
        };
        let x = match &standardized_x {
            Some(owned) => owned.view(),
            None => x.reborrow(),
        };
        if x.nrows() == 0 {
            return Ok(Array2::zeros((0, self.network.n_outputs())));
        }
        let precision = at.compute.on_cpu(x.precision());
        let mut backend = create_backend(
            (&at.device, self.settings.tune),
            &self.network,
            (precision, x.nrows().min(RECORDS_PER_PASS)),
            Parallel::Data,
            &Env::quiet(),
        )?;
        backend.predict(x)
    }

    /// The classes, in the order of [`Model::predict_proba`]'s columns, when the model has
    /// them.
    pub fn classes(&self) -> Option<&[String]> {
        self.encoder.classes.as_ref().map(|c| c.names.as_slice())
    }

    /// Every epoch's losses and figures, in order.
    ///
    /// ```
    /// use backprop::mlp::{Mlp, Targets};
    /// use ndarray::array;
    ///
    /// let x = array![[0.0f32], [1.0], [2.0], [3.0]];
    /// let model = Mlp::classifier()
    ///     .epochs(3)
    ///     .device_cpu()
    ///     .fit(&x, &Targets::labels(&["a", "a", "b", "b"]))?;
    /// let epochs: Vec<usize> = model.history().iter().map(|r| r.epoch).collect();
    /// assert_eq!(epochs, [1, 2, 3]);
    /// assert!(model.history()[0].train_metrics.contains_key("accuracy"));
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn history(&self) -> &[EpochRecord] {
        &self.state.history
    }

    /// Where training stands: the run's configuration, history, and why it stopped.
    pub fn state(&self) -> &TrainingState {
        &self.state
    }

    /// The optimizer's step count and moments.
    pub fn optimizer_state(&self) -> &OptimizerState<f64> {
        &self.optimizer
    }

    /// The trained network (weights inputs x outputs, as the seeds store them).
    pub fn network(&self) -> &Network<f64> {
        &self.network
    }

    /// How inputs and targets are encoded (identity for arrays used as given).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The settings the model was trained with (a loaded model: its file's).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The model with other settings for what comes next: its device for predictions, or
    /// the optimizer and epochs of further fits.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    pub fn n_features(&self) -> usize {
        self.network.n_inputs()
    }

    pub fn feature_names(&self) -> Vec<String> {
        self.encoder.feature_names()
    }

    /// Training records per second over the last fit.
    pub fn records_per_second(&self) -> f64 {
        self.records_per_second
    }

    /// Writes the model as `backprop train --save` does (safetensors, atomically), so that
    /// `backprop predict --model` reads it.
    ///
    /// ```
    /// use backprop::mlp::{Mlp, Model, Targets};
    /// use ndarray::array;
    ///
    /// let x = array![[0.0f32], [1.0], [2.0]];
    /// let model = Mlp::regressor().epochs(5).device_cpu().fit(&x, &Targets::values(&x))?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("model.safetensors");
    /// model.save(&path)?;
    /// let back = Model::load(&path)?;
    /// assert_eq!(back.network(), model.network());
    /// assert_eq!(back.predict(&x)?, model.predict(&x)?);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn save(&self, path: &Path) -> Result<()> {
        model_file::save(path, &self.saved(false))
    }

    /// A model file's bytes, with the optimizer's state when `with_optimizer` (what going on
    /// training needs: a pickled estimator).
    ///
    /// ```
    /// use backprop::mlp::{Method, Mlp, Model, Targets};
    /// use ndarray::array;
    /// use std::path::Path;
    ///
    /// let x = array![[0.0f32, 1.0], [1.0, 0.0], [1.0, 1.0]];
    /// let y = Targets::values(&x);
    /// let mut model = Mlp::regressor().optimizer(Method::Adam).epochs(4).device_cpu().fit(&x, &y)?;
    /// let mut copy = Model::from_bytes(Path::new("copy"), &model.to_bytes(true)?)?;
    /// // The Adam moments travel with the weights: one more epoch agrees bit for bit.
    /// model.partial_fit(&x, &y)?;
    /// copy.partial_fit(&x, &y)?;
    /// assert_eq!(copy.network(), model.network());
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn to_bytes(&self, with_optimizer: bool) -> Result<Vec<u8>> {
        model_file::to_bytes(Path::new("model"), &self.saved(with_optimizer))
    }

    fn saved(&self, with_optimizer: bool) -> SavedModel {
        SavedModel {
            training: Some(self.state.clone()),
            optimizer: with_optimizer.then(|| self.optimizer.clone()),
            ..SavedModel::model(self.network.clone(), self.encoder.clone())
        }
    }

    /// Reads a model `backprop train --save` (or [`Model::save`]) wrote.
    pub fn load(path: &Path) -> Result<Model> {
        Ok(Self::from_saved(model_file::load(path)?))
    }

    /// A model from a model file's bytes; `name` is what messages call it.
    pub fn from_bytes(name: &Path, bytes: &[u8]) -> Result<Model> {
        Ok(Self::from_saved(model_file::from_bytes(name, bytes)?))
    }

    fn from_saved(saved: SavedModel) -> Model {
        let spec = saved.network.spec();
        let sizes = saved.network.layer_sizes();
        let state = saved.training.unwrap_or_else(|| {
            TrainingState::new(
                crate::train::TrainConfig::plain(0, 1, 0.0, super::settings::DEFAULT_SEED),
                f64::NAN,
            )
        });
        let config = &state.config;
        let settings = Settings {
            hidden: sizes[1..sizes.len() - 1].to_vec(),
            activation: spec.hidden,
            output: Some(spec.output),
            loss: spec.loss,
            bias: saved.network.biases().is_some(),
            optimizer: crate::ops::optimizer::Optimizer {
                l2_weights: 0.0,
                ..config.optimizer
            },
            alpha: config.optimizer.l2_weights * config.batch as f64,
            learnrate: super::settings::LearnRate::Value(config.learnrate.max(f64::MIN_POSITIVE)),
            schedule: config.schedule,
            epochs: config.epochs.max(1),
            batch: super::settings::Batch::Records(config.batch.max(1)),
            drop_last: config.drop_last,
            shuffle: config.shuffle,
            seed: config.seed,
            shuffle_seed: config.shuffle_seed,
            early_stopping: config.early_stopping,
            convergence: config.convergence,
            standardize: !saved
                .encoder
                .numeric_statistics()
                .is_some_and(|s| is_identity(&s)),
            ..Settings::default()
        };
        let optimizer = saved
            .optimizer
            .unwrap_or_else(|| OptimizerState::zeros(&config.optimizer, &saved.network));
        Model {
            settings,
            encoder: saved.encoder,
            network: saved.network,
            state,
            optimizer,
            records_per_second: 0.0,
        }
    }

    /// The weight matrices, inputs x outputs per layer (scikit-learn's `coefs_`).
    pub fn weights(&self) -> &[Array2<f64>] {
        self.network.weights()
    }

    /// The bias vectors per layer (scikit-learn's `intercepts_`), when the network has them.
    pub fn biases(&self) -> Option<&[Array1<f64>]> {
        self.network.biases()
    }
}

impl Model {
    /// Whether the model learnt with cross-entropy (classes or probabilities).
    pub fn is_classifier(&self) -> bool {
        self.network.spec().loss == Loss::CrossEntropy
    }

    /// Labels given as text, indexed by the model's classes: the targets of a `partial_fit`
    /// whose records need not hold every class.
    ///
    /// ```
    /// use backprop::mlp::{Mlp, Targets};
    /// use ndarray::array;
    ///
    /// let x = array![[0.0f32], [1.0], [2.0]];
    /// let mut model = Mlp::classifier()
    ///     .epochs(1)
    ///     .device_cpu()
    ///     .fit(&x, &Targets::labels(&["a", "b", "c"]))?;
    /// let only_c = model.labels(&["c"])?;
    /// model.partial_fit(&array![[2.0f32]], &only_c)?;
    /// assert!(model.labels(&["d"]).is_err());
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn labels<S: AsRef<str>>(&self, labels: &[S]) -> Result<Targets<'static>> {
        let classes = self
            .encoder
            .classes
            .as_ref()
            .ok_or_else(|| Error::Shape("the model predicts numbers, not classes".into()))?;
        let of_record = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let l = l.as_ref();
                classes
                    .names
                    .iter()
                    .position(|c| c == l)
                    .ok_or_else(|| Error::Value {
                        array: "labels".into(),
                        index: vec![i],
                        message: format!(
                            "class `{l}` is not one of the model's ({})",
                            classes.names.join(", ")
                        ),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut labels = Labels::indexed(classes.names.clone(), of_record, classes.label_type)?;
        labels.column = classes.column.clone();
        Ok(Targets::Classes(labels))
    }
}
