"""MATLAB-style diagnostic plots: each figure shows exactly the data it claims,
checked against the history, NumPy and scikit-learn."""

import os

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")

import nncore as nc  # noqa: E402
from nncore import plot as ncplot  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def regression_run():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    y = np.sin(2 * X[:, :1]) + 0.1 * rng.normal(size=(120, 1))
    net = nc.Network([nc.Dense(2, 6, activation="tanh"), nc.Dense(6, 1)], dtype="float64", seed=0)
    splits = {"Training": (X[:80], y[:80]), "Validation": (X[80:100], y[80:100]),
              "Test": (X[100:], y[100:])}
    h = net.fit(X[:80], y[:80], optimizer="scg", epochs=25, validation_data=splits["Validation"],
                test_data=splits["Test"])
    return net, h, splits


@pytest.fixture(scope="module")
def binary_run():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 2))
    y = (X[:, 0] + 0.5 * rng.normal(size=150) > 0).astype(int)
    net = nc.Network([nc.Dense(2, 4, activation="tanh"), nc.Dense(4, 1)],
                     loss="binary_cross_entropy", dtype="float64", seed=0)
    net.fit(X, y, optimizer="rprop", epochs=10)
    return net, X, y


def lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def test_performance_curves_and_best_epoch(regression_run):
    _, h, _ = regression_run
    fig = ncplot.performance(h)
    ax = fig.axes[0]
    ls = lines(ax)
    for label, key in (("Train", "loss"), ("Validation", "val_loss"), ("Test", "test_loss")):
        np.testing.assert_array_equal(ls[label].get_ydata(), h[key])
        np.testing.assert_array_equal(ls[label].get_xdata(), np.arange(1, len(h) + 1))
    best = int(np.argmin(h["val_loss"]))
    assert list(ls["Best"].get_xdata()) == [best + 1]
    assert list(ls["Best"].get_ydata()) == [h["val_loss"][best]]
    assert f"epoch {best + 1}" in ax.get_title()
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss"


def test_training_state_panels(regression_run):
    _, h, _ = regression_run
    fig = ncplot.training_state(h)
    labels = [a.get_ylabel() for a in fig.axes]
    assert labels == ["gradient norm", "step length", "validation checks"]
    for a, key in zip(fig.axes, ("grad_norm", "step_norm", "val_fail")):
        np.testing.assert_array_equal(a.get_lines()[0].get_ydata(), h[key])
    fig = ncplot.training_state({"loss": [1.0, 0.5], "mu": [1e-3, 1e-4]})
    assert [a.get_ylabel() for a in fig.axes] == ["mu"]
    with pytest.raises(ValueError, match="training-state"):
        ncplot.training_state({"loss": [1.0, 0.5]})


def test_training_state_of_a_first_order_fit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = X[:, :1] - X[:, 1:]
    net = nc.Network([nc.Dense(2, 4, activation="tanh"), nc.Dense(4, 1)], seed=0)
    h = net.fit(X, y, optimizer=nc.optim.SGD(lr=0.05), batch_size=8, epochs=4)
    fig = ncplot.training_state(h)
    assert [a.get_ylabel() for a in fig.axes] == ["gradient norm", "step length",
                                                   "learning rate"]
    for a, key in zip(fig.axes, ("grad_norm", "step_norm", "lr")):
        np.testing.assert_array_equal(a.get_lines()[0].get_ydata(), h[key])


def test_regression_panels_show_outputs_targets_and_r(regression_run):
    net, _, splits = regression_run
    fig = ncplot.regression(net, splits)
    assert [a.get_title().split(":")[0] for a in fig.axes] == ["Training", "Validation", "Test",
                                                               "All"]
    for a, (X, y) in zip(fig.axes, splits.values()):
        out = net.forward(X).ravel()
        data = lines(a)["Data"]
        np.testing.assert_array_equal(data.get_xdata(), y.ravel())
        np.testing.assert_array_equal(data.get_ydata(), out)
        r = np.corrcoef(y.ravel(), out)[0, 1]
        assert a.get_title().endswith(f"R={r:.5f}")
        assert a.get_xlabel() == "Target" and a.get_ylabel().startswith("Output")
    with pytest.raises(ValueError):
        ncplot.regression(net, (splits["Test"][0], splits["Test"][1][:5]))


