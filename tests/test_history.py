"""History: per-epoch lists, alignment of late/missing keys, plotting delegation."""

import math
import sys

import numpy as np
import pytest

import nncore as nc
from nncore.history import History


def test_append_builds_aligned_lists():
    h = nc.History(params={"epochs": 3})
    h.append(0, {"loss": 1.0, "lr": 0.1})
    h.append(1, {"loss": np.float32(0.5), "val_loss": 0.7, "lr": 0.1})
    h.append(2, {"loss": 0.25, "lr": None})
    assert h.epoch == [0, 1, 2] and len(h) == 3
    assert h.history["loss"] == [1.0, 0.5, 0.25]
    assert all(type(v) is float for v in h.history["loss"])
    # a key first seen later is NaN before; a key missing later is NaN there
    assert math.isnan(h.history["val_loss"][0]) and h.history["val_loss"][1] == 0.7
    assert math.isnan(h.history["val_loss"][2]) and math.isnan(h.history["lr"][2])
    assert all(len(v) == 3 for v in h.history.values())
    assert h["loss"] is h.history["loss"] and "val_loss" in h and h.last("loss") == 0.25
    assert h.params == {"epochs": 3} and h.stop_reason is None
    assert repr(h) == "History(epochs=3, metrics=[loss, lr, val_loss])"
    h.stop_reason = "early stopping"
    assert "early stopping" in repr(h)


def test_bad_appends_change_nothing():
    h = History()
    h.append(0, {"loss": 1.0})
    for epoch, logs, exc in [(-1, {"loss": 1.0}, ValueError), (1.5, {"loss": 1.0}, ValueError),
                             (1, [("loss", 1.0)], TypeError), (1, {"loss": "x"}, TypeError),
                             (1, {3: 1.0}, TypeError)]:
        with pytest.raises(exc):
            h.append(epoch, logs)
    assert h.epoch == [0] and h.history == {"loss": [1.0]}


def test_plot_delegates_to_plot_history(monkeypatch):
    pytest.importorskip("matplotlib")
    import nncore.plot
    calls = []
    monkeypatch.setattr(nncore.plot, "plot_history", lambda hist, **kw: calls.append((hist, kw)) or "fig")
    h = History()
    h.append(0, {"loss": 1.0})
    assert h.plot(title="t") == "fig"
    assert calls == [(h, {"title": "t"})]


def test_plot_draws_a_figure():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    h = History()
    for e in range(4):
        h.append(e, {"loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1), "lr": 0.1})
    fig = h.plot()
    assert fig is not None and len(fig.axes) >= 1


def test_plot_without_matplotlib_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # makes `import matplotlib` fail
    h = History()
    h.append(0, {"loss": 1.0})
    with pytest.raises(ImportError, match="matplotlib"):
        h.plot()
