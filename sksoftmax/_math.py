"""Numerically stable softmax math in NumPy.

These public functions are the reference that the Numba kernels are tested
against. Every function works in the floating dtype of its input (integer and
boolean input is promoted to float64) and never modifies its arguments.
"""

import numbers

import numpy as np

__all__ = [
    "softmax",
    "log_softmax",
    "one_hot",
    "cross_entropy",
    "softmax_cross_entropy",
]


def _as_float_array(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":  # complex ("c") included
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}.")
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    return a


def _check_temperature(temperature):
    if (
        not isinstance(temperature, numbers.Real)
        or isinstance(temperature, bool)
        or not np.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature!r}."
        )
    return float(temperature)


def _scaled_shifted(z, axis, temperature):
    """Return (z - max(z)) / T along ``axis``: the largest entry becomes 0."""
    z = _as_float_array(z, "z")
    if z.ndim == 0:
        raise ValueError("z must have at least one dimension.")
    temperature = _check_temperature(temperature)
    # Shift before scaling so that large logits never overflow in the division.
    shifted = z - np.max(z, axis=axis, keepdims=True)
    if temperature != 1.0:
        shifted = shifted / z.dtype.type(temperature)
    return shifted


def softmax(z, axis=-1, temperature=1.0):
    """Softmax of ``z / temperature`` along one axis.

    Computed as ``exp(z - max(z)) / sum(exp(z - max(z)))``, which never
    overflows: the largest entry of every slice maps to ``exp(0) = 1``.

    Parameters
    ----------
    z : array_like of shape (..., K)
        Logits. Float input keeps its dtype; integers are promoted to float64.
    axis : int, default=-1
        Axis along which the probabilities sum to one.
    temperature : float, default=1.0
        Strictly positive temperature ``T``; the result is ``softmax(z / T)``.

    Returns
    -------
    p : ndarray of the same shape as ``z``
        Probabilities, positive (unless they underflow) and summing to one.

    Raises
    ------
    ValueError
        If ``temperature`` is not a finite positive number or ``z`` is 0-d.

    Examples
    --------
    >>> import numpy as np
    >>> from sksoftmax import softmax
    >>> softmax(np.array([1000.0, 1000.0, 1000.0]))
    array([0.33333333, 0.33333333, 0.33333333])
    >>> softmax([2.1, 0.8, -0.5]).round(4)
    array([0.7425, 0.2024, 0.0551])
    """
    e = np.exp(_scaled_shifted(z, axis, temperature))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z, axis=-1, temperature=1.0):
    """Logarithm of :func:`softmax`, computed by the log-sum-exp trick.

    ``log_softmax(z) = (z - m) - log(sum(exp(z - m)))`` with ``m = max(z)``;
    it stays finite where ``log(softmax(z))`` would return ``-inf``.

    Parameters
    ----------
    z : array_like of shape (..., K)
        Logits. Float input keeps its dtype; integers are promoted to float64.
    axis : int, default=-1
        Axis along which the probabilities are normalised.
    temperature : float, default=1.0
        Strictly positive temperature ``T``; the result is
        ``log_softmax(z / T)``.

    Returns
    -------
    log_p : ndarray of the same shape as ``z``
        Log-probabilities, all ``<= 0``.

    Examples
    --------
    >>> from sksoftmax import log_softmax
    >>> log_softmax([0.0, -1000.0])
    array([    0., -1000.])
    """
    shifted = _scaled_shifted(z, axis, temperature)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def one_hot(y, n_classes=None, dtype=np.float64):
    """One-hot encode integer class labels into an (n_samples, n_classes) array.

    Labels must lie in ``0 .. n_classes - 1``.

    Parameters
    ----------
    y : array_like of shape (n_samples,)
        Integer class labels. Floats are accepted only when integral.
    n_classes : int, default=None
        Number of columns ``K``. Defaults to ``max(y) + 1``.
    dtype : dtype, default=np.float64
        Dtype of the result.

    Returns
    -------
    Y : ndarray of shape (n_samples, n_classes)
        ``Y[i, y[i]] = 1`` and 0 elsewhere.

    Raises
    ------
    ValueError
        If ``y`` is not 1-D, holds negative, non-integer or out-of-range
        labels, or ``n_classes`` is not a positive integer.

    Examples
    --------
    >>> from sksoftmax import one_hot
    >>> one_hot([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]])
    """
    labels = _integer_labels(y, "y")
    if n_classes is None:
        n_classes = int(labels.max()) + 1 if labels.size else 0
    elif (
        not isinstance(n_classes, numbers.Integral)
        or isinstance(n_classes, bool)
        or n_classes < 1
    ):
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}.")
    n_classes = int(n_classes)
    if labels.size and labels.max() >= n_classes:
        raise ValueError(
            f"y holds label {int(labels.max())}, out of range for "
            f"n_classes={n_classes} (labels must be in 0..{n_classes - 1})."
        )
    Y = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    Y[np.arange(labels.shape[0]), labels] = 1
    return Y


