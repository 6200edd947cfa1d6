"""float32 tanh of the compiled kernels (src/nncore/_tanh.h): libm-free, rounded
once from double, and the same bits at every instruction-set level the loops are
compiled for.

Truth: Python's math.tanh (the C library's double tanh) rounded to float32, per
element and bit for bit; the ISA levels against each other. (The whole float32
range was checked the same way once: _tanh.h says how.)
"""

import math

import numpy as np
import pytest

import nncore as nc
import nncore.activations as activations
import nncore.backend as B


TANH = activations.get("tanh").code
SPECIAL = [0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 1.1754942e-38, 1.17549435e-38,
           2.0 ** -13, 2.0 ** -12, 0.5, 1.0, 9.0, 9.010913, 9.0109135, 10.0, 3.4028235e38]


def _inputs():
    """Random bit patterns (every exponent), a dense sweep of [-10, 10] and the
    small range, and the special values; no NaN."""
    rng = np.random.default_rng(15)
    bits = rng.integers(0, 2 ** 32, 60000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    sweep = np.linspace(-10, 10, 60001, dtype=np.float32)
    small = (rng.uniform(-1, 1, 20000) * 2.0 ** rng.integers(-30, 0, 20000)).astype(np.float32)
    x = np.concatenate([bits, sweep, small, np.array(SPECIAL, np.float32)])
    return x[~np.isnan(x)]


def _forward(C, x):
    out = np.empty_like(x)
    C.activation_forward(x, TANH, out)
    return out


def test_rounds_double_tanh_once(C):
    x = _inputs()
    want = np.array([math.tanh(v) for v in x.astype(np.float64)]).astype(np.float32)
    got = _forward(C, x)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))   # -0 too


def test_nan_stays_nan(C):
    x = np.array([np.nan, -np.nan, 1.0], np.float32)
    got = _forward(C, x)
    assert np.isnan(got[:2]).all() and got[2] == np.float32(math.tanh(1.0))


def test_every_isa_level_gives_the_same_bits(C, K):
    """The baseline, AVX2 and AVX-512 copies of the loops (those this CPU runs):
    activation, the dense layers' fused bias + tanh, and a whole batch-1 fit."""
    x = _inputs()
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5, 7)).astype(np.float32)
    W = rng.normal(size=(7, 37)).astype(np.float32)
    b = rng.normal(size=37).astype(np.float32)
    Xf = rng.uniform(-1, 1, (60, 2)).astype(np.float32)
    yf = np.sin(3 * Xf[:, :1])
    results = {}
    old = K._set_isa(2)
    try:
        for level in range(3):
            K._set_isa(level)
            if K._isa() != level:
                continue      # the CPU lacks this level
            dense = np.empty((5, 37), np.float32)
            C.dense_forward(X, W, b, TANH, dense)
            net = nc.Network([nc.Dense(2, 16, "tanh"), nc.Dense(16, 16, "tanh"),
                              nc.Dense(16, 1)], loss="mse", dtype="float32", seed=0)
            net.fit(Xf, yf, optimizer=nc.optim.SGD(0.05), batch_size=1, epochs=2,
                    progress=False, seed=1)
            results[level] = (_forward(C, x), dense, net.params.copy())
    finally:
        K._set_isa(old)
    assert 0 in results
    for level, arrays in results.items():
        for got, want in zip(arrays, results[0]):
            np.testing.assert_array_equal(got, want, err_msg=f"ISA level {level}")


def test_set_isa_clamps(K):
    old = K._set_isa(-5)
    try:
        assert K._isa() == 0
        K._set_isa(99)
        assert K._isa() in (0, 1, 2)
    finally:
        K._set_isa(old)
    assert K._isa() == old
