"""Sample and class weights (issue 16 item 4) against independent truth.

* The weighted loss and its output gradient against torch (``reduction="none"``
  times the weights, divided by their sum) and finite differences; both
  backends' kernels against each other (gradients bit for bit).
* Integer weights equal repeated rows: ``net.loss``/``loss_and_gradient`` and
  whole fits of the full-batch family (to rounding).
* ``class_weight="balanced"`` equals scikit-learn's ``compute_class_weight``.
* Bad weights raise and change nothing.
"""

import numpy as np
import pytest

import nncore as nc
import nncore.backend as B
from nncore import losses as L

LOSSES = ["mse", "cross_entropy", "cross_entropy_prob", "binary_cross_entropy"]


def _targets(loss, rng, n, k, dtype="float64"):
    if loss == "cross_entropy":
        return rng.integers(0, k, n)
    if loss == "cross_entropy_prob":
        t = rng.random((n, k))
        return (t / t.sum(axis=1, keepdims=True)).astype(dtype)
    if loss == "binary_cross_entropy":
        return rng.random((n, k)).astype(dtype)
    return rng.normal(size=(n, k)).astype(dtype)


def _net(loss, d=3, k=3, dtype="float64", seed=0, reg=None, hidden=4):
    name = "cross_entropy" if loss == "cross_entropy_prob" else loss
    return nc.Network([nc.Dense(d, hidden, activation="tanh"), nc.Dense(hidden, k)], loss=name,
                      dtype=dtype, seed=seed, regularizer=reg)


def _kernel(loss):
    spec = L.get("cross_entropy" if loss == "cross_entropy_prob" else loss)
    return spec


# --------------------------------------------------------------------------- kernels

