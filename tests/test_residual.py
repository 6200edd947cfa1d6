"""nc.Residual(layer): ``x + layer(x)`` through the Layer protocol (issue 16 item 5).

Checked against independent truth: the closed form in NumPy, central
differences (nc.gradcheck), torch autograd (outputs, gradients, Adam
trajectories, Hessian-vector products, Hessian, Jacobian), onnxruntime is in
tests/test_onnx.py. Both backends.
"""

import json

import numpy as np
import pytest

import nncore as nc
from nncore.layers import Layer

DTYPES = ["float32", "float64"]
# torch.func's first use imports TorchScript helpers that warn about themselves.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def _relu(s):
    return np.maximum(s, 0.0)


def _net(loss="cross_entropy", dtype="float64", seed=0, act="tanh", reg=None, k=3):
    """4 -> 6 -> Residual(6 -> 6) -> Dropout -> Residual(6 -> 6) -> k."""
    return nc.Network([nc.Dense(4, 6, act), nc.Residual(nc.Dense(6, 6, act)), nc.Dropout(0.25),
                       nc.Residual(nc.Dense(6, 6, "relu")), nc.Dense(6, k)],
                      loss=loss, regularizer=reg, dtype=dtype, seed=seed)


def _data(n=23, k=3, loss="cross_entropy", seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    if loss == "cross_entropy":
        return X, rng.integers(0, k, n)
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, (n, k)).astype(float)
    return X, rng.normal(size=(n, k))


# --------------------------------------------------------------------------- construction

@pytest.mark.parametrize("bad, exc, match", [
    (lambda: nc.Residual(nc.Dense(3, 4)), ValueError, "n_in == n_out"),
    (lambda: nc.Residual(nc.Dropout(0.5)), ValueError, "n_in == n_out"),
    (lambda: nc.Residual("dense"), TypeError, "nncore layer"),
    (lambda: nc.Residual(None), TypeError, "nncore layer"),
    (lambda: nc.Residual(nc.Residual(nc.Dense(2, 2))), ValueError, "Residual inside"),
])
def test_bad_construction_is_a_clear_error(bad, exc, match):
    with pytest.raises(exc, match=match):
        bad()


def test_a_layer_is_used_once():
    dense = nc.Dense(3, 3)
    nc.Residual(dense)
    with pytest.raises(ValueError, match="already belongs"):
        nc.Residual(dense)                   # the same inner layer in two blocks
    with pytest.raises(ValueError, match="already belongs"):
        nc.Network([nc.Residual(nc.Dense(3, 3)), dense])
    owned = nc.Dense(2, 2)
    nc.Network([owned])
    with pytest.raises(ValueError, match="already belongs"):
        nc.Residual(owned)
    with pytest.raises(ValueError, match="chain"):
        nc.Network([nc.Dense(2, 3), nc.Residual(nc.Dense(4, 4))])


def test_layout_summary_and_repr():
    net = _net()
    res = net.layers[1]
    assert res.n_params == 6 * 6 + 6 and net.n_params == 30 + 42 + 42 + 21
    assert np.shares_memory(res.layer.W, net.params) and res.layer._offset == 30
    assert repr(res) == "Residual(Dense(6, 6, activation='tanh'))"
    lines = []
    net.summary(print_fn=lines.append)
    assert any("Residual(Dense tanh)" in line for line in lines)
    # the compiled epoch loop runs Residual(Dense) as one layer kind
    assert net._loop_layers() == [("dense", 4, 6, 4, 0), ("residual_dense", 6, 6, 4, 30),
                                  ("dropout", 6, 0.25), ("residual_dense", 6, 6, 1, 72),
                                  ("dense", 6, 3, 0, 114)]
    # around any other layer the block trains per step
    assert nc.Network([nc.Dense(3, 3), nc.Residual(_Scale())])._loop_layers() is None


# --------------------------------------------------------------------------- forward, gradient

