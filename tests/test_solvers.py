"""Solvers on problems whose answers are known in closed form."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sksoftmax._solvers import DivergenceError, MinibatchSolver, lbfgs

CENTER = np.array([1.0, -2.0, 3.0])
SCALES = np.array([1.0, 10.0, 100.0])


def quadratic(params, rows=None):
    """0.5 * sum(scales * (params - center)^2): minimum 0 at CENTER."""
    diff = params - CENTER
    return 0.5 * float(np.sum(SCALES * diff**2)), SCALES * diff


def no_prox(params, step, out_shift=None):
    return False


def make_solver(solver="sgd", **kw):
    params = dict(learning_rate="constant", eta0=0.001, power_t=0.5, alpha=0.0,
                  momentum=0.0, nesterovs_momentum=False, beta_1=0.9, beta_2=0.999,
                  epsilon=1e-8)
    params.update(kw)
    return MinibatchSolver(solver, **params)


def test_lbfgs_finds_the_minimum():
    params, n_iter, curve, converged = lbfgs(quadratic, np.zeros(3), max_iter=100,
                                             tol=1e-10)
    assert converged
    assert_allclose(params, CENTER, rtol=1e-9)
    assert len(curve) == n_iter and np.all(np.diff(curve) <= 0)


def test_lbfgs_reports_max_iter():
    _, n_iter, _, converged = lbfgs(quadratic, np.zeros(3), max_iter=1, tol=1e-12)
    assert n_iter == 1 and not converged


def test_lbfgs_non_finite_objective_is_a_divergence_error():
    def nan_objective(params):
        return np.nan, np.full_like(params, np.nan)

    with pytest.raises(DivergenceError, match="non-finite"):
        lbfgs(nan_objective, np.zeros(3), max_iter=10, tol=1e-6)


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("constant", [0.1, 0.1, 0.1]),
        ("optimal", [0.1, 0.1 / (1 + 0.1 * 0.5 * 1), 0.1 / (1 + 0.1 * 0.5 * 2)]),
        ("invscaling", [0.1, 0.1 / 2**0.25, 0.1 / 3**0.25]),
        ("adaptive", [0.1, 0.1, 0.1]),
    ],
)
def test_learning_rate_schedules(schedule, expected):
    solver = make_solver(learning_rate=schedule, eta0=0.1, alpha=0.5, power_t=0.25)
    state = solver.init_state(np.zeros(3))
    etas = []
    for step in range(3):
        state.step = step
        etas.append(solver._eta(state))
    assert_allclose(etas, expected, rtol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_steps(nesterov):
    solver = make_solver(eta0=0.1, momentum=0.5, nesterovs_momentum=nesterov)
    state = solver.init_state(np.zeros(2))
    g = np.array([1.0, -2.0])
    solver._update(state, g, no_prox)
    v1 = -0.1 * g
    x1 = 0.5 * v1 - 0.1 * g if nesterov else v1
    assert_allclose(state.params, x1)
    solver._update(state, g, no_prox)
    v2 = 0.5 * v1 - 0.1 * g
    x2 = x1 + (0.5 * v2 - 0.1 * g if nesterov else v2)
    assert_allclose(state.params, x2)


def test_adam_first_step_is_bias_corrected():
    solver = make_solver("adam", eta0=0.01)
    state = solver.init_state(np.zeros(2))
    g = np.array([4.0, -0.5])
    solver._update(state, g, no_prox)
    lr = 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9)
    expected = -lr * (0.1 * g) / (np.sqrt(0.001 * g**2) + 1e-8)
    assert_allclose(state.params, expected, rtol=1e-12)
    assert_allclose(state.params, -0.01 * np.sign(g), rtol=1e-6)


@pytest.mark.parametrize("solver_name, eta0", [("sgd", 0.005), ("adam", 0.05)])
def test_minibatch_fit_converges_and_stops_on_tol(solver_name, eta0):
    # "adaptive" shrinks Adam's step once it oscillates around the minimum
    solver = make_solver(solver_name, eta0=eta0, learning_rate="adaptive")
    state = solver.init_state(np.zeros(3))
    rows = np.arange(10, dtype=np.intp)
    n_epochs, curve, scores, converged = solver.fit(
        state, quadratic, no_prox, rows, batch_size=5, weights=np.ones(10),
        rng=np.random.RandomState(0), shuffle=True, max_iter=5000, tol=1e-12,
        n_iter_no_change=10)
    assert converged and n_epochs < 5000 and scores == []
    assert len(curve) == n_epochs and curve[-1] < 1e-5 * curve[0]
    assert_allclose(state.params, CENTER, atol=1e-2)
    assert state.step == 2 * n_epochs  # two minibatches per epoch


def test_adaptive_divides_the_rate_by_five_on_each_stall():
    solver = make_solver(learning_rate="adaptive", eta0=0.01)
    state = solver.init_state(np.zeros(3))

    def flat(params, rows):
        return 1.0, np.zeros_like(params)

    n_epochs, _, _, converged = solver.fit(
        state, flat, no_prox, np.arange(4, dtype=np.intp), batch_size=4,
        weights=np.ones(4), rng=None, shuffle=False, max_iter=100, tol=1e-4,
        n_iter_no_change=2)
    # 6 divisions (0.01 -> 6.4e-7 < 1e-6), then a 7th stall stops the run
    assert converged and n_epochs == 1 + 7 * 2
    assert state.eta == pytest.approx(0.01 / 5**6)


def test_validation_score_drives_early_stopping():
    solver = make_solver()
    state = solver.init_state(np.zeros(3))
    scores = iter([0.5, 0.6, 0.6, 0.6, 0.9])
    n_epochs, _, seen, converged = solver.fit(
        state, quadratic, no_prox, np.arange(2, dtype=np.intp), batch_size=2,
        weights=np.ones(2), rng=None, shuffle=False, max_iter=10, tol=0.01,
        n_iter_no_change=2, validation_score=lambda p: next(scores))
    assert converged and n_epochs == 4 and seen == [0.5, 0.6, 0.6, 0.6]


def test_minibatch_divergence_names_the_epoch():
    solver = make_solver()
    state = solver.init_state(np.zeros(3))
    calls = {"n": 0}

    def blows_up(params, rows):
        calls["n"] += 1
        bad = calls["n"] > 2
        return (np.inf if bad else 1.0), np.zeros_like(params)

    with pytest.raises(DivergenceError, match="epoch #3"):
        solver.fit(state, blows_up, no_prox, np.arange(2, dtype=np.intp),
                   batch_size=2, weights=np.ones(2), rng=None, shuffle=False,
                   max_iter=10, tol=0.0, n_iter_no_change=100)
