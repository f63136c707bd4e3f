"""SoftmaxRegressionClassifier against LogisticRegression, scipy and the sklearn API."""

import io
import pickle
import re
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import minimize
from scipy.special import expit, log_expit, log_softmax, softmax
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_blobs,
    make_classification,
)
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

import sksoftmax._estimator as estimator_module
import sksoftmax._objective as objective_module
import sksoftmax._solvers as solvers_module
from sksoftmax import SoftmaxRegressionClassifier, one_hot, softmax_cross_entropy

LOADERS = {"iris": load_iris, "wine": load_wine, "digits": load_digits,
           "breast_cancer": load_breast_cancer}


# These tests ask for tol far below what float64 resolves, to reach the optimum
# as closely as it can be computed: the fit then stops when the objective no
# longer changes, and warns that the gradient rule was not met.
BELOW_FLOAT64 = pytest.mark.filterwarnings(
    "ignore:L-BFGS did not converge:sklearn.exceptions.ConvergenceWarning")


def scaled(name):
    X, y = LOADERS[name](return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0,
                                                        stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@BELOW_FLOAT64
# ------------------------------------------------ agreement with sklearn
@pytest.mark.parametrize("name", ["iris", "wine", "digits", "breast_cancer"])
@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("compact", [False, True], ids=["scipy", "compact"])
def test_lbfgs_matches_logistic_regression(name, binary, weighted, compact,
                                           monkeypatch):
    # both L-BFGS implementations (the compact one is the default for
    # large models only)
    monkeypatch.setattr(solvers_module, "COMPACT_MIN_PARAMS", 0 if compact else 2**62)
    X, y = scaled(name)
    if binary:
        y = (y == 0).astype(int)
    sample_weight = None
    weight_sum = len(y)
    if weighted:
        sample_weight = np.random.RandomState(0).uniform(0.2, 3.0, len(y))
        weight_sum = sample_weight.sum()
    alpha = 1e-3
    ours = SoftmaxRegressionClassifier(alpha=alpha, tol=1e-9, max_iter=10000)
    ours.fit(X, y, sample_weight=sample_weight)
    ref = LogisticRegression(C=1 / (alpha * weight_sum), tol=1e-10, max_iter=10000)
    ref.fit(X, y, sample_weight=sample_weight)
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-4)
    assert ours.coef_.shape == ref.coef_.shape
    assert_allclose(ours.coef_, ref.coef_, atol=2e-3 * np.abs(ref.coef_).max())
    assert_array_equal(ours.predict(X), ref.predict(X))


def test_two_classes_are_binary_logistic_regression():
    X, y = scaled("breast_cancer")
    labels = np.array(["benign", "malignant"])[y]
    clf = SoftmaxRegressionClassifier(alpha=1e-2, tol=1e-8).fit(X, labels)
    assert clf.coef_.shape == (1, X.shape[1])
    assert clf.intercept_.shape == (1,)
    scores = clf.decision_function(X)
    assert scores.shape == (len(y),)
    assert_allclose(clf.predict_proba(X)[:, 1], expit(scores), rtol=1e-12)
    assert_array_equal(clf.predict(X), clf.classes_[(scores > 0).astype(int)])


def test_multiclass_shapes_and_logits():
    X, y = scaled("iris")
    clf = SoftmaxRegressionClassifier().fit(X, y)
    assert clf.coef_.shape == (3, 4)
    assert clf.intercept_.shape == (3,)
    scores = clf.decision_function(X)
    assert_allclose(scores, X @ clf.coef_.T + clf.intercept_, rtol=1e-12)
    assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0, rtol=1e-14)
    assert_allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X), rtol=1e-12)


def objective_reference(X, y, alpha, label_smoothing=0.0, sample_weight=None):
    """Minimise the documented objective with the public math and scipy."""
    n, d = X.shape
    K = len(np.unique(y))
    s = np.ones(n) if sample_weight is None else sample_weight
    T = (1 - label_smoothing) * one_hot(y, K) + label_smoothing / K

    def f(w):
        W, b = w[:K * d].reshape(K, d), w[K * d:]
        loss, dZ = softmax_cross_entropy(T, X @ W.T + b, reduction="none")
        dZ = dZ * (s / s.sum())[:, None]
        value = np.dot(s, loss) / s.sum() + 0.5 * alpha * np.sum(W**2)
        return value, np.concatenate([(dZ.T @ X + alpha * W).ravel(), dZ.sum(0)])

    res = minimize(f, np.zeros(K * (d + 1)), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 10000})
    W, b = res.x[:K * d].reshape(K, d), res.x[K * d:]
    return softmax_cross_entropy(T, X @ W.T + b)[0], X @ W.T + b


@BELOW_FLOAT64
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_label_smoothing_matches_scipy_on_soft_targets(label_smoothing):
    X, y = scaled("iris")
    clf = SoftmaxRegressionClassifier(alpha=1e-2, tol=1e-10,
                                      label_smoothing=label_smoothing).fit(X, y)
    _, logits = objective_reference(X, y, 1e-2, label_smoothing)
    ref_proba = np.exp(logits - logits.max(1, keepdims=True))
    ref_proba /= ref_proba.sum(1, keepdims=True)
    assert_allclose(clf.predict_proba(X), ref_proba, atol=1e-5)


@BELOW_FLOAT64
def test_class_weight_is_sample_weight_times_class_weight():
    X, y = scaled("wine")
    cw = {0: 0.5, 1: 2.0, 2: 1.0}
    a = SoftmaxRegressionClassifier(class_weight=cw, tol=1e-10).fit(X, y)
    b = SoftmaxRegressionClassifier(tol=1e-10).fit(
        X, y, sample_weight=np.array([cw[c] for c in y]))
    assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-7)


