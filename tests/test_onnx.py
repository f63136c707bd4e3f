"""ONNX export through skl2onnx, checked by running the graph in onnxruntime."""

import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_iris, load_wine
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxRegressionClassifier, SoftmaxRegressionClassifierCV

skl2onnx = pytest.importorskip("skl2onnx")
rt = pytest.importorskip("onnxruntime")
import sksoftmax.onnx  # noqa: E402,F401  (registers the converters)

# float32 graphs compute in float32; float64 graphs as predict_proba does
ATOL = {np.float32: 1e-5, np.float64: 1e-9}


def _run(model, X, **options):
    """The exported graph's outputs on X, options for every sksoftmax model."""
    onx = skl2onnx.to_onnx(model, X[:1], options={
        SoftmaxRegressionClassifier: options, SoftmaxRegressionClassifierCV: options})
    session = rt.InferenceSession(onx.SerializeToString(),
                                  providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


def _labels(kind, y):
    if kind == "str":
        return np.array(["class_0", "class_1", "class_2"])[y]
    if kind == "bool":
        return y > 0
    return y * 3 + 2  # integers that are not their own indices


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("labels, n_classes", [("int", 2), ("int", 3), ("str", 2),
                                               ("str", 3), ("bool", 2)])
@pytest.mark.parametrize("pipeline", [False, True])
def test_exported_graph_predicts_as_the_model(dtype, labels, n_classes, pipeline):
    X, y = load_wine(return_X_y=True)
    if not pipeline:
        X = StandardScaler().fit_transform(X)
    X = X.astype(dtype)
    if n_classes == 2:
        y = (y > 0).astype(int)
    y = _labels(labels, y)
    clf = SoftmaxRegressionClassifier(alpha=1e-2)
    model = make_pipeline(StandardScaler(), clf) if pipeline else clf
    model.fit(X, y)
    label, proba = _run(model, X, zipmap=False)
    expected = model.predict(X)
    assert_array_equal(label.astype(bool) if labels == "bool" else label, expected)
    assert proba.dtype == dtype
    assert_allclose(proba, model.predict_proba(X), atol=ATOL[dtype], rtol=0)


@pytest.mark.parametrize("zipmap", [True, "columns"])
def test_zipmap_outputs(zipmap):
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = SoftmaxRegressionClassifier().fit(X, names)
    outputs = _run(clf, X, zipmap=zipmap)
    assert_array_equal(outputs[0], clf.predict(X))
    proba = clf.predict_proba(X)
    if zipmap is True:  # one {class: probability} map per row
        assert outputs[1][0].keys() == set(names)
        got = np.array([[row[c] for c in clf.classes_] for row in outputs[1]])
    else:  # one output per class
        got = np.column_stack(outputs[1:])
    assert_allclose(got, proba, atol=1e-5, rtol=0)


def test_nocl_gives_the_class_index():
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    clf = SoftmaxRegressionClassifier().fit(X, np.array(["a", "b", "c"])[y])
    label, _ = _run(clf, X, zipmap=False, nocl=True)
    assert label.dtype == np.int64
    assert_array_equal(label, np.searchsorted(clf.classes_, clf.predict(X)))


def test_integer_features_are_cast():
    X, y = load_iris(return_X_y=True)
    X = np.rint(X * 10).astype(np.int64)
    clf = SoftmaxRegressionClassifier().fit(X, y)
    label, proba = _run(clf, X, zipmap=False)
    assert_array_equal(label, clf.predict(X))
    assert_allclose(proba, clf.predict_proba(X), atol=1e-5, rtol=0)


def test_cv_estimator_and_l1_model_export():
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    cv = SoftmaxRegressionClassifierCV(alphas=4, l1_ratio=0.5, cv=3).fit(X, y)
    assert np.any(cv.coef_ == 0)
    label, proba = _run(cv, X, zipmap=False)
    assert_array_equal(label, cv.predict(X))
    assert_allclose(proba, cv.predict_proba(X), atol=1e-9, rtol=0)


def test_unfitted_model_is_a_clear_error():
    X = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(NotFittedError, match="fit it before converting it to ONNX"):
        skl2onnx.to_onnx(SoftmaxRegressionClassifier(), X)


def test_importing_sksoftmax_imports_no_onnx_package():
    code = ("import sys, sksoftmax; print([m for m in "
            "('skl2onnx', 'onnxruntime', 'onnx') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
