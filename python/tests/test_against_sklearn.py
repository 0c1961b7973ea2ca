"""Accuracy and R² beside scikit-learn's own MLP on its bundled data sets: the same split, the
same settings, several seeds each. backprop must not be worse than scikit-learn by more than
the seeds' noise: three standard errors of the difference of the two means (the seeds differ
in the first weights and the shuffles, which neither library can match the other's), with a
floor of one point for sets both fit almost perfectly (a standard error near 0)."""

import warnings

import numpy as np
import pytest
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.neural_network import MLPRegressor as SkRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import backprop

SEEDS = range(5)

CASES = [
    ("iris", datasets.load_iris, "classifier", dict(hidden_layer_sizes=(16,), max_iter=300)),
    ("wine", datasets.load_wine, "classifier", dict(hidden_layer_sizes=(16,), max_iter=300)),
    (
        "breast_cancer",
        datasets.load_breast_cancer,
        "classifier",
        dict(hidden_layer_sizes=(32,), max_iter=200),
    ),
    ("digits", datasets.load_digits, "classifier", dict(hidden_layer_sizes=(32,), max_iter=100)),
    (
        "digits, sgd with Nesterov's momentum, tanh",
        datasets.load_digits,
        "classifier",
        dict(
            hidden_layer_sizes=(32,),
            solver="sgd",
            activation="tanh",
            learning_rate_init=0.05,
            max_iter=60,
        ),
    ),
    (
        "diabetes",
        datasets.load_diabetes,
        "regressor",
        dict(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=400),
    ),
]


def scores(make, load, kind, settings):
    X, y = load(return_X_y=True)
    split = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y if kind == "classifier" else None
    )
    X_train, X_test, y_train, y_test = split
    out = []
    for seed in SEEDS:
        model = make_pipeline(StandardScaler(), make(random_state=seed, **settings))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_train, y_train)
        out.append(model.score(X_test, y_test))
    return np.array(out)


@pytest.mark.parametrize("name, load, kind, settings", CASES, ids=[c[0] for c in CASES])
def test_scores_are_scikit_learns_within_the_seeds_noise(name, load, kind, settings):
    ours, theirs = (
        (backprop.MLPClassifier, SkClassifier)
        if kind == "classifier"
        else (backprop.MLPRegressor, SkRegressor)
    )
    mine = scores(lambda **kw: ours(device="cpu", **kw), load, kind, settings)
    reference = scores(theirs, load, kind, settings)
    standard_error = np.sqrt(
        mine.var(ddof=1) / len(mine) + reference.var(ddof=1) / len(reference)
    )
    allowed = max(3 * standard_error, 0.01)
    print(f"{name}: backprop {mine.mean():.4f} ± {mine.std(ddof=1):.4f}, scikit-learn "
          f"{reference.mean():.4f} ± {reference.std(ddof=1):.4f}, allowed {allowed:.4f}")
    assert mine.mean() >= reference.mean() - allowed, (mine, reference)
