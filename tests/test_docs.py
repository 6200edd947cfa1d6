"""The examples in the documentation pages (docs/**/*.rst) run as doctests.

A page that needs optional packages says so in its first line, e.g.
``.. doctest-requires: onnx, onnxruntime``; it is skipped where one is missing.
Pages run in a temporary directory (they write model files) and leave the
backend as they found it. Skipped where the docs are absent (the wheel check
runs the tests from a copy outside the tree).
"""

import doctest
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nncore as nc

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.glob("**/*.rst") if "_build" not in p.parts) if DOCS.is_dir() else []
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


@pytest.mark.skipif(not PAGES or not EXAMPLES.is_dir(), reason="docs/ or examples/ missing")
def test_examples_page_includes_every_example():
    text = (DOCS / "examples.rst").read_text(encoding="utf-8")
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
    missing = [s for s in scripts if f".. literalinclude:: ../examples/{s}" not in text]
    assert not missing, f"docs/examples.rst does not include {missing}"


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
    for module in ("sphinx", "numpydoc", "myst_parser", "sklearn"):
        pytest.importorskip(module)
    res = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "dummy",
                          str(DOCS), str(tmp_path / "out")], capture_output=True, text=True,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
