"""L-BFGS for many parameters: compact quasi-Newton update, compiled vector passes.

scipy's L-BFGS-B spends O(m n) of interpreted-speed work per iteration on its
bound-constrained machinery (Cauchy point, subspace minimisation), about 0.1 s
at 2e6 parameters: as much as a loss-and-gradient pass over sparse text. An
unconstrained problem needs none of it. This module keeps L-BFGS-B's
algorithm where it matters for the path taken -- the same Moré-Thuente line
search (scipy's ``DCSRCH``, with L-BFGS-B's constants), the same curvature
test for skipping an update, the same ``H0 = (s'y / y'y) I`` scaling, the same
restart after a failed line search and the same stopping tests, plus one on
the model's predicted decrease (see ``compact_lbfgs``) -- and computes
the direction ``d = -H g`` with the compact representation of Byrd, Nocedal
and Schnabel (1994):

    H g = gamma g + S p_s + Y p_y,

    u = R^-1 (S'g),  p_s = R^-T ((D + gamma Y'Y) u - gamma Y'g),  p_y = -gamma u,

where ``R`` is the upper triangle of ``S'Y`` and ``D`` its diagonal. The
O(n) work is two compiled passes per iteration: one stores the new pair and
forms every inner product the small ``2m x 2m`` algebra needs, one forms ``d``.
The small algebra is numpy on m x m matrices.

Everything works on flat float64 vectors and knows nothing of the data.
"""

import time

import numpy as np
from numba import njit
from scipy.linalg import solve_triangular
from scipy.optimize._dcsrch import DCSRCH

from ._steps import min_norm_subgradient

# L-BFGS-B's line search constants (lnsrlb): sufficient decrease, curvature,
# relative width of the bracket; and its history length (scipy's maxcor).
_FTOL, _GTOL, _XTOL = 1e-3, 0.9, 0.1
_STEP_MAX = 1e10
MEMORY = 10
# Elements per block of the vector passes: the block of g and of the new pair
# stays in L1 while the m rows of S and Y stream through.
_BLOCK = 2048


# Reductions below may be reassociated (vectorised); no other fast-math flag,
# so NaN and inf propagate as they should.
_REASSOC = {"reassoc", "contract"}


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _axpy_into(out, x, alpha, d, start, stop):
    """``out = x + alpha d`` on ``start:stop``."""
    for j in range(start, stop):
        out[j] = x[j] + alpha * d[j]


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _dot(a, b, start, stop):
    total = 0.0
    for j in range(start, stop):
        total += a[j] * b[j]
    return total


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _copy_and_dot(out, src, d, start, stop):
    """``out = src`` and ``src'd`` on ``start:stop``, in one read of ``src``."""
    total = 0.0
    for j in range(start, stop):
        out[j] = src[j]
        total += src[j] * d[j]
    return total


@njit(cache=True, nogil=True)
def _multiply_into(out, a, b, start, stop):
    for j in range(start, stop):
        out[j] = a[j] * b[j]


