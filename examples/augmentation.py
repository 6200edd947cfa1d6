"""
Data augmentation: more (plausible) training data for free
==========================================================

8x8 handwritten digits (scikit-learn's bundled set; a synthetic stroke
data set when scikit-learn is missing) with only a few training images per
class. Each mini-batch is transformed on the fly by ``nc.augment``, so the
network sees a slightly different image every epoch:

* Gaussian pixel noise regularises: a better validation loss and accuracy;
* random shifts by up to one pixel teach invariance: on the (centred)
  validation images they cost a little, but on validation images that are
  themselves shifted the augmented network is far better — augmentation
  encodes what variations the model should ignore.

From the command line::

    python examples/augmentation.py [--fast] [--out DIR]
"""

import numpy as np

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
EPOCHS = 15 if args.fast else 300


def synthetic_strokes(n, rng):
    """Fallback: 8x8 images of 4 stroke shapes at random positions."""
    X = np.zeros((n, 8, 8))
    y = rng.integers(0, 4, n)
    for i in range(n):
        r, c = rng.integers(1, 6, 2)
        if y[i] == 0:
            X[i, r, 1:7] = 1            # horizontal bar
        elif y[i] == 1:
            X[i, 1:7, c] = 1            # vertical bar
        elif y[i] == 2:
            X[i, np.arange(1, 7), np.arange(1, 7)] = 1  # diagonal
        else:
            X[i, r, 1:7] = 1
            X[i, 1:7, c] = 1            # cross
    return X.reshape(n, 64) + 0.05 * rng.normal(size=(n, 64)), y


rng = np.random.default_rng(0)
try:
    from sklearn.datasets import load_digits
    digits = load_digits()
    X, y = digits.data / 16.0, digits.target
    source = "digits"
except ImportError:
    X, y = synthetic_strokes(1200, rng)
    source = "synthetic strokes"
perm = rng.permutation(len(X))
n_train = 100 if args.fast else 200
tr, va = perm[:n_train], perm[n_train:]
if args.fast:
    va = va[:400]

Xv = X[va]
Xv_shifted = nc.augment.RandomShift((8, 8), 1)(Xv, np.random.default_rng(123))
n_classes = 10 if source == "digits" else 4
variants = {
    "no augmentation": None,
    "noise (std 0.2)": nc.augment.GaussianNoise(0.2),
    "shift ±1 px + noise": nc.augment.Compose([nc.augment.RandomShift((8, 8), 1),
                                               nc.augment.GaussianNoise(0.2)]),
}
histories, scores = {}, {}
for name, aug in variants.items():
    net = nc.Network([nc.Dense(64, 128, activation="relu"), nc.Dense(128, n_classes)],
                     loss="cross_entropy", seed=0)
    histories[name] = net.fit(X[tr], y[tr], optimizer=nc.optim.Adam(1e-3), batch_size=32,
                              epochs=EPOCHS, validation_data=(Xv, y[va]), augment=aug,
                              progress=False, seed=0)
    scores[name] = (np.mean(net.predict(Xv) == y[va]),
                    np.mean(net.predict(Xv_shifted) == y[va]))
    print(f"{source}, {n_train} training images, {name:>20}: validation accuracy "
          f"{scores[name][0]:.3f}, on shifted validation images {scores[name][1]:.3f}")

fig = plt.figure(figsize=(14, 4.2))
gs = fig.add_gridspec(2, 6)
ax = fig.add_subplot(gs[:, :2])
nc.plot.compare(histories, metric="val_loss", ax=ax, title="validation loss")
ax = fig.add_subplot(gs[:, 2:4])
names = list(scores)
pos = np.arange(len(names))
ax.bar(pos - 0.2, [scores[k][0] for k in names], 0.4, label="validation images")
ax.bar(pos + 0.2, [scores[k][1] for k in names], 0.4, label="shifted by up to 1 px")
ax.set_xticks(pos)
ax.set_xticklabels(names, fontsize=8)
ax.set_ylim(0.0, 1.15)
ax.set_title("accuracy after training")
ax.legend(fontsize=8, loc="upper left")
augment = variants["shift ±1 px + noise"]
samples = augment(np.repeat(X[tr[:1]], 4, axis=0), np.random.default_rng(1))
for k in range(4):
    a = fig.add_subplot(gs[k // 2, 4 + k % 2])
    a.imshow((X[tr[0]] if k == 0 else samples[k]).reshape(8, 8), cmap="gray_r")
    a.set_title("original" if k == 0 else "augmented", fontsize=9)
    a.axis("off")
fig.tight_layout()
save(fig, args, "augmentation.png")
