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
- Pass kernels return the weighted *sum* of losses and write the weighted
  *sums* of gradients; normalisation and penalties belong to the objective.

``minibatch_epoch`` and ``variance_reduced_epoch`` are the exceptions that keep
minibatch solvers fast: a whole epoch of SGD/Adam (or SVRG) steps in one
compiled call, normalising each minibatch's gradient, adding the L2 term and
applying the step rules of ``_steps``.

This module imports nothing from scikit-learn.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from . import _steps
from ._parallel import serial_map

# Rows per BLAS block: the (block, K) logits and the block of X stay in L2.
BLOCK_ROWS = 1024
# Rows per thread below which a chunk of its own is not worth its start-up.
_MIN_ROWS_PER_CHUNK = 4096
# Bound on the gradient accumulators of the chunks beyond the first: more
# threads are not worth more memory than this (it caps the chunks when K * d
# is large).
ACCUMULATOR_BYTES = 256 * 2**20


# Single-precision exp for arguments <= 0 (Cephes' expf: 2^n * p(r) with a
# degree-7 polynomial on |r| <= ln(2)/2, about 1 ulp). Written with plain
# arithmetic so that LLVM vectorises the loop; the scalar np.exp is not.
_LOG2E = np.float32(1.4426950408889634)
_HALF = np.float32(0.5)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_EXP_P = (np.float32(1.9875691500e-4), np.float32(1.3981999507e-3),
          np.float32(8.3334519073e-3), np.float32(4.1665795894e-2),
          np.float32(1.6666665459e-1), np.float32(5.0000001201e-1))
_ONE = np.float32(1.0)
# exp(-87) ~ 1.6e-38 is still a normal float32; smaller arguments are clamped
# there, which changes no sum of probabilities that includes exp(0) = 1.
_EXP_MIN_ARG = np.float32(-87.0)


def _exp_nonpositive(a, exponent_buf):
    """``a[:] = exp(a)`` for a contiguous 1-D array of values ``<= 0``."""


