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


# The float32 AVX-512 loop (src/nncore/_adam_avx512.h): it divides by sqrt(bc2)
# as a product in double and computes a decaying dead lane's first moment from
# its bits; every ISA level must give the NumPy twin's bits.

def _levels():
    """The ISA levels this CPU runs (0 baseline, 1 AVX2, 2 AVX-512)."""
    old = K._set_isa(2)
    try:
        out = []
        for level in range(3):
            if K._set_isa(level) == level:
                out.append(level)
        return out
    finally:
        K._set_isa(old)


def _run(level, state, cfg, steps, grads=None):
    lr, b1, b2, eps, wd, inside, gs = cfg
    p, g, m, v = (a.copy() for a in state)
    old = K._set_isa(level)
    try:
        with np.errstate(all="ignore"):
            for step in range(1, steps + 1):
                gg = g if grads is None else grads[step % len(grads)]
                CY.adam_step(p, gg, m, v, lr, b1, b2, eps, step, wd, inside, gs)
    finally:
        K._set_isa(old)
    return p, m, v


def _reference(state, cfg, steps, grads=None):
    lr, b1, b2, eps, wd, inside, gs = cfg
    p, g, m, v = (a.copy() for a in state)
    with np.errstate(all="ignore"):
        for step in range(1, steps + 1):
            gg = g if grads is None else grads[step % len(grads)]
            NP.adam_step(p, gg, m, v, lr, b1, b2, eps, step, wd, inside, gs)
    return p, m, v


@pytest.mark.parametrize("cfg", CONFIGS)
def test_every_isa_level_matches_numpy_on_subnormal_states(cfg):
    """Signed zeros, subnormal moments at and above their fixed points, tiny
    and huge parameters: every level gives the NumPy twin's bits."""
    rng = np.random.default_rng(zlib.crc32(repr(cfg).encode()))
    state = _state(rng, np.float32)
    want = _reference(state, cfg, 30)
    for level in _levels():
        for got, ref in zip(_run(level, state, cfg, 30), want):
            _bits_equal(ref, got)


def test_the_avx512_loop_matches_numpy_over_many_steps_and_magnitudes():
    """Live lanes over six decades of gradient scale, some lanes dying (their
    gradient becomes zero and their moments decay through the subnormals),
    200 steps, so sqrt(bc2) takes 200 values; a length that leaves a masked
    tail. Bits equal to NumPy's at every level."""
    rng = np.random.default_rng(11)
    n = 5 * 4096 + 13
    scale = 10.0 ** rng.uniform(-6, 0, n)
    grads = [(rng.normal(0, 1, n) * scale).astype(np.float32) for _ in range(7)]
    dying = rng.random(n) < 0.3
    for i, gr in enumerate(grads):
        gr[dying & (rng.random(n) < 0.9)] = 0.0     # mostly zero: the moments decay
    state = (rng.normal(0, 0.1, n).astype(np.float32), grads[0],
             np.zeros(n, np.float32), np.zeros(n, np.float32))
    cfg = (1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1.0)
    want = _reference(state, cfg, 200, grads)
    for level in _levels():
        for got, ref in zip(_run(level, state, cfg, 200, grads), want):
            _bits_equal(ref, got)


def test_a_dead_lane_decays_through_the_subnormals_bit_for_bit():
    """m = k * 2^-149 for every k below 2^23 in steps (and the fixed points),
    zero gradient: one step of the AVX-512 loop gives m - rne(0.1 k) 2^-149,
    the IEEE lerp's result, and leaves p and v as the scalar code does."""
    k = np.concatenate([np.arange(1, 4096), np.arange(4096, 1 << 23, 997),
                        [(1 << 23) - 1]]).astype(np.uint32)
    sign = (np.arange(k.size) % 2).astype(np.uint32) << np.uint32(31)
    m = (k | sign).view(np.float32)
    n = m.size
    p = np.random.default_rng(3).normal(0, 0.1, n).astype(np.float32)
    v = np.full(n, 1e-6, np.float32)
    g = np.zeros(n, np.float32)
    cfg = (1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1.0)
    want = _reference((p, g, m, v), cfg, 3)
    for level in _levels():
        got = _run(level, (p, g, m, v), cfg, 3)
        for a, b in zip(got, want):
            _bits_equal(b, a)
    # and the closed form, independently of both kernels (three steps)
    kk = k.astype(np.float64)
    for _ in range(3):
        kk = kk - np.rint(np.float64(np.float32(0.1)) * kk)
    np.testing.assert_array_equal(np.abs(want[1]).view(np.uint32), kk.astype(np.uint32))


def test_division_by_a_constant_as_a_double_product_is_correctly_rounded():
    """The fact behind the loop's sqrt(v) / sqrt(bc2): for float32 x and c,
    float32(float64(x) * (1 / float64(c))) == x / c (IEEE float32), for every
    significand of x in a binade (so every x, by scaling) and the constants
    sqrt(1 - 0.999^t) of the first steps plus random ones."""
    x = (np.arange(1 << 23, dtype=np.uint32) | np.uint32(0x3F800000)).view(np.float32)
    rng = np.random.default_rng(5)
    steps = np.arange(1, 13)
    cs = np.concatenate([np.sqrt(1 - np.float32(0.999) ** steps).astype(np.float32),
                         rng.uniform(0.01, 1.0, 6).astype(np.float32),
                         np.float32([1.0, np.nextafter(np.float32(1), np.float32(0))])])
    xd = x.astype(np.float64)
    for c in cs:
        exact = x / np.float32(c)
        via_double = (xd * (1.0 / np.float64(c))).astype(np.float32)
        bad = np.flatnonzero(exact != via_double)
        assert bad.size == 0, (c, x[bad[:3]])


def test_a_buffer_beyond_the_caches_takes_the_prefetching_loop_and_matches_numpy():
    """Over 2^21 parameters the AVX-512 loop asks for its lines ahead (a hint that
    changes no value); the bits stay the NumPy twin's, at an offset that is not
    a whole cache line (the loop's first short block)."""
    rng = np.random.default_rng(21)
    n = (1 << 21) + 4096 + 37
    base = [rng.normal(0, s, n + 3).astype(np.float32) for s in (0.1, 1e-3, 1e-3, 1e-6)]
    p, g, m, v = (a[3:] for a in base)          # 12 bytes past each allocation's start
    v = np.abs(v)
    cfg = (1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1.0)
    want = _reference((p, g, m, v), cfg, 2)
    for level in _levels():
        for got, ref in zip(_run(level, (p, g, m, v), cfg, 2), want):
            _bits_equal(ref, got)
