"""The built wheel installs into a fresh virtualenv and works outside the source tree.

Slow (compiles the extension): runs only with ``NNCORE_TEST_WHEEL=1``. CI does
the full wheel check in ``.ci/run``; this is the same check for a developer.
No downloads: the fresh environment sees the running interpreter's
site-packages (numpy, scipy, ...) through a ``.pth`` line, and the wheel is
installed by its distribution name (``nncore-train``; the import name stays
``nncore``) from the built file with ``--no-deps --no-index``.
"""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The name on the package index (``nncore`` there is another project).
DISTRIBUTION = "nncore-train"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("NNCORE_TEST_WHEEL") != "1",
                       reason="set NNCORE_TEST_WHEEL=1 to build and test the wheel"),
]

CHECK = r"""
import sys, numpy as np
import nncore as nc
assert "wheelenv" in nc.__file__, nc.__file__
from nncore.backend import _cython as C, _numpy as R
nc.set_backend("cython")
assert nc.get_backend() == "cython"
X = np.arange(12.0).reshape(3, 4); W = np.ones((4, 2)); b = np.zeros(2)
o1, o2 = np.empty((3, 2)), np.empty((3, 2))
C.dense_forward(X, W, b, 1, o1); R.dense_forward(X, W, b, 1, o2)
assert np.array_equal(o1, o2), (o1, o2)
nc.show_config()
from importlib.metadata import distribution, packages_distributions
assert distribution("nncore-train").version == nc.__version__
assert "nncore-train" in packages_distributions()["nncore"]
print("WHEEL-OK")
"""


def _run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return res


def test_wheel_builds_installs_and_imports_outside_tree(tmp_path):
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
          str(ROOT)], cwd=ROOT)
    wheels = list(dist.glob(DISTRIBUTION.replace("-", "_") + "-*.whl"))
    assert len(wheels) == 1, wheels
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheels[0])],
                           capture_output=True, text=True).stdout
    files = [line.split()[0] for line in names.splitlines()[1:] if line.strip()]
    assert any(f.startswith("nncore/_kernels.") and f.endswith((".so", ".pyd")) for f in files)
    assert not [f for f in files if f.endswith((".pyx", ".c", ".o"))], files

    env_dir = tmp_path / "wheelenv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    py = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                ).stdout.strip()
    # dependencies from the running environment, without its .pth hooks (so an
    # editable nncore there stays invisible)
    Path(site, "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # Without PYTHONPATH: a checkout's src/ on it (with the build's egg-info)
    # would make pip think the distribution is installed already.
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NNCORE_BACKEND")}
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
          "--no-index", "--find-links", str(dist), DISTRIBUTION], env=clean_env)
    res = _run([str(py), "-c", CHECK], cwd=tmp_path, env=clean_env)
    assert "WHEEL-OK" in res.stdout
