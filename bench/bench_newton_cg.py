"""NewtonCG (Hessian-free, Martens 2010) against
``scipy.optimize.minimize(method="Newton-CG", hessp=...)`` given the same exact
Hessian-vector products: loss reached per iteration and per second.

Problems (float64, full batch, ``net.loss`` = mean cross-entropy + penalty):

* ``digits``: 64-32-10 tanh, L2 1e-4, scikit-learn's digits (1,797 rows,
  2,410 weights).
* ``mnist``: the MNIST-shaped 784-256-256-10 relu network (269,322 weights) on
  ``--rows`` synthetic rows (uniform pixels, labels of a random linear teacher).

Contenders, from the same initial weights, each with its own stopping rules:
nncore ``NewtonCG(curvature="hessian")`` (the same products scipy gets),
nncore ``NewtonCG()`` (its default, Gauss–Newton products) and scipy's
Newton-CG with ``hessp`` = ``Curvature.hvp`` (the R-operator) and ``jac=True``.
Time excludes the evaluation of the loss for the record (scipy's callback and
nncore's history both see the loss of each iterate). Runs stop after
``--iters`` iterations or ``--budget`` seconds; the contenders alternate in
order over ``--rounds`` rounds and times are medians over rounds.

    python bench/bench_newton_cg.py [--problems digits mnist] [--rows 2000]

Smoke run (CI): ``pytest bench/ --benchmark-disable -q``.
"""

import argparse
import sys
import time

import numpy as np
import pytest

import nncore as nc
from nncore.curvature import Curvature


def digits_problem():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = np.ascontiguousarray(d.data / 16.0)
    net = nc.Network([nc.Dense(64, 32, activation="tanh"), nc.Dense(32, 10)],
                     loss="cross_entropy", regularizer=nc.L2(1e-4), dtype="float64", seed=0)
    return net, X, d.target.astype(np.int64)


def mnist_problem(rows=2000):
    rng = np.random.default_rng(0)
    X = rng.random((rows, 784))
    y = np.argmax((X - 0.5) @ rng.normal(size=(784, 10)), axis=1).astype(np.int64)
    net = nc.Network([nc.Dense(784, 256, activation="relu"),
                      nc.Dense(256, 256, activation="relu"), nc.Dense(256, 10)],
                     loss="cross_entropy", dtype="float64", seed=0)
    return net, X, y


class _Stop(Exception):
    pass


def _objective(net, X, y):
    def fun(w):
        net.params[:] = w
        return net.loss_and_gradient(X, y)

    fun.curvature = Curvature(net, net._check_X(X), net._check_y(y, len(X)))
    return fun


def run_nncore(make, curvature, iters, budget):
    """[(seconds, loss, products)] per iteration, iteration 0 first."""
    net, X, y = make()
    fun = _objective(net, X, y)
    opt = nc.optim.NewtonCG(curvature=curvature, gtol=0.0, ftol=0.0)
    x = net.params.copy()
    f, g = fun(x)
    trace, elapsed, products = [(0.0, f, 0)], 0.0, 0
    for _ in range(iters):
        t = time.perf_counter()
        x, f, g, info = opt.iterate(fun, x, f, g)
        elapsed += time.perf_counter() - t
        # CG's products, plus one for the model decrease q0 per trial
        products += info["log"]["cg_iters"] + 1
        trace.append((elapsed, f, products))
        if elapsed > budget or info.get("stop"):
            break
    return trace


def run_scipy(make, iters, budget):
    """The same record for scipy.optimize.minimize(method="Newton-CG")."""
    from scipy.optimize import minimize

    net, X, y = make()
    fun = _objective(net, X, y)
    count = {"hvp": 0, "paused": 0.0}

    def hessp(w, v):
        count["hvp"] += 1
        return fun.curvature.hvp(w, v)

    start = time.perf_counter()
    trace = [(0.0, fun(net.params.copy())[0], 0)]

    def callback(xk):
        t = time.perf_counter()
        elapsed = t - start - count["paused"]
        trace.append((elapsed, fun(xk)[0], count["hvp"]))
        count["paused"] += time.perf_counter() - t
        if elapsed > budget:
            raise _Stop

    start = time.perf_counter()
    try:
        minimize(fun, net.params.copy(), jac=True, hessp=hessp, method="Newton-CG",
                 callback=callback, options={"maxiter": iters, "xtol": 0.0})
    except _Stop:
        pass
    return trace


CONTENDERS = {
    "nncore NewtonCG (Hessian)": lambda make, it, b: run_nncore(make, "hessian", it, b),
    "nncore NewtonCG (Gauss-Newton)": lambda make, it, b: run_nncore(make, "gauss-newton", it, b),
    "scipy Newton-CG (hessp)": run_scipy,
}


def compare(make, iters, budget, rounds):
    """{contender: traces over rounds}, contenders alternating."""
    names = list(CONTENDERS)
    traces = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            traces[name].append(CONTENDERS[name](make, iters, budget))
    return traces


def report(title, traces, marks=(1, 2, 5, 10, 20, 50)):
    """Loss, median seconds and products at chosen iterations (the loss is the
    same every round: the runs are deterministic)."""
    lines = [f"{title}: loss after k iterations [median seconds, Hessian products]", "",
             "| contender | " + " | ".join(f"k={k}" for k in marks) + " |",
             "|---" * (len(marks) + 1) + "|"]
    for name, runs in traces.items():
        cells = []
        for k in marks:
            if all(len(t) > k for t in runs):
                sec = np.median([t[k][0] for t in runs])
                cells.append(f"{runs[0][k][1]:.4g} [{sec:.3g} s, {runs[0][k][2]}]")
            else:
                cells.append("-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "loss reached within t seconds (median over rounds):", ""]
    for name, runs in traces.items():
        final = runs[0][-1]
        lines.append(f"- {name}: {len(runs[0]) - 1} iterations, final loss {final[1]:.4g} "
                     f"after {np.median([t[-1][0] for t in runs]):.3g} s, {final[2]} products")
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(CONTENDERS))
@pytest.mark.benchmark(group="NewtonCG vs scipy Newton-CG: digits 64-32-10, 5 iterations")
def test_newton_cg_digits(benchmark, name, smoke_run):
    iters = 1 if smoke_run else 5
    trace = benchmark(CONTENDERS[name], digits_problem, iters, 60.0)
    assert trace[-1][1] < trace[0][1]


def main(argv=None):
    from threadpoolctl import threadpool_limits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", nargs="*", choices=("digits", "mnist"),
                    default=["digits", "mnist"])
    ap.add_argument("--rows", type=int, default=2000, help="rows of the MNIST-shaped set")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per run")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    with threadpool_limits(1):
        nc.set_num_threads(1)
        for problem in args.problems:
            if problem == "digits":
                make, title = digits_problem, "digits 64-32-10 tanh + L2 (2,410 weights)"
            else:
                make = lambda: mnist_problem(args.rows)   # noqa: E731
                title = f"784-256-256-10 relu (269,322 weights), {args.rows} synthetic rows"
            traces = compare(make, args.iters, args.budget, args.rounds)
            print(report(title, traces))
            print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
