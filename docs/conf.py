"""Sphinx configuration for sksoftmax.

The build needs no network: no intersphinx inventories are downloaded, and
links to other projects' sites are plain links. The gallery's examples run
during the build (``examples/plot_*.py``); the others are shown with the
output recorded in their text.
"""

import re
import sys
from pathlib import Path

import sksoftmax

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "sksoftmax"
author = "sksoftmax developers"
copyright = "2026, sksoftmax developers"
release = sksoftmax.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the built site: no CDN
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "benchmark_pages",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
autosummary_generate = True
# the Methods table links to each method's entry on the class's own page
# (docs/_templates/autosummary/class.rst documents every member there)
numpydoc_show_class_members = True
numpydoc_class_members_toctree = False
# numpydoc checks every documented object of ours: an Examples section is required
numpydoc_validation_checks = {"EX01"}
# methods inherited from scikit-learn's mixins are documented by scikit-learn
numpydoc_validation_exclude = {
    r"\.get_params$", r"\.set_params$", r"\.score$", r"\.set_\w+_request$",
    r"\.get_metadata_routing$", r"\.__init__$",
}
myst_heading_anchors = 2

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "doc_module": ("sksoftmax",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"sksoftmax": None},
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_memory": False,
    "abort_on_example_error": True,
}

templates_path = ["_templates"]
exclude_patterns = ["_build", "_ext", "benchmark_results"]
html_theme = "pydata_sphinx_theme"
html_title = "sksoftmax"
html_static_path = ["_static"]
html_css_files = ["custom.css"]

# Docstrings inherited from scikit-learn's mixins refer to labels of
# scikit-learn's own site; they point there instead.
SKLEARN_LABELS = {
    "accuracy_score": "modules/model_evaluation.html#accuracy-score",
    "metadata_routing": "metadata_routing.html",
}
_REF = re.compile(r":ref:`([^`<]+?)\s*<(\w+)>`")


def _sklearn_refs(app, what, name, obj, options, lines):
    def link(match):
        text, label = match.groups()
        if label not in SKLEARN_LABELS:
            return match.group(0)  # ours: Sphinx resolves it or -W fails
        return f"`{text} <https://scikit-learn.org/stable/{SKLEARN_LABELS[label]}>`__"

    lines[:] = [_REF.sub(link, line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _sklearn_refs)
