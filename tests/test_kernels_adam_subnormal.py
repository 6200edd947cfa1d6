"""Adam on moments that have decayed into the subnormal range.

A parameter whose gradient is exactly zero (a dead ReLU unit, an input
feature that is always 0) keeps a first moment that decays into the subnormal
range and stops at a fixed point; the compiled kernel recognises such lanes
and skips their arithmetic (subnormal operands cost a microcode assist on
x86). These tests hold that path to the NumPy reference bit for bit -- on
states built from subnormals, signed zeros, tiny and huge parameters -- and
check that it gives the same bits as the ordinary loop.
"""

import zlib

import numpy as np
import pytest

import nncore
from nncore.backend import _numpy as NP

pytestmark = pytest.mark.skipif("cython" not in nncore.backend.available(),
                                reason="compiled backend not built")

if "cython" in nncore.backend.available():
    from nncore import _kernels as K
    from nncore.backend import _cython as CY

UINT = {np.float32: np.uint32, np.float64: np.uint64}
SIGNIFICAND = {np.float32: 23, np.float64: 52}


def _bits_equal(a, b):
    """Bitwise equality, NaNs compared as NaNs (their sign is not specified)."""
    a = np.asarray(a)
    b = np.asarray(b)
    nan = np.isnan(a)
    assert np.array_equal(nan, np.isnan(b))
    ua, ub = a.view(UINT[a.dtype.type]), b.view(UINT[b.dtype.type])
    bad = np.flatnonzero((ua != ub) & ~nan)
    assert bad.size == 0, f"{bad.size} lanes differ, first {bad[:5]}: {a[bad[:5]]} vs {b[bad[:5]]}"


def _subnormal(rng, dtype, n, kmax):
    """Signed subnormals k * tiny with 1 <= k <= kmax."""
    u = UINT[dtype]
    k = rng.integers(1, kmax + 1, n).astype(u)
    sign = (rng.integers(0, 2, n).astype(u) << u(8 * np.dtype(dtype).itemsize - 1))
    return (k | sign).view(dtype)


def _state(rng, dtype, n=3 * 4096 + 5):
    """p, g, m, v with every kind of lane the kernel distinguishes."""
    top = (1 << SIGNIFICAND[dtype]) - 1
    kind = rng.integers(0, 8, n)
    m = rng.normal(0, 1e-3, n).astype(dtype)
    m[kind == 0] = _subnormal(rng, dtype, np.sum(kind == 0), 4)          # fixed points (beta1 0.9)
    m[kind == 1] = _subnormal(rng, dtype, np.sum(kind == 1), 600)        # decaying, or fixed (beta1 0.999)
    m[kind == 2] = _subnormal(rng, dtype, np.sum(kind == 2), top)        # anywhere below the normals
    m[kind == 3] = 0.0
    m[kind == 4] = np.finfo(dtype).tiny * rng.uniform(1, 1.2, np.sum(kind == 4))  # about to underflow
    v = np.abs(rng.normal(0, 1e-6, n)).astype(dtype)
    vk = rng.integers(0, 5, n)
    v[vk == 0] = np.abs(_subnormal(rng, dtype, np.sum(vk == 0), 500))     # fixed for beta2 0.999
    v[vk == 1] = np.abs(_subnormal(rng, dtype, np.sum(vk == 1), top))
    v[vk == 2] = 0.0
    p = rng.normal(0, 0.1, n).astype(dtype)
    pk = rng.integers(0, 10, n)
    p[pk == 0] = 0.0
    p[pk == 1] = -0.0
    p[pk == 2] = _subnormal(rng, dtype, np.sum(pk == 2), top)
    p[pk == 3] = np.finfo(dtype).tiny * rng.uniform(1, 1e6, np.sum(pk == 3))
    p[pk == 4] = rng.choice([-1.0, 1.0], np.sum(pk == 4)) * np.finfo(dtype).max / 4
    g = np.zeros(n, dtype)
    gk = rng.integers(0, 6, n)
    g[gk == 0] = -0.0
    g[gk == 1] = rng.normal(0, 1e-3, np.sum(gk == 1))
    g[gk == 2] = _subnormal(rng, dtype, np.sum(gk == 2), top)
    return p, g, m, v


