"""Bad input: every case raises a clear ValueError/TypeError and changes nothing
(parameters, gradients' owner state, optimizer state, history)."""

import numpy as np
import pytest

import nncore as nc


def _net(loss="cross_entropy", k=3, dropout=False):
    layers = [nc.Dense(4, 5, "tanh")] + ([nc.Dropout(0.2)] if dropout else []) + [nc.Dense(5, k)]
    return nc.Network(layers, loss=loss, seed=0)


def _data(n=10, k=3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)), rng.integers(0, k, n)


# --------------------------------------------------------------------------- constructors

@pytest.mark.parametrize("make, exc, match", [
    (lambda: nc.Dense(0, 3), ValueError, "n_in"),
    (lambda: nc.Dense(3, -1), ValueError, "n_out"),
    (lambda: nc.Dense(2.5, 3), TypeError, "n_in"),
    (lambda: nc.Dense("3", 3), TypeError, "n_in"),
    (lambda: nc.Dense(3, 3, activation="swish"), ValueError, "activation"),
    (lambda: nc.Dense(3, 3, init="orthogonal"), ValueError, "init"),
    (lambda: nc.Dropout(1.0), ValueError, r"\[0, 1\)"),
    (lambda: nc.Dropout(-0.1), ValueError, r"\[0, 1\)"),
    (lambda: nc.Dropout("0.5"), TypeError, "rate"),
    (lambda: nc.L1(-1e-3), ValueError, ">= 0"),
    (lambda: nc.L2(float("nan")), ValueError, "finite"),
    (lambda: nc.ElasticNet(1e-3, -1), ValueError, "l2"),
    (lambda: nc.Network([]), ValueError, "at least one layer"),
    (lambda: nc.Network([nc.Dropout(0.5)]), ValueError, "Dense"),
    (lambda: nc.Network(nc.Dense(2, 2)), TypeError, "list"),
    (lambda: nc.Network([nc.Dense(2, 3), nc.Dense(4, 1)]), ValueError, "do not chain"),
    (lambda: nc.Network([nc.Dense(2, 3), nc.Dropout(0.1), nc.Dense(2, 1)]), ValueError, "chain"),
    (lambda: nc.Network([nc.Dense(2, 3), "relu"]), TypeError, "layer 1"),
    (lambda: nc.Network([nc.Dense(2, 2)], loss="hinge"), ValueError, "unknown loss"),
    (lambda: nc.Network([nc.Dense(2, 1)], loss="cross_entropy"), ValueError, "2 outputs"),
    (lambda: nc.Network([nc.Dense(2, 2)], dtype="float16"), ValueError, "dtype"),
    (lambda: nc.Network([nc.Dense(2, 2)], dtype=int), ValueError, "dtype"),
    (lambda: nc.Network([nc.Dense(2, 2)], regularizer=0.1), TypeError, "regularizer"),
    (lambda: nc.Network([nc.Dense(2, 2)], seed=-1), ValueError, "seed"),
])
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_layer_cannot_join_two_networks():
    d = nc.Dense(2, 2)
    net = nc.Network([d], seed=0)
    before = net.params.copy()
    with pytest.raises(ValueError, match="another Network"):
        nc.Network([d])
    with pytest.raises(ValueError, match="twice"):
        e = nc.Dense(2, 2)
        nc.Network([e, e])
    np.testing.assert_array_equal(net.params, before)
    assert np.shares_memory(d.W, net.params)


@pytest.mark.parametrize("loss, k", [("cross_entropy", 3), ("binary_cross_entropy", 1)])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
def test_cross_entropy_rejects_squashed_last_layer(loss, k, act):
    """A squashing/clipping output under a loss that takes logits is refused at
    construction, with the fix in the message; the layers stay free to reuse."""
    hidden, last = nc.Dense(4, 5, "tanh"), nc.Dense(5, k, activation=act)
    with pytest.raises(ValueError, match=r"logits.*linear") as info:
        nc.Network([hidden, nc.Dropout(0.1), last], loss=loss)
    assert act in str(info.value) and "predict_proba" in str(info.value)
    assert last._owner is None and last.W is None
    nc.Network([hidden, last], loss="mse")      # the same output is fine for mse


