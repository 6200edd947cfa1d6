"""The NNCORE_GEMM switch (src/nncore/_gemm_select.pxi): which library's GEMM the
compiled kernels call. nncore's own float32 kernel (AVX-512 CPUs; float64 on
OpenBLAS) or SciPy's OpenBLAS is the default, OpenBLAS the fallback; MKL
(the ``mkl`` wheel) is tested when it loads, against the float64 product and the
NumPy twin within the documented bound of tests/test_kernels.py (a length-k dot
product: 2 (k + 2) eps times the sum of |terms|), and for the same bits run to run.
"""

import os

import numpy as np
import pytest

K = pytest.importorskip("nncore._kernels")

import nncore as nc
from nncore.backend import _numpy as R

# The 8 GEMMs of a 784-256-256-10 step, batch 32: (m, n, k, trans_a, trans_b).
MNIST_STEP = [(32, 256, 784, False, False), (32, 256, 256, False, False),
              (32, 10, 256, False, False), (784, 256, 32, True, False),
              (256, 256, 32, True, False), (256, 10, 32, True, False),
              (32, 256, 256, False, True), (32, 256, 10, False, True)]


@pytest.fixture
def mkl(gemm_library):
    """The compiled GEMMs on MKL for one test (skipped where MKL does not load)."""
    gemm_library("mkl")


def test_default_is_own_kernel_with_avx512_else_scipy_openblas():
    if os.environ.get("NNCORE_GEMM", "").strip():
        pytest.skip("NNCORE_GEMM is set in this environment")
    assert K.gemm_library() == ("nncore" if K.own_sgemm_available() else "scipy")


def test_unknown_library_is_refused_and_changes_nothing():
    before = K.gemm_library()
    with pytest.raises(ValueError, match="unknown GEMM library"):
        K._set_gemm_library("blis")
    assert K.gemm_library() == before


def test_env_value_is_read_and_a_bad_one_warns(monkeypatch):
    monkeypatch.setenv("NNCORE_GEMM", " MKL ")
    assert K._gemm_library_from_env() == "mkl"
    monkeypatch.setenv("NNCORE_GEMM", "Scipy")
    assert K._gemm_library_from_env() == "scipy"
    default = "nncore" if K.own_sgemm_available() else "scipy"
    monkeypatch.setenv("NNCORE_GEMM", "")
    assert K._gemm_library_from_env() == default
    monkeypatch.setenv("NNCORE_GEMM", "fastest")
    with pytest.warns(RuntimeWarning, match="NNCORE_GEMM='fastest'"):
        assert K._gemm_library_from_env() == default


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_mkl_gemm_within_the_bound_and_repeatable(mkl, dt):
    rng = np.random.default_rng(15)
    eps = float(np.finfo(dt).eps)
    for m, n, k, ta, tb in MNIST_STEP:
        A = rng.standard_normal((k, m) if ta else (m, k)).astype(dt)
        B = rng.standard_normal((n, k) if tb else (k, n)).astype(dt)
        C0 = rng.standard_normal((m, n)).astype(dt)
        for alpha, beta in ((1.0, 0.0), (0.3, -1.5)):
            got, twin, again = C0.copy(), C0.copy(), C0.copy()
            K.gemm(A, B, got, ta, tb, alpha, beta)
            K.gemm(A, B, again, ta, tb, alpha, beta)
            R.gemm(A, B, twin, ta, tb, alpha, beta)
            opA, opB = (A.T if ta else A).astype(np.float64), (B.T if tb else B).astype(np.float64)
            bound = 2 * (k + 2) * eps * (abs(alpha) * np.abs(opA) @ np.abs(opB)
                                         + abs(beta) * np.abs(C0))
            assert np.all(np.abs(got - twin) <= bound), (m, n, k, ta, tb)
            assert np.all(np.abs(got - (alpha * opA @ opB + beta * C0)) <= bound)
            assert np.array_equal(got, again)


def _fit_params(dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((96, 40)).astype(dtype)
    y = rng.integers(0, 4, 96)
    net = nc.Network([nc.Dense(40, 24, "relu"), nc.Dense(24, 4)], loss="cross_entropy",
                     dtype=dtype, seed=0)
    net.fit(X, y, optimizer=nc.optim.Adam(1e-2), batch_size=32, epochs=2, progress=False,
            seed=0)
    return net, X, y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mkl_training_is_bit_reproducible_and_matches_numpy_gradients(mkl, dtype,
                                                                      numpy_twin_gradient):
    first, X, y = _fit_params(dtype)
    second, _, _ = _fit_params(dtype)
    assert np.array_equal(first.params, second.params)
    # One gradient on the trained weights: compiled (MKL) against the NumPy twin.
    loss_c, grad_c = first.loss_and_gradient(X, y)
    loss_n, grad_n = numpy_twin_gradient(first, X, y)
    tol = 1e-4 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(loss_c, loss_n, rtol=tol)
    np.testing.assert_allclose(grad_c, grad_n, rtol=tol, atol=tol * np.abs(grad_n).max())
