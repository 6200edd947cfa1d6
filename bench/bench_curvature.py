"""Levenberg–Marquardt against scipy.optimize.least_squares(method="lm"), and
the split of one LM iteration (Jacobian / SYRK / Cholesky / rest).

Problems (float64, both solvers from the same initial weights, both given the
same residuals ``e = out - d`` and the same exact Jacobian, ``net.jacobian``:
R-operator rows; the goal is on the mean squared residual ``mean(e^2)``, i.e.
twice nncore's ``1/(2N)`` mse):

* ``sine``: MATLAB's sine fit, 1-5-1 tanh, 40 points of ``sin x`` on [-pi, pi],
  goal ``mean(e^2) <= 0.002`` (MATLAB's).
* ``diabetes``: scikit-learn's diabetes set (442 rows, bundled, offline), X and y
  standardised, 10-20-1 tanh (241 weights), goal ``mean(e^2) <= 0.15``
  (training R² 0.85).

nncore: ``net.fit(optimizer="lm")`` with a callback that stops at the goal;
scipy: MINPACK's ``lmder`` through ``least_squares``, stopped by its residual
function the first time the goal is met. Time to the goal includes building
the network.

Run (timings; the machine may be shared, so rows are medians of interleaved rounds):

    python bench/bench_curvature.py              # both problems, 1 thread
    pytest bench/bench_curvature.py --benchmark-group-by=group \
        --benchmark-columns=median,rounds -s

Smoke run (CI): ``pytest bench/ --benchmark-disable -q`` (goals loosened).
``python bench/bench_curvature.py --newton`` times one Newton iteration on digits
64-32-10 with the exact Hessian (R-operator) and with the old central differences.
"""

import sys
import time

import numpy as np
import pytest

import nncore as nc
from nncore.curvature import Curvature

GOAL = 0.002          # MATLAB's mse (mean of squared errors) on the sine fit


def sine_problem(seed=3):
    x = np.linspace(-np.pi, np.pi, 40)[:, None]
    net = nc.Network([nc.Dense(1, 5, activation="tanh"), nc.Dense(5, 1)], loss="mse",
                     dtype="float64", seed=seed)
    return net, x, np.sin(x)


def diabetes_data():
    """scikit-learn's diabetes regression (442 x 10), X and y standardised."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    X = (d.data - d.data.mean(axis=0)) / d.data.std(axis=0)
    y = (d.target - d.target.mean()) / d.target.std()
    return np.ascontiguousarray(X), y[:, None]


def diabetes_problem(seed=0, hidden=20):
    X, y = diabetes_data()
    net = nc.Network([nc.Dense(10, hidden, activation="tanh"), nc.Dense(hidden, 1)],
                     loss="mse", dtype="float64", seed=seed)
    return net, X, y


# name -> (problem builder, seed, goal on mean(e^2), smoke-run goal)
PROBLEMS = {
    "sine": (sine_problem, 3, GOAL, 0.05),
    "diabetes": (diabetes_problem, 0, 0.15, 0.4),
}


def nncore_lm(problem="sine", goal=None, epochs=1000):
    """Epochs and final mean(e^2) of nncore's LM, stopping at the goal."""
    make, seed, default_goal, _ = PROBLEMS[problem]
    net, x, y = make(seed)
    stop = _Goal(x, y, default_goal if goal is None else goal)
    net.fit(x, y, optimizer="lm", epochs=epochs, progress=False, callbacks=[stop])
    return stop.epochs, float(np.mean((net.forward(x) - y) ** 2))


class _Goal(nc.callbacks.Callback):
    def __init__(self, x, y, goal):
        super().__init__()
        self.x, self.y, self.goal, self.epochs = x, y, goal, None

    def on_epoch_end(self, epoch, logs=None):
        if np.mean((self.model.forward(self.x) - self.y) ** 2) <= self.goal:
            self.epochs = epoch + 1
            self.model.stop_training = True


class _GoalReached(Exception):
    pass


def scipy_lm(problem="sine", goal=None, max_nfev=5000):
    """scipy's MINPACK LM on the same residuals and exact Jacobian, stopped the
    first time mean(e^2) meets the goal: (residual evaluations, Jacobian
    evaluations, mean(e^2) there). MINPACK has no goal test of its own, so the
    residual function ends the run by raising."""
    from scipy.optimize import least_squares

    make, seed, default_goal, _ = PROBLEMS[problem]
    goal = default_goal if goal is None else goal
    net, x, y = make(seed)
    count = {"fun": 0, "jac": 0}

    def residuals(w):
        net.params[:] = w
        r = (net.forward(x) - y).ravel()
        count["fun"] += 1
        if np.mean(r * r) <= goal:
            raise _GoalReached(float(np.mean(r * r)))
        return r

    def jac(w):
        net.params[:] = w
        count["jac"] += 1
        return net.jacobian(x)

    try:
        res = least_squares(residuals, net.params.copy(), jac=jac, method="lm",
                            max_nfev=max_nfev)
    except _GoalReached as reached:
        return count["fun"], count["jac"], reached.args[0]
    return count["fun"], count["jac"], float(np.mean(res.fun ** 2))