@pytest.mark.parametrize("loss", LOSSES)
def test_weighted_loss_and_gradient_equal_torch(loss):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    n, k = 7, 3
    out = rng.normal(size=(n, k)) * 2
    t = _targets(loss, rng, n, k)
    w = rng.random(n) * 3
    w[2] = 0.0
    c = w / w.sum()
    xo = torch.tensor(out, requires_grad=True)
    if loss == "mse":
        per_row = 0.5 * ((xo - torch.tensor(t)) ** 2).sum(dim=1)
    elif loss == "cross_entropy":
        per_row = F.cross_entropy(xo, torch.tensor(t), reduction="none")
    elif loss == "cross_entropy_prob":
        per_row = F.cross_entropy(xo, torch.tensor(t), reduction="none")
    else:
        per_row = F.binary_cross_entropy_with_logits(xo, torch.tensor(t),
                                                     reduction="none").sum(dim=1)
    J_t = (per_row * torch.tensor(w)).sum() / torch.tensor(w).sum()
    J_t.backward()
    J_t = J_t.detach()
    spec = _kernel(loss)
    T = np.ascontiguousarray(t)
    for name in B.available():
        be = B._load(name)
        grad = np.empty_like(out)
        J = spec.value_and_grad(be, out, T, grad, c)
        assert J == pytest.approx(float(J_t), rel=1e-13)
        np.testing.assert_allclose(grad, xo.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", LOSSES)
def test_compiled_weighted_kernels_equal_the_reference(loss, dtype):
    if "cython" not in B.available():
        pytest.skip("compiled backend not built")
    C, R = B._load("cython"), B._load("numpy")
    rng = np.random.default_rng(2)
    n, k = 9, 4
    out = (rng.normal(size=(n, k)) * 3).astype(dtype)
    t = np.ascontiguousarray(_targets(loss, rng, n, k, dtype))
    c = L.row_coefficients(rng.random(n))
    spec = _kernel(loss)
    gc, gr = np.empty_like(out), np.empty_like(out)
    Jc = spec.value_and_grad(C, out, t, gc, c)
    Jr = spec.value_and_grad(R, out, t, gr, c)
    eps = float(np.finfo(dtype).eps)
    if loss == "mse":
        np.testing.assert_array_equal(gc, gr)       # the same products: the same bits
    else:
        # exp differs by an ulp or so between libm and NumPy (as test_kernels bounds it):
        # a few k ulps of the probabilities, times the row's coefficient
        bound = 2 * (k + 4) * eps * (1.0 + np.abs(gr) / c[:, None]) * c[:, None]
        assert np.all(np.abs(gc.astype(np.float64) - gr) <= bound)
    assert Jc == pytest.approx(Jr, rel=4 * (k + 4) * eps)
    assert spec.value_and_grad(C, out, t, None, c) == Jc


@pytest.mark.parametrize("loss", LOSSES)
def test_unit_coefficients_equal_the_mean(loss):
    """c = 1/N reproduces the unweighted loss and gradient (to rounding)."""
    rng = np.random.default_rng(3)
    n, k = 6, 3
    out = rng.normal(size=(n, k))
    t = np.ascontiguousarray(_targets(loss, rng, n, k))
    spec = _kernel(loss)
    for name in B.available():
        be = B._load(name)
        g0, g1 = np.empty_like(out), np.empty_like(out)
        J0 = spec.value_and_grad(be, out, t, g0)
        J1 = spec.value_and_grad(be, out, t, g1, np.full(n, 1.0 / n))
        assert J1 == pytest.approx(J0, rel=1e-14)
        np.testing.assert_allclose(g1, g0, rtol=1e-14, atol=1e-17)


def test_weight_argument_checked(backend):
    out = np.zeros((3, 2))
    t = np.zeros((3, 2))
    g = np.empty((3, 2))
    with pytest.raises(TypeError):
        backend.loss_mse(out, t, g, np.ones(3, np.float32))
    with pytest.raises(ValueError):
        backend.loss_mse(out, t, g, np.ones(4))
    with pytest.raises(TypeError):
        backend.loss_softmax_ce(out, np.zeros(3, np.int64), g, np.ones((3, 1)))


# --------------------------------------------------------------------------- network level

@pytest.mark.parametrize("loss", LOSSES)
def test_integer_weights_equal_repeated_rows(backend, loss):
    rng = np.random.default_rng(4)
    n = 8
    X = rng.normal(size=(n, 3))
    y = _targets(loss, rng, n, 3)
    w = np.array([1, 0, 2, 3, 1, 1, 4, 2])
    net = _net(loss, reg=nc.L2(1e-3))
    Xr, yr = np.repeat(X, w, axis=0), np.repeat(y, w, axis=0)
    assert net.loss(X, y, sample_weight=w) == pytest.approx(net.loss(Xr, yr), rel=1e-13)
    J, g = net.loss_and_gradient(X, y, sample_weight=w)
    Jr, gr = net.loss_and_gradient(Xr, yr)
    assert J == pytest.approx(Jr, rel=1e-13)
    np.testing.assert_allclose(g, gr, rtol=1e-11, atol=1e-14)


def test_weighted_gradient_equals_finite_differences():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(10, 3))
    y = rng.integers(0, 3, 10)
    w = rng.random(10) * 2
    net = _net("cross_entropy", reg=nc.L1(1e-3))
    _, g = net.loss_and_gradient(X, y, sample_weight=w)
    p0 = net.params.copy()
    eps = 1e-6
    fd = np.empty_like(p0)
    for i in range(p0.size):
        net.params[:] = p0
        net.params[i] += eps
        up = net.loss(X, y, sample_weight=w)
        net.params[i] -= 2 * eps
        fd[i] = (up - net.loss(X, y, sample_weight=w)) / (2 * eps)
    net.params[:] = p0
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_weights_over_chunks_equal_one_chunk(monkeypatch):
    """Rows beyond the network's chunk: chunks add up with global coefficients."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(50, 3))
    y = rng.normal(size=(50, 2))
    w = rng.random(50)
    net = _net("mse", k=2)
    J, g = net.loss_and_gradient(X, y, sample_weight=w)
    net._chunk_rows = 7
    Jc, gc = net.loss_and_gradient(X, y, sample_weight=w)
    assert Jc == pytest.approx(J, rel=1e-13)
    np.testing.assert_allclose(gc, g, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- fit: full batch

FULL_BATCH = [
    ("bfgs", {}), ("lbfgs", {}), ("cg", {}), ("dfp", {}), ("newton", {}),
    ("newton-cg", {}), ("lm", {}), ("rprop", {"batch_size": "full"}),
    ("scg", {}), ("adam", {"batch_size": "full"}), ("sgd", {"batch_size": "full"}),
]


@pytest.mark.parametrize("opt,kw", FULL_BATCH, ids=[o for o, _ in FULL_BATCH])
def test_full_batch_fit_integer_weights_equal_repeated_rows(backend, opt, kw):
    rng = np.random.default_rng(7)
    n = 12
    X = rng.normal(size=(n, 3))
    y = rng.integers(0, 3, n)
    w = rng.integers(0, 4, n)
    w[0] = 2
    a, b = _net("cross_entropy", seed=1), _net("cross_entropy", seed=1)
    ha = a.fit(X, y, optimizer=opt, epochs=4, sample_weight=w, progress=False, **kw)
    hb = b.fit(np.repeat(X, w, axis=0), np.repeat(y, w), optimizer=opt, epochs=4,
               progress=False, **kw)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-8)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-6, atol=1e-8)


def test_bayesian_regularization_integer_weights_equal_repeated_rows(backend):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(15, 2))
    y = np.sin(X[:, :1]) + 0.1 * rng.normal(size=(15, 1))
    w = rng.integers(1, 4, 15)
    a, b = _net("mse", d=2, k=1, seed=2), _net("mse", d=2, k=1, seed=2)
    ha = a.fit(X, y, optimizer="br", epochs=5, sample_weight=w, progress=False)
    hb = b.fit(np.repeat(X, w, axis=0), np.repeat(y, w, axis=0), optimizer="br", epochs=5,
               progress=False)
    for key in ("loss", "gamma", "alpha", "beta", "mu"):
        np.testing.assert_allclose(ha.history[key], hb.history[key], rtol=1e-7)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-6, atol=1e-8)


def test_float32_full_batch_weights_equal_repeated_rows():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(10, 3)).astype(np.float32)
    y = rng.normal(size=(10, 2)).astype(np.float32)
    w = rng.integers(1, 3, 10)
    a, b = _net("mse", k=2, dtype="float32"), _net("mse", k=2, dtype="float32")
    a.fit(X, y, optimizer="lbfgs", epochs=3, sample_weight=w, progress=False)
    b.fit(np.repeat(X, w, axis=0), np.repeat(y, w, axis=0), optimizer="lbfgs", epochs=3,
          progress=False)
    np.testing.assert_allclose(a.params, b.params, rtol=2e-4, atol=2e-5)


# --------------------------------------------------------------------------- fit: mini-batches

def _manual_minibatch(net, X, y, w, B, epochs, opt):
    """Mini-batch training written out: each step's weighted loss through
    ``loss_and_gradient(sample_weight=)`` and the optimizer's own step."""
    n = X.shape[0]
    for _ in range(epochs):
        for s in range(0, n, B):
            wb = w[s:s + B]
            if wb.sum() == 0:
                # no data loss: only the penalty's gradient (none here)
                net.grads[:] = 0.0
                opt.step(net.params, net.grads)
                continue
            _, g = net.loss_and_gradient(X[s:s + B], y[s:s + B], sample_weight=wb)
            opt.step(net.params, g.copy())


