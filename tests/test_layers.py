"""The layers below the estimator take plain values, never the estimator.

math -> kernels -> objective -> solvers -> estimator, with the dask and CUDA
backends beside the layers they replace: a backend that reached into the
estimator (its parameters or private methods) would tie every second
estimator to this one's internals.
"""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "sksoftmax")
BELOW_THE_ESTIMATOR = ["_math.py", "_kernels.py", "_steps.py", "_objective.py",
                       "_lbfgs.py", "_solvers.py", "_parallel.py", "_dask.py",
                       "_cuda.py", "_cuda_kernels.py"]


def offences(source):
    """What in ``source`` takes or reaches an estimator."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [getattr(node, "module", None) or ""]
            names += [a.name for a in node.names]
            found += [f"imports {n}" for n in names if "_estimator" in n]
        elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
            args = node.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                if a.arg in ("estimator", "clf", "model_estimator"):
                    found.append(f"parameter {a.arg!r} of line {node.lineno}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "estimator":
                found.append(f"estimator.{node.attr} at line {node.lineno}")
    return found


@pytest.mark.parametrize("module", BELOW_THE_ESTIMATOR)
def test_no_layer_below_the_estimator_takes_it(module):
    with open(os.path.join(PACKAGE, module)) as f:
        assert offences(f.read()) == []


def test_the_check_finds_an_estimator_reached_into():
    source = ("from ._estimator import X\n"
              "def fit(estimator, objective):\n"
              "    return estimator._batch_size(3)\n")
    assert sorted(offences(source)) == ["estimator._batch_size at line 3",
                                        "imports _estimator",
                                        "parameter 'estimator' of line 2"]