def test_error_histogram_counts_every_error(regression_run):
    net, _, splits = regression_run
    fig = ncplot.error_histogram(net, splits, bins=12)
    ax = fig.axes[0]
    heights = sum(p.get_height() for p in ax.patches)
    assert heights == sum(len(y) for _, y in splits.values())
    assert ax.get_xlabel() == "Errors = Targets - Outputs" and ax.get_ylabel() == "Instances"
    errors = np.concatenate([(y - net.forward(X)).ravel() for X, y in splits.values()])
    left = min(p.get_x() for p in ax.patches)
    assert left == pytest.approx(errors.min())
    with pytest.raises(ValueError):
        ncplot.error_histogram(net, splits, bins=0)


def test_confusion_and_roc_against_sklearn(binary_run):
    metrics = pytest.importorskip("sklearn.metrics")
    net, X, y = binary_run
    fig = ncplot.confusion(net, X, y)
    np.testing.assert_array_equal(fig.confusion_matrix,
                                  metrics.confusion_matrix(y, net.predict(X), labels=[0, 1]))
    assert fig.axes[0].get_xlabel() == "Output class"
    assert fig.axes[0].get_ylabel() == "Target class"
    fig = ncplot.roc(net, X, y)
    scores = net.predict_proba(X)[:, 0]
    assert fig.auc == pytest.approx(metrics.roc_auc_score(y, scores), abs=1e-12)
    fpr, tpr, _ = metrics.roc_curve(y, scores, drop_intermediate=False)
    ln = lines(fig.axes[0])[f"ROC (AUC = {fig.auc:.3f})"]
    np.testing.assert_allclose(ln.get_xdata(), fpr)
    np.testing.assert_allclose(ln.get_ydata(), tpr)


def test_confusion_multiclass_and_roc_rejects_it():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    X = rng.normal(size=(90, 2))
    y = np.digitize(X[:, 0], [-0.4, 0.4])
    net = nc.Network([nc.Dense(2, 5, activation="tanh"), nc.Dense(5, 3)], loss="cross_entropy",
                     dtype="float64", seed=0)
    net.fit(X, y, optimizer="lbfgs", epochs=5)
    fig = ncplot.confusion(net, X, np.eye(3)[y])        # probability rows work too
    np.testing.assert_array_equal(fig.confusion_matrix,
                                  metrics.confusion_matrix(y, net.predict(X), labels=[0, 1, 2]))
    with pytest.raises(ValueError, match="binary"):
        ncplot.roc(net, X, y)


def test_diagnostics_writes_pngs(regression_run, binary_run, tmp_path):
    net, h, splits = regression_run
    written = ncplot.diagnostics(net, h, splits, tmp_path / "reg")
    assert set(written) == {"performance", "training_state", "regression", "error_histogram"}
    net_b, X, y = binary_run
    written_b = ncplot.diagnostics(net_b, net_b.history_, (X, y), tmp_path / "bin")
    assert set(written_b) == {"performance", "training_state", "confusion", "roc"}
    for path in list(written.values()) + list(written_b.values()):
        assert os.path.getsize(path) > 5000
        with open(path, "rb") as fh:
            assert fh.read(8) == PNG_MAGIC


@pytest.mark.parametrize("data,optimizer,expected", [
    ("moons", "rprop", {"performance", "training_state", "confusion", "roc"}),
    ("sine", "scg", {"performance", "training_state", "regression", "error_histogram"}),
    ("moons", "quickprop", {"performance", "training_state", "confusion", "roc"}),
])
def test_cli_plot_diagnostics(tmp_path, capsys, data, optimizer, expected):
    from nncore.cli import main
    out_dir = tmp_path / "diag"
    rc = main(["train", data, "--layers", "6", "--optimizer", optimizer, "--epochs", "15",
               "--val-split", "0.25", "--out", str(tmp_path / "m.npz"), "--no-plot",
               "--plot-diagnostics", str(out_dir), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert {os.path.splitext(f)[0] for f in os.listdir(out_dir)} == expected
