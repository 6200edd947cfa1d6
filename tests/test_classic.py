"""The classic toolbox (Rprop, Quickprop, scaled conjugate gradients) against
torch.optim.Rprop, plain transcriptions of each paper's rule and the
least-squares optimum."""

import zlib

import numpy as np
import pytest

import nncore as nc
from nncore.callbacks import Callback
from nncore.optim import Quickprop, Rprop, ScaledConjugateGradient


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def gradient_sequence(rng, n, steps):
    """Gradients that flip sign, vanish and repeat, so every branch is taken."""
    out = []
    g = rng.standard_normal(n)
    for _ in range(steps):
        flip = rng.random(n) < 0.4
        g = np.where(flip, -g, g) * rng.uniform(0.3, 2.0, n)
        g[rng.random(n) < 0.1] = 0.0
        g = np.where(g == 0.0, rng.standard_normal(n) * (rng.random(n) < 0.5), g)
        out.append(g.copy())
    return out


class Record(Callback):
    def __init__(self):
        super().__init__()
        self.params = []

    def on_epoch_end(self, epoch, logs=None):
        self.params.append(self.model.params.copy())


def small_problem(seed=0, N=40):
    rng = rng_for("problem", seed)
    X = rng.normal(size=(N, 3))
    y = np.tanh(X @ np.array([[1.0], [-2.0], [0.5]])) + 0.1 * rng.normal(size=(N, 1))
    return X, y


def small_net(seed=0):
    return nc.Network([nc.Dense(3, 5, activation="tanh"), nc.Dense(5, 1)], dtype="float64",
                      seed=seed)


# --------------------------------------------------------------------------- Rprop vs torch

def test_irprop_minus_equals_torch_through_step(backend):
    torch = pytest.importorskip("torch")
    n = 300
    rng = rng_for("rprop-torch")
    p0 = rng.standard_normal(n)
    tp = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    topt = torch.optim.Rprop([tp], lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-6, 50))
    p = p0.copy()
    opt = Rprop()
    for g in gradient_sequence(rng, n, 80):
        tp.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
        opt.step(p, g)
        st = topt.state[tp]
        np.testing.assert_array_equal(p, tp.detach().numpy())
        np.testing.assert_array_equal(opt.state["prev"], st["prev"].numpy())
        np.testing.assert_array_equal(opt.state["step_size"], st["step_size"].numpy())
    assert opt.iterations == 80


def test_irprop_minus_equals_torch_through_fit():
    torch = pytest.importorskip("torch")
    X, y = small_problem()
    net = small_net()
    ref = small_net()       # the gradient oracle for torch's optimizer
    tp = torch.nn.Parameter(torch.tensor(net.params.copy()))
    topt = torch.optim.Rprop([tp], lr=0.02)
    rec = Record()
    h = net.fit(X, y, optimizer=Rprop(lr=0.02), epochs=40, callbacks=[rec])
    assert h.params["batch_size"] == "full"
    for epoch in range(40):
        ref.params[:] = tp.detach().numpy()
        _, g = ref.loss_and_gradient(X, y)
        tp.grad = torch.tensor(g)
        topt.step()
        np.testing.assert_array_equal(rec.params[epoch], tp.detach().numpy())
    assert h["loss"][-1] < h["loss"][0]


# --------------------------------------------------------------------------- Igel & Hüsken

