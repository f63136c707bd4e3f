"""Parameter layout, penalty and the loss-and-gradient that every solver calls.

The objective minimised by every solver is::

    (1 / sum(s)) * sum_i s_i * CE(softmax(W x_i + b), t_i)
        + alpha * ((1 - l1_ratio) / 2 * ||W||_2^2 + l1_ratio * ||W||_1)

with ``s`` the sample weights (times class weights) and ``t_i`` the
label-smoothed target of sample ``i``. The intercept ``b`` is not penalised.
:class:`SoftmaxObjective` knows the parameter layout (coefficients and
intercept flattened into one float64 vector, the single-logit form for two
classes) and turns the kernels' weighted sums into this objective. It knows
nothing about solvers and nothing about scikit-learn.
"""

import contextlib

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from sklearn.utils import compute_class_weight
from sklearn.utils.extmath import randomized_svd

from ._kernels import (
    BLOCK_ROWS,
    TransposedCSR,
    Workspace,
    finish_coef_gradient,
    lazy_csr_adam_epoch,
    lazy_csr_sgd_epoch,
    load_coef_t,
    loss_gradient_sums,
    max_weighted_csr_row_square,
    max_weighted_row_square,
    minibatch_epoch,
    n_chunks_for,
    variance_reduced_epoch,
    weighted_column_moments,
    weighted_csr_column_squares,
)
from ._math import softmax
from ._parallel import chunk_map, serial_map
from ._steps import SCHEDULES, min_norm_subgradient


def class_weights(class_weight, classes, y, sample_weight):
    """Weight of each class (None without ``class_weight``), as
    :class:`~sklearn.linear_model.LogisticRegression` takes ``class_weight``.

    ``y`` and ``sample_weight`` only matter for ``"balanced"``, which counts
    each sample by its weight (weighting a sample by k stays the same as
    repeating it k times): they may be the classes themselves, weighted by
    each class's total weight.
    """
    if class_weight is None:
        return None
    weights = compute_class_weight(
        class_weight, classes=classes, y=y,
        sample_weight=sample_weight if class_weight == "balanced" else None)
    bad = ~np.isfinite(weights) | (weights < 0)
    if np.any(bad):
        given = dict(zip(classes[bad].tolist(), weights[bad].tolist(), strict=True))
        raise ValueError("class_weight must give every class a finite, "
                         f"non-negative weight; got {given}.")
    return weights


def check_weight_per_class(weight_per_class):
    """Fitting needs positive weight on at least two classes."""
    if np.count_nonzero(weight_per_class) < 2:
        raise ValueError(
            "The sample weights (times class weights) leave positive weight on "
            f"fewer than 2 classes (weight per class: {weight_per_class}); "
            "fitting needs samples of at least 2 classes.")


def some_rows(rows, n):
    """At most ``n`` of ``rows``, in order; the same ones at every call."""
    if rows.shape[0] <= n:
        return rows
    pick = np.random.default_rng(0).choice(rows.shape[0], n, replace=False)
    return rows[np.sort(pick)]


def _weighted_rows(X, root_w, intercept):
    """float64 rows ``sqrt(w_i) (x_i, intercept)`` (no column when ``intercept``
    is None): their Gram matrix is ``sum_i w_i x~_i x~_i^T``."""
    if sp.issparse(X):
        A = sp.diags(root_w) @ X.astype(np.float64)
        if intercept is not None:
            A = sp.hstack([A, sp.csr_matrix(intercept * root_w[:, None])],
                          format="csr")
        return A
    A = np.empty((X.shape[0], X.shape[1] + (intercept is not None)))
    with np.errstate(over="ignore"):
        np.multiply(root_w[:, None], X, out=A[:, :X.shape[1]])
    if intercept is not None:
        A[:, -1] = intercept * root_w
    return A


# feature_curvature: the features' second moment exactly up to this many
# features (eigh of a d x d Gram: ~0.3 s at 1024 on 2 cores), above it the
# top _FEATURE_RANK eigenpairs by a randomized SVD.
_EXACT_FEATURE_FACTOR = 1024
_FEATURE_RANK = 256
# rows feature_curvature samples (the dask objective gathers as many)
FEATURE_SAMPLE_ROWS = 4096
# in_float64: the largest float64 copy of float32 X made to finish a fit on
FLOAT64_COPY_MAX_BYTES = 2**30


def _top_eigenvalue(A, seed):
    """The top eigenvalue of ``A^T A`` by Lanczos (``svds``); inf on overflow."""
    if not np.all(np.isfinite(A.data if sp.issparse(A) else A)):
        return np.inf
    if min(A.shape) < 3:
        dense = A.toarray() if sp.issparse(A) else A
        return float(np.linalg.norm(dense, 2)) ** 2
    return float(svds(A, k=1, return_singular_vectors=False,
                      random_state=seed)[0]) ** 2


def _max_row_square(X, w, extra, center=None):
    """``max_i w_i (||x_i - center||^2 + extra)`` (dense X only has a centre)."""
    if sp.issparse(X):
        return max_weighted_csr_row_square(X.data, X.indptr, w, extra)
    return max_weighted_row_square(X, w, extra,
                                   np.empty(0) if center is None else center)


def _top_gram_eigenvalue(gram):
    """The top eigenvalue of a symmetric matrix; inf when it is not finite."""
    return float(np.linalg.eigvalsh(gram)[-1]) if np.all(np.isfinite(gram)) \
        else np.inf


