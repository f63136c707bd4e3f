"""Thin adapters: every benchmarked model on the same objective.

Each peer turns the common penalty ``alpha`` (objective ``mean CE + alpha/2
||W||^2``) into its own parameters, builds an unfitted model, and reads back
its linear parameters so that one function (``objective.objective``) scores
every model. ``skip`` says why a peer does not run on a data set (an input it
does not take); ``capped`` says when a slow peer runs with its time capped.
"""

import importlib.util

import numpy as np
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier

from sksoftmax import SoftmaxRegressionClassifier


class Peer:
    """One benchmarked model: ``label(method)``, e.g. ``LogisticRegression(lbfgs)``.

    Above ``max_rows`` training rows or ``max_logits_x_features`` K*d the
    peer would take minutes: it runs there with its time capped (the runner
    sets ``max_iter`` from the time of one iteration), never skipped.
    """

    label = ""
    dense_only = False
    # driven by scipy (L-BFGS-B, linalg): timed at default BLAS threads and
    # with BLAS held to one thread, the faster counting (its small vector
    # operations can lose from BLAS threads on few cores)
    blas_sensitive = False

    def __init__(self, method, max_rows=None, max_logits_x_features=None):
        self.method = method
        self.name = f"{self.label}({method})"
        self.max_rows = max_rows
        self.max_logits_x_features = max_logits_x_features

    def skip(self, spec, n_train):
        if self.dense_only and spec["kind"] == "sparse_text":
            return f"{self.name} takes dense input only here"
        return None

    def capped(self, spec, n_train):
        """Why this peer's time is capped on this data set, or None."""
        if self.max_rows is not None and n_train > self.max_rows:
            return f"above {self.max_rows} rows"
        k, d = spec.get("k", 0), spec.get("d", 0)
        if (
            self.max_logits_x_features is not None
            and k * d > self.max_logits_x_features
        ):
            return f"K*d above {self.max_logits_x_features}"
        return None

    def make(self, alpha, n_train, max_iter=None):
        raise NotImplementedError

    def linear_params(self, model):
        return model.coef_, model.intercept_

    def n_iter(self, model):
        return int(np.max(model.n_iter_))


class SkSoftmax(Peer):
    label = "sksoftmax"

    def make(self, alpha, n_train, max_iter=None):
        kwargs = {} if max_iter is None else {"max_iter": max_iter}
        return SoftmaxRegressionClassifier(solver=self.method, alpha=alpha,
                                           random_state=0, **kwargs)


class LogReg(Peer):
    label = "LogisticRegression"

    @property
    def blas_sensitive(self):
        return self.method in ("lbfgs", "newton-cg", "newton-cholesky")

    def make(self, alpha, n_train, max_iter=None):
        return LogisticRegression(C=1.0 / (alpha * n_train), solver=self.method,
                                  max_iter=1000 if max_iter is None else max_iter,
                                  random_state=0)


class SGD(Peer):
    """SGDClassifier(loss="log_loss"): one-vs-rest, same alpha (alpha/2 ||w||^2)."""

    label = "SGDClassifier"

    def __init__(self, max_rows=None, max_logits_x_features=None):
        super().__init__("log_loss", max_rows, max_logits_x_features)

    def make(self, alpha, n_train, max_iter=None):
        kwargs = {} if max_iter is None else {"max_iter": max_iter}
        return SGDClassifier(loss=self.method, alpha=alpha, random_state=0, **kwargs)


class MLP(Peer):
    """MLPClassifier(hidden_layer_sizes=()): softmax regression by sgd/adam.

    MLP penalises ``alpha_mlp / (2 * batch) ||W||^2`` per minibatch of mean
    loss, so ``alpha_mlp = alpha * batch_size`` gives the common objective.
    """

    label = "MLPClassifier"

    def make(self, alpha, n_train, max_iter=None):
        batch = min(200, n_train)
        kwargs = {} if max_iter is None else {"max_iter": max_iter}
        return MLPClassifier(hidden_layer_sizes=(), solver=self.method,
                             alpha=alpha * batch, batch_size=batch, random_state=0,
                             **kwargs)

    def linear_params(self, model):
        return model.coefs_[0].T, model.intercepts_[0]


