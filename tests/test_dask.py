"""The estimator on dask collections, through a LocalCluster of 2 worker processes."""

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits, make_classification
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

import sksoftmax._dask as dask_module
from sksoftmax import SoftmaxRegressionClassifier
from sksoftmax._objective import SoftmaxObjective

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def chunked(X, y, rows):
    return (da.from_array(X, chunks=(rows, X.shape[1])),
            da.from_array(y, chunks=rows))


@pytest.mark.parametrize("case", ["multiclass", "binary-float32", "weights",
                                  "elastic-net"])
def test_lbfgs_on_dask_equals_the_in_memory_fit(client, digits, case):
    X, y = digits
    params = dict(tol=1e-6, alpha=1e-3)
    fit_kwargs, dask_kwargs = {}, {}
    if case == "elastic-net":  # OWL-QN on the reduced sums
        params.update(alpha=1e-2, l1_ratio=0.5)
    if case == "binary-float32":
        # float32 resolves the gradient to about 1e-5
        X, y = X.astype(np.float32), (y >= 5).astype(int)
        params["tol"] = 1e-4
    if case == "weights":
        params["class_weight"] = "balanced"
        w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
        fit_kwargs["sample_weight"] = w
        dask_kwargs["sample_weight"] = da.from_array(w, chunks=400)
    ref = SoftmaxRegressionClassifier(**params).fit(X, y, **fit_kwargs)
    X_dask, y_dask = chunked(X, y, 400)
    clf = SoftmaxRegressionClassifier(**params).fit(X_dask, y_dask, **dask_kwargs)
    assert clf.coef_.dtype == X.dtype
    assert clf.n_features_in_ == X.shape[1]
    assert_array_equal(clf.classes_, ref.classes_)
    # the same iterations up to the order of the sums
    assert abs(clf.n_iter_ - ref.n_iter_) <= 2
    assert_allclose(clf.loss_curve_[-1], ref.loss_curve_[-1], rtol=1e-5)
    proba = clf.predict_proba(X_dask)
    assert isinstance(proba, da.Array)
    assert_allclose(proba.compute(), ref.predict_proba(X), atol=1e-4)
    if case == "elastic-net":
        assert np.count_nonzero(ref.coef_ == 0) > 100
        assert np.sum((clf.coef_ == 0) != (ref.coef_ == 0)) <= 2


