"""Solvers on problems whose answers are known in closed form."""

import contextlib

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit

import sksoftmax._solvers as solvers_module
from sksoftmax import _steps
from sksoftmax._lbfgs import CompactHistory, FeatureScale, compact_lbfgs
from sksoftmax._parallel import chunk_map
from sksoftmax._solvers import (
    COMPACT_MIN_PARAMS,
    DivergenceError,
    MinibatchSolver,
    auto_eta0,
    lbfgs,
)

CENTER = np.array([1.0, -2.0, 3.0])
SCALES = np.array([1.0, 10.0, 100.0])
# both L-BFGS implementations: scipy's L-BFGS-B and the compact one
COMPACT = pytest.mark.parametrize("compact", [False, True], ids=["scipy", "compact"])


def quadratic(params, rows=None):
    """0.5 * sum(scales * (params - center)^2): minimum 0 at CENTER."""
    diff = params - CENTER
    return 0.5 * float(np.sum(SCALES * diff**2)), SCALES * diff


def make_solver(solver="sgd", **kw):
    params = dict(learning_rate="constant", eta0=0.001, power_t=0.5, alpha=0.0,
                  momentum=0.0, nesterovs_momentum=False, beta_1=0.9, beta_2=0.999,
                  epsilon=1e-8)
    params.update(kw)
    return MinibatchSolver(solver, **params)


@COMPACT
def test_lbfgs_finds_the_minimum(compact):
    params, n_iter, curve, failure = lbfgs(quadratic, np.zeros(3), max_iter=100,
                                           tol=1e-10, compact=compact)
    assert failure is None
    assert_allclose(params, CENTER, rtol=1e-9)
    assert len(curve) == n_iter
    assert np.all(np.diff(curve) <= 0)


@COMPACT
def test_lbfgs_reports_max_iter(compact):
    _, n_iter, _, failure = lbfgs(quadratic, np.zeros(3), max_iter=1, tol=1e-12,
                                  compact=compact)
    assert n_iter == 1
    assert failure.startswith("max_iter=1 iterations were reached; the largest "
                              "absolute gradient entry is ")


@COMPACT
def test_lbfgs_reports_a_stalled_objective_by_the_gradient_rule(compact):
    # f = 1 + quadratic: around the minimum f no longer changes in float64 long
    # before the gradient is 1e-14, so scipy stops on its f rule, which is not
    # convergence by ours
    def shifted(params):
        loss, grad = quadratic(params)
        return 1.0 + loss, grad

    params, _, _, failure = lbfgs(shifted, np.zeros(3), max_iter=1000, tol=1e-14,
                                  compact=compact)
    assert_allclose(params, CENTER, rtol=1e-6)
    assert failure.startswith("the objective stopped decreasing")
    grad_max = float(failure.split("entry is ")[1].split(" >")[0])
    assert grad_max == pytest.approx(np.max(np.abs(shifted(params)[1])), rel=1e-2)
    assert grad_max > 1e-14


@COMPACT
def test_lbfgs_reports_a_failed_line_search(compact):
    # the gradient points the wrong way: no step along -grad decreases f
    def wrong_gradient(params):
        loss, grad = quadratic(params)
        return loss, -grad

    params, _, _, failure = lbfgs(wrong_gradient, np.zeros(3), max_iter=100,
                                  tol=1e-6, compact=compact)
    # scipy calls this run a success ("RELATIVE REDUCTION OF F"); it made no
    # progress, and the gradient rule says so
    assert_allclose(params, 0.0, atol=1e-12)
    assert failure.startswith(("the objective stopped decreasing",
                               "the line search found no decrease"))
    assert "the largest absolute gradient entry is 300 > tol=1e-06" in failure


@COMPACT
def test_lbfgs_non_finite_objective_is_a_divergence_error(compact):
    def nan_objective(params):
        return np.nan, np.full_like(params, np.nan)

    with pytest.raises(DivergenceError, match="non-finite"):
        lbfgs(nan_objective, np.zeros(3), max_iter=10, tol=1e-6, compact=compact)


def quadratic_epoch(batches=2):
    """A run_epoch for the quadratic: exact gradients, the compiled step rules."""
    def run_epoch(state, order, batch_size, rule):
        for _ in range(batches):
            _, grad = quadratic(state.params)
            eta = _steps.learning_rate(_steps.SCHEDULES[rule.learning_rate], state.step,
                                       rule.eta0, state.eta, rule.alpha, rule.power_t)
            if rule.solver == "sgd":
                _steps.sgd_step(state.params, grad, state.velocity, eta, rule.momentum,
                                rule.nesterovs_momentum, 3, 0.0, state.shift,
                                state.threshold)
            else:
                _steps.adam_step(state.params, grad, state.m, state.v, state.step, eta,
                                 rule.beta_1, rule.beta_2, rule.epsilon, 3, 0.0,
                                 state.shift, state.threshold)
            state.counts[0] += 1
        return quadratic(state.params)[0], False
    return run_epoch


def constant_epoch(values):
    """A run_epoch that reports the given losses, taking no step."""
    values = iter(values)

    def run_epoch(state, order, batch_size, rule):
        value = next(values)
        return value, not np.isfinite(value)
    return run_epoch


@pytest.mark.parametrize("solver_name, eta0", [("sgd", 0.005), ("adam", 0.05)])
def test_minibatch_fit_converges_and_stops_on_tol(solver_name, eta0):
    # "adaptive" shrinks Adam's step once it oscillates around the minimum
    solver = make_solver(solver_name, eta0=eta0, learning_rate="adaptive")
    state = solver.init_state(np.zeros(3))
    n_epochs, curve, scores, converged = solver.fit(
        state, quadratic_epoch(), np.arange(10, dtype=np.intp), batch_size=5,
        rng=np.random.RandomState(0), shuffle=True, max_iter=5000, tol=1e-12,
        n_iter_no_change=10)
    assert converged
    assert n_epochs < 5000
    assert scores == []
    assert len(curve) == n_epochs
    assert curve[-1] < 1e-5 * curve[0]
    assert_allclose(state.params, CENTER, atol=1e-2)
    assert state.step == 2 * n_epochs


def test_adaptive_divides_the_rate_by_five_on_each_stall():
    solver = make_solver(learning_rate="adaptive", eta0=0.01)
    state = solver.init_state(np.zeros(3))
    n_epochs, _, _, converged = solver.fit(
        state, constant_epoch([1.0] * 100), np.arange(4, dtype=np.intp),
        batch_size=4, rng=None, shuffle=False, max_iter=100, tol=1e-4,
        n_iter_no_change=2)
    # 6 divisions (0.01 -> 6.4e-7 < 1e-6), then a 7th stall stops the run
    assert converged
    assert n_epochs == 1 + 7 * 2
    assert state.eta == pytest.approx(0.01 / 5**6)


