"""Levenberg–Marquardt against scipy.optimize.least_squares(method="lm"), and
the split of one LM iteration (Jacobian / SYRK / Cholesky).

Problem: MATLAB's sine fit — 1-5-1 tanh network, 40 points of ``sin x`` on
[-pi, pi], mse, float64. Both solvers get the same exact Jacobian
(``net.jacobian``: R-operator rows) and the same start; the goal is MATLAB's
``mse <= 0.002`` (mean squared error, i.e. twice nncore's ``1/(2N)`` loss).

Run (timings; the machine may be shared, so rows are medians of rounds):

    pytest bench/bench_curvature.py --benchmark-group-by=group \
        --benchmark-columns=median,rounds -s

Smoke run (CI): ``pytest bench/ --benchmark-disable -q``.
``python bench/bench_curvature.py`` prints the same figures without pytest-benchmark;
``python bench/bench_curvature.py --newton`` times Newton's exact Hessian against
the old central-difference one on digits 64-32-10.
"""

import sys
import time

import numpy as np
import pytest

import nncore as nc
from nncore.curvature import Curvature

GOAL = 0.002          # MATLAB's mse (mean of squared errors)


def sine_problem(seed=3):
    x = np.linspace(-np.pi, np.pi, 40)[:, None]
    net = nc.Network([nc.Dense(1, 5, activation="tanh"), nc.Dense(5, 1)], loss="mse",
                     dtype="float64", seed=seed)
    return net, x, np.sin(x)


def nncore_lm(seed=3, epochs=500):
    """Epochs and final MATLAB mse of nncore's LM, stopping at the goal."""
    net, x, y = sine_problem(seed)
    goal = _Goal(x, y)
    net.fit(x, y, optimizer="lm", epochs=epochs, progress=False, callbacks=[goal])
    return goal.epochs, float(np.mean((net.forward(x) - y) ** 2))


class _Goal(nc.callbacks.Callback):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.epochs = x, y, None

    def on_epoch_end(self, epoch, logs=None):
        if np.mean((self.model.forward(self.x) - self.y) ** 2) <= GOAL:
            self.epochs = epoch + 1
            self.model.stop_training = True


def scipy_lm(seed=3):
    """scipy's MINPACK LM on the same residuals and exact Jacobian: residual
    evaluations and seconds until the mse first reaches the goal (it has no
    goal test of its own, so it runs on to its convergence after that)."""
    from scipy.optimize import least_squares

    net, x, y = sine_problem(seed)
    start = time.perf_counter()
    reached = {}

    def residuals(w):
        net.params[:] = w
        r = (net.forward(x) - y).ravel()
        reached.setdefault("count", 0)
        reached["count"] += 1
        if "seconds" not in reached and np.mean(r * r) <= GOAL:
            reached["seconds"] = time.perf_counter() - start
            reached["nfev"] = reached["count"]
        return r

    def jac(w):
        net.params[:] = w
        return net.jacobian(x)

    res = least_squares(residuals, net.params.copy(), jac=jac, method="lm")
    return reached.get("nfev"), reached.get("seconds"), float(np.mean(res.fun ** 2))


def lm_iteration_split(net, x, y):
    """Seconds of the pieces of one LM iteration: Jacobian rows, SYRK, Cholesky."""
    be = nc.backend.current()
    curv = Curvature(net, net._check_X(x), net._check_y(y, len(x)))
    w = net.params.astype(np.float64)
    t0 = time.perf_counter()
    J = curv.jacobian(w)
    t1 = time.perf_counter()
    G = np.zeros((w.size, w.size))
    be.syrk(J, G, 1.0, 0.0)
    t2 = time.perf_counter()
    step = np.empty(w.size)
    G.flat[:: w.size + 1] += 1e-3
    assert be.cholesky_solve(G, J.T @ np.ones(J.shape[0]), step)
    t3 = time.perf_counter()
    return {"jacobian": t1 - t0, "syrk": t2 - t1, "cholesky": t3 - t2}


