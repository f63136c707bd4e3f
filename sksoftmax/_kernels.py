"""Fused Numba kernels: logits -> stable softmax -> loss -> gradient in one pass.

Every kernel reads each selected row of ``X`` once, computes its logits, the
log-sum-exp, the weighted cross-entropy and accumulates the weighted gradient
``s_i (p_i - t_i) x_i^T`` before moving on, so no (n, K) intermediate is ever
formed. ``X`` keeps its dtype (float32 or float64); logits, losses and
gradient sums are accumulated in float64.

Conventions shared by all kernels
---------------------------------
- ``coef`` has shape (n_logits, n_features) and ``intercept`` (n_logits,), in
  the dtype of ``X``.
- ``binary`` selects the two-class form: one logit ``z`` per row and the model
  is ``softmax([0, z])``; class 0 is the implicit zero logit and class 1 is
  logit 0. Otherwise ``n_logits == n_classes``.
- ``y`` holds class codes ``0 .. n_classes - 1`` (intp), ``sample_weight`` the
  per-row weights (float64), ``rows`` the row indices to use (a minibatch or
  all rows), so shuffling never copies ``X``.
- Targets are label-smoothed: ``t = (1 - smoothing) * onehot(y) + smoothing / K``.
- Kernels return the weighted *sum* of losses and write the weighted *sums*
  of gradients; normalisation and penalties belong to the objective.

This module imports nothing from scikit-learn.
"""

import numpy as np
from numba import njit, prange

# Rows per thread below which the parallel driver is not worth its start-up.
_MIN_ROWS_PER_CHUNK = 2048


@njit(cache=True, nogil=True)
def _row_loss_dz(z, label, smoothing, binary, dz):
    """Cross-entropy of one row from its logits ``z``; writes ``dz = p - t``.

    Works in log-sum-exp form: with ``m = max(z)``, ``lse = m + log(sum(exp(z -
    m)))`` and ``loss = lse - sum_c t_c z_c``, which is finite for any finite z.
    """
    n_logits = z.shape[0]
    n_classes = n_logits + 1 if binary else n_logits
    m = 0.0 if binary else -np.inf
    for k in range(n_logits):
        if z[k] > m:
            m = z[k]
    s = np.exp(-m) if binary else 0.0
    for k in range(n_logits):
        s += np.exp(z[k] - m)
    lse = m + np.log(s)

    off = smoothing / n_classes
    on = 1.0 - smoothing
    k_label = label - 1 if binary else label  # -1: the implicit zero logit
    z_label = z[k_label] if k_label >= 0 else 0.0
    z_sum = 0.0
    for k in range(n_logits):
        z_sum += z[k]
        dz[k] = np.exp(z[k] - lse) - off
    if k_label >= 0:
        dz[k_label] -= on
    return lse - on * z_label - off * z_sum


@njit(cache=True, nogil=True)
def _dense_chunk(X, y, sample_weight, coef, intercept, rows, start, stop,
                 smoothing, binary, grad_coef, grad_intercept, z, dz):
    # Row-major walk: x_i is contiguous and reused for all K logits and all K
    # gradient rows while it is in cache; coef (K x d) stays cache-resident.
    n_logits, n_features = coef.shape
    loss = 0.0
    for r in range(start, stop):
        i = rows[r]
        s = sample_weight[i]
        if s == 0.0:
            continue
        for k in range(n_logits):
            acc = 0.0
            for j in range(n_features):
                acc += coef[k, j] * X[i, j]
            z[k] = acc + intercept[k]
        loss += s * _row_loss_dz(z, y[i], smoothing, binary, dz)
        for k in range(n_logits):
            g = s * dz[k]
            grad_intercept[k] += g
            for j in range(n_features):
                grad_coef[k, j] += g * X[i, j]
    return loss


@njit(cache=True, nogil=True)
def _csr_chunk(data, indices, indptr, y, sample_weight, coef, intercept, rows,
               start, stop, smoothing, binary, grad_coef, grad_intercept, z, dz):
    # Only the stored entries of each row are read; coef is gathered by column.
    n_logits = coef.shape[0]
    loss = 0.0
    for r in range(start, stop):
        i = rows[r]
        s = sample_weight[i]
        if s == 0.0:
            continue
        for k in range(n_logits):
            z[k] = intercept[k]
        for p in range(indptr[i], indptr[i + 1]):
            col = indices[p]
            v = data[p]
            for k in range(n_logits):
                z[k] += coef[k, col] * v
        loss += s * _row_loss_dz(z, y[i], smoothing, binary, dz)
        for k in range(n_logits):
            g = s * dz[k]
            grad_intercept[k] += g
            dz[k] = g
        for p in range(indptr[i], indptr[i + 1]):
            col = indices[p]
            v = data[p]
            for k in range(n_logits):
                grad_coef[k, col] += dz[k] * v
    return loss


