"""The issue-5 workloads: compiled epoch loop vs the NumPy path.

Run:    pytest bench/bench_perf.py --benchmark-columns=min,median,rounds --benchmark-group-by=group
Smoke:  pytest bench/bench_perf.py --benchmark-disable     (small sizes, bodies run once)

Threads are pinned by bench/conftest.py (``NNCORE_BENCH_THREADS``, default 1).
Rows are grouped per workload so the compiled and NumPy backends sit side by
side; every benchmark first checks that the timed backend gives the NumPy
reference's result (to float32 tolerance) on the same data. PyTorch and
scikit-learn on the same workloads: ``python bench/compare.py``.

* tiny: 2-16-16-1 tanh, MSE, SGD, batch 1 -- one epoch of sample-by-sample steps.
* mnist: 784-256-256-10 relu, cross-entropy, Adam, batch 32 and 128 -- one epoch
  of MNIST-shaped float32 rows.
* adam: one fused Adam update over 1e5 and 1e7 float32 parameters.
"""

import numpy as np
import pytest

import nncore as nc
import nncore.backend as _backend


def backends():
    """The compiled backend (when built) and the NumPy reference."""
    return _backend.available()


def _fit_epoch(make_net, X, y, opt, batch, seed=0):
    net = make_net()
    net.fit(X, y, optimizer=opt(), batch_size=batch, epochs=1, progress=False, seed=seed)
    return net


def _mnist(n):
    """n MNIST-shaped float32 rows with random labels, and the 784-256-256-10 relu net."""
    rng = np.random.default_rng(0)
    X = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)

    def make_net():
        return nc.Network([nc.Dense(784, 256, "relu"), nc.Dense(256, 256, "relu"),
                           nc.Dense(256, 10)], loss="cross_entropy", seed=0)
    return X, y, make_net


def _checked(benchmark, name, make_net, X, y, opt, batch):
    """Check the timed backend against the NumPy reference, then time one epoch."""
    nc.set_backend("numpy")
    ref = _fit_epoch(make_net, X, y, opt, batch)
    nc.set_backend(name)
    got = _fit_epoch(make_net, X, y, opt, batch)
    np.testing.assert_allclose(got.params, ref.params, rtol=2e-4, atol=2e-4)
    benchmark(_fit_epoch, make_net, X, y, opt, batch)


@pytest.mark.parametrize("name", backends())
def test_tiny_sgd_batch1_epoch(benchmark, smoke_run, name):
    n = 64 if smoke_run else 2000
    benchmark.group = f"tiny 2-16-16-1 tanh MSE SGD batch 1, {n} samples"
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    y = (np.sin(3 * X[:, 0]) * X[:, 1]).astype(np.float32)

    def make_net():
        return nc.Network([nc.Dense(2, 16, "tanh"), nc.Dense(16, 16, "tanh"), nc.Dense(16, 1)],
                          loss="mse", seed=0)
    _checked(benchmark, name, make_net, X, y, lambda: nc.optim.SGD(0.01), 1)


@pytest.mark.parametrize("batch", [32, 128])
@pytest.mark.parametrize("name", backends())
def test_mnist_adam_epoch(benchmark, smoke_run, name, batch):
    n = 2 * batch if smoke_run else 6000
    benchmark.group = f"mnist 784-256-256-10 relu CE Adam batch {batch}, {n} samples"
    X, y, make_net = _mnist(n)
    _checked(benchmark, name, make_net, X, y, lambda: nc.optim.Adam(1e-3), batch)


@pytest.mark.parametrize("size", [10**5, 10**7])
@pytest.mark.parametrize("name", backends())
def test_adam_update(benchmark, smoke_run, name, size):
    if smoke_run:
        size = min(size, 10**4)
    benchmark.group = f"adam update {size:.0e} float32"
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(size).astype(np.float32)
    g = rng.standard_normal(size).astype(np.float32)
    results = {}
    for be in ("numpy", name):
        nc.set_backend(be)
        opt, p = nc.optim.Adam(1e-3), p0.copy()
        for _ in range(3):
            opt.step(p, g)
        results[be] = (opt, p)
    np.testing.assert_allclose(results[name][1], results["numpy"][1], rtol=1e-6, atol=1e-7)
    opt, p = results[name]
    benchmark(opt.step, p, g)


@pytest.mark.parametrize("pool", ["shared", "own"])
def test_mnist32_blas_pool_2_threads(benchmark, smoke_run, pool):
    """Batch 32 on 2 threads with BLAS's parallel jobs on nncore's OpenMP team
    (``shared``, the default where available) or on OpenBLAS's own threads
    (``own``: the update then stays single-threaded). Same bits either way."""
    if "cython" not in backends():
        pytest.skip("compiled backend not built")
    from threadpoolctl import threadpool_limits
    from nncore import _kernels as K
    if pool == "shared" and not K.blas_shared_pool():
        pytest.skip("no OpenBLAS threads callback here")
    n = 64 if smoke_run else 6000
    benchmark.group = f"mnist 784-256-256-10 Adam batch 32 on 2 threads, {n} samples: BLAS pool"
    X, y, make_net = _mnist(n)
    nc.set_backend("cython")
    saved = nc.get_num_threads()
    old = K._set_blas_shared_pool(False)
    try:
        nc.set_num_threads(2)
        with threadpool_limits(2):
            ref = _fit_epoch(make_net, X, y, lambda: nc.optim.Adam(1e-3), 32)
            K._set_blas_shared_pool(pool == "shared")
            got = _fit_epoch(make_net, X, y, lambda: nc.optim.Adam(1e-3), 32)
            np.testing.assert_array_equal(got.params, ref.params)
            benchmark(_fit_epoch, make_net, X, y, lambda: nc.optim.Adam(1e-3), 32)
    finally:
        K._set_blas_shared_pool(old)
        nc.set_num_threads(saved)