@overload(_exp_nonpositive)
def _exp_nonpositive_impl(a, exponent_buf):
    if a.dtype != types.float32:
        def scalar_exp(a, exponent_buf):
            for j in range(a.shape[0]):
                a[j] = np.exp(a[j])
        return scalar_exp

    p0, p1, p2, p3, p4, p5 = _EXP_P

    def vector_expf(a, exponent_buf):
        n = a.shape[0]
        for j in range(n):
            x = a[j]
            if x < _EXP_MIN_ARG:
                x = _EXP_MIN_ARG
            t = np.floor(x * _LOG2E + _HALF)
            r = x - t * _LN2_HI - t * _LN2_LO
            a[j] = (((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5) * r * r \
                + r + _ONE
            exponent_buf[j] = np.int32(t) << np.int32(23)
        # multiply by 2^t by adding t to the IEEE exponent field
        bits = a.view(np.int32)
        for j in range(n):
            bits[j] += exponent_buf[j]

    return vector_expf


@njit(cache=True, nogil=True)
def _shift_row(z, label, smoothing, binary):
    """Subtract the row's max from its logits; return the loss without its log term.

    With ``m = max(z)`` (and 0, the implicit logit, in the binary form) the
    cross-entropy is ``m + log(sum(exp(z - m))) - sum_c t_c z_c``; this returns
    ``(m - sum_c t_c z_c, m)`` and leaves ``z - m <= 0`` in ``z``.
    """
    n_logits = z.shape[0]
    n_classes = n_logits + 1 if binary else n_logits
    k_label = label - 1 if binary else label  # -1: the implicit zero logit
    m = z[0]
    z_sum = 0.0
    for k in range(n_logits):
        z_sum += z[k]
        if z[k] > m:
            m = z[k]
    if binary and m < 0:
        m = m - m  # zero, in the dtype of z
    linear = m - (smoothing / n_classes) * z_sum
    if k_label >= 0:
        linear -= (1.0 - smoothing) * z[k_label]
    for k in range(n_logits):
        z[k] -= m
    return linear, m


@njit(cache=True, nogil=True)
def _finish_row(e, label, weight, smoothing, binary, m):
    """Turn ``e = exp(z - m)`` into the weighted ``s (p - t)``; return ``log(sum)``.

    The sum of exponentials is accumulated in float64.
    """
    n_logits = e.shape[0]
    n_classes = n_logits + 1 if binary else n_logits
    # math, not numpy: the CUDA kernels compile this function too
    total = math.exp(-m) if binary else 0.0
    for k in range(n_logits):
        total += e[k]
    scale = weight / total
    off = weight * smoothing / n_classes
    for k in range(n_logits):
        e[k] = e[k] * scale - off
    k_label = label - 1 if binary else label
    if k_label >= 0:
        e[k_label] -= weight * (1.0 - smoothing)
    return math.log(total)


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
        for r in range(stop - start):
            for j in range(X.shape[1]):
                block[r, j] = X[start + r, j]
        return block

    return copy_rows


@njit(cache=True, nogil=True)
def _block_residuals(X_blk, y_blk, w_blk, coef_t, intercept, smoothing, binary,
                     Z_buf, row_buf, exponent_buf):
    """The block's weighted residuals ``s (p - t)`` into ``Z_buf[:m]`` (logits
    by BLAS, softmax over the block in cache); returns its weighted loss.
    Rows of weight 0 get residuals 0."""
    m = X_blk.shape[0]
    n_logits = coef_t.shape[1]
    Z = Z_buf[:m]
    np.dot(X_blk, coef_t, Z)
    loss = 0.0
    for r in range(m):
        z = Z[r]
        for k in range(n_logits):
            z[k] += intercept[k]
        linear, row_buf[r] = _shift_row(z, y_blk[r], smoothing, binary)
        if w_blk[r] != 0.0:  # a row of weight 0 must not turn the sum into inf/nan
            loss += w_blk[r] * linear
    # all the block's exponentials in one vectorised sweep
    _exp_nonpositive(Z_buf.reshape(-1)[:m * n_logits], exponent_buf)
    for r in range(m):
        z = Z[r]
        s = w_blk[r]
        if s == 0.0:
            for k in range(n_logits):
                z[k] = 0.0
            continue
        loss += s * _finish_row(z, y_blk[r], s, smoothing, binary, row_buf[r])
    return loss


@njit(cache=True, nogil=True)
def _add_block_gradient(X_blk, Z, G_buf, grad_coef, grad_intercept):
    """``grad_coef += Z^T X_blk`` (by BLAS) and ``grad_intercept += sum_r Z[r]``."""
    for r in range(Z.shape[0]):
        for k in range(Z.shape[1]):
            grad_intercept[k] += Z[r, k]
    np.dot(Z.T, X_blk, G_buf)
    for k in range(G_buf.shape[0]):
        for j in range(G_buf.shape[1]):
            grad_coef[k, j] += G_buf[k, j]


@njit(cache=True, nogil=True)
def _dense_block(X_blk, y_blk, w_blk, coef_t, intercept, smoothing, binary,
                 Z_buf, G_buf, row_buf, exponent_buf, grad_coef, grad_intercept):
    """One block: its loss, and its gradient added to the accumulators."""
    loss = _block_residuals(X_blk, y_blk, w_blk, coef_t, intercept, smoothing,
                            binary, Z_buf, row_buf, exponent_buf)
    _add_block_gradient(X_blk, Z_buf[:X_blk.shape[0]], G_buf, grad_coef,
                        grad_intercept)
    return loss


@njit(cache=True, nogil=True)
def _dense_block_difference(X_blk, y_blk, w_blk, coef_t, intercept, snap_coef_t,
                            snap_intercept, smoothing, binary, Z_buf, Z2_buf, G_buf,
                            row_buf, exponent_buf, grad_coef, grad_intercept):
    """One block's loss at ``(coef_t, intercept)`` and the difference of its
    gradients there and at the snapshot's, added to the accumulators: the
    targets cancel in ``s (p - t) - s (p~ - t)``, so the two sets of
    residuals share one gradient product."""
    m = X_blk.shape[0]
    loss = _block_residuals(X_blk, y_blk, w_blk, coef_t, intercept, smoothing,
                            binary, Z_buf, row_buf, exponent_buf)
    _block_residuals(X_blk, y_blk, w_blk, snap_coef_t, snap_intercept, smoothing,
                     binary, Z2_buf, row_buf, exponent_buf)
    Z, Z2 = Z_buf[:m], Z2_buf[:m]
    for r in range(m):
        for k in range(Z.shape[1]):
            Z[r, k] -= Z2[r, k]
    _add_block_gradient(X_blk, Z, G_buf, grad_coef, grad_intercept)
    return loss


@njit(cache=True, nogil=True)
def _dense_range(X, y, sample_weight, start, stop, coef_t, intercept, smoothing,
                 binary, X_buf, Z_buf, G_buf, row_buf, exponent_buf, grad_coef,
                 grad_intercept):
    """Rows ``start:stop`` block by block; adds to the gradient accumulators."""
    loss = 0.0
    for a in range(start, stop, BLOCK_ROWS):
        b = min(a + BLOCK_ROWS, stop)
        loss += _dense_block(_contiguous_rows(X, a, b, X_buf), y[a:b],
                             sample_weight[a:b], coef_t, intercept, smoothing,
                             binary, Z_buf, G_buf, row_buf, exponent_buf, grad_coef,
                             grad_intercept)
    return loss


@njit(cache=True, nogil=True)
def _gather_rows(X, y, sample_weight, rows, a, m, X_buf, y_buf, w_buf):
    # Minibatch rows are gathered into preallocated buffers block by block:
    # no allocation per step, and X is never reordered or copied whole.
    for r in range(m):
        i = rows[a + r]
        for j in range(X.shape[1]):
            X_buf[r, j] = X[i, j]
        y_buf[r] = y[i]
        w_buf[r] = sample_weight[i]


@njit(cache=True, nogil=True)
def _dense_rows(X, y, sample_weight, rows, coef_t, intercept, smoothing, binary,
                X_buf, y_buf, w_buf, Z_buf, G_buf, row_buf, exponent_buf, grad_coef,
                grad_intercept):
    loss = 0.0
    block = X_buf.shape[0]
    for a in range(0, rows.shape[0], block):
        m = min(block, rows.shape[0] - a)
        _gather_rows(X, y, sample_weight, rows, a, m, X_buf, y_buf, w_buf)
        loss += _dense_block(X_buf[:m], y_buf[:m], w_buf[:m], coef_t, intercept,
                             smoothing, binary, Z_buf, G_buf, row_buf,
                             exponent_buf, grad_coef, grad_intercept)
    return loss


@njit(cache=True, nogil=True)
def _add_gathered_rows(acc, data, indices, start, stop, table):
    """``acc += sum_p data[p] * table[indices[p]]`` over ``p`` in ``start:stop``.

    Four entries per update of ``acc``: a quarter of the read-modify-writes
    of ``acc`` (its chain of dependent additions was the bottleneck), and
    four independent row gathers in flight. 5-20 % faster than one at a
    time on 200k x 100k CSR with K = 20.
    """
    n = acc.shape[0]
    p = start
    while p + 4 <= stop:
        v0, v1, v2, v3 = data[p], data[p + 1], data[p + 2], data[p + 3]
        r0, r1 = table[indices[p]], table[indices[p + 1]]
        r2, r3 = table[indices[p + 2]], table[indices[p + 3]]
        for k in range(n):
            acc[k] += (v0 * r0[k] + v1 * r1[k]) + (v2 * r2[k] + v3 * r3[k])
        p += 4
    for q in range(p, stop):
        v, r = data[q], table[indices[q]]
        for k in range(n):
            acc[k] += v * r[k]


@njit(cache=True, nogil=True)
def _csr_row(data, indices, indptr, i, label, s, coef_t, intercept, smoothing, binary,
             z, exponent_buf):
    """Row ``i``'s weighted loss; leaves its weighted ``s (p - t)`` in ``z``.

    Each stored entry gathers one contiguous row of ``coef_t`` (K values).
    """
    for k in range(coef_t.shape[1]):
        z[k] = intercept[k]
    _add_gathered_rows(z, data, indices, indptr[i], indptr[i + 1], coef_t)
    linear, m = _shift_row(z, label, smoothing, binary)
    _exp_nonpositive(z, exponent_buf)
    return s * (linear + _finish_row(z, label, s, smoothing, binary, m))


@njit(cache=True, nogil=True)
def _csr_rows(data, indices, indptr, y, sample_weight, row_ids, start, stop,
              coef_t, intercept, smoothing, binary, grad_coef_t, grad_intercept,
              z, exponent_buf):
    # Each row's s (p - t) is scattered at once into grad_coef_t, one
    # contiguous row of it per stored entry: no copy of X, but the rows of
    # the accumulator are touched in the order of the vocabulary. Rows come
    # from ``row_ids`` when it is non-empty.
    n_logits = coef_t.shape[1]
    use_ids = row_ids.shape[0] > 0
    loss = 0.0
    for r in range(start, stop):
        i = row_ids[r] if use_ids else r
        s = sample_weight[i]
        if s == 0.0:
            continue
        loss += _csr_row(data, indices, indptr, i, y[i], s, coef_t, intercept,
                         smoothing, binary, z, exponent_buf)
        for k in range(n_logits):
            grad_intercept[k] += z[k]
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            g_row = grad_coef_t[indices[p]]
            for k in range(n_logits):
                g_row[k] += v * z[k]
    return loss


@njit(cache=True, nogil=True)
def _csr_residuals(data, indices, indptr, y, sample_weight, start, stop, coef_t,
                   intercept, smoothing, binary, D, grad_intercept, exponent_buf):
    """Rows ``start:stop``: their weighted ``s (p - t)`` into ``D``; the loss sum."""
    n_logits = coef_t.shape[1]
    loss = 0.0
    for i in range(start, stop):
        z = D[i]
        s = sample_weight[i]
        if s == 0.0:
            for k in range(n_logits):
                z[k] = 0.0
            continue
        loss += _csr_row(data, indices, indptr, i, y[i], s, coef_t, intercept,
                         smoothing, binary, z, exponent_buf)
        for k in range(n_logits):
            grad_intercept[k] += z[k]
    return loss


@njit(cache=True, nogil=True)
def _csc_gradient(data, indices, indptr, D, start, stop, grad_coef_t):
    """``grad_coef_t[j] = sum_i X[i, j] D[i]`` for the columns ``start:stop``.

    A gather over the CSC copy: each column reads the rows of ``D`` it
    needs (in increasing order) and adds them, four at a time in D's dtype,
    into a float64 accumulator, then writes its gradient row once. Columns
    are owned by one thread each: no shared accumulator, nothing to reduce,
    and the sum of a column is always taken in the same order.
    """
    n_logits = D.shape[1]
    acc = np.empty(n_logits)
    for j in range(start, stop):
        for k in range(n_logits):
            acc[k] = 0.0
        _add_gathered_rows(acc, data, indices, indptr[j], indptr[j + 1], D)
        g_row = grad_coef_t[j]
        for k in range(n_logits):
            g_row[k] = acc[k]


# Columns per block of the transposing copies below: a block of the (d, K)
# side stays in L1 while the K rows of the (K, d) side stream through.
_TRANSPOSE_BLOCK = 256


@njit(cache=True, nogil=True)
def load_coef_t(coef, coef_t):
    """``coef_t[j, k] = coef[k, j]`` (cast to ``coef_t``'s dtype), in blocks.

    The solvers' float64 coefficients (n_logits, n_features) as the kernels
    read them; numpy's strided ``coef_t[:] = coef.T`` takes ~4x longer at
    10^6 parameters.
    """
    n_logits, n_features = coef.shape
    for a in range(0, n_features, _TRANSPOSE_BLOCK):
        b = min(a + _TRANSPOSE_BLOCK, n_features)
        for k in range(n_logits):
            row = coef[k]
            for j in range(a, b):
                coef_t[j, k] = row[j]


@njit(cache=True, nogil=True)
def finish_coef_gradient(grad_sum, transposed, scale, coef, l2, out):
    """``out = scale * grad_sum + l2 * coef`` in one blocked pass, no temporary.

    ``grad_sum`` is the kernels' gradient sum, (n_features, n_logits) when
    ``transposed`` (the CSR accumulators) else (n_logits, n_features); ``coef``
    and ``out`` are (n_logits, n_features).
    """
    n_logits, n_features = coef.shape
    if not transposed:
        for k in range(n_logits):
            g, c, o = grad_sum[k], coef[k], out[k]
            for j in range(n_features):
                o[j] = scale * g[j] + l2 * c[j]
        return
    for a in range(0, n_features, _TRANSPOSE_BLOCK):
        b = min(a + _TRANSPOSE_BLOCK, n_features)
        for k in range(n_logits):
            c, o = coef[k], out[k]
            for j in range(a, b):
                o[j] = scale * grad_sum[j, k] + l2 * c[j]


@njit(cache=True, nogil=True)
def weighted_column_moments(X, sample_weight, sums, squares):
    """``sums[j] = sum_i s_i X[i, j]`` and ``squares[j] = sum_i s_i X[i, j]**2``
    for dense ``X``, in float64, in one pass."""
    for j in range(sums.shape[0]):
        sums[j] = 0.0
        squares[j] = 0.0
    for i in range(X.shape[0]):
        s = sample_weight[i]
        row = X[i]
        for j in range(row.shape[0]):
            v = s * np.float64(row[j])
            sums[j] += v
            squares[j] += v * np.float64(row[j])


@njit(cache=True, nogil=True)
def weighted_csr_column_squares(data, indices, indptr, sample_weight, out):
    """``out[j] = sum_i s_i X[i, j]**2`` for CSR ``X``, in float64."""
    for j in range(out.shape[0]):
        out[j] = 0.0
    for i in range(indptr.shape[0] - 1):
        s = sample_weight[i]
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[p])
            out[indices[p]] += s * v * v


@njit(cache=True, nogil=True)
def max_weighted_row_square(X, sample_weight, extra, center):
    """``max_i s_i (||X[i] - center||^2 + extra)`` for dense ``X``, in float64
    (``center`` of length 0: none).

    Four partial sums per row: a single running sum is a chain of dependent
    additions, four times slower on 200k x 100.
    """
    d = X.shape[1]
    c = center if center.shape[0] == d else np.zeros(d)
    best = 0.0
    for i in range(X.shape[0]):
        t0, t1, t2, t3 = extra, 0.0, 0.0, 0.0
        j = 0
        while j + 4 <= d:
            v0 = np.float64(X[i, j]) - c[j]
            v1 = np.float64(X[i, j + 1]) - c[j + 1]
            v2 = np.float64(X[i, j + 2]) - c[j + 2]
            v3 = np.float64(X[i, j + 3]) - c[j + 3]
            t0 += v0 * v0
            t1 += v1 * v1
            t2 += v2 * v2
            t3 += v3 * v3
            j += 4
        for q in range(j, d):
            v = np.float64(X[i, q]) - c[q]
            t0 += v * v
        best = max(best, sample_weight[i] * ((t0 + t1) + (t2 + t3)))
    return best


@njit(cache=True, nogil=True)
def max_weighted_csr_row_square(data, indptr, sample_weight, extra):
    """``max_i s_i (||X[i]||^2 + extra)`` for CSR ``X``, in float64."""
    best = 0.0
    for i in range(indptr.shape[0] - 1):
        total = extra
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[p])
            total += v * v
        best = max(best, sample_weight[i] * total)
    return best


