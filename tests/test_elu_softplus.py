"""``elu`` and ``softplus``, added through the activation registry, against
independent truth: torch's definitions (forward and autograd), finite
differences (nc.gradcheck), the NumPy reference per dtype (kernel parity), the
compiled epoch loop against the Python step loop, and save/load.

Tolerances: forward values involve exp/expm1/log1p, so the compiled point
functions (glibc) and NumPy (its own SIMD libm) agree to a few ulp; torch's
vectorised CPU kernels (Sleef) likewise differ from glibc in the last place
(measured: 2 ulp at most in float64). Derivatives are computed from the output
y, so near y = -1 (elu, s << 0) the derivative y + 1 carries the absolute
rounding of y: compared with an absolute tolerance of a few eps.
"""

import os
import zlib

import numpy as np
import pytest

import nncore as nc
from nncore import activations as A
from nncore.backend import _numpy as R

NEW = ("elu", "softplus")
DTYPES = [np.float32, np.float64]
ULP = 4


def eps(dt):
    return float(np.finfo(dt).eps)


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _points(dt, name):
    rng = rng_for(name, np.dtype(dt).name)
    s = np.concatenate([rng.uniform(-40, 40, 2995), rng.standard_normal(3000) * 3,
                        [0.0, -0.0, 1e-30, -1e-30, 19.5, 20.0, 20.5, 88.0, -80.0, -1e4, 1e4]])
    return s.astype(dt)


def _compiled():
    try:
        from nncore.backend import _cython as C
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("compiled backend not built")
    return C


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", NEW)
def test_forward_and_derivative_match_torch(name, dt):
    torch = pytest.importorskip("torch")
    S = _points(dt, name)
    code = A.get(name).code
    Y = np.empty_like(S)
    R.activation_forward(S, code, Y)
    x = torch.from_numpy(S.copy()).requires_grad_()
    fn = getattr(torch.nn.functional, name)
    ty = fn(x)
    ty.backward(torch.ones_like(ty))
    ref_y, ref_g = ty.detach().numpy(), x.grad.numpy()
    np.testing.assert_allclose(Y, ref_y, rtol=ULP * eps(dt), atol=np.finfo(dt).tiny)
    g = np.empty_like(S)
    R.activation_backward(Y, np.ones_like(S), code, g)
    tol = ULP * eps(dt)
    if name == "softplus" and dt == np.float64:
        # torch switches to the identity's slope 1 at s > 20; from the output
        # the switch is at y > 20, which also covers s in (20 - exp(-20), 20].
        tol = max(tol, np.exp(-20.0))
    np.testing.assert_allclose(g, ref_g, rtol=tol, atol=tol)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", NEW)
def test_compiled_point_functions_match_numpy(name, dt):
    C = _compiled()
    S = _points(dt, name).reshape(-1, 7)
    code = A.get(name).code
    y1, y2 = np.empty_like(S), np.empty_like(S)
    C.activation_forward(S, code, y1)
    R.activation_forward(S, code, y2)
    np.testing.assert_allclose(y1, y2, rtol=ULP * eps(dt), atol=np.finfo(dt).tiny)
    dY = rng_for("dY", name).standard_normal(S.shape).astype(dt)
    g1, g2 = np.empty_like(S), np.empty_like(S)
    C.activation_backward(y2, dY, code, g1)
    R.activation_backward(y2, dY, code, g2)
    if name == "elu":          # arithmetic only: the same products in the same order
        np.testing.assert_array_equal(g1, g2)
    else:                      # expm1 on both sides
        bound = ULP * eps(dt) * np.abs(dY.astype(np.float64))
        assert np.all(np.abs(g1.astype(np.float64) - g2) <= bound)
    # the dense kernels (bias + activation fused, delta + bias gradient)
    rng = rng_for("dense", name, np.dtype(dt).name)
    X = rng.standard_normal((33, 5)).astype(dt)
    W = (3 * rng.standard_normal((5, 6))).astype(dt)
    b = rng.standard_normal(6).astype(dt)
    o1, o2 = np.empty((33, 6), dt), np.empty((33, 6), dt)
    C.dense_forward(X, W, b, code, o1)
    R.dense_forward(X, W, b, code, o2)
    bound = 8 * eps(dt) * (np.abs(X) @ np.abs(W) + np.abs(b) + 1)
    assert np.all(np.abs(o1.astype(np.float64) - o2) <= bound)


@pytest.mark.parametrize("name", NEW)
def test_gradcheck(name):
    rng = rng_for("gradcheck", name)
    X = rng.standard_normal((20, 3)) * 2
    y = rng.integers(0, 3, 20)
    net = nc.Network([nc.Dense(3, 6, activation=name), nc.Dense(6, 6, activation=name),
                      nc.Dense(6, 3)], loss="cross_entropy", dtype="float64", seed=1)
    res = nc.gradcheck(net, X, y)
    assert res.max_rel_error < 1e-6, res