def test_balanced_class_weight_on_unbalanced_classes():
    X, y = make_classification(n_samples=600, n_features=5, weights=[0.95, 0.05],
                               flip_y=0, class_sep=0.5, random_state=0)
    plain = SoftmaxRegressionClassifier().fit(X, y)
    balanced = SoftmaxRegressionClassifier(class_weight="balanced").fit(X, y)
    recall = [np.mean(m.predict(X)[y == 1] == 1) for m in (plain, balanced)]
    assert recall[1] > recall[0]
    # "balanced" is sklearn's weighting n / (n_classes * count) of each row
    weighted = SoftmaxRegressionClassifier(tol=1e-8).fit(
        X, y, sample_weight=compute_sample_weight("balanced", y))
    balanced.set_params(tol=1e-8).fit(X, y)
    assert_allclose(balanced.coef_, weighted.coef_, rtol=1e-6, atol=1e-8)
    assert_allclose(balanced.predict_proba(X), weighted.predict_proba(X), atol=1e-8)


@pytest.mark.parametrize("name", ["wine", "breast_cancer"])
def test_lbfgs_on_unscaled_features_reaches_the_optimum(name):
    # raw features (spread over decades): scipy's L-BFGS-B runs preconditioned;
    # the fit still stops by the gradient rule, at the optimum's objective
    X, y = LOADERS[name](return_X_y=True)
    alpha = 1.0 / len(y)
    clf = SoftmaxRegressionClassifier(alpha=alpha, tol=1e-6, max_iter=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = LogisticRegression(C=1.0, tol=1e-9, max_iter=20_000).fit(X, y)
    # tol holds in the coordinates the fit solves in (centred, as dense fits)
    codes = np.searchsorted(clf.classes_, y).astype(np.intp)
    obj = objective_module.SoftmaxObjective(X, codes, np.ones(len(y)),
                                            len(clf.classes_), alpha=alpha,
                                            center=True)
    ours, _, optimality = obj.evaluate(obj.init_params(clf.coef_, clf.intercept_))
    assert optimality <= 1e-6 * 1.01  # recomputed: the order of the sums
    best = obj.evaluate(obj.init_params(ref.coef_, ref.intercept_))[0]
    assert ours <= best * (1 + 1e-6)


# ----------------------------------------------------- stochastic solvers
@pytest.fixture(scope="module", params=["iris", "wine", "breast_cancer", "digits"])
def sklearn_split(request):
    X, y = LOADERS[request.param](return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def objective_of(clf, X, y, alpha):
    """The training objective of a fitted model, and its optimality."""
    codes = np.searchsorted(clf.classes_, y).astype(np.intp)
    obj = objective_module.SoftmaxObjective(X, codes, np.ones(len(y)),
                                            len(clf.classes_), alpha=alpha)
    params = obj.init_params(clf.coef_.astype(float), clf.intercept_.astype(float))
    value, _, optimality = obj.evaluate(params)
    return value, optimality


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_stochastic_defaults_reach_the_optimum(solver, sklearn_split):
    # the objective the solvers claim, to their tol (the gradient's largest
    # entry, as lbfgs's), at alpha = 1/n; accuracy follows
    X_train, X_test, y_train, y_test = sklearn_split
    alpha = 1.0 / len(y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # below float64
        exact = SoftmaxRegressionClassifier(alpha=alpha, tol=1e-10).fit(X_train,
                                                                        y_train)
    clf = SoftmaxRegressionClassifier(solver=solver, alpha=alpha, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # defaults converge
        clf.fit(X_train, y_train)
    value, optimality = objective_of(clf, X_train, y_train, alpha)
    optimum, _ = objective_of(exact, X_train, y_train, alpha)
    assert optimality <= 1e-4
    assert optimum <= value < optimum * 1.01  # the bar: within 1 %
    assert value == pytest.approx(clf.loss_curve_[-1], rel=1e-12)
    assert clf.score(X_test, y_test) >= exact.score(X_test, y_test) - 0.01
    assert clf.n_iter_ < 300
    assert len(clf.loss_curve_) == clf.n_iter_
    assert 0 < clf.t_ <= clf.n_iter_ * len(y_train)
    assert clf.t_ % len(y_train) == 0
    # never a rise: a worse epoch is rejected
    assert all(b <= a for a, b in zip(clf.loss_curve_, clf.loss_curve_[1:],
                                      strict=False))


@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_offset_features_give_the_same_model(solver):
    # with an intercept, x + o is the same problem (the intercept absorbs
    # coef @ o, the penalty is on coef alone): every solver, working in
    # centred coordinates, returns the same coefficients and the shifted
    # intercept, however far the features sit from the origin
    X, y = scaled("wine")
    offset = np.linspace(20.0, 80.0, X.shape[1])
    params = dict(solver=solver, alpha=1e-2, tol=1e-7, random_state=0)
    near = SoftmaxRegressionClassifier(**params).fit(X, y)
    far = SoftmaxRegressionClassifier(**params).fit(X + offset, y)
    assert_allclose(far.coef_, near.coef_, rtol=1e-4, atol=1e-5)
    assert_allclose(far.intercept_, near.intercept_ - near.coef_ @ offset,
                    rtol=1e-4, atol=1e-3)
    assert_allclose(far.predict_proba(X + offset), near.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("first", ["fit", "partial_fit", "early_stopping"])
def test_partial_fit_after_a_numeric_eta0_takes_auto(solver, first):
    # a number first, then eta0="auto": partial_fit derives the constants
    # from its chunk (it raised AttributeError where none had been computed)
    X, y = scaled("iris")
    clf = SoftmaxRegressionClassifier(solver=solver, eta0=0.01, random_state=0,
                                      max_iter=3,
                                      early_stopping=first == "early_stopping")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if first == "partial_fit":
            clf.partial_fit(X, y, classes=np.unique(y))
        else:
            clf.fit(X, y)
    before = clf.score(X, y)
    clf.set_params(eta0="auto")
    for _ in range(5):
        clf.partial_fit(X, y)
    assert clf._minibatch_state.smoothness is not None
    assert clf.score(X, y) >= before - 0.02
    assert clf.n_iter_ == len(clf.loss_curve_)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_streaming_small_chunks_learns_as_fit_does(solver, digits_split):
    # 10 chunks of ~135 rows, 5 passes: each chunk takes 10 minibatch steps
    X_train, X_test, y_train, y_test = digits_split
    alpha = 1.0 / len(y_train)
    exact = SoftmaxRegressionClassifier(alpha=alpha).fit(X_train, y_train)
    clf = SoftmaxRegressionClassifier(solver=solver, alpha=alpha, random_state=0)
    classes = np.unique(y_train)
    chunks = np.array_split(np.arange(len(y_train)), 10)
    for _ in range(5):
        for rows in chunks:
            clf.partial_fit(X_train[rows], y_train[rows], classes=classes)
    assert clf.n_iter_ == 50
    assert clf.t_ == 5 * len(y_train)
    assert clf._minibatch_state.step == 50 * 10
    assert clf.score(X_test, y_test) >= exact.score(X_test, y_test) - 0.02


@pytest.mark.parametrize("batch_size, n_rows, per_call", [
    ("auto", 1000, 10),  # min(200, ceil(n / 10)) rows: 10 steps
    ("auto", 5000, 25),  # 200 rows
    (64, 1000, 16),  # a given size is kept when a chunk is larger than 10 of it
    (200, 1000, 10),  # a chunk smaller than 10 batches: 10 steps
    (200, 7, 7),  # fewer than 10 rows: one row per step
])
def test_minibatches_per_partial_fit_call(batch_size, n_rows, per_call):
    X, y = make_classification(n_samples=n_rows, n_features=4, random_state=0)
    clf = SoftmaxRegressionClassifier(solver="sgd", batch_size=batch_size)
    clf.partial_fit(X, y, classes=[0, 1])
    assert clf._minibatch_state.step == per_call


@pytest.mark.parametrize("batch_size, n_rows, per_epoch", [
    ("auto", 112, 10), ("auto", 3000, 15), (32, 112, 4), (500, 112, 1)])
def test_minibatches_per_fit_epoch(batch_size, n_rows, per_epoch):
    X, y = make_classification(n_samples=n_rows, n_features=4, random_state=0)
    # max_iter=1: the first epoch alone, of the rule (SVRG epochs are not
    # counted as the rule's updates)
    clf = SoftmaxRegressionClassifier(solver="sgd", batch_size=batch_size,
                                      max_iter=1, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf._minibatch_state.step == per_epoch


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_coef_is_the_average_of_the_iterates(solver):
    # three epochs of the rule: partial_fit (fit's later epochs are SVRG's)
    X, y = scaled("wine")
    params = dict(solver=solver, random_state=0)

    def three_epochs(**params):
        clf = SoftmaxRegressionClassifier(**params)
        for _ in range(3):
            clf.partial_fit(X, y, classes=np.unique(y))
        return clf

    averaged = three_epochs(**params)
    last = three_epochs(average=False, **params)
    state = averaged._minibatch_state
    # the same iterates either way; only what coef_ reports differs
    assert_array_equal(state.params, last._minibatch_state.params)
    n_coef = averaged.coef_.size
    assert_array_equal(averaged.coef_.ravel(), state.average[:n_coef])
    assert_array_equal(last.coef_.ravel(), state.params[:n_coef])
    assert state.counts[2] == state.step == 3 * 10  # 178 rows: batches of 18
    assert not np.allclose(averaged.coef_, last.coef_)


def test_auto_learning_rate_follows_the_data_scale():
    # eta0="auto" is 1/L: scaling X by 10 scales L by ~100 and the rate down
    X, y = scaled("iris")
    rates = []
    for factor in (1.0, 10.0):
        clf = SoftmaxRegressionClassifier(solver="sgd", momentum=0.0, max_iter=1,
                                          tol=0.0, learning_rate="constant")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X * factor, y)
        settings = solvers_module.MinibatchSettings.from_params(clf.get_params())
        rates.append(settings.rate(clf._minibatch_state.smoothness, 15, len(y))[0])
    assert rates[1] == pytest.approx(rates[0] / 100, rel=0.05)


def test_early_stopping_attributes_and_determinism():
    X, y = scaled("digits")
    params = dict(solver="sgd", early_stopping=True, random_state=3)
    a = SoftmaxRegressionClassifier(**params).fit(X, y)
    b = SoftmaxRegressionClassifier(**params).fit(X, y)
    assert len(a.validation_scores_) == a.n_iter_
    assert a.best_validation_score_ == max(a.validation_scores_) > 0.9
    assert a.t_ == a.n_iter_ * (len(y) - int(np.ceil(0.1 * len(y))))
    assert_array_equal(a.coef_, b.coef_)
    assert a.loss_curve_ == b.loss_curve_


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("name", ["iris", "breast_cancer"])  # breast_cancer: binary
def test_early_stopping_scores_the_weighted_stratified_validation_split(name, solver):
    # the held-out rows are train_test_split's stratified split, seeded from
    # random_state; the score is their weighted accuracy, of the model returned
    X, y = scaled(name)
    weights = np.random.default_rng(0).uniform(0.1, 2.0, len(y))
    params = dict(solver=solver, early_stopping=True, validation_fraction=0.3,
                  random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SoftmaxRegressionClassifier(**params).fit(X, y, sample_weight=weights)
    seed = np.random.RandomState(3).randint(np.iinfo(np.int32).max)
    train, val = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y,
                                  random_state=seed)
    assert clf.validation_scores_[-1] == clf.score(X[val], y[val],
                                                   sample_weight=weights[val])
    assert clf.t_ == clf.n_iter_ * (len(y) - len(val))
    # the loss curve is the training objective of each epoch's model, on the
    # training rows alone
    codes = np.searchsorted(clf.classes_, y).astype(np.intp)
    train = np.sort(train)
    on_train = objective_module.SoftmaxObjective(
        X[train], codes[train], weights[train], len(clf.classes_), alpha=clf.alpha)
    params_ = on_train.init_params(clf.coef_, clf.intercept_)
    assert clf.loss_curve_[-1] == pytest.approx(on_train.loss_gradient(params_)[0],
                                                rel=1e-10)
    # the epochs visit the rows in a random order (random_state's)
    unshuffled = SoftmaxRegressionClassifier(**params, shuffle=False)
    unshuffled.fit(X, y, sample_weight=weights)
    assert not np.array_equal(unshuffled.coef_, clf.coef_)
    with pytest.warns(ConvergenceWarning, match=r"Maximum number of epochs \(2\)"):
        SoftmaxRegressionClassifier(**params, max_iter=2, n_iter_no_change=5).fit(
            X, y, sample_weight=weights)

@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_fixed_random_state_is_deterministic(solver):
    X, y = scaled("wine")
    a = SoftmaxRegressionClassifier(solver=solver, random_state=7).fit(X, y)
    b = SoftmaxRegressionClassifier(solver=solver, random_state=7).fit(X, y)
    assert_array_equal(a.coef_, b.coef_)
    assert_array_equal(a.intercept_, b.intercept_)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_l1_penalty_gives_exact_zeros(solver):
    X, y = scaled("wine")
    dense = SoftmaxRegressionClassifier(solver=solver, alpha=0.02, random_state=0)
    sparse_model = SoftmaxRegressionClassifier(solver=solver, alpha=0.02, l1_ratio=1.0,
                                               random_state=0)
    dense.fit(X, y)
    sparse_model.fit(X, y)
    assert np.count_nonzero(dense.coef_ == 0) == 0
    assert np.count_nonzero(sparse_model.coef_ == 0) >= 5
    assert sparse_model.score(X, y) > 0.9


def test_learning_rate_schedules_all_fit(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    for schedule in ["constant", "optimal", "invscaling", "adaptive"]:
        clf = SoftmaxRegressionClassifier(solver="sgd", learning_rate=schedule,
                                          eta0=0.05, max_iter=200, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X_train, y_train)
        assert clf.score(X_test, y_test) > 0.9, schedule


def test_loss_decreases_over_iterations():
    X, y = scaled("iris")
    clf = SoftmaxRegressionClassifier(tol=1e-8).fit(X, y)
    assert np.all(np.diff(clf.loss_curve_) <= 1e-12)  # L-BFGS is monotone
    sgd = SoftmaxRegressionClassifier(solver="sgd", random_state=0).fit(X, y)
    head = np.array(sgd.loss_curve_[:20])
    assert np.all(np.diff(head) < 0)


def test_warm_start_continues_from_the_previous_solution():
    X, y = scaled("digits")
    clf = SoftmaxRegressionClassifier(warm_start=True, tol=1e-6).fit(X, y)
    first = clf.n_iter_
    clf.fit(X, y)
    assert clf.n_iter_ <= 2 < first
    cold = SoftmaxRegressionClassifier(tol=1e-6).fit(X, y)
    assert cold.n_iter_ == first


def test_convergence_warning_at_max_iter():
    X, y = scaled("digits")
    with pytest.warns(ConvergenceWarning, match="L-BFGS did not converge"):
        SoftmaxRegressionClassifier(max_iter=2).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="solver='adam' did not converge: "
                      "max_iter=2 epochs were reached"):
        SoftmaxRegressionClassifier(solver="adam", max_iter=2).fit(X, y)


def test_a_stochastic_fit_that_stalls_says_why_not_max_iter(monkeypatch):
    # float32 resolves the gradient to ~1e-5: with no room for a float64 copy
    # the full-batch finish stops on the objective's rounding, long before
    # max_iter, and says that float64 X would go further
    monkeypatch.setattr(objective_module, "FLOAT64_COPY_MAX_BYTES", 0)
    X, y = scaled("digits")
    clf = SoftmaxRegressionClassifier(solver="sgd", tol=1e-7, alpha=1e-2,
                                      random_state=0)
    with pytest.warns(ConvergenceWarning,
                      match=r"solver='sgd' did not converge: the objective stopped "
                            r"decreasing .* the largest absolute gradient entry .*"
                            r"\(float32 X: its precision can stop L-BFGS short of "
                            r"a tight tol; float64 X would reach it\)"):
        clf.fit(X.astype(np.float32), y)
    assert clf.n_iter_ < clf.max_iter


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
@pytest.mark.parametrize("sparse", [False, True])
def test_float32_fits_finish_in_float64_at_a_tight_tol(monkeypatch, solver, sparse):
    # near the optimum float32 parameters cannot resolve L-BFGS's steps; the
    # last iterations run on a float64 copy, so float32 X reaches float64's
    # optimum (the float32 run alone stops short: the last part)
    X, y = scaled("iris")
    X32 = sp.csr_matrix(X.astype(np.float32)) if sparse else X.astype(np.float32)
    params = dict(solver=solver, alpha=1e-2, tol=1e-7, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SoftmaxRegressionClassifier(**params).fit(X32, y)
    ref = SoftmaxRegressionClassifier(**params).fit(X32.astype(np.float64), y)
    assert clf.coef_.dtype == np.float32
    X64 = X32.astype(np.float64).toarray() if sparse else X32.astype(np.float64)
    ours, optimality = objective_of(clf, X64, y, alpha=1e-2)
    best, _ = objective_of(ref, X64, y, alpha=1e-2)
    assert ours <= best * (1 + 1e-9)
    # within tol, up to the float32 rounding of coef_ (~6e-8 relative)
    assert optimality <= 1e-6
    monkeypatch.setattr(objective_module.SoftmaxObjective, "in_float64",
                        lambda self: None)
    with pytest.warns(ConvergenceWarning, match="float32 X: its precision"):
        SoftmaxRegressionClassifier(**params).fit(X32, y)


def test_verbose_says_when_a_float32_fit_goes_on_in_float64(capsys):
    X, y = scaled("iris")
    clf = SoftmaxRegressionClassifier(alpha=1e-2, tol=1e-7, verbose=1)
    clf.fit(X.astype(np.float32), y)
    out = capsys.readouterr().out.splitlines()
    switch = [i for i, line in enumerate(out) if line.startswith("float32 stopped")]
    assert len(switch) == 1
    n_float32 = int(out[switch[0]].split(" after ")[1].split()[0])
    # the iteration lines before and after it add up to n_iter_
    iterations = [line for line in out if line.startswith("Iteration ")]
    assert out[switch[0] - 1] == iterations[n_float32 - 1]
    assert len(iterations) == clf.n_iter_


def test_verbose_prints_one_line_per_iteration(capsys):
    X, y = scaled("iris")
    clf = SoftmaxRegressionClassifier(verbose=1).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == clf.n_iter_
    assert lines[0].startswith("Iteration 1, loss = ")
    clf = SoftmaxRegressionClassifier(solver="sgd", early_stopping=True, verbose=1,
                                      random_state=0).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == clf.n_iter_
    assert re.match(r"Epoch 1, loss = [\d.]+, validation score = [\d.]+, time = ",
                    lines[0])


# --------------------------------------------------------- input handling
@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csc_matrix, sp.csr_array])
@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_sparse_input_matches_dense(container, solver):
    X, y = scaled("wine")
    X[np.abs(X) < 0.5] = 0.0
    dense = SoftmaxRegressionClassifier(solver=solver, tol=1e-9, random_state=0)
    sparse_model = clone(dense)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense.fit(X, y)
        sparse_model.fit(container(X), y)
    # two routes to the optimum (dense X is solved in centred coordinates,
    # CSR X is not; sgd also takes SVRG epochs on dense X and the full-batch
    # finish on CSR), each stopped where float64 no longer resolves the objective
    rtol = 1e-4
    assert_allclose(sparse_model.coef_, dense.coef_, rtol=rtol, atol=1e-5)
    assert_allclose(sparse_model.predict_proba(container(X)), dense.predict_proba(X),
                    rtol=rtol, atol=1e-10)


def test_sparse_copy_false_fits_the_same_model_without_the_csc_copy(monkeypatch):
    X, y = scaled("wine")
    X[np.abs(X) < 0.5] = 0.0
    X = sp.csr_matrix(X)
    with_copy = SoftmaxRegressionClassifier(tol=1e-8).fit(X, y)
    built = []
    original = objective_module.TransposedCSR.__init__

    def record(self, *args, **kwargs):
        built.append(True)
        original(self, *args, **kwargs)

    monkeypatch.setattr(objective_module.TransposedCSR, "__init__", record)
    without = SoftmaxRegressionClassifier(tol=1e-8, sparse_copy=False).fit(X, y)
    assert built == []
    assert without.n_iter_ == with_copy.n_iter_
    assert_allclose(without.coef_, with_copy.coef_, rtol=1e-7, atol=1e-9)
    SoftmaxRegressionClassifier(tol=1e-8).fit(X, y)
    assert built == [True]


@pytest.mark.parametrize("sparse", [False, True])
def test_float32_stays_float32(sparse):
    X, y = scaled("iris")
    X32 = X.astype(np.float32)
    X32 = sp.csr_matrix(X32) if sparse else X32
    clf = SoftmaxRegressionClassifier(tol=1e-6).fit(X32, y)
    assert clf.coef_.dtype == np.float32
    assert clf.intercept_.dtype == np.float32
    assert clf.predict_proba(X32).dtype == np.float32
    ref = SoftmaxRegressionClassifier(tol=1e-6).fit(X, y)
    assert_allclose(clf.predict_proba(X32), ref.predict_proba(X), atol=1e-4)


def test_caller_array_is_neither_copied_nor_modified(monkeypatch):
    X, y = scaled("iris")
    X_before = X.copy()
    seen = {}
    real = estimator_module.SoftmaxObjective

    def spy(X_used, *args, **kwargs):
        seen["X"] = X_used
        return real(X_used, *args, **kwargs)

    monkeypatch.setattr(estimator_module, "SoftmaxObjective", spy)
    X_f = np.asfortranarray(X)
    for solver in ["lbfgs", "sgd"]:
        for data in (X, X_f):  # Fortran order is read block by block, not copied
            SoftmaxRegressionClassifier(solver=solver).fit(data, y)
            assert seen["X"] is data or np.shares_memory(seen["X"], data)
    assert_array_equal(X, X_before)
    assert_array_equal(X_f, X_before)


def test_read_only_and_memory_mapped_input(tmp_path):
    X, y = scaled("iris")
    path = tmp_path / "X.npy"
    np.save(path, X)
    X_mm = np.load(path, mmap_mode="r")
    clf = SoftmaxRegressionClassifier().fit(X_mm, y)
    ref = SoftmaxRegressionClassifier().fit(X, y)
    assert_allclose(clf.coef_, ref.coef_, rtol=1e-12)
    assert_allclose(clf.predict_proba(X_mm), ref.predict_proba(X))


def test_fortran_ordered_input_gives_the_same_model():
    X, y = scaled("wine")
    a = SoftmaxRegressionClassifier().fit(np.asfortranarray(X), y)
    b = SoftmaxRegressionClassifier().fit(X, y)
    assert_allclose(a.coef_, b.coef_, rtol=1e-12)


def test_pandas_input_and_label_types():
    pd = pytest.importorskip("pandas")
    X, y = scaled("iris")
    df = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    for labels in (np.array(["setosa", "versicolor", "virginica"])[y], y - 5,
                   pd.Series(y * 10)):
        clf = SoftmaxRegressionClassifier().fit(df, labels)
        assert_array_equal(clf.feature_names_in_, ["sl", "sw", "pl", "pw"])
        assert set(clf.predict(df)) <= set(np.unique(labels))
        assert clf.score(df, labels) > 0.95
    clf = SoftmaxRegressionClassifier().fit(X, y == 1)
    assert clf.classes_.dtype == bool
    assert clf.predict(X).dtype == bool


# ------------------------------------------------------------- edge cases
def test_one_sample_partial_fit_with_classes():
    clf = SoftmaxRegressionClassifier(solver="sgd")
    clf.partial_fit([[1.0, 2.0]], ["b"], classes=["a", "b", "c"])
    assert clf.coef_.shape == (3, 2)
    assert clf.n_iter_ == 1
    assert clf.t_ == 1
    assert clf.predict([[1.0, 2.0]])[0] == "b"
    assert_allclose(clf.predict_proba([[0.0, 0.0]]).sum(), 1.0)


def test_one_feature():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 1)
    y = np.digitize(X[:, 0], [-0.5, 0.5])
    for solver in ["lbfgs", "sgd", "adam"]:
        clf = SoftmaxRegressionClassifier(solver=solver, random_state=0)
        with warnings.catch_warnings():
            # separable classes: the optimum has large weights, which fixed-step
            # solvers approach slowly; only accuracy matters here
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        assert clf.coef_.shape == (3, 1)
        assert clf.score(X, y) > 0.85


@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_linearly_separable_three_classes(solver):
    X, y = make_blobs(n_samples=300, centers=[[-5, 0], [5, 0], [0, 8]],
                      cluster_std=1.0, random_state=0)
    clf = SoftmaxRegressionClassifier(solver=solver, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.95
    proba = clf.predict_proba(X)
    # probabilities are the softmax of the decision function, logs included
    assert_allclose(proba, softmax(clf.decision_function(X), axis=1), rtol=1e-12)
    assert_allclose(clf.predict_log_proba(X),
                    log_softmax(clf.decision_function(X), axis=1), rtol=1e-12,
                    atol=1e-300)
    assert_array_equal(clf.classes_[np.argmax(proba, axis=1)], clf.predict(X))


def test_predict_log_proba_never_takes_log_of_zero():
    X = np.array([[-1.0], [1.0]] * 5)
    y = np.array([0, 1] * 5)
    clf = SoftmaxRegressionClassifier(alpha=0.0, max_iter=5000, tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    far = np.array([[1e6], [-1e6]])
    log_proba = clf.predict_log_proba(far)
    # exactly log(sigmoid(-+d)) of the binary decision, not log(0) = -inf
    d = clf.decision_function(far)
    assert_allclose(log_proba, np.column_stack([log_expit(-d), log_expit(d)]),
                    rtol=1e-12)
    assert log_proba.min() < -1000


@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_huge_finite_input_never_leaves_nan(solver):
    rng = np.random.RandomState(0)
    X = rng.randn(100, 3) * 1e30
    y = rng.randint(0, 3, 100)
    clf = SoftmaxRegressionClassifier(solver=solver, random_state=0, max_iter=20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
    except ValueError as exc:
        assert "Floating-point under-/overflow" in str(exc)
        assert "StandardScaler" in str(exc)
        assert not hasattr(clf, "coef_")
    else:
        assert np.all(np.isfinite(clf.coef_))
        assert np.all(np.isfinite(clf.intercept_))
        assert np.all(np.isfinite(clf.predict_proba(X)))


def test_overflow_is_a_clear_error():
    rng = np.random.RandomState(0)
    X = rng.randn(50, 2) * 1e300
    y = rng.randint(0, 2, 50)
    with pytest.raises(ValueError, match=r"overflow occurred at epoch #\d+.*eta0"):
        SoftmaxRegressionClassifier(solver="sgd", eta0=0.01).fit(X, y)
    with pytest.raises(ValueError, match=r"overflow occurred at eta0='auto' "
                       r"\(the data's smoothness constant is not finite\)"):
        SoftmaxRegressionClassifier(solver="sgd").fit(X, y)
    with pytest.raises(ValueError, match="overflow occurred at an L-BFGS iteration"):
        SoftmaxRegressionClassifier().fit(X, y)


# ----------------------------------------------------------------- errors
def fitted():
    X, y = scaled("iris")
    return SoftmaxRegressionClassifier().fit(X, y), X, y


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected(bad):
    X, y = scaled("iris")
    X_bad = X.copy()
    X_bad[3, 1] = bad
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        SoftmaxRegressionClassifier().fit(X_bad, y)
    w = np.ones(len(y))
    w[0] = bad
    with pytest.raises(
        ValueError,
        match="sample_weight.*(NaN|infinity)|(NaN|infinity).*sample_weight"
        "|Input contains",
    ):
        SoftmaxRegressionClassifier().fit(X, y, sample_weight=w)


def test_bad_targets_and_weights():
    X, y = scaled("iris")
    with pytest.raises(
        ValueError, match="Negative values in data passed to `sample_weight`"
    ):
        SoftmaxRegressionClassifier().fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="only one class: 0"):
        SoftmaxRegressionClassifier().fit(X, np.zeros(len(y), dtype=int))
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        SoftmaxRegressionClassifier().fit(X, X[:, 0])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        SoftmaxRegressionClassifier().fit(X, y[:-1])
    w = np.where(y == 0, 1.0, 0.0)
    with pytest.raises(ValueError, match="fewer than 2 classes"):
        SoftmaxRegressionClassifier().fit(X, y, sample_weight=w)


def test_prediction_errors():
    with pytest.raises(NotFittedError):
        SoftmaxRegressionClassifier().predict(np.ones((2, 4)))
    clf, X, _ = fitted()
    with pytest.raises(
        ValueError,
        match="X has 3 features, but SoftmaxRegressionClassifier is expecting 4",
    ):
        clf.predict(X[:, :3])


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(alpha=-1.0), "'alpha' parameter .* must be a float in the range"),
        (dict(solver="newton"), "'solver' parameter"),
        (dict(label_smoothing=1.0), "'label_smoothing' parameter"),
        (dict(batch_size=0), "'batch_size' parameter"),
        (dict(learning_rate="fast"), "'learning_rate' parameter"),
        (dict(device="tpu"), "'device' parameter"),
        (dict(n_jobs=0), "n_jobs == 0"),
        (dict(validation_fraction=1.0), "'validation_fraction' parameter"),
    ],
)
def test_invalid_parameters(params, match):
    X, y = scaled("iris")
    with pytest.raises(ValueError, match=match):
        SoftmaxRegressionClassifier(**params).fit(X, y)


def test_cuda_device_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(
        "sksoftmax._cuda.gpu_status",
        lambda: (False, "no usable NVIDIA GPU or CUDA driver was found"),
    )
    X, y = scaled("iris")
    with pytest.raises(ValueError, match="device='cuda' needs a usable NVIDIA GPU"):
        SoftmaxRegressionClassifier(device="cuda").fit(X, y)
    # "auto" falls back to the CPU
    clf = SoftmaxRegressionClassifier(device="auto").fit(X, y)
    assert clf.score(X, y) > 0.9


def test_partial_fit_errors():
    X, y = scaled("iris")
    with pytest.raises(AttributeError, match="no attribute 'partial_fit'") as info:
        SoftmaxRegressionClassifier().partial_fit(X, y, classes=[0, 1, 2])
    assert "only available for the stochastic solvers" in str(info.value.__cause__)
    clf = SoftmaxRegressionClassifier(solver="sgd")
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    with pytest.raises(ValueError, match=r"y contains labels not in classes: "
                                         r"array\(\[2\]\)"):
        clf.partial_fit(X, y, classes=[0, 1])
    clf = SoftmaxRegressionClassifier(solver="sgd").partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="is not the same as on last call"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="X has 2 features"):
        clf.partial_fit(X[:, :2], y)
    with pytest.raises(ValueError, match="'balanced' is not supported for partial_fit"):
        SoftmaxRegressionClassifier(solver="sgd", class_weight="balanced").partial_fit(
            X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_takes_sample_weights(solver):
    # the objective is a weighted mean: weights scaled by a constant give the
    # same steps, other weights other steps; a chunk of zero weight is allowed
    X, y = scaled("iris")
    w = np.random.RandomState(0).uniform(0.1, 3.0, len(y))

    def streamed(weights):
        clf = SoftmaxRegressionClassifier(solver=solver, random_state=0)
        for part in np.array_split(np.arange(len(y)), 3):
            clf.partial_fit(X[part], y[part], classes=[0, 1, 2],
                            sample_weight=None if weights is None else weights[part])
        return clf.coef_

    plain = streamed(None)
    assert_allclose(streamed(np.full(len(y), 3.0)), plain, rtol=1e-10, atol=1e-12)
    assert np.abs(streamed(w) - plain).max() > 1e-3


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_state_between_calls(solver):
    X, y = scaled("iris")
    first, second = np.array_split(np.random.RandomState(0).permutation(len(y)), 2)

    def streamed(edit=False, shuffle_second=True, **params):
        clf = SoftmaxRegressionClassifier(solver=solver, random_state=0, **params)
        clf.partial_fit(X[first], y[first], classes=[0, 1, 2])
        if edit:
            clf.coef_ = np.zeros_like(clf.coef_)
        clf.set_params(shuffle=shuffle_second)
        return clf.partial_fit(X[second], y[second])

    plain = streamed()
    assert_array_equal(streamed().coef_, plain.coef_)  # random_state reproduces
    # each call visits its chunk in a random order, the later ones too
    assert not np.array_equal(streamed(shuffle=False).coef_, plain.coef_)
    assert not np.array_equal(streamed(shuffle_second=False).coef_, plain.coef_)
    # an edit to coef_ between calls is where the next call starts
    assert not np.array_equal(streamed(edit=True).coef_, plain.coef_)
    assert plain.validation_scores_ is None
    assert plain.best_validation_score_ is None
    # eta0="auto" takes its constants from the first chunk alone
    clf = SoftmaxRegressionClassifier(solver=solver, random_state=0)
    clf.partial_fit(X[first], y[first], classes=[0, 1, 2])
    constants = np.array(clf._minibatch_state.smoothness, dtype=float)
    clf.partial_fit(10.0 * X[second], y[second])
    assert_array_equal(np.array(clf._minibatch_state.smoothness, dtype=float),
                       constants)

@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("first_call", [True, False])
def test_partial_fit_refuses_a_chunk_of_zero_weight(solver, first_call):
    # zero weight means absent (as for fit): the chunk is empty, and the model
    # and the optimiser's state stay as they were
    X, y = scaled("iris")
    clf = SoftmaxRegressionClassifier(solver=solver, random_state=0,
                                      class_weight={0: 0.0, 1: 1.0, 2: 1.0})
    if not first_call:
        clf.partial_fit(X, y, classes=[0, 1, 2])
        before = (clf.coef_.copy(), clf.intercept_.copy(), clf.t_,
                  clf._minibatch_state.params.copy())
    with pytest.raises(ValueError, match=r"^The sample weights of this chunk "
                       r"\(times class_weight\) are all zero: it holds no data\. "):
        clf.partial_fit(X[y == 0], y[y == 0], classes=[0, 1, 2])
    with pytest.raises(ValueError, match="are all zero"):
        clf.partial_fit(X, y, classes=[0, 1, 2], sample_weight=np.zeros(len(y)))
    if first_call:
        assert not hasattr(clf, "classes_")
        assert not hasattr(clf, "coef_")
        return
    assert_array_equal(clf.coef_, before[0])
    assert_array_equal(clf.intercept_, before[1])
    assert clf.t_ == before[2]
    assert_array_equal(clf._minibatch_state.params, before[3])


# ------------------------------------------------------ sklearn ecosystem
def test_pipeline_and_grid_search():
    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), SoftmaxRegressionClassifier())
    grid = GridSearchCV(
        pipe,
        {
            "softmaxregressionclassifier__alpha": [1e-4, 1e-2],
            "softmaxregressionclassifier__solver": ["lbfgs", "adam"],
        },
        cv=3,
        n_jobs=2,
    )
    grid.fit(X, y)
    assert grid.best_score_ > 0.9
    assert set(grid.best_params_) == {"softmaxregressionclassifier__alpha",
                                      "softmaxregressionclassifier__solver"}


