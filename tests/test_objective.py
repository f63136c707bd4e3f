"""The parameter-level objective: values from the math, gradients by finite differences."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from scipy.optimize import check_grad

from sksoftmax import log_softmax, one_hot
from sksoftmax._objective import SoftmaxObjective


def make(n_classes=3, fit_intercept=True, alpha=0.1, l1_ratio=0.0, smoothing=0.0,
         sparse=False, dtype=np.float64, n=30, d=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d).astype(dtype)
    if sparse:
        X[rng.rand(n, d) < 0.4] = 0
        X = sp.csr_matrix(X)
    y = rng.randint(0, n_classes, n).astype(np.intp)
    sw = rng.uniform(0.5, 2.0, n)
    obj = SoftmaxObjective(X, y, sw, n_classes, fit_intercept=fit_intercept,
                           alpha=alpha, l1_ratio=l1_ratio, label_smoothing=smoothing)
    params = rng.randn(obj.n_params) * 0.5
    return obj, params


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
@pytest.mark.parametrize("sparse", [False, True])
def test_loss_and_gradient(n_classes, fit_intercept, smoothing, sparse):
    obj, params = make(n_classes, fit_intercept, smoothing=smoothing, sparse=sparse)
    loss, _ = obj.loss_gradient(params)
    assert loss == pytest.approx(objective_by_formula(obj, params), rel=1e-12)
    err = check_grad(lambda p: obj.loss_gradient(p)[0],
                     lambda p: obj.loss_gradient(p)[1].copy(), params, epsilon=1e-6)
    assert err < 1e-5 * max(1.0, np.linalg.norm(obj.loss_gradient(params)[1]))


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


def test_layout_and_binary_form():
    obj, _ = make(n_classes=2, d=4)
    assert obj.n_logits == 1 and obj.n_params == 5
    obj, _ = make(n_classes=3, d=4, fit_intercept=False)
    assert obj.n_logits == 3 and obj.n_params == 12
    params = obj.init_params(np.arange(12.0).reshape(3, 4))
    coef, intercept = obj.unpack(params)
    assert_allclose(coef, np.arange(12.0).reshape(3, 4))
    assert_allclose(intercept, 0.0)


def test_minibatch_normalises_by_its_own_weights():
    obj, params = make(alpha=0.0)
    rows = np.array([1, 4, 9], dtype=np.intp)
    sub = SoftmaxObjective(obj.X[rows], obj.y[rows], obj.sample_weight[rows], 3,
                           alpha=0.0)
    loss, grad = obj.loss_gradient(params, rows)
    grad = grad.copy()
    ref_loss, ref_grad = sub.loss_gradient(params)
    assert loss == pytest.approx(ref_loss, rel=1e-13)
    assert_allclose(grad, ref_grad, rtol=1e-13)


def test_all_zero_weight_minibatch_has_only_the_penalty():
    obj, params = make(alpha=0.5)
    obj.sample_weight[:3] = 0.0
    loss, grad = obj.loss_gradient(params, np.arange(3, dtype=np.intp))
    coef, _ = obj.unpack(params)
    assert loss == pytest.approx(0.25 * np.sum(coef**2))
    g_coef, g_int = obj.unpack(grad)
    assert_allclose(g_coef, 0.5 * coef)
    assert_allclose(g_int, 0.0)


def test_prox_is_soft_thresholding_of_the_coefficients_only():
    obj, _ = make(alpha=2.0, l1_ratio=0.25, d=2)  # l1 strength 0.5
    params = obj.init_params(np.array([[1.0, -0.2], [0.3, -2.0], [0.0, 0.6]]),
                             np.array([5.0, -5.0, 0.1]))
    shift = np.zeros(obj.n_params)
    assert obj.prox(params, 0.8, out_shift=shift)  # threshold 0.4
    coef, intercept = obj.unpack(params)
    assert_allclose(coef, [[0.6, 0.0], [0.0, -1.6], [0.0, 0.2]])
    assert_allclose(obj.unpack(shift)[0], [[-0.4, 0.2], [-0.3, 0.4], [0.0, -0.4]])
    assert_allclose(obj.unpack(shift)[1], 0.0)
    assert_allclose(intercept, [5.0, -5.0, 0.1])
    # a per-coordinate step
    step = np.full(obj.n_params, 0.2)
    obj.prox(params, step)
    assert_allclose(obj.unpack(params)[0], [[0.5, 0.0], [0.0, -1.5], [0.0, 0.1]])


def test_prox_without_l1_does_nothing():
    obj, params = make(alpha=2.0, l1_ratio=0.0)
    before = params.copy()
    assert not obj.prox(params, 0.8)
    assert_allclose(params, before)


def test_objective_includes_the_l1_part():
    obj, params = make(alpha=0.3, l1_ratio=0.5)
    assert obj.objective(params) == pytest.approx(objective_by_formula(obj, params),
                                                  rel=1e-12)
    coef, _ = obj.unpack(params)
    assert obj.penalty(params) == pytest.approx(
        0.3 * (0.25 * np.sum(coef**2) + 0.5 * np.abs(coef).sum()))
