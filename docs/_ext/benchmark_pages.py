"""Sphinx extension: the recorded benchmark pages, and every figure the prose
quotes, regenerated from raw records.

Every benchmark script writes raw JSON first and derives its markdown tables and
plots from it. At each build this extension runs those same writers on the JSON
kept in ``docs/benchmark_results/`` and makes one page per recorded run under
``docs/recorded/`` (not under version control), so the pages cannot drift from
the records.

The prose pages quote the same records, never copied numbers:

- ``:rec:`page:key``` is the figure ``key`` of ``quotes(record)`` in the
  benchmark module that wrote the page's record (e.g. ``:rec:`cv:digits.grid_ratio```);
- ``.. recorded-table:: page:name`` is the table ``name`` of ``tables(record)``,
  with a caption naming the record.

An unknown page or key is an error, so a build under ``-W`` fails rather than
print a stale or missing number.
"""

import importlib
import json
import shutil
import sys
from pathlib import Path

import matplotlib
from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parents[1]
RESULTS = DOCS / "benchmark_results"
PAGES = DOCS / "recorded"
# the benchmarks package beside the docs, whichever directory Sphinx runs from
sys.path.insert(0, str(DOCS.parent))

from benchmarks import records  # noqa: E402


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


def _page(module, md_name):
    """Pages of the benchmarks whose ``markdown(record)`` writes the whole page."""
    def write(results, out):
        mod = importlib.import_module(f"benchmarks.{module}")
        (out / md_name).write_text(mod.markdown(results))

    return write


# (page, writer, how the record was made); the record is RECORDED[page]
RUNS = [
    ("headline", _report,
     "python -m benchmarks.run --only blobs_n200000_d100_k10_float32 --parts sets "
     "--no-memory --no-compile"),
    ("standard", _report,
     "python -m benchmarks.run --preset standard --peers "
     '"LogisticRegression,SGDClassifier,MLPClassifier,sksoftmax"'),
    ("targets", _rows("targets", "targets.md", "speedup_to_lr_objective.png", "rows"),
     "python -m benchmarks.targets"),
    ("stochastic", _rows("stochastic", "stochastic.md", "time_to_accuracy.png", "rows"),
     "python -m benchmarks.stochastic --no-curves"),
    ("scaleout", _rows("scaleout", "scaleout.md", "scaleout.png", "records"),
     "python -m benchmarks.scaleout --repeats 3"),
    ("scaleout_sgd",
     _rows("scaleout", "scaleout_sgd.md", "scaleout_sgd.png", "records"),
     "python -m benchmarks.scaleout --solver sgd --rows 2000000 --repeats 3 "
     "--configs in-memory,dask-1-worker,dask-2-workers"),
    ("gpu", _rows("gpu", "gpu.md", "gpu.png", "records"),
     "python -m benchmarks.gpu"),
    ("torch_partial", _report,
     "python -m benchmarks.run --preset standard (stopped early, torch as a peer)"),
    ("unscaled", _page("unscaled", "unscaled.md"),
     "python -m benchmarks.unscaled --repeats 5"),
    ("float32", _page("float32", "float32.md"),
     "python -m benchmarks.float32 --problems 150 --tol 1e-6"),
    ("l1", _page("l1", "l1.md"), "python -m benchmarks.l1 --repeats 3"),
    ("cv", _page("cv", "cv.md"), "python -m benchmarks.cv --repeats 3"),
    ("compile", _page("measure", "compile.md"),
     "python -m benchmarks.measure compile 1"),
]
# titles of the pages whose writer gives every page the same one
TITLES = {
    "headline": "The headline set with every peer",
    "standard": "The standard preset: every peer on every set",
    "torch_partial": "The standard preset with torch as a peer (stopped early)",
}
# captions, by the start of a figure's file name
CAPTIONS = {
    "speedup": "LogisticRegression(lbfgs)'s fit time over each model's, per data "
               "set (above 1: faster than LogisticRegression).",
    "fit_time_vs_n": "Fit time against the number of rows (dense float32, d = 100, "
                     "K = 10).",
    "convergence": "Objective above the lowest seen against wall time: one point "
                   "per whole fit at a growing max_iter (fits of 1, 2, 3, ... "
                   "iterations or epochs). A curve that stays flat is a solver "
                   "whose longer fits end no lower.",
    "speedup_to_lr_objective": "Speed-up to LogisticRegression's objective, per "
                               "data set, with the targets.",
    "time_to_accuracy": "Test accuracy against fit time.",
    "scaleout": "Fit time and peak memory per process, per configuration.",
    "gpu": "GPU fit times against the CPU's and the peers'.",
}


def _caption(figure):
    for start in sorted(CAPTIONS, key=len, reverse=True):
        if figure.startswith(start):
            return CAPTIONS[start]
    return figure


def record_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``:rec:`page:key```: a figure quoted from a recorded run."""
    try:
        value = records.quote(text)
    except KeyError as why:
        msg = inliner.reporter.error(f":rec:`{text}`: {why.args[0]}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    return [nodes.Text(value)], []


def _cell(text):
    """A table cell as reST reads it: a lone "-" would start a bullet list."""
    text = str(text)
    return "—" if text == "-" else "\\" + text if text[:1] in "-*+#" else text


class RecordedTable(Directive):
    """``.. recorded-table:: page:name``: a table of a recorded run."""

    required_arguments = 1

    def run(self):
        page = self.arguments[0].partition(":")[0]
        try:
            header, rows = records.table(self.arguments[0])
        except KeyError as why:
            raise self.error(f"recorded-table: {why.args[0]}") from None
        path = records.RECORDED[page][0]
        lines = [f".. list-table:: From :doc:`recorded/{page}` "
                 f"(``docs/benchmark_results/{path}``, {records.date(page)})",
                 "   :header-rows: 1", ""]
        for row in [header, *rows]:
            cells = [_cell(cell) for cell in row]
            lines.append(f"   * - {cells[0]}")
            lines.extend(f"     - {cell}" for cell in cells[1:])
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=path), self.content_offset,
                                container)
        return container.children



def write_pages(app):
    """Regenerate ``docs/recorded/*.md`` and their figures from the raw records."""
    shutil.rmtree(PAGES, ignore_errors=True)
    PAGES.mkdir()
    for page, write, command in RUNS:
        record = records.RECORDED[page][0]
        source = RESULTS / record
        if not source.exists():  # e.g. no GPU run recorded yet
            continue
        out = PAGES / page
        out.mkdir()
        write(json.loads(source.read_text()), out)
        (md,) = out.glob("*.md")
        figures = sorted(p.name for p in out.glob("*.png"))
        text = md.read_text().rstrip() + "\n\n"
        if page in TITLES:  # pages written by the same writer get their own
            first, _, rest = text.partition("\n")
            text = f"# {TITLES[page]}\n{rest}" if first.startswith("# ") else text
        if figures:
            text += "## Figures\n\n"
        for f in figures:
            text += f"![{_caption(f)}]({page}/{f})\n\n*{_caption(f)}*\n\n"
        text += (
            f"*Regenerated at every build from the raw record "
            f"`docs/benchmark_results/{record}`; recorded with `{command}`.*\n"
        )
        (PAGES / f"{page}.md").write_text(text)
        md.unlink()


def setup(app):
    app.connect("builder-inited", write_pages)
    app.add_role("rec", record_role)
    app.add_directive("recorded-table", RecordedTable)
    return {"parallel_read_safe": True, "version": "1"}
