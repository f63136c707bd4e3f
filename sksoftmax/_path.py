"""Regularisation paths and the cross-validated estimator built on them.

A path fits a sequence of ``alpha`` values from the strongest to the
weakest, each fit warm-started from the previous optima, on one objective:
the validation, the row subset, the CSC copy, the step constants and the
curvature estimate are made once per path, not once per ``alpha``.
"""

from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)
from threadpoolctl import threadpool_limits

from ._estimator import SoftmaxRegressionClassifier

# The int form of ``alphas``: without L1, LogisticRegressionCV's Cs=n
# (C log-spaced over 1e-4..1e4, alpha = 1 / (C sum(s))); with L1, from the
# smallest alpha whose optimum is all zeros down by this factor (glmnet's).
_L2_C_RANGE = (1e-4, 1e4)
_L1_RANGE = 1e-4


def _fit_path(estimator, objective, alphas, params):
    """Fit ``estimator``'s solver on ``objective`` for each alpha in turn.

    ``params`` is the first start; each later fit starts on the secant
    through the last two optima (the last optimum for the second). Returns
    ``(coefs, intercepts, n_iter)`` stacked over ``alphas``.
    """
    coefs, intercepts, n_iter = [], [], []
    optimum = None
    for alpha in alphas:
        estimator.alpha = objective.alpha = float(alpha)
        with objective.parallel():
            if estimator.solver == "lbfgs":
                fitted = estimator._fit_lbfgs(objective, params)
            else:
                fitted = estimator._fit_minibatch(objective, params)
        coefs.append(fitted["coef_"])
        intercepts.append(fitted["intercept_"])
        n_iter.append(int(fitted["n_iter_"]))
        previous, optimum = optimum, objective.init_params(
            fitted["coef_"].astype(float), fitted["intercept_"].astype(float))
        params = optimum
        k = len(coefs)
        if previous is not None and k < len(alphas):
            # the next start on the secant through the last two optima, in
            # log alpha (the path is smooth there). From the last optimum, a
            # fit starts within tol of where it ends and can stop early: on
            # 20k x 256 embeddings (K = 20, alphas 1..1e-6, tol=1e-4) the
            # folds then under-fitted the weakest alphas and chose 5e-6 where
            # GridSearchCV chose 1e-6. From the secant they chose 1e-6, in
            # fewer iterations (20-35 % fewer on digits and MNIST-1D-shaped
            # data at equal tol).
            step = np.log(alphas[k] / alphas[k - 1])
            last = np.log(alphas[k - 1] / alphas[k - 2])
            if step != 0 and last != 0:
                params = optimum + (step / last) * (optimum - previous)
    return np.stack(coefs), np.stack(intercepts), np.array(n_iter)


def _alpha_grid(objective, n_alphas, l1_ratio):
    """``n_alphas`` values from strong to weak regularisation (see ``alphas``
    in :func:`softmax_regression_path`)."""
    if l1_ratio == 0:
        C = np.geomspace(*_L2_C_RANGE, n_alphas)
        return 1.0 / (C * objective.weight_sum)
    # the coefficients' gradient at W = 0 with the intercept at its own
    # optimum (the weighted class frequencies): above alpha_max = its largest
    # entry / l1_ratio, W = 0 is optimal
    frequencies = np.bincount(objective.y, weights=objective.sample_weight,
                              minlength=objective.n_classes)
    frequencies = np.maximum(frequencies / frequencies.sum(), 1e-12)
    logits = np.log(frequencies)
    params = np.zeros(objective.n_params)
    if objective.fit_intercept:
        _, intercept = objective.unpack(params)
        intercept[:] = (logits[1:] - logits[0]) if objective.binary else logits
    _, gradient = objective.loss_gradient(params)  # the L2 term is 0 at W = 0
    n_coef = objective.n_logits * objective.n_features
    top = float(np.max(np.abs(gradient[:n_coef]), initial=0.0)) / l1_ratio
    if not top > 0:
        top = 1.0
    return np.geomspace(top, top * _L1_RANGE, n_alphas)


def _resolve_alphas(alphas, objective, l1_ratio):
    if isinstance(alphas, Integral):
        return _alpha_grid(objective, int(alphas), l1_ratio)
    alphas = np.asarray(alphas, dtype=float).ravel()
    if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas < 0):
        raise ValueError(
            f"alphas must be a positive int or a non-empty array of finite values "
            f">= 0; got {alphas!r}.")
    return np.sort(alphas)[::-1]  # strongest first: each fit starts nearer


