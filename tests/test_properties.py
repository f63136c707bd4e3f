"""Properties that hold for every input: hypothesis over dtypes, layouts, sparse
formats, weights, class counts and scales, against LogisticRegression."""

import warnings

import numpy as np
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from sksoftmax import SoftmaxRegressionClassifier, log_softmax
from sksoftmax._objective import SoftmaxObjective

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, scales=(-1, 1)):
    n_classes = draw(st.integers(2, 4))
    n_features = draw(st.integers(1, 6))
    per_class = draw(st.integers(3, 15))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.RandomState(seed)
    y = np.repeat(np.arange(n_classes), per_class)
    rng.shuffle(y)
    centers = rng.randn(n_classes, n_features)
    X = centers[y] + rng.randn(len(y), n_features)
    X *= 10.0 ** draw(st.integers(*scales))  # the scale of the features
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    layout = draw(st.sampled_from(["C", "F", "strided", "csr", "csc"]))
    X = X.astype(dtype)
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "strided":
        wide = np.zeros((X.shape[0], 2 * n_features), dtype=dtype)
        wide[:, ::2] = X
        X = wide[:, ::2]
    elif layout in ("csr", "csc"):
        X = X.copy()
        X[rng.rand(*X.shape) < 0.3] = 0.0
        X = sp.csr_matrix(X) if layout == "csr" else sp.csc_matrix(X)
    weights = draw(st.sampled_from(["none", "uniform", "with_zeros"]))
    sample_weight = None
    if weights != "none":
        sample_weight = rng.uniform(0.2, 3.0, len(y))
        if weights == "with_zeros":
            # zero weight on a few rows, never on every row of a class
            zero = rng.rand(len(y)) < 0.2
            for c in range(n_classes):
                zero[np.flatnonzero(y == c)[0]] = False
            sample_weight[zero] = 0.0
    labels = draw(st.sampled_from(["int", "str", "negative"]))
    y = {"int": y, "str": np.array(list("abcd"))[y], "negative": y - 7}[labels]
    alpha = draw(st.sampled_from([1e-2, 1e-1, 1.0]))
    return X, y, sample_weight, alpha


def objective(coef, intercept, X, y, sample_weight, alpha, classes):
    """The common objective in float64, from the public math."""
    logits = np.asarray(X @ coef.astype(np.float64).T) + intercept
    if logits.shape[1] == 1:
        logits = np.column_stack([np.zeros(len(y)), logits])
    codes = np.searchsorted(classes, y)
    weights = np.ones(len(y)) if sample_weight is None else sample_weight
    losses = -log_softmax(logits, axis=1)[np.arange(len(y)), codes]
    return (np.sum(weights * losses) / np.sum(weights)
            + alpha / 2 * np.sum(coef.astype(np.float64) ** 2))


def check_predictions(clf, X):
    proba = clf.predict_proba(X)
    assert proba.dtype == clf.coef_.dtype
    assert np.all(np.isfinite(proba))
    assert np.all(proba >= 0)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5 if proba.dtype == np.float32
                    else 1e-12)
    # the predicted class has the largest probability (where rounding makes
    # two probabilities equal, either is one)
    chosen = np.searchsorted(clf.classes_, clf.predict(X))
    assert_array_equal(proba[np.arange(len(chosen)), chosen], proba.max(axis=1))
    log_proba = clf.predict_log_proba(X)
    assert np.all(np.isfinite(log_proba))
    return proba


def fit_recording_warnings(clf, X, y, sample_weight):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(X, y, sample_weight=sample_weight)
    return [w for w in caught if issubclass(w.category, ConvergenceWarning)]


@SETTINGS
@given(problems())
def test_lbfgs_matches_logistic_regression_on_any_input(problem):
    X, y, sample_weight, alpha = problem
    X_before = X.copy()
    clf = SoftmaxRegressionClassifier(alpha=alpha, tol=1e-6, max_iter=2000)
    warned = fit_recording_warnings(clf, X, y, sample_weight)
    weight_sum = len(y) if sample_weight is None else sample_weight.sum()
    ref = LogisticRegression(C=1 / (alpha * weight_sum), tol=1e-10, max_iter=10000)
    X64 = X.astype(np.float64)
    ref.fit(X64, y, sample_weight=sample_weight)
    proba = check_predictions(clf, X)
    assert_array_equal(clf.classes_, ref.classes_)
    ours = objective(clf.coef_, clf.intercept_, X64, y, sample_weight, alpha,
                     clf.classes_)
    best = objective(ref.coef_, ref.intercept_, X64, y, sample_weight, alpha,
                     ref.classes_)
    # converged by max|grad| <= tol, float32 X too (it finishes in float64)
    assert not warned, warned[0].message
    assert ours <= best * (1 + 1e-6) + 1e-9
    # max|grad| <= tol = 1e-6 with alpha >= 1e-2 leaves the coefficients
    # up to ~sqrt(n_params) * tol / alpha ~ 1e-4 from the optimum
    assert_allclose(proba, ref.predict_proba(X64), atol=1e-4)
    # the caller's data are never modified
    if sp.issparse(X):
        assert_array_equal(X.toarray(), X_before.toarray())
    else:
        assert_array_equal(X, X_before)


@SETTINGS
@given(problems(scales=(-3, 3)), st.sampled_from(["lbfgs", "sgd", "adam"]))
def test_any_scale_gives_valid_probabilities_or_an_honest_warning(problem, solver):
    X, y, sample_weight, alpha = problem
    clf = SoftmaxRegressionClassifier(solver=solver, alpha=alpha, max_iter=30,
                                      random_state=0)
    warned = fit_recording_warnings(clf, X, y, sample_weight)
    check_predictions(clf, X)
    if solver == "lbfgs" and not warned:
        # no silent stop: the gradient at the returned model is within tol
        # (recomputed in float64, so float32's own rounding is allowed for), in
        # the coordinates the fit solves in: centred for dense X
        # (SoftmaxObjective's center), where tol applies
        codes = np.searchsorted(clf.classes_, y)
        obj = SoftmaxObjective(
            sp.csr_matrix(X, dtype=np.float64) if sp.issparse(X) else
            np.ascontiguousarray(X, dtype=np.float64), codes.astype(np.intp),
            np.ones(len(y)) if sample_weight is None else sample_weight,
            len(clf.classes_), alpha=alpha, center=True)
        _, grad = obj.loss_gradient(obj.init_params(clf.coef_, clf.intercept_))
        slack = 1.0 if X.dtype == np.float64 else 10.0
        assert np.max(np.abs(grad)) <= slack * 1e-4 + 1e-9  # tol="auto" of lbfgs
