"""Fused Numba kernels: logits -> stable softmax -> loss -> gradient in one pass.

Every kernel reads each selected row of ``X`` once per pass: it computes the
row's logits, the log-sum-exp, the weighted cross-entropy and the weighted
gradient ``s_i (p_i - t_i) x_i^T`` while the row is in cache, so no (n, K)
array is ever formed. ``X`` keeps its dtype (float32 or float64); losses and
the gradient accumulated across blocks are float64.

Dense input is processed in blocks of rows: ``Z = X_blk @ coef.T`` and
``G += dZ.T @ X_blk`` are BLAS calls (much faster than hand-written loops) and
the softmax in between runs over the (block, K) logits while they are in
cache. CSR input is processed row by row, touching only stored entries.

Conventions shared by all kernels
---------------------------------
- ``coef_t`` is the *transposed* coefficient matrix, (n_features, n_logits),
  C-contiguous, in the dtype of ``X``: rows of it are what a sparse row
  gathers and it is the right operand of ``X_blk @ coef_t``.
- ``binary`` selects the two-class form: one logit ``z`` per row and the model
  is ``softmax([0, z])``; class 0 is the implicit zero logit and class 1 is
  logit 0. Otherwise ``n_logits == n_classes``.
- ``y`` holds class codes ``0 .. n_classes - 1``, ``sample_weight`` the
  per-row weights (float64). Minibatches pass ``rows``, indices into ``X``;
  shuffling never copies ``X``.
- Targets are label-smoothed: ``t = (1 - smoothing) * onehot(y) + smoothing / K``.
- Kernels return the weighted *sum* of losses and write the weighted *sums*
  of gradients; normalisation and penalties belong to the objective.

This module imports nothing from scikit-learn.
"""

import numpy as np
from numba import njit, prange
from numba.extending import overload

# Rows per BLAS block: the (block, K) logits and the block of X stay in L2.
BLOCK_ROWS = 1024
# Rows per thread below which the parallel driver is not worth its start-up.
_MIN_ROWS_PER_CHUNK = 4096


@njit(cache=True, nogil=True)
def _row_loss_dz(z, label, smoothing, binary, dz):
    """Cross-entropy of one row from its logits ``z``; writes ``dz = p - t``.

    Works in log-sum-exp form: with ``m = max(z)``, ``lse = m + log(sum(exp(z -
    m)))`` and ``loss = lse - sum_c t_c z_c``, which is finite for any finite
    z. ``dz`` may be ``z`` itself (each entry is read before it is written).
    Each exponential is taken once, in the dtype of ``z`` (float32 data get
    the faster single-precision exp); the sum is accumulated in float64.
    """
    n_logits = z.shape[0]
    n_classes = n_logits + 1 if binary else n_logits
    off = smoothing / n_classes
    on = 1.0 - smoothing
    k_label = label - 1 if binary else label  # -1: the implicit zero logit
    z_label = 0.0
    if k_label >= 0:
        z_label = z[k_label]
    m = z[0]
    for k in range(1, n_logits):
        if z[k] > m:
            m = z[k]
    if binary and m < 0:
        m = m - m  # zero, in the dtype of z: the implicit logit is the max
    s = np.exp(-m) if binary else 0.0
    z_sum = 0.0
    for k in range(n_logits):
        zk = z[k]
        z_sum += zk
        e = np.exp(zk - m)
        dz[k] = e
        s += e
    inv_s = 1.0 / s
    for k in range(n_logits):
        dz[k] = dz[k] * inv_s - off
    if k_label >= 0:
        dz[k_label] -= on
    return m + np.log(s) - on * z_label - off * z_sum


def _contiguous_rows(X, start, stop, buf):
    """``X[start:stop]`` as a C-contiguous array (a view where possible)."""


@overload(_contiguous_rows)
def _contiguous_rows_impl(X, start, stop, buf):
    # Decided at compile time: C-ordered X is sliced in place, any other
    # layout (Fortran order, strided views) is copied block by block into
    # ``buf``, so X itself is never copied.
    if X.layout == "C":
        return lambda X, start, stop, buf: X[start:stop]

    def copy_rows(X, start, stop, buf):
        block = buf[:stop - start]
        block[:] = X[start:stop]
        return block

    return copy_rows


@njit(cache=True, nogil=True)
def _dense_block(X_blk, y_blk, w_blk, coef_t, intercept, smoothing, binary,
                 Z_buf, G_buf, grad_coef, grad_intercept):
    """One block: logits by BLAS, softmax/loss row by row, gradient by BLAS."""
    m = X_blk.shape[0]
    n_logits = coef_t.shape[1]
    Z = Z_buf[:m]
    np.dot(X_blk, coef_t, Z)
    loss = 0.0
    for r in range(m):
        s = w_blk[r]
        z = Z[r]
        if s == 0.0:  # skipped, so that an overflowing row of weight 0 is inert
            z[:] = 0.0
            continue
        for k in range(n_logits):
            z[k] += intercept[k]
        loss += s * _row_loss_dz(z, y_blk[r], smoothing, binary, z)
        for k in range(n_logits):
            z[k] *= s
            grad_intercept[k] += z[k]
    np.dot(Z.T, X_blk, G_buf)
    grad_coef += G_buf
    return loss


