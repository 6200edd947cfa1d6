"""The 2-thread task step of dense Adam networks (_dense_tasks.pxi): the forward
pass in two halves of each layer's columns, then backward pass and update as two
tasks, one thread walking the chain of deltas and input gradients while the other
computes weight gradients and updates each layer as soon as its gradient is
complete. Its truth is the one-thread run of the same
fit (the per-layer path, which the parity suites compare with NumPy and torch):
every bit of the parameters, the optimizer state and the losses must agree. A
task that read a gradient before it was finished, updated W_l before dX_l had
read it, or skipped part of the parameters would break that equality.
"""

import math

import numpy as np
import pytest

import nncore as nc

K = pytest.importorskip("nncore._kernels")


@pytest.fixture(params=["nncore", "scipy"])
def two_threads(request, gemm_library):
    """Two threads, the task step for small cases too, with the float32 GEMMs on
    the own kernel (the default with AVX-512) and on SciPy's OpenBLAS."""
    if not (K.OPENMP and K.blas_shared_pool() and K.shared_blas_pool_enabled()
            and K.gemm_library() in ("scipy", "nncore")):
        pytest.skip("the task step needs OpenMP and the shared OpenBLAS pool")
    if request.param == "nncore" and not K.own_sgemm_available():
        pytest.skip("nncore's own GEMM needs AVX-512F")
    saved = nc.get_num_threads()
    gemm_library(request.param)
    min_work = K._set_task_min_work(0)          # the small cases take the task step too
    yield gemm_library
    K._set_task_min_work(min_work)
    nc.set_num_threads(saved)


def _data(rows, n_in, k, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, n_in)).astype(np.float32), rng.integers(0, k, rows)


def _fit(threads, tasks, sizes, acts, dtype, batch, rows, opt, epochs=2):
    nc.set_num_threads(threads)
    old = K._set_dense_tasks(tasks)
    try:
        X, y = _data(rows, sizes[0], sizes[-1])
        layers = [nc.Dense(a, b, f) for a, b, f in zip(sizes[:-1], sizes[1:], acts)]
        net = nc.Network(layers, loss="cross_entropy", dtype=dtype, seed=0)
        before = K._dense_task_count()
        net.fit(X, y, optimizer=opt, batch_size=batch, epochs=epochs, progress=False, seed=0)
        steps = K._dense_task_count() - before
    finally:
        K._set_dense_tasks(old)
    return net.params.copy(), net.history_.history["loss"], steps


def test_small_steps_keep_the_per_layer_path(two_threads):
    """Below TL_TASK_MIN_WORK (a 64-256-256-10 step at batch 1-8) the two regions'
    hand-offs cost more than the second thread gains: the per-layer path runs."""
    K._set_task_min_work(1400000)
    sizes, acts = (64, 256, 256, 10), ("relu", "relu", "linear")
    assert _fit(2, True, sizes, acts, "float32", 4, 64, nc.optim.Adam(1e-3))[2] == 0
    assert _fit(2, True, sizes, acts, "float32", 32, 128, nc.optim.Adam(1e-3))[2] > 0


def test_task_step_on_mkl_gives_the_one_thread_bits(two_threads):
    """With the GEMMs on MKL's sequential layer (NNCORE_GEMM=mkl) every call is
    single-threaded, so the task step applies there too, with MKL's one-thread bits."""
    two_threads("mkl")
    sizes, acts = (784, 256, 128, 10), ("relu", "relu", "linear")
    one = _fit(1, True, sizes, acts, "float32", 32, 200, nc.optim.Adam(1e-3))
    two = _fit(2, True, sizes, acts, "float32", 32, 200, nc.optim.Adam(1e-3))
    assert two[2] > 0 and one[2] == 0            # the task step ran on 2 threads only
    np.testing.assert_array_equal(two[0], one[0])


CASES = [
    # sizes, activations, dtype, batch, rows (a short last batch where rows % batch)
    ((784, 256, 128, 10), ("relu", "relu", "linear"), "float32", 32, 200),
    ((40, 300, 130, 7), ("tanh", "leaky_relu", "linear"), "float32", 17, 120),
    ((40, 300, 130, 7), ("tanh", "leaky_relu", "linear"), "float64", 17, 120),
    ((40, 320, 128, 7), ("tanh", "leaky_relu", "linear"), "float64", 128, 300),
    # at 128 rows OpenBLAS's two-thread driver gives this 300-wide float64 forward other
    # bits than its one-thread driver (the per-layer path differs there); the task
    # step's checked halves keep the one-thread bits
    ((40, 300, 130, 7), ("tanh", "leaky_relu", "linear"), "float64", 128, 300),
    ((12, 9, 3), ("sigmoid", "linear"), "float64", 8, 50),
]