def igel_huesken(variant, w, grads, losses, lr=0.01, eta=(0.5, 1.2), dmin=1e-6, dmax=50.0):
    """Per-weight transcription of the four algorithms of Igel & Hüsken (2000), Figs. 1-4."""
    em, ep = eta
    w = w.copy()
    n = w.size
    delta, gprev, dw = np.full(n, lr), np.zeros(n), np.zeros(n)
    e_prev = None
    trajectory = []
    for g, e in zip(grads, losses):
        g = g.copy()
        for i in range(n):
            c = gprev[i] * g[i]
            if variant in ("rprop-", "irprop-"):
                if c > 0:
                    delta[i] = min(delta[i] * ep, dmax)
                elif c < 0:
                    delta[i] = max(delta[i] * em, dmin)
                    if variant == "irprop-":
                        g[i] = 0.0
                w[i] -= np.sign(g[i]) * delta[i]
            elif c > 0:
                delta[i] = min(delta[i] * ep, dmax)
                dw[i] = -np.sign(g[i]) * delta[i]
                w[i] += dw[i]
            elif c < 0:
                delta[i] = max(delta[i] * em, dmin)
                if variant == "rprop+" or (e_prev is not None and e > e_prev):
                    w[i] -= dw[i]
                g[i] = 0.0
            else:
                dw[i] = -np.sign(g[i]) * delta[i]
                w[i] += dw[i]
            gprev[i] = g[i]
        e_prev = e
        trajectory.append(w.copy())
    return trajectory


@pytest.mark.parametrize("variant", ["rprop-", "irprop-", "rprop+", "irprop+"])
def test_rprop_variants_follow_the_paper(variant, backend):
    n = 60
    rng = rng_for("igel", variant)
    w0 = rng.standard_normal(n)
    grads = gradient_sequence(rng, n, 50)
    losses = list(rng.uniform(0, 1, 50))    # rises and falls: iRprop+ reverts on the rises
    expected = igel_huesken(variant, w0, grads, losses)
    opt = Rprop(variant=variant)
    w = w0.copy()
    for t, (g, e) in enumerate(zip(grads, losses)):
        opt.step(w, g, loss=e)
        np.testing.assert_array_equal(w, expected[t], err_msg=f"step {t}")


@pytest.mark.parametrize("variant", ["rprop+", "irprop+", "rprop-"])
def test_rprop_variants_through_fit(variant):
    """fit passes the loss at the current point, which iRprop+'s backtracking needs."""
    X, y = small_problem(1)
    net = small_net(1)
    w0 = net.params.copy()
    rec = Record()
    h = net.fit(X, y, optimizer=Rprop(lr=0.05, variant=variant), epochs=30, callbacks=[rec])
    ref = small_net(1)
    grads, losses = [], []
    for point in [w0] + rec.params[:-1]:      # the points each epoch started from
        ref.params[:] = point
        e, g = ref.loss_and_gradient(X, y)
        grads.append(g)
        losses.append(e)
    expected = igel_huesken(variant, w0, grads, losses, lr=0.05)
    np.testing.assert_array_equal(np.array(rec.params), np.array(expected))
    assert h["loss"][-1] < h["loss"][0]


def test_rprop_bad_hyper_parameters_and_calls():
    for kw in ({"lr": 0}, {"lr": float("nan")}, {"etas": (1.2, 0.5)}, {"etas": (0.5, 1.0)},
               {"etas": 0.5}, {"step_sizes": (1.0, 0.5)}, {"step_sizes": (-1, 5)},
               {"variant": "rprop"}, {"variant": None}):
        with pytest.raises(ValueError):
            Rprop(**kw)
    with pytest.raises(TypeError):
        Rprop(lr="0.1")
    with pytest.raises(ValueError, match="loss"):
        Rprop(variant="irprop+").step(np.zeros(3), np.ones(3))
    opt = Rprop()
    p = np.zeros(3)
    opt.step(p, np.ones(3))
    before = (p.copy(), opt.state["step_size"].copy())
    with pytest.raises(ValueError, match="reset"):
        opt.step(np.zeros(4), np.ones(4))
    with pytest.raises(TypeError):
        opt.step(p, np.ones(3, np.float32))
    np.testing.assert_array_equal(p, before[0])
    np.testing.assert_array_equal(opt.state["step_size"], before[1])
    opt.reset()
    opt.step(np.zeros(4, np.float32), np.ones(4, np.float32))
    assert opt.state["step_size"].dtype == np.float32


