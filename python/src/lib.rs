//! `backprop._backprop`: the facade (`backprop::mlp`) for the Python package. The estimators
//! with scikit-learn's interface live in Python (`backprop/_estimators.py`); this module turns
//! their settings, NumPy arrays and labels into one facade call each, run with the GIL released
//! and stopped cleanly by Ctrl-C, and turns the library's errors into Python's exceptions.

use std::sync::mpsc;
use std::time::Duration;

use numpy::{PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, ToPyArray};
use pyo3::exceptions::{
    PyKeyboardInterrupt, PyMemoryError, PyOSError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use backprop::mlp::{
    Activation, BackendChoice, Batch, CancelToken, Compute, Convergence, Device, EarlyStopping,
    EpochRecord, FitOptions, Init, LabelType, Labels, LearnRate, Loss, Method, Mlp, Model, Notice,
    Placement, ScheduleKind, Settings, Targets,
};
use backprop::{Error, Matrix};

/// Each command-line flag the library's messages name, and the estimators' parameter that sets
/// the same option (README's table of parameters comes from the same pairs).
const PARAMETERS: &[(&str, &str)] = &[
    ("--hidden", "hidden_layer_sizes"),
    ("--activation", "activation"),
    ("--optimizer", "solver"),
    ("--alpha", "alpha"),
    ("--batch", "batch_size"),
    ("--lr-schedule", "learning_rate"),
    ("--lr", "learning_rate_init"),
    ("--epochs", "max_iter"),
    ("--no-shuffle", "shuffle"),
    ("--seed", "random_state"),
    ("--tol", "tol"),
    ("--momentum", "momentum"),
    ("--nesterov", "nesterovs_momentum"),
    ("--patience", "early_stopping"),
    ("--min-delta", "tol"),
    ("--val-fraction", "validation_fraction"),
    ("--beta1", "beta_1"),
    ("--beta2", "beta_2"),
    ("--epsilon", "epsilon"),
    ("--n-iter-no-change", "n_iter_no_change"),
    ("--backend", "device"),
    ("--adapter", "adapter"),
];

/// `message` with every flag of [`PARAMETERS`] named as its parameter.
fn in_parameters(message: &str) -> String {
    let mut out = message.to_string();
    // Longest flags first, so that `--lr-schedule` is not read as `--lr`.
    let mut pairs = PARAMETERS.to_vec();
    pairs.sort_by_key(|(flag, _)| std::cmp::Reverse(flag.len()));
    for (flag, parameter) in pairs {
        let mut rebuilt = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(flag) {
            let after = &rest[at + flag.len()..];
            let whole_flag = !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-');
            rebuilt.push_str(&rest[..at]);
            rebuilt.push_str(if whole_flag { parameter } else { flag });
            rest = after;
        }
        rebuilt.push_str(rest);
        out = rebuilt;
    }
    out
}

/// The library's error as the Python exception a scikit-learn user expects.
fn python_error(error: Error) -> PyErr {
    let message = in_parameters(&error.to_string());
    match error {
        Error::Interrupted { .. } => PyKeyboardInterrupt::new_err(message),
        Error::Memory(_) => PyMemoryError::new_err(message),
        Error::Io { .. } => PyOSError::new_err(message),
        Error::NoAdapter(_) | Error::Gpu(_) | Error::Distributed(_) => {
            PyRuntimeError::new_err(message)
        }
        _ => PyValueError::new_err(message),
    }
}

/// A 2-D float array as the facade takes it, in the dtype NumPy holds it.
#[derive(FromPyObject)]
enum Array<'py> {
    F64(PyReadonlyArray2<'py, f64>),
    F32(PyReadonlyArray2<'py, f32>),
}

impl Array<'_> {
    fn matrix(&self) -> Matrix<'_> {
        match self {
            Array::F64(a) => Matrix::F64(a.as_array()),
            Array::F32(a) => Matrix::F32(a.as_array()),
        }
    }
}

/// An enum value by the name the command line gives it.
fn named<T: clap::ValueEnum>(key: &str, name: &str) -> PyResult<T> {
    T::from_str(name, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        PyValueError::new_err(format!(
            "{key}: `{name}` is not one of {}",
            names.join(", ")
        ))
    })
}

