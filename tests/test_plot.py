"""nncore.plot: figures render to valid PNGs and show exactly the history values."""

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")

from nncore import plot as ncplot  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FakeHistory:
    """Stands in for nncore's History (same attributes the plots read)."""

    def __init__(self, history):
        self.history = history
        self.epoch = list(range(len(next(iter(history.values())))))


def _hist(n=12, classifier=True, seed=0):
    rng = np.random.default_rng(seed)
    loss = list(np.exp(-np.arange(n) / 4.0) + 0.05 * rng.random(n))
    h = {"loss": loss, "val_loss": [v * 1.1 + 0.02 for v in loss],
         "lr": [1e-3 * 0.9 ** k for k in range(n)], "time": list(np.cumsum([0.01 + 0.001 * k for k in range(n)]))}
    if classifier:
        h["accuracy"] = list(np.linspace(0.5, 0.95, n))
        h["val_accuracy"] = list(np.linspace(0.45, 0.9, n))
    return FakeHistory(h)


def _check_png(path, min_bytes=5000):
    assert os.path.exists(path)
    assert os.path.getsize(path) > min_bytes
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_MAGIC


def _lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def test_plot_history_panels_and_data(tmp_path):
    h = _hist()
    path = tmp_path / "curves.png"
    fig = ncplot.plot_history(h, path=path)
    _check_png(path)
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["loss", "accuracy", "learning rate"]
    loss_lines = _lines(axes[0])
    np.testing.assert_array_equal(loss_lines["train"].get_ydata(), h.history["loss"])
    np.testing.assert_array_equal(loss_lines["validation"].get_ydata(), h.history["val_loss"])
    np.testing.assert_array_equal(loss_lines["train"].get_xdata(), np.arange(1, 13))
    acc_lines = _lines(axes[1])
    np.testing.assert_array_equal(acc_lines["train"].get_ydata(), h.history["accuracy"])
    np.testing.assert_array_equal(acc_lines["validation"].get_ydata(), h.history["val_accuracy"])
    np.testing.assert_array_equal(_lines(axes[2])["lr"].get_ydata(), h.history["lr"])


def test_plot_history_regression_without_val_or_accuracy(tmp_path):
    h = FakeHistory({"loss": [3.0, 2.0, 1.5], "lr": [0.1, 0.1, 0.1]})
    fig = ncplot.plot_history(h.history, path=tmp_path / "r.png")
    assert [a.get_title() for a in fig.axes] == ["loss", "learning rate"]
    assert list(_lines(fig.axes[0])) == ["train"]
    _check_png(tmp_path / "r.png", 2000)


def test_plot_history_into_given_axes():
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    h = _hist()
    out = ncplot.plot_history(h, ax=ax)
    assert out is fig
    assert len(fig.axes) == 1
    np.testing.assert_array_equal(_lines(ax)["train"].get_ydata(), h.history["loss"])
    plt.close(fig)


def test_plot_history_errors(tmp_path):
    with pytest.raises(TypeError):
        ncplot.plot_history(42)
    with pytest.raises(ValueError, match="loss"):
        ncplot.plot_history({"lr": [0.1]})
    with pytest.raises(ValueError, match="does not exist"):
        ncplot.plot_history(_hist(), path=tmp_path / "nope" / "x.png")


def test_compare_epoch_time_evaluations(tmp_path):
    a, b = _hist(10, seed=1), _hist(6, seed=2)
    b.history["nfev"] = [3, 5, 9, 10, 12, 14]  # cumulative, as fit logs it
    fig = ncplot.compare({"adam": a, "bfgs": b}, x="epoch", path=tmp_path / "c.png")
    _check_png(tmp_path / "c.png")
    lines = _lines(fig.axes[0])
    np.testing.assert_array_equal(lines["adam"].get_ydata(), a.history["loss"])
    np.testing.assert_array_equal(lines["bfgs"].get_xdata(), np.arange(1, 7))

    fig = ncplot.compare({"adam": a, "bfgs": b}, x="time", metric="val_loss")
    lines = _lines(fig.axes[0])
    np.testing.assert_allclose(lines["adam"].get_xdata(), a.history["time"])
    np.testing.assert_array_equal(lines["bfgs"].get_ydata(), b.history["val_loss"])

    fig = ncplot.compare({"adam": a, "bfgs": b}, x="evaluations")
    lines = _lines(fig.axes[0])
    np.testing.assert_array_equal(lines["bfgs"].get_xdata(), [3, 5, 9, 10, 12, 14])
    np.testing.assert_array_equal(lines["adam"].get_xdata(), np.arange(1, 11))


