"""Learning tests with real thresholds: the network must actually learn."""

import numpy as np
import pytest

import nncore as nc


@pytest.mark.parametrize("seed", range(5))
def test_xor_2_4_1_sigmoid_full_batch_sgd(backend, seed):
    X, y = nc.datasets.xor()
    net = nc.Network([nc.Dense(2, 4, "sigmoid"), nc.Dense(4, 1, "sigmoid")], loss="mse",
                     dtype="float64", seed=seed)
    hist = net.fit(X, y, optimizer=nc.optim.SGD(5.0), batch_size="full", epochs=2000,
                   progress=False)
    out = net.forward(X)[:, 0]
    assert np.abs(out - y).max() < 0.1
    assert hist.history["loss"][-1] < 1e-3 < hist.history["loss"][0]


def test_xor_bce_float32():
    X, y = nc.datasets.xor()
    net = nc.Network([nc.Dense(2, 4, "tanh"), nc.Dense(4, 1)], loss="binary_cross_entropy",
                     seed=0)
    net.fit(X, y, optimizer=nc.optim.SGD(1.0, momentum=0.9), batch_size="full", epochs=300,
            progress=False)
    np.testing.assert_array_equal(net.predict(X), y)


def test_two_spirals_small_tanh_net(backend):
    X, y = nc.datasets.spirals(400, noise=0.05, seed=0)
    Xt, yt = nc.datasets.spirals(400, noise=0.05, seed=1)
    net = nc.Network([nc.Dense(2, 32, "tanh"), nc.Dense(32, 32, "tanh"), nc.Dense(32, 2)],
                     loss="cross_entropy", seed=0)
    hist = net.fit(X, y, optimizer=nc.optim.Adam(0.01), batch_size=32, epochs=200,
                   progress=False, seed=0)
    assert hist.history["accuracy"][-1] > 0.97
    assert np.mean(net.predict(Xt) == yt) > 0.97


def test_sine_regression():
    X, y = nc.datasets.sine(300, noise=0.0, seed=0)
    net = nc.Network([nc.Dense(1, 32, "tanh"), nc.Dense(32, 1)], dtype="float64", seed=0)
    net.fit(X, y, optimizer=nc.optim.Adam(0.01), batch_size=16, epochs=150, progress=False,
            seed=0)
    grid = np.linspace(-3, 3, 50).reshape(-1, 1)
    assert np.abs(net.predict(grid) - np.sin(grid[:, 0])).max() < 0.1


def test_digits_64_64_10_relu_adam(backend):
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")
    X, y = datasets.load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = model_selection.train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y)
    net = nc.Network([nc.Dense(64, 64, "relu"), nc.Dense(64, 10)], loss="cross_entropy", seed=0)
    hist = net.fit(Xtr, ytr, optimizer=nc.optim.Adam(1e-3), batch_size=32, epochs=40,
                   validation_split=0.1, progress=False, seed=0)
    acc = np.mean(net.predict(Xte) == yte)
    assert acc >= 0.96, acc
    assert hist.history["val_accuracy"][-1] > 0.9


def test_moons_and_circles_with_dropout_and_l2():
    for data in (nc.datasets.moons, nc.datasets.circles):
        X, y = data(300, seed=0)
        net = nc.Network([nc.Dense(2, 32, "relu"), nc.Dropout(0.1), nc.Dense(32, 2)],
                         loss="cross_entropy", regularizer=nc.L2(1e-4), seed=0)
        net.fit(X, y, optimizer=nc.optim.Adam(0.02), batch_size=32, epochs=100,
                progress=False, seed=0)
        assert np.mean(net.predict(X) == y) > 0.95, data.__name__


@pytest.mark.parametrize("name", sorted(nc.datasets.available()))
def test_datasets_shapes_and_seeds(name):
    X, y = nc.datasets.get(name, seed=0) if name != "xor" else nc.datasets.get(name)
    assert X.dtype == np.float64 and X.ndim == 2 and len(X) == len(y)
    if nc.datasets.available()[name] == "classification":
        assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    else:
        assert y.dtype == np.float64 and X.shape[1] == 1
    if name != "xor":
        X2, y2 = nc.datasets.get(name, seed=0)
        np.testing.assert_array_equal(X, X2)
        assert len(nc.datasets.get(name, n=51, seed=1)[0]) == 51
        with pytest.raises(ValueError):
            nc.datasets.get(name, n=0)
    with pytest.raises(ValueError, match="unknown dataset"):
        nc.datasets.get("mnist")
