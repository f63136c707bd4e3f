"""ONNX export through skl2onnx: importing this module registers the converters.

After ``import sksoftmax.onnx``, :func:`skl2onnx.to_onnx` and
:func:`skl2onnx.convert_sklearn` convert :class:`~sksoftmax.SoftmaxRegressionClassifier`
and :class:`~sksoftmax.SoftmaxRegressionClassifierCV`, alone or inside a
``Pipeline``, into the graph skl2onnx gives its linear classifiers: ``MatMul``
and ``Add`` for the logits, ``Softmax`` (``Sigmoid`` for two classes, as
``predict_proba``'s ``softmax([0, z])``), ``ArgMax`` and the mapping of the
index to ``classes_``. The outputs are skl2onnx's: the label, then the
probabilities. skl2onnx's classifier options apply: ``zipmap`` (True, False
or ``"columns"``) and ``nocl`` (the label as the class index). float32 and
float64 inputs are computed in their own precision.

Needs the ``onnx`` extra (``pip install 'sksoftmax[onnx]'``); importing
``sksoftmax`` alone imports neither skl2onnx nor onnxruntime.

Examples
--------
>>> import numpy as np
>>> import onnxruntime as rt
>>> from skl2onnx import to_onnx
>>> import sksoftmax.onnx  # registers the converters
>>> from sksoftmax import SoftmaxRegressionClassifier
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]], dtype=np.float32)
>>> clf = SoftmaxRegressionClassifier(alpha=0.1).fit(X, ["a", "a", "b", "b"])
>>> onx = to_onnx(clf, X[:1], options={"zipmap": False})
>>> session = rt.InferenceSession(onx.SerializeToString(),
...                               providers=["CPUExecutionProvider"])
>>> label, proba = session.run(None, {"X": X})
>>> label.tolist()
['a', 'a', 'b', 'b']
>>> bool(np.allclose(proba, clf.predict_proba(X), atol=1e-6))
True
"""

import numpy as np
from onnx import TensorProto
from skl2onnx import update_registered_converter
from skl2onnx._parse import _parse_sklearn_classifier
from skl2onnx.common.data_types import guess_proto_type
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ._estimator import SoftmaxRegressionClassifier
from ._path import SoftmaxRegressionClassifierCV

__all__ = ["convert_softmax_regression"]

_PROTO = {np.dtype(np.float32): TensorProto.FLOAT,
          np.dtype(np.float64): TensorProto.DOUBLE,
          np.dtype(np.int64): TensorProto.INT64}


def _parser(scope, model, inputs, custom_parsers=None):
    """skl2onnx's classifier parser (label, probabilities, zipmap), after a
    check that the model is fitted: the parser reads ``classes_`` first."""
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise NotFittedError(
            f"This {type(model).__name__} instance is not fitted yet: fit it before "
            "converting it to ONNX.") from None
    return _parse_sklearn_classifier(scope, model, inputs,
                                     custom_parsers=custom_parsers)


def convert_softmax_regression(scope, operator, container):
    """skl2onnx converter: the logits, the probabilities and the label.

    Parameters
    ----------
    scope, operator, container
        As skl2onnx passes them to every converter.

    Examples
    --------
    >>> import numpy as np
    >>> from skl2onnx import to_onnx
    >>> import sksoftmax.onnx
    >>> from sksoftmax import SoftmaxRegressionClassifier
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> clf = SoftmaxRegressionClassifier().fit(X, [0, 0, 1, 1])
    >>> onx = to_onnx(clf, X[:1])  # calls convert_softmax_regression
    >>> [node.op_type for node in onx.graph.node][:4]
    ['MatMul', 'Add', 'Sigmoid', 'Sub']
    """
    model = operator.raw_operator
    options = container.get_options(model, dict(nocl=False))
    proto = guess_proto_type(operator.inputs[0].type)
    dtype = np.float64 if proto == TensorProto.DOUBLE else np.float32
    X = operator.inputs[0].full_name
    label, probabilities = (o.full_name for o in operator.outputs[:2])

    def name(hint):
        return scope.get_unique_variable_name(hint)

    def constant(hint, value):
        value = np.asarray(value)
        full = name(hint)
        container.add_initializer(full, _PROTO[value.dtype], value.shape,
                                  value.ravel().tolist())
        return full

    if proto not in (TensorProto.FLOAT, TensorProto.DOUBLE):
        cast = name("cast")  # integer or boolean features: as float32
        container.add_node("Cast", [X], [cast], name=name("Cast"),
                           to=TensorProto.FLOAT)
        X = cast
    coef = constant("coef", np.asarray(model.coef_, dtype=dtype).T)
    intercept = constant("intercept", np.asarray(model.intercept_, dtype=dtype))
    product, logits = name("product"), name("logits")
    container.add_node("MatMul", [X, coef], [product], name=name("MatMul"))
    container.add_node("Add", [product, intercept], [logits], name=name("Add"))
    if np.asarray(model.coef_).shape[0] == 1:
        # two classes: softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]
        positive, negative = name("positive"), name("negative")
        one = constant("one", np.ones((1, 1), dtype=dtype))
        container.add_node("Sigmoid", [logits], [positive], name=name("Sigmoid"))
        container.add_node("Sub", [one, positive], [negative], name=name("Sub"))
        container.add_node("Concat", [negative, positive], [probabilities],
                           name=name("Concat"), axis=1)
    else:
        container.add_node("Softmax", [logits], [probabilities], name=name("Softmax"),
                           axis=1)
    index = name("index")
    container.add_node("ArgMax", [probabilities], [index], name=name("ArgMax"),
                       axis=1, keepdims=0)
    classes = np.asarray(model.classes_)
    if options["nocl"] or classes.dtype.kind in "iub":
        if options["nocl"] or np.array_equal(classes, np.arange(len(classes))):
            container.add_node("Identity", [index], [label], name=name("Identity"))
            return
        table = constant("classes", classes.astype(np.int64))
    else:
        table = name("classes")
        container.add_initializer(table, TensorProto.STRING, [len(classes)],
                                  [str(c).encode("utf-8") for c in classes])
    # the extractor returns shape (1, N) for a 1-D table: back to (N,)
    gathered, shape = name("gathered"), constant("shape", np.array([-1], np.int64))
    container.add_node("ArrayFeatureExtractor", [table, index], [gathered],
                       op_domain="ai.onnx.ml", name=name("Labels"))
    container.add_node("Reshape", [gathered, shape], [label], name=name("Reshape"))


for _model, _alias in ((SoftmaxRegressionClassifier, "SksoftmaxSoftmaxRegression"),
                       (SoftmaxRegressionClassifierCV,
                        "SksoftmaxSoftmaxRegressionCV")):
    update_registered_converter(
        _model, _alias, calculate_linear_classifier_output_shapes,
        convert_softmax_regression, parser=_parser,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]})