@pytest.mark.parametrize("B", [1, 4])
def test_minibatch_weighted_fit_equals_the_written_out_loop(backend, B):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(13, 3))
    y = rng.integers(0, 3, 13)
    w = rng.random(13) * 2
    w[:4] = 0.0
    a, b = _net("cross_entropy", seed=3), _net("cross_entropy", seed=3)
    a.fit(X, y, optimizer=nc.optim.SGD(0.1, momentum=0.5), batch_size=B, epochs=3,
          shuffle=False, sample_weight=w, progress=False)
    _manual_minibatch(b, X, y, w, B, 3, nc.optim.SGD(0.1, momentum=0.5))
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("opt,kw", [("adam", {"batch_size": 5}), ("bfgs", {}),
                                    ("sgd", {"batch_size": "full"})])
def test_equal_weights_are_bit_identical_to_none(backend, opt, kw):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(20, 3)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    a, b = _net("cross_entropy", dtype="float32"), _net("cross_entropy", dtype="float32")
    ha = a.fit(X, y, optimizer=opt, epochs=3, seed=0, sample_weight=np.full(20, 2.5),
               progress=False, **kw)
    hb = b.fit(X, y, optimizer=opt, epochs=3, seed=0, progress=False, **kw)
    np.testing.assert_array_equal(a.params, b.params)
    assert ha.history["loss"] == hb.history["loss"]


