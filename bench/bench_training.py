"""One training epoch of ``fit``: compiled kernels vs the NumPy path.

Run:  pytest bench/bench_training.py --benchmark-columns=min,median,rounds --benchmark-group-by=group
Smoke (CI): pytest bench/bench_training.py --benchmark-disable

Rows are grouped by problem x batch size x dtype so the compiled and reference
backends sit side by side. The problem is digits-sized (2048 x 64 inputs,
a 64-128-10 relu net, cross-entropy, Adam). Each benchmark first checks that
one epoch on the timed backend gives the NumPy reference's parameters (to
float tolerance), then times one epoch with threads pinned by bench/conftest.py
(``NNCORE_BENCH_THREADS``, default 1).
"""

import numpy as np
import pytest

import nncore as nc
import nncore.backend as _backend

N, D, H, K = 2048, 64, 128, 10


def _problem(dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D))
    y = rng.integers(0, K, N)
    net = nc.Network([nc.Dense(D, H, "relu"), nc.Dropout(0.1), nc.Dense(H, K)],
                     loss="cross_entropy", regularizer=nc.L2(1e-4), dtype=dtype, seed=0)
    return net, X, y


def _epoch(net, X, y, batch_size, seed=0):
    net.fit(X, y, optimizer=nc.optim.Adam(1e-3), batch_size=batch_size, epochs=1,
            progress=False, seed=seed)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [32, 256, "full"])
@pytest.mark.parametrize("name", _backend.available())
def test_fit_epoch(benchmark, name, batch_size, dtype):
    benchmark.group = f"fit epoch {N}x{D} {D}-{H}-{K} batch={batch_size} {dtype}"
    nc.set_backend("numpy")
    ref, X, y = _problem(dtype)
    _epoch(ref, X, y, batch_size)
    nc.set_backend(name)
    net, X, y = _problem(dtype)
    _epoch(net, X, y, batch_size)
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(net.params, ref.params, rtol=tol, atol=tol)
    benchmark(_epoch, net, X, y, batch_size)
