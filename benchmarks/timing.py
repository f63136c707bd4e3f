"""Timing a fit and writing a record, shared by the table-printing benchmarks."""

import json
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


# the settings under which LogisticRegression (scipy's L-BFGS-B) is timed: its
# small vector operations slow down when BLAS threads them on these machines
BLAS_SETTINGS = (("default threads", None), ("1 BLAS thread", 1))


def fastest_setting(make, X, y, repeats, warm_up=True):
    """``(median seconds, last model, setting)`` at the faster of
    ``BLAS_SETTINGS``: a peer driven by scipy is timed at its strongest."""
    times = {label: median_fit(make, X, y, repeats, threads, warm_up)
             for label, threads in BLAS_SETTINGS}
    label = min(times, key=lambda key: times[key][0])
    return (*times[label], label)


def write_record(record, markdown, out=None):
    """Print ``markdown(record)``. With ``out`` (a ``.md`` path) also write
    it there, and the raw ``record`` as JSON beside it (same name,
    ``.json``): the docs regenerate the page and quote its numbers from
    the JSON."""
    from benchmarks.run import environment

    record = {"environment": environment(), **record}
    write_report(markdown(record), out)
    if out:
        with open(os.path.splitext(out)[0] + ".json", "w") as f:
            json.dump(record, f, indent=1)
    return record


def write_report(text, out=None):
    """Print ``text``; also write it to ``out`` (directories made) when given."""
    print(text)
    if out:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with open(out, "w") as f:
            f.write(text)