# --------------------------------------------------------------------------- class weights

def test_class_weight_balanced_equals_scikit_learn():
    sk = pytest.importorskip("sklearn.utils.class_weight")
    from nncore._weights import class_row_weights
    rng = np.random.default_rng(12)
    y = rng.choice([0, 1, 3], size=40, p=[0.6, 0.3, 0.1])    # class 2 absent
    net = _net("cross_entropy", k=4)
    rows = class_row_weights(net, y, "balanced")
    classes = np.unique(y)
    expected = sk.compute_class_weight("balanced", classes=classes, y=y)
    np.testing.assert_allclose(rows, expected[np.searchsorted(classes, y)], rtol=1e-15)


def test_class_weight_dict_equals_sample_weights(backend):
    rng = np.random.default_rng(13)
    X = rng.normal(size=(16, 3))
    y = rng.integers(0, 3, 16)
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    sw = rng.random(16) + 0.5
    a, b = _net("cross_entropy", seed=4), _net("cross_entropy", seed=4)
    a.fit(X, y, optimizer="bfgs", epochs=3, sample_weight=sw, class_weight=cw, progress=False)
    b.fit(X, y, optimizer="bfgs", epochs=3, sample_weight=sw * np.array([1.0, 3.0, 0.5])[y],
          progress=False)
    np.testing.assert_array_equal(a.params, b.params)


def test_class_weight_binary_single_output(backend):
    rng = np.random.default_rng(14)
    X = rng.normal(size=(12, 3))
    y = (rng.random(12) < 0.3).astype(float)
    a, b = _net("binary_cross_entropy", k=1), _net("binary_cross_entropy", k=1)
    a.fit(X, y, optimizer="lbfgs", epochs=2, class_weight={1: 4.0}, progress=False)
    b.fit(X, y, optimizer="lbfgs", epochs=2, sample_weight=np.where(y == 1, 4.0, 1.0),
          progress=False)
    np.testing.assert_array_equal(a.params, b.params)


# --------------------------------------------------------------------------- validation data

def test_weighted_validation_metrics(backend):
    rng = np.random.default_rng(15)
    X, Xv = rng.normal(size=(20, 3)), rng.normal(size=(9, 3))
    y, yv = rng.integers(0, 3, 20), rng.integers(0, 3, 9)
    wv = rng.random(9)
    net = _net("cross_entropy")
    h = net.fit(X, y, optimizer="adam", epochs=2, validation_data=(Xv, yv, wv),
                test_data=(Xv, yv, wv), progress=False)
    assert h.history["val_loss"][-1] == pytest.approx(net.loss(Xv, yv, sample_weight=wv),
                                                      rel=1e-14)
    acc = float(np.sum(wv * (net.predict(Xv) == yv)) / wv.sum())
    assert h.history["val_accuracy"][-1] == pytest.approx(acc, rel=1e-14)
    assert h.history["test_accuracy"][-1] == pytest.approx(acc, rel=1e-14)
    ev = net.evaluate(Xv, yv, sample_weight=wv)
    assert ev["accuracy"] == pytest.approx(acc, rel=1e-14)


def test_validation_split_keeps_the_held_out_weights(backend):
    rng = np.random.default_rng(16)
    X = rng.normal(size=(20, 3))
    y = rng.normal(size=(20, 2))
    w = rng.random(20) + 0.1
    net = _net("mse", k=2)
    h = net.fit(X, y, optimizer="lbfgs", epochs=2, validation_split=0.25, sample_weight=w,
                progress=False)
    assert h.history["val_loss"][-1] == pytest.approx(
        net.loss(X[15:], y[15:], sample_weight=w[15:]), rel=1e-14)
    ref = _net("mse", k=2)
    ref.fit(X[:15], y[:15], optimizer="lbfgs", epochs=2, sample_weight=w[:15], progress=False)
    np.testing.assert_array_equal(net.params, ref.params)


# --------------------------------------------------------------------------- bad input

