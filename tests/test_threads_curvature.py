"""The curvature calls from several Python threads give the serial results
(issue 12 item 1: "and the curvature calls that come later"): hvp, gnvp,
hessian and jacobian on one shared network, compared bit for bit with the same
calls made serially before the threads start."""

import threading

import numpy as np
import pytest

import nncore as nc

N_THREADS = 4
SIZES = (1, 5, 9, 17)


def _run_threads(work):
    """``work(k)`` in N_THREADS threads started together; re-raise any failure."""
    errors, start = [], threading.Barrier(N_THREADS)

    def run(k):
        try:
            start.wait()
            work(k)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _net(loss):
    k = 1 if loss == "mse" else 3
    return nc.Network([nc.Dense(4, 6, "tanh"), nc.Dense(6, k)], loss=loss,
                      regularizer=nc.L2(1e-3), dtype="float64", seed=5)


def _case(loss, c, n_params):
    rng = np.random.default_rng(c)
    n = SIZES[c % len(SIZES)]
    X = rng.normal(size=(n, 4))
    y = rng.normal(size=n) if loss == "mse" else rng.integers(0, 3, size=n)
    return X, y, rng.normal(size=n_params)


def _call(net, method, X, y, v):
    if method == "jacobian":
        return net.jacobian(X)
    if method == "hessian":
        return net.hessian(X, y)
    return getattr(net, method)(X, y, v)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("method", ["hvp", "gnvp", "hessian", "jacobian"])
def test_curvature_from_threads_matches_serial(backend, loss, method):
    net = _net(loss)
    cases = [_case(loss, c, net.n_params) for c in range(4 * N_THREADS)]
    serial = [np.array(_call(net, method, *case)) for case in cases]
    got = [None] * len(cases)

    def work(k):
        for _ in range(3):
            for c in range(k, len(cases), N_THREADS):
                got[c] = np.array(_call(net, method, *cases[c]))
                np.testing.assert_array_equal(got[c], serial[c])

    _run_threads(work)
    for a, b in zip(got, serial):
        np.testing.assert_array_equal(a, b)