@njit(cache=True, nogil=True)
def _max_abs(a, start, stop):
    """``max |a|`` on ``start:stop``; NaN if any entry is NaN."""
    largest = 0.0
    for j in range(start, stop):
        v = abs(a[j])
        if not v <= largest:  # also takes NaN, which then stays
            largest = v
            if v != v:
                return v
    return largest


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _store_and_project(S, Y, rows, slot, step, d, g, g_old, v, dots, start, stop):
    """Store the new pair and form the inner products of the compact update.

    On ``start:stop`` (the caller adds up the ranges): with ``slot >= 0``,
    ``S[slot] = step * d`` and ``Y[slot] = g - g_old``; then for every
    occupied row ``i`` in ``rows``: ``dots[0, i] = S[i]'v``,
    ``dots[1, i] = Y[i]'v`` (``v``: the vector to multiply by ``H``, ``g``
    itself but for OWL-QN's pseudo-gradient), ``dots[2, i] = S[i]'Y[slot]`` and
    ``dots[3, i] = Y[i]'Y[slot]`` (the last two only with ``slot >= 0``);
    finally ``g_old = g``. One read of S and
    Y, in blocks: the blocks of ``g`` and of the new pair stay in L1 while the
    rows of S and Y stream through.
    """
    m = S.shape[0]
    for r in range(dots.shape[0]):
        for i in range(m):
            dots[r, i] = 0.0
    y_new = Y[max(slot, 0)]
    for a in range(start, stop, _BLOCK):
        b = min(a + _BLOCK, stop)
        if slot >= 0:
            s_new = S[slot]
            for j in range(a, b):
                s_new[j] = step * d[j]
                y_new[j] = g[j] - g_old[j]
        for i in rows:
            s_i, y_i = S[i], Y[i]
            sg, yg, sy, yy = 0.0, 0.0, 0.0, 0.0
            if slot >= 0:
                for j in range(a, b):
                    sg += s_i[j] * v[j]
                    yg += y_i[j] * v[j]
                    sy += s_i[j] * y_new[j]
                    yy += y_i[j] * y_new[j]
            else:
                for j in range(a, b):
                    sg += s_i[j] * v[j]
                    yg += y_i[j] * v[j]
            dots[0, i] += sg
            dots[1, i] += yg
            dots[2, i] += sy
            dots[3, i] += yy
        for j in range(a, b):
            g_old[j] = g[j]


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _direction(S, Y, coef_s, coef_y, gamma, g, d, start, stop):
    """``d = -(gamma g + S' coef_s + Y' coef_y)`` on ``start:stop``, blocked."""
    m = S.shape[0]
    for a in range(start, stop, _BLOCK):
        b = min(a + _BLOCK, stop)
        for j in range(a, b):
            d[j] = -gamma * g[j]
        for i in range(m):
            cs, cy = coef_s[i], coef_y[i]
            if cs == 0.0 and cy == 0.0:
                continue
            s_i, y_i = S[i], Y[i]
            for j in range(a, b):
                d[j] -= cs * s_i[j] + cy * y_i[j]


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _l1_norm(x, l1, start, stop):
    total = 0.0
    for j in range(start, stop):
        total += l1[j] * abs(x[j])
    return total


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _project_direction(d, pg, l1, start, stop):
    """OWL-QN's direction projection on ``start:stop``; returns ``pg'd``."""
    total = 0.0
    for j in range(start, stop):
        if l1[j] > 0.0 and not d[j] * pg[j] < 0.0:
            d[j] = 0.0
        total += pg[j] * d[j]
    return total


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _orthant_step(out, s, x, alpha, d, pg, l1, start, stop):
    """``out = x + alpha d``, its penalised entries that leave the orthant
    of ``x`` set to 0 (at ``x_j = 0`` the orthant is that of ``-pg_j``; none
    when ``pg_j = 0``), and ``s = out - x``; returns ``(sum l1 |out|,
    pg's)``."""
    penalty, decrease = 0.0, 0.0
    for j in range(start, stop):
        v = x[j] + alpha * d[j]
        if l1[j] > 0.0:
            orthant = x[j] if x[j] != 0.0 else -pg[j]
            if not v * orthant > 0.0:
                v = 0.0
            penalty += l1[j] * abs(v)
        out[j] = v
        s[j] = v - x[j]
        decrease += pg[j] * s[j]
    return penalty, decrease