def test_names_resolve():
    assert isinstance(nc.optim.get("rprop"), Rprop)
    assert isinstance(nc.optim.get("quickprop", mu=1.5), Quickprop)
    assert isinstance(nc.optim.get("scg"), ScaledConjugateGradient)
    assert nc.optim.get("RProp", variant="rprop+").variant == "rprop+"
    X, y = small_problem()
    with pytest.raises(ValueError, match="full-batch"):
        small_net().fit(X, y, optimizer="rprop", batch_size=8)


# --------------------------------------------------------------------------- Quickprop

def fahlman(w, grads, lr=0.01, mu=1.75):
    """Per-weight transcription of Fahlman's quickprop update (his C code,
    without decay), slope = -dE/dw, with the equal-slopes safeguard."""
    w = w.copy()
    n = w.size
    shrink = mu / (1.0 + mu)
    prev_slope, prev_step = np.zeros(n), np.zeros(n)
    trajectory = []
    for g in grads:
        for i in range(n):
            s, ps, dw = -g[i], prev_slope[i], prev_step[i]
            step = 0.0
            if dw > 0:
                if s > 0:
                    step += lr * s
                if s > shrink * ps:
                    step += mu * dw
                elif ps != s:
                    step += s / (ps - s) * dw
                elif s <= 0:
                    step += lr * s        # no curvature information: gradient step
            elif dw < 0:
                if s < 0:
                    step += lr * s
                if s < shrink * ps:
                    step += mu * dw
                elif ps != s:
                    step += s / (ps - s) * dw
                elif s >= 0:
                    step += lr * s
            else:
                step += lr * s
            w[i] += step
            prev_step[i] = step
            prev_slope[i] = s
        trajectory.append(w.copy())
    return trajectory


def test_quickprop_follows_fahlman():
    n = 80
    rng = rng_for("quickprop")
    w0 = rng.standard_normal(n)
    grads = gradient_sequence(rng, n, 40)
    grads[5][:10] = grads[4][:10]          # equal slopes: the safeguard
    grads[6][:10] = grads[5][:10]
    expected = fahlman(w0, grads, lr=0.05, mu=1.75)
    opt = Quickprop(lr=0.05)
    w = w0.copy()
    for t, g in enumerate(grads):
        opt.step(w, g)
        np.testing.assert_allclose(w, expected[t], rtol=1e-13, atol=1e-13, err_msg=f"step {t}")
        assert np.all(np.isfinite(w))


def test_quickprop_solves_a_quadratic_per_weight():
    """On a separable quadratic each weight's secant step is exact: the second
    step lands on the minimum plus Fahlman's gradient term (the slope kept its sign)."""
    a = np.array([0.5, 2.0, 3.0])
    target = np.array([1.0, -2.0, 0.25])
    w = np.zeros(3)
    opt = Quickprop(lr=0.1, mu=100.0)
    opt.step(w, a * (w - target))
    w1 = w.copy()
    opt.step(w, a * (w - target))
    np.testing.assert_allclose(w, target + 0.1 * (-a * (w1 - target)), rtol=1e-12)


def test_quickprop_fit_and_bad_hyper_parameters():
    X, y = small_problem(2)
    h = small_net(2).fit(X, y, optimizer=Quickprop(lr=0.05), epochs=60)
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    for kw in ({"lr": -1}, {"mu": 0}, {"mu": float("inf")}):
        with pytest.raises(ValueError):
            Quickprop(**kw)


# --------------------------------------------------------------------------- SCG

