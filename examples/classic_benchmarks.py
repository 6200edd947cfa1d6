"""
The classic benchmark problems, every training algorithm side by side
=====================================================================

Protocol (stated once, the same for every algorithm):

* problems: XOR (2-2-1), 3-bit parity (3-3-1), the 10-5-10 encoder, two
  spirals (194 points, 2-20-20-1) — all tanh hidden units and a linear output
  under ``binary_cross_entropy`` (logits) — and the 1-5-1 sine fit (tanh,
  linear output, ``mse``, 40 points of ``sin x`` on [-pi, pi]);
* goal: for the binary problems the CMU benchmark "40-20-40" criterion on the
  output probabilities (every output of every pattern >= 0.6 for a 1 and
  <= 0.4 for a 0); for the sine fit a mean squared error <= 0.002;
* every algorithm trains on the whole set each epoch (first-order ones with
  ``batch_size="full"``), in float64, from the same N initialisations
  (``Network(seed=start)``; N = ``--starts``, default 10, and at most 3 for
  the two spirals), for at most a fixed number of epochs per problem;
  a run that diverges, stops early, runs out of epochs or takes more than
  ``TIME_LIMIT`` seconds is a failure; a method that rejects the problem
  (Bayesian regularisation takes only ``mse``) shows "n/a";
* hyper-parameters: the library defaults, except the learning rates of the
  first-order methods (listed in ``FIRST_ORDER``, one rate each for all
  problems).

Printed: success rate, median epochs and median seconds to the goal over the
successful starts. ``--fast``: one start, 40 epochs and no two spirals (a
smoke test).

From the command line::

    python examples/classic_benchmarks.py [--fast] [--starts N] [--out DIR]
"""

import statistics
import time

import numpy as np
from _common import save, setup

import nncore as nc
from nncore.callbacks import Callback
from nncore.errors import DivergenceError

# First-order methods with a full batch: one learning rate each, all problems.
NOT_APPLICABLE = "n/a"   # a method that rejects the problem (ValueError): no cell
TIME_LIMIT = 10.0   # seconds per run (the spirals' 2000 epochs with a dense Hessian)
FIRST_ORDER = {"sgd": 0.5, "momentum": 0.2, "nesterov": 0.2, "adagrad": 0.3,
               "rmsprop": 0.01, "adam": 0.05, "adamw": 0.05}


def algorithms():
    """(label, factory) for every training algorithm nncore has."""
    out = [(name, (lambda n=name, lr=lr: nc.optim.get(n, lr=lr))) for name, lr in FIRST_ORDER.items()]
    out += [("cg", lambda: nc.optim.get("cg")),
            ("cg powell-beale", lambda: nc.optim.ConjugateGradient(
                beta="hestenes-stiefel", restart="powell-beale")),   # traincgb
            ("scg", lambda: nc.optim.get("scg"))]
    for variant in ("irprop-", "rprop-", "rprop+", "irprop+"):
        out.append((f"rprop {variant}", lambda v=variant: nc.optim.Rprop(variant=v)))
    out.append(("quickprop", lambda: nc.optim.get("quickprop")))
    listed = set(FIRST_ORDER) | {"cg", "scg", "rprop", "quickprop"}
    # BFGS, DFP, L-BFGS, Newton and whatever else the library registers (LM, BR...).
    out += [(name, (lambda n=name: nc.optim.get(n))) for name in nc.optim.NAMES
            if name not in listed]
    return out


def problems(fast):
    bits3 = np.array([[(i >> k) & 1 for k in range(3)] for i in range(8)], dtype=float)
    Xs, ys = nc.datasets.spirals(n=194, seed=0)
    x = np.linspace(-np.pi, np.pi, 40)[:, None]
    budget = 40 if fast else None
    chosen = {
        "xor": dict(data=nc.datasets.xor(), sizes=(2, 2, 1), loss="binary_cross_entropy",
                    epochs=budget or 1000),
        "parity-3": dict(data=(bits3, bits3.sum(1) % 2), sizes=(3, 3, 1),
                         loss="binary_cross_entropy", epochs=budget or 1000),
        "encoder 10-5-10": dict(data=(np.eye(10), np.eye(10)), sizes=(10, 5, 10),
                                loss="binary_cross_entropy", epochs=budget or 1000),
        "two spirals": dict(data=(Xs, ys), sizes=(2, 20, 20, 1), loss="binary_cross_entropy",
                            epochs=budget or 2000, max_starts=3),
        "sine 1-5-1": dict(data=(x, np.sin(x)), sizes=(1, 5, 1), loss="mse",
                           epochs=budget or 3000),
    }
    if fast:
        del chosen["two spirals"]
    return chosen