def test_compare_errors():
    with pytest.raises(ValueError, match="x must be"):
        ncplot.compare({"a": _hist()}, x="steps")
    with pytest.raises(ValueError, match="non-empty"):
        ncplot.compare({})
    with pytest.raises(ValueError, match="no 'f1'"):
        ncplot.compare({"a": _hist()}, metric="f1")
    with pytest.raises(ValueError, match="time"):
        ncplot.compare({"a": FakeHistory({"loss": [1.0, 0.5]})}, x="time")


class _Stripes:
    """A fixed 2-class rule: class 1 where x0 + x1 > 0."""

    def predict(self, X):
        return (X[:, 0] + X[:, 1] > 0).astype(int)

    def predict_proba(self, X):
        p = 1.0 / (1.0 + np.exp(-(X[:, 0] + X[:, 1])))
        return np.column_stack([1 - p, p])


class _ThreeClass:
    def predict(self, X):
        return np.digitize(X[:, 0], [-0.5, 0.5])


def test_decision_boundary_binary_and_multiclass(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = (X.sum(axis=1) > 0).astype(int)
    fig = ncplot.decision_boundary(_Stripes(), X, y, path=tmp_path / "b.png", resolution=50)
    _check_png(tmp_path / "b.png")
    coll = fig.axes[0].collections[-1]  # the scatter of the data
    np.testing.assert_array_equal(coll.get_offsets(), X)

    y3 = _ThreeClass().predict(X)
    ncplot.decision_boundary(_ThreeClass(), X, y3, path=tmp_path / "m.png", resolution=40)
    _check_png(tmp_path / "m.png")


def test_decision_boundary_errors():
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        ncplot.decision_boundary(_Stripes(), np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(ValueError, match="rows"):
        ncplot.decision_boundary(_Stripes(), np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(TypeError, match="predict"):
        ncplot.decision_boundary(object(), np.zeros((5, 2)), np.zeros(5))


def test_import_nncore_does_not_import_matplotlib():
    code = ("import sys, nncore; "
            "bad = [m for m in ('matplotlib', 'sklearn') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "NNCORE_BACKEND": "numpy"})
    assert r.returncode == 0, r.stdout + r.stderr


def test_missing_matplotlib_gives_install_hint():
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "import nncore.plot as p\n"
            "try:\n    p.plot_history({'loss': [1.0]})\n"
            "except ImportError as e:\n    print(e); sys.exit(0 if 'nncore-train[plot]' in str(e) else 2)\n"
            "sys.exit(3)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "NNCORE_BACKEND": "numpy"})
    assert r.returncode == 0, r.stdout + r.stderr


def test_real_history_plot(tmp_path):
    """With the real training loop (once available): History.plot delegates here."""
    nc = pytest.importorskip("nncore")
    if not hasattr(nc, "Network"):
        pytest.skip("Network not available yet")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    net = nc.Network([nc.Dense(2, 8, activation="tanh"), nc.Dense(8, 2)],
                     loss="cross_entropy", seed=0)
    hist = net.fit(X, y, epochs=4, validation_split=0.25, progress=False, seed=0)
    fig = hist.plot(path=tmp_path / "h.png")
    _check_png(tmp_path / "h.png")
    np.testing.assert_allclose(_lines(fig.axes[0])["train"].get_ydata(), hist.history["loss"])
    ncplot.decision_boundary(net, X, y, path=tmp_path / "d.png", resolution=30)
    _check_png(tmp_path / "d.png")
