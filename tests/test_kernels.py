"""Every compiled kernel against its NumPy twin (the specification).

Tolerances come from the operation, not from trial and error:

* elementwise arithmetic in the same order (optimizer updates, delta, dropout,
  relu/leaky, MSE gradient, gather) must agree *bit for bit*;
* transcendental elementwise functions (exp, tanh, log1p) may differ by the
  libm's last-place error: a few ulp of the result;
* a length-k dot product / sum differs by at most ``2 k eps`` times the sum of
  the absolute values of its terms (each backend's rounding bound ``k eps``).
"""

import os
import zlib

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from nncore.backend import _numpy as R

try:
    from nncore.backend import _cython as C
    from nncore import _kernels as K
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("compiled backend not built", allow_module_level=True)

DTYPES = [np.float32, np.float64]
ACTS = [0, 1, 2, 3, 4]
ULP = 4          # libm last-place slack for exp/tanh/log1p (and the op around them)


def eps(dt):
    return float(np.finfo(dt).eps)


def rng_for(*key):
    """A generator seeded by the key (crc32: str hashes change per process)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    """Run with 1 and 2 threads; lower the parallel threshold so even small test
    buffers go through the OpenMP chunked path."""
    old_n = K.get_num_threads()
    old_min = K._set_parallel_threshold(64 if request.param > 1 else 1 << 16)
    K.set_num_threads(request.param)
    with threadpool_limits(request.param, user_api="blas"):
        yield request.param
    K.set_num_threads(old_n)
    K._set_parallel_threshold(old_min)


def ro(a):
    """A read-only copy: inputs must be accepted read-only."""
    a = np.array(a)
    a.setflags(write=False)
    return a


def assert_within(actual, expected, bound, what=""):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    err = np.abs(actual - expected)
    bad = ~(err <= bound) & ~(np.isnan(actual) & np.isnan(expected)) & ~(actual == expected)
    assert not bad.any(), (f"{what}: {bad.sum()} entries off; worst err "
                           f"{np.max(np.where(bad, err, 0))} vs bound "
                           f"{np.min(np.where(bad, bound, np.inf))}")


# --------------------------------------------------------------------------- BLAS-like

@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (1, 7, 5), (6, 1, 9), (17, 13, 31), (64, 48, 70)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm(dt, m, n, k, ta, tb, threads):
    rng = rng_for(m, n, k, ta, tb)
    A = rng.standard_normal((k, m) if ta else (m, k)).astype(dt)
    B = rng.standard_normal((n, k) if tb else (k, n)).astype(dt)
    C0 = rng.standard_normal((m, n)).astype(dt)
    for alpha, beta in ((1.0, 0.0), (-0.5, 0.0), (2.0, 1.0), (0.3, -1.5)):
        c1, c2 = C0.copy(), C0.copy()
        C.gemm(ro(A), ro(B), c1, ta, tb, alpha, beta)
        R.gemm(A, B, c2, ta, tb, alpha, beta)
        a64 = np.abs(A.T if ta else A).astype(np.float64)
        b64 = np.abs(B.T if tb else B).astype(np.float64)
        bound = 2 * (k + 2) * eps(dt) * (abs(alpha) * a64 @ b64 + abs(beta) * np.abs(C0))
        assert_within(c1, c2, bound, "gemm")
        exact = (A.T if ta else A).astype(np.float64) @ (B.T if tb else B).astype(np.float64)
        assert_within(c1, alpha * exact + beta * C0, bound, "gemm vs float64 truth")


@pytest.mark.parametrize("dt", DTYPES)
def test_gemm_empty_inner_dimension(dt):
    A = np.empty((3, 0), dt)
    B = np.empty((0, 4), dt)
    for beta in (0.0, 2.0):
        c1 = np.full((3, 4), 1.5, dt)
        c2 = c1.copy()
        C.gemm(A, B, c1, False, False, 1.0, beta)
        R.gemm(A, B, c2, False, False, 1.0, beta)
        np.testing.assert_array_equal(c1, c2)
    C.gemm(np.empty((0, 3), dt), np.ones((3, 2), dt), np.empty((0, 2), dt))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 5, 1000, 70001])
def test_sum_squares(dt, n, threads):
    x = rng_for(n).standard_normal(n).astype(dt) * 3
    got, want = C.sum_squares(ro(x)), R.sum_squares(x)
    assert isinstance(got, float)
    assert abs(got - want) <= 2 * n * eps(np.float64) * want + 0.0


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 4), (2, 3, 5), (300, 7)])
def test_multiply(dt, shape, threads):
    rng = rng_for(shape)
    a = rng.standard_normal(shape).astype(dt)
    b = rng.standard_normal(shape).astype(dt)
    o1, o2 = np.empty_like(a), np.empty_like(a)
    C.multiply(ro(a), ro(b), o1)
    R.multiply(a, b, o2)
    np.testing.assert_array_equal(o1, o2)
    a1, a2 = a.copy(), a.copy()       # in place, out is a
    C.multiply(a1, b, a1)
    R.multiply(a2, b, a2)
    np.testing.assert_array_equal(a1, a2)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 4), (2, 3, 5), (300, 7)])
def test_add(dt, shape, threads):
    rng = rng_for(shape)
    a = rng.standard_normal(shape).astype(dt)
    b = rng.standard_normal(shape).astype(dt)
    o1, o2 = np.empty_like(a), np.empty_like(a)
    C.add(ro(a), ro(b), o1)
    R.add(a, b, o2)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(o2, a + b)
    b1, b2 = b.copy(), b.copy()       # in place, out is b
    C.add(a, b1, b1)
    R.add(a, b2, b2)
    np.testing.assert_array_equal(b1, b2)


# --------------------------------------------------------------------------- activations

def _act_bound(act, ref, dt):
    if act in (3, 4):     # exp / tanh: a few ulp of the result
        return ULP * eps(dt) * np.abs(ref.astype(np.float64)) + np.finfo(dt).tiny
    return 0.0


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_activation_forward_backward(dt, act, scale, threads):
    rng = rng_for(act, scale)
    S = (rng.standard_normal((40, 33)) * scale).astype(dt)
    S[0, :5] = [0.0, -0.0, 1e-30, -1e-30, 88.0]
    y1, y2 = np.empty_like(S), np.empty_like(S)
    C.activation_forward(ro(S), act, y1)
    R.activation_forward(S, act, y2)
    assert_within(y1, y2, _act_bound(act, y2, dt), f"act {act}")
    s1 = S.copy()
    C.activation_forward(s1, act, s1)        # in place
    np.testing.assert_array_equal(s1, y1)
    dY = rng.standard_normal(S.shape).astype(dt)
    g1, g2 = np.empty_like(S), np.empty_like(S)
    C.activation_backward(ro(y2), ro(dY), act, g1)
    R.activation_backward(y2, dY, act, g2)
    np.testing.assert_array_equal(g1, g2)    # same products in the same order
    d1 = dY.copy()
    C.activation_backward(y2, d1, act, d1)
    np.testing.assert_array_equal(d1, g2)


@pytest.mark.parametrize("dt", DTYPES)
def test_sigmoid_softmax_extreme(dt, threads):
    x = np.array([[-1e3, -50.0, -1.0, 0.0, 1.0, 50.0, 1e3]], dt)
    o1, o2 = np.empty_like(x), np.empty_like(x)
    C.sigmoid(ro(x), o1)
    R.sigmoid(x, o2)
    assert np.all(np.isfinite(o1))
    assert o1[0, 0] == 0.0 and o1[0, -1] == 1.0 and o1[0, 3] == 0.5
    assert_within(o1, o2, _act_bound(3, o2, dt))
    for logits in (x, np.array([[1e3, 1e3 - 1, -1e3]], dt), np.array([[-1e3, -1e3, -1e3]], dt)):
        p1, p2 = np.empty_like(logits), np.empty_like(logits)
        C.softmax(ro(logits), p1)
        R.softmax(logits, p2)
        assert np.all(np.isfinite(p1))
        K_ = logits.shape[1]
        assert_within(p1, p2, (K_ + ULP) * eps(dt) * p2 + np.finfo(dt).tiny)
        assert abs(float(p1.sum()) - 1.0) <= (K_ + ULP) * eps(dt)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 10), (128, 10), (5, 300)])
def test_softmax(dt, shape):
    x = (rng_for(shape).standard_normal(shape) * 4).astype(dt)
    p1, p2 = np.empty_like(x), np.empty_like(x)
    C.softmax(ro(x), p1)
    R.softmax(x, p2)
    k = shape[1]
    assert_within(p1, p2, 2 * (k + ULP) * eps(dt) * p2 + np.finfo(dt).tiny)
    C.softmax(x, x)        # in place
    np.testing.assert_array_equal(x, p1)


# --------------------------------------------------------------------------- dense layer

DENSE_SHAPES = [(1, 1, 1), (1, 8, 3), (7, 1, 1), (32, 20, 10), (128, 64, 33), (3, 100, 70)]


def _dense_case(dt, n, d, k, scale=1.0):
    rng = rng_for(n, d, k, scale)
    X = (rng.standard_normal((n, d)) * scale).astype(dt)
    W = (rng.standard_normal((d, k)) / np.sqrt(d)).astype(dt)
    b = rng.standard_normal(k).astype(dt)
    return X, W, b


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("n,d,k", DENSE_SHAPES)
@pytest.mark.parametrize("act", ACTS)
def test_dense_forward(dt, n, d, k, act, threads):
    X, W, b = _dense_case(dt, n, d, k)
    o1, o2 = np.empty((n, k), dt), np.empty((n, k), dt)
    C.dense_forward(ro(X), ro(W), ro(b), act, o1)
    R.dense_forward(X, W, b, act, o2)
    # |S1 - S2| <= 2 (d+1) eps (|X||W| + |b|); every activation is 1-Lipschitz,
    # plus the activation's own last-place error.
    sbound = 2 * (d + 1) * eps(dt) * (np.abs(X).astype(np.float64) @ np.abs(W) + np.abs(b))
    assert_within(o1, o2, sbound + _act_bound(act, o2, dt), "dense_forward")


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("act", [3, 4])
def test_dense_forward_saturating(dt, act):
    X, W, b = _dense_case(dt, 16, 8, 5, scale=1e3)      # |S| ~ 1e3
    o1, o2 = np.empty((16, 5), dt), np.empty((16, 5), dt)
    C.dense_forward(X, W, b, act, o1)
    R.dense_forward(X, W, b, act, o2)
    assert np.all(np.isfinite(o1))
    sbound = 2 * 9 * eps(dt) * (np.abs(X).astype(np.float64) @ np.abs(W) + np.abs(b))
    assert_within(o1, o2, sbound + _act_bound(act, o2, dt))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("n,d,k", DENSE_SHAPES)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("with_dx", [True, False])
def test_dense_backward(dt, n, d, k, act, with_dx, threads):
    X, W, b = _dense_case(dt, n, d, k)
    Y = np.empty((n, k), dt)
    R.dense_forward(X, W, b, act, Y)
    dY = rng_for("dY", n, d, k).standard_normal((n, k)).astype(dt)
    outs = []
    for B in (C, R):
        d_ = dY.copy()
        dW, db = np.full((d, k), np.nan, dt), np.full(k, np.nan, dt)
        dX = np.full((n, d), np.nan, dt) if with_dx else None
        B.dense_backward(ro(X) if B is C else X, ro(W) if B is C else W,
                         ro(Y) if B is C else Y, d_, act, dW, db, dX)
        outs.append((d_, dW, db, dX))
    (d1, dW1, db1, dX1), (d2, dW2, db2, dX2) = outs
    np.testing.assert_array_equal(d1, d2)          # delta: same products
    ad = np.abs(d2).astype(np.float64)
    assert_within(dW1, dW2, 2 * n * eps(dt) * (np.abs(X).T.astype(np.float64) @ ad), "dW")
    assert_within(db1, db2, 2 * n * eps(dt) * ad.sum(axis=0), "db")
    if with_dx:
        assert_within(dX1, dX2, 2 * k * eps(dt) * (ad @ np.abs(W).T), "dX")


# --------------------------------------------------------------------------- losses

LOSS_SHAPES = [(1, 1), (1, 10), (128, 10), (33, 3)]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", LOSS_SHAPES)
def test_loss_mse(dt, shape):
    rng = rng_for("mse", shape)
    out = rng.standard_normal(shape).astype(dt)
    t = rng.standard_normal(shape).astype(dt)
    g1, g2 = np.empty_like(out), np.empty_like(out)
    J1 = C.loss_mse(ro(out), ro(t), g1)
    J2 = R.loss_mse(out, t, g2)
    np.testing.assert_array_equal(g1, g2)
    # the terms are identical; only the float64 summation order differs
    assert abs(J1 - J2) <= 2 * out.size * eps(np.float64) * J2
    assert C.loss_mse(out, t, None) == J1


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", LOSS_SHAPES)
@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_loss_softmax_ce(dt, shape, scale):
    n, k = shape
    rng = rng_for("ce", shape, scale)
    x = (rng.standard_normal(shape) * scale).astype(dt)
    labels = rng.integers(0, k, n)
    g1, g2 = np.empty_like(x), np.empty_like(x)
    J1 = C.loss_softmax_ce(ro(x), ro(labels), g1)
    J2 = R.loss_softmax_ce(x, labels, g2)
    assert np.isfinite(J1)
    # per row: log(s) with s a k-term sum of exps (k eps relative) and |log s| + |z_y|
    z = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    bound = 2 * (k + ULP) * eps(dt) * np.mean(1 + lse + np.abs(z[np.arange(n), labels]))
    assert abs(J1 - J2) <= bound + 4 * n * eps(np.float64) * abs(J2)
    p = np.exp(z - lse[:, None])
    assert_within(g1, g2, 2 * (k + ULP) * eps(dt) * (p + np.abs(g2) * n) / n + np.finfo(dt).tiny)
    assert C.loss_softmax_ce(x, labels, None) == J1
    J64 = np.mean(lse - z[np.arange(n), labels])       # float64 truth
    assert abs(J1 - J64) <= 2 * bound + 1e-12 * abs(J64)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", LOSS_SHAPES)
@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_loss_softmax_ce_prob(dt, shape, scale):
    n, k = shape
    rng = rng_for("cep", shape, scale)
    x = (rng.standard_normal(shape) * scale).astype(dt)
    t = rng.random(shape)
    t = (t / t.sum(axis=1, keepdims=True)).astype(dt)
    g1, g2 = np.empty_like(x), np.empty_like(x)
    J1 = C.loss_softmax_ce_prob(ro(x), ro(t), g1)
    J2 = R.loss_softmax_ce_prob(x, t, g2)
    z = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    logp = np.abs(z - lse[:, None])
    bound = 2 * (k + ULP + 2) * eps(dt) * np.sum(t * (1 + logp + lse[:, None])) / n
    assert np.isfinite(J1) and abs(J1 - J2) <= bound + 4 * x.size * eps(np.float64) * abs(J2)
    p = np.exp(z - lse[:, None])
    assert_within(g1, g2, 2 * (k + ULP) * eps(dt) * (p + np.abs(g2) * n + t) / n
                  + np.finfo(dt).tiny)
    assert C.loss_softmax_ce_prob(x, t, None) == J1


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", LOSS_SHAPES)
@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_loss_bce(dt, shape, scale):
    rng = rng_for("bce", shape, scale)
    x = (rng.standard_normal(shape) * scale).astype(dt)
    t = rng.random(shape).astype(dt)
    t[0, 0] = 1.0
    g1, g2 = np.empty_like(x), np.empty_like(x)
    J1 = C.loss_bce(ro(x), ro(t), g1)
    J2 = R.loss_bce(x, t, g2)
    n = shape[0]
    x64 = x.astype(np.float64)
    terms = np.maximum(x64, 0) + np.abs(x64 * t) + np.log1p(np.exp(-np.abs(x64)))
    assert np.isfinite(J1)
    assert abs(J1 - J2) <= 2 * ULP * eps(dt) * terms.sum() / n + 4 * x.size * eps(np.float64) * abs(J2)
    assert_within(g1, g2, 2 * ULP * eps(dt) * (1 + np.abs(g2) * n) / n)
    assert C.loss_bce(x, t, None) == J1


# --------------------------------------------------------------------------- regularisation

@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (1e-3, 0.0), (0.0, 1e-2), (1e-3, 2e-2)])
@pytest.mark.parametrize("n", [1, 50, 5000])
def test_regularize(dt, l1, l2, n, threads):
    rng = rng_for("reg", n, l1, l2)
    params = rng.standard_normal(n).astype(dt)
    params[: min(n, 3)] = 0.0         # sign(0) = 0
    cut = [0, n // 3, n // 2, n]
    segments = np.array([[cut[0], cut[1]], [cut[2], cut[3]]], dtype=np.int64)
    g0 = rng.standard_normal(n).astype(dt)
    g1, g2 = g0.copy(), g0.copy()
    p1 = C.regularize(ro(params), g1, ro(segments), l1, l2)
    p2 = R.regularize(params, g2, segments, l1, l2)
    np.testing.assert_array_equal(g1, g2)       # same elementwise order
    assert abs(p1 - p2) <= 2 * n * eps(np.float64) * (l1 * np.abs(params).sum()
                                                      + l2 * np.square(params.astype(float)).sum())
    assert C.regularize(params, None, segments, l1, l2) == p1
    # biases (outside the segments) untouched
    np.testing.assert_array_equal(g1[cut[1]:cut[2]], g0[cut[1]:cut[2]])


# --------------------------------------------------------------------------- dropout

@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(1,), (4, 7), (300, 257)])
def test_dropout_mask_bit_identical(dt, rate, shape, threads):
    for seed, counter in ((0, 0), (123, 456), (2**64 - 1, 2**63 + 5)):
        m1, m2 = np.empty(shape, dt), np.empty(shape, dt)
        C.dropout_mask(seed, counter, rate, m1)
        R.dropout_mask(seed, counter, rate, m2)
        np.testing.assert_array_equal(m1, m2)
    scale = dt(1.0 / (1.0 - rate))
    assert set(np.unique(m1)) <= {dt(0), scale}
    if m1.size > 10000:
        assert abs(np.mean(m1 == 0) - rate) < 0.01


def test_dropout_counter_is_an_offset():
    """The generator is counter-based: element i of counter c is element i+c of counter 0."""
    a, b = np.empty(100), np.empty(60)
    C.dropout_mask(7, 0, 0.5, a)
    C.dropout_mask(7, 40, 0.5, b)
    np.testing.assert_array_equal(a[40:], b)


# --------------------------------------------------------------------------- batching

@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 37])
def test_gather_rows(src, dst, n):
    rng = rng_for("gr", n)
    X = rng.standard_normal((50, 6)).astype(src)
    idx = rng.integers(0, 50, n)
    o1, o2 = np.empty((n, 6), dst), np.empty((n, 6), dst)
    C.gather_rows(ro(X), ro(idx), o1)
    R.gather_rows(X, idx, o2)
    np.testing.assert_array_equal(o1, o2)


@pytest.mark.parametrize("src,dst", [(np.float32, np.float32), (np.float32, np.float64),
                                     (np.float64, np.float32), (np.float64, np.float64),
                                     (np.int64, np.int64)])
def test_gather(src, dst):
    rng = rng_for("g", str(src), str(dst))
    y = (rng.standard_normal(40) * 100).astype(src)
    idx = rng.integers(0, 40, 25)
    o1, o2 = np.empty(25, dst), np.empty(25, dst)
    C.gather(ro(y), ro(idx), o1)
    R.gather(y, idx, o2)
    np.testing.assert_array_equal(o1, o2)


# --------------------------------------------------------------------------- optimizers

OPT_CASES = {
    "sgd": dict(kind="sgd", lr=0.05, momentum=0.0, dampening=0.0, nesterov=False),
    "momentum": dict(kind="sgd", lr=0.05, momentum=0.9, dampening=0.0, nesterov=False),
    "momentum_damp": dict(kind="sgd", lr=0.05, momentum=0.8, dampening=0.3, nesterov=False),
    "nesterov": dict(kind="sgd", lr=0.05, momentum=0.9, dampening=0.0, nesterov=True),
    "adagrad": dict(kind="adagrad", clr=0.1, eps=1e-10, inside=False),
    "adagrad_inside": dict(kind="adagrad", clr=0.1, eps=1e-8, inside=True),
    "rmsprop": dict(kind="rmsprop", lr=0.01, alpha=0.99, eps=1e-8, inside=False),
    "rmsprop_inside": dict(kind="rmsprop", lr=0.01, alpha=0.9, eps=1e-6, inside=True),
    "adam": dict(kind="adam", lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0, inside=False),
    "adamw": dict(kind="adam", lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.01, inside=False),
    "adam_inside": dict(kind="adam", lr=1e-3, beta1=0.8, beta2=0.99, eps=1e-8, wd=0.0, inside=True),
    "adam_lerp_big_w": dict(kind="adam", lr=1e-3, beta1=0.3, beta2=0.9, eps=1e-8, wd=0.1, inside=False),
}


def _state_count(kind):
    return 2 if kind == "adam" else 1


def _opt_step(B, case, params, grads, state, t, gscale):
    k = case["kind"]
    if k == "sgd":
        B.sgd_step(params, grads, state[0], case["lr"], case["momentum"], case["dampening"],
                   case["nesterov"], t == 1, gscale)
    elif k == "adagrad":
        B.adagrad_step(params, grads, state[0], case["clr"], case["eps"], case["inside"], gscale)
    elif k == "rmsprop":
        B.rmsprop_step(params, grads, state[0], case["lr"], case["alpha"], case["eps"],
                       case["inside"], gscale)
    else:
        B.adam_step(params, grads, state[0], state[1], case["lr"], case["beta1"],
                    case["beta2"], case["eps"], t, case["wd"], case["inside"], gscale)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", list(OPT_CASES))
@pytest.mark.parametrize("n", [1, 1000])
def test_optimizer_matches_reference_bitwise(dt, name, n, threads):
    """Params and every state buffer after 60 steps with changing gradients."""
    case = OPT_CASES[name]
    rng = rng_for("opt", name, n)
    p1 = rng.standard_normal(n).astype(dt)
    p2 = p1.copy()
    s1 = [np.zeros(n, dt) for _ in range(_state_count(case["kind"]))]
    s2 = [s.copy() for s in s1]
    for t in range(1, 61):
        g = (rng.standard_normal(n) * rng.uniform(0.1, 10)).astype(dt)
        if t % 7 == 0:
            g[: n // 2] = 0.0
        gscale = 1.0 if t % 3 else float(rng.uniform(0.2, 1.0))   # clipping
        _opt_step(C, case, p1, ro(g), s1, t, gscale)
        _opt_step(R, case, p2, g, s2, t, gscale)
    np.testing.assert_array_equal(p1, p2)
    for a, b in zip(s1, s2):
        np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(p1))


RPROP_FLAGS = {"rprop-": (False, False), "irprop-": (True, False), "rprop+": (True, True),
               "irprop+": (True, True)}


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("variant", list(RPROP_FLAGS))
@pytest.mark.parametrize("n", [1, 1000])
def test_rprop_matches_reference_bitwise(dt, variant, n, threads):
    """Params, step sizes, previous gradients and weight changes after 60 steps
    whose gradients flip sign, vanish and get tiny (products that underflow)."""
    zero_on_change, backtrack = RPROP_FLAGS[variant]
    rng = rng_for("rprop", variant, n)
    p1 = rng.standard_normal(n).astype(dt)
    p2 = p1.copy()
    s1 = [np.zeros(n, dt), np.full(n, 0.01, dt), np.zeros(n, dt)]
    s2 = [s.copy() for s in s1]
    for t in range(60):
        g = (rng.standard_normal(n) * 10.0 ** rng.integers(-30, 3)).astype(dt)
        g[rng.random(n) < 0.1] = 0.0
        revert = variant == "rprop+" or bool(rng.random() < 0.5)
        for B, p, s, gg in ((C, p1, s1, ro(g)), (R, p2, s2, g)):
            B.rprop_step(p, gg, s[0], s[1], s[2] if backtrack else p, 0.5, 1.2, 1e-6, 50.0,
                         zero_on_change, backtrack, revert)
    np.testing.assert_array_equal(p1, p2)
    for a, b in zip(s1, s2):
        np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(p1))


@pytest.mark.parametrize("name", ["sgd", "momentum", "momentum_damp", "nesterov", "adagrad",
                                  "rmsprop", "adam", "adamw", "adam_lerp_big_w"])
def test_optimizer_matches_torch(name):
    torch = pytest.importorskip("torch")
    case = OPT_CASES[name]
    n = 257
    rng = rng_for("torch", name)
    p0 = rng.standard_normal(n)
    p = p0.copy()
    state = [np.zeros(n) for _ in range(_state_count(case["kind"]))]
    tp = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    k = case["kind"]
    if k == "sgd":
        opt = torch.optim.SGD([tp], lr=case["lr"], momentum=case["momentum"],
                              dampening=case["dampening"], nesterov=case["nesterov"],
                              foreach=False)
    elif k == "adagrad":
        opt = torch.optim.Adagrad([tp], lr=case["clr"], eps=case["eps"], foreach=False)
    elif k == "rmsprop":
        opt = torch.optim.RMSprop([tp], lr=case["lr"], alpha=case["alpha"], eps=case["eps"],
                                  foreach=False)
    else:
        cls = torch.optim.AdamW if case["wd"] else torch.optim.Adam
        opt = cls([tp], lr=case["lr"], betas=(case["beta1"], case["beta2"]), eps=case["eps"],
                  weight_decay=case["wd"], foreach=False)
    for t in range(1, 61):
        g = rng.standard_normal(n) * rng.uniform(0.1, 10)
        _opt_step(C, case, p, g, state, t, 1.0)
        tp.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    tstate = opt.state[tp]
    names = {"sgd": ["momentum_buffer"], "adagrad": ["sum"], "rmsprop": ["square_avg"],
             "adam": ["exp_avg", "exp_avg_sq"]}[k]
    if k == "sgd" and case["momentum"] == 0.0:
        names = []
    for mine, key in zip(state, names):
        # torch's vectorised lerp may fuse a multiply-add: one ulp at the
        # gradient's scale (|g| <= ~40), which the cancellation g - (g - m)(1-w)
        # can leave on a much smaller m, hence the absolute term.
        np.testing.assert_allclose(mine, tstate[key].numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dt", DTYPES)
def test_optimizer_large_buffer_threads(dt):
    """Above the default parallel threshold, 1 and 2 threads give identical bits."""
    n = (1 << 17) + 13
    rng = rng_for("big")
    g = rng.standard_normal(n).astype(dt)
    results = []
    old = K.get_num_threads()
    try:
        for nt in (1, 2):
            K.set_num_threads(nt)
            p = np.linspace(-1, 1, n).astype(dt)
            m, v = np.zeros(n, dt), np.zeros(n, dt)
            for t in (1, 2, 3):
                C.adam_step(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, t, 0.01, False, 1.0)
            results.append((p, m, v))
    finally:
        K.set_num_threads(old)
    p2, m2, v2 = np.linspace(-1, 1, n).astype(dt), np.zeros(n, dt), np.zeros(n, dt)
    for t in (1, 2, 3):
        R.adam_step(p2, g, m2, v2, 1e-3, 0.9, 0.999, 1e-8, t, 0.01, False, 1.0)
    for got in results:
        for a, b in zip(got, (p2, m2, v2)):
            np.testing.assert_array_equal(a, b)


def test_empty_optimizer_buffers_are_a_no_op():
    e = np.empty(0)
    C.adam_step(e, e.copy(), e.copy(), e.copy(), 1e-3, 0.9, 0.999, 1e-8, 1, 0.0, False, 1.0)
    C.sgd_step(e, e.copy(), e.copy(), 0.1, 0.9, 0.0, False, True, 1.0)


# --------------------------------------------------------------------------- full-batch helpers

def _spd(n, dt, seed):
    rng = rng_for("spd", n, seed)
    A = rng.standard_normal((n, n))
    return ((A @ A.T) / n + np.eye(n)).astype(dt)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 5, 300])
def test_symv(dt, n, threads):
    A = _spd(n, dt, 0)
    x = rng_for("x", n).standard_normal(n).astype(dt)
    o1, o2 = np.empty(n, dt), np.empty(n, dt)
    C.symv(ro(A), ro(x), o1)
    R.symv(A, x, o2)
    assert_within(o1, o2, 2 * n * eps(dt) * (np.abs(A).astype(float) @ np.abs(x)))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("n", [1, 4, 300])
@pytest.mark.parametrize("which", ["bfgs", "dfp"])
def test_rank2_updates(dt, n, which, threads):
    rng = rng_for("r2", n, which)
    V1 = _spd(n, dt, 1)
    V2 = V1.copy()
    for it in range(5):
        s = rng.standard_normal(n).astype(dt)
        r = (s + 0.3 * rng.standard_normal(n)).astype(dt)
        if float(s @ r) <= 0:
            r = -r
        getattr(C, f"{which}_update")(V1, ro(s), ro(r))
        getattr(R, f"{which}_update")(V2, s, r)
        # O(n) dot products feed an O(1) rank-2 correction per entry
        scale = np.abs(V2).max() + 1
        assert_within(V1, V2, 40 * n * eps(dt) * scale * (it + 1), f"{which} iteration {it}")
    np.testing.assert_array_equal(V1, V1.T)    # both triangles, exactly symmetric


@pytest.mark.parametrize("which", ["bfgs", "dfp"])
def test_rank2_secant_condition(which):
    """The updated inverse Hessian maps r to s (the quasi-Newton secant equation)."""
    n = 30
    rng = rng_for("secant", which)
    Vm = _spd(n, np.float64, 2)
    s = rng.standard_normal(n)
    r = s + 0.1 * rng.standard_normal(n)
    getattr(C, f"{which}_update")(Vm, s, r)
    np.testing.assert_allclose(Vm @ r, s, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- debug build

@pytest.mark.skipif(not K.DEBUG_BUILD, reason="only the debug build (NNCORE_DEBUG=1) checks bounds")
def test_debug_build_catches_out_of_bounds(monkeypatch):
    """Bypassing validation, an out-of-range index is caught inside the kernel
    (reported through sys.unraisablehook, as kernels cannot raise) instead of
    reading past the array. (The entry point K.gather itself refuses the index
    first; _gather_unchecked, debug build only, skips that check.)"""
    import sys
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    y, out = np.arange(5.0), np.empty(1)
    with pytest.raises(ValueError):
        K.gather(y, np.array([10**6], dtype=np.int64), out)
    K._gather_unchecked(y, np.array([10**6], dtype=np.int64), out)   # the raw kernel
    assert IndexError in seen
