"""The dask driver: the same objective and solvers over data held in chunks.

Beside the in-memory :class:`~sksoftmax._objective.SoftmaxObjective`, a
:class:`DaskObjective` holds ``X`` as a dask array whose row chunks stay
where dask keeps them (persisted on the workers when they fit in the
cluster's memory, otherwise read again from their source at every pass).
Its :meth:`~DaskObjective.loss_gradient` maps the fused kernels over the
chunks (one :class:`SoftmaxObjective` per chunk, on the worker that holds
it), adds their weighted sums up a tree of depth ``log_8(n_chunks)`` and
returns only the sums: the parameters travel to the workers and the
gradient back, ``n_logits * (n_features + 1) * 8`` bytes each way per chunk,
never a row of ``X``. The L-BFGS solver sees a ``loss_gradient`` callable,
as in memory.

The minibatch solvers run *local SGD with parameter averaging* (Zinkevich
et al., "Parallelized stochastic gradient descent", 2010; McDonald et al.'s
iterative parameter mixing, 2010): each epoch broadcasts the optimiser
state, every group of chunks (the chunks one worker holds) runs the compiled
epoch over its own rows, in a chain from chunk to chunk, and the groups'
states are averaged, weighted by the sample weight each group visited.
This needs one exchange of the state per epoch instead of one per minibatch.
The SVRG epochs that follow the first run the same way, every group from the
same snapshot with the same full gradient (a pass over the chunks) as control
variate; the snapshots, the rejection of epochs that raise the objective and
the full-batch finish are the in-memory solver's.

dask is imported only when a dask collection reaches the estimator; nothing
here runs for users without it. ``distributed`` is used when a client is
active (to size the cluster's memory and find where chunks live), never
required: the local schedulers run the same graphs.
"""

import contextlib
import os
import warnings

import numpy as np
import scipy.sparse as sp

from ._kernels import weighted_column_moments
from ._math import linear_predictions
from ._objective import (
    FEATURE_SAMPLE_ROWS,
    ParameterLayout,
    SoftmaxObjective,
    check_weight_per_class,
    class_weights,
)
from ._solvers import solve_to_optimum

# Chunk sums are added up in groups of this many per level of the tree.
_FAN_IN = 8
# X is persisted on the workers when it takes at most this share of their
# memory (of this process's available memory under a local scheduler).
_PERSIST_SHARE = 0.5
# Rows gathered on one worker for the minibatch solvers' stopping rule and
# step-size constants, as the in-memory solvers use at most 16384.
_SAMPLE_ROWS = 16384


def is_dask_collection(obj):
    """Whether ``obj`` is a dask array, DataFrame or Series (dask not imported)."""
    return hasattr(obj, "__dask_graph__") and hasattr(obj, "ndim")


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # a dask collection without dask.array installed
        raise ImportError(
            "Fitting on dask collections needs the 'dask' extra: "
            "pip install 'sksoftmax[dask]'."
        ) from exc
    return dask, da


def _client():
    """The active ``distributed`` client, or None."""
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:  # no client
        return None


# --------------------------------------------------------------- validation
def _as_array(obj, name, lengths=True):
    """A dask array from a dask array, DataFrame or Series (with ``lengths``,
    a DataFrame's partition lengths are computed on the workers: only they
    return)."""
    if hasattr(obj, "to_dask_array"):
        return obj.to_dask_array(lengths=True if lengths else None)
    if not hasattr(obj, "chunks"):
        raise TypeError(f"{name} must be a dask array, DataFrame or Series, got "
                        f"{type(obj).__name__}.")
    return obj


