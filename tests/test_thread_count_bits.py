"""Training gives the same bits on one thread and on two (the thread plan switches
threads between steps on a busy machine, so anything else would make results depend
on the load). The truth is the one-thread run of the same fit.

Where it could break: OpenBLAS rounds the blocks of a long inner sum differently on
one and on several threads (a 784-wide first layer; dW over more than ~400 rows in
full batch), splits dot products over 10,000 elements among its threads, and
nncore's own reductions must not cut their sums by the thread count.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import nncore as nc
from nncore import _kernels as K


@pytest.fixture
def thread_counts():
    saved = nc.get_num_threads()
    yield
    nc.set_num_threads(saved)


def _fit(threads, dtype, batch, rows):
    nc.set_num_threads(threads)
    rng = np.random.default_rng(0)
    X = rng.random((rows, 784)).astype(dtype)
    y = rng.integers(0, 10, rows)
    net = nc.Network([nc.Dense(784, 96, "relu"), nc.Dense(96, 10)], loss="cross_entropy",
                     regularizer=nc.L2(1e-3), dtype=dtype, seed=0)
    opt = nc.optim.Adam(1e-3, clip_norm=0.5)
    net.fit(X, y, optimizer=opt, batch_size=batch, epochs=2, progress=False, seed=0)
    return net.params.copy(), net.history_.history["loss"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch,rows", [(32, 256), ("full", 700)])
def test_fit_bits_do_not_depend_on_the_thread_count(thread_counts, dtype, batch, rows):
    p1, loss1 = _fit(1, dtype, batch, rows)
    p2, loss2 = _fit(2, dtype, batch, rows)
    np.testing.assert_array_equal(p1, p2)
    assert loss1 == loss2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reductions_do_not_depend_on_the_thread_count(dtype):
    """sum_squares (clip norms, gradient norms) and the penalty of regularize over
    3 million elements, with the parallel threshold lowered so two threads split them."""
    x = np.random.default_rng(1).standard_normal(3_000_005).astype(dtype)
    seg = np.array([[0, x.shape[0]]], dtype=np.int64)
    saved_n, saved_min = K.get_num_threads(), K._set_parallel_threshold(64)
    got = {}
    try:
        for t in (1, 2):
            K.set_num_threads(t)
            g = np.zeros_like(x)
            with threadpool_limits(t, user_api="blas"):
                got[t] = (K.sum_squares(x), K.regularize(x, g, seg, 1e-3, 1e-2), g)
    finally:
        K.set_num_threads(saved_n)
        K._set_parallel_threshold(saved_min)
    assert got[1][0] == got[2][0] and got[1][1] == got[2][1]
    np.testing.assert_array_equal(got[1][2], got[2][2])
    want = float(np.sum(x.astype(np.float64) ** 2))
    assert abs(got[1][0] - want) <= 1e-12 * want
