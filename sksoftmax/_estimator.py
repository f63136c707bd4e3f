"""The scikit-learn estimator: validation, parameters, fitted attributes, dispatch."""

import contextlib
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
)
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from . import _cuda, _dask
from ._math import linear_predictions
from ._objective import (
    SoftmaxObjective,
    check_weight_per_class,
    class_weights,
    some_rows,
)
from ._parallel import effective_n_threads
from ._solvers import (
    DivergenceError,
    MinibatchSettings,
    minimise,
    resolve_tol,
    solve_to_optimum,
)
from ._steps import SCHEDULES

_STOCHASTIC = ("sgd", "adam")


@contextlib.contextmanager
def _restored_on_error(estimator):
    """Put back every attribute of ``estimator`` if the block raises.

    Fitting replaces attributes (it never mutates them in place), so a
    shallow copy of the instance dictionary is the whole previous state.
    """
    saved = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(saved)
        raise


def _stochastic_solver(estimator):
    if estimator.solver not in _STOCHASTIC:
        raise AttributeError(
            f"partial_fit is only available for the stochastic solvers "
            f"{_STOCHASTIC}; solver={estimator.solver!r} is not stochastic."
        )
    return True


class SoftmaxRegressionClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial (softmax) logistic regression with Numba kernels.

    Minimises the weighted mean softmax cross-entropy plus an elastic-net
    penalty on the coefficients (the intercept is not penalised)::

        (1 / sum(s)) * sum_i s_i * CE(softmax(W x_i + b), y_i)
            + alpha * ((1 - l1_ratio) / 2 * ||W||_2^2 + l1_ratio * ||W||_1)

    where ``s`` are the sample weights times the class weights. With
    ``l1_ratio=0`` the minimiser is the same as that of
    ``LogisticRegression(C=1 / (alpha * sum(s)))`` (``C = 1 / (alpha *
    n_samples)`` without weights). With two classes the model is
    ``softmax([0, z])``, which is exactly binary logistic regression.

    Parameters
    ----------
    solver : {"lbfgs", "sgd", "adam"}, default="lbfgs"
        ``"lbfgs"``: full-batch L-BFGS to the exact optimum; with
        ``l1_ratio > 0``, OWL-QN (orthant-wise L-BFGS), whose zeros are exact.
        ``"sgd"``: minibatch SGD with momentum. ``"adam"``: minibatch Adam.
        Their ``fit`` (without early stopping) reaches the same optimum to
        the same ``tol``: one epoch of the rule, then SVRG epochs (variance
        reduced, constant step, an epoch that raises the objective
        rejected), then full-batch L-BFGS where those are slow (small or
        badly conditioned data, and CSR input without an L1 part; with one,
        OWL-QN).
        ``partial_fit`` runs epochs of the rule alone.
        On CSR input without an L1 part, a minibatch step costs O(its
        nonzeros x n_classes): it updates only the coefficients of the
        features that the minibatch uses, and accounts for the rest (L2
        shrinkage, momentum, the average) in closed form, exactly as a dense
        step would for ``"sgd"``; ``"adam"`` is then lazy Adam, whose rows sit
        still while unused (their moments' decay is exact, their L2 pull is
        applied when next used, scaled by how rarely that is).
    alpha : float, default=1e-4
        Regularisation strength, ``>= 0``.
    l1_ratio : float, default=0.0
        Elastic-net mixing in ``[0, 1]``: 0 is pure L2, 1 pure L1. Every
        solver takes it: ``"lbfgs"`` by OWL-QN (Andrew & Gao, 2007), which
        moves within the sign pattern of the coefficients and stops a
        coefficient at zero rather than let it cross; ``"sgd"``/``"adam"``
        by proximal (soft-thresholding) steps, finished by OWL-QN where
        those are slow. The returned zeros are exact.
    fit_intercept : bool, default=True
        Whether to fit an intercept per class.
    max_iter : int, default=1000
        Maximum L-BFGS iterations, or for ``"sgd"`` and ``"adam"`` epochs
        plus the iterations of their full-batch finish.
    tol : float or "auto", default="auto"
        Every solver's ``fit`` has converged when the largest absolute entry
        of the objective's gradient (with an L1 part, of its minimum-norm
        subgradient) is at most ``tol``: ``"sgd"``/``"adam"`` check it at
        the end of each epoch, where their SVRG epochs compute the full
        gradient anyway (see the user guide). With early stopping,
        ``"sgd"``/``"adam"`` instead stop when the validation accuracy has
        not risen by ``tol`` for ``n_iter_no_change`` epochs. ``"auto"`` is
        1e-4, and 1e-3 with early stopping. On dense X with an intercept
        the gradient is taken in the centred coordinates every solver works
        in (coefficients and ``intercept_ + coef_ @ mean(X)``): the same
        optimum, a gradient that does not grow with the features' offset.
    batch_size : int or "auto", default="auto"
        Minibatch size for ``"sgd"`` and ``"adam"``; ``"auto"`` is
        ``min(200, ceil(n_samples / 10))``, so that an epoch takes at least
        10 updates. Larger values are clipped to the number of training
        samples. ``partial_fit`` splits each chunk into at least ``min(10,
        n_chunk)`` minibatches, whatever ``batch_size`` is: a chunk smaller
        than the batch size is never a single step.
    learning_rate : {"constant", "optimal", "invscaling", "adaptive"}, \
            default="optimal"
        Schedule of the base step ``eta_t`` at update ``t = 0, 1, ...``:
        ``"constant"``: ``eta0``; ``"optimal"``: ``eta0 / (1 + eta0 * alpha *
        t)``, which tends to the ``1 / (alpha t)`` of strongly convex SGD;
        ``"invscaling"``: ``eta0 / (t + 1) ** power_t``; ``"adaptive"``:
        ``eta0``, divided by 5 whenever ``n_iter_no_change`` epochs pass
        without improvement, until it is below 1e-6. Adam scales its step by
        the same schedule.
    eta0 : float or "auto", default="auto"
        Initial learning rate of ``"sgd"`` and ``"adam"``. ``"auto"`` derives
        it from the data: ``1 / L(b)`` for minibatches of ``b`` rows, where
        ``L(b)`` interpolates between the largest per-sample smoothness
        constant of the loss (``c max_i ||x_i||^2 + alpha``, ``c = 1/2``, as
        sklearn's SAG step) and that of the mean loss (``c`` times the top
        eigenvalue of the second-moment matrix, estimated on at most 4096
        rows); scaled for Nesterov's or heavy-ball momentum, and for Adam by
        the size of a per-sample gradient entry at the start. With
        ``"sgd"`` the intercept then steps ``min(1, lambda_max)`` times as far
        as the coefficients, ``lambda_max`` that of the features' second
        moment (1 for standardised data; small for TF-IDF rows, whose
        intercept would otherwise hold every step down). For ``partial_fit``
        the constants come from the first chunk.
    power_t : float, default=0.5
        Exponent of ``"invscaling"``.
    momentum : float, default=0.9
        Momentum of ``"sgd"``, in ``[0, 1]``.
    nesterovs_momentum : bool, default=True
        Whether ``"sgd"`` uses Nesterov's momentum.
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of Adam's first and second moment estimates, in ``[0, 1)``.
    epsilon : float, default=1e-8
        Adam's denominator guard.
    average : bool or int, default=True
        For ``"sgd"``/``"adam"``: Polyak-Ruppert averaging. ``coef_`` and
        ``intercept_`` hold the mean of the iterates after every update from
        the first one after which ``average`` samples have been seen (True:
        from the first update; False or 0: no averaging, the last iterate).
        The average removes the noise that a large constant step leaves in
        the iterate, so the default fit gets near the optimum without a
        decaying schedule. Not used with ``l1_ratio > 0``: a mean of
        iterates would lose the exact zeros of the proximal steps.
    early_stopping : bool, default=False
        For ``"sgd"``/``"adam"``: hold out a stratified ``validation_fraction``
        of the training data and stop when its accuracy has not improved by
        ``tol`` for ``n_iter_no_change`` consecutive epochs (as
        ``SGDClassifier``). Ignored by ``"lbfgs"`` and by ``partial_fit``.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping, in (0, 1).
    n_iter_no_change : int, default=3
        With early stopping, epochs without improvement before stopping (or,
        for ``"adaptive"``, before dividing the learning rate).
    shuffle : bool, default=True
        Visit the training rows in a new random order each epoch. Rows are
        shuffled by index; ``X`` is never copied.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling and the early-stopping split.
    class_weight : dict, "balanced" or None, default=None
        Per-class weights multiplying the sample weights. ``"balanced"`` uses
        ``n_samples / (n_classes * np.bincount(y))``.
    warm_start : bool, default=False
        Start ``fit`` from the previous solution when the classes and the
        number of features are unchanged.
    label_smoothing : float, default=0.0
        ``epsilon`` in ``[0, 1)``: the targets are
        ``(1 - epsilon) * onehot(y) + epsilon / n_classes``.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where the fits on in-memory data run. ``"cuda"``: on an NVIDIA GPU
        (the ``cuda`` extra, ``numba-cuda``): X is copied to the device once
        per fit, the loss-and-gradient pass and the minibatch steps run
        there, at most 128 classes; the fitted attributes and predictions
        are on the host as with ``"cpu"``. Without a usable GPU it is a
        ``ValueError``. ``"auto"``: the GPU when one is usable and X has at
        least 2**24 entries (nonzeros when sparse), else the CPU. Dask input
        always runs on the CPU workers.
    n_jobs : int or None, default=None
        Threads of the full-batch passes. None uses all cores (or
        ``NUMBA_NUM_THREADS`` when the environment sets it, as joblib's
        workers do); negative values count back from that number (-1 is all).
        The threads are a pool of the fit's own, started only for data of at
        least 8192 rows and gone when the fit returns; while they run, BLAS
        is held to one thread (restored after the last concurrent fit). The
        fitted model does not depend on which thread ran what.
    sparse_copy : bool, default=True
        For CSR ``X`` and ``solver="lbfgs"``: keep a CSC copy of ``X`` for the
        fit, so that the gradient is gathered column by column. It costs
        ``nnz * (itemsize + 4)`` bytes plus an ``(n_samples, n_classes)``
        buffer of X's dtype, and is what makes large vocabularies fast. With
        False no copy is made: each thread scatters into its own
        ``(n_features, n_classes)`` float64 gradient, reduced after every
        pass (the minibatch solvers always work this way, on X itself).
    verbose : int, default=0
        Print one line per iteration or epoch (loss, validation score, time).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Coefficients, in the dtype of the training data. One row for two
        classes (the logit of ``classes_[1]``).
    intercept_ : ndarray of shape (1,) or (n_classes,)
        Intercepts (zeros when ``fit_intercept=False``).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.
    n_iter_ : int
        L-BFGS iterations, or epochs run by ``"sgd"``/``"adam"`` plus the
        iterations of their full-batch finish (summed over ``partial_fit``
        calls, one epoch each).
    t_ : int
        Number of training samples seen by the epochs of ``"sgd"``/``"adam"``.
    loss_curve_ : list of float
        Training objective after each iteration (``"lbfgs"``), or of the
        model after each epoch and full-batch iteration (``"sgd"``/``"adam"``;
        non-increasing: an epoch that raised it was rejected; with early
        stopping, on a fixed random subset of 16384 rows when there are
        more). For ``partial_fit``: the mean over the chunk's minibatches of
        their loss before each update.
    validation_scores_ : list of float or None
        Validation accuracy after each epoch with early stopping, else None.
    best_validation_score_ : float or None
        Best of ``validation_scores_``, else None.

    See Also
    --------
    sklearn.linear_model.LogisticRegression : The same model with
        ``C = 1 / (alpha * n_samples)``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sksoftmax import SoftmaxRegressionClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SoftmaxRegressionClassifier(alpha=1e-3).fit(X, y)
    >>> clf.coef_.shape
    (3, 4)
    >>> float(clf.score(X, y)) > 0.95
    True
    """

    _parameter_constraints = {
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"),
                       StrOptions({"auto"})],
        "learning_rate": [StrOptions(set(SCHEDULES))],
        "eta0": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "average": [Interval(Integral, 0, None, closed="left"), "boolean"],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "warm_start": ["boolean"],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "n_jobs": [Integral, None],
        "sparse_copy": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        solver="lbfgs",
        alpha=1e-4,
        l1_ratio=0.0,
        fit_intercept=True,
        max_iter=1000,
        tol="auto",
        batch_size="auto",
        learning_rate="optimal",
        eta0="auto",
        power_t=0.5,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        average=True,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=3,
        shuffle=True,
        random_state=None,
        class_weight=None,
        warm_start=False,
        label_smoothing=0.0,
        device="cpu",
        n_jobs=None,
        sparse_copy=True,
        verbose=0,
    ):
        self.solver = solver
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.average = average
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.shuffle = shuffle
        self.random_state = random_state
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.label_smoothing = label_smoothing
        self.device = device
        self.n_jobs = n_jobs
        self.sparse_copy = sparse_copy
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_solver_params(self):
        if self.n_jobs == 0:
            raise ValueError("n_jobs == 0 has no meaning; use None, -1 or >= 1.")
        _cuda.resolve_device(self.device)

    def _validate_X_y(self, X, y, reset):
        # Any memory layout is accepted as it is: the kernels read non-C-ordered
        # arrays block by block, so X is never copied.
        X, y = validate_data(
            self, X, y, reset=reset, accept_sparse="csr",
            dtype=[np.float64, np.float32], accept_large_sparse=True,
        )
        check_classification_targets(y)
        return X, y

    def _sample_weight(self, X, y_codes, sample_weight, classes, *,
                       allow_all_zero=False):
        """Sample weights times class weights, as float64."""
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True,
            allow_all_zero_weights=allow_all_zero,
        )
        class_weight = self._class_weight_vector(classes, classes[y_codes],
                                                 sample_weight)
        return sample_weight if class_weight is None else \
            sample_weight * class_weight[y_codes]

    def _class_weight_vector(self, classes, y, sample_weight):
        return class_weights(self.class_weight, classes, y, sample_weight)

    def _objective(self, X, y_codes, sample_weight, classes, n_threads=1,
                   center=False):
        entries = X.nnz if hasattr(X, "nnz") else X.size
        if _cuda.resolve_device(self.device, entries, len(classes)) == "cuda":
            objective_class = _cuda.CudaObjective
        else:
            objective_class = SoftmaxObjective
        return objective_class(
            X, y_codes, sample_weight, len(classes),
            fit_intercept=self.fit_intercept, alpha=self.alpha,
            l1_ratio=self.l1_ratio, label_smoothing=self.label_smoothing,
            n_threads=n_threads, sparse_copy=self.sparse_copy, center=center,
        )

    def _settings(self):
        """The minibatch solvers' settings: this estimator's parameters as
        plain values."""
        return MinibatchSettings.from_params(self.get_params(deep=False),
                                             effective_n_threads(self.n_jobs))

    def _tol(self):
        return resolve_tol(self.tol, self.solver, self.early_stopping)

    def _rule(self, settings, smoothness, batch_size, n_rows):
        try:
            return settings.rule(smoothness, batch_size, n_rows)
        except DivergenceError as exc:
            raise self._divergence_error(str(exc)) from None

    def _fitted_params(self, objective, params):
        """``coef_`` and ``intercept_`` in X's dtype; non-finite ones are an error."""
        coef, intercept = objective.model(params)
        if not (np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))):
            raise self._divergence_error("the end of the fit")
        return {"coef_": coef.astype(objective.dtype),
                "intercept_": np.asarray(intercept, dtype=objective.dtype).copy()}

    def _divergence_error(self, where):
        if self.solver == "lbfgs":
            advice = "or increasing alpha"
        else:
            advice = "or setting a smaller eta0"
        return ValueError(
            f"Floating-point under-/overflow occurred at {where}: the objective or "
            f"the coefficients became non-finite. Scaling input data with "
            f"StandardScaler or MinMaxScaler, {advice}, might help."
        )

    def _user_params(self, objective):
        """Flat parameters from ``coef_`` and ``intercept_`` as they are now."""
        expected = (objective.n_logits, objective.n_features)
        coef = np.asarray(self.coef_)
        intercept = np.asarray(self.intercept_)
        if coef.shape != expected or intercept.shape != (objective.n_logits,):
            raise ValueError(
                f"coef_ has shape {coef.shape} and intercept_ {intercept.shape}, but "
                f"this model needs {expected} and ({objective.n_logits},)."
            )
        if not (np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))):
            raise ValueError("coef_ and intercept_ must be finite to continue from.")
        return objective.init_params(coef, intercept)

    # ----------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to the data.

        A fit that raises leaves the estimator as it was before the call.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. Float32 and float64 arrays are used as they are
            (float32 stays float32); CSC is converted to CSR.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples.

        Returns
        -------
        self : SoftmaxRegressionClassifier
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from sksoftmax import SoftmaxRegressionClassifier
        >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
        >>> y = np.array(["a", "a", "b", "b"])
        >>> clf = SoftmaxRegressionClassifier(alpha=0.1).fit(X, y)
        >>> clf.classes_
        array(['a', 'b'], dtype='<U1')
        >>> clf.coef_.shape  # two classes: one row, as binary logistic regression
        (1, 2)
        >>> clf.n_iter_ <= clf.max_iter
        True
        """
        with _restored_on_error(self):
            self._check_solver_params()
            if _dask.is_dask_collection(X) or _dask.is_dask_collection(y):
                objective, classes = self._dask_objective(X, y, sample_weight)
            else:
                objective, classes = self._in_memory_objective(X, y, sample_weight)
            # warm start only from a model of the same classes and features
            warm = (self.warm_start and hasattr(self, "coef_")
                    and np.array_equal(getattr(self, "classes_", None), classes)
                    and np.shape(self.coef_) == (objective.n_logits,
                                                 objective.n_features))
            params = self._user_params(objective) if warm else objective.init_params()
            with objective.parallel():
                if self.solver == "lbfgs":
                    fitted = self._fit_lbfgs(objective, params)
                elif isinstance(objective, _dask.DaskObjective):
                    fitted = self._fit_dask_minibatch(objective, params)
                else:
                    fitted = self._fit_minibatch(objective, params)
            # only now, with the solver done, does the model change
            self.classes_ = classes
            for name, value in fitted.items():
                setattr(self, name, value)
        return self

    def _dask_features(self, X, reset):
        """A dask collection as the dask backend takes it, with the checks of
        ``validate_data`` (``n_features_in_``, ``feature_names_in_``)."""
        _check_feature_names(self, _dask.feature_names_source(X), reset=reset)
        X = _dask.as_features(X, lengths=reset)
        _check_n_features(self, X, reset=reset)
        return X

    def _dask_objective(self, X, y, sample_weight):
        """Validate dask input; ``(objective, classes)``."""
        if not _dask.is_dask_collection(X):
            raise TypeError(
                f"y is a dask collection but X is a {type(X).__name__}: pass X as "
                "a dask array too (e.g. dask.array.from_array(X, chunks=...)).")
        return _dask.objective(
            self._dask_features(X, reset=True), y, sample_weight,
            class_weight=self.class_weight, fit_intercept=self.fit_intercept,
            alpha=self.alpha, l1_ratio=self.l1_ratio,
            label_smoothing=self.label_smoothing)

    def _fit_dask_minibatch(self, objective, params):
        if self.early_stopping:
            raise ValueError(
                "early_stopping=True is not supported for dask input: hold out a "
                "validation set (e.g. dask_ml.model_selection.train_test_split) "
                "and score it, or fit with early_stopping=False.")
        try:
            state, rng, *result = _dask.fit_minibatch(
                objective, params, self._settings(), self.random_state)
        except DivergenceError as exc:
            raise self._divergence_error(str(exc)) from None
        return self._minibatch_fitted(objective, state, rng, *result)

    def _in_memory_objective(self, X, y, sample_weight):
        """Validate in-memory data; ``(objective, classes)``."""
        X, y = self._validate_X_y(X, y, reset=True)
        classes, y_codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {classes[0]}."
            )
        y_codes = y_codes.astype(np.intp, copy=False)
        sample_weight = self._sample_weight(X, y_codes, sample_weight, classes)
        check_weight_per_class(np.bincount(y_codes, weights=sample_weight,
                                           minlength=len(classes)))
        # minibatch steps run serially; full passes (lbfgs's, and the
        # minibatch solvers' snapshots and finish) on every thread
        # solved in centred coordinates (dense X): the same optimum, fewer steps
        objective = self._objective(X, y_codes, sample_weight, classes,
                                    effective_n_threads(self.n_jobs), center=True)
        return objective, classes

    def _fit_lbfgs(self, objective, params):
        try:
            params, n_iter, loss_curve, failure = minimise(
                objective, params, max_iter=self.max_iter, tol=self._tol(),
                verbose=self.verbose, n_threads=effective_n_threads(self.n_jobs))
        except DivergenceError:
            raise self._divergence_error("an L-BFGS iteration") from None
        fitted = self._fitted_params(objective, params)
        if failure is not None:
            warnings.warn(
                f"L-BFGS did not converge: {failure}. Scale the data (e.g. with "
                "StandardScaler), increase max_iter, or raise tol.",
                ConvergenceWarning, stacklevel=4,  # the caller of fit
            )
        return {**fitted, "n_iter_": n_iter, "loss_curve_": loss_curve,
                "validation_scores_": None, "best_validation_score_": None,
                "_minibatch_state": None}

    def _fit_minibatch(self, objective, params):
        X, y_codes, sample_weight = objective.X, objective.y, objective.sample_weight
        rng = check_random_state(self.random_state)
        train_rows = objective.all_rows
        validation_score = None
        if self.early_stopping:
            train_rows, val_rows = train_test_split(
                objective.all_rows, test_size=self.validation_fraction,
                stratify=y_codes, random_state=rng.randint(np.iinfo(np.int32).max),
            )
            train_rows = np.sort(train_rows)
            w_val = sample_weight[val_rows]
            for part, weights in (("validation", w_val),
                                  ("training", sample_weight[train_rows])):
                if not weights.sum() > 0:
                    raise ValueError(
                        f"The sample weights of the {part} part of the early-stopping "
                        f"split (validation_fraction={self.validation_fraction}) "
                        "are all zero. Use another random_state or "
                        "validation_fraction, or give those samples positive weight."
                    )
            X_val, y_val = X[val_rows], y_codes[val_rows]

            def validation_score(p):
                return self._accuracy(objective, p, X_val, y_val, w_val)

        n_rows = train_rows.shape[0]
        settings = self._settings()
        batch_size = settings.batch_size_for(n_rows)
        try:
            # all rows as None: X[rows] would copy X; without early stopping
            # the variance-reduced epochs take their step from these constants
            smoothness = (objective.step_constants(
                params, train_rows if self.early_stopping else None, self.solver)
                          if self.eta0 == "auto" or not self.early_stopping else None)
            solver = settings.rule(smoothness, batch_size, n_rows)
            state = solver.init_state(params)
            state.smoothness = smoothness
            if not self.early_stopping:
                # sgd's constants are SVRG's; adam's lack the intercept's scaling
                constants = (smoothness[:2] + smoothness[3:] if self.solver == "sgd"
                             else objective.smoothness())
                result = solve_to_optimum(
                    objective, settings, solver, state, constants,
                    batch_size=batch_size, rng=rng, rows=train_rows, n_rows=n_rows)
                return self._minibatch_fitted(objective, state, rng, *result)
            n_epochs, loss_curve, scores, converged = solver.fit(
                state, objective.minibatch_epoch, train_rows,
                batch_size=batch_size,
                rng=rng, shuffle=self.shuffle,
                max_iter=self.max_iter, tol=settings.tol,
                n_iter_no_change=self.n_iter_no_change,
                validation_score=validation_score,
                model_loss=self._model_loss(objective, train_rows),
                verbose=self.verbose,
            )
        except DivergenceError as exc:
            raise self._divergence_error(str(exc)) from None
        fitted = self._fitted_params(objective, state.model)
        if not converged:
            self._warn_max_epochs()
        return {**fitted, "n_iter_": n_epochs,
                "t_": n_epochs * n_rows, "loss_curve_": loss_curve,
                "validation_scores_": scores, "best_validation_score_": max(scores),
                "_minibatch_state": state, "_rng": rng}

    def _minibatch_fitted(self, objective, state, rng, n_epochs, n_full, loss_curve,
                          failure):
        """The fitted attributes after :func:`solve_to_optimum` (in memory or
        on dask)."""
        fitted = self._fitted_params(objective, state.model)
        if failure is not None:
            warnings.warn(
                f"solver={self.solver!r} did not converge: {failure}. Scale the "
                "data (e.g. with StandardScaler), increase max_iter, or raise tol.",
                ConvergenceWarning, stacklevel=5,  # the caller of fit
            )
        n_samples = objective.X.shape[0]
        return {**fitted, "n_iter_": n_epochs + n_full, "t_": n_epochs * n_samples,
                "loss_curve_": loss_curve, "validation_scores_": None,
                "best_validation_score_": None, "_minibatch_state": state,
                "_rng": rng}

    def _warn_max_epochs(self):
        warnings.warn(
            f"Maximum number of epochs ({self.max_iter}) reached before "
            f"convergence (tol={self._tol()}). Increase max_iter.",
            ConvergenceWarning, stacklevel=5,  # the caller of fit
        )

    def _model_loss(self, objective, rows, max_rows=16384):
        """The training objective of a model, on at most ``max_rows`` rows."""
        if rows.shape[0] <= max_rows and rows.shape[0] == objective.X.shape[0]:
            return objective.objective
        some = some_rows(rows, max_rows)
        return self._objective(objective.X[some], objective.y[some],
                               objective.sample_weight[some],
                               np.arange(objective.n_classes),
                               center=objective.center).objective

    @staticmethod
    def _accuracy(objective, params, X, y_codes, weights):
        scores = objective.decision(params, X)
        pred = (scores[:, 0] > 0).astype(np.intp) if objective.binary else \
            np.argmax(scores, axis=1)
        return float(np.average(pred == y_codes, weights=weights))

    @available_if(_stochastic_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of minibatch updates over ``X`` (``"sgd"``/``"adam"`` only).

        Each call continues from ``coef_`` and ``intercept_`` as they are (so
        edits to them are honoured) and from the optimiser's state (momentum,
        Adam's moments, the update count). A call that raises leaves the
        estimator as it was.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A chunk of training data.
        y : array-like of shape (n_samples,)
            Its class labels; all must be among ``classes``.
        classes : array-like of shape (n_classes,), default=None
            Every class of the problem. Required on the first call, checked
            against ``classes_`` afterwards.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples. A zero weight counts as an
            absent sample, so a chunk whose weights (times ``class_weight``)
            are all zero is refused with a ``ValueError``, as ``fit`` refuses
            such data.

        Returns
        -------
        self : SoftmaxRegressionClassifier
            The updated estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from sksoftmax import SoftmaxRegressionClassifier
        >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
        >>> y = np.array(["a", "a", "b", "b"])
        >>> clf = SoftmaxRegressionClassifier(solver="sgd", random_state=0)
        >>> for start in (0, 2):  # a stream of two chunks
        ...     _ = clf.partial_fit(X[start:start + 2], y[start:start + 2],
        ...                         classes=["a", "b"])
        >>> clf.n_iter_
        2
        >>> clf.predict([[0.0, 0.0], [4.0, 2.0]])
        array(['a', 'b'], dtype='<U1')
        """
        with _restored_on_error(self):
            self._partial_fit(X, y, classes, sample_weight)
        return self

    def _partial_fit(self, X, y, classes, sample_weight):
        self._check_solver_params()
        if _dask.is_dask_collection(X) or _dask.is_dask_collection(y):
            raise TypeError(
                "partial_fit takes one in-memory chunk (a NumPy array, sparse "
                "matrix or pandas DataFrame), got a dask collection. Use fit, or "
                "dask_ml.wrappers.Incremental(estimator).fit(X, y, classes=...), "
                "which passes the chunks of a dask array to partial_fit one by one."
            )
        if self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported for partial_fit: the "
                "class frequencies of a single chunk are not those of the data. "
                "Compute weights with sklearn.utils.compute_class_weight on all "
                "of y and pass them as a dict."
            )
        first_call = _check_partial_fit_first_call(self, classes)
        if len(self.classes_) < 2:
            raise ValueError(
                f"classes must hold at least 2 classes, got {self.classes_!r}."
            )
        X, y = self._validate_X_y(X, y, reset=first_call)
        known = np.isin(y, self.classes_)
        if not np.all(known):
            raise ValueError(
                f"y contains labels not in classes: {np.unique(y[~known])!r}; "
                f"classes are {self.classes_!r}."
            )
        y_codes = np.searchsorted(self.classes_, y).astype(np.intp)
        sample_weight = self._sample_weight(X, y_codes, sample_weight, self.classes_,
                                            allow_all_zero=True)
        if not sample_weight.sum() > 0:
            # zero weight is absence: such a chunk is an empty one. Its steps
            # would be the penalty's alone, and momentum or Adam's moments
            # would still move the model (its norm grew 36-47 % on iris)
            raise ValueError(
                "The sample weights of this chunk (times class_weight) are all "
                "zero: it holds no data. Skip it, or give its samples positive "
                "weight."
            )

        # minibatch kernels run serially: no threads to start
        objective = self._objective(X, y_codes, sample_weight, self.classes_)
        settings = self._settings()
        batch_size = settings.batch_size_for(X.shape[0], chunk=True)
        state = getattr(self, "_minibatch_state", None)
        if first_call or state is None or state.solver != self.solver:
            params = (objective.init_params() if first_call
                      else self._user_params(objective))
            # eta0="auto" takes its constants from the first chunk
            smoothness = (objective.step_constants(params, None, self.solver)
                          if self.eta0 == "auto" else None)
            solver = self._rule(settings, smoothness, batch_size, X.shape[0])
            state = solver.init_state(params)
            state.smoothness = smoothness
            n_iter, t, loss_curve = 0, 0, []
            rng = check_random_state(self.random_state)
        else:
            # work on a copy: a failing epoch must not advance the stored state
            state = state.copy()
            edited = any(
                not np.array_equal(mine, theirs)
                for mine, theirs in zip(
                    self._fitted_params(objective, state.model).values(),
                    (self.coef_, self.intercept_), strict=True))
            if edited:  # the user changed coef_ or intercept_: start from theirs
                state.restart_from(self._user_params(objective))
            if state.smoothness is None and self.eta0 == "auto":
                # a numeric eta0 before: the constants from this chunk
                state.smoothness = objective.step_constants(state.params, None,
                                                            self.solver)
            solver = self._rule(settings, state.smoothness, batch_size, X.shape[0])
            n_iter, t, loss_curve = self.n_iter_, self.t_, self.loss_curve_
            rng = self._rng
        start = time.perf_counter()
        try:
            loss = solver.epoch(state, objective.minibatch_epoch, objective.all_rows,
                                batch_size, rng if self.shuffle else None)
        except DivergenceError:
            raise self._divergence_error(f"epoch #{n_iter + 1}") from None
        loss += objective.l1_penalty(state.params)
        fitted = self._fitted_params(objective, state.model)
        for name, value in fitted.items():
            setattr(self, name, value)
        self._minibatch_state = state
        self._rng = rng
        self.n_iter_ = n_iter + 1
        self.t_ = t + X.shape[0]
        self.loss_curve_ = [*loss_curve, loss]
        self.validation_scores_ = None
        self.best_validation_score_ = None
        if self.verbose:
            print(f"Epoch {self.n_iter_}, loss = {loss:.8f}, "
                  f"time = {time.perf_counter() - start:.3f}s")

    # -------------------------------------------------------------- prediction
    def decision_function(self, X):
        """Logits of the samples.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            A dask array (or DataFrame) gives a dask array, computed chunk
            by chunk where the chunks are.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            With two classes, the logit of ``classes_[1]`` (positive means
            ``classes_[1]``); otherwise one logit per class.

        Examples
        --------
        >>> import numpy as np
        >>> from sksoftmax import SoftmaxRegressionClassifier
        >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
        >>> y = np.array(["a", "a", "b", "b"])
        >>> clf = SoftmaxRegressionClassifier(alpha=0.1).fit(X, y)
        >>> clf.decision_function([[0.5, 0.5], [3.0, 2.0]]).round(3)
        array([-1.773,  2.879])
        """
        return self._predictions("decision_function", X)

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            A dask array (or DataFrame) gives a dask array.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np
        >>> from sksoftmax import SoftmaxRegressionClassifier
        >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
        >>> y = np.array(["a", "a", "b", "b"])
        >>> clf = SoftmaxRegressionClassifier(alpha=0.1).fit(X, y)
        >>> clf.predict([[0.5, 0.5], [3.0, 2.0]])
        array(['a', 'b'], dtype='<U1')
        """
        return self._predictions("predict", X)

    def predict_proba(self, X):
        """Class probabilities ``softmax(W x + b)``, columns in ``classes_`` order.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            A dask array (or DataFrame) gives a dask array.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from sksoftmax import SoftmaxRegressionClassifier
        >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
        >>> y = np.array(["a", "a", "b", "b"])
        >>> clf = SoftmaxRegressionClassifier(alpha=0.1).fit(X, y)
        >>> clf.predict_proba([[0.5, 0.5], [3.0, 2.0]]).round(3)
        array([[0.855, 0.145],
               [0.053, 0.947]])
        """
        return self._predictions("predict_proba", X)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, by log-sum-exp (never ``log(0)``).

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            A dask array (or DataFrame) gives a dask array.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from sksoftmax import SoftmaxRegressionClassifier
        >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
        >>> y = np.array(["a", "a", "b", "b"])
        >>> clf = SoftmaxRegressionClassifier(alpha=0.1).fit(X, y)
        >>> log_proba = clf.predict_log_proba([[0.5, 0.5], [3.0, 2.0]])
        >>> proba = clf.predict_proba([[0.5, 0.5], [3.0, 2.0]])
        >>> bool(np.allclose(np.exp(log_proba), proba))
        True
        """
        return self._predictions("predict_log_proba", X)

    def _predictions(self, method, X):
        check_is_fitted(self)
        model = (self.coef_, self.intercept_, self.classes_)
        if _dask.is_dask_collection(X):
            return _dask.predict(method, self._dask_features(X, reset=False), *model)
        X = validate_data(self, X, reset=False, accept_sparse="csr",
                          dtype=[np.float64, np.float32], accept_large_sparse=True)
        return linear_predictions(method, X, *model)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
