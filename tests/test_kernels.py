"""The fused Numba kernels against the NumPy math they must reproduce."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit
from numpy.testing import assert_allclose

from sksoftmax import _kernels, log_softmax, one_hot, softmax
from sksoftmax._kernels import (
    TransposedCSR,
    Workspace,
    loss_gradient_sums,
    n_chunks_for,
)
from sksoftmax._parallel import chunk_map, serial_map


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


def chunked_sums(X, y, sw, coef_t, intercept, smoothing, binary, n_chunks,
                 threads=True, two_phase=False):
    """The pass split into ``n_chunks`` chunks, on threads or serially.

    ``two_phase``: CSR through the CSC copy (``TransposedCSR``).
    """
    workspaces = [Workspace(coef_t.shape[1], coef_t.shape[0], X.dtype, sp.issparse(X),
                            accumulator=c == 0 or not two_phase)
                  for c in range(n_chunks)]
    transposed = TransposedCSR(X, coef_t.shape[1], n_chunks) if two_phase else None
    with chunk_map(n_chunks if threads else 1) as map_chunks:
        return loss_gradient_sums(X, y, sw, coef_t, intercept, smoothing, binary,
                                  workspaces=workspaces, map_chunks=map_chunks,
                                  transposed=transposed)


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
@pytest.mark.parametrize("fmt", ["dense", "csr", "csr-two-phase"])
@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("parallel", [False, True])
def test_kernel_matches_reference(dtype, fmt, n_classes, smoothing, parallel):
    X, y, sw, coef, intercept = problem(dtype=dtype, sparse=fmt != "dense",
                                        n_classes=n_classes)
    rows = np.arange(X.shape[0], dtype=np.intp)
    binary = n_classes == 2
    loss, g_coef, g_int = chunked_sums(
        X, y, sw, np.ascontiguousarray(coef.T), intercept, smoothing, binary,
        n_chunks=3 if parallel else 1, two_phase=fmt == "csr-two-phase")
    ref_loss, ref_coef, ref_int = reference(X, y, sw, coef, intercept, rows,
                                            smoothing, binary)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert g_coef.dtype == np.float64
    assert loss == pytest.approx(ref_loss, rel=rtol)
    assert_allclose(g_coef, ref_coef, rtol=rtol, atol=rtol)
    assert_allclose(g_int, ref_int, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_rows", [5, 3 * _kernels.BLOCK_ROWS + 7])
def test_kernel_uses_only_the_given_rows(sparse, n_rows):
    X, y, sw, coef, intercept = problem(n=2000, sparse=sparse)
    rng = np.random.RandomState(1)
    rows = rng.randint(0, 2000, n_rows).astype(np.intp)  # any order, repeats count
    ws = Workspace(coef.shape[0], coef.shape[1], X.dtype, sparse)
    stale = ws.grad_coef_t if sparse else ws.grad_coef
    stale[:] = 123.0  # stale values must be overwritten
    loss, g_coef, g_int = loss_gradient_sums(X, y, sw, np.ascontiguousarray(coef.T),
                                             intercept, 0.0, False, rows=rows,
                                             workspaces=[ws])
    ref = reference(X, y, sw, coef, intercept, rows, 0.0, False)
    assert loss == pytest.approx(ref[0], rel=1e-12)
    assert_allclose(g_coef, ref[1], rtol=1e-12, atol=1e-12)
    assert_allclose(g_int, ref[2], rtol=1e-12, atol=1e-12)
    assert np.shares_memory(g_coef, stale)  # minibatch steps reuse the workspace


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_dense_input_is_read_without_copying_it(dtype):
    X, y, sw, coef, intercept = problem(n=3 * _kernels.BLOCK_ROWS + 11, dtype=dtype)
    coef_t = np.ascontiguousarray(coef.T)
    ref = loss_gradient_sums(X, y, sw, coef_t, intercept, 0.0, False)
    wide = np.zeros((X.shape[0], 2 * X.shape[1]), dtype=dtype)
    wide[:, ::2] = X
    for layout in (np.asfortranarray(X), wide[:, ::2]):
        out = loss_gradient_sums(layout, y, sw, coef_t, intercept, 0.0, False)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        assert out[0] == pytest.approx(ref[0], rel=rtol)
        assert_allclose(out[1], ref[1], rtol=rtol, atol=rtol)


@pytest.mark.parametrize("sparse", [False, True])
def test_threads_change_nothing_and_chunks_only_rounding(sparse):
    X, y, sw, coef, intercept = problem(n=100, sparse=sparse)
    coef_t = np.ascontiguousarray(coef.T)
    one = loss_gradient_sums(X, y, sw, coef_t, intercept, 0.0, False)
    serial = chunked_sums(X, y, sw, coef_t, intercept, 0.0, False, 4, threads=False)
    for _ in range(3):
        threaded = chunked_sums(X, y, sw, coef_t, intercept, 0.0, False, 4)
        # the same chunks give the same sums bit for bit, whoever runs them
        assert threaded[0] == serial[0]
        np.testing.assert_array_equal(threaded[1], serial[1])
        np.testing.assert_array_equal(threaded[2], serial[2])
    assert serial[0] == pytest.approx(one[0], rel=1e-13)
    assert_allclose(serial[1], one[1], rtol=1e-12)


def test_chunks_are_bounded_by_rows_threads_and_memory():
    rows = _kernels._MIN_ROWS_PER_CHUNK
    assert n_chunks_for(10 * rows, 4, 100) == 4
    assert n_chunks_for(3 * rows - 1, 8, 100) == 2
    assert n_chunks_for(rows - 1, 8, 100) == 1
    # 8 bytes per parameter: two extra accumulators fit in the budget, not three
    n_params = _kernels.ACCUMULATOR_BYTES // (8 * 2)
    assert n_chunks_for(100 * rows, 8, n_params) == 3
    assert n_chunks_for(100 * rows, 8, n_params + 1) == 2
    assert n_chunks_for(100 * rows, 8, 10 * _kernels.ACCUMULATOR_BYTES) == 1


def test_a_failing_chunk_raises_after_all_chunks_finished():
    finished = []

    def chunk(c):
        if c == 2:
            raise ValueError("chunk 2 failed")
        finished.append(c)
        return c

    with chunk_map(4) as map_chunks:
        with pytest.raises(ValueError, match="chunk 2 failed"):
            map_chunks(chunk, 4)
        assert sorted(finished) == [0, 1, 3]
        assert map_chunks(lambda c: c * c, 3) == [0, 1, 4]
    assert serial_map(lambda c: c + 1, 3) == [1, 2, 3]


def test_kernel_is_stable_for_huge_logits():
    X = np.array([[1e3], [-1e3]])
    y = np.array([1, 0], dtype=np.intp)  # both confidently wrong: loss 2e4 each
    sw = np.ones(2)
    coef_t = np.array([[10.0, -10.0]])  # logits of +-1e4
    loss, g_coef, _ = loss_gradient_sums(X, y, sw, coef_t, np.zeros(2), 0.0, False)
    assert loss == pytest.approx(4e4, rel=1e-14)
    assert_allclose(g_coef, [[2e3], [-2e3]], rtol=1e-14)


def test_zero_weight_rows_are_skipped_even_if_they_overflow():
    X = np.array([[1.0], [1e308]])
    y = np.array([0, 1], dtype=np.intp)
    sw = np.array([1.0, 0.0])
    for sparse in (False, True):
        Xs = sp.csr_matrix(X) if sparse else X
        loss, g_coef, g_int = loss_gradient_sums(Xs, y, sw, np.array([[10.0, -10.0]]),
                                                 np.zeros(2), 0.0, False)
        # exactly row 0's terms: logits (10, -10) for label 0,
        # loss log(1 + e^-20), residuals (p0 - 1, p1) = (-p1, p1)
        p1 = 1.0 / (1.0 + np.exp(20.0))
        assert loss == pytest.approx(np.log1p(np.exp(-20.0)), rel=1e-12)
        # (p0 - 1 carries float64's absolute rounding of 1: atol)
        assert_allclose(g_coef, [[-p1], [p1]], rtol=1e-10, atol=1e-15)
        assert_allclose(g_int, [-p1, p1], rtol=1e-10, atol=1e-15)


def test_kernel_does_not_modify_inputs():
    for sparse in (False, True):
        X, y, sw, coef, intercept = problem(sparse=sparse)
        coef_t = np.ascontiguousarray(coef.T)
        data = X.data if sparse else X
        copies = [a.copy() for a in (data, y, sw, coef_t, intercept)]
        loss_gradient_sums(X, y, sw, coef_t, intercept, 0.1, False)
        loss_gradient_sums(X, y, sw, coef_t, intercept, 0.1, False,
                           rows=np.arange(40, dtype=np.intp))
        for before, after in zip(copies, (data, y, sw, coef_t, intercept), strict=True):
            np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("parallel", [False, True])
def test_many_blocks_and_chunks_match_reference(parallel):
    X, y, sw, coef, intercept = problem(n=4 * _kernels.BLOCK_ROWS + 13)
    loss, g_coef, g_int = chunked_sums(X, y, sw, np.ascontiguousarray(coef.T),
                                       intercept, 0.05, False,
                                       n_chunks=3 if parallel else 1)
    ref = reference(X, y, sw, coef, intercept, np.arange(X.shape[0]), 0.05, False)
    assert loss == pytest.approx(ref[0], rel=1e-12)
    assert_allclose(g_coef, ref[1], rtol=1e-11, atol=1e-11)
    assert_allclose(g_int, ref[2], rtol=1e-11, atol=1e-11)


@njit
def _exp_in_place(a):
    _kernels._exp_nonpositive(a, np.empty(a.shape[0], dtype=np.int32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorised_exp_is_accurate_and_clamps_only_the_underflow(dtype):
    x = -np.concatenate(
        [np.geomspace(1e-8, 87, 5000), [0.0, 87.0, 88.0, 200.0, np.inf]]
    )
    a = x.astype(dtype)
    _exp_in_place(a)
    ref = np.exp(x.astype(dtype).astype(np.float64))
    normal = x >= -87
    ulp = np.finfo(dtype).eps
    assert_allclose(a[normal], ref[normal], rtol=4 * ulp)
    assert a[x == 0] == 1.0
    # below exp(-87) the result is tiny (a normal float32 or the true value)
    assert np.all(a[~normal] <= np.exp(np.float64(-87)) * (1 + 4 * ulp))
    assert np.all(a[~normal] >= 0)


def test_import_compiles_nothing():
    code = (
        "import sksoftmax, numba; from sksoftmax import _kernels as k; "
        "d = [v for v in vars(k).values() "
        "if isinstance(v, numba.core.registry.CPUDispatcher)]; "
        "assert d and all(not f.signatures for f in d), [f for f in d if f.signatures]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_two_phase_csr_gradient_does_not_depend_on_the_threads():
    # each column's sum is taken by one thread in row order: bit for bit the
    # same gradient whatever the number of chunks
    X, y, sw, coef, intercept = problem(n=200, d=30, sparse=True, seed=3)
    coef_t = np.ascontiguousarray(coef.T)
    _, one, _ = chunked_sums(X, y, sw, coef_t, intercept, 0.0, False, n_chunks=1,
                             two_phase=True)
    one = one.copy()
    _, three, _ = chunked_sums(X, y, sw, coef_t, intercept, 0.0, False, n_chunks=3,
                               two_phase=True)
    assert np.array_equal(one, three)


def test_transposed_csr_splits_columns_by_stored_entries():
    rng = np.random.RandomState(0)
    # column 0 holds half of all entries
    X = sp.random(400, 50, density=0.05, random_state=rng, format="lil")
    X[:, 0] = 1.0
    X = sp.csr_matrix(X)
    t = TransposedCSR(X, 3, 4)
    bounds = t.column_bounds
    assert bounds[0][0] == 0
    assert bounds[-1][1] == 50
    # the first range is column 0 alone: it already holds half of the entries
    assert bounds[0] == (0, 1)
    assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    assert t.D.shape == (400, 3)
    assert t.D.dtype == X.dtype
    assert t.nbytes == (t.X_csc.data.nbytes + t.X_csc.indices.nbytes
                        + t.X_csc.indptr.nbytes + t.D.nbytes)
    assert_allclose(t.X_csc.toarray(), X.toarray())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_transposing_copies_equal_numpy(dtype):
    # 600 features: more than one block of columns, and a partial last block
    rng = np.random.default_rng(0)
    coef = rng.standard_normal((7, 600))
    coef_t = np.empty((600, 7), dtype=dtype)
    _kernels.load_coef_t(coef, coef_t)
    assert np.array_equal(coef_t, coef.T.astype(dtype))
    grad_t = rng.standard_normal((600, 7))
    out = np.empty_like(coef)
    grad = np.ascontiguousarray(grad_t.T)
    for transposed, grad_sum in ((True, grad_t), (False, grad)):
        _kernels.finish_coef_gradient(grad_sum, transposed, 0.25, coef, 0.1, out)
        assert np.array_equal(out, 0.25 * grad_t.T + 0.1 * coef)
