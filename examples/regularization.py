"""
L1, L2 and elastic-net penalties: what they do to the weights
=============================================================

A linear model (one Dense layer) on 30 features of which only 4 matter, with
few samples. Without a penalty every weight picks up noise; L2 (``λ Σ w²``)
shrinks all weights smoothly; L1 (``λ Σ |w|``) drives the irrelevant ones to
(nearly) zero — sparsity; the elastic net mixes both. Trained full-batch with
plain gradient descent, so L1's subgradient leaves the zero weights
hovering within ``lr·λ`` of zero.

From the command line::

    python examples/regularization.py [--fast] [--out DIR]
"""

import numpy as np

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
EPOCHS = 300 if args.fast else 3000

rng = np.random.default_rng(0)
n, p = 40, 30
w_true = np.zeros(p)
w_true[[0, 5, 11, 20]] = [2.0, -1.5, 1.0, 0.8]
X = rng.normal(size=(n, p))
y = X @ w_true + 0.3 * rng.normal(size=n)
Xv = rng.normal(size=(500, p))
yv = Xv @ w_true + 0.3 * rng.normal(size=500)

penalties = {"none": None, "L2 (0.01)": nc.L2(0.01), "L1 (0.02)": nc.L1(0.02),
             "elastic net (0.01, 0.005)": nc.ElasticNet(0.01, 0.005)}
fig, axes = plt.subplots(1, 2, figsize=(13, 4.3), gridspec_kw={"width_ratios": [2, 1]})
width = 0.2
for k, (name, reg) in enumerate(penalties.items()):
    net = nc.Network([nc.Dense(p, 1)], loss="mse", regularizer=reg, dtype="float64", seed=0)
    hist = net.fit(X, y, optimizer=nc.optim.SGD(lr=0.05), batch_size="full", epochs=EPOCHS,
                   validation_data=(Xv, yv), progress=False)
    w = net.layers[0].W[:, 0]
    # val_loss includes the penalty; compare the models on the data term alone
    val_mse = 0.5 * np.mean((net.predict(Xv) - yv) ** 2)
    small = np.sum(np.abs(w) < 0.01)
    print(f"{name:>24}: |w| < 0.01 for {small:2d} of {p} weights, "
          f"error on the 26 irrelevant ones {np.abs(w[w_true == 0]).max():.3f}, "
          f"validation data loss {val_mse:.4f}")
    axes[0].bar(np.arange(p) + (k - 1.5) * width, w, width, label=name)
    axes[1].bar(k, val_mse, label=name)
axes[0].plot(np.arange(p), w_true, "k_", ms=12, mew=2, label="true weights")
axes[0].set_xlabel("input feature")
axes[0].set_ylabel("learned weight")
axes[0].set_title("weights of a linear model (4 of 30 features matter)")
axes[0].legend(fontsize=8, ncol=2)
axes[1].set_xticks(range(len(penalties)))
axes[1].set_xticklabels(list(penalties), rotation=20, fontsize=8)
axes[1].set_title("validation loss (data term, no penalty)")
fig.tight_layout()
save(fig, args, "regularization.png")
