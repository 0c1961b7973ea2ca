"""scikit-learn's MLPClassifier and MLPRegressor, trained by backprop.

The estimators keep scikit-learn's parameter names, defaults and fitted attributes; each
``fit`` is one call into the Rust facade (``backprop::mlp``) with the GIL released, on the GPU
when there is one (``device="auto"``) and the CPU otherwise. Inputs are used as given, as
scikit-learn uses them: scaling belongs in a ``Pipeline``.
"""

import numbers
import os
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    type_of_target,
)
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    check_random_state,
    column_or_1d,
    validate_data,
)

from . import _backprop

# What scikit-learn offers and backprop does not, with what to use instead.
_NOT_OFFERED = {
    "solver": {
        "lbfgs": "backprop trains with mini-batches on the GPU; scikit-learn's L-BFGS is a "
        "full-batch CPU solver. Use solver='adam' or solver='sgd'",
    },
    "learning_rate": {
        "invscaling": "backprop's schedules are 'constant', 'step' and 'cosine'",
        "adaptive": "backprop's schedules are 'constant', 'step' and 'cosine'",
    },
    "loss": {
        "poisson": "backprop's regressor learns the squared error",
    },
}

# scikit-learn's name of each output activation.
_OUT_ACTIVATION = {"sigmoid": "logistic", "softmax": "softmax", "identity": "identity"}

# The attributes a fit sets: a failed or interrupted fit puts them back as they were.
_FITTED = (
    "_model",
    "_scale",
    "_multilabel_dtype",
    "_predicts_column",
    "classes_",
    "n_features_in_",
    "feature_names_in_",
    "coefs_",
    "intercepts_",
    "n_layers_",
    "n_outputs_",
    "out_activation_",
    "loss_",
    "loss_curve_",
    "best_loss_",
    "validation_scores_",
    "best_validation_score_",
    "n_iter_",
    "t_",
)


