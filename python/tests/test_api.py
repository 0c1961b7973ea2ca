"""The estimators as a scikit-learn user meets them: inputs of every kind, labels back as given,
fitted attributes, pickling and model files (with the command line too), pipelines and grid
searches, partial_fit and warm starts, Ctrl-C, the GPU against the CPU, and every bad input
raising the library's message instead of crashing."""

import os
import pickle
import signal
import subprocess
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import backprop
from backprop import MLPClassifier, MLPRegressor

warnings.simplefilter("ignore", ConvergenceWarning)


def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# -- inputs and labels --------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["setosa", "versicolor", "virginica"], dtype=object),
        np.array(["setosa", "versicolor", "virginica"]),
        np.array([3, 7, 11]),
        np.array([1.0, 2.0, 4.0]),
    ],
    ids=["object", "str", "int", "float"],
)
def test_labels_of_any_type_come_back_as_given(labels):
    X, y = iris()
    y = labels[y]
    clf = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.05, max_iter=50, random_state=0, device="cpu")
    clf.fit(X, y)
    assert list(clf.classes_) == sorted(set(y.tolist()))
    predicted = clf.predict(X)
    assert predicted.dtype == clf.classes_.dtype
    assert set(predicted.tolist()) <= set(y.tolist())
    assert clf.score(X, y) > 0.8


def test_booleans_and_two_classes_take_one_logistic_output():
    X, y = make_classification(n_samples=120, n_features=5, random_state=1)
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, device="cpu").fit(X, y == 1)
    assert clf.classes_.dtype == bool and list(clf.classes_) == [False, True]
    assert clf.out_activation_ == "logistic" and clf.coefs_[-1].shape == (8, 1)
    p = clf.predict_proba(X)
    assert p.shape == (120, 2) and np.allclose(p.sum(axis=1), 1)
    assert np.allclose(clf.predict_log_proba(X), np.log(p))
    assert (clf.predict(X) == (p[:, 1] > p[:, 0])).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_float32_and_float64_in_either_order_give_the_same_model(dtype, order):
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0, device="cpu")
    reference = clf.fit(np.ascontiguousarray(X, dtype=dtype), y).predict_proba(X.astype(dtype))
    again = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0, device="cpu")
    again.fit(np.asarray(X, dtype=dtype, order=order), y)
    np.testing.assert_array_equal(again.predict_proba(np.asarray(X, dtype=dtype, order=order)), reference)


def test_lists_dataframes_and_series():
    X, y = iris()
    frame = pd.DataFrame(X, columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    names = pd.Series(np.array(["a", "b", "c"])[y], name="species")
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0, device="cpu")
    clf.fit(frame, names)
    assert list(clf.feature_names_in_) == list(frame.columns)
    from_lists = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0, device="cpu")
    from_lists.fit(X.tolist(), names.tolist())
    assert not hasattr(from_lists, "feature_names_in_")
    np.testing.assert_array_equal(clf.predict(frame), from_lists.predict(X.tolist()))
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


def test_fitted_attributes_are_scikit_learns():
    X, y = make_regression(n_samples=150, n_features=4, n_targets=2, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(7, 5), max_iter=30, random_state=0, device="cpu")
    reg.fit(X, y)
    assert [c.shape for c in reg.coefs_] == [(4, 7), (7, 5), (5, 2)]
    assert [b.shape for b in reg.intercepts_] == [(7,), (5,), (2,)]
    assert reg.n_features_in_ == 4 and reg.n_layers_ == 4 and reg.n_outputs_ == 2
    assert reg.out_activation_ == "identity"
    assert reg.n_iter_ == len(reg.loss_curve_) == 30
    assert reg.t_ == 30 * 150
    assert reg.best_loss_ == min(reg.loss_curve_) and reg.loss_ == reg.loss_curve_[-1]
    assert reg.validation_scores_ is None and reg.best_validation_score_ is None
    assert reg.predict(X).shape == (150, 2)
    # The weights are what the network computes with: a forward pass in NumPy agrees.
    h = np.maximum(X @ reg.coefs_[0] + reg.intercepts_[0], 0)
    h = np.maximum(h @ reg.coefs_[1] + reg.intercepts_[1], 0)
    np.testing.assert_allclose(h @ reg.coefs_[2] + reg.intercepts_[2], reg.predict(X), rtol=1e-9, atol=1e-9)


