"""The one objective every benchmarked model is scored by.

``mean_i CE(softmax(W x_i + b), y_i) + alpha / 2 * ||W||^2`` (with an
``l1_ratio``, the elastic net ``alpha * ((1 - l1_ratio) / 2 * ||W||^2 +
l1_ratio * ||W||_1)``), evaluated in
float64 from each model's linear parameters, whatever the model optimised
(one-vs-rest SGD is scored as if its scores were softmax logits). A single
row of coefficients is the binary form ``softmax([0, z])``.
"""

import numpy as np

from sksoftmax import log_softmax


def logits(coef, intercept, X):
    """Full (n, n_classes) logits from linear parameters."""
    Z = np.asarray(X @ coef.T.astype(np.float64)) + intercept.astype(np.float64)
    if coef.shape[0] == 1:
        Z = np.column_stack([np.zeros(len(Z)), Z[:, 0]])
    return Z


def objective(coef, intercept, X, y_codes, alpha, l1_ratio=0.0, sample_weight=None):
    """Training objective of linear parameters ``(coef, intercept)`` (the
    data term a weighted mean when ``sample_weight`` is given)."""
    log_p = log_softmax(logits(coef, intercept, X), axis=1)
    data_term = -np.average(log_p[np.arange(len(y_codes)), y_codes],
                            weights=sample_weight)
    coef = coef.astype(np.float64)
    return float(data_term + alpha * ((1.0 - l1_ratio) / 2 * np.sum(coef ** 2)
                                      + l1_ratio * np.abs(coef).sum()))
