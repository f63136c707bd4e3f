"""The parameter-level objective: values from the math, gradients by finite
differences."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from scipy.optimize import check_grad

import sksoftmax._objective as objective_module
from sksoftmax import _steps, log_softmax, one_hot
from sksoftmax._objective import SoftmaxObjective
from sksoftmax._solvers import MinibatchSolver, MinibatchState


def make(n_classes=3, fit_intercept=True, alpha=0.1, l1_ratio=0.0, smoothing=0.0,
         sparse=False, dtype=np.float64, n=30, d=4, seed=0, sparse_copy=True,
         center=False, offset=0.0, scale=1.0):
    rng = np.random.RandomState(seed)
    X = ((rng.randn(n, d) + offset) * scale).astype(dtype)
    if sparse:
        X[rng.rand(n, d) < 0.4] = 0
        X = sp.csr_matrix(X)
    y = rng.randint(0, n_classes, n).astype(np.intp)
    sw = rng.uniform(0.5, 2.0, n)
    obj = SoftmaxObjective(X, y, sw, n_classes, fit_intercept=fit_intercept,
                           alpha=alpha, l1_ratio=l1_ratio, label_smoothing=smoothing,
                           sparse_copy=sparse_copy, center=center)
    params = rng.randn(obj.n_params) * 0.5
    return obj, params


def uncentred(obj):
    """The same data and penalty in the model's own coordinates."""
    return SoftmaxObjective(obj.X, obj.y, obj.sample_weight, obj.n_classes,
                            fit_intercept=obj.fit_intercept, alpha=obj.alpha,
                            l1_ratio=obj.l1_ratio,
                            label_smoothing=obj.label_smoothing)


def objective_by_formula(obj, params):
    """The documented objective, written with the public math."""
    coef, intercept = obj.unpack(params)
    X = obj.X.toarray() if sp.issparse(obj.X) else obj.X
    Z = X.astype(np.float64) @ coef.T + intercept
    if obj.binary:
        Z = np.column_stack([np.zeros(len(Z)), Z])
    K = obj.n_classes
    T = (1 - obj.label_smoothing) * one_hot(obj.y, K) + obj.label_smoothing / K
    ce = -np.sum(T * log_softmax(Z, axis=1), axis=1)
    s = obj.sample_weight
    return (np.sum(s * ce) / s.sum()
            + obj.alpha * ((1 - obj.l1_ratio) / 2 * np.sum(coef**2)
                           + obj.l1_ratio * np.abs(coef).sum()))


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("sparse, sparse_copy",
                         [(False, True), (True, True), (True, False)])
def test_loss_and_gradient(n_classes, fit_intercept, smoothing, sparse, sparse_copy):
    obj, params = make(n_classes, fit_intercept, smoothing=smoothing, sparse=sparse,
                       sparse_copy=sparse_copy)
    loss, _ = obj.loss_gradient(params)
    assert loss == pytest.approx(objective_by_formula(obj, params), rel=1e-12)
    err = check_grad(lambda p: obj.loss_gradient(p)[0],
                     lambda p: obj.loss_gradient(p)[1].copy(), params, epsilon=1e-6)
    assert err < 1e-5 * max(1.0, np.linalg.norm(obj.loss_gradient(params)[1]))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_csr_passes_with_and_without_the_csc_copy_agree(n_threads):
    # 20000 rows make two chunks with two threads: the scatter path then
    # reduces per-chunk accumulators while the gather path splits columns
    reference, params = make(n_classes=4, sparse=True, n=20_000, d=50, alpha=0.01)
    results = []
    for sparse_copy in (True, False):
        obj = SoftmaxObjective(reference.X, reference.y, reference.sample_weight, 4,
                               alpha=0.01, n_threads=n_threads,
                               sparse_copy=sparse_copy)
        with obj.parallel():
            loss, grad = obj.loss_gradient(params)
        assert (obj._transposed is not None) == sparse_copy
        results.append((loss, grad.copy()))
    (loss_copy, grad_copy), (loss_scatter, grad_scatter) = results
    assert loss_copy == pytest.approx(loss_scatter, rel=1e-12)
    assert_allclose(grad_copy, grad_scatter, rtol=1e-10, atol=1e-14)
    expected = objective_by_formula(reference, params)
    assert loss_copy == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_centred_coordinates_are_the_same_model(n_classes):
    # parameters (W, c) mean the model W x + (c - W mu), mu the weighted
    # column means: the same objective value, and the gradient of the
    # reparametrised function (finite differences), which is the chain rule
    # of the model's gradient
    obj, params = make(n_classes, alpha=0.3, smoothing=0.1, offset=5.0, center=True)
    mu = np.average(obj.X, axis=0, weights=obj.sample_weight)
    assert_allclose(obj.center, mu, rtol=1e-12)
    plain = uncentred(obj)
    model = obj.model_vector(params)
    coef, intercept = obj.model(params)
    assert_allclose(obj.unpack(model)[0], obj.unpack(params)[0])
    assert_allclose(intercept, obj.unpack(params)[1] - coef @ mu, rtol=1e-12)
    assert_allclose(obj.init_params(coef, intercept), params, rtol=1e-12)
    loss, grad = obj.loss_gradient(params)
    grad = grad.copy()
    plain_loss, plain_grad = plain.loss_gradient(model)
    assert loss == pytest.approx(plain_loss, rel=1e-12)
    assert loss == pytest.approx(objective_by_formula(plain, model), rel=1e-12)
    expected = plain_grad.copy()
    g_coef, g_intercept = plain.unpack(expected)
    g_coef -= np.outer(g_intercept, mu)
    assert_allclose(grad, expected, rtol=1e-10, atol=1e-14)
    err = check_grad(lambda p: obj.loss_gradient(p)[0],
                     lambda p: obj.loss_gradient(p)[1].copy(), params, epsilon=1e-7)
    assert err < 1e-5 * max(1.0, np.linalg.norm(grad))
    assert obj.decision(params, obj.X) == pytest.approx(plain.decision(model, obj.X))