/// The facade's settings from the dictionary the estimators build (keys: the fields of
/// `backprop::mlp::Settings`, enum values by their command-line names).
fn settings(dict: &Bound<'_, PyDict>) -> PyResult<Settings> {
    let mut s = Settings {
        standardize: false,
        init: Init::GlorotUniform,
        compute: Compute::Data,
        ..Settings::default()
    };
    for (key, value) in dict.iter() {
        let key: String = key.extract()?;
        let text = || value.extract::<String>();
        match key.as_str() {
            "hidden" => s.hidden = value.extract()?,
            "activation" => s.activation = named::<Activation>(&key, &text()?)?,
            "output" => {
                s.output = match value.is_none() {
                    true => None,
                    false => Some(named::<Activation>(&key, &text()?)?),
                }
            }
            "loss" => s.loss = named::<Loss>(&key, &text()?)?,
            "bias" => s.bias = value.extract()?,
            "init" => s.init = named::<Init>(&key, &text()?)?,
            "optimizer" => s.optimizer.method = named::<Method>(&key, &text()?)?,
            "momentum" => s.optimizer.momentum = value.extract()?,
            "nesterov" => s.optimizer.nesterov = value.extract()?,
            "beta1" => s.optimizer.beta1 = value.extract()?,
            "beta2" => s.optimizer.beta2 = value.extract()?,
            "epsilon" => s.optimizer.epsilon = value.extract()?,
            "weight_decay" => s.optimizer.weight_decay = value.extract()?,
            "alpha" => s.alpha = value.extract()?,
            "learning_rate" => s.learnrate = LearnRate::Value(value.extract()?),
            "schedule" => s.schedule.kind = named::<ScheduleKind>(&key, &text()?)?,
            "epochs" => s.epochs = value.extract()?,
            "batch" => {
                s.batch = match value.is_none() {
                    true => Batch::Auto,
                    false => Batch::Records(value.extract()?),
                }
            }
            "shuffle" => s.shuffle = value.extract()?,
            "seed" => s.seed = value.extract()?,
            "early_stopping" => {
                s.early_stopping =
                    value
                        .extract::<Option<(usize, f64)>>()?
                        .map(|(patience, min_delta)| EarlyStopping {
                            patience,
                            min_delta,
                        })
            }
            "convergence" => {
                s.convergence =
                    value
                        .extract::<Option<(f64, usize)>>()?
                        .map(|(tol, n_iter_no_change)| Convergence {
                            tol,
                            n_iter_no_change,
                        })
            }
            "validation_fraction" => s.validation_fraction = value.extract()?,
            "device" => s.device.choice = named::<BackendChoice>(&key, &text()?)?,
            "adapter" => s.device.adapter = value.extract()?,
            "standardize" => s.standardize = value.extract()?,
            "tune" => s.tune = value.extract()?,
            other => return Err(PyTypeError::new_err(format!("unknown setting `{other}`"))),
        }
    }
    Ok(s)
}

/// Targets as the estimators hand them over: numbers (records x outputs), or labels as
/// indices into `classes` with the labels' type.
fn targets<'a>(
    values: Option<&'a Array<'_>>,
    labels: Option<&PyReadonlyArray1<'_, i64>>,
    (classes, label_type, names): (Option<Vec<String>>, &str, Option<Vec<String>>),
) -> PyResult<Targets<'a>> {
    match (values, labels, classes) {
        (Some(values), None, None) => {
            let matrix = values.matrix();
            let names = names.unwrap_or_else(|| match Targets::values(matrix) {
                Targets::Values { names, .. } => names,
                Targets::Classes(_) => Vec::new(),
            });
            Ok(Targets::Values {
                values: matrix,
                names,
            })
        }
        (None, Some(labels), Some(classes)) => {
            let of_record = labels
                .as_array()
                .iter()
                .map(|&k| usize::try_from(k).unwrap_or(usize::MAX))
                .collect();
            let label_type = match label_type {
                "text" => LabelType::Text,
                "integer" => LabelType::Integer,
                "float" => LabelType::Float,
                "bool" => LabelType::Bool,
                other => return Err(PyValueError::new_err(format!("label type `{other}`"))),
            };
            let mut labels =
                Labels::indexed(classes, of_record, label_type).map_err(python_error)?;
            if let Some(name) = names.and_then(|n| n.into_iter().next()) {
                labels.column = name;
            }
            Ok(Targets::Classes(labels))
        }
        _ => Err(PyTypeError::new_err(
            "give the targets as `values`, or as `labels` with `classes`",
        )),
    }
}