def test_stops_after_n_iter_no_change_and_reports_max_iter():
    solver = make_solver()
    state = solver.init_state(np.zeros(3))
    losses = [5.0, 4.0, 3.99999, 3.99998, 3.99997]
    n_epochs, curve, _, converged = solver.fit(
        state, constant_epoch(losses), np.arange(2, dtype=np.intp), batch_size=2,
        rng=None, shuffle=False, max_iter=10, tol=1e-3, n_iter_no_change=3)
    assert converged
    assert n_epochs == 5
    assert curve == losses
    _, _, _, converged = solver.fit(
        state, constant_epoch([5.0, 4.0, 3.0]), np.arange(2, dtype=np.intp),
        batch_size=2, rng=None, shuffle=False, max_iter=3, tol=1e-3,
        n_iter_no_change=3)
    assert not converged


def test_stopping_tolerance_is_relative_to_the_objective():
    # the same relative progress stops (or not) at any scale of the objective
    for scale in (1e-3, 1.0, 1e3):
        solver = make_solver()
        state = solver.init_state(np.zeros(3))
        losses = [scale * v for v in (2.0, 1.0, 0.9995, 0.9991, 0.9987, 0.5)]
        n_epochs, curve, _, converged = solver.fit(
            state, constant_epoch(losses), np.arange(2, dtype=np.intp),
            batch_size=2, rng=None, shuffle=False, max_iter=6, tol=1e-3,
            n_iter_no_change=3)
        # 0.9995, 0.9991, 0.9987 are each less than 0.1 % below the best (1.0)
        assert converged, scale
        assert n_epochs == 5, scale
        state = solver.init_state(np.zeros(3))
        n_epochs, _, _, converged = solver.fit(
            state, constant_epoch(losses), np.arange(2, dtype=np.intp),
            batch_size=2, rng=None, shuffle=False, max_iter=6, tol=1e-4,
            n_iter_no_change=3)
        assert not converged, scale
        assert n_epochs == 6, scale


@pytest.mark.parametrize("n, b", [(1000, 1), (1000, 50), (1000, 1000), (1, 1)])
def test_auto_eta0_is_one_over_the_expected_smoothness(n, b):
    # Gower et al.'s L(b): L_max at b = 1, L at b = n
    max_l, mean_l = 40.0, 2.0
    if n > 1:
        expected_l = (n * (b - 1) * mean_l + (n - b) * max_l) / (b * (n - 1))
    else:
        expected_l = max_l
    rate = auto_eta0("sgd", max_l, mean_l, batch_size=b, n_samples=n, momentum=0.0)
    assert rate == pytest.approx(1.0 / expected_l, rel=1e-12)
    if b == 1:
        assert rate == pytest.approx(1.0 / max_l)
    if b == n > 1:
        assert rate == pytest.approx(1.0 / mean_l)
    # momentum: half the largest stable step (2 (1 + beta) / ((1 + 2 beta) L)
    # for Nesterov, 2 (1 + beta) / L for heavy ball)
    nesterov = auto_eta0("sgd", max_l, mean_l, batch_size=b, n_samples=n,
                         momentum=0.9, nesterov=True)
    heavy = auto_eta0("sgd", max_l, mean_l, batch_size=b, n_samples=n,
                      momentum=0.9, nesterov=False)
    assert nesterov == pytest.approx(rate * 1.9 / 2.8, rel=1e-12)
    assert heavy == pytest.approx(rate * 1.9, rel=1e-12)
    adam = auto_eta0("adam", max_l, mean_l, batch_size=b, n_samples=n, scale=0.3)
    # over an epoch of more than 100 minibatches, Adam's rate falls as
    # 1 / sqrt(minibatches): 1000 of them at b = 1
    horizon = np.sqrt(100 / 1000) if n // b > 100 else 1.0
    assert adam == pytest.approx(0.3 * rate * horizon, rel=1e-12)


def test_auto_nesterov_rate_is_stable_on_the_stiffest_quadratic():
    # f = L/2 x^2 with Nesterov momentum as _steps takes it: contracts at the
    # auto rate, diverges at twice the stability limit
    curvature = 7.0
    rate = auto_eta0("sgd", curvature, curvature, batch_size=1, n_samples=1,
                     momentum=0.9, nesterov=True)
    for eta, shrinks in ((rate, True), (4.1 * rate, False)):
        x, v = np.array([1.0]), np.zeros(1)
        for _ in range(200):
            _steps.sgd_step(x, curvature * x, v, eta, 0.9, True, 1, 0.0,
                            np.zeros(1), np.zeros(1))
        assert (abs(x[0]) < 1e-3) == shrinks


def test_validation_score_drives_early_stopping():
    solver = make_solver()
    state = solver.init_state(np.zeros(3))
    scores = iter([0.5, 0.6, 0.6, 0.6, 0.9])
    n_epochs, _, seen, converged = solver.fit(
        state, constant_epoch([1.0] * 10), np.arange(2, dtype=np.intp), batch_size=2,
        rng=None, shuffle=False, max_iter=10, tol=0.01, n_iter_no_change=2,
        validation_score=lambda p: next(scores))
    assert converged
    assert n_epochs == 4
    assert seen == [0.5, 0.6, 0.6, 0.6]


def test_minibatch_divergence_names_the_epoch():
    solver = make_solver()
    state = solver.init_state(np.zeros(3))
    with pytest.raises(DivergenceError, match="epoch #3"):
        solver.fit(state, constant_epoch([1.0, 1.0, np.inf]),
                   np.arange(2, dtype=np.intp), batch_size=2, rng=None,
                   shuffle=False, max_iter=10, tol=0.0, n_iter_no_change=100)


# ---------------------------------------------------- compact L-BFGS update
def two_loop_direction(pairs, g):
    """-H g by the textbook two-loop recursion; H0 = (s'y / y'y) I, newest pair."""
    q = g.copy()
    alphas = []
    for s, y in reversed(pairs):
        a = s @ q / (s @ y)
        alphas.append(a)
        q -= a * y
    s, y = pairs[-1]
    r = (s @ y) / (y @ y) * q
    for (s, y), a in zip(pairs, reversed(alphas), strict=True):
        r += (a - y @ r / (s @ y)) * s
    return -r


@pytest.mark.parametrize("n_chunks", [1, 3])
def test_compact_direction_is_the_two_loop_recursion(n_chunks):
    # more pairs than the memory holds, so the ring buffer wraps around
    rng = np.random.default_rng(0)
    n, memory, n_pairs = 50, 4, 7
    A = rng.standard_normal((n, n))
    A = A @ A.T / n + np.eye(n)  # y = A s gives s'y > 0
    with chunk_map(n_chunks) as map_chunks:
        from sksoftmax._lbfgs import VectorOps
        history = CompactHistory(n, memory, VectorOps(n, map_chunks, n_chunks))
        g_old = rng.standard_normal(n)
        pairs = []
        for _ in range(n_pairs):
            s = rng.standard_normal(n)
            g = g_old + A @ s
            pairs.append((s, A @ s))
            d = s.copy()
            history.update_and_direction(1.0, d, g, g_old, store=True)
            assert_allclose(d, two_loop_direction(pairs[-memory:], g), rtol=1e-10)
            assert_allclose(g_old, g)  # g_old moved on
        # a rejected pair leaves the history as it was
        g_next = g + rng.standard_normal(n)
        d = rng.standard_normal(n)
        history.update_and_direction(0.5, d, g_next, g_old, store=False)
        assert_allclose(d, two_loop_direction(pairs[-memory:], g_next), rtol=1e-10)


