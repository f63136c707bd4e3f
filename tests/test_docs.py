"""The documentation's promises: runnable examples on every public object,
the getting-started page's snippets, and figures quoted from the records."""

import doctest
import inspect
import re
from pathlib import Path

import pytest

import sksoftmax
from benchmarks import records
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


def _quoted(pattern):
    """``(page file, reference)`` for every match of ``pattern`` in the docs."""
    return [(path.name, ref) for path in sorted(DOCS.glob("*.rst"))
            for ref in re.findall(pattern, path.read_text())]


QUOTES = _quoted(r":rec:`([^`]+)`")
TABLES = _quoted(r"\.\. recorded-table:: (\S+)")


def test_the_docs_quote_records():
    # the prose's figures come from the records (issue: pages that disagree)
    assert len(QUOTES) >= 50 and len(TABLES) >= 8


@pytest.mark.parametrize(("page", "reference"), QUOTES + TABLES,
                         ids=[f"{p}:{r}" for p, r in QUOTES + TABLES])
def test_every_quoted_figure_is_in_its_record(page, reference):
    # what the docs build does with each :rec: role and recorded-table; a
    # figure missing from the committed record would fail the build
    if (page, reference) in TABLES:
        header, rows = records.table(reference)
        assert rows and all(len(row) == len(header) for row in rows)
    else:
        assert records.quote(reference).strip()


def test_a_missing_figure_names_what_is_missing():
    with pytest.raises(KeyError, match="no figure 'nothing' in the 'targets' record"):
        records.quote("targets:nothing")
    with pytest.raises(KeyError, match="no recorded page 'nowhere'"):
        records.quote("nowhere:speedup")
    with pytest.raises(KeyError, match="no table 'nothing' in the 'cv' record"):
        records.table("cv:nothing")


def test_quotes_are_the_records_figures():
    # ratios, ranges and rounding from a record written by hand
    from benchmarks import cv, unscaled

    rows = [{"dataset": "digits", "ours_s": 0.5, "grid_s": 1.5, "lrcv_s": 5.0,
             "ours_alpha": 1e-3, "grid_alpha": 1e-3, "ours_acc": 0.97,
             "lrcv_acc": 0.968, "iters": [3.0, 12.4, 0.0]},
            {"dataset": "embeddings 20k x 256 K=20", "ours_s": 2.0, "grid_s": 5.0,
             "lrcv_s": 60.0, "ours_alpha": 1e-6, "grid_alpha": 1e-5,
             "ours_acc": 0.99, "lrcv_acc": 0.99, "iters": [41.8]}]
    q = cv.quotes({"rows": rows})
    assert q["digits.grid_ratio"] == "3.0×" and q["embeddings.lrcv_ratio"] == "30.0×"
    assert q["grid_ratio_range"] == "2.5–3.0×" and q["lrcv_ratio_range"] == "10.0–30.0×"
    assert q["acc_apart"] == "0.20" and q["same_alpha"] == "not on every set"
    assert q["digits.peak_iter"] == "12" and q["embeddings.peak_iter"] == "42"
    record = {"settings": {"repeats": 5}, "rows": [
        {"dataset": "wine", "lr_s": 0.5, "ours_s": 0.02, "lr_iter": 3019,
         "ours_iter": 74, "lr_gap": 9.1e-4, "ours_gap": 3.7e-8},
        {"dataset": "iris", "lr_s": 0.02, "ours_s": 0.005, "lr_iter": 103,
         "ours_iter": 16, "lr_gap": 4.9e-6, "ours_gap": 1.9e-6}]}
    q = unscaled.quotes(record)
    assert q["wine.ratio"] == "25.0×" and q["ratio_range"] == "4.0–25.0×"
    assert q["iris.lr_gap"] == "+4.9e-06" and q["repeats"] == "5"
