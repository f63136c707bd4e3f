"""Sphinx extension: the recorded benchmark pages, regenerated from raw records.

Every benchmark script writes raw JSON first and derives its markdown tables and
plots from it. At each build this extension runs those same writers on the JSON
kept in ``docs/benchmark_results/`` and makes one page per recorded run under
``docs/recorded/`` (not under version control), so the pages cannot drift from
the records.
"""

import importlib
import json
import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parents[1]
RESULTS = DOCS / "benchmark_results"
PAGES = DOCS / "recorded"
# the benchmarks package beside the docs, whichever directory Sphinx runs from
sys.path.insert(0, str(DOCS.parent))


def _report(results, out):
    """Pages of ``python -m benchmarks.run``: every table and plot of one record."""
    from benchmarks import plots, report

    report.write_markdown(results, out / "results.md")
    plots.plot_all(results, out)


def _rows(module, md_name, png_name, key):
    def write(results, out):
        mod = importlib.import_module(f"benchmarks.{module}")
        mod.write_markdown(results[key], results["environment"], out / md_name)
        mod.plot(results[key], out / png_name)

    return write


# (page, raw record, writer, how the record was made)
RUNS = [
    ("headline", "headline/results.json", _report,
     "python -m benchmarks.run --only blobs_n200000_d100_k10_float32 --parts sets "
     "--no-memory --no-compile"),
    ("standard", "results.json", _report,
     "python -m benchmarks.run --preset standard --peers "
     '"LogisticRegression,SGDClassifier,MLPClassifier,sksoftmax"'),
    ("targets", "targets/targets.json",
     _rows("targets", "targets.md", "speedup_to_lr_objective.png", "rows"),
     "python -m benchmarks.targets"),
    ("stochastic", "stochastic/stochastic.json",
     _rows("stochastic", "stochastic.md", "time_to_accuracy.png", "rows"),
     "python -m benchmarks.stochastic --no-curves"),
    ("scaleout", "scaleout/scaleout.json",
     _rows("scaleout", "scaleout.md", "scaleout.png", "records"),
     "python -m benchmarks.scaleout --repeats 3"),
    ("scaleout_sgd", "scaleout/scaleout_sgd.json",
     _rows("scaleout", "scaleout_sgd.md", "scaleout_sgd.png", "records"),
     "python -m benchmarks.scaleout --solver sgd --rows 2000000 --repeats 3 "
     "--configs in-memory,dask-1-worker,dask-2-workers"),
    ("gpu", "gpu/gpu.json", _rows("gpu", "gpu.md", "gpu.png", "records"),
     "python -m benchmarks.gpu"),
    ("torch_partial", "torch_partial/results.json", _report,
     "python -m benchmarks.run --preset standard (stopped early, torch as a peer)"),
]


def write_pages(app):
    """Regenerate ``docs/recorded/*.md`` and their figures from the raw records."""
    shutil.rmtree(PAGES, ignore_errors=True)
    PAGES.mkdir()
    for page, record, write, command in RUNS:
        source = RESULTS / record
        if not source.exists():  # e.g. no GPU run recorded yet
            continue
        out = PAGES / page
        out.mkdir()
        write(json.loads(source.read_text()), out)
        (md,) = out.glob("*.md")
        figures = sorted(p.name for p in out.glob("*.png"))
        text = md.read_text().rstrip() + "\n\n"
        text += "".join(f"![{f}]({page}/{f})\n\n" for f in figures)
        text += (
            f"*Regenerated at every build from the raw record "
            f"`docs/benchmark_results/{record}`; recorded with `{command}`.*\n"
        )
        (PAGES / f"{page}.md").write_text(text)
        md.unlink()
    # a hand-written account of a before/after comparison: shown as recorded
    shutil.copy(RESULTS / "compile" / "compile_times.md", PAGES / "compile.md")


def setup(app):
    app.connect("builder-inited", write_pages)
    return {"parallel_read_safe": True, "version": "1"}