def softmax_regression_path(X, y, *, alphas=10, sample_weight=None, **params):
    """Fit :class:`SoftmaxRegressionClassifier` for a sequence of ``alpha``.

    The alphas are visited from the largest (strongest regularisation) to
    the smallest, each fit warm-started on the secant through the previous
    two optima (in log alpha), on one validated copy of the data: its
    objective, CSC copy, step constants and curvature estimate are made once
    for the whole path.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        In-memory data (dask collections are not taken here).
    y : array-like of shape (n_samples,)
    alphas : int or array-like, default=10
        The regularisation strengths. An int ``n`` gives ``n`` values: without
        an L1 part, ``alpha = 1 / (C * sum(s))`` for ``C`` log-spaced over
        ``1e-4 .. 1e4`` (``LogisticRegressionCV``'s ``Cs=n``; ``s`` the
        sample times class weights); with one, log-spaced from ``alpha_max``,
        the smallest alpha at which every coefficient is zero, down to
        ``1e-4 * alpha_max``. An array is used as given, sorted decreasing.
    sample_weight : array-like of shape (n_samples,), default=None
    **params
        Any other parameter of :class:`SoftmaxRegressionClassifier`
        (``solver``, ``l1_ratio``, ``tol``, ...); ``alpha`` and
        ``warm_start`` are the path's own.

    Returns
    -------
    coefs : ndarray of shape (n_alphas, n_logits, n_features)
        ``coef_`` at each alpha (``n_logits`` is 1 for two classes).
    intercepts : ndarray of shape (n_alphas, n_logits)
    alphas : ndarray of shape (n_alphas,)
        The alphas, in the order fitted (decreasing).
    n_iter : ndarray of shape (n_alphas,)
        ``n_iter_`` of each fit.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sksoftmax import softmax_regression_path
    >>> X, y = load_iris(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> coefs, intercepts, alphas, n_iter = softmax_regression_path(
    ...     X, y, alphas=[1.0, 0.1, 0.01], l1_ratio=1.0)
    >>> coefs.shape
    (3, 3, 4)
    >>> [int((c != 0).sum()) for c in coefs]  # weaker L1, more features
    [0, 3, 5]
    """
    for name in ("alpha", "warm_start"):
        if name in params:
            raise TypeError(f"softmax_regression_path sets {name!r} itself; "
                            f"pass alphas instead.")
    estimator = SoftmaxRegressionClassifier(**params)
    estimator._validate_params()
    estimator._check_solver_params()
    objective, _ = estimator._in_memory_objective(X, y, sample_weight)
    alphas = _resolve_alphas(alphas, objective, estimator.l1_ratio)
    coefs, intercepts, n_iter = _fit_path(estimator, objective, alphas,
                                          objective.init_params())
    return coefs, intercepts, alphas, n_iter


def _fold_path(params, X, y, sample_weight, train, test, alphas, classes, scorer):
    """One fold: the path on ``train``; the score of each alpha on ``test``."""
    estimator = SoftmaxRegressionClassifier(**params)
    w = None if sample_weight is None else sample_weight[train]
    objective, fold_classes = estimator._in_memory_objective(X[train], y[train], w)
    if not np.array_equal(fold_classes, classes):
        missing = np.setdiff1d(classes, fold_classes)
        raise ValueError(
            f"A training fold of cv lacks the classes {missing.tolist()}: every "
            f"class needs samples in every training fold. Use fewer folds or a "
            f"stratified cv.")
    coefs, intercepts, n_iter = _fit_path(estimator, objective, alphas,
                                          objective.init_params())
    model = SoftmaxRegressionClassifier(**params)
    model.classes_, model.n_features_in_ = classes, X.shape[1]
    X_test, y_test = X[test], y[test]  # once for every alpha
    kwargs = {} if sample_weight is None else {"sample_weight": sample_weight[test]}
    scores = []
    for coef, intercept in zip(coefs, intercepts, strict=True):
        model.coef_, model.intercept_ = coef, intercept
        scores.append(scorer(model, X_test, y_test, **kwargs))
    return coefs, intercepts, n_iter, np.array(scores)


