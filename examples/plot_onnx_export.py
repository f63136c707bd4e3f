"""
===========================================
Deploying a model with ONNX and onnxruntime
===========================================

A fitted pipeline usually leaves the notebook as ONNX: skl2onnx converts it,
and onnxruntime serves it from any language. ``import sksoftmax.onnx``
registers converters for :class:`~sksoftmax.SoftmaxRegressionClassifier` and
:class:`~sksoftmax.SoftmaxRegressionClassifierCV` with skl2onnx (it needs the
``onnx`` extra: ``pip install 'sksoftmax[onnx]'``); the graph is skl2onnx's
for linear classifiers, MatMul, Add, Softmax, ArgMax and the class labels.
"""

import time

import numpy as np
import onnxruntime as rt
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sksoftmax.onnx  # noqa: F401  (registers the converters)
from sksoftmax import SoftmaxRegressionClassifier

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
names = np.array([f"digit {d}" for d in range(10)])[y]
pipe = make_pipeline(StandardScaler(), SoftmaxRegressionClassifier(alpha=1e-3))
pipe.fit(X, names)

# %%
# Export, load, compare
# ---------------------
# ``zipmap=False`` gives the probabilities as one array (the default is one
# ``{label: probability}`` map per row, as for scikit-learn's classifiers).
onx = to_onnx(pipe, X[:1], options={SoftmaxRegressionClassifier: {"zipmap": False}})
session = rt.InferenceSession(onx.SerializeToString(),
                              providers=["CPUExecutionProvider"])
print("graph:", [node.op_type for node in onx.graph.node])
label, proba = session.run(None, {"X": X})
print("labels equal:", bool(np.all(label == pipe.predict(X))))
difference = np.abs(proba - pipe.predict_proba(X)).max()
print(f"largest probability difference: {difference:.1e}")

# %%
# Inference time
# --------------
# One row (a request) and 10,000 rows (a batch), median of repeated calls.


def median_seconds(func, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


batch = np.tile(X, (6, 1))[:10_000]
for rows, data, repeats in (("1 row", X[:1], 200), ("10,000 rows", batch, 20)):
    ours = median_seconds(lambda d=data: pipe.predict_proba(d), repeats)
    onnx = median_seconds(lambda d=data: session.run(None, {"X": d}), repeats)
    print(f"{rows:>11}: predict_proba {1e3 * ours:.3f} ms, onnxruntime "
          f"{1e3 * onnx:.3f} ms")