@pytest.mark.parametrize("sizes,acts,dtype,batch,rows", CASES)
@pytest.mark.parametrize("make_opt", [
    lambda: nc.optim.Adam(1e-3), lambda: nc.optim.AdamW(3e-3, weight_decay=0.1),
    lambda: nc.optim.SGD(0.05), lambda: nc.optim.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: nc.optim.Adagrad(0.05, lr_decay=0.01), lambda: nc.optim.RMSprop(1e-3)])
def test_task_step_gives_the_one_thread_bits(two_threads, sizes, acts, dtype, batch, rows,
                                             make_opt):
    p1, loss1, steps1 = _fit(1, True, sizes, acts, dtype, batch, rows, make_opt())
    p2, loss2, steps2 = _fit(2, True, sizes, acts, dtype, batch, rows, make_opt())
    assert steps1 == 0 and steps2 == 2 * math.ceil(rows / batch)   # every step took it
    np.testing.assert_array_equal(p2, p1)
    assert loss2 == loss1


def test_the_cases_split_forward_layers_and_dw_pieces(two_threads):
    """So the comparisons above run the split paths, not only the whole calls."""
    for sizes, acts, dtype, batch, rows in CASES:
        _fit(2, True, sizes, acts, dtype, batch, rows, nc.optim.Adam(1e-3), epochs=1)
    checked, lib = K._piece_rows_checked, K.gemm_library()    # (checked per GEMM library)
    assert checked[("forward", lib, 4, 32, 784, 256)] == 128
    assert checked[("forward", lib, 8, 128, 40, 320)] == 128
    assert checked[(lib, 4, 32, 784, 256)] < 784 and checked[(lib, 8, 17, 40, 300)] < 40


def test_task_step_matches_the_per_layer_two_thread_path(two_threads):
    sizes, acts = (784, 256, 256, 10), ("relu", "relu", "linear")
    p_off, loss_off, off = _fit(2, False, sizes, acts, "float32", 32, 160,
                                   nc.optim.Adam(1e-3))
    p_on, loss_on, on = _fit(2, True, sizes, acts, "float32", 32, 160, nc.optim.Adam(1e-3))
    assert off == 0 and on == 10
    np.testing.assert_array_equal(p_on, p_off)
    assert loss_on == loss_off


@pytest.mark.parametrize("kw", [dict(clip_norm=1.0), dict(weight_decay=1e-3)])
def test_steps_needing_the_whole_gradient_keep_the_per_layer_path(two_threads, kw):
    _, _, steps = _fit(2, True, (10, 8, 3), ("relu", "linear"), "float32", 8, 40,
                          nc.optim.Adam(1e-3, **kw))
    assert steps == 0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_divergence_rolls_back_through_the_task_step(two_threads, dtype, kind):
    """A step size that overflows the parameters: the fit stops with
    DivergenceError at the same step, with the same finite parameters, as on one
    thread (the task step saved them before updating)."""
    big = 1e38 if dtype == "float32" else 1e307
    results = []
    for threads in (1, 2):
        nc.set_num_threads(threads)
        X, y = _data(64, 6, 3, seed=2)
        X = X * 1e3
        net = nc.Network([nc.Dense(6, 16, "relu"), nc.Dense(16, 3)], loss="cross_entropy",
                         dtype=dtype, seed=0)
        before = K._dense_task_count()
        with pytest.raises(nc.DivergenceError) as info:
            net.fit(X, y, optimizer=nc.optim.get(kind, lr=big), batch_size=8, epochs=3,
                    progress=False, seed=0)
        assert (K._dense_task_count() > before) == (threads == 2)
        assert np.isfinite(net.params).all()
        results.append((net.params.copy(), info.value.epoch, info.value.step))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1:] == results[1][1:]


def test_task_step_leaves_openblas_thread_count_as_it_was(two_threads):
    """The step sets OpenBLAS's count to 1 around its regions and back after."""
    from threadpoolctl import threadpool_info

    def counts():
        return [p["num_threads"] for p in threadpool_info() if p["internal_api"] == "openblas"]

    _, _, steps = _fit(2, True, (30, 128, 4), ("relu", "linear"), "float32", 8, 40,
                       nc.optim.Adam(1e-3))
    assert steps > 0 and set(counts()) == {2}     # every OpenBLAS of the process