@pytest.mark.parametrize("sparse, fit_intercept", [(True, True), (False, False)])
def test_csr_and_no_intercept_are_never_centred(sparse, fit_intercept):
    obj, params = make(sparse=sparse, fit_intercept=fit_intercept, center=True)
    assert obj.center is None
    assert obj.model_vector(params) is params


def hessian_diagonal_at_zero(obj, eps=1e-5):
    """The Hessian's diagonal at zero by central differences of the gradient."""
    diagonal = np.empty(obj.n_params)
    for i in range(obj.n_params):
        step = np.zeros(obj.n_params)
        step[i] = eps
        g_plus = obj.loss_gradient(step)[1][i]
        g_minus = obj.loss_gradient(-step)[1][i]
        diagonal[i] = (g_plus - g_minus) / (2 * eps)
    return diagonal


def test_centred_curvature_estimate_is_the_hessian_diagonal_at_zero():
    obj, _ = make(4, alpha=0.3, offset=3.0, center=True)
    h = obj.curvature_estimate()
    assert_allclose(h, hessian_diagonal_at_zero(obj), rtol=1e-6)
    # a constant feature has no curvature once centred: the penalty alone
    X = obj.X.copy()
    X[:, 1] = 7.0
    constant = SoftmaxObjective(X, obj.y, obj.sample_weight, 4, alpha=0.3,
                                center=True)
    coef_diagonal, _ = constant.unpack(constant.curvature_estimate())
    assert_allclose(coef_diagonal[:, 1], 0.3, rtol=1e-9)