def softplus_problem(n=60, seed=0):
    """A smooth, strictly convex f: a quadratic plus softplus terms."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    H = A.T @ A / n + 0.01 * np.eye(n)
    b = rng.standard_normal(n)

    def f(x):
        return (0.5 * x @ H @ x - b @ x + np.sum(np.logaddexp(0.0, x)),
                H @ x - b + expit(x))
    return f


@pytest.mark.parametrize("n_chunks", [1, 2])
def test_compact_lbfgs_takes_scipys_path(n_chunks):
    # same line search, same update, same stopping rules as L-BFGS-B
    from scipy.optimize import minimize

    f = softplus_problem()
    ftol = 64 * np.finfo(float).eps
    with chunk_map(n_chunks) as map_chunks:
        x, fx, g, n_iter, curve, status = compact_lbfgs(
            f, np.zeros(60), max_iter=500, tol=1e-5, ftol=ftol,
            map_chunks=map_chunks, n_chunks=n_chunks)
    ref = minimize(f, np.zeros(60), jac=True, method="L-BFGS-B",
                   options={"maxiter": 500, "gtol": 1e-5, "ftol": ftol, "maxls": 50})
    assert status == "converged"
    assert np.max(np.abs(g)) <= 1e-5
    assert abs(n_iter - ref.nit) <= 2
    assert_allclose(x, ref.x, atol=1e-6)
    assert fx == pytest.approx(ref.fun, rel=1e-12)
    assert curve[-1] == fx
    assert np.all(np.diff(curve) < 0)


def test_compact_lbfgs_does_not_modify_the_start():
    f = softplus_problem()
    x0 = np.full(60, 0.5)
    compact_lbfgs(f, x0, max_iter=5, tol=1e-7, ftol=0.0)
    assert_allclose(x0, 0.5)


def _badly_scaled_quadratic(n=2000, seed=0):
    """0.5 sum h (x - c)^2 with curvatures over four decades, and its h."""
    rng = np.random.default_rng(seed)
    h = 10.0 ** rng.uniform(-4, 0, n)
    c = rng.standard_normal(n)

    def loss_gradient(x):
        diff = x - c
        return 0.5 * float(np.sum(h * diff**2)), h * diff

    return loss_gradient, h, c


def test_compact_lbfgs_with_a_diagonal_scale_keeps_the_original_variables():
    loss_gradient, h, c = _badly_scaled_quadratic()
    start = np.full(h.shape, 0.5)
    before = start.copy()
    x, f, g, n_iter, curve, status = compact_lbfgs(
        loss_gradient, start, max_iter=500, tol=1e-10, ftol=0.0, scale=h ** -0.5)
    assert status == "converged"
    assert_array_equal(start, before)
    # x, f, g and the stopping rule are those of the original variables
    assert_allclose(x, c, atol=1e-6)
    f_x, g_x = loss_gradient(x)
    assert f == pytest.approx(f_x, rel=1e-12, abs=1e-300)
    assert_allclose(g, g_x, rtol=1e-10, atol=1e-300)
    assert np.max(np.abs(g)) <= 1e-10
    assert len(curve) == n_iter


@COMPACT
def test_lbfgs_preconditions_with_the_curvature_estimate(compact):
    loss_gradient, h, c = _badly_scaled_quadratic()
    runs = {}
    for name, curvature in (("plain", None), ("scaled", lambda: h)):
        x, n_iter, curve, failure = lbfgs(
            loss_gradient, np.zeros_like(h), max_iter=2000, tol=1e-6,
            compact=compact, curvature=curvature)
        assert failure is None
        assert_allclose(x, c, atol=1e-6 / h.min())
        # the rule is on the original gradient, whatever the variables
        assert np.max(np.abs(loss_gradient(x)[1])) <= 1e-6
        assert len(curve) == n_iter
        runs[name] = n_iter
    # with h exact, diag(h)^-1/2 leaves curvatures over two decades, not four
    assert runs["scaled"] < runs["plain"] / 2


@COMPACT
def test_lbfgs_from_a_point_that_meets_tol_takes_no_iteration(compact):
    loss_gradient, h, c = _badly_scaled_quadratic()
    start = c + 1e-7
    x, n_iter, curve, failure = lbfgs(loss_gradient, start, max_iter=50, tol=1e-6,
                                      compact=compact, curvature=lambda: h)
    assert failure is None
    assert n_iter == 0
    assert curve == []
    assert_allclose(x, start, rtol=1e-12)


def _feature_scale_and_matrix(n_logits=3, d=6, rank=4, seed=0):
    """A FeatureScale of low rank and the dense matrix T it stands for."""
    rng = np.random.default_rng(seed)
    vectors = np.linalg.qr(rng.standard_normal((d, rank)))[0]
    scales, rest = rng.uniform(0.5, 3.0, rank), 0.7
    tail = rng.uniform(0.5, 2.0, n_logits)
    M = rest * np.eye(d) + vectors @ np.diag(scales - rest) @ vectors.T
    # row-major coefficients (n_logits, d): right-multiplying by M is I ⊗ M'
    T = np.zeros((n_logits * (d + 1),) * 2)
    T[:n_logits * d, :n_logits * d] = np.kron(np.eye(n_logits), M.T)
    T[n_logits * d:, n_logits * d:] = np.diag(tail)
    return FeatureScale(n_logits, vectors, scales, rest, tail), T


@pytest.mark.parametrize("rank", [4, 6])  # low rank / full rank (a dense M)
def test_feature_scale_is_the_kronecker_matrix_it_describes(rank):
    scale, T = _feature_scale_and_matrix(rank=rank)
    u = np.random.default_rng(1).standard_normal(T.shape[0])
    before = u.copy()
    assert_allclose(scale.to_params(u, np.empty_like(u)), T @ u, rtol=1e-12)
    assert_allclose(scale.gradient_in_variables(u, np.empty_like(u)), T.T @ u,
                    rtol=1e-12)
    assert_allclose(scale.to_variables(u), np.linalg.solve(T, u), rtol=1e-10)
    assert_array_equal(u, before)


def _correlated_quadratic(n_logits=4, d=40, seed=0):
    """0.5 (x - c)' (I ⊗ F) (x - c) over coefficients (n_logits, d) and
    intercepts (curvature 1), F with strongly correlated features."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((200, 3)) @ rng.standard_normal((3, d)) \
        + 0.3 * rng.standard_normal((200, d))
    F = A.T @ A / 200 + 1e-3 * np.eye(d)  # condition number ~1500
    c = rng.standard_normal(n_logits * (d + 1))
    n_coef = n_logits * d

    def loss_gradient(x):
        diff = x - c
        grad = diff.copy()
        grad[:n_coef] = (diff[:n_coef].reshape(n_logits, d) @ F).ravel()
        return 0.5 * float(diff @ grad), grad

    return loss_gradient, F, c


