"""sksoftmax: fast, exact multinomial (softmax) logistic regression for scikit-learn."""

from ._estimator import SoftmaxRegressionClassifier
from ._math import cross_entropy, log_softmax, one_hot, softmax, softmax_cross_entropy
from ._path import SoftmaxRegressionClassifierCV, softmax_regression_path

__all__ = [
    "SoftmaxRegressionClassifier",
    "SoftmaxRegressionClassifierCV",
    "softmax_regression_path",
    "softmax",
    "log_softmax",
    "one_hot",
    "cross_entropy",
    "softmax_cross_entropy",
]

__version__ = "0.1.0.dev0"
