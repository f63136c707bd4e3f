"""L1 and elastic net with every solver: OWL-QN against independent references."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import minimize
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxRegressionClassifier
from sksoftmax._lbfgs import compact_lbfgs
from sksoftmax._steps import min_norm_subgradient

_FTOL = 64 * np.finfo(float).eps


def _digits(n=600):
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X[:n]), y[:n]


def _objective_of(X, y, alpha, l1_ratio, coef, intercept):
    """The stated objective of a model, computed here with numpy alone."""
    z = np.asarray(X @ coef.T) + intercept
    if coef.shape[0] == 1:  # binary: softmax([0, z])
        z = np.hstack([np.zeros_like(z), z])
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    codes = np.unique(y, return_inverse=True)[1]
    ce = -log_p[np.arange(len(y)), codes].mean()
    return ce + alpha * ((1 - l1_ratio) / 2 * np.sum(coef ** 2)
                         + l1_ratio * np.abs(coef).sum())


def _saga(X, y, alpha, l1_ratio):
    """LogisticRegression's saga to tol 1e-10: the independent reference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(solver="saga", l1_ratio=l1_ratio,
                                  C=1.0 / (alpha * X.shape[0]), tol=1e-10,
                                  max_iter=100_000).fit(X, y)


# --------------------------------------------------------------- the kernel
def test_min_norm_subgradient_by_cases():
    # away from zero: g + l1 sign(w); at zero: 0 inside [-l1, l1], else the
    # nearer end of [g - l1, g + l1]; no weight: g itself
    w = np.array([1.0, -2.0, 0.0, 0.0, 0.0, 0.0, 3.0])
    g = np.array([0.5, 0.5, 0.3, 2.0, -2.0, -0.3, 0.7])
    l1 = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    out = np.empty(7)
    largest = min_norm_subgradient(out, w, g, l1, 0, 7)
    assert_array_equal(out, [1.5, -0.5, 0.0, 1.0, -1.0, -0.3, 0.7])
    assert largest == 1.5
    out[:] = 9.0
    assert min_norm_subgradient(out, w, g, l1, 2, 5) == 1.0
    assert_array_equal(out, [9.0, 9.0, 0.0, 1.0, -1.0, 9.0, 9.0])
    g[4] = np.nan
    assert np.isnan(min_norm_subgradient(out, w, g, l1, 0, 7))


# ------------------------------------------------------------------ OWL-QN
def test_owlqn_solves_a_separable_problem_exactly():
    # f(x) = 1/2 sum a_j (x_j - c_j)^2 plus sum l1_j |x_j| has the minimiser
    # soft_threshold(c_j, l1_j / a_j): some entries exactly zero
    rng = np.random.RandomState(0)
    a = rng.uniform(0.5, 5.0, 40)
    c = rng.randn(40)
    l1 = np.where(np.arange(40) < 35, 0.8, 0.0)  # the last five unpenalised

    def loss_gradient(x):
        return 0.5 * np.sum(a * (x - c) ** 2), a * (x - c)

    x, f, g, n_iter, _, status = compact_lbfgs(
        loss_gradient, np.zeros(40), max_iter=200, tol=1e-6, ftol=_FTOL, l1=l1)
    expected = np.sign(c) * np.maximum(np.abs(c) - l1 / a, 0.0)
    assert status == "converged"
    assert np.max(np.abs(g)) <= 1e-6
    # each |x_j - expected_j| <= |subgradient_j| / a_j
    assert np.all(np.abs(x - expected) <= np.abs(g) / a + 1e-15)
    assert_array_equal(x == 0, expected == 0)
    assert np.count_nonzero(expected == 0) >= 5
    optimum = loss_gradient(expected)[0] + np.sum(l1 * np.abs(expected))
    assert optimum <= f <= optimum * (1 + 1e-12)