def test_lbfgs_with_the_feature_curvature_needs_far_fewer_iterations():
    loss_gradient, F, c = _correlated_quadratic()
    n_logits, d = 4, F.shape[0]
    diagonal = np.ones(c.shape)
    diagonal[:n_logits * d] = np.tile(np.diag(F), n_logits)
    values, vectors = np.linalg.eigh(F)
    runs = {}
    for name, model in (("diagonal", None), ("kronecker", (n_logits, vectors,
                                                           values, 0.0))):
        x, n_iter, _, failure = lbfgs(
            loss_gradient, np.zeros_like(c), max_iter=3000, tol=1e-5, compact=True,
            curvature=lambda: diagonal, feature_curvature=lambda m=model: m)
        assert failure is None, name
        # the original variables: the minimum, whatever the preconditioner
        assert loss_gradient(x)[0] <= 1e-7
        assert np.max(np.abs(loss_gradient(x)[1])) <= 1e-5
        runs[name] = n_iter
    # F^-1/2 leaves curvatures over half the decades of F's spectrum
    assert runs["kronecker"] < runs["diagonal"] / 3


def test_compact_lbfgs_does_not_stop_on_a_small_gradient_far_from_the_optimum():
    # a flat direction whose gradient entry (5e-5) is below tol from the start,
    # 12.5 tol of objective away from its minimum; the preconditioner knows
    # its curvature, so the model's predicted decrease (exact here) sees it
    h = np.array([1.0, 1e-6, 1.0])
    c = np.array([0.0, 50.0, 0.0])

    def loss_gradient(x):
        diff = x - c
        return 0.5 * float(np.sum(h * diff**2)), h * diff

    tol = 1e-4
    start = np.zeros(3)
    assert np.max(np.abs(loss_gradient(start)[1])) <= tol
    assert loss_gradient(start)[0] == pytest.approx(12.5 * tol)
    x, f, g, n_iter, curve, status = compact_lbfgs(
        loss_gradient, start, max_iter=50, tol=tol, ftol=0.0, scale=h ** -0.5)
    assert status == "converged"
    assert n_iter >= 1
    assert f <= 1e-12
    assert_allclose(x, c, atol=1e-6)



@pytest.mark.parametrize(("n", "n_threads", "n_chunks"), [
    (COMPACT_MIN_PARAMS - 1, 4, None),  # scipy's L-BFGS-B
    (COMPACT_MIN_PARAMS, 4, 1),  # compact from COMPACT_MIN_PARAMS on
    (2**17, 4, 2),  # a chunk of at least 2**16 parameters a thread
    (3 * 2**16 + 1, 8, 3),
    (2**18, 2, 2),  # no more chunks than threads
])
def test_lbfgs_switches_to_the_compact_update_by_size(monkeypatch, n, n_threads,
                                                      n_chunks):
    calls = []

    def recording(*args, **kw):
        calls.append(kw["n_chunks"])
        return compact_lbfgs(*args, **kw)

    monkeypatch.setattr(solvers_module, "compact_lbfgs", recording)

    def distance(x):
        diff = x - 1.0
        return 0.5 * float(diff @ diff), diff

    params, n_iter, _, failure = lbfgs(distance, np.zeros(n), max_iter=10, tol=1e-8,
                                       n_threads=n_threads)
    assert failure is None
    assert_allclose(params, 1.0)
    assert calls == ([] if n_chunks is None else [n_chunks])


class _RoundedQuadratic:
    """``1 + quadratic`` as an objective whose passes round to float32 (what
    float32 parameters do to a pass), with a float64 twin: the float32 one
    stops changing ~1e-7 above its minimum, the float64 one ~1e-16."""

    def __init__(self, dtype=np.float32, precise=True):
        self.dtype = np.dtype(dtype)
        self.precise = precise
        self.calls = []

    def loss_gradient(self, params):
        self.calls.append(self.dtype)
        loss, grad = quadratic(params)
        if self.dtype == np.float32:
            return float(np.float32(1.0 + loss)), grad.astype(np.float32).astype(float)
        return 1.0 + loss, grad

    def curvature_estimate(self):
        return None

    def feature_curvature(self):
        return None

    def l1_weights(self):
        return None

    def parallel(self):
        return contextlib.nullcontext(self)

    def in_float64(self):
        return _RoundedQuadratic(np.float64) if self.precise else None


def test_minimise_goes_on_in_float64_where_float32_stalls():
    start = np.array([5.0, 5.0, 5.0])
    rounded = _RoundedQuadratic()
    _, n_alone, _, failure = lbfgs(rounded.loss_gradient, start, max_iter=100,
                                   tol=1e-6)
    assert failure.startswith("the objective stopped decreasing")
    params, n_iter, curve, failure = solvers_module.minimise(
        _RoundedQuadratic(), start, max_iter=100, tol=1e-6)
    assert failure is None
    assert np.max(np.abs(quadratic(params)[1])) <= 1e-6
    assert n_iter > n_alone
    assert len(curve) == n_iter
    # both runs share max_iter
    _, n_iter, _, failure = solvers_module.minimise(
        _RoundedQuadratic(), start, max_iter=n_alone + 1, tol=1e-6)
    assert n_iter == n_alone + 1
    assert failure.startswith(f"max_iter={n_alone + 1} iterations were reached")
    # without a float64 copy the stall is reported, with what would help
    _, n_iter, _, failure = solvers_module.minimise(
        _RoundedQuadratic(precise=False), start, max_iter=100, tol=1e-6)
    assert n_iter == n_alone
    assert failure.endswith("(float32 X: its precision can stop L-BFGS short of a "
                            "tight tol; float64 X would reach it)")


def test_minimise_does_not_go_on_past_max_iter_or_on_float64():
    start = np.array([5.0, 5.0, 5.0])
    rounded = _RoundedQuadratic()
    _, n_iter, _, failure = solvers_module.minimise(rounded, start, max_iter=2,
                                                    tol=1e-6)
    assert n_iter == 2
    assert failure.startswith("max_iter=2 iterations were reached")
    assert set(rounded.calls) == {np.dtype(np.float32)}
    exact = _RoundedQuadratic(np.float64)
    _, _, _, failure = solvers_module.minimise(exact, start, max_iter=100, tol=1e-30)
    assert failure.startswith("the objective stopped decreasing")
    assert "float32" not in failure


# ------------------------------- compact L-BFGS and OWL-QN: how they recover
class Recorded:
    """``loss_gradient`` that keeps a copy of every point it is called at, and
    answers ``inf`` at the evaluations numbered in ``fail_at``."""

    def __init__(self, loss_gradient, fail_at=()):
        self.loss_gradient = loss_gradient
        self.fail_at = set(fail_at)
        self.points = []

    def __call__(self, x):
        self.points.append(x.copy())
        loss, grad = self.loss_gradient(x)
        if len(self.points) - 1 in self.fail_at:
            return np.inf, grad
        return loss, grad


