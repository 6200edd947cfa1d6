"""A fit stopped in its first epoch (Ctrl-C, divergence) leaves a consistent
record: ``net.history_.history`` has the metrics a completed epoch records, as
empty lists, so ``history["loss"]`` never raises (issue 12 item 8). Every way
an epoch runs is covered: the compiled epoch loop, the per-step Python loop and
a full-batch optimizer, interrupted as a signal would (on return from a
compiled chunk, inside a callback, inside an iteration) and by a real SIGINT."""

import os
import signal
import threading

import numpy as np
import pytest

import nncore as nc
from nncore import backend as B
from nncore import training


def _data(n=40):
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, 4)), rng.integers(0, 3, n)


def _net():
    return nc.Network([nc.Dense(4, 6, "tanh"), nc.Dense(6, 3)], loss="cross_entropy", seed=0)


def _completed_keys(**kw):
    """The metrics one completed epoch of the same fit records."""
    X, y = _data()
    return set(_net().fit(X, y, epochs=1, progress=False, **kw).history)


def _check_empty_record(net, kw):
    record = net.history_
    assert record.epoch == [] and record.stop_reason == "interrupted"
    assert record["loss"] == [] and record.history["loss"] == []
    assert all(series == [] for series in record.history.values())
    keys = set(record.history)
    assert keys <= _completed_keys(**kw)
    assert {"loss", "accuracy", "lr", "time", "val_loss", "val_accuracy", "val_fail",
            "test_loss", "test_accuracy"} <= keys


def _extra():
    X, y = _data(12)
    return {"validation_data": (X, y), "test_data": (X, y), "seed": 0}


def test_ctrl_c_in_the_first_epoch_of_the_compiled_loop(monkeypatch):
    be = B.current()
    if not getattr(be, "FUSED_LOOP", False):
        pytest.skip("the active backend has no compiled epoch loop")
    real = be.train_epoch

    def interrupted(*args):
        real(*args)
        raise KeyboardInterrupt          # as a SIGINT would, when the chunk returns

    monkeypatch.setattr(be, "train_epoch", interrupted)
    X, y = _data()
    net, kw = _net(), _extra()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, batch_size=4, epochs=3, progress=False, **kw)
    monkeypatch.setattr(be, "train_epoch", real)
    _check_empty_record(net, kw)


def test_ctrl_c_in_the_first_epoch_of_the_per_step_loop():
    class CtrlC(nc.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 2:
                raise KeyboardInterrupt

    X, y = _data()
    net, kw = _net(), _extra()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, batch_size=4, epochs=3, progress=False, callbacks=[CtrlC()], **kw)
    _check_empty_record(net, kw)


@pytest.mark.parametrize("name", ["lbfgs", "cg"])
def test_ctrl_c_in_the_first_iteration_of_a_full_batch_optimizer(name):
    class Interrupt(type(nc.optim.get(name))):
        def iterate(self, fun, x, f, g):
            fun(x + 1.0)
            raise KeyboardInterrupt

    X, y = _data()
    net, kw = _net(), _extra()
    before = net.params.copy()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, optimizer=Interrupt(), epochs=3, progress=False, **kw)
    np.testing.assert_array_equal(net.params, before)
    _check_empty_record(net, dict(kw, optimizer=name))


def test_divergence_in_the_first_epoch_leaves_the_record_keys():
    X, y = _data()
    net = nc.Network([nc.Dense(4, 6, "relu"), nc.Dense(6, 1)], loss="mse", seed=0)
    with pytest.raises(nc.DivergenceError):
        net.fit(X, y[:, None] * 1e15, optimizer=nc.optim.SGD(1e38), batch_size=4,
                epochs=2, progress=False)
    assert net.history_.epoch == [] and net.history_["loss"] == []
    assert set(net.history_.history) == {"loss", "lr", "grad_norm", "step_norm", "time"}


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_real_sigint_in_a_long_first_epoch():
    """SIGINT 0.3 s into an epoch of several seconds (batch 1, 200k rows)."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200_000, 16)).astype(np.float32)
    y = rng.integers(0, 4, X.shape[0])
    net = nc.Network([nc.Dense(16, 128, "relu"), nc.Dense(128, 4)], loss="cross_entropy",
                     dtype="float32", seed=0)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            net.fit(X, y, batch_size=1, epochs=2, progress=False, seed=0)
    finally:
        timer.cancel()
    assert net.history_.epoch == [] and net.history_.stop_reason == "interrupted"
    assert net.history_["loss"] == [] and net.history_["accuracy"] == []
    assert np.isfinite(net.params).all()