def test_float32_data_gives_the_float64_objective_to_float32_precision():
    obj64, params = make(dtype=np.float64)
    obj32 = SoftmaxObjective(obj64.X.astype(np.float32), obj64.y, obj64.sample_weight,
                             3, alpha=0.1)
    l64, g64 = obj64.loss_gradient(params)
    g64 = g64.copy()
    l32, g32 = obj32.loss_gradient(params)
    assert g32.dtype == np.float64
    assert l32 == pytest.approx(l64, rel=1e-5)
    assert_allclose(g32, g64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("center", [False, True])
def test_in_float64_is_the_same_objective_over_float64_data(sparse, center):
    obj32, params = make(dtype=np.float32, sparse=sparse, center=center, offset=2.0,
                         l1_ratio=0.3, smoothing=0.1, n_classes=4)
    obj64 = obj32.in_float64()
    assert obj64.X.dtype == np.float64
    assert obj32.X.dtype == np.float32  # the float32 data are not touched
    # the same coordinates: the float32 objective's centre, not a new one
    if obj32.center is None:
        assert obj64.center is None
    else:
        assert_allclose(obj64.center, obj32.center, rtol=0, atol=0)
    direct = SoftmaxObjective(obj32.X.astype(np.float64), obj32.y, obj32.sample_weight,
                              4, alpha=0.1, l1_ratio=0.3, label_smoothing=0.1,
                              center=obj32.center if center else False)
    loss, grad = obj64.loss_gradient(params)
    grad = grad.copy()
    loss_direct, grad_direct = direct.loss_gradient(params)
    assert loss == loss_direct
    assert_allclose(grad, grad_direct, rtol=1e-14, atol=1e-15)
    assert obj64.l1_strength() == direct.l1_strength()
    assert obj64.in_float64() is None  # float64 already


def test_in_float64_makes_no_copy_above_its_cap(monkeypatch):
    obj32, _ = make(dtype=np.float32, n=30, d=4)
    monkeypatch.setattr(objective_module, "FLOAT64_COPY_MAX_BYTES", 30 * 4 * 8 - 1)
    assert obj32.in_float64() is None
    monkeypatch.setattr(objective_module, "FLOAT64_COPY_MAX_BYTES", 30 * 4 * 8)
    assert obj32.in_float64() is not None

def test_centred_curvature_of_overflowing_columns_is_no_estimate_without_warnings():
    obj, _ = make(center=True, offset=2.0)
    squares = np.array([4.0, np.inf, 9.0, 1e308])
    center = np.array([1.0, 1e200, 1.0, 1e200])
    obj.center = center
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diagonal = obj.curvature_from(squares, 2.0)
    coef, _ = obj.unpack(diagonal)
    # finite columns: c (squares - w center^2) / w + l2; an infinite sum of
    # squares gives no estimate, an overflowing centre the penalty alone
    expected = obj.uniform_curvature * (squares[[0, 2]] - 2.0) / 2.0 + obj.l2_strength()
    assert_allclose(coef[:, [0, 2]], np.tile(expected, (coef.shape[0], 1)), rtol=1e-14)
    assert not np.any(np.isfinite(coef[:, 1]))
    assert_allclose(coef[:, 3], obj.l2_strength(), rtol=0)

def test_layout_and_binary_form():
    obj, _ = make(n_classes=2, d=4)
    assert obj.n_logits == 1
    assert obj.n_params == 5
    obj, _ = make(n_classes=3, d=4, fit_intercept=False)
    assert obj.n_logits == 3
    assert obj.n_params == 12
    params = obj.init_params(np.arange(12.0).reshape(3, 4))
    coef, intercept = obj.unpack(params)
    assert_allclose(coef, np.arange(12.0).reshape(3, 4))
    assert_allclose(intercept, 0.0)


class Rule:
    """Plain SGD settings: constant rate, no momentum."""

    solver, learning_rate, eta0, power_t, alpha = "sgd", "constant", 0.1, 0.5, 0.0
    momentum, nesterovs_momentum, beta_1, beta_2, epsilon = 0.0, False, 0.9, 0.999, 1e-8
    average = 0
    intercept_scale = 1.0


@pytest.mark.parametrize("sparse, center", [(False, False), (True, False),
                                            (False, True)])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_one_minibatch_step_is_a_gradient_step_on_that_batch(sparse, n_classes,
                                                             center):
    obj, params = make(n_classes=n_classes, alpha=0.2, sparse=sparse, smoothing=0.1,
                       center=center, offset=2.0 if center else 0.0)
    rows = np.array([1, 4, 9, 4], dtype=np.intp)
    X_rows = obj.X[rows]
    # in centred coordinates: the whole data's centre, not the batch's
    sub = SoftmaxObjective(X_rows, obj.y[rows], obj.sample_weight[rows], n_classes,
                           alpha=0.2, label_smoothing=0.1, center=obj.center)
    ref_loss, ref_grad = sub.loss_gradient(params)
    expected = params - 0.1 * ref_grad
    state = MinibatchState(params.copy(), "sgd", 0.1)
    loss, diverged = obj.minibatch_epoch(state, rows, len(rows), Rule)
    assert not diverged
    assert state.step == 1
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert_allclose(state.params, expected, rtol=1e-12, atol=1e-14)


def test_epoch_loss_is_the_weighted_mean_of_the_batch_losses():
    obj, params = make(alpha=0.0)
    order = np.arange(30, dtype=np.intp)
    rule = type("Frozen", (Rule,), {"eta0": 1e-300})  # steps too small to matter
    state = MinibatchState(params.copy(), "sgd", rule.eta0)
    loss, _ = obj.minibatch_epoch(state, order, 7, rule)  # batches of 7, 7, 7, 7, 2
    batches = [order[a:a + 7] for a in range(0, 30, 7)]
    weights = [obj.sample_weight[b].sum() for b in batches]
    losses = [SoftmaxObjective(obj.X[b], obj.y[b], obj.sample_weight[b], 3)
              .loss_gradient(params)[0] for b in batches]
    assert state.step == 5
    assert loss == pytest.approx(np.average(losses, weights=weights), rel=1e-10)


def test_all_zero_weight_minibatch_steps_on_the_penalty_only():
    obj, params = make(alpha=0.5)
    obj.sample_weight[:3] = 0.0
    state = MinibatchState(params.copy(), "sgd", 0.1)
    loss, _ = obj.minibatch_epoch(state, np.arange(3, dtype=np.intp), 3, Rule)
    coef, intercept = obj.unpack(params)
    assert loss == 0.0  # the epoch's loss is a mean over weight, and it has none
    new_coef, new_intercept = obj.unpack(state.params)
    assert_allclose(new_coef, coef - 0.1 * 0.5 * coef)
    assert_allclose(new_intercept, intercept)


def test_epoch_reports_divergence():
    obj, params = make(alpha=0.0)
    params[:] = np.nan
    state = MinibatchState(params, "sgd", 0.1)
    _, diverged = obj.minibatch_epoch(state, np.arange(30, dtype=np.intp), 10, Rule)
    assert diverged
    assert state.step == 0


def test_epoch_l1_prox_zeroes_small_coefficients():
    obj, params = make(alpha=2.0, l1_ratio=0.5)  # l1 strength 1, l2 strength 1
    state = MinibatchState(params.copy(), "sgd", 0.1)
    obj.minibatch_epoch(state, np.arange(30, dtype=np.intp), 30, Rule)
    _, ref_grad = SoftmaxObjective(obj.X, obj.y, obj.sample_weight, 3, alpha=2.0,
                                   l1_ratio=0.5).loss_gradient(params)
    step = params - 0.1 * ref_grad
    coef = obj.unpack(step)[0]
    expected = np.sign(coef) * np.maximum(np.abs(coef) - 0.1, 0.0)
    assert_allclose(obj.unpack(state.params)[0], expected, rtol=1e-12, atol=1e-15)
    assert_allclose(obj.unpack(state.params)[1], obj.unpack(step)[1], rtol=1e-12)
    assert np.count_nonzero(expected == 0) > 0


def test_objective_includes_the_l1_part():
    obj, params = make(alpha=0.3, l1_ratio=0.5)
    assert obj.objective(params) == pytest.approx(objective_by_formula(obj, params),
                                                  rel=1e-12)
    coef, _ = obj.unpack(params)
    assert obj.l1_penalty(params) == pytest.approx(0.3 * 0.5 * np.abs(coef).sum())


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_curvature_estimate_is_the_hessian_diagonal_at_zero(n_classes, sparse,
                                                           fit_intercept):
    # at params = 0 every class has probability 1/K (1/2 in the binary form),
    # where the estimate is exact; label smoothing does not change the Hessian
    obj, _ = make(n_classes, fit_intercept, alpha=0.3, smoothing=0.1, sparse=sparse,
                  d=5)
    h = obj.curvature_estimate()
    assert_allclose(h, hessian_diagonal_at_zero(obj), rtol=1e-6)
    # and it is the documented formula, with the sample weights
    X = obj.X.toarray() if sparse else obj.X
    c = 0.25 if n_classes == 2 else (1 / n_classes) * (1 - 1 / n_classes)
    s = obj.sample_weight
    coef, intercept = obj.unpack(h)
    assert_allclose(coef, np.broadcast_to(c * (s @ X**2) / s.sum() + 0.3, coef.shape),
                    rtol=1e-12)
    if fit_intercept:
        assert_allclose(intercept, c, rtol=0)


class AveragingRule(Rule):
    average = 3  # from the first update after which 3 samples have been seen


@pytest.mark.parametrize("sparse", [False, True])
def test_epoch_averages_the_iterates_from_the_start_point(sparse):
    obj, params = make(n_classes=3, alpha=0.1, sparse=sparse)
    order = np.array([0, 5, 2, 7, 1, 9, 3], dtype=np.intp)
    averaged = MinibatchState(params.copy(), "sgd", 0.1)
    obj.minibatch_epoch(averaged, order, 2, AveragingRule)
    # the same updates one minibatch at a time, the iterates kept by hand
    plain = MinibatchState(params.copy(), "sgd", 0.1)
    iterates = []
    for a in range(0, len(order), 2):
        obj.minibatch_epoch(plain, order[a:a + 2], 2, Rule)
        iterates.append(plain.params.copy())
    assert_allclose(averaged.params, plain.params, rtol=1e-12)
    # 2 samples after the first update, 4 after the second: the mean of the
    # iterates after updates 2, 3 and 4
    assert list(averaged.counts) == [4, 7, 3]
    assert_allclose(averaged.average, np.mean(iterates[1:], axis=0), rtol=1e-12)
    assert averaged.model is averaged.average
    assert plain.model is plain.params


def smoothness_by_formula(X, w, c, l2, fit_intercept, scale_intercept=True):
    """:meth:`SoftmaxObjective.smoothness` as its docstring states it."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=float)
    moment = (X * w[:, None]).T @ X / w.sum()
    coef_top = np.linalg.eigvalsh(moment)[-1]
    delta = min(1.0, coef_top) if fit_intercept and scale_intercept else 1.0
    if fit_intercept:
        X = np.hstack([X, np.full((X.shape[0], 1), np.sqrt(delta))])
    top = np.linalg.eigvalsh((X * w[:, None]).T @ X / w.sum())[-1]
    return c * np.max(w / w.mean() * (X ** 2).sum(axis=1)) + l2, c * top + l2, delta


@pytest.mark.parametrize("scale", [1.0, 0.3])  # delta = 1, delta < 1
@pytest.mark.parametrize("sparse", [False, True])
def test_smoothness_of_rows_of_a_sample_and_without_intercept_scale(scale, sparse):
    obj, _ = make(n_classes=3, alpha=0.3, sparse=sparse, scale=scale, n=40)
    X, w = obj.X, obj.sample_weight
    rows = np.arange(0, 40, 3, dtype=np.intp)
    whole = obj.smoothness()  # (kept for the next call on all rows)
    assert_allclose(obj.smoothness(rows=rows),
                    smoothness_by_formula(X[rows], w[rows], 0.5, 0.3, True),
                    rtol=1e-6)
    # and the whole data after a call on rows (no cached value of the rows')
    assert_allclose(whole, smoothness_by_formula(X, w, 0.5, 0.3, True), rtol=1e-6)
    assert obj.smoothness() == whole
    assert_allclose(obj.smoothness(scale_intercept=False),
                    smoothness_by_formula(X, w, 0.5, 0.3, True, False), rtol=1e-6)
    # a sample of the rows (seeded, without replacement) for the top
    # eigenvalues; the largest row is over all rows
    keep = np.sort(np.random.default_rng(5).choice(40, 16, replace=False))
    sampled = smoothness_by_formula(X[keep], w[keep], 0.5, 0.3, True)
    got = obj.smoothness(n_sample_rows=16, seed=5)
    assert got[1] == pytest.approx(sampled[1], rel=1e-6)
    assert got[2] == pytest.approx(sampled[2], rel=1e-6)
    x_max = (X.toarray() if sparse else X) ** 2
    assert got[0] == pytest.approx(
        0.5 * np.max(w / w.mean() * (x_max.sum(axis=1) + got[2])) + 0.3, rel=1e-10)
    # no weight: the penalty alone
    zero = SoftmaxObjective(obj.X, obj.y, np.zeros(40), 3, alpha=0.3)
    assert zero.smoothness() == (0.3, 0.3, 1.0)


def test_top_eigenvalue_is_the_squared_spectral_norm():
    from sksoftmax._objective import _top_eigenvalue
    rng = np.random.RandomState(0)
    for shape in [(2, 5), (5, 2), (9, 6)]:
        A = rng.randn(*shape)
        expected = np.linalg.norm(A, 2) ** 2
        assert _top_eigenvalue(A, 0) == pytest.approx(expected, rel=1e-10)
        assert _top_eigenvalue(sp.csr_matrix(A), 0) == pytest.approx(expected,
                                                                     rel=1e-10)
    A[0, 0] = np.inf
    assert _top_eigenvalue(A, 0) == np.inf
    assert _top_eigenvalue(sp.csr_matrix(A), 0) == np.inf


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_classes, fit_intercept", [(2, True), (3, True), (3, False)])
def test_smoothness_constants_are_the_exact_bounds(sparse, n_classes, fit_intercept):
    obj, _ = make(n_classes=n_classes, alpha=0.3, sparse=sparse,
                  fit_intercept=fit_intercept)
    c = 0.25 if n_classes == 2 else 0.5
    max_smoothness, mean_smoothness, delta = obj.smoothness()
    expected_max, expected_mean, expected_delta = smoothness_by_formula(
        obj.X, obj.sample_weight, c, 0.3, fit_intercept)
    assert delta == pytest.approx(expected_delta, rel=1e-8)
    assert max_smoothness == pytest.approx(expected_max, rel=1e-10)
    assert mean_smoothness == pytest.approx(expected_mean, rel=1e-6)
    # the mean loss's Hessian, in the metric where the intercept moves delta
    # times as far, is bounded by it at any point (finite differences)
    params = np.random.default_rng(0).standard_normal(obj.n_params)
    direction = np.random.default_rng(1).standard_normal(obj.n_params)
    if fit_intercept:
        direction[obj.n_logits * obj.n_features:] *= np.sqrt(delta)
    h = 1e-5
    g_plus = obj.loss_gradient(params + h * direction)[1].copy()
    g_minus = obj.loss_gradient(params - h * direction)[1].copy()
    metric = np.ones(obj.n_params)
    if fit_intercept:
        metric[obj.n_logits * obj.n_features:] = 1.0 / delta
    curvature = (direction @ (g_plus - g_minus) / (2 * h)
                 / (direction @ (metric * direction)))
    assert 0 < curvature <= mean_smoothness * (1 + 1e-6)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_feature_curvature_is_the_hessian_at_equal_probabilities(n_classes):
    # centred coordinates: the Hessian's coefficient block at zero parameters
    # is (diag(p) - p p') ⊗ C + l2; the model keeps c = p (1 - p) of it
    obj, _ = make(n_classes, alpha=0.3, offset=3.0, center=True, d=5)
    n_logits, vectors, values, rest = obj.feature_curvature()
    F = vectors @ np.diag(values) @ vectors.T
    w = obj.sample_weight
    Xc = obj.X - np.average(obj.X, axis=0, weights=w)
    C = (Xc * w[:, None]).T @ Xc / w.sum()
    p = 0.5 if n_classes == 2 else 1.0 / n_classes
    assert n_logits == obj.n_logits
    assert_allclose(F, p * (1 - p) * C + 0.3 * np.eye(5), rtol=1e-10, atol=1e-12)
    # its diagonal is the curvature estimate's
    n_coef = obj.n_logits * obj.n_features
    assert_allclose(np.tile(np.diag(F), obj.n_logits),
                    obj.curvature_estimate()[:n_coef], rtol=1e-10)
    # and for two classes (one logit) it is the Hessian itself, by finite
    # differences of the gradient at zero
    if n_classes == 2:
        assert_allclose(F, hessian_at_zero(obj)[:5, :5], rtol=1e-5, atol=1e-8)


def hessian_at_zero(obj, h=1e-6):
    """The objective's Hessian at zero parameters, by central differences."""
    columns = []
    for j in range(obj.n_params):
        e = np.zeros(obj.n_params)
        e[j] = h
        columns.append((obj.loss_gradient(e)[1].copy()
                        - obj.loss_gradient(-e)[1].copy()) / (2 * h))
    return np.array(columns).T


def test_feature_curvature_on_many_features_keeps_the_top_of_the_spectrum():
    obj, _ = make(3, alpha=0.3, center=True, n=60, d=12)
    full = obj.feature_curvature()
    # exactly: every eigenpair, and no rest of the spectrum but the penalty
    # (up to max_exact features, or with no more rows than the rank)
    assert full[1].shape == (12, 12)
    assert full[3] == 0.3
    assert obj.feature_curvature(max_exact=12, rank=4)[1].shape == (12, 12)
    few, _ = make(3, alpha=0.3, center=True, n=4, d=12)
    assert few.feature_curvature(max_exact=8, rank=4)[1].shape == (12, 12)
    _, vectors, values, rest = obj.feature_curvature(max_exact=8, rank=4)
    exact = np.sort(full[2])[::-1]
    assert vectors.shape == (12, 4)
    assert_allclose(vectors.T @ vectors, np.eye(4), atol=1e-10)
    # (a float32 randomized SVD: a preconditioner's accuracy)
    assert_allclose(np.sort(values)[::-1], exact[:4], rtol=1e-4)
    # the rest of the spectrum by its mean: the trace is kept
    assert rest == pytest.approx(exact[4:].mean(), rel=1e-4)
    # a sample of the rows: the second moment of those rows (centred at
    # their own weighted mean), the same ones for the same seed
    _, vectors, values, _ = obj.feature_curvature(n_sample_rows=20, seed=3)
    keep = np.sort(np.random.default_rng(3).choice(60, 20, replace=False))
    Xs, ws = obj.X[keep], obj.sample_weight[keep]
    Xs = Xs - np.average(Xs, axis=0, weights=ws)
    F = obj.uniform_curvature * (Xs * ws[:, None]).T @ Xs / ws.sum() + 0.3 * np.eye(12)
    assert_allclose(vectors @ np.diag(values) @ vectors.T, F, rtol=1e-10,
                    atol=1e-12)
    # no weight, or a second moment that is not finite: no curvature
    assert SoftmaxObjective(obj.X, obj.y, np.zeros(60), 3,
                            fit_intercept=False).feature_curvature() is None
    X = obj.X.copy()
    X[0, 0] = 1e200
    huge = SoftmaxObjective(X, obj.y, obj.sample_weight, 3, fit_intercept=False)
    assert huge.feature_curvature() is None
    assert huge.feature_curvature(max_exact=8, rank=4) is None


def test_feature_curvature_only_where_it_is_a_kronecker_product():
    assert make(3, sparse=True, center=True)[0].feature_curvature() is None
    # an intercept in uncentred coordinates couples to the features
    assert make(3, center=False)[0].feature_curvature() is None
    n_logits, vectors, values, _ = make(3, fit_intercept=False)[0].feature_curvature()
    assert n_logits == 3
    assert vectors.shape == (4, 4)


@pytest.mark.parametrize("d", [6, 600])  # exact Gram / Lanczos on wide data
def test_centred_smoothness_constants_are_the_centred_bounds(d):
    obj, _ = make(3, alpha=0.3, offset=3.0, center=True, n=40, d=d)
    w = obj.sample_weight
    Xc = obj.X - np.average(obj.X, axis=0, weights=w)
    assert_allclose(obj.center, np.average(obj.X, axis=0, weights=w), rtol=1e-12)
    max_smoothness, mean_smoothness, delta = obj.smoothness()
    # the bounds of the centred rows
    expected_max, expected_mean, expected_delta = smoothness_by_formula(
        Xc, w, 0.5, 0.3, True)
    assert delta == pytest.approx(expected_delta, rel=1e-8)
    assert max_smoothness == pytest.approx(expected_max, rel=1e-10)
    assert mean_smoothness == pytest.approx(expected_mean, rel=1e-6)
    # the same constants a second time, unscaled intercept too (Lanczos cached)
    assert obj.smoothness() == (max_smoothness, mean_smoothness, delta)
    unscaled = obj.smoothness(scale_intercept=False)
    assert unscaled[1] == pytest.approx(
        smoothness_by_formula(Xc, w, 0.5, 0.3, True, False)[1], rel=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_gradient_size_is_the_rms_per_sample_gradient_entry(sparse, n_classes):
    obj, params = make(n_classes=n_classes, sparse=sparse)
    rows = np.array([0, 3, 4, 8, 11], dtype=np.intp)
    squares, used = [], []
    for i in rows:
        # one sample's gradient of the unpenalised, unnormalised loss
        one = SoftmaxObjective(obj.X[i:i + 1], obj.y[i:i + 1], np.ones(1), n_classes)
        squares.append(np.sum(one.loss_gradient(params)[1] ** 2))
        # the entries it can move: its nonzero features' and the intercept's
        x = obj.X[i].toarray().ravel() if sparse else obj.X[i]
        used.append(obj.n_logits * (np.count_nonzero(x) + 1))
    w = obj.sample_weight[rows]
    expected = np.sqrt((w @ squares) / (w @ used))
    assert obj.gradient_size(params, rows) == pytest.approx(expected, rel=1e-10)
    # rows without weight: no entries, a size of 0
    weightless = SoftmaxObjective(obj.X, obj.y, np.zeros(obj.X.shape[0]), n_classes)
    assert weightless.gradient_size(params, rows) == 0.0


def test_gradient_size_in_centred_coordinates():
    # per-sample gradients in the parameters' (centred) coordinates
    obj, params = make(n_classes=3, center=True, offset=2.0)
    rows = np.arange(0, 30, 2, dtype=np.intp)
    squares = [np.sum(SoftmaxObjective(obj.X[i:i + 1], obj.y[i:i + 1], np.ones(1), 3,
                                       center=obj.center)
                      .loss_gradient(params)[1] ** 2) for i in rows]
    w = obj.sample_weight[rows]
    expected = np.sqrt((w @ squares) / (w.sum() * 3 * (obj.n_features + 1)))
    assert obj.gradient_size(params, rows) == pytest.approx(expected, rel=1e-10)


# ------------------------------------------------- lazy minibatch epochs (CSR)
def stochastic_rule(solver, momentum=0.9, nesterov=True, average=5,
                    intercept_scale=0.3):
    return MinibatchSolver(solver, learning_rate="optimal", eta0=0.05, power_t=0.5,
                           alpha=0.05, momentum=momentum, nesterovs_momentum=nesterov,
                           beta_1=0.9, beta_2=0.999, epsilon=1e-8, average=average,
                           intercept_scale=intercept_scale)


def run_epochs(obj, rule, batch_size, n_epochs=3):
    state = rule.init_state(obj.init_params())
    losses = []
    for epoch in range(n_epochs):
        order = np.random.RandomState(epoch).permutation(obj.X.shape[0])
        loss, diverged = obj.minibatch_epoch(state, order.astype(np.intp),
                                             batch_size, rule)
        assert not diverged
        losses.append(loss)
    return state, losses


@pytest.mark.parametrize("momentum, nesterov", [(0.9, True), (0.9, False), (0.0, True)])
@pytest.mark.parametrize("n_classes, fit_intercept", [(2, True), (3, True), (3, False)])
@pytest.mark.parametrize("batch_size", [1, 7])
def test_lazy_sparse_sgd_is_the_dense_step_sgd(momentum, nesterov, n_classes,
                                               fit_intercept, batch_size):
    # the lazy CSR epoch (only the batch's features per step) takes exactly
    # the steps of the dense epoch on the same numbers; 180 one-row steps
    # with momentum also cross the re-normalisation of its transform
    obj, _ = make(n_classes=n_classes, sparse=True, fit_intercept=fit_intercept,
                  alpha=0.05, smoothing=0.1, n=60, d=12)
    dense = SoftmaxObjective(obj.X.toarray(), obj.y, obj.sample_weight, n_classes,
                             fit_intercept=fit_intercept, alpha=0.05,
                             label_smoothing=0.1)
    rule = stochastic_rule("sgd", momentum, nesterov)
    lazy_state, lazy_losses = run_epochs(obj, rule, batch_size)
    dense_state, dense_losses = run_epochs(dense, rule, batch_size)
    for name in ("params", "velocity", "average", "counts"):
        assert_allclose(getattr(lazy_state, name), getattr(dense_state, name),
                        rtol=1e-9, atol=1e-12, err_msg=name)
    assert_allclose(lazy_losses, dense_losses, rtol=1e-10)


def test_lazy_sparse_adam_with_every_feature_in_every_batch_is_adam():
    obj, _ = make(n_classes=3, alpha=0.05, n=40, d=5)  # no zeros
    sparse = SoftmaxObjective(sp.csr_matrix(obj.X), obj.y, obj.sample_weight, 3,
                              alpha=0.05)
    rule = stochastic_rule("adam")
    lazy_state, lazy_losses = run_epochs(sparse, rule, 8)
    dense_state, dense_losses = run_epochs(obj, rule, 8)
    for name in ("params", "m", "v", "average"):
        assert_allclose(getattr(lazy_state, name), getattr(dense_state, name),
                        rtol=1e-10, atol=1e-13, err_msg=name)
    assert_allclose(lazy_losses, dense_losses, rtol=1e-12)


def test_lazy_sparse_adam_follows_its_documented_rule():
    # a reference written from the docstring: a coefficient row moves only in
    # steps that use its feature, its moments decay by beta ** (steps sat
    # out) first, and its L2 gradient is scaled by 1 / P(a batch uses it)
    obj, _ = make(n_classes=3, sparse=True, alpha=0.05, n=24, d=6)
    X = obj.X.toarray()
    batch_size, rule = 4, stochastic_rule("adam", average=0, intercept_scale=1.0)
    order = np.random.RandomState(0).permutation(24).astype(np.intp)
    state = rule.init_state(obj.init_params())
    obj.minibatch_epoch(state, order, batch_size, rule)

    w = obj.init_params().reshape(-1)
    coef_rows = [np.arange(k * 6, k * 6 + 6) for k in range(3)]
    m, v = np.zeros_like(w), np.zeros_like(w)
    last = np.full(7, -1)
    used_share = np.count_nonzero(X, axis=0) / 24
    inv_q = 1.0 / (1.0 - (1.0 - used_share) ** batch_size)
    for step, a in enumerate(range(0, 24, batch_size)):
        rows = order[a:a + batch_size]
        sub = SoftmaxObjective(X[rows], obj.y[rows], obj.sample_weight[rows], 3)
        g = sub.loss_gradient(w)[1].copy()
        lr = _steps.adam_rate(0.05 / (1 + 0.05 * 0.05 * step), step, 0.9, 0.999)
        used = list(np.flatnonzero(np.any(X[rows] != 0, axis=0))) + [6]
        for j in used:
            idx = ([c[j] for c in coef_rows] if j < 6 else 18 + np.arange(3))
            idx = np.asarray(idx)
            if j < 6:
                g[idx] += 0.05 * inv_q[j] * w[idx]
            sat_out = step - last[j] - 1
            m[idx] = 0.9 * m[idx] * 0.9 ** sat_out + 0.1 * g[idx]
            v[idx] = 0.999 * v[idx] * 0.999 ** sat_out + 0.001 * g[idx] ** 2
            w[idx] -= lr * m[idx] / (np.sqrt(v[idx]) + 1e-8)
            last[j] = step
    for j in range(7):  # the moments' decay up to the last step
        idx = np.asarray([c[j] for c in coef_rows] if j < 6 else 18 + np.arange(3))
        m[idx] *= 0.9 ** (5 - last[j])
        v[idx] *= 0.999 ** (5 - last[j])
    assert_allclose(state.params, w, rtol=1e-12, atol=1e-15)
    assert_allclose(state.m, m, rtol=1e-12, atol=1e-15)
    assert_allclose(state.v, v, rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize("sparse", [False, True])
def test_intercept_scale_scales_the_intercepts_step(sparse):
    # plain SGD: the coefficients move by -eta g, the intercept by -eta delta g
    obj, params = make(n_classes=3, alpha=0.2, sparse=sparse)
    rows = np.array([1, 4, 9], dtype=np.intp)
    sub = SoftmaxObjective(obj.X[rows], obj.y[rows], obj.sample_weight[rows], 3,
                           alpha=0.2)
    _, grad = sub.loss_gradient(params)
    expected = params - 0.1 * grad
    n_coef = obj.n_logits * obj.n_features
    expected[n_coef:] = params[n_coef:] - 0.1 * 0.25 * grad[n_coef:]

    class Scaled(Rule):
        intercept_scale = 0.25

    state = MinibatchState(params.copy(), "sgd", 0.1)
    obj.minibatch_epoch(state, rows, len(rows), Scaled)
    assert_allclose(state.params, expected, rtol=1e-12, atol=1e-14)


# --------------------------------------------------- variance-reduced epochs
def svrg_reference(obj, params, snapshot, order, batch_size, eta, intercept_scale):
    """SVRG steps written with loss_gradient on sub-objectives of each batch.

    Returns the parameters after the epoch and the weighted mean of each
    batch's data loss before its step.
    """
    params = params.copy()
    total = weight = 0.0
    full = obj.data_gradient(snapshot, obj.loss_gradient(snapshot)[1])
    n_coef = obj.n_logits * obj.n_features
    l1 = obj.l1_strength()
    for a in range(0, len(order), batch_size):
        rows = order[a:a + batch_size]
        sub = SoftmaxObjective(obj.X[rows], obj.y[rows], obj.sample_weight[rows],
                               obj.n_classes, fit_intercept=obj.fit_intercept,
                               label_smoothing=obj.label_smoothing,
                               center=obj.center)
        batch_loss, g = sub.loss_gradient(params)
        g = g.copy() - sub.loss_gradient(snapshot)[1] + full
        total += batch_loss * obj.sample_weight[rows].sum()
        weight += obj.sample_weight[rows].sum()
        g[:n_coef] += obj.l2_strength() * params[:n_coef]
        params[:n_coef] -= eta * g[:n_coef]
        params[n_coef:] -= eta * intercept_scale * g[n_coef:]
        if l1:
            w = params[:n_coef]
            params[:n_coef] = np.sign(w) * np.maximum(np.abs(w) - eta * l1, 0.0)
    return params, total / weight


@pytest.mark.parametrize("sparse, center", [(False, False), (True, False),
                                            (False, True)])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("l1_ratio", [0.0, 0.5])
def test_variance_reduced_epoch_is_svrg(sparse, center, n_classes, l1_ratio):
    obj, params = make(n_classes=n_classes, alpha=0.2, l1_ratio=l1_ratio,
                       sparse=sparse, smoothing=0.1, center=center,
                       offset=2.0 if center else 0.0)
    snapshot = params + np.random.RandomState(1).randn(obj.n_params) * 0.1
    order = np.random.RandomState(2).permutation(30).astype(np.intp)
    expected, expected_loss = svrg_reference(obj, params, snapshot, order, 7, 0.3,
                                             0.5)
    _, gradient = obj.loss_gradient(snapshot)
    start = params.copy()
    loss, diverged = obj.variance_reduced_epoch(params, snapshot, gradient.copy(),
                                                order, 7, 0.3, 0.5)
    assert not diverged
    assert_allclose(params, expected, rtol=1e-10, atol=1e-12)
    assert_allclose(loss, expected_loss, rtol=1e-10)
    assert not np.array_equal(params, start)


def test_variance_reduced_epoch_at_the_snapshot_of_the_optimum_stays_there():
    # at the optimum the control variate cancels every batch's noise: the
    # estimate is the full gradient, zero, whatever the batch
    obj, _ = make(alpha=0.5)
    optimum = obj.init_params()
    for _ in range(200):  # gradient descent to the optimum of this small problem
        optimum -= 0.5 * obj.loss_gradient(optimum)[1]
    assert obj.optimality(optimum, obj.loss_gradient(optimum)[1]) < 1e-12
    params = optimum.copy()
    obj.variance_reduced_epoch(params, optimum, obj.loss_gradient(optimum)[1].copy(),
                               np.arange(30, dtype=np.intp), 4, 1.0)
    assert_allclose(params, optimum, atol=1e-12)


def test_optimality_is_the_minimum_norm_subgradient():
    obj, _ = make(n_classes=3, alpha=1.0, l1_ratio=0.5, d=2)
    params = np.array([0.0, 0.0, 1.0, -2.0, 0.0, 3.0, 0.1, 0.2, 0.3])
    gradient = np.array([0.2, -0.9, 0.1, 0.4, 0.5, -0.6, 0.05, -0.02, 0.01])
    # l1 = 0.5: at zero max(|g| - 0.5, 0); elsewhere |g + 0.5 sign(w)|
    expected = [0.0, 0.4, 0.6, 0.1, 0.0, 0.1, 0.05, 0.02, 0.01]
    assert obj.optimality(params, gradient) == pytest.approx(max(expected))
    # the first entry counts too
    gradient[0] = -1.5
    assert obj.optimality(params, gradient) == pytest.approx(1.0)
    plain, _ = make(n_classes=3, alpha=1.0, d=2)
    assert plain.optimality(params, gradient) == pytest.approx(1.5)
    # nothing to optimise: optimal
    assert obj.optimality(np.empty(0), np.empty(0)) == 0.0


@pytest.mark.parametrize("n_classes", [2, 4])
def test_zero_objective_is_the_objective_at_zero(n_classes):
    obj, _ = make(n_classes=n_classes, smoothing=0.2, l1_ratio=0.3)
    assert obj.zero_objective() == pytest.approx(obj.objective(obj.init_params()),
                                                 rel=1e-12)


def test_inverse_frequency_of_the_features_a_minibatch_uses():
    # q_j = 1 - (1 - share_j)^B, share_j the fraction of the epoch's rows
    # that hold feature j; features no row holds get 0, not inf
    X = sp.csr_matrix(np.array([[1.0, 0, 2.0, 0, 0], [0, 0, 3.0, 0, 0],
                                [4.0, 0, 0, 0, 0], [0, 5.0, 6.0, 0, 0]]))
    obj = SoftmaxObjective(X, np.array([0, 1, 2, 0]), np.ones(4), 3)
    every = np.arange(4, dtype=np.intp)
    share = np.array([2, 1, 3, 0, 0]) / 4
    expected = np.zeros(5)
    expected[:3] = 1 / (1 - (1 - share[:3]) ** 2)
    assert_allclose(obj._inverse_frequency(every, 2), expected, rtol=1e-14)
    # an epoch over some of the rows: their shares alone
    some = np.array([3, 1], dtype=np.intp)
    share = np.array([0, 1, 2, 0, 0]) / 2
    expected = np.zeros(5)
    expected[1:3] = 1 / (1 - (1 - share[1:3]) ** 3)
    assert_allclose(obj._inverse_frequency(some, 3), expected, rtol=1e-14)
