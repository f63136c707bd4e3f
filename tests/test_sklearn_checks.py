"""scikit-learn's own estimator checks, for every solver."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sksoftmax import SoftmaxRegressionClassifier

# With the normalised objective, weighting a sample by k is the same problem as
# repeating it k times, so even sample-weight equivalence holds for every solver
# (the checks' data fit in one minibatch): no check is marked as expected to fail.
ESTIMATORS = [
    SoftmaxRegressionClassifier(),
    SoftmaxRegressionClassifier(solver="sgd", random_state=0),
    SoftmaxRegressionClassifier(solver="adam", random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
