"""Every command and snippet of README.md runs (issue 12 item 10), so a README claim cannot rot.

The fenced ``bash``/``console`` blocks are run as commands (``nncore`` through
``nncore.cli.main`` in-process, ``python -m nncore`` as a subprocess) and the
``python`` blocks as scripts (a block that does not start with an import
continues the one before), in a temporary
directory, with fast settings: every ``--epochs N`` / ``epochs=N`` becomes a
couple of epochs. Files the README's commands take as the user's own data
(``diabetes.csv``, ``new_patients.csv``, ``space.json``) are written first;
``space.json`` is the one the README shows. Printed output is not compared
(the figures belong to full-length runs). What is not run here, and why, is in
``NOT_RUN``: setting up a virtualenv, installing and building wheels are what
CI's ``.ci/run`` does from a fresh clone; a Dask scheduler address is not
there to connect to.
"""

import ast
import contextlib
import io
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from nncore.cli import main

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
if not README.exists():  # pragma: no cover - a copy of tests/ without the README
    pytest.skip("README.md is not next to tests/", allow_module_level=True)

TEXT = README.read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)

# Commands that the test does not run, with the reason (prefix -> why).
NOT_RUN = {
    "python3 -m venv": "creating the virtualenv and installing: .ci/run stage 1 (the nncore "
                       "command the setup line ends with is run here)",
    ".venv/bin/sphinx-build": "the documentation build: tests/test_docs.py",
    ".venv/bin/pip install": "installing the test extras and running pytest: .ci/run stages 1-2",
    "pip install build": "building the sdist and wheel: .ci/run stage 4",
    "pip install auditwheel": "repairing the wheel: a release step",
    "cibuildwheel": "building wheels for every platform: a release step",
    "nncore tune data.csv --space space.json --scheduler": "needs a running Dask scheduler",
}


def _blocks(*languages):
    return [body for lang, body in FENCE.findall(TEXT) if lang in languages]


def _fast(text):
    """Fast settings: a couple of epochs wherever the README asks for more."""
    text = re.sub(r"(--epochs\s+)\d+", r"\g<1>2", text)
    return re.sub(r"""(\bepochs["']?\s*[=:]\s*\[?)\d+""", r"\g<1>2", text)


def _commands():
    """Every command line of the console/bash blocks, with its not-run reason (or None)."""
    out = []
    for lang, body in FENCE.findall(TEXT):
        if lang not in ("bash", "console", "sh", ""):
            continue
        for line in body.splitlines():
            line = line.strip()
            if lang == "console":
                if not line.startswith("$ "):
                    continue  # printed output
                line = line[2:]
            if not line or line.startswith("#"):
                continue
            if lang == "" and not line.startswith(("nncore ", "python ")):
                continue
            for part in line.split("&&"):
                part = part.strip()
                reason = next((why for pre, why in NOT_RUN.items() if part.startswith(pre)),
                              None) or next((why for pre, why in NOT_RUN.items()
                                             if line.startswith(pre)), None)
                if part.startswith(".venv/bin/nncore "):  # the setup line's training
                    part, reason = part[len(".venv/bin/"):], None
                out.append((part, reason))
    return out


def _run(command, workdir):
    """Exit status and output of one README command (``nncore`` in-process: fast)."""
    words = shlex.split(_fast(command), comments=True)
    if words[0] == "nncore":
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(words[1:])
        finally:
            os.chdir(cwd)
        return rc, out.getvalue() + err.getvalue()
    if words[:3] == ["python", "-m", "nncore"]:
        r = subprocess.run([sys.executable] + words[1:], capture_output=True, text=True,
                           cwd=workdir, env=_env(), timeout=300)
        return r.returncode, r.stdout + r.stderr
    raise AssertionError(f"README command of an unknown kind: {command}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory with the data files the README's commands expect from the user."""
    d = tmp_path_factory.mktemp("readme")
    sk = pytest.importorskip("sklearn.datasets")
    data = sk.load_diabetes()
    names = [str(n) for n in data.feature_names]
    rows = np.column_stack([data.data, data.target])
    np.savetxt(d / "diabetes.csv", rows, delimiter=",", header=",".join(names + ["progression"]),
               comments="")
    np.savetxt(d / "new_patients.csv", data.data[:10], delimiter=",", header=",".join(names),
               comments="")
    shown = re.search(r"`space\.json` like `(\{.*?\})`", TEXT)
    assert shown, "the README shows an example space.json"
    (d / "space.json").write_text(_fast(shown.group(1)))
    json.loads((d / "space.json").read_text())
    return d


def _env():
    env = dict(os.environ, MPLBACKEND="Agg")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"  # tiny problems; the suite shares the cores
    return env


def test_every_not_run_entry_is_in_the_readme():
    commands = [c for c, _ in _commands()]
    for prefix in NOT_RUN:
        assert any(c.startswith(prefix) for c in commands) or prefix in TEXT, prefix


def test_readme_commands(workdir):
    ran = 0
    for command, reason in _commands():
        if reason is not None:
            continue
        rc, output = _run(command, workdir)
        assert rc == 0, f"README command failed: {command}\n{output}"
        ran += 1
    assert ran >= 9


def _python_scripts():
    """The python blocks as scripts: a block that does not start with an import
    continues the one before it (the README's running session)."""
    scripts = []
    for body in _blocks("python"):
        first = next((ln for ln in body.splitlines() if ln.strip() and
                      not ln.lstrip().startswith("#")), "")
        if scripts and not first.startswith(("import ", "from ")):
            scripts[-1] += "\n" + body
        else:
            scripts.append(body)
    return scripts


def _imported_modules(source):
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("index", range(len(_python_scripts())))
def test_readme_python_snippet(workdir, index):
    source = _python_scripts()[index]
    for module in set(_imported_modules(source)):
        pytest.importorskip(module)  # optional extras (scikit-learn, onnxruntime, ...)
    pytest.importorskip("matplotlib")
    script = workdir / f"snippet_{index}.py"
    script.write_text(_fast(source))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       cwd=workdir, env=_env(), timeout=300)
    assert r.returncode == 0, f"README snippet {index} failed:\n{r.stdout}\n{r.stderr}"