def test_cross_val_score_and_clone():
    X, y = scaled("wine")
    scores = cross_val_score(SoftmaxRegressionClassifier(), X, y, cv=5)
    assert scores.shape == (5,)
    assert scores.mean() > 0.95
    clf = SoftmaxRegressionClassifier(alpha=0.3, solver="adam").fit(X, y)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert not hasattr(twin, "coef_")


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_pickle_and_joblib_round_trip(solver):
    X, y = scaled("wine")
    clf = SoftmaxRegressionClassifier(solver=solver, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    if solver == "sgd":  # partial_fit carries on after unpickling
        loaded.partial_fit(X, y)
        assert loaded.n_iter_ == clf.n_iter_ + 1


def test_temperature_calibration():
    X, y = scaled("digits")
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    calibrated = CalibratedClassifierCV(SoftmaxRegressionClassifier(alpha=1e-5),
                                        method="temperature", cv=3)
    calibrated.fit(X_train, y_train)
    proba = calibrated.predict_proba(X_test)
    assert proba.shape == (len(y_test), 10)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-10)
    assert calibrated.score(X_test, y_test) > 0.9


def test_sparse_sgd_fits_the_same_model_as_dense_sgd():
    # the lazy CSR steps are the dense steps: same shuffles, same model
    X, y = make_classification(n_samples=300, n_features=40, n_informative=10,
                               n_classes=3, random_state=0)
    X[np.abs(X) < 1.0] = 0.0
    params = dict(solver="sgd", alpha=1e-3, random_state=0)
    dense = SoftmaxRegressionClassifier(**params)
    sparse = SoftmaxRegressionClassifier(**params)
    for _ in range(5):  # epochs of the rule alone
        dense.partial_fit(X, y, classes=[0, 1, 2])
        sparse.partial_fit(sp.csr_matrix(X), y, classes=[0, 1, 2])
    assert dense.n_iter_ == sparse.n_iter_ == 5
    assert_allclose(sparse.coef_, dense.coef_, rtol=1e-7, atol=1e-10)
    assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_sparse_defaults_reach_lbfgs_accuracy(solver):
    # bag-of-words-like rows: 2000 x 500, 15 stored entries a row
    rng = np.random.default_rng(0)
    n, d = 2000, 500
    X = sp.random(n, d, density=0.03, format="csr", random_state=0,
                  data_rvs=lambda k: rng.exponential(1.0, k))
    W = rng.standard_normal((d, 4)) * 3
    y = np.argmax(X @ W + rng.gumbel(size=(n, 4)), axis=1)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    alpha = 1.0 / X_train.shape[0]
    exact = SoftmaxRegressionClassifier(alpha=alpha).fit(X_train, y_train)
    clf = SoftmaxRegressionClassifier(solver=solver, alpha=alpha,
                                      random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= exact.score(X_test, y_test) - 0.01


# every parameter that partial_fit or a warm-started fit reads, changed
# between calls to a valid value (as a user of set_params or GridSearchCV would)
_CHANGES = [
    ("solver", "adam"), ("solver", "sgd"), ("solver", "lbfgs"), ("alpha", 0.3),
    ("l1_ratio", 0.5), ("fit_intercept", False), ("max_iter", 2), ("tol", 1e-2),
    ("batch_size", 7), ("learning_rate", "constant"), ("learning_rate", "invscaling"),
    ("learning_rate", "adaptive"), ("eta0", 0.05), ("eta0", "auto"), ("power_t", 0.9),
    ("momentum", 0.0), ("nesterovs_momentum", False), ("beta_1", 0.5),
    ("beta_2", 0.9), ("epsilon", 1e-4), ("average", False), ("average", 5),
    ("early_stopping", True), ("validation_fraction", 0.3), ("n_iter_no_change", 1),
    ("shuffle", False), ("random_state", 3), ("class_weight", {0: 2.0}),
    ("class_weight", "balanced"), ("label_smoothing", 0.1), ("n_jobs", 2),
    ("sparse_copy", False),
]


@pytest.mark.parametrize("first, then", [
    ("sgd", "partial_fit"), ("adam", "partial_fit"),
    ("sgd", "warm_start"), ("adam", "warm_start"), ("lbfgs", "warm_start")])
def test_a_parameter_changed_between_calls_gives_a_model_or_a_clear_error(first, then):
    X, y = scaled("iris")
    X, y = X[::3], y[::3]
    classes = np.unique(y)
    for name, value in _CHANGES:
        clf = SoftmaxRegressionClassifier(solver=first, eta0=0.01 if first != "lbfgs"
                                          else "auto", max_iter=5, random_state=0,
                                          warm_start=then == "warm_start")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if then == "warm_start":
                clf.fit(X, y)
            else:
                clf.partial_fit(X, y, classes=classes)
            clf.set_params(**{name: value})
            if then == "partial_fit" and value == "lbfgs":
                # as MLPClassifier: only the minibatch solvers have partial_fit
                assert not hasattr(clf, "partial_fit")
                continue
            try:
                if then == "partial_fit":
                    clf.partial_fit(X, y)
                else:
                    clf.fit(X, y)
            except ValueError as error:  # clear: it names what is wrong
                words = str(error)
                assert name in words or str(value) in words, (name, value, words)
                continue
        proba = clf.predict_proba(X)
        assert np.all(np.isfinite(clf.coef_)), (name, value)
        assert np.all(np.isfinite(clf.intercept_)), (name, value)
        assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12, err_msg=f"{name}={value}")
        # the model of the last call: at least as good as chance on its data
        assert clf.score(X, y) > 0.5, (name, value)