BAD = [
    (np.ones(5), ValueError),                     # wrong length
    (np.ones((6, 1)), ValueError),                # 2-D
    (np.r_[np.ones(5), np.nan], ValueError),
    (np.r_[np.ones(5), np.inf], ValueError),
    (np.r_[np.ones(5), -1.0], ValueError),
    (np.zeros(6), ValueError),
    (np.array(["a"] * 6), TypeError),
    (np.ones(6, bool), TypeError),
    (None, None),
]


@pytest.mark.parametrize("sw,exc", BAD[:-1])
def test_bad_sample_weight_raises_and_changes_nothing(sw, exc):
    rng = np.random.default_rng(17)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 3, 6)
    net = _net("cross_entropy")
    opt = nc.optim.Adam(0.01)
    before = net.params.copy()
    with pytest.raises(exc):
        net.fit(X, y, optimizer=opt, epochs=1, sample_weight=sw, progress=False)
    with pytest.raises(exc):
        net.fit(X, y, optimizer=opt, epochs=1, validation_data=(X, y, sw), progress=False)
    with pytest.raises(exc):
        net.loss(X, y, sample_weight=sw)
    np.testing.assert_array_equal(net.params, before)
    assert opt.iterations == 0


@pytest.mark.parametrize("cw,exc", [
    ("balance", ValueError), ({5: 1.0}, ValueError), ({-1: 1.0}, ValueError),
    ({0: -1.0}, ValueError), ({0: np.nan}, ValueError), ({0: "x"}, TypeError),
    ([1.0, 2.0], TypeError), ({0: 0.0, 1: 0.0, 2: 0.0}, ValueError),
])
def test_bad_class_weight_raises(cw, exc):
    rng = np.random.default_rng(18)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 3, 6)
    net = _net("cross_entropy")
    before = net.params.copy()
    with pytest.raises(exc):
        net.fit(X, y, epochs=1, class_weight=cw, progress=False)
    np.testing.assert_array_equal(net.params, before)


def test_class_weight_needs_a_classifier():
    net = _net("mse", k=2)
    with pytest.raises(ValueError, match="class_weight"):
        net.fit(np.zeros((4, 3)), np.zeros((4, 2)), epochs=1, class_weight="balanced",
                progress=False)


# --------------------------------------------------------------------------- the compiled loop

def _compiled():
    if "cython" not in B.available():
        pytest.skip("compiled backend not built")
    return B._load("cython")


def _loop_problem(loss, dtype, n=13, seed=0):
    from nncore.backend import _epoch as E  # noqa: F401 - the loop's argument layout
    rng = np.random.default_rng(seed)
    d, h, k = 3, 5, 3
    layers = [("dense", d, h, 2, 0), ("dropout", h, 0.3), ("dense", h, k, 0, d * h + h)]
    P = d * h + h + h * k + k
    segs = np.array([[0, d * h], [d * h + h, d * h + h + h * k]], np.int64)
    X = rng.normal(size=(n, d)).astype(dtype)
    T = np.ascontiguousarray(_targets(loss, rng, n, k, dtype))
    name = "cross_entropy" if loss == "cross_entropy_prob" else loss
    params = (rng.normal(size=P) * 0.5).astype(dtype)
    w = rng.random(n) * 2
    w[:4] = 0.0                       # batches with zero weights, one all zero
    return X, T, layers, name, segs, params, w


