"""
Backpropagation by hand, checked against nncore and against finite differences
==============================================================================

The lecture's delta rule for a network  x -> tanh -> sigmoid -> softmax::

    δ_L = (softmax(s_L) − d) / N                    (output layer, cross-entropy)
    δ_l = (δ_{l+1} W_{l+1}ᵀ) ⊙ f'(s_l)              (hidden layers)
    ∂J/∂W_l = y_{l−1}ᵀ δ_l,   ∂J/∂b_l = Σ_n δ_l     (+ 2λW for an L2 penalty)

We compute this in a few lines of NumPy, compare it with ``net.loss_and_gradient``
and with ``nc.gradcheck`` (central differences), and plot how the
finite-difference error depends on ε: truncation error (∝ ε²) for large ε,
rounding error (∝ 1/ε) for small ε.

From the command line::

    python examples/backprop_gradcheck.py [--fast] [--out DIR]
"""

import numpy as np

from _common import save, setup

import nncore as nc

args, plt = setup(__doc__)
rng = np.random.default_rng(0)
N = 16 if args.fast else 64
X = rng.normal(size=(N, 3))
y = rng.integers(0, 2, size=N)
lam = 1e-3
net = nc.Network([nc.Dense(3, 5, activation="tanh"),
                  nc.Dense(5, 4, activation="sigmoid"),
                  nc.Dense(4, 2)],
                 loss="cross_entropy", regularizer=nc.L2(lam), dtype="float64", seed=1)

# ---- backprop by hand
L1, L2_, L3 = net.layers
s1 = X @ L1.W + L1.b
y1 = np.tanh(s1)
s2 = y1 @ L2_.W + L2_.b
y2 = 1.0 / (1.0 + np.exp(-s2))
s3 = y2 @ L3.W + L3.b
p = np.exp(s3 - s3.max(axis=1, keepdims=True))
p /= p.sum(axis=1, keepdims=True)
D = np.eye(2)[y]
J = -np.mean(np.log(p[np.arange(N), y])) + lam * sum(np.sum(L.W ** 2) for L in net.layers)

d3 = (p - D) / N
d2 = (d3 @ L3.W.T) * y2 * (1 - y2)     # sigmoid' from the output: y(1 − y)
d1 = (d2 @ L2_.W.T) * (1 - y1 ** 2)    # tanh' = 1 − y²
grads = []
for L, inp, d in ((L1, X, d1), (L2_, y1, d2), (L3, y2, d3)):
    grads += [(inp.T @ d + 2 * lam * L.W).ravel(), d.sum(axis=0)]
g_hand = np.concatenate(grads)          # the flat layout: W then b, layer by layer

J_nc, g_nc = net.loss_and_gradient(X, y)
print(f"loss: by hand {J:.12f}, nncore {J_nc:.12f}")
print(f"max |by hand − nncore| gradient: {np.abs(g_hand - g_nc).max():.2e}")
res = nc.gradcheck(net, X, y)
print(res)

# ---- finite-difference error against ε
eps_values = np.logspace(-1, -12, 8 if args.fast else 23)
w0 = net.params.copy()
errors = []
for eps in eps_values:
    num = np.empty_like(w0)
    for i in range(w0.size):
        net.params[:] = w0
        net.params[i] += eps
        jp = net.loss(X, y)
        net.params[i] -= 2 * eps
        jm = net.loss(X, y)
        num[i] = (jp - jm) / (2 * eps)
    net.params[:] = w0
    errors.append(np.abs(num - g_hand).max())

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
ax1.plot(res.numeric, res.analytic, "o", ms=4)
lim = np.abs(res.numeric).max() * 1.1
ax1.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
ax1.set_xlabel("central difference (J(w+ε) − J(w−ε)) / 2ε")
ax1.set_ylabel("backprop")
ax1.set_title(f"{net.n_params} gradients, max rel. error {res.max_rel_error:.1e}")
ax2.loglog(eps_values, errors, "o-")
ax2.set_xlabel("ε")
ax2.set_ylabel("max |numeric − backprop|")
ax2.set_title("truncation (∝ε²) vs rounding (∝1/ε)")
ax2.invert_xaxis()
ax2.grid(True, which="both", alpha=0.3)
fig.tight_layout()
save(fig, args, "backprop_gradcheck.png")
assert np.abs(g_hand - g_nc).max() < 1e-10 and res.max_rel_error < 1e-5