def test_forward_is_x_plus_layer_x(backend):
    net = _net(dtype="float64")
    X, _ = _data()
    d0, r1, _, r3, d4 = net.layers
    h = np.tanh(X @ d0.W + d0.b)
    h = h + np.tanh(h @ r1.layer.W + r1.layer.b)
    h = h + _relu(h @ r3.layer.W + r3.layer.b)
    np.testing.assert_allclose(net.forward(X), h @ d4.W + d4.b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy", "binary_cross_entropy"])
def test_gradient_matches_central_differences(backend, loss):
    net = _net(loss=loss, reg=nc.L2(1e-2))
    X, y = _data(loss=loss)
    res = nc.gradcheck(net, X, y)
    assert res.max_rel_error < 1e-6
    assert res.indices.size == net.n_params


def test_residual_first_and_last(backend):
    """The block as the first layer (no input gradient needed) and the last."""
    net = nc.Network([nc.Residual(nc.Dense(4, 4, "sigmoid")), nc.Dense(4, 4, "elu"),
                      nc.Residual(nc.Dense(4, 4))], loss="mse", dtype="float64", seed=3)
    X, y = _data(k=4, loss="mse")
    assert nc.gradcheck(net, X, y).max_rel_error < 1e-6


# --------------------------------------------------------------------------- torch

torch_acts = {"tanh": "tanh", "relu": "relu", "linear": None}


def _torch_forward(torch, net, theta, X):
    """net.forward as a torch function of the flat float64 parameters (dropout off)."""
    h = torch.tensor(X, dtype=torch.float64)
    for layer in net.layers:
        dense, skip = (layer.layer, True) if isinstance(layer, nc.Residual) else (layer, False)
        if not isinstance(dense, nc.Dense):
            continue
        off, n_in, n_out = dense._offset, dense.n_in, dense.n_out
        W = theta[off:off + n_in * n_out].reshape(n_in, n_out)
        b = theta[off + n_in * n_out:off + n_in * n_out + n_out]
        act = torch_acts[dense.activation]
        y = h @ W + b
        y = y if act is None else getattr(torch, act)(y)
        h = h + y if skip else y
    return h


def _torch_loss(torch, net, theta, X, y):
    out = _torch_forward(torch, net, theta, X)
    data = torch.nn.functional.cross_entropy(out, torch.tensor(y))
    l2 = net.regularizer.l2 if net.regularizer is not None else 0.0
    mask = torch.zeros_like(theta)
    for a, b in net._segments:
        mask[a:b] = 1.0
    return data + l2 * torch.sum(mask * theta * theta)


def test_forward_and_gradient_equal_torch(backend):
    torch = pytest.importorskip("torch")
    net = _net(reg=nc.L2(0.03))
    net.params[:] = np.random.default_rng(5).normal(0, 0.6, net.n_params)
    X, y = _data()
    theta = torch.tensor(net.params.copy(), requires_grad=True)
    out = _torch_forward(torch, net, theta, X)
    np.testing.assert_allclose(net.forward(X), out.detach().numpy(), rtol=1e-12, atol=1e-12)
    J = _torch_loss(torch, net, theta, X, y)
    J.backward()
    loss, grad = net.loss_and_gradient(X, y)
    assert abs(loss - J.item()) <= 1e-12 * abs(J.item())
    np.testing.assert_allclose(grad, theta.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_adam_training_equals_torch(backend):
    """fit on the per-step path takes torch's Adam steps (float64, no shuffling)."""
    torch = pytest.importorskip("torch")
    net = nc.Network([nc.Dense(4, 6, "tanh"), nc.Residual(nc.Dense(6, 6, "relu")),
                      nc.Dense(6, 3)], loss="cross_entropy", dtype="float64", seed=2)
    X, y = _data(n=40)
    theta = torch.tensor(net.params.copy(), requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.01)
    for _ in range(3):                      # epochs
        for s in range(0, 40, 8):
            opt.zero_grad()
            _torch_loss(torch, net, theta, X[s:s + 8], y[s:s + 8]).backward()
            opt.step()
    net.fit(X, y, optimizer=nc.optim.Adam(lr=0.01), batch_size=8, epochs=3, shuffle=False,
            progress=False, seed=0)
    np.testing.assert_allclose(net.params, theta.detach().numpy(), rtol=1e-9, atol=1e-12)


def _loop_net(dtype, reg=None):
    """Residual blocks first (no input gradient), in the middle after a Dropout, and last
    (the logits are the block's output)."""
    return nc.Network([nc.Residual(nc.Dense(4, 4, "tanh")), nc.Dense(4, 6, "relu"),
                       nc.Dropout(0.3), nc.Residual(nc.Dense(6, 6, "elu")), nc.Dense(6, 3),
                       nc.Residual(nc.Dense(3, 3))],
                      loss="cross_entropy", regularizer=reg, dtype=dtype, seed=3)


@pytest.mark.parametrize("make_opt", [lambda: nc.optim.Adam(0.01),
                                      lambda: nc.optim.SGD(0.05, momentum=0.9, clip_norm=1.0,
                                                           weight_decay=1e-3)],
                         ids=["adam", "sgd"])
def test_compiled_loop_equals_per_step_fit(monkeypatch, make_opt):
    """The compiled epoch loop runs Residual(Dense) with the per-step path's kernel
    calls: the same bits for parameters, optimizer state and history."""
    from nncore import training
    from nncore.backend import _cython
    old = nc.get_backend()
    nc.set_backend("cython")
    calls = []
    real = _cython.train_epoch
    monkeypatch.setattr(_cython, "train_epoch", lambda *a, **k: (calls.append(1), real(*a, **k)))
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(37, 4)), rng.integers(0, 3, 37)
    Xv, yv = rng.normal(size=(9, 4)), rng.integers(0, 3, 9)
    try:
        for dtype in DTYPES:
            for batch in (1, 5):
                runs = []
                for loop in (True, False):
                    monkeypatch.setattr(training, "_EPOCH_LOOP", loop)
                    net, opt = _loop_net(dtype, nc.ElasticNet(1e-3, 1e-2)), make_opt()
                    n_calls = len(calls)
                    h = net.fit(X, y, optimizer=opt, batch_size=batch, epochs=3, seed=5,
                                validation_data=(Xv, yv), progress=False)
                    assert (len(calls) > n_calls) == loop      # the loop ran, or not
                    runs.append((net, opt, {k: v for k, v in h.history.items()
                                            if k != "time"}))
                (a, oa, ha), (b, ob, hb) = runs
                np.testing.assert_array_equal(a.params, b.params)
                np.testing.assert_array_equal(a.grads, b.grads)
                assert ha == hb
                for key in oa.state:
                    if key != "step":
                        np.testing.assert_array_equal(oa.state[key], ob.state[key])
    finally:
        nc.set_backend(old)


def test_epoch_tuples_reference_equals_compiled():
    """nncore.backend._epoch's Python twin of the loop and the compiled loop agree on a
    network given as layer tuples with residual layers."""
    from nncore.backend import _cython, _epoch
    net = _loop_net("float64", nc.L2(1e-2))
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(23, 4)), rng.integers(0, 3, 23)
    order = rng.permutation(23)
    results = []
    for compiled in (True, False):
        params, grads = net.params.copy(), np.zeros_like(net.params)
        opt = nc.optim.Adam(0.01)
        state, ws = _epoch.new_state(), {}
        args = (X, y, order, 5, 5, params, grads, net._loop_layers(), "cross_entropy",
                net._segments, 0.0, 1e-2)
        if compiled:
            _cython.train_epoch(*args, opt.fused_update(params), 7, state, ws)
        else:
            _epoch.reference_epoch(nc.backend._numpy, *args, opt, 7, state, ws)
        results.append((params, state["loss_sum"], state["counter"]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-14)
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-12)
    assert results[0][2] == results[1][2]
    with pytest.raises(ValueError, match="n_in == n_out"):
        _epoch._check_layers([("residual_dense", 4, 5, 0, 0)], 4, 100)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_same_on_both_backends(dtype):
    """The per-step path runs the same kernels: both backends train alike."""
    X, y = _data(n=64)
    results = []
    for name in nc.backend.available():
        old = nc.get_backend()
        nc.set_backend(name)
        try:
            net = _net(dtype=dtype, seed=4)
            net.fit(X, y, batch_size=16, epochs=3, progress=False, seed=0)
        finally:
            nc.set_backend(old)
        results.append(net.params.copy())
    tol = 1e-4 if dtype == "float32" else 1e-10
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=tol, atol=tol)