def _epoch_run(fn, be, prob, opt, B, order, weight, epochs=2):
    from nncore.backend import _epoch as E
    X, T, layers, name, segs, params0, _ = prob
    params, grads = params0.copy(), np.zeros_like(params0)
    opt.init(params)
    ws = {}
    states = []
    for _ in range(epochs):
        st = E.new_state(opt_step=opt.iterations, counter=3, count=True)
        stop = -(-X.shape[0] // B)
        spec = opt if be is not None else opt.fused_update(params)
        args = (X, T, order, B, stop, params, grads, layers, name, segs, 1e-3, 1e-2, spec, 11,
                st, ws)
        if be is None:
            fn(*args, weight)
            opt.init(params).step = st["opt_step"]      # as fit keeps the count
        else:
            fn(be, *args, weight)
        states.append(dict(st))
    return params, grads, states, ws["backup"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("B", [1, 4])
def test_compiled_loop_with_weights_equals_the_step_loop_bitwise(loss, dtype, B):
    from nncore.backend import _epoch as E
    C = _compiled()
    prob = _loop_problem(loss, dtype)
    order = np.random.default_rng(1).permutation(prob[0].shape[0]).astype(np.int64)
    for make in (lambda: nc.optim.Adam(0.01, clip_norm=0.5),
                 lambda: nc.optim.SGD(0.05, momentum=0.9, weight_decay=0.01)):
        got = _epoch_run(C.train_epoch, None, prob, make(), B, order, prob[6], epochs=1)
        ref = _epoch_run(E.reference_epoch, C, prob, make(), B, order, prob[6], epochs=1)
        for a, b in zip(got[:2], ref[:2]):
            np.testing.assert_array_equal(a, b)
        assert got[2] == ref[2]
        np.testing.assert_array_equal(got[3], ref[3])
        # and the weights change the result
        plain = _epoch_run(C.train_epoch, None, prob, make(), B, order, None, epochs=1)
        assert not np.array_equal(plain[0], got[0])


def test_compiled_loop_whole_set_batch_integer_weights_equal_repeated_rows():
    C = _compiled()
    X, T, layers, name, segs, params0, _ = prob = _loop_problem("cross_entropy", "float64")
    layers = [layers[0], layers[2]]            # no dropout: the same function of the rows
    w = np.random.default_rng(2).integers(0, 4, X.shape[0]).astype(np.float64)
    w[0] = 1.0
    n, nr = X.shape[0], int(w.sum())
    Xr, Tr = np.repeat(X, w.astype(int), axis=0), np.repeat(T, w.astype(int), axis=0)
    a = _epoch_run(C.train_epoch, None, (X, T, layers, name, segs, params0, w),
                   nc.optim.Adam(0.05), n, np.arange(n, dtype=np.int64), w, epochs=3)
    b = _epoch_run(C.train_epoch, None, (Xr, Tr, layers, name, segs, params0, None),
                   nc.optim.Adam(0.05), nr, np.arange(nr, dtype=np.int64), None, epochs=3)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-12, atol=1e-14)
    for sa, sb in zip(a[2], b[2]):
        assert sa["loss"] == pytest.approx(sb["loss"], rel=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_compiled_loop_with_weights_equals_per_step_fit(monkeypatch, dtype):
    import nncore.training as training
    _compiled()
    nc.set_backend("cython")
    rng = np.random.default_rng(20)
    X = rng.normal(size=(40, 3)).astype(dtype)
    y = rng.integers(0, 3, 40)
    w = rng.random(40)
    runs = []
    for loop in (True, False):
        monkeypatch.setattr(training, "_EPOCH_LOOP", loop)
        net = _net("cross_entropy", dtype=dtype, reg=nc.L2(1e-3))
        h = net.fit(X, y, optimizer=nc.optim.Adam(0.01), batch_size=7, epochs=3, seed=5,
                    sample_weight=w, class_weight="balanced", progress=False)
        runs.append((net.params.copy(), h.history["loss"]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


def test_train_epoch_rejects_bad_weight_arrays():
    from nncore.backend import _epoch as E
    C = _compiled()
    X, T, layers, name, segs, params, w = _loop_problem("mse", "float64")
    opt = nc.optim.SGD(0.1)
    opt.init(params)
    order = np.arange(X.shape[0], dtype=np.int64)
    for bad, exc in ((w.astype(np.float32), TypeError), (w[:-1], ValueError),
                     (np.stack([w, w], 1)[:, 0], TypeError)):
        st = E.new_state()
        with pytest.raises(exc):
            C.train_epoch(X, T, order, 4, 1, params, np.zeros_like(params), layers, name, segs,
                          0.0, 0.0, opt.fused_update(params), 0, st, {}, bad)
        assert st["step"] == 0


def test_all_zero_weights_of_the_validation_split_are_named():
    rng = np.random.default_rng(21)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    w = np.r_[np.ones(6), 0.0, 0.0]
    net = _net("mse", k=2)
    before = net.params.copy()
    with pytest.raises(ValueError, match="validation_split rows"):
        net.fit(X, y, epochs=1, validation_split=0.25, sample_weight=w, progress=False)
    np.testing.assert_array_equal(net.params, before)
