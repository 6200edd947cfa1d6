"""
A hyper-parameter sweep: depth, width, activation, learning rate, batch size
============================================================================

``nc.tune.search`` trains one network per configuration of the grid (in
parallel on local processes by default, or on a Dask cluster) and ranks them
by validation loss. The figure shows each hyper-parameter's effect (every
dot is one trial) and the curves of the best and worst configurations.

From the command line::

    python examples/tuning.py [--fast] [--out DIR]
"""

import numpy as np

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)

X, y = nc.datasets.spirals(n=200 if args.fast else 400, noise=0.15, seed=0)
space = {
    "depth": [1, 2] if args.fast else [1, 2, 3],
    "width": [16] if args.fast else [16, 64],
    "activation": ["relu", "tanh"],
    "lr": [1e-2] if args.fast else [1e-3, 1e-2],
    "batch_size": [32] if args.fast else [16, 64],
    "epochs": [10 if args.fast else 150],
    "optimizer": ["adam"],
}
res = nc.tune.search(space, X, y, validation=0.25, seed=0,
                     executor="serial" if args.fast else None, progress=False)
ok = [r for r in res.records if r["status"] == "ok"]
print(f"{len(res.records)} trials, {len(ok)} ok; best val_loss {res.best_score:.4f} with "
      f"{res.best_params}")
ranked = sorted(ok, key=lambda r: r["val_loss"])
for r in ranked[:5]:
    p = r["params"]
    print(f"  val_loss {r['val_loss']:.4f}  val_acc {r['val_accuracy']:.3f}  depth {p['depth']} "
          f"width {p['width']} {p['activation']:<4} lr {p['lr']:g} batch {p['batch_size']}")

keys = ["depth", "width", "activation", "lr", "batch_size"]
fig, axes = plt.subplots(1, len(keys) + 1, figsize=(3.2 * (len(keys) + 1), 3.6))
jitter = np.random.default_rng(0)
for ax, key in zip(axes, keys):
    values = [str(v) for v in space[key]]
    for r in ok:
        x = values.index(str(r["params"][key])) + jitter.uniform(-0.12, 0.12)
        ax.plot(x, r["val_loss"], "o", color="tab:blue", alpha=0.6, ms=5)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(values)
    ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_xlabel(key)
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
axes[0].set_ylabel("validation loss")
best, worst = ranked[0], ranked[-1]
curves = {f"best (trial {best['trial']})": res.histories[best["trial"]],
          f"worst (trial {worst['trial']})": res.histories[worst["trial"]]}
nc.plot.compare(curves, metric="val_loss", ax=axes[-1], log=True, title="validation curves")
fig.tight_layout()
save(fig, args, "tuning.png")
