"""The examples in the documentation pages (docs/**/*.rst) run as doctests.

A page that needs optional packages says so in its first line, e.g.
``.. doctest-requires: onnx, onnxruntime``; it is skipped where one is missing.
Pages run in a temporary directory (they write model files) and leave the
backend as they found it. Skipped where the docs are absent (the wheel check
runs the tests from a copy outside the tree).
"""

import ast
import doctest
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nncore as nc

DOCS = Path(__file__).resolve().parents[1] / "docs"
# Written pages only: not the build's output nor sphinx-gallery's generated ones.
GENERATED = {"_build", "auto_examples", "sg_execution_times.rst"}
PAGES = sorted(p for p in DOCS.glob("**/*.rst")
               if not GENERATED & set(p.relative_to(DOCS).parts)) if DOCS.is_dir() else []
EXAMPLES = DOCS.parent / "examples"


def _requires(text):
    m = re.match(r"\.\. doctest-requires:\s*(.+)", text)
    return [name.strip() for name in m.group(1).split(",")] if m else []


@pytest.mark.skipif(not PAGES, reason="docs/ not beside the tests")
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_doctests_of_page(page, tmp_path, monkeypatch):
    for module in _requires(page.read_text(encoding="utf-8")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{page.name} needs {module}")
    monkeypatch.chdir(tmp_path)
    backend = nc.get_backend()
    try:
        result = doctest.testfile(str(page), module_relative=False, verbose=False, report=True,
                                  optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    finally:
        nc.set_backend(backend)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {page.name}"


def _gallery_conf():
    """docs/conf.py's sphinx-gallery configuration (conf.py run as Sphinx runs it)."""
    namespace = {"__file__": str(DOCS / "conf.py")}
    exec(compile((DOCS / "conf.py").read_text(encoding="utf-8"), str(DOCS / "conf.py"), "exec"),
         namespace)
    return namespace


@pytest.mark.skipif(not PAGES or not EXAMPLES.is_dir(), reason="docs/ or examples/ missing")
def test_examples_page_includes_every_example(monkeypatch):
    """Every script of examples/ is in the docs' gallery, with a gallery header
    (a docstring opening with an RST title); the scripts the build does not run
    are named on the gallery's page."""
    # conf.py sets NNCORE_EXAMPLES_GALLERY=1: kept out of this process (and the
    # example subprocesses of tests/test_examples.py)
    monkeypatch.setattr(os, "environ", dict(os.environ))
    conf = _gallery_conf()
    gallery = conf["sphinx_gallery_conf"]
    assert "sphinx_gallery.gen_gallery" in conf["extensions"]
    assert (DOCS / gallery["examples_dirs"]).resolve() == EXAMPLES.resolve()
    assert f"{gallery['gallery_dirs']}/index" in (DOCS / "index.rst").read_text(encoding="utf-8")
    header = (EXAMPLES / "GALLERY_HEADER.rst").read_text(encoding="utf-8")
    for script in sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")):
        assert not re.search(gallery["ignore_pattern"], script.name), script.name
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")), clean=False)
        lines = (doc or "").strip().splitlines()
        assert len(lines) > 3 and set(lines[1]) == {"="} and len(lines[1]) == len(lines[0]), \
            f"{script.name}: no gallery header (title line, '=' underline, paragraph)"
        assert lines[2] == "" and lines[3].strip(), script.name
        if not re.search(gallery["filename_pattern"], str(script)):
            assert f"``{script.name}``" in header, f"{script.name} is not run: say so"
    assert re.search(gallery["ignore_pattern"], "_common.py")


@pytest.mark.skipif(not PAGES, reason="docs/ not beside the tests")
def test_pages_have_examples():
    """The user-guide pages show runnable code (not only prose)."""
    for page in sorted((DOCS / "guide").glob("*.rst")):
        assert ">>> " in page.read_text(encoding="utf-8"), page.name


@pytest.mark.skipif(not PAGES, reason="docs/ not beside the tests")
def test_sphinx_build_has_no_warnings(tmp_path):
    """What CI's docs stage checks, here so a docstring that breaks the docs
    (a malformed numpydoc section, a bad reference) fails where it is written.
    The dummy builder reads every page and docstring like the HTML one."""
    for module in ("sphinx", "numpydoc", "myst_parser", "sphinx_gallery", "sklearn"):
        pytest.importorskip(module)
    # plot_gallery=0: the gallery's pages without running the examples (CI's
    # HTML build runs them; tests/test_examples.py runs them here).
    res = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "dummy",
                          "-D", "plot_gallery=0", str(DOCS), str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