class VectorOps:
    """The O(n) operations of an iteration, split over threads by index ranges.

    Parameters
    ----------
    n : int
        Length of the vectors.
    map_chunks : callable
        ``map_chunks(func, n_chunks)`` as :func:`sksoftmax._parallel.chunk_map`
        yields. Partial results are added in chunk order, so the result does
        not depend on which thread ran what.
    n_chunks : int
    """

    def __init__(self, n, map_chunks=None, n_chunks=1):
        self.map_chunks = map_chunks
        self.bounds = [(c * n // n_chunks, (c + 1) * n // n_chunks)
                       for c in range(n_chunks)]

    def _map(self, func):
        """``[func(c, start, stop) for each chunk c]``, on the threads."""
        bounds = self.bounds
        if len(bounds) == 1:
            return [func(0, *bounds[0])]
        return self.map_chunks(lambda c: func(c, *bounds[c]), len(bounds))

    def axpy_into(self, out, x, alpha, d):
        self._map(lambda c, a, b: _axpy_into(out, x, alpha, d, a, b))

    def dot(self, u, v):
        return sum(self._map(lambda c, a, b: _dot(u, v, a, b)))

    def copy_and_dot(self, out, src, d):
        """``out[:] = src``; returns ``src'd``."""
        return sum(self._map(lambda c, a, b: _copy_and_dot(out, src, d, a, b)))

    def multiply_into(self, out, u, v):
        self._map(lambda c, a, b: _multiply_into(out, u, v, a, b))

    def max_abs(self, v):
        """``max |v|`` (0 for an empty vector; NaN when v holds a NaN)."""
        parts = self._map(lambda c, a, b: _max_abs(v, a, b))
        return parts[0] if np.isnan(parts).any() else max(parts)

    def store_and_project(self, S, Y, rows, slot, step, d, g, g_old, v, dots):
        parts = [dots] + [np.empty_like(dots) for _ in self.bounds[1:]]
        self._map(lambda c, a, b: _store_and_project(S, Y, rows, slot, step, d, g,
                                                     g_old, v, parts[c], a, b))
        for part in parts[1:]:
            dots += part

    def direction(self, S, Y, coef_s, coef_y, gamma, g, d):
        self._map(lambda c, a, b: _direction(S, Y, coef_s, coef_y, gamma, g, d, a, b))

    # OWL-QN's passes (``l1``: the per-entry L1 weights, 0 where none)
    def min_norm_subgradient(self, out, x, g, l1):
        """:func:`_steps.min_norm_subgradient` into ``out``; its max ``|.|``."""
        parts = self._map(lambda c, a, b: min_norm_subgradient(out, x, g, l1, a, b))
        return parts[0] if np.isnan(parts).any() else max(parts)

    def l1_norm(self, x, l1):
        return sum(self._map(lambda c, a, b: _l1_norm(x, l1, a, b)))

    def project_direction(self, d, pg, l1):
        """Zero the penalised entries of ``d`` that do not descend along
        ``-pg``; returns ``pg'd``."""
        return sum(self._map(lambda c, a, b: _project_direction(d, pg, l1, a, b)))

    def orthant_step(self, out, s, x, alpha, d, pg, l1):
        """``out = x + alpha d`` projected on ``x``'s orthant, ``s = out - x``;
        returns ``(sum l1 |out|, pg's)``."""
        parts = self._map(lambda c, a, b: _orthant_step(out, s, x, alpha, d, pg, l1,
                                                        a, b))
        return sum(p[0] for p in parts), sum(p[1] for p in parts)


class CompactHistory:
    """The last ``memory`` pairs ``(s, y)`` and the small matrices built from them.

    Rows of ``S``/``Y`` are a ring buffer; ``order`` lists the occupied rows
    from oldest to newest. ``SY[i, j] = s_i'y_j`` is kept for ``i`` older
    than or equal to ``j`` (the rest is never read), ``YY`` in full.
    """

    def __init__(self, n_params, memory=MEMORY, ops=None):
        self.ops = VectorOps(n_params) if ops is None else ops
        self.S = np.zeros((memory, n_params))
        self.Y = np.zeros((memory, n_params))
        self.SY = np.zeros((memory, memory))
        self.YY = np.zeros((memory, memory))
        self.dots = np.zeros((4, memory))
        self.order = []
        self.gamma = 1.0

    def clear(self):
        self.order = []
        self.gamma = 1.0

    def update_and_direction(self, step, d, g, g_old, store, v=None):
        """Add the pair ``(step d, g - g_old)`` if ``store``; then ``d = -H v``
        (``v`` defaults to ``g``).

        Also sets ``g_old = g``. ``d`` is overwritten in place.
        """
        v = g if v is None else v
        memory = self.S.shape[0]
        slot = -1
        if store:
            slot = (self.order[-1] + 1) % memory if self.order else 0
            if len(self.order) == memory:
                self.order.pop(0)
            self.order.append(slot)
        rows = np.array(self.order, dtype=np.intp)
        self.ops.store_and_project(self.S, self.Y, rows, slot, step, d, g, g_old, v,
                                   self.dots)
        if store:
            # the new column of S'Y, and of the symmetric Y'Y
            self.SY[:, slot] = self.dots[2]
            self.YY[:, slot] = self.dots[3]
            self.YY[slot, :] = self.dots[3]
            self.gamma = self.SY[slot, slot] / self.YY[slot, slot]
        if not self.order:
            np.negative(v, out=d)
            return
        R = np.triu(self.SY[np.ix_(rows, rows)])
        gamma = self.gamma
        u = solve_triangular(R, self.dots[0, rows], check_finite=False)
        w = np.diag(R) * u + gamma * (self.YY[np.ix_(rows, rows)] @ u) \
            - gamma * self.dots[1, rows]
        coef_s = np.zeros(memory)
        coef_y = np.zeros(memory)
        coef_s[rows] = solve_triangular(R, w, trans="T", check_finite=False)
        coef_y[rows] = -gamma * u
        self.ops.direction(self.S, self.Y, coef_s, coef_y, gamma, v, d)


class FeatureScale:
    """The change of variables ``params = T u`` of a Kronecker preconditioner.

    The first ``n_logits * n_features`` parameters are a coefficient matrix
    (``n_logits`` rows); ``T`` multiplies it on the right by the symmetric
    ``M = rest I + V diag(scales - rest) V'`` (``V`` orthonormal columns)
    and the remaining parameters (intercepts) by ``tail``, entrywise. L-BFGS
    in ``u`` starts from the inverse Hessian ``gamma T T'``: ``M^2 ⊗ I`` on
    the coefficients, a preconditioner that sees correlated features.
    Applying ``T`` costs ``O(n_logits n_features rank)``.

    Parameters
    ----------
    n_logits : int
    vectors : ndarray of shape (n_features, rank)
    scales : ndarray of shape (rank,)
        Positive.
    rest : float
        Positive: ``M``'s value on the complement of ``vectors``' span
        (unused when ``rank == n_features``).
    tail : ndarray
        Positive scales of the parameters after the coefficients.
    """

    def __init__(self, n_logits, vectors, scales, rest, tail):
        self.n_logits = int(n_logits)
        self.vectors = np.ascontiguousarray(vectors, dtype=float)
        self.scales = np.asarray(scales, dtype=float)
        self.rest = float(rest)
        self.tail = np.asarray(tail, dtype=float)
        # of full rank, M itself: one product per use instead of two
        self._matrix = (self._dense(self.scales) if self.vectors.shape[0]
                        == self.vectors.shape[1] else None)

    def _dense(self, scales):
        return (self.vectors * scales) @ self.vectors.T

    def _apply(self, v, out, scales, rest, tail, matrix=None):
        V = self.vectors
        n_coef = self.n_logits * V.shape[0]
        block = v[:n_coef].reshape(self.n_logits, V.shape[0])
        result = out[:n_coef].reshape(block.shape)
        if matrix is not None:
            np.matmul(block, matrix, out=result)
        else:
            projected = (block @ V) * (scales - rest)
            np.multiply(block, rest, out=result)
            result += projected @ V.T
        np.multiply(v[n_coef:], tail, out=out[n_coef:])
        return out

    def to_params(self, u, out):
        """``T u`` into ``out``."""
        return self._apply(u, out, self.scales, self.rest, self.tail, self._matrix)

    def gradient_in_variables(self, grad, out):
        """``T' grad`` (``T`` is symmetric) into ``out``."""
        return self._apply(grad, out, self.scales, self.rest, self.tail,
                           self._matrix)

    def to_variables(self, params):
        """``T^-1 params``, a new array."""
        inverse = None if self._matrix is None else self._dense(1.0 / self.scales)
        return self._apply(params, np.empty_like(params), 1.0 / self.scales,
                           1.0 / self.rest, 1.0 / self.tail, inverse)


class DiagonalScale:
    """``params = r * u`` (on the threads of ``ops`` when given)."""

    def __init__(self, r, ops=None):
        self.r = r
        self.ops = VectorOps(r.shape[0]) if ops is None else ops

    def to_params(self, u, out):
        self.ops.multiply_into(out, self.r, u)
        return out

    gradient_in_variables = to_params

    def to_variables(self, params):
        return params / self.r


def compact_lbfgs(loss_gradient, params0, *, max_iter, tol, ftol, maxls=50,
                  memory=MEMORY, verbose=False, map_chunks=None, n_chunks=1,
                  scale=None, l1=None):
    """Minimise a smooth function by L-BFGS (compact update, Moré-Thuente search),
    or a smooth function plus a weighted L1 norm by OWL-QN.

    Parameters
    ----------
    loss_gradient : callable
        ``loss_gradient(params) -> (loss, grad)``; ``grad`` may be reused by
        the next call (it is copied).
    params0 : ndarray of float64
        Starting point (not modified).
    max_iter : int
        Maximum number of iterations (accepted line searches).
    tol : float
        Converged when ``max|grad| <= tol`` and the decrease the
        quasi-Newton model predicts for the next step, ``-g'd / 2``, is at
        most ``tol * max(|f|, 1)`` (on ill-conditioned problems a small
        gradient entry can sit far from the optimum; the model sees it).
    ftol : float
        Stop when ``(f_old - f) <= ftol * max(|f_old|, |f|, 1)``, as L-BFGS-B.
    maxls : int
        Maximum evaluations per line search.
    memory : int
        Number of pairs kept.
    verbose : bool
        Print one line per iteration.
    map_chunks : callable, default=None
        Runs the vector operations on threads (:class:`VectorOps`), over
        ``n_chunks`` ranges of the parameters.
    n_chunks : int, default=1
    scale : ndarray of float64 or FeatureScale, default=None
        A change of variables ``params = T u``: L-BFGS then runs on ``u``,
        which is L-BFGS with the initial inverse Hessian ``gamma T T'``
        instead of ``gamma I`` (a preconditioner). An array holds positive
        per-parameter scales ``r`` (``T = diag(r)``). The stopping rules,
        the returned gradient and ``params`` stay those of the original
        variables.
    l1 : ndarray of float64, default=None
        Non-negative weights ``l1_j``: minimise ``f + sum_j l1_j |params_j|``
        by OWL-QN (:func:`_run_orthantwise`) instead; its exact zeros are
        returned as zeros. ``scale`` must then be an array (a diagonal
        change of variables keeps the penalty separable), and ``tol`` and
        the returned gradient are about the minimum-norm subgradient.

    Returns
    -------
    params : ndarray
    f : float
        The objective at ``params`` (with ``l1``, its L1 term included).
    grad : ndarray
        The gradient at ``params`` (with ``l1``, the minimum-norm subgradient).
    n_iter : int
    loss_curve : list of float
        The objective after each iteration.
    status : {"converged", "max_iter", "ftol", "line_search"}
    """
    start = time.perf_counter()
    n = params0.shape[0]
    ops = VectorOps(n, map_chunks, n_chunks)
    if l1 is not None:
        if scale is not None and not isinstance(scale, np.ndarray):
            raise TypeError("with an L1 term the scale must be diagonal (an array)")
        return _orthantwise(loss_gradient, params0, ops, start, scale=scale, l1=l1,
                            max_iter=max_iter, tol=tol, ftol=ftol, maxls=maxls,
                            memory=memory, verbose=verbose)
    if scale is None:
        x = params0.copy()
        optimality = ops.max_abs
    else:
        if isinstance(scale, np.ndarray):
            scale = DiagonalScale(scale, ops)
        x = scale.to_variables(params0)
        loss_gradient, original = in_new_variables(loss_gradient, scale)

        def optimality(_):  # of the last point evaluated: the one accepted
            return ops.max_abs(original[1])

    x, f, g, n_iter, loss_curve, status = _run(
        loss_gradient, x, ops, start, max_iter=max_iter, tol=tol, ftol=ftol,
        maxls=maxls, memory=memory, verbose=verbose, optimality=optimality)
    if scale is not None:
        # back to the original variables (their gradient: the last evaluated)
        x = scale.to_params(x, np.empty_like(x))
        g = original[1].copy()
    return x, f, g, n_iter, loss_curve, status


def in_new_variables(loss_gradient, scale):
    """``u -> (f(T u), T' grad f(T u))``, into buffers of its own, and a list
    ``[params, grad]`` of the original variables at the last call."""
    original = [None, None]
    x = None
    grad_u = None

    def transformed(u):
        nonlocal x, grad_u
        if x is None:
            x, grad_u = np.empty_like(u), np.empty_like(u)
        scale.to_params(u, x)
        f, grad = loss_gradient(x)
        original[:] = x, grad
        scale.gradient_in_variables(grad, grad_u)
        return f, grad_u

    return transformed, original


def _run(loss_gradient, x, ops, start, *, max_iter, tol, ftol, maxls, memory,
         verbose, optimality):
    """The iterations of :func:`compact_lbfgs` from ``x`` (owned, modified).

    Converged when ``optimality(g) <= tol``, ``g`` the gradient at ``x``
    (the last point ``loss_gradient`` was called at), and the model's
    predicted decrease is at most ``tol * max(|f|, 1)``; or when ``f`` stops
    changing (``ftol``) with ``optimality(g) <= tol``.
    """
    n = x.shape[0]
    f, grad = loss_gradient(x)
    g = grad.copy()
    loss_curve = []
    if not optimality(g) > tol and not _decrement(ops, g, np.negative(g)) > \
            tol * max(abs(f), 1.0):
        return x, f, g, 0, loss_curve, "converged"
    history = CompactHistory(n, memory, ops)
    g_old = g.copy()
    d = np.negative(g)
    x_trial = np.empty(n)
    g_trial = np.empty(n)
    # the last point the line search evaluated: [step, f, g'd]
    trial = [None, None, None]

    def phi(step):
        if step != trial[0]:
            ops.axpy_into(x_trial, x, step, d)
            f_step, grad_step = loss_gradient(x_trial)
            trial[:] = step, f_step, ops.copy_and_dot(g_trial, grad_step, d)
        return trial[1]

    def derphi(step):
        phi(step)
        return trial[2]

    n_iter, status = 0, "max_iter"
    while n_iter < max_iter:
        derphi0 = ops.dot(g, d)
        if not derphi0 < 0.0:
            # not a descent direction (rounding): restart along -g
            history.clear()
            np.negative(g, out=d)
            derphi0 = -ops.dot(g, g)
        # L-BFGS-B's first step has length 1 along -g; later ones try step 1
        step0 = 1.0 / np.sqrt(-derphi0) if n_iter == 0 and not history.order else 1.0
        trial[0] = None
        search = DCSRCH(phi, derphi, _FTOL, _GTOL, _XTOL, 0.0, _STEP_MAX)
        step, _, _, task = search(step0, phi0=f, derphi0=derphi0, maxiter=maxls)
        if step is None and task[:4] == b"WARN" and trial[0] is not None \
                and trial[1] < f:
            # as L-BFGS-B: a search stopped by rounding errors keeps its last
            # point when that point lowered the objective
            step = trial[0]
        if step is None:
            if history.order:
                # as L-BFGS-B: forget the pairs and retry along -g
                history.clear()
                np.negative(g, out=d)
                continue
            status = "line_search"
            break
        phi(step)
        f_old, derphi1 = f, trial[2]
        x, x_trial = x_trial, x
        g, g_trial = g_trial, g
        f = trial[1]
        n_iter += 1
        loss_curve.append(f)
        if verbose:
            print(f"Iteration {n_iter}, loss = {f:.8f}, "
                  f"time = {time.perf_counter() - start:.3f}s")
        small = not optimality(g) > tol
        if f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            status = "converged" if small else "ftol"
            break
        # L-BFGS-B's test for a pair worth keeping: s'y > eps * (-s'g_old)
        sy = step * (derphi1 - derphi0)
        store = sy > np.finfo(float).eps * (-step * derphi0)
        history.update_and_direction(step, d, g, g_old, store)
        if small and not _decrement(ops, g, d) > tol * max(abs(f), 1.0):
            status = "converged"
            break
    return x, f, g, n_iter, loss_curve, status


def _decrement(ops, g, d):
    """The decrease ``-g'd / 2`` that the quasi-Newton model predicts for the
    step ``d = -H g`` (the same in any variables): it estimates the distance
    to the optimum in the objective where the largest gradient entry cannot,
    along directions of little curvature."""
    return -0.5 * ops.dot(g, d)


# OWL-QN's backtracking: sufficient decrease along the projected path (Andrew
# and Gao's constant) and the bounds on each cut of the step
_OWL_ARMIJO = 1e-4
_OWL_SHRINK = (0.1, 0.5)


def _orthantwise(loss_gradient, params0, ops, start, *, scale, l1, max_iter, tol,
                 ftol, maxls, memory, verbose):
    """:func:`compact_lbfgs` with an L1 term: OWL-QN in ``u``, ``params = r u``
    (``r = scale``, or 1), where the weights become ``l1 r``."""
    l1 = np.asarray(l1, dtype=float)
    if scale is None:
        x = params0.copy()
        l1_u, inverse = l1, None
    else:
        diagonal = DiagonalScale(scale, ops)
        x = diagonal.to_variables(params0)
        loss_gradient, _ = in_new_variables(loss_gradient, diagonal)
        l1_u, inverse = l1 * scale, 1.0 / scale
    subgradient = np.empty_like(x)

    def optimality(pg):
        """The minimum-norm subgradient's largest entry in the original
        variables, ``pg / r`` (the scale keeps every sign), into
        ``subgradient``."""
        if inverse is None:
            subgradient[:] = pg
        else:
            ops.multiply_into(subgradient, pg, inverse)
        return ops.max_abs(subgradient)

    x, f, n_iter, loss_curve, status = _run_orthantwise(
        loss_gradient, x, ops, start, l1=l1_u, max_iter=max_iter, tol=tol,
        ftol=ftol, maxls=maxls, memory=memory, verbose=verbose,
        optimality=optimality)
    if scale is not None:
        x = diagonal.to_params(x, np.empty_like(x))
    return x, f, subgradient, n_iter, loss_curve, status


def _run_orthantwise(loss_gradient, x, ops, start, *, l1, max_iter, tol, ftol,
                     maxls, memory, verbose, optimality):
    """OWL-QN (Andrew & Gao, 2007) from ``x`` (owned, modified) on
    ``F = f + sum_j l1_j |x_j|``.

    Each iteration: the pseudo-gradient ``pg`` (the minimum-norm
    subgradient of ``F``), the L-BFGS direction ``d = -H pg`` from pairs of
    ``f``'s gradients, its penalised entries that do not descend along
    ``-pg`` zeroed, then a backtracking search along the path projected on
    the current orthant (entries that would change sign stop at 0, which is
    how exact zeros arise), accepted on ``F(x+) <= F(x) + c pg'(x+ - x)``.
    The stopping rules are :func:`_run`'s with ``pg`` for the gradient:
    ``optimality(pg) <= tol`` and a predicted decrease ``-pg'd / 2`` of at
    most ``tol * max(|F|, 1)``, or ``F`` no longer changing (``ftol``).
    Returns ``(x, F, n_iter, loss_curve, status)``; ``optimality``'s last
    call saw the returned point's ``pg``.
    """
    n = x.shape[0]
    f, grad = loss_gradient(x)
    g = grad.copy()
    F = f + ops.l1_norm(x, l1)
    pg = np.empty(n)
    ops.min_norm_subgradient(pg, x, g, l1)
    d = np.negative(pg)
    slope = ops.project_direction(d, pg, l1)
    loss_curve = []
    if not optimality(pg) > tol and not -0.5 * slope > tol * max(abs(F), 1.0):
        return x, F, 0, loss_curve, "converged"
    history = CompactHistory(n, memory, ops)
    g_old = g.copy()
    x_trial, s = np.empty(n), np.empty(n)
    n_iter, status = 0, "max_iter"
    while n_iter < max_iter:
        if not slope < 0.0:
            # not a descent direction (rounding, or curvature pairs that
            # disagree with the orthant): restart along -pg
            history.clear()
            np.negative(pg, out=d)
            slope = ops.project_direction(d, pg, l1)
            if not slope < 0.0:  # pg = 0: the optimum
                status = "converged"
                break
        step = 1.0 / np.sqrt(-slope) if not history.order else 1.0
        accepted = False
        for _ in range(maxls):
            penalty, decrease = ops.orthant_step(x_trial, s, x, step, d, pg, l1)
            f_trial, grad_trial = loss_gradient(x_trial)
            F_trial = f_trial + penalty
            if F_trial <= F + _OWL_ARMIJO * decrease:
                accepted = True
                break
            # cut to the minimiser of the quadratic through F, the slope at
            # 0 and F_trial, within _OWL_SHRINK of the step (the largest cut
            # when F_trial is not finite)
            excess = F_trial - F - slope * step
            cut = (-slope * step / (2.0 * excess) if np.isfinite(F_trial)
                   and excess > 0.0 else _OWL_SHRINK[0])
            step *= min(max(cut, _OWL_SHRINK[0]), _OWL_SHRINK[1])
        if not accepted:
            if history.order:  # as L-BFGS-B: forget the pairs, retry along -pg
                history.clear()
                slope = 0.0
                continue
            status = "line_search"
            break
        F_old = F
        x, x_trial = x_trial, x
        g[:] = grad_trial
        F = F_trial
        n_iter += 1
        loss_curve.append(F)
        if verbose:
            print(f"Iteration {n_iter}, loss = {F:.8f}, "
                  f"time = {time.perf_counter() - start:.3f}s")
        ops.min_norm_subgradient(pg, x, g, l1)
        small = not optimality(pg) > tol
        if F_old - F <= ftol * max(abs(F_old), abs(F), 1.0):
            status = "converged" if small else "ftol"
            break
        # as L-BFGS-B, a pair is kept when s'y > eps * (-s'g_old) (here the
        # pseudo-gradient's, which the accepted step decreased along)
        sy = ops.dot(s, g) - ops.dot(s, g_old)
        store = sy > np.finfo(float).eps * (-decrease)
        d, s = s, d  # the pair's s goes in as the step; d receives -H pg
        history.update_and_direction(1.0, d, g, g_old, store, v=pg)
        slope = ops.project_direction(d, pg, l1)
        if small and not -0.5 * slope > tol * max(abs(F), 1.0):
            status = "converged"
            break
    return x, F, n_iter, loss_curve, status
