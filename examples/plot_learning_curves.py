"""
==================================
Learning curves and early stopping
==================================

Every solver records the training objective it reaches after each iteration
(an L-BFGS iteration; for ``sgd`` / ``adam`` an epoch or a full-batch
iteration) in ``loss_curve_``.
With ``early_stopping=True`` the minibatch solvers hold out a stratified
``validation_fraction`` of the training rows, record the accuracy on it after
each epoch in ``validation_scores_``, stop once it has not improved by ``tol``
for ``n_iter_no_change`` epochs, and keep the best model seen.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxRegressionClassifier

X, y = make_classification(
    n_samples=30_000, n_features=60, n_informative=30, n_classes=6,
    n_clusters_per_class=2, flip_y=0.05, random_state=0,
)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, stratify=y, random_state=0
)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

# %%
# The training objective per iteration
# ------------------------------------
# Every solver converges to the same optimum, to the same ``tol`` on the
# gradient: ``lbfgs`` by L-BFGS; ``sgd`` and ``adam`` at their defaults by one
# epoch of their rule, then variance-reduced (SVRG) epochs, then full-batch
# iterations where those are slow (see the user guide). An epoch whose
# objective would rise is rejected, so no curve rises. The figure shows each
# curve's distance to the optimum, found by a tight ``lbfgs`` fit.
optimum = SoftmaxRegressionClassifier(alpha=1e-4, tol=1e-7).fit(X_train, y_train)
best = optimum.loss_curve_[-1]
models = {
    solver: SoftmaxRegressionClassifier(solver=solver, alpha=1e-4, random_state=0)
    for solver in ["lbfgs", "sgd", "adam"]
}
fig, ax = plt.subplots(figsize=(6, 4))
for solver, model in models.items():
    model.fit(X_train, y_train)
    print(
        f"{solver:>5}: {model.n_iter_:3d} iterations, final objective "
        f"{model.loss_curve_[-1]:.6f} ({model.loss_curve_[-1] / best - 1:.2e} above "
        f"the optimum), test accuracy {model.score(X_test, y_test):.4f}"
    )
    gap = [loss - best for loss in model.loss_curve_]
    ax.plot(range(1, model.n_iter_ + 1), gap, marker=".", label=solver)
ax.set_xlabel("iteration (lbfgs); epoch, then full-batch iteration (sgd, adam)")
ax.set_ylabel("training objective - optimum")
ax.set_yscale("log")
ax.legend()
fig.tight_layout()

# %%
# Early stopping on a validation split
# ------------------------------------
# With ``early_stopping=True`` the fit watches the held-out accuracy instead
# of the training objective. ``best_validation_score_`` is the best accuracy
# seen, and the model returned is the one that reached it.
stopped = SoftmaxRegressionClassifier(
    solver="sgd", alpha=1e-4, early_stopping=True, validation_fraction=0.1,
    n_iter_no_change=5, max_iter=100, random_state=0,
).fit(X_train, y_train)
print(
    f"sgd with early stopping: {stopped.n_iter_} epochs, best validation accuracy "
    f"{stopped.best_validation_score_:.4f}, test accuracy "
    f"{stopped.score(X_test, y_test):.4f}"
)

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
epochs = range(1, stopped.n_iter_ + 1)
left.plot(epochs, stopped.loss_curve_, marker=".")
left.set_xlabel("epoch")
left.set_ylabel("training objective")
right.plot(epochs, stopped.validation_scores_, marker=".", color="tab:green")
right.axhline(stopped.best_validation_score_, color="grey", linestyle="--",
              label="best_validation_score_")
right.set_xlabel("epoch")
right.set_ylabel("validation accuracy")
right.legend()
fig.tight_layout()
plt.show()