/// What a fit tells the waiting Python thread.
enum Event {
    Epoch(EpochRecord),
    Notice(Notice),
}

/// A record as a dictionary.
fn record_dict<'py>(py: Python<'py>, record: &EpochRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("epoch", record.epoch)?;
    d.set_item("train_loss", record.train_loss)?;
    d.set_item("val_loss", record.val_loss)?;
    d.set_item("train_metrics", record.train_metrics.clone())?;
    d.set_item("val_metrics", record.val_metrics.clone())?;
    Ok(d)
}

/// Runs `work` on a thread of its own with the GIL released, handing its epochs and notices
/// to `on_event(kind, payload)` on this thread as they come. Ctrl-C (a signal Python sees
/// here) cancels the work, waits for it to stop at its next batch, and raises
/// `KeyboardInterrupt`: whatever the work made is dropped.
fn interruptible<T: Send>(
    py: Python<'_>,
    on_event: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(FitOptions) -> backprop::Result<T> + Send,
) -> PyResult<T> {
    let cancel = CancelToken::new();
    let (sender, mut receiver) = mpsc::channel::<Event>();
    std::thread::scope(|scope| {
        let worker = {
            let cancel = cancel.clone();
            scope.spawn(move || {
                let epochs = sender.clone();
                let notices = std::sync::Mutex::new(sender);
                work(FitOptions {
                    cancel: Some(cancel),
                    on_epoch: Some(Box::new(move |record: &EpochRecord| {
                        let _ = epochs.send(Event::Epoch(record.clone()));
                    })),
                    notify: Some(std::sync::Arc::new(move |notice| {
                        if let Ok(sender) = notices.lock() {
                            let _ = sender.send(Event::Notice(notice));
                        }
                    })),
                    ..FitOptions::default()
                })
            })
        };
        let stop = |error: PyErr| -> PyErr {
            cancel.cancel(2);
            py.detach(|| {
                while !worker.is_finished() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            error
        };
        loop {
            let (back, event) = py.detach(move || {
                let event = receiver.recv_timeout(Duration::from_millis(50));
                (receiver, event)
            });
            receiver = back;
            match event {
                Ok(event) => {
                    if let Some(on_event) = on_event {
                        let delivered = match &event {
                            Event::Epoch(record) => record_dict(py, record)
                                .and_then(|record| on_event.call1(("epoch", record))),
                            Event::Notice(Notice::Backend(line)) => {
                                on_event.call1(("backend", line.as_str()))
                            }
                            Event::Notice(Notice::Note(line)) => {
                                on_event.call1(("note", in_parameters(line)))
                            }
                            Event::Notice(Notice::Warning(line)) => {
                                on_event.call1(("warning", in_parameters(line)))
                            }
                        };
                        if let Err(e) = delivered {
                            return Err(stop(e));
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if let Err(e) = py.check_signals() {
                return Err(stop(e));
            }
        }
        match py.detach(move || worker.join()) {
            Ok(result) => result.map_err(python_error),
            Err(_) => Err(PyRuntimeError::new_err(
                "backprop stopped on an internal error (a panic): please report it",
            )),
        }
    })
}

/// A fitted model: the facade's `Model`.
#[pyclass(name = "Model", module = "backprop._backprop")]
struct PyModel {
    inner: Model,
}

/// Fits a new model, or with `warm` one starting from `warm`'s weights.
#[pyfunction]
#[pyo3(signature = (settings, x, *, values=None, labels=None, classes=None, label_type="text", feature_names=None, target_names=None, warm=None, on_event=None))]
#[allow(clippy::too_many_arguments)]
fn fit(
    py: Python<'_>,
    settings: &Bound<'_, PyDict>,
    x: Array<'_>,
    values: Option<Array<'_>>,
    labels: Option<PyReadonlyArray1<'_, i64>>,
    classes: Option<Vec<String>>,
    label_type: &str,
    feature_names: Option<Vec<String>>,
    target_names: Option<Vec<String>>,
    warm: Option<PyRef<'_, PyModel>>,
    on_event: Option<Bound<'_, PyAny>>,
) -> PyResult<PyModel> {
    let mlp = Mlp::with_settings(self::settings(settings)?);
    let y = targets(
        values.as_ref(),
        labels.as_ref(),
        (classes, label_type, target_names),
    )?;
    let x = x.matrix();
    let warm = warm.as_deref().map(|m| &m.inner);
    let model = interruptible(py, on_event.as_ref(), move |options| {
        let options = FitOptions {
            feature_names,
            ..options
        };
        match warm {
            Some(model) => mlp.fit_from(model, x, &y, options),
            None => mlp.fit_with(x, &y, options),
        }
    })?;
    Ok(PyModel { inner: model })
}

/// A 2-D array of f64 for Python.
fn array2<'py>(py: Python<'py>, a: &ndarray::Array2<f64>) -> Bound<'py, PyArray2<f64>> {
    a.to_pyarray(py)
}

#[pymethods]
impl PyModel {
    /// One more epoch over `x` from where the model stands (scikit-learn's `partial_fit`),
    /// with `settings` for the optimizer and batches: the model that comes of it (this one
    /// is left as it is).
    #[pyo3(signature = (settings, x, *, values=None, labels=None, classes=None, label_type="text", on_event=None))]
    #[allow(clippy::too_many_arguments)]
    fn partial_fit(
        &self,
        py: Python<'_>,
        settings: &Bound<'_, PyDict>,
        x: Array<'_>,
        values: Option<Array<'_>>,
        labels: Option<PyReadonlyArray1<'_, i64>>,
        classes: Option<Vec<String>>,
        label_type: &str,
        on_event: Option<Bound<'_, PyAny>>,
    ) -> PyResult<PyModel> {
        let settings = self::settings(settings)?;
        let names = self.inner.encoder().target_names();
        let y = targets(
            values.as_ref(),
            labels.as_ref(),
            (classes, label_type, (!names.is_empty()).then_some(names)),
        )?;
        let x = x.matrix();
        let mut next = self.inner.clone().with_settings(settings);
        let next = interruptible(py, on_event.as_ref(), move |options| {
            next.partial_fit_with(x, &y, options).map(|()| next)
        })?;
        Ok(PyModel { inner: next })
    }

    /// The network's output for `x` on `device` (`auto`, `cpu`, `gpu`; `adapter`: part of a
    /// GPU's name): regression targets in their units, or the output layer's probabilities.
    #[pyo3(signature = (x, device="auto", adapter=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: Array<'_>,
        device: &str,
        adapter: Option<String>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        self.compute(py, (x, device, adapter), |m, x, at| m.predict_on(x, at))
    }

    /// Each class's probability for `x` (records x classes).
    #[pyo3(signature = (x, device="auto", adapter=None))]
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        x: Array<'_>,
        device: &str,
        adapter: Option<String>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        self.compute(py, (x, device, adapter), |m, x, at| {
            m.predict_proba_on(x, at)
        })
    }

    /// The weight matrices, inputs x outputs (scikit-learn's `coefs_`).
    #[getter]
    fn coefs<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyArray2<f64>>> {
        self.inner.weights().iter().map(|w| array2(py, w)).collect()
    }

    /// The bias vectors (`intercepts_`; zeros for a network without biases).
    #[getter]
    fn intercepts<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyArray1<f64>>> {
        match self.inner.biases() {
            Some(biases) => biases.iter().map(|b| b.to_pyarray(py)).collect(),
            None => self.inner.network().layer_sizes()[1..]
                .iter()
                .map(|&n| ndarray::Array1::<f64>::zeros(n).to_pyarray(py))
                .collect(),
        }
    }

    /// Every epoch's losses and figures, as dictionaries.
    #[getter]
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let records = self
            .inner
            .history()
            .iter()
            .map(|r| record_dict(py, r))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, records)
    }

    /// The epoch after which a stopping rule ended the last fit: `("converged", epoch)`,
    /// `("early_stopping", epoch)`, or `None`.
    #[getter]
    fn stopped(&self) -> Option<(&'static str, usize)> {
        let state = self.inner.state();
        match (state.converged, state.stopped_early) {
            (Some(epoch), _) => Some(("converged", epoch)),
            (_, Some(epoch)) => Some(("early_stopping", epoch)),
            _ => None,
        }
    }

    /// The best epoch under early stopping (its weights are the model's) and its loss.
    #[getter]
    fn best_epoch(&self) -> Option<(usize, f64)> {
        self.inner.state().best.map(|b| (b.epoch, b.val_loss))
    }

    /// The optimizer's step count.
    #[getter]
    fn steps(&self) -> u64 {
        self.inner.optimizer_state().step
    }

    #[getter]
    fn classes(&self) -> Option<Vec<String>> {
        self.inner.classes().map(<[String]>::to_vec)
    }

    /// `text`, `integer`, `float` or `bool`: what the class labels were.
    #[getter]
    fn label_type(&self) -> &'static str {
        match self.inner.encoder().classes.as_ref().map(|c| c.label_type) {
            Some(LabelType::Integer) => "integer",
            Some(LabelType::Float) => "float",
            Some(LabelType::Bool) => "bool",
            _ => "text",
        }
    }

    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.inner.feature_names()
    }

    #[getter]
    fn target_names(&self) -> Vec<String> {
        self.inner.encoder().target_columns()
    }

    #[getter]
    fn layer_sizes(&self) -> Vec<usize> {
        self.inner.network().layer_sizes()
    }

    /// The hidden and output activations and the loss, by their command-line names.
    #[getter]
    fn spec(&self) -> (&'static str, &'static str, &'static str) {
        let spec = self.inner.network().spec();
        (spec.hidden.name(), spec.output.name(), spec.loss.name())
    }

    /// Whether the inputs are all numbers (a model that takes arrays); a model made from a CSV
    /// with text or date columns takes its records as `backprop predict` reads them.
    #[getter]
    fn takes_arrays(&self) -> bool {
        self.inner.encoder().numeric_statistics().is_some()
    }

    /// The settings a loaded model was trained with, for the estimator's parameters.
    #[getter]
    fn trained_with<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.settings();
        let d = PyDict::new(py);
        d.set_item("hidden", s.hidden.clone())?;
        d.set_item("activation", s.activation.name())?;
        d.set_item("optimizer", s.optimizer.method.name())?;
        d.set_item("momentum", s.optimizer.momentum)?;
        d.set_item("nesterov", s.optimizer.nesterov)?;
        d.set_item("beta1", s.optimizer.beta1)?;
        d.set_item("beta2", s.optimizer.beta2)?;
        d.set_item("epsilon", s.optimizer.epsilon)?;
        d.set_item("alpha", s.alpha)?;
        d.set_item(
            "learning_rate",
            match s.learnrate {
                LearnRate::Value(v) => v,
                LearnRate::Auto => f64::NAN,
            },
        )?;
        d.set_item(
            "batch",
            match s.batch {
                Batch::Records(b) => Some(b),
                Batch::Auto => None,
            },
        )?;
        d.set_item("epochs", s.epochs)?;
        d.set_item("shuffle", s.shuffle)?;
        d.set_item("seed", s.seed)?;
        Ok(d)
    }

    /// A model file's bytes (with the optimizer's state when `with_optimizer`).
    fn to_bytes<'py>(
        &self,
        py: Python<'py>,
        with_optimizer: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.inner.to_bytes(with_optimizer).map_err(python_error)?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> PyResult<PyModel> {
        Model::from_bytes(std::path::Path::new("the pickled model"), bytes)
            .map(|inner| PyModel { inner })
            .map_err(python_error)
    }

    /// Writes the model as `backprop train --save` does.
    fn save(&self, path: std::path::PathBuf) -> PyResult<()> {
        self.inner.save(&path).map_err(python_error)
    }

    #[staticmethod]
    fn load(path: std::path::PathBuf) -> PyResult<PyModel> {
        Model::load(&path)
            .map(|inner| PyModel { inner })
            .map_err(python_error)
    }
}