@pytest.mark.parametrize("loss, k", [("cross_entropy", 3), ("binary_cross_entropy", 1)])
@pytest.mark.parametrize("act", ["linear", "leaky_relu"])
def test_cross_entropy_accepts_logit_last_layer(loss, k, act):
    nc.Network([nc.Dense(4, 5, "sigmoid"), nc.Dense(5, k, activation=act)], loss=loss)


# --------------------------------------------------------------------------- data errors

BAD_X = [
    (np.zeros((10, 3)), ValueError, "4"),                 # wrong width
    (np.zeros(10), ValueError, "2-D"),                   # 1-D
    (np.zeros((10, 4, 1)), ValueError, "2-D"),
    (np.zeros((0, 4)), ValueError, "empty"),
    (np.full((10, 4), np.nan), ValueError, "NaN"),
    (np.where(np.eye(10, 4) > 0, np.inf, 0.0), ValueError, "infinite"),
    (np.full((10, 4), "a"), TypeError, "numeric"),
    (np.zeros((10, 4), dtype=complex), TypeError, "numeric"),
    (None, TypeError, "None"),
    ([[1, 2, 3, 4], [1, 2]], ValueError, "converted"),
]


@pytest.mark.parametrize("X, exc, match", BAD_X)
@pytest.mark.parametrize("method", ["forward", "predict", "predict_proba", "loss",
                                    "loss_and_gradient", "fit"])
def test_bad_X_changes_nothing(X, exc, match, method):
    net = _net()
    _, y = _data()
    before = net.params.copy()
    opt = nc.optim.Adam(1e-3)
    with pytest.raises(exc, match=match):
        if method in ("loss", "loss_and_gradient"):
            getattr(net, method)(X, y)
        elif method == "fit":
            net.fit(X, y, optimizer=opt, epochs=1, progress=False)
        else:
            getattr(net, method)(X)
    np.testing.assert_array_equal(net.params, before)
    assert opt.iterations == 0 and net.history_ is None


BAD_Y = [
    ("cross_entropy", np.array([0, 1, 2, 3, 0, 1, 2, 0, 1, 2]), ValueError, r"\[0, 3\)"),
    ("cross_entropy", -np.ones(10, int), ValueError, "labels"),
    ("cross_entropy", np.full(10, 0.5), ValueError, "integer"),
    ("cross_entropy", np.zeros(9, int), ValueError, "rows"),
    ("cross_entropy", np.full((10, 3), 0.5), ValueError, "sum to 1"),
    ("cross_entropy", np.tile([-0.5, 1.0, 0.5], (10, 1)), ValueError, "non-negative"),
    ("cross_entropy", np.zeros((10, 2)), ValueError, "columns"),
    ("cross_entropy", np.array(["a"] * 10), TypeError, "numeric"),
    ("cross_entropy", np.full(10, np.nan), ValueError, "NaN"),
    ("binary_cross_entropy", np.full((10, 3), 1.5), ValueError, r"\[0, 1\]"),
    ("binary_cross_entropy", np.zeros(10), ValueError, "shape"),
    ("mse", np.zeros((10, 2)), ValueError, "columns"),
    ("mse", np.zeros((10, 3, 1)), ValueError, "1-D or 2-D"),
    ("mse", np.full((10, 3), np.inf), ValueError, "infinite"),
]


@pytest.mark.parametrize("loss, y, exc, match", BAD_Y)
@pytest.mark.parametrize("method", ["loss", "loss_and_gradient", "fit"])
def test_bad_y_changes_nothing(loss, y, exc, match, method):
    net = _net(loss)
    X, _ = _data()
    before = net.params.copy()
    grads = net.grads.copy()
    opt = nc.optim.SGD(0.1)
    with pytest.raises(exc, match=match):
        if method == "fit":
            net.fit(X, y, optimizer=opt, epochs=1, progress=False)
        else:
            getattr(net, method)(X, y)
    np.testing.assert_array_equal(net.params, before)
    np.testing.assert_array_equal(net.grads, grads)
    assert opt.iterations == 0


