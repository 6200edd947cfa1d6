"""
The three batch modes: full-batch, mini-batch and stochastic gradient descent
=============================================================================

Same network, same plain SGD, same number of epochs (passes over the data):
full-batch takes one exact step per epoch, mini-batches of 32 take N/32
noisy steps, stochastic (batch size 1) takes N very noisy ones. Plotted
against epochs and against wall-clock time.

From the command line::

    python examples/batch_modes.py [--fast] [--out DIR]
"""

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
EPOCHS = 8 if args.fast else 60

X, y = nc.datasets.moons(n=200 if args.fast else 600, noise=0.15, seed=0)
mu, sd = X.mean(0), X.std(0)
Xv, yv = nc.datasets.moons(n=400, noise=0.15, seed=1)
X, Xv = (X - mu) / sd, (Xv - mu) / sd

modes = {"full batch (lr 0.5)": ("full", 0.5), "mini-batch 32 (lr 0.1)": (32, 0.1),
         "stochastic, batch 1 (lr 0.01)": (1, 0.01)}
histories = {}
for name, (batch, lr) in modes.items():
    net = nc.Network([nc.Dense(2, 32, activation="tanh"), nc.Dense(32, 32, activation="tanh"),
                      nc.Dense(32, 2)], loss="cross_entropy", seed=0)
    histories[name] = net.fit(X, y, optimizer=nc.optim.SGD(lr=lr), batch_size=batch,
                              epochs=EPOCHS, validation_data=(Xv, yv), progress=False, seed=0)
    h = histories[name].history
    steps = {"full": 1, 32: -(-len(X) // 32), 1: len(X)}[batch]
    print(f"{name:>30}: {steps:4d} steps/epoch, final loss {h['loss'][-1]:.4f}, "
          f"val accuracy {h['val_accuracy'][-1]:.3f}, {h['time'][-1]:.2f} s")

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
nc.plot.compare(histories, x="epoch", metric="loss", ax=axes[0], log=True,
                title="training loss per epoch")
nc.plot.compare(histories, x="time", metric="loss", ax=axes[1], log=True,
                title="training loss against time")
nc.plot.compare(histories, x="epoch", metric="val_accuracy", ax=axes[2],
                title="validation accuracy")
fig.tight_layout()
save(fig, args, "batch_modes.png")
