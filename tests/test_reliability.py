"""Regression tests for defects found by adversarial use: fork, threads, state.

Each test names the defect it guards against. Processes that could hang run
in a subprocess with a timeout.
"""

import re
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils import compute_class_weight
from threadpoolctl import threadpool_info

from sksoftmax import SoftmaxRegressionClassifier, _kernels, _objective
from sksoftmax._objective import SoftmaxObjective

# Big enough for two chunks of rows, so that a default fit uses the thread pool.
N_PARALLEL = 20_000


def run_python(code, timeout=180, env=None):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def blas_threads():
    return [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()
            if lib["user_api"] == "blas"]


@pytest.fixture
def many_chunks(monkeypatch):
    """Small data still split into chunks, so that fits use the thread pool."""
    monkeypatch.setattr("sksoftmax._kernels._MIN_ROWS_PER_CHUNK", 50)
    monkeypatch.setattr("numba.config.NUMBA_NUM_THREADS", 4)


def problem(n=600, d=8, n_classes=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    y = np.argmax(X[:, :n_classes] + rng.randn(n, n_classes), axis=1)
    return X, y


# ------------------------------------------------------------ 1. fork
def test_fork_after_a_parallel_fit_does_not_hang():
    # Defect 1: after one parallel fit (GNU OpenMP layer), fork-based
    # multiprocessing hung ("fork() called from a process already using GNU
    # OpenMP"). A parent fit, then forked children that fit too.
    out = run_python(f"""
        import multiprocessing, threading
        import numpy as np
        from sksoftmax import SoftmaxRegressionClassifier as S

        rng = np.random.RandomState(0)
        X = rng.randn({N_PARALLEL}, 20)
        y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)

        def work(alpha):
            return float(S(alpha=alpha).fit(X, y).score(X, y))

        S().fit(X, y)
        # no thread of ours outlives the fit
        assert not [t for t in threading.enumerate() if "sksoftmax" in t.name]
        with multiprocessing.get_context("fork").Pool(2) as pool:
            scores = pool.map(work, [1e-3, 1e-2])
        print("ok", scores)
    """, timeout=240)
    assert out.startswith("ok")


# ------------------------------------------------------------ 2. threads
def test_concurrent_fits_in_threads_equal_sequential_fits(many_chunks):
    # Defect 2: two fits in two threads aborted the process under Numba's
    # workqueue layer, and left BLAS pinned to one thread afterwards.
    problems = [problem(seed=s) for s in range(4)]
    blas_before = blas_threads()
    sequential = [SoftmaxRegressionClassifier(tol=1e-6).fit(X, y) for X, y in problems]
    results = [None] * len(problems)
    barrier = threading.Barrier(len(problems))

    def fit(i):
        barrier.wait()
        for _ in range(3):  # overlap several fits, BLAS limits included
            results[i] = SoftmaxRegressionClassifier(tol=1e-6).fit(*problems[i])

    threads = [threading.Thread(target=fit, args=(i,)) for i in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ref, got in zip(sequential, results, strict=True):
        assert_array_equal(got.coef_, ref.coef_)
        assert_array_equal(got.intercept_, ref.intercept_)
    assert blas_threads() == blas_before


def test_blas_limit_is_reference_counted_and_restored():
    from sksoftmax._parallel import blas_single_threaded

    before = blas_threads()
    outer = blas_single_threaded()
    outer.__enter__()
    with blas_single_threaded():
        assert all(n == 1 for _, n in blas_threads())
    # the inner holder left while the outer still runs: still limited
    assert all(n == 1 for _, n in blas_threads())
    outer.__exit__(None, None, None)
    assert blas_threads() == before


def test_scipy_lbfgs_runs_with_blas_held_to_one_thread_and_restores_it():
    # L-BFGS-B's vector operations with two OpenBLAS threads took 14x as long
    # on 17,838 parameters on 2 cores (a 7,500-document TF-IDF fit: 0.91 s
    # against 0.28 s); the limit must not outlive the run.
    from sksoftmax._solvers import lbfgs

    before = blas_threads()
    seen = []

    def loss_gradient(params):
        seen.append(blas_threads())
        return 0.5 * float(params @ params), params.copy()

    params, n_iter, _, failure = lbfgs(loss_gradient, np.ones(20), max_iter=5,
                                       tol=1e-8, compact=False)
    assert failure is None
    assert np.abs(params).max() <= 1e-8
    assert seen
    assert all(n == 1 for threads in seen for _, n in threads)
    assert blas_threads() == before


def test_a_child_forked_during_a_fit_gets_its_blas_threads_back():
    # A fit in another thread holds BLAS at one thread when the fork happens;
    # that fit does not continue in the child, so neither may its limit.
    out = run_python("""
        import multiprocessing, threading
        from threadpoolctl import threadpool_info
        from sksoftmax._parallel import blas_single_threaded

        def blas():
            return sorted(i["num_threads"] for i in threadpool_info()
                          if i["user_api"] == "blas")

        before = blas()
        entered, release = threading.Event(), threading.Event()

        def fit_in_thread():
            with blas_single_threaded():
                entered.set()
                release.wait()

        t = threading.Thread(target=fit_in_thread)
        t.start()
        entered.wait()
        assert all(n == 1 for n in blas())
        with multiprocessing.get_context("fork").Pool(1) as pool:
            child = pool.apply(blas)
        release.set()
        t.join()
        print(before == child, before == blas())
    """)
    assert out.split() == ["True", "True"]


def test_no_numba_threading_layer_is_used():
    # Under the workqueue layer (Numba's fallback) concurrent parallel
    # kernels abort the process; no kernel of ours uses Numba's layers.
    out = run_python(f"""
        import threading
        import numba
        import numpy as np
        from sksoftmax import SoftmaxRegressionClassifier as S

        rng = np.random.RandomState(0)
        X = rng.randn({N_PARALLEL}, 10)
        y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
        models = [None, None]

        def fit(i):
            models[i] = S(alpha=10.0 ** -i).fit(X, y)

        threads = [threading.Thread(target=fit, args=(i,)) for i in range(2)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert all(m is not None for m in models)
        try:
            numba.threading_layer()
        except ValueError as exc:
            print("no layer:", exc)
    """, env={**__import__("os").environ, "NUMBA_THREADING_LAYER": "workqueue"})
    assert "no layer:" in out


def test_n_jobs_gives_the_same_model(many_chunks):
    X, y = problem()
    one = SoftmaxRegressionClassifier(n_jobs=1, tol=1e-6).fit(X, y)
    two = SoftmaxRegressionClassifier(n_jobs=2, tol=1e-6).fit(X, y)
    four = SoftmaxRegressionClassifier(n_jobs=-1, tol=1e-6).fit(X, y)
    # n_jobs=2 and -1 (4 threads here) split the rows differently from n_jobs=1:
    # the sums differ in rounding only
    np.testing.assert_allclose(two.predict_proba(X), one.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(four.predict_proba(X), one.predict_proba(X),
                               atol=1e-6)


# ------------------------------------------- 3. honest convergence, n_iter_
def test_a_failed_line_search_warns_and_n_iter_is_true():
    # Defect 3: features x 1e50 made scipy stop with ABNORMAL at iteration 0;
    # the fit returned an all-zero model, no warning and n_iter_ = 1.
    # (preconditioned, the run now gets 9 iterations before f stalls; what
    # stays is the warning that says why, with the true count)
    X, y = load_digits(return_X_y=True)
    with pytest.warns(ConvergenceWarning,
                      match="L-BFGS did not converge: .* after [0-9]+ iterations; "
                            "the largest absolute gradient entry is .* > "
                            "tol=0.0001") as record:
        clf = SoftmaxRegressionClassifier().fit(X * 1e50, y)
    count = re.search(r"after ([0-9]+) iterations", str(record[0].message))
    assert clf.n_iter_ == int(count.group(1)) == len(clf.loss_curve_)


def test_no_fit_stops_silently_short_of_the_gradient_rule():
    # Defect 3: stopped fits had max|g| up to 4.3 without a warning, because
    # scipy's ftol stopped them first. Badly scaled features, default tol.
    rng = np.random.RandomState(0)
    X = rng.randn(400, 6) * np.array([1e-3, 1e-1, 1.0, 1e2, 1e3, 1e4])
    y = (X[:, 2] + X[:, 3] / 100 + rng.randn(400) > 0).astype(int) + (X[:, 5] > 0)
    for tol in (1e-4, 1e-8):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf = SoftmaxRegressionClassifier(tol=tol, max_iter=50).fit(X, y)
        objective = SoftmaxObjective(X, np.searchsorted(clf.classes_, y),
                                     np.ones(len(y)), 3, alpha=clf.alpha)
        _, grad = objective.loss_gradient(
            objective.init_params(clf.coef_, clf.intercept_))
        warned = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        if np.max(np.abs(grad)) > tol:
            assert len(warned) == 1, np.max(np.abs(grad))
            assert f"> tol={tol:g}" in str(warned[0].message)
        else:
            assert not warned
    assert warned  # at tol=1e-8 this problem cannot converge in 50 iterations


# ----------------------------------------------------- 4, 5, 7. weights
def test_balanced_class_weight_counts_sample_weights():
    # Defect 4: "balanced" ignored sample_weight: weighting by k was no longer
    # repeating k times, and the model no longer matched LogisticRegression.
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rng = np.random.RandomState(0)
    k = rng.randint(1, 4, len(y))
    weighted = SoftmaxRegressionClassifier(class_weight="balanced", tol=1e-7)
    weighted.fit(X, y, sample_weight=k)
    repeated = SoftmaxRegressionClassifier(class_weight="balanced", tol=1e-7)
    repeated.fit(np.repeat(X, k, axis=0), np.repeat(y, k))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X),
                               atol=1e-5)
    # LogisticRegression: C * sum_i s_i cw_i CE_i + |W|^2 / 2, the same minimiser
    # as ours with C = 1 / (alpha * sum_i s_i cw_i)
    sw = rng.uniform(0.2, 3.0, len(y))
    cw = compute_class_weight("balanced", classes=np.unique(y), y=y, sample_weight=sw)
    alpha = 1e-2
    ours = SoftmaxRegressionClassifier(class_weight="balanced", alpha=alpha, tol=1e-7)
    ours.fit(X, y, sample_weight=sw)
    ref = LogisticRegression(class_weight="balanced",
                             C=1 / (alpha * np.sum(sw * cw[y])), tol=1e-10,
                             max_iter=10000).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-5)


