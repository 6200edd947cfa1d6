"""Callbacks driven by a hand-written training loop over a tiny fake model."""

import os
import warnings

import numpy as np
import pytest

from nncore import callbacks, optim


class FakeModel:
    """What callbacks use of a Network: a flat ``params`` buffer, ``save``, ``stop_training``."""

    def __init__(self, n=4):
        self.params = np.zeros(n)
        self.view = self.params[:2]          # a layer view into the flat buffer
        self.stop_training = False
        self.saves = []

    def save(self, path):
        with open(path, "wb") as f:
            np.save(f, self.params)
        self.saves.append(path)


def run(cbs, values, model=None, optimizer=None, key="val_loss", extra=None):
    """Mimic fit: epoch e sets params to e and logs values[e]; returns epochs run."""
    model = model or FakeModel()
    for cb in cbs:
        cb.set_model(model)
        cb.set_optimizer(optimizer)
    model.stop_training = False
    for cb in cbs:
        cb.on_train_begin({})
    ran = 0
    for epoch, v in enumerate(values):
        for cb in cbs:
            cb.on_epoch_begin(epoch, {})
        model.params[:] = epoch
        logs = {key: v, **(extra or {})}
        for cb in cbs:
            cb.on_epoch_end(epoch, logs)
        ran += 1
        if model.stop_training:
            break
    for cb in cbs:
        cb.on_train_end({})
    return model, ran


# --------------------------------------------------------------------------- EarlyStopping

def test_early_stopping_patience_and_restore():
    es = callbacks.EarlyStopping(patience=2)
    values = [5.0, 4.0, 3.0, 3.5, 3.2, 1.0, 0.5]
    model, ran = run([es], values)
    # best at epoch 2; epochs 3 and 4 fail to improve -> stop after epoch 4
    assert ran == 5 and es.stopped_epoch == 4 and es.best_epoch == 2 and es.best == 3.0
    assert model.stop_training
    np.testing.assert_array_equal(model.params, 2.0)   # restored through the flat buffer
    np.testing.assert_array_equal(model.view, 2.0)
    assert "val_loss" in es.stop_reason


def test_early_stopping_patience_zero_and_no_restore():
    es = callbacks.EarlyStopping(patience=0, restore_best_weights=False)
    model, ran = run([es], [3.0, 2.0, 2.5, 1.0])
    assert ran == 3 and es.stopped_epoch == 2
    np.testing.assert_array_equal(model.params, 2.0)   # last epoch's weights kept


def test_early_stopping_min_delta_and_max_mode():
    es = callbacks.EarlyStopping(patience=1, min_delta=0.1)
    _, ran = run([es], [1.0, 0.95, 0.92, 0.5])
    assert ran == 2 and es.best == 1.0          # 0.05 is not an improvement of > 0.1
    es = callbacks.EarlyStopping(monitor="val_accuracy", patience=1)
    model, ran = run([es], [0.5, 0.7, 0.6, 0.9], key="val_accuracy")
    assert es._mon.maximize and ran == 3 and es.best == 0.7
    np.testing.assert_array_equal(model.params, 1.0)
    es = callbacks.EarlyStopping(monitor="score", patience=1, mode="max")
    _, ran = run([es], [1, 2, 3, 4], key="score")
    assert ran == 4 and es.stopped_epoch is None


def test_early_stopping_restores_at_end_without_stopping():
    es = callbacks.EarlyStopping(patience=10)
    model, ran = run([es], [3.0, 1.0, 2.0])
    assert ran == 3 and es.stopped_epoch is None and es.restored
    np.testing.assert_array_equal(model.params, 1.0)


def test_nan_never_improves():
    es = callbacks.EarlyStopping(patience=1)
    model, ran = run([es], [1.0, float("nan"), float("nan")])
    assert ran == 2 and es.best == 1.0
    np.testing.assert_array_equal(model.params, 0.0)


def test_missing_monitor_falls_back_to_loss_with_warning():
    es = callbacks.EarlyStopping(patience=1)
    with pytest.warns(RuntimeWarning, match="val_loss"):
        _, ran = run([es], [1.0, 2.0, 3.0], key="loss")
    assert ran == 2 and es.best == 1.0


def test_reused_callback_starts_fresh():
    es = callbacks.EarlyStopping(patience=1)
    run([es], [1.0, 2.0, 3.0])
    model, ran = run([es], [9.0, 8.0, 7.0])
    assert ran == 3 and es.best == 7.0 and es.stopped_epoch is None


@pytest.mark.parametrize("kw", [dict(patience=-1), dict(patience=1.5), dict(mode="up"),
                                dict(min_delta=float("nan")), dict(monitor="")])
def test_early_stopping_bad_arguments(kw):
    with pytest.raises((ValueError, TypeError)):
        callbacks.EarlyStopping(**kw)


# --------------------------------------------------------------------------- ModelCheckpoint

def test_checkpoint_best_only(tmp_path):
    path = tmp_path / "best.npz"
    ck = callbacks.ModelCheckpoint(path)
    model, _ = run([ck], [3.0, 2.0, 2.5, 1.0, 1.5])
    assert len(ck.saved) == 3 and ck.best == 1.0       # epochs 0, 1, 3
    with open(path, "rb") as f:
        np.testing.assert_array_equal(np.load(f), 3.0)


def test_checkpoint_every_epoch_with_formatted_path(tmp_path):
    ck = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.1f}.npz"),
                                   save_best_only=False)
    run([ck], [3.0, 2.0, 2.5])
    names = sorted(os.listdir(tmp_path))
    assert names == ["m-01-3.0.npz", "m-02-2.0.npz", "m-03-2.5.npz"]
    bad = callbacks.ModelCheckpoint(str(tmp_path / "{nope}.npz"), save_best_only=False)
    with pytest.raises(ValueError, match="nope"):
        run([bad], [1.0])