def _store_parameters(estimator, parameters):
    """What an estimator's ``__init__`` does, and only that: each parameter stored under its
    own name (scikit-learn's ``get_params`` reads them back by the signature)."""
    for name, value in parameters.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, the call into the facade, and
    the fitted attributes."""

    _parameter_constraints = {
        "hidden_layer_sizes": [
            "array-like",
            Interval(numbers.Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(_backprop.ACTIVATIONS))],
        "solver": [StrOptions(set(_backprop.SOLVERS))],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(numbers.Integral, 1, None, closed="left"),
        ],
        "learning_rate": [StrOptions(set(_backprop.SCHEDULES))],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(numbers.Integral, 1, None, closed="left"),
            Options(numbers.Real, {np.inf}),
        ],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [StrOptions({"auto", "cpu", "gpu"})],
        "adapter": [None, str],
    }

    # -- parameters -> the facade's settings -------------------------------------------------

    def _check_offered(self):
        for name, refused in _NOT_OFFERED.items():
            value = getattr(self, name, None)
            if isinstance(value, str) and value in refused:
                raise ValueError(
                    f"{name}={value!r} is scikit-learn's and backprop does not offer it: "
                    f"{refused[value]}."
                )
        self._validate_params()

    def _hidden(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not sizes or any(int(s) <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _adapter(self):
        return self.adapter if self.adapter is not None else os.environ.get("BACKPROP_ADAPTER")

    def _settings(self, n_train, epochs):
        """The facade's settings for a fit over `n_train` records of at most `epochs` epochs."""
        if self.solver == "sgd":
            optimizer = "momentum" if self.momentum > 0 else "sgd"
        else:
            optimizer = _backprop.SOLVERS[self.solver]
        if self.batch_size == "auto":
            batch = None
        else:
            if self.batch_size > n_train:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than sample size. It is going "
                    "to be clipped"
                )
            batch = int(min(self.batch_size, n_train))
        scale = self._scale
        # The stopping rules compare losses in the library's scale (see `_loss_scale`).
        tol = self.tol / scale
        stops = np.isfinite(self.n_iter_no_change)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        return {
            "hidden": self._hidden(),
            "activation": _backprop.ACTIVATIONS[self.activation],
            "loss": self._loss,
            "init": "glorot-uniform",
            "optimizer": optimizer,
            "momentum": float(self.momentum) if self.momentum > 0 else 0.9,
            "nesterov": bool(self.nesterovs_momentum) and optimizer == "momentum",
            "beta1": float(self.beta_1),
            "beta2": float(self.beta_2),
            "epsilon": float(self.epsilon),
            # PyTorch's decoupled decay for AdamW; scikit-learn's L2 term is `alpha`.
            "weight_decay": 0.01 if optimizer == "adamw" else 0.0,
            "alpha": float(self.alpha),
            "learning_rate": float(self.learning_rate_init),
            "schedule": self.learning_rate,
            "epochs": int(epochs),
            "batch": batch,
            "shuffle": bool(self.shuffle),
            "seed": seed,
            # scikit-learn stops once the count of epochs without improvement exceeds
            # n_iter_no_change: the patience is one more.
            "early_stopping": (int(self.n_iter_no_change) + 1, tol)
            if self.early_stopping and stops
            else None,
            "convergence": (tol, int(self.n_iter_no_change))
            if not self.early_stopping and stops
            else None,
            "validation_fraction": float(self.validation_fraction),
            "device": self.device,
            "adapter": self._adapter(),
            "standardize": False,
        }

    # -- fitting ----------------------------------------------------------------------------

    def _on_event(self):
        verbose = self.verbose

        def on_event(kind, payload):
            if kind == "epoch":
                if verbose:
                    print(
                        "Iteration %d, loss = %.8f"
                        % (payload["epoch"], payload["train_loss"] * self._scale)
                    )
                    score = self._score_of(payload)
                    if self.early_stopping and score is not None:
                        print("Validation score: %f" % score)
            elif kind == "backend":
                if verbose:
                    print(payload)
            else:
                warnings.warn(payload, UserWarning, stacklevel=4)

        return on_event

    def _snapshot(self):
        return {name: self.__dict__[name] for name in _FITTED if name in self.__dict__}

    def _restore(self, snapshot):
        for name in _FITTED:
            self.__dict__.pop(name, None)
        self.__dict__.update(snapshot)

    def _fit(self, X, y, incremental, classes=None):
        self._check_offered()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        fitted = hasattr(self, "_model")
        continuing = fitted and (incremental or self.warm_start)
        snapshot = self._snapshot()
        try:
            converged = self._fit_checked(X, y, incremental, continuing, classes)
        except BaseException:
            # A failed or interrupted fit leaves a fitted model as it was.
            self._restore(snapshot)
            raise
        # Warned once the fit stands (a warning turned into an error keeps the model).
        if not converged:
            warnings.warn(
                "Stochastic Optimizer: Maximum iterations (%d) reached and the "
                "optimization hasn't converged yet." % self.max_iter,
                ConvergenceWarning,
            )
        return self

    def _fit_checked(self, X, y, incremental, continuing, classes):
        """The fit itself; False when it ran all of max_iter without a stopping rule ending it
        (scikit-learn's ConvergenceWarning)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        X = validate_data(
            self,
            X,
            reset=not continuing,
            dtype=(np.float64, np.float32),
            ensure_all_finite=False,
        )
        target_names = _target_names(y)
        targets = self._targets(y, X.shape[0], incremental, continuing, classes)
        if target_names is not None and not continuing:
            targets["target_names"] = target_names
        n_train = X.shape[0]
        if self.early_stopping:
            n_train -= int(round(n_train * self.validation_fraction))
        settings = self._settings(max(n_train, 1), 1 if incremental else self.max_iter)
        if incremental:
            settings["convergence"] = None
        names = None
        if not continuing and hasattr(self, "feature_names_in_"):
            names = [str(n) for n in self.feature_names_in_]
        if incremental and continuing:
            # The library's history goes on by one epoch: the curve gains its loss.
            model = self._model.partial_fit(settings, X, on_event=self._on_event(), **targets)
            earlier, new = list(self.loss_curve_), model.history[-1:]
        else:
            # A warm start begins a new history after scikit-learn's curve so far.
            warm = self._model if continuing else None
            model = _backprop.fit(
                settings,
                X,
                feature_names=names,
                warm=warm,
                on_event=self._on_event(),
                **targets,
            )
            earlier, new = (list(self.loss_curve_) if continuing else []), model.history
        t = self.t_ if continuing else 0
        # scikit-learn counts n_iter_ from 0 in every fit, and 1 for a partial_fit.
        n_iter = 1 if incremental else len(model.history)
        self._set_fitted(model, (earlier, new), n_iter, t + n_iter * n_train)
        return incremental or model.stopped is not None or n_iter < self.max_iter

    def _set_fitted(self, model, curve, n_iter, t):
        """The fitted attributes, as scikit-learn names them, from the facade's model: `curve`
        holds scikit-learn's loss curve before this fit (a warm start's, a partial_fit's) and
        the epoch records this fit added; `n_iter` epochs in this fit, `t` records in all."""
        self._model = model
        earlier, history = curve
        self.coefs_ = list(model.coefs)
        self.intercepts_ = list(model.intercepts)
        sizes = model.layer_sizes
        self.n_layers_ = len(sizes)
        self.n_outputs_ = sizes[-1]
        self.out_activation_ = _OUT_ACTIVATION[model.spec[1]]
        self.loss_curve_ = list(earlier) + [r["train_loss"] * self._scale for r in history]
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else None
        self.n_iter_ = n_iter
        self.t_ = t
        if self.early_stopping:
            self.validation_scores_ = [self._score_of(r) for r in history]
            # The score of the epoch whose weights the model keeps (the lowest validation loss).
            best = model.best_epoch
            self.best_validation_score_ = (
                self.validation_scores_[best[0] - history[0]["epoch"]]
                if best is not None and history
                else None
            )
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = min(self.loss_curve_) if self.loss_curve_ else None

    # -- predicting -------------------------------------------------------------------------

    def _outputs(self, X):
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, dtype=(np.float64, np.float32), ensure_all_finite=False
        )
        return self._model, X

    def _device(self):
        return {"device": self.device, "adapter": self._adapter()}

    def save(self, path):
        """Writes the fitted model as `backprop train --save` does (safetensors), so that
        ``backprop predict --model PATH`` and :func:`backprop.load` read it."""
        check_is_fitted(self)
        self._model.save(os.fspath(path))

    # -- pickling: the weights as a model file's bytes ---------------------------------------

    def __getstate__(self):
        state = super().__getstate__()
        if "_model" in state:
            state = dict(state)
            state["_model"] = bytes(self._model.to_bytes(True))
        return state

    def __setstate__(self, state):
        if isinstance(state.get("_model"), bytes):
            state = dict(state)
            state["_model"] = _backprop.Model.from_bytes(state["_model"])
        super().__setstate__(state)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier``, trained by
    backprop on the GPU when there is one (``device="auto"``), the CPU otherwise.

    The parameters are scikit-learn 1.9's, with their meanings, plus:

    device : {"auto", "cpu", "gpu"}, default="auto"
        Where to compute: a hardware GPU when present, else the CPU ("auto"); "gpu" fails
        without one.
    adapter : str, default=None
        Part of a GPU adapter's name (``backprop.devices()`` lists them; the environment
        variable ``BACKPROP_ADAPTER`` when None), e.g. "llvmpipe".

    Two classes take one logistic output, more take softmax, and 0/1 indicator columns (several
    labels at once) one logistic output each. ``solver="lbfgs"`` and the learning-rate
    schedules "invscaling" and "adaptive" are scikit-learn's alone: they raise ``ValueError``.
    """

    _loss = "cross-entropy"

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        device="auto",
        adapter=None,
    ):
        _store_parameters(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _targets(self, y, n_samples, incremental, continuing, classes):
        y = np.asarray(y) if not hasattr(y, "__array__") else y
        if incremental:
            first = _check_partial_fit_first_call(self, classes)
            continuing = continuing and not first
        check_classification_targets(y)
        if type_of_target(y) == "multilabel-indicator":
            Y = check_array(y, dtype=None, ensure_all_finite=True, input_name="y")
            if continuing and Y.shape[1] != len(self.classes_):
                raise ValueError(
                    f"the model learnt {len(self.classes_)} labels; y has {Y.shape[1]}"
                )
            if not incremental or not continuing:
                self.classes_ = np.arange(Y.shape[1])
            self._multilabel_dtype = Y.dtype
            self._scale = float(Y.shape[1])
            return {"values": np.asarray(Y, dtype=np.float64)}
        y = column_or_1d(y, warn=True)
        if y.shape[0] != n_samples:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: "
                f"[{n_samples}, {y.shape[0]}]"
            )
        self._multilabel_dtype = None
        self._scale = 1.0
        if continuing or incremental:
            known = self.classes_
            unseen = np.setdiff1d(y, known)
            if len(unseen):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. `self.classes_` has %s. 'y' "
                    "has %s." % (known, unseen)
                )
            index = np.searchsorted(known, y)
        else:
            self.classes_, index = np.unique(y, return_inverse=True)
        kind = self.classes_.dtype.kind
        label_type = {"i": "integer", "u": "integer", "f": "float", "b": "bool"}.get(
            kind, "text"
        )
        return {
            "labels": np.asarray(index, dtype=np.int64).ravel(),
            "classes": [str(c) for c in self.classes_],
            "label_type": label_type,
        }

    def _score_of(self, record):
        """scikit-learn's validation score of an epoch: the accuracy (for indicator targets,
        which the library scores as numbers, the negated validation loss)."""
        accuracy = record["val_metrics"].get("accuracy")
        if accuracy is not None or record["val_loss"] is None:
            return accuracy
        return -record["val_loss"] * self._scale

    def fit(self, X, y):
        """Fits the model to data matrix X and targets y (labels of any type, or 0/1
        indicator columns). Returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over X and y, from where the model stands; `classes` (every class the
        model will see) is required on the first call. Returns self."""
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Each class's probability (records x classes, in the order of ``classes_``)."""
        model, X = self._outputs(X)
        if self._multilabel_dtype is not None:
            return model.predict(X, **self._device())
        p = model.predict_proba(X, **self._device())
        # Normalised in float64: the network's softmax is computed in float32 on the GPU.
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """The logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))

    def predict(self, X):
        """The class of each record (for indicator targets, a 0/1 row per record)."""
        p = self.predict_proba(X)
        if self._multilabel_dtype is not None:
            return (p >= 0.5).astype(self._multilabel_dtype)
        return self.classes_[np.argmax(p, axis=1)]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor``, trained by backprop
    on the GPU when there is one (``device="auto"``), the CPU otherwise. The parameters are
    scikit-learn 1.9's, plus ``device`` and ``adapter`` (see :class:`MLPClassifier`); the
    loss is the squared error (``loss="poisson"`` raises ``ValueError``)."""

    _loss = "mse"
    _parameter_constraints = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error"})],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        device="auto",
        adapter=None,
    ):
        _store_parameters(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, y, n_samples, incremental, continuing, classes):
        y = check_array(
            y,
            ensure_2d=False,
            dtype=(np.float64, np.float32),
            ensure_all_finite=True,
            input_name="y",
        )
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples, ), for example using ravel().",
                DataConversionWarning,
                stacklevel=4,
            )
            y = y.ravel()
        if y.shape[0] != n_samples:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: "
                f"[{n_samples}, {y.shape[0]}]"
            )
        self._predicts_column = y.ndim == 1
        # scikit-learn's squared error is half the mean square.
        self._scale = 0.5
        values = y.reshape(-1, 1) if y.ndim == 1 else y
        return {"values": np.asarray(values, dtype=np.float64)}

    def _score_of(self, record):
        metrics = record["val_metrics"]
        r2 = [v for k, v in metrics.items() if k == "r2" or k.startswith("r2_")]
        return float(np.mean(r2)) if r2 else None

    def fit(self, X, y):
        """Fits the model to data matrix X and targets y (one column, or several). Returns
        self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over X and y, from where the model stands. Returns self."""
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """The predicted targets (a vector when the model learnt one column)."""
        model, X = self._outputs(X)
        y = model.predict(X, **self._device())
        return y.ravel() if self._predicts_column else y


