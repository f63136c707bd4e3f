"""Compiled step rules against their formulas."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sksoftmax import _steps


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("constant", [0.1, 0.1, 0.1]),
        ("optimal", [0.1, 0.1 / (1 + 0.1 * 0.5 * 1), 0.1 / (1 + 0.1 * 0.5 * 2)]),
        ("invscaling", [0.1, 0.1 / 2**0.25, 0.1 / 3**0.25]),
        ("adaptive", [0.03, 0.03, 0.03]),  # the current eta, whatever the step
    ],
)
def test_learning_rate_schedules(schedule, expected):
    code = _steps.SCHEDULES[schedule]
    etas = [_steps.learning_rate(code, t, 0.1, 0.03, 0.5, 0.25) for t in range(3)]
    assert_allclose(etas, expected, rtol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_steps(nesterov):
    params, velocity = np.zeros(2), np.zeros(2)
    shift, threshold = np.zeros(2), np.zeros(2)
    g = np.array([1.0, -2.0])
    _steps.sgd_step(params, g, velocity, 0.1, 0.5, nesterov, 2, 0.0, shift, threshold)
    v1 = -0.1 * g
    x1 = 0.5 * v1 - 0.1 * g if nesterov else v1
    assert_allclose(params, x1)
    _steps.sgd_step(params, g, velocity, 0.1, 0.5, nesterov, 2, 0.0, shift, threshold)
    v2 = 0.5 * v1 - 0.1 * g
    assert_allclose(velocity, v2)
    assert_allclose(params, x1 + (0.5 * v2 - 0.1 * g if nesterov else v2))


def test_soft_threshold_and_its_shift():
    params = np.array([1.0, -0.2, 0.3, -2.0, 5.0])
    shift = np.zeros(5)
    _steps.soft_threshold(params, 4, np.array([0.4]), False, shift)  # intercept: last
    assert_allclose(params, [0.6, 0.0, 0.0, -1.6, 5.0])
    assert_allclose(shift[:4], [-0.4, 0.2, -0.3, 0.4])
    per_coordinate = np.array([0.1, 0.0, 0.0, 2.0])
    _steps.soft_threshold(params, 4, per_coordinate, True, shift)
    assert_allclose(params, [0.5, 0.0, 0.0, 0.0, 5.0])


def test_sgd_prox_shift_enters_the_velocity():
    params, velocity = np.array([0.05, 1.0]), np.zeros(2)
    shift, threshold = np.zeros(2), np.zeros(2)
    g = np.array([0.0, 0.0])
    # l1 = 1, eta = 0.1: threshold 0.1 zeroes the first coefficient
    _steps.sgd_step(params, g, velocity, 0.1, 0.9, False, 2, 1.0, shift, threshold)
    assert_allclose(params, [0.0, 0.9])
    assert_allclose(velocity, [-0.05, -0.1])  # the displacement actually made


def test_adam_first_step_is_bias_corrected():
    params, m, v = np.zeros(2), np.zeros(2), np.zeros(2)
    shift, threshold = np.zeros(2), np.zeros(2)
    g = np.array([4.0, -0.5])
    _steps.adam_step(params, g, m, v, 0, 0.01, 0.9, 0.999, 1e-8, 2, 0.0, shift,
                     threshold)
    lr = 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9)
    expected = -lr * (0.1 * g) / (np.sqrt(0.001 * g**2) + 1e-8)
    assert_allclose(params, expected, rtol=1e-12)
    assert_allclose(params, -0.01 * np.sign(g), rtol=1e-6)
    # the moments (two asserts: assert_allclose returns None, so "and" would
    # never check the second)
    assert_allclose(m, 0.1 * g, rtol=1e-12)
    assert_allclose(v, 0.001 * g**2, rtol=1e-12)


def test_adam_prox_uses_the_per_coordinate_step():
    params, m, v = np.array([0.005, 1.0]), np.zeros(2), np.zeros(2)
    shift, threshold = np.zeros(2), np.zeros(2)
    g = np.array([1e-3, 1e-3])
    _steps.adam_step(params, g, m, v, 0, 0.01, 0.9, 0.999, 1e-8, 2, 6e-5, shift,
                     threshold)
    # Adam moves both by ~0.01; its per-coordinate step lr / sqrt(v) ~ 100 makes
    # the threshold 6e-5 * 100 = 0.006: -0.005 is zeroed, 0.99 shrinks to 0.984
    scale = 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9) / (np.sqrt(0.001) * 1e-3 + 1e-8)
    assert_allclose(threshold, 6e-5 * scale)
    assert params[0] == 0.0
    assert params[1] == pytest.approx(1.0 - scale * 1e-4 - 6e-5 * scale, rel=1e-12)


def test_running_mean_is_the_mean_of_what_it_was_given():
    rng = np.random.default_rng(0)
    iterates = rng.standard_normal((7, 5))
    average = np.zeros(5)
    for count, params in enumerate(iterates, start=1):
        _steps.running_mean(average, params, count)
        assert_allclose(average, iterates[:count].mean(axis=0), rtol=1e-13, atol=1e-15)
