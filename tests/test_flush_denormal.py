"""nc.set_flush_denormal: FTZ/DAZ in the compiled training loops, opt-in.

Truth: a NumPy transcription of Adam's formula that flushes every subnormal
input and result to a zero of its sign (what the CPU's DAZ and FTZ modes do);
with the switch off, the NumPy reference backend (IEEE). Also: nothing leaks
into the calling thread or the OpenMP workers, and fits with flushing stay
bit-identical run to run and on one or two threads.
"""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import nncore as nc
from nncore import _kernels as K
from nncore.backend import _cython, _numpy

pytestmark = pytest.mark.skipif(not K.flush_denormal_supported(),
                                reason="flushing subnormals needs x86-64 (MXCSR)")


@pytest.fixture
def flushing():
    """Switch flushing on for the test; off (the default) afterwards, threads restored."""
    threads = nc.get_num_threads()
    assert nc.set_flush_denormal(True) is True
    yield
    nc.set_flush_denormal(False)
    nc.set_num_threads(threads)


def _flush(x):
    """A subnormal becomes a zero of its sign (FTZ on results, DAZ on inputs)."""
    tiny = np.finfo(x.dtype).tiny
    return np.where(np.abs(x) < tiny, np.copysign(np.zeros_like(x), x), x).astype(x.dtype)


def _adam_flushing(p, g, m, v, lr, beta1, beta2, eps, step):
    """Adam (torch's order, lerp for 1 - beta1 < 1/2) with every operand and every
    result flushed, in the array dtype; the scalars as the backends compute them."""
    t = p.dtype.type
    w, bc1, bc2 = 1.0 - beta1, 1.0 - beta1 ** step, 1.0 - beta2 ** step
    f = _flush
    p, g, m, v = f(p), f(g), f(m), f(v)
    m = f(m + f(t(w) * f(g - m)))
    v = f(v * t(beta2))
    v = f(v + f(t(1.0 - beta2) * f(g * g)))
    denom = f(f(np.sqrt(v) / t(bc2 ** 0.5)) + t(eps))
    p = f(p + f(t(-(lr / bc1)) * f(m / denom)))
    return p, m, v