@pytest.mark.benchmark(group="sine fit 1-5-1: LM to mse <= 0.002")
def test_nncore_lm(benchmark):
    epochs, mse = benchmark(nncore_lm)
    assert mse <= GOAL


@pytest.mark.benchmark(group="sine fit 1-5-1: LM to mse <= 0.002")
def test_scipy_least_squares_lm(benchmark):
    _, _, mse = benchmark(scipy_lm)
    assert mse <= GOAL


@pytest.mark.parametrize("hidden", [5, 50])
@pytest.mark.benchmark(group="one LM iteration: Jacobian + SYRK + Cholesky")
def test_lm_iteration(benchmark, hidden):
    x = np.linspace(-np.pi, np.pi, 400)[:, None]
    net = nc.Network([nc.Dense(1, hidden, activation="tanh"), nc.Dense(hidden, 1)],
                     loss="mse", dtype="float64", seed=0)
    split = benchmark(lm_iteration_split, net, x, np.sin(x))
    assert set(split) == {"jacobian", "syrk", "cholesky"}


def main():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        nc.set_num_threads(1)
        ours, theirs = [], []
        for _ in range(5):                                  # interleaved, medians
            t = time.perf_counter()
            epochs, mse = nncore_lm()
            ours.append(time.perf_counter() - t)
            nfev, seconds, final = scipy_lm()
            theirs.append(seconds)
        print(f"sine fit 1-5-1 (seed 3), time to mse <= {GOAL}: nncore LM {epochs} epochs, "
              f"median {np.median(ours) * 1e3:.1f} ms; scipy least_squares(method='lm') "
              f"{nfev} residual evaluations, median {np.median(theirs) * 1e3:.1f} ms "
              f"(its final mse {final:.1e})")
        for hidden in (5, 50, 200):
            x = np.linspace(-np.pi, np.pi, 400)[:, None]
            net = nc.Network([nc.Dense(1, hidden, activation="tanh"), nc.Dense(hidden, 1)],
                             loss="mse", dtype="float64", seed=0)
            splits = [lm_iteration_split(net, x, np.sin(x)) for _ in range(5)]
            med = {k: np.median([s[k] for s in splits]) * 1e3 for k in splits[0]}
            print(f"one LM iteration, 1-{hidden}-1 ({net.n_params} params, 400 rows): "
                  + ", ".join(f"{k} {v:.2f} ms" for k, v in med.items()))


def newton_hessian_seconds(columns=32):
    """Digits 64-32-10 (tanh, cross-entropy, L2 1e-4, float64, 1,797 samples, 2,410
    parameters): seconds of Newton's exact Hessian (R-operator, batched), and of
    its old central-difference Hessian extrapolated from ``columns`` columns
    (each column is exactly two gradient evaluations, so the cost is linear)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = np.ascontiguousarray(d.data / 16.0)
    y = d.target.astype(np.int64)
    net = nc.Network([nc.Dense(64, 32, activation="tanh"), nc.Dense(32, 10)],
                     loss="cross_entropy", regularizer=nc.L2(1e-4), dtype="float64", seed=0)
    t = time.perf_counter()
    H = net.hessian(X, y)
    exact = time.perf_counter() - t

    def grad_only(w):
        net.params[:] = w
        return net.loss_and_gradient(X, y)

    w = net.params.copy()
    t = time.perf_counter()
    for i in range(columns):       # nncore.optim.fd_hessian's loop, for `columns` columns
        h = 6e-6 * max(1.0, abs(w[i]))
        wp = w.copy(); wp[i] += h
        wm = w.copy(); wm[i] -= h
        _ = (grad_only(wp)[1] - grad_only(wm)[1]) / (2 * h)
    fd = (time.perf_counter() - t) * w.size / columns
    net.params[:] = w
    assert H.shape == (w.size, w.size)
    return exact, fd


if __name__ == "__main__":
    if "--newton" in sys.argv:
        exact, fd = newton_hessian_seconds()
        print(f"Newton's Hessian on digits 64-32-10: exact (R-operator) {exact:.1f} s, "
              f"central differences {fd:.1f} s (extrapolated from 32 columns)")
        sys.exit(0)
    sys.exit(main())
