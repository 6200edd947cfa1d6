"""The training record: test_data, validation failures, gradient and step
norms of full-batch methods, optimizer diagnostics, early stopping on a
validation set for full-batch optimizers (MATLAB's max_fail = 6)."""

import numpy as np
import pytest

import nncore as nc
from nncore.callbacks import Callback, EarlyStopping


def regression_data(seed=0, N=60):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 3))
    y = np.sin(X @ np.array([1.0, -2.0, 0.5]))[:, None] + 0.3 * rng.normal(size=(N, 1))
    return X, y


def make_net(seed=0, hidden=8, loss="mse", n_out=1):
    return nc.Network([nc.Dense(3, hidden, activation="tanh"), nc.Dense(hidden, n_out)],
                      loss=loss, dtype="float64", seed=seed)


class Recorder(Callback):
    """Independent record per epoch: the parameters and losses recomputed with net.loss."""

    def __init__(self, sets):
        super().__init__()
        self.sets = sets
        self.params, self.losses = [], {k: [] for k in sets}

    def on_epoch_end(self, epoch, logs=None):
        self.params.append(self.model.params.copy())
        for k, (X, y) in self.sets.items():
            self.losses[k].append(self.model.loss(X, y))


@pytest.mark.parametrize("optimizer,batch_size", [("adam", 16), ("lbfgs", None)])
def test_test_data_is_recorded_and_not_used(optimizer, batch_size):
    X, y = regression_data()
    Xt, yt = regression_data(seed=1, N=25)
    rec = Recorder({"test": (Xt, yt)})
    net = make_net()
    h = net.fit(X, y, optimizer=optimizer, batch_size=batch_size, epochs=6, seed=3,
                test_data=(Xt, yt), callbacks=[rec])
    net2 = make_net()
    h2 = net2.fit(X, y, optimizer=optimizer, batch_size=batch_size, epochs=6, seed=3)
    assert h["loss"] == h2["loss"]
    np.testing.assert_array_equal(net.params, net2.params)
    np.testing.assert_allclose(h["test_loss"], rec.losses["test"], rtol=1e-12)
    assert "test_accuracy" not in h and "val_fail" not in h


def test_test_accuracy_for_classifiers():
    X, _ = regression_data()
    labels = (X[:, 0] > 0).astype(int)
    Xt, _ = regression_data(seed=2, N=20)
    lt = (Xt[:, 0] > 0).astype(int)
    net = make_net(loss="cross_entropy", n_out=2)
    h = net.fit(X, labels, optimizer="cg", epochs=3, test_data=(Xt, lt))
    assert h["test_accuracy"][-1] == np.mean(net.predict(Xt) == lt)


def test_bad_test_data_changes_nothing():
    X, y = regression_data()
    net = make_net()
    before = net.params.copy()
    with pytest.raises(ValueError):
        net.fit(X, y, optimizer="lbfgs", epochs=2, test_data=(X,))
    with pytest.raises(ValueError):
        net.fit(X, y, optimizer="lbfgs", epochs=2, test_data=(X[:5], y[:4]))
    np.testing.assert_array_equal(net.params, before)
    assert not hasattr(net, "history_") or net.history_ is None or len(net.history_) == 0


def val_fail_transcription(val_losses):
    best, fails, out = np.inf, 0, []
    for v in val_losses:
        if v < best:
            best, fails = v, 0
        else:
            fails += 1
        out.append(fails)
    return out


def test_full_batch_norms_and_val_fail():
    X, y = regression_data()
    Xv, yv = regression_data(seed=5, N=20)
    net = make_net()
    start = net.params.copy()
    rec = Recorder({})
    h = net.fit(X, y, optimizer="bfgs", epochs=8, validation_data=(Xv, yv), callbacks=[rec])
    assert h["val_fail"] == val_fail_transcription(h["val_loss"])
    steps = np.diff(np.vstack([start] + rec.params), axis=0)
    np.testing.assert_allclose(h["step_norm"], np.linalg.norm(steps, axis=1), rtol=1e-12)
    _, grad = net.loss_and_gradient(X, y)
    assert h["grad_norm"][-1] == pytest.approx(np.linalg.norm(grad), rel=1e-10)


def test_optimizer_diagnostics_reach_history():
    from nncore.optim._full_batch import LBFGS

    class Logged(LBFGS):
        def iterate(self, fun, x, f, g):
            x, f, g, info = super().iterate(fun, x, f, g)
            info["log"] = {"mu": 10.0 * self.n_iter}
            return x, f, g, info

    X, y = regression_data()
    h = make_net().fit(X, y, optimizer=Logged(), epochs=4)
    assert h["mu"] == [10.0, 20.0, 30.0, 40.0]


@pytest.mark.parametrize("optimizer", ["bfgs", "cg"])
def test_early_stopping_max_fail_full_batch(optimizer):
    # Few noisy samples and a wide net: the validation loss turns up early.
    rng = np.random.default_rng(4)
    X = rng.normal(size=(12, 3))
    y = X[:, :1] + 0.8 * rng.normal(size=(12, 1))
    Xv = rng.normal(size=(40, 3))
    yv = Xv[:, :1]
    net = nc.Network([nc.Dense(3, 30, activation="tanh"), nc.Dense(30, 1)],
                     dtype="float64", seed=1)
    rec = Recorder({"val": (Xv, yv)})
    stop = EarlyStopping(patience=6)
    h = net.fit(X, y, optimizer=optimizer, epochs=300, validation_data=(Xv, yv),
                callbacks=[rec, stop])
    best = int(np.argmin(rec.losses["val"]))
    assert len(h) == best + 7 < 300           # six failed validation checks, then stop
    assert h["val_fail"][-1] == 6
    assert stop.best_epoch == best
    np.testing.assert_array_equal(net.params, rec.params[best])   # best weights restored
    assert "early stopping" in h.stop_reason


@pytest.mark.parametrize("batch_size,clip,l2", [(16, None, 0.0), (60, 0.05, 1e-3), (1, None, 0.0)])
def test_first_order_gradient_and_step_norms(batch_size, clip, l2):
    """grad_norm is the last batch's gradient (with the penalty, before clipping) and
    step_norm the epoch's parameter change, both recomputed by a plain loop of
    loss_and_gradient + opt.step over the same batches."""
    X, y = regression_data()
    reg = nc.L2(l2) if l2 else None
    net = make_net()
    net.regularizer = reg
    h = net.fit(X, y, optimizer=nc.optim.Adam(lr=0.01, clip_norm=clip),
                batch_size=batch_size, epochs=3, shuffle=False)
    ref = make_net()
    ref.regularizer = reg
    opt = nc.optim.Adam(lr=0.01, clip_norm=clip)
    grad_norms, step_norms = [], []
    for _ in range(3):
        start = ref.params.copy()
        for s in range(0, len(X), batch_size):
            _, g = ref.loss_and_gradient(X[s:s + batch_size], y[s:s + batch_size])
            last = float(np.linalg.norm(g))
            opt.step(ref.params, g)
        grad_norms.append(last)
        step_norms.append(float(np.linalg.norm(ref.params - start)))
    np.testing.assert_array_equal(net.params, ref.params)
    np.testing.assert_allclose(h["grad_norm"], grad_norms, rtol=1e-12)
    np.testing.assert_allclose(h["step_norm"], step_norms, rtol=1e-12)
    assert all(s > 0 for s in h["step_norm"])
