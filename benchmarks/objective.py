"""The one objective every benchmarked model is scored by.

``mean_i CE(softmax(W x_i + b), y_i) + alpha / 2 * ||W||^2``, evaluated in
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


def objective(coef, intercept, X, y_codes, alpha):
    """Training objective of linear parameters ``(coef, intercept)``."""
    log_p = log_softmax(logits(coef, intercept, X), axis=1)
    data_term = -np.mean(log_p[np.arange(len(y_codes)), y_codes])
    return float(data_term + 0.5 * alpha * np.sum(coef.astype(np.float64) ** 2))
