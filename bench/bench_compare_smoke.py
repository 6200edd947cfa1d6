"""bench/compare.py end to end at toy sizes, so the peer comparison cannot rot.

CI runs bench/ with ``--benchmark-disable``; this file has no timing of its
own: it runs the script (JAX rows only when jax and optax are installed) and
checks that every contender produced finite times and the table names them.
"""

import importlib.util
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import compare  # noqa: E402


def test_compare_runs_at_toy_sizes(capsys):
    argv = ["--samples", "256", "--tiny-samples", "64", "--torch-tiny-samples", "16",
            "--adam-params", "1000", "--repeats", "1", "--threads", "1", "--skip-slow",
            "--only", "tiny", "adam"]
    compare.main(argv)
    out = capsys.readouterr().out
    assert "| 2-16-16-1 tanh, MSE, SGD, batch 1 |" in out and "| Adam update" in out
    if all(importlib.util.find_spec(m) for m in ("jax", "optax")):
        assert "JAX + optax (jit + scan) @1" in out and "compile + first call" in out
    for line in out.splitlines():
        if line.startswith("- ") and "median" in line:
            assert "(stopped)" not in line, line


def test_jax_worker_computes_what_nncore_computes(tmp_path):
    """The JAX contender does the same work: its Adam workload (no randomness:
    the same p, g, lr and step count) ends where nncore's Adam ends."""
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    import numpy as np

    import nncore as nc
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(1000).astype(np.float32)
    g = rng.standard_normal(1000).astype(np.float32)
    proc = compare._JaxProcess("adam", 1, {"p": p0, "g": g}, lr=1e-3, steps=5)
    try:
        assert math.isfinite(proc.run()) and proc.compile_seconds > 0
        p_jax = proc.dump(tmp_path / "p.npz")["p"]         # warm-up call + one run
    finally:
        proc.close()
    opt, p = nc.optim.Adam(1e-3), p0.copy()
    for _ in range(10):
        opt.step(p, g)
    np.testing.assert_allclose(p_jax, p, rtol=1e-5, atol=1e-7)
    assert np.all(p != p0)


def test_mnist_rows_learn_on_the_default_data(capsys):
    """Every library's MNIST-shaped net learns on the default data: the loss the
    report prints after each contender's run is below the initial one (on the old
    uniform/random-label data nothing can be learnt; see compare.py's docstring)."""
    import re
    argv = ["--samples", "1024", "--repeats", "1", "--threads", "1", "--skip-slow",
            "--only", "mnist32"]
    compare.main(argv)
    out = capsys.readouterr().out
    found = re.findall(r"mnist32: (.*?) @1 thread.*after its last run ([0-9.e+-]+) "
                       r"\(at nncore's initial weights ([0-9.e+-]+)\)", out)
    libs = {label for label, _, _ in found}
    assert "nncore compiled" in libs, out
    if compare.torch is not None:
        assert "PyTorch, fused Adam" in libs
    for label, final, initial in found:
        assert float(final) < 0.8 * float(initial), (label, final, initial)


def test_mnist_data_is_deterministic_and_in_range():
    for kind in compare.MNIST_DATA:
        X, y = compare.mnist_data(500, kind, seed=3)
        X2, y2 = compare.mnist_data(500, kind, seed=3)
        assert X.dtype == np.float32 and X.shape == (500, 784) and y.shape == (500,)
        assert np.array_equal(X, X2) and np.array_equal(y, y2)
        assert X.min() >= 0.0 and X.max() <= 1.0 and set(np.unique(y)) <= set(range(10))
    with pytest.raises(ValueError, match="unknown data kind"):
        compare.mnist_data(10, "mnist")
