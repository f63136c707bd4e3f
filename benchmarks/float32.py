"""float32 fits at a tight tol: do they reach float64's optimum?

The kernels take the parameters in X's dtype, so near the optimum of a
float32 fit L-BFGS's steps can fall below float32's resolution. sksoftmax then
goes on from where the run stopped on a float64 copy of X
(``SoftmaxObjective.in_float64``). This draws ``--problems`` small problems
like the property tests' (2-4 classes, 1-6 features, 3-15 rows a class,
features scaled by 0.1, 1 or 10, alpha in {1e-2, 1e-1, 1}, dense or CSR,
weighted or not), fits each in float32 at ``tol`` with and without that
finish, and compares the training objective (in float64) with
``LogisticRegression(tol=1e-10)``'s on the same float32 data read as float64.
Times are of one fit each, after a warm-up fit of each kind.

Run from the repository root::

    python -m benchmarks.float32 [--problems 150] [--tol 1e-6] [--out FILE.md]
"""

import argparse
import contextlib
import time
import warnings
from unittest import mock

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from benchmarks.objective import objective
from benchmarks.timing import write_record
from sksoftmax import SoftmaxRegressionClassifier
from sksoftmax._objective import SoftmaxObjective


def problem(seed):
    """One problem: ``(X float32, y, sample_weight, alpha)``."""
    rng = np.random.RandomState(seed)
    n_classes, n_features = rng.randint(2, 5), rng.randint(1, 7)
    y = np.repeat(np.arange(n_classes), rng.randint(3, 16))
    rng.shuffle(y)
    X = rng.randn(n_classes, n_features)[y] + rng.randn(len(y), n_features)
    X = (X * 10.0 ** rng.randint(-1, 2)).astype(np.float32)
    alpha = (1e-2, 1e-1, 1.0)[rng.randint(3)]
    weights = rng.uniform(0.2, 3.0, len(y)) if rng.rand() < 0.5 else None
    if rng.rand() < 0.3:
        X = sp.csr_matrix(X)
    return X, y, weights, alpha


def fit(X, y, weights, alpha, tol, finish):
    """``(model, warned, seconds)`` of one float32 fit."""
    model = SoftmaxRegressionClassifier(alpha=alpha, tol=tol, max_iter=2000)
    patch = (contextlib.nullcontext() if finish else
             mock.patch.object(SoftmaxObjective, "in_float64", lambda self: None))
    with patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y, sample_weight=weights)
        seconds = time.perf_counter() - start
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, warned, seconds


def run(n_problems, tol):
    runs = {"without": [], "with": []}
    for finish in (False, True):  # warm-up: pays Numba's compilation
        fit(*problem(0), tol, finish)
    for seed in range(n_problems):
        X, y, weights, alpha = problem(seed)
        X64 = X.astype(np.float64)
        codes = np.searchsorted(np.unique(y), y)
        weight_sum = len(y) if weights is None else weights.sum()
        reference = LogisticRegression(C=1 / (alpha * weight_sum), tol=1e-10,
                                       max_iter=10_000)
        reference.fit(X64, y, sample_weight=weights)
        best = objective(reference.coef_, reference.intercept_, X64, codes, alpha,
                         sample_weight=weights)
        for label in runs:
            model, warned, seconds = fit(X, y, weights, alpha, tol, label == "with")
            value = objective(model.coef_, model.intercept_, X64, codes, alpha,
                              sample_weight=weights)
            runs[label].append({"gap": value / best - 1, "warned": warned,
                                "seconds": seconds, "n_iter": int(model.n_iter_)})
    return runs


def _summary(rows):
    gaps = np.array([r["gap"] for r in rows])
    return {"warned": sum(r["warned"] for r in rows), "n": len(rows),
            "above": int(np.sum(gaps > 1e-6)), "median_gap": float(np.median(gaps)),
            "max_gap": float(gaps.max()),
            "n_iter": sum(r["n_iter"] for r in rows),
            "seconds": sum(r["seconds"] for r in rows)}


def markdown(record):
    runs = record["rows"]
    n_problems, tol = record["settings"]["problems"], record["settings"]["tol"]
    lines = [
        "# float32 fits at a tight tol",
        "",
        f"`python -m benchmarks.float32 --problems {n_problems} --tol {tol:g}`: "
        f"{n_problems} small problems like the property tests' (dense and CSR, "
        "weighted or not, features scaled by 0.1 to 10), fitted in float32 by "
        "the default lbfgs. Gap: the training objective (in float64) over "
        "LogisticRegression's (tol=1e-10, on the same data in float64), minus 1. "
        "Without the float64 finish: `SoftmaxObjective.in_float64` patched to "
        "return None.",
        "",
        "| float64 finish | ConvergenceWarnings | gaps > 1e-6 | median gap | "
        "largest gap | iterations (sum) | fit seconds (sum) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, rows in runs.items():
        t = _summary(rows)
        lines.append(
            f"| {label} | {t['warned']} of {t['n']} | {t['above']} | "
            f"{t['median_gap']:+.1e} | {t['max_gap']:+.1e} | {t['n_iter']} | "
            f"{t['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def quotes(record):
    """Figures the docs quote, by ``<without|with>.<what>``."""
    out = {"problems": str(record["settings"]["problems"]),
           "tol": f"{record['settings']['tol']:g}"}
    for label, rows in record["rows"].items():
        t = _summary(rows)
        out.update({f"{label}.warned": f"{t['warned']} of {t['n']}",
                    f"{label}.above": str(t["above"]),
                    f"{label}.max_gap": f"{t['max_gap']:.1e}",
                    f"{label}.n_iter": str(t["n_iter"]),
                    f"{label}.seconds": f"{t['seconds']:.1f} s"})
    more = _summary(record["rows"]["with"])["seconds"] - _summary(
        record["rows"]["without"])["seconds"]
    out["extra_seconds"] = f"{more:.1f} s"
    return out


def tables(record):
    """Tables the docs show: ``{name: (header, rows)}``."""
    rows = []
    for label, runs in record["rows"].items():
        t = _summary(runs)
        rows.append([label, f"{t['warned']} of {t['n']}", str(t["above"]),
                     f"{t['max_gap']:+.1e}", str(t["n_iter"])])
    return {"summary": (["float64 finish", "ConvergenceWarnings", "gaps > 1e-6",
                         "largest gap", "iterations"], rows)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=150)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--out", default=None, help="also write the table here")
    args = parser.parse_args(argv)
    write_record({"settings": {"problems": args.problems, "tol": args.tol},
                  "rows": run(args.problems, args.tol)}, markdown, args.out)


if __name__ == "__main__":
    main()