def _one_iteration(f, x0, **kw):
    """The point one compact iteration reaches from ``x0``, and how many
    evaluations it took."""
    recorded = Recorded(f)
    x1, *_ = compact_lbfgs(recorded, x0, max_iter=1, tol=0.0, ftol=0.0, **kw)
    return x1, len(recorded.points)


def test_compact_lbfgs_tries_a_unit_step_first_then_the_quasi_newton_step():
    # as L-BFGS-B: length 1 along -g, then step 1 along the two-loop direction
    f = softplus_problem(n=5)
    x0 = np.full(5, 0.5)
    x1, k = _one_iteration(f, x0)
    recorded = Recorded(f)
    compact_lbfgs(recorded, x0, max_iter=2, tol=0.0, ftol=0.0)
    g0, g1 = f(x0)[1], f(x1)[1]
    assert_allclose(recorded.points[1], x0 - g0 / np.linalg.norm(g0), rtol=1e-14)
    d1 = two_loop_direction([(x1 - x0, g1 - g0)], g1)
    assert_allclose(recorded.points[k], x1 + d1, rtol=1e-10)


def test_compact_lbfgs_keeps_a_lower_point_when_the_line_search_runs_out():
    # one evaluation a search: the unit step from 100 to 99 lowers f but does
    # not meet the curvature condition, so DCSRCH stops with a warning
    def f(x):
        return 0.5 * float(x @ x), x.copy()

    x, fx, g, n_iter, curve, status = compact_lbfgs(
        f, np.array([100.0]), max_iter=1, tol=1e-8, ftol=0.0, maxls=1)
    assert_allclose(x, [99.0], rtol=1e-14)
    assert fx == 0.5 * 99.0**2
    assert curve == [fx]
    assert (n_iter, status) == (1, "max_iter")


def test_compact_lbfgs_reports_a_line_search_that_only_went_uphill():
    # the unit step overshoots a steep minimum: f rises, nothing is kept
    def f(x):
        return 50.0 * float(x @ x), 100.0 * x

    start = np.array([1e-3])
    x, fx, g, n_iter, curve, status = compact_lbfgs(
        f, start, max_iter=5, tol=1e-8, ftol=0.0, maxls=1)
    assert (n_iter, status, curve) == (0, "line_search", [])
    assert_array_equal(x, start)
    assert fx == f(start)[0]


def test_compact_lbfgs_retries_along_the_gradient_after_a_failed_search():
    # the first trial of the 2nd iteration fails; the pairs are forgotten and
    # the search retries along -g with step 1 (L-BFGS-B's restart)
    f = softplus_problem(n=5)
    x0 = np.full(5, 0.5)
    x1, k = _one_iteration(f, x0, maxls=1)
    recorded = Recorded(f, fail_at={k})
    x, fx, g, n_iter, curve, status = compact_lbfgs(
        recorded, x0, max_iter=50, tol=1e-8, ftol=0.0, maxls=1)
    assert_allclose(recorded.points[k + 1], x1 - f(x1)[1], rtol=1e-12)
    assert status == "converged"
    assert np.max(np.abs(g)) <= 1e-8


def _uphill_once(monkeypatch):
    """Make the first quasi-Newton direction point uphill (its negative);
    returns the list of pairs held after each update."""
    original = CompactHistory.update_and_direction
    pairs = []

    def uphill_once(self, step, d, g, g_old, store, v=None):
        original(self, step, d, g, g_old, store, v)
        if not pairs:
            np.negative(d, out=d)
        pairs.append(len(self.order))

    monkeypatch.setattr(CompactHistory, "update_and_direction", uphill_once)
    return pairs


def test_compact_lbfgs_restarts_when_the_direction_does_not_descend(monkeypatch):
    # a direction that goes uphill (rounding can give one) is replaced by -g,
    # with step 1, and the pairs that gave it are forgotten
    f = softplus_problem(n=5)
    x0 = np.full(5, 0.5)
    x1, k = _one_iteration(f, x0)
    pairs = _uphill_once(monkeypatch)
    recorded = Recorded(f)
    x, fx, g, n_iter, curve, status = compact_lbfgs(
        recorded, x0, max_iter=50, tol=1e-8, ftol=0.0)
    assert_allclose(recorded.points[k], x1 - f(x1)[1], rtol=1e-12)
    assert pairs[:2] == [1, 1]  # the first pair was dropped before the second
    assert status == "converged"
    assert np.max(np.abs(g)) <= 1e-8


def _shifted_l1_problem(wall=np.inf, h=10.0):
    """``h/2 (x - c)^2 + 0.1 |x|`` with its minimum at 1.3 (``c = 1.3 +
    0.1/h``), infinite beyond ``wall``."""
    c = 1.3 + 0.1 / h

    def f(x):
        loss = 0.5 * h * float((x[0] - c) ** 2) if x[0] <= wall else np.inf
        return loss, h * (x - c)
    return f, np.array([0.1])


@pytest.mark.parametrize(("wall", "h", "cut"),
                         [(np.inf, 10.0, 1.3), (np.inf, 1.0, 1.3), (1.5, 10.0, 1.1)])
def test_owlqn_cuts_the_step_to_the_quadratics_minimiser(wall, h, cut):
    # pg = -0.3 h at 1: the unit first step reaches 2, past the minimum at 1.3.
    # The quadratic through F(1), the slope and F(2) (exact here: F is that
    # quadratic on x > 0) has its minimum at 1.3, a cut of 0.3, whatever the
    # curvature h; where F(2) is infinite the cut is the largest, 0.1
    f, l1 = _shifted_l1_problem(wall, h)
    recorded = Recorded(f)
    x, F, pg, n_iter, curve, status = compact_lbfgs(
        recorded, np.array([1.0]), max_iter=20, tol=1e-10, ftol=0.0, l1=l1)
    assert_allclose(np.concatenate(recorded.points[:3]), [1.0, 2.0, cut], rtol=1e-12)
    assert status == "converged"
    assert_allclose(x, [1.3], rtol=1e-9)
    assert len(curve) == n_iter


def _min_norm_subgradient(x, g, l1):
    """The minimum-norm subgradient of ``f + sum l1 |x|``, by cases."""
    at_zero = np.sign(g) * np.maximum(np.abs(g) - l1, 0.0)
    return np.where(x != 0.0, g + l1 * np.sign(x), at_zero)


def _flat_l1_problem(steep=0.0):
    """``0.5 sum h (x - c)^2`` with a flat, unpenalised middle entry whose
    gradient at 0 is 5e-5, 12.5e-4 of objective away from its minimum, and
    penalised outer entries (optimal at 0 when ``steep`` = ``c[0]`` is 0);
    the diagonal scale ``h^-1/2`` knows the curvatures."""
    h = np.array([1.0, 1e-6, 1.0])
    c = np.array([steep, 50.0, 0.0])

    def loss_gradient(x):
        diff = x - c
        return 0.5 * float(np.sum(h * diff**2)), h * diff

    return loss_gradient, np.array([0.1, 0.0, 0.1]), h ** -0.5


