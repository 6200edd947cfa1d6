"""One first-order optimizer step over a flat buffer: compiled kernels vs the NumPy path.

Run:  pytest bench/bench_optim.py --benchmark-columns=min,median,rounds --benchmark-group-by=group
Smoke (CI): pytest bench/bench_optim.py --benchmark-disable

Rows are grouped by optimizer x dtype x size so the compiled and reference
backends sit side by side. Each benchmark first checks that one step on the
timed backend equals one step on the NumPy reference from the same state
(to float tolerance), then times ``opt.step(params, grads)``. bench/conftest.py
pins BLAS and OpenMP threads (``NNCORE_BENCH_THREADS``, default 1); the
optimizer kernels use no BLAS, but an idle OpenBLAS pool could spin alongside.
"""

import numpy as np
import pytest

import nncore as nc
import nncore.backend as _backend
from nncore import optim

SIZES = [100_000]
OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=1e-3),
    "momentum": lambda: optim.SGD(lr=1e-3, momentum=0.9),
    "nesterov": lambda: optim.SGD(lr=1e-3, momentum=0.9, nesterov=True),
    "adagrad": lambda: optim.Adagrad(lr=1e-3),
    "rmsprop": lambda: optim.RMSprop(lr=1e-3),
    "adam": lambda: optim.Adam(lr=1e-3),
    "adamw": lambda: optim.AdamW(lr=1e-3),
    "adam_clip": lambda: optim.Adam(lr=1e-3, clip_norm=1.0),
}


def _data(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)


def _one_step(backend, make, p0, g, warm):
    """Two steps (so momentum/bias-correction paths run) on ``backend``; returns params."""
    nc.set_backend(backend)
    opt, p = make(), p0.copy()
    for _ in range(warm):
        opt.step(p, g)
    return p, opt


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("backend", _backend.available())
def test_optimizer_step(benchmark, backend, name, dtype, n):
    make = OPTIMIZERS[name]
    p0, g = _data(n, dtype)
    ref, _ = _one_step("numpy", make, p0, g, 2)
    got, opt = _one_step(backend, make, p0, g, 2)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * 1e-2)

    benchmark.group = f"optim-{name}-{dtype}-{n}"
    benchmark.extra_info.update(backend=backend, optimizer=name, dtype=dtype, n=n)
    benchmark(opt.step, got, g)