def test_feature_curvature_on_dask_is_the_in_memory_one(client, digits):
    # fewer rows than the sample: every row, gathered on a worker
    X, y = digits
    X_dask, y_dask = chunked(X, y, 400)
    dask_objective, _ = dask_module.objective(X_dask, y_dask, None, alpha=1e-3)
    ref = SoftmaxObjective(X, y.astype(np.intp), np.ones(len(y)), 10, alpha=1e-3,
                           center=True)
    assert_allclose(dask_objective.center, ref.center, rtol=1e-10, atol=1e-12)
    models = [dask_objective.feature_curvature(), ref.feature_curvature()]
    F = [vectors @ np.diag(values) @ vectors.T for _, vectors, values, _ in models]
    assert models[0][0] == models[1][0] == 10
    assert_allclose(F[0], F[1], rtol=1e-8, atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predictions_are_dask_arrays_chunk_by_chunk(client, digits):
    X, y = digits
    X_dask, y_dask = chunked(X, y, 500)
    clf = SoftmaxRegressionClassifier(max_iter=30).fit(X, y)
    for method in ["predict", "predict_proba", "predict_log_proba",
                   "decision_function"]:
        out = getattr(clf, method)(X_dask)
        assert isinstance(out, da.Array)
        assert out.chunks[0] == X_dask.chunks[0]
        expected = getattr(clf, method)(X)
        assert out.dtype == expected.dtype
        assert_allclose(out.compute(), expected, rtol=1e-12)
    binary = SoftmaxRegressionClassifier().fit(X, y % 2)
    scores = binary.decision_function(X_dask)
    assert scores.ndim == 1
    assert_allclose(scores.compute(), binary.decision_function(X))
    with pytest.raises(ValueError, match="X has 3 features, but"):
        clf.predict(X_dask[:, :3])


def test_the_client_never_holds_X(client):
    # 40 MB of rows generated on the workers; a fit that gathered them would
    # allocate at least that much in this process (the client's own peak is
    # about 2.4 MB: graphs, parameters, gradients)
    n, d = 100_000, 50
    X = da.random.default_rng(0).standard_normal((n, d), chunks=(25_000, d))
    y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 1).astype(int)
    tracemalloc.start()
    try:
        clf = SoftmaxRegressionClassifier(max_iter=15).fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert clf.n_iter_ > 0
    assert peak < X.nbytes / 10, peak


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_minibatch_solvers_average_local_epochs(client, digits, solver):
    X, y = digits
    X_dask, y_dask = chunked(X, y, 300)
    # alpha=1e-2: strongly convex enough to stop within tens of epochs
    optimum = SoftmaxRegressionClassifier(alpha=1e-2, tol=1e-6).fit(X, y)
    target = optimum.loss_curve_[-1]
    clf = SoftmaxRegressionClassifier(solver=solver, alpha=1e-2,
                                      random_state=0).fit(X_dask, y_dask)
    assert clf.n_iter_ < clf.max_iter
    # digits has fewer rows than the stopping rule's sample: its curve is the
    # exact objective, here recomputed from sklearn's log-loss
    objective = (log_loss(y, clf.predict_proba(X))
                 + 0.5 * clf.alpha * np.sum(clf.coef_ ** 2))
    assert_allclose(clf.loss_curve_[-1], objective, rtol=1e-9)
    assert objective < 1.1 * target + 0.01
    in_memory = SoftmaxRegressionClassifier(solver=solver, alpha=1e-2,
                                            random_state=0).fit(X, y)
    assert abs(clf.score(X, y) - in_memory.score(X, y)) < 0.02


def test_minibatch_groups_follow_the_workers(client, digits):
    X, y = digits
    X_dask, y_dask = chunked(X, y, 300)
    objective, _ = dask_module.objective(dask_module.as_features(X_dask), y_dask,
                                         None)
    groups = objective.make_groups()
    assert sorted(c for g in groups for c in g) == list(range(6))
    holders = client.who_has(distributed.futures_of(objective.X))
    for group in groups:
        where = {tuple(holders[objective.blocks[c][0].key]) for c in group}
        assert len(where) == 1


def test_incremental_learns_through_partial_fit(client, digits):
    from dask_ml.wrappers import Incremental
    X, y = digits
    X_dask, y_dask = chunked(X, y, 300)
    inc = Incremental(SoftmaxRegressionClassifier(solver="sgd", random_state=0),
                      scoring="accuracy")
    for _ in range(3):
        inc.partial_fit(X_dask, y_dask, classes=np.unique(y))
    assert inc.estimator_.n_iter_ == 3 * 6  # one partial_fit call per chunk
    assert inc.score(X_dask, y_dask) > 0.9
    # the first chunk does not hold every class: they must be given
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        Incremental(SoftmaxRegressionClassifier(solver="sgd")).fit(X_dask, y_dask)
    with pytest.raises(ValueError, match=r"y contains labels not in classes: "
                                         r"array\(\[9\]\)"):
        Incremental(SoftmaxRegressionClassifier(solver="sgd")).fit(
            X_dask, y_dask, classes=np.arange(9))


def test_fit_streams_from_disk_when_the_data_does_not_fit(client, digits, tmp_path,
                                                          monkeypatch):
    X, y = digits
    da.to_npy_stack(tmp_path / "X", da.from_array(X, chunks=(600, 64)))
    X_disk = da.from_npy_stack(tmp_path / "X", mmap_mode="r")
    y_dask = da.from_array(y, chunks=(X_disk.chunks[0],))
    persisted = []
    monkeypatch.setattr(dask_module, "_PERSIST_SHARE", 0.0)
    real = dask_module._persist_fits
    monkeypatch.setattr(dask_module, "_persist_fits",
                        lambda nbytes: persisted.append(real(nbytes)) or False)
    clf = SoftmaxRegressionClassifier(tol=1e-6).fit(X_disk, y_dask)
    assert persisted == [False]
    ref = SoftmaxRegressionClassifier(tol=1e-6).fit(X, y)
    assert_allclose(clf.predict_proba(X_disk).compute(), ref.predict_proba(X),
                    atol=1e-4)