class TransposedCSR:
    """What the two-phase CSR pass needs besides ``X``: a CSC copy and a buffer.

    The pass first computes every row's ``s (p - t)`` into ``D`` (threads own
    row ranges), then each column's gradient as a gather over the CSC copy
    (threads own column ranges of about equal nnz). Built once per fit.
    Memory: ``nnz * (itemsize + 4) + 4 (d + 1)`` bytes for the copy (int32
    indices while nnz fits; about the size of X) plus ``n * K * itemsize``
    for ``D``.

    Parameters
    ----------
    X : scipy CSR matrix
    n_logits : int
    n_chunks : int
        Column ranges to cut, one per chunk of the pass.
    """

    def __init__(self, X, n_logits, n_chunks):
        self.X_csc = X.tocsc(copy=True)
        self.X_csc.sort_indices()  # increasing rows: D is read forwards
        self.D = np.empty((X.shape[0], n_logits), dtype=X.dtype)
        indptr = self.X_csc.indptr
        targets = np.arange(n_chunks + 1) * (indptr[-1] / n_chunks)
        bounds = np.searchsorted(indptr, targets).clip(0, X.shape[1])
        bounds[0], bounds[-1] = 0, X.shape[1]
        self.column_bounds = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:],
                                                               strict=True)]

    @property
    def nbytes(self):
        X = self.X_csc
        return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes + self.D.nbytes