@pytest.mark.parametrize("name", NEW)
def test_network_gradient_matches_torch_autograd(name):
    torch = pytest.importorskip("torch")
    rng = rng_for("torchgrad", name)
    X = rng.standard_normal((15, 4)) * 3
    y = rng.standard_normal((15, 2))
    net = nc.Network([nc.Dense(4, 5, activation=name), nc.Dense(5, 2)], dtype="float64", seed=2)
    J, g = net.loss_and_gradient(X, y)
    l1, l2 = net.layers
    W1 = torch.tensor(l1.W, requires_grad=True)
    b1 = torch.tensor(l1.b, requires_grad=True)
    W2 = torch.tensor(l2.W, requires_grad=True)
    b2 = torch.tensor(l2.b, requires_grad=True)
    h = getattr(torch.nn.functional, name)(torch.from_numpy(X) @ W1 + b1)
    out = h @ W2 + b2
    tJ = 0.5 * ((out - torch.from_numpy(y)) ** 2).sum() / X.shape[0]
    tJ.backward()
    tg = np.concatenate([t.grad.numpy().ravel() for t in (W1, b1, W2, b2)])
    assert abs(J - tJ.item()) <= 1e-13 * abs(J)
    np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", NEW)
def test_compiled_loop_equals_per_step_fit(name, monkeypatch):
    _compiled()
    from nncore import training
    nc.set_backend("cython")       # the loop runs on the compiled backend (restored by conftest)
    rng = rng_for("loop", name)
    X = rng.normal(size=(37, 4)) * 2
    y = rng.integers(0, 3, 37)
    for dtype in ("float32", "float64"):
        nets = []
        for loop in (True, False):
            monkeypatch.setattr(training, "_EPOCH_LOOP", loop)
            net = nc.Network([nc.Dense(4, 8, activation=name), nc.Dropout(0.2),
                              nc.Dense(8, 3)], loss="cross_entropy", dtype=dtype, seed=3)
            hist = net.fit(X, y, optimizer=nc.optim.Adam(0.01), batch_size=5, epochs=3,
                           seed=4, progress=False)
            nets.append((net, {k: v for k, v in hist.history.items() if k != "time"}))
        (a, ha), (b, hb) = nets
        np.testing.assert_array_equal(a.params, b.params)
        assert ha == hb


@pytest.mark.parametrize("name", NEW)
def test_save_load_and_default_init(name, tmp_path):
    net = nc.Network([nc.Dense(3, 4, activation=name), nc.Dense(4, 1)], dtype="float64", seed=0)
    assert net.layers[0].init_name == "he_uniform"
    path = net.save(tmp_path / "m.npz")
    back = nc.load(path)
    assert back.layers[0].activation == name
    X = rng_for("io", name).standard_normal((6, 3))
    np.testing.assert_array_equal(back.forward(X), net.forward(X))


@pytest.mark.parametrize("name", NEW)
def test_second_derivative_matches_torch(name):
    torch = pytest.importorskip("torch")
    S = _points(np.float64, name)
    # f'' jumps at elu's s = 0 (torch takes the right limit) and at softplus's
    # threshold switch: compare away from them.
    S = S[(np.abs(S - 20.0) > 1e-6) & (np.abs(S) > 1e-6)]
    x = torch.from_numpy(S.copy()).requires_grad_()
    (d1,) = torch.autograd.grad(getattr(torch.nn.functional, name)(x).sum(), x,
                                create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), x)
    Y = np.empty_like(S)
    A.get(name).forward(S, Y)
    np.testing.assert_allclose(A.get(name).second(Y), d2.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NEW)
def test_compiled_hessian_matches_numpy_and_torch(name):
    """The R-operator's f', f'' (compiled _act_d12 and the registry's reference)
    against torch.autograd.functional.hessian of the same loss."""
    torch = pytest.importorskip("torch")
    _compiled()
    rng = rng_for("hessian", name)
    X = rng.standard_normal((12, 3)) * 2
    y = rng.standard_normal((12, 1))
    net = nc.Network([nc.Dense(3, 4, activation=name), nc.Dense(4, 1)], dtype="float64", seed=5)
    hs = {}
    for be in ("cython", "numpy"):
        nc.set_backend(be)
        hs[be] = net.hessian(X, y)
    sizes = [(3, 4), (4,), (4, 1), (1,)]
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)

    def loss(p):
        parts, off = [], 0
        for shape in sizes:
            n = int(np.prod(shape))
            parts.append(p[off:off + n].reshape(shape))
            off += n
        W1, b1, W2, b2 = parts
        out = getattr(torch.nn.functional, name)(tX @ W1 + b1) @ W2 + b2
        return 0.5 * ((out - ty) ** 2).sum() / X.shape[0]

    ref = torch.autograd.functional.hessian(loss, torch.from_numpy(net.params.copy())).numpy()
    scale = np.abs(ref).max()
    np.testing.assert_allclose(hs["numpy"], ref, rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(hs["cython"], hs["numpy"], rtol=1e-12, atol=1e-14 * scale)