@pytest.mark.parametrize("frozen", ["frozen lanes", "plain loop", "no subnormals"])
def test_adam_update_dead_units(benchmark, smoke_run, frozen):
    """The Adam update of the 784-256-256-10 net (269,322 float32 parameters)
    once most ReLU units are dead: zero gradients, first moments stopped at
    subnormal fixed points (k * 2^-149, k <= 4). With the frozen-lane path
    (default) vs the plain loop, whose subnormal arithmetic takes microcode
    assists; and, for scale, the same state with those moments at 0. Every
    variant gives the NumPy reference's bits."""
    if "cython" not in backends():
        pytest.skip("compiled backend not built")
    from nncore import _kernels as K
    from nncore.backend import _cython as CY
    n = 10**4 if smoke_run else 269322
    benchmark.group = f"adam update {n} float32, 95 % dead lanes (subnormal moments)"
    rng = np.random.default_rng(0)
    k = None if frozen == "no subnormals" else (1, 5)
    p, g, m, v = _adam_lanes(rng, n, 0.95, k, rng.normal(0, 1e-3, n))
    args = (1e-3, 0.9, 0.999, 1e-8, 5000, 0.0, False, 1.0)
    old = K._set_adam_freeze(frozen != "plain loop")
    try:
        got = _adam_bits_checked(p, g, m, v, args)
        benchmark(CY.adam_step, got[0], g, got[1], got[2], *args)
    finally:
        K._set_adam_freeze(old)


def _adam_lanes(rng, n, dead_share, k_range, live_grad):
    """p, g, m, v of an Adam state whose ``dead_share`` of lanes have a zero
    gradient and a subnormal first moment k * 2^-149 with k in ``k_range`` (None:
    m = 0 there); the other lanes get ``live_grad``."""
    dead = rng.random(n) < dead_share
    p = rng.normal(0, 0.05, n).astype(np.float32)
    g = np.where(dead, 0.0, live_grad).astype(np.float32)
    k = 0 if k_range is None else rng.integers(*k_range, n)
    m = np.where(dead, k * 2.0**-149, rng.normal(0, 1e-4, n)).astype(np.float32)
    v = np.abs(rng.normal(0, 1e-7, n)).astype(np.float32)
    return p, g, m, v


def _adam_bits_checked(p, g, m, v, args):
    """One compiled Adam step on copies, bit for bit the NumPy reference's; returns
    the compiled step's (p, m, v)."""
    from nncore.backend import _cython as CY, _numpy as NP
    ref, got = [a.copy() for a in (p, m, v)], [a.copy() for a in (p, m, v)]
    NP.adam_step(ref[0], g, ref[1], ref[2], *args)
    CY.adam_step(got[0], g, got[1], got[2], *args)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    return got


@pytest.mark.parametrize("level", [2, 1, 0], ids=["AVX-512 loop", "AVX2 clone", "baseline"])
def test_adam_update_isa(benchmark, smoke_run, level):
    """The float32 Adam update of the 784-256-256-10 net (269,322 parameters) in
    a live network's state: gradients over six decades, 0.6 % of the lanes dead
    and decaying through the subnormals (zero gradient, m = k * 2^-149 with
    4 < k < 2^23, as bench/compare.py's batch-32 fit has after an epoch). The
    AVX-512 loop (src/nncore/_adam_avx512.h: sqrt(v)/sqrt(bc2) as a double
    product, decaying lanes from their bits) against the multiversioned scalar
    loop's AVX2 and baseline clones; all give the NumPy reference's bits."""
    if "cython" not in backends():
        pytest.skip("compiled backend not built")
    from nncore import _kernels as K
    from nncore.backend import _cython as CY
    old = K._set_isa(level)
    try:
        if K._isa() != level:
            pytest.skip("the CPU lacks this level")
        n = 10**4 if smoke_run else 269322
        benchmark.group = f"adam update {n} float32, live, 0.6 % decaying subnormal moments"
        rng = np.random.default_rng(0)
        live = rng.normal(0, 1, n) * 10.0 ** rng.uniform(-6, 0, n)
        p, g, m, v = _adam_lanes(rng, n, 0.006, (5, 1 << 23), live)
        args = (1e-3, 0.9, 0.999, 1e-8, 500, 0.0, False, 1.0)
        _adam_bits_checked(p, g, m, v, args)
        # every round from the same state (repeated steps would take the decaying
        # lanes to their fixed points within ~140 calls)
        fresh = lambda: ((p.copy(), g, m.copy(), v.copy(), *args), {})
        benchmark.pedantic(CY.adam_step, setup=fresh, rounds=5 if smoke_run else 200)
    finally:
        K._set_isa(old)