def test_the_loss_curve_is_scikit_learns_scale():
    # scikit-learn's squared error is half the mean square: for a model that predicts 0 for
    # every record (zero weights), the first loss would be mean(y²)/2.
    X, y = make_regression(n_samples=100, n_features=3, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=1, learning_rate_init=1e-12, random_state=0, device="cpu")
    reg.fit(X, y)
    np.testing.assert_allclose(reg.loss_curve_[0], np.mean((reg.predict(X) - y) ** 2) / 2, rtol=1e-6)


def test_convergence_and_early_stopping_are_scikit_learns_rules():
    X, y = iris()
    converging = MLPClassifier(hidden_layer_sizes=(8,), tol=0.5, n_iter_no_change=3, max_iter=500, random_state=0, device="cpu")
    converging.fit(X, y)
    # The first epoch sets the best loss, then n_iter_no_change + 1 epochs fall short of tol.
    assert converging.n_iter_ == 5
    never = MLPClassifier(hidden_layer_sizes=(8,), tol=0.5, n_iter_no_change=np.inf, max_iter=12, random_state=0, device="cpu")
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        never.fit(X, y)
    assert never.n_iter_ == 12
    early = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, validation_fraction=0.2, n_iter_no_change=2, tol=0.5, max_iter=300, random_state=0, device="cpu")
    early.fit(X, y)
    assert early.best_loss_ is None and len(early.validation_scores_) == early.n_iter_ < 300
    assert all(0 <= s <= 1 for s in early.validation_scores_)
    # Early stopping keeps the epoch of the lowest validation loss: its score is reported.
    assert early.best_validation_score_ in early.validation_scores_
    with pytest.raises(ValueError, match="early_stopping"):
        early.partial_fit(X, y)


def test_verbose_prints_each_epoch_as_scikit_learn_does(capsys):
    X, y = iris()
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, verbose=True, random_state=0, device="cpu").fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 3, loss = " in out
    assert "backend: cpu" in out


# -- partial_fit and warm starts ----------------------------------------------------------


def test_partial_fit_goes_on_from_where_the_model_stands():
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, device="cpu")
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    # A first batch holding one class only: the classes come from `classes=`.
    clf.partial_fit(X[y == 0], y[y == 0], classes=[0, 1, 2])
    assert list(clf.classes_) == [0, 1, 2] and clf.n_iter_ == 1
    for _ in range(40):
        clf.partial_fit(X, y)
    assert len(clf.loss_curve_) == 41 and clf.t_ == 50 + 40 * 150
    assert clf.loss_curve_[-1] < clf.loss_curve_[1]
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X[:3], np.array([0, 1, 7]))
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :3], y)


def test_partial_fit_after_a_new_solver_and_with_a_schedule():
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, device="cpu").fit(X, y)
    # Another solver: its own fresh moments, as scikit-learn starts a new optimizer.
    clf.set_params(solver="sgd").partial_fit(X, y)
    assert clf.n_iter_ == 1
    with pytest.raises(ValueError, match="learning_rate"):
        clf.set_params(learning_rate="cosine").partial_fit(X, y)


def test_one_model_predicts_from_several_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor

    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0, device="cpu").fit(X, y)
    expected = clf.predict_proba(X)
    with ThreadPoolExecutor(4) as pool:
        for p in pool.map(lambda _: clf.predict_proba(X), range(16)):
            np.testing.assert_array_equal(p, expected)


def test_warm_start_continues_from_the_last_weights():
    X, y = make_regression(n_samples=120, n_features=4, random_state=2)
    y = y / y.std()
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, warm_start=True, random_state=0, device="cpu")
    reg.fit(X, y)
    first = list(reg.loss_curve_)
    reg.fit(X, y)
    assert reg.loss_curve_[:20] == first and len(reg.loss_curve_) == 40
    assert reg.loss_curve_[-1] < first[-1]
    cold = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0, device="cpu").fit(X, y)
    assert cold.loss_curve_ == first
    # A partial_fit after the warm start adds one point to the whole curve.
    before = list(reg.loss_curve_)
    reg.partial_fit(X, y)
    assert reg.loss_curve_[:40] == before and len(reg.loss_curve_) == 41


