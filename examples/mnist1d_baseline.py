"""
MNIST-1D (Greydanus 2020): the paper's MLP baseline
===================================================

A residual 40-100-100-10 network, trained as the paper's code trains it; test
accuracy against the paper's table.

Data: the ``mnist1d`` package's ``make_dataset`` with its default arguments
(4000 training and 1000 test signals of length 40; generated locally, nothing is
downloaded; it equals the frozen data set the paper used). Network: the paper's
``MLPBase``, ``h = relu(x W1 + b1); h = h + relu(h W2 + b2); out = h W3 + b3``,
i.e. ``Dense(40, 100, relu), Residual(Dense(100, 100, relu)), Dense(100, 10)``,
initialised as PyTorch's ``nn.Linear`` (weights and biases uniform in
``+-1/sqrt(fan_in)``). Training: the paper's ``train.py`` and notebook
(``get_model_args``: Adam, learning rate 1e-2, no weight decay, batches of 100
taken in order, 6000 steps = 150 epochs), softmax cross-entropy, float32.
The paper's README table gives the MLP 68 % test accuracy.

Measured: test accuracy after 6000 steps 63.0 % with seed 42, 63.0–66.0 %
(median 64.9 %) over seeds 42, 0–4 (``--seeds 42,0,1,2,3,4``); the paper's own
PyTorch code run on the same data and seeds gave 63.6–67.5 % (median 64.5 %).

Full size runs in about a minute (generating the data takes about half of it),
plus about 25 s per extra seed; ``--fast`` uses 1000 signals and 300 steps.

From the command line::

    pip install "nncore-train[examples]"
    python examples/mnist1d_baseline.py [--fast] [--out DIR] [--seeds 42,0,1,2,3,4]
"""

import time

import numpy as np

from _common import save, setup

import nncore as nc

PAPER_MLP_TEST_ACCURACY = 0.68   # README of github.com/greydanus/mnist1d, "MNIST-1D" row
BATCH, LR, STEPS = 100, 1e-2, 6000


def _arguments(parser):
    parser.add_argument("--seeds", default="42", metavar="S[,S...]",
                        help="initialisation seeds; the figure shows the first (default 42, "
                             "the paper's)")


args, plt = setup(__doc__, _arguments)
SEEDS = [int(s) for s in args.seeds.split(",")]
try:
    from mnist1d.data import get_dataset_args, make_dataset
except ImportError:
    raise SystemExit("this example needs the mnist1d package: pip install mnist1d "
                     '(or pip install "nncore-train[examples]")') from None

t0 = time.perf_counter()
data_args = get_dataset_args()
if args.fast:
    data_args.num_samples = 1000
data = make_dataset(data_args)         # procedural generation; no download
X, y, X_test, y_test = data["x"], data["y"], data["x_test"], data["y_test"]
print(f"data: {X.shape[0]} training and {X_test.shape[0]} test signals of length "
      f"{X.shape[1]}, generated in {time.perf_counter() - t0:.1f} s")


def train(seed):
    """The paper's MLPBase, initialised as torch.nn.Linear, trained as its train.py."""
    net = nc.Network([nc.Dense(40, 100, activation="relu"),
                      nc.Residual(nc.Dense(100, 100, activation="relu")),
                      nc.Dense(100, 10)], loss="cross_entropy", dtype="float32", seed=seed)
    rng = np.random.default_rng(seed)
    for layer in (net.layers[0], net.layers[1].layer, net.layers[2]):
        bound = 1.0 / np.sqrt(layer.n_in)      # torch.nn.Linear's default initialisation
        layer.W[...] = rng.uniform(-bound, bound, layer.W.shape)
        layer.b[...] = rng.uniform(-bound, bound, layer.b.shape)
    start = time.perf_counter()
    hist = net.fit(X, y, optimizer=nc.optim.Adam(lr=LR), batch_size=BATCH, epochs=epochs,
                   shuffle=False, test_data=(X_test, y_test), progress=False, seed=seed)
    test_acc = net.evaluate(X_test, y_test)["accuracy"]
    print(f"seed {seed}: {n_steps} Adam steps in {time.perf_counter() - start:.1f} s; "
          f"train accuracy {hist['accuracy'][-1]:.1%}, test accuracy {test_acc:.1%} "
          f"(paper's MLP: {PAPER_MLP_TEST_ACCURACY:.0%})")
    return hist, test_acc


epochs = (300 if args.fast else STEPS) * BATCH // X.shape[0]
n_steps = epochs * -(-X.shape[0] // BATCH)
runs = [train(seed) for seed in SEEDS]
hist = runs[0][0]
if len(runs) > 1:
    accs = [acc for _, acc in runs]
    print(f"test accuracy over seeds {SEEDS}: median {np.median(accs):.1%}, "
          f"range {min(accs):.1%} - {max(accs):.1%}")

fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
step_axis = np.arange(1, epochs + 1) * (n_steps // epochs)
ax_loss.plot(step_axis, hist["loss"], label="train (mean over the epoch)")
ax_loss.plot(step_axis, hist["test_loss"], label="test")
ax_loss.set_xlabel("Adam steps")
ax_loss.set_ylabel("cross-entropy")
ax_loss.legend()
ax_acc.plot(step_axis, hist["accuracy"], label="train")
ax_acc.plot(step_axis, hist["test_accuracy"], label="test")
ax_acc.axhline(PAPER_MLP_TEST_ACCURACY, color="k", ls="--", lw=0.8,
               label="paper's MLP test accuracy (68 %)")
ax_acc.set_xlabel("Adam steps")
ax_acc.set_ylabel("accuracy")
ax_acc.legend()
fig.suptitle(f"MNIST-1D, residual MLP 40-100-100-10 (Greydanus 2020 baseline), seed {SEEDS[0]}")
save(fig, args, "mnist1d.png")
