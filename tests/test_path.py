"""softmax_regression_path and SoftmaxRegressionClassifierCV."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sksoftmax import (
    SoftmaxRegressionClassifier,
    SoftmaxRegressionClassifierCV,
    softmax_regression_path,
)


def _iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _digits(n=500):
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X[:n]), y[:n]


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
@pytest.mark.parametrize("l1_ratio", [0.0, 0.5])
def test_path_equals_independent_fits(solver, l1_ratio):
    X, y = _iris()
    alphas = [0.3, 0.03, 0.003]
    coefs, intercepts, fitted_alphas, n_iter = softmax_regression_path(
        X, y, alphas=alphas[::-1], solver=solver, l1_ratio=l1_ratio, tol=1e-7,
        random_state=0)
    assert_array_equal(fitted_alphas, alphas)  # strongest first
    assert coefs.shape == (3, 3, 4)
    assert intercepts.shape == (3, 3)
    for alpha, coef, intercept in zip(alphas, coefs, intercepts, strict=True):
        cold = SoftmaxRegressionClassifier(solver=solver, alpha=alpha,
                                           l1_ratio=l1_ratio, tol=1e-7,
                                           random_state=0).fit(X, y)
        # both within tol=1e-7 of the same optimum
        assert_allclose(coef, cold.coef_, atol=1e-4)
        assert_allclose(intercept, cold.intercept_, atol=1e-4)
        if l1_ratio:
            assert np.sum((coef == 0) != (cold.coef_ == 0)) <= 1
    assert np.all(n_iter >= 1)


def test_path_starts_each_fit_on_the_secant_through_the_last_two_optima(monkeypatch):
    # log-alpha steps of 1, 2, 1, 0 (a repeated alpha) and 1 decades
    X, y = _iris()
    alphas = [1.0, 0.1, 1e-3, 1e-4, 1e-4, 1e-5]
    fit_lbfgs = SoftmaxRegressionClassifier._fit_lbfgs
    starts, optima = [], []

    def recording(self, objective, params):
        starts.append(params.copy())
        fitted = fit_lbfgs(self, objective, params)
        optima.append(objective.init_params(fitted["coef_"].astype(float),
                                            fitted["intercept_"].astype(float)))
        return fitted

    monkeypatch.setattr(SoftmaxRegressionClassifier, "_fit_lbfgs", recording)
    softmax_regression_path(X, y, alphas=alphas, tol=1e-6)
    assert not np.any(starts[0])  # from zero
    assert_array_equal(starts[1], optima[0])  # one optimum: start there
    for k, ratio in ((2, 2.0), (3, 0.5)):
        expected = optima[k - 1] + ratio * (optima[k - 1] - optima[k - 2])
        assert_allclose(starts[k], expected, rtol=1e-12, atol=1e-12)
    # no step in log alpha, or none before it: no secant
    assert_array_equal(starts[4], optima[3])
    assert_array_equal(starts[5], optima[4])

def test_path_warm_starts_save_iterations():
    X, y = _digits()
    alphas = np.geomspace(1e-1, 1e-4, 8)
    _, _, _, n_iter = softmax_regression_path(X, y, alphas=alphas, tol=1e-6)
    cold = [SoftmaxRegressionClassifier(alpha=a, tol=1e-6).fit(X, y).n_iter_
            for a in alphas]
    assert n_iter.sum() < 0.8 * sum(cold)


def test_path_takes_csr_and_keeps_float32():
    X, y = _digits(300)
    X32 = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense, _, _, _ = softmax_regression_path(X, y, alphas=[0.1, 0.01])
        csr, _, _, _ = softmax_regression_path(sp.csr_matrix(X), y,
                                               alphas=[0.1, 0.01])
        single, _, _, _ = softmax_regression_path(X32, y, alphas=[0.1, 0.01])
    assert single.dtype == np.float32
    assert_allclose(csr, dense, atol=1e-4)
    assert_allclose(single, dense, atol=1e-3)


def test_int_alphas_are_logistic_regression_cvs_cs():
    X, y = _iris()
    _, _, alphas, _ = softmax_regression_path(X, y, alphas=5)
    Cs = np.logspace(-4, 4, 5)
    assert_allclose(alphas, 1.0 / (Cs * len(y)), rtol=1e-12)


def test_int_alphas_with_l1_start_where_every_coefficient_is_zero():
    X, y = _iris()
    coefs, _, alphas, _ = softmax_regression_path(X, y, alphas=4, l1_ratio=1.0,
                                                  tol=1e-7)
    assert_allclose(alphas[1:] / alphas[:-1], 1e-4 ** (1 / 3), rtol=1e-12)
    assert np.all(coefs[0] == 0)
    # just below alpha_max, a coefficient leaves zero
    nearly, _, _, _ = softmax_regression_path(X, y, alphas=[alphas[0] * 0.99],
                                              l1_ratio=1.0, tol=1e-7)
    assert np.count_nonzero(nearly) >= 1


def test_path_rejects_its_own_parameters_and_bad_alphas():
    X, y = _iris()
    with pytest.raises(TypeError, match="sets 'alpha' itself"):
        softmax_regression_path(X, y, alpha=0.1)
    with pytest.raises(ValueError, match="alphas must be"):
        softmax_regression_path(X, y, alphas=[0.1, -1.0])
    with pytest.raises(ValueError, match="alphas must be"):
        softmax_regression_path(X, y, alphas=[])


def test_cv_picks_what_grid_search_picks():
    X, y = _digits()
    folds = list(StratifiedKFold(4).split(X, y))
    alphas = np.geomspace(1.0, 1e-4, 6)
    cv = SoftmaxRegressionClassifierCV(alphas=alphas, cv=folds, tol=1e-6).fit(X, y)
    grid = GridSearchCV(SoftmaxRegressionClassifier(tol=1e-6), {"alpha": alphas},
                        cv=folds).fit(X, y)
    assert cv.alpha_ == grid.best_params_["alpha"]
    assert_allclose(cv.scores_.mean(axis=0),
                    grid.cv_results_["mean_test_score"], atol=0.01)
    assert cv.scores_.shape == (4, 6)
    assert cv.n_iter_.shape == (4, 6)
    assert cv.coefs_paths_.shape == (4, 6, 10, 64)
    # refit: the optimum at alpha_ on all the data
    final = SoftmaxRegressionClassifier(alpha=cv.alpha_, tol=1e-6).fit(X, y)
    assert_allclose(cv.coef_, final.coef_, atol=1e-3)
    assert_allclose(cv.predict_proba(X), final.predict_proba(X), atol=1e-4)
    assert_array_equal(cv.predict(X), final.predict(X))


def test_cv_agrees_with_logistic_regression_cv():
    # LogisticRegressionCV's C multiplies a sum over the fold's training
    # rows: its folds minimise our objective at alpha = 1 / (C n_train)
    X, y = _digits(480)
    folds = list(StratifiedKFold(4).split(X, y))
    n_train = len(folds[0][0])
    assert all(len(train) == n_train for train, _ in folds)
    Cs = np.logspace(-3, 2, 6)
    cv = SoftmaxRegressionClassifierCV(alphas=1 / (Cs * n_train), cv=folds,
                                       scoring="neg_log_loss", tol=1e-7).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        lrcv = LogisticRegressionCV(Cs=Cs, cv=folds, scoring="neg_log_loss",
                                    tol=1e-8, max_iter=10_000).fit(X, y)
    assert cv.alpha_ == pytest.approx(1 / (lrcv.C_[0] * n_train))
    # both: strongest regularisation first; the weakest alphas are nearly
    # separable, where tol leaves the most room
    assert_allclose(cv.scores_, lrcv.scores_[lrcv.classes_[0]], atol=1e-3)
    assert_allclose(cv.scores_[:, :3], lrcv.scores_[lrcv.classes_[0]][:, :3],
                    atol=1e-5)


def test_cv_without_refit_averages_the_folds():
    X, y = _iris()
    cv = SoftmaxRegressionClassifierCV(alphas=3, refit=False).fit(X, y)
    best = list(cv.alphas_).index(cv.alpha_)
    assert_allclose(cv.coef_, cv.coefs_paths_[:, best].mean(axis=0))
    assert_allclose(cv.intercept_, cv.intercepts_paths_[:, best].mean(axis=0))


def test_cv_folds_on_threads_give_the_serial_result():
    X, y = _digits(300)
    serial = SoftmaxRegressionClassifierCV(alphas=4, cv=3).fit(X, y)
    threaded = SoftmaxRegressionClassifierCV(alphas=4, cv=3, n_jobs=2).fit(X, y)
    assert_allclose(threaded.scores_, serial.scores_)
    assert_allclose(threaded.coef_, serial.coef_, atol=1e-6)


def test_cv_errors_are_clear():
    X, y = _iris()
    order = np.argsort(y, kind="stable")
    X, y = X[order], y[order]
    from sklearn.model_selection import KFold
    with pytest.raises(ValueError, match=r"lacks the classes \[0\]"):
        SoftmaxRegressionClassifierCV(cv=KFold(3)).fit(X, y)
    with pytest.raises(ValueError, match="'alphas' parameter"):
        SoftmaxRegressionClassifierCV(alphas=0).fit(X, y)
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="in-memory X and y"):
        SoftmaxRegressionClassifierCV().fit(da.from_array(X), da.from_array(y))


def _expected_failed_checks(estimator):
    # as for LogisticRegressionCV: the folds of repeated rows are not the
    # folds of weighted ones (a repeated row can sit in a training fold and
    # in its test fold), so the path, the scores and alpha_ may differ; the
    # lbfgs paths agree within tol here, the stochastic ones do not
    if estimator.solver == "lbfgs":
        return {}
    return {name: "cross-validation folds differ between weighted and repeated "
                  "rows" for name in ("check_sample_weight_equivalence_on_dense_data",
                                      "check_sample_weight_equivalence_on_sparse_data")}


@parametrize_with_checks([SoftmaxRegressionClassifierCV(alphas=3, cv=3),
                          SoftmaxRegressionClassifierCV(alphas=3, cv=3, solver="sgd",
                                                        l1_ratio=0.5,
                                                        random_state=0)],
                         expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_cv_estimator(estimator, check):
    check(estimator)


# (tol=1e-8 is at the edge of float64 here: a few fits stall at 3e-8)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_cv_passes_its_parameters_and_weights_on():
    # every estimator parameter reaches the folds' and the final fit: the
    # refit model is the plain fit at alpha_; weights reach the folds'
    # scores and the grid
    X, y = _iris()
    w = np.random.RandomState(0).uniform(0.2, 3.0, len(y))
    params = dict(fit_intercept=False, tol=1e-8, class_weight={0: 2.0, 1: 1.0, 2: 0.5},
                  label_smoothing=0.1, max_iter=500)
    cv = SoftmaxRegressionClassifierCV(alphas=[1e-1, 1e-2], cv=3, **params).fit(
        X, y, sample_weight=w)
    plain = SoftmaxRegressionClassifier(alpha=cv.alpha_, **params).fit(
        X, y, sample_weight=w)
    assert_allclose(cv.coef_, plain.coef_, rtol=1e-5, atol=1e-7)
    assert_allclose(cv.intercept_, 0.0)
    folds = list(StratifiedKFold(3).split(X, y))
    for fold, (train, test) in enumerate(folds):
        for k, alpha in enumerate(cv.alphas_):
            model = SoftmaxRegressionClassifier(alpha=alpha, **params).fit(
                X[train], y[train], sample_weight=w[train])
            assert cv.scores_[fold, k] == pytest.approx(
                model.score(X[test], y[test], sample_weight=w[test]), abs=1e-12)


def test_l1_alpha_grid_starts_at_alpha_max_of_the_weighted_data():
    # alpha_max: the coefficients' largest gradient entry at W = 0, the
    # intercepts at their optimum, the weighted log class frequencies
    X, y = _iris()
    w = np.where(y == 0, 5.0, 1.0)
    _, _, alphas, _ = softmax_regression_path(X, y, sample_weight=w, alphas=3,
                                              l1_ratio=0.5)
    frequencies = np.bincount(y, weights=w) / w.sum()
    P = np.tile(frequencies, (len(y), 1))
    Y = np.eye(3)[y]
    gradient = (w[:, None] * (P - Y)).T @ X / w.sum()
    assert alphas[0] == pytest.approx(np.abs(gradient).max() / 0.5, rel=1e-10)
    # binary: one logit, the intercept at the log-odds
    Xb, yb = X[y > 0], y[y > 0]
    wb = w[y > 0] * np.where(yb == 1, 1.0, 3.0)
    _, _, alphas, _ = softmax_regression_path(Xb, yb, sample_weight=wb, alphas=2,
                                              l1_ratio=1.0)
    p1 = wb[yb == 2].sum() / wb.sum()
    gradient = (wb * (p1 - (yb == 2))) @ Xb / wb.sum()
    assert alphas[0] == pytest.approx(np.abs(gradient).max(), rel=1e-10)
