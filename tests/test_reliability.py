"""Regression tests for defects found by adversarial use: fork, threads, state.

Each test names the defect it guards against. Processes that could hang run
in a subprocess with a timeout.
"""

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from threadpoolctl import threadpool_info

from sksoftmax import SoftmaxRegressionClassifier

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
    sequential = [SoftmaxRegressionClassifier(tol=1e-8).fit(X, y) for X, y in problems]
    results = [None] * len(problems)
    barrier = threading.Barrier(len(problems))

    def fit(i):
        barrier.wait()
        for _ in range(3):  # overlap several fits, BLAS limits included
            results[i] = SoftmaxRegressionClassifier(tol=1e-8).fit(*problems[i])

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
    one = SoftmaxRegressionClassifier(n_jobs=1, tol=1e-8).fit(X, y)
    two = SoftmaxRegressionClassifier(n_jobs=2, tol=1e-8).fit(X, y)
    four = SoftmaxRegressionClassifier(n_jobs=-1, tol=1e-8).fit(X, y)
    # n_jobs=2 and -1 (4 threads here) split the rows differently from n_jobs=1:
    # the sums differ in rounding only
    np.testing.assert_allclose(two.predict_proba(X), one.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(four.predict_proba(X), one.predict_proba(X),
                               atol=1e-6)
