"""bench/compare.py end to end at toy sizes, so the peer comparison cannot rot.

CI runs bench/ with ``--benchmark-disable``; this file has no timing of its
own: it runs the script (JAX rows only when jax and optax are installed, Keras
rows only when Keras 3 is) and checks that every contender produced finite
times and the table names them.
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
    if compare._keras_available():
        assert compare.KERAS_LABEL + " @1" in out
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
    assert compare.FTZ_LABEL in libs and "With subnormals flushed" in out, out
    if compare.torch is not None:
        assert "PyTorch, fused Adam" in libs
    if compare._keras_available():
        assert compare.KERAS_LABEL in libs
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


@pytest.mark.parametrize("workload", ["tiny", "mnist32"])
def test_keras_worker_computes_what_nncore_computes(tmp_path, workload):
    """The Keras contender trains the same network with the same loss and
    optimizer: with the rows in order (``--shuffle 0``), its warm-up epoch and
    one timed epoch end where nncore's two epochs end (small nets, so quick)."""
    if not compare._keras_available():
        pytest.skip("Keras 3 and JAX are not installed")
    import nncore as nc
    rng = np.random.default_rng(1)
    if workload == "tiny":
        layers = lambda: [nc.Dense(2, 16, "tanh"), nc.Dense(16, 16, "tanh"), nc.Dense(16, 1)]  # noqa: E731
        X = rng.uniform(-1, 1, (48, 2)).astype(np.float32)
        y = (np.sin(3 * X[:, 0]) * X[:, 1]).astype(np.float32)
        loss, opt, batch, options = "mse", nc.optim.SGD(0.01), 1, {"lr": 0.01}
        atol = 1e-5
    else:
        layers = lambda: [nc.Dense(12, 8, "relu"), nc.Dense(8, 8, "relu"), nc.Dense(8, 3)]  # noqa: E731
        X = rng.standard_normal((96, 12)).astype(np.float32)
        y = rng.integers(0, 3, 96).astype(np.int32)
        loss, opt, batch, options = "cross_entropy", nc.optim.Adam(1e-2), 32, {"lr": 1e-2}
        # Keras's Adam adds epsilon to sqrt(v) before the bias correction (eps / sqrt(1 -
        # beta2^t) in torch's terms, 3e-7 at the first step): parameters whose gradients
        # are ~1e-6 move differently, by far less than one step (lr = 1e-2).
        atol = 5e-5
    arrays = dict(compare._initial_weights(layers), X=X, y=y)
    proc = compare._KerasProcess(workload, 1, arrays, shuffle=0, **options)
    try:
        assert math.isfinite(proc.run()) and proc.compile_seconds > 0
        keras_weights = proc.dump(tmp_path / "w.npz")
    finally:
        proc.close()
    net = nc.Network(layers(), loss=loss, dtype="float32", seed=0)
    start = [np.array(layer.W) for layer in net.layers]
    net.fit(X, y, optimizer=opt, batch_size=batch, epochs=2, shuffle=False, progress=False)
    for i, layer in enumerate(net.layers):
        np.testing.assert_allclose(keras_weights[f"W{i}"], layer.W, rtol=1e-4, atol=atol)
        np.testing.assert_allclose(keras_weights[f"b{i}"], layer.b, rtol=1e-4, atol=atol)
        assert not np.array_equal(keras_weights[f"W{i}"], start[i])


def test_mnist_cpu_runs_at_toy_sizes(capsys):
    """bench/mnist_cpu.py (CPU time per epoch, one thread) end to end at toy sizes."""
    import mnist_cpu
    mnist_cpu.main(["--rows", "96", "--rounds", "1", "--batch", "32", "--flush-denormal"])
    out = capsys.readouterr().out
    assert "--data prototypes, batch 32" in out and "nncore flushing subnormals" in out
    from nncore import _kernels as K
    assert K.flush_denormal() is False       # the switch is put back after each epoch