def test_owlqn_does_not_stop_on_a_small_subgradient_far_from_the_optimum():
    # as L-BFGS: the predicted decrease -pg'd/2 sees the flat direction
    loss_gradient, l1, scale = _flat_l1_problem()
    start = np.zeros(3)
    pg0 = _min_norm_subgradient(start, loss_gradient(start)[1], l1)
    assert np.max(np.abs(pg0)) <= 1e-4
    x, F, pg, n_iter, curve, status = compact_lbfgs(
        loss_gradient, start, max_iter=50, tol=1e-4, ftol=0.0, scale=scale, l1=l1)
    assert status == "converged"
    assert n_iter >= 1
    assert len(curve) == n_iter
    assert F <= 1e-12
    assert_allclose(x, [0.0, 50.0, 0.0], atol=1e-6)


def test_owlqn_stops_once_the_model_predicts_no_decrease_left():
    # with the steep entry off its optimum (0.9) too: the unit first step
    # (1 in the scaled variables, 0.9 to the optimum) is accepted, the
    # quasi-Newton step is exact on this quadratic, and then the predicted
    # decrease is ~0 while the subgradient is within tol: the run stops there
    loss_gradient, l1, scale = _flat_l1_problem(steep=1.0)
    x, F, pg, n_iter, curve, status = compact_lbfgs(
        loss_gradient, np.zeros(3), max_iter=50, tol=1e-4, ftol=0.0, scale=scale,
        l1=l1)
    assert (n_iter, status) == (2, "converged")
    assert_allclose(x, [0.9, 50.0, 0.0], rtol=1e-9)

def test_owlqn_from_a_point_that_meets_tol_takes_no_iteration():
    loss_gradient, l1, scale = _flat_l1_problem()
    start = np.array([0.0, 50.0 + 1e-3, 0.0])  # gradient 1e-9, decrease 5e-13
    x, F, pg, n_iter, curve, status = compact_lbfgs(
        loss_gradient, start, max_iter=50, tol=1e-8, ftol=0.0, scale=scale, l1=l1)
    assert (n_iter, curve, status) == (0, [], "converged")
    assert_array_equal(x, start)
    assert F == loss_gradient(start)[0]


def test_owlqn_returns_the_minimum_norm_subgradient_in_the_original_variables():
    # with a diagonal scale OWL-QN runs on u = x / r; what it returns (and
    # what tol bounds) is the original problem's subgradient at x
    f, l1 = _l1_softplus()
    scale = np.linspace(0.5, 3.0, 5)
    x, F, pg, n_iter, curve, status = compact_lbfgs(
        f, np.full(5, 5.0), max_iter=2, tol=1e-10, ftol=0.0, scale=scale, l1=l1)
    assert n_iter == 2
    assert_allclose(pg, _min_norm_subgradient(x, f(x)[1], l1), rtol=1e-12)
    assert F == pytest.approx(f(x)[0] + np.sum(l1 * np.abs(x)), rel=1e-14)


def _l1_softplus(n=5, weight=0.01):
    """The softplus problem plus ``weight * |x|`` on every entry."""
    return softplus_problem(n=n), np.full(n, weight)


def _pseudo_gradient(g, x, l1):
    # off zero, the L1 term is differentiable
    assert np.all(x != 0.0)
    return g + l1 * np.sign(x)


def test_owlqn_restarts_along_the_pseudo_gradient_when_its_direction_fails(
        monkeypatch):
    # a direction that disagrees with -pg in every penalised entry projects to
    # 0: the pairs are dropped and the next trial is a unit step along -pg
    f, l1 = _l1_softplus()
    x0 = np.full(5, 5.0)  # unit steps stay in the positive orthant
    x1, k = _one_iteration(f, x0, l1=l1)
    pairs = _uphill_once(monkeypatch)
    recorded = Recorded(f)
    x, F, pg, n_iter, curve, status = compact_lbfgs(
        recorded, x0, max_iter=50, tol=1e-6, ftol=0.0, l1=l1)
    pg1 = _pseudo_gradient(f(x1)[1], x1, l1)
    assert_allclose(recorded.points[k], x1 - pg1 / np.linalg.norm(pg1), rtol=1e-12)
    assert pairs[:2] == [1, 1]
    assert status == "converged"
    assert np.max(np.abs(pg)) <= 1e-6
    assert len(curve) == n_iter


def test_owlqn_retries_along_the_pseudo_gradient_after_a_failed_search():
    f, l1 = _l1_softplus()
    x0 = np.full(5, 5.0)  # unit steps stay in the positive orthant
    x1, k = _one_iteration(f, x0, l1=l1, maxls=1)
    recorded = Recorded(f, fail_at={k})
    x, F, pg, n_iter, curve, status = compact_lbfgs(
        recorded, x0, max_iter=50, tol=1e-8, ftol=0.0, l1=l1, maxls=1)
    pg1 = _pseudo_gradient(f(x1)[1], x1, l1)
    assert_allclose(recorded.points[k + 1], x1 - pg1 / np.linalg.norm(pg1),
                    rtol=1e-12)
    # the retry was accepted, and the run went on downhill (with one trial a
    # search it stops on a failed search later, far from the optimum)
    assert n_iter >= 3
    assert len(curve) == n_iter
    assert np.all(np.diff(curve) < 0)


def test_owlqn_reports_a_first_search_that_found_no_decrease():
    f, l1 = _shifted_l1_problem(wall=1.0)  # any step to the right is infinite
    x, F, pg, n_iter, curve, status = compact_lbfgs(
        f, np.array([1.0]), max_iter=20, tol=1e-10, ftol=0.0, l1=l1, maxls=3)
    assert (n_iter, status, curve) == (0, "line_search", [])
    assert_array_equal(x, [1.0])
    assert F == pytest.approx(5.0 * 0.31**2 + 0.1, rel=1e-14)


# ------------------------------------------- solve: to the optimum, never worse
def evaluate_quadratic(params):
    value, grad = quadratic(params)
    return value, grad, float(np.max(np.abs(grad)))


def gradient_descent_epoch(n_steps=5):
    """A variance_reduced_epoch whose estimate is exact: plain gradient steps."""
    calls = []

    def epoch(params, snapshot, gradient, order, batch_size, eta, intercept_scale):
        calls.append((params.copy(), snapshot.copy(), eta))
        assert_allclose(gradient, quadratic(snapshot)[1])  # the snapshot's
        for _ in range(n_steps):
            params -= eta * quadratic(params)[1]
        return quadratic(params)[0], False
    epoch.calls = calls
    return epoch


def uphill(params, snapshot, gradient, order, batch_size, eta, intercept_scale):
    """A variance_reduced_epoch that always ends worse than its snapshot."""
    params += 3.0 * (params - CENTER)
    return 0.0, False


def solve(solver, state, **kw):
    options = dict(evaluate=evaluate_quadratic, step=0.01, batch_size=5,
                   rng=np.random.RandomState(0), shuffle=True, max_iter=1000,
                   tol=1e-8)
    options.update(kw)
    return solver.solve(state, quadratic_epoch(), np.arange(10, dtype=np.intp),
                        **options)


