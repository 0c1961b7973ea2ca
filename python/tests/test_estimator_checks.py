"""scikit-learn's own judge: every estimator check on both estimators, on the CPU backend.
None is expected to fail. scikit-learn skips three itself, and they are not ours to pass: the
array-API checks of each estimator (they run only with SCIPY_ARRAY_API=1 and an array-API
namespace: backprop takes NumPy arrays), and the decision_function check of the classifier
(neither scikit-learn's MLP nor this one has decision_function)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from backprop import MLPClassifier, MLPRegressor


@parametrize_with_checks(
    [MLPClassifier(device="cpu"), MLPRegressor(device="cpu")],
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
