"""Acceptance audit of /work/shared/API.md: one focused test per clause.

Each test calls the library the way a user would (``import nncore as nc``)
and compares with an independent truth: closed-form NumPy, torch (skipped
when absent), finite differences or the literal wording of the contract.
"""

import inspect
import math
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import nncore as nc


# --------------------------------------------------------------------- helpers

def _sig(obj):
    return {k: p.default for k, p in inspect.signature(obj).parameters.items()}


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _np_forward(net, X):
    """Independent forward pass from the flat buffer (W C-order then b)."""
    h = np.asarray(X, np.float64)
    p = np.asarray(net.params, np.float64)
    off = 0
    acts = {"linear": lambda s: s, "relu": lambda s: np.maximum(s, 0),
            "sigmoid": _sigmoid, "tanh": np.tanh,
            "leaky_relu": lambda s: np.where(s > 0, s, 0.01 * s)}
    for layer in net.layers:
        if not isinstance(layer, nc.Dense):
            continue
        W = p[off:off + layer.n_in * layer.n_out].reshape(layer.n_in, layer.n_out)
        off += layer.n_in * layer.n_out
        b = p[off:off + layer.n_out]
        off += layer.n_out
        h = acts[layer.activation](h @ W + b)
    assert off == p.size
    return h


def _weights_mask(net):
    m = []
    for layer in net.layers:
        if isinstance(layer, nc.Dense):
            m += [True] * (layer.n_in * layer.n_out) + [False] * layer.n_out
    return np.array(m)


def _data(n=30, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d))


@pytest.fixture(params=["cython", "numpy"])
def be(request):
    try:
        nc.set_backend(request.param)
    except ImportError:
        pytest.skip("compiled backend not built")
    return request.param


# ------------------------------------------------------------ signatures

def test_network_layer_fit_signatures():
    s = _sig(nc.Network)
    assert list(s) == ["layers", "loss", "regularizer", "dtype", "seed"]
    assert s["loss"] == "mse" and s["regularizer"] is None and s["dtype"] == "float32" and s["seed"] is None
    kinds = {k: p.kind for k, p in inspect.signature(nc.Network).parameters.items()}
    assert kinds["loss"] is inspect.Parameter.KEYWORD_ONLY
    s = _sig(nc.Dense)
    assert list(s)[:4] == ["n_in", "n_out", "activation", "init"]
    assert s["activation"] == "linear" and s["init"] is None
    assert list(_sig(nc.Dropout)) == ["rate"]
    s = _sig(nc.Network.fit)
    expect = dict(optimizer="adam", batch_size=None, epochs=10, shuffle=True, validation_data=None,
                  validation_split=0.0, callbacks=(), augment=None, progress=None, seed=None)
    for k, v in expect.items():
        assert s[k] == v, k
    assert list(s)[:3] == ["self", "X", "y"]


@pytest.mark.parametrize("cls,expect", [
    ("SGD", dict(lr=0.01, momentum=0.0, nesterov=False, clip_norm=None)),
    ("Adagrad", dict(lr=0.01, eps=1e-10, initial_accumulator_value=0.0, eps_inside_sqrt=False,
                     clip_norm=None)),
    ("RMSprop", dict(lr=0.01, alpha=0.99, eps=1e-8, eps_inside_sqrt=False, clip_norm=None)),
    ("Adam", dict(lr=0.001, betas=(0.9, 0.999), eps=1e-8, eps_inside_sqrt=False, clip_norm=None)),
    ("AdamW", dict(lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                   eps_inside_sqrt=False, clip_norm=None)),
    ("ConjugateGradient", dict(beta="polak-ribiere")),
    ("Newton", dict(damping=1e-4)),
    ("LBFGS", dict(history=10)),
])
def test_optimizer_signatures(cls, expect):
    s = _sig(getattr(nc.optim, cls))
    for k, v in expect.items():
        assert k in s and s[k] == v, (cls, k)
    # positional lr for the first-order ones (nc.optim.Adam(1e-3))
    if "lr" in expect:
        assert list(s)[0] == "lr"
    nc.optim.BFGS(), nc.optim.DFP()  # no required arguments


def test_callback_gradcheck_signatures():
    s = _sig(nc.callbacks.EarlyStopping)
    for k, v in dict(monitor="val_loss", patience=10, min_delta=0.0, restore_best_weights=True).items():
        assert s[k] == v
    s = _sig(nc.callbacks.ModelCheckpoint)
    assert list(s)[0] == "path" and s["monitor"] == "val_loss" and s["save_best_only"] is True
    s = _sig(nc.gradcheck)
    assert list(s)[:3] == ["net", "X", "y"] and s["eps"] == 1e-6
    for name in ["GaussianNoise", "RandomShift", "RandomFlip", "Compose"]:
        assert callable(getattr(nc.augment, name))
    assert list(_sig(nc.augment.RandomShift))[:2] == ["image_shape", "max_shift"]
    assert issubclass(nc.DivergenceError, RuntimeError)


# ------------------------------------------------------------ networks

@pytest.mark.parametrize("act,he", [("relu", True), ("leaky_relu", True), ("linear", False),
                                    ("sigmoid", False), ("tanh", False)])
def test_default_init(act, he):
    n_in, n_out = 200, 150
    net = nc.Network([nc.Dense(n_in, n_out, activation=act)], seed=3)
    layer = net.layers[0]
    assert layer.activation == act and layer.n_in == n_in and layer.n_out == n_out
    bound = math.sqrt(6.0 / n_in) if he else math.sqrt(6.0 / (n_in + n_out))
    W = np.asarray(layer.W, np.float64)
    assert W.shape == (n_in, n_out)
    assert np.abs(W).max() <= bound * (1 + 1e-6)
    assert np.abs(W).max() > 0.99 * bound           # uniform fills the interval
    assert abs(W.var() - bound ** 2 / 3) < 0.05 * bound ** 2 / 3
    assert abs(W.mean()) < 0.02 * bound
    assert np.all(layer.b == 0)


def test_flat_layout_views_and_dtype():
    layers = [nc.Dense(3, 5, activation="tanh"), nc.Dropout(0.5), nc.Dense(5, 2)]
    net = nc.Network(layers, seed=0)
    assert net.params.ndim == 1 and net.params.size == 3 * 5 + 5 + 5 * 2 + 2
    assert net.params.dtype == np.float32 and net.grads.shape == net.params.shape
    assert net.grads.dtype == np.float32
    d1, d2 = net.layers[0], net.layers[2]
    np.testing.assert_array_equal(net.params[:15], d1.W.ravel(order="C"))
    np.testing.assert_array_equal(net.params[15:20], d1.b)
    np.testing.assert_array_equal(net.params[20:30], d2.W.ravel(order="C"))
    np.testing.assert_array_equal(net.params[30:], d2.b)
    for layer in (d1, d2):
        for name in ("W", "b"):
            assert np.shares_memory(getattr(layer, name), net.params)
        for name in ("dW", "db"):
            assert np.shares_memory(getattr(layer, name), net.grads)
    X = _data(7, 3)
    v = np.random.default_rng(1).standard_normal(net.params.size)
    net.params[:] = v
    np.testing.assert_allclose(d1.W, v[:15].reshape(3, 5), rtol=1e-6)
    out = net.forward(X)
    assert out.shape == (7, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, _np_forward(net, X), rtol=1e-5, atol=1e-5)
    # grads views: loss_and_gradient fills dW consistent with grads
    y = _data(7, 2, seed=2)
    _, g = net.loss_and_gradient(X, y)
    np.testing.assert_array_equal(net.grads, g)
    np.testing.assert_array_equal(d2.db, g[30:])
    net64 = nc.Network([nc.Dense(3, 2)], dtype="float64", seed=0)
    assert net64.params.dtype == np.float64 and net64.forward(X).dtype == np.float64
    with pytest.raises(ValueError):
        nc.Network([nc.Dense(3, 2)], dtype="float16")


def test_network_seed_fixes_init():
    a = nc.Network([nc.Dense(4, 6, activation="relu"), nc.Dense(6, 2)], seed=5).params.copy()
    b = nc.Network([nc.Dense(4, 6, activation="relu"), nc.Dense(6, 2)], seed=5).params.copy()
    c = nc.Network([nc.Dense(4, 6, activation="relu"), nc.Dense(6, 2)], seed=6).params.copy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("act", ["linear", "relu", "sigmoid", "tanh", "leaky_relu"])