def moller(fun, w, iters, sigma=5e-5, lam=5e-7):
    """Møller (1993), steps 1-9, as printed; returns the iterates w_k (one per pass)."""
    n = w.size
    E, g = fun(w)
    r = -g
    p = r.copy()
    lam_bar, success, k = 0.0, True, 1
    out = []
    for _ in range(iters):
        p2 = p @ p
        if success:                                        # step 2
            sig = sigma / np.sqrt(p2)
            s = (fun(w + sig * p)[1] - fun(w)[1]) / sig
            delta = p @ s
        delta = delta + (lam - lam_bar) * p2               # step 3
        if delta <= 0:                                     # step 4
            lam_bar = 2 * (lam - delta / p2)
            delta = -delta + lam * p2
            lam = lam_bar
        mu = p @ r                                         # step 5
        alpha = mu / delta
        E_new, g_new = fun(w + alpha * p)
        Delta = 2 * delta * (E - E_new) / mu ** 2          # step 6
        if Delta >= 0:                                     # step 7
            w = w + alpha * p
            r_new = -g_new
            lam_bar, success = 0.0, True
            if k % n == 0:
                p = r_new
            else:
                beta = (r_new @ r_new - r_new @ r) / mu
                p = r_new + beta * p
            r, E = r_new, E_new
            if Delta >= 0.75:
                lam = lam / 4
        else:
            lam_bar, success = lam, False
        if Delta < 0.25:                                   # step 8
            lam = lam + delta * (1 - Delta) / p2
        k += 1
        out.append(w.copy())
    return out


def net_fun(net, X, y):
    def fun(w):
        net.params[:] = w
        f, g = net.loss_and_gradient(X, y)
        return f, g.copy()
    return fun


def test_scg_follows_moller():
    X, y = small_problem(3)
    net = small_net(3)
    w0 = net.params.copy()
    expected = moller(net_fun(small_net(3), X, y), w0, 60)
    rec = Record()
    h = net.fit(X, y, optimizer=ScaledConjugateGradient(gtol=0.0), epochs=60, callbacks=[rec])
    np.testing.assert_allclose(np.array(rec.params), np.array(expected), rtol=1e-9, atol=1e-12)
    assert h["loss"][-1] < 0.2 * h["loss"][0]
    assert h["nfev"][-1] <= 1 + 2 * 60 and "lambda" in h


def test_scg_reaches_least_squares_optimum_in_about_n_iterations():
    rng = rng_for("scg-lstsq")
    X = rng.normal(size=(100, 4)) + 0.5
    Y = X @ rng.normal(size=(4, 2)) + 0.1 * rng.normal(size=(100, 2))
    net = nc.Network([nc.Dense(4, 2)], dtype="float64", seed=0)
    n = net.n_params                                        # 10
    net.fit(X, Y, optimizer=ScaledConjugateGradient(gtol=0.0), epochs=n)
    sol = np.linalg.lstsq(np.hstack([X, np.ones((100, 1))]), Y, rcond=None)[0]
    # The loss resolves parameter errors down to about sqrt(eps): that is rounding here.
    np.testing.assert_allclose(net.params, sol.ravel(), rtol=0, atol=1e-10)


def test_scg_bad_hyper_parameters():
    for kw in ({"sigma": 0}, {"lambda_": -1}, {"restart": 0}, {"gtol": -1},
               {"sigma": float("nan")}):
        with pytest.raises(ValueError):
            ScaledConjugateGradient(**kw)


# --------------------------------------------------------------------------- Powell-Beale CG

def test_powell_beale_cg_reaches_least_squares_optimum():
    from nncore.optim import ConjugateGradient
    rng = rng_for("cgb-lstsq")
    X = rng.normal(size=(100, 4)) + 0.5
    Y = X @ rng.normal(size=(4, 2)) + 0.1 * rng.normal(size=(100, 2))
    net = nc.Network([nc.Dense(4, 2)], dtype="float64", seed=0)
    opt = ConjugateGradient(restart="powell-beale", gtol=0.0, ftol=0.0)
    net.fit(X, Y, optimizer=opt, epochs=2 * net.n_params)
    sol = np.linalg.lstsq(np.hstack([X, np.ones((100, 1))]), Y, rcond=None)[0]
    np.testing.assert_allclose(net.params, sol.ravel(), rtol=0, atol=1e-10)


