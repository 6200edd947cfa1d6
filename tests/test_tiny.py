"""The tiny-layer products (src/nncore/_tiny.h, _tiny.pxi): Dense layers at most
32 wide over one row run plain C loops instead of BLAS, in the per-step
kernels and in the compiled epoch loop alike.

Truth: a NumPy transcription of the summation order _tiny.h documents (each
element summed from 0 in ascending order, every product rounded: bit for bit),
the BLAS products for the shapes that must fall back (bit for bit), and the
NumPy reference backend's training trajectory (to the float tolerance of
tests/test_train_loop.py).
"""

import numpy as np
import pytest

import nncore as nc
import nncore.backend as B
import nncore.training as training


def _ordered_sum(terms, dtype):
    """Σ terms[..., t] from 0 in ascending t, each add rounded to dtype."""
    acc = np.zeros(terms.shape[:-1], dtype)
    for t in range(terms.shape[-1]):
        acc = acc + terms[..., t]
    return acc


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows,n_in,n_out", [(1, 2, 16), (1, 16, 1), (1, 16, 16), (1, 32, 32),
                                             (1, 1, 7)])
def test_products_follow_the_documented_order(C, K, dtype, rows, n_in, n_out):
    assert K._tiny_path(rows, n_in, n_out)
    rng = np.random.default_rng(rows * 100 + n_in)
    X = rng.normal(size=(rows, n_in)).astype(dtype)
    W = rng.normal(size=(n_in, n_out)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    out = np.empty((rows, n_out), dtype)
    C.dense_forward(X, W, b, 0, out)                      # linear: X W + b
    S = _ordered_sum(X[:, None, :] * W.T[None, :, :], dtype)
    np.testing.assert_array_equal(out, S + b)
    dY = rng.normal(size=(rows, n_out)).astype(dtype)
    dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
    C.dense_backward(X, W, out, dY.copy(), 0, dW, db, dX)
    np.testing.assert_array_equal(dW, _ordered_sum(X.T[:, None, :] * dY.T[None, :, :], dtype))
    np.testing.assert_array_equal(dX, _ordered_sum(dY[:, None, :] * W[None, :, :], dtype))
    np.testing.assert_array_equal(db, _ordered_sum(dY.T, dtype))


@pytest.mark.parametrize("rows,n_in,n_out", [(1, 33, 4), (1, 4, 33), (2, 8, 8), (16, 16, 16)])
def test_larger_shapes_fall_back_to_blas(C, K, rows, n_in, n_out):
    """Outside the limits the switch changes nothing: BLAS computes them."""
    assert not K._tiny_path(rows, n_in, n_out)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(rows, n_in)).astype(np.float32)
    W = rng.normal(size=(n_in, n_out)).astype(np.float32)
    b = rng.normal(size=n_out).astype(np.float32)
    outs = []
    for on in (True, False):
        old = K._set_tiny(on)
        try:
            out = np.empty((rows, n_out), np.float32)
            C.dense_forward(X, W, b, 4, out)
            dY = np.ones_like(out)
            dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
            C.dense_backward(X, W, out, dY, 4, dW, db, dX)
            outs.append((out, dW, db, dX))
        finally:
            K._set_tiny(old)
    for a, c in zip(*outs):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_allclose(outs[0][0], np.tanh(X @ W + b), rtol=1e-5, atol=1e-6)


def test_the_limits(K):
    assert K.TINY_WIDTH == 32
    assert K._tiny_path(1, 32, 32) and K._tiny_path(1, 1, 1)
    assert not K._tiny_path(2, 2, 2) and not K._tiny_path(1, 33, 2) and not K._tiny_path(1, 2, 33)


# (hidden activation, loss, optimizer factory)
TRAJECTORIES = [
    ("tanh", "mse", lambda: nc.optim.SGD(0.05)),
    ("relu", "mse", lambda: nc.optim.SGD(0.01, momentum=0.5, nesterov=True)),
    ("sigmoid", "cross_entropy", lambda: nc.optim.Adam(0.01)),
    ("elu", "binary_cross_entropy", lambda: nc.optim.RMSprop(0.01, clip_norm=1.0)),
    ("softplus", "cross_entropy", lambda: nc.optim.AdamW(0.01, weight_decay=0.1)),
    ("leaky_relu", "mse", lambda: nc.optim.Adagrad(0.05, lr_decay=0.01)),
]


def _data(loss, k, dtype):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 3)).astype(dtype)
    if loss == "cross_entropy":
        return X, rng.integers(0, k, 40)
    if loss == "binary_cross_entropy":
        return X, (rng.random((40, k)) > 0.5).astype(dtype)
    return X, rng.normal(size=(40, k)).astype(dtype)


def _fit(backend, act, loss, make_opt, dtype, batch, threads=1):
    k = 1 if loss == "mse" else 3
    X, y = _data(loss, k, dtype)
    net = nc.Network([nc.Dense(3, 16, act), nc.Dense(16, 24, act), nc.Dense(24, k)],
                     loss=loss, dtype=dtype, seed=3)
    old, old_threads = B.get_backend(), nc.get_num_threads()
    B.set_backend(backend)
    nc.set_num_threads(threads)
    try:
        net.fit(X, y, optimizer=make_opt(), batch_size=batch, epochs=3, progress=False, seed=2)
    finally:
        B.set_backend(old)
        nc.set_num_threads(old_threads)
    return net.params.copy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(TRAJECTORIES)))