def test_early_stopping_with_zero_weight_validation_is_a_clear_error():
    # Defect 5: the held-out part could carry zero total weight, which raised
    # numpy's ZeroDivisionError.
    X, y = problem(n=300, n_classes=3)
    sample_weight = np.zeros(len(y))
    for c in range(3):
        sample_weight[np.flatnonzero(y == c)[:2]] = 1.0
    raised = 0
    for seed in range(10):
        clf = SoftmaxRegressionClassifier(solver="sgd", early_stopping=True,
                                          random_state=seed, max_iter=5)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(X, y, sample_weight=sample_weight)
        except ValueError as exc:
            assert re.match(r"The sample weights of the (validation|training) part of "
                            r"the early-stopping split \(validation_fraction=0.1\) "
                            r"are all zero", str(exc))
            raised += 1
        else:
            assert np.all(np.isfinite(clf.validation_scores_))
    assert raised > 0


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_bad_class_weights_are_rejected(bad, method):
    # Defect 7: negative class weights were accepted (unbounded objective),
    # NaN/inf ended in the overflow message.
    X, y = problem(n_classes=3)
    clf = SoftmaxRegressionClassifier(solver="sgd",
                                      class_weight={0: 1.0, 1: bad, 2: 2.0})
    kwargs = {"classes": [0, 1, 2]} if method == "partial_fit" else {}
    with pytest.raises(ValueError, match=re.escape(
            f"class_weight must give every class a finite, non-negative weight; "
            f"got {{1: {bad}}}.")):
        getattr(clf, method)(X, y, **kwargs)
    assert not hasattr(clf, "coef_")


