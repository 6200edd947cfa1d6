"""Concurrent inference on one network: calls per second from 1, 2 and 4 threads.

Run:  pytest bench/bench_threads.py --benchmark-columns=min,median,rounds --benchmark-group-by=group
Smoke (CI): pytest bench/bench_threads.py --benchmark-disable

Each round makes ``CALLS`` calls of one method on one shared network, split
evenly over the Python threads (a web server's or joblib's threads); calls
per second = ``CALLS / time`` (also in ``extra_info``). Each thread owns its
workspace, so nothing is serialised behind a lock; with kernel and BLAS
threads pinned to one (bench/conftest.py) the threads scale as far as the
kernels release the GIL and the machine has cores. Before timing, every
thread's results are checked against the serial results.
"""

import threading

import numpy as np
import pytest

import nncore as nc

CALLS = 480
D, H, K = 64, 256, 10


def _problem(batch):
    rng = np.random.default_rng(0)
    net = nc.Network([nc.Dense(D, H, "relu"), nc.Dense(H, H, "relu"), nc.Dense(H, K)],
                     loss="cross_entropy", dtype="float32", seed=0)
    X = rng.standard_normal((batch, D)).astype(np.float32)
    y = rng.integers(0, K, batch)
    return net, X, y


def _call(method, net, X, y):
    if method == "predict_proba":
        return net.predict_proba(X)
    return net.loss_and_gradient(X, y)[1]


def _in_threads(n_threads, calls, fn):
    """``fn()`` called ``calls`` times in total from ``n_threads`` threads; last results."""
    out = [None] * n_threads
    each = calls // n_threads

    def run(k):
        for _ in range(each):
            out[k] = fn()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.parametrize("n_threads", [1, 2, 4])
@pytest.mark.parametrize("method, batch", [("predict_proba", 1), ("predict_proba", 64),
                                           ("loss_and_gradient", 32)])
def test_threads_calls(benchmark, method, batch, n_threads, smoke_run):
    benchmark.group = f"{method} batch={batch} {D}-{H}-{H}-{K} float32, {CALLS} calls"
    net, X, y = _problem(batch)
    serial = _call(method, net, X, y)
    calls = n_threads * 4 if smoke_run else CALLS
    for got in _in_threads(n_threads, n_threads * 4, lambda: _call(method, net, X, y)):
        np.testing.assert_array_equal(got, serial)
    benchmark.pedantic(_in_threads, args=(n_threads, calls, lambda: _call(method, net, X, y)),
                       rounds=7, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:
        benchmark.extra_info["calls_per_second"] = calls / benchmark.stats.stats.median