def _timed(fn, *args, clock=time.perf_counter):
    t = clock()
    out = fn(*args)
    return clock() - t, out


class _Counting:
    """``fun`` with a call counter and the same ``curvature``."""

    def __init__(self, fun):
        self.fun, self.curvature, self.calls = fun, fun.curvature, 0

    def __call__(self, v):
        self.calls += 1
        return self.fun(v)


def lm_iteration_split(net, x, y, warm=3, clock=time.process_time):
    """Seconds of one LM iteration (``LevenbergMarquardt.iterate`` after ``warm``
    iterations, so ``mu`` has settled as inside ``fit``) and of its pieces timed
    apart at the same point: the Jacobian (R-operator rows), SYRK (``JᵀJ``), one
    Cholesky solve, one loss-and-gradient evaluation (a trial step; also the
    floor of the Jacobian's GEMMs). ``trials`` is the number of damped systems
    the iteration solved (each a Cholesky and a loss-and-gradient), ``rest``
    the iteration minus Jacobian, SYRK and ``trials`` x (Cholesky + gradient):
    Python, checks and copies. ``clock`` is CPU time by default: on a shared
    machine wall time mostly measures waiting for a core."""
    be = nc.backend.current()
    curv = Curvature(net, net._check_X(x), net._check_y(y, len(x)))
    w0 = net.params.copy()

    def fun(v):
        net.params[:] = v
        return net.loss_and_gradient(x, y)

    fun.curvature = curv
    opt = nc.optim.LevenbergMarquardt()
    w = w0.astype(np.float64)
    f, g = fun(w)
    for _ in range(warm):
        w, f, g, _ = opt.iterate(fun, w, f, g)
    counted = _Counting(fun)
    t_iter, _ = _timed(opt.iterate, counted, w, f, g, clock=clock)
    t_grad, _ = _timed(fun, w, clock=clock)
    t_jac, J = _timed(curv.jacobian, w, clock=clock)
    G = np.zeros((w.size, w.size))
    t_syrk, _ = _timed(be.syrk, J, G, 1.0, 0.0, clock=clock)
    G.flat[:: w.size + 1] += opt.mu_
    step = np.empty(w.size)
    t_chol, ok = _timed(be.cholesky_solve, G, -len(x) * g, step, clock=clock)
    net.params[:] = w0
    trials = counted.calls
    return {"iteration": t_iter, "jacobian": t_jac, "syrk": t_syrk, "cholesky": t_chol,
            "gradient": t_grad, "trials": trials,
            "rest": t_iter - t_jac - t_syrk - trials * (t_chol + t_grad)}


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.benchmark(group="LM to the goal: nncore vs scipy least_squares(method='lm')")
def test_nncore_lm(benchmark, problem, smoke_run):
    goal = PROBLEMS[problem][3 if smoke_run else 2]
    epochs, mse = benchmark(nncore_lm, problem, goal)
    assert mse <= goal


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.benchmark(group="LM to the goal: nncore vs scipy least_squares(method='lm')")
def test_scipy_least_squares_lm(benchmark, problem, smoke_run):
    goal = PROBLEMS[problem][3 if smoke_run else 2]
    _, _, mse = benchmark(scipy_lm, problem, goal)
    assert mse <= goal


@pytest.mark.parametrize("hidden", [5, 50])
@pytest.mark.benchmark(group="one LM iteration: Jacobian + SYRK + Cholesky + rest")
def test_lm_iteration(benchmark, hidden):
    x = np.linspace(-np.pi, np.pi, 400)[:, None]
    net = nc.Network([nc.Dense(1, hidden, activation="tanh"), nc.Dense(hidden, 1)],
                     loss="mse", dtype="float64", seed=0)
    split = benchmark(lm_iteration_split, net, x, np.sin(x))
    assert split["iteration"] > 0