# --------------------------------------------------------------------------- curvature

def test_curvature_equals_torch(backend):
    torch = pytest.importorskip("torch")
    net = _net(reg=nc.L2(0.05))
    net.params[:] = np.random.default_rng(6).normal(0, 0.7, net.n_params)
    X, y = _data(n=9)
    theta = torch.tensor(net.params.copy())
    H = torch.autograd.functional.hessian(lambda t: _torch_loss(torch, net, t, X, y), theta)
    v = np.random.default_rng(7).normal(size=net.n_params)
    np.testing.assert_allclose(net.hvp(X, y, v), H.numpy() @ v, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(net.hessian(X, y), H.numpy(), rtol=1e-9, atol=1e-11)
    Jt = torch.autograd.functional.jacobian(lambda t: _torch_forward(torch, net, t, X), theta)
    Jt = Jt.numpy().reshape(-1, net.n_params)          # rows sample-major
    np.testing.assert_allclose(net.jacobian(X), Jt, rtol=1e-10, atol=1e-12)
    # Gauss-Newton: sum_n J_n^T (diag p_n - p_n p_n^T) J_n / N + 2 l2 on the weights
    theta.requires_grad_(False)
    P = torch.softmax(_torch_forward(torch, net, theta, X), dim=1).numpy()
    G = np.zeros((net.n_params, net.n_params))
    K = net.n_out
    for n in range(X.shape[0]):
        Jn = Jt[n * K:(n + 1) * K]
        G += Jn.T @ (np.diag(P[n]) - np.outer(P[n], P[n])) @ Jn / X.shape[0]
    mask = np.zeros(net.n_params)
    for a, b in net._segments:
        mask[a:b] = 1.0
    want = G @ v + 2 * net.regularizer.l2 * mask * v
    np.testing.assert_allclose(net.gnvp(X, y, v), want, rtol=1e-9, atol=1e-11)


def test_levenberg_marquardt_trains_a_residual_net(backend):
    """LM's Jacobian goes through the shortcut: its steps reduce the loss as the
    exact Gauss-Newton step on the same network should."""
    rng = np.random.default_rng(8)
    X = rng.uniform(-1, 1, (60, 2))
    y = np.sin(2 * X[:, :1]) + X[:, 1:] ** 2
    net = nc.Network([nc.Dense(2, 5, "tanh"), nc.Residual(nc.Dense(5, 5, "tanh")),
                      nc.Dense(5, 1)], loss="mse", dtype="float64", seed=0)
    start = net.loss(X, y)
    hist = net.fit(X, y, optimizer="lm", batch_size="full", epochs=30, progress=False)
    assert net.loss(X, y) < 0.05 * start
    assert np.all(np.diff(hist["loss"]) <= 1e-12)          # LM accepts only descent


class _Scale(Layer):
    """A layer without a curvature plan (the protocol's default)."""

    n_params = 0
    input_width = 3


def test_curvature_of_an_unsupported_layer_is_a_clear_error():
    net = nc.Network([nc.Dense(3, 3), nc.Residual(_Scale())], loss="mse", dtype="float64")
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="no exact curvature for layer 1"):
        net.hvp(X, X, np.ones(net.n_params))
    with pytest.raises(ValueError, match="no exact curvature"):
        net.jacobian(X)


