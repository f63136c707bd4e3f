"""Sphinx configuration for sksoftmax."""

import sksoftmax

project = "sksoftmax"
author = "sksoftmax developers"
release = sksoftmax.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
]
autosummary_generate = True
numpydoc_show_class_members = False
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
}
templates_path = []
exclude_patterns = ["_build"]
html_theme = "pydata_sphinx_theme"
html_title = "sksoftmax"
