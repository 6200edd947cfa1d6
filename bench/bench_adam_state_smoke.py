"""bench/adam_state.py runs end to end (the README's Adam figures come from it).

No timing: its replay (a fit of a few rows, 20 updates) and in-cache sizes at the
smallest settings, in a child process as the script itself starts its builds.
"""

import os
import subprocess
import sys

import pytest

pytest.importorskip("nncore._kernels")

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "adam_state.py")


def test_replay_and_sizes_run():
    out = subprocess.run([sys.executable, SCRIPT, "--only", "replay", "sizes", "--fit-rows",
                          "64", "--repeats", "1"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "first moments subnormal" in out.stdout and "µs per update" in out.stdout
    assert out.stdout.count("ns per parameter") == 4