# --------------------------------------------------------------------------- save / load

@pytest.mark.parametrize("dtype", DTYPES)
def test_save_load_round_trip(tmp_path, dtype):
    net = _net(dtype=dtype)
    X, y = _data()
    net.fit(X, y, epochs=2, progress=False, seed=0)
    path = net.save(tmp_path / "res.npz")
    back = nc.load(path)
    assert repr(back) == repr(net) and back.dtype == net.dtype
    np.testing.assert_array_equal(back.params, net.params)
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    assert np.shares_memory(back.layers[1].layer.W, back.params)
    import pickle
    for twin in (net.copy(), pickle.loads(pickle.dumps(net))):
        np.testing.assert_array_equal(twin.forward(X), net.forward(X))
        assert np.shares_memory(twin.layers[3].layer.W, twin.params)
    with np.load(path, allow_pickle=False) as data:
        layers = json.loads(str(data["architecture"]))["layers"]
    assert layers[1] == {"type": "Residual", "layer": {"type": "Dense", "n_in": 6, "n_out": 6,
                                                       "activation": "tanh", "init": None}}


def _rewrite_layers(src, dst, layers):
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    record = json.loads(str(arrays["architecture"]))
    record["layers"] = layers
    arrays["architecture"] = np.array(json.dumps(record))
    np.savez(dst, **arrays)


@pytest.mark.parametrize("inner", [
    None, "Dense", [1, 2], {"type": "Dense", "n_in": 6, "n_out": 7},
    {"type": "Residual", "layer": {"type": "Dense", "n_in": 6, "n_out": 6}},
    {"type": "Dense", "n_in": 6, "n_out": 6, "activation": "swish"},
    {"type": "Dense", "n_in": 10 ** 9, "n_out": 10 ** 9},
])
def test_hostile_residual_records_are_refused(tmp_path, inner):
    net = _net()
    path = net.save(tmp_path / "ok.npz")
    with np.load(path, allow_pickle=False) as data:
        layers = json.loads(str(data["architecture"]))["layers"]
    layers[1] = {"type": "Residual", "layer": inner}
    _rewrite_layers(path, tmp_path / "bad.npz", layers)
    with pytest.raises(ValueError, match="bad.npz"):
        nc.load(tmp_path / "bad.npz")


def test_deeply_nested_residual_record_is_bounded(tmp_path):
    net = _net()
    path = net.save(tmp_path / "ok.npz")
    with np.load(path, allow_pickle=False) as data:
        layers = json.loads(str(data["architecture"]))["layers"]
    deep = {"type": "Dense", "n_in": 6, "n_out": 6}
    for _ in range(200):
        deep = {"type": "Residual", "layer": deep}
    layers[1] = deep
    _rewrite_layers(path, tmp_path / "deep.npz", layers)
    with pytest.raises(ValueError, match="deep.npz"):
        nc.load(tmp_path / "deep.npz")