@pytest.mark.parametrize("value, exc", [(np.zeros(5), ValueError), (np.full(43, np.nan), ValueError),
                                        (np.array(["x"] * 43), TypeError)])
def test_bad_params_assignment(value, exc):
    net = _net()
    before = net.params.copy()
    with pytest.raises(exc):
        net.params = value
    np.testing.assert_array_equal(net.params, before)


# --------------------------------------------------------------------------- fit arguments

X0, Y0 = _data()


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"optimizer": "adamax"}, ValueError, "unknown optimizer"),
    ({"optimizer": 3}, TypeError, "optimizer"),
    ({"batch_size": 0}, ValueError, "positive"),
    ({"batch_size": -4}, ValueError, "positive"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
    ({"batch_size": "half"}, ValueError, "batch_size"),
    ({"batch_size": True}, TypeError, "batch_size"),
    ({"epochs": 0}, ValueError, "epochs"),
    ({"epochs": 1.5}, TypeError, "epochs"),
    ({"validation_split": 1.0}, ValueError, "validation_split"),
    ({"validation_split": -0.2}, ValueError, "validation_split"),
    ({"validation_split": 0.95}, ValueError, "empty"),
    ({"validation_data": (X0[:, :3], Y0)}, ValueError, "X_val"),
    ({"validation_data": (X0, Y0[:5])}, ValueError, "y_val"),
    ({"validation_data": (X0,)}, ValueError, "pair"),
    ({"validation_data": (X0, np.full(10, 7))}, ValueError, "labels"),
    ({"callbacks": [object()]}, TypeError, "callback"),
    ({"callbacks": 5}, TypeError, "callbacks"),
    ({"augment": "noise"}, TypeError, "augment"),
    ({"seed": -1}, ValueError, "seed"),
    ({"shuffle": "yes"}, TypeError, "shuffle"),
    ({"progress": "auto"}, TypeError, "progress"),
    ({"optimizer": "bfgs", "batch_size": 8}, ValueError, "full-batch"),
    ({"optimizer": "lbfgs", "batch_size": 1}, ValueError, "full-batch"),
    ({"optimizer": "cg", "augment": lambda x, r: x}, ValueError, "augment"),
])
def test_bad_fit_arguments_change_nothing(kwargs, exc, match):
    net = _net()
    before = net.params.copy()
    with pytest.raises(exc, match=match):
        net.fit(X0, Y0, **{"epochs": 2, "progress": False, **kwargs})
    np.testing.assert_array_equal(net.params, before)
    assert net.history_ is None


def test_bad_learning_rate_is_rejected():
    with pytest.raises(ValueError):
        nc.optim.Adam(lr=0.0 - 1.0)
    with pytest.raises(ValueError):
        nc.optim.SGD(lr=-0.1)


def test_full_batch_optimizer_rejects_dropout():
    net = _net(dropout=True)
    before = net.params.copy()
    with pytest.raises(ValueError, match="Dropout"):
        net.fit(X0, Y0, optimizer="bfgs", epochs=2, progress=False)
    np.testing.assert_array_equal(net.params, before)


def test_optimizer_of_other_length_is_rejected():
    net = _net()
    opt = nc.optim.Adam(1e-2)
    net.fit(X0, Y0, optimizer=opt, epochs=1, progress=False)
    other = nc.Network([nc.Dense(4, 2)], loss="cross_entropy", seed=0)
    before = other.params.copy()
    with pytest.raises(ValueError):
        other.fit(X0, Y0 % 2, optimizer=opt, epochs=1, progress=False)
    np.testing.assert_array_equal(other.params, before)