@njit(cache=True, parallel=True)
def _dense_full_pass(X, y, sample_weight, coef_t, intercept, smoothing, binary,
                     n_chunks):
    n, n_features = X.shape
    n_logits = coef_t.shape[1]
    # One accumulator per chunk of consecutive rows, reduced in chunk order:
    # no shared writes, and the sums do not depend on thread scheduling.
    grad_coef = np.zeros((n_chunks, n_logits, n_features))
    grad_intercept = np.zeros((n_chunks, n_logits))
    losses = np.zeros(n_chunks)
    for c in prange(n_chunks):
        Z_buf = np.empty((BLOCK_ROWS, n_logits), dtype=X.dtype)
        G_buf = np.empty((n_logits, n_features), dtype=X.dtype)
        X_buf = np.empty((BLOCK_ROWS, n_features), dtype=X.dtype)
        loss = 0.0
        stop = (c + 1) * n // n_chunks
        for a in range(c * n // n_chunks, stop, BLOCK_ROWS):
            b = min(a + BLOCK_ROWS, stop)
            loss += _dense_block(
                _contiguous_rows(X, a, b, X_buf), y[a:b], sample_weight[a:b],
                coef_t, intercept, smoothing, binary, Z_buf, G_buf,
                grad_coef[c], grad_intercept[c])
        losses[c] = loss
    return losses.sum(), grad_coef.sum(axis=0), grad_intercept.sum(axis=0)


@njit(cache=True, nogil=True)
def _dense_rows_pass(X, y, sample_weight, rows, coef_t, intercept, smoothing,
                     binary, X_buf, y_buf, w_buf, Z_buf, G_buf, grad_coef,
                     grad_intercept):
    # Minibatch rows are gathered into preallocated buffers block by block:
    # no allocation per step, and X is never reordered or copied whole.
    grad_coef[:] = 0.0
    grad_intercept[:] = 0.0
    loss = 0.0
    block = X_buf.shape[0]
    for a in range(0, rows.shape[0], block):
        m = min(block, rows.shape[0] - a)
        for r in range(m):
            i = rows[a + r]
            X_buf[r] = X[i]
            y_buf[r] = y[i]
            w_buf[r] = sample_weight[i]
        loss += _dense_block(X_buf[:m], y_buf[:m], w_buf[:m], coef_t, intercept,
                             smoothing, binary, Z_buf, G_buf, grad_coef,
                             grad_intercept)
    return loss


@njit(cache=True, nogil=True)
def _csr_rows(data, indices, indptr, y, sample_weight, row_ids, start, stop,
              coef_t, intercept, smoothing, binary, grad_coef_t, grad_intercept,
              z):
    # Each stored entry gathers one contiguous row of coef_t (K values) and
    # scatters one contiguous row of grad_coef_t; columns absent from the row
    # are never touched. Rows come from ``row_ids`` when it is non-empty.
    n_logits = coef_t.shape[1]
    use_ids = row_ids.shape[0] > 0
    loss = 0.0
    for r in range(start, stop):
        i = row_ids[r] if use_ids else r
        s = sample_weight[i]
        if s == 0.0:
            continue
        for k in range(n_logits):
            z[k] = intercept[k]
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            w_row = coef_t[indices[p]]
            for k in range(n_logits):
                z[k] += v * w_row[k]
        loss += s * _row_loss_dz(z, y[i], smoothing, binary, z)
        for k in range(n_logits):
            z[k] *= s
            grad_intercept[k] += z[k]
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            g_row = grad_coef_t[indices[p]]
            for k in range(n_logits):
                g_row[k] += v * z[k]
    return loss


@njit(cache=True, parallel=True)
def _csr_full_pass(data, indices, indptr, y, sample_weight, coef_t, intercept,
                   smoothing, binary, n_chunks):
    n = indptr.shape[0] - 1
    n_features, n_logits = coef_t.shape
    grad_coef_t = np.zeros((n_chunks, n_features, n_logits))
    grad_intercept = np.zeros((n_chunks, n_logits))
    losses = np.zeros(n_chunks)
    no_ids = np.empty(0, dtype=np.intp)
    for c in prange(n_chunks):
        z = np.empty(n_logits)
        losses[c] = _csr_rows(data, indices, indptr, y, sample_weight, no_ids,
                              c * n // n_chunks, (c + 1) * n // n_chunks, coef_t,
                              intercept, smoothing, binary, grad_coef_t[c],
                              grad_intercept[c], z)
    return losses.sum(), grad_coef_t.sum(axis=0), grad_intercept.sum(axis=0)


@njit(cache=True, nogil=True)
def _csr_rows_pass(data, indices, indptr, y, sample_weight, rows, coef_t,
                   intercept, smoothing, binary, grad_coef_t, grad_intercept, z):
    grad_coef_t[:] = 0.0
    grad_intercept[:] = 0.0
    return _csr_rows(data, indices, indptr, y, sample_weight, rows, 0,
                     rows.shape[0], coef_t, intercept, smoothing, binary,
                     grad_coef_t, grad_intercept, z)


def n_chunks_for(n_rows, n_threads):
    """Row chunks for the parallel pass: one per thread, none below a minimum size."""
    return max(1, min(n_threads, n_rows // _MIN_ROWS_PER_CHUNK))


class Workspace:
    """Preallocated buffers for the minibatch (serial) kernels.

    Parameters
    ----------
    n_logits, n_features : int
    dtype : dtype
        The dtype of ``X``.
    sparse : bool
        CSR kernels accumulate the gradient transposed.
    """

    def __init__(self, n_logits, n_features, dtype, sparse):
        self.grad_intercept = np.zeros(n_logits)
        if sparse:
            self.grad_coef_t = np.zeros((n_features, n_logits))
            self.z = np.empty(n_logits)
        else:
            self.grad_coef = np.zeros((n_logits, n_features))
            self.X_buf = np.empty((BLOCK_ROWS, n_features), dtype=dtype)
            self.y_buf = np.empty(BLOCK_ROWS, dtype=np.intp)
            self.w_buf = np.empty(BLOCK_ROWS)
            self.Z_buf = np.empty((BLOCK_ROWS, n_logits), dtype=dtype)
            self.G_buf = np.empty((n_logits, n_features), dtype=dtype)


def loss_gradient_sums(X, y, sample_weight, coef_t, intercept, smoothing, binary,
                       rows=None, n_threads=1, workspace=None):
    """Weighted sums of the cross-entropy and of its gradient.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or scipy CSR matrix
        Data, float32 or float64, any memory layout when dense.
    y : ndarray of shape (n_samples,), dtype intp
        Class codes ``0 .. n_classes - 1``.
    sample_weight : ndarray of shape (n_samples,), dtype float64
        Non-negative weights ``s_i``.
    coef_t : ndarray of shape (n_features, n_logits), C-contiguous, dtype of X
        Transposed coefficients.
    intercept : ndarray of shape (n_logits,), dtype of X
    smoothing : float
        Label smoothing in ``[0, 1)``.
    binary : bool
        Two-class form with a single logit (see the module docstring).
    rows : ndarray of intp, default=None
        Rows of a minibatch (serial kernel, buffers from ``workspace``). None
        for a full pass over all rows, in parallel over ``n_threads`` chunks.
    n_threads : int, default=1
        Upper bound on the number of row chunks of a full pass.
    workspace : Workspace, default=None
        Buffers for minibatch passes; the returned gradients are views into it.

    Returns
    -------
    loss_sum : float
        ``sum_i s_i CE_i``.
    grad_coef : ndarray of shape (n_logits, n_features), float64
        May be a transposed view.
    grad_intercept : ndarray of shape (n_logits,), float64
    """
    sparse = hasattr(X, "indptr")
    if rows is None:
        n_chunks = n_chunks_for(X.shape[0], n_threads)
        if sparse:
            loss, grad_coef_t, grad_intercept = _csr_full_pass(
                X.data, X.indices, X.indptr, y, sample_weight, coef_t, intercept,
                smoothing, binary, n_chunks)
            return loss, grad_coef_t.T, grad_intercept
        return _dense_full_pass(X, y, sample_weight, coef_t, intercept, smoothing,
                                binary, n_chunks)
    if workspace is None:
        workspace = Workspace(coef_t.shape[1], coef_t.shape[0], X.dtype, sparse)
    w = workspace
    if sparse:
        loss = _csr_rows_pass(X.data, X.indices, X.indptr, y, sample_weight, rows,
                              coef_t, intercept, smoothing, binary, w.grad_coef_t,
                              w.grad_intercept, w.z)
        return loss, w.grad_coef_t.T, w.grad_intercept
    loss = _dense_rows_pass(X, y, sample_weight, rows, coef_t, intercept, smoothing,
                            binary, w.X_buf, w.y_buf, w.w_buf, w.Z_buf, w.G_buf,
                            w.grad_coef, w.grad_intercept)
    return loss, w.grad_coef, w.grad_intercept