class ParameterLayout:
    """The objective's parameters and penalty, wherever the data lives.

    The flat float64 parameter vector holds the coefficients (n_logits,
    n_features), row-major, then the intercepts when there are any; with two
    classes there is a single logit (exactly binary logistic regression).
    Subclasses add the data: :class:`SoftmaxObjective` in memory,
    ``sksoftmax._dask.DaskObjective`` on a dask cluster. Both reduce the
    data to the same weighted sums, which :meth:`finish` turns into the
    objective.

    With a ``center`` (``None`` here; see :class:`SoftmaxObjective`) the
    flat vector holds centred coordinates ``(W, c)`` of the model ``W x +
    (c - W center)``: :meth:`model` and :meth:`init_params` convert.

    Parameters
    ----------
    n_features : int
    n_classes : int
        Number of classes ``K >= 2``.
    fit_intercept : bool
    alpha, l1_ratio, label_smoothing : float
        As in :class:`SoftmaxObjective`.
    """

    center = None

    def __init__(self, n_features, n_classes, *, fit_intercept=True, alpha=0.0,
                 l1_ratio=0.0, label_smoothing=0.0):
        self.n_classes = int(n_classes)
        self.binary = self.n_classes == 2
        self.n_logits = 1 if self.binary else self.n_classes
        self.n_features = int(n_features)
        self.fit_intercept = fit_intercept
        self.alpha = float(alpha)
        self.l1_ratio = float(l1_ratio)
        self.label_smoothing = float(label_smoothing)

    @property
    def n_params(self):
        return self.n_logits * (self.n_features + self.fit_intercept)

    @property
    def logit_curvature(self):
        """Bound on the norm of the cross-entropy's Hessian in the logits:
        1/2, or 1/4 in the single-logit binary form."""
        return 0.25 if self.binary else 0.5

    @property
    def uniform_curvature(self):
        """``p (1 - p)`` at equal class probabilities (``p = 1/K``, ``1/2`` in
        the single-logit binary form): the diagonal of the cross-entropy's
        Hessian in the logits where a fit from zero starts."""
        p = 0.5 if self.binary else 1.0 / self.n_classes
        return p * (1.0 - p)

    def init_params(self, coef=None, intercept=None):
        """Flat float64 parameter vector, zeros or from a model's coef/intercept."""
        params = np.zeros(self.n_params)
        if coef is not None:
            coef_view, intercept_view = self.unpack(params)
            coef_view[:] = coef
            if self.fit_intercept and intercept is not None:
                intercept_view[:] = intercept
            if self.center is not None:
                intercept_view += coef_view @ self.center
        return params

    def model(self, params):
        """The model's ``(coef, intercept)`` (new float64 arrays) from a flat
        parameter vector: :meth:`unpack`, the centring undone."""
        coef, intercept = self.unpack(self.model_vector(params))
        return coef, np.array(intercept, dtype=float)

    def model_vector(self, params):
        """A flat parameter vector in the model's own (uncentred) coordinates:
        ``params`` itself without a centre, else a new vector."""
        if self.center is None:
            return params
        model = params.copy()
        coef, intercept = self.unpack(model)
        intercept -= coef @ self.center
        return model

    def centre_gradient(self, gradient):
        """Turn a gradient in the model's coordinates into the centred
        coordinates' (in place): the chain rule through ``c - W center``."""
        if self.center is not None:
            coef, intercept = self.unpack(gradient)
            coef -= np.outer(intercept, self.center)

    def unpack(self, params):
        """Views ``(coef, intercept)`` into a flat parameter vector.

        ``intercept`` is a zero array (not a view) without an intercept.
        """
        n_coef = self.n_logits * self.n_features
        coef = params[:n_coef].reshape(self.n_logits, self.n_features)
        if self.fit_intercept:
            intercept = params[n_coef:]
        else:
            intercept = np.zeros(self.n_logits, dtype=params.dtype)
        return coef, intercept

    def l2_strength(self):
        return self.alpha * (1.0 - self.l1_ratio)

    def l1_strength(self):
        return self.alpha * self.l1_ratio

    def l1_weights(self):
        """The L1 part as per-parameter weights (the strength on the
        coefficients, 0 on the intercepts), or None without one: the form
        OWL-QN and :meth:`optimality` take."""
        strength = self.l1_strength()
        if not strength:
            return None
        weights = np.zeros(self.n_params)
        weights[:self.n_logits * self.n_features] = strength
        return weights

    def finish(self, loss_sum, grad_sum, params, weight_sum, out):
        """The smooth part of the objective and its gradient, from the data's
        weighted sums.

        Parameters
        ----------
        loss_sum : float
            ``sum_i s_i CE_i``.
        grad_sum : ndarray of shape (n_params,)
            Its gradient, in the flat layout.
        params : ndarray of shape (n_params,)
        weight_sum : float
            ``sum_i s_i``.
        out : ndarray of shape (n_params,)
            Receives the gradient (may be ``grad_sum``).

        Returns
        -------
        loss : float
        """
        np.multiply(grad_sum, 1.0 / weight_sum, out=out)
        l2 = self.l2_strength()
        loss = loss_sum / weight_sum
        if l2:
            coef, _ = self.unpack(params)
            grad_coef, _ = self.unpack(out)
            # Overflow here means divergence, which the solvers report.
            with np.errstate(over="ignore", invalid="ignore"):
                grad_coef += l2 * coef
                loss += 0.5 * l2 * float(np.dot(coef.ravel(), coef.ravel()))
        return loss

    def curvature_from(self, squares, weight_sum):
        """The Hessian's diagonal at equal probabilities from the weighted
        column sums of squares ``sum_i s_i x_ij^2`` (see
        :meth:`SoftmaxObjective.curvature_estimate`); with a centre, of the
        centred columns, ``sum_i s_i (x_ij - center_j)^2``."""
        if self.center is not None:
            # overflowing columns give a non-finite entry (no estimate: the
            # preconditioner keeps scale 1) or the penalty alone; the fit
            # itself reports such data, so NumPy need not warn here
            with np.errstate(over="ignore", invalid="ignore"):
                squares = np.maximum(squares - weight_sum * self.center ** 2, 0.0)
        c = self.uniform_curvature
        diagonal = np.empty(self.n_params)
        coef, intercept = self.unpack(diagonal)
        coef[:] = c * squares / weight_sum + self.l2_strength()
        if self.fit_intercept:
            intercept[:] = c
        return diagonal

    def feature_curvature(self):
        """A Kronecker model of the coefficients' Hessian, or None (see
        :meth:`SoftmaxObjective.feature_curvature`): none here."""
        return None

    def data_gradient(self, params, gradient):
        """The data term's part of :meth:`loss_gradient`'s ``gradient`` at
        ``params`` (the L2 term taken off), as a new array."""
        data = np.array(gradient, dtype=float)
        l2 = self.l2_strength()
        if l2:
            coef, _ = self.unpack(params)
            data[:coef.size] -= l2 * coef.ravel()
        return data

    def optimality(self, params, gradient):
        """Largest entry of the minimum-norm subgradient of the objective.

        ``gradient`` is :meth:`loss_gradient`'s at ``params``. Without an L1
        part that is ``max |gradient|``, the quantity L-BFGS's ``tol``
        bounds; with one, a coefficient at zero contributes ``max(|g| - l1,
        0)`` and any other ``|g + l1 sign(w)|``. Zero exactly at the optimum.
        """
        gradient = np.asarray(gradient, dtype=float)
        if not gradient.size:
            return 0.0
        l1 = self.l1_weights()
        if l1 is None:
            return float(np.max(np.abs(gradient)))
        return float(min_norm_subgradient(np.empty_like(gradient),
                                          np.asarray(params, dtype=float),
                                          gradient, l1, 0, gradient.shape[0]))

    def evaluate(self, params):
        """``(objective, gradient, optimality)`` at ``params``: one full pass.

        The objective includes the L1 part; the gradient is
        :meth:`loss_gradient`'s (a copy), and the optimality
        :meth:`optimality`'s.
        """
        loss, gradient = self.loss_gradient(params)
        gradient = gradient.copy()
        return (loss + self.l1_penalty(params), gradient,
                self.optimality(params, gradient))

    def zero_objective(self):
        """The objective at all-zero parameters: every row's probabilities are
        uniform, so each cross-entropy is ``log(n_classes)`` whatever its
        (smoothed) target, and the penalty is 0."""
        return float(np.log(self.n_classes))

    def l1_penalty(self, params):
        """Value of the L1 part of the penalty (0 without one)."""
        strength = self.l1_strength()
        if not strength:
            return 0.0
        coef, _ = self.unpack(params)
        return strength * float(np.abs(coef).sum())

    def objective(self, params):
        """Full objective (data term + elastic-net penalty) on all rows."""
        loss, _ = self.loss_gradient(params)
        return loss + self.l1_penalty(params)

    def decision(self, params, X):
        """Logits (n, n_logits) of ``X`` under ``params`` in float64."""
        coef, intercept = self.model(params)
        return np.asarray(X @ coef.T) + intercept

    def loss_gradient(self, params):
        raise NotImplementedError  # the subclasses hold the data


