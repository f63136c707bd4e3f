"""The recorded runs that the docs show and quote, in one registry.

Each recorded page of the docs is regenerated from one raw JSON record under
``docs/benchmark_results/``; the prose quotes figures from the same records
(``:rec:`page:key``` and ``.. recorded-table:: page:name``, see
``docs/_ext/benchmark_pages.py``). A benchmark module that is quoted has
``quotes(record) -> {key: text}`` and may have ``tables(record) -> {name:
(header, rows)}``. Nothing here imports matplotlib or Sphinx, so the tests
can check every quoted figure against the committed records.
"""

import functools
import importlib
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "benchmark_results"

# page -> (its raw record under RESULTS, the benchmark module that reads it)
RECORDED = {
    "headline": ("headline/results.json", "report"),
    "standard": ("results.json", "report"),
    "targets": ("targets/targets.json", "targets"),
    "stochastic": ("stochastic/stochastic.json", "stochastic"),
    "scaleout": ("scaleout/scaleout.json", "scaleout"),
    "scaleout_sgd": ("scaleout/scaleout_sgd.json", "scaleout"),
    "gpu": ("gpu/gpu.json", "gpu"),
    "torch_partial": ("torch_partial/results.json", "report"),
    "unscaled": ("unscaled/unscaled.json", "unscaled"),
    "float32": ("float32/float32.json", "float32"),
    "l1": ("l1/l1.json", "l1"),
    "cv": ("cv/cv.json", "cv"),
    "compile": ("compile/compile.json", "measure"),
}


def load(page):
    """``(record, module)`` of a recorded page; raises ``KeyError`` naming
    what is missing."""
    if page not in RECORDED:
        raise KeyError(f"no recorded page {page!r}")
    path, module = RECORDED[page]
    source = RESULTS / path
    if not source.exists():
        raise KeyError(f"the {page!r} record, {source.name}, is not there")
    return (json.loads(source.read_text()),
            importlib.import_module(f"benchmarks.{module}"))


@functools.cache
def _quotes(page):
    record, module = load(page)
    return module.quotes(record) if hasattr(module, "quotes") else {}


def quote(reference):
    """The figure ``"page:key"`` of its record, as text; raises
    ``KeyError`` naming what is missing. Records are read once per process."""
    page, _, key = reference.partition(":")
    values = _quotes(page)
    if key not in values:
        raise KeyError(f"no figure {key!r} in the {page!r} record")
    return values[key]


def table(reference):
    """The table ``"page:name"`` of its record: ``(header, rows)``; raises
    ``KeyError`` naming what is missing."""
    page, _, name = reference.partition(":")
    record, module = load(page)
    found = module.tables(record) if hasattr(module, "tables") else {}
    if name not in found:
        raise KeyError(f"no table {name!r} in the {page!r} record")
    return found[name]


def date(page):
    """When a page's record was made, as its environment says."""
    return load(page)[0].get("environment", {}).get("date", "an undated run")