def _n_chunks(n_rows, n_threads):
    return max(1, min(n_threads, n_rows // _MIN_ROWS_PER_CHUNK))


@njit(cache=True, parallel=True)
def _dense_parallel(X, y, sample_weight, coef, intercept, rows, smoothing,
                    binary, n_chunks):
    n_logits, n_features = coef.shape
    n = rows.shape[0]
    # One accumulator per chunk, reduced in chunk order afterwards: no shared
    # writes, and the result does not depend on thread scheduling.
    grad_coef = np.zeros((n_chunks, n_logits, n_features))
    grad_intercept = np.zeros((n_chunks, n_logits))
    losses = np.zeros(n_chunks)
    for c in prange(n_chunks):
        z = np.empty(n_logits)
        dz = np.empty(n_logits)
        losses[c] = _dense_chunk(
            X, y, sample_weight, coef, intercept, rows, c * n // n_chunks,
            (c + 1) * n // n_chunks, smoothing, binary, grad_coef[c],
            grad_intercept[c], z, dz,
        )
    return losses.sum(), grad_coef.sum(axis=0), grad_intercept.sum(axis=0)


@njit(cache=True, parallel=True)
def _csr_parallel(data, indices, indptr, y, sample_weight, coef, intercept,
                  rows, smoothing, binary, n_chunks):
    n_logits, n_features = coef.shape
    n = rows.shape[0]
    grad_coef = np.zeros((n_chunks, n_logits, n_features))
    grad_intercept = np.zeros((n_chunks, n_logits))
    losses = np.zeros(n_chunks)
    for c in prange(n_chunks):
        z = np.empty(n_logits)
        dz = np.empty(n_logits)
        losses[c] = _csr_chunk(
            data, indices, indptr, y, sample_weight, coef, intercept, rows,
            c * n // n_chunks, (c + 1) * n // n_chunks, smoothing, binary,
            grad_coef[c], grad_intercept[c], z, dz,
        )
    return losses.sum(), grad_coef.sum(axis=0), grad_intercept.sum(axis=0)


@njit(cache=True, nogil=True)
def _dense_serial(X, y, sample_weight, coef, intercept, rows, smoothing, binary,
                  grad_coef, grad_intercept, z, dz):
    grad_coef[:] = 0.0
    grad_intercept[:] = 0.0
    return _dense_chunk(X, y, sample_weight, coef, intercept, rows, 0,
                        rows.shape[0], smoothing, binary, grad_coef,
                        grad_intercept, z, dz)


@njit(cache=True, nogil=True)
def _csr_serial(data, indices, indptr, y, sample_weight, coef, intercept, rows,
                smoothing, binary, grad_coef, grad_intercept, z, dz):
    grad_coef[:] = 0.0
    grad_intercept[:] = 0.0
    return _csr_chunk(data, indices, indptr, y, sample_weight, coef, intercept,
                      rows, 0, rows.shape[0], smoothing, binary, grad_coef,
                      grad_intercept, z, dz)


class Workspace:
    """Preallocated float64 buffers for the serial (minibatch) kernels."""

    def __init__(self, n_logits, n_features):
        self.grad_coef = np.zeros((n_logits, n_features))
        self.grad_intercept = np.zeros(n_logits)
        self.z = np.empty(n_logits)
        self.dz = np.empty(n_logits)


def loss_gradient_sums(X, y, sample_weight, coef, intercept, rows, smoothing,
                       binary, n_threads=1, workspace=None):
    """Weighted sums of the cross-entropy and of its gradient over ``rows``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or scipy CSR matrix
        Data, C-contiguous when dense, float32 or float64.
    y : ndarray of shape (n_samples,), dtype intp
        Class codes ``0 .. n_classes - 1``.
    sample_weight : ndarray of shape (n_samples,), dtype float64
        Non-negative weights ``s_i``.
    coef : ndarray of shape (n_logits, n_features), dtype of X
    intercept : ndarray of shape (n_logits,), dtype of X
    rows : ndarray of intp
        Indices of the rows to use.
    smoothing : float
        Label smoothing in ``[0, 1)``.
    binary : bool
        Two-class form with a single logit (see the module docstring).
    n_threads : int, default=1
        Upper bound on the number of row chunks processed in parallel. With 1,
        the serial kernel runs and the parallel runtime is never started.
    workspace : Workspace, default=None
        Buffers reused by the serial kernel (minibatch steps allocate nothing).
        The returned gradients are views into it.

    Returns
    -------
    loss_sum : float
        ``sum_i s_i CE_i``.
    grad_coef : ndarray of shape (n_logits, n_features), float64
    grad_intercept : ndarray of shape (n_logits,), float64
    """
    sparse = hasattr(X, "indptr")
    n_chunks = _n_chunks(rows.shape[0], n_threads)
    if n_chunks > 1:
        if sparse:
            return _csr_parallel(X.data, X.indices, X.indptr, y, sample_weight,
                                 coef, intercept, rows, smoothing, binary,
                                 n_chunks)
        return _dense_parallel(X, y, sample_weight, coef, intercept, rows,
                               smoothing, binary, n_chunks)
    if workspace is None:
        workspace = Workspace(*coef.shape)
    w = workspace
    if sparse:
        loss = _csr_serial(X.data, X.indices, X.indptr, y, sample_weight, coef,
                           intercept, rows, smoothing, binary, w.grad_coef,
                           w.grad_intercept, w.z, w.dz)
    else:
        loss = _dense_serial(X, y, sample_weight, coef, intercept, rows,
                             smoothing, binary, w.grad_coef, w.grad_intercept,
                             w.z, w.dz)
    return loss, w.grad_coef, w.grad_intercept