class SoftmaxRegressionClassifierCV(ClassifierMixin, BaseEstimator):
    """:class:`SoftmaxRegressionClassifier` with ``alpha`` chosen by cross-validation.

    As :class:`~sklearn.linear_model.LogisticRegressionCV`: each fold fits a
    path of alphas, from the strongest regularisation to the weakest, each
    fit warm-started from the previous optima on the fold's one objective
    (see :func:`softmax_regression_path`); the alpha with the best mean
    score over the folds is kept, and with ``refit=True`` the model is fitted
    on all the data at that alpha, starting from the folds' mean model.

    Parameters
    ----------
    alphas : int or array-like, default=10
        As in :func:`softmax_regression_path`: an int gives that many values
        (without L1, the counterparts ``1 / (C sum(s))`` of
        ``LogisticRegressionCV``'s ``Cs``), an array is used as given.
    l1_ratio : float, default=0.0
        Elastic-net mixing, as in :class:`SoftmaxRegressionClassifier`.
    cv : int, cross-validation generator or iterable, default=None
        As in :func:`sklearn.model_selection.check_cv` for a classifier:
        None is 5-fold stratified.
    scoring : str or callable, default=None
        A scorer name or callable (:func:`sklearn.metrics.check_scoring`);
        None is accuracy, as ``LogisticRegressionCV``'s.
    solver : {"lbfgs", "sgd", "adam"}, default="lbfgs"
    fit_intercept : bool, default=True
    max_iter : int, default=1000
    tol : float or "auto", default="auto"
    class_weight : dict, "balanced" or None, default=None
    label_smoothing : float, default=0.0
    random_state : int, RandomState instance or None, default=None
        For the stochastic solvers' shuffling.
    refit : bool, default=True
        Fit on all the data at ``alpha_``; otherwise ``coef_`` and
        ``intercept_`` are the folds' mean model at ``alpha_``.
    n_jobs : int, default=None
        Folds run on this many threads (the kernels release the GIL), each
        fit then on one thread with BLAS held to one thread; None or 1: one
        fold at a time, each fit on every core.
    verbose : int, default=0

    Attributes
    ----------
    alpha_ : float
        The alpha chosen.
    alphas_ : ndarray of shape (n_alphas,)
        The alphas of the path, decreasing.
    scores_ : ndarray of shape (n_folds, n_alphas)
        Each fold's score at each alpha.
    coefs_paths_ : ndarray of shape (n_folds, n_alphas, n_logits, n_features)
    intercepts_paths_ : ndarray of shape (n_folds, n_alphas, n_logits)
    n_iter_ : ndarray of shape (n_folds, n_alphas)
        Iterations of each fit of the paths.
    coef_ : ndarray of shape (n_logits, n_features)
    intercept_ : ndarray of shape (n_logits,)
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Defined only when X has feature names that are all strings.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sksoftmax import SoftmaxRegressionClassifierCV
    >>> X, y = load_iris(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> clf = SoftmaxRegressionClassifierCV(alphas=5).fit(X, y)
    >>> clf.scores_.shape
    (5, 5)
    >>> bool(clf.alpha_ in clf.alphas_)
    True
    """

    _parameter_constraints = {
        "alphas": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "cv": ["cv_object"],
        "scoring": [str, callable, None],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "random_state": ["random_state"],
        "refit": ["boolean"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(self, *, alphas=10, l1_ratio=0.0, cv=None, scoring=None,
                 solver="lbfgs", fit_intercept=True, max_iter=1000, tol="auto",
                 class_weight=None, label_smoothing=0.0, random_state=None,
                 refit=True, n_jobs=None, verbose=0):
        self.alphas = alphas
        self.l1_ratio = l1_ratio
        self.cv = cv
        self.scoring = scoring
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.random_state = random_state
        self.refit = refit
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _estimator_params(self, n_jobs=None):
        return dict(solver=self.solver, l1_ratio=self.l1_ratio,
                    fit_intercept=self.fit_intercept, max_iter=self.max_iter,
                    tol=self.tol, class_weight=self.class_weight,
                    label_smoothing=self.label_smoothing,
                    random_state=self.random_state, n_jobs=n_jobs,
                    verbose=self.verbose)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit a path per fold, choose ``alpha_``, and refit at it.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Weights in every fit and in the scores (where the scorer takes
            them).

        Returns
        -------
        self : SoftmaxRegressionClassifierCV

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sksoftmax import SoftmaxRegressionClassifierCV
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SoftmaxRegressionClassifierCV(alphas=3, cv=3).fit(X, y)
        >>> clf.scores_.shape  # 3 folds, 3 alphas
        (3, 3)
        """
        from . import _dask

        if _dask.is_dask_collection(X) or _dask.is_dask_collection(y):
            raise TypeError(
                "SoftmaxRegressionClassifierCV takes in-memory X and y; for dask "
                "collections fit SoftmaxRegressionClassifier per alpha on a "
                "held-out split.")
        X, y = validate_data(self, X, y, accept_sparse="csr",
                             dtype=[np.float64, np.float32],
                             accept_large_sparse=True)
        check_classification_targets(y)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {classes[0]}.")
        parallel = self.n_jobs is not None and self.n_jobs != 1
        params = self._estimator_params(n_jobs=1 if parallel else None)
        # the alpha grid from all the data, as LogisticRegressionCV's Cs
        full = SoftmaxRegressionClassifier(**params)
        full._check_solver_params()
        objective, _ = full._in_memory_objective(X, y, sample_weight)
        alphas = _resolve_alphas(self.alphas, objective, self.l1_ratio)
        del objective
        folds = list(check_cv(self.cv, y, classifier=True).split(X, y))
        scorer = check_scoring(SoftmaxRegressionClassifier(), scoring=self.scoring)
        with threadpool_limits(1 if parallel else None, user_api="blas"):
            results = Parallel(n_jobs=self.n_jobs, prefer="threads")(
                delayed(_fold_path)(params, X, y, sample_weight, train, test,
                                    alphas, classes, scorer)
                for train, test in folds)
        coefs, intercepts, n_iter, scores = (np.stack(r) for r in zip(*results,
                                                                       strict=True))
        best = int(np.argmax(scores.mean(axis=0)))  # ties: the stronger alpha
        self.alphas_, self.scores_, self.n_iter_ = alphas, scores, n_iter
        self.coefs_paths_, self.intercepts_paths_ = coefs, intercepts
        self.alpha_ = float(alphas[best])
        coef = coefs[:, best].astype(float).mean(axis=0)
        intercept = intercepts[:, best].astype(float).mean(axis=0)
        if self.refit:
            final = SoftmaxRegressionClassifier(alpha=self.alpha_, warm_start=True,
                                                **self._estimator_params())
            final.classes_, final.coef_, final.intercept_ = classes, coef, intercept
            final.fit(X, y, sample_weight)
            coef, intercept = final.coef_, final.intercept_
        self.classes_ = classes
        self.coef_ = np.asarray(coef, dtype=X.dtype)
        self.intercept_ = np.asarray(intercept, dtype=X.dtype)
        return self

    def _model(self):
        check_is_fitted(self)
        model = SoftmaxRegressionClassifier()
        model.classes_, model.coef_, model.intercept_ = (
            self.classes_, self.coef_, self.intercept_)
        model.n_features_in_ = self.n_features_in_
        if hasattr(self, "feature_names_in_"):
            model.feature_names_in_ = self.feature_names_in_
        return model

    def decision_function(self, X):
        """Logits of the samples (one per class; one in all with two classes).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sksoftmax import SoftmaxRegressionClassifierCV
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SoftmaxRegressionClassifierCV(alphas=3, cv=3).fit(X, y)
        >>> clf.decision_function(X[:2]).shape
        (2, 3)
        """
        return self._model().decision_function(X)

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sksoftmax import SoftmaxRegressionClassifierCV
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SoftmaxRegressionClassifierCV(alphas=3, cv=3).fit(X, y)
        >>> clf.predict(X[:2]).tolist()
        [0, 0]
        """
        return self._model().predict(X)

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sksoftmax import SoftmaxRegressionClassifierCV
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SoftmaxRegressionClassifierCV(alphas=3, cv=3).fit(X, y)
        >>> clf.predict_proba(X[:2]).sum(axis=1).round(6).tolist()
        [1.0, 1.0]
        """
        return self._model().predict_proba(X)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, by log-sum-exp.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sksoftmax import SoftmaxRegressionClassifierCV
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SoftmaxRegressionClassifierCV(alphas=3, cv=3).fit(X, y)
        >>> bool((clf.predict_log_proba(X[:2]) <= 0).all())
        True
        """
        return self._model().predict_log_proba(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
