"""scikit-learn's own estimator checks, for every solver and the options that
change the objective or the parameter layout."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sksoftmax import SoftmaxRegressionClassifier

# With the normalised objective, weighting a sample by k is the same problem as
# repeating it k times, so even sample-weight equivalence holds for every
# configuration ("balanced" class weights count samples by their weights, as
# LogisticRegression's do). For sgd and adam it holds when the checks' data
# fit in one minibatch (batch_size=200): then eta0="auto", the average and
# the stopping rule see the same weighted problem. With several minibatches a
# repeated row can land in two of them, and the checks compare to 1e-7. The
# one expected failure is one that LogisticRegression and SGDClassifier share.
ESTIMATORS = [
    SoftmaxRegressionClassifier(),
    SoftmaxRegressionClassifier(solver="sgd", batch_size=200, random_state=0),
    SoftmaxRegressionClassifier(solver="adam", batch_size=200, random_state=0),
    SoftmaxRegressionClassifier(class_weight="balanced"),
    SoftmaxRegressionClassifier(label_smoothing=0.1),
    SoftmaxRegressionClassifier(solver="sgd", l1_ratio=0.5, batch_size=200,
                                random_state=0),
    SoftmaxRegressionClassifier(l1_ratio=0.5),
    SoftmaxRegressionClassifier(fit_intercept=False),
]



def expected_failed_checks(estimator):
    if not estimator.fit_intercept:
        return {"check_class_weight_classifiers": (
            "blobs centred away from the origin cannot be separated without an "
            "intercept; LogisticRegression(fit_intercept=False) and "
            "SGDClassifier(fit_intercept=False) fail this check too")}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