@pytest.mark.parametrize("solver_name", ["sgd", "adam"])
def test_solve_reaches_tol_by_variance_reduced_epochs(solver_name):
    solver = make_solver(solver_name)
    state = solver.init_state(np.zeros(3))
    epoch = gradient_descent_epoch()
    n_epochs, n_full, curve, failure = solve(
        solver, state, variance_reduced_epoch=epoch, finish=None)
    assert failure is None
    assert n_full == 0
    assert np.max(np.abs(quadratic(state.model)[1])) <= 1e-8
    assert_allclose(state.model, CENTER, atol=1e-8)
    assert len(curve) == n_epochs == len(epoch.calls) + 1
    assert all(b <= a for a, b in zip(curve, curve[1:], strict=False))
    # each epoch starts at the snapshot, the last accepted end point
    for start, snapshot, _ in epoch.calls:
        assert_array_equal(start, snapshot)
    # the state ends at the model, its average restarted there
    assert_array_equal(state.params, state.model)


def test_solve_rejects_epochs_that_raise_the_objective_and_finishes():
    solver = make_solver("sgd")
    state = solver.init_state(np.zeros(3))
    steps = []

    def recording(params, snapshot, gradient, order, batch_size, eta, intercept_scale):
        steps.append(eta)
        return uphill(params, snapshot, gradient, order, batch_size, eta,
                      intercept_scale)

    finished = {}

    def finish(params, max_iter):
        finished["from"] = params.copy()
        finished["max_iter"] = max_iter
        return CENTER.copy(), 7, [0.5, 0.0], None

    n_epochs, n_full, curve, failure = solve(
        solver, state, variance_reduced_epoch=recording, finish=finish, max_iter=50)
    first = curve[0]
    # three rejected epochs, each halving the step, then the finish from the
    # model of the first (stochastic) epoch, never from a rejected end point
    assert steps == [0.01, 0.005, 0.0025]
    assert n_epochs == 4
    assert curve[:4] == [first] * 4
    assert quadratic(finished["from"])[0] == pytest.approx(first)
    assert finished["max_iter"] == 50 - 4
    assert (n_full, failure, curve[4:]) == (7, None, [0.5, 0.0])
    assert_array_equal(state.model, CENTER)


def test_solve_without_a_finish_keeps_the_best_model_and_reports_no_convergence():
    solver = make_solver("sgd")
    state = solver.init_state(np.zeros(3))

    n_epochs, n_full, curve, failure = solve(
        solver, state, variance_reduced_epoch=uphill, finish=None, max_iter=6)
    assert (n_epochs, n_full) == (6, 0)
    assert failure.startswith("max_iter=6 epochs were reached; the largest")
    assert quadratic(state.model)[0] == pytest.approx(curve[0]) == curve[-1]


def test_solve_reverts_a_first_epoch_that_made_things_worse():
    solver = make_solver("sgd", eta0=10.0)  # far past stability on the 100 scale
    state = solver.init_state(CENTER + 0.1)
    start_value = quadratic(CENTER + 0.1)[0]
    epoch = gradient_descent_epoch()
    finished = {}

    def finish(params, max_iter):
        finished["from"] = params.copy()
        return params, 0, [], "stopped"

    _, _, curve, failure = solve(solver, state, variance_reduced_epoch=None,
                                 finish=finish)
    assert failure == "stopped"
    assert not epoch.calls
    assert_array_equal(finished["from"], CENTER + 0.1)
    assert curve == [start_value]


def test_solve_switches_to_full_batch_when_variance_reduction_is_slow():
    solver = make_solver("sgd")
    state = solver.init_state(np.zeros(3))
    slow = gradient_descent_epoch(n_steps=1)  # each epoch gains about as before
    finished = {}

    def finish(params, max_iter):
        finished["from"] = params.copy()
        return CENTER.copy(), 3, [0.0], None

    n_epochs, n_full, curve, failure = solve(
        solver, state, variance_reduced_epoch=slow, finish=finish, step=1e-4)
    assert failure is None
    assert n_full == 3
    assert 2 <= n_epochs <= 4  # gave up on SVRG after an epoch that gained little
    assert_array_equal(finished["from"], slow.calls[-1][0] - 1e-4 * quadratic(
        slow.calls[-1][0])[1])


def test_solve_judges_slowness_by_the_ratio_of_successive_decreases():
    # the objective is the parameter itself: 10, then 8 after the stochastic
    # epoch (a decrease of 2), then the scripted SVRG end points. A tie is
    # rejected (step halved); 8 -> 7 -> 6.5 gain exactly half the previous
    # decrease each (not slow: the rule is strict); 6.5 -> 6.2 gains 0.3 >
    # 0.25, so the finish starts there
    solver = make_solver("sgd")
    state = solver.init_state(np.array([10.0]))
    values = iter([7.0, 7.0, 6.5, 6.2])
    steps, finished = [], {}

    def stochastic(state, order, batch_size, rule):
        state.params[0] = 8.0
        return 8.0, False

    def scripted(params, snapshot, gradient, order, batch_size, eta, intercept_scale):
        steps.append(eta)
        params[0] = next(values)
        return params[0], False

    def finish(params, max_iter):
        finished["from"] = params.copy()
        return np.array([5.0]), 2, [5.5, 5.0], None

    n_epochs, n_full, curve, failure = solver.solve(
        state, stochastic, np.arange(4, dtype=np.intp),
        evaluate=lambda p: (float(p[0]), np.ones(1), 1.0),
        variance_reduced_epoch=scripted, step=0.01, finish=finish, batch_size=2,
        rng=np.random.RandomState(0), shuffle=False, max_iter=100, tol=1e-8)
    assert steps == [0.01, 0.01, 0.005, 0.005]
    assert_array_equal(finished["from"], [6.2])
    assert (n_epochs, n_full, failure) == (5, 2, None)
    assert curve == [8.0, 7.0, 7.0, 6.5, 6.2, 5.5, 5.0]
    assert_array_equal(state.model, [5.0])

def recording_epoch(orders, inner=None):
    """A run_epoch that records the order of the rows it is given."""
    inner = inner or quadratic_epoch()

    def run_epoch(state, order, batch_size, rule):
        orders.append((order.copy(), batch_size))
        return inner(state, order, batch_size, rule)
    return run_epoch


