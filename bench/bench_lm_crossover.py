"""Where Levenberg–Marquardt stops winning: wall time to a target loss for LM,
BFGS, L-BFGS, conjugate gradients and full-batch Adam on regression networks
of growing width.

Problems (float64, tanh hidden layer, linear output, mse, full batch; the goal
is on the mean squared residual ``mean(e^2)``, twice nncore's ``1/(2N)`` loss):

* ``sine``: 1-h-1 on MATLAB's sine fit (40 points of ``sin x``), goal 0.002.
* ``diabetes``: 10-h-1 on scikit-learn's diabetes set (442 rows, X and y
  standardised), goal 0.35 (training R² 0.65; a linear model reaches 0.52).

Each method runs ``net.fit`` from the network's seed until a callback sees the
goal in the epoch's loss (or the time limit); the time is the whole ``fit``
call. Seeds 0, 1, 2 and the methods are interleaved (the order rotates each
round); the table shows the median over seeds (``-`` when fewer than two of the
three runs reached the goal). The classic claim is that LM wins below a few
hundred weights; the crossover reported is the largest size at which LM's
median is the lowest.

Run (1 thread; the machine may be shared, so say so next to the figures):

    python bench/bench_lm_crossover.py [--limit SECONDS] [--problems sine diabetes]
        [--goal MSE] [--widths H ...]

Smoke run (CI): ``pytest bench/ --benchmark-disable -q`` runs one small size.
"""

import argparse
import math
import sys
import time

import numpy as np
import pytest

import nncore as nc

SEEDS = (0, 1, 2)
WIDTHS = {"sine": (3, 5, 10, 20, 50, 100, 200), "diabetes": (2, 5, 10, 20, 50, 100, 200)}
GOALS = {"sine": 0.002, "diabetes": 0.35}
# name -> (optimizer factory, batch size). Stopping tests off: only the goal or
# the time limit ends a run (LM still stops itself at mu_max).
METHODS = {
    "LM": lambda: nc.optim.LevenbergMarquardt(gtol=0.0, ftol=0.0),
    "BFGS": lambda: nc.optim.BFGS(gtol=0.0, ftol=0.0),
    "L-BFGS": lambda: nc.optim.LBFGS(gtol=0.0, ftol=0.0),
    "CG": lambda: nc.optim.ConjugateGradient(gtol=0.0, ftol=0.0),
    "Adam": lambda: nc.optim.Adam(0.01),
}


def data(problem):
    if problem == "sine":
        x = np.linspace(-np.pi, np.pi, 40)[:, None]
        return x, np.sin(x)
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    X = (d.data - d.data.mean(axis=0)) / d.data.std(axis=0)
    y = (d.target - d.target.mean()) / d.target.std()
    return np.ascontiguousarray(X), y[:, None]


class _Until(nc.callbacks.Callback):
    """Stops ``fit`` when ``2 * loss <= goal`` (mean(e^2)) or after ``limit`` seconds."""

    def __init__(self, goal, limit):
        super().__init__()
        self.goal, self.limit, self.reached, self.epochs = goal, limit, False, 0
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs = epoch + 1
        if 2.0 * logs["loss"] <= self.goal:
            self.reached = True
            self.model.stop_training = True
        elif time.perf_counter() - self.start > self.limit:
            self.model.stop_training = True


def time_to_goal(problem, width, method, seed, limit, X=None, y=None):
    """(seconds, epochs) of ``fit`` to the goal, or (inf, epochs) if not reached."""
    if X is None:
        X, y = data(problem)
    net = nc.Network([nc.Dense(X.shape[1], width, activation="tanh"), nc.Dense(width, 1)],
                     loss="mse", dtype="float64", seed=seed)
    until = _Until(GOALS[problem], limit)
    t = time.perf_counter()
    until.start = t
    net.fit(X, y, optimizer=METHODS[method](), batch_size="full", epochs=10**7,
            shuffle=False, progress=False, callbacks=[until])
    seconds = time.perf_counter() - t
    return (seconds if until.reached else math.inf), until.epochs


def _median(times):
    """Median over seeds, or inf when fewer than two runs reached the goal."""
    finite = sorted(t for t in times if math.isfinite(t))
    if len(finite) < 2:
        return math.inf
    return float(np.median(times))


def sweep(problem, limit, widths=None, log=sys.stderr):
    """``{(width, method): [(seconds, epochs) per seed]}``, seeds and methods
    interleaved (the order rotates each round)."""
    X, y = data(problem)
    widths = WIDTHS[problem] if widths is None else widths
    names = list(METHODS)
    runs = {}
    for width in widths:
        for r, seed in enumerate(SEEDS):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                runs.setdefault((width, name), []).append(
                    time_to_goal(problem, width, name, seed, limit, X, y))
        print(f"{problem} width {width} done", file=log, flush=True)
    return runs


def table(problem, runs, X):
    """Markdown table: median seconds (median epochs) per size and method; the
    sizes where LM is fastest, and the crossover (the largest of them)."""
    widths = sorted({w for w, _ in runs})
    names = list(METHODS)
    lines = [f"{problem}: seconds to mean(e^2) <= {GOALS[problem]} (median of seeds "
             f"{', '.join(map(str, SEEDS))}; median iterations in brackets)", "",
             "| hidden | weights | " + " | ".join(names) + " | fastest |",
             "|---" * (len(names) + 3) + "|"]
    lm_wins = []
    for w in widths:
        n = (X.shape[1] + 2) * w + 1
        med = {name: _median([s for s, _ in runs[w, name]]) for name in names}
        its = {name: int(np.median([e for _, e in runs[w, name]])) for name in names}
        best = min(med, key=med.get) if any(map(math.isfinite, med.values())) else "none"
        cells = [("-" if not math.isfinite(med[k]) else f"{med[k]:.3g} ({its[k]})")
                 for k in names]
        lines.append(f"| {w} | {n} | " + " | ".join(cells) + f" | {best} |")
        if best == "LM":
            lm_wins.append(n)
    lines.append("")
    lines.append(f"LM fastest at {lm_wins or 'no'} weights" + (
        f"; crossover: LM not fastest above {max(lm_wins)} weights" if lm_wins else ""))
    return "\n".join(lines)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.benchmark(group="crossover: sine 1-10-1 to mean(e^2) <= 0.002")
def test_time_to_goal(benchmark, method, smoke_run):
    width = 3 if smoke_run else 10
    seconds, _ = benchmark(time_to_goal, "sine", width, method, 0, 2.0 if smoke_run else 30.0)
    assert seconds > 0


def main(argv=None):
    from threadpoolctl import threadpool_limits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=20.0, help="seconds per run")
    ap.add_argument("--problems", nargs="*", choices=list(GOALS), default=list(GOALS))
    ap.add_argument("--goal", type=float, help="mean(e^2) goal instead of the problem's")
    ap.add_argument("--widths", type=int, nargs="*", help="hidden widths instead of the default")
    args = ap.parse_args(argv)
    with threadpool_limits(1):
        nc.set_num_threads(1)
        for problem in args.problems:
            if args.goal is not None:
                GOALS[problem] = args.goal
            runs = sweep(problem, args.limit, args.widths)
            print(table(problem, runs, data(problem)[0]))
            print()


if __name__ == "__main__":
    main()
