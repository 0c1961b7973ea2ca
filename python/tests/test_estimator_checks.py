"""scikit-learn's own judge: every estimator check on both estimators, on the CPU backend.
None is expected to fail."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from backprop import MLPClassifier, MLPRegressor


@parametrize_with_checks(
    [MLPClassifier(device="cpu"), MLPRegressor(device="cpu")],
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
