"""Network: flat buffers and views, initialisation, forward/predict conventions,
losses against independent NumPy formulas, gradients against central
differences (every activation x loss x regulariser, both backends), dropout."""

import math
import zlib

import numpy as np
import pytest

import nncore as nc
import nncore.backend as B

ACTS = ["linear", "relu", "leaky_relu", "sigmoid", "tanh"]
REGS = {
    "none": None,
    "l1": lambda: nc.L1(0.03),
    "l2": lambda: nc.L2(0.05),
    "elastic": lambda: nc.ElasticNet(0.02, 0.04),
}


def _data(loss, n=6, d=3, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if loss == "mse":
        y = rng.normal(size=(n, k))
    elif loss == "ce_labels":
        y = rng.integers(0, k, n)
    elif loss == "ce_prob":
        p = rng.random((n, k)) + 0.1
        y = p / p.sum(1, keepdims=True)
    else:
        y = rng.random((n, k))  # soft BCE targets
    return X, y


def _loss_name(loss):
    return {"mse": "mse", "ce_labels": "cross_entropy", "ce_prob": "cross_entropy",
            "bce": "binary_cross_entropy"}[loss]


def _np_act(s, act):
    if act == "linear":
        return s
    if act == "relu":
        return np.maximum(s, 0)
    if act == "leaky_relu":
        return np.where(s > 0, s, 0.01 * s)
    if act == "sigmoid":
        return 1 / (1 + np.exp(-s))
    return np.tanh(s)


def _np_forward(net, X):
    h = np.asarray(X, np.float64)
    for layer in net.layers:
        if isinstance(layer, nc.Dense):
            h = _np_act(h @ layer.W.astype(np.float64) + layer.b, layer.activation)
    return h


def _np_loss(net, X, y):
    """The lecture's losses written out independently of the backend."""
    out = _np_forward(net, X)
    n = out.shape[0]
    if net.loss_name == "mse":
        d = out - np.asarray(y, float).reshape(out.shape)
        J = 0.5 * np.sum(d * d) / n
    elif net.loss_name == "cross_entropy":
        z = out - out.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        y = np.asarray(y)
        J = -(logp[np.arange(n), y].sum() if y.ndim == 1 else (y * logp).sum()) / n
    else:
        t = np.asarray(y, float).reshape(out.shape)
        p = 1 / (1 + np.exp(-out))
        J = -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p)) / n
    reg = net.regularizer
    if reg is not None:
        for layer in net.layers:
            if isinstance(layer, nc.Dense):
                W = layer.W.astype(np.float64)
                J += reg.l1 * np.abs(W).sum() + reg.l2 * (W * W).sum()
    return J


# --------------------------------------------------------------------------- buffers

def test_flat_buffer_layout_and_views():
    net = nc.Network([nc.Dense(3, 4, "relu"), nc.Dropout(0.5), nc.Dense(4, 2)], seed=0)
    d1, d2 = net.layers[0], net.layers[2]
    assert net.params.shape == (3 * 4 + 4 + 4 * 2 + 2,) == net.grads.shape
    assert net.n_params == 26
    for layer in (d1, d2):
        for a, buf in ((layer.W, net.params), (layer.b, net.params),
                       (layer.dW, net.grads), (layer.db, net.grads)):
            assert np.shares_memory(a, buf)
            assert a.flags.c_contiguous
    # layout: W1 (C order), b1, W2, b2
    v = np.arange(26, dtype=np.float32)
    net.params[:] = v
    np.testing.assert_array_equal(d1.W, v[:12].reshape(3, 4))
    np.testing.assert_array_equal(d1.b, v[12:16])
    np.testing.assert_array_equal(d2.W, v[16:24].reshape(4, 2))
    np.testing.assert_array_equal(d2.b, v[24:26])
    # the property returns the buffer itself; assignment copies into it
    buf = net.params
    net.params = np.zeros(26)
    assert net.params is buf and not buf.any()
    assert net.params.dtype == np.float32


