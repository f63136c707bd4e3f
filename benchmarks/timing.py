"""Timing a fit and writing a report, shared by the table-printing benchmarks."""

import os
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits


def timed_fit(model, X, y, blas_threads=None):
    """Seconds of ``model.fit(X, y)``, BLAS held to ``blas_threads`` (None: its
    default), convergence and deprecation warnings silenced."""
    with warnings.catch_warnings(), threadpool_limits(blas_threads, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        start = time.perf_counter()
        model.fit(X, y)
        return time.perf_counter() - start


def median_fit(make, X, y, repeats, blas_threads=None, warm_up=True):
    """``(median seconds, last model)`` of ``repeats`` fits of fresh ``make()``
    models, after one warm-up fit (which pays Numba's compilation) unless
    ``warm_up`` is False."""
    times, model = [], None
    for _ in range(repeats + bool(warm_up)):
        model = make()
        times.append(timed_fit(model, X, y, blas_threads))
    return float(np.median(times[1:] if warm_up else times)), model


def write_report(text, out=None):
    """Print ``text``; also write it to ``out`` (directories made) when given."""
    print(text)
    if out:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with open(out, "w") as f:
            f.write(text)