def load(path):
    """A model that `backprop train --save` (or an estimator's ``save``) wrote, as a fitted
    ``MLPClassifier`` or ``MLPRegressor`` whose ``predict`` takes the model's input columns."""
    model = _backprop.Model.load(os.fspath(path))
    hidden, output, loss = model.spec
    trained = model.trained_with
    solver = {"momentum": "sgd", "sgd": "sgd"}.get(trained["optimizer"], trained["optimizer"])
    activation = {v: k for k, v in _backprop.ACTIVATIONS.items()}[hidden]
    params = dict(
        hidden_layer_sizes=tuple(trained["hidden"]),
        activation=activation,
        solver=solver,
        alpha=trained["alpha"],
        batch_size="auto" if trained["batch"] is None else trained["batch"],
        learning_rate_init=trained["learning_rate"],
        max_iter=trained["epochs"],
        shuffle=trained["shuffle"],
        # scikit-learn's seeds stop at 2**32 - 1; the command line's go further.
        random_state=trained["seed"] if trained["seed"] < 2**32 else None,
        momentum=trained["momentum"] if trained["optimizer"] == "momentum" else 0.0,
        nesterovs_momentum=trained["nesterov"],
        beta_1=trained["beta1"],
        beta_2=trained["beta2"],
        epsilon=trained["epsilon"],
    )
    if loss == "cross-entropy":
        estimator = MLPClassifier(**params)
        classes = model.classes
        if classes is None:
            estimator.classes_ = np.arange(model.layer_sizes[-1])
            estimator._multilabel_dtype = np.dtype(np.int64)
            estimator._scale = float(model.layer_sizes[-1])
        else:
            estimator.classes_ = _classes_of(classes, model.label_type)
            estimator._multilabel_dtype = None
            estimator._scale = 1.0
    else:
        estimator = MLPRegressor(**params)
        estimator._predicts_column = model.layer_sizes[-1] == 1
        estimator._scale = 0.5
    names = model.feature_names
    estimator.n_features_in_ = len(names)
    if names != [f"x{j}" for j in range(len(names))]:
        estimator.feature_names_in_ = np.asarray(names, dtype=object)
    epochs = len(model.history)
    estimator._set_fitted(model, ([], model.history), epochs, 0)
    return estimator


def _target_names(y):
    """The target's column names when y carries them (a named Series, a DataFrame)."""
    columns = getattr(y, "columns", None)
    if columns is not None:
        return [str(c) for c in columns]
    name = getattr(y, "name", None)
    return None if name is None else [str(name)]


def _classes_of(names, label_type):
    """Class labels back in their type."""
    if label_type == "integer":
        return np.asarray([int(n) for n in names])
    if label_type == "float":
        return np.asarray([float(n) for n in names])
    if label_type == "bool":
        return np.asarray([n == "True" for n in names])
    return np.asarray(names)
