"""One full-batch iteration (loss + gradient over the whole set, as an L-BFGS
iteration whose unit step is accepted) on a Dask ``LocalCluster`` of 1, 2 and 4
worker processes (1 thread each), against the same evaluation in memory.

Run:  pytest bench/bench_dask.py --benchmark-columns=median,min,rounds
Smoke (CI): pytest bench/bench_dask.py --benchmark-disable

Before timing, the cluster's loss and gradient are checked equal to the
in-memory ones (rtol 1e-10, float64). ``extra_info`` records the bytes one
evaluation moves: ``params_out`` (the parameter vector sent to every
worker) and ``worker_bytes`` (measured: the growth of the workers'
``transfer_outgoing_bytes_total`` over the timed evaluations, per evaluation:
partial sums travelling to their reducers and the result to the client).
"""

import os

import numpy as np
import pytest

import nncore as nc

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from nncore import _dask, _dask_fit  # noqa: E402 - after the skips
from nncore.training import _objective  # noqa: E402

N, D, HIDDEN, CHUNKS = 400_000, 32, 64, 8        # 102 MB of float64 X, 2,177 parameters


def _problem(smoke):
    n = 4000 if smoke else N
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, D))
    y = np.tanh(X @ rng.normal(size=(D, 1)))
    net = nc.Network([nc.Dense(D, HIDDEN, "tanh"), nc.Dense(HIDDEN, 1)], dtype="float64",
                     seed=0)
    return X, y, net


def _outgoing(client):
    return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())


@pytest.mark.parametrize("workers", [0, 1, 2, 4], ids=lambda w: f"{w}-workers" if w else "in-memory")
def test_full_batch_iteration(benchmark, workers, smoke_run):
    X, y, net = _problem(smoke_run)
    x = net.params.astype(np.float64)
    ref = _objective(net, net._check_X(X), net._check_y(y, X.shape[0]), None)
    benchmark.group = f"dask: loss + gradient, N={X.shape[0]}, n={net.n_params}"
    benchmark.extra_info["loadavg_1min"] = round(os.getloadavg()[0], 2)
    if not workers:
        benchmark.pedantic(ref, args=(x,), rounds=3 if smoke_run else 7, iterations=1)
        return
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        rows = -(-X.shape[0] // CHUNKS)
        Xd, yd = client.persist([da.from_array(X, chunks=(rows, D)),
                                 da.from_array(y, chunks=(rows, 1))])
        distributed.wait([Xd, yd])
        fun = _dask_fit.Objective(net, _dask.ChunkedSet(net, Xd, yd))
        f, g = fun(x)
        f_ref, g_ref = ref(x)
        assert f == pytest.approx(f_ref, rel=1e-10)
        np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-15)
        before, evals = _outgoing(client), fun.traffic["evaluations"]
        benchmark.pedantic(fun, args=(x,), rounds=3 if smoke_run else 7, iterations=1)
        n_evals = fun.traffic["evaluations"] - evals
        benchmark.extra_info["params_out"] = fun.traffic["params_out"] // fun.traffic["evaluations"]
        benchmark.extra_info["worker_bytes"] = (_outgoing(client) - before) // n_evals
        benchmark.extra_info["chunks"] = CHUNKS