# ------------------------------------------------------- 6. atomic fits
def test_a_failing_fit_leaves_the_previous_model():
    # Defect 6: a fit that raised left the new classes_/n_features_in_ beside
    # the old coef_, or coef_ = None after a failed warm-start refit.
    X, y = problem(n_classes=3)
    for params in ({}, {"warm_start": True}, {"solver": "sgd"}):
        clf = SoftmaxRegressionClassifier(**params).fit(X, y)
        before = {k: v for k, v in vars(clf).items() if k.endswith("_")}
        proba = clf.predict_proba(X)
        X_other = np.random.RandomState(1).randn(50, 3)
        y_other = np.arange(50) % 4 + 10
        with pytest.raises(ValueError, match="class_weight"):  # after validation
            clf.set_params(class_weight={10: -1.0}).fit(X_other, y_other)
        with pytest.raises(ValueError, match="overflow"):  # inside the solver
            clf.set_params(class_weight=None).fit(X_other * 1e300, y_other)
        after = {k: v for k, v in vars(clf).items() if k.endswith("_")}
        assert after.keys() == before.keys()
        for key, value in before.items():
            assert after[key] is value, key
        assert_array_equal(clf.predict_proba(X), proba)


def test_a_failing_partial_fit_leaves_the_previous_model():
    X, y = problem(n_classes=3)
    clf = SoftmaxRegressionClassifier(solver="sgd", random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    state = clf._minibatch_state
    params, velocity = state.params.copy(), state.velocity.copy()
    coef, n_iter = clf.coef_, clf.n_iter_
    with pytest.raises(ValueError, match="overflow"):
        clf.partial_fit(X * 1e300, y)
    assert clf.coef_ is coef
    assert clf.n_iter_ == n_iter
    assert clf._minibatch_state is state
    assert_array_equal(state.params, params)
    assert_array_equal(state.velocity, velocity)


# ------------------------------------------ 8. partial_fit continues from coef_
def test_partial_fit_continues_from_coef_as_the_user_left_it():
    # Defect 8: partial_fit ignored edits to coef_/intercept_ and continued
    # from hidden state. With no momentum, no averaging, a constant rate and
    # no penalty, a chunk is 10 gradient steps on its 10 minibatches in order.
    X, y = problem(n_classes=3)
    eta = 0.1
    clf = SoftmaxRegressionClassifier(solver="sgd", learning_rate="constant",
                                      eta0=eta, momentum=0.0, alpha=0.0,
                                      average=False, shuffle=False)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    objective = SoftmaxObjective(X, y.astype(np.intp), np.ones(len(y)), 3)
    batches = [SoftmaxObjective(X[a:a + 60], y[a:a + 60].astype(np.intp),
                                np.ones(60), 3) for a in range(0, len(y), 60)]

    def one_step(coef, intercept):
        params = objective.init_params(coef, intercept)
        for batch in batches:
            params = params - eta * batch.loss_gradient(params)[1]
        return params

    # untouched: continues from its own (full-precision) parameters
    expected = one_step(clf.coef_, clf.intercept_)
    clf.partial_fit(X, y)
    np.testing.assert_allclose(objective.init_params(clf.coef_, clf.intercept_),
                               expected, rtol=1e-12)
    # edited in place, and replaced
    clf.coef_[0, :] = 0.5
    expected = one_step(clf.coef_, clf.intercept_)
    clf.partial_fit(X, y)
    np.testing.assert_allclose(objective.init_params(clf.coef_, clf.intercept_),
                               expected, rtol=1e-12)
    clf.coef_ = np.zeros_like(clf.coef_)
    clf.intercept_ = np.array([1.0, -1.0, 0.0])
    expected = one_step(clf.coef_, clf.intercept_)
    clf.partial_fit(X, y)
    np.testing.assert_allclose(objective.init_params(clf.coef_, clf.intercept_),
                               expected, rtol=1e-12)
    clf.coef_ = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"coef_ has shape \(2, 2\)"):
        clf.partial_fit(X, y)