# -- pickling and model files -------------------------------------------------------------


def test_pickling_gives_identical_predictions_and_keeps_training():
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver="adam", max_iter=30, random_state=0, device="cpu").fit(X, y)
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.get_params() == clf.get_params()
    # The optimizer's moments travel too: one more epoch agrees with the original's.
    np.testing.assert_array_equal(
        back.partial_fit(X, y).predict_proba(X), clf.partial_fit(X, y).predict_proba(X)
    )


def test_save_and_load_round_trip_the_command_lines_format(tmp_path, cli):
    X, y = iris()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    species = pd.Series(np.array(["setosa", "versicolor", "virginica"])[y], name="species")
    clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=40, random_state=0, device="cpu").fit(frame, species)
    path = tmp_path / "model.safetensors"
    clf.save(path)
    loaded = backprop.load(path)
    assert isinstance(loaded, MLPClassifier)
    np.testing.assert_array_equal(loaded.predict_proba(frame), clf.predict_proba(frame))
    assert list(loaded.classes_) == list(clf.classes_)
    assert list(loaded.feature_names_in_) == ["a", "b", "c", "d"]
    # `backprop predict` reads the same file and gives the same labels.
    csv = tmp_path / "records.csv"
    frame.assign(species=species).to_csv(csv, index=False)
    out = tmp_path / "predicted.csv"
    subprocess.run([cli, "predict", "--model", str(path), "--data", str(csv), "--out", str(out), "--backend", "cpu"], check=True, capture_output=True)
    predicted = pd.read_csv(out)
    np.testing.assert_array_equal(predicted["species_predicted"], clf.predict(frame))
    np.testing.assert_allclose(predicted["species_p_virginica"], clf.predict_proba(frame)[:, 2], rtol=1e-6)


def test_a_model_trained_by_the_command_line_predicts_from_python(tmp_path, cli):
    path = tmp_path / "iris.safetensors"
    data = backprop_data("iris.csv")
    subprocess.run([cli, "train", "--data", data, "--target", "species", "--loss", "cross-entropy", "--epochs", "30", "--backend", "cpu", "--quiet", "--save", str(path)], check=True, capture_output=True)
    out = tmp_path / "predicted.csv"
    subprocess.run([cli, "predict", "--model", str(path), "--data", data, "--out", str(out), "--backend", "cpu"], check=True, capture_output=True)
    cli_predicted = pd.read_csv(out)
    clf = backprop.load(path)
    features = pd.read_csv(data)[list(clf.feature_names_in_)]
    np.testing.assert_array_equal(clf.predict(features), cli_predicted["species_predicted"])
    np.testing.assert_allclose(clf.predict_proba(features)[:, 0], cli_predicted["species_p_setosa"], rtol=1e-5)
    # The file's standardisation statistics are applied: the inputs are the CSV's own.
    assert clf.score(features, cli_predicted["species"]) > 0.8


def test_a_regressor_file_predicts_in_the_targets_units(tmp_path):
    X, y = make_regression(n_samples=80, n_features=3, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=20, random_state=0, device="cpu").fit(X, y)
    reg.save(tmp_path / "r.safetensors")
    back = backprop.load(tmp_path / "r.safetensors")
    assert isinstance(back, MLPRegressor)
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))


def backprop_data(name):
    from conftest import REPO

    return str(REPO / "data" / name)


# -- pipelines and searches ---------------------------------------------------------------


def test_a_pipeline_and_a_grid_search():
    X, y = iris()
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifier(learning_rate_init=0.02, max_iter=60, random_state=0, device="cpu"))])
    search = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": [(4,), (16,)], "mlp__alpha": [1e-4, 1.0]}, cv=3)
    search.fit(X, y)
    assert search.best_score_ > 0.85
    assert set(search.best_params_) == {"mlp__hidden_layer_sizes", "mlp__alpha"}
    assert search.predict(X).shape == (150,)


# -- Ctrl-C ---------------------------------------------------------------------------------