class Goal(Callback):
    """Stops training when the problem's goal is met; remembers the epoch."""

    def __init__(self, X, y, loss):
        super().__init__()
        self.X, self.loss = X, loss
        self.y = np.asarray(y, dtype=float).reshape(len(X), -1)
        self.reached = None
        self.t0 = time.perf_counter()

    def met(self):
        if self.loss == "mse":
            return float(np.mean((self.model.forward(self.X) - self.y) ** 2)) <= 0.002
        p = self.model.predict_proba(self.X).reshape(self.y.shape)
        return bool(np.all(np.abs(p - self.y) <= 0.4))     # 40-20-40

    def on_epoch_end(self, epoch, logs=None):
        if self.met():
            self.reached = epoch + 1
            self.model.stop_training = True
        elif time.perf_counter() - self.t0 > TIME_LIMIT:
            self.model.stop_training = True


def build(sizes, loss, seed):
    layers = [nc.Dense(a, b, activation="tanh") for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(nc.Dense(sizes[-2], sizes[-1]))
    return nc.Network(layers, loss=loss, dtype="float64", seed=seed)


def run(problem, factory, seed):
    """(epochs to the goal or None, seconds)."""
    X, y = problem["data"]
    net = build(problem["sizes"], problem["loss"], seed)
    goal = Goal(X, y, problem["loss"])
    opt = factory()
    batch = None if getattr(opt, "full_batch", False) else "full"
    t0 = time.perf_counter()
    try:
        net.fit(X, y, optimizer=opt, batch_size=batch, epochs=problem["epochs"],
                shuffle=False, callbacks=[goal], progress=False)
    except (DivergenceError, np.linalg.LinAlgError):
        return None, time.perf_counter() - t0
    except ValueError:
        if net.history_ is not None and net.history_.epoch:
            raise           # a failure after training started is a bug, not a mismatch
        return NOT_APPLICABLE, 0.0   # rejected up front (BR takes only mse)
    return goal.reached, time.perf_counter() - t0


def benchmark(starts, fast):
    """{problem: {algorithm: (successes, median epochs, median seconds)}}."""
    table = {}
    for pname, problem in problems(fast).items():
        table[pname] = {}
        for label, factory in algorithms():
            n = min(starts, problem.get("max_starts", starts))
            results = [run(problem, factory, seed) for seed in range(n)]
            if any(e is NOT_APPLICABLE for e, _ in results):
                table[pname][label] = (0, 0, None, None)
                continue
            ok = [(e, s) for e, s in results if e is not None]
            table[pname][label] = (
                len(ok), n, statistics.median(e for e, _ in ok) if ok else None,
                statistics.median(s for _, s in ok) if ok else None)
    return table


def markdown(table):
    names = list(table)
    labels = list(next(iter(table.values())))
    lines = ["| algorithm | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label in labels:
        cells = []
        for p in names:
            k, n, ep, sec = table[p][label]
            cells.append("n/a" if n == 0 else
                         f"{k}/{n}" + (f", {ep:g} ep, {sec * 1e3:.0f} ms" if k else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    args, plt = setup(__doc__, lambda p: p.add_argument(
        "--starts", type=int, default=10, metavar="N", help="random starts per problem"))
    starts = 1 if args.fast else args.starts
    table = benchmark(starts, args.fast)
    print("successes / starts, median epochs and median ms to the goal "
          "(successful starts only)\n")
    print(markdown(table))
    names = list(table)
    labels = list(next(iter(table.values())))
    rate = np.array([[table[p][a][0] / table[p][a][1] if table[p][a][1] else np.nan
                      for p in names] for a in labels])
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 0.32 * len(labels) + 1.5))
    im = ax.imshow(rate, cmap="Greens", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(names)):
            ax.text(j, i, "n/a" if np.isnan(rate[i, j]) else f"{rate[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if rate[i, j] > 0.6 else "black")
    ax.set_title("success rate (40-20-40 / MSE <= 0.002)")
    fig.colorbar(im, ax=ax)
    save(fig, args, "classic_benchmarks.png")


if __name__ == "__main__":
    main()
