"""The documentation's promises: runnable examples on every public object,
and the getting-started page's snippets."""

import doctest
import inspect
from pathlib import Path

import pytest

import sksoftmax
from sksoftmax import SoftmaxRegressionClassifier
from sksoftmax.precompile import main, precompile

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _public_objects():
    objects = [getattr(sksoftmax, name) for name in sksoftmax.__all__]
    objects += [precompile, main]  # the public module sksoftmax.precompile
    # the estimator's own public methods (those inherited from scikit-learn's
    # mixins are documented by scikit-learn)
    for name, member in vars(SoftmaxRegressionClassifier).items():
        if not name.startswith("_") and inspect.isfunction(member):
            objects.append(member)
    return objects


@pytest.mark.parametrize("obj", _public_objects(), ids=lambda o: o.__qualname__)
def test_public_objects_have_examples(obj):
    # --doctest-modules runs them; this checks that they are there
    doc = inspect.getdoc(obj)
    assert "Examples\n--------" in doc, f"{obj.__qualname__} has no Examples section"
    examples = doc.split("Examples\n--------", 1)[1]
    assert ">>> " in examples, f"{obj.__qualname__}'s Examples section has no code"


def test_getting_started_snippets_run():
    result = doctest.testfile(
        str(DOCS / "getting_started.rst"), module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted >= 10
    assert result.failed == 0
