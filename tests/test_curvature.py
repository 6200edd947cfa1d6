"""Exact curvature (R-operator) against torch.autograd in float64, both backends."""

import numpy as np
import pytest

import nncore as nc
from nncore import backend as B
from nncore.curvature import Curvature

torch = pytest.importorskip("torch")
# torch.func's first use imports TorchScript helpers that warn about themselves.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

ACTS = ["linear", "relu", "leaky_relu", "sigmoid", "tanh"]
LOSSES = ["mse", "ce_labels", "ce_probs", "bce"]
REGS = [None, nc.L1(0.03), nc.L2(0.05), nc.ElasticNet(0.02, 0.04)]
RTOL = 1e-12

_T_ACT = {
    "linear": lambda s: s,
    "relu": torch.relu,
    "leaky_relu": lambda s: torch.nn.functional.leaky_relu(s, 0.01),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


def _each_backend():
    """Yield each available backend name with it selected (restored after)."""
    old = B.get_backend()
    try:
        for name in B.available():
            B.set_backend(name)
            yield name
    finally:
        B.set_backend(old)


def _problem(act, loss, reg, dtype="float64", n=7, seed=0):
    rng = np.random.default_rng(seed)
    K = 1 if loss == "mse" else 3
    name = {"mse": "mse", "ce_labels": "cross_entropy", "ce_probs": "cross_entropy",
            "bce": "binary_cross_entropy"}[loss]
    out_act = act if loss == "mse" else "linear"
    net = nc.Network([nc.Dense(3, 4, activation=act), nc.Dropout(0.3),
                      nc.Dense(4, 3, activation=act), nc.Dense(3, K, activation=out_act)],
                     loss=name, regularizer=reg, dtype=dtype, seed=seed)
    # Move weights off zero and away from relu kinks, so every term is active.
    net.params[:] = rng.normal(0.0, 0.8, net.n_params)
    X = rng.normal(size=(n, 3))
    if loss == "mse":
        y = rng.normal(size=(n, K))
    elif loss == "ce_labels":
        y = rng.integers(0, K, n)
    elif loss == "ce_probs":
        y = rng.dirichlet(np.ones(K), n)
    else:
        y = rng.uniform(0, 1, (n, K))
    return net, X, y


def _torch_loss(net, X, y):
    """net.loss as a torch function of the flat float64 parameters."""
    Xt = torch.tensor(X, dtype=torch.float64)
    dense = [(layer._offset, layer.n_in, layer.n_out, layer.activation)
             for layer in net.layers if hasattr(layer, "W")]
    segs = [(int(a), int(b)) for a, b in net._segments]
    reg = net.regularizer

    def outputs(theta):
        a = Xt
        for off, n_in, n_out, act in dense:
            W = theta[off:off + n_in * n_out].reshape(n_in, n_out)
            b = theta[off + n_in * n_out:off + n_in * n_out + n_out]
            a = _T_ACT[act](a @ W + b)
        return a

    def loss(theta):
        out = outputs(theta)
        if net.loss_name == "mse":
            yt = torch.tensor(np.reshape(y, out.shape), dtype=torch.float64)
            J = 0.5 * ((out - yt) ** 2).sum() / out.shape[0]
        elif net.loss_name == "cross_entropy":
            logp = torch.log_softmax(out, dim=1)
            if np.ndim(y) == 1:
                J = -logp[torch.arange(out.shape[0]), torch.tensor(y)].mean()
            else:
                J = -(torch.tensor(y) * logp).sum() / out.shape[0]
        else:
            J = torch.nn.functional.binary_cross_entropy_with_logits(
                out, torch.tensor(y, dtype=torch.float64), reduction="sum") / out.shape[0]
        if reg is not None:
            for a, b in segs:
                J = J + reg.l1 * theta[a:b].abs().sum() + reg.l2 * (theta[a:b] ** 2).sum()
        return J

    return loss, outputs


def _close(a, b, rtol=RTOL):
    scale = max(np.max(np.abs(b)), 1e-300)
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("reg", REGS, ids=["none", "l1", "l2", "enet"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTS)
def test_hessian_and_hvp_match_torch(act, loss, reg):
    net, X, y = _problem(act, loss, reg)
    fl, _ = _torch_loss(net, X, y)
    theta = torch.tensor(net.params.astype(np.float64))
    H_t = torch.func.hessian(fl)(theta).numpy()   # torch.autograd.functional.hessian, vmapped
    v = np.random.default_rng(1).normal(size=net.n_params)
    _, hv_t = torch.autograd.functional.hvp(fl, theta, torch.tensor(v))
    for _ in _each_backend():
        _close(net.hessian(X, y), H_t)
        _close(net.hvp(X, y, v), hv_t.numpy())


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTS)
def test_jacobian_and_gauss_newton_match_torch(act, loss):
    net, X, y = _problem(act, loss, nc.L2(0.05))
    fl, fout = _torch_loss(net, X, y)
    theta = torch.tensor(net.params.astype(np.float64))
    Jt = torch.autograd.functional.jacobian(fout, theta).numpy()  # (N, K, n)
    # Gauss–Newton: J^T H_out J with H_out the torch Hessian of the loss in the outputs.
    out = fout(theta).detach()
    Ho = torch.func.hessian(lambda o: _loss_from_outputs(net, o, y))(out).numpy()
    N, K = out.shape
    Jr = Jt.reshape(N * K, -1)
    G_data = Jr.T @ Ho.reshape(N * K, N * K) @ Jr
    mask = Curvature(net, X, np.zeros((N, K))).weight_mask
    v = np.random.default_rng(2).normal(size=net.n_params)
    for _ in _each_backend():
        _close(net.jacobian(X), Jr)
        _close(net.gnvp(X, y, v), G_data @ v + 2 * 0.05 * mask * v)
        c = Curvature(net, net._check_X(X), net._check_y(y, N))
        _close(c.gauss_newton_sum(net.params.astype(np.float64)), N * G_data)


def _loss_from_outputs(net, out, y):
    N = out.shape[0]
    if net.loss_name == "mse":
        return 0.5 * ((out - torch.tensor(np.reshape(y, out.shape))) ** 2).sum() / N
    if net.loss_name == "cross_entropy":
        logp = torch.log_softmax(out, dim=1)
        if np.ndim(y) == 1:
            return -logp[torch.arange(N), torch.tensor(y)].mean()
        return -(torch.tensor(y) * logp).sum() / N
    return torch.nn.functional.binary_cross_entropy_with_logits(
        out, torch.tensor(y, dtype=torch.float64), reduction="sum") / N


def test_float32_network_gets_float64_curvature_of_its_own_parameters():
    net32, X, y = _problem("tanh", "ce_labels", nc.L2(0.05), dtype="float32")
    net64 = net32.copy("float64")
    fl, _ = _torch_loss(net64, X, y)
    H_t = torch.func.hessian(fl)(torch.tensor(net64.params)).numpy()
    for _ in _each_backend():
        H = net32.hessian(X, y)
        assert H.dtype == np.float64
        _close(H, H_t)
        assert net32.jacobian(X).dtype == np.float64


def test_jvp_vjp_agree_with_the_jacobian():
    net, X, y = _problem("sigmoid", "bce", None, n=5)
    rng = np.random.default_rng(3)
    V = rng.normal(size=(2, net.n_params))
    U = rng.normal(size=(2, 5, 3))
    for _ in _each_backend():
        c = Curvature(net, net._check_X(X), net._check_y(y, 5))
        x = net.params.astype(np.float64)
        J = c.jacobian(x)
        _close(c.jvp(x, V).reshape(2, -1), V @ J.T)
        _close(c.vjp(x, U), U.reshape(2, -1) @ J)
        _close(c.jvp(x, V[0]), (J @ V[0]).reshape(5, 3))


def _kernel_args(dtype, m=3, n=6, n_in=4, n_out=5, act=4, seed=0):
    rng = np.random.default_rng(seed)
    r = lambda *shape: rng.normal(size=shape).astype(dtype)
    Y = np.tanh(r(n, n_out))
    return dict(X=r(n, n_in), RX=r(m, n, n_in), W=r(n_in, n_out), VW=r(m, n_in, n_out),
                Vb=r(m, n_out), Y=Y, RS=r(m, n, n_out), D=r(n, n_out), RD=r(m, n, n_out))


@pytest.mark.parametrize("act", sorted(a.code for a in nc.activations.REGISTRY.values()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_kernels_match_reference(act, dtype):
    """Every activation code of the registry: the compiled R-operator equals the
    reference for the codes the extension says it knows (curvature_activations),
    and refuses the others with a ValueError instead of treating them as linear."""
    if "cython" not in B.available():
        pytest.skip("compiled backend not built here")
    from nncore.backend import _curvature_numpy as ref
    C = B._load("cython")
    tol = 50 * np.finfo(dtype).eps
    a = _kernel_args(dtype)
    m, n, n_in, n_out = 3, 6, 4, 5
    assert C._CURVATURE_ACTS == C._K.curvature_activations()
    if act not in C._CURVATURE_ACTS:
        RS, RY = np.empty((m, n, n_out), dtype), np.empty((m, n, n_out), dtype)
        with pytest.raises(ValueError, match="second derivative"):
            C.dense_rforward(a["X"], a["RX"], a["W"], a["VW"], a["Vb"], act, a["Y"], RS, RY)
        return
    outs = {}
    for name, mod in (("ref", ref), ("c", C)):
        RS, RY = np.empty((m, n, n_out), dtype), np.empty((m, n, n_out), dtype)
        mod.dense_rforward(a["X"], a["RX"], a["W"], a["VW"], a["Vb"], act, a["Y"], RS, RY)
        D, RD = a["D"].copy(), a["RD"].copy()
        RdW, Rdb = np.empty((m, n_in, n_out), dtype), np.empty((m, n_out), dtype)
        DX, RDX = np.empty((n, n_in), dtype), np.empty((m, n, n_in), dtype)
        mod.dense_rbackward(a["X"], a["RX"], a["W"], a["VW"], a["Y"], a["RS"], D, RD, act,
                            RdW, Rdb, DX, RDX)
        rops = []
        for rop in ("loss_mse_rop", "loss_softmax_ce_rop", "loss_bce_rop"):
            G = np.empty_like(a["RD"])
            getattr(mod, rop)(a["D"], a["RD"], G)
            rops.append(G)
        J = np.zeros((n, n_in * n_out + n_out + 2), dtype)
        mod.jacobian_rows(a["X"], a["D"], J, 1)
        P = np.abs(a["D"][:2]) + 0.1
        P /= P.sum(axis=1, keepdims=True)
        Jg = a["RD"][0].reshape(10, 3).copy()
        mod.ggn_rows_softmax(P, Jg)
        Cm = np.eye(n_out, dtype=dtype)
        mod.syrk(a["D"], Cm, 2.0, 0.5)
        A = (Cm + n * np.eye(n_out)).astype(dtype)
        x = np.empty(n_out, dtype)
        ok = mod.cholesky_solve(A, a["Vb"][0], x)
        outs[name] = [RS, RY, D, RD, RdW, Rdb, DX, RDX, *rops, J, Jg, Cm, x, np.array(ok)]
    for got, want in zip(outs["c"], outs["ref"]):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


def test_cholesky_solve_reports_indefinite_and_leaves_inputs():
    for name in B.available():
        mod = B._load(name)
        A = np.array([[1.0, 2.0], [2.0, 1.0]])
        A0 = A.copy()
        x = np.zeros(2)
        assert mod.cholesky_solve(A, np.ones(2), x) is False
        np.testing.assert_array_equal(A, A0)


@pytest.mark.parametrize("backend_name", B.available())
def test_bad_input_is_rejected_and_changes_nothing(backend_name):
    net, X, y = _problem("tanh", "mse", None)
    before = net.params.copy()
    old = B.get_backend()
    B.set_backend(backend_name)
    try:
        with pytest.raises(ValueError):
            net.hvp(X, y, np.ones(net.n_params + 1))
        with pytest.raises(ValueError):
            net.hvp(X, y, np.full(net.n_params, np.nan))
        with pytest.raises(TypeError):
            net.hvp(X, y, np.array(["a"] * net.n_params))
        with pytest.raises(ValueError):
            net.hessian(X[:, :2], y)
        with pytest.raises(ValueError):
            net.jacobian(np.full_like(X, np.inf))
        mod = B.current()
        a = _kernel_args(np.float64)
        with pytest.raises(ValueError):   # RS of the wrong shape
            mod.dense_rforward(a["X"], None, a["W"], a["VW"], a["Vb"], 0, a["Y"],
                               np.empty((3, 6, 4)), np.empty((3, 6, 5)))
        with pytest.raises(TypeError):    # mixed dtypes
            mod.syrk(a["X"], np.empty((4, 4), np.float32), 1.0, 0.0)
    finally:
        B.set_backend(old)
    np.testing.assert_array_equal(net.params, before)


def test_a_loss_without_output_hessian_is_a_clear_error(monkeypatch):
    """The loss registry carries the curvature: a loss without an output Hessian
    (rop_kernel None) is refused by name, and nothing changes."""
    from nncore import losses

    class NoCurvature(losses.MeanSquaredError):
        name = "mse_without_curvature"
        rop_kernel = None

        def sqrt_hessian_rows(self, be, out, J):
            return losses.Loss.sqrt_hessian_rows(self, be, out, J)

    monkeypatch.setitem(losses.REGISTRY, NoCurvature.name, NoCurvature())
    net = nc.Network([nc.Dense(2, 3, activation="tanh"), nc.Dense(3, 1)],
                     loss=NoCurvature.name, dtype="float64", seed=0)
    X, y = np.ones((4, 2)), np.zeros((4, 1))
    before = net.params.copy()
    for call in (lambda: net.hessian(X, y), lambda: net.gnvp(X, y, np.ones(net.n_params)),
                 lambda: net.fit(X, y, optimizer="lm", epochs=1, progress=False)):
        with pytest.raises(ValueError, match="mse_without_curvature.*no exact curvature"):
            call()
        np.testing.assert_array_equal(net.params, before)
    # the registry's own losses all carry it
    assert all(loss.rop_kernel for name, loss in losses.REGISTRY.items()
               if name != NoCurvature.name)
