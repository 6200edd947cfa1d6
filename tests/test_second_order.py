"""Levenberg–Marquardt, Bayesian regularisation, exact Newton and NewtonCG."""

import math

import numpy as np
import pytest
from scipy.linalg import cho_factor, cho_solve

import nncore as nc
from nncore.curvature import Curvature
from nncore.optim import BayesianRegularization, LevenbergMarquardt, Newton, NewtonCG


def sine_data(n=40):
    x = np.linspace(-np.pi, np.pi, n)[:, None]
    return x, np.sin(x)


def sine_net(seed, dtype="float64", regularizer=None):
    return nc.Network([nc.Dense(1, 5, activation="tanh"), nc.Dense(5, 1)], loss="mse",
                      regularizer=regularizer, dtype=dtype, seed=seed)


def network_fun(net, X, y):
    """The objective fit builds: (loss, gradient) at x, with the exact curvature."""
    Xc, T = net._check_X(X), net._check_y(y, len(X))

    def fun(x):
        net.params[:] = x
        return net.loss_and_gradient(X, y)

    fun.curvature = Curvature(net, Xc, T)
    return fun


def matlab_mse(net, X, y):
    return float(np.mean((net.forward(X) - y) ** 2))


def lm_transcription(net, X, y, w, mu, iters, l2=0.0):
    """trainlm's loop written out on the whole Jacobian: e = out - d,
    dw = -(JᵀJ + mu I)⁻¹ Jᵀe by Cholesky, mu *= 0.1 on success, *= 10 otherwise."""
    N, n = len(X), w.size
    mask = Curvature(net, net._check_X(X), net._check_y(y, N)).weight_mask
    mus = []
    for _ in range(iters):
        net.params[:] = w
        J = net.jacobian(X)
        e = (net.forward(X) - y).ravel()
        JJ = J.T @ J + np.diag(2 * N * l2 * mask)
        je = J.T @ e + N * 2 * l2 * mask * w
        f = net.loss(X, y)
        while mu <= 1e10:
            dw = -cho_solve(cho_factor(JJ + mu * np.eye(n)), je)
            net.params[:] = w + dw
            if net.loss(X, y) < f:
                w = w + dw
                mu = max(mu * 0.1, 1e-20)
                break
            mu *= 10.0
        mus.append(mu)
    return w, mus


@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_lm_equals_numpy_transcription(l2):
    X, y = sine_data()
    y = y + 0.05 * np.random.default_rng(0).normal(size=y.shape)
    net = sine_net(3, regularizer=nc.L2(l2) if l2 else None)
    w0 = net.params.copy()
    opt = LevenbergMarquardt(gtol=0.0, ftol=0.0)
    fun = network_fun(net, X, y)
    x, (f, g) = w0.copy(), fun(w0)
    mus = []
    for _ in range(12):
        x, f, g, info = opt.iterate(fun, x, f, g)
        mus.append(info["log"]["mu"])
    w_ref, mus_ref = lm_transcription(sine_net(3, regularizer=nc.L2(l2) if l2 else None),
                                      X, y, w0.copy(), 1e-3, 12, l2)
    np.testing.assert_allclose(x, w_ref, rtol=1e-10, atol=1e-10 * np.abs(w_ref).max())
    np.testing.assert_allclose(mus, mus_ref, rtol=1e-12)


def test_lm_reaches_the_matlab_sine_goal_over_seeds():
    X, y = sine_data()
    reached = 0
    for seed in range(6):
        net = sine_net(seed)
        net.fit(X, y, optimizer="lm", epochs=200, progress=False)
        reached += matlab_mse(net, X, y) <= 0.002
    assert reached >= 5


def test_lm_float32_network_and_history():
    X, y = sine_data()
    net = sine_net(3, dtype="float32")
    hist = net.fit(X, y, optimizer=LevenbergMarquardt(), epochs=200, progress=False)
    assert hist.history["mu"][-1] > 0
    assert matlab_mse(net, X, y) <= 0.002
    losses = hist.history["loss"]
    assert all(b < a for a, b in zip(losses, losses[1:]))   # every accepted step lowers it