def test_init_defaults_and_seed():
    net = nc.Network([nc.Dense(50, 40, "relu"), nc.Dense(40, 30, "tanh"),
                      nc.Dense(30, 20, "leaky_relu", init="glorot_normal")], seed=1,
                     dtype="float64")
    a, b, c = net.layers
    assert np.all(a.b == 0) and np.all(b.b == 0) and np.all(c.b == 0)
    assert np.abs(a.W).max() <= math.sqrt(6 / 50) and np.abs(a.W).max() > 0.9 * math.sqrt(6 / 50)
    lim = math.sqrt(6 / 70)
    assert np.abs(b.W).max() <= lim and np.abs(b.W).max() > 0.9 * lim
    assert abs(c.W.std() - math.sqrt(2 / 50)) < 0.2 * math.sqrt(2 / 50)
    same = nc.Network([nc.Dense(50, 40, "relu"), nc.Dense(40, 30, "tanh"),
                       nc.Dense(30, 20, "leaky_relu", init="glorot_normal")], seed=1,
                      dtype="float64")
    np.testing.assert_array_equal(net.params, same.params)
    f32 = nc.Network([nc.Dense(50, 40, "relu"), nc.Dense(40, 30, "tanh"),
                      nc.Dense(30, 20, "leaky_relu", init="glorot_normal")], seed=1)
    np.testing.assert_array_equal(f32.params, net.params.astype(np.float32))
    other = nc.Network([nc.Dense(50, 40, "relu")], seed=2)
    assert not np.array_equal(other.layers[0].W, f32.layers[0].W)


def test_repr_and_summary(capsys):
    net = nc.Network([nc.Dense(64, 128, activation="relu"), nc.Dropout(0.25), nc.Dense(128, 10)],
                     loss="cross_entropy", regularizer=nc.L2(1e-4), seed=0)
    r = repr(net)
    assert "Dense(64, 128, activation='relu')" in r and "Dropout(0.25)" in r
    assert "Dense(128, 10)" in r and "9,610" in r and "cross_entropy" in r
    net.summary()
    out = capsys.readouterr().out
    assert "Total params: 9,610" in out and "(None, 128)" in out
    assert net.layers[0].n_in == 64 and net.layers[0].activation == "relu"
    assert net.layers[1].rate == 0.25


# --------------------------------------------------------------------------- forward / predict

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_matches_numpy(backend, dtype):
    net = nc.Network([nc.Dense(4, 6, "tanh"), nc.Dropout(0.3), nc.Dense(6, 5, "relu"),
                      nc.Dense(5, 3, "sigmoid")], seed=3, dtype=dtype)
    X = np.random.default_rng(0).normal(size=(9, 4))
    out = net.forward(X)
    assert out.dtype == np.dtype(dtype) and out.shape == (9, 3)
    tol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(out, _np_forward(net, X), rtol=tol, atol=tol)
    # float64 input to a float32 net, lists, ints, Fortran order: all accepted
    np.testing.assert_allclose(net.forward(X.tolist()), out, rtol=tol, atol=tol)
    np.testing.assert_allclose(net.forward(np.asfortranarray(X)), out, rtol=tol, atol=tol)


def test_chunked_evaluation_equals_single_pass(backend):
    net = nc.Network([nc.Dense(3, 5, "tanh"), nc.Dense(5, 4)], loss="cross_entropy",
                     regularizer=nc.L2(0.01), seed=0, dtype="float64")
    X, y = _data("ce_labels", n=23, k=4)
    out = net.forward(X)
    L, g = net.loss_and_gradient(X, y)
    net._chunk_rows = 5  # 23 rows -> chunks of 5,5,5,5,3
    np.testing.assert_allclose(net.forward(X), out, rtol=0, atol=1e-15)
    L2, g2 = net.loss_and_gradient(X, y)
    assert abs(L2 - L) < 1e-14
    np.testing.assert_allclose(g2, g, rtol=1e-12, atol=1e-15)
    assert abs(net.loss(X, y) - L) < 1e-14