def test_ctrl_c_raises_keyboard_interrupt_and_leaves_the_fitted_model_unchanged():
    X, y = make_classification(n_samples=20000, n_features=40, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=1, random_state=0, device="cpu").fit(X, y)
    before = [c.copy() for c in clf.coefs_], clf.predict_proba(X[:10])
    clf.set_params(max_iter=100000, hidden_layer_sizes=(256,), n_iter_no_change=np.inf)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    timer.cancel()
    assert all((a == b).all() for a, b in zip(clf.coefs_, before[0]))
    np.testing.assert_array_equal(clf.predict_proba(X[:10]), before[1])


# -- bad inputs -------------------------------------------------------------------------------


def test_bad_inputs_raise_the_librarys_message():
    X, y = iris()
    fresh = lambda **kw: MLPClassifier(**{"max_iter": 5, "device": "cpu", "hidden_layer_sizes": (4,), **kw})
    with pytest.raises(NotFittedError):
        fresh().predict(X)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"`input` at index \[3, 2\]: NaN"):
        fresh().fit(bad, y)
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match=r"\[3, 2\].*inf"):
        fresh().fit(bad, y)
    fitted = fresh().fit(X, y)
    with pytest.raises(ValueError, match=r"`input` at index \[3, 2\]"):
        fitted.predict(bad)
    with pytest.raises(ValueError, match="4 features"):
        fitted.predict(X[:, :3])
    with pytest.raises(ValueError, match="dim 3"):
        fresh().fit(X.reshape(150, 2, 2), y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fresh().fit(X, y[:-1])
    with pytest.raises(ValueError, match="lbfgs"):
        fresh(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="invscaling"):
        fresh(learning_rate="invscaling").fit(X, y)
    with pytest.raises(ValueError, match="poisson"):
        MLPRegressor(loss="poisson").fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        fresh(hidden_layer_sizes=(4, 0)).fit(X, y)
    with pytest.raises(ValueError, match="learning_rate_init"):
        fresh(learning_rate_init=1e300).fit(X, y)
    with pytest.raises(ValueError, match="1 class"):
        fresh().fit(X, np.zeros(150))
    with pytest.raises(MemoryError, match="memory"):
        fresh(hidden_layer_sizes=(2**40,)).fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        fresh().fit(X, X[:, 0])
    with pytest.raises(ValueError, match="y contains NaN"):
        MLPRegressor(device="cpu").fit(X, np.full(150, np.nan))
    with pytest.raises(RuntimeError, match="adapter"):
        fresh(device="gpu", adapter="no such adapter anywhere").fit(X, y)


# -- the seeds' exercise, the devices, the GPU -----------------------------------------------


def test_step_gives_the_seeds_worked_example():
    deltas = backprop.step(
        [np.array([[0.5, -0.6], [0.1, -0.2], [0.1, 0.7]]), np.array([0.1, -0.3])],
        np.array([0.5, 0.1, -0.2]),
        np.array([0.6]),
        0.5,
    )
    np.testing.assert_allclose(deltas["delta_w_h_o"].ravel(), [0.00804047, 0.00555918], atol=5e-9)
    assert deltas["delta_w_i_h"].shape == (3, 2)


def test_devices_lists_what_backprop_info_lists(cli):
    import json

    listed = json.loads(subprocess.run([cli, "info", "--json"], check=True, capture_output=True, text=True).stdout)
    assert [d["name"] for d in backprop.devices()] == [d["name"] for d in listed]


def test_the_gpu_trains_the_cpus_model_within_fp32_rounding(lavapipe):
    # Both compute in float32 from the same first weights and the same batches; they differ in
    # the order of their sums only, a few units of float32's 6e-8 per product, which training
    # carries along: after 10 epochs the losses agree to 1e-5 relative and the probabilities to
    # 1e-4 (measured on lavapipe: 4e-8 and 4e-7).
    X, y = iris()
    X = X.astype(np.float32)
    kw = dict(hidden_layer_sizes=(13,), max_iter=10, n_iter_no_change=np.inf, batch_size=32, random_state=0)
    cpu = MLPClassifier(device="cpu", **kw).fit(X, y)
    gpu = MLPClassifier(device="gpu", adapter=lavapipe, **kw).fit(X, y)
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), atol=1e-4)
    for a, b in zip(gpu.coefs_, cpu.coefs_):
        np.testing.assert_allclose(a, b, atol=1e-4)