def traincgb_directions(grads):
    """MATLAB ``traincgb``'s search directions (Powell-Beale, Hestenes-Stiefel Z1),
    transcribed from its loop, for the gradients at the points it visited."""
    g_old = grads[0]
    d_old = -g_old
    out = [d_old]
    t, d_t, dg_t, d_dg_t = 1, np.zeros_like(g_old), np.zeros_like(g_old), 1.0
    for epoch, g in enumerate(grads[1:], start=1):
        if abs(g_old @ g) >= 0.2 * (g @ g) or epoch - t >= g.size:
            t, dg_t, d_t = epoch - 1, g - g_old, d_old
            d_dg_t = d_t @ dg_t
        z2 = 0.0 if epoch == t + 1 or d_dg_t == 0 else (g @ dg_t) / d_dg_t
        dg = g - g_old
        z1 = 0.0 if d_old @ dg == 0 else (g @ dg) / (d_old @ dg)
        d = -g + d_old * z1 + d_t * z2
        d_old, g_old = d, g
        if g @ d / np.linalg.norm(d) >= -0.001 * np.linalg.norm(g):
            d = d_old = -g
            t, d_t, dg_t, d_dg_t = epoch, np.zeros_like(g), np.zeros_like(g), 1.0
        out.append(d)
    return out


@pytest.mark.parametrize("seed", [4, 5])
def test_powell_beale_follows_traincgb(seed):
    """Given the points it visits, every direction is traincgb's (up to scale)."""
    from nncore.optim import ConjugateGradient
    X, y = small_problem(seed)
    fun = net_fun(small_net(seed), X, y)
    x = small_net(seed).params.copy()
    f, g = fun(x)
    opt = ConjugateGradient(beta="hestenes-stiefel", restart="powell-beale", gtol=0.0)
    searched, grads, restarts = [], [g], []
    search = opt._search
    opt._search = lambda fun_, x_, f_, g_, d, a0: searched.append(d.copy()) or search(
        fun_, x_, f_, g_, d, a0)
    for _ in range(20):                               # fewer than n = 26: no n-restart
        x, f, g, info = opt.iterate(fun, x, f, g)
        grads.append(g)
        restarts.append(info["restarted"])
    assert len(searched) == 20                        # no line-search fallback taken
    expected = traincgb_directions(grads[:-1])
    for d, e in zip(searched, expected):
        np.testing.assert_allclose(d / np.linalg.norm(d), e / np.linalg.norm(e),
                                   rtol=1e-9, atol=1e-12)
    # Both kinds of restart happened: Beale's (three-term) and Powell's test.
    assert any(restarts[1:]) and opt.n_restarts >= 1


def test_powell_beale_restart_rule():
    """Every iteration whose gradient keeps |g.g_prev| >= 0.2 g.g is a restart."""
    from nncore.optim import ConjugateGradient
    X, y = small_problem(4)
    fun = net_fun(small_net(4), X, y)
    x = small_net(4).params.copy()
    f, g = fun(x)
    opt = ConjugateGradient(restart="powell-beale", gtol=0.0)
    tests, restarted = [], []
    g_prev = None
    for _ in range(40):
        x, f, g_new, info = opt.iterate(fun, x, f, g)
        if g_prev is not None:
            tests.append(abs(g @ g_prev) >= 0.2 * (g @ g))
            restarted.append(info["restarted"])
        g_prev, g = g, g_new
    assert any(tests) and not all(tests)
    assert all(r for t, r in zip(tests, restarted) if t)
    with pytest.raises(ValueError):
        ConjugateGradient(restart="powell")


def test_classic_step_checks_are_the_first_order_ones():
    """Rprop/Quickprop.step reject bad arrays exactly as Adam.step does (one policy)."""
    from nncore.optim import Adam
    bad = [(np.zeros(0), np.zeros(0)), (np.zeros(3, np.float16), np.zeros(3, np.float16)),
           (np.zeros(3), np.zeros(3, np.float32)), (np.zeros(3), np.zeros(4)),
           (np.zeros((3, 1)), np.zeros((3, 1))), ([0.0, 0.0], [1.0, 1.0])]
    for params, grads in bad:
        with pytest.raises(Exception) as ref:
            Adam().step(params, grads)
        for opt in (Rprop(), Quickprop()):
            with pytest.raises(type(ref.value)):
                opt.step(params, grads)