def test_solve_without_svrg_or_finish_runs_plain_epochs_judged_by_a_pass(capsys):
    # neither SVRG nor a finish: epochs of the rule, each kept only if the
    # objective fell; rows shuffled by rng each epoch, batch_size passed on
    solver = make_solver("sgd", eta0=0.009)
    state = solver.init_state(np.zeros(3))
    orders = []
    rows = np.arange(10, dtype=np.intp)
    n_epochs, n_full, curve, failure = solver.solve(
        state, recording_epoch(orders), rows, evaluate=evaluate_quadratic,
        variance_reduced_epoch=None, step=0.01, finish=None, batch_size=4,
        rng=np.random.RandomState(0), shuffle=True, max_iter=2000, tol=1e-6,
        verbose=True)
    assert failure is None
    assert n_full == 0
    assert np.max(np.abs(quadratic(state.model)[1])) <= 1e-6
    assert len(orders) == n_epochs
    assert len(curve) == n_epochs
    assert all(b < a for a, b in zip(curve, curve[1:], strict=False))
    expected = np.random.RandomState(0)
    for order, batch_size in orders:
        assert batch_size == 4
        assert_array_equal(order, expected.permutation(rows))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == n_epochs
    assert lines[0].startswith(f"Epoch 1, loss = {curve[0]:.8f}, time = ")
    assert lines[-1].startswith(f"Epoch {n_epochs}, loss = {curve[-1]:.8f}, time = ")
    # unshuffled: the rows in order, every epoch
    orders.clear()
    solver.solve(solver.init_state(np.zeros(3)), recording_epoch(orders), rows,
                 evaluate=evaluate_quadratic, variance_reduced_epoch=None, step=0.01,
                 finish=None, batch_size=4, rng=np.random.RandomState(0),
                 shuffle=False, max_iter=3, tol=1e-6)
    assert len(orders) == 3
    for order, _ in orders:
        assert_array_equal(order, rows)


def test_solve_shuffles_the_svrg_epochs_and_reports_rejections(capsys):
    solver = make_solver("sgd")
    state = solver.init_state(np.zeros(3))
    orders = []

    def recording(params, snapshot, gradient, order, batch_size, eta, intercept_scale):
        orders.append((order.copy(), batch_size, intercept_scale))
        return uphill(params, snapshot, gradient, order, batch_size, eta,
                      intercept_scale)

    rows = np.arange(10, dtype=np.intp)
    rng = np.random.RandomState(3)
    solver.solve(state, quadratic_epoch(), rows, evaluate=evaluate_quadratic,
                 variance_reduced_epoch=recording, step=0.01, intercept_scale=0.25,
                 finish=None, batch_size=5, rng=rng, shuffle=True, max_iter=3,
                 tol=1e-8, verbose=True)
    expected = np.random.RandomState(3)
    expected.permutation(rows)  # the first (stochastic) epoch's order
    for order, batch_size, intercept_scale in orders:
        assert_array_equal(order, expected.permutation(rows))
        assert batch_size == 5
        assert intercept_scale == 0.25
    lines = capsys.readouterr().out.splitlines()
    first = float(lines[0].split("loss = ")[1].split(",")[0])
    assert lines[1].startswith(f"Epoch 2 (rejected, step now 0.005), loss = "
                               f"{first:.8f}")
    assert lines[2].startswith("Epoch 3 (rejected, step now 0.0025)")


def test_solve_halves_the_step_after_reverting_the_first_epoch():
    solver = make_solver("sgd", eta0=10.0)  # the first epoch diverges upward
    state = solver.init_state(CENTER + 0.1)
    epoch = gradient_descent_epoch(n_steps=1)
    solve(solver, state, variance_reduced_epoch=epoch, finish=None, max_iter=2,
          step=0.004)
    # the SVRG epoch starts from the start, not from the bad epoch's end
    start, snapshot, eta = epoch.calls[0]
    assert_array_equal(start, CENTER + 0.1)
    assert eta == 0.002


def test_solve_stops_when_the_step_vanishes():
    solver = make_solver("sgd")
    state = solver.init_state(np.zeros(3))

    n_epochs, _, curve, failure = solve(solver, state, variance_reduced_epoch=uphill,
                                        finish=None, step=4e-12, max_iter=100)
    # 4e-12 -> 2e-12 -> 1e-12 -> 5e-13 < 1e-12: three rejections, then stop
    assert n_epochs == 4
    assert failure.startswith("every epoch raised the objective until the step "
                              "fell below 1e-12, after 4 epochs; the largest "
                              "absolute (sub)gradient entry is ")


def test_solve_names_the_epoch_that_diverged():
    solver = make_solver("sgd")
    with pytest.raises(DivergenceError, match=r"^epoch #1$"):
        solver.solve(solver.init_state(np.zeros(3)), constant_epoch([np.nan]),
                     np.arange(10, dtype=np.intp), evaluate=evaluate_quadratic,
                     variance_reduced_epoch=None, step=0.01, batch_size=5,
                     rng=None, shuffle=False, max_iter=10, tol=1e-8)
    # plain epochs (no SVRG): the third one
    epochs = iter([quadratic_epoch(), quadratic_epoch(), constant_epoch([np.nan])])

    def run_epoch(state, order, batch_size, rule):
        return next(epochs)(state, order, batch_size, rule)

    with pytest.raises(DivergenceError, match=r"^epoch #3$"):
        solver.solve(solver.init_state(np.zeros(3)), run_epoch,
                     np.arange(10, dtype=np.intp), evaluate=evaluate_quadratic,
                     variance_reduced_epoch=None, step=0.01, batch_size=5,
                     rng=None, shuffle=False, max_iter=10, tol=1e-8)


def test_fit_judges_the_model_and_reports_each_epoch(capsys):
    # model_loss and validation_score see the state's model; the verbose lines
    # give both; the rows are shuffled by rng and batch_size is passed on
    solver = make_solver("sgd", eta0=0.005)
    state = solver.init_state(np.zeros(3))
    orders, judged = [], []
    rows = np.arange(6, dtype=np.intp)

    def model_loss(params):
        judged.append((params is state.model, params.copy()))
        return quadratic(params)[0]

    scores = iter([0.25, 0.5, 0.75])
    n_epochs, curve, seen, converged = solver.fit(
        state, recording_epoch(orders), rows, batch_size=3,
        rng=np.random.RandomState(1), shuffle=True, max_iter=3, tol=0.0,
        n_iter_no_change=5, model_loss=model_loss,
        validation_score=lambda params: next(scores), verbose=True)
    assert (n_epochs, converged) == (3, False)
    assert seen == [0.25, 0.5, 0.75]
    assert all(is_model for is_model, _ in judged)
    assert curve == [quadratic(p)[0] for _, p in judged]
    expected = np.random.RandomState(1)
    for order, batch_size in orders:
        assert batch_size == 3
        assert_array_equal(order, expected.permutation(rows))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(", time = ")[0] for line in lines] == [
        f"Epoch {i + 1}, loss = {curve[i]:.8f}, validation score = {s:.6f}"
        for i, s in enumerate([0.25, 0.5, 0.75])]


def test_adaptive_rate_stops_dividing_below_1e_6(capsys):
    solver = make_solver("sgd", learning_rate="adaptive", eta0=1e-5)
    state = solver.init_state(np.zeros(3))
    n_epochs, _, _, converged = solver.fit(
        state, constant_epoch([1.0] * 20), np.arange(2, dtype=np.intp),
        batch_size=2, rng=None, shuffle=False, max_iter=20, tol=0.0,
        n_iter_no_change=1, verbose=True)
    # 1e-5 -> 2e-6 -> 4e-7: two divisions, then the stall stops the fit
    assert state.eta == pytest.approx(4e-7)
    assert converged
    assert n_epochs == 4
    out = capsys.readouterr().out
    assert "Learning rate set to 2e-06" in out
    assert "Learning rate set to 4e-07" in out
