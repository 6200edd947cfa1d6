"""
Every optimizer of the lecture on one network
=============================================

Loss against iterations, against passes over the data and against wall time.

The digits data (8x8 images, 10 classes; scikit-learn's copy, or two spirals
when scikit-learn is missing), a 64-32-10 tanh network with L2(1e-4) in
float64, trained from the same initial weights by

* first-order methods on mini-batches of 32: SGD, momentum, Nesterov,
  AdaGrad, RMSProp, Adam (an iteration is one mini-batch step);
* full-batch methods with a line search: conjugate gradients (Polak–Ribière,
  Fletcher–Reeves, Liu–Storey), BFGS, DFP, L-BFGS and damped Newton (an
  iteration is one epoch).

An "iteration" costs very different amounts for the two families, so the
middle panel counts gradient evaluations over the whole set (one epoch of
mini-batches = one pass; Newton's finite-difference Hessian costs 2n passes
per iteration), and the right panel wall time.

From the command line::

    python examples/optimizers.py [--fast] [--out DIR]

Run time: --fast about 10 s. At full size about 4 minutes on 2 cores, most
of it Newton: its finite-difference Hessian costs 2n = 4820 gradient passes
per iteration (about 150 s each), so it gets one iteration here (8 took
20 minutes); every other method together takes about 1.5 minutes.
"""

import numpy as np

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
FAST = args.fast

try:
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data / 16.0, d.target.astype(np.int64)
except ImportError:  # pragma: no cover - scikit-learn is optional
    X, y = nc.datasets.spirals(n=400, noise=0.1, seed=0)
    X = np.hstack([X, np.zeros((X.shape[0], 62))])
if FAST:
    X, y = X[:300], y[:300]
HIDDEN = 8 if FAST else 32
N_CLASSES = int(y.max()) + 1
EPOCHS_FIRST = 5 if FAST else 40       # epochs of mini-batches
ITERS_FULL = 10 if FAST else 200       # full-batch iterations
ITERS_NEWTON = 3 if FAST else 1        # 2n gradient evaluations each (see Run time)

FIRST_ORDER = {
    "SGD": lambda: nc.optim.SGD(lr=0.1),
    "momentum": lambda: nc.optim.SGD(lr=0.05, momentum=0.9),
    "Nesterov": lambda: nc.optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "AdaGrad": lambda: nc.optim.Adagrad(lr=0.05),
    "RMSProp": lambda: nc.optim.RMSprop(lr=0.001),
    "Adam": lambda: nc.optim.Adam(lr=0.003),
}
FULL_BATCH = {
    "CG (Polak-Ribière)": lambda: nc.optim.ConjugateGradient("polak-ribiere"),
    "CG (Fletcher-Reeves)": lambda: nc.optim.ConjugateGradient("fletcher-reeves"),
    "CG (Liu-Storey)": lambda: nc.optim.ConjugateGradient("liu-storey"),
    "BFGS": lambda: nc.optim.BFGS(),
    "DFP": lambda: nc.optim.DFP(),
    "L-BFGS": lambda: nc.optim.LBFGS(history=10),
    "Newton": lambda: nc.optim.Newton(),
}


def network():
    return nc.Network([nc.Dense(64, HIDDEN, activation="tanh"), nc.Dense(HIDDEN, N_CLASSES)],
                      loss="cross_entropy", regularizer=nc.L2(1e-4), dtype="float64", seed=0)


net0 = network()
loss0 = net0.loss(X, y)
n_params = net0.params.size
steps_per_epoch = -(-X.shape[0] // 32)
curves = {}
for name, make in {**FIRST_ORDER, **FULL_BATCH}.items():
    net = network()
    full = name in FULL_BATCH
    epochs = ITERS_NEWTON if name == "Newton" else (ITERS_FULL if full else EPOCHS_FIRST)
    hist = net.fit(X, y, optimizer=make(), batch_size="full" if full else 32, epochs=epochs,
                   shuffle=True, progress=False, seed=0)
    h = hist.history
    k = len(h["loss"])
    if full:
        iters = np.arange(1, k + 1)
        passes = np.asarray(h["ngev"], dtype=float)
    else:
        iters = np.arange(1, k + 1) * steps_per_epoch
        passes = np.arange(1, k + 1, dtype=float)
    curves[name] = dict(iters=np.r_[0, iters], passes=np.r_[0 if not full else 1, passes],
                        time=np.r_[0.0, h["time"]], loss=np.r_[loss0, h["loss"]], full=full)
    stop = f" (stopped: {hist.stop_reason})" if getattr(hist, "stop_reason", None) else ""
    print(f"{name:<22} {k:4d} epochs  final loss {h['loss'][-1]:.4f}  "
          f"accuracy {h['accuracy'][-1]:.3f}  {h['time'][-1]:6.2f} s{stop}")

fig, axes = plt.subplots(1, 3, figsize=(17, 5), sharey=True)
colors = list(plt.get_cmap("tab10").colors[:len(FIRST_ORDER)]) \
    + list(plt.get_cmap("Dark2").colors[:len(FULL_BATCH)])
for (name, c), color in zip(curves.items(), colors):
    style = "-" if c["full"] else "--"
    for ax, key in zip(axes, ("iters", "passes", "time")):
        ax.plot(np.maximum(c[key], 1e-3 if key == "time" else 0.5), c["loss"], style,
                color=color, label=name, lw=1.6)
for ax, xlabel in zip(axes, ("iterations (parameter updates)",
                             "gradient evaluations over the whole set",
                             "wall time [s]")):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_ylabel("training loss (cross-entropy + L2)")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5))
fig.suptitle(f"digits, 64-{HIDDEN}-{N_CLASSES} tanh + L2 ({n_params} parameters): dashed = "
             "first-order on mini-batches of 32, solid = full-batch with a line search")
fig.tight_layout()
save(fig, args, "optimizers.png")
