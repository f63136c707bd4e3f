"""numba.cuda kernels: the loss-and-gradient pass and the minibatch steps on a GPU.

Imported only when the GPU path is chosen (``device="cuda"``, or ``"auto"``
with a usable GPU and a large problem): importing it imports ``numba.cuda``.
The kernels keep the CPU kernels' pass contract (``_kernels``): the
weighted sum of the cross-entropy and the weighted sums of its gradient, in
the flat parameter layout (coefficients row-major, then the intercepts).
The per-row math (max shift, label smoothing, the binary single-logit form,
``s (p - t)``) is the CPU kernels' own ``_shift_row`` / ``_finish_row``,
compiled for the device.

A pass is two kernels and a reduction:

1. ``_residuals_dense`` / ``_residuals_csr``: logits, stable softmax, loss
   and the weighted residuals ``R = s (p - t)`` (rows x logits, X's dtype),
   the loss summed per block. Dense rows are staged through shared memory
   in tiles of ``_TILE_FEATURES`` columns, so a block's loads of X are
   coalesced; each thread then owns one row.
2. The gradient ``R^T [X, 1]``: dense, per ``(feature, class)`` thread over a
   segment of rows, reading X coalesced along features, written per segment
   and summed over segments by a second kernel (no atomics); CSR, by
   gathering over a CSC copy of X with a column of ones appended for the
   intercept (one thread per column, no atomics). A minibatch of CSR rows
   scatters with atomics, to distinct addresses but the intercept's.

The per-row logits are accumulated in a local array of ``MAX_LOGITS``
float64 values: at most that many classes run on the GPU.

Every launch goes through :func:`_launch`, which counts it in
``LAUNCHES``: the tests check that a ``device="cuda"`` fit ran kernels.
"""

import collections
import math

import numpy as np
from numba import config, cuda, float64

from . import _steps
from ._kernels import _finish_row, _shift_row

MAX_LOGITS = 128
# Threads per block of the row kernels; Numba's CUDA simulator (the CI) runs
# every thread as a Python thread, so it gets small blocks.
_SIM = bool(config.ENABLE_CUDASIM)
_THREADS = 16 if _SIM else 128
_TILE_FEATURES = 32
_GRAD_X, _GRAD_Y = (8, 4) if _SIM else (32, 8)
# blocks of a row kernel: enough to fill the device, few enough that the
# per-block partial sums stay small
_MAX_BLOCKS = 4 if _SIM else 1024
# threads per block of the element-wise kernels over the parameters
_VECTOR_THREADS = 32 if _SIM else 256
_ROWS_PER_SEGMENT = 64 if _SIM else 4096
# The fused pass keeps a block's gradient in shared memory: for K (d + 1) up
# to _FUSED_PARAMS and K up to _FUSED_LOGITS (41.5 KB of shared memory per
# block with the X tile and the residuals, under the 48 KB of a static
# allocation); larger problems take the two-kernel pass.
_FUSED_ROWS = 16 if _SIM else 64
_FUSED_LOGITS = 16
_FUSED_PARAMS = 2048

LAUNCHES = collections.Counter()

_shift_row_device = cuda.jit(device=True)(_shift_row.py_func)
_finish_row_device = cuda.jit(device=True)(_finish_row.py_func)
_sgd_update_device = cuda.jit(device=True)(_steps.sgd_update.py_func)
_adam_update_device = cuda.jit(device=True)(_steps.adam_update.py_func)


def _launch(kernel, grid, block, *args):
    LAUNCHES[getattr(kernel, "py_func", kernel).__name__] += 1
    kernel[grid, block](*args)


