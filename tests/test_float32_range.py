"""float64 data beyond the float32 range given to a float32 network.

Cast to float32 such a value becomes inf (NumPy only warns), so predictions
would be NaN rows and training would diverge after changing the parameters.
Every entry point raises a ValueError naming the problem and changes nothing.
"""

import numpy as np
import pytest

import nncore as nc

BIG = 1e39          # finite in float64, beyond float32's 3.4028235e38
F32_MAX = float(np.finfo(np.float32).max)


def _net(loss="cross_entropy", dtype="float32"):
    k = 1 if loss == "mse" else 3
    return nc.Network([nc.Dense(4, 8, "tanh"), nc.Dense(8, k)], loss=loss, dtype=dtype, seed=0)


def _data(loss="cross_entropy", n=20):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    y = rng.normal(size=n) if loss == "mse" else rng.integers(0, 3, size=n)
    return X, y


def _call(net, method, X, y, opt):
    if method == "fit":
        return net.fit(X, y, optimizer=opt, epochs=1, batch_size=5, progress=False)
    if method == "fit_validation":
        return net.fit(*_data(), optimizer=opt, epochs=1, validation_data=(X, y), progress=False)
    if method in ("loss", "loss_and_gradient"):
        return getattr(net, method)(X, y)
    return getattr(net, method)(X)


@pytest.mark.parametrize("method", ["forward", "predict", "predict_proba", "loss",
                                    "loss_and_gradient", "fit", "fit_validation"])
@pytest.mark.parametrize("value", [BIG, -BIG])
def test_x_beyond_float32_is_a_value_error_changing_nothing(method, value):
    net = _net()
    X, y = _data()
    X[7, 2] = value
    params, grads = net.params.copy(), net.grads.copy()
    opt = nc.optim.Adam(1e-3)
    with pytest.raises(ValueError, match="beyond the range of float32"):
        _call(net, method, X, y, opt)
    np.testing.assert_array_equal(net.params, params)
    np.testing.assert_array_equal(net.grads, grads)
    assert opt.iterations == 0 and net.history_ is None


@pytest.mark.parametrize("method", ["loss", "loss_and_gradient", "fit"])
def test_targets_beyond_float32_are_a_value_error(method):
    net = _net("mse")
    X, y = _data("mse")
    y[3] = BIG
    params = net.params.copy()
    with pytest.raises(ValueError, match="y has values up to 1e\\+39"):
        _call(net, method, X, y, nc.optim.SGD(0.1))
    np.testing.assert_array_equal(net.params, params)


def test_params_beyond_float32_are_rejected():
    net = _net()
    v = np.zeros(net.n_params)
    v[0] = BIG
    with pytest.raises(ValueError, match="params has values"):
        net.params = v
    assert np.all(np.isfinite(net.params))


def test_the_edge_of_the_range_is_accepted_and_float64_networks_take_anything():
    X, y = _data()
    X[0, 0] = F32_MAX                      # exactly representable: allowed
    net = _net()
    assert net.forward(X).shape == (20, 3)
    X[0, 0] = np.nextafter(F32_MAX, np.inf)   # the next float64 is already too big
    with pytest.raises(ValueError):
        net.forward(X)
    X[0, 0] = BIG
    assert np.isfinite(_net(dtype="float64").loss(X, y))


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_cli_rejects_data_beyond_float32(tmp_path, capsys, command):
    from nncore.cli import main
    X, y = nc.datasets.moons(n=60, noise=0.1, seed=0)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    model = tmp_path / "m.npz"
    assert main(["train", str(tmp_path / "train.npz"), "--layers", "4", "--epochs", "2",
                 "--dtype", "float32", "--out", str(model), "--no-progress"]) == 0
    X[3, 1] = BIG
    np.savez(tmp_path / "big.npz", X=X, y=y)
    capsys.readouterr()
    assert main([command, str(model), str(tmp_path / "big.npz")]) == 1
    assert "beyond the range of float32" in capsys.readouterr().err
