"""
Plain SGD vs momentum vs Nesterov momentum
==========================================

Left: trajectories on an ill-conditioned, rotated quadratic (a ravine) —
plain SGD crawls along the valley floor, heavy-ball momentum builds up
speed but overshoots, Nesterov's look-ahead damps the overshoot.
Right: training a network on two spirals with the same learning rate.

The lecture's classic momentum ``Δw = αΔw − η g; w += Δw`` is
``nc.optim.SGD(lr=η, momentum=α)`` (identical at a constant rate).

From the command line::

    python examples/momentum_nesterov.py [--fast] [--out DIR]
"""

import numpy as np

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
EPOCHS = 15 if args.fast else 200

# ---- a ravine: eigenvalues 1 and 50, rotated by 30 degrees
th = np.pi / 6
R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
H = R @ np.diag([1.0, 50.0]) @ R.T


def f(w):
    return 0.5 * w @ H @ w, H @ w


lr = 0.018  # below 2/50
opts = {"SGD": nc.optim.SGD(lr=lr), "momentum 0.9": nc.optim.SGD(lr=lr, momentum=0.9),
        "Nesterov 0.9": nc.optim.SGD(lr=lr, momentum=0.9, nesterov=True)}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
xs = np.linspace(-4.5, 4.5, 200)
ys = np.linspace(-3, 3, 200)
Z = np.array([[f(np.array([a, b]))[0] for a in xs] for b in ys])
ax1.contour(xs, ys, np.log(Z + 1e-3), levels=20, colors="grey", linewidths=0.5)
for (name, opt), c in zip(opts.items(), ["tab:blue", "tab:orange", "tab:green"]):
    w = np.array([-4.0, 1.5])
    path = [w.copy()]
    for _ in range(60):
        opt.step(w, f(w)[1])
        path.append(w.copy())
    path = np.array(path)
    ax1.plot(path[:, 0], path[:, 1], ".-", color=c, ms=3, lw=1, label=f"{name}: J = {f(w)[0]:.1e}")
    print(f"{name:>13}: loss after 60 steps {f(w)[0]:.2e}")
ax1.plot(0, 0, "r+", ms=12)
ax1.set_title("60 steps on a ravine (λ = 1 and 50, lr = 0.018)")
ax1.legend(fontsize=8)

X, y = nc.datasets.spirals(n=200 if args.fast else 400, noise=0.1, seed=0)
histories = {}
for name, kw in {"SGD": {}, "momentum 0.9": {"momentum": 0.9},
                 "Nesterov 0.9": {"momentum": 0.9, "nesterov": True}}.items():
    net = nc.Network([nc.Dense(2, 32, activation="tanh"), nc.Dense(32, 32, activation="tanh"),
                      nc.Dense(32, 2)], loss="cross_entropy", seed=0)
    histories[name] = net.fit(X, y, optimizer=nc.optim.SGD(lr=0.01, **kw), batch_size=32,
                              epochs=EPOCHS, progress=False, seed=0)
    print(f"{name:>13}: spirals training accuracy {histories[name].history['accuracy'][-1]:.3f}")
nc.plot.compare(histories, metric="loss", ax=ax2, title="two spirals, SGD lr = 0.01, batch 32")
fig.tight_layout()
save(fig, args, "momentum_nesterov.png")
