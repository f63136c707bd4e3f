"""
=======================================
Learning from a stream with partial_fit
=======================================

When the rows arrive in chunks — read from disk, a queue or a database — and
never all sit in memory, ``partial_fit`` learns from one chunk at a time. Each
call runs one epoch of the minibatch solver over the chunk (split into at
least ten steps) and carries the optimiser's state (momentum or Adam's
moments, the running average, the step count) to the next call. The first call
must name every class.

Here a generator stands for the stream; a held-out set measures the model
after each chunk, against the exact optimum that ``lbfgs`` reaches on all the
rows at once.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_classification
from sklearn.metrics import log_loss

from sksoftmax import SoftmaxRegressionClassifier

X_all, y_all = make_classification(
    n_samples=60_000, n_features=40, n_informative=20, n_classes=4,
    class_sep=1.5, random_state=0,
)
X_test, y_test = X_all[-10_000:], y_all[-10_000:]
classes = np.unique(y_all)


def stream(chunk_size=2_000):
    """Yield the first 50,000 rows in chunks, as a reader of a large file would."""
    for start in range(0, 50_000, chunk_size):
        yield X_all[start:start + chunk_size], y_all[start:start + chunk_size]


alpha = 1e-4
curves = {}
for solver in ["sgd", "adam"]:
    model = SoftmaxRegressionClassifier(solver=solver, alpha=alpha, random_state=0)
    seen, losses, accuracies = [], [], []
    for X_chunk, y_chunk in stream():
        model.partial_fit(X_chunk, y_chunk, classes=classes)
        seen.append((seen[-1] if seen else 0) + len(y_chunk))
        losses.append(log_loss(y_test, model.predict_proba(X_test)))
        accuracies.append(model.score(X_test, y_test))
    curves[solver] = (seen, losses, accuracies)
    print(
        f"{solver}: {model.n_iter_} partial_fit calls; after "
        f"{seen[-1]:,} rows: test log-loss {losses[-1]:.4f}, accuracy "
        f"{accuracies[-1]:.4f}"
    )

# %%
# The reference: ``lbfgs`` on the 50,000 rows at once.
exact = SoftmaxRegressionClassifier(alpha=alpha).fit(X_all[:50_000], y_all[:50_000])
exact_loss = log_loss(y_test, exact.predict_proba(X_test))
print(f"lbfgs on all rows: test log-loss {exact_loss:.4f}, "
      f"accuracy {exact.score(X_test, y_test):.4f}")

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
for solver, (seen, losses, accuracies) in curves.items():
    left.plot(seen, losses, marker=".", label=f"partial_fit, {solver}")
    right.plot(seen, accuracies, marker=".", label=f"partial_fit, {solver}")
left.axhline(exact_loss, color="grey", linestyle="--", label="lbfgs, all rows")
right.axhline(exact.score(X_test, y_test), color="grey", linestyle="--",
              label="lbfgs, all rows")
left.set_xlabel("rows seen")
left.set_ylabel("test log-loss")
right.set_xlabel("rows seen")
right.set_ylabel("test accuracy")
left.legend()
fig.tight_layout()
plt.show()
