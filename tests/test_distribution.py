"""The distribution name: one of our own on the package index, used by every
install hint (issue 16 item 2). ``nncore`` there is another project (0.4.7,
"a lightweight machine learning toolkit"); the import name stays ``nncore``.

Reads the repository's own files, so it skips where they are absent (the wheel
check runs the tests from a copy outside the tree)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "nncore-train"
# "pip install nncore-train[plot]", "nncore[plot]": a distribution name with extras.
EXTRAS_HINT = re.compile(r"(?<![\w./-])(nncore[\w.-]*)\[([\w,\s-]+)\]")


def _pyproject():
    tomllib = pytest.importorskip("tomllib")
    path = ROOT / "pyproject.toml"
    if not path.exists():
        pytest.skip("no pyproject.toml beside the tests")
    return tomllib.loads(path.read_text())


def _text_files():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.rst")),
             *sorted((ROOT / "src" / "nncore").glob("**/*.py")), ROOT / "pyproject.toml"]
    files = [f for f in files if f.exists() and "_build" not in f.parts]
    if not (ROOT / "README.md").exists():
        pytest.skip("not run from a checkout")
    return files


def test_project_name_is_ours_and_extras_refer_to_it():
    project = _pyproject()["project"]
    assert project["name"] == DISTRIBUTION
    for extra, reqs in project["optional-dependencies"].items():
        for req in reqs:
            if req.startswith("nncore"):
                assert req.startswith(DISTRIBUTION + "["), (extra, req)


def test_every_install_hint_uses_the_distribution_name_and_real_extras():
    extras = set(_pyproject()["project"]["optional-dependencies"])
    hits = 0
    for path in _text_files():
        for m in EXTRAS_HINT.finditer(path.read_text(encoding="utf-8")):
            hits += 1
            where = f"{path.relative_to(ROOT)}: {m.group(0)}"
            assert m.group(1) == DISTRIBUTION, where
            assert {e.strip() for e in m.group(2).split(",")} <= extras, where
        for m in re.finditer(r"pip install\s+(-U\s+)?nncore(?![\w.-])", path.read_text(encoding="utf-8")):
            pytest.fail(f"{path.relative_to(ROOT)} installs the other project: {m.group(0)}")
    assert hits > 0                   # the pattern does find the hints


def test_one_version_string():
    """The version is written once (``nncore/_version.py``): pyproject.toml declares
    it dynamic and setuptools, expanding the configuration as a build does, reads
    exactly ``nncore.__version__``."""
    import nncore
    project = _pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    expand = pytest.importorskip("setuptools.config.pyprojecttoml").read_configuration
    built = expand(ROOT / "pyproject.toml", expand=True)["project"]["version"]
    assert built == nncore.__version__


def test_installed_distribution_version_is_the_package_version():
    """Where nncore is installed (CI's editable install, the wheel check), the
    distribution's metadata version is ``nncore.__version__``."""
    import nncore
    from importlib import metadata
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{DISTRIBUTION} is not installed here (tests run from the source tree)")
    assert dist.version == nncore.__version__