def test_trajectory_matches_numpy_reference(C, K, monkeypatch, dtype, case):
    act, loss, make_opt = TRAJECTORIES[case]
    tol = 1e-10 if dtype == "float64" else 2e-4
    for batch in (1, 4):       # batch 4: BLAS products, the last epoch rows alike
        assert K._tiny_path(batch, 16, 24) == (batch == 1)
        looped = _fit("cython", act, loss, make_opt, dtype, batch)
        ref = _fit("numpy", act, loss, make_opt, dtype, batch)
        np.testing.assert_allclose(looped, ref, rtol=tol, atol=tol)
        # the per-step compiled path takes the same products: same bits
        monkeypatch.setattr(training, "_EPOCH_LOOP", False)
        np.testing.assert_array_equal(_fit("cython", act, loss, make_opt, dtype, batch), looped)
        monkeypatch.setattr(training, "_EPOCH_LOOP", True)
        np.testing.assert_array_equal(
            _fit("cython", act, loss, make_opt, dtype, batch, threads=2), looped)


# ---- the whole-sample step of the epoch loop (batch 1, _tiny.h)

STEP_CASES = [("tanh", "mse"), ("relu", "cross_entropy"), ("leaky_relu", "binary_cross_entropy"),
              ("linear", "mse")]


def _fit_batch1(act, loss, dtype, lr=0.05, epochs=3, sizes=(3, 16, 24)):
    k = 1 if loss == "mse" else 3
    X, y = _data(loss, k, dtype)
    X = np.resize(X, (len(X), sizes[0]))       # sizes[0] features
    net = nc.Network([nc.Dense(sizes[0], sizes[1], act), nc.Dense(sizes[1], sizes[2], act),
                      nc.Dense(sizes[2], k)], loss=loss, dtype=dtype, seed=3)
    net.fit(X, y, optimizer=nc.optim.SGD(lr), batch_size=1, epochs=epochs, progress=False,
            seed=2)
    return net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act,loss", STEP_CASES)
def test_whole_sample_step_same_bits_as_per_layer_path(C, K, monkeypatch, dtype, act, loss):
    """The step is taken (its call count grows), gives the bits of the loop's
    per-layer path and of the per-step kernels, and follows the NumPy reference."""
    calls = K._tiny_step_count()
    fused = _fit_batch1(act, loss, dtype).params.copy()
    assert K._tiny_step_count() > calls
    old = K._set_tiny_step(False)
    try:
        calls = K._tiny_step_count()
        np.testing.assert_array_equal(_fit_batch1(act, loss, dtype).params, fused)
        assert K._tiny_step_count() == calls
    finally:
        K._set_tiny_step(old)
    monkeypatch.setattr(training, "_EPOCH_LOOP", False)
    np.testing.assert_array_equal(_fit_batch1(act, loss, dtype).params, fused)
    monkeypatch.setattr(training, "_EPOCH_LOOP", True)
    old = B.get_backend()
    B.set_backend("numpy")
    try:
        ref = _fit_batch1(act, loss, dtype).params
    finally:
        B.set_backend(old)
    tol = 1e-10 if dtype == "float64" else 2e-4
    np.testing.assert_allclose(fused, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("sizes", [(1, 32, 32), (32, 1, 7), (5, 2, 1)])
def test_whole_sample_step_at_the_width_limits(C, K, sizes):
    outs = []
    for on in (True, False):
        old = K._set_tiny_step(on)
        try:
            outs.append(_fit_batch1("tanh", "mse", "float32", sizes=sizes, epochs=1).params)
        finally:
            K._set_tiny_step(old)
    np.testing.assert_array_equal(*outs)


@pytest.mark.parametrize("lr", [5.0, 1e30])
def test_whole_sample_step_divergence_as_per_layer_path(C, K, lr):
    """A loss that blows up (lr 5) or an update to inf (lr 1e30): the same step, the
    same restored parameters, gradients and backup either way."""
    from nncore.backend import _epoch as E
    rng = np.random.default_rng(1)
    n = 40
    X = rng.normal(size=(n, 3)) * 30
    T = rng.normal(size=(n, 1)) * 30
    layers = [("dense", 3, 8, 1, 0), ("dense", 8, 1, 0, 32)]      # relu, linear
    p0 = rng.normal(size=41) * 0.5
    outs = []
    for on in (True, False):
        params, grads = p0.copy(), np.zeros(41)
        st, ws = E.new_state(), {}
        old, calls = K._set_tiny_step(on), K._tiny_step_count()
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                C.train_epoch(X, T, np.arange(n), 1, n, params, grads, layers, "mse",
                              np.zeros((0, 2), np.int64), 0.0, 0.0,
                              nc.optim.SGD(lr).fused_update(params), 0, st, ws)
        finally:
            K._set_tiny_step(old)
        assert (K._tiny_step_count() > calls) == on
        outs.append((params, grads, st, ws["backup"].copy()))
    assert outs[0][2]["diverged"] and outs[0][2]["step"] < n
    for got, want in zip(outs[0], outs[1]):
        if isinstance(got, dict):
            assert got == want
        else:
            np.testing.assert_array_equal(got, want)
