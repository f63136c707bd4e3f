"""Fit-and-compare on the data sets that ship with scikit-learn.

For each of iris, wine, breast_cancer and digits (standardised, 75/25
stratified split) this fits ``LogisticRegression(C=1/(alpha*n))`` and every
sksoftmax solver on the same objective and prints, per model: the median fit
time over ``--repeats`` runs (after one warm-up fit that pays Numba's
compilation, reported separately), the time relative to the faster of
LogisticRegression's two settings below, the final training objective under
one common definition and its gap to the lowest, test accuracy and test
log-loss.

LogisticRegression is also timed with BLAS held to one thread
(threadpoolctl): on small data, waking OpenBLAS's threads for tiny products
can cost more than the products (on our 2-core machine, LogisticRegression on
all 1,797 digits took 331 ms with two BLAS threads and 18 ms with one).

Run from the repository root::

    python -m benchmarks.quick
"""

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss

from benchmarks import datasets
from benchmarks.objective import objective
from benchmarks.timing import timed_fit
from sksoftmax import SoftmaxRegressionClassifier


def models(alpha, n_samples):
    """(label, unfitted model, BLAS thread limit or None for the default)."""
    for blas_threads in (None, 1):
        label = "LogisticRegression(lbfgs)" + (
            ", 1 BLAS thread" if blas_threads else ""
        )
        yield label, LogisticRegression(C=1.0 / (alpha * n_samples),
                                        max_iter=10000), blas_threads
    for solver in ("lbfgs", "sgd", "adam"):
        yield f"sksoftmax({solver})", SoftmaxRegressionClassifier(
            solver=solver, alpha=alpha, random_state=0), None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=1e-4,
                        help="penalty strength; LogisticRegression gets C=1/(alpha*n)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed fits per model (the median is reported)")
    args = parser.parse_args(argv)

    print(f"alpha = {args.alpha:g}; 'fit ms': median of {args.repeats} fits after "
          "one warm-up fit. 'vs LR': the faster LogisticRegression setting's time "
          "(default BLAS threads or one) / this model's. 'gap': training objective "
          "over the lowest in the data set's rows, minus 1. 'first fit ms': the "
          "warm-up fit, which pays Numba's compilation (or its loading from the "
          "on-disk cache).")
    header = (f"{'dataset':<14} {'model':<42} {'fit ms':>9} {'vs LR':>7} "
              f"{'objective':>11} {'gap':>9} {'accuracy':>9} {'log-loss':>9} "
              f"{'first fit ms':>13}")
    print(header)
    print("-" * len(header))
    for name in datasets.SKLEARN_SETS:
        X_train, X_test, y_train, y_test = datasets.load(datasets.sklearn_set(name))
        rows = []
        for label, model, blas_threads in models(args.alpha, len(y_train)):
            first = timed_fit(model, X_train, y_train, blas_threads)  # pays compilation
            median = float(np.median([timed_fit(model, X_train, y_train, blas_threads)
                                      for _ in range(args.repeats)]))
            proba = model.predict_proba(X_test)
            rows.append((label, median, first, objective(
                model.coef_, model.intercept_, X_train,
                np.searchsorted(model.classes_, y_train), args.alpha),
                accuracy_score(y_test, model.predict(X_test)),
                log_loss(y_test, proba, labels=model.classes_)))
        faster_lr = min(r[1] for r in rows if r[0].startswith("LogisticRegression"))
        lowest = min(r[3] for r in rows)
        for label, median, first, value, accuracy, loss in rows:
            print(f"{name:<14} {label:<42} {1e3 * median:9.2f} "
                  f"{faster_lr / median:6.2f}x {value:11.6f} "
                  f"{(value - lowest) / lowest:9.1e} {accuracy:9.4f} {loss:9.4f} "
                  f"{1e3 * first:13.1f}")
        print()


if __name__ == "__main__":
    main()