def compare_with_scipy(rounds=7):
    """Interleaved rounds (the solver order alternates), medians, one line per problem."""
    times = {(p, s): [] for p in PROBLEMS for s in ("nncore", "scipy")}
    counts = {}
    for r in range(rounds):
        for problem in PROBLEMS:
            solvers = [("nncore", nncore_lm), ("scipy", scipy_lm)]
            for name, solve in solvers[r % 2:] + solvers[:r % 2]:
                seconds, out = _timed(solve, problem)
                times[problem, name].append(seconds)
                counts[problem, name] = out
    for problem, (_, seed, goal, _) in PROBLEMS.items():
        epochs, _ = counts[problem, "nncore"]
        nfev, njev, mse = counts[problem, "scipy"]
        ours = np.median(times[problem, "nncore"])
        theirs = np.median(times[problem, "scipy"])
        print(f"{problem} (seed {seed}), time to mean(e^2) <= {goal}: nncore LM {epochs} "
              f"iterations, median {ours * 1e3:.1f} ms; scipy least_squares(method='lm') "
              f"{nfev} residual + {njev} Jacobian evaluations, median {theirs * 1e3:.1f} ms "
              f"(ratio scipy / nncore {theirs / ours:.2f}; {rounds} interleaved rounds)")


def print_iteration_splits(rounds=9):
    problems = [("1-%d-1 sine, 400 rows" % h,
                 nc.Network([nc.Dense(1, h, activation="tanh"), nc.Dense(h, 1)], loss="mse",
                            dtype="float64", seed=0),
                 np.linspace(-np.pi, np.pi, 400)[:, None]) for h in (5, 50, 200)]
    problems = [(name, net, x, np.sin(x)) for name, net, x in problems]
    net, X, y = diabetes_problem()
    problems.append(("diabetes 10-20-1, 442 rows", net, X, y))
    splits = {name: [] for name, *_ in problems}
    for _ in range(rounds):                                 # interleaved, medians
        for name, net, x, y in problems:
            splits[name].append(lm_iteration_split(net, x, y))
    for name, net, *_ in problems:
        med = {k: np.median([s[k] for s in splits[name]]) for k in splits[name][0]}
        print(f"one LM iteration, {name} ({net.n_params} params), CPU ms, median of {rounds}: "
              + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in med.items() if k != "trials")
              + f" ({med['trials']:g} trial step(s))")


def main():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        nc.set_num_threads(1)
        if "--split" not in sys.argv:
            compare_with_scipy()
        print_iteration_splits()


def digits_problem():
    """Digits 64-32-10 (tanh, cross-entropy, L2 1e-4, float64, 1,797 samples, 2,410
    parameters): the network of examples/optimizers.py."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = np.ascontiguousarray(d.data / 16.0)
    net = nc.Network([nc.Dense(64, 32, activation="tanh"), nc.Dense(32, 10)],
                     loss="cross_entropy", regularizer=nc.L2(1e-4), dtype="float64", seed=0)
    return net, X, d.target.astype(np.int64)


def newton_iteration_seconds(hessian):
    """Seconds of one ``Newton(hessian=...).iterate`` on digits 64-32-10 from the
    network's initial weights, of the Hessian alone inside it, and the process's
    CPU seconds for the iteration (on a shared machine wall time mostly waits)."""
    net, X, y = digits_problem()

    def fun(w):
        net.params[:] = w
        return net.loss_and_gradient(X, y)

    fun.curvature = Curvature(net, net._check_X(X), net._check_y(y, len(X)))
    opt = nc.optim.Newton(hessian=hessian)
    w = net.params.copy()
    f, g = fun(w)
    spent = {}
    build = opt.hessian

    def timed_hessian(*args):
        t = time.perf_counter()
        H = build(*args)
        spent["hessian"] = time.perf_counter() - t
        return H

    opt.hessian = timed_hessian
    cpu = time.process_time()
    seconds, (_, f1, _, _) = _timed(opt.iterate, fun, w, f, g)
    cpu = time.process_time() - cpu
    assert f1 < f
    return seconds, spent["hessian"], cpu


def print_newton(rounds=2):
    times = {"exact": [], "fd": []}
    for r in range(rounds):                               # interleaved, medians
        for mode in (("exact", "fd") if r % 2 == 0 else ("fd", "exact")):
            times[mode].append(newton_iteration_seconds(mode))
    for mode, runs in times.items():
        print(f"Newton(hessian={mode!r}) on digits 64-32-10 (2,410 params, 1,797 rows): "
              f"{np.median([r[0] for r in runs]):.1f} s per iteration, of which the Hessian "
              f"{np.median([r[1] for r in runs]):.1f} s; CPU time "
              f"{np.median([r[2] for r in runs]):.1f} s (median of {rounds})")


if __name__ == "__main__":
    if "--newton" in sys.argv:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            nc.set_num_threads(1)
            print_newton()
        sys.exit(0)
    sys.exit(main())
