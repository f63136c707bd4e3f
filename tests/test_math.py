"""The public math: exact values, stability, gradients and properties."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.sparse import csr_matrix
from scipy.special import expit, log_expit
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import softmax as sp_softmax

from sksoftmax import (
    cross_entropy,
    log_softmax,
    one_hot,
    softmax,
    softmax_cross_entropy,
)
from sksoftmax._math import linear_predictions

Z = np.array([2.1, 0.8, -0.5])


def naive_softmax(z, temperature=1.0):
    """Textbook formula with Python floats: the independent reference."""
    e = [math.exp(v / temperature) for v in z]
    return np.array([v / sum(e) for v in e])


# ----------------------------------------------------------------- softmax
def test_softmax_reference_values():
    p = softmax(Z)
    # the issue quotes 4-digit values; 0.0552 is 0.05515 rounded up
    assert_allclose(p, [0.7425, 0.2024, 0.0552], atol=1e-4)
    assert_allclose(p, naive_softmax(Z), rtol=1e-14)
    assert p.sum() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize(
    "temperature, approx",
    [(0.1, [0.9999977, 2.26e-06, 5.1e-12]), (5.0, [0.4227, 0.3259, 0.2513])],
)
def test_softmax_temperature(temperature, approx):
    p = softmax(Z, temperature=temperature)
    assert_allclose(p, naive_softmax(Z, temperature), rtol=1e-12)
    assert_allclose(p, softmax(Z / temperature), rtol=1e-14)
    assert_allclose(p, approx, rtol=2e-2)


def test_softmax_temperature_is_not_the_wrong_tutorial_table():
    # Published tables print these for T=0.1 and T=5; they are not softmax(z/T).
    assert not np.allclose(softmax(Z, temperature=0.1), [0.9999, 7.664e-05, 4.44e-07])
    assert not np.allclose(softmax(Z, temperature=5.0), [0.4026, 0.3196, 0.2778])


@pytest.mark.parametrize(
    "z, expected",
    [
        ([1000.0, 1000.0, 1000.0], [1 / 3, 1 / 3, 1 / 3]),
        ([1000.0, 0.0, 0.0], [1.0, 0.0, 0.0]),
        ([0.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]),
        ([-1000.0, -999.0, -998.0], naive_softmax([0.0, 1.0, 2.0])),
    ],
)
def test_softmax_extreme_logits_are_finite_and_exact(z, expected):
    p = softmax(np.array(z))
    assert np.all(np.isfinite(p))
    assert_allclose(p, expected, rtol=1e-14, atol=1e-300)


def test_softmax_of_two_logits_is_the_sigmoid():
    z = np.linspace(-30, 30, 61)
    p = softmax(np.column_stack([z, np.zeros_like(z)]), axis=1)
    assert_allclose(p[:, 0], expit(z), rtol=1e-13)


def test_softmax_axis_and_shape():
    rng = np.random.RandomState(0)
    z = rng.randn(3, 4, 5)
    for axis in range(3):
        p = softmax(z, axis=axis)
        assert p.shape == z.shape
        assert_allclose(p.sum(axis=axis), 1.0, rtol=1e-14)
        assert_allclose(np.moveaxis(p, axis, -1), softmax(np.moveaxis(z, axis, -1)))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_softmax_keeps_float_dtype(dtype):
    z = Z.astype(dtype)
    rtol = 10 * np.finfo(dtype).eps
    assert softmax(z).dtype == dtype
    assert_allclose(softmax(z), naive_softmax(z.astype(np.float64)), rtol=rtol)
    assert log_softmax(z).dtype == dtype
    assert_allclose(log_softmax(z), np.log(naive_softmax(z.astype(np.float64))),
                    rtol=rtol)
    assert softmax(z, temperature=3.0).dtype == dtype
    assert_allclose(softmax(z, temperature=3.0),
                    naive_softmax(z.astype(np.float64), 3.0), rtol=rtol)


def test_integer_input_is_promoted_and_caller_array_untouched():
    z = np.array([3, 1, 2])
    before = z.copy()
    p = softmax(z)
    assert p.dtype == np.float64
    assert_array_equal(z, before)
    assert_allclose(p, naive_softmax([3, 1, 2]))


@pytest.mark.parametrize("temperature", [0, -1.0, np.nan, np.inf, True, "2"])
def test_bad_temperature_is_a_value_error(temperature):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        softmax(Z, temperature=temperature)
    with pytest.raises(ValueError, match="temperature"):
        log_softmax(Z, temperature=temperature)
    with pytest.raises(ValueError, match="temperature"):
        softmax_cross_entropy(0, Z, temperature=temperature)


def test_non_numeric_input_is_a_type_error():
    # the messages name the argument (full matches: a wrong name must fail)
    with pytest.raises(TypeError, match=r"^z must be a real numeric array, got "
                                        r"dtype complex128\.$"):
        softmax(np.array([1 + 2j, 0]))
    with pytest.raises(TypeError, match=r"^z must be a real numeric array"):
        softmax(np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"^z must have at least one dimension\.$"):
        softmax(1.0)
    with pytest.raises(TypeError, match=r"^P must be a real numeric array"):
        cross_entropy([0], np.array(["a", "b"]))
    with pytest.raises(TypeError, match=r"^Z must be a real numeric array"):
        softmax_cross_entropy([0], np.array(["a", "b"]))
    with pytest.raises(TypeError, match=r"^Y must be a real numeric array"):
        softmax_cross_entropy(np.array([["a", "b"]]), np.zeros((1, 2)))


# ------------------------------------------------------------- log_softmax
def test_log_softmax_stays_finite_where_log_of_softmax_does_not():
    z = np.array([0.0, -1000.0])
    with np.errstate(divide="ignore"):
        assert np.isneginf(np.log(softmax(z))[1])
    assert_allclose(log_softmax(z), [0.0, -1000.0], rtol=1e-15)


def test_log_softmax_matches_log_of_softmax():
    rng = np.random.RandomState(1)
    z = rng.randn(6, 4) * 3
    assert_allclose(
        log_softmax(z, temperature=0.7),
        np.log(softmax(z, temperature=0.7)),
        rtol=1e-12,
        atol=1e-15,
    )


# ----------------------------------------------------------------- one_hot
def test_one_hot_values():
    assert_array_equal(one_hot([0, 2, 1]), np.eye(3)[[0, 2, 1]])
    Y = one_hot(np.array([1, 1]), n_classes=4, dtype=np.float32)
    assert Y.dtype == np.float32
    assert_array_equal(Y, [[0, 1, 0, 0], [0, 1, 0, 0]])
    assert_array_equal(one_hot(np.array([0.0, 2.0])), [[1, 0, 0], [0, 0, 1]])
    assert one_hot(np.array([], dtype=int), n_classes=2).shape == (0, 2)
    # no labels and no n_classes: no columns
    assert one_hot(np.array([], dtype=int)).shape == (0, 0)


@pytest.mark.parametrize(
    "y, n_classes, match",
    [
        ([0, -1, 2], None, "labels >= 0"),
        ([0.5, 1.0], None, "non-integers"),
        ([0, np.nan], None, "non-integers"),
        ([0, 3], 3, r"^y holds label 3, out of range for n_classes=3 \(labels "
                    r"must be in 0\.\.2\)\.$"),
        ([[0, 1]], None, "^y must be a 1-D array"),
        (["a", "b"], None, "^y must hold integer class labels"),
        ([True, False], None, "integer class labels"),
        (np.array([], dtype=bool), None, "^y must hold integer class labels, got "
                                         "dtype bool"),
        ([0, 1], 0, "n_classes must be a positive integer"),
        ([0, 1], 2.5, "n_classes must be a positive integer"),
    ],
)
def test_one_hot_errors(y, n_classes, match):
    with pytest.raises(ValueError, match=match):
        one_hot(np.asarray(y), n_classes=n_classes)


# ----------------------------------------------------------- cross_entropy
def test_cross_entropy_reference_values():
    assert cross_entropy([0], [[1.0, 0.0, 0.0]]) == pytest.approx(0.0, abs=1e-15)
    assert cross_entropy([1], [[0.99, 0.01]]) == pytest.approx(-math.log(0.01))
    assert cross_entropy([1], [[0.99, 0.01]]) == pytest.approx(4.6, abs=0.01)
    assert cross_entropy([2], [[1 / 3] * 3]) == pytest.approx(math.log(3), rel=1e-14)
    # a zero probability on the true class is clipped to eps, not inf
    assert cross_entropy([1], [[1.0, 0.0]]) == pytest.approx(-math.log(1e-15))
    assert cross_entropy([1], [[1.0, 0.0]], eps=1e-3) == pytest.approx(-math.log(1e-3))
    # and a probability above 1 is clipped to 1: no negative loss
    assert cross_entropy([0], [[2.0, 0.0]]) == 0.0


def test_losses_accumulate_in_float64():
    # float32 probabilities and logits: the terms of a row are summed in float64
    # (1000 classes: a float32 sum would be off by ~1e-5 relative)
    rng = np.random.RandomState(5)
    Y = rng.dirichlet(np.ones(1000), size=3).astype(np.float32)
    Zs = rng.randn(3, 1000).astype(np.float32) * 3
    P = softmax(Zs, axis=1)
    terms = (Y * np.log(P)).astype(np.float64)
    assert cross_entropy(Y, P) == pytest.approx(-terms.sum(axis=1).mean(), rel=1e-12)
    loss, _ = softmax_cross_entropy(Y, Zs, reduction="none")
    terms = (Y * log_softmax(Zs, axis=1)).astype(np.float64)
    assert_array_equal(loss, (-terms.sum(axis=1)).astype(np.float32))


def test_cross_entropy_label_forms_agree():
    P = softmax(np.random.RandomState(2).randn(5, 3))
    y = np.array([0, 2, 1, 1, 0])
    expected = -np.mean(np.log(P[np.arange(5), y]))
    assert cross_entropy(y, P) == pytest.approx(expected, rel=1e-14)
    assert cross_entropy(one_hot(y, 3), P) == pytest.approx(expected, rel=1e-14)
    # one row: a scalar label or a target row
    assert cross_entropy(2, P[1]) == pytest.approx(-math.log(P[1, 2]))
    assert cross_entropy([0, 0, 1], P[1]) == pytest.approx(-math.log(P[1, 2]))
    soft = np.array([[0.5, 0.5, 0.0]])
    assert cross_entropy(soft, P[:1]) == pytest.approx(
        -0.5 * (math.log(P[0, 0]) + math.log(P[0, 1])))


def test_cross_entropy_errors():
    P = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        cross_entropy(np.ones((2, 2)), P)
    with pytest.raises(ValueError, match="out of range"):
        cross_entropy([0, 3], P)
    for eps in (0, 1, 1.5, -0.5):
        with pytest.raises(ValueError, match="eps must be in"):
            cross_entropy([0, 1], P, eps=eps)
    with pytest.raises(ValueError, match=r"^Y must be integer labels of shape"):
        cross_entropy(np.ones((2, 2)), P)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        cross_entropy([0], np.ones((1, 1, 3)))


# --------------------------------------------------- softmax_cross_entropy
def test_softmax_cross_entropy_reference_values():
    loss, dZ = softmax_cross_entropy(0, Z)
    # the issue quotes 0.2979; -log(0.742498) is 0.29773
    assert float(loss) == pytest.approx(0.2979, abs=3e-4)
    assert float(loss) == pytest.approx(-math.log(naive_softmax(Z)[0]), rel=1e-14)
    assert_allclose(dZ, [-0.2575, 0.2024, 0.0552], atol=1e-4)
    assert dZ.sum() == pytest.approx(0.0, abs=1e-15)


def test_softmax_cross_entropy_no_overflow_for_huge_logits():
    loss, dZ = softmax_cross_entropy([1], np.array([[1e4, -1e4]]))
    assert float(loss) == pytest.approx(2e4, rel=1e-15)
    assert_allclose(dZ, [[1.0, -1.0]])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_softmax_cross_entropy_reductions(reduction):
    rng = np.random.RandomState(3)
    Zm = rng.randn(4, 3)
    y = np.array([0, 1, 2, 1])
    T = 2.0
    loss, dZ = softmax_cross_entropy(y, Zm, temperature=T, reduction=reduction)
    per_row = -log_softmax(Zm, temperature=T)[np.arange(4), y]
    grad = (softmax(Zm / T) - one_hot(y, 3)) / T
    expected = {"mean": (per_row.mean(), grad / 4), "sum": (per_row.sum(), grad),
                "none": (per_row, grad)}[reduction]
    assert_allclose(loss, expected[0], rtol=1e-13)
    assert_allclose(dZ, expected[1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("soft", [False, True])
def test_softmax_cross_entropy_gradient_matches_central_differences(temperature, soft):
    rng = np.random.RandomState(4)
    Zm = rng.randn(3, 4)
    Y = rng.dirichlet(np.ones(4), size=3) if soft else np.array([3, 0, 2])
    _, dZ = softmax_cross_entropy(Y, Zm, temperature=temperature, reduction="sum")
    h = 1e-6
    numeric = np.zeros_like(Zm)
    for idx in np.ndindex(Zm.shape):
        e = np.zeros_like(Zm)
        e[idx] = h
        up, _ = softmax_cross_entropy(
            Y, Zm + e, temperature=temperature, reduction="sum"
        )
        down, _ = softmax_cross_entropy(Y, Zm - e, temperature=temperature,
                                        reduction="sum")
        numeric[idx] = (up - down) / (2 * h)
    assert_allclose(dZ, numeric, rtol=1e-5, atol=1e-9)


def test_softmax_cross_entropy_general_targets_gradient():
    # Targets whose rows do not sum to one: dZ = softmax * sum(Y) - Y.
    Y = np.array([[2.0, 0.0, 1.0]])
    loss, dZ = softmax_cross_entropy(Y, Z[np.newaxis], reduction="sum")
    assert_allclose(dZ, softmax(Z)[np.newaxis] * 3 - Y, rtol=1e-14)
    assert float(loss) == pytest.approx(-(2 * log_softmax(Z)[0] + log_softmax(Z)[2]))


def test_softmax_cross_entropy_errors_and_dtype():
    with pytest.raises(ValueError, match="reduction must be one of"):
        softmax_cross_entropy([0], np.zeros((1, 2)), reduction="avg")
    with pytest.raises(ValueError, match="labels of shape"):
        softmax_cross_entropy(np.ones((2, 2)), np.zeros((2, 3)))
    loss, dZ = softmax_cross_entropy([0, 1], np.zeros((2, 3), dtype=np.float32))
    assert dZ.dtype == np.float32
    assert loss.dtype == np.float32
    assert float(loss) == pytest.approx(math.log(3), rel=1e-6)
    # one row: a scalar loss per reduction, and dZ of the row's shape
    for reduction in ("mean", "sum", "none"):
        loss, dZ = softmax_cross_entropy(1, np.array([0.0, 0.0, 0.0], np.float32),
                                         reduction=reduction)
        assert np.ndim(loss) == 0
        assert loss.dtype == np.float32
        assert float(loss) == pytest.approx(math.log(3), rel=1e-6)
        assert_allclose(dZ, [1 / 3, -2 / 3, 1 / 3], rtol=1e-6)
    losses, _ = softmax_cross_entropy([0, 2], np.log([[0.5, 0.25, 0.25]] * 2),
                                      reduction="none")
    assert losses.dtype == np.float64
    assert_allclose(losses, [math.log(2), math.log(4)], rtol=1e-14)


# -------------------------------------------------------------- properties
def logits(dtype, max_magnitude):
    return hnp.arrays(
        dtype=dtype,
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
        elements=st.floats(-float(dtype(max_magnitude)), float(dtype(max_magnitude)),
                           allow_nan=False,
                           width=np.dtype(dtype).itemsize * 8),
    )


@st.composite
def logits_any_dtype(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    magnitude = draw(st.sampled_from([1.0, 1e3, 1e30]))
    return draw(logits(dtype, magnitude))


@settings(max_examples=150, deadline=None)
@given(z=logits_any_dtype())
def test_softmax_properties(z):
    z_before = z.copy()
    p = softmax(z, axis=1)
    tol = 10 * np.finfo(z.dtype).eps * z.shape[1]
    assert p.dtype == z.dtype
    assert np.all(np.isfinite(p))
    assert np.all(p >= 0)
    assert np.all(p <= 1)
    assert_allclose(p.sum(axis=1), 1.0, atol=tol)
    # the largest logit gets the largest probability, and order is kept
    for row_z, row_p in zip(z, p, strict=True):
        order = np.argsort(row_z, kind="stable")
        assert np.all(np.diff(row_p[order]) >= 0)
        assert row_p[np.argmax(row_z)] == row_p.max()
    log_p = log_softmax(z, axis=1)
    assert np.all(np.isfinite(log_p))
    assert np.all(log_p <= 0)
    big = p > 1e-30
    assert_allclose(np.exp(log_p[big]), p[big], rtol=100 * np.finfo(z.dtype).eps)
    assert_array_equal(z, z_before)


@settings(max_examples=100, deadline=None)
@given(z=logits(np.float64, 50.0), shift=st.floats(-1e3, 1e3))
def test_softmax_shift_invariance(z, shift):
    assert_allclose(softmax(z + shift, axis=1), softmax(z, axis=1), rtol=1e-9,
                    atol=1e-300)


@settings(max_examples=100, deadline=None)
@given(z=logits_any_dtype(), data=st.data())
def test_softmax_cross_entropy_properties(z, data):
    y = np.array(data.draw(st.lists(st.integers(0, z.shape[1] - 1), min_size=z.shape[0],
                                    max_size=z.shape[0])))
    loss, dZ = softmax_cross_entropy(y, z, reduction="none")
    assert np.all(np.isfinite(loss))
    assert np.all(loss >= 0)
    assert np.all(np.isfinite(dZ))
    # each gradient row is p - onehot: sums to zero, one negative entry at y
    assert_allclose(dZ.sum(axis=1), 0.0, atol=10 * np.finfo(z.dtype).eps * z.shape[1])
    assert np.all(dZ[np.arange(len(y)), y] <= 0)
    # loss equals -log_softmax at the label, in float64 for the comparison
    ref = -log_softmax(z.astype(np.float64), axis=1)[np.arange(len(y)), y]
    assert_allclose(
        loss.astype(np.float64), ref, rtol=1e-5, atol=1e-5 * (1 + ref.max())
    )


# ------------------------------------------------------ linear_predictions
@pytest.mark.parametrize("sparse", [False, True])
def test_linear_predictions_against_scipy(sparse):
    rng = np.random.RandomState(6)
    X = rng.randn(5, 4)
    Xin = csr_matrix(X) if sparse else X
    classes = np.array(["a", "b", "c"])
    coef, intercept = rng.randn(3, 4), rng.randn(3)
    logits = X @ coef.T + intercept
    assert_allclose(linear_predictions("decision_function", Xin, coef, intercept,
                                       classes), logits, rtol=1e-14)
    assert_array_equal(linear_predictions("predict", Xin, coef, intercept, classes),
                       classes[np.argmax(logits, axis=1)])
    assert_allclose(linear_predictions("predict_proba", Xin, coef, intercept,
                                       classes), sp_softmax(logits, axis=1),
                    rtol=1e-13)
    assert_allclose(linear_predictions("predict_log_proba", Xin, coef, intercept,
                                       classes), sp_log_softmax(logits, axis=1),
                    rtol=1e-13)
    # binary: one row of coef, the logit of the second class against zero
    d = X @ coef[:1].T.ravel() + intercept[0]
    binary = (coef[:1], intercept[:1], classes[:2])
    assert_allclose(linear_predictions("decision_function", Xin, *binary), d,
                    rtol=1e-14)
    assert_array_equal(linear_predictions("predict", Xin, *binary),
                       np.where(d > 0, "b", "a"))
    assert_allclose(linear_predictions("predict_proba", Xin, *binary),
                    np.column_stack([1 - expit(d), expit(d)]), rtol=1e-13)
    assert_allclose(linear_predictions("predict_log_proba", Xin, *binary),
                    np.column_stack([log_expit(-d), log_expit(d)]), rtol=1e-13)