CONFIGS = [
    # lr, beta1, beta2, eps, weight_decay, eps_inside_sqrt, gscale
    (1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1.0),
    (1e-3, 0.999, 0.999, 1e-8, 0.0, False, 1.0),
    (1e-3, 0.9, 0.999, 1e-8, 1e-2, False, 0.5),       # AdamW decay, clipped gradient
    (1e-3, 0.9, 0.99, 1e-8, 0.0, True, 1.0),          # eps inside the root
    (1e-3, 0.3, 0.9, 1e-8, 0.0, False, 1.0),          # the (1-w) form of lerp
    (10.0, 0.9, 0.999, 1e-30, 0.0, False, 1.0),       # a step that does move tiny p
    (1e-3, 0.9, 0.999, 0.0, 0.0, False, 1.0),         # no eps: nothing may be frozen
    (1e30, 0.9, 0.5, 1e-3, 0.0, True, 1.0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("freeze", [True, False])
def test_adam_subnormal_state_matches_numpy(dtype, cfg, freeze):
    lr, b1, b2, eps, wd, inside, gs = cfg
    rng = np.random.default_rng(zlib.crc32(repr((np.dtype(dtype).name, cfg)).encode()))
    p, g, m, v = _state(rng, dtype)
    ref = [a.copy() for a in (p, m, v)]
    got = [a.copy() for a in (p, m, v)]
    old = K._set_adam_freeze(freeze)
    try:
        with np.errstate(all="ignore"):
            for step in range(1, 40):
                NP.adam_step(ref[0], g, ref[1], ref[2], lr, b1, b2, eps, step, wd, inside, gs)
                CY.adam_step(got[0], g, got[1], got[2], lr, b1, b2, eps, step, wd, inside, gs)
    finally:
        K._set_adam_freeze(old)
    for r, c in zip(ref, got):
        _bits_equal(r, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dead_units_reach_the_frozen_path_and_match_numpy(dtype):
    """A layer with dead units: their moments decay to subnormal fixed points
    over a few hundred zero-gradient steps; every step stays bit-identical."""
    rng = np.random.default_rng(7)
    n = 3000
    p = rng.normal(0, 0.1, n).astype(dtype)
    m = np.zeros(n, dtype)
    v = np.zeros(n, dtype)
    live = rng.random(n) < 0.5
    ref = [p.copy(), m.copy(), v.copy()]
    got = [p.copy(), m.copy(), v.copy()]
    steps = 900 if dtype is np.float32 else 7300   # float64 moments need ~6700 steps to go subnormal
    for step in range(1, steps + 1):
        g = np.where(live | (step < 5), rng.normal(0, 1e-3, n), 0.0).astype(dtype)
        NP.adam_step(ref[0], g, ref[1], ref[2], 1e-3, 0.9, 0.999, 1e-8, step, 0.0, False, 1.0)
        CY.adam_step(got[0], g, got[1], got[2], 1e-3, 0.9, 0.999, 1e-8, step, 0.0, False, 1.0)
    for r, c in zip(ref, got):
        _bits_equal(r, c)
    dead_m = got[1][~live]
    tiny = np.finfo(dtype).tiny
    # the dead lanes did reach subnormal fixed points (so the frozen path ran)
    assert np.all((np.abs(dead_m) < tiny) & (dead_m != 0))
    # ... at fixed points: m + w (0 - m) rounds back to m iff rne(w k) == 0
    w = float(np.asarray(1.0 - 0.9, dtype))
    kfix = max(k for k in range(1, 64) if k * w < 0.5)       # 4 in float32, 5 in float64
    k = np.abs(dead_m).view(UINT[dtype])
    assert k.max() <= kfix
    # and the update leaves them there, frozen or not
    before = [a.copy() for a in got]
    g = np.where(live, rng.normal(0, 1e-3, n), 0.0).astype(dtype)
    CY.adam_step(got[0], g, got[1], got[2], 1e-3, 0.9, 0.999, 1e-8, steps + 1, 0.0, False, 1.0)
    _bits_equal(got[1][~live], before[1][~live])