def test_checkpoint_bad_arguments():
    with pytest.raises(TypeError):
        callbacks.ModelCheckpoint(3)
    with pytest.raises(ValueError):
        callbacks.ModelCheckpoint("")
    with pytest.raises(ValueError):
        callbacks.ModelCheckpoint("x.npz", mode="best")


# --------------------------------------------------------------------------- ReduceLROnPlateau

def test_reduce_lr_on_plateau_scales_optimizer():
    opt = optim.SGD(lr=0.1)
    rl = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.02)
    values = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    run([rl], values, optimizer=opt)
    # reductions after epochs 2, 4, 6: 0.05, 0.025, then clipped at 0.02
    assert [e for e, _ in rl.reductions] == [2, 4, 6]
    assert [lr for _, lr in rl.reductions] == pytest.approx([0.05, 0.025, 0.02])
    assert opt.current_lr == pytest.approx(0.02)
    # lr_scale multiplies the schedule: later epochs keep the reduction
    opt.set_epoch(3)
    assert opt.current_lr == pytest.approx(0.02)


def test_reduce_lr_improvement_resets_wait_and_cooldown():
    opt = optim.Adam(lr=0.1)
    rl = callbacks.ReduceLROnPlateau(factor=0.1, patience=1, cooldown=2, min_delta=0.0)
    run([rl], [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], optimizer=opt)
    # epoch 2 reduces; epochs 3-4 cool down; epoch 5 reduces again
    assert [e for e, _ in rl.reductions] == [2, 5]
    assert opt.current_lr == pytest.approx(0.001)


def test_reduce_lr_with_optimizer_lacking_lr_scale_warns():
    class FullBatch:
        full_batch = True
    rl = callbacks.ReduceLROnPlateau(patience=0)
    with pytest.warns(RuntimeWarning, match="lr_scale"):
        run([rl], [1.0, 2.0], optimizer=FullBatch())


@pytest.mark.parametrize("kw", [dict(factor=1.0), dict(factor=0.0), dict(min_lr=-1.0),
                                dict(patience=-2), dict(cooldown=-1)])
def test_reduce_lr_bad_arguments(kw):
    with pytest.raises((ValueError, TypeError)):
        callbacks.ReduceLROnPlateau(**kw)


# --------------------------------------------------------------------------- base / lambda

def test_base_and_lambda_callback_hooks():
    seen = []
    cb = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append((e, logs["val_loss"])),
                                  on_train_end=lambda logs: seen.append("end"))
    run([cb, callbacks.Callback()], [3.0, 2.0])
    assert seen == [(0, 3.0), (1, 2.0), "end"]
    with pytest.raises(TypeError):
        callbacks.LambdaCallback(on_epoch_finish=print)


def test_no_warning_when_monitor_present():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run([callbacks.EarlyStopping(), callbacks.ReduceLROnPlateau()], [1.0, 2.0],
            optimizer=optim.SGD())


# --------------------------------------------------------------------------- with the real fit

def _net_and_data():
    import nncore as nc
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6))
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    net = nc.Network([nc.Dense(6, 8, activation="tanh"), nc.Dense(8, 2)],
                     loss="cross_entropy", dtype="float64", seed=0)
    return nc, net, X, y


def test_fit_early_stopping_restores_the_best_epochs_params():
    nc, net, X, y = _net_and_data()
    snapshots = {}
    keep = callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: snapshots.__setitem__(e, net.params.copy()))
    # a large lr makes val_loss bounce, so the best epoch is not the last
    es = callbacks.EarlyStopping(patience=3)
    hist = net.fit(X[:150], y[:150], optimizer=optim.SGD(lr=3.0), epochs=40, batch_size=10,
                   validation_data=(X[150:], y[150:]), callbacks=[keep, es],
                   progress=False, seed=0)
    vl = hist.history["val_loss"]
    best = int(np.nanargmin(vl))
    assert es.best_epoch == best and es.best == vl[best]
    np.testing.assert_array_equal(net.params, snapshots[best])
    assert net.loss(X[150:], y[150:]) == pytest.approx(vl[best], rel=1e-12)


def test_fit_model_checkpoint_round_trip(tmp_path):
    nc, net, X, y = _net_and_data()
    path = tmp_path / "best.npz"
    ck = callbacks.ModelCheckpoint(path, monitor="val_loss")
    hist = net.fit(X[:150], y[:150], optimizer="adam", epochs=5, validation_data=(X[150:], y[150:]),
                   callbacks=[ck], progress=False, seed=0)
    assert ck.saved and os.path.exists(path)
    loaded = nc.load(path)
    assert loaded.loss(X[150:], y[150:]) == pytest.approx(min(hist.history["val_loss"]), rel=1e-12)


def test_fit_reduce_lr_on_plateau_shows_in_history():
    nc, net, X, y = _net_and_data()
    rl = callbacks.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=10.0)
    hist = net.fit(X, y, optimizer=optim.Adam(0.01), epochs=4, callbacks=[rl], progress=False,
                   seed=0)
    # min_delta=10: epoch 0 sets the best, no later epoch improves, so the rate
    # halves after epochs 1 and 2 (and 3, after the last logged value)
    assert hist.history["lr"] == pytest.approx([0.01, 0.01, 0.005, 0.0025], rel=1e-15)
    assert [e for e, _ in rl.reductions] == [1, 2, 3]