impl PyModel {
    /// `prediction` of the model for `x` on `device`, in the data's precision on the CPU (as
    /// scikit-learn keeps a dtype), with the GIL released. Several threads may predict with
    /// one model at once.
    fn compute<'py>(
        &self,
        py: Python<'py>,
        (x, device, adapter): (Array<'_>, &str, Option<String>),
        prediction: fn(&Model, Matrix<'_>, &Placement) -> backprop::Result<ndarray::Array2<f64>>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let at = Placement {
            device: Device {
                choice: named::<BackendChoice>("device", device)?,
                adapter,
            },
            compute: Compute::Data,
        };
        let (model, x) = (&self.inner, x.matrix());
        let y = py
            .detach(move || prediction(model, x, &at))
            .map_err(python_error)?;
        Ok(array2(py, &y))
    }
}

/// The seeds' exercise: the deltas of one batch (`delta_w_i_h`, …, and the biases') of the
/// network with `weights` (and `biases`), on `device`, as a dictionary of arrays.
#[pyfunction]
#[pyo3(signature = (weights, x, target, learning_rate, *, biases=None, hidden="sigmoid", output="sigmoid", loss="mse", device="cpu", adapter=None))]
#[allow(clippy::too_many_arguments)]
fn step<'py>(
    py: Python<'py>,
    weights: Vec<PyReadonlyArray2<'py, f64>>,
    x: PyReadonlyArray2<'py, f64>,
    target: PyReadonlyArray2<'py, f64>,
    learning_rate: f64,
    biases: Option<Vec<PyReadonlyArray1<'py, f64>>>,
    hidden: &str,
    output: &str,
    loss: &str,
    device: &str,
    adapter: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let spec = backprop::Spec {
        hidden: named::<Activation>("hidden", hidden)?,
        output: named::<Activation>("output", output)?,
        loss: named::<Loss>("loss", loss)?,
    };
    let weights: Vec<_> = weights.iter().map(|w| w.as_array().to_owned()).collect();
    let biases: Option<Vec<_>> =
        biases.map(|bs| bs.iter().map(|b| b.as_array().to_owned()).collect());
    let network = backprop::Network::with_spec(weights, biases, spec).map_err(python_error)?;
    let device = Device {
        choice: named::<BackendChoice>("device", device)?,
        adapter,
    };
    let (x, target) = (x.as_array(), target.as_array());
    let deltas = py
        .detach(move || backprop::mlp::step(&network, x, target, learning_rate, &device))
        .map_err(python_error)?;
    let out = PyDict::new(py);
    let n_layers = deltas.weights.len();
    for (name, delta) in backprop::model::delta_names(n_layers)
        .into_iter()
        .zip(&deltas.weights)
    {
        out.set_item(name, array2(py, delta))?;
    }
    for (name, delta) in backprop::model::bias_delta_names(n_layers)
        .into_iter()
        .zip(deltas.biases.iter().flatten())
    {
        out.set_item(name, delta.to_pyarray(py))?;
    }
    Ok(out)
}

