"""Optimiser step rules, compiled: learning-rate schedules, SGD, Adam, L1 prox.

One implementation, used by the compiled minibatch epochs of ``_kernels``.
All rules update flat float64 vectors in place and allocate nothing.
``n_coef`` is the number of leading entries that are coefficients: the
penalties and the proximal step apply to them only, never to the intercept.
"""

import math

import numpy as np
from numba import njit
from numba.extending import overload

SCHEDULES = {"constant": 0, "optimal": 1, "invscaling": 2, "adaptive": 3}


@njit(cache=True, nogil=True)
def learning_rate(schedule, step, eta0, eta, alpha, power_t):
    """Base step at update ``step`` (0-based).

    ``"constant"``: eta0; ``"optimal"``: eta0 / (1 + eta0 alpha t);
    ``"invscaling"``: eta0 / (t + 1)^power_t; ``"adaptive"``: the current
    ``eta`` (divided by 5 by the epoch loop on a stall).
    """
    if schedule == 1:
        return eta0 / (1.0 + eta0 * alpha * step)
    if schedule == 2:
        return eta0 / (step + 1.0) ** power_t
    if schedule == 3:
        return eta
    return eta0


@njit(cache=True, nogil=True)
def running_mean(average, params, count):
    """Fold ``params`` into ``average``, the mean of ``count - 1`` iterates so far.

    ``average += (params - average) / count``: Polyak-Ruppert averaging
    without a sum that grows with the number of iterates.
    """
    inv = 1.0 / count
    for j in range(params.shape[0]):
        average[j] += (params[j] - average[j]) * inv


@njit(cache=True, nogil=True)
def soft_threshold(params, n_coef, threshold, per_coordinate, shift):
    """L1 proximal step on ``params[:n_coef]``; writes the displacement to ``shift``.

    ``threshold`` is a scalar (``per_coordinate`` False, in ``threshold[0]``)
    or one value per coordinate.
    """
    for j in range(n_coef):
        t = threshold[j] if per_coordinate else threshold[0]
        old = params[j]
        if old > t:
            new = old - t
        elif old < -t:
            new = old + t
        else:
            new = 0.0
        shift[j] = new - old
        params[j] = new


@njit(cache=True, nogil=True)
def min_norm_subgradient(out, params, grad, l1, start, stop):
    """The minimum-norm subgradient of ``f + sum_j l1_j |params_j|`` into
    ``out`` on ``start:stop``, ``grad`` being ``f``'s gradient; returns its
    largest absolute entry there (NaN if any entry is NaN).

    A coordinate away from zero gets ``grad + l1 sign(params)``; one at zero
    the point of ``[grad - l1, grad + l1]`` nearest zero, which is zero when
    ``|grad| <= l1`` (L1's optimality condition). OWL-QN calls it the
    pseudo-gradient: minus it is the steepest descent direction.
    """
    largest = 0.0
    nan = False
    for j in range(start, stop):
        g, w, t = grad[j], params[j], l1[j]
        if w > 0.0:
            v = g + t
        elif w < 0.0:
            v = g - t
        elif g + t < 0.0:
            v = g + t
        elif g - t > 0.0:
            v = g - t
        elif g == g:
            v = 0.0
        else:
            v = g  # NaN
        out[j] = v
        a = abs(v)
        if a > largest:
            largest = a
        elif a != a:
            nan = True
    return math.nan if nan else largest


@njit(cache=True, nogil=True, inline="always")
def sgd_update(w, v, g, eta, momentum, nesterov):
    """One coordinate's momentum step: returns the new ``(w, v)``.

    ``v <- momentum v - eta g``; ``w += v`` (heavy ball) or
    ``w += momentum v - eta g`` (Nesterov).
    """
    v = momentum * v - eta * g
    return (w + momentum * v - eta * g if nesterov else w + v), v


@njit(cache=True, nogil=True, inline="always")
def adam_update(w, m, v, g, lr, beta_1, beta_2, epsilon):
    """One coordinate's Adam step at bias-corrected rate ``lr``: new ``(w, m, v)``
    and the step's scale ``lr / (sqrt(v) + epsilon)``."""
    m = beta_1 * m + (1.0 - beta_1) * g
    v = beta_2 * v + (1.0 - beta_2) * g * g
    # math, not numpy: the CUDA step kernel compiles this function too
    scale = lr / (math.sqrt(v) + epsilon)
    return w - scale * m, m, v, scale


@njit(cache=True, nogil=True, inline="always")
def adam_rate(eta, step, beta_1, beta_2):
    """Adam's bias-corrected rate for update number ``step + 1``."""
    t = step + 1.0
    return eta * np.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t)


@njit(cache=True, nogil=True)
def sgd_step(params, grad, velocity, eta, momentum, nesterov, n_coef, l1, shift,
             threshold):
    """Momentum SGD (:func:`sgd_update` on every coordinate), then the L1 prox.

    The prox's displacement is added to ``v`` so that momentum does not push
    thresholded coefficients back off zero.
    """
    for j in range(params.shape[0]):
        params[j], velocity[j] = sgd_update(params[j], velocity[j], grad[j], eta,
                                            momentum, nesterov)
    if l1 > 0.0:
        threshold[0] = l1 * eta
        soft_threshold(params, n_coef, threshold, False, shift)
        for j in range(n_coef):
            velocity[j] += shift[j]


@njit(cache=True, nogil=True)
def adam_step(params, grad, m, v, step, eta, beta_1, beta_2, epsilon, n_coef, l1,
              shift, threshold):
    """Adam with bias correction (update number ``step + 1``), then the L1 prox.

    The proximal step uses Adam's per-coordinate step size.
    """
    lr = adam_rate(eta, step, beta_1, beta_2)
    for j in range(params.shape[0]):
        params[j], m[j], v[j], scale = adam_update(params[j], m[j], v[j], grad[j], lr,
                                                   beta_1, beta_2, epsilon)
        if j < n_coef:
            threshold[j] = l1 * scale
    if l1 > 0.0:
        soft_threshold(params, n_coef, threshold, True, shift)


def take_step(moments, params, grad, step, eta, momentum, nesterov, beta_1,
              beta_2, epsilon, n_coef, l1, shift, threshold):
    """One update by the rule that ``moments`` belongs to (inside compiled code).

    ``moments`` is ``(velocity,)`` for SGD and ``(m, v)`` for Adam: the rule is
    chosen when the caller is compiled, so only the rule in use is compiled.
    """


@overload(take_step)
def _step_impl(moments, params, grad, step, eta, momentum, nesterov, beta_1, beta_2,
               epsilon, n_coef, l1, shift, threshold):
    if len(moments.types) == 1:
        def sgd(moments, params, grad, step, eta, momentum, nesterov, beta_1, beta_2,
                epsilon, n_coef, l1, shift, threshold):
            sgd_step(params, grad, moments[0], eta, momentum, nesterov, n_coef, l1,
                     shift, threshold)
        return sgd

    def adam(moments, params, grad, step, eta, momentum, nesterov, beta_1, beta_2,
             epsilon, n_coef, l1, shift, threshold):
        adam_step(params, grad, moments[0], moments[1], step, eta, beta_1, beta_2,
                  epsilon, n_coef, l1, shift, threshold)
    return adam