@pytest.mark.parametrize("scaled", [False, True])
def test_owlqn_matches_a_split_variable_reference(scaled):
    # least squares plus L1, coupled through A: the reference solves the
    # same problem as a bound-constrained smooth one, x = p - m with p, m >= 0
    rng = np.random.RandomState(1)
    A = rng.randn(60, 25) * rng.uniform(0.2, 5.0, 25)  # unequal column scales
    b = rng.randn(60)
    l1 = np.full(25, 2.0)

    def loss_gradient(x):
        r = A @ x - b
        return 0.5 * r @ r, A.T @ r

    def split(pm):
        f, g = loss_gradient(pm[:25] - pm[25:])
        return f + l1 @ (pm[:25] + pm[25:]), np.concatenate([g + l1, -g + l1])

    reference = minimize(split, np.zeros(50), jac=True, method="L-BFGS-B",
                         bounds=[(0, None)] * 50,
                         options={"ftol": 0, "gtol": 1e-13, "maxiter": 10_000})
    expected = reference.x[:25] - reference.x[25:]
    scale = 1.0 / np.sqrt((A ** 2).sum(axis=0)) if scaled else None
    x, f, g, _, _, status = compact_lbfgs(loss_gradient, np.zeros(25), max_iter=500,
                                          tol=1e-10, ftol=_FTOL, l1=l1, scale=scale)
    # f ~ 15 resolves a subgradient of ~1e-6 on these column scales: both
    # runs end on the objective's rounding, at the same value
    assert status == "ftol"
    assert np.max(np.abs(g)) <= 1e-5  # the returned minimum-norm subgradient
    assert f <= reference.fun + 64 * np.finfo(float).eps * abs(reference.fun)
    assert_allclose(x, expected, atol=1e-7)
    assert_array_equal(x == 0, np.abs(expected) < 1e-9)
    assert np.count_nonzero(x == 0) >= 3


def test_owlqn_refuses_a_non_diagonal_scale():
    from sksoftmax._lbfgs import FeatureScale
    scale = FeatureScale(1, np.eye(2), np.ones(2), 1.0, np.ones(0))
    with pytest.raises(TypeError, match="scale must be diagonal"):
        compact_lbfgs(lambda x: (0.0, x), np.zeros(2), max_iter=5, tol=1e-6,
                      ftol=_FTOL, l1=np.ones(2), scale=scale)


# --------------------------------------------------- the estimator's optimum
@pytest.mark.parametrize("l1_ratio", [0.5, 1.0])
def test_lbfgs_reaches_sagas_optimum_multinomial(l1_ratio):
    X, y = _digits()
    alpha = 1e-2
    ours = SoftmaxRegressionClassifier(alpha=alpha, l1_ratio=l1_ratio, tol=1e-9)
    with warnings.catch_warnings():
        # a stall within rounding of tol is reported; the checks below judge
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
    saga = _saga(X, y, alpha, l1_ratio)
    f_ours = _objective_of(X, y, alpha, l1_ratio, ours.coef_, ours.intercept_)
    f_saga = _objective_of(X, y, alpha, l1_ratio, saga.coef_, saga.intercept_)
    assert f_ours <= f_saga + 1e-10 * f_saga
    assert_allclose(ours.coef_, saga.coef_, atol=2e-5)
    # the support: exact zeros where saga's are (saga's within its rounding)
    assert np.count_nonzero(ours.coef_ == 0) > 100
    assert np.sum((ours.coef_ == 0) != (np.abs(saga.coef_) < 1e-8)) <= 2
    # pixels constant in these rows: zero in every class (only L1's zeros are
    # exact, and the intercept takes over)
    constant = X.std(axis=0) == 0
    assert constant.any()
    assert np.all(ours.coef_[:, constant] == 0)


def test_a_feature_that_carries_no_signal_is_zero_in_every_class():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    noise = np.random.RandomState(0).randn(len(y), 3)
    X = np.hstack([X, noise])
    alpha = 0.05
    ours = SoftmaxRegressionClassifier(alpha=alpha, l1_ratio=1.0, tol=1e-7).fit(X, y)
    saga = _saga(X, y, alpha, 1.0)
    zero_columns = np.all(ours.coef_ == 0, axis=0)
    assert_array_equal(zero_columns, np.all(np.abs(saga.coef_) < 1e-8, axis=0))
    assert zero_columns[4:].sum() >= 2
    assert_allclose(ours.coef_, saga.coef_, atol=1e-5)
    f_ours, f_saga = (_objective_of(X, y, alpha, 1.0, m.coef_, m.intercept_)
                      for m in (ours, saga))
    assert f_ours <= f_saga + 1e-10 * f_saga