/// The adapters `backprop info` lists, as JSON.
#[pyfunction]
fn devices_json(py: Python<'_>) -> PyResult<String> {
    let adapters = py.detach(backprop::gpu::context::list_adapters);
    serde_json::to_string(&adapters).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// Lets go of the GPUs fits and predictions share (their compiled pipelines go to the disk
/// cache); the package calls it at exit.
#[pyfunction]
fn release_devices() {
    backprop::device::release_shared();
}

/// An activation's name as scikit-learn spells it (`logistic` for sigmoid).
fn sklearn_activation(a: Activation) -> String {
    match a {
        Activation::Sigmoid => "logistic".into(),
        other => other.name().replace('-', "_"),
    }
}

#[pymodule]
fn _backprop(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyModel>()?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(step, m)?)?;
    m.add_function(wrap_pyfunction!(devices_json, m)?)?;
    m.add_function(wrap_pyfunction!(release_devices, m)?)?;
    // The choices the estimators offer, from the library's own types: scikit-learn's name ->
    // the library's.
    let activations = PyDict::new(m.py());
    for a in Activation::HIDDEN {
        activations.set_item(sklearn_activation(a), a.name())?;
    }
    m.add("ACTIVATIONS", activations)?;
    let solvers = PyDict::new(m.py());
    for method in <Method as clap::ValueEnum>::value_variants() {
        // scikit-learn's `sgd` is SGD with momentum: the library's `sgd` and `momentum`.
        if *method != Method::Momentum {
            solvers.set_item(method.name(), method.name())?;
        }
    }
    m.add("SOLVERS", solvers)?;
    let schedules: Vec<String> = <ScheduleKind as clap::ValueEnum>::value_variants()
        .iter()
        .filter_map(|k| clap::ValueEnum::to_possible_value(k).map(|p| p.get_name().to_string()))
        .collect();
    m.add("SCHEDULES", schedules)?;
    m.add("PARAMETERS", PARAMETERS.to_vec())?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::in_parameters;

    #[test]
    fn flags_become_parameters_and_longer_flags_win() {
        assert_eq!(
            in_parameters("invalid value for --lr: try --lr 0.1 or --lr-schedule step"),
            "invalid value for learning_rate_init: try learning_rate_init 0.1 or learning_rate step"
        );
        assert_eq!(in_parameters("--val-fraction 0"), "validation_fraction 0");
        assert_eq!(in_parameters("--lrx stays"), "--lrx stays");
    }
}
