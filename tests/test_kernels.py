"""The fused Numba kernels against the NumPy math they must reproduce."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from sksoftmax import _kernels, log_softmax, one_hot, softmax
from sksoftmax._kernels import Workspace, loss_gradient_sums


def reference(X, y, sw, coef, intercept, rows, smoothing, binary):
    """Loss and gradient sums from the public math, in float64."""
    X = np.asarray(X.todense() if sp.issparse(X) else X, dtype=np.float64)[rows]
    y, sw = y[rows], sw[rows]
    Z = X @ coef.astype(np.float64).T + intercept.astype(np.float64)
    if binary:
        Z = np.column_stack([np.zeros(len(Z)), Z])
    K = Z.shape[1]
    T = (1 - smoothing) * one_hot(y, K) + smoothing / K
    loss = np.sum(sw * -np.sum(T * log_softmax(Z, axis=1), axis=1))
    dZ = (softmax(Z, axis=1) - T) * sw[:, None]
    if binary:
        dZ = dZ[:, 1:]
    return loss, dZ.T @ X, dZ.sum(axis=0)


def problem(n=40, d=5, n_classes=4, dtype=np.float64, sparse=False, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d).astype(dtype)
    if sparse:
        X[rng.rand(n, d) < 0.5] = 0
        X = sp.csr_matrix(X)
    y = rng.randint(0, n_classes, n).astype(np.intp)
    sw = rng.uniform(0, 2, n)
    sw[::7] = 0.0
    n_logits = 1 if n_classes == 2 else n_classes
    coef = rng.randn(n_logits, d).astype(dtype)
    intercept = rng.randn(n_logits).astype(dtype)
    return X, y, sw, coef, intercept


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("parallel", [False, True])
def test_kernel_matches_reference(dtype, sparse, n_classes, smoothing, parallel,
                                  monkeypatch):
    if parallel:  # force several chunks on a tiny problem
        monkeypatch.setattr(_kernels, "_MIN_ROWS_PER_CHUNK", 4)
    X, y, sw, coef, intercept = problem(dtype=dtype, sparse=sparse,
                                        n_classes=n_classes)
    rows = np.arange(X.shape[0], dtype=np.intp)
    binary = n_classes == 2
    loss, g_coef, g_int = loss_gradient_sums(
        X, y, sw, coef, intercept, rows, smoothing, binary,
        n_threads=3 if parallel else 1)
    ref_loss, ref_coef, ref_int = reference(X, y, sw, coef, intercept, rows,
                                            smoothing, binary)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert g_coef.dtype == np.float64
    assert loss == pytest.approx(ref_loss, rel=rtol)
    assert_allclose(g_coef, ref_coef, rtol=rtol, atol=rtol)
    assert_allclose(g_int, ref_int, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("sparse", [False, True])
def test_kernel_uses_only_the_given_rows(sparse):
    X, y, sw, coef, intercept = problem(sparse=sparse)
    rows = np.array([5, 3, 3, 30, 0], dtype=np.intp)  # any order, repeats count twice
    ws = Workspace(*coef.shape)
    ws.grad_coef[:] = 123.0  # stale values must be overwritten
    loss, g_coef, g_int = loss_gradient_sums(X, y, sw, coef, intercept, rows, 0.0,
                                             False, workspace=ws)
    ref = reference(X, y, sw, coef, intercept, rows, 0.0, False)
    assert loss == pytest.approx(ref[0], rel=1e-12)
    assert_allclose(g_coef, ref[1], rtol=1e-12, atol=1e-14)
    assert_allclose(g_int, ref[2], rtol=1e-12, atol=1e-14)
    assert g_coef is ws.grad_coef  # minibatch steps reuse the workspace


def test_parallel_and_serial_agree_and_are_deterministic(monkeypatch):
    monkeypatch.setattr(_kernels, "_MIN_ROWS_PER_CHUNK", 8)
    X, y, sw, coef, intercept = problem(n=100)
    rows = np.arange(100, dtype=np.intp)
    serial = loss_gradient_sums(X, y, sw, coef, intercept, rows, 0.0, False)
    first = loss_gradient_sums(X, y, sw, coef, intercept, rows, 0.0, False,
                               n_threads=4)
    second = loss_gradient_sums(X, y, sw, coef, intercept, rows, 0.0, False,
                                n_threads=4)
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    assert first[0] == pytest.approx(serial[0], rel=1e-13)
    assert_allclose(first[1], serial[1], rtol=1e-12)


def test_kernel_is_stable_for_huge_logits():
    X = np.array([[1e3], [-1e3]])
    y = np.array([1, 0], dtype=np.intp)  # both confidently wrong: loss 2e4 each
    sw = np.ones(2)
    coef = np.array([[10.0], [-10.0]])  # logits of +-1e4
    loss, g_coef, _ = loss_gradient_sums(X, y, sw, coef, np.zeros(2),
                                         np.arange(2, dtype=np.intp), 0.0, False)
    assert loss == pytest.approx(4e4, rel=1e-14)
    assert_allclose(g_coef, [[2e3], [-2e3]], rtol=1e-14)


def test_zero_weight_rows_are_skipped_even_if_they_overflow():
    X = np.array([[1.0], [1e308]])
    y = np.array([0, 1], dtype=np.intp)
    sw = np.array([1.0, 0.0])
    loss, g_coef, g_int = loss_gradient_sums(X, y, sw, np.array([[10.0], [-10.0]]),
                                             np.zeros(2), np.arange(2, dtype=np.intp),
                                             0.0, False)
    assert np.isfinite(loss) and np.all(np.isfinite(g_coef))


def test_kernel_does_not_modify_inputs():
    X, y, sw, coef, intercept = problem(sparse=True)
    copies = [a.copy() for a in (X.data, y, sw, coef, intercept)]
    loss_gradient_sums(X, y, sw, coef, intercept, np.arange(40, dtype=np.intp), 0.1,
                       False)
    for before, after in zip(copies, (X.data, y, sw, coef, intercept)):
        np.testing.assert_array_equal(before, after)
