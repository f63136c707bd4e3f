"""Optimisers: full-batch L-BFGS (scipy's, ``_lbfgs`` at scale), minibatch SGD / Adam.

Solvers see only callables: L-BFGS a ``loss_gradient(params) -> (loss, grad)``
on a flat float64 parameter vector; the minibatch solvers a
``run_epoch(state, order, batch_size, rule)`` that takes the compiled steps
(``_steps``) over a given order of rows, and an optional validation score.
They know nothing of the data format and nothing of scikit-learn.
"""

import copy
import dataclasses
import functools
import time

import numpy as np
from scipy.optimize import minimize

from ._lbfgs import DiagonalScale, FeatureScale, compact_lbfgs, in_new_variables
from ._parallel import blas_single_threaded, chunk_map


class DivergenceError(FloatingPointError):
    """The objective or the parameters became non-finite."""


# At this many parameters and above, L-BFGS runs in ``_lbfgs`` (compact
# update, compiled vector passes on threads); below, scipy's L-BFGS-B, whose
# update costs ~0.1 us per parameter: ~3 ms an iteration here, a small share
# of a pass, and no compilation to pay.
COMPACT_MIN_PARAMS = 2**15
# As LogisticRegression: stop once f no longer changes in float64; such a stop
# counts as converged only by the gradient rule.
_FTOL = 64 * np.finfo(float).eps
# The compact L-BFGS starts each iteration's inverse Hessian from gamma *
# diag(h)^-power, h the objective's curvature estimate. The exact Jacobi
# scaling (power 1) over-scales rare features, whose curvature comes mostly
# through rows shared with frequent ones. Iterations to LogisticRegression's
# objective on 200k x 100k TF-IDF, K = 20 (benchmarks.targets):
#   Zipf vocabulary: no scaling 291, power 1: 122, 0.75: 80, 0.5: 67;
#   flat vocabulary: 12, 2, 5, 7 (the intercept is what needs the scaling).
_PRECONDITIONER_POWER = 0.5
# Below COMPACT_MIN_PARAMS (scipy's L-BFGS-B) the preconditioner is used only
# where the curvature estimate spreads over more than this factor: unscaled
# features, where it cut iterations on the raw sklearn sets (alpha = 1/n):
# wine 483 -> 74, breast_cancer 455 -> 59, digits 109 -> 53. On standardised
# features (spread ~1) it saved 0-7 iterations but stopped at a slightly
# higher objective than LogisticRegression (digits: +5.6e-4 relative) with
# the same gradient rule; there the run stays LogisticRegression's own.
# Spreads measured: raw iris 14, digits 6.9e3, wine 2.4e6, breast_cancer
# 4.6e7; standardised ~1, digits 163 (its constant pixels: alpha alone).
_SCIPY_SCALING_SPREAD = 1000.0


