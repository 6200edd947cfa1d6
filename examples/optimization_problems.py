"""
The problems of gradient descent, drawn as optimizer trajectories on 2-D losses
===============================================================================

* a plateau: the gradient is almost zero, plain gradient descent crawls while
  momentum builds up speed and Adam/RMSprop rescale the tiny gradient;
* a poor local minimum next to a deeper one;
* features on very different scales: an elongated least-squares bowl where
  the stable learning rate is set by the steep direction, so plain descent
  zig-zags across it and crawls along it — until the features are standardised
  (momentum and Adam cope; RMSprop at a constant rate keeps jumping around
  the minimum once its running average of g² has decayed);
* a learning rate too small (slow), right, and too large (divergence).

Every optimizer is nncore's own, used on a 2-vector: ``opt.step(w, grad)``.

From the command line::

    python examples/optimization_problems.py [--fast] [--out DIR]
"""

import numpy as np

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
STEPS = 60 if args.fast else 300


# ---- a plateau between two wells (far from both the gradient is ~0)
C1, S1, A1 = np.array([2.0, 2.0]), 1.0, 1.0      # deep minimum, f = 0
C2, S2, A2 = np.array([-2.0, -1.0]), 0.6, 0.55   # shallow minimum


def plateau(w):
    e1 = A1 * np.exp(-np.sum((w - C1) ** 2) / (2 * S1 ** 2))
    e2 = A2 * np.exp(-np.sum((w - C2) ** 2) / (2 * S2 ** 2))
    f = 1.0 - e1 - e2
    g = e1 * (w - C1) / S1 ** 2 + e2 * (w - C2) / S2 ** 2
    return f, g


# ---- a wide bowl (minimum 0 at C1) with a poor local minimum on the way down
C3, S3, A3 = np.array([-1.0, -0.5]), 0.5, 0.5


def dip(w):
    e = A3 * np.exp(-np.sum((w - C3) ** 2) / (2 * S3 ** 2))
    return 0.05 * np.sum((w - C1) ** 2) - e, 0.1 * (w - C1) + e * (w - C3) / S3 ** 2


# ---- least squares on features of scale 1 and 10 (and the same, standardised)
rng = np.random.default_rng(0)
Xraw = rng.normal(size=(200, 2)) * np.array([1.0, 10.0])
w_true = np.array([1.5, 0.15])
d = Xraw @ w_true
Xstd = Xraw / Xraw.std(axis=0)


def least_squares(X):
    H = X.T @ X / len(X)
    b = X.T @ d / len(X)
    w_star = np.linalg.solve(H, b)
    c = d @ d / (2 * len(X))

    def f(w):
        return 0.5 * w @ H @ w - b @ w + c, H @ w - b
    return f, w_star, np.linalg.eigvalsh(H).max()


def run(fun, opt, w0, steps=STEPS):
    w = np.array(w0, dtype=np.float64)
    path, losses = [w.copy()], [fun(w)[0]]
    for _ in range(steps):
        f, g = fun(w)
        opt.step(w, np.asarray(g, dtype=np.float64))
        if not np.all(np.isfinite(w)) or np.abs(w).max() > 1e6:
            break
        path.append(w.copy())
        losses.append(fun(w)[0])
    return np.array(path), np.array(losses)


def optimizers(lr_sgd, lr_adapt):
    return {
        "SGD": nc.optim.SGD(lr=lr_sgd),
        "momentum 0.9": nc.optim.SGD(lr=lr_sgd, momentum=0.9),
        "Nesterov 0.9": nc.optim.SGD(lr=lr_sgd, momentum=0.9, nesterov=True),
        "Adagrad": nc.optim.Adagrad(lr=lr_adapt * 5),
        "RMSprop": nc.optim.RMSprop(lr=lr_adapt),
        "Adam": nc.optim.Adam(lr=lr_adapt),
    }


def contour(ax, fun, lo, hi, levels=25, log=False):
    xs = np.linspace(lo[0], hi[0], 150)
    ys = np.linspace(lo[1], hi[1], 150)
    Z = np.array([[fun(np.array([x, y]))[0] for x in xs] for y in ys])
    if log:
        Z = np.log10(Z - Z.min() + 1e-3)
    ax.contourf(xs, ys, Z, levels=levels, cmap="Greys_r", alpha=0.6)
    ax.contour(xs, ys, Z, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])