class TorchSoftmax:
    """nn.Linear + cross-entropy trained by torch (LBFGS, SGD or Adam).

    A minimal estimator: ``fit``, ``predict``, ``predict_proba``, ``coef_``,
    ``intercept_``, ``classes_``, ``n_iter_``. Same objective and stopping
    rule as sksoftmax: LBFGS stops when the largest gradient entry is below
    ``tol``; SGD (momentum 0.9, Nesterov, batches of 200, learning rate 0.01)
    and Adam (torch's defaults, learning rate 1e-3, batches of 200) when the
    epoch loss has not dropped by ``tol`` for 5 epochs. ``device`` is torch's
    (``"cuda"`` for the GPU benchmark): X is copied there once per fit.
    """

    def __init__(self, optimizer, alpha, max_iter=None, tol=1e-4, device="cpu"):
        self.optimizer = optimizer
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.device = device

    def fit(self, X, y):
        import torch

        torch.manual_seed(0)
        self.classes_, codes = np.unique(y, return_inverse=True)
        X_t = torch.from_numpy(np.ascontiguousarray(X)).to(self.device)
        y_t = torch.from_numpy(codes.astype(np.int64)).to(self.device)
        model = torch.nn.Linear(X.shape[1], len(self.classes_), dtype=X_t.dtype,
                                device=self.device)
        torch.nn.init.zeros_(model.weight)
        torch.nn.init.zeros_(model.bias)
        loss_fn = torch.nn.CrossEntropyLoss()

        def objective(rows=None):
            Xb, yb = (X_t, y_t) if rows is None else (X_t[rows], y_t[rows])
            return loss_fn(model(Xb), yb) + 0.5 * self.alpha * (model.weight ** 2).sum()

        if self.optimizer == "lbfgs":
            max_iter = 1000 if self.max_iter is None else self.max_iter
            opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=max_iter,
                                    tolerance_grad=self.tol, tolerance_change=1e-12,
                                    history_size=10, line_search_fn="strong_wolfe")

            def closure():
                opt.zero_grad()
                loss = objective()
                loss.backward()
                return loss

            opt.step(closure)
            self.n_iter_ = opt.state[opt._params[0]]["n_iter"]
        else:
            max_iter = 1000 if self.max_iter is None else self.max_iter
            if self.optimizer == "adam":
                opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            else:
                opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                      nesterov=True)
            gen = torch.Generator().manual_seed(0)
            best, stall = np.inf, 0
            for epoch in range(1, max_iter + 1):  # noqa: B007 (read after the loop)
                # summed on the device: a float() per step would wait for it
                total = torch.zeros((), dtype=X_t.dtype, device=self.device)
                order = torch.randperm(len(y_t), generator=gen).to(self.device)
                for rows in order.split(200):
                    opt.zero_grad()
                    loss = objective(rows)
                    loss.backward()
                    opt.step()
                    total += loss.detach() * len(rows)
                total = float(total) / len(y_t)
                stall = stall + 1 if total > best - self.tol else 0
                best = min(best, total)
                if stall >= 5:
                    break
            self.n_iter_ = epoch
        self.coef_ = model.weight.detach().cpu().numpy().copy()
        self.intercept_ = model.bias.detach().cpu().numpy().copy()
        return self

    def decision_function(self, X):
        return np.asarray(X @ self.coef_.T) + self.intercept_

    def predict_proba(self, X):
        from sksoftmax import softmax

        return softmax(self.decision_function(X), axis=1)

    def predict(self, X):
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


class Torch(Peer):
    label = "torch"
    dense_only = True

    def make(self, alpha, n_train, max_iter=None):
        return TorchSoftmax(self.method, alpha, max_iter=max_iter)


def torch_available():
    # find_spec, not import: importing torch loads its own OpenMP runtime into
    # the process, which must not happen in runs that do not time torch.
    return importlib.util.find_spec("torch") is not None


def all_peers(big_rows=300_000, slow_rows=100_000):
    """Every peer, with the sizes above which the slow ones are time-capped.

    newton-cholesky and SGDClassifier take 27-50 s and about 40 s per fit on
    200,000 x 100 (K = 10) on 2 cores, so they stop at ``slow_rows``.
    """
    peers = [
        LogReg("lbfgs", max_logits_x_features=5_000_000),
        LogReg("newton-cholesky", max_rows=slow_rows, max_logits_x_features=5_000),
        LogReg("saga", max_rows=20_000, max_logits_x_features=200_000),
        SGD(max_rows=slow_rows, max_logits_x_features=5_000),
        MLP("adam", max_rows=50_000, max_logits_x_features=200_000),
        MLP("sgd", max_rows=50_000, max_logits_x_features=200_000),
        SkSoftmax("lbfgs"),
        # minibatch steps cost O(K d) each (momentum / Adam touch every weight)
        SkSoftmax("sgd", max_rows=big_rows, max_logits_x_features=200_000),
        SkSoftmax("adam", max_rows=big_rows, max_logits_x_features=200_000),
    ]
    if torch_available():
        peers += [Torch("lbfgs", max_rows=big_rows, max_logits_x_features=200_000),
                  Torch("sgd", max_rows=big_rows, max_logits_x_features=200_000)]
    return peers


def peer_by_name(name):
    for peer in all_peers():
        if peer.name == name:
            return peer
    raise KeyError(name)
