"""The activation and loss registries against independent truth.

* every activation's reference derivative (computed from the output) against
  central finite differences of its reference forward in float64, and its
  second derivative against finite differences of the first;
* every loss's kernels exist on both backends and its reference value and
  gradient agree with finite differences; accuracy counting against a plain
  loop over the rows.
"""

import zlib

import numpy as np
import pytest

import nncore as nc
from nncore import activations as A
from nncore import backend as B
from nncore import losses as L


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _points(name):
    # Away from the kinks of relu/leaky_relu, where f' is not defined.
    s = rng_for(name).uniform(-6, 6, 200)
    return s[np.abs(s) > 1e-3]


@pytest.mark.parametrize("name", A.NAMES)
def test_activation_derivatives_match_finite_differences(name):
    act = A.get(name)
    s = _points(name)
    h = 1e-6

    def f(x):
        y = np.empty_like(x)
        act.forward(x, y)
        return y

    def fprime(x):
        g = np.empty_like(x)
        act.backward(f(x), np.ones_like(x), g)
        return g

    fd = (f(s + h) - f(s - h)) / (2 * h)
    np.testing.assert_allclose(fprime(s), fd, rtol=1e-7, atol=1e-8)
    fd2 = (fprime(s + h) - fprime(s - h)) / (2 * h)
    np.testing.assert_allclose(act.second(f(s)), fd2, rtol=1e-5, atol=1e-6)


def test_activation_registry_lookups():
    for code, name in enumerate(A.NAMES):
        assert A.get(name).code == code and A.by_code(code).name == name
    with pytest.raises(ValueError, match="unknown activation"):
        A.get("swish")
    for bad in (-1, len(A.NAMES), True, 1.0, "relu"):
        with pytest.raises(ValueError, match="activation code"):
            A.by_code(bad)
    with pytest.raises(ValueError, match="next free code"):
        A.register(A.Activation("x", 99, "he_uniform", None, None, None))
    with pytest.raises(ValueError, match="already"):
        A.register(A.REGISTRY["relu"])


@pytest.mark.parametrize("name", A.NAMES)
def test_dense_default_init_is_the_registry_rule(name):
    layer = nc.Dense(3, 4, activation=name)
    assert layer.init_name == A.get(name).init


@pytest.mark.parametrize("name", L.NAMES)
def test_loss_kernels_exist_on_both_backends(name):
    loss = L.get(name)
    for be_name in B.available():
        be = B._load(be_name)
        for fn in (loss.kernel, loss.label_kernel):
            if fn is not None:
                assert callable(getattr(be, fn))


def _targets(loss, n, K, rng, labels):
    if labels:
        return rng.integers(0, K, n).astype(np.int64)
    if loss.name == "cross_entropy":
        p = rng.uniform(0.1, 1, (n, K))
        return p / p.sum(axis=1, keepdims=True)
    if loss.is_classifier:
        return rng.uniform(0, 1, (n, K))
    return rng.standard_normal((n, K))


@pytest.mark.parametrize("name,labels", [(n, False) for n in L.NAMES]
                         + [(n, True) for n in L.NAMES if L.get(n).label_code is not None])
def test_loss_reference_gradient_matches_finite_differences(name, labels):
    loss = L.get(name)
    rng = rng_for(name, labels)
    n, K = 5, 3
    out = rng.standard_normal((n, K)) * 2
    t = _targets(loss, n, K, rng, labels)
    grad = np.empty_like(out)
    loss.reference(out, t, grad)
    fd = np.empty_like(out)
    h = 1e-6
    for idx in np.ndindex(out.shape):
        e = np.zeros_like(out)
        e[idx] = h
        fd[idx] = (loss.reference(out + e, t) - loss.reference(out - e, t)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    assert loss.loop_code(t) == (loss.label_code if labels else loss.code)


@pytest.mark.parametrize("name", [n for n in L.NAMES if L.get(n).is_classifier])
def test_count_correct_against_a_plain_loop(name):
    loss = L.get(name)
    rng = rng_for("count", name)
    n, K = 50, 3
    out = rng.standard_normal((n, K))
    t = _targets(loss, n, K, rng, labels=False)
    first_max = lambda row: max(range(K), key=lambda k: (row[k], -k))  # noqa: E731
    right = 0
    for i in range(n):
        if name == "binary_cross_entropy":
            right += sum(int((out[i, k] >= 0) == (t[i, k] >= 0.5)) for k in range(K))
        else:
            right += int(first_max(out[i]) == first_max(t[i]))
    assert loss.count_correct(out, t) == right
    assert loss.n_judged(n, K) == (n * K if name == "binary_cross_entropy" else n)


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss"):
        L.get("hinge")
    with pytest.raises(ValueError, match="predict_proba"):
        L.get("mse").probabilities(None, np.zeros((1, 1)))