def _decaying_state(dtype, n=4099, seed=0):
    """Parameters, gradients (a third exactly zero: dead units) and moments near the
    bottom of the normal range, so a few steps take them through the subnormals."""
    rng = np.random.default_rng(seed)
    tiny = np.finfo(dtype).tiny
    p = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    g[rng.random(n) < 0.34] = 0
    g[::7] *= dtype(tiny * 4)          # gradients whose squares are subnormal
    m = (rng.standard_normal(n) * tiny * 8).astype(dtype)
    v = (rng.random(n) * tiny * 64).astype(dtype)
    return p, g, m, v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_with_flushing_matches_a_flushing_transcription(flushing, dtype):
    p, g, m, v = _decaying_state(dtype)
    want = (p.copy(), m.copy(), v.copy())
    for step in range(1, 41):
        _cython.adam_step(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, step, 0.0, False, 1.0)
        want = _adam_flushing(want[0], g, want[1], want[2], 1e-3, 0.9, 0.999, 1e-8, step)
        for got, ref in zip((p, m, v), want):
            np.testing.assert_array_equal(got.view(np.uint8), ref.view(np.uint8))
    tiny = np.finfo(dtype).tiny
    assert not np.any((m != 0) & (np.abs(m) < tiny)) and np.any(m == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_without_flushing_is_unchanged(dtype):
    """Off (also after being on): IEEE, bit for bit the NumPy reference, with subnormals."""
    assert nc.set_flush_denormal(True) and nc.set_flush_denormal(False)
    p, g, m, v = _decaying_state(dtype)
    ref = [a.copy() for a in (p, g, m, v)]
    for step in range(1, 41):
        _cython.adam_step(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, step, 0.0, False, 1.0)
        _numpy.adam_step(ref[0], ref[1], ref[2], ref[3], 1e-3, 0.9, 0.999, 1e-8, step, 0.0,
                         False, 1.0)
    for got, want in zip((p, m, v), (ref[0], ref[2], ref[3])):
        np.testing.assert_array_equal(got, want)
    assert np.any((m != 0) & (np.abs(m) < np.finfo(dtype).tiny))


def test_nothing_leaks_into_the_caller_or_the_openmp_workers(flushing):
    """After a flushing step on two threads, the calling thread and the workers are
    back to IEEE: NumPy keeps subnormals, and a threaded IEEE step matches the
    reference on every chunk (a worker left flushing would zero its chunk's)."""
    p, g, m, v = _decaying_state(np.float32, n=200_003, seed=1)
    saved_min = K._set_parallel_threshold(64)
    try:
        nc.set_num_threads(2)
        _cython.adam_step(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 1, 0.0, False, 1.0)
        assert K._thread_flush_bits() == 0 and K._team_flush_bits(2) == [0, 0]
        assert np.float32(1e-40) * np.float32(1.5) != 0      # NumPy still IEEE
        nc.set_flush_denormal(False)
        ref = [a.copy() for a in (p, g, m, v)]
        _cython.adam_step(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 2, 0.0, False, 1.0)
        _numpy.adam_step(*ref, 1e-3, 0.9, 0.999, 1e-8, 2, 0.0, False, 1.0)
        np.testing.assert_array_equal(m, ref[2])
        assert np.any((m != 0) & (np.abs(m) < np.finfo(np.float32).tiny))
    finally:
        K._set_parallel_threshold(saved_min)


def test_workers_born_during_a_flushing_call_do_not_keep_flushing():
    """A thread inherits its creator's MXCSR: in a fresh process the first OpenMP
    region (the flushing step's) creates the workers; afterwards none flushes."""
    code = ("import numpy as np, nncore as nc\n"
            "from nncore import _kernels as K\n"
            "from nncore.backend import _cython\n"
            "nc.set_num_threads(2); nc.set_flush_denormal(True)\n"
            "p, g, m, v = (np.ones(10, np.float32) for _ in range(4))\n"
            "_cython.adam_step(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 1, 0.0, False, 1.0)\n"
            "print(K._thread_flush_bits(), K._team_flush_bits(2))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    assert out.split("\n")[0] == "0 [0, 0]", out


def _dying_fit(threads, rows=256, epochs=4):
    """A fit where input feature 0 is non-zero only in the first rows: its weights'
    gradient is exactly 0 afterwards, so Adam's first moment decays through the
    subnormals (~800 steps at batch 1 here). Wide enough for a threaded update."""
    nc.set_num_threads(threads)
    rng = np.random.default_rng(0)
    X = rng.random((rows, 64)).astype(np.float32)
    X[4:, 0] = 0
    y = rng.integers(0, 10, rows)
    net = nc.Network([nc.Dense(64, 256, "relu"), nc.Dense(256, 256, "relu"), nc.Dense(256, 10)],
                     loss="cross_entropy", dtype="float32", seed=0)
    opt = nc.optim.Adam(1e-3)
    net.fit(X, y, optimizer=opt, batch_size=1, epochs=epochs, progress=False, seed=0,
            shuffle=False)
    return net.params.copy(), opt.state["exp_avg"].copy()


def test_fits_with_flushing_are_bit_identical_across_runs_and_threads(flushing):
    p1, m1 = _dying_fit(1)
    p1b, _ = _dying_fit(1)
    p2, m2 = _dying_fit(2)
    np.testing.assert_array_equal(p1, p1b)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(m1, m2)
    tiny = np.finfo(np.float32).tiny
    assert not np.any((m1 != 0) & (np.abs(m1) < tiny))      # flushed, not subnormal
    assert K._thread_flush_bits() == 0
    nc.set_flush_denormal(False)
    p_ieee, m_ieee = _dying_fit(1)
    assert np.any((m_ieee != 0) & (np.abs(m_ieee) < tiny))  # the same fit without: subnormals


def test_switch_is_off_by_default_shown_and_checked():
    assert K.flush_denormal() is False
    out = io.StringIO()
    nc.show_config(file=out)
    assert "denormals   off" in out.getvalue()
    with pytest.raises(TypeError):
        nc.set_flush_denormal(1)
    assert K.flush_denormal() is False
    try:
        nc.set_flush_denormal(True)
        out = io.StringIO()
        nc.show_config(file=out)
        assert "denormals   on" in out.getvalue()
    finally:
        nc.set_flush_denormal(False)
