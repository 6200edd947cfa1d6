"""nncore's own float32 GEMM (src/nncore/_sgemm_avx512.h, NNCORE_GEMM=nncore).

Its bits are defined as one correctly rounded FMA chain per element of C, in k
order, starting from 0 (beta 0) or the old C (beta 1). The tests compare it bit
for bit with a scalar transcription of that definition (libm's fmaf, no tiling,
``_sgemm_reference``), at shapes that hit every tile edge, the k and row
blocks, both transposes and the threaded split; and within the documented bound
against the float64 product. Skipped on CPUs without AVX-512F.
"""

import numpy as np
import pytest

K = pytest.importorskip("nncore._kernels")

import nncore as nc

pytestmark = pytest.mark.skipif(not K.own_sgemm_available(),
                                reason="nncore's own GEMM needs AVX-512F")


@pytest.fixture(autouse=True)
def own(gemm_library):
    gemm_library("nncore")
    return gemm_library


def _operands(rng, m, n, k, ta, tb, offset=0):
    """op(A) m x k and op(B) k x n as stored, starting ``offset`` floats into a buffer."""
    def stored(rows, cols):
        flat = np.empty(rows * cols + offset, np.float32)[offset:]
        flat[:] = rng.standard_normal(rows * cols)
        return flat.reshape(rows, cols)
    A = stored(k, m) if ta else stored(m, k)
    B = stored(n, k) if tb else stored(k, n)
    return A, B


def _both(A, B, C0, ta, tb, beta, any_shape=False):
    """(the kernel's C, the reference's C): through the compiled GEMM, or with
    ``any_shape`` the own kernel directly whatever nnc_sgemm_own_shape says."""
    got, want = C0.copy(), C0.copy()
    if any_shape:
        K._sgemm_own(A, B, got, ta, tb, beta)
    else:
        K.gemm(A, B, got, ta, tb, 1.0, float(beta))
    K._sgemm_reference(A, B, want, ta, tb, beta)
    return got, want


# rows: around the 8-, 12- and 24-row tiles of 3-, 2- and 1-vector strips
EDGE_SHAPES = [(m, n, k) for m in (1, 7, 8, 9, 12, 13, 17, 23, 24, 25, 49)
               for n in (1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 97)
               for k in (1, 3, 32)]


