"""
Dropout: randomly silencing hidden units while training
=======================================================

A big network on few noisy points of two half moons. Without dropout the
decision boundary wraps around individual noisy points and the validation
loss climbs; with inverted dropout (units zeroed with probability ``rate``,
survivors scaled by ``1/(1 − rate)``, identity at test time) it stays smooth.

From the command line::

    python examples/dropout.py [--fast] [--out DIR]
"""

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
EPOCHS = 30 if args.fast else 300

X, y = nc.datasets.moons(n=60, noise=0.3, seed=2)
Xv, yv = nc.datasets.moons(n=600, noise=0.3, seed=3)
mu, sd = X.mean(0), X.std(0)
X, Xv = (X - mu) / sd, (Xv - mu) / sd

rates = [0.0, 0.2, 0.5]
nets, histories = {}, {}
for rate in rates:
    layers = [nc.Dense(2, 128, activation="relu")]
    if rate:
        layers.append(nc.Dropout(rate))
    layers.append(nc.Dense(128, 128, activation="relu"))
    if rate:
        layers.append(nc.Dropout(rate))
    layers.append(nc.Dense(128, 2))
    net = nc.Network(layers, loss="cross_entropy", seed=0)
    name = f"dropout {rate}"
    histories[name] = net.fit(X, y, optimizer=nc.optim.Adam(3e-3), batch_size=32, epochs=EPOCHS,
                              validation_data=(Xv, yv), progress=False, seed=0)
    nets[name] = net
    h = histories[name].history
    print(f"{name}: train loss {h['loss'][-1]:.3f}, validation loss {h['val_loss'][-1]:.3f}, "
          f"validation accuracy {h['val_accuracy'][-1]:.3f}")

fig, axes = plt.subplots(1, 4, figsize=(19, 4))
nc.plot.compare(histories, metric="val_loss", ax=axes[0], title="validation loss")
for ax, (name, net) in zip(axes[1:], nets.items()):
    nc.plot.decision_boundary(net, X, y, ax=ax, resolution=60 if args.fast else 150,
                              title=name)
fig.tight_layout()
save(fig, args, "dropout.png")