# -------------------------------------------- 9. working memory per fit
def test_buffers_are_allocated_once_per_fit(many_chunks, monkeypatch):
    # Defect 9: the per-thread accumulators were reallocated on every pass.
    made = []
    real = _kernels.Workspace

    def counting(*args, **kwargs):
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(_objective, "Workspace", counting)
    X, y = problem()
    clf = SoftmaxRegressionClassifier(tol=1e-6).fit(X, y)
    assert clf.n_iter_ > 10
    assert len(made) == 4  # one per chunk (4 threads here), not per pass


# ------------------------------------------------------ 10. cold start
def test_precompile_fills_the_cache_that_later_fits_use(tmp_path):
    # Defect 10: every fresh environment paid seconds of compilation on its
    # first fit. After `python -m sksoftmax.precompile`, a fit in a new process
    # loads every kernel from the cache and compiles none.
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "sksoftmax.precompile", "--solvers", "sgd,lbfgs",
         "--dtypes", "float32", "--formats", "dense"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"dense float32 sgd +\d+\.\d+ s", proc.stdout)
    assert f"cache: {tmp_path}" in proc.stdout
    out = run_python("""
        import numba, numpy as np
        from sksoftmax import SoftmaxRegressionClassifier as S, _kernels, _steps
        rng = np.random.RandomState(1)
        X = rng.randn(500, 7).astype(np.float32)
        y = rng.randint(0, 4, 500)
        S(solver="sgd", max_iter=3).fit(X, y)
        S(max_iter=3).fit(X, y)
        dispatchers = [v for m in (_kernels, _steps) for v in vars(m).values()
                       if isinstance(v, numba.core.registry.CPUDispatcher)]
        hits = sum(sum(d.stats.cache_hits.values()) for d in dispatchers)
        misses = sum(sum(d.stats.cache_misses.values()) for d in dispatchers)
        print(hits, misses)
    """, env=env)
    hits, misses = map(int, out.split())
    assert hits > 0
    assert misses == 0


def test_precompile_rejects_unknown_choices():
    proc = subprocess.run([sys.executable, "-m", "sksoftmax.precompile",
                           "--solvers", "lbfgs,newton"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "expected a comma-separated subset of lbfgs, sgd, adam; got " \
           "'lbfgs,newton'" in proc.stderr


@pytest.mark.parametrize("available", [1, 2, 8])
def test_effective_n_threads_counts_like_joblib(monkeypatch, available):
    # None and -1: every thread Numba has; -k: all but k - 1; never below 1;
    # a positive count is capped at what there is
    import numba

    from sksoftmax._parallel import effective_n_threads

    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", available)
    assert effective_n_threads(None) == available
    assert effective_n_threads(-1) == available
    assert effective_n_threads(-2) == max(1, available - 1)
    assert effective_n_threads(-100) == 1
    assert effective_n_threads(0) == 1
    assert effective_n_threads(1) == 1
    assert effective_n_threads(2) == min(2, available)
    assert effective_n_threads(100) == available