@pytest.mark.parametrize("ta,tb", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_every_tile_edge_gives_the_fma_chain_bits(ta, tb):
    rng = np.random.default_rng(ta * 2 + tb)
    for m, n, k in EDGE_SHAPES:
        A, B = _operands(rng, m, n, k, ta, tb)
        C0 = rng.standard_normal((m, n)).astype(np.float32)
        for beta in (0, 1):
            got, want = _both(A, B, C0, ta, tb, beta, any_shape=True)
            assert np.array_equal(got, want), (m, n, k, ta, tb, beta)


# the MNIST step's shapes at batch 32 and 128; long inner sums (k blocks of 1024);
# m beyond one row block (256, B's strips copied); shapes shared between threads
STEP_SHAPES = [(32, 256, 784, 0, 0), (32, 128, 784, 0, 0), (32, 10, 256, 0, 0),
               (784, 256, 32, 1, 0), (256, 130, 32, 1, 0), (32, 256, 256, 0, 1),
               (40, 300, 300, 0, 1), (128, 256, 784, 0, 0), (784, 256, 128, 1, 0),
               (128, 256, 256, 0, 1), (20, 40, 2100, 0, 0), (30, 140, 128, 1, 0),
               (600, 150, 70, 1, 0), (9, 300, 240, 0, 1), (17, 700, 100, 0, 1),
               (44, 800, 300, 0, 1)]


@pytest.mark.parametrize("m,n,k,ta,tb", STEP_SHAPES)
def test_step_shapes_give_the_fma_chain_bits_and_stay_in_the_bound(m, n, k, ta, tb):
    rng = np.random.default_rng(m + n + k)
    A, B = _operands(rng, m, n, k, ta, tb)
    C0 = rng.standard_normal((m, n)).astype(np.float32)
    opA = (A.T if ta else A).astype(np.float64)
    opB = (B.T if tb else B).astype(np.float64)
    eps = float(np.finfo(np.float32).eps)
    for beta in (0, 1):
        got, want = _both(A, B, C0, ta, tb, beta)
        assert np.array_equal(got, want)
        exact = opA @ opB + beta * C0
        bound = 2 * (k + 2) * eps * (np.abs(opA) @ np.abs(opB) + beta * np.abs(C0))
        assert np.all(np.abs(got - exact) <= bound)


@pytest.mark.parametrize("offset", [1, 3, 5, 11])
def test_operand_alignment_changes_no_bit(offset):
    rng = np.random.default_rng(offset)
    for m, n, k, ta, tb in STEP_SHAPES[:7]:
        A, B = _operands(rng, m, n, k, ta, tb, offset=offset)
        C0 = np.zeros((m, n), np.float32)
        got, want = _both(A, B, C0, ta, tb, 0, any_shape=True)
        assert np.array_equal(got, want)


def test_thread_count_changes_no_bit():
    """Large calls are split between threads (OpenBLAS's thread count): same bits."""
    shapes = [(128, 512, 600, 0, 0), (600, 700, 100, 1, 0), (100, 700, 300, 0, 1)]
    results = {}
    old = nc.get_num_threads()
    try:
        for threads in (1, 2):
            nc.set_num_threads(threads)
            split_before = K._own_sgemm_split_calls()
            results[threads] = []
            for m, n, k, ta, tb in shapes:
                A, B = _operands(np.random.default_rng(m), m, n, k, ta, tb)
                C = np.zeros((m, n), np.float32)
                K.gemm(A, B, C, ta, tb, 1.0, 0.0)
                results[threads].append(C)
            # the two-thread calls were really shared (one OpenMP team each)
            split = K._own_sgemm_split_calls() - split_before
            assert split == (len(shapes) if threads == 2 and K.OPENMP else 0)
    finally:
        nc.set_num_threads(old)
    for one, two, (m, n, k, ta, tb) in zip(results[1], results[2], shapes):
        A, B = _operands(np.random.default_rng(m), m, n, k, ta, tb)
        want = np.zeros((m, n), np.float32)
        K._sgemm_reference(A, B, want, ta, tb, 0)
        assert np.array_equal(one, want) and np.array_equal(two, want)


def test_caller_k_blocks_give_the_whole_chain():
    """beta 1 continues the chain through C: two calls over k halves equal one call."""
    rng = np.random.default_rng(4)
    A, B = _operands(rng, 32, 100, 300, 0, 0)
    whole = np.zeros((32, 100), np.float32)
    K.gemm(A, B, whole, False, False, 1.0, 0.0)
    halves = np.zeros((32, 100), np.float32)
    K.gemm(np.ascontiguousarray(A[:, :140]), np.ascontiguousarray(B[:140]), halves,
           False, False, 1.0, 0.0)
    K.gemm(np.ascontiguousarray(A[:, 140:]), np.ascontiguousarray(B[140:]), halves,
           False, False, 1.0, 1.0)
    assert np.array_equal(whole, halves)


def test_beta_zero_never_reads_c_and_nan_propagates():
    rng = np.random.default_rng(5)
    A, B = _operands(rng, 9, 20, 5, 0, 1)
    C = np.full((9, 20), np.nan, np.float32)
    K._sgemm_own(A, B, C, False, True, False)
    assert np.isfinite(C).all()
    A[2, 3] = np.inf
    K._sgemm_own(A, B, C, False, True, False)
    assert not np.isfinite(C[2]).any() and np.isfinite(np.delete(C, 2, axis=0)).all()


def test_other_alpha_beta_go_to_blas_and_stay_in_the_bound(own):
    rng = np.random.default_rng(6)
    A, B = _operands(rng, 30, 40, 50, 0, 0)      # a shape the own kernel takes
    C0 = rng.standard_normal((30, 40)).astype(np.float32)
    got, openblas = C0.copy(), C0.copy()
    K.gemm(A, B, got, False, False, 0.5, -2.0)
    own("scipy")
    K.gemm(A, B, openblas, False, False, 0.5, -2.0)
    assert np.array_equal(got, openblas)
    exact = 0.5 * A.astype(np.float64) @ B + -2.0 * C0
    eps = float(np.finfo(np.float32).eps)
    bound = 2 * 52 * eps * (0.5 * np.abs(A) @ np.abs(B) + 2 * np.abs(C0))
    assert np.all(np.abs(got - exact) <= bound)


def test_training_is_bit_identical_on_one_and_two_threads_and_matches_numpy(
        numpy_twin_gradient):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((160, 40)).astype(np.float32)
    y = rng.integers(0, 4, 160)

    def fit(threads):
        nc.set_num_threads(threads)
        net = nc.Network([nc.Dense(40, 64, "relu"), nc.Dense(64, 4)], loss="cross_entropy",
                         dtype="float32", seed=0)
        net.fit(X, y, optimizer=nc.optim.Adam(1e-2), batch_size=32, epochs=2,
                progress=False, seed=0)
        return net

    old = nc.get_num_threads()
    try:
        one, two = fit(1), fit(2)
    finally:
        nc.set_num_threads(old)
    assert np.array_equal(one.params, two.params)
    loss_c, grad_c = one.loss_and_gradient(X, y)
    loss_n, grad_n = numpy_twin_gradient(one, X, y)
    np.testing.assert_allclose(loss_c, loss_n, rtol=1e-4)
    np.testing.assert_allclose(grad_c, grad_n, rtol=1e-4, atol=1e-4 * np.abs(grad_n).max())


@pytest.mark.parametrize("m,n,k,ta,tb", [(129, 40, 50, 0, 0), (7, 40, 50, 0, 0),
                                         (300, 200, 129, 1, 0), (300, 200, 7, 1, 0),
                                         (300, 127, 32, 1, 0), (129, 300, 300, 0, 1),
                                         (7, 300, 300, 0, 1), (32, 256, 10, 0, 1),
                                         (32, 40, 32, 1, 1)])
def test_other_shapes_go_to_openblas(own, m, n, k, ta, tb):
    """Beyond the kernel's shapes (nnc_sgemm_own_shape: a batch dimension -- m, or k
    with A transposed -- under 8 or over 128, X^T dY under 128
    columns, dY W^T with n k < 2^16, both transposed) the call is OpenBLAS's, bit
    for bit."""
    rng = np.random.default_rng(k)
    A, B = _operands(rng, m, n, k, ta, tb)
    got, openblas = np.zeros((m, n), np.float32), np.zeros((m, n), np.float32)
    K.gemm(A, B, got, ta, tb, 1.0, 0.0)
    own("scipy")
    K.gemm(A, B, openblas, ta, tb, 1.0, 0.0)
    assert np.array_equal(got, openblas)