def test_dask_dataframes_keep_feature_names(client):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y = make_classification(600, 4, n_informative=3, n_redundant=0,
                               n_classes=3, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    X_dd = dd.from_pandas(frame, npartitions=3)
    y_dd = dd.from_pandas(pd.Series(y), npartitions=3)
    clf = SoftmaxRegressionClassifier(tol=1e-6).fit(X_dd, y_dd)
    assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    ref = SoftmaxRegressionClassifier(tol=1e-6).fit(frame, y)
    assert_allclose(clf.predict_proba(X_dd).compute(), ref.predict_proba(frame),
                    atol=1e-4)
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(X_dd.rename(columns={"a": "z"}))


def test_bad_dask_input_gets_clear_errors(client):
    X, y = make_classification(400, 5, random_state=0)
    X_dask, y_dask = chunked(X, y, 100)
    clf = SoftmaxRegressionClassifier()
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        keep = X_dask[:, 0] > 0
        clf.fit(X_dask[keep], y_dask[keep])
    with pytest.raises(ValueError, match=r"row chunks of X .* do not line up"):
        clf.fit(X_dask, da.from_array(y, chunks=150))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X_dask, y[:-1])
    bad = X.copy()
    bad[321, 2] = np.nan
    with pytest.raises(ValueError, match=r"contains NaN or infinity \(in row chunk 3"):
        clf.fit(da.from_array(bad, chunks=(100, 5)), y_dask)
    with pytest.raises(ValueError, match="Negative values in data passed to"):
        clf.fit(X_dask, y_dask, sample_weight=da.from_array(-np.ones(400),
                                                            chunks=100))
    with pytest.raises(ValueError, match="only one class"):
        clf.fit(X_dask, da.zeros(400, chunks=100))
    with pytest.raises(TypeError, match="partial_fit takes one in-memory chunk"):
        SoftmaxRegressionClassifier(solver="sgd").partial_fit(X_dask, y_dask,
                                                              classes=[0, 1])
    assert not hasattr(clf, "coef_")  # nothing was fitted by the failures


def test_chunks_of_scipy_sparse_matrices(client):
    import dask
    import scipy.sparse as sp
    X, y = make_classification(1200, 20, n_informative=5, n_classes=3,
                               random_state=0)
    X[np.abs(X) < 1] = 0
    X_csr = sp.csr_matrix(X)
    X_dask = da.concatenate([
        da.from_delayed(dask.delayed(X_csr[i:i + 300]), (300, 20), dtype=X.dtype,
                        meta=X_csr[:0]) for i in range(0, 1200, 300)])
    y_dask = da.from_array(y, chunks=300)
    clf = SoftmaxRegressionClassifier(tol=1e-6).fit(X_dask, y_dask)
    ref = SoftmaxRegressionClassifier(tol=1e-6).fit(X_csr, y)
    assert_allclose(clf.predict_proba(X_dask).compute(), ref.predict_proba(X_csr),
                    atol=1e-4)


def test_local_scheduler_runs_the_same_graphs(digits):
    import dask
    X, y = digits
    X_dask, y_dask = chunked(X, y, 600)
    ref = SoftmaxRegressionClassifier(tol=1e-6).fit(X, y)
    with dask.config.set(scheduler="threads"):
        clf = SoftmaxRegressionClassifier(tol=1e-6).fit(X_dask, y_dask)
        assert_allclose(clf.predict_proba(X_dask).compute(), ref.predict_proba(X),
                        atol=1e-4)


def test_dask_is_imported_only_for_dask_input():
    code = ("import sys; from sklearn.datasets import load_iris; "
            "from sksoftmax import SoftmaxRegressionClassifier; "
            "SoftmaxRegressionClassifier(max_iter=5).fit(*load_iris(return_X_y=True))"
            "; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed', 'dask_ml')))")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