def _check_row_chunks(arr, name):
    if any(np.isnan(c) for c in arr.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes along its rows (as after boolean "
            f"indexing or from a dask DataFrame): compute them first with "
            f"{name}.compute_chunk_sizes(), or use df.to_dask_array(lengths=True)."
        )


def _aligned(arr, X, name):
    """A 1-D dask array with X's row chunks: numpy input is split like X;
    dask input must already line up."""
    _, da = _dask()
    if is_dask_collection(arr):
        arr = _as_array(arr, name)
        if arr.ndim == 2 and arr.shape[1] == 1:
            from sklearn.exceptions import DataConversionWarning
            warnings.warn(
                f"A column-vector {name} was passed when a 1d array was expected. "
                f"Please change the shape of {name} to (n_samples,), for example "
                "using ravel().", DataConversionWarning, stacklevel=5)
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}.")
        _check_row_chunks(arr, name)
        if arr.shape[0] != X.shape[0]:
            raise ValueError(
                "Found input variables with inconsistent numbers of samples: "
                f"[{X.shape[0]}, {arr.shape[0]}]")
        if arr.chunks[0] != X.chunks[0]:
            raise ValueError(
                f"The row chunks of X {X.chunks[0]} and of {name} "
                f"{arr.chunks[0]} do not line up. Rechunk one like the other, "
                f"e.g. {name} = {name}.rechunk({{0: X.chunks[0]}})."
            )
        return arr
    from sklearn.utils.validation import column_or_1d
    arr = column_or_1d(np.asarray(arr), warn=True)
    if arr.shape[0] != X.shape[0]:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"[{X.shape[0]}, {arr.shape[0]}]")
    return da.from_array(arr, chunks=(X.chunks[0],))


def feature_names_source(X):
    """What carries a dask collection's column names (a DataFrame's pandas
    meta), for sklearn's feature-name checks."""
    return getattr(X, "_meta", X)


def as_features(X, *, lengths=True):
    """X as a float32/float64 dask array with one column chunk (the caller
    checks ``n_features_in_`` and feature names on it, as ``validate_data``
    does). ``lengths``: compute unknown row-chunk lengths (a DataFrame's)."""
    X = _as_array(X, "X", lengths=lengths)
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D dask array, got {X.ndim}D array instead. Reshape your "
            "data either using array.reshape(-1, 1) if your data has a single "
            "feature or array.reshape(1, -1) if it contains a single sample.")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold numbers; got dtype {X.dtype}.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if X.shape[1] == 0:
        raise ValueError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 "
                         "is required.")
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    return X


def objective(X, y, sample_weight, *, class_weight=None, fit_intercept=True,
              alpha=0.0, l1_ratio=0.0, label_smoothing=0.0):
    """Validate dask input and set up a :class:`DaskObjective` for it.

    ``X`` comes from :func:`as_features`; ``class_weight`` and the rest are
    the estimator's parameters of those names. Nothing of X is computed in
    this process: one pass over the chunks, on the workers, returns per
    chunk whether it is finite, its weight per class and its column sums.

    Returns
    -------
    objective : DaskObjective
    classes : ndarray
    """
    dask, da = _dask()
    _check_row_chunks(X, "X")
    if X.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a "
                         "minimum of 1 is required.")
    y = _aligned(y, X, "y")
    weights = None if sample_weight is None else _aligned(sample_weight, X,
                                                          "sample_weight")
    from sklearn.utils.multiclass import check_classification_targets
    classes = np.asarray(da.unique(y).compute())
    check_classification_targets(classes)
    if len(classes) < 2:
        raise ValueError(
            "This solver needs samples of at least 2 classes in the data, "
            f"but the data contains only one class: {classes[0]}.")

    codes = y.map_blocks(_codes, classes, dtype=np.intp)
    if weights is None:
        weights = da.ones(X.shape[0], chunks=(X.chunks[0],), dtype=np.float64)
    else:
        weights = weights.astype(np.float64)
    blocks = _blocks(X, codes, weights)
    summaries = dask.compute(*[dask.delayed(_summary)(*b, len(classes))
                               for b in blocks])
    for i, (finite_X, finite_w, negative_w, _, _) in enumerate(summaries):
        if not finite_X:
            raise ValueError(f"Input X contains NaN or infinity (in row chunk {i}).")
        if not finite_w:
            raise ValueError("Input sample_weight contains NaN or infinity.")
        if negative_w:
            raise ValueError("Negative values in data passed to `sample_weight`")
    weight_per_class = np.sum([s[3] for s in summaries], axis=0)
    class_weight = class_weights(class_weight, classes, classes, weight_per_class)
    if class_weight is not None:
        weights = da.map_blocks(_times_class_weight, weights, codes, class_weight,
                                dtype=np.float64)
        weight_per_class = weight_per_class * class_weight
    check_weight_per_class(weight_per_class)
    if _persist_fits(X.nbytes + 16 * X.shape[0]):
        X, codes, weights = dask.persist(X, codes, weights)
        if _client() is not None:
            from distributed import futures_of, wait
            wait(futures_of([X, codes, weights]))  # loaded before the solver times
    layout = ParameterLayout(
        X.shape[1], len(classes), fit_intercept=fit_intercept, alpha=alpha,
        l1_ratio=l1_ratio, label_smoothing=label_smoothing)
    weight_sum = float(weight_per_class.sum())
    center = None
    if fit_intercept and summaries[0][4] is not None and weight_sum > 0:
        # solved in centred coordinates, as in memory; a class weight
        # reweights the rows, so their mean is taken again
        if class_weight is None:
            center = np.sum([s[4] for s in summaries], axis=0) / weight_sum
        else:
            center = dask.compute(*[dask.delayed(_column_sums)(*b)
                                    for b in _blocks(X, codes, weights)])
            center = np.sum(center, axis=0) / weight_sum
    return DaskObjective(X, codes, weights, layout, weight_sum,
                         center=center), classes


