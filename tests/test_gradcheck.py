"""gradcheck: agreement for correct gradients, detection of a wrong one,
float64 copy (caller untouched), dropout off, subsets, worst-parameter report."""

import numpy as np
import pytest

import nncore as nc
import nncore.network as N


def _setup(dtype="float32", dropout=0.0):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 3))
    y = rng.integers(0, 3, 10)
    layers = [nc.Dense(3, 6, "tanh")] + ([nc.Dropout(dropout)] if dropout else []) + \
        [nc.Dense(6, 3)]
    return nc.Network(layers, loss="cross_entropy", regularizer=nc.L2(0.01), dtype=dtype,
                      seed=0), X, y


def test_correct_gradients_pass_and_net_is_untouched(backend):
    net, X, y = _setup("float32", dropout=0.5)
    before = net.params.copy()
    res = nc.gradcheck(net, X, y)
    assert res.max_abs_error < 1e-8 and res.max_rel_error < 1e-5
    assert res.indices.size == net.n_params
    assert res.analytic.shape == res.numeric.shape == (net.n_params,)
    np.testing.assert_array_equal(net.params, before)
    assert net.params.dtype == np.float32
    assert "max_abs_error" in repr(res)


def test_detects_a_wrong_gradient(monkeypatch):
    net, X, y = _setup("float64")
    real = N.Network._backward_ws

    def broken(self, *args):
        real(self, *args)
        self.layers[-1].db[1] *= 1.5  # a bug in one bias gradient

    monkeypatch.setattr(N.Network, "_backward_ws", broken)
    res = nc.gradcheck(net, X, y)
    assert res.max_rel_error > 0.2
    assert res.worst["layer"] == 1 and res.worst["name"] == "b" and res.worst["position"] == (1,)
    assert res.worst["index"] == 3 * 6 + 6 + 6 * 3 + 1


def test_matches_handwritten_central_difference():
    net, X, y = _setup("float64")
    res = nc.gradcheck(net, X, y, eps=1e-4)
    i = 5
    p = net.params.copy()
    net.params[i] = p[i] + 1e-4
    jp = net.loss(X, y)
    net.params[i] = p[i] - 1e-4
    jm = net.loss(X, y)
    net.params[:] = p
    assert res.numeric[i] == pytest.approx((jp - jm) / 2e-4, rel=1e-12)


def test_random_subset_is_seeded():
    net, X, y = _setup()
    a = nc.gradcheck(net, X, y, n_params=7, seed=3)
    b = nc.gradcheck(net, X, y, n_params=7, seed=3)
    c = nc.gradcheck(net, X, y, n_params=7, seed=4)
    assert a.indices.size == 7 and np.array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    big = nc.Network([nc.Dense(60, 40, "tanh"), nc.Dense(40, 2)], seed=0)
    Xb = np.random.default_rng(0).normal(size=(5, 60))
    res = nc.gradcheck(big, Xb, np.zeros((5, 2)))
    assert res.indices.size == 2000 and res.max_rel_error < 1e-4


@pytest.mark.parametrize("kwargs", [{"eps": 0}, {"eps": -1e-6}, {"n_params": 0}])
def test_bad_arguments(kwargs):
    net, X, y = _setup()
    with pytest.raises(ValueError):
        nc.gradcheck(net, X, y, **kwargs)
    with pytest.raises(TypeError):
        nc.gradcheck("net", X, y)
    with pytest.raises(ValueError):
        nc.gradcheck(net, X[:, :2], y)