def test_activations_forward(act, be):
    net = nc.Network([nc.Dense(4, 3, activation=act)], dtype="float64", seed=1)
    X = _data(20, 4) * 3
    np.testing.assert_allclose(net.forward(X), _np_forward(net, X), rtol=1e-12, atol=1e-12)


def test_leaky_relu_slope():
    net = nc.Network([nc.Dense(1, 1, activation="leaky_relu")], dtype="float64")
    net.params[:] = [1.0, 0.0]
    np.testing.assert_allclose(net.forward([[-3.0], [2.0]]).ravel(), [-0.03, 2.0], rtol=1e-14)


# ------------------------------------------------------------ dropout

def _dropout_net(rate, n=400):
    net = nc.Network([nc.Dropout(rate), nc.Dense(n, n)], dtype="float64", seed=0)
    net.layers[1].W[...] = np.eye(n)
    net.layers[1].b[...] = 0
    return net


def test_dropout_inverted_rate_semantics(be):
    rate, n = 0.3, 400
    net = _dropout_net(rate, n)
    assert net.layers[0].rate == rate
    X = np.ones((50, n))
    out = net.forward(X, training=True)
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1.0 / (1.0 - rate), rtol=1e-12)
    frac_zero = 1 - kept.mean()
    assert abs(frac_zero - rate) < 0.01      # 20000 draws: sd ~ 0.0032
    out2 = net.forward(X, training=True)
    assert not np.array_equal(out, out2)     # fresh mask per pass
    np.testing.assert_array_equal(net.forward(X), X)   # identity at inference
    np.testing.assert_array_equal(net.forward(X, training=False), X)


def test_dropout_zero_identity_and_bad_rates():
    net = _dropout_net(0.0, 10)
    X = _data(5, 10)
    np.testing.assert_array_equal(net.forward(X, training=True), X)
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            nc.Dropout(bad)
    nc.Dropout(0.999)


# ------------------------------------------------------------ losses

def _mse_truth(out, d):
    d = d.reshape(out.shape)
    return ((out - d) ** 2).sum() / (2 * out.shape[0])


def test_mse_loss_formats():
    X = _data(13, 4)
    net = nc.Network([nc.Dense(4, 3, activation="tanh")], dtype="float64", seed=0)
    d = _data(13, 3, seed=1)
    assert net.loss(X, d) == pytest.approx(_mse_truth(_np_forward(net, X), d), rel=1e-12)
    net1 = nc.Network([nc.Dense(4, 1)], dtype="float64", seed=0)
    d1 = _data(13, 1, seed=1).ravel()
    out = _np_forward(net1, X)
    assert net1.loss(X, d1) == pytest.approx(_mse_truth(out, d1), rel=1e-12)
    assert net1.loss(X, d1[:, None]) == pytest.approx(_mse_truth(out, d1), rel=1e-12)
    assert isinstance(net1.loss(X, d1), float)


def test_cross_entropy_loss_formats():
    X = _data(17, 4)
    net = nc.Network([nc.Dense(4, 5)], loss="cross_entropy", dtype="float64", seed=0)
    labels = np.random.default_rng(0).integers(0, 5, 17)
    P = _softmax(_np_forward(net, X))
    truth = -np.log(P[np.arange(17), labels]).mean()
    assert net.loss(X, labels) == pytest.approx(truth, rel=1e-12)
    onehot = np.eye(5)[labels]
    assert net.loss(X, onehot) == pytest.approx(truth, rel=1e-12)
    soft = np.random.default_rng(1).random((17, 5))
    soft /= soft.sum(axis=1, keepdims=True)
    assert net.loss(X, soft) == pytest.approx(-(soft * np.log(P)).sum() / 17, rel=1e-12)
    with pytest.raises(ValueError):     # rows must sum to 1
        net.loss(X, soft * 2)
    with pytest.raises(ValueError):     # non-negative
        bad = onehot.copy()
        bad[0, :2] = [-0.5, 1.5]
        bad[0, 2:] = 0
        net.loss(X, bad)


def test_bce_loss_formats():
    X = _data(11, 4)
    net = nc.Network([nc.Dense(4, 3)], loss="binary_cross_entropy", dtype="float64", seed=0)
    S = _sigmoid(_np_forward(net, X))
    d = np.random.default_rng(2).random((11, 3))      # soft targets
    truth = -(d * np.log(S) + (1 - d) * np.log(1 - S)).sum() / 11
    assert net.loss(X, d) == pytest.approx(truth, rel=1e-10)
    net1 = nc.Network([nc.Dense(4, 1)], loss="binary_cross_entropy", dtype="float64", seed=0)
    S1 = _sigmoid(_np_forward(net1, X)).ravel()
    d1 = (np.arange(11) % 2).astype(float)
    truth1 = -(d1 * np.log(S1) + (1 - d1) * np.log(1 - S1)).sum() / 11
    assert net1.loss(X, d1) == pytest.approx(truth1, rel=1e-10)
    assert net1.loss(X, d1.astype(int)) == pytest.approx(truth1, rel=1e-10)
    with pytest.raises(ValueError):
        net.loss(X, d + 1.0)