def test_binary_is_binary_logistic_regression_with_l1():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    alpha = 1e-2
    ours = SoftmaxRegressionClassifier(alpha=alpha, l1_ratio=0.7, tol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
    saga = _saga(X, y, alpha, 0.7)
    assert ours.coef_.shape == (1, 30)
    assert_allclose(ours.coef_, saga.coef_, atol=1e-5)
    assert_allclose(ours.intercept_, saga.intercept_, atol=1e-5)
    assert_array_equal(ours.coef_ == 0, np.abs(saga.coef_) < 1e-8)


@pytest.mark.parametrize("tol", [1e-4, 1e-7])
def test_tol_bounds_the_minimum_norm_subgradient(tol):
    # computed here: the gradient of the smooth part by finite differences
    # of the numpy objective, and the subgradient's minimum-norm entry from it
    X, y = _digits(300)
    X = X[:, :20]
    alpha, r = 3e-2, 0.5
    ours = SoftmaxRegressionClassifier(alpha=alpha, l1_ratio=r, tol=tol).fit(X, y)
    coef, intercept = ours.coef_, ours.intercept_
    centre = X.mean(axis=0)  # the centred coordinates the solver works in

    def smooth(c, b):
        return _objective_of(X, y, alpha, 0.0, c, b - c @ centre) \
            - alpha / 2 * np.sum(c ** 2) + alpha * (1 - r) / 2 * np.sum(c ** 2)

    b = intercept + coef @ centre
    h = 1e-6
    g = np.zeros_like(coef)
    for idx in np.ndindex(coef.shape):
        e = np.zeros_like(coef)
        e[idx] = h
        g[idx] = (smooth(coef + e, b) - smooth(coef - e, b)) / (2 * h)
    t = alpha * r
    sub = np.where(coef != 0, g + t * np.sign(coef),
                   np.sign(g) * np.maximum(np.abs(g) - t, 0.0))
    assert np.max(np.abs(sub)) <= tol + 1e-7
    assert np.count_nonzero(coef == 0) > 0


def test_dense_csr_and_float32_agree():
    X, y = _digits(400)
    alpha = 2e-2
    dense = SoftmaxRegressionClassifier(alpha=alpha, l1_ratio=0.5, tol=1e-7).fit(X, y)
    csr = SoftmaxRegressionClassifier(alpha=alpha, l1_ratio=0.5, tol=1e-7).fit(
        sp.csr_matrix(X), y)
    single = SoftmaxRegressionClassifier(alpha=alpha, l1_ratio=0.5, tol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        single.fit(X.astype(np.float32), y)
    assert single.coef_.dtype == np.float32
    assert_allclose(csr.coef_, dense.coef_, atol=1e-6)
    assert_array_equal(csr.coef_ == 0, dense.coef_ == 0)
    assert_allclose(single.coef_, dense.coef_, atol=1e-3)
    f = [_objective_of(X, y, alpha, 0.5, m.coef_.astype(float),
                       m.intercept_.astype(float)) for m in (dense, csr, single)]
    assert f[1] == pytest.approx(f[0], rel=1e-12)
    assert f[2] == pytest.approx(f[0], rel=1e-5)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_stochastic_solvers_reach_the_same_l1_optimum(solver):
    X, y = _digits(400)
    alpha = 2e-2
    exact = SoftmaxRegressionClassifier(alpha=alpha, l1_ratio=0.5, tol=1e-7).fit(X, y)
    ours = SoftmaxRegressionClassifier(solver=solver, alpha=alpha, l1_ratio=0.5,
                                       tol=1e-6, random_state=0).fit(X, y)
    f_exact, f_ours = (_objective_of(X, y, alpha, 0.5, m.coef_, m.intercept_)
                       for m in (exact, ours))
    assert f_ours <= f_exact * (1 + 1e-5)
    assert np.sum((ours.coef_ == 0) != (exact.coef_ == 0)) <= 3


def test_warm_start_along_a_path_reaches_each_optimum_in_fewer_iterations():
    X, y = _digits(400)
    warm = SoftmaxRegressionClassifier(l1_ratio=1.0, tol=1e-7, warm_start=True)
    for alpha in (0.1, 0.05, 0.03):
        warm.set_params(alpha=alpha).fit(X, y)
        cold = SoftmaxRegressionClassifier(alpha=alpha, l1_ratio=1.0, tol=1e-7)
        cold.fit(X, y)
        f_warm, f_cold = (_objective_of(X, y, alpha, 1.0, m.coef_, m.intercept_)
                          for m in (warm, cold))
        assert f_warm == pytest.approx(f_cold, rel=1e-9)
        assert_allclose(warm.coef_, cold.coef_, atol=1e-4)
        assert np.sum((warm.coef_ == 0) != (cold.coef_ == 0)) <= 2
    assert warm.n_iter_ < cold.n_iter_
