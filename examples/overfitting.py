"""
Over-fitting, seen in the training and validation curves — and three cures
==========================================================================

A wide network fits 20 noisy samples of sin(x): the training loss keeps
falling while the validation loss turns up. An L2 penalty, dropout and early
stopping (which keeps the weights of the best validation epoch) each close
the gap.

From the command line::

    python examples/overfitting.py [--fast] [--out DIR]
"""

import numpy as np

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
EPOCHS = 150 if args.fast else 3000

rng = np.random.default_rng(3)
x_tr = rng.uniform(-3, 3, size=(20, 1))
y_tr = np.sin(x_tr[:, 0]) + 0.25 * rng.normal(size=20)
x_va = rng.uniform(-3, 3, size=(300, 1))
y_va = np.sin(x_va[:, 0]) + 0.25 * rng.normal(size=300)


def make(regularizer=None, dropout=0.0):
    layers = [nc.Dense(1, 128, activation="tanh")]
    if dropout:
        layers.append(nc.Dropout(dropout))
    layers += [nc.Dense(128, 128, activation="tanh")]
    if dropout:
        layers.append(nc.Dropout(dropout))
    layers += [nc.Dense(128, 1)]
    return nc.Network(layers, loss="mse", regularizer=regularizer, dtype="float64", seed=0)


runs = {
    "no regularisation": (make(), []),
    "L2 (λ = 1e-3)": (make(nc.L2(1e-3)), []),
    "dropout 0.2": (make(dropout=0.2), []),
    "early stopping": (make(), [nc.callbacks.EarlyStopping(patience=EPOCHS // 10)]),
}
histories = {}
for name, (net, callbacks) in runs.items():
    histories[name] = net.fit(x_tr, y_tr, optimizer=nc.optim.Adam(3e-3), batch_size="full",
                              epochs=EPOCHS, validation_data=(x_va, y_va),
                              callbacks=callbacks, progress=False, seed=0)
    h = histories[name].history
    print(f"{name:>18}: {len(h['loss']):5d} epochs, train {h['loss'][-1]:.4f}, "
          f"final val {h['val_loss'][-1]:.4f}, best val {min(h['val_loss']):.4f}, "
          f"val of the returned net {net.loss(x_va, y_va):.4f}")

fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
nc.plot.plot_history(histories["no regularisation"], ax=axes[0], log_loss=True)
axes[0].set_title("no regularisation: the curves part")
nc.plot.compare(histories, metric="val_loss", ax=axes[1], log=True,
                title="validation loss")
grid = np.linspace(-3.3, 3.3, 300).reshape(-1, 1)
axes[2].plot(grid, np.sin(grid), "k--", lw=1, label="sin(x)")
for name, (net, _) in runs.items():
    axes[2].plot(grid, net.predict(grid), label=name)
axes[2].plot(x_tr, y_tr, "ko", ms=4, label="training data")
axes[2].set_ylim(-2, 2)
axes[2].set_title("the fitted functions")
axes[2].legend(fontsize=8)
fig.tight_layout()
save(fig, args, "overfitting.png")