@pytest.mark.parametrize("reg,pen", [
    (lambda: nc.L1(0.3), lambda w: 0.3 * np.abs(w).sum()),
    (lambda: nc.L2(0.2), lambda w: 0.2 * (w ** 2).sum()),
    (lambda: nc.ElasticNet(0.3, 0.2), lambda w: 0.3 * np.abs(w).sum() + 0.2 * (w ** 2).sum()),
])
def test_regularizer_penalty_weights_only(reg, pen, be):
    X = _data(9, 3)
    y = _data(9, 2, seed=4)
    layers = [nc.Dense(3, 4, activation="tanh"), nc.Dropout(0.5), nc.Dense(4, 2)]
    net = nc.Network(layers, regularizer=reg(), dtype="float64", seed=0)
    plain = nc.Network([nc.Dense(3, 4, activation="tanh"), nc.Dropout(0.5), nc.Dense(4, 2)],
                       dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    v = rng.standard_normal(net.params.size)
    mask = _weights_mask(net)
    v[np.flatnonzero(mask)[:3]] = 0.0       # sign(0) = 0
    net.params[:] = v
    plain.params[:] = v
    p = pen(v[mask])
    assert net.loss(X, y) == pytest.approx(plain.loss(X, y) + p, rel=1e-12)
    J, g = net.loss_and_gradient(X, y)
    J0, g0 = plain.loss_and_gradient(X, y)
    assert J == pytest.approx(J0 + p, rel=1e-12)
    w = np.where(mask, v, 0.0)
    l1 = {"L1": 0.3, "L2": 0.0, "ElasticNet": 0.3}[type(net.regularizer).__name__]
    l2 = {"L1": 0.0, "L2": 0.2, "ElasticNet": 0.2}[type(net.regularizer).__name__]
    np.testing.assert_allclose(g - g0, l1 * np.sign(w) + 2 * l2 * w, rtol=1e-10, atol=1e-12)
    # gradient vs central differences of the whole loss (away from w = 0)
    v2 = v.copy()
    v2[v2 == 0] = 0.5
    net.params[:] = v2
    _, g2 = net.loss_and_gradient(X, y)
    fd = np.empty_like(v2)
    for i in range(v2.size):
        e = np.zeros_like(v2)
        e[i] = 1e-6
        net.params[:] = v2 + e
        jp = net.loss(X, y)
        net.params[:] = v2 - e
        jm = net.loss(X, y)
        fd[i] = (jp - jm) / 2e-6
    np.testing.assert_allclose(g2, fd, rtol=1e-5, atol=1e-7)


def test_loss_and_gradient_returns_copy():
    X, y = _data(8, 3), _data(8, 2, seed=1)
    net = nc.Network([nc.Dense(3, 2)], dtype="float64", seed=0)
    J, g = net.loss_and_gradient(X, y)
    assert isinstance(J, float) and isinstance(g, np.ndarray) and g.shape == net.params.shape
    assert not np.shares_memory(g, net.grads)
    keep = g.copy()
    net.loss_and_gradient(X * 2, y)
    np.testing.assert_array_equal(g, keep)
    assert J == pytest.approx(net.loss(X, y), rel=1e-14)


def test_loss_ignores_dropout():
    X, y = _data(8, 3), _data(8, 2, seed=1)
    a = nc.Network([nc.Dense(3, 6, activation="relu"), nc.Dropout(0.5), nc.Dense(6, 2)],
                   dtype="float64", seed=0)
    b = nc.Network([nc.Dense(3, 6, activation="relu"), nc.Dense(6, 2)], dtype="float64", seed=0)
    b.params[:] = a.params
    assert a.loss(X, y) == b.loss(X, y)
    np.testing.assert_array_equal(a.loss_and_gradient(X, y)[1], b.loss_and_gradient(X, y)[1])


# ------------------------------------------------------------ predict

def test_predict_shapes_and_dtypes():
    X = _data(10, 4)
    mse1 = nc.Network([nc.Dense(4, 1)], seed=0)
    p = mse1.predict(X)
    assert p.shape == (10,)
    np.testing.assert_allclose(p, mse1.forward(X).ravel())
    mse3 = nc.Network([nc.Dense(4, 3)], seed=0)
    assert mse3.predict(X).shape == (10, 3)
    with pytest.raises(ValueError):
        mse3.predict_proba(X)
    ce = nc.Network([nc.Dense(4, 5)], loss="cross_entropy", seed=0)
    lab = ce.predict(X)
    assert lab.shape == (10,) and np.issubdtype(lab.dtype, np.integer)
    np.testing.assert_array_equal(lab, ce.forward(X).argmax(axis=1))
    P = ce.predict_proba(X)
    assert P.shape == (10, 5)
    np.testing.assert_allclose(P, _softmax(ce.forward(X).astype(np.float64)), rtol=1e-5)
    b1 = nc.Network([nc.Dense(4, 1)], loss="binary_cross_entropy", seed=0)
    b1.params[:] = 0.0                      # logit exactly 0 -> 1
    lab = b1.predict(X)
    assert lab.shape == (10,) and np.issubdtype(lab.dtype, np.integer) and np.all(lab == 1)
    b1.params[:] = [1, 0, 0, 0, 0]
    np.testing.assert_array_equal(b1.predict(X), (X[:, 0] >= 0).astype(int))
    assert b1.predict_proba(X).shape == (10, 1)
    b3 = nc.Network([nc.Dense(4, 3)], loss="binary_cross_entropy", seed=0)
    lab = b3.predict(X)
    assert lab.shape == (10, 3) and np.issubdtype(lab.dtype, np.integer)
    np.testing.assert_array_equal(lab, (b3.forward(X) >= 0).astype(int))
    np.testing.assert_allclose(b3.predict_proba(X), _sigmoid(b3.forward(X).astype(np.float64)),
                               rtol=1e-5)


# ------------------------------------------------------------ optimizers vs torch

def _torch_run(name, kw, w0, grads):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = getattr(torch.optim, name)([p], **kw)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return p.detach().numpy()


@pytest.mark.parametrize("name,kw,tkw", [
    ("SGD", {}, dict(lr=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True), dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adagrad", {}, dict(lr=0.01)),
    ("Adagrad", dict(initial_accumulator_value=0.1), dict(lr=0.01, initial_accumulator_value=0.1)),
    ("RMSprop", {}, dict(lr=0.01)),
    ("Adam", {}, dict(lr=0.001)),
    ("AdamW", {}, dict(lr=0.001)),
])
def test_first_order_rules_match_torch(name, kw, tkw, be):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(7)
    grads = [rng.standard_normal(7) for _ in range(5)]
    w = w0.copy()
    opt = getattr(nc.optim, name)(**kw)
    for g in grads:
        opt.step(w, g.copy())           # standalone use keeps state between calls
    np.testing.assert_allclose(w, _torch_run(name, tkw, w0, grads), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["Adagrad", "RMSprop", "Adam", "AdamW"])
def test_eps_inside_sqrt(name):
    g = np.array([1e-3, -2e-3, 0.5])
    w = np.zeros(3)
    eps = 1e-2
    opt = getattr(nc.optim, name)(lr=0.1, eps=eps, eps_inside_sqrt=True)
    opt.step(w, g.copy())
    # first step: s = g^2 (Adagrad), v = (1-a) g^2 (RMSprop), m_hat = g, v_hat = g^2 (Adam)
    if name == "Adagrad":
        expect = -0.1 * g / np.sqrt(g ** 2 + eps)
    elif name == "RMSprop":
        expect = -0.1 * g / np.sqrt(0.01 * g ** 2 + eps)
    else:
        expect = -0.1 * g / np.sqrt(g ** 2 + eps)      # AdamW decay acts on w = 0
    np.testing.assert_allclose(w, expect, rtol=1e-12)


def test_classic_momentum_equivalence():
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(4) for _ in range(6)]
    w = np.zeros(4)
    opt = nc.optim.SGD(lr=0.05, momentum=0.8)
    ref = np.zeros(4)
    dw = np.zeros(4)
    for g in grads:
        opt.step(w, g.copy())
        dw = 0.8 * dw - 0.05 * g
        ref += dw
    np.testing.assert_allclose(w, ref, rtol=1e-12, atol=1e-15)


def test_clip_norm():
    g = np.array([3.0, 4.0])             # norm 5
    w = np.zeros(2)
    nc.optim.SGD(lr=1.0, clip_norm=1.0).step(w, g.copy())
    # torch.nn.utils.clip_grad_norm_: factor max_norm / (norm + 1e-6)
    np.testing.assert_allclose(w, -g / (5.0 + 1e-6), rtol=1e-12)
    assert np.linalg.norm(w) <= 1.0
    w = np.zeros(2)
    nc.optim.SGD(lr=1.0, clip_norm=10.0).step(w, g.copy())
    np.testing.assert_allclose(w, -g, rtol=1e-12)
    for cls in ("Adagrad", "RMSprop", "Adam", "AdamW"):
        assert _sig(getattr(nc.optim, cls))["clip_norm"] is None


def test_standalone_step_length_dtype_check():
    opt = nc.optim.Adam(1e-3)
    w = np.zeros(4)
    opt.step(w, np.ones(4))
    with pytest.raises(ValueError):
        opt.step(np.zeros(5), np.ones(5))
    with pytest.raises(ValueError):
        opt.step(w, np.ones(5))


def test_optimizer_bad_hyperparameters():
    with pytest.raises(ValueError):
        nc.optim.SGD(nesterov=True)                  # momentum 0
    with pytest.raises(ValueError):
        nc.optim.SGD(lr=-1.0)
    with pytest.raises(ValueError):
        nc.optim.Adam(betas=(1.0, 0.999))
    with pytest.raises(ValueError):
        nc.optim.ConjugateGradient(beta="nope")
    for beta in ("fletcher-reeves", "polak-ribiere", "polak-ribiere+", "hestenes-stiefel",
                 "liu-storey"):
        nc.optim.ConjugateGradient(beta=beta)
    nc.optim.AdamW(eps_inside_sqrt=True)


# ------------------------------------------------------------ schedules

def test_schedules_map_epoch_to_rate():
    S = nc.schedules
    assert S.Constant(0.1)(0) == pytest.approx(0.1) and S.Constant(0.1)(7) == pytest.approx(0.1)
    sd = S.StepDecay(1.0, step_size=3, gamma=0.5)
    assert [sd(e) for e in range(7)] == pytest.approx([1, 1, 1, .5, .5, .5, .25])
    ed = S.ExponentialDecay(2.0, 0.9)
    assert [ed(e) for e in range(4)] == pytest.approx([2 * 0.9 ** e for e in range(4)])
    ca = S.CosineAnnealing(1.0, T_max=10, eta_min=0.1)
    for e in (0, 3, 10):
        assert ca(e) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * e / 10)) / 2)


def test_schedule_as_lr_in_fit():
    X, y = _data(16, 3), _data(16, 1, seed=1).ravel()
    net = nc.Network([nc.Dense(3, 1)], seed=0)
    sched = nc.schedules.StepDecay(0.1, step_size=2, gamma=0.5)
    h = net.fit(X, y, optimizer=nc.optim.SGD(lr=sched), epochs=5, progress=False, seed=0)
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


# ------------------------------------------------------------ fit

def test_fit_names_and_history_keys():
    X = _data(24, 3)
    y = (X[:, 0] > 0).astype(int)
    Xv, yv = _data(8, 3, seed=9), (_data(8, 3, seed=9)[:, 0] > 0).astype(int)
    for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw",
                 "cg", "newton", "bfgs", "dfp", "lbfgs"):
        net = nc.Network([nc.Dense(3, 4, activation="tanh"), nc.Dense(4, 2)],
                         loss="cross_entropy", seed=0)
        h = net.fit(X, y, optimizer=name, epochs=2, validation_data=(Xv, yv), progress=False,
                    seed=0)
        assert isinstance(h, nc.History)
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "lr", "time"):
            assert key in h.history, (name, key)
            assert len(h.history[key]) == len(h.history["loss"]) >= 1, (name, key)
    with pytest.raises(ValueError):
        net.fit(X, y, optimizer="adamax", progress=False)


