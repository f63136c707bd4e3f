"""
================================================
Fit time and accuracy against LogisticRegression
================================================

``SoftmaxRegressionClassifier(alpha=a)`` minimises the same objective as
``LogisticRegression(C=1 / (a * n_samples))``: the mean cross-entropy plus
``a / 2 * ||W||²``. This example fits both on data sets that ship with
scikit-learn and on a larger generated one, and compares the fit time, the
training objective each reaches and the test accuracy.

Timings are medians of five fits after a warm-up fit, which pays Numba's
compilation (or loads it from the on-disk cache) once per dtype and solver;
they come from the machine that built this page, so compare the ratios, not
the seconds. LogisticRegression's lbfgs (scipy's L-BFGS-B) can lose from BLAS
threads on machines with few cores: it is timed at the default BLAS threads
and with BLAS held to one thread, and the faster counts.
"""

# %%
# The data sets
# -------------
# Standardised features, a stratified quarter held out for testing.
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_wine,
    make_classification,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sksoftmax import SoftmaxRegressionClassifier, softmax_cross_entropy

X_big, y_big = make_classification(
    n_samples=40_000, n_features=100, n_informative=40, n_classes=10,
    n_clusters_per_class=1, random_state=0,
)
data_sets = {
    "wine": load_wine(return_X_y=True),
    "breast_cancer": load_breast_cancer(return_X_y=True),
    "digits": load_digits(return_X_y=True),
    "generated 40k x 100, K=10": (X_big, y_big),
}
alpha = 1e-3


def objective(model, X, y):
    """Mean cross-entropy + alpha/2 ||W||² of a fitted linear model on (X, y)."""
    logits = X @ model.coef_.T + model.intercept_
    if logits.shape[1] == 1:  # binary: the logit of the positive class
        logits = np.hstack([np.zeros_like(logits), logits])
    codes = np.searchsorted(model.classes_, y)
    loss = np.mean(
        [softmax_cross_entropy(c, z)[0] for c, z in zip(codes, logits, strict=True)]
    )
    return loss + alpha / 2 * np.sum(model.coef_**2)


def median_fit_time(model, X, y, repeats=5, blas_threads=None):
    with threadpool_limits(blas_threads, user_api="blas"):
        model.fit(X, y)  # warm-up: compilation or cache load
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.fit(X, y)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def fastest_fit_time(model, X, y):
    """The faster of the default BLAS threads and one BLAS thread."""
    return min(median_fit_time(model, X, y, blas_threads=threads)
               for threads in (None, 1))


# %%
# Fit both models
# ---------------
rows = []
for name, (X, y) in data_sets.items():
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    models = {
        "LogisticRegression": LogisticRegression(
            C=1 / (alpha * len(X_train)), max_iter=1000
        ),
        "sksoftmax": SoftmaxRegressionClassifier(alpha=alpha),
    }
    row = {"data": name}
    for label, model in models.items():
        timer = fastest_fit_time if label == "LogisticRegression" else median_fit_time
        row[label, "time"] = timer(model, X_train, y_train)
        row[label, "objective"] = objective(model, X_train, y_train)
        row[label, "accuracy"] = model.score(X_test, y_test)
    rows.append(row)

header = (
    f"{'data set':<27}{'LR s':>8}{'ours s':>8}{'ratio':>7}"
    f"{'LR objective':>14}{'our objective':>15}{'LR acc':>8}{'our acc':>8}"
)
print(header)
for r in rows:
    lr, us = "LogisticRegression", "sksoftmax"
    print(
        f"{r['data']:<27}{r[lr, 'time']:8.3f}{r[us, 'time']:8.3f}"
        f"{r[lr, 'time'] / r[us, 'time']:6.1f}x"
        f"{r[lr, 'objective']:14.8f}{r[us, 'objective']:15.8f}"
        f"{r[lr, 'accuracy']:8.4f}{r[us, 'accuracy']:8.4f}"
    )

# %%
# Both models reach the same objective (LogisticRegression stops at its
# default ``tol=1e-4``, so its objective can sit slightly above), hence the
# same test accuracy. The figure shows the fit times.
fig, ax = plt.subplots(figsize=(7, 3.5))
positions = np.arange(len(rows))
for offset, label in [(-0.2, "LogisticRegression"), (0.2, "sksoftmax")]:
    ax.barh(positions + offset, [r[label, "time"] for r in rows], height=0.4,
            label=label)
ax.set_yticks(positions, [r["data"] for r in rows])
ax.set_xscale("log")
ax.set_xlabel("median fit time (s), log scale")
ax.legend()
fig.tight_layout()
plt.show()