def test_predict_conventions():
    X = np.random.default_rng(0).normal(size=(8, 3))
    reg1 = nc.Network([nc.Dense(3, 1)], seed=0)
    assert reg1.predict(X).shape == (8,)
    reg2 = nc.Network([nc.Dense(3, 2)], seed=0)
    assert reg2.predict(X).shape == (8, 2)
    ce = nc.Network([nc.Dense(3, 4)], loss="cross_entropy", seed=0)
    lab = ce.predict(X)
    assert lab.dtype == np.int64 and lab.shape == (8,)
    np.testing.assert_array_equal(lab, ce.forward(X).argmax(1))
    P = ce.predict_proba(X)
    z = ce.forward(X).astype(np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(P, e / e.sum(1, keepdims=True), rtol=1e-6)
    b1 = nc.Network([nc.Dense(3, 1)], loss="binary_cross_entropy", seed=0)
    lab = b1.predict(X)
    assert lab.shape == (8,) and set(np.unique(lab)) <= {0, 1}
    np.testing.assert_array_equal(lab, (b1.forward(X)[:, 0] >= 0).astype(int))
    np.testing.assert_allclose(b1.predict_proba(X), 1 / (1 + np.exp(-b1.forward(X))), rtol=1e-6)
    assert b1.predict_proba(X).shape == (8, 1)
    b3 = nc.Network([nc.Dense(3, 3)], loss="binary_cross_entropy", seed=0)
    assert b3.predict(X).shape == (8, 3)
    with pytest.raises(ValueError, match="predict_proba"):
        reg1.predict_proba(X)


# --------------------------------------------------------------------------- losses and gradients

@pytest.mark.parametrize("loss", ["mse", "ce_labels", "ce_prob", "bce"])
@pytest.mark.parametrize("reg", list(REGS))
def test_loss_matches_independent_formula(backend, loss, reg):
    X, y = _data(loss)
    net = nc.Network([nc.Dense(3, 4, "tanh"), nc.Dense(4, 3)], loss=_loss_name(loss),
                     regularizer=REGS[reg]() if REGS[reg] else None, seed=0, dtype="float64")
    assert abs(net.loss(X, y) - _np_loss(net, X, y)) < 1e-12


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("loss", ["mse", "ce_labels", "ce_prob", "bce"])
@pytest.mark.parametrize("reg", list(REGS))
def test_gradient_vs_finite_differences(backend, act, loss, reg):
    """Backprop against central differences of the loss, every combination."""
    X, y = _data(loss, seed=zlib.crc32(repr((act, loss, reg)).encode()) % 1000)
    net = nc.Network([nc.Dense(3, 4, act), nc.Dense(4, 4, act), nc.Dense(4, 3)],
                     loss=_loss_name(loss), regularizer=REGS[reg]() if REGS[reg] else None,
                     seed=1, dtype="float64")
    L, g = net.loss_and_gradient(X, y)
    p0 = net.params.copy()
    eps = 1e-6
    num = np.empty_like(g)
    for i in range(p0.size):
        net.params[i] = p0[i] + eps
        jp = net.loss(X, y)
        net.params[i] = p0[i] - eps
        jm = net.loss(X, y)
        net.params[i] = p0[i]
        num[i] = (jp - jm) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=2e-8)
    # gradcheck reports the same agreement
    res = nc.gradcheck(net, X, y)
    assert res.max_abs_error < 2e-8
    np.testing.assert_array_equal(net.params, p0)


def test_bce_and_mse_accept_1d_targets():
    X, y = _data("bce", k=1)
    net = nc.Network([nc.Dense(3, 1)], loss="binary_cross_entropy", seed=0, dtype="float64")
    assert net.loss(X, y[:, 0]) == net.loss(X, y)
    net = nc.Network([nc.Dense(3, 1)], seed=0, dtype="float64")
    assert net.loss(X, y[:, 0]) == net.loss(X, y)


def test_float32_gradient_close_to_float64():
    X, y = _data("ce_labels")
    n64 = nc.Network([nc.Dense(3, 4, "tanh"), nc.Dense(4, 3)], loss="cross_entropy", seed=0,
                     dtype="float64")
    n32 = n64.copy("float32")
    L64, g64 = n64.loss_and_gradient(X, y)
    L32, g32 = n32.loss_and_gradient(X, y)
    assert g32.dtype == np.float32
    assert abs(L32 - L64) < 1e-5 and np.abs(g32 - g64).max() < 1e-5


def test_penalty_excludes_biases():
    net = nc.Network([nc.Dense(2, 2)], regularizer=nc.L1(1.0), seed=0, dtype="float64")
    X = np.zeros((1, 2))
    y = np.zeros((1, 2))
    net.layers[0].b[:] = 5.0
    net.layers[0].W[:] = [[1.0, -2.0], [0.0, 3.0]]
    # outputs are b = 5: data loss 0.5 * (25 + 25); penalty = 6
    assert net.loss(X, y) == pytest.approx(25.0 + 6.0)
    _, g = net.loss_and_gradient(X, y)
    np.testing.assert_allclose(g[:4], [1.0, -1.0, 0.0, 1.0])  # sign(0) = 0, X = 0
    np.testing.assert_allclose(g[4:], [5.0, 5.0])


# --------------------------------------------------------------------------- dropout

