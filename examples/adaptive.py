"""
Adaptive learning rates: AdaGrad, RMSProp and Adam against plain SGD
====================================================================

Two half moons, once with one coordinate multiplied by 100 (features on very
different scales: no single learning rate suits every weight, and plain SGD
stalls) and once standardised (where SGD does fine as well). The adaptive
methods divide each weight's step by a running size of its own gradients,
so the scale of the inputs matters much less to them.

From the command line::

    python examples/adaptive.py [--fast] [--out DIR]
"""

import numpy as np

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
EPOCHS = 10 if args.fast else 100

X, y = nc.datasets.moons(n=200 if args.fast else 400, noise=0.1, seed=0)
X_bad = X * np.array([1.0, 100.0])
X_std = (X_bad - X_bad.mean(0)) / X_bad.std(0)

optimizers = {
    "SGD (lr 0.1)": lambda: nc.optim.SGD(lr=0.1),
    "AdaGrad (lr 0.1)": lambda: nc.optim.Adagrad(lr=0.1),
    "RMSProp (lr 0.01)": lambda: nc.optim.RMSprop(lr=0.01),
    "Adam (lr 0.01)": lambda: nc.optim.Adam(lr=0.01),
}
fig, axes = plt.subplots(1, 2, figsize=(12, 4.3), sharey=True)
for ax, (title, data) in zip(axes, [("features on scales 1 and 100", X_bad),
                                    ("standardised features", X_std)]):
    histories = {}
    for name, make in optimizers.items():
        net = nc.Network([nc.Dense(2, 16, activation="tanh"),
                          nc.Dense(16, 16, activation="tanh"), nc.Dense(16, 2)],
                         loss="cross_entropy", seed=0)
        try:
            histories[name] = net.fit(data, y, optimizer=make(), batch_size=32, epochs=EPOCHS,
                                      progress=False, seed=0)
        except nc.DivergenceError as exc:
            print(f"{title}: {name} diverged ({exc})")
            continue
        h = histories[name].history
        print(f"{title:>28}: {name:<18} final loss {h['loss'][-1]:.4f}, "
              f"accuracy {h['accuracy'][-1]:.3f}")
    nc.plot.compare(histories, metric="loss", ax=ax, log=True, title=title)
fig.tight_layout()
save(fig, args, "adaptive.png")
