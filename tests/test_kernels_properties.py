"""Property-based tests (hypothesis) of the kernel wrappers.

1. Valid calls over random shapes and values agree with the NumPy twin.
2. Malformed calls -- wrong dtype, shape, ndim, layout, read-only or aliased
   outputs, out-of-range indices or codes, non-arrays -- raise ValueError or
   TypeError, the *same* one on both backends, and never crash the process.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nncore.backend import BACKEND_API
from nncore.backend import _numpy as R

try:
    from nncore.backend import _cython as C
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("compiled backend not built", allow_module_level=True)

# Random values overflow in the NumPy twin's intermediate arrays now and then.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DTYPES = [np.float32, np.float64]
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def eps(dt):
    return float(np.finfo(dt).eps)


# --------------------------------------------------------------------------- valid calls

@SETTINGS
@given(dt=st.sampled_from(DTYPES), n=st.integers(1, 40), d=st.integers(1, 40),
       k=st.integers(1, 40), act=st.integers(0, 4), scale=st.sampled_from([1e-3, 1.0, 30.0, 1e3]),
       seed=st.integers(0, 2**32 - 1), with_dx=st.booleans())
def test_dense_forward_backward_property(dt, n, d, k, act, scale, seed, with_dx):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * scale).astype(dt)
    W = (rng.standard_normal((d, k)) / np.sqrt(d)).astype(dt)
    b = rng.standard_normal(k).astype(dt)
    o1, o2 = np.empty((n, k), dt), np.empty((n, k), dt)
    C.dense_forward(X, W, b, act, o1)
    R.dense_forward(X, W, b, act, o2)
    bound = 2 * (d + 1) * eps(dt) * (np.abs(X).astype(float) @ np.abs(W) + np.abs(b)) \
        + 4 * eps(dt) * np.abs(o2) + np.finfo(dt).tiny
    assert np.all((np.abs(o1.astype(float) - o2) <= bound) | (o1 == o2))
    dY = rng.standard_normal((n, k)).astype(dt)
    d1, d2 = dY.copy(), dY.copy()
    dW1, dW2 = np.empty_like(W), np.empty_like(W)
    db1, db2 = np.empty_like(b), np.empty_like(b)
    dX1, dX2 = (np.empty_like(X), np.empty_like(X)) if with_dx else (None, None)
    C.dense_backward(X, W, o2, d1, act, dW1, db1, dX1)
    R.dense_backward(X, W, o2, d2, act, dW2, db2, dX2)
    np.testing.assert_array_equal(d1, d2)
    ad = np.abs(d2).astype(float)
    assert np.all(np.abs(dW1.astype(float) - dW2) <= 2 * n * eps(dt) * (np.abs(X).T.astype(float) @ ad))
    assert np.all(np.abs(db1.astype(float) - db2) <= 2 * n * eps(dt) * ad.sum(axis=0))
    if with_dx:
        assert np.all(np.abs(dX1.astype(float) - dX2) <= 2 * k * eps(dt) * (ad @ np.abs(W).T))


@SETTINGS
@given(data=st.data(), dt=st.sampled_from(DTYPES), act=st.integers(0, 4))
def test_elementwise_property(data, dt, act):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=9))
    x = data.draw(hnp.arrays(dt, shape, elements=st.floats(-1e3, 1e3, width=32)))
    y1, y2 = np.empty_like(x), np.empty_like(x)
    C.activation_forward(x, act, y1)
    R.activation_forward(x, act, y2)
    np.testing.assert_allclose(y1, y2, rtol=4 * eps(dt), atol=np.finfo(dt).tiny)
    s1, s2 = np.empty_like(x), np.empty_like(x)
    C.sigmoid(x, s1)
    R.sigmoid(x, s2)
    assert np.all(np.isfinite(s1))
    np.testing.assert_allclose(s1, s2, rtol=4 * eps(dt), atol=np.finfo(dt).tiny)
    g = data.draw(hnp.arrays(dt, shape, elements=st.floats(-10, 10, width=32)))
    g1, g2 = np.empty_like(x), np.empty_like(x)
    C.activation_backward(y2, g, act, g1)
    R.activation_backward(y2, g, act, g2)
    np.testing.assert_array_equal(g1, g2)


@SETTINGS
@given(data=st.data(), dt=st.sampled_from(DTYPES))
def test_losses_property(data, dt):
    n = data.draw(st.integers(1, 20))
    k = data.draw(st.integers(1, 12))
    x = data.draw(hnp.arrays(dt, (n, k), elements=st.floats(-1e3, 1e3, width=32)))
    labels = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)),
                      dtype=np.int64)
    t = data.draw(hnp.arrays(dt, (n, k), elements=st.floats(0, 1, width=32)))
    for fn, tgt in (("loss_softmax_ce", labels), ("loss_bce", t), ("loss_mse", t)):
        g1, g2 = np.empty_like(x), np.empty_like(x)
        J1 = getattr(C, fn)(x, tgt, g1)
        J2 = getattr(R, fn)(x, tgt, g2)
        assert np.isfinite(J1) == np.isfinite(J2)
        scale = 1 + abs(J2) + float(np.abs(x).max())
        assert abs(J1 - J2) <= 8 * (k + 4) * eps(dt) * scale, fn
        np.testing.assert_allclose(g1, g2, rtol=8 * (k + 4) * eps(dt), atol=8 * eps(dt) / n)


@SETTINGS
@given(dt=st.sampled_from(DTYPES), n=st.integers(0, 300), steps=st.integers(1, 8),
       seed=st.integers(0, 2**32 - 1), wd=st.sampled_from([0.0, 0.01]),
       beta1=st.sampled_from([0.0, 0.3, 0.9]), inside=st.booleans(),
       gscale=st.sampled_from([1.0, 0.37]))
def test_adam_property_bitwise(dt, n, steps, seed, wd, beta1, inside, gscale):
    rng = np.random.default_rng(seed)
    p1 = rng.standard_normal(n).astype(dt)
    p2 = p1.copy()
    m1, v1, m2, v2 = (np.zeros(n, dt) for _ in range(4))
    for t in range(1, steps + 1):
        g = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4)).astype(dt)
        C.adam_step(p1, g, m1, v1, 1e-2, beta1, 0.99, 1e-8, t, wd, inside, gscale)
        R.adam_step(p2, g, m2, v2, 1e-2, beta1, 0.99, 1e-8, t, wd, inside, gscale)
    for a, b in ((p1, p2), (m1, m2), (v1, v2)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- malformed calls

def _f(rng, shape, dt):
    return rng.standard_normal(shape).astype(dt)


def _valid_call(name, rng, dt):
    """(args, indices of arrays written by the call) for a valid call of ``name``."""
    n, d, k = (int(v) for v in rng.integers(1, 6, 3))
    f = lambda *s: _f(rng, s, dt)
    if name == "gemm":
        return [f(n, d), f(d, k), f(n, k), False, False, 1.0, 0.5], [2]
    if name == "sum_squares":
        return [f(n)], []
    if name in ("multiply", "add"):
        return [f(n, k), f(n, k), f(n, k)], [2]
    if name == "activation_forward":
        return [f(n, k), 3, f(n, k)], [2]
    if name == "activation_backward":
        return [f(n, k), f(n, k), 4, f(n, k)], [3]
    if name == "dense_forward":
        return [f(n, d), f(d, k), f(k), 1, f(n, k)], [4]
    if name == "dense_backward":
        return [f(n, d), f(d, k), f(n, k), f(n, k), 3, f(d, k), f(k), f(n, d)], [3, 5, 6, 7]
    if name in ("softmax", "sigmoid"):
        return [f(n, k), f(n, k)], [1]
    if name in ("loss_mse", "loss_softmax_ce_prob", "loss_bce"):
        t = np.abs(f(n, k)) + 0.1
        t /= t.sum(axis=1, keepdims=True)
        return [f(n, k), t, f(n, k)], [2]
    if name == "loss_softmax_ce":
        return [f(n, k), rng.integers(0, k, n), f(n, k)], [2]
    if name == "regularize":
        return [f(n * k), f(n * k), np.array([[0, n], [n + 1, n * k]], np.int64).clip(0, n * k),
                1e-3, 1e-2], [1]
    if name == "dropout_mask":
        return [int(rng.integers(0, 1000)), 7, 0.25, f(n, k)], [3]
    if name == "gather_rows":
        return [f(n + 3, k), rng.integers(0, n + 3, n), f(n, k)], [2]
    if name == "gather":
        return [f(n + 3), rng.integers(0, n + 3, n), f(n)], [2]
    if name == "sgd_step":
        return [f(n), f(n), f(n), 0.1, 0.9, 0.0, True, False, 1.0], [0, 2]
    if name == "adagrad_step":
        return [f(n), f(n), np.abs(f(n)), 0.1, 1e-10, False, 1.0], [0, 2]
    if name == "rmsprop_step":
        return [f(n), f(n), np.abs(f(n)), 0.01, 0.99, 1e-8, False, 1.0], [0, 2]
    if name == "adam_step":
        return [f(n), f(n), f(n), np.abs(f(n)), 1e-3, 0.9, 0.999, 1e-8, 3, 0.0, False, 1.0], [0, 2, 3]
    if name == "rprop_step":
        return [f(n), f(n), f(n), np.abs(f(n)), f(n), 0.5, 1.2, 1e-6, 50.0, True, True,
                False], [0, 2, 3, 4]
    if name == "symv":
        A = f(n, n)
        return [A + A.T, f(n), f(n)], [2]
    if name in ("bfgs_update", "dfp_update"):
        s = f(n)
        return [np.eye(n, dtype=dt), s, s * 1.5], [0]
    m = int(rng.integers(1, 4))
    if name == "dense_rforward":
        return [f(n, d), f(m, n, d), f(d, k), f(m, d, k), f(m, k), 4, np.tanh(f(n, k)),
                f(m, n, k), f(m, n, k)], [7, 8]
    if name == "dense_rbackward":
        return [f(n, d), f(m, n, d), f(d, k), f(m, d, k), np.tanh(f(n, k)), f(m, n, k),
                f(n, k), f(m, n, k), 3, f(m, d, k), f(m, k), f(n, d), f(m, n, d)], \
            [6, 7, 9, 10, 11, 12]
    if name in ("loss_mse_rop", "loss_softmax_ce_rop", "loss_bce_rop"):
        return [f(n, k), f(m, n, k), f(m, n, k)], [2]
    if name == "jacobian_rows":
        return [f(n, d), f(n, k), f(n, d * k + k + 2), 1], [2]
    if name == "ggn_rows_softmax":
        p = np.abs(f(n, k)) + 0.1
        return [p / p.sum(axis=1, keepdims=True), f(n * k, d)], [1]
    if name == "syrk":
        c = f(d, d)
        return [f(n, d), c + c.T, 1.0, 0.5], [1]
    if name == "cholesky_solve":
        a = f(n, n)
        return [a @ a.T + n * np.eye(n, dtype=dt), f(n), f(n)], [2]
    raise AssertionError(name)


MUTATIONS = ["none", "dtype", "transpose", "strided", "shape", "ndim", "readonly", "list",
             "None", "alias", "value"]
BAD_DTYPES = [np.float16, np.int32, np.int64, np.float32, np.float64, np.complex128, np.bool_,
              np.dtype(">f8")]


def _mutate(args, outs, rng, mutation, which):
    args = list(args)
    arr_idx = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]
    scal_idx = [i for i, a in enumerate(args) if not isinstance(a, np.ndarray)]
    i = arr_idx[which % len(arr_idx)]
    a = args[i]
    if mutation == "dtype":
        args[i] = a.astype(BAD_DTYPES[which % len(BAD_DTYPES)])
    elif mutation == "transpose" and a.ndim == 2:
        args[i] = a.T
    elif mutation == "strided":
        big = np.repeat(a, 2, axis=-1)
        args[i] = big[..., ::2]
    elif mutation == "shape":
        shape = list(a.shape)
        ax = which % len(shape)
        shape[ax] = max(0, shape[ax] + (1 if which % 2 else -1))
        args[i] = np.resize(a, shape) if np.prod(shape) else np.empty(shape, a.dtype)
    elif mutation == "ndim":
        args[i] = a.reshape(-1) if a.ndim > 1 else a.reshape(1, -1)
    elif mutation == "readonly":
        a = a.copy()
        a.setflags(write=False)
        args[i] = a
    elif mutation == "list":
        args[i] = a.tolist()
    elif mutation == "None":
        args[i] = None
    elif mutation == "alias" and outs:
        o = outs[which % len(outs)]
        src = arr_idx[(which // 2) % len(arr_idx)]
        args[o] = args[src]
        if which % 3 == 0 and args[src].size > 1:   # partial overlap
            flat = np.concatenate([args[src].ravel(), args[src].ravel()[:1]])
            args[src] = flat[:-1].reshape(args[src].shape)
            args[o] = flat[1:].reshape(args[src].shape)
    elif mutation == "value":
        if a.dtype == np.int64 and a.size:
            a = a.copy()
            a.flat[which % a.size] = [-1, 10**6][which % 2]
            args[i] = a
        elif scal_idx:
            j = scal_idx[which % len(scal_idx)]
            args[j] = [-1, 7, 1.5, float("nan"), "x", None, 2**65, True][which % 8]
    return args


def _run(fn, args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - classified by the test
        return "error", type(exc), args
    return "ok", None, args


# The per-call kernels; train_epoch (a whole epoch over a network description)
# is validated and fuzzed by its own tests.
KERNEL_CALLS = [n for n in BACKEND_API if n != "train_epoch"]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(KERNEL_CALLS), dt=st.sampled_from(DTYPES),
       mutation=st.sampled_from(MUTATIONS), which=st.integers(0, 50),
       seed=st.integers(0, 2**32 - 1))
def test_malformed_calls_rejected_identically(name, dt, mutation, which, seed):
    def make():   # deterministic, so each backend gets its own identical arguments
        args, outs = _valid_call(name, np.random.default_rng(seed), dt)
        return _mutate(args, outs, None, mutation, which)

    args, args_c, args_r = make(), make(), make()
    res_c = _run(getattr(C, name), args_c)
    res_r = _run(getattr(R, name), args_r)
    if mutation == "none":
        assert res_c[0] == res_r[0] == "ok", (res_c, res_r)
    assert res_c[0] == res_r[0], f"{name}/{mutation}: cython {res_c[:2]} vs numpy {res_r[:2]}"
    if res_c[0] == "error":
        assert res_c[1] is res_r[1], f"{name}/{mutation}: {res_c[1]} vs {res_r[1]}"
        assert issubclass(res_c[1], (ValueError, TypeError)), f"{name}/{mutation}: {res_c[1]}"
        if mutation != "alias":     # and a rejected call changed nothing
            for x, y in zip(args_c, args):
                if isinstance(x, np.ndarray):
                    np.testing.assert_array_equal(x, y)
    else:
        for x, y in zip(args_c, args_r):
            if isinstance(x, np.ndarray) and x.dtype.kind == "f":
                np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5, equal_nan=True)