def lbfgs(loss_gradient, params0, *, max_iter, tol, verbose=False, n_threads=1,
          compact=None, curvature=None, feature_curvature=None, l1=None, done=0):
    """Minimise a smooth objective by L-BFGS, or one plus an L1 term by OWL-QN.

    Parameters
    ----------
    loss_gradient : callable
        ``loss_gradient(params) -> (loss, grad)``; ``grad`` may be reused by
        the next call.
    params0 : ndarray of float64
        Starting point.
    max_iter : int
        Maximum number of L-BFGS iterations.
    tol : float
        Converged when the largest absolute gradient entry is at most ``tol``;
        the compact implementation also asks that the decrease its model
        predicts for the next step be at most ``tol * max(|f|, 1)``.
    verbose : bool
        Print one line per iteration.
    n_threads : int, default=1
        Threads for the vector operations of the compact implementation.
    compact : bool, default=None
        Use :func:`sksoftmax._lbfgs.compact_lbfgs` (True) or scipy's
        L-BFGS-B (False); None: the compact one from ``COMPACT_MIN_PARAMS``
        parameters on. Both take the same line search and the same stopping
        rules.
    curvature : callable, default=None
        ``curvature() -> h``, an estimate of the Hessian's diagonal (``h >=
        0``). The compact implementation then preconditions with
        ``diag(h)^(-1/2)`` (see ``_PRECONDITIONER_POWER``); scipy's
        L-BFGS-B does so only where ``h`` spreads over more than
        ``_SCIPY_SCALING_SPREAD`` (unscaled features), and otherwise runs as
        LogisticRegression runs it.
    feature_curvature : callable, default=None
        ``feature_curvature() -> (n_logits, vectors, values, rest)`` or None:
        a Kronecker model of the Hessian of the first ``n_logits *
        n_features`` parameters (coefficients, row-major), ``F ⊗ I`` with
        ``F = V diag(values) V' + rest (I - V V')`` (``V = vectors``, of
        shape (n_features, rank), orthonormal). The compact implementation
        then preconditions those with ``F^(-1/2)`` and the others with ``h``
        as above; it needs ``curvature`` too. On the scipy path, called only
        where ``h`` is used.
    l1 : ndarray, default=None
        Per-parameter L1 weights (0 where none): minimise ``loss + sum_j
        l1_j |params_j|`` by OWL-QN, always in the compact implementation
        (scipy has no L1), preconditioned by the diagonal ``h`` alone (the
        Kronecker model would mix coordinates the penalty separates).
        ``tol`` then bounds the minimum-norm subgradient.
    done : int, default=0
        Iterations an earlier run already made towards the same fit: the
        failure message counts them in its iterations and its ``max_iter``.

    Returns
    -------
    params : ndarray
    n_iter : int
        Iterations completed (0 when the first line search failed).
    loss_curve : list of float
        Objective after each iteration.
    failure : str or None
        None when the run converged by the rule above; otherwise why it
        stopped, in words (``max_iter`` reached, the objective stopped
        decreasing, the line search failed), with the largest gradient entry
        reached.
    """
    if l1 is not None:
        compact, feature_curvature = True, None
    if compact is None:
        compact = params0.shape[0] >= COMPACT_MIN_PARAMS
    scale = None
    if curvature is not None:
        h = curvature()
        if compact or _spread(h) > _SCIPY_SCALING_SPREAD:
            model = None if feature_curvature is None else feature_curvature()
            scale = (_diagonal_scale(h) if model is None
                     else _feature_scale(*model, _diagonal_scale(h)))
    if compact:
        n_chunks = max(1, min(n_threads, params0.shape[0] // 2**16))
        with chunk_map(n_chunks) as map_chunks:
            params, f, grad, n_iter, loss_curve, status = compact_lbfgs(
                loss_gradient, params0, max_iter=max_iter, tol=tol, ftol=_FTOL,
                verbose=verbose, map_chunks=map_chunks, n_chunks=n_chunks,
                scale=scale, l1=l1)
        message = None
    else:
        # L-BFGS-B's vector operations on fewer than COMPACT_MIN_PARAMS entries
        # gain nothing from BLAS threads: with two OpenBLAS threads scipy's run
        # took 14x as long on 17,838 parameters on 2 cores
        with blas_single_threaded():
            params, f, grad, n_iter, loss_curve, status, message = _scipy_lbfgs(
                loss_gradient, params0, max_iter=max_iter, tol=tol, verbose=verbose,
                scale=scale)
    if not np.isfinite(f) or not np.all(np.isfinite(params)):
        raise DivergenceError(
            f"L-BFGS reached a non-finite objective ({message or status}).")
    return params, n_iter, loss_curve, _lbfgs_failure(
        grad, done + n_iter, status, message, tol, done + max_iter,
        what="gradient" if l1 is None else "minimum-norm subgradient")


def minimise(objective, params, *, max_iter, tol, verbose=False, n_threads=1):
    """:func:`lbfgs` on ``objective`` (in memory, on dask or on the GPU), with
    its preconditioner and its L1 weights; a run on float32 X that stops
    short of ``tol`` before ``max_iter`` goes on from where it stopped on the
    objective's float64 copy (``objective.in_float64()``), where there is one.

    Returns ``(params, n_iter, loss_curve, failure)`` as :func:`lbfgs`; a
    failure on float32 X that was not retried in float64 says so.
    """
    # the curvature estimates are of the data, whatever its dtype: a float64
    # continuation takes the first run's instead of another pass and sample
    curvature = functools.cache(objective.curvature_estimate)
    feature_curvature = functools.cache(objective.feature_curvature)
    l1 = objective.l1_weights()

    def run(target, params, done=0):
        return lbfgs(target.loss_gradient, params, max_iter=max_iter - done,
                     tol=tol, verbose=verbose, n_threads=n_threads,
                     curvature=curvature, feature_curvature=feature_curvature,
                     l1=l1, done=done)

    params, n_iter, loss_curve, failure = run(objective, params)
    if failure is None or n_iter >= max_iter or objective.dtype != np.float32:
        return params, n_iter, loss_curve, failure
    in_float64 = getattr(objective, "in_float64", None)
    precise = None if in_float64 is None else in_float64()
    if precise is None:
        return params, n_iter, loss_curve, (
            f"{failure} (float32 X: its precision can stop L-BFGS short of a "
            "tight tol; float64 X would reach it)")
    if verbose:
        print(f"float32 stopped short after {n_iter} iterations: going on on a "
              "float64 copy of X")
    with precise.parallel():
        params, more, curve, failure = run(precise, params, done=n_iter)
    return params, n_iter + more, loss_curve + curve, failure


def _diagonal_scale(h):
    """Per-parameter scales ``r`` with ``r**2 = h ** -_PRECONDITIONER_POWER``.

    Entries with no curvature estimate (``h <= 0`` or not finite) keep 1.
    """
    h = np.asarray(h, dtype=float)
    usable = np.isfinite(h) & (h > 0)
    scale = np.ones_like(h)
    scale[usable] = h[usable] ** (-0.5 * _PRECONDITIONER_POWER)
    return scale


def _spread(h):
    """Largest over smallest positive finite entry of ``h`` (1 when none)."""
    h = np.asarray(h, dtype=float)
    h = h[np.isfinite(h) & (h > 0)]
    return float(h.max() / h.min()) if h.size else 1.0


def _feature_scale(n_logits, vectors, values, rest, diagonal):
    """:class:`_lbfgs.FeatureScale` with ``M = F^(-_PRECONDITIONER_POWER / 2)``
    (``F`` as in :func:`lbfgs`'s ``feature_curvature``) on the coefficients
    and ``diagonal``'s scales (:func:`_diagonal_scale`) on the rest.
    Directions of ``F`` without curvature keep scale 1."""
    n_coef = n_logits * vectors.shape[0]
    return FeatureScale(n_logits, vectors, _diagonal_scale(values),
                        _diagonal_scale([rest])[0], diagonal[n_coef:])


class _Converged(Exception):
    """The starting point already meets the gradient rule."""


def _scipy_lbfgs(loss_gradient, params0, *, max_iter, tol, verbose, scale=None):
    """scipy's L-BFGS-B; with a ``scale`` (as :func:`_lbfgs.compact_lbfgs`
    takes it) on ``u``, ``params = T u``, stopped by the rule on the original
    gradient (scipy's own ``gtol`` would judge ``u``'s)."""
    loss_curve = []
    start = time.perf_counter()
    if scale is None:
        transformed = loss_gradient
    else:
        if isinstance(scale, np.ndarray):
            scale = DiagonalScale(scale)
        # original: [params, gradient] of the last evaluation
        transformed, original = in_new_variables(loss_gradient, scale)
    last = {}  # u and objective of the last evaluation

    def fun(u):
        first = not last
        loss, grad = transformed(u)
        last.update(u=u.copy(), loss=loss)
        if scale is not None and first and \
                not np.max(np.abs(original[1]), initial=0.0) > tol:
            raise _Converged
        # scipy keeps a reference to the gradient: hand it a copy.
        return loss, grad.copy()

    def at(u):
        """``(params, objective, gradient)`` at ``u``, copies (evaluated
        again if ``u`` was not the last point)."""
        if not np.array_equal(u, last["u"]):
            fun(u)
        return original[0].copy(), last["loss"], original[1].copy()

    def callback(intermediate_result):
        loss_curve.append(float(intermediate_result.fun))
        if verbose:
            print(f"Iteration {len(loss_curve)}, loss = {loss_curve[-1]:.8f}, "
                  f"time = {time.perf_counter() - start:.3f}s")
        if scale is not None and \
                not np.max(np.abs(at(intermediate_result.x)[2])) > tol:
            raise StopIteration

    u0 = params0 if scale is None else scale.to_variables(params0)
    try:
        result = minimize(
            fun, u0, method="L-BFGS-B", jac=True, callback=callback,
            options={"maxiter": max_iter, "gtol": tol if scale is None else 0.0,
                     "maxls": 50, "ftol": _FTOL},
        )
    except _Converged:
        return (*at(last["u"]), 0, loss_curve, "converged", None)
    message = str(result.message).strip()
    # scipy words these as "...REL_REDUCTION_OF_F..." or "...RELATIVE REDUCTION OF F..."
    if "REDUCTION OF F" in message.upper().replace("_", " "):
        status = "ftol"
    elif "ABNORMAL" in message:
        status = "line_search"
    else:
        status = f"status {result.status}"
    if scale is None:
        return (result.x, result.fun, result.jac, int(result.nit), loss_curve,
                status, message)
    return (*at(result.x), int(result.nit), loss_curve, status, message)


def _lbfgs_failure(grad, n_iter, status, message, tol, max_iter, what="gradient"):
    """Why an L-BFGS run did not converge by ``max|grad| <= tol``, or None.

    ``status`` is ``compact_lbfgs``'s (``"ftol"``, ``"line_search"``, ...);
    ``message`` scipy's words, None for the compact implementation; ``what``
    names ``grad`` in the message.
    """
    grad_max = float(np.max(np.abs(grad))) if grad.size else 0.0
    if grad_max <= tol:
        return None
    reached = f"the largest absolute {what} entry is {grad_max:.3g} > tol={tol:g}"
    if n_iter >= max_iter:
        return f"max_iter={max_iter} iterations were reached; {reached}"
    if status == "ftol":
        return (f"the objective stopped decreasing (relative change below "
                f"{_FTOL:.2g}) after {n_iter} iterations; {reached}")
    detail = "" if message is None else f" (scipy: {message})"
    if status == "line_search":
        return (f"the line search found no decrease{detail} after {n_iter} "
                f"iterations; {reached}")
    return f"L-BFGS stopped ({status}){detail}; {reached}"


# Adam's rate for an epoch of T steps is scaled by min(1, sqrt(T0 / T)): a
# constant rate leaves noise in proportion to it, and over a longer horizon a
# smaller rate ends nearer (Adam's bound takes alpha / sqrt(t)). Objective
# after one epoch on 200k x 100 blobs (1000 steps), 1/n: rate x1: 0.360,
# x1/3: 0.195, x1/10: 0.177, x1/30: 0.196 (optimum 0.175).
_ADAM_HORIZON = 100


def auto_eta0(solver, max_smoothness, mean_smoothness, *, batch_size, n_samples,
              momentum=0.0, nesterov=True, scale=1.0):
    """Base learning rate from the data's smoothness constants.

    A minibatch of ``b`` of ``n`` samples drawn without replacement has the
    expected smoothness ``L(b) = n (b - 1) / (b (n - 1)) L + (n - b) / (b (n -
    1)) L_max`` (Gower et al., "SGD: general analysis and improved rates",
    2019): it falls with ``b`` from ``L_max``, the largest per-sample
    constant (which sets SAG's step), to ``L``, that of the mean loss. SGD
    takes ``1 / L(b)``, half the largest step that gradient descent on an
    ``L(b)``-smooth function tolerates. Momentum ``beta`` changes that
    limit: heavy-ball steps stay stable up to ``2 (1 + beta) / L`` and
    Nesterov's up to ``2 (1 + beta) / ((1 + 2 beta) L)``, and the rate is half
    of it; momentum then carries each step ``1 / (1 - beta)`` times further
    along directions of low curvature, where plain SGD is slowest.

    Adam's steps are per coordinate and about ``rate`` long whatever the
    gradient's size. Its rate is ``scale / L(b)``, ``scale`` the
    root-mean-square per-sample gradient entry at the start: a coordinate
    whose gradient is of that size then moves as far as SGD's step would
    move it. (Measured on iris, wine, breast_cancer, digits, streamed digits
    and the 200k x 100 headline: the full-batch gradient's size instead, or
    the minibatch's ``scale / sqrt(b)``, gave rates 3-10x too small on
    streamed digits; ``3 scale`` or ``10 scale`` overshot on breast_cancer.)
    Over epochs of more than ``_ADAM_HORIZON`` minibatches the rate falls as
    ``1 / sqrt(minibatches)``.
    """
    b, n = batch_size, n_samples
    if n > 1:
        smoothness = (n * (b - 1) * mean_smoothness
                      + (n - b) * max_smoothness) / (b * (n - 1))
    else:
        smoothness = max_smoothness
    step = 1.0 / max(smoothness, np.finfo(float).tiny)
    if solver == "adam":
        n_steps = -(-n_samples // max(batch_size, 1))
        return step * scale * min(1.0, np.sqrt(_ADAM_HORIZON / max(n_steps, 1)))
    if nesterov:
        return step * (1.0 + momentum) / (1.0 + 2.0 * momentum)
    return step * (1.0 + momentum)


# The variance-reduced epochs step this many times SGD's ``1 / L(b)``
# (auto_eta0 without momentum). Objective gap after the first plain epoch and
# one, two, three SVRG epochs on 200k x 100 blobs, K = 10, alpha = 1/n:
# 1x: 1.0e-2, 3.7e-3, 1.7e-3; 2x: 4.9e-3, 9.6e-4, 2.8e-4; 4x: 4.7e-3, 6.5e-4,
# 9.5e-5; 8x: 1.1e-2, 3.4e-3, 1.2e-3; 16x diverged (every epoch rejected). On
# 50k x 1000 blobs 2x and 4x were equal, 8x worse: 2x leaves a margin.
VARIANCE_REDUCED_STEP = 2.0
# A variance-reduced epoch costs about three full passes (two minibatch
# gradients per step, one snapshot): once one gains more than this share of
# the previous epoch's decrease, the rest runs full batch (L-BFGS), whose
# iterations cost one pass.
_SLOW_RATIO = 0.5
# Rejected epochs (the objective rose) in a row before giving up on them.
_MAX_REJECTED = 3


def variance_reduced_step(max_smoothness, mean_smoothness, *, batch_size,
                          n_samples):
    """The step of :func:`_kernels.variance_reduced_epoch`:
    ``VARIANCE_REDUCED_STEP / L(b)``, ``L(b)`` as in :func:`auto_eta0`."""
    return VARIANCE_REDUCED_STEP * auto_eta0(
        "sgd", max_smoothness, mean_smoothness, batch_size=batch_size,
        n_samples=n_samples, momentum=0.0)


def resolve_tol(tol, solver, early_stopping):
    """``tol`` as a number: ``"auto"`` is 1e-4 (the gradient's largest entry,
    as LogisticRegression's), 1e-3 for sgd/adam with early stopping (a rise
    of the validation accuracy)."""
    if tol != "auto":
        return float(tol)
    return 1e-3 if solver in ("sgd", "adam") and early_stopping else 1e-4


@dataclasses.dataclass(frozen=True)
class MinibatchSettings:
    """What the minibatch solvers take from an estimator's parameters, as
    plain values (the estimator, the dask driver and the GPU share them).

    Build with :meth:`from_params` from ``get_params()``; the fields are the
    estimator parameters of the same names, ``tol`` resolved to a number
    (:func:`resolve_tol`) and ``n_threads`` the threads of full passes.
    """

    solver: str
    learning_rate: str
    eta0: object  # a float or "auto"
    power_t: float
    alpha: float
    l1_ratio: float
    momentum: float
    nesterovs_momentum: bool
    beta_1: float
    beta_2: float
    epsilon: float
    average: object  # bool or int
    batch_size: object  # int or "auto"
    tol: float
    max_iter: int
    shuffle: bool
    early_stopping: bool
    verbose: int
    n_threads: int = 1

    @classmethod
    def from_params(cls, params, n_threads=1):
        """From an estimator's ``get_params()`` (extra keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"tol", "n_threads"}
        values = {name: params[name] for name in names}
        return cls(**values, n_threads=int(n_threads),
                   tol=resolve_tol(params["tol"], params["solver"],
                                   params["early_stopping"]))

    def batch_size_for(self, n_samples, chunk=False):
        """Rows per update: ``"auto"`` is ``min(200, ceil(n / 10))``, at least
        10 updates per epoch, so that small sets learn in few epochs; a
        ``partial_fit`` chunk (``chunk=True``) always gets at least ``min(10,
        n)`` updates, whatever ``batch_size`` is (a stream's chunks can be
        small)."""
        at_least_ten = max(1, -(-n_samples // 10))
        if self.batch_size == "auto":
            return min(200, at_least_ten)
        if chunk:
            return min(self.batch_size, at_least_ten)
        return min(self.batch_size, n_samples)

    def rate(self, smoothness, batch_size, n_rows):
        """``(eta0, intercept_scale)``: the given rate and 1, or what
        ``eta0="auto"`` derives from ``smoothness`` (the objective's
        ``step_constants``); raises :class:`DivergenceError` when those are
        not finite."""
        if self.eta0 != "auto":
            return float(self.eta0), 1.0
        max_smoothness, mean_smoothness, scale, intercept_scale = smoothness
        eta0 = auto_eta0(self.solver, max_smoothness, mean_smoothness,
                         batch_size=batch_size, n_samples=n_rows,
                         momentum=self.momentum, nesterov=self.nesterovs_momentum,
                         scale=scale)
        if not (np.isfinite(eta0) and eta0 > 0):
            raise DivergenceError("eta0='auto' (the data's smoothness constant is "
                                  "not finite)")
        return eta0, intercept_scale

    def rule(self, smoothness, batch_size, n_rows):
        """The :class:`MinibatchSolver` of these settings on ``n_rows`` rows."""
        eta0, intercept_scale = self.rate(smoothness, batch_size, n_rows)
        return MinibatchSolver(
            self.solver, learning_rate=self.learning_rate, eta0=eta0,
            power_t=self.power_t, alpha=self.alpha, momentum=self.momentum,
            nesterovs_momentum=self.nesterovs_momentum, beta_1=self.beta_1,
            beta_2=self.beta_2, epsilon=self.epsilon,
            # a mean of sparse iterates is not sparse: no averaging with L1
            average=int(self.average) if self.l1_ratio == 0 else 0,
            intercept_scale=intercept_scale)


def solve_to_optimum(objective, settings, solver, state, constants, *, batch_size,
                     rng, rows, n_rows):
    """sgd/adam's ``fit`` without early stopping: :meth:`MinibatchSolver.solve`
    on ``objective`` (in memory, on dask or on the GPU), finished full batch
    by :func:`minimise` (preconditioned; OWL-QN with an L1 part).

    ``constants`` are ``(max_smoothness, mean_smoothness, intercept_scale)``
    of the SVRG step, ``rows`` what an epoch visits (rows, or the dask
    driver's groups of chunks) and ``n_rows`` the rows an epoch's steps
    sample from. Returns ``(n_epochs, n_full, loss_curve, failure)``;
    ``state`` ends at the model. Raises :class:`DivergenceError`.
    """
    max_smoothness, mean_smoothness, intercept_scale = constants

    def finish(params, max_iter):
        return minimise(objective, params, max_iter=max_iter, tol=settings.tol,
                        verbose=settings.verbose, n_threads=settings.n_threads)
    return solver.solve(
        state, objective.minibatch_epoch, rows, evaluate=objective.evaluate,
        variance_reduced_epoch=(objective.variance_reduced_epoch
                                if objective.variance_reduction else None),
        step=variance_reduced_step(max_smoothness, mean_smoothness,
                                   batch_size=batch_size, n_samples=n_rows),
        intercept_scale=intercept_scale, finish=finish,
        initial_value=(None if np.any(state.model) else objective.zero_objective()),
        batch_size=batch_size, rng=rng, shuffle=settings.shuffle,
        max_iter=settings.max_iter, tol=settings.tol, verbose=settings.verbose)


class MinibatchState:
    """Everything a minibatch run carries from one epoch (or call) to the next."""

    def __init__(self, params, solver, eta0):
        self.params = params
        self.solver = solver
        self.eta = eta0  # current base learning rate for "adaptive"
        self.velocity = np.zeros_like(params)  # sgd momentum
        self.m = np.zeros_like(params)  # adam first moment
        self.v = np.zeros_like(params)  # adam second moment
        self.shift = np.zeros_like(params)  # displacement made by the last prox
        self.threshold = np.zeros_like(params)  # prox thresholds (per coordinate)
        self.average = params.copy()  # running mean of the iterates
        self.smoothness = None  # what eta0="auto" was derived from
        # updates so far, samples seen, iterates in ``average``
        self.counts = np.zeros(3, dtype=np.int64)

    @property
    def step(self):
        return int(self.counts[0])

    @property
    def model(self):
        """The parameters the estimator reports: the average once it has begun."""
        return self.average if self.counts[2] > 0 else self.params

    def restart_from(self, params):
        """Continue from ``params`` (as edited by a user): the average restarts."""
        self.params = params
        self.average = params.copy()
        self.counts[2] = 0

    def copy(self):
        """An independent copy (the arrays copied too)."""
        new = copy.copy(self)
        for name in ("params", "velocity", "m", "v", "shift", "threshold", "average",
                     "counts"):
            setattr(new, name, getattr(self, name).copy())
        return new


class MinibatchSolver:
    """Minibatch SGD (with momentum / Nesterov) or Adam, epoch by epoch.

    The steps themselves run compiled (``_steps``, driven by the objective's
    ``minibatch_epoch``); this class holds the step-rule settings and decides
    the epochs: shuffling, stopping, the "adaptive" rate, validation.

    Parameters
    ----------
    solver : {"sgd", "adam"}
    learning_rate : {"constant", "optimal", "invscaling", "adaptive"}
        Base step ``eta_t`` at update ``t`` (counted from 0):
        ``"constant"``: ``eta0``; ``"optimal"``: ``eta0 / (1 + eta0 * alpha * t)``
        (Bottou's schedule, tending to ``1 / (alpha t)``); ``"invscaling"``:
        ``eta0 / (t + 1) ** power_t``; ``"adaptive"``: ``eta0``, divided by 5
        each time ``n_iter_no_change`` epochs pass without improvement.
    eta0, power_t, alpha : float
    momentum : float
        SGD momentum in ``[0, 1]``.
    nesterovs_momentum : bool
    beta_1, beta_2, epsilon : float
        Adam's moment decays and denominator guard.
    average : int, default=0
        Average the iterates (Polyak-Ruppert) from the first update after
        which ``average`` samples have been seen; 0: no averaging.
    intercept_scale : float, default=1.0
        The intercept's steps are this many times the coefficients' (a
        diagonal preconditioner; see ``SoftmaxObjective.smoothness``).
    """

    def __init__(self, solver, *, learning_rate, eta0, power_t, alpha, momentum,
                 nesterovs_momentum, beta_1, beta_2, epsilon, average=0,
                 intercept_scale=1.0):
        self.solver = solver
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.alpha = alpha
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.average = int(average)
        self.intercept_scale = float(intercept_scale)

    def init_state(self, params):
        return MinibatchState(params, self.solver, self.eta0)

    def epoch(self, state, run_epoch, rows, batch_size, rng):
        """One pass of minibatch updates over ``rows``.

        Parameters
        ----------
        run_epoch : callable
            ``run_epoch(state, order, batch_size, rule) -> (loss, diverged)``,
            e.g. ``SoftmaxObjective.minibatch_epoch``; ``rule`` is this solver.
        rows : ndarray of intp
            Training rows; visited in a fresh random order when ``rng`` is
            given (shuffling the indices, never the data).

        Returns
        -------
        epoch_loss : float
            Weighted mean over the epoch of the smooth loss of each minibatch,
            measured before its update.

        Raises
        ------
        DivergenceError
            If the loss, a gradient or the parameters became non-finite.
        """
        order = rng.permutation(rows) if rng is not None else rows
        loss, diverged = run_epoch(state, order, batch_size, self)
        if diverged:
            raise DivergenceError("non-finite loss, gradient or parameters")
        return loss

    def solve(self, state, run_epoch, rows, *, evaluate, variance_reduced_epoch,
              step, intercept_scale=1.0, finish=None, initial_value=None,
              batch_size, rng, shuffle, max_iter, tol, verbose=False):
        """Minimise the objective to ``tol``: a stochastic epoch, SVRG epochs,
        then full batch if those are slow.

        1. One epoch of this solver's rule (the model: the average).
        2. Epochs of SVRG (:func:`_kernels.variance_reduced_epoch`), each from
           the best snapshot so far with its full gradient as control
           variate, at the constant ``step``. Every epoch ends with a full
           pass (``evaluate``) at its end point: an objective that did not
           fall rejects the epoch (the snapshot stays, the step halves), so the
           returned model is never worse than one the fit had; the fit stops
           once the snapshot's optimality (largest entry of the gradient, of
           the minimum-norm subgradient with L1) is at most ``tol``.
        3. When SVRG is not available (``variance_reduced_epoch`` None), or
           an accepted epoch gains more than ``_SLOW_RATIO`` of the previous
           decrease (a linear rate too slow to pay for three passes an
           epoch), or ``_MAX_REJECTED`` epochs in a row are rejected,
           ``finish(params, max_iter)`` (full-batch L-BFGS to ``tol``) runs
           from the best snapshot. Without ``finish`` the SVRG
           epochs go on; with neither, epochs of the solver's rule do, each
           judged by a full pass as above.

        Parameters
        ----------
        state : MinibatchState
            Updated in place: it ends at the returned model (its average
            restarted there), so that ``partial_fit`` continues from it.
        run_epoch : callable
            As for :meth:`epoch`.
        rows : ndarray of intp
        evaluate : callable
            ``evaluate(params) -> (objective, gradient, optimality)``, a full
            pass (``ParameterLayout.evaluate``).
        variance_reduced_epoch : callable or None
            ``(params, snapshot, gradient, order, batch_size, eta,
            intercept_scale) -> (loss, diverged)``.
        step : float
            SVRG's step (see :func:`variance_reduced_step`).
        intercept_scale : float, default=1.0
        finish : callable or None
            ``finish(params, max_iter) -> (params, n_iter, loss_curve,
            failure)``, as :func:`lbfgs` returns them.
        initial_value : float or None
            The objective at ``state.model`` when known (at zero parameters);
            otherwise a pass computes it.

        Returns
        -------
        n_epochs : int
            Epochs run (stochastic and SVRG).
        n_full : int
            Full-batch iterations of ``finish``.
        loss_curve : list of float
            The objective of the model after each epoch and iteration.
        failure : str or None
            None when the fit met ``tol``; otherwise why it stopped, in
            words (``max_iter``, a step that vanished, or ``finish``'s own
            reason), with the optimality reached.
        """
        start = time.perf_counter()
        initial = state.model.copy()
        if initial_value is None:
            initial_value = evaluate(initial)[0]

        def report(what, value):
            if verbose:
                print(f"{what}, loss = {value:.8f}, "
                      f"time = {time.perf_counter() - start:.3f}s")

        try:
            self.epoch(state, run_epoch, rows, batch_size, rng if shuffle else None)
        except DivergenceError:
            raise DivergenceError("epoch #1") from None
        best = state.model.copy()
        f, gradient, optimality = evaluate(best)
        if not f <= initial_value:  # the stochastic epoch made things worse
            best = initial
            f, gradient, optimality = evaluate(best)
            step /= 2.0
        loss_curve = [f]
        report("Epoch 1", f)
        n_epochs, decrease, rejected = 1, initial_value - f, 0
        slow = variance_reduced_epoch is None
        while (optimality > tol and n_epochs < max_iter
               and not (slow and finish is not None)):
            if variance_reduced_epoch is None:  # nothing else to do: plain epochs
                try:
                    self.epoch(state, run_epoch, rows, batch_size,
                               rng if shuffle else None)
                    diverged = False
                except DivergenceError:
                    raise DivergenceError(f"epoch #{n_epochs + 1}") from None
                params = state.model.copy()
            else:
                params = best.copy()
                order = rng.permutation(rows) if shuffle else rows
                _, diverged = variance_reduced_epoch(
                    params, best, gradient, order, batch_size, step, intercept_scale)
            n_epochs += 1
            value = np.inf
            if not diverged:
                value, new_gradient, new_optimality = evaluate(params)
            if not value < f:  # rising or non-finite: keep the snapshot
                step /= 2.0
                rejected += 1
                slow = slow or rejected >= _MAX_REJECTED
                loss_curve.append(f)
                report(f"Epoch {n_epochs} (rejected, step now {step:.3g})", f)
                if step < 1e-12:
                    break
                continue
            slow = slow or f - value > _SLOW_RATIO * decrease
            decrease, rejected = f - value, 0
            best, f, gradient, optimality = params, value, new_gradient, new_optimality
            loss_curve.append(f)
            report(f"Epoch {n_epochs}", f)
        n_full, failure = 0, None
        if not optimality <= tol:
            if finish is not None and n_epochs < max_iter:
                best, n_full, curve, failure = finish(best, max_iter - n_epochs)
                loss_curve.extend(curve)
            else:
                reached = (f"the largest absolute (sub)gradient entry is "
                           f"{optimality:.3g} > tol={tol:g}")
                failure = (f"max_iter={max_iter} epochs were reached; {reached}"
                           if n_epochs >= max_iter else
                           f"every epoch raised the objective until the step fell "
                           f"below 1e-12, after {n_epochs} epochs; {reached}")
        state.restart_from(best.copy())
        return n_epochs, n_full, loss_curve, failure

    def fit(self, state, run_epoch, rows, *, batch_size, rng, shuffle, max_iter, tol,
            n_iter_no_change, validation_score=None, model_loss=None, verbose=False):
        """Epochs until convergence, early stopping or ``max_iter``.

        Without ``validation_score``, the run stops once the epoch's training
        objective has failed to drop by ``tol`` times its size (``|best|``)
        below the best so far for ``n_iter_no_change`` consecutive epochs.
        With it, the same rule is applied to the validation score (which must
        rise by ``tol``, absolutely: it is an accuracy). With
        ``"adaptive"``, such a stall divides the learning rate by 5 instead,
        until it falls below 1e-6. ``model_loss(params)``, when given, is the
        objective recorded (and judged) after each epoch, of ``state.model``;
        otherwise the epoch's mean minibatch loss is.

        Returns
        -------
        n_epochs : int
        loss_curve : list of float
        validation_scores : list of float
        converged : bool
        """
        loss_curve, validation_scores = [], []
        best_loss, best_score = np.inf, -np.inf
        no_improvement = 0
        start = time.perf_counter()
        for epoch in range(1, max_iter + 1):
            try:
                loss = self.epoch(state, run_epoch, rows, batch_size,
                                  rng if shuffle else None)
            except DivergenceError:
                raise DivergenceError(f"epoch #{epoch}") from None
            if model_loss is not None:
                loss = model_loss(state.model)
            loss_curve.append(loss)
            if validation_score is not None:
                score = validation_score(state.model)
                validation_scores.append(score)
                improved = score > best_score + tol
                best_score = max(best_score, score)
            else:
                improved = (not np.isfinite(best_loss)
                            or loss < best_loss - tol * abs(best_loss))
            best_loss = min(best_loss, loss)
            no_improvement = 0 if improved else no_improvement + 1
            if verbose:
                line = f"Epoch {epoch}, loss = {loss:.8f}"
                if validation_score is not None:
                    line += f", validation score = {validation_scores[-1]:.6f}"
                print(f"{line}, time = {time.perf_counter() - start:.3f}s")
            if no_improvement >= n_iter_no_change:
                if self.learning_rate == "adaptive" and state.eta > 1e-6:
                    state.eta /= 5.0
                    no_improvement = 0
                    if verbose:
                        print(f"Learning rate set to {state.eta:.3g}")
                    continue
                return epoch, loss_curve, validation_scores, True
        return max_iter, loss_curve, validation_scores, False