class SoftmaxObjective(ParameterLayout):
    """Softmax cross-entropy with elastic-net penalty over a fixed data set.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or scipy CSR matrix
        Training data, C-contiguous when dense, float32 or float64. Never
        modified; dense X is never copied. For CSR X, with ``sparse_copy``,
        the first full pass makes a CSC copy
        (:class:`~sksoftmax._kernels.TransposedCSR`, about the size of X plus
        an (n_samples, n_logits) buffer), kept for the fit: the gradient is
        then a gather per column, not a scatter.
    y : ndarray of shape (n_samples,), dtype intp
        Class codes ``0 .. n_classes - 1``.
    sample_weight : ndarray of shape (n_samples,), dtype float64
        Non-negative weights, class weights already folded in.
    n_classes : int
        Number of classes ``K >= 2``. With ``K == 2`` the model has a single
        logit (exactly binary logistic regression).
    fit_intercept : bool
        Whether the parameters hold an intercept.
    alpha : float
        Penalty strength.
    l1_ratio : float
        Share of the L1 penalty. The L1 part is not differentiable: it is
        *not* part of :meth:`loss_gradient`; minibatch epochs apply it by a
        proximal step.
    label_smoothing : float
        ``epsilon`` in ``t = (1 - epsilon) onehot(y) + epsilon / K``.
    n_threads : int
        Threads for full-batch passes, used inside :meth:`parallel`. The rows
        are split into ``n_chunks`` chunks (at most ``n_threads``, see
        :func:`~sksoftmax._kernels.n_chunks_for`), whatever thread runs them.
    sparse_copy : bool, default=True
        Whether full passes over CSR X use the CSC copy. Without it each
        chunk scatters into its own (n_features, n_logits) float64
        accumulator, reduced after the pass: no copy of X, slower when the
        vocabulary is large.
    center : bool or ndarray of shape (n_features,), default=False
        Solve in centred coordinates: the parameters ``(W, c)`` give the
        logits ``W (x - center) + c``. With an intercept this is the same
        model family and the same penalty (on ``W`` alone), so the same
        optimum, but the Hessian no longer couples the intercept with a
        common offset of the rows: on uncentred data (embeddings, raw
        counts) the solvers take far fewer steps. True: the weighted column
        means of dense X when there is an intercept (CSR X and fits without
        an intercept are never centred: the centred rows are dense); an
        array: that centre. X itself is never modified.
    """

    def __init__(self, X, y, sample_weight, n_classes, *, fit_intercept=True,
                 alpha=0.0, l1_ratio=0.0, label_smoothing=0.0, n_threads=1,
                 sparse_copy=True, center=False):
        super().__init__(X.shape[1], n_classes, fit_intercept=fit_intercept,
                         alpha=alpha, l1_ratio=l1_ratio,
                         label_smoothing=label_smoothing)
        self.X = X
        self.y = y
        self.sample_weight = sample_weight
        self.dtype = X.dtype
        self.weight_sum = float(sample_weight.sum())
        self.sparse = hasattr(X, "indptr")
        self.two_phase = self.sparse and bool(sparse_copy)
        self._n_threads, self._sparse_copy = int(n_threads), bool(sparse_copy)
        # the two-phase CSR pass needs no gradient accumulator per chunk
        self.n_chunks = n_chunks_for(
            X.shape[0], int(n_threads),
            0 if self.two_phase else self.n_logits * self.n_features)
        self._transposed = None
        # one workspace per chunk, made on first use and kept for the fit
        self._workspaces = None
        self._coef_tops = {}  # smoothness's Lanczos results, by (n_rows, seed)
        self._map_chunks = serial_map
        # Kernel-side parameters in X's dtype, refreshed from the float64
        # parameters at each call; coefficients are stored transposed.
        self._coef_t = np.zeros((self.n_features, self.n_logits), dtype=self.dtype)
        self._intercept = np.zeros(self.n_logits, dtype=self.dtype)
        self._grad = np.zeros(self.n_logits * (self.n_features + fit_intercept))
        self._all_rows = None
        # the snapshot's kernel-side buffers of variance_reduced_epoch
        self._snapshot_model = None
        self._column_squares = None
        if center is True:
            center = None
            if fit_intercept and not self.sparse and self.weight_sum > 0:
                sums, self._column_squares = (np.empty(self.n_features),
                                              np.empty(self.n_features))
                weighted_column_moments(X, sample_weight, sums,
                                        self._column_squares)
                center = sums / self.weight_sum
        elif center is None or center is False or not fit_intercept or self.sparse:
            center = None
        self.center = None if center is None else np.asarray(center, dtype=float)
        # what the compiled epochs take: length 0 for no centre
        self._kernel_center = np.empty(0) if self.center is None else self.center

    def in_float64(self):
        """This objective over a float64 copy of float32 X, in the same
        coordinates (same centre), or None when X is float64 already or the
        copy would exceed ``FLOAT64_COPY_MAX_BYTES``.

        The passes over float32 X take the parameters in float32: near the
        optimum a line search's steps fall below their resolution and the
        objective stops falling before a tight ``tol`` is met (on problems
        like the property tests' at ``tol=1e-6``, 115 of 150 float32 fits
        stopped short, up to 4e-5 relative above LogisticRegression's
        objective). The last iterations are cheap to run in float64.
        """
        if self.dtype == np.float64:
            return None
        entries = self.X.nnz if self.sparse else self.X.size
        if entries * 8 > FLOAT64_COPY_MAX_BYTES:
            return None
        return type(self)(
            self.X.astype(np.float64), self.y, self.sample_weight, self.n_classes,
            fit_intercept=self.fit_intercept, alpha=self.alpha,
            l1_ratio=self.l1_ratio, label_smoothing=self.label_smoothing,
            n_threads=self._n_threads, sparse_copy=self._sparse_copy,
            center=False if self.center is None else self.center)

    @property
    def all_rows(self):
        """Indices of all rows (built on first use: full passes do not need it)."""
        if self._all_rows is None:
            self._all_rows = np.arange(self.X.shape[0], dtype=np.intp)
        return self._all_rows

    def loss_gradient(self, params):
        """Smooth part of the objective over all rows, and its gradient.

        Parameters
        ----------
        params : ndarray of shape (n_params,), float64

        Returns
        -------
        loss : float
            Weighted mean cross-entropy plus the L2 penalty.
        grad : ndarray of shape (n_params,), float64
            Its gradient. The array is reused by the next call: copy it to
            keep it.
        """
        loss_sum = self._sums_into(params, 1.0 / self.weight_sum, self.l2_strength())
        loss = loss_sum / self.weight_sum
        l2 = self.l2_strength()
        if l2:
            coef, _ = self.unpack(params)
            # Overflow here means divergence, which the solvers report.
            with np.errstate(over="ignore", invalid="ignore"):
                loss += 0.5 * l2 * float(np.dot(coef.ravel(), coef.ravel()))
        return loss, self._grad

    def loss_gradient_sums(self, params):
        """The data's weighted sums: ``sum_i s_i CE_i`` and its gradient.

        Neither divided by ``sum(s)`` nor penalised: sums over parts of the
        data add up, and :meth:`ParameterLayout.finish` turns their total
        into :meth:`loss_gradient`'s result (this is how the dask driver
        reduces over chunks).

        Returns
        -------
        loss_sum : float
        grad_sum : ndarray of shape (n_params,), float64
            Reused by the next call: copy it to keep it.
        """
        return self._sums_into(params, 1.0, 0.0), self._grad

    def _sums_into(self, params, scale, l2):
        """One fused pass; ``scale`` times the gradient sums plus ``l2`` times
        the coefficients go into ``self._grad``. Returns the loss sum."""
        coef, intercept = self.unpack(self.model_vector(params))
        load_coef_t(coef, self._coef_t)
        self._intercept[:] = intercept
        if self.two_phase and self._transposed is None:
            self._transposed = TransposedCSR(self.X, self.n_logits, self.n_chunks)
        loss_sum, grad_coef, grad_intercept = loss_gradient_sums(
            self.X, self.y, self.sample_weight, self._coef_t, self._intercept,
            self.label_smoothing, self.binary, workspaces=self.workspaces(),
            map_chunks=self._map_chunks, transposed=self._transposed,
        )
        grad_coef_out, grad_intercept_out = self.unpack(self._grad)
        # grad_coef may be a transposed view of the (n_features, n_logits) sums
        transposed = not grad_coef.flags.c_contiguous
        finish_coef_gradient(grad_coef.T if transposed else grad_coef, transposed,
                             scale, coef, l2, grad_coef_out)
        if self.fit_intercept:
            np.multiply(grad_intercept, scale, out=grad_intercept_out)
        self.centre_gradient(self._grad)
        return loss_sum

    def curvature_estimate(self):
        """Estimate of the Hessian's diagonal of :meth:`loss_gradient`, per parameter.

        At equal probabilities ``p = 1 / K`` (where a fit from zero starts)
        the diagonal is ``c * sum_i s_i x_ij^2 / sum(s) + l2`` for the
        coefficients of feature ``j`` and ``c`` for the intercepts, with
        ``c = p (1 - p)`` (``1/4`` in the single-logit binary form). One
        pass over X. Entries of features never seen, without penalty, are 0.
        In centred coordinates the sums of squares are of ``x_ij -
        center_j``.
        """
        return self.curvature_from(self.column_square_sums(), self.weight_sum)

    def column_square_sums(self):
        """``sum_i s_i x_ij^2`` for every feature ``j`` (float64)."""
        if self._column_squares is not None:  # made with the centre
            return self._column_squares.copy()
        squares = np.empty(self.n_features)
        if self.sparse:
            weighted_csr_column_squares(self.X.data, self.X.indices, self.X.indptr,
                                        self.sample_weight, squares)
        else:
            weighted_column_moments(self.X, self.sample_weight,
                                    np.empty(self.n_features), squares)
        return squares

    def smoothness(self, rows=None, n_sample_rows=4096, seed=0,
                   scale_intercept=True):
        """Smoothness constants of the per-sample and the mean loss, and a
        step scale for the intercept.

        Softmax cross-entropy has a Hessian in the logits of norm at most
        ``c = 1/2`` (``1/4`` in the single-logit binary form), so sample
        ``i``'s weighted loss ``(s_i / mean(s)) CE_i`` is ``L_i``-smooth in
        the parameters with ``L_i = c (s_i / mean(s)) ||x~_i||^2 + l2``, and
        the mean loss is ``c lambda_max(sum_i s_i x~_i x~_i^T / sum(s)) + l2``
        -smooth (bounds as in sklearn's SAG step size). Here ``x~`` is ``x``
        with ``sqrt(delta)`` appended when there is an intercept: these are
        the constants in the metric where the intercept's steps are
        ``delta`` times the coefficients' (a diagonal preconditioner).
        ``delta = min(1, lambda_max(sum_i s_i x_i x_i^T / sum(s)))`` gives the
        intercept no more curvature than the coefficients' largest: 1 for
        standardised features (whose second moment has eigenvalues averaging
        1), far below 1 for rows of unit norm spread over a large
        vocabulary, whose step the intercept would otherwise hold down.

        Parameters
        ----------
        rows : ndarray of intp, default=None
            The rows to consider (all by default).
        n_sample_rows : int, default=4096
            The top eigenvalues are taken on a random subset of this many
            rows: at least as reliable as the rest of the step-size bound,
            and cheap at any size.
        seed : int, default=0
            Seed of that subset and of the Lanczos start vector.
        scale_intercept : bool, default=True
            Choose ``delta`` as above; False: ``delta = 1``.

        Returns
        -------
        max_smoothness : float
            ``max_i L_i``.
        mean_smoothness : float
            The smoothness constant of the mean loss.
        intercept_scale : float
            ``delta`` (1 without an intercept).
        """
        X = self.X if rows is None else self.X[rows]
        w = self.sample_weight if rows is None else self.sample_weight[rows]
        l2 = self.l2_strength()
        if not w.sum() > 0:
            return l2, l2, 1.0
        w = w / w.mean()
        X_some, root_w = self._row_sample(X, w, n_sample_rows, seed)
        d = self.n_features
        gram = None
        if not self.sparse and d + self.fit_intercept <= 512:
            # a small Gram matrix, built once: its exact top eigenvalues cost
            # less than Lanczos, and the intercept's row and column are rescaled
            A = _weighted_rows(X_some, root_w, 1.0 if self.fit_intercept else None)
            with np.errstate(over="ignore", invalid="ignore"):
                gram = A.T @ A
            coef_top = _top_gram_eigenvalue(gram[:d, :d])
        else:
            # Lanczos on wide data is the slow part: kept for the next call
            # (adam asks for both intercept scalings)
            key = (n_sample_rows, seed)
            coef_top = self._coef_tops.get(key) if rows is None else None
            if coef_top is None:
                coef_top = _top_eigenvalue(_weighted_rows(X_some, root_w, None),
                                           seed)
            if rows is None:
                self._coef_tops[key] = coef_top
        delta = 1.0
        if self.fit_intercept:
            if scale_intercept and 0 < coef_top < 1:
                delta = coef_top
            if gram is not None:
                gram[d, :] *= np.sqrt(delta)
                gram[:, d] *= np.sqrt(delta)
                top = _top_gram_eigenvalue(gram)
            elif self.center is not None:  # the blocks' tops: no second Lanczos
                top = max(coef_top, delta)
            else:
                top = _top_eigenvalue(
                    _weighted_rows(X_some, root_w, np.sqrt(delta)), seed)
        else:
            top = coef_top
        max_square = _max_row_square(X, w, delta if self.fit_intercept else 0.0,
                                     self.center)
        c = self.logit_curvature
        return c * max_square + l2, c * top + l2, delta

    def _row_sample(self, X, w, n_sample_rows, seed):
        """At most ``n_sample_rows`` random rows of ``X`` (as the parameters
        see them) and the square roots of their weights ``w``, normalised to
        sum 1: the Gram matrix of the weighted rows is the sample's second
        moment. With a centre the rows are centred at their own weighted
        mean (on all rows: ``self.center``), so that the intercept's column
        is orthogonal to the coefficients': the Gram matrix with it is block
        diagonal."""
        X_some, w_some = X, w
        if X.shape[0] > n_sample_rows:
            rng = np.random.default_rng(seed)
            keep = np.sort(rng.choice(X.shape[0], n_sample_rows, replace=False))
            X_some, w_some = X[keep], w[keep]
        if self.center is not None:
            X_some = X_some - np.average(X_some, axis=0, weights=w_some)
        return X_some, np.sqrt(w_some / w_some.sum())

    def feature_curvature(self, n_sample_rows=FEATURE_SAMPLE_ROWS, seed=0,
                          max_exact=_EXACT_FEATURE_FACTOR, rank=_FEATURE_RANK):
        """The coefficients' Hessian at equal probabilities, as a Kronecker
        product ``F ⊗ I``, for ``_solvers.lbfgs``.

        At ``p = 1 / K`` the data term's Hessian in the coefficients is
        ``(diag(p) - p p') ⊗ C``, ``C = sum_i s_i x_i x_i' / sum(s)`` the
        features' weighted second moment (of centred rows in centred
        coordinates); the model keeps its diagonal ``c = p (1 - p)``:
        ``F = c C + l2``, as :meth:`curvature_estimate` is its diagonal. A
        preconditioner from it sees correlated features, which a diagonal
        cannot. ``C`` comes from a row sample; with more than ``max_exact``
        features, its top ``rank`` eigenpairs come from a randomized SVD and
        the rest of the spectrum is their mean (from the trace).

        Returns
        -------
        (n_logits, vectors, values, rest) or None
            ``F = V diag(values) V' + rest (I - V V')``. None for CSR data
            (the preconditioner is the diagonal), for an intercept in
            uncentred coordinates (not a Kronecker product) and for data
            whose second moment is not finite (or, above ``max_exact``
            features, whose weighted rows overflow float32).
        """
        if self.sparse or (self.fit_intercept and self.center is None):
            return None
        w = self.sample_weight
        if not w.sum() > 0:
            return None
        X_some, root_w = self._row_sample(self.X, w / w.mean(), n_sample_rows, seed)
        A = _weighted_rows(X_some, root_w, None)
        if not np.all(np.isfinite(A)):
            return None
        d = self.n_features
        c, l2 = self.uniform_curvature, self.l2_strength()
        rest = 0.0
        if d <= max_exact or min(A.shape) <= rank:
            with np.errstate(over="ignore", invalid="ignore"):
                moment = A.T @ A  # finite rows can still overflow here
            if not np.all(np.isfinite(moment)):
                return None
            values, vectors = np.linalg.eigh(moment)
        else:
            # a preconditioner needs no more: two power iterations in float32
            # (0.6 s at 4096 x 3072 on 2 cores, against 3.7 s at the defaults)
            with np.errstate(over="ignore"):
                A32 = A.astype(np.float32)
            if not np.all(np.isfinite(A32)):
                return None
            _, singular, vectors_t = randomized_svd(A32, rank, n_iter=2,
                                                    random_state=seed)
            vectors = np.linalg.qr(vectors_t.T.astype(np.float64))[0]
            values = singular.astype(np.float64) ** 2
            with np.errstate(over="ignore", invalid="ignore"):
                rest = max(float(np.einsum("ij,ij->", A, A)) - values.sum(), 0.0) \
                    / (d - rank)
            if not (np.isfinite(rest) and np.all(np.isfinite(values))):
                return None
        values = np.maximum(values, 0.0)
        return self.n_logits, vectors, c * values + l2, c * rest + l2

    def max_row_square(self, delta, weight_mean):
        """``max_i (s_i / weight_mean) ||x~_i||^2`` over all rows, ``x~_i``
        with ``sqrt(delta)`` appended when there is an intercept (the
        per-sample part of :meth:`smoothness`, for data held in parts)."""
        return _max_row_square(self.X, self.sample_weight / weight_mean,
                               delta if self.fit_intercept else 0.0, self.center)

    def step_constants(self, params, rows, solver):
        """What ``eta0="auto"`` needs (see ``_solvers.auto_eta0``).

        Returns
        -------
        max_smoothness, mean_smoothness : float
            As :meth:`smoothness` on ``rows`` (None: all rows).
        scale : float
            For ``"adam"``, :meth:`gradient_size` at ``params`` on at most
            4096 of the rows; 1 for ``"sgd"``.
        intercept_scale : float
            :meth:`smoothness`'s ``delta`` for ``"sgd"``; 1 for ``"adam"``,
            whose per-coordinate steps need no scale for the intercept (and
            measured worse with one: on 200k x 100k TF-IDF its first epoch
            reached 0.142 test accuracy against 0.170 without).
        """
        max_smoothness, mean_smoothness, intercept_scale = self.smoothness(
            rows, scale_intercept=solver == "sgd")
        scale = 1.0
        if solver == "adam":
            scale = self.gradient_size(
                params, some_rows(self.all_rows if rows is None else rows, 4096))
        return max_smoothness, mean_smoothness, scale, intercept_scale

    def gradient_size(self, params, rows):
        """Root-mean-square of the entries that per-sample gradients use, at
        ``params``.

        ``sqrt(sum_i s_i ||(p_i - onehot_i) x~_i^T||^2 / sum_i s_i n_i)`` over
        ``rows``, ``x~`` with a 1 appended when there is an intercept and
        ``n_i = K nnz(x~_i)`` the entries sample ``i``'s gradient can move
        (all of them for dense X): the data term only, without label
        smoothing, a scale, not a value.
        """
        X, w = self.X[rows], self.sample_weight[rows]
        logits = self.decision(params, X)
        if self.binary:
            logits = np.column_stack([np.zeros(len(rows)), logits[:, 0]])
        residual = softmax(logits, axis=1)
        residual[np.arange(len(rows)), self.y[rows]] -= 1.0
        if self.binary:
            residual = residual[:, 1:]
        if self.sparse:
            squares = np.asarray(X.multiply(X).sum(axis=1), dtype=float).ravel()
            used = np.diff(X.indptr) + self.fit_intercept
        else:
            if self.center is not None:
                X = X - self.center
            squares = np.einsum("ij,ij->i", X, X, dtype=np.float64)
            used = np.full(len(rows), self.n_features + self.fit_intercept)
        per_sample = (residual ** 2).sum(axis=1) * (squares + self.fit_intercept)
        entries = float(w @ used) * self.n_logits
        if not entries > 0:
            return 0.0
        return float(np.sqrt(float(w @ per_sample) / entries))

    def workspaces(self):
        """The chunks' buffers, allocated once (``n_chunks`` of them)."""
        if self._workspaces is None:
            self._workspaces = [
                Workspace(self.n_logits, self.n_features, self.dtype, self.sparse,
                          accumulator=c == 0 or not self.two_phase)
                for c in range(self.n_chunks)]
        return self._workspaces

    @contextlib.contextmanager
    def parallel(self):
        """Full passes inside this block run their chunks on threads.

        A thread pool lives for the block when there is more than one chunk
        (and BLAS is held to one thread meanwhile); nothing is started
        otherwise. Outside the block passes run serially, with the same
        chunks and so the same results.
        """
        with chunk_map(self.n_chunks) as map_chunks:
            self._map_chunks = map_chunks
            try:
                yield self
            finally:
                self._map_chunks = serial_map

    def minibatch_epoch(self, state, order, batch_size, rule):
        """One compiled epoch of minibatch steps over the rows in ``order``.

        CSR X without an L1 part takes the lazy epochs (steps that touch
        only the minibatch's features); otherwise every step updates every
        parameter.

        Parameters
        ----------
        state : object
            The optimiser state, updated in place: flat float64 ``params``,
            ``velocity``, ``m``, ``v``, ``shift``, ``threshold``, ``average``
            (each of shape (n_params,)), ``counts`` (int64 ``[updates,
            samples seen, iterates averaged]``) and the current ``eta``.
        order : ndarray of intp
            Rows, in the order they are visited.
        batch_size : int
        rule : object
            Step rule settings: ``solver`` ("sgd"/"adam"), ``learning_rate``,
            ``eta0``, ``power_t``, ``alpha`` (of the "optimal" schedule),
            ``momentum``, ``nesterovs_momentum``, ``beta_1``, ``beta_2``,
            ``epsilon``, ``average`` (samples seen before averaging starts;
            0: no averaging).

        Returns
        -------
        loss : float
            Weighted mean over the epoch of each minibatch's smooth loss
            before its step (L1 part not included).
        diverged : bool
            Whether the loss, the gradient or the parameters became
            non-finite (the epoch stopped there).
        """
        if self.sparse and not self.l1_strength():
            return self._lazy_minibatch_epoch(state, order, batch_size, rule)
        ws = self.workspaces()[0]
        data, bufs = self._minibatch_data(ws)
        total, weight, diverged = minibatch_epoch(
            data, bufs, self.sample_weight, order, batch_size, state.params,
            self.n_logits * self.n_features, self.fit_intercept, self._coef_t,
            self._intercept, ws.grad_intercept, self._grad, self.l2_strength(),
            self.l1_strength(), self.label_smoothing, self.binary,
            SCHEDULES[rule.learning_rate], rule.eta0, state.eta,
            rule.alpha, rule.power_t, rule.momentum, rule.nesterovs_momentum,
            rule.beta_1, rule.beta_2, rule.epsilon, state.counts,
            # the tuple picks the step rule when the epoch is compiled
            (state.velocity,) if rule.solver == "sgd" else (state.m, state.v),
            state.shift, state.threshold, state.average, rule.average,
            rule.intercept_scale, self._kernel_center)
        return (total / weight if weight > 0 else 0.0), diverged

    def _minibatch_data(self, ws):
        """The data and buffers the compiled minibatch epochs take, as tuples
        (their length tells the kernels dense from CSR)."""
        if self.sparse:
            return ((self.X.data, self.X.indices, self.X.indptr, self.y,
                     self.sample_weight), (ws.z, ws.exponent_buf, ws.grad_coef_t))
        return ((self.X, self.y, self.sample_weight),
                (ws.X_buf, ws.y_buf, ws.w_buf, ws.Z_buf, ws.G_buf, ws.row_buf,
                 ws.exponent_buf, ws.grad_coef))

    @property
    def variance_reduction(self):
        """Whether :meth:`variance_reduced_epoch` runs at minibatch cost.

        Its steps update every parameter, which on CSR X costs O(n_features x
        K) a step: there only with an L1 part (whose prox needs the full step
        anyway); without one the minibatch solvers finish full-batch instead.
        """
        return not self.sparse or bool(self.l1_strength())

    def variance_reduced_epoch(self, params, snapshot, gradient, order,
                               batch_size, eta, intercept_scale=1.0):
        """One compiled epoch of SVRG steps from ``params`` (updated in place).

        Parameters
        ----------
        params : ndarray of shape (n_params,), float64
            Where the epoch starts; holds where it ends.
        snapshot : ndarray of shape (n_params,), float64
            The control variate's point.
        gradient : ndarray of shape (n_params,), float64
            :meth:`loss_gradient`'s gradient at ``snapshot`` (over all rows).
        order : ndarray of intp
            Rows, in the order they are visited.
        batch_size : int
        eta : float
            The step of the coefficients (the intercept's is
            ``intercept_scale`` times as long); the L1 part is applied by its
            prox after each step.

        Returns
        -------
        loss : float
            Weighted mean over the epoch of each minibatch's data loss
            before its step.
        diverged : bool
            Whether the loss, a gradient or the parameters became non-finite.
        """
        ws = self.workspaces()[0]
        data, bufs = self._minibatch_data(ws)
        if self._snapshot_model is None:
            self._snapshot_model = (
                np.empty_like(self._coef_t), np.empty_like(self._intercept),
                np.empty(self.n_logits), np.empty(self.n_params),
                np.empty((0 if self.sparse else BLOCK_ROWS, self.n_logits),
                         dtype=self.dtype))
        model = (self._coef_t, self._intercept, ws.grad_intercept, self._grad)
        total, weight, diverged = variance_reduced_epoch(
            data, bufs, self.sample_weight, order, batch_size, params, snapshot,
            model, (*self._snapshot_model[:4], self.data_gradient(snapshot, gradient),
                    self._snapshot_model[4]),
            self.l2_strength(), self.l1_strength(), self.label_smoothing,
            self.binary, float(eta), float(intercept_scale), self._kernel_center)
        return (total / weight if weight > 0 else 0.0), diverged

    def _records(self, *flats):
        """``(n_features + 1, len(flats), n_logits)`` float64 records of flat
        parameter-shaped vectors, the intercept in the last row (zeros
        without one)."""
        records = np.zeros((self.n_features + 1, len(flats), self.n_logits))
        for f, flat in enumerate(flats):
            coef, intercept = self.unpack(flat)
            load_coef_t(coef, records[:self.n_features, f, :])
            records[self.n_features, f, :] = intercept
        return records

    def _from_records(self, records, *flats):
        """Write the records' fields back into flat vectors."""
        for f, flat in enumerate(flats):
            coef, intercept = self.unpack(flat)
            load_coef_t(records[:self.n_features, f, :], coef)
            if self.fit_intercept:
                intercept[:] = records[self.n_features, f, :]

    def _lazy_minibatch_epoch(self, state, order, batch_size, rule):
        """:meth:`minibatch_epoch` for CSR X without an L1 part: the lazy
        epochs of ``_kernels``, whose steps touch only the coefficient rows
        of the features in the minibatch (exact for SGD; the documented lazy
        Adam). The state is in the flat layout before and after."""
        X = self.X
        n_rows = self.n_features + 1
        scratch = (np.empty((n_rows, self.n_logits)), np.empty(n_rows, dtype=np.intp),
                   np.zeros(n_rows, dtype=np.int64), np.empty(self.n_logits),
                   np.empty(self.n_logits, dtype=np.int32))
        average_sum = state.average * state.counts[2]
        common = (X.data, X.indices, X.indptr, self.y, self.sample_weight, order,
                  batch_size)
        schedule = (self.binary, SCHEDULES[rule.learning_rate], rule.eta0,
                    state.eta, rule.alpha, rule.power_t)
        if rule.solver == "sgd":
            T = self._records(state.params, state.velocity, average_sum)
            total, weight, diverged = lazy_csr_sgd_epoch(
                *common, T, self.n_features, self.fit_intercept,
                self.l2_strength(), self.label_smoothing, *schedule, rule.momentum,
                rule.nesterovs_momentum, state.counts, rule.average,
                rule.intercept_scale, *scratch)
            self._from_records(T, state.params, state.velocity, average_sum)
        else:
            T = self._records(state.params, state.m, state.v, average_sum)
            total, weight, diverged = lazy_csr_adam_epoch(
                *common, T, self._inverse_frequency(order, batch_size),
                self.n_features, self.fit_intercept, self.l2_strength(),
                self.label_smoothing, *schedule, rule.beta_1, rule.beta_2,
                rule.epsilon, state.counts, rule.average, rule.intercept_scale,
                np.empty(n_rows, dtype=np.int64), *scratch)
            self._from_records(T, state.params, state.m, state.v, average_sum)
        if state.counts[2] > 0:
            np.divide(average_sum, state.counts[2], out=state.average)
        diverged = diverged or not np.all(np.isfinite(state.params))
        return (total / weight if weight > 0 else 0.0), diverged

    def _inverse_frequency(self, order, batch_size):
        """``1 / q_j``, ``q_j`` the probability that a minibatch of ``order``'s
        rows uses feature ``j`` (0 for features it never uses)."""
        X = self.X
        if order.shape[0] == X.shape[0]:
            counts = np.bincount(X.indices, minlength=self.n_features)
        else:
            counts = np.bincount(X[order].indices, minlength=self.n_features)
        share = counts / max(order.shape[0], 1)
        used = 1.0 - (1.0 - share) ** batch_size
        inverse = np.zeros(self.n_features)
        np.divide(1.0, used, out=inverse, where=used > 0)
        return inverse