def test_dropout_statistics_and_identity_at_inference(backend):
    net = nc.Network([nc.Dropout(0.3), nc.Dense(2000, 1)], seed=0, dtype="float64")
    net.layers[1].W[:] = 0
    net.layers[1].W[0, 0] = 1.0
    X = np.ones((50, 2000))
    np.testing.assert_array_equal(net.forward(X), np.ones((50, 1)))
    ws_before = net.forward(X, training=True)
    # inspect the mask through the workspace: zeros with prob 0.3, survivors 1/0.7
    ws = net._workspace(50)
    mask = ws.arrays(0)["mask"]
    frac = np.mean(mask == 0)
    assert abs(frac - 0.3) < 0.005  # 100000 draws: std 0.0014
    np.testing.assert_allclose(np.unique(mask), [0.0, 1 / 0.7])
    assert abs(mask.mean() - 1.0) < 0.01
    np.testing.assert_array_equal(ws_before[:, 0], mask[:, 0])
    # a fresh mask each training pass
    m1 = ws.arrays(0)["mask"].copy()
    net.forward(X, training=True)
    assert not np.array_equal(ws.arrays(0)["mask"], m1)


def test_dropout_rate_zero_is_identity():
    a = nc.Network([nc.Dense(3, 4, "relu"), nc.Dropout(0.0), nc.Dense(4, 2)], seed=0)
    b = nc.Network([nc.Dense(3, 4, "relu"), nc.Dense(4, 2)], seed=0)
    X = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(a.forward(X, training=True), b.forward(X))


def test_dropout_gradient_with_fixed_mask(backend):
    """Training-mode backprop through a fixed mask equals central differences."""
    X, y = _data("ce_labels", n=8)
    net = nc.Network([nc.Dense(3, 6, "tanh"), nc.Dropout(0.5), nc.Dense(6, 3)],
                     loss="cross_entropy", seed=0, dtype="float64")
    T = net._check_y(y, 8)

    def J(grad=False):
        val, _, _ = net._loss_grad(X, T, training=True, grad=grad, seed=123, counter=7)
        return val

    J(grad=True)
    g = net.grads.copy()
    p0 = net.params.copy()
    num = np.empty_like(g)
    for i in range(p0.size):
        net.params[i] = p0[i] + 1e-6
        jp = J()
        net.params[i] = p0[i] - 1e-6
        jm = J()
        net.params[i] = p0[i]
        num[i] = (jp - jm) / 2e-6
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-9)
    # the mask really dropped something: gradient differs from inference mode
    _, g_inf = net.loss_and_gradient(X, y)
    assert not np.allclose(g, g_inf)


def test_dropout_masks_identical_across_backends():
    names = []
    for name in ("cython", "numpy"):
        try:
            B._load(name)
            names.append(name)
        except ImportError:
            pass
    if len(names) < 2:
        pytest.skip("compiled backend not built")
    outs = []
    for name in names:
        nc.set_backend(name)
        net = nc.Network([nc.Dropout(0.4), nc.Dense(30, 2)], seed=0, dtype="float64")
        outs.append(net.forward(np.ones((20, 30)), training=True))
    # Same masks, so the same sums of kept inputs: equal up to the GEMM library's
    # summation order (NNCORE_GEMM=mkl rounds them differently from NumPy's BLAS);
    # another mask would move an output by a whole weight.
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-13, atol=1e-13)


def test_copy_is_independent():
    net = nc.Network([nc.Dense(3, 2)], seed=0)
    c = net.copy("float64")
    assert c.dtype == np.float64
    np.testing.assert_allclose(c.params, net.params)
    c.params[:] = 0
    assert net.params.any()


def test_pickle_and_deepcopy_keep_views():
    import copy
    import pickle

    net = nc.Network([nc.Dense(3, 4, "relu"), nc.Dropout(0.2), nc.Dense(4, 2)],
                     loss="cross_entropy", regularizer=nc.L1(0.1), seed=0)
    net.metadata["a"] = 1
    X = np.random.default_rng(0).normal(size=(5, 3))
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        np.testing.assert_array_equal(clone.params, net.params)
        np.testing.assert_array_equal(clone.forward(X), net.forward(X))
        assert clone.metadata == {"a": 1} and clone.regularizer == net.regularizer
        assert np.shares_memory(clone.layers[2].W, clone.params)
        assert not np.shares_memory(clone.params, net.params)
        clone.params[:] = 0
        assert not clone.layers[0].W.any() and net.layers[0].W.any()
