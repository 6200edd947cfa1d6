"""Sphinx configuration: the nncore documentation.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    sphinx-build -W -b html docs docs/_build/html

The API pages are generated from the numpydoc docstrings of the installed
package; the examples in the pages run as doctests in the test suite
(``tests/test_docs.py``).
"""

import os
import sys
import warnings

# Module docstrings have a "Design" section (house style); numpydoc only knows
# the standard sections and says so for each module page.
warnings.filterwarnings("ignore", message="Unknown section Design", category=UserWarning)

# A checkout without an install (PYTHONPATH unset) still documents its own sources.
try:
    import nncore
except ImportError:  # pragma: no cover - docs built from a bare checkout
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src")))
    import nncore

project = "nncore"
author = "nncore developers"
copyright = "nncore developers"
version = release = nncore.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",          # the README's tables are included, not copied
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path = []

autosummary_generate = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
numpydoc_show_class_members = False       # autodoc lists members; no autosummary stubs
numpydoc_class_members_toctree = False
myst_heading_anchors = 3
# README/CONTRIBUTING sections are included mid-page, so their first heading may
# be "###" under an rst title; that is intended.
suppress_warnings = ["myst.header"]

html_theme = "alabaster"
html_title = f"nncore {release}"
html_static_path = []
html_theme_options = {
    "description": "Dense neural networks on the CPU: compiled Cython kernels with a pure-NumPy twin",
    "fixed_sidebar": True,
}
