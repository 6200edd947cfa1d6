"""
Bayesian regularisation (MATLAB trainbr)
========================================

Against an overfitting Levenberg–Marquardt and a grid of L2 penalties, on a
network far too large for its data.

30 noisy samples of ``sin 3x`` (noise sd 0.2) and a 1-40-1 tanh network (121
weights, four per sample). Plain ``LevenbergMarquardt`` drives the training
error towards the noise and wiggles between the points; ``L2(lam)`` with LM
needs ``lam`` tuned (here on the true function, which a real user does not
have); ``BayesianRegularization`` re-estimates its own penalty every iteration
(MacKay's ``alpha``, ``beta``) and reports ``gamma``, the effective number of
parameters it uses, which settles far below 121. The test error is measured
against the noise-free ``sin 3x`` on 400 points; five noise draws, medians.

From the command line::

    python examples/bayesian_regularization.py [--fast] [--out DIR]
"""

import numpy as np

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
EPOCHS = 30 if args.fast else 300
DRAWS = 1 if args.fast else 5
STRENGTHS = [1e-4, 1e-2] if args.fast else [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
HIDDEN = 40

nc.get_backend()
x_test = np.linspace(-1, 1, 400)[:, None]
y_test = np.sin(3 * x_test)


def draw(seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (30, 1))
    return x, np.sin(3 * x) + 0.2 * rng.normal(size=x.shape)


def train(x, y, optimizer, regularizer=None):
    net = nc.Network([nc.Dense(1, HIDDEN, activation="tanh"), nc.Dense(HIDDEN, 1)],
                     loss="mse", regularizer=regularizer, dtype="float64", seed=1)
    hist = net.fit(x, y, optimizer=optimizer, epochs=EPOCHS, progress=False)
    return net, hist.history


def test_mse(net):
    return float(np.mean((net.forward(x_test) - y_test) ** 2))


def lm():
    return nc.optim.LevenbergMarquardt(gtol=0.0, ftol=0.0)


scores = {"BR": [], "LM": [], **{s: [] for s in STRENGTHS}}
for seed in range(DRAWS):
    x, y = draw(seed)
    br, br_hist = train(x, y, nc.optim.BayesianRegularization())
    plain, plain_hist = train(x, y, lm())
    scores["BR"].append(test_mse(br))
    scores["LM"].append(test_mse(plain))
    l2_nets = {}
    for s in STRENGTHS:
        l2_nets[s], _ = train(x, y, lm(), nc.L2(s))
        scores[s].append(test_mse(l2_nets[s]))
    if seed == 0:                     # the pictures show the first draw
        shown = (x, y, br, br_hist, plain, plain_hist, l2_nets)

median = {k: float(np.median(v)) for k, v in scores.items()}
best = min(STRENGTHS, key=median.get)
n_params = shown[2].n_params
print(f"1-{HIDDEN}-1 tanh ({n_params} weights), 30 noisy points, {EPOCHS} iterations, "
      f"median test mse over {DRAWS} draw(s):")
print(f"  Bayesian regularisation  {median['BR']:.4f}   (gamma {shown[3]['gamma'][-1]:.1f} "
      f"of {n_params} on the first draw)")
print(f"  plain LM                 {median['LM']:.4f}")
for s in STRENGTHS:
    print(f"  LM + L2({s:g}){' ' * (11 - len(f'{s:g}'))}{median[s]:.4f}"
          + ("   <- best of the grid" if s == best else ""))

x, y, br, br_hist, plain, plain_hist, l2_nets = shown
fig, (ax_fit, ax_gamma, ax_grid) = plt.subplots(1, 3, figsize=(17, 4.4))
ax_fit.plot(x_test, y_test, "k--", lw=1, label="sin 3x (truth)")
ax_fit.plot(x, y, "ko", ms=4, label="30 noisy samples")
ax_fit.plot(x_test, plain.forward(x_test), color="C3", label="plain LM (overfits)")
ax_fit.plot(x_test, br.forward(x_test), color="C0", lw=4, alpha=0.6,
            label="Bayesian regularisation")
ax_fit.plot(x_test, l2_nets[best].forward(x_test), color="C2",
            label=f"LM + L2({best:g}), best of grid")
ax_fit.set_ylim(-2, 2)
ax_fit.set_xlabel("x")
ax_fit.legend(fontsize=8)
ax_fit.set_title("fits on the first draw")

iters = np.arange(1, len(br_hist["gamma"]) + 1)
ax_gamma.plot(iters, br_hist["gamma"], color="C0", label="gamma (effective parameters)")
ax_gamma.axhline(n_params, color="k", ls=":", lw=1, label=f"all {n_params} weights")
ax_gamma.set_xlabel("iteration")
ax_gamma.set_ylabel("gamma")
ax_gamma.set_yscale("log")
ax_gamma.legend(fontsize=8)
ax_gamma.set_title("trainbr's effective number of parameters")

ax_grid.semilogx(STRENGTHS, [median[s] for s in STRENGTHS], "o-", color="C2",
                 label="LM + L2(lambda)")
ax_grid.axhline(median["BR"], color="C0", lw=2, label="Bayesian regularisation (no tuning)")
ax_grid.axhline(median["LM"], color="C3", label="plain LM")
ax_grid.set_yscale("log")
ax_grid.set_xlabel("L2 strength lambda")
ax_grid.set_ylabel(f"test mse vs sin 3x (median of {DRAWS})")
ax_grid.legend(fontsize=8)
ax_grid.set_title("generalisation")
fig.suptitle(f"Bayesian regularisation on a 1-{HIDDEN}-1 network and 30 points")
save(fig, args, "bayesian_regularization.png")
