"""
Levenberg–Marquardt on MATLAB's sine fit
========================================

Against first-order and quasi-Newton methods: loss against iterations, against
loss evaluations and against wall time.

The 1-5-1 tanh network of MATLAB's ``trainlm`` examples (40 points of
``sin x`` on [-pi, pi], mse, float64), trained from the same initial weights
by ``LevenbergMarquardt`` (exact Jacobian by the R-operator, ``JᵀJ`` by SYRK,
Cholesky), ``BFGS``, ``LBFGS``, ``ConjugateGradient``, ``NewtonCG`` and full-batch
``Adam``. The dashed line is MATLAB's goal ``mean((out - d)^2) <= 0.002``.
A second panel shows LM's damping ``mu`` per iteration (``history["mu"]``).

From the command line::

    python examples/levenberg_marquardt.py [--fast] [--out DIR]
"""

import numpy as np

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
EPOCHS = 40 if args.fast else 400

nc.get_backend()   # load the compiled kernels now, so no curve pays for the import
x = np.linspace(-np.pi, np.pi, 40)[:, None]
y = np.sin(x)
METHODS = {
    "Levenberg-Marquardt": lambda: nc.optim.LevenbergMarquardt(),
    "BFGS": lambda: nc.optim.BFGS(),
    "L-BFGS": lambda: nc.optim.LBFGS(),
    "CG (Polak-Ribiere)": lambda: nc.optim.ConjugateGradient(),
    "NewtonCG (Gauss-Newton)": lambda: nc.optim.NewtonCG(),
    "Adam (full batch)": lambda: nc.optim.Adam(0.01),
}

fig, (ax_it, ax_ev, ax_t, ax_mu) = plt.subplots(1, 4, figsize=(19, 4.2))
for name, make in METHODS.items():
    net = nc.Network([nc.Dense(1, 5, activation="tanh"), nc.Dense(5, 1)], loss="mse",
                     dtype="float64", seed=3)
    opt = make()
    hist = net.fit(x, y, optimizer=opt, batch_size="full", epochs=EPOCHS, shuffle=False,
                   progress=False)
    h = hist.history
    mse = 2.0 * np.asarray(h["loss"])            # MATLAB's mse = 2 x nncore's 1/(2N) loss
    iters = np.arange(1, len(mse) + 1)
    evals = np.asarray(h["nfev"]) if "nfev" in h else iters
    ax_it.semilogy(iters, mse, label=name)
    ax_ev.semilogy(evals, mse, label=name)
    ax_t.semilogy(h["time"], mse, label=name)
    if "mu" in h:
        ax_mu.semilogy(iters, h["mu"], color="C0")
    reached = np.nonzero(mse <= 0.002)[0]
    when = f"epoch {reached[0] + 1}, {h['time'][reached[0]]:.3f} s" if reached.size else "not reached"
    print(f"{name:<26} final mse {mse[-1]:.2e}; goal: {when}")
for ax, label in ((ax_it, "iteration (epoch)"), (ax_ev, "loss evaluations"),
                  (ax_t, "seconds")):
    ax.axhline(0.002, color="k", ls="--", lw=0.8)
    ax.set_xlabel(label)
    ax.set_ylabel("mean squared error")
ax_t.set_xscale("log")
ax_it.legend(fontsize=8)
ax_mu.set_xlabel("iteration")
ax_mu.set_ylabel("Levenberg-Marquardt mu")
fig.suptitle("1-5-1 tanh sine fit (MATLAB trainlm example)")
save(fig, args, "levenberg_marquardt.png")