def n_chunks_for(n_rows, n_threads, n_params):
    """Row chunks of a full pass: one per thread, within two bounds.

    A chunk has at least ``_MIN_ROWS_PER_CHUNK`` rows (below that a thread
    costs more than it saves), and the gradient accumulators of the chunks
    beyond the first (``8 * n_params`` bytes each) stay within
    ``ACCUMULATOR_BYTES``.
    """
    by_memory = 1 + ACCUMULATOR_BYTES // max(1, 8 * n_params)
    return max(1, min(n_threads, n_rows // _MIN_ROWS_PER_CHUNK, by_memory))


class Workspace:
    """The buffers of one chunk of a pass (or of the minibatch steps).

    Allocated once per fit and reused by every pass: the kernels allocate
    nothing.

    Parameters
    ----------
    n_logits, n_features : int
    dtype : dtype
        The dtype of ``X``.
    sparse : bool
        CSR kernels accumulate the gradient transposed.
    accumulator : bool, default=True
        Whether a sparse workspace gets a gradient accumulator: the two-phase
        CSR pass needs one only in its first workspace.
    """

    def __init__(self, n_logits, n_features, dtype, sparse, accumulator=True):
        self.sparse = sparse
        self.n_features = n_features
        self.dtype = np.dtype(dtype)
        self.grad_intercept = np.zeros(n_logits)
        if sparse:
            self.grad_coef_t = np.zeros((n_features, n_logits) if accumulator
                                        else (0, n_logits))
            self.z = np.empty(n_logits, dtype=dtype)
            self.exponent_buf = np.empty(n_logits, dtype=np.int32)
        else:
            self.grad_coef = np.zeros((n_logits, n_features))
            self.y_buf = np.empty(BLOCK_ROWS, dtype=np.intp)
            self.w_buf = np.empty(BLOCK_ROWS)
            self.Z_buf = np.empty((BLOCK_ROWS, n_logits), dtype=dtype)
            self.G_buf = np.empty((n_logits, n_features), dtype=dtype)
            self.row_buf = np.empty(BLOCK_ROWS)
            self.exponent_buf = np.empty(BLOCK_ROWS * n_logits, dtype=np.int32)
        self._X_buf = None

    @property
    def X_buf(self):
        """Rows gathered for minibatches or copied from non-C-ordered ``X``.

        Made on first use: full passes over C-ordered ``X`` never need it.
        """
        if self._X_buf is None:
            self._X_buf = np.empty((BLOCK_ROWS, self.n_features), dtype=self.dtype)
        return self._X_buf

    def gradient_sums(self):
        """``(grad_coef, grad_intercept)``; ``grad_coef`` may be a transposed view."""
        grad_coef = self.grad_coef_t.T if self.sparse else self.grad_coef
        return grad_coef, self.grad_intercept

    def flat_sums(self):
        """The accumulators as 1-D views, for the reduction over chunks."""
        grad_coef = self.grad_coef_t if self.sparse else self.grad_coef
        return grad_coef.reshape(-1), self.grad_intercept


_NO_ROWS = np.empty(0, dtype=np.intp)


def _chunk_sums(X, y, sample_weight, coef_t, intercept, smoothing, binary, start,
                stop, rows, ws):
    """Rows ``start:stop`` (positions in ``rows`` when given) into ``ws``'s sums."""
    ws.grad_intercept[:] = 0.0
    if ws.sparse:
        ws.grad_coef_t[:] = 0.0
        ids = _NO_ROWS if rows is None else rows
        return _csr_rows(X.data, X.indices, X.indptr, y, sample_weight, ids, start,
                         stop, coef_t, intercept, smoothing, binary, ws.grad_coef_t,
                         ws.grad_intercept, ws.z, ws.exponent_buf)
    ws.grad_coef[:] = 0.0
    if rows is None:
        # C-ordered X is sliced in place and the row buffer goes unused
        X_buf = ws.Z_buf if X.flags.c_contiguous else ws.X_buf
        return _dense_range(X, y, sample_weight, start, stop, coef_t, intercept,
                            smoothing, binary, X_buf, ws.Z_buf, ws.G_buf,
                            ws.row_buf, ws.exponent_buf, ws.grad_coef,
                            ws.grad_intercept)
    return _dense_rows(X, y, sample_weight, rows[start:stop], coef_t, intercept,
                       smoothing, binary, ws.X_buf, ws.y_buf, ws.w_buf, ws.Z_buf,
                       ws.G_buf, ws.row_buf, ws.exponent_buf, ws.grad_coef,
                       ws.grad_intercept)


def loss_gradient_sums(X, y, sample_weight, coef_t, intercept, smoothing, binary,
                       rows=None, workspaces=None, map_chunks=serial_map,
                       transposed=None):
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
        The rows to use (a minibatch, in any order, repeats counted); None for
        all rows.
    workspaces : list of Workspace, default=None
        One per chunk: the rows are split into ``len(workspaces)`` consecutive
        chunks, each summed into its own workspace, and the sums are reduced
        in chunk order, so the result does not depend on which thread ran
        what. The returned gradients are views into ``workspaces[0]``. None:
        one new workspace.
    map_chunks : callable, default=serial_map
        ``map_chunks(func, n_chunks)`` calls ``func(c)`` for every chunk and
        returns the results in order, possibly from several threads (see
        :func:`sksoftmax._parallel.chunk_map`, which also holds BLAS to one
        thread, as the dense kernel needs).
    transposed : TransposedCSR, default=None
        For CSR ``X`` and all rows: compute the gradient in two phases over
        the CSC copy it holds (see :class:`TransposedCSR`) instead of
        scattering into one accumulator per chunk. Only ``workspaces[0]``
        needs its gradient accumulator then.

    Returns
    -------
    loss_sum : float
        ``sum_i s_i CE_i``.
    grad_coef : ndarray of shape (n_logits, n_features), float64
        May be a transposed view.
    grad_intercept : ndarray of shape (n_logits,), float64
    """
    if workspaces is None:
        workspaces = [Workspace(coef_t.shape[1], coef_t.shape[0], X.dtype,
                                hasattr(X, "indptr"))]
    n = X.shape[0] if rows is None else rows.shape[0]
    n_chunks = len(workspaces)

    def chunk(c):
        return _chunk_sums(X, y, sample_weight, coef_t, intercept, smoothing, binary,
                           c * n // n_chunks, (c + 1) * n // n_chunks, rows,
                           workspaces[c])

    if transposed is not None and rows is None:
        return _two_phase_csr_sums(X, y, sample_weight, coef_t, intercept, smoothing,
                                   binary, workspaces, map_chunks, transposed)
    loss = sum(map_chunks(chunk, n_chunks))
    if n_chunks > 1:
        sums = [ws.flat_sums() for ws in workspaces]

        def reduce(c):
            # each thread adds up one slice of the parameters over all chunks
            for target, *others in zip(*sums, strict=True):
                a = c * target.size // n_chunks
                b = (c + 1) * target.size // n_chunks
                for other in others:
                    np.add(target[a:b], other[a:b], out=target[a:b])

        map_chunks(reduce, n_chunks)
    return (loss, *workspaces[0].gradient_sums())


def _two_phase_csr_sums(X, y, sample_weight, coef_t, intercept, smoothing, binary,
                        workspaces, map_chunks, transposed):
    n, n_chunks = X.shape[0], len(workspaces)
    D = transposed.D

    def residuals(c):
        ws = workspaces[c]
        ws.grad_intercept[:] = 0.0
        return _csr_residuals(X.data, X.indices, X.indptr, y, sample_weight,
                              c * n // n_chunks, (c + 1) * n // n_chunks, coef_t,
                              intercept, smoothing, binary, D, ws.grad_intercept,
                              ws.exponent_buf)

    loss = sum(map_chunks(residuals, n_chunks))
    grad_coef_t = workspaces[0].grad_coef_t
    X_csc = transposed.X_csc
    bounds = transposed.column_bounds

    def gradient(c):
        _csc_gradient(X_csc.data, X_csc.indices, X_csc.indptr, D, *bounds[c],
                      grad_coef_t)

    map_chunks(gradient, len(bounds))
    grad_intercept = workspaces[0].grad_intercept
    for ws in workspaces[1:]:
        grad_intercept += ws.grad_intercept
    return loss, grad_coef_t.T, grad_intercept


# ----------------------------------------------------------- minibatch epochs
@njit(cache=True, nogil=True)
def _fill_zero(a):
    # a loop compiles much faster than the array-expression form a[:] = 0
    for j in range(a.shape[0]):
        a[j] = 0.0


def _batch_gradient(data, bufs, rows, coef_t, intercept, smoothing, binary,
                    grad_intercept, grad):
    """Weighted loss and gradient sums of one minibatch, into the flat ``grad``."""


@overload(_batch_gradient)
def _batch_gradient_impl(data, bufs, rows, coef_t, intercept, smoothing, binary,
                         grad_intercept, grad):
    # ``data`` is (X, y, sample_weight) for dense input and (data, indices,
    # indptr, y, sample_weight) for CSR; the choice is made at compile time.
    if len(data.types) == 3:
        def dense(data, bufs, rows, coef_t, intercept, smoothing, binary,
                  grad_intercept, grad):
            X, y, sample_weight = data
            X_buf, y_buf, w_buf, Z_buf, G_buf, row_buf, exponent_buf, grad_coef = bufs
            _fill_zero(grad_coef.reshape(-1))
            _fill_zero(grad_intercept)
            loss = _dense_rows(X, y, sample_weight, rows, coef_t, intercept,
                               smoothing, binary, X_buf, y_buf, w_buf, Z_buf, G_buf,
                               row_buf, exponent_buf, grad_coef, grad_intercept)
            flat = grad_coef.reshape(-1)
            for j in range(flat.shape[0]):
                grad[j] = flat[j]
            return loss
        return dense

    def csr(data, bufs, rows, coef_t, intercept, smoothing, binary, grad_intercept,
            grad):
        values, indices, indptr, y, sample_weight = data
        z, exponent_buf, grad_coef_t = bufs
        _fill_zero(grad_coef_t.reshape(-1))
        _fill_zero(grad_intercept)
        loss = _csr_rows(values, indices, indptr, y, sample_weight, rows, 0,
                         rows.shape[0], coef_t, intercept, smoothing, binary,
                         grad_coef_t, grad_intercept, z, exponent_buf)
        n_features, n_logits = grad_coef_t.shape
        for k in range(n_logits):
            for j in range(n_features):
                grad[k * n_features + j] = grad_coef_t[j, k]
        return loss

    return csr


def _batch_difference(data, bufs, rows, coef_t, intercept, snap_coef_t,
                      snap_intercept, smoothing, binary, grad_intercept, grad,
                      snap_grad_intercept, snap_grad, Z2_buf):
    """The minibatch's weighted loss sum at ``(coef_t, intercept)``; the
    weighted sums of its data gradient there minus at the snapshot's go into
    the flat ``grad`` (coefficients) and ``grad_intercept``."""


@overload(_batch_difference)
def _batch_difference_impl(data, bufs, rows, coef_t, intercept, snap_coef_t,
                           snap_intercept, smoothing, binary, grad_intercept, grad,
                           snap_grad_intercept, snap_grad, Z2_buf):
    if len(data.types) == 3:
        # dense: both sets of residuals, one gradient product (3 of the 4
        # products that two gradients take, and one gather of the rows)
        def dense(data, bufs, rows, coef_t, intercept, snap_coef_t, snap_intercept,
                  smoothing, binary, grad_intercept, grad, snap_grad_intercept,
                  snap_grad, Z2_buf):
            X, y, sample_weight = data
            X_buf, y_buf, w_buf, Z_buf, G_buf, row_buf, exponent_buf, grad_coef = bufs
            _fill_zero(grad_coef.reshape(-1))
            _fill_zero(grad_intercept)
            loss = 0.0
            block = X_buf.shape[0]
            for a in range(0, rows.shape[0], block):
                m = min(block, rows.shape[0] - a)
                _gather_rows(X, y, sample_weight, rows, a, m, X_buf, y_buf, w_buf)
                loss += _dense_block_difference(
                    X_buf[:m], y_buf[:m], w_buf[:m], coef_t, intercept, snap_coef_t,
                    snap_intercept, smoothing, binary, Z_buf, Z2_buf, G_buf,
                    row_buf, exponent_buf, grad_coef, grad_intercept)
            flat = grad_coef.reshape(-1)
            for j in range(flat.shape[0]):
                grad[j] = flat[j]
            return loss
        return dense

    def csr(data, bufs, rows, coef_t, intercept, snap_coef_t, snap_intercept,
            smoothing, binary, grad_intercept, grad, snap_grad_intercept, snap_grad,
            Z2_buf):
        # a sparse row's logits cost what its scatter does: two gradients
        loss = _batch_gradient(data, bufs, rows, coef_t, intercept, smoothing,
                               binary, grad_intercept, grad)
        _batch_gradient(data, bufs, rows, snap_coef_t, snap_intercept, smoothing,
                        binary, snap_grad_intercept, snap_grad)
        for j in range(coef_t.shape[0] * coef_t.shape[1]):
            grad[j] -= snap_grad[j]
        for k in range(grad_intercept.shape[0]):
            grad_intercept[k] -= snap_grad_intercept[k]
        return loss

    return csr


@njit(cache=True, nogil=True)
def _load_params(params, n_coef, fit_intercept, coef_t, intercept, center):
    """Flat ``params`` into the kernel-side ``coef_t``/``intercept``; with a
    ``center`` (length 0: none) the parameters are centred coordinates and
    the intercept loaded is ``c - W center``."""
    n_features, n_logits = coef_t.shape
    centred = center.shape[0] > 0
    for k in range(n_logits):
        shift = 0.0
        for j in range(n_features):
            coef_t[j, k] = params[k * n_features + j]
            if centred:
                shift += params[k * n_features + j] * center[j]
        intercept[k] = params[n_coef + k] - shift if fit_intercept else 0.0


@njit(cache=True, nogil=True)
def _to_mean(grad, grad_intercept, n_coef, fit_intercept, weight, center):
    """Divide the flat gradient sums by the batch ``weight`` (the intercept's
    from ``grad_intercept``) and apply the chain rule of the centring."""
    n_logits = grad_intercept.shape[0]
    n_features = n_coef // n_logits
    for j in range(n_coef):
        grad[j] /= weight
    if fit_intercept:
        for k in range(n_logits):
            g = grad_intercept[k] / weight
            grad[n_coef + k] = g
            for j in range(center.shape[0]):
                grad[k * n_features + j] -= g * center[j]


@njit(cache=True, nogil=True)
def _batch_mean_gradient(data, bufs, sample_weight, rows, params, n_coef,
                         fit_intercept, coef_t, intercept, grad_intercept, grad,
                         smoothing, binary, center):
    """The minibatch's weighted mean loss and data gradient at ``params``.

    Loads ``params`` into the kernel-side ``coef_t``/``intercept``, writes the
    weighted mean gradient of the data term (no penalty) into the flat
    ``grad`` and returns ``(mean loss, weight)``; a minibatch of zero weight
    has loss and gradient 0.

    With a ``center`` (length n_features; length 0: none) the parameters are
    in centred coordinates, logits ``W (x - center) + c``: the intercept
    loaded is ``c - W center`` and the coefficients' gradient
    ``g_W - g_c center^T``.
    """
    _load_params(params, n_coef, fit_intercept, coef_t, intercept, center)
    loss = _batch_gradient(data, bufs, rows, coef_t, intercept, smoothing, binary,
                           grad_intercept, grad)
    return _batch_mean(loss, grad, grad_intercept, sample_weight, rows, n_coef,
                       fit_intercept, center)


@njit(cache=True, nogil=True)
def _batch_mean(loss, grad, grad_intercept, sample_weight, rows, n_coef,
                fit_intercept, center):
    """The minibatch's sums as means over its weight (:func:`_to_mean`);
    returns ``(mean loss, weight)``; a batch of zero weight has loss and
    gradient 0."""
    weight = 0.0
    for r in range(rows.shape[0]):
        weight += sample_weight[rows[r]]
    if weight > 0.0:
        _to_mean(grad, grad_intercept, n_coef, fit_intercept, weight, center)
        return loss / weight, weight
    _fill_zero(grad)
    return 0.0, weight


@njit(cache=True, nogil=True)
def _batch_mean_difference(data, bufs, sample_weight, rows, params, snapshot, n_coef,
                           fit_intercept, model, snapshot_model, smoothing, binary,
                           center):
    """:func:`_batch_mean_gradient` at ``params`` minus at ``snapshot``, into
    ``model``'s flat gradient (see :func:`variance_reduced_epoch` for the
    buffers); returns ``(mean loss at params, weight)``."""
    coef_t, intercept, grad_intercept, grad = model
    snap_coef_t, snap_intercept, snap_grad_intercept, snap_grad, _, Z2_buf = \
        snapshot_model
    _load_params(params, n_coef, fit_intercept, coef_t, intercept, center)
    _load_params(snapshot, n_coef, fit_intercept, snap_coef_t, snap_intercept,
                 center)
    loss = _batch_difference(data, bufs, rows, coef_t, intercept, snap_coef_t,
                             snap_intercept, smoothing, binary, grad_intercept,
                             grad, snap_grad_intercept, snap_grad, Z2_buf)
    return _batch_mean(loss, grad, grad_intercept, sample_weight, rows, n_coef,
                       fit_intercept, center)


@njit(cache=True, nogil=True)
def _all_finite(a):
    for j in range(a.shape[0]):
        if not np.isfinite(a[j]):
            return False
    return True


@njit(cache=True, nogil=True)
def minibatch_epoch(data, bufs, sample_weight, order, batch_size, params, n_coef,
                    fit_intercept, coef_t, intercept, grad_intercept, grad, l2, l1,
                    smoothing, binary, schedule, eta0, eta, alpha, power_t,
                    momentum, nesterov, beta_1, beta_2, epsilon, counts, moments,
                    shift, threshold, average, average_from, intercept_scale,
                    center):
    """One epoch of minibatch updates over ``order``, entirely compiled.

    For each minibatch: refresh the kernel-side parameters, compute the
    weighted mean loss and gradient (plus the L2 term), take one SGD or Adam
    step (``_steps``) with the scheduled learning rate, apply the L1 prox,
    and fold the new iterate into the running mean ``average`` once
    ``average_from`` samples have been seen (``average_from <= 0``: never).
    Nothing is allocated per step.

    ``counts`` holds ``[updates, samples seen, iterates averaged]`` and is
    advanced in place. The intercept's displacement in each step is scaled
    by ``intercept_scale`` (a diagonal preconditioner; the optimiser's own
    state is kept in the unscaled step, which is linear in it). ``center``:
    the parameters' centred coordinates (see ``_batch_mean_gradient``).

    Returns
    -------
    loss_sum : float
        Sum over minibatches of (mean loss before the step) x (batch weight).
    weight_sum : float
        Sum of the batch weights.
    diverged : bool
        True if the loss, the gradient or the parameters became non-finite;
        the epoch stops there.
    """
    n_logits = coef_t.shape[1]
    n_intercepts = n_logits if fit_intercept and intercept_scale != 1.0 else 0
    before = np.empty(n_intercepts)
    total, total_weight = 0.0, 0.0
    for a in range(0, order.shape[0], batch_size):
        rows = order[a:min(a + batch_size, order.shape[0])]
        loss, weight = _batch_mean_gradient(
            data, bufs, sample_weight, rows, params, n_coef, fit_intercept, coef_t,
            intercept, grad_intercept, grad, smoothing, binary, center)
        if l2 > 0.0:
            for j in range(n_coef):
                loss += 0.5 * l2 * params[j] * params[j]
                grad[j] += l2 * params[j]
        if not (np.isfinite(loss) and _all_finite(grad)):
            return total, total_weight, True
        step = counts[0]
        rate = _steps.learning_rate(schedule, step, eta0, eta, alpha, power_t)
        for k in range(n_intercepts):
            before[k] = params[n_coef + k]
        _steps.take_step(moments, params, grad, step, rate, momentum, nesterov,
                         beta_1, beta_2, epsilon, n_coef, l1, shift, threshold)
        for k in range(n_intercepts):
            params[n_coef + k] = before[k] + intercept_scale * (params[n_coef + k]
                                                                - before[k])
        counts[0] = step + 1
        counts[1] += rows.shape[0]
        if average_from > 0 and counts[1] >= average_from:
            counts[2] += 1
            _steps.running_mean(average, params, counts[2])
        total += loss * weight
        total_weight += weight
    return total, total_weight, not _all_finite(params)


@njit(cache=True, nogil=True)
def variance_reduced_epoch(data, bufs, sample_weight, order, batch_size, params,
                           snapshot, model, snapshot_model, l2, l1, smoothing,
                           binary, eta, intercept_scale, center):
    """One epoch of SVRG steps (Johnson & Zhang, 2013) from ``params``.

    Each minibatch ``B`` moves ``params`` by ``-eta`` times
    ``g_B(w) - g_B(w~) + mu + l2 w`` (coefficients; the intercept's step is
    ``intercept_scale`` times as long), then the L1 prox with threshold
    ``l1 * eta``. ``g_B`` is the minibatch's weighted mean data gradient,
    ``w~`` the ``snapshot`` and ``mu`` the data gradient over all rows at the
    snapshot: the estimate is unbiased and its variance vanishes as ``w``
    and ``w~`` approach the optimum, so a constant step converges to it.

    ``model`` and ``snapshot_model`` group the kernel-side buffers of the
    two points: ``(coef_t, intercept, grad_intercept, grad)``, the last a
    flat (n_params,) float64 gradient; ``snapshot_model`` also carries
    ``mu`` (flat, float64) and a second residual buffer like ``bufs``'s
    ``Z_buf`` (dense X; CSR: any) as its fifth and sixth entries. The
    minibatch's two gradients are taken as one difference (on dense X, one
    gradient product for both). ``center``: as in :func:`minibatch_epoch`.

    Returns ``(loss_sum, weight_sum, diverged)`` as :func:`minibatch_epoch`
    (the losses at ``params`` before each step, data term only).
    """
    coef_t, intercept, grad_intercept, grad = model
    mu = snapshot_model[4]
    n_coef = coef_t.shape[0] * coef_t.shape[1]
    fit_intercept = params.shape[0] > n_coef
    shift = np.empty(n_coef if l1 > 0.0 else 0)
    threshold = np.full(1, l1 * eta)
    total, total_weight = 0.0, 0.0
    for a in range(0, order.shape[0], batch_size):
        rows = order[a:min(a + batch_size, order.shape[0])]
        loss, weight = _batch_mean_difference(
            data, bufs, sample_weight, rows, params, snapshot, n_coef,
            fit_intercept, model, snapshot_model, smoothing, binary, center)
        if not (np.isfinite(loss) and _all_finite(grad)):
            return total, total_weight, True
        for j in range(n_coef):
            params[j] -= eta * (grad[j] + mu[j] + l2 * params[j])
        step = eta * intercept_scale
        for j in range(n_coef, params.shape[0]):
            params[j] -= step * (grad[j] + mu[j])
        if l1 > 0.0:
            _steps.soft_threshold(params, n_coef, threshold, False, shift)
        total += loss * weight
        total_weight += weight
    return total, total_weight, not _all_finite(params)


# ------------------------------------------------ lazy minibatch epochs on CSR
# A CSR minibatch uses a few hundred of the vocabulary's features: these
# epochs update only the coefficient rows of those features (and the
# intercept) per step, O(nnz of the batch x K), and account for everything
# else in closed form or when a row is next used. Everything a feature's
# update reads is one record, T[j] of shape (n_fields, K) float64 (parameters,
# optimiser state, the sum of the averaged iterates): a step's random reads
# are one contiguous record per feature. Row n_features is the intercept.

@njit(cache=True, nogil=True)
def _lazy_csr_batch(data, indices, indptr, y, sample_weight, rows, T, c0, c1,
                    intercept_row, smoothing, binary, z, exponent_buf, G, touched,
                    mark, stamp):
    """A minibatch's weighted loss sum, weight sum and gradient sums.

    Coefficient row ``j`` is read as ``c0 T[j, 0] + c1 T[j, 1]`` (the lazy
    SGD keeps it in transformed coordinates); ``intercept_row`` is -1 without
    an intercept. The rows the batch uses are listed in
    ``touched[:n_touched]`` (the intercept's first), in the order first met;
    ``G[s]`` holds the weighted sums ``sum_i s_i (p_i - t_i) x_ij`` of
    ``touched[s]``, compact so that they stay in cache. ``mark[j]`` is
    ``stamp * (n_rows) + slot`` once row ``j`` is met. Rows of weight 0 are
    skipped.

    Returns
    -------
    loss_sum, weight_sum : float
    n_touched : int
    """
    n_logits = G.shape[1]
    base = stamp * mark.shape[0]
    n_touched = 0
    if intercept_row >= 0:
        mark[intercept_row] = base
        touched[0] = intercept_row
        n_touched = 1
        for k in range(n_logits):
            G[0, k] = 0.0
    loss, weight = 0.0, 0.0
    for r in range(rows.shape[0]):
        i = rows[r]
        s = sample_weight[i]
        if s == 0.0:
            continue
        weight += s
        for k in range(n_logits):
            z[k] = (c0 * T[intercept_row, 0, k] + c1 * T[intercept_row, 1, k]
                    if intercept_row >= 0 else 0.0)
        for p in range(indptr[i], indptr[i + 1]):
            x = np.float64(data[p])
            record = T[indices[p]]
            for k in range(n_logits):
                z[k] += x * (c0 * record[0, k] + c1 * record[1, k])
        linear, m = _shift_row(z, y[i], smoothing, binary)
        _exp_nonpositive(z, exponent_buf)
        loss += s * (linear + _finish_row(z, y[i], s, smoothing, binary, m))
        if intercept_row >= 0:
            for k in range(n_logits):
                G[0, k] += z[k]
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if mark[j] < base:
                mark[j] = base + n_touched
                touched[n_touched] = j
                g_row = G[n_touched]
                n_touched += 1
                for k in range(n_logits):
                    g_row[k] = 0.0
            else:
                g_row = G[mark[j] - base]
            x = np.float64(data[p])
            for k in range(n_logits):
                g_row[k] += x * z[k]
    return loss, weight, n_touched


@njit(cache=True, nogil=True)
def _materialize(T, P00, P01, P10, P11, R0, R1, n_features):
    """``(w, v) = P (zw, zv)`` and ``S += R (zw, zv)`` in every record
    ``(zw, zv, S)``; returns the sums ``(w.w, w.v, v.v)`` of the coefficient
    rows."""
    szz, szv, svv = 0.0, 0.0, 0.0
    for j in range(T.shape[0]):
        record = T[j]
        for k in range(T.shape[2]):
            zw, zv = record[0, k], record[1, k]
            w = P00 * zw + P01 * zv
            v = P10 * zw + P11 * zv
            record[2, k] += R0 * zw + R1 * zv
            record[0, k], record[1, k] = w, v
            if j < n_features:
                szz += w * w
                szv += w * v
                svv += v * v
    return szz, szv, svv


# Largest entry allowed in the lazy SGD's transform or its inverse before
# every row is brought back to plain coordinates (one pass over the
# coefficients): about cond * 1e-16 relative rounding in the parameters.
_LAZY_MAX_ENTRY = 1e6


@njit(cache=True, nogil=True)
def lazy_csr_sgd_epoch(data, indices, indptr, y, sample_weight, order, batch_size,
                       T, n_features, fit_intercept, l2, smoothing, binary,
                       schedule, eta0, eta, alpha, power_t, momentum, nesterov,
                       counts, average_from, intercept_scale, G, touched, mark, z,
                       exponent_buf):
    """An epoch of momentum SGD on CSR rows, exactly as the dense-step epoch,
    in O(nnz of the batch x K) per step.

    A coefficient whose feature is not in the batch has only its L2 gradient,
    so its ``(w, v)`` moves by a 2 x 2 linear map ``M_t``, the same for all
    of them (heavy ball: ``[[1 - eta l2, beta], [-eta l2, beta]]``;
    Nesterov: ``[[1 - eta l2 (1 + beta), beta^2], [-eta l2, beta]]``).
    Every row is stored as ``z`` with ``(w, v) = P z``, ``P`` the product of
    the maps so far: a step multiplies ``P`` by ``M_t`` and rewrites only the
    rows it uses, ``z' = P_{t+1}^-1 (exact step of P_t z)``. The running sum
    of the averaged iterates is ``S + R z`` with ``R`` the sum of ``P``'s first
    rows over the averaged steps. When ``P`` or its inverse grows past
    ``_LAZY_MAX_ENTRY`` every row is brought back to plain coordinates.

    ``T`` is (n_features + 1, 3, K): parameters, velocity and the sum of the
    averaged iterates, plain coordinates in and out.
    Returns ``(loss_sum, weight_sum, diverged)`` as :func:`minibatch_epoch`.
    """
    d = n_features
    n_logits = T.shape[2]
    intercept_row = d if fit_intercept else -1
    lanes = np.empty((4, n_logits))
    P00, P01, P10, P11 = 1.0, 0.0, 0.0, 1.0
    R0, R1 = 0.0, 0.0
    szz, szv, svv = _materialize(T, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, d)
    total, total_weight = 0.0, 0.0
    n = order.shape[0]
    n_steps = 0
    for a in range(0, n, batch_size):
        rows = order[a:min(a + batch_size, n)]
        step = counts[0]
        rate = _steps.learning_rate(schedule, step, eta0, eta, alpha, power_t)
        shrink = rate * l2
        if momentum == 0.0:  # v plays no part: keep it out of the map
            m00, m01, m10, m11 = 1.0 - shrink, 0.0, 0.0, 1.0
        elif nesterov:
            m00, m01 = 1.0 - shrink * (1.0 + momentum), momentum * momentum
            m10, m11 = -shrink, momentum
        else:
            m00, m01, m10, m11 = 1.0 - shrink, momentum, -shrink, momentum
        n_steps += 1
        loss, weight, n_touched = _lazy_csr_batch(
            data, indices, indptr, y, sample_weight, rows, T, P00, P01,
            intercept_row, smoothing, binary, z, exponent_buf, G, touched, mark,
            n_steps)
        loss = loss / weight if weight > 0.0 else 0.0
        loss += 0.5 * l2 * (P00 * P00 * szz + 2.0 * P00 * P01 * szv
                            + P01 * P01 * svv)
        if not np.isfinite(loss):
            _materialize(T, P00, P01, P10, P11, R0, R1, d)
            return total, total_weight, True
        Q00, Q01 = m00 * P00 + m01 * P10, m00 * P01 + m01 * P11
        Q10, Q11 = m10 * P00 + m11 * P10, m10 * P01 + m11 * P11
        det = Q00 * Q11 - Q01 * Q10
        largest = max(abs(Q00), abs(Q01), abs(Q10), abs(Q11))
        if not (abs(det) * _LAZY_MAX_ENTRY > largest and largest < _LAZY_MAX_ENTRY):
            szz, szv, svv = _materialize(T, P00, P01, P10, P11, R0, R1, d)
            P00, P01, P10, P11 = 1.0, 0.0, 0.0, 1.0
            R0, R1 = 0.0, 0.0
            Q00, Q01, Q10, Q11 = m00, m01, m10, m11
            det = Q00 * Q11 - Q01 * Q10
            if det == 0.0:  # rate * l2 == 1: the map forgets; apply it to all rows
                base = n_steps * mark.shape[0]
                for j in range(d):
                    if mark[j] < base:
                        for k in range(n_logits):
                            w, v = T[j, 0, k], T[j, 1, k]
                            T[j, 0, k] = m00 * w + m01 * v
                            T[j, 1, k] = m10 * w + m11 * v
                Q00, Q01, Q10, Q11, det = 1.0, 0.0, 0.0, 1.0, 1.0
                szz, szv, svv = _materialize(T, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, d)
        I00, I01, I10, I11 = Q11 / det, -Q01 / det, -Q10 / det, Q00 / det
        inv_weight = 1.0 / weight if weight > 0.0 else 0.0
        # per-lane sums (vectorisable without reassociation): the gradients
        # (a non-finite one makes its lane's sum non-finite) and the changes
        # of the penalty's sums over coefficient rows
        for k in range(n_logits):
            lanes[0, k] = lanes[1, k] = lanes[2, k] = lanes[3, k] = 0.0
        for t in range(n_touched):
            j = touched[t]
            coef = j < d
            record, g_row = T[j], G[t]
            pull = l2 if coef else 0.0
            counted = 1.0 if coef else 0.0
            moved = 1.0 if coef else intercept_scale
            for k in range(n_logits):
                zw, zv = record[0, k], record[1, k]
                w = P00 * zw + P01 * zv
                v = P10 * zw + P11 * zv
                g = g_row[k] * inv_weight + pull * w
                lanes[0, k] += g
                new_w, v = _steps.sgd_update(w, v, g, rate, momentum, nesterov)
                w += moved * (new_w - w)
                nzw = I00 * w + I01 * v
                nzv = I10 * w + I11 * v
                record[2, k] += R0 * (zw - nzw) + R1 * (zv - nzv)
                lanes[1, k] += counted * (nzw * nzw - zw * zw)
                lanes[2, k] += counted * (nzw * nzv - zw * zv)
                lanes[3, k] += counted * (nzv * nzv - zv * zv)
                record[0, k], record[1, k] = nzw, nzv
        finite = True
        for k in range(n_logits):
            finite = finite and np.isfinite(lanes[0, k])
            szz += lanes[1, k]
            szv += lanes[2, k]
            svv += lanes[3, k]
        P00, P01, P10, P11 = Q00, Q01, Q10, Q11
        counts[0] = step + 1
        counts[1] += rows.shape[0]
        if average_from > 0 and counts[1] >= average_from:
            counts[2] += 1
            R0 += P00
            R1 += P01
        if not finite:
            _materialize(T, P00, P01, P10, P11, R0, R1, d)
            return total, total_weight, True
        total += loss * weight
        total_weight += weight
    _materialize(T, P00, P01, P10, P11, R0, R1, d)
    if momentum == 0.0 and n_steps > 0:
        # without momentum v was kept out of the map; it is the last step's
        # -rate * gradient: for rows that sat that step out, -rate * l2 * w
        # with w from before the step, w_after / (1 - rate * l2)
        base = n_steps * mark.shape[0]
        pull = -shrink / (1.0 - shrink) if shrink != 1.0 else 0.0
        for j in range(d):
            if mark[j] < base:
                for k in range(n_logits):
                    T[j, 1, k] = pull * T[j, 0, k]
    return total, total_weight, False


@njit(cache=True, nogil=True)
def _averaged_between(first, last, first_averaged):
    """How many of the steps ``first .. last`` are averaged (from ``first_averaged``
    on; -1: none yet)."""
    if first_averaged < 0:
        return 0
    return max(0, last - max(first, first_averaged) + 1)


@njit(cache=True, nogil=True)
def lazy_csr_adam_epoch(data, indices, indptr, y, sample_weight, order, batch_size,
                        T, inv_frequency, n_features, fit_intercept, l2,
                        smoothing, binary, schedule, eta0, eta, alpha, power_t,
                        beta_1, beta_2, epsilon, counts, average_from,
                        intercept_scale, last, G, touched, mark, z, exponent_buf):
    """An epoch of lazy Adam on CSR rows, O(nnz of the batch x K) per step.

    A coefficient row moves only in the steps whose minibatch uses its
    feature (as TensorFlow's LazyAdam and PyTorch's SparseAdam). Its moments
    decay by ``beta^k`` for the ``k`` steps it sat out, applied when it is
    next used: exact for the data term, whose gradient there is 0. Its L2
    gradient ``l2 w`` is applied in those steps only, times
    ``inv_frequency``, the reciprocal of the probability that a minibatch
    uses the feature, so that its expected pull is the objective's. That,
    and the steps a dense Adam would take on the momentum alone, are where
    this differs from :func:`minibatch_epoch`; with every feature in every
    minibatch the two are the same.

    ``T`` is (n_features + 1, 4, K): parameters, first and second moments,
    and the sum of the averaged iterates; ``last`` (n_features + 1,) int64
    is scratch. Returns ``(loss_sum, weight_sum, diverged)``.
    """
    d = n_features
    n_logits = T.shape[2]
    intercept_row = d if fit_intercept else -1
    first_averaged = counts[0] - counts[2] if counts[2] > 0 else -1
    lanes = np.empty((2, n_logits))
    sww = 0.0
    for j in range(d):
        for k in range(n_logits):
            sww += T[j, 0, k] * T[j, 0, k]
    for j in range(last.shape[0]):
        last[j] = counts[0] - 1
    total, total_weight = 0.0, 0.0
    n = order.shape[0]
    n_steps = 0
    diverged = False
    for a in range(0, n, batch_size):
        rows = order[a:min(a + batch_size, n)]
        step = counts[0]
        rate = _steps.learning_rate(schedule, step, eta0, eta, alpha, power_t)
        lr = _steps.adam_rate(rate, step, beta_1, beta_2)
        n_steps += 1
        loss, weight, n_touched = _lazy_csr_batch(
            data, indices, indptr, y, sample_weight, rows, T, 1.0, 0.0,
            intercept_row, smoothing, binary, z, exponent_buf, G, touched, mark,
            n_steps)
        loss = (loss / weight if weight > 0.0 else 0.0) + 0.5 * l2 * sww
        if not np.isfinite(loss):
            diverged = True
            break
        counts[0] = step + 1
        counts[1] += rows.shape[0]
        averaged = average_from > 0 and counts[1] >= average_from
        if averaged and first_averaged < 0:
            first_averaged = step
        inv_weight = 1.0 / weight if weight > 0.0 else 0.0
        keep = 1.0 if averaged else 0.0
        for k in range(n_logits):
            lanes[0, k] = lanes[1, k] = 0.0
        for t in range(n_touched):
            j = touched[t]
            record, g_row = T[j], G[t]
            coef = j < d
            sat_out = step - last[j] - 1
            n_avg = _averaged_between(last[j] + 1, step - 1, first_averaged)
            decay_1, decay_2 = beta_1 ** sat_out, beta_2 ** sat_out
            pull = l2 * inv_frequency[j] if coef else 0.0
            counted = 1.0 if coef else 0.0
            moved = 1.0 if coef else intercept_scale
            for k in range(n_logits):
                w = record[0, k]
                g = g_row[k] * inv_weight + pull * w
                lanes[0, k] += g
                new_w, record[1, k], record[2, k], _ = _steps.adam_update(
                    w, record[1, k] * decay_1, record[2, k] * decay_2, g, lr, beta_1,
                    beta_2, epsilon)
                new_w = w + moved * (new_w - w)
                lanes[1, k] += counted * (new_w * new_w - w * w)
                record[0, k] = new_w
                record[3, k] += n_avg * w + keep * new_w
            last[j] = step
        finite = True
        for k in range(n_logits):
            finite = finite and np.isfinite(lanes[0, k])
            sww += lanes[1, k]
        if averaged:
            counts[2] += 1
        if not finite:
            diverged = True
            break
        total += loss * weight
        total_weight += weight
    # bring every row up to the last step taken
    final = counts[0] - 1
    for j in range(T.shape[0]):
        sat_out = final - last[j]
        if sat_out <= 0:
            continue
        n_avg = _averaged_between(last[j] + 1, final, first_averaged)
        decay_1, decay_2 = beta_1 ** sat_out, beta_2 ** sat_out
        record = T[j]
        for k in range(n_logits):
            record[3, k] += n_avg * record[0, k]
            record[1, k] *= decay_1
            record[2, k] *= decay_2
    return total, total_weight, diverged