def _persist_fits(nbytes):
    """Whether ``nbytes`` of chunks may be kept in memory for the fit."""
    client = _client()
    if client is not None:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        limits = [w.get("memory_limit") or 0 for w in workers]
        if not limits or min(limits) == 0:  # no limit set: nothing to go by
            return True
        return nbytes <= _PERSIST_SHARE * sum(limits)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return True
    return nbytes <= _PERSIST_SHARE * available


def _blocks(X, codes, weights):
    """``(X, codes, weights)`` per row chunk, as dask Delayed objects."""
    return list(zip(X.to_delayed().ravel(), codes.to_delayed().ravel(),
                    weights.to_delayed().ravel(), strict=True))


# ------------------------------------------- functions that run on the workers
def _codes(y, classes):
    return np.searchsorted(classes, y).astype(np.intp)


def _times_class_weight(w, codes, class_weight):
    return w * class_weight[codes]


def _chunk(X):
    """A chunk as the kernels take it: CSR when sparse."""
    return X.tocsr() if sp.issparse(X) else X


def _summary(X, codes, w, n_classes):
    """Whether the chunk and its weights are finite, any weight negative, the
    weight per class and (dense chunks) the weighted column sums."""
    sparse = sp.issparse(X)
    data = X.data if sparse else X
    sums = None
    if not sparse:
        sums = np.empty(X.shape[1])
        weighted_column_moments(X, w, sums, np.empty(X.shape[1]))
    return (bool(np.isfinite(data).all()), bool(np.isfinite(w).all()),
            bool((w < 0).any()), np.bincount(codes, weights=w, minlength=n_classes),
            sums)


def _chunk_objective(X, codes, w, spec):
    n_classes, fit_intercept, alpha, l1_ratio, label_smoothing, center = spec
    # serial: dask runs one chunk per thread; centred as the whole data
    return SoftmaxObjective(_chunk(X), codes, w, n_classes,
                            fit_intercept=fit_intercept, alpha=alpha,
                            l1_ratio=l1_ratio, label_smoothing=label_smoothing,
                            n_threads=1, sparse_copy=False,
                            center=False if center is None else center)


def _column_sums(X, codes, w):
    sums = np.empty(X.shape[1])
    weighted_column_moments(X, w, sums, np.empty(X.shape[1]))
    return sums


def _chunk_sums(X, codes, w, params, spec):
    loss_sum, grad_sum = _chunk_objective(X, codes, w, spec).loss_gradient_sums(
        params)
    return loss_sum, grad_sum.copy()


def _chunk_column_squares(X, codes, w, spec):
    return _chunk_objective(X, codes, w, spec).column_square_sums()


def _chunk_max_row_square(X, codes, w, spec, delta, weight_mean):
    if X.shape[0] == 0:
        return 0.0
    return _chunk_objective(X, codes, w, spec).max_row_square(delta, weight_mean)


def _add(*parts):
    """Sum of parts that are arrays, numbers or tuples of them (new objects)."""
    if isinstance(parts[0], tuple):
        return tuple(_add(*fields) for fields in zip(*parts, strict=True))
    total = parts[0] + parts[1] if len(parts) > 1 else np.copy(parts[0])
    for part in parts[2:]:
        total += part
    return total