def _integer_labels(y, name):
    """Validate integer labels >= 0 and return them as an intp array."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {y.shape}.")
    if y.dtype.kind == "b" or (y.dtype.kind not in "iuf" and y.size):
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}.")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(
                f"{name} must hold integer class labels, got non-integers.")
    if y.size and y.min() < 0:
        raise ValueError(f"{name} must hold labels >= 0, got {y.min()!r}.")
    return y.astype(np.intp)


def _targets(Y, n_rows, n_classes, dtype, name):
    """Turn labels (n,) or targets (n, K) into a dense (n, K) target array."""
    Y = np.asarray(Y)
    if Y.ndim == 1 and n_rows is not None and Y.shape[0] == n_rows:
        return one_hot(Y, n_classes=n_classes, dtype=dtype)
    Y = _as_float_array(Y, name)
    if Y.ndim != 2 or Y.shape != (n_rows, n_classes):
        raise ValueError(
            f"{name} must be integer labels of shape ({n_rows},) or targets of "
            f"shape ({n_rows}, {n_classes}), got shape {Y.shape}."
        )
    return Y


def _rows_2d(a, name):
    """View a 1-D row as (1, K); reject anything that is not 1-D or 2-D."""
    a = _as_float_array(a, name)
    if a.ndim == 1:
        return a[np.newaxis, :], True
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got {a.ndim} dimensions.")
    return a, False


def _targets_for(Y, scores, was_1d):
    """Targets matching ``scores`` (n, K); a 1-D score row takes a label or a row."""
    if was_1d:
        Y = np.asarray(Y)
        Y = Y.reshape(1) if Y.ndim == 0 else Y[np.newaxis, :]
    return _targets(Y, scores.shape[0], scores.shape[1], scores.dtype, "Y")


def cross_entropy(Y, P, *, eps=1e-15):
    """Mean cross-entropy ``-mean_i sum_k Y[i, k] log P[i, k]`` of probabilities.

    Parameters
    ----------
    Y : array_like of shape (n_samples,) or (n_samples, K)
        Integer labels, or one-hot / soft targets. With a 1-D ``P``, a single
        label or a target row of length ``K``.
    P : array_like of shape (n_samples, K) or (K,)
        Predicted probabilities.
    eps : float, default=1e-15
        ``P`` is clipped to ``[eps, 1]`` so that a zero probability gives a
        large finite loss, not ``inf``.

    Returns
    -------
    loss : float
        Mean over samples of the cross-entropy.

    Raises
    ------
    ValueError
        If the shapes of ``Y`` and ``P`` do not match, labels are out of range,
        or ``eps`` is not in ``(0, 1)``.

    Examples
    --------
    >>> from sksoftmax import cross_entropy
    >>> round(cross_entropy([0], [[1/3, 1/3, 1/3]]), 6)  # log(3)
    1.098612
    """
    if not isinstance(eps, numbers.Real) or not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps!r}.")
    P, was_1d = _rows_2d(P, "P")
    Y = _targets_for(Y, P, was_1d)
    logP = np.log(np.clip(P, eps, 1.0))
    # Only non-zero targets contribute, so 0 * log(eps) never matters.
    per_row = -np.sum(np.where(Y != 0, Y * logP, 0.0), axis=1, dtype=np.float64)
    return float(np.mean(per_row))


_REDUCTIONS = ("mean", "sum", "none")


def softmax_cross_entropy(Y, Z, *, temperature=1.0, reduction="mean"):
    """Cross-entropy of ``softmax(Z / T)`` against ``Y`` and its gradient in ``Z``.

    The loss of row ``i`` is ``-sum_k Y[i, k] log_softmax(Z[i] / T)_k``, formed
    by log-sum-exp (never ``log(softmax)``), so it stays finite for any finite
    logits. Its gradient is
    ``dZ[i] = (softmax(Z[i] / T) * sum_k Y[i, k] - Y[i]) / T``, which is the
    familiar ``(softmax(Z / T) - Y) / T`` for labels and for targets whose rows
    sum to one.

    Parameters
    ----------
    Y : array_like of shape (n_samples,) or (n_samples, K)
        Integer labels, or one-hot / soft targets. With a 1-D ``Z``, a single
        label or a target row of length ``K``.
    Z : array_like of shape (n_samples, K) or (K,)
        Logits. Float input keeps its dtype.
    temperature : float, default=1.0
        Strictly positive temperature ``T``.
    reduction : {"mean", "sum", "none"}, default="mean"
        ``"mean"`` averages the loss over rows and divides ``dZ`` by
        ``n_samples``; ``"sum"`` adds the rows; ``"none"`` returns the loss of
        each row.

    Returns
    -------
    loss : float or ndarray of shape (n_samples,)
        The reduced loss (an array for ``reduction="none"``).
    dZ : ndarray of the same shape as ``Z``
        Gradient of the returned (reduced) loss with respect to ``Z``.

    Examples
    --------
    >>> from sksoftmax import softmax_cross_entropy
    >>> loss, dZ = softmax_cross_entropy(0, [2.1, 0.8, -0.5])
    >>> round(float(loss), 4), dZ.round(4)
    (0.2977, array([-0.2575,  0.2024,  0.0551]))
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {_REDUCTIONS}, got {reduction!r}."
        )
    Z, was_1d = _rows_2d(Z, "Z")
    Y = _targets_for(Y, Z, was_1d)
    dtype = Z.dtype
    temperature = _check_temperature(temperature)
    log_p = log_softmax(Z, axis=1, temperature=temperature)
    y_mass = np.sum(Y, axis=1, keepdims=True)
    loss = -np.sum(np.where(Y != 0, Y * log_p, 0.0), axis=1, dtype=np.float64)
    dZ = (np.exp(log_p) * y_mass - Y).astype(dtype, copy=False) / dtype.type(
        temperature
    )
    if reduction == "mean":
        loss = loss.mean()
        dZ = dZ / dtype.type(Z.shape[0])
    elif reduction == "sum":
        loss = loss.sum()
    if was_1d:
        dZ = dZ[0]
        if reduction == "none":
            loss = loss[0]
    return dtype.type(loss), dZ  # a scalar or an array, in Z's dtype


def linear_predictions(method, X, coef, intercept, classes):
    """A linear softmax model's ``method`` output for validated ``X``.

    ``method`` is ``"decision_function"`` (one logit per class, or the
    positive class's alone with a single row of ``coef``), ``"predict"``,
    ``"predict_proba"`` or ``"predict_log_proba"``. ``X`` is a float array or
    a scipy sparse matrix; the estimator and the dask chunks share this.
    """
    scores = np.asarray(X @ coef.T) + intercept
    if method == "decision_function":
        return scores.ravel() if scores.shape[1] == 1 else scores
    if scores.shape[1] == 1:  # the zero logit of class 0
        scores = np.column_stack([np.zeros_like(scores), scores])
    if method == "predict":
        return classes[np.argmax(scores, axis=1)]
    if method == "predict_proba":
        return softmax(scores, axis=1)
    return log_softmax(scores, axis=1)