def draw_paths(ax, results, title):
    for (name, (path, _)), color in zip(results.items(), plt.cm.tab10.colors):
        ax.plot(path[:, 0], path[:, 1], "-", color=color, lw=1.4, label=name)
        ax.plot(path[-1, 0], path[-1, 1], "o", color=color, ms=4)
    ax.plot(*results[next(iter(results))][0][0], "k*", ms=10)
    ax.set_title(title, fontsize=10)


fig, axes = plt.subplots(2, 3, figsize=(15, 9.5))
summary = {}

# (a) plateau
start = np.array([4.6, -1.2])
res = {k: run(plateau, o, start) for k, o in optimizers(0.5, 0.05).items()}
contour(axes[0, 0], plateau, (-4, -4), (6, 5))
draw_paths(axes[0, 0], res, "plateau (start ★): the gradient is ~1e-4")
summary["plateau"] = {k: v[1][-1] for k, v in res.items()}

# (b) poor local minimum on the way into a bowl
start = np.array([-4.0, -3.0])
res = {k: run(dip, o, start) for k, o in optimizers(0.3, 0.05).items()}
contour(axes[0, 1], dip, (-4.5, -3.5), (4, 4), levels=30)
draw_paths(axes[0, 1], res, "poor local minimum near (−1, −0.5); momentum rolls through")
summary["local minimum"] = {k: v[1][-1] for k, v in res.items()}

# (c) unscaled features: stable lr < 2 / λmax
f_raw, w_raw, lmax = least_squares(Xraw)
lr = 1.0 / lmax
res_raw = {k: run(f_raw, o, [-1.0, 0.6]) for k, o in optimizers(lr, 0.05).items()}
lo = np.minimum(w_raw, [-1.0, 0.6]) - [0.5, 0.3]
hi = np.maximum(w_raw, [-1.0, 0.6]) + [0.5, 0.3]
contour(axes[0, 2], f_raw, lo, hi, log=True)
draw_paths(axes[0, 2], res_raw, f"features of scale 1 and 10 (SGD lr = 1/λmax = {lr:.3f})")
axes[0, 2].plot(*w_raw, "r+", ms=12)

# (d) the same problem with standardised features
f_std, w_std, lmax_s = least_squares(Xstd)
res = {k: run(f_std, o, w_std + [-2.5, 1.5]) for k, o in optimizers(0.5 / lmax_s, 0.05).items()}
contour(axes[1, 0], f_std, w_std - 3, w_std + 3, log=True)
draw_paths(axes[1, 0], res, "standardised features: a round bowl")
axes[1, 0].plot(*w_std, "r+", ms=12)

# (e) learning rates on the bowl f = (w1² + 5 w2²) / 2: stable for lr < 2/5
def bowl(w):
    return 0.5 * (w[0] ** 2 + 5 * w[1] ** 2), np.array([w[0], 5 * w[1]])


lr_cases = {"too small (0.02)": 0.02, "good (0.3)": 0.3, "too large (0.41)": 0.41}
res_lr = {k: run(bowl, nc.optim.SGD(lr=v), [-3.0, 1.5], steps=40) for k, v in lr_cases.items()}
contour(axes[1, 1], bowl, (-4, -3), (4, 3), log=True)
draw_paths(axes[1, 1], res_lr, "SGD, 40 steps: lr too small, right, too large")
axes[1, 1].legend(fontsize=8, loc="upper right")

# (f) loss against steps for (c)
ax = axes[1, 2]
for (name, (_, losses)), color in zip(res_raw.items(), plt.cm.tab10.colors):
    ax.semilogy(losses - f_raw(w_raw)[0] + 1e-16, color=color, label=name)
ax.set_xlabel("step")
ax.set_ylabel("J(w) − J(w*)")
ax.set_title("unscaled features: loss against steps\n(RMSprop at a constant lr never settles)",
             fontsize=10)
ax.legend(fontsize=8)
axes[0, 0].legend(fontsize=8, loc="upper left")
for a in axes.flat[:5]:
    a.set_xlabel("$w_1$")
    a.set_ylabel("$w_2$")
fig.tight_layout()
save(fig, args, "optimization_problems.png")

for problem, finals in summary.items():
    print(f"{problem:>14}: " + ", ".join(f"{k} {v:.3f}" for k, v in finals.items()))
print("unscaled features, final J − J*: " +
      ", ".join(f"{k} {v[1][-1] - f_raw(w_raw)[0]:.2e}" for k, v in res_raw.items()))
