"""
==================================================
Choosing alpha by cross-validation: a linear probe
==================================================

A linear probe trains a softmax classifier on frozen embeddings and sweeps
the regularisation, keeping the value that validates best (the CLIP paper
swept 96 values of C). :class:`~sksoftmax.SoftmaxRegressionClassifierCV` does
the sweep as a path: in each fold the alphas go from the strongest to the
weakest, each fit starting near the previous optimum (on the secant through
the last two) on one objective, which is validated and prepared once per
fold.

The embeddings are generated: class means in a space whose directions
carry decaying variance, a large mean direction shared by every row, and
rows normalised to unit length, as a neural encoder's are.
"""

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

from sksoftmax import SoftmaxRegressionClassifierCV

rng = np.random.default_rng(0)
n, d, k = 2_000, 48, 10
scales = np.arange(1, d + 1) ** -0.7
centres = rng.standard_normal((k, d)) * 0.3
y = rng.integers(k, size=n)
X = (rng.standard_normal((n, d)) + centres[y]) * scales
X += 3.0 * rng.standard_normal(d) * np.linalg.norm(X, axis=1).mean() / np.sqrt(d)
X /= np.linalg.norm(X, axis=1, keepdims=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

# %%
# The sweep
# ---------
# 16 alphas over six decades, 5 stratified folds, scored by log-loss.
alphas = np.geomspace(1e-1, 1e-7, 16)
folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X_train, y_train))
start = time.perf_counter()
probe = SoftmaxRegressionClassifierCV(alphas=alphas, cv=folds,
                                      scoring="neg_log_loss").fit(X_train, y_train)
ours_s = time.perf_counter() - start
print(f"alpha_ = {probe.alpha_:.1e}, test accuracy "
      f"{accuracy_score(y_test, probe.predict(X_test)):.3f}, "
      f"{ours_s:.2f} s")
print("mean iterations per alpha along the path:",
      probe.n_iter_.mean(axis=0).round(1))

# %%
# The same sweep with LogisticRegressionCV
# ----------------------------------------
# Its C multiplies a sum over a fold's training rows: ``C = 1 / (alpha *
# n_train)`` is the same objective.
# Its lbfgs (scipy's L-BFGS-B) can lose from BLAS threads on machines with few
# cores: it is timed at the default BLAS threads and with one, the faster
# counting.
n_train = len(folds[0][0])
lr_times = {}
for threads in (None, 1):
    start = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(threads, user_api="blas"):
        warnings.simplefilter("ignore")  # its ConvergenceWarnings at weak alphas
        lrcv = LogisticRegressionCV(Cs=1 / (alphas[::-1] * n_train), cv=folds,
                                    scoring="neg_log_loss").fit(X_train, y_train)
    lr_times["one BLAS thread" if threads else "default BLAS threads"] = (
        time.perf_counter() - start)
setting = min(lr_times, key=lr_times.get)
lr_s = lr_times[setting]
print(f"LogisticRegressionCV: alpha = {1 / (lrcv.C_[0] * n_train):.1e}, test "
      f"accuracy {accuracy_score(y_test, lrcv.predict(X_test)):.3f}, {lr_s:.2f} s "
      f"at {setting} ({lr_s / ours_s:.1f}x the time)")

# %%
# The validation curve
# --------------------
mean, std = -probe.scores_.mean(axis=0), probe.scores_.std(axis=0)
fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogx(probe.alphas_, mean, "o-", label="SoftmaxRegressionClassifierCV")
ax.fill_between(probe.alphas_, mean - std, mean + std, alpha=0.2)
lr_scores = -lrcv.scores_[lrcv.classes_[0]].mean(axis=0)
ax.semilogx(1 / (lrcv.Cs_ * n_train), lr_scores, "x--", label="LogisticRegressionCV")
ax.axvline(probe.alpha_, color="grey", lw=0.8)
ax.set_xlabel("alpha")
ax.set_ylabel("validation log-loss")
ax.legend()
fig.tight_layout()