def test_lm_cross_entropy_uses_generalised_gauss_newton():
    """On softmax regression (convex) LM converges to the optimum BFGS finds."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X @ rng.normal(size=(3, 3))).argmax(axis=1)
    def net():
        return nc.Network([nc.Dense(3, 3)], loss="cross_entropy", regularizer=nc.L2(1e-2),
                          dtype="float64", seed=0)
    a, b = net(), net()
    a.fit(X, y, optimizer="lm", epochs=50, progress=False)
    b.fit(X, y, optimizer=nc.optim.BFGS(gtol=1e-10), epochs=200, progress=False)
    assert a.loss(X, y) == pytest.approx(b.loss(X, y), rel=1e-8)


def test_lm_bad_input_changes_nothing():
    X, y = sine_data()
    net = sine_net(0)
    before = net.params.copy()
    with pytest.raises(ValueError, match="NewtonCG"):
        net.fit(X, y, optimizer=LevenbergMarquardt(max_params=10), epochs=2, progress=False)
    np.testing.assert_array_equal(net.params, before)
    with pytest.raises(ValueError, match="curvature"):   # a bare function has no network
        fun = lambda x: (float(x @ x), 2 * x)            # noqa: E731
        LevenbergMarquardt().iterate(fun, np.ones(3), 3.0, 2 * np.ones(3))
    for bad in (dict(mu=0.0), dict(mu_dec=1.5), dict(mu_inc=0.5), dict(mu_max=1e-4)):
        with pytest.raises(ValueError):
            LevenbergMarquardt(**bad)


def test_non_finite_curvature_is_an_error_and_changes_nothing(monkeypatch):
    X, y = sine_data()
    net = sine_net(0)
    before = net.params.copy()
    monkeypatch.setattr(Curvature, "gauss_newton_sum",
                        lambda self, x: np.full((self.n, self.n), np.nan))
    with pytest.raises(ValueError, match="not finite"):
        net.fit(X, y, optimizer="lm", epochs=2, progress=False)
    np.testing.assert_array_equal(net.params, before)


def test_names_resolve():
    assert isinstance(nc.optim.get("lm"), LevenbergMarquardt)
    assert isinstance(nc.optim.get("br"), BayesianRegularization)
    assert isinstance(nc.optim.get("newton-cg"), NewtonCG)
    assert nc.optim.get("newton-cg", curvature="hessian").curvature == "hessian"


# --------------------------------------------------------------------------- Newton


def test_newton_exact_uses_the_r_operator_hessian():
    X, y = sine_data()
    net = sine_net(2)
    fun = network_fun(net, X, y)
    x = net.params.copy()
    H = Newton().hessian(fun, x)
    np.testing.assert_allclose(H, net.hessian(X, y), rtol=0, atol=1e-13 * np.abs(H).max())
    H_fd = Newton(hessian="fd").hessian(fun, x)
    np.testing.assert_allclose(H_fd, H, rtol=0, atol=1e-5 * np.abs(H).max())
    f, g = fun(x)
    _, _, _, info = Newton().iterate(fun, x, f, g)
    assert info["ngev"] < 2 * x.size        # no finite differences
    with pytest.raises(ValueError):
        Newton(hessian="approx")
    assert Newton(hessian="fd").get_config()["hessian"] == "fd"


# --------------------------------------------------------------------------- Bayesian regularisation


def test_br_generalises_like_tuned_l2_on_an_oversized_net():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (30, 1))
    y = np.sin(3 * X) + 0.2 * rng.normal(size=X.shape)
    Xt = np.linspace(-1, 1, 200)[:, None]
    yt = np.sin(3 * Xt)

    def net(reg=None):
        return nc.Network([nc.Dense(1, 20, activation="tanh"), nc.Dense(20, 1)], loss="mse",
                          regularizer=reg, dtype="float64", seed=1)

    def test_mse(m):
        return float(((m.forward(Xt) - yt) ** 2).mean())

    br = net()
    hist = br.fit(X, y, optimizer="br", epochs=300, progress=False)
    lm = net()
    lm.fit(X, y, optimizer=LevenbergMarquardt(gtol=0.0, ftol=0.0), epochs=300, progress=False)
    l2_scores = []
    for strength in (1e-4, 1e-3, 1e-2, 1e-1):
        m = net(nc.L2(strength))
        m.fit(X, y, optimizer="lm", epochs=300, progress=False)
        l2_scores.append(test_mse(m))
    assert test_mse(br) < test_mse(lm)                 # the prior stops the overfit
    assert test_mse(br) <= 2.0 * min(l2_scores)        # about the best L2 of a grid
    assert 1.0 < hist.history["gamma"][-1] < br.n_params
    assert hist.history["alpha"][-1] > 0 and hist.history["beta"][-1] > 0


def test_br_rejects_what_it_cannot_handle():
    X, y = sine_data()
    with pytest.raises(ValueError, match="regularizer=None"):
        sine_net(0, regularizer=nc.L2(1e-3)).fit(X, y, optimizer="br", epochs=2,
                                                 progress=False)
    net = nc.Network([nc.Dense(1, 2)], loss="cross_entropy", seed=0)
    with pytest.raises(ValueError, match="mse"):
        net.fit(X, (X[:, 0] > 0).astype(int), optimizer="br", epochs=2, progress=False)


def test_br_hyperparameters_follow_mackay():
    X, y = sine_data()
    y = y + 0.1 * np.random.default_rng(1).normal(size=y.shape)
    net = sine_net(0)
    opt = BayesianRegularization()
    fun = network_fun(net, X, y)
    x = net.params.copy()
    f, g = fun(x)
    for _ in range(5):
        x, f, g, info = opt.iterate(fun, x, f, g)
    log = info["log"]
    # Re-derive gamma, alpha, beta from the last step's quantities.
    assert 0 < log["gamma"] < x.size
    sse = 2 * len(X) * f
    assert log["beta"] == pytest.approx((len(X) - log["gamma"]) / (2 * sse), rel=1e-12)
    assert log["alpha"] == pytest.approx(log["gamma"] / (2 * float(x @ x)), rel=1e-12)


# --------------------------------------------------------------------------- NewtonCG


def test_newton_cg_matches_scipy_newton_cg():
    """Same exact Hessian products: on a linear least-squares net both reach the
    lstsq optimum; on the tanh sine net ours gets at least as low in as many iterations."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4))
    y = X @ rng.normal(size=(4, 2)) + 0.1 * rng.normal(size=(50, 2))
    lin = nc.Network([nc.Dense(4, 2)], loss="mse", dtype="float64", seed=0)
    lin.fit(X, y, optimizer=NewtonCG(curvature="hessian", gtol=1e-12, ftol=0.0), epochs=30,
            progress=False)
    A = np.hstack([X, np.ones((50, 1))])
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(lin.layers[0].W, coef[:4], atol=1e-8)

    Xs, ys = sine_data()
    net = sine_net(4)
    x0 = net.params.copy()
    fun = network_fun(net, Xs, ys)
    curv = fun.curvature
    res = minimize(lambda w: fun(w), x0, jac=True, method="Newton-CG",
                   hessp=lambda w, v: curv.hvp(w, v), options={"maxiter": 60})
    f0 = sine_net(4).loss(Xs, ys)
    for curvature in ("hessian", "gauss-newton"):
        ours = sine_net(4)
        ours.fit(Xs, ys, optimizer=NewtonCG(curvature=curvature), epochs=60, progress=False)
        if curvature == "hessian":   # same products: at least as low in as many iterations
            assert ours.loss(Xs, ys) <= res.fun
        assert ours.loss(Xs, ys) <= 1e-3 * f0


@pytest.mark.parametrize("name", ["lm", "br", "newton-cg"])
def test_cli_accepts_second_order_optimizers(name, tmp_path, capsys):
    from nncore.cli import main

    model = tmp_path / "sine.npz"
    rc = main(["train", "sine", "--layers", "5", "--activation", "tanh", "--optimizer", name,
               "--epochs", "5", "--out", str(model), "--no-plot", "--no-progress"])
    assert rc == 0 and model.exists()
