"""
==================================================
A pipeline and a grid search over alpha and solver
==================================================

``SoftmaxRegressionClassifier`` is an ordinary scikit-learn classifier: it goes
into a :class:`~sklearn.pipeline.Pipeline` and its parameters are searched by
:class:`~sklearn.model_selection.GridSearchCV` like any other's. Here the
penalty strength ``alpha`` and the solver are chosen by 5-fold cross-validation
on the digits.

``lbfgs`` minimises the objective exactly; ``sgd`` and ``adam`` stop at a
relative tolerance of the objective (``tol="auto"``), so for the same
``alpha`` the three scores nearly coincide, and ``alpha`` is what matters.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxRegressionClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)

pipe = make_pipeline(StandardScaler(), SoftmaxRegressionClassifier(random_state=0))
alphas = np.logspace(-5, 0, 6)
search = GridSearchCV(
    pipe,
    {
        "softmaxregressionclassifier__alpha": alphas,
        "softmaxregressionclassifier__solver": ["lbfgs", "sgd", "adam"],
    },
    cv=5,
    scoring="neg_log_loss",
)
search.fit(X_train, y_train)
print("best parameters:", search.best_params_)
print(f"cross-validated log-loss of the best: {-search.best_score_:.4f}")
print(f"test log-loss of the refitted best:    {-search.score(X_test, y_test):.4f}")
accuracy = search.best_estimator_.score(X_test, y_test)
print(f"test accuracy of the refitted best:    {accuracy:.4f}")

# %%
# The cross-validated log-loss for each solver along ``alpha``: too little
# penalty over-fits (over-confident probabilities), too much under-fits.
results = search.cv_results_
fig, ax = plt.subplots(figsize=(6, 4))
for solver in ["lbfgs", "sgd", "adam"]:
    mask = results["param_softmaxregressionclassifier__solver"] == solver
    ax.errorbar(
        alphas, -results["mean_test_score"][mask], yerr=results["std_test_score"][mask],
        marker="o", capsize=3, label=solver,
    )
ax.set_xscale("log")
ax.set_xlabel("alpha")
ax.set_ylabel("cross-validated log-loss")
ax.legend(title="solver")
fig.tight_layout()
plt.show()
