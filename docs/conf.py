"""Sphinx configuration: the nncore documentation.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    sphinx-build -W -b html docs docs/_build/html

The API pages are generated from the numpydoc docstrings of the installed
package; the examples in the pages run as doctests in the test suite
(``tests/test_docs.py``). The scripts in ``examples/`` become a sphinx-gallery
(``docs/auto_examples/``, generated): each runs once per build, in fast mode,
and its figures and printed output appear under its source. ``-D
plot_gallery=0`` builds the gallery pages without running the scripts (the
test suite's warning check does).
"""

import os
import sys
import warnings

# Module docstrings have a "Design" section (house style); numpydoc only knows
# the standard sections and says so for each module page.
warnings.filterwarnings("ignore", message="Unknown section Design", category=UserWarning)

# The examples run inside this process (sphinx-gallery): fast sizes, figures
# left open for the gallery to render (examples/_common.py reads this).
os.environ["NNCORE_EXAMPLES_GALLERY"] = "1"
# Tiny matrices: one BLAS thread is faster, and the build machine's cores are few
# (set before nncore loads NumPy/SciPy and their BLAS).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

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
    "sphinx_gallery.gen_gallery",
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

# The examples gallery, as scikit-learn's. Every script is shown; those matched
# by NOT_RUN are shown as source only (examples/GALLERY_HEADER.rst says why):
# their fast mode is a smoke test whose numbers would mislead, and full size
# takes minutes.
NOT_RUN = ("classic_benchmarks", "mnist1d_baseline")
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/(?!(%s)\.py$)[a-z]\w*\.py$" % "|".join(NOT_RUN),
    "ignore_pattern": r"^(__init__|_common)\.py$",   # (file name) the shared set-up is no example
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "min_reported_time": 1,
    "remove_config_comments": True,
}