def test_regressor_history_has_no_accuracy():
    X, y = _data(20, 3), _data(20, 1, seed=1).ravel()
    net = nc.Network([nc.Dense(3, 1)], seed=0)
    h = net.fit(X, y, epochs=1, progress=False)
    assert "accuracy" not in h.history and "loss" in h.history and "lr" in h.history


def test_batch_size_defaults():
    X, y = _data(70, 3), _data(70, 1, seed=1).ravel()
    net = nc.Network([nc.Dense(3, 1)], seed=0)
    # Count optimizer steps with a per-batch callback.

    class Count(nc.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.n = 0

        def on_batch_end(self, batch, logs):
            self.n += 1
    cb = Count()
    net.fit(X, y, optimizer=nc.optim.SGD(lr=0.01), epochs=1, callbacks=[cb], progress=False)
    assert cb.n == 3                            # ceil(70 / 32)
    # full-batch optimizer: default "full", explicit int -> ValueError, network unchanged
    before = net.params.copy()
    with pytest.raises(ValueError):
        net.fit(X, y, optimizer="lbfgs", batch_size=10, epochs=1, progress=False)
    np.testing.assert_array_equal(net.params, before)
    h = net.fit(X, y, optimizer="lbfgs", epochs=1, progress=False)
    assert len(h.history["loss"]) == 1
    h = net.fit(X, y, optimizer="bfgs", batch_size="full", epochs=1, progress=False)
    assert len(h.history["loss"]) == 1


@pytest.mark.parametrize("reg", [None, nc.L2(0.05)])
def test_history_loss_is_mean_of_step_losses(reg, be):
    X, y = _data(30, 3), _data(30, 2, seed=1)
    net = nc.Network([nc.Dense(3, 4, activation="tanh"), nc.Dense(4, 2)], regularizer=reg,
                     dtype="float64", seed=0)
    ref = nc.Network([nc.Dense(3, 4, activation="tanh"), nc.Dense(4, 2)], regularizer=reg,
                     dtype="float64", seed=0)
    lr, B = 0.1, 7                               # batches 7,7,7,7,2: last smaller
    h = net.fit(X, y, optimizer=nc.optim.SGD(lr=lr), batch_size=B, epochs=2, shuffle=False,
                progress=False)
    w = ref.params.copy()
    for epoch in range(2):
        losses = []
        for s in range(0, 30, B):
            ref.params[:] = w
            J, g = ref.loss_and_gradient(X[s:s + B], y[s:s + B])   # includes the full penalty
            losses.append(J)
            w -= lr * g
        assert h.history["loss"][epoch] == pytest.approx(np.mean(losses), rel=1e-10)
        assert len(losses) == 5
    np.testing.assert_allclose(net.params, w, rtol=1e-10, atol=1e-12)


def test_batch_size_one_is_sample_by_sample():
    X, y = _data(5, 2), _data(5, 1, seed=1).ravel()
    net = nc.Network([nc.Dense(2, 1)], dtype="float64", seed=0)
    w = net.params.copy()
    net.fit(X, y, optimizer=nc.optim.SGD(lr=0.1), batch_size=1, epochs=1, shuffle=False,
            progress=False)
    for i in range(5):
        x1, t = X[i], y[i]
        out = x1 @ w[:2] + w[2]
        g = np.r_[(out - t) * x1, out - t]
        w -= 0.1 * g
    np.testing.assert_allclose(net.params, w, rtol=1e-12)


def test_full_batch_history_loss_is_whole_set_loss_after():
    X, y = _data(25, 3), _data(25, 1, seed=1).ravel()
    net = nc.Network([nc.Dense(3, 3, activation="tanh"), nc.Dense(3, 1)], regularizer=nc.L2(1e-3),
                     dtype="float64", seed=0)
    for name in ("cg", "bfgs"):
        h = net.fit(X, y, optimizer=name, epochs=1, progress=False)
        assert h.history["loss"][0] == pytest.approx(net.loss(X, y), rel=1e-12)
        assert h.history["lr"][0] > 0


def test_validation_split_last_fraction_even_when_shuffled():
    X, y = _data(40, 3), _data(40, 1, seed=1).ravel()
    net = nc.Network([nc.Dense(3, 1)], dtype="float64", seed=0)
    h = net.fit(X, y, optimizer="sgd", batch_size=4, epochs=2, shuffle=True, seed=3,
                validation_split=0.25, progress=False)
    assert h.history["val_loss"][-1] == pytest.approx(net.loss(X[30:], y[30:]), rel=1e-12)


def test_validation_split_uses_last_fraction():
    X, y = _data(40, 3), _data(40, 1, seed=1).ravel()
    net = nc.Network([nc.Dense(3, 1)], dtype="float64", seed=0)
    ref = nc.Network([nc.Dense(3, 1)], dtype="float64", seed=0)
    h = net.fit(X, y, optimizer=nc.optim.SGD(lr=0.1), batch_size=30, epochs=1, shuffle=False,
                validation_split=0.25, progress=False)
    # Keras: the held-out part is the last fraction, taken before shuffling;
    # val_loss is measured after the epoch.
    assert h.history["val_loss"][0] == pytest.approx(net.loss(X[30:], y[30:]), rel=1e-12)
    J, g = ref.loss_and_gradient(X[:30], y[:30])      # one full step on the first 30 rows
    assert h.history["loss"][0] == pytest.approx(J, rel=1e-12)
    np.testing.assert_allclose(net.params, ref.params - 0.1 * g, rtol=1e-12)
    with pytest.raises(ValueError):
        net.fit(X, y, epochs=1, validation_split=1.0, progress=False)


def test_fit_seed_reproducible_with_dropout_augment_shuffle():
    X = _data(40, 4)
    y = (X.sum(axis=1) > 0).astype(int)

    def run(fit_seed):
        net = nc.Network([nc.Dense(4, 8, activation="relu"), nc.Dropout(0.3), nc.Dense(8, 2)],
                         loss="cross_entropy", seed=1)
        net.fit(X, y, optimizer="adam", batch_size=8, epochs=3, augment=nc.augment.GaussianNoise(0.1),
                seed=fit_seed, progress=False)
        return net.params.copy()
    a, b, c = run(4), run(4), run(5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # the fit seed alone fixes the masks: an earlier training-mode forward does not matter
    net = nc.Network([nc.Dense(4, 8, activation="relu"), nc.Dropout(0.3), nc.Dense(8, 2)],
                     loss="cross_entropy", seed=1)
    net.forward(X, training=True)
    net.fit(X, y, optimizer="adam", batch_size=8, epochs=3, augment=nc.augment.GaussianNoise(0.1),
            seed=4, progress=False)
    np.testing.assert_array_equal(net.params, a)


def test_early_stopping_and_checkpoint(tmp_path):
    X, y = _data(30, 3), _data(30, 1, seed=1).ravel()
    Xv, yv = _data(10, 3, seed=2), _data(10, 1, seed=3).ravel()
    net = nc.Network([nc.Dense(3, 1)], dtype="float64", seed=0)
    path = tmp_path / "best.npz"
    es = nc.callbacks.EarlyStopping(patience=2)
    h = net.fit(X, y, optimizer=nc.optim.SGD(lr=5.0), epochs=30, validation_data=(Xv, yv),
                callbacks=[es, nc.callbacks.ModelCheckpoint(str(path))], progress=False)
    vl = h.history["val_loss"]
    best = int(np.nanargmin(vl))
    assert len(vl) == 30 or len(vl) == best + 1 + 2            # patience=2 epochs after the best
    assert len(vl) < 30                                          # lr=5 overshoots: it does stop
    assert net.loss(Xv, yv) == pytest.approx(vl[best], rel=1e-9)   # restore_best_weights
    assert nc.load(path).loss(Xv, yv) == pytest.approx(vl[best], rel=1e-9)


# ------------------------------------------------------------ divergence

@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_error_keeps_last_finite_params(be):
    X, y = _data(20, 3) * 10, _data(20, 1, seed=1).ravel() * 10
    net = nc.Network([nc.Dense(3, 8, activation="relu"), nc.Dense(8, 1)], dtype="float64",
                     seed=0)
    snapshots = []

    class Snap(nc.callbacks.Callback):
        def on_batch_end(self, batch, logs):
            snapshots.append(net.params.copy())
    with pytest.raises(nc.DivergenceError) as info:
        net.fit(X, y, optimizer=nc.optim.SGD(lr=1e3), batch_size=4, epochs=50, shuffle=False,
                callbacks=[Snap()], progress=False)
    assert isinstance(info.value, RuntimeError)
    assert np.all(np.isfinite(net.params))
    # API.md: the network is left at the parameters of the last step whose
    # loss was finite, the point that loss was computed at: from before the
    # last completed update (the failing step's loss was computed after it).
    assert len(snapshots) >= 2 and np.array_equal(net.params, snapshots[-2])
    assert np.isfinite(net.loss(X, y))


# ------------------------------------------------------------ gradcheck

def test_gradcheck_float64_dropout_off():
    X = _data(6, 3)
    y = np.array([0, 1, 2, 0, 1, 2])
    net = nc.Network([nc.Dense(3, 5, activation="tanh"), nc.Dropout(0.5), nc.Dense(5, 3)],
                     loss="cross_entropy", regularizer=nc.L2(0.01), dtype="float32", seed=0)
    before = net.params.copy()
    r = nc.gradcheck(net, X, y)
    # In float32 with eps=1e-6 the central difference would be pure rounding
    # noise; with dropout on it would not match at all.
    assert r.max_abs_error < 1e-7 and r.max_rel_error < 1e-5
    assert net.params.dtype == np.float32
    np.testing.assert_array_equal(net.params, before)


# ------------------------------------------------------------ save / load

def test_save_load_npz_no_pickle_atomic(tmp_path):
    net = nc.Network([nc.Dense(3, 4, activation="leaky_relu"), nc.Dropout(0.2), nc.Dense(4, 2)],
                     loss="binary_cross_entropy", regularizer=nc.ElasticNet(0.1, 0.2),
                     dtype="float64", seed=0)
    path = tmp_path / "m.npz"
    net.save(path)
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]       # no temp files
    assert zipfile.is_zipfile(path)
    with np.load(path, allow_pickle=False) as data:
        for k in data.files:
            data[k]                                          # no object arrays
    m = nc.load(path)
    np.testing.assert_array_equal(m.params, net.params)
    assert m.params.dtype == np.float64 and m.loss_name == "binary_cross_entropy"
    X = _data(5, 3)
    np.testing.assert_array_equal(m.forward(X), net.forward(X))
    assert m.layers[1].rate == 0.2 and m.layers[0].activation == "leaky_relu"
    y = (X[:, :2] > 0).astype(float)
    assert m.loss(X, y) == net.loss(X, y)


def test_load_bad_files(tmp_path):
    net = nc.Network([nc.Dense(3, 2)], seed=0)
    good = tmp_path / "good.npz"
    net.save(good)
    raw = good.read_bytes()
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(raw[: len(raw) // 2])
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.arange(3))
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with np.load(good) as d:
        fields = {k: d[k] for k in d.files}
    fields["format_version"] = np.array(99)
    ver = tmp_path / "ver.npz"
    np.savez(ver, **fields)
    for p in (trunc, foreign, text, ver):
        with pytest.raises(ValueError):
            nc.load(p)


# ------------------------------------------------------------ backends / threads

def test_backends_and_env_var():
    assert nc.get_backend() in ("cython", "numpy")
    nc.set_backend("numpy")
    assert nc.get_backend() == "numpy"
    with pytest.raises(ValueError):
        nc.set_backend("fortran")
    assert nc.get_backend() == "numpy"
    env = dict(os.environ, NNCORE_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", "import nncore as nc; print(nc.get_backend())"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "numpy", out.stderr


def test_backends_agree():
    X, y = _data(20, 3), np.arange(20) % 3
    res = []
    for name in ("numpy", "cython"):
        try:
            nc.set_backend(name)
        except ImportError:
            pytest.skip("compiled backend not built")
        net = nc.Network([nc.Dense(3, 5, activation="relu"), nc.Dense(5, 3)], loss="cross_entropy",
                         regularizer=nc.L1(1e-3), dtype="float64", seed=0)
        net.fit(X, y, optimizer="adam", batch_size=4, epochs=2, seed=0, progress=False)
        res.append(net.params.copy())
    np.testing.assert_allclose(res[0], res[1], rtol=1e-9, atol=1e-12)


def test_set_num_threads():
    nc.set_num_threads(1)
    with pytest.raises(ValueError):
        nc.set_num_threads(0)


# ------------------------------------------------------------ sklearn / cli / tune / plot

def test_sklearn_parameter_names():
    pytest.importorskip("sklearn")
    from nncore.sklearn import MLPClassifier, MLPRegressor
    names = {"hidden_layer_sizes", "activation", "optimizer", "learning_rate", "batch_size",
             "epochs", "l1", "l2", "dropout", "early_stopping", "validation_fraction",
             "random_state", "warm_start"}
    for cls in (MLPClassifier, MLPRegressor):
        params = cls().get_params()
        assert names <= set(params), names - set(params)
        for meth in ("fit", "partial_fit", "predict", "score"):
            assert callable(getattr(cls, meth))
    assert callable(MLPClassifier.predict_proba)


def test_cli_entry_points():
    out = subprocess.run([sys.executable, "-m", "nncore", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    for cmd in ("train", "evaluate", "predict"):
        assert cmd in out.stdout
        r = subprocess.run([sys.executable, "-m", "nncore", cmd, "--help"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr


def test_tune_and_history_plot():
    assert callable(nc.tune.search)
    assert callable(nc.tune)        # nc.tune(...) is nc.tune.search(...)
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    X, y = _data(20, 3), np.arange(20) % 2
    net = nc.Network([nc.Dense(3, 2)], loss="cross_entropy", seed=0)
    h = net.fit(X, y, epochs=2, validation_split=0.2, progress=False)
    res = h.plot()
    import matplotlib.pyplot as plt
    assert plt.get_fignums() or res is not None
    plt.close("all")


# ------------------------------------------------------------ errors

def _err_net():
    return nc.Network([nc.Dense(3, 4, activation="relu"), nc.Dense(4, 2)], loss="cross_entropy",
                      seed=0)


@pytest.mark.parametrize("X,y,exc", [
    (np.zeros((5, 4)), np.zeros(5, int), ValueError),          # wrong n_features
    (np.zeros(5), np.zeros(5, int), ValueError),               # 1-D X
    (np.zeros((5, 3)), np.zeros(4, int), ValueError),          # row mismatch
    (np.full((5, 3), np.nan), np.zeros(5, int), ValueError),   # NaN
    (np.full((5, 3), np.inf), np.zeros(5, int), ValueError),   # inf
    (np.zeros((0, 3)), np.zeros(0, int), ValueError),          # empty
    (np.zeros((5, 3)), np.array([0, 1, 2, 0, 1]), ValueError),  # label out of range
    (np.array([["a", "b", "c"]] * 5), np.zeros(5, int), TypeError),
    (np.zeros((5, 3), dtype=object), np.zeros(5, int), TypeError),
    (np.zeros((5, 3)), np.array(["a"] * 5), TypeError),
])
def test_bad_data_errors_change_nothing(X, y, exc):
    net = _err_net()
    before = net.params.copy()
    for call in (lambda: net.fit(X, y, epochs=1, progress=False),
                 lambda: net.loss(X, y), lambda: net.loss_and_gradient(X, y)):
        with pytest.raises(exc):
            call()
        np.testing.assert_array_equal(net.params, before)
    if X.dtype.kind not in "fiub" or X.ndim != 2 or X.shape[1] != 3 or not np.isfinite(X).all() or X.size == 0:
        with pytest.raises(exc):
            net.predict(X)


@pytest.mark.parametrize("kw", [
    dict(optimizer="nope"), dict(epochs=0), dict(epochs=-1), dict(batch_size=0),
    dict(batch_size="half"), dict(validation_split=-0.1), dict(validation_split=1.0),
    dict(validation_data=(np.zeros((3, 5)), np.zeros(3, int))),
])
def test_bad_fit_arguments(kw):
    net = _err_net()
    before = net.params.copy()
    X, y = _data(10, 3), np.arange(10) % 2
    with pytest.raises(ValueError):
        net.fit(X, y, progress=False, **kw)
    np.testing.assert_array_equal(net.params, before)


def test_bad_construction_names():
    with pytest.raises(ValueError):
        nc.Dense(3, 2, activation="swish")
    with pytest.raises(ValueError):
        nc.Network([nc.Dense(3, 2)], loss="hinge")
    with pytest.raises(ValueError):
        nc.Network([nc.Dense(3, 2), nc.Dense(3, 2)])      # sizes do not chain
    with pytest.raises(ValueError):
        nc.L2(-1.0)
    with pytest.raises(ValueError):
        nc.Dense(0, 2)


# ------------------------------------------------------------ deeper checks

@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_replay_without_callbacks(be):
    # No per-batch callbacks: the fused epoch loop is used. Replay by hand.
    X, y = _data(20, 3) * 10, _data(20, 1, seed=1).ravel() * 10
    mk = lambda: nc.Network([nc.Dense(3, 8, activation="relu"), nc.Dense(8, 1)],  # noqa: E731
                            dtype="float64", seed=0)
    net, ref = mk(), mk()
    lr, B = 1e3, 4
    with pytest.raises(nc.DivergenceError):
        net.fit(X, y, optimizer=nc.optim.SGD(lr=lr), batch_size=B, epochs=50, shuffle=False,
                progress=False)
    w = w_before = ref.params.copy()
    with np.errstate(all="ignore"):
        for _ in range(50 * 5):
            done = False
            for s in range(0, 20, B):
                ref.params[:] = w
                J, g = ref.loss_and_gradient(X[s:s + B], y[s:s + B])
                if not np.isfinite(J):
                    done = True
                    break
                w_before, w = w, w - lr * g
            if done:
                break
    assert done
    # the point where the last finite loss was computed (API.md)
    np.testing.assert_allclose(net.params, w_before, rtol=1e-9)
    assert np.all(np.isfinite(net.params))


def test_gradcheck_reports_central_difference_error():
    # With a large eps the central difference has a deterministic truncation
    # error; the reported max_abs_error must equal the one computed here.
    X = _data(6, 3)
    y = _data(6, 2, seed=3)
    net = nc.Network([nc.Dense(3, 4, activation="sigmoid"), nc.Dense(4, 2)], dtype="float32",
                     regularizer=nc.L2(0.1), seed=0)
    twin = nc.Network([nc.Dense(3, 4, activation="sigmoid"), nc.Dense(4, 2)], dtype="float64",
                      regularizer=nc.L2(0.1), seed=0)
    twin.params[:] = net.params.astype(np.float64)
    eps = 0.3
    _, g = twin.loss_and_gradient(X, y)
    w0 = twin.params.copy()
    fd = np.empty_like(w0)
    for i in range(w0.size):
        e = np.zeros_like(w0)
        e[i] = eps
        twin.params[:] = w0 + e
        jp = twin.loss(X, y)
        twin.params[:] = w0 - e
        jm = twin.loss(X, y)
        fd[i] = (jp - jm) / (2 * eps)
    r = nc.gradcheck(net, X, y, eps=eps)
    assert r.max_abs_error == pytest.approx(np.abs(g - fd).max(), rel=1e-6)
    assert r.max_abs_error > 1e-5


def _quadratic(n=6, seed=0):
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n, n))
    A = Q @ Q.T + n * np.eye(n)
    b = rng.standard_normal(n)

    def fun(x):
        return float(0.5 * x @ A @ x - b @ x), A @ x - b
    return fun, A, b


@pytest.mark.parametrize("beta", ["fletcher-reeves", "polak-ribiere", "polak-ribiere+",
                                  "hestenes-stiefel", "liu-storey"])
def test_cg_beta_formulas(beta):
    fun, A, b = _quadratic()
    opt = nc.optim.ConjugateGradient(beta=beta)
    x0 = np.ones(6)
    f0, g0 = fun(x0)
    x1, f1, g1, info = opt.iterate(fun, x0, f0, g0)
    assert info["lr"] > 0
    np.testing.assert_allclose(x1 - x0, -info["lr"] * g0, rtol=1e-12)   # first: steepest
    x2, f2, g2, info2 = opt.iterate(fun, x1, f1, g1)
    d0 = -g0
    y = g1 - g0
    bet = {"fletcher-reeves": g1 @ g1 / (g0 @ g0), "polak-ribiere": g1 @ y / (g0 @ g0),
           "polak-ribiere+": max(0.0, g1 @ y / (g0 @ g0)), "hestenes-stiefel": g1 @ y / (d0 @ y),
           "liu-storey": g1 @ y / (-(d0 @ g0))}[beta]
    d1 = -g1 + bet * d0
    assert d1 @ g1 < 0
    np.testing.assert_allclose(x2 - x1, info2["lr"] * d1, rtol=1e-9, atol=1e-13)


def test_cg_polak_ribiere_plus_clips():
    # Hand-made gradients so that the plain PR beta is negative.
    opt = nc.optim.ConjugateGradient(beta="polak-ribiere+")
    plain = nc.optim.ConjugateGradient(beta="polak-ribiere")
    opt._g_prev, opt._d_prev = np.array([1.0, 0.0]), np.array([-1.0, 0.0])
    plain._g_prev, plain._d_prev = opt._g_prev, opt._d_prev
    g = np.array([0.5, 0.1])               # g.(g - gp) = -0.25 + 0.01 < 0
    assert plain._beta(g) < 0 and opt._beta(g) == 0.0


@pytest.mark.parametrize("name", ["BFGS", "DFP"])
def test_quasi_newton_lecture_updates(name):
    fun, A, b = _quadratic(seed=1)
    opt = getattr(nc.optim, name)()
    x0 = np.linspace(-1, 1, 6)
    f0, g0 = fun(x0)
    x1, f1, g1, info = opt.iterate(fun, x0, f0, g0)
    np.testing.assert_allclose(x1 - x0, -info["lr"] * g0, rtol=1e-12)  # V0 = I
    s, r = x1 - x0, g1 - g0
    V = np.eye(6) * (s @ r) / (r @ r)                                   # rescaled V0
    if name == "BFGS":
        rho = 1.0 / (s @ r)
        I = np.eye(6)
        V = (I - rho * np.outer(s, r)) @ V @ (I - rho * np.outer(r, s)) + rho * np.outer(s, s)
    else:
        Vr = V @ r
        V = V + np.outer(s, s) / (s @ r) - np.outer(Vr, Vr) / (r @ Vr)
    x2, f2, g2, info2 = opt.iterate(fun, x1, f1, g1)
    np.testing.assert_allclose(x2 - x1, -info2["lr"] * (V @ g1), rtol=1e-9, atol=1e-13)


def test_quasi_newton_skips_nonpositive_curvature():
    # A fake objective whose gradient at the new point makes s'r <= 0.
    for name in ("BFGS", "DFP"):
        opt = getattr(nc.optim, name)()
        opt._direction(np.zeros(2), np.ones(2))
        V_before = opt._V.copy()

        class Res:
            x = np.array([-1.0, -1.0])
            g = np.array([2.0, 2.0])    # r = g - (1,1) = (1,1); s = (-1,-1): s'r = -2
        assert opt._update(np.zeros(2), np.ones(2), -np.ones(2), Res, True) is True
        np.testing.assert_array_equal(opt._V, V_before)


def test_newton_on_linear_regression_hits_least_squares():
    X = _data(40, 3)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.01 * _data(40, 1, seed=5).ravel()
    net = nc.Network([nc.Dense(3, 1)], dtype="float64", seed=0)
    net.fit(X, y, optimizer="newton", epochs=2, progress=False)
    Xa = np.c_[X, np.ones(40)]
    sol = np.linalg.lstsq(Xa, y, rcond=None)[0]
    np.testing.assert_allclose(net.params, sol, rtol=1e-4, atol=1e-5)


def test_full_batch_fit_is_optimizer_iterate_on_the_loss():
    X, y = _data(25, 3), (np.arange(25) % 3)
    mk = lambda: nc.Network([nc.Dense(3, 4, activation="tanh"), nc.Dense(4, 3)],  # noqa: E731
                            loss="cross_entropy", regularizer=nc.L2(1e-2), dtype="float64", seed=0)
    net, ref = mk(), mk()
    h = net.fit(X, y, optimizer=nc.optim.BFGS(), epochs=2, progress=False)
    opt = nc.optim.BFGS()

    def fun(w):
        ref.params[:] = w
        return ref.loss_and_gradient(X, y)
    x = ref.params.copy()
    f, g = fun(x)
    for epoch in range(2):
        x, f, g, info = opt.iterate(fun, x, f, g)
        assert h.history["lr"][epoch] == pytest.approx(info["lr"], rel=1e-12)
        assert h.history["loss"][epoch] == pytest.approx(f, rel=1e-12)
    np.testing.assert_allclose(net.params, x, rtol=1e-10)


def test_augmentations():
    rng = np.random.default_rng(0)
    X = rng.random((200, 12))
    keep = X.copy()
    out = nc.augment.GaussianNoise(0.5)(X, np.random.default_rng(1))
    np.testing.assert_array_equal(X, keep)
    assert out.shape == X.shape and out.dtype == X.dtype
    assert abs((out - X).std() - 0.5) < 0.03 and abs((out - X).mean()) < 0.03
    img = np.arange(12, dtype=float).reshape(1, 12) + 1
    Xi = np.repeat(img, 50, axis=0)
    flip = nc.augment.RandomFlip((3, 4))(Xi, np.random.default_rng(2))
    mirrored = img.reshape(3, 4)[:, ::-1].reshape(12)
    is_orig = (flip == img).all(axis=1)
    is_flip = (flip == mirrored).all(axis=1)
    assert np.all(is_orig | is_flip) and is_orig.any() and is_flip.any()
    shift = nc.augment.RandomShift((3, 4), 1)(Xi, np.random.default_rng(3))
    base = img.reshape(3, 4)
    cands = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            c = np.zeros((3, 4))
            for i in range(3):
                for j in range(4):
                    si, sj = i - dy, j - dx
                    if 0 <= si < 3 and 0 <= sj < 4:
                        c[i, j] = base[si, sj]
            cands.append(c.reshape(12))
    cands = np.array(cands)
    for row in shift:
        assert (np.abs(cands - row).sum(axis=1) == 0).any()
    assert len({tuple(r) for r in shift}) > 3
    comp = nc.augment.Compose([nc.augment.RandomFlip((3, 4)), nc.augment.GaussianNoise(0.0)])
    assert comp(Xi, np.random.default_rng(0)).shape == Xi.shape


def test_progress_none_is_silent_off_terminal(capfd):
    X, y = _data(20, 3), _data(20, 1, seed=1).ravel()
    net = nc.Network([nc.Dense(3, 1)], seed=0)
    net.fit(X, y, epochs=2)                     # progress=None; pytest's stderr is no tty
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_input_dtypes_and_lists():
    X = np.arange(12).reshape(4, 3)
    net = nc.Network([nc.Dense(3, 2)], dtype="float64", seed=0)
    np.testing.assert_array_equal(net.forward(X), net.forward(X.astype(float)))
    np.testing.assert_array_equal(net.forward(X.tolist()), net.forward(X.astype(float)))
    net32 = nc.Network([nc.Dense(3, 2)], seed=0)
    assert net32.forward(X.astype(np.float64)).dtype == np.float32
    assert isinstance(net32.loss(X, np.zeros((4, 2))), float)
    ce = nc.Network([nc.Dense(3, 3)], loss="cross_entropy", seed=0)
    lab = np.array([0, 1, 2, 1])
    assert ce.loss(X, lab.tolist()) == ce.loss(X, lab)


def test_target_shape_errors():
    X = _data(6, 3)
    mse3 = nc.Network([nc.Dense(3, 3)], seed=0)
    with pytest.raises(ValueError):
        mse3.loss(X, np.zeros(6))                    # (N,) only for K = 1
    bce3 = nc.Network([nc.Dense(3, 3)], loss="binary_cross_entropy", seed=0)
    with pytest.raises(ValueError):
        bce3.loss(X, np.zeros(6))
    with pytest.raises(ValueError):
        mse3.loss(X, np.zeros((6, 2)))


def test_validation_data_nan_is_value_error():
    net = _err_net()
    before = net.params.copy()
    X, y = _data(10, 3), np.arange(10) % 2
    Xv = _data(4, 3)
    Xv[0, 0] = np.nan
    with pytest.raises(ValueError):
        net.fit(X, y, validation_data=(Xv, np.zeros(4, int)), progress=False)
    np.testing.assert_array_equal(net.params, before)


def test_cg_restarts_every_n_iterations():
    qfun, A, b = _quadratic(n=3, seed=2)

    def fun(x):                          # not quadratic: CG does not finish in n steps
        f, g = qfun(x)
        return f + 0.25 * float((x ** 4).sum()), g + x ** 3
    opt = nc.optim.ConjugateGradient()
    x = np.array([1.0, -1.0, 2.0])
    f, g = fun(x)
    for _ in range(3):
        x, f, g, info = opt.iterate(fun, x, f, g)
        if info["stop"]:
            pytest.skip("converged before the restart")
    x4, _, _, info = opt.iterate(fun, x, f, g)
    np.testing.assert_allclose(x4 - x, -info["lr"] * g, rtol=1e-9, atol=1e-14)


def test_schedule_with_adam_and_history_lr_time():
    X, y = _data(16, 3), _data(16, 1, seed=1).ravel()
    net = nc.Network([nc.Dense(3, 1)], seed=0)
    sched = nc.schedules.ExponentialDecay(0.01, 0.5)
    h = net.fit(X, y, optimizer=nc.optim.Adam(lr=sched), epochs=3, progress=False)
    assert h.history["lr"] == pytest.approx([0.01, 0.005, 0.0025])
    h = net.fit(X, y, epochs=2, progress=False)                    # "adam" default lr
    assert h.history["lr"] == pytest.approx([0.001, 0.001])
    assert all(t >= 0 for t in h.history["time"])


def test_params_setter_and_num_threads():
    net = nc.Network([nc.Dense(3, 1)], seed=0)
    W = net.layers[0].W
    net.params = np.arange(4.0)
    np.testing.assert_array_equal(W.ravel(), [0, 1, 2])
    assert net.layers[0].b[0] == 3
    nc.set_num_threads(1)
    assert nc.get_num_threads() == 1


def test_tune_any_executor():
    from concurrent.futures import ThreadPoolExecutor
    X = _data(40, 3)
    y = (X[:, 0] > 0).astype(int)
    with ThreadPoolExecutor(2) as ex:
        res = nc.tune({"epochs": [2], "lr": [1e-3, 1e-2]}, X, y, executor=ex, progress=False)
    assert len(res.records) == 2 and all(r["status"] == "ok" for r in res.records)


def test_failed_save_leaves_old_file_and_no_temp(tmp_path):
    net = nc.Network([nc.Dense(3, 2)], seed=0)
    path = tmp_path / "m.npz"
    net.save(path)
    before = path.read_bytes()
    other = nc.Network([nc.Dense(3, 2)], seed=1)
    with pytest.raises((TypeError, ValueError)):
        other.save(path, metadata={"x": object()})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    np.testing.assert_array_equal(nc.load(path).params, net.params)


# ------------------------------------------------------------ wrong-typed hyper-parameters
# API.md: "ValueError for ... bad hyper-parameters"; a wrong *type* of
# hyper-parameter raises nc.errors.InvalidParameterError, which is both a
# ValueError (the contract) and a TypeError (Python habit).

@pytest.mark.parametrize("make", [
    lambda: nc.optim.SGD(lr="fast"), lambda: nc.optim.SGD(nesterov=1),
    lambda: nc.optim.Adam(eps="x"), lambda: nc.optim.Newton(hess=3),
    lambda: nc.optim.LBFGS(history=2.5), lambda: nc.optim.get(3),
    lambda: nc.schedules.StepDecay(0.1, 2.5), lambda: nc.schedules.ExponentialDecay("a", 0.5),
    lambda: nc.callbacks.EarlyStopping(min_delta="x"),
    lambda: nc.callbacks.EarlyStopping(restore_best_weights="yes"),
    lambda: nc.callbacks.ModelCheckpoint("m.npz", save_best_only=1),
    lambda: nc.set_num_threads(1.5), lambda: nc.set_backend(None),
    lambda: nc.augment.GaussianNoise("a"),
])
def test_wrong_typed_hyperparameters_are_value_errors(make):
    with pytest.raises(ValueError):
        make()




@pytest.mark.parametrize("make", [
    lambda: nc.Dense(3.0, 2), lambda: nc.Dropout("0.5"), lambda: nc.L2("a"),
    lambda: nc.Network([nc.Dense(3, 2)], regularizer="l2"),
])
def test_wrong_typed_layer_hyperparameters_are_value_errors(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("kw", [dict(epochs=2.5), dict(batch_size=2.5), dict(shuffle="yes"),
                                dict(validation_split="a"), dict(augment=3), dict(callbacks=[1])])
def test_wrong_typed_fit_arguments_are_value_errors(kw):
    net = _err_net()
    with pytest.raises(ValueError):
        net.fit(_data(10, 3), np.arange(10) % 2, progress=False, **kw)


@pytest.mark.parametrize("name,kw,tkw", [
    ("Adam", dict(lr=0.01), dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1), dict(lr=0.01, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("RMSprop", dict(lr=0.01), dict(lr=0.01)),
    ("Adagrad", dict(lr=0.05), dict(lr=0.05)),
])
def test_fit_epoch_matches_torch_optimizer_replay(name, kw, tkw, be):
    # fit (fused epoch loop, no callbacks) == replay with torch.optim on the
    # gradients of loss_and_gradient, batch by batch, ElasticNet with some
    # weights exactly 0 (sign(0) = 0), last batch smaller.
    torch = pytest.importorskip("torch")
    X, y = _data(23, 3), np.arange(23) % 3
    mk = lambda: nc.Network([nc.Dense(3, 5, activation="leaky_relu"), nc.Dense(5, 3)],  # noqa: E731
                            loss="cross_entropy", regularizer=nc.ElasticNet(0.01, 0.02),
                            dtype="float64", seed=0)
    net, ref = mk(), mk()
    net.layers[0].W[0, :2] = 0.0
    ref.params[:] = net.params
    B = 5
    h = net.fit(X, y, optimizer=getattr(nc.optim, name)(**kw), batch_size=B, epochs=2,
                shuffle=False, progress=False)
    p = torch.nn.Parameter(torch.tensor(ref.params.copy()))
    opt = getattr(torch.optim, name)([p], **tkw)
    for epoch in range(2):
        losses = []
        for s in range(0, 23, B):
            ref.params[:] = p.detach().numpy()
            J, g = ref.loss_and_gradient(X[s:s + B], y[s:s + B])
            losses.append(J)
            p.grad = torch.tensor(g)
            opt.step()
        assert h.history["loss"][epoch] == pytest.approx(np.mean(losses), rel=1e-10)
    np.testing.assert_allclose(net.params, p.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_cg_restarts_on_loss_of_descent():
    fun, A, b = _quadratic(n=4, seed=3)
    opt = nc.optim.ConjugateGradient(beta="fletcher-reeves")
    x0 = np.ones(4)
    f0, g0 = fun(x0)
    opt.iterate(fun, x0 + 0.1, *fun(x0 + 0.1))        # initialise the state
    opt._g_prev = 0.1 * g0                           # beta = 100
    opt._d_prev = g0.copy()                          # beta d_prev - g points uphill
    opt._since_restart = 0
    x1, _, _, info = opt.iterate(fun, x0, f0, g0)
    np.testing.assert_allclose(x1 - x0, -info["lr"] * g0, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_losses_stable_for_extreme_logits(dtype, be):
    X = np.array([[1.0], [-1.0]])
    bce = nc.Network([nc.Dense(1, 1)], loss="binary_cross_entropy", dtype=dtype)
    bce.params[:] = [1000.0, 0.0]
    J, g = bce.loss_and_gradient(X, [0, 1])
    assert J == pytest.approx(1000.0) and np.allclose(g, [1.0, 0.0])
    np.testing.assert_array_equal(bce.predict_proba(X).ravel(), [1.0, 0.0])
    ce = nc.Network([nc.Dense(1, 2)], loss="cross_entropy", dtype=dtype)
    ce.params[:] = [1000.0, -1000.0, 0.0, 0.0]
    J, g = ce.loss_and_gradient(X, [1, 0])
    assert J == pytest.approx(2000.0) and np.allclose(g, [1.0, -1.0, 0.0, 0.0])
    assert np.all(np.isfinite(ce.predict_proba(X)))


def test_validation_data_overrides_split():
    X, y = _data(30, 3), _data(30, 1, seed=1).ravel()
    net = nc.Network([nc.Dense(3, 1)], dtype="float64", seed=0)
    ref = nc.Network([nc.Dense(3, 1)], dtype="float64", seed=0)
    h = net.fit(X, y, validation_data=(X[:5], y[:5]), validation_split=0.2, epochs=1,
                batch_size=30, shuffle=False, progress=False)
    assert h.history["val_loss"][0] == pytest.approx(net.loss(X[:5], y[:5]), rel=1e-12)
    assert h.history["loss"][0] == pytest.approx(ref.loss(X, y), rel=1e-12)   # trained on all


def test_fit_adamw_schedule_clip_matches_torch(be):
    torch = pytest.importorskip("torch")
    X, y = _data(23, 3), np.arange(23) % 3
    mk = lambda: nc.Network([nc.Dense(3, 5, activation="tanh"), nc.Dense(5, 3)],  # noqa: E731
                            loss="cross_entropy", dtype="float64", seed=0)
    net, ref = mk(), mk()
    opt = nc.optim.AdamW(lr=nc.schedules.StepDecay(0.05, 1, 0.5), weight_decay=0.1, clip_norm=0.5)
    h = net.fit(X, y, optimizer=opt, batch_size=5, epochs=3, shuffle=False, progress=False)
    p = torch.nn.Parameter(torch.tensor(ref.params.copy()))
    topt = torch.optim.AdamW([p], lr=0.05, weight_decay=0.1)
    for epoch in range(3):
        for group in topt.param_groups:
            group["lr"] = 0.05 * 0.5 ** epoch
        for s in range(0, 23, 5):
            ref.params[:] = p.detach().numpy()
            _, g = ref.loss_and_gradient(X[s:s + 5], y[s:s + 5])
            p.grad = torch.tensor(g)
            torch.nn.utils.clip_grad_norm_([p], 0.5)
            topt.step()
    assert h.history["lr"] == pytest.approx([0.05, 0.025, 0.0125])
    np.testing.assert_allclose(net.params, p.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_cli_train_saves_model_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from nncore.cli import main
    out = tmp_path / "net.npz"
    assert main(["train", "xor", "--layers", "4", "--epochs", "2", "--val-split", "0",
                 "--out", str(out), "--no-progress"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["net.npz", "net.png"]
    with open(tmp_path / "net.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert main(["train", "xor", "--layers", "4", "--epochs", "2", "--val-split", "0",
                 "--out", str(tmp_path / "b.npz"), "--no-plot", "--no-progress"]) == 0
    assert not (tmp_path / "b.png").exists()
    capsys.readouterr()


def test_tune_accepts_sklearn_names():
    X = _data(40, 3)
    y = (X[:, 0] > 0).astype(int)
    res = nc.tune({"hidden_layer_sizes": [(4,), (6, 3)], "learning_rate": [1e-2], "epochs": [2]},
                  X, y, executor="serial", progress=False)
    assert all(r["status"] == "ok" for r in res.records)
    widths = sorted(tuple(d.n_out for d in nc.tune.build(r["params"], 3, 2)
                          .layers[:-1]) for r in res.records)
    assert widths == [(4,), (6, 3)]


# --------------------------------------------------------------------------- docs

_DOC_MODULES = ("optim", "schedules", "callbacks", "augment", "plot")


def _public_callables():
    import importlib
    for mod_name, names in [("nncore", nc.__all__)] + [
            (f"nncore.{m}", importlib.import_module(f"nncore.{m}").__all__) for m in _DOC_MODULES]:
        mod = importlib.import_module(mod_name)
        for name in names:
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or not callable(obj):
                continue
            yield f"{mod_name}.{name}", obj
            if inspect.isclass(obj):
                for attr, fn in vars(obj).items():
                    if not attr.startswith("_") and inspect.isfunction(fn):
                        yield f"{mod_name}.{name}.{attr}", getattr(obj, attr)


def test_all_reexports_public_names():
    missing = [name for name in nc.__all__ if not hasattr(nc, name)]
    assert not missing
    assert {"optim", "schedules", "callbacks", "augment", "plot", "errors", "datasets", "tune",
            "Network", "Dense", "Dropout", "L1", "L2", "ElasticNet", "History", "load",
            "gradcheck", "DivergenceError", "set_backend", "get_backend",
            "set_num_threads"} <= set(nc.__all__)


def test_public_callables_have_numpydoc_parameters():
    # A public name that takes arguments documents them (numpydoc "Parameters").
    undocumented = []
    for qual, obj in _public_callables():
        doc = inspect.getdoc(obj) or ""
        try:
            params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
        except (TypeError, ValueError):
            params = []
        if not doc or (params and "Parameters" not in doc):
            undocumented.append(qual)
    assert not undocumented, undocumented