def _blocks_for(n, per_block, cap=None):
    blocks = max(1, -(-n // per_block))
    return min(blocks, cap) if cap else blocks


# ---------------------------------------------------------------- row math
@cuda.jit(device=True)
def _row_loss_residual(z, n_logits, label, weight, smoothing, binary, R, r):
    """Logits ``z[:n_logits]`` (a local array) of a row into its residual
    row ``R[r, :n_logits]``; returns the row's weighted loss."""
    zr = z[:n_logits]
    linear, m = _shift_row_device(zr, label, smoothing, binary)
    for k in range(n_logits):
        zr[k] = math.exp(zr[k])
    log_total = _finish_row_device(zr, label, weight, smoothing, binary, m)
    for k in range(n_logits):
        R[r, k] = zr[k]
    return weight * (linear + log_total)


@cuda.jit
def _residuals_dense(X, y, w, rows, coef, intercept, smoothing, binary, R,
                     loss_part):
    """Row tiles of ``_THREADS`` rows, grid-strided; X's tile through shared
    memory (coalesced loads along a row), one row per thread after that."""
    tile = cuda.shared.array((_THREADS, _TILE_FEATURES + 1), float64)
    loss_buf = cuda.shared.array(_THREADS, float64)
    tid = cuda.threadIdx.x
    n_rows = rows.shape[0]
    n_logits = R.shape[1]
    z = cuda.local.array(MAX_LOGITS, float64)
    loss = 0.0
    base = cuda.blockIdx.x * _THREADS
    while base < n_rows:
        r = base + tid
        in_tile = min(_THREADS, n_rows - base)
        _tile_logits(X, rows, coef, intercept, base, in_tile, tile, z, _THREADS)
        if r < n_rows:
            i = rows[r]
            loss += _row_loss_residual(z, n_logits, y[i], w[i], smoothing, binary, R,
                                       r)
        base += cuda.gridDim.x * _THREADS
    _block_sum(loss_buf, loss, loss_part, _THREADS)


@cuda.jit
def _residuals_csr(data, indices, indptr, y, w, rows, coef, intercept, smoothing,
                   binary, R, loss_part):
    """One thread per row (grid-strided) over the row's nonzeros."""
    loss_buf = cuda.shared.array(_THREADS, float64)
    n_rows = rows.shape[0]
    n_logits = R.shape[1]
    z = cuda.local.array(MAX_LOGITS, float64)
    loss = 0.0
    base = cuda.blockIdx.x * _THREADS
    while base < n_rows:
        r = base + cuda.threadIdx.x
        if r < n_rows:
            i = rows[r]
            for k in range(n_logits):
                z[k] = intercept[k]
            for p in range(indptr[i], indptr[i + 1]):
                x = data[p]
                col = indices[p]
                for k in range(n_logits):
                    z[k] += x * coef[k, col]
            loss += _row_loss_residual(z, n_logits, y[i], w[i], smoothing, binary, R,
                                       r)
        base += cuda.gridDim.x * _THREADS
    _block_sum(loss_buf, loss, loss_part, _THREADS)


@cuda.jit(device=True)
def _tree_sum(buf, value, n_threads):
    """The sum of ``value`` over the block's ``n_threads`` threads (a power of
    two; a tree in shared memory ``buf``), returned to every thread."""
    tid = cuda.threadIdx.x
    buf[tid] = value
    cuda.syncthreads()
    stride = n_threads // 2
    while stride > 0:
        if tid < stride:
            buf[tid] += buf[tid + stride]
        cuda.syncthreads()
        stride //= 2
    return buf[0]


@cuda.jit(device=True)
def _block_sum(buf, value, out, n_threads):
    """``out[blockIdx.x] = `` :func:`_tree_sum` of ``value``."""
    total = _tree_sum(buf, value, n_threads)
    if cuda.threadIdx.x == 0:
        out[cuda.blockIdx.x] = total


# ------------------------------------------------- the fused pass (small K d)
@cuda.jit
def _fused_dense(X, y, w, rows, coef, intercept, smoothing, binary, loss_part,
                 partial):
    """The whole pass in one kernel, for ``K (d + 1) <= _FUSED_PARAMS``.

    Each block takes tiles of ``_FUSED_ROWS`` rows (grid-strided): X's
    feature tiles through shared memory (coalesced loads) into the logits,
    one row per thread; the residuals into shared memory; then the feature
    tiles again (from cache) into the block's gradient in shared memory,
    each entry owned by one thread (no atomics). At the end the block
    writes its gradient and loss to ``partial[block]`` / ``loss_part[block]``
    for :func:`_sum_segments`.
    """
    tile = cuda.shared.array((_FUSED_ROWS, _TILE_FEATURES + 1), float64)
    residual = cuda.shared.array((_FUSED_ROWS, _FUSED_LOGITS), float64)
    acc = cuda.shared.array(_FUSED_PARAMS, float64)
    loss_buf = cuda.shared.array(_FUSED_ROWS, float64)
    tid = cuda.threadIdx.x
    n_rows = rows.shape[0]
    n_features = X.shape[1]
    n_logits = coef.shape[0]
    n_params = n_logits * (n_features + 1)
    for c in range(tid, n_params, _FUSED_ROWS):
        acc[c] = 0.0
    z = cuda.local.array(_FUSED_LOGITS, float64)
    loss = 0.0
    base = cuda.blockIdx.x * _FUSED_ROWS
    while base < n_rows:
        r = base + tid
        in_tile = min(_FUSED_ROWS, n_rows - base)
        _tile_logits(X, rows, coef, intercept, base, in_tile, tile, z, _FUSED_ROWS)
        if r < n_rows:
            i = rows[r]
            loss += _row_loss_residual(z, n_logits, y[i], w[i], smoothing, binary,
                                       residual, tid)
        cuda.syncthreads()
        for j0 in range(0, n_features, _TILE_FEATURES):
            width = _load_tile(X, rows, base, j0, in_tile, tile, _FUSED_ROWS)
            for pair in range(tid, n_logits * width, _FUSED_ROWS):
                k = pair // width
                jj = pair - k * width
                s = 0.0
                for rr in range(in_tile):
                    s += residual[rr, k] * tile[rr, jj]
                acc[k * n_features + j0 + jj] += s
            cuda.syncthreads()
        for k in range(tid, n_logits, _FUSED_ROWS):
            s = 0.0
            for rr in range(in_tile):
                s += residual[rr, k]
            acc[n_logits * n_features + k] += s
        cuda.syncthreads()
        base += cuda.gridDim.x * _FUSED_ROWS
    for c in range(tid, n_params, _FUSED_ROWS):
        partial[cuda.blockIdx.x, c] = acc[c]
    _block_sum(loss_buf, loss, loss_part, _FUSED_ROWS)


@cuda.jit(device=True)
def _tile_logits(X, rows, coef, intercept, base, in_tile, tile, z, n_threads):
    """The logits of row ``rows[base + threadIdx.x]`` (when ``threadIdx.x <
    in_tile``) into ``z``, X's feature tiles staged through ``tile``."""
    tid = cuda.threadIdx.x
    n_logits = coef.shape[0]
    for k in range(n_logits):
        z[k] = intercept[k]
    for j0 in range(0, X.shape[1], _TILE_FEATURES):
        width = _load_tile(X, rows, base, j0, in_tile, tile, n_threads)
        if tid < in_tile:
            for jj in range(width):
                x = tile[tid, jj]
                for k in range(n_logits):
                    z[k] += x * coef[k, j0 + jj]
        cuda.syncthreads()


@cuda.jit(device=True)
def _load_tile(X, rows, base, j0, in_tile, tile, n_threads):
    """Rows ``rows[base:base + in_tile]``, features ``j0:j0 + width`` of X
    into ``tile`` (consecutive threads read consecutive features); returns
    ``width``. Ends with a barrier."""
    tid = cuda.threadIdx.x
    width = min(_TILE_FEATURES, X.shape[1] - j0)
    for idx in range(tid, n_threads * _TILE_FEATURES, n_threads):
        rr = idx // _TILE_FEATURES
        jj = idx - rr * _TILE_FEATURES
        if rr < in_tile and jj < width:
            tile[rr, jj] = X[rows[base + rr], j0 + jj]
    cuda.syncthreads()
    return width


# ---------------------------------------------------------------- gradients
@cuda.jit
def _gradient_dense(X, rows, R, rows_per_segment, partial):
    """``partial[s]`` = segment ``s``'s ``R^T [X, 1]`` in the flat layout.

    Thread ``(j, k)``: feature ``j`` (``j == n_features``: the intercept's
    column of ones), class ``k``; consecutive threads read consecutive
    features of a row (coalesced), ``R[r, k]`` is shared by the warp.
    """
    j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    k = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
    s = cuda.blockIdx.z
    n_features = X.shape[1]
    n_logits = R.shape[1]
    if k >= n_logits or j > n_features:
        return
    start = s * rows_per_segment
    stop = min(start + rows_per_segment, rows.shape[0])
    acc = 0.0
    if j < n_features:
        for r in range(start, stop):
            acc += R[r, k] * X[rows[r], j]
        partial[s, k * n_features + j] = acc
    else:
        for r in range(start, stop):
            acc += R[r, k]
        partial[s, n_logits * n_features + k] = acc


@cuda.jit
def _sum_segments(partial, out):
    """``out[c] = sum_s partial[s, c]``."""
    c = cuda.grid(1)
    if c < out.shape[0]:
        acc = 0.0
        for s in range(partial.shape[0]):
            acc += partial[s, c]
        out[c] = acc


@cuda.jit
def _gradient_csc(data, indices, indptr, R, n_features, out):
    """Column ``j`` of the CSC copy (the last column: ones, for the
    intercept) gathers ``sum_i R[i, k] x_ij`` for every class: one thread
    per column, no atomics."""
    j = cuda.grid(1)
    if j >= indptr.shape[0] - 1:
        return
    n_logits = R.shape[1]
    acc = cuda.local.array(MAX_LOGITS, float64)
    for k in range(n_logits):
        acc[k] = 0.0
    for p in range(indptr[j], indptr[j + 1]):
        x = data[p]
        i = indices[p]
        for k in range(n_logits):
            acc[k] += R[i, k] * x
    for k in range(n_logits):
        if j < n_features:
            out[k * n_features + j] = acc[k]
        else:
            out[n_logits * n_features + k] = acc[k]


@cuda.jit
def _gradient_csr_rows(data, indices, indptr, rows, R, n_features, out):
    """A minibatch's CSR rows scatter ``R[r, k] x_ij`` into ``out`` (zeroed):
    one thread per row, atomics to the features' distinct addresses."""
    r = cuda.grid(1)
    if r >= rows.shape[0]:
        return
    i = rows[r]
    n_logits = R.shape[1]
    for p in range(indptr[i], indptr[i + 1]):
        x = data[p]
        col = indices[p]
        for k in range(n_logits):
            cuda.atomic.add(out, k * n_features + col, R[r, k] * x)


@cuda.jit
def _intercept_sums(R, n_features, out):
    """``out``'s intercepts = the column sums of ``R`` (one thread per class)."""
    k = cuda.grid(1)
    n_logits = R.shape[1]
    if k < n_logits:
        acc = 0.0
        for r in range(R.shape[0]):
            acc += R[r, k]
        out[n_logits * n_features + k] = acc


# ------------------------------------------------------------ parameters
@cuda.jit
def _load_params(params, n_features, fit_intercept, coef, intercept):
    """Flat float64 parameters into the kernels' ``coef`` (n_logits,
    n_features) and ``intercept`` in X's dtype."""
    c = cuda.grid(1)
    n_logits = coef.shape[0]
    n_coef = n_logits * n_features
    if c < n_coef:
        coef[c // n_features, c % n_features] = params[c]
    elif c < n_coef + n_logits:
        k = c - n_coef
        intercept[k] = params[c] if fit_intercept else 0.0


@cuda.jit
def _fill(a, value):
    c = cuda.grid(1)
    if c < a.shape[0]:
        a[c] = value


@cuda.jit
def _batch_loss(loss_part, params, n_coef, l2, weight, total):
    """``total[0] +=`` the minibatch's mean loss plus the L2 term (before the
    step), times its weight, as the CPU epoch counts it: one block."""
    buf = cuda.shared.array(_THREADS, float64)
    tid = cuda.threadIdx.x
    acc = 0.0
    for c in range(tid, n_coef, _THREADS):
        acc += params[c] * params[c]
    square = _tree_sum(buf, acc, _THREADS)
    if tid == 0 and weight > 0.0:
        data_loss = 0.0
        for b in range(loss_part.shape[0]):
            data_loss += loss_part[b]
        total[0] += data_loss + 0.5 * l2 * square * weight


@cuda.jit(device=True)
def _soft_threshold(value, t):
    if value > t:
        return value - t
    if value < -t:
        return value + t
    return 0.0


@cuda.jit
def _sgd_step(params, grad_sum, velocity, shift, average, n_coef, inv_weight, l2,
              eta, momentum, nesterov, l1, intercept_scale, average_count, flags):
    """``_steps.sgd_step`` on every coordinate, one thread each, with the
    intercept's scaled step and the running mean (``average_count`` > 0)."""
    c = cuda.grid(1)
    if c >= params.shape[0]:
        return
    before = params[c]
    g = grad_sum[c] * inv_weight
    if c < n_coef:
        g += l2 * before
    if not math.isfinite(g):
        flags[0] = 1
    value, v = _sgd_update_device(before, velocity[c], g, eta, momentum, nesterov)
    if c < n_coef and l1 > 0.0:
        new = _soft_threshold(value, l1 * eta)
        shift[c] = new - value
        v += new - value
        value = new
    if c >= n_coef:
        value = before + intercept_scale * (value - before)
    if not math.isfinite(value):
        flags[0] = 1
    params[c] = value
    velocity[c] = v
    if average_count > 0:
        average[c] += (value - average[c]) / average_count


@cuda.jit
def _adam_step(params, grad_sum, m, v, shift, threshold, average, n_coef,
               inv_weight, l2, lr, beta_1, beta_2, epsilon, l1, intercept_scale,
               average_count, flags):
    """``_steps.adam_step`` on every coordinate, as :func:`_sgd_step`."""
    c = cuda.grid(1)
    if c >= params.shape[0]:
        return
    before = params[c]
    g = grad_sum[c] * inv_weight
    if c < n_coef:
        g += l2 * before
    if not math.isfinite(g):
        flags[0] = 1
    value, m_c, v_c, scale = _adam_update_device(before, m[c], v[c], g, lr, beta_1,
                                                 beta_2, epsilon)
    if c < n_coef:
        threshold[c] = l1 * scale
        if l1 > 0.0:
            new = _soft_threshold(value, l1 * scale)
            shift[c] = new - value
            value = new
    if c >= n_coef:
        value = before + intercept_scale * (value - before)
    if not math.isfinite(value):
        flags[0] = 1
    params[c] = value
    m[c] = m_c
    v[c] = v_c
    if average_count > 0:
        average[c] += (value - average[c]) / average_count


# ------------------------------------------------------------------ the data
class DeviceData:
    """X, labels and weights on the device, copied once, with the buffers of
    a pass.

    Parameters
    ----------
    X : ndarray (C-contiguous) or scipy CSR matrix, float32 or float64
    y : ndarray of intp
    sample_weight : ndarray of float64
    n_logits : int
    fit_intercept : bool
    fused : bool, default=True
        Dense passes of small models (``K <= _FUSED_LOGITS``, ``K (d + 1) <=
        _FUSED_PARAMS``) in the single fused kernel; False: always the two
        kernels.
    """

    def __init__(self, X, y, sample_weight, n_logits, fit_intercept, fused=True):
        if n_logits > MAX_LOGITS:
            raise ValueError(f"The GPU kernels handle at most {MAX_LOGITS} classes; "
                             f"this problem has {n_logits}. Use device='cpu'.")
        self.sparse = hasattr(X, "indptr")
        self.n_rows, self.n_features = X.shape
        self.n_logits = n_logits
        self.fit_intercept = bool(fit_intercept)
        self.dtype = X.dtype
        if self.sparse:
            self.data = cuda.to_device(X.data)
            self.indices = cuda.to_device(X.indices.astype(np.int64))
            self.indptr = cuda.to_device(X.indptr.astype(np.int64))
            self._csc = None
        else:
            self.X = cuda.to_device(np.ascontiguousarray(X))
        self.y = cuda.to_device(np.ascontiguousarray(y, dtype=np.int64))
        self.w = cuda.to_device(np.ascontiguousarray(sample_weight, dtype=np.float64))
        self.all_rows = cuda.to_device(np.arange(self.n_rows, dtype=np.int64))
        self.n_params = n_logits * (self.n_features + 1)
        # blocks of the element-wise kernels over the parameters
        self.vector_blocks = _blocks_for(self.n_params, _VECTOR_THREADS)
        self.fused = fused and not self.sparse and n_logits <= _FUSED_LOGITS \
            and self.n_params <= _FUSED_PARAMS
        self.coef = cuda.device_array((n_logits, self.n_features), dtype=X.dtype)
        self.intercept = cuda.device_array(n_logits, dtype=X.dtype)
        self.params = cuda.device_array(self.n_params)
        self.grad = cuda.device_array(self.n_params)
        self._R = {}

    def csc(self, X):
        """The CSC copy with a column of ones appended (for full CSR passes)."""
        if self._csc is None:
            import scipy.sparse as sp
            ones = sp.csr_matrix(np.ones((X.shape[0], 1), dtype=X.dtype))
            A = sp.hstack([X, ones], format="csc")
            self._csc = (cuda.to_device(A.data), cuda.to_device(
                A.indices.astype(np.int64)), cuda.to_device(A.indptr.astype(np.int64)))
        return self._csc

    def residual_buffer(self, n_rows):
        if n_rows not in self._R:
            self._R[n_rows] = cuda.device_array((n_rows, self.n_logits),
                                                dtype=self.dtype)
        return self._R[n_rows]

    def padded(self, flat):
        """A host vector in the flat layout, with room for the intercepts even
        without them (the device keeps one layout)."""
        full = np.zeros(self.n_params)
        full[:flat.shape[0]] = flat
        return full

    def load(self, params_host=None):
        """Flat parameters (copied from the host when given) into the kernels'
        ``coef`` and ``intercept``."""
        if params_host is not None:
            self.params.copy_to_device(self.padded(params_host))
        _launch(_load_params, self.vector_blocks, _VECTOR_THREADS, self.params,
                self.n_features, self.fit_intercept, self.coef, self.intercept)

    def pass_sums(self, rows, smoothing, binary, X_host=None, full=False):
        """Residuals of ``rows`` (a device array), then the gradient sums into
        ``self.grad`` (flat layout; zero intercepts without one). Returns the
        device array of per-block loss sums."""
        n = rows.shape[0]
        if self.fused:
            blocks = _blocks_for(n, _FUSED_ROWS, _MAX_BLOCKS)
            loss_part = cuda.device_array(blocks)
            partial = cuda.device_array((blocks, self.n_params))
            _launch(_fused_dense, blocks, _FUSED_ROWS, self.X, self.y, self.w, rows,
                    self.coef, self.intercept, smoothing, binary, loss_part, partial)
            _launch(_sum_segments, self.vector_blocks, _VECTOR_THREADS, partial,
                    self.grad)
            self._zero_intercepts()
            return loss_part
        R = self.residual_buffer(n)
        blocks = _blocks_for(n, _THREADS, _MAX_BLOCKS)
        loss_part = cuda.device_array(blocks)
        if self.sparse:
            _launch(_residuals_csr, blocks, _THREADS, self.data, self.indices,
                    self.indptr, self.y, self.w, rows, self.coef, self.intercept,
                    smoothing, binary, R, loss_part)
        else:
            _launch(_residuals_dense, blocks, _THREADS, self.X, self.y, self.w, rows,
                    self.coef, self.intercept, smoothing, binary, R, loss_part)
        self._gradient(rows, R, X_host, full)
        return loss_part

    def _gradient(self, rows, R, X_host, full):
        n = rows.shape[0]
        if self.sparse and full:
            data, indices, indptr = self.csc(X_host)
            _launch(_gradient_csc, _blocks_for(self.n_features + 1, 128), 128,
                    data, indices, indptr, R, self.n_features, self.grad)
        elif self.sparse:
            _launch(_fill, self.vector_blocks, _VECTOR_THREADS, self.grad, 0.0)
            _launch(_gradient_csr_rows, _blocks_for(n, 128), 128, self.data,
                    self.indices, self.indptr, rows, R, self.n_features, self.grad)
            _launch(_intercept_sums, 1, self.n_logits, R, self.n_features,
                    self.grad)
        else:
            segments = _blocks_for(n, _ROWS_PER_SEGMENT)
            partial = cuda.device_array((segments, self.n_params))
            grid = (_blocks_for(self.n_features + 1, _GRAD_X),
                    _blocks_for(self.n_logits, _GRAD_Y), segments)
            _launch(_gradient_dense, grid, (_GRAD_X, _GRAD_Y), self.X, rows, R,
                    _ROWS_PER_SEGMENT, partial)
            _launch(_sum_segments, self.vector_blocks, _VECTOR_THREADS, partial,
                    self.grad)
        self._zero_intercepts()

    def _zero_intercepts(self):
        if not self.fit_intercept:  # the intercepts' slots stay at zero
            _launch(_fill, 1, self.n_logits,
                    self.grad[self.n_logits * self.n_features:], 0.0)


def loss_gradient_sums(device, params, smoothing, binary, X_host):
    """One full pass on the device; ``(loss_sum, grad_sums)`` on the host,
    the sums in the flat layout (only the parameters go to the device and
    the gradient comes back)."""
    device.load(params)
    loss_part = device.pass_sums(device.all_rows, smoothing, binary, X_host,
                                 full=True)
    grad = device.grad.copy_to_host()
    if not device.fit_intercept:
        grad = grad[:device.n_logits * device.n_features]
    return float(loss_part.copy_to_host().sum()), grad


def minibatch_epoch(device, X_host, sample_weight, state, order, batch_size, rule,
                    l2, l1, smoothing, binary, schedule):
    """``_kernels.minibatch_epoch`` on the device: the parameters and the
    optimiser's state go to the device at the start of the epoch and back at
    its end; every step runs there. The step count, the learning rate and
    the averaging count are kept on the host (scalars).

    Returns ``(loss_sum, weight_sum, diverged)`` as the CPU epoch.
    """
    n_coef = device.n_logits * device.n_features
    n_params = state.params.shape[0]

    def to_device(a):
        return cuda.to_device(device.padded(a))

    params = device.params
    params.copy_to_device(device.padded(state.params))
    moments = ([to_device(state.velocity)] if rule.solver == "sgd"
               else [to_device(state.m), to_device(state.v)])
    shift = to_device(state.shift)
    threshold = to_device(state.threshold)
    average = to_device(state.average)
    flags = cuda.to_device(np.zeros(1, dtype=np.int64))
    total = cuda.to_device(np.zeros(1))
    d_order = cuda.to_device(np.ascontiguousarray(order, dtype=np.int64))
    starts = np.arange(0, order.shape[0], batch_size)
    weights = np.add.reduceat(sample_weight[order], starts) if starts.size else starts
    total_weight = 0.0
    counts = state.counts
    blocks, threads = device.vector_blocks, _VECTOR_THREADS
    for a, weight in zip(starts, weights, strict=True):
        rows = d_order[a:min(a + batch_size, order.shape[0])]
        device.load()
        loss_part = device.pass_sums(rows, smoothing, binary)
        _launch(_batch_loss, 1, _THREADS, loss_part, params, n_coef, l2, weight,
                total)
        step = int(counts[0])
        rate = _steps.learning_rate(schedule, step, rule.eta0, state.eta, rule.alpha,
                                    rule.power_t)
        counts[0] = step + 1
        counts[1] += rows.shape[0]
        average_count = 0
        if rule.average > 0 and counts[1] >= rule.average:
            counts[2] += 1
            average_count = int(counts[2])
        inv_weight = 1.0 / weight if weight > 0 else 0.0
        if rule.solver == "sgd":
            _launch(_sgd_step, blocks, threads, params, device.grad, moments[0],
                    shift, average, n_coef, inv_weight, l2, rate, rule.momentum,
                    rule.nesterovs_momentum, l1, rule.intercept_scale,
                    average_count, flags)
        else:
            lr = _steps.adam_rate(rate, step, rule.beta_1, rule.beta_2)
            _launch(_adam_step, blocks, threads, params, device.grad, moments[0],
                    moments[1], shift, threshold, average, n_coef, inv_weight, l2,
                    lr, rule.beta_1, rule.beta_2, rule.epsilon, l1,
                    rule.intercept_scale, average_count, flags)
        total_weight += weight
    state.params[:] = params.copy_to_host()[:n_params]
    if rule.solver == "sgd":
        state.velocity[:] = moments[0].copy_to_host()[:n_params]
    else:
        state.m[:] = moments[0].copy_to_host()[:n_params]
        state.v[:] = moments[1].copy_to_host()[:n_params]
    state.shift[:] = shift.copy_to_host()[:n_params]
    state.threshold[:] = threshold.copy_to_host()[:n_params]
    state.average[:] = average.copy_to_host()[:n_params]
    diverged = bool(flags.copy_to_host()[0])
    return float(total.copy_to_host()[0]), float(total_weight), diverged