def _tree(parts, combine):
    """Reduce Delayed ``parts`` up a tree of ``_FAN_IN``-way ``combine`` calls."""
    from dask import delayed
    while len(parts) > 1:
        parts = [delayed(combine, pure=True)(*parts[i:i + _FAN_IN])
                 for i in range(0, len(parts), _FAN_IN)]
    return parts[0]


def _take_rows(X, codes, w, n_rows, seed):
    rows = np.sort(np.random.default_rng(seed).choice(X.shape[0], n_rows,
                                                      replace=False))
    X = _chunk(X)
    return X[rows], codes[rows], w[rows]


def _stack(*parts):
    X = (sp.vstack([p[0] for p in parts], format="csr")
         if sp.issparse(parts[0][0]) else np.concatenate([p[0] for p in parts]))
    return (X, np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def _sample_step_constants(sample, spec, params, solver):
    return _chunk_objective(*sample, spec).step_constants(params, None, solver)


def _sample_feature_curvature(sample, spec):
    return _chunk_objective(*sample, spec).feature_curvature()


def _local_epoch(carry, X, codes, w, spec, rule, batch_size, seed):
    """One epoch over one chunk, continuing ``carry = (state, (loss sum,
    weight visited, diverged))`` from the group's previous chunk."""
    state, (loss_sum, weight, diverged) = carry
    state = state.copy()  # the input may be shared with other tasks
    n_rows = X.shape[0]
    if diverged or n_rows == 0:
        return state, (loss_sum, weight, diverged)
    order = (np.arange(n_rows, dtype=np.intp) if seed is None
             else np.random.default_rng(seed).permutation(n_rows))
    loss, diverged = _chunk_objective(X, codes, w, spec).minibatch_epoch(
        state, order, min(batch_size, n_rows), rule)
    chunk_weight = float(w.sum())
    return state, (loss_sum + loss * chunk_weight, weight + chunk_weight, diverged)


def _local_variance_reduced_epoch(carry, X, codes, w, spec, snapshot, gradient,
                                  batch_size, eta, intercept_scale, seed):
    """One SVRG epoch over one chunk, continuing ``carry = (params, (loss sum,
    weight visited, diverged))`` from the group's previous chunk."""
    params, (loss_sum, weight, diverged) = carry
    params = params.copy()
    n_rows = X.shape[0]
    if diverged or n_rows == 0:
        return params, (loss_sum, weight, diverged)
    order = (np.arange(n_rows, dtype=np.intp) if seed is None
             else np.random.default_rng(seed).permutation(n_rows))
    loss, diverged = _chunk_objective(X, codes, w, spec).variance_reduced_epoch(
        params, snapshot, gradient, order, min(batch_size, n_rows), eta,
        intercept_scale)
    chunk_weight = float(w.sum())
    return params, (loss_sum + loss * chunk_weight, weight + chunk_weight, diverged)


def _average_params(*results):
    """The mean of groups' ``(params, stats)``, weighted by the weight each
    group visited, as one ``(params, stats)``."""
    weights = np.array([stats[1] for _, stats in results])
    if not weights.sum() > 0:
        weights = np.ones(len(results))
    share = weights / weights.sum()
    params = sum(s * p for s, (p, _) in zip(share, results, strict=True))
    stats = (sum(s[0] for _, s in results), float(weights.sum()),
             any(s[2] for _, s in results))
    return params, stats


_STATE_ARRAYS = ("params", "velocity", "m", "v", "shift", "threshold", "average")


def _average_states(*results):
    """The weighted mean of groups' ``(state, stats)``, as one ``(state,
    stats)``: each array by the weight the group visited; the update count
    by the longest group's (the groups' steps ran side by side), samples
    seen summed."""
    weights = np.array([stats[1] for _, stats in results])
    if not weights.sum() > 0:
        weights = np.ones(len(results))
    share = weights / weights.sum()
    first = results[0][0]
    mean = first.copy()
    for name in _STATE_ARRAYS:
        arrays = [getattr(state, name) for state, _ in results]
        setattr(mean, name, sum(s * a for s, a in zip(share, arrays, strict=True)))
    counts = np.array([state.counts for state, _ in results])
    mean.counts = np.array([counts[:, 0].max(), counts[:, 1].sum(),
                            counts[:, 2].max()], dtype=np.int64)
    stats = (sum(s[0] for _, s in results), float(weights.sum()),
             any(s[2] for _, s in results))
    return mean, stats


def _with_base(base, result):
    """Turn per-group counts (which started from ``base``) into increments,
    so that the tree of averages adds them correctly."""
    state, stats = result
    state = state.copy()
    state.average = state.model  # the average once it has begun, else params
    state.counts = state.counts - base
    return state, stats


# ----------------------------------------------------------------- objective
class DaskObjective(ParameterLayout):
    """The objective over a dask array's row chunks, computed where they are.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
        float32 or float64, one chunk along the columns, known row chunks.
    codes : dask array of intp, shape (n_samples,)
        Class codes, chunked like X's rows.
    sample_weight : dask array of float64, shape (n_samples,)
        Sample weights times class weights, chunked like X's rows.
    layout : ParameterLayout
        Classes, intercept and penalty.
    weight_sum : float
        ``sum(sample_weight)``.
    center : ndarray of shape (n_features,), default=None
        The weighted column means: solve in centred coordinates (see
        :class:`SoftmaxObjective`); None: not.
    """

    def __init__(self, X, codes, sample_weight, layout, weight_sum, center=None):
        super().__init__(layout.n_features, layout.n_classes,
                         fit_intercept=layout.fit_intercept, alpha=layout.alpha,
                         l1_ratio=layout.l1_ratio,
                         label_smoothing=layout.label_smoothing)
        self.X = X
        self.codes = codes
        self.sample_weight = sample_weight
        self.dtype = X.dtype
        self.n_samples = X.shape[0]
        self.weight_sum = weight_sum
        self.blocks = _blocks(X, codes, sample_weight)
        self.center = center
        self.spec = (self.n_classes, self.fit_intercept, self.alpha, self.l1_ratio,
                     self.label_smoothing, center)
        self._grad = np.zeros(self.n_params)
        self.shuffle_seed = None  # set by the minibatch driver
        self._rounds = 0  # SVRG rounds so far: seeds each round's shuffles

    def parallel(self):
        """The chunks already run where dask runs them: nothing to start."""
        return contextlib.nullcontext(self)

    def _map_reduce(self, func, *args):
        """``func(X, codes, w, *args)`` on every chunk, summed up the tree."""
        import dask
        from dask import delayed
        args = [delayed(a) if isinstance(a, np.ndarray) else a for a in args]
        parts = [delayed(func, pure=True)(*b, *args) for b in self.blocks]
        return dask.compute(_tree(parts, _add))[0]

    def loss_gradient(self, params):
        """Smooth part of the objective and its gradient, as
        :meth:`SoftmaxObjective.loss_gradient`, from one pass over the chunks.

        The gradient array is reused by the next call.
        """
        loss_sum, grad_sum = self._map_reduce(_chunk_sums, params.copy(), self.spec)
        loss = self.finish(loss_sum, grad_sum, params, self.weight_sum, self._grad)
        return loss, self._grad

    def curvature_estimate(self):
        """As :meth:`SoftmaxObjective.curvature_estimate`, over the chunks."""
        return self.curvature_from(
            self._map_reduce(_chunk_column_squares, self.spec), self.weight_sum)

    def feature_curvature(self):
        """As :meth:`SoftmaxObjective.feature_curvature` (which draws at most
        4,096 rows), on about that many rows gathered on a worker; None for
        chunks of scipy sparse matrices."""
        from dask import delayed
        sample = self.sample(FEATURE_SAMPLE_ROWS, seed=0)
        return delayed(_sample_feature_curvature, pure=True)(sample,
                                                             self.spec).compute()

    def max_row_square(self, delta):
        """:meth:`SoftmaxObjective.max_row_square` over all chunks."""
        import dask
        from dask import delayed
        mean = self.weight_sum / self.n_samples
        parts = [delayed(_chunk_max_row_square, pure=True)(*b, self.spec, delta, mean)
                 for b in self.blocks]
        return float(max(dask.compute(*parts)))

    def sample(self, n_rows, seed):
        """About ``n_rows`` random rows gathered into one chunk on a worker
        (all rows when there are fewer), kept there for the fit: a Delayed
        ``(X, codes, weights)``."""
        import dask
        from dask import delayed
        rng = np.random.default_rng(seed)
        sizes = [int(c) for c in self.X.chunks[0]]
        share = min(1.0, n_rows / self.n_samples)
        parts = [delayed(_take_rows, pure=True)(*b, min(size, round(share * size)),
                                                 int(rng.integers(2**31)))
                 for b, size in zip(self.blocks, sizes, strict=True)]
        return dask.persist(delayed(_stack, pure=True)(*parts))[0]

    def minibatch_epoch(self, state, order, batch_size, rule):
        """One round of local epochs and parameter averaging (see the module).

        ``order`` lists the chunk groups to visit (``range(len(groups))``,
        permuted when shuffling); within a group the chunks are visited in a
        new random order, and rows within a chunk too, when
        ``shuffle_seed`` is set. ``state`` is updated in place.

        Returns
        -------
        loss : float
            Weighted mean of the minibatch losses over the round.
        diverged : bool
        """
        import dask
        from dask import delayed
        rng = (None if self.shuffle_seed is None
               else np.random.default_rng([self.shuffle_seed, state.step]))
        base = state.counts.copy()
        chains = self._chains(order, rng, delayed(state.copy(), pure=False),
                              lambda carry, c, seed: delayed(_local_epoch, pure=True)(
                                  carry, *self.blocks[c], self.spec, rule,
                                  batch_size, seed))
        results = [delayed(_with_base, pure=True)(base, chain) for chain in chains]
        mean, (loss_sum, weight, diverged) = dask.compute(
            _tree(results, _average_states))[0]
        for name in _STATE_ARRAYS:
            setattr(state, name, getattr(mean, name))
        state.counts[:] = base + mean.counts
        return (loss_sum / weight if weight > 0 else 0.0), diverged

    def _chains(self, order, rng, start, task):
        """One chain of tasks per group of chunks in ``order``: a chunk's task
        ``task(carry, chunk, seed)`` takes the previous one's result (the
        first takes ``(start, (0.0, 0.0, False))``), so the local state moves
        to the chunk (where it is persisted, the group's chunks share a
        worker) and a worker needs only one chunk at a time. ``rng`` (None:
        no shuffling) orders each group's chunks and seeds their tasks."""
        chains = []
        for g in order:
            chunks = list(self.groups[g])
            if rng is not None:
                chunks = [chunks[i] for i in rng.permutation(len(chunks))]
            carry = (start, (0.0, 0.0, False))
            for c in chunks:
                seed = None if rng is None else int(rng.integers(2**31))
                carry = task(carry, c, seed)
            chains.append(carry)
        return chains

    @property
    def variance_reduction(self):
        """As :attr:`SoftmaxObjective.variance_reduction`, for the chunks' format."""
        return not sp.issparse(self.X._meta) or bool(self.l1_strength())

    def variance_reduced_epoch(self, params, snapshot, gradient, order, batch_size,
                               eta, intercept_scale=1.0):
        """A round of local SVRG epochs (see
        :meth:`SoftmaxObjective.variance_reduced_epoch`), each group of chunks
        from ``params`` with the same snapshot and full gradient, then the
        groups' parameters averaged into ``params``, weighted by the weight
        each group visited (the control variate is the same everywhere, so the
        local steps are unbiased for the whole objective).

        Returns ``(loss, diverged)``.
        """
        import dask
        from dask import delayed
        rng = (None if self.shuffle_seed is None
               else np.random.default_rng([self.shuffle_seed, self._rounds]))
        self._rounds += 1
        snapshot, gradient = delayed(snapshot.copy()), delayed(gradient.copy())
        results = self._chains(
            order, rng, delayed(params.copy(), pure=False),
            lambda carry, c, seed: delayed(_local_variance_reduced_epoch, pure=True)(
                carry, *self.blocks[c], self.spec, snapshot, gradient, batch_size,
                eta, intercept_scale, seed))
        mean, (loss_sum, weight, diverged) = dask.compute(
            _tree(results, _average_params))[0]
        params[:] = mean
        return (loss_sum / weight if weight > 0 else 0.0), diverged

    def make_groups(self):
        """Chunks grouped by the worker that holds them (contiguous runs of
        chunks, one per worker or thread, when that is not known)."""
        n_chunks = len(self.blocks)
        client = _client()
        groups = None
        if client is not None:
            from distributed import futures_of
            futures = futures_of(self.X)  # none unless X is persisted
            holders = dict(client.who_has(futures)) if futures else {}
            by_worker = {}
            for c, b in enumerate(self.blocks):
                where = holders.get(b[0].key) or ()
                if not where:
                    by_worker = None
                    break
                by_worker.setdefault(sorted(where)[0], []).append(c)
            if by_worker:
                groups = list(by_worker.values())
            n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
        else:
            import dask.system
            n_workers = dask.system.CPU_COUNT
        if groups is None:
            n_groups = max(1, min(n_chunks, n_workers))
            groups = [list(range(g * n_chunks // n_groups,
                                 (g + 1) * n_chunks // n_groups))
                      for g in range(n_groups)]
        self.groups = groups
        return groups

    def step_constants(self, params, sample, solver):
        """What ``eta0="auto"`` needs (see
        :meth:`SoftmaxObjective.step_constants`): the mean smoothness, the
        intercept's scale and Adam's gradient scale from the sample, the
        per-sample bound over every chunk."""
        import dask
        from dask import delayed
        _, mean_smoothness, scale, delta = dask.compute(delayed(
            _sample_step_constants, pure=True)(sample, self.spec, params.copy(),
                                               solver))[0]
        max_square = self.max_row_square(delta)
        max_smoothness = self.logit_curvature * max_square + self.l2_strength()
        return max(max_smoothness, mean_smoothness), mean_smoothness, scale, delta


# ----------------------------------------------------------- minibatch driver
def fit_minibatch(objective, params, settings, random_state):
    """sgd/adam's ``fit`` (without early stopping) on a :class:`DaskObjective`:
    :func:`~sksoftmax._solvers.solve_to_optimum` as in memory, its
    stochastic and SVRG epochs each a round of local epochs and averaging,
    its snapshots and full-batch finish passes over the chunks. The step
    constants come from a fixed sample of up to 16384 rows kept on a worker
    (the per-sample bound from every chunk).

    ``settings`` is a :class:`~sksoftmax._solvers.MinibatchSettings`,
    ``random_state`` the estimator's. Returns ``(state, rng, n_epochs,
    n_full, loss_curve, failure)``; raises
    :class:`~sksoftmax._solvers.DivergenceError`.
    """
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    groups = objective.make_groups()
    objective.shuffle_seed = (int(rng.randint(np.iinfo(np.int32).max))
                              if settings.shuffle else None)
    sample = objective.sample(_SAMPLE_ROWS, int(rng.randint(np.iinfo(np.int32).max)))
    n_rows = objective.n_samples
    batch_size = settings.batch_size_for(n_rows)
    smoothness = (objective.step_constants(params, sample, settings.solver)
                  if settings.eta0 == "auto" else None)
    # each group's epoch samples its minibatches from its own rows
    group_rows = min(n_rows, max(sum(int(objective.X.chunks[0][c]) for c in g)
                                 for g in groups))
    solver = settings.rule(smoothness, batch_size, group_rows)
    state = solver.init_state(params)
    state.smoothness = smoothness
    # SVRG's step: the constants in the metric that scales the intercept
    max_smoothness, mean_smoothness, _, delta = objective.step_constants(
        params, sample, "sgd")
    result = solve_to_optimum(
        objective, settings, solver, state, (max_smoothness, mean_smoothness, delta),
        batch_size=batch_size, rng=rng, rows=np.arange(len(groups)),
        n_rows=group_rows)
    return (state, rng, *result)


# ---------------------------------------------------------------- prediction
def predict(method, X, coef, intercept, classes):
    """A linear model's ``method`` output for X from :func:`as_features`: a
    dask array, one chunk of output per row chunk of X, computed where the
    chunk is."""
    dtype = np.result_type(X.dtype, coef.dtype)
    model = (coef, intercept, classes)  # one constant argument of every chunk
    if method == "predict":
        return X.map_blocks(_predict_chunk, method, model, drop_axis=1,
                            dtype=classes.dtype)
    if method == "decision_function" and len(classes) == 2:
        return X.map_blocks(_predict_chunk, method, model, drop_axis=1, dtype=dtype)
    return X.map_blocks(_predict_chunk, method, model, dtype=dtype,
                        chunks=(X.chunks[0], (len(classes),)))


def _predict_chunk(X, method, model):
    from sklearn.utils.validation import check_array
    X = check_array(_chunk(X), accept_sparse="csr", dtype=[np.float64, np.float32],
                    ensure_min_samples=0)
    return linear_predictions(method, X, *model)
