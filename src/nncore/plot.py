"""Training curves, optimizer comparisons and decision boundaries (matplotlib).

matplotlib is an optional dependency (``pip install nncore-train[plot]``); it is
imported on first use, never by ``import nncore``. On a Linux machine without
a display the non-interactive Agg backend is selected, so scripts and tests
can write PNG files from anywhere.

The MATLAB-style diagnostics (``performance``, ``training_state``,
``regression``, ``error_histogram``, ``confusion``, ``roc``, and
``diagnostics`` for all that apply) read a ``fit`` history or a network and
its data splits.

Every function returns the :class:`matplotlib.figure.Figure` it drew on and,
when ``path`` is given, writes it there (format from the extension, PNG by
default) and closes it in pyplot so loops over many runs do not leak figures.
"""

from __future__ import annotations

import os
import sys

import numpy as np

__all__ = ["plot_history", "compare", "decision_boundary", "performance", "training_state",
           "regression", "error_histogram", "confusion", "roc", "diagnostics"]

_INSTALL_HINT = (
    "nncore.plot needs matplotlib, which is not installed. "
    "Install it with: pip install nncore-train[plot]   (or: pip install matplotlib)"
)


def _pyplot():
    """Import and return ``matplotlib.pyplot``, choosing Agg when headless."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    if ("matplotlib.pyplot" not in sys.modules
            and not os.environ.get("MPLBACKEND")
            and sys.platform.startswith("linux")
            and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY")):
        # Headless: an interactive backend would fail at figure creation.
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _history_dict(history):
    """Return ``(dict of lists, epochs array)`` from a History or a plain dict."""
    if hasattr(history, "history") and isinstance(history.history, dict):
        data = history.history
        epochs = getattr(history, "epoch", None)
    elif isinstance(history, dict):
        data, epochs = history, None
    else:
        raise TypeError(
            "expected an nncore History (the result of fit) or a dict of "
            f"per-epoch lists, got {type(history).__name__}")
    lengths = {len(v) for v in data.values() if _is_series(v)}
    n = max(lengths) if lengths else 0
    if epochs is None or len(epochs) != n:
        epochs = range(n)
    # Users count epochs from 1; History.epoch counts from 0 (as Keras).
    return data, np.asarray(list(epochs), dtype=float) + 1.0


def _is_series(v):
    return isinstance(v, (list, tuple, np.ndarray))


def _series(data, key):
    v = data.get(key)
    if v is None or not _is_series(v) or len(v) == 0:
        return None
    arr = np.asarray(v, dtype=float)
    if not np.isfinite(arr).any():
        return None
    return arr


def _finish(fig, path, plt, dpi=100):
    if path is not None:
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ValueError(f"cannot write {path!r}: directory {directory!r} does not exist")
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        plt.close(fig)
    return fig


def plot_history(history, ax=None, path=None, *, title=None, log_loss=None,
                 figsize=None, dpi=100):
    """Draw training curves: loss, accuracy (classifiers) and learning rate.

    Parameters
    ----------
    history : History or dict
        The result of :meth:`nncore.Network.fit` (or its ``.history`` dict):
        per-epoch lists under ``"loss"``, ``"val_loss"``, ``"accuracy"``,
        ``"val_accuracy"`` and ``"lr"``; missing keys are skipped.
    ax : matplotlib Axes or sequence of Axes, optional
        Where to draw. One Axes receives the loss curves only; a sequence
        receives the panels in order (loss, accuracy if present, lr if
        present). By default a new figure with one panel per quantity.
    path : str or os.PathLike, optional
        Write the figure to this file (PNG unless the extension says otherwise).
    title : str, optional
        Figure title.
    log_loss : bool, optional
        Log scale for the loss axis; default: on when the loss spans more
        than two decades and stays positive.
    figsize : (float, float), optional
        Size of a new figure in inches.
    dpi : int, default 100
        Resolution of the written file.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> hist = net.fit(X, y, validation_split=0.2)        # doctest: +SKIP
    >>> nc.plot.plot_history(hist, path="curves.png")     # doctest: +SKIP
    """
    plt = _pyplot()
    data, x = _history_dict(history)
    curves = {key: _series(data, key)
              for key in ("loss", "val_loss", "accuracy", "val_accuracy", "lr")}
    if curves["loss"] is None and curves["val_loss"] is None:
        raise ValueError("history has no 'loss' or 'val_loss' values to plot")

    panels = ["loss"]
    if curves["accuracy"] is not None or curves["val_accuracy"] is not None:
        panels.append("accuracy")
    if curves["lr"] is not None:
        panels.append("lr")
    fig, axes, panels = _history_axes(plt, ax, panels, figsize)
    for a, panel in zip(axes, panels):
        _HISTORY_PANELS[panel](a, x, curves, log_loss)
        a.set_xlabel("epoch")
        a.grid(True, alpha=0.3)
        if a.get_legend_handles_labels()[0] and panel != "lr":
            a.legend()
    if title:
        fig.suptitle(title)
    if ax is None:
        fig.tight_layout()
    return _finish(fig, path, plt, dpi)


def _history_axes(plt, ax, panels, figsize):
    """``(figure, axes, panels)`` for :func:`plot_history`: a new figure with one
    Axes per panel, the caller's Axes (as many panels as there are Axes), or one
    Axes for the loss panel only."""
    if ax is None:
        if figsize is None:
            figsize = (4.2 * len(panels), 3.4)
        fig, axes = plt.subplots(1, len(panels), figsize=figsize, squeeze=False)
        return fig, list(axes[0]), panels
    if isinstance(ax, (list, tuple, np.ndarray)):
        axes = list(np.ravel(ax))
        if not axes:
            raise ValueError("ax is an empty sequence")
        return axes[0].figure, axes, panels[:len(axes)]
    return ax.figure, [ax], ["loss"]


def _train_and_validation(a, x, curves, key):
    """The training curve (solid) and the validation curve (dashed) of ``key``."""
    for arr, label, style in ((curves[key], "train", "-"),
                              (curves["val_" + key], "validation", "--")):
        if arr is not None:
            a.plot(x[:len(arr)], arr, style, label=label)


def _loss_panel(a, x, curves, log_loss):
    _train_and_validation(a, x, curves, "loss")
    a.set_ylabel("loss")
    positive = [v for v in (curves["loss"], curves["val_loss"]) if v is not None]
    finite = np.concatenate([v[np.isfinite(v)] for v in positive])
    use_log = log_loss
    if use_log is None:
        # log scale when the loss spans more than two decades and stays positive
        use_log = bool(finite.size and finite.min() > 0 and finite.max() / finite.min() > 100)
    if use_log:
        a.set_yscale("log")
    a.set_title("loss")


def _accuracy_panel(a, x, curves, log_loss):
    _train_and_validation(a, x, curves, "accuracy")
    a.set_ylabel("accuracy")
    a.set_title("accuracy")


def _lr_panel(a, x, curves, log_loss):
    lr = curves["lr"]
    a.plot(x[:len(lr)], lr, "-", color="tab:green", label="lr")
    a.set_ylabel("learning rate")
    a.set_title("learning rate")
    if lr.min() > 0 and lr.max() / lr.min() > 100:
        a.set_yscale("log")


# plot_history's panels, by name, in the order they are drawn
_HISTORY_PANELS = {"loss": _loss_panel, "accuracy": _accuracy_panel, "lr": _lr_panel}


_X_KINDS = ("epoch", "time", "evaluations")


def _x_axis(data, epochs, kind, name):
    """x values of one run for :func:`compare`."""
    n = len(epochs)
    if kind == "epoch":
        return epochs
    if kind == "time":
        t = _series(data, "time")
        if t is None:
            raise ValueError(f"history {name!r} has no 'time' entries; use x='epoch'")
        # fit logs the seconds since training started at the end of each epoch.
        return t
    # "evaluations": loss-and-gradient evaluations over the whole training set.
    # Full-batch runs log the cumulative count (line-search trials included);
    # a first-order epoch visits every sample once: one full-data equivalent.
    for key in ("evaluations", "nfev", "ngev"):
        ev = _series(data, key)
        if ev is not None:
            return ev
    return np.arange(1, n + 1, dtype=float)


def compare(histories, x="epoch", metric="loss", path=None, *, ax=None,
            log=None, title=None, figsize=(6.0, 4.0), dpi=100):
    """Overlay one metric of several runs, e.g. to compare optimizers.

    Parameters
    ----------
    histories : dict of {str: History or dict}
        Runs to draw, labelled by their keys (in order).
    x : {"epoch", "time", "evaluations"}, default "epoch"
        Horizontal axis: epochs; wall-clock seconds since training started
        (the ``"time"`` entries); or loss-and-gradient evaluations over the
        whole training set (the cumulative ``"nfev"`` that full-batch
        optimizers log, line-search trials included; one per epoch for
        first-order optimizers).
    metric : str, default "loss"
        Any per-epoch key, e.g. ``"val_loss"``, ``"accuracy"``, ``"lr"``.
    path : str or os.PathLike, optional
        Write the figure to this file.
    ax : matplotlib Axes, optional
        Draw there instead of a new figure.
    log : bool, optional
        Log-scale y axis; default: on for positive loss curves spanning
        more than two decades.
    title : str, optional
        Axes title (default: the metric).
    figsize : (float, float), default (6, 4)
        Size of a new figure in inches.
    dpi : int, default 100
        Resolution of the written file.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if x not in _X_KINDS:
        raise ValueError(f"x must be one of {_X_KINDS}, got {x!r}")
    if not isinstance(histories, dict) or not histories:
        raise ValueError("histories must be a non-empty dict {name: History}")
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a string, got {type(metric).__name__}")
    prepared = []
    for name, hist in histories.items():
        data, epochs = _history_dict(hist)
        y = _series(data, metric)
        if y is None:
            raise ValueError(f"history {name!r} has no {metric!r} values; "
                             f"available: {sorted(k for k in data if _is_series(data[k]))}")
        xs = _x_axis(data, epochs, x, name)
        m = min(len(xs), len(y))
        prepared.append((str(name), xs[:m], y[:m]))

    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        own = True
    else:
        fig, own = ax.figure, False
    for name, xs, y in prepared:
        ax.plot(xs, y, label=name, marker="o" if len(y) < 3 else None)
    allv = np.concatenate([y[np.isfinite(y)] for _, _, y in prepared])
    if log is None:
        log = bool("loss" in metric and allv.size and allv.min() > 0
                   and allv.max() / allv.min() > 100)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel({"epoch": "epoch", "time": "time [s]",
                   "evaluations": "gradient evaluations (full-data equivalents)"}[x])
    ax.set_ylabel(metric)
    ax.set_title(title if title is not None else metric)
    ax.grid(True, alpha=0.3)
    ax.legend()
    if own:
        fig.tight_layout()
    return _finish(fig, path, plt, dpi)


def _boundary_inputs(net, X, y, resolution):
    """Checked ``(X, labels, resolution)`` for :func:`decision_boundary`."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"decision_boundary needs X of shape (n, 2), got {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("decision_boundary needs at least one point")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    if not np.issubdtype(X.dtype, np.number) or not np.all(np.isfinite(X)):
        raise ValueError("X must be finite numbers")
    if not hasattr(net, "predict"):
        raise TypeError(f"{type(net).__name__} has no predict method")
    if int(resolution) < 2:
        raise ValueError("resolution must be at least 2")
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)
    return X, y.reshape(-1), int(resolution)


def _boundary_grid(net, lo, hi, resolution):
    """The plotting grid ``(gx, gy, points)`` in the network's dtype."""
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    dtype = getattr(net, "dtype", None)
    if dtype is not None:
        grid = grid.astype(np.dtype(dtype))
    return gx, gy, grid


def _draw_regions(net, ax, fig, gx, gy, grid, n_classes):
    """Shade P(class 1) for a binary classifier with probabilities, else the
    predicted regions (or a regressor's output)."""
    proba = None
    if hasattr(net, "predict_proba") and n_classes <= 2:
        try:
            proba = np.asarray(net.predict_proba(grid))
        except (ValueError, TypeError, AttributeError):
            proba = None
    if proba is not None and proba.ndim == 2 and proba.shape[1] in (1, 2):
        p = proba[:, -1].reshape(gx.shape)
        cs = ax.contourf(gx, gy, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
        ax.contour(gx, gy, p, levels=[0.5], colors="k", linewidths=1.2)
        fig.colorbar(cs, ax=ax, label="P(class 1)")
        return
    pred = np.asarray(net.predict(grid))
    if pred.ndim == 2:
        pred = pred[:, 0] if pred.shape[1] == 1 else pred.argmax(axis=1)
    pred = pred.reshape(-1)
    labels, idx = np.unique(pred, return_inverse=True)
    if np.issubdtype(pred.dtype, np.floating) and len(labels) > 20:
        # A regressor: shade its output instead of class regions.
        ax.contourf(gx, gy, pred.reshape(gx.shape), levels=20, cmap="viridis", alpha=0.6)
    else:
        k = max(len(labels), 2)
        ax.contourf(gx, gy, idx.reshape(gx.shape).astype(float),
                    levels=np.arange(k + 1) - 0.5,
                    cmap="tab10" if k <= 10 else "viridis", alpha=0.35)


def decision_boundary(net, X, y, path=None, *, ax=None, resolution=200,
                      margin=0.5, title=None, figsize=(5.0, 4.5), dpi=100):
    """Draw the decision regions of a 2-D classifier over its data.

    Parameters
    ----------
    net : Network or estimator
        Anything with ``predict(X)``; with ``predict_proba`` and two classes
        the probability of the second class is shaded instead of hard regions.
    X : array-like of shape (n_samples, 2)
        Points to scatter; they also fix the plotted range.
    y : array-like of shape (n_samples,)
        Their labels (colours).
    path : str or os.PathLike, optional
        Write the figure to this file.
    ax : matplotlib Axes, optional
        Draw there instead of a new figure.
    resolution : int, default 200
        Grid points per axis.
    margin : float, default 0.5
        Extra room around the data, in data units.
    title : str, optional
    figsize : (float, float), default (5, 4.5)
    dpi : int, default 100

    Returns
    -------
    matplotlib.figure.Figure
    """
    X, y, resolution = _boundary_inputs(net, X, y, resolution)
    lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
    gx, gy, grid = _boundary_grid(net, lo, hi, resolution)
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        own = True
    else:
        fig, own = ax.figure, False
    classes = np.unique(y)
    _draw_regions(net, ax, fig, gx, gy, grid, len(classes))
    if np.issubdtype(y.dtype, np.number):
        colors = y.astype(float)
    else:
        colors = np.unique(y, return_inverse=True)[1].astype(float)
    ax.scatter(X[:, 0], X[:, 1], c=colors, cmap="RdBu_r" if len(classes) <= 2 else "tab10",
               edgecolors="k", linewidths=0.4, s=18)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    if own:
        fig.tight_layout()
    return _finish(fig, path, plt, dpi)


# --------------------------------------------------------------------------- diagnostics

def _new_axes(plt, ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax, True
    return ax.figure, ax, False


def performance(history, path=None, *, ax=None, title=None, figsize=(6.0, 4.0), dpi=100):
    """Train / validation / test loss per epoch with the best epoch marked
    (MATLAB's ``plotperform``).

    Parameters
    ----------
    history : History or dict
        Per-epoch ``"loss"`` and optionally ``"val_loss"``, ``"test_loss"``.
    path : str or os.PathLike, optional
        Write the figure to this file.
    ax : matplotlib Axes, optional
    title : str, optional
        Default: "Best validation loss is ... at epoch ..." (training loss
        without validation data).
    figsize : (float, float), default (6, 4)
    dpi : int, default 100

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    data, x = _history_dict(history)
    curves = [(label, _series(data, key), style) for key, label, style in (
        ("loss", "Train", "-"), ("val_loss", "Validation", "--"), ("test_loss", "Test", ":"))]
    curves = [c for c in curves if c[1] is not None]
    if not curves:
        raise ValueError("history has no 'loss', 'val_loss' or 'test_loss' values to plot")
    fig, ax, own = _new_axes(plt, ax, figsize)
    for label, y, style in curves:
        ax.plot(x[:len(y)], y, style, label=label)
    # The best epoch is the validation minimum when there is a validation set.
    best_label, best_y = next(((label, y) for label, y, _ in curves if label == "Validation"),
                              curves[0][:2])
    i = int(np.nanargmin(best_y))
    ax.axvline(x[i], color="0.5", linestyle=":", linewidth=1)
    ax.plot([x[i]], [best_y[i]], "o", markersize=9, fillstyle="none", color="tab:green",
            label="Best")
    if np.all(np.concatenate([y[np.isfinite(y)] for _, y, _ in curves]) > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title if title is not None else
                 f"Best {best_label.lower()} loss is {best_y[i]:.4g} at epoch {int(x[i])}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if own:
        fig.tight_layout()
    return _finish(fig, path, plt, dpi)


_STATE_KEYS = (("grad_norm", "gradient norm", True), ("mu", "mu", True),
               ("step_norm", "step length", True), ("lr", "learning rate", True),
               ("val_fail", "validation checks", False))


def training_state(history, path=None, *, keys=None, title=None, figsize=None, dpi=100):
    """Per-epoch training state, one panel each (MATLAB's ``plottrainstate``):
    gradient norm, LM's ``mu``, step length, learning rate (first-order
    optimizers) and validation failures, whichever the history has.

    Parameters
    ----------
    history : History or dict
    path : str or os.PathLike, optional
    keys : sequence of str, optional
        History keys to draw, one panel each (default: those of
        ``grad_norm``, ``mu``, ``step_norm``, ``lr`` (not for full-batch
        optimizers, whose ``lr`` is the accepted step size), ``val_fail``
        that are present).
    title : str, optional
    figsize : (float, float), optional
    dpi : int, default 100

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    data, x = _history_dict(history)
    labels = {k: (label, log) for k, label, log in _STATE_KEYS}
    if keys is None:
        keys = [k for k in labels if _series(data, k) is not None]
        if "lr" in keys and _series(data, "nfev") is not None:
            keys.remove("lr")   # a full-batch "lr" is the step length again, scaled
    keys = [k for k in keys if _series(data, k) is not None]
    if not keys:
        raise ValueError("history has none of the training-state values "
                         f"{[k for k, _, _ in _STATE_KEYS]} (nncore's fit logs them)")
    fig, axes = plt.subplots(len(keys), 1, sharex=True, squeeze=False,
                             figsize=figsize or (6.0, 1.9 * len(keys) + 0.6))
    for a, key in zip(axes[:, 0], keys):
        y = _series(data, key)
        label, log = labels.get(key, (key, False))
        a.plot(x[:len(y)], y, "-", marker="." if len(y) < 50 else None)
        if log and np.all(y[np.isfinite(y)] > 0):
            a.set_yscale("log")
        a.set_ylabel(label)
        a.set_title(f"{label} = {y[-1]:.4g} at epoch {int(x[len(y) - 1])}", fontsize=9)
        a.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("epoch")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path, plt, dpi)


def _splits(data):
    """``{name: (X, y)}`` from a dict of pairs or one pair."""
    if isinstance(data, dict):
        if not data:
            raise ValueError("data is an empty dict; give {name: (X, y)}")
        items = data.items()
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        items = [("Data", data)]
    else:
        raise ValueError("data must be a pair (X, y) or a dict {name: (X, y)}")
    out = {}
    for name, pair in items:
        if pair is None:
            continue
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"split {name!r} must be a pair (X, y)")
        out[str(name)] = pair
    return out


def _outputs_targets(net, X, y):
    """Flattened network outputs and targets of a regression split."""
    out = np.asarray(net.forward(X), dtype=float)
    t = np.asarray(y, dtype=float).reshape(out.shape[0], -1)
    if t.shape != out.shape:
        raise ValueError(f"targets of shape {np.shape(y)} do not match outputs {out.shape}")
    return out.ravel(), t.ravel()


def regression(net, data, path=None, *, title=None, figsize=None, dpi=100):
    """Outputs against targets per split with the fitted line and R
    (MATLAB's ``plotregression``), plus an "All" panel for several splits.

    Parameters
    ----------
    net : Network
        A regression network (its raw outputs are compared).
    data : (X, y) or dict of {str: (X, y)}
        E.g. ``{"Training": (X, y), "Validation": (Xv, yv), "Test": (Xt, yt)}``.
    path : str or os.PathLike, optional
    title : str, optional
    figsize : (float, float), optional
    dpi : int, default 100

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    pairs = {name: _outputs_targets(net, X, y) for name, (X, y) in _splits(data).items()}
    if len(pairs) > 1:
        pairs["All"] = tuple(np.concatenate(v) for v in zip(*pairs.values()))
    fig, axes = plt.subplots(1, len(pairs), squeeze=False,
                             figsize=figsize or (3.8 * len(pairs), 3.8))
    for a, (name, (out, t)) in zip(axes[0], pairs.items()):
        r = float(np.corrcoef(t, out)[0, 1]) if t.size > 1 and np.ptp(t) > 0 else float("nan")
        slope, icpt = np.polyfit(t, out, 1) if t.size > 1 and np.ptp(t) > 0 else (1.0, 0.0)
        lo, hi = float(min(t.min(), out.min())), float(max(t.max(), out.max()))
        a.plot(t, out, "o", markersize=3, alpha=0.6, label="Data")
        a.plot([lo, hi], [slope * lo + icpt, slope * hi + icpt], "-", label="Fit")
        a.plot([lo, hi], [lo, hi], ":", color="0.4", label="Y = T")
        a.set_xlabel("Target")
        sign = "-" if icpt < 0 else "+"
        a.set_ylabel(f"Output ~= {slope:.2f}*Target {sign} {abs(icpt):.2g}")
        a.set_title(f"{name}: R={r:.5f}")
        a.grid(True, alpha=0.3)
        a.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path, plt, dpi)


def error_histogram(net, data, path=None, *, bins=20, ax=None, title=None,
                    figsize=(6.0, 4.0), dpi=100):
    """Histogram of the errors ``targets - outputs``, stacked per split
    (MATLAB's ``ploterrhist``), with the zero-error line.

    Parameters
    ----------
    net : Network
        A regression network.
    data : (X, y) or dict of {str: (X, y)}
    path : str or os.PathLike, optional
    bins : int, default 20
    ax : matplotlib Axes, optional
    title : str, optional
    figsize : (float, float), default (6, 4)
    dpi : int, default 100

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    plt = _pyplot()
    errors = {}
    for name, (X, y) in _splits(data).items():
        out, t = _outputs_targets(net, X, y)
        errors[name] = t - out
    fig, ax, own = _new_axes(plt, ax, figsize)
    edges = np.histogram_bin_edges(np.concatenate(list(errors.values())), bins=int(bins))
    ax.hist(list(errors.values()), bins=edges, stacked=True, label=list(errors))
    ax.axvline(0.0, color="tab:red", linewidth=1.5, label="Zero Error")
    ax.set_xlabel("Errors = Targets - Outputs")
    ax.set_ylabel("Instances")
    ax.set_title(title if title is not None else f"Error histogram with {int(bins)} bins")
    ax.legend()
    if own:
        fig.tight_layout()
    return _finish(fig, path, plt, dpi)


def _labels(net, X, y):
    """(true labels, predicted labels) of a single-label classifier."""
    if net.loss_name == "binary_cross_entropy" and net.n_out != 1:
        raise ValueError("confusion and roc need a single-label classifier "
                         "(cross_entropy, or binary_cross_entropy with one output)")
    if net.loss_name not in ("cross_entropy", "binary_cross_entropy"):
        raise ValueError(f"confusion and roc need a classifier, not loss {net.loss_name!r}")
    y = np.asarray(y)
    if net.loss_name == "cross_entropy" and y.ndim == 2:
        y = np.argmax(y, axis=1)       # probability / one-hot rows
    y = y.reshape(-1)
    if net.loss_name == "binary_cross_entropy":
        y = (y >= 0.5).astype(int)
    pred = np.asarray(net.predict(X)).reshape(-1)
    if pred.shape != y.shape:
        raise ValueError(f"{y.size} labels for {pred.size} predictions")
    return y.astype(int), pred.astype(int)


def confusion(net, X, y, path=None, *, ax=None, title=None, figsize=(5.0, 4.5), dpi=100):
    """Confusion matrix of a classifier (rows: target class, columns: output
    class) with counts and percentages of all samples (MATLAB's ``plotconfusion``).

    Parameters
    ----------
    net : Network
        ``cross_entropy``, or ``binary_cross_entropy`` with one output.
    X, y : array_like
        Inputs and targets (labels, or probability rows for cross-entropy).
    path : str or os.PathLike, optional
    ax : matplotlib Axes, optional
    title : str, optional
        Followed by the accuracy.
    figsize : (float, float), default (5, 4.5)
    dpi : int, default 100

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.confusion_matrix`` holds the counts.
    """
    plt = _pyplot()
    true, pred = _labels(net, X, y)
    k = max(int(net.n_out), 2)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (true, pred), 1)
    fig, ax, own = _new_axes(plt, ax, figsize)
    im = ax.imshow(matrix, cmap="Blues")
    total = max(int(matrix.sum()), 1)
    for i in range(k):
        for j in range(k):
            dark = matrix[i, j] > 0.6 * matrix.max()
            ax.text(j, i, f"{matrix[i, j]}\n{100.0 * matrix[i, j] / total:.1f}%",
                    ha="center", va="center", color="white" if dark else "black", fontsize=9)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("Output class")
    ax.set_ylabel("Target class")
    accuracy = np.trace(matrix) / total
    ax.set_title(f"{title if title is not None else 'Confusion matrix'} (accuracy {accuracy:.1%})")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if own:
        fig.tight_layout()
    fig.confusion_matrix = matrix
    return _finish(fig, path, plt, dpi)


def _roc_curve(true, scores):
    """False and true positive rates over all thresholds (ties grouped), and the AUC."""
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], true[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(t)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    pos, neg = max(int(t.sum()), 1), max(int(t.size - t.sum()), 1)
    fpr = np.r_[0.0, fp / neg]
    tpr = np.r_[0.0, tp / pos]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def roc(net, X, y, path=None, *, ax=None, title=None, figsize=(5.0, 4.5), dpi=100):
    """ROC curve of a binary classifier with its AUC (MATLAB's ``plotroc``).

    Parameters
    ----------
    net : Network
        ``binary_cross_entropy`` with one output, or ``cross_entropy`` with two
        (the score is the probability of class 1).
    X, y : array_like
    path : str or os.PathLike, optional
    ax : matplotlib Axes, optional
    title : str, optional
    figsize : (float, float), default (5, 4.5)
    dpi : int, default 100

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.auc`` holds the area under the curve.
    """
    true, _ = _labels(net, X, y)
    if max(int(net.n_out), 2) != 2:
        raise ValueError(f"roc needs a binary classifier, this one has {net.n_out} classes")
    if true.min() == true.max():
        raise ValueError("roc needs both classes among the targets")
    proba = np.asarray(net.predict_proba(X), dtype=float)
    scores = proba[:, -1]
    plt = _pyplot()
    fpr, tpr, auc = _roc_curve(true, scores)
    fig, ax, own = _new_axes(plt, ax, figsize)
    ax.plot(fpr, tpr, "-", label=f"ROC (AUC = {auc:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="0.5", label="chance")
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title if title is not None else f"ROC, AUC = {auc:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    if own:
        fig.tight_layout()
    fig.auc = auc
    return _finish(fig, path, plt, dpi)


def diagnostics(net, history, data, directory, *, dpi=100):
    """Write every diagnostic figure that applies, as PNG files in ``directory``.

    ``performance.png`` always; ``training_state.png`` when the history has
    training-state values; for regression networks ``regression.png`` and
    ``error_histogram.png``; for single-label classifiers ``confusion.png``
    (of the first split) and, when binary, ``roc.png``.

    Parameters
    ----------
    net : Network
    history : History or dict
        The result of ``fit``.
    data : (X, y) or dict of {str: (X, y)}
        The splits to evaluate (``None`` values are skipped).
    directory : str or os.PathLike
        Created if missing.
    dpi : int, default 100

    Returns
    -------
    dict of {str: str}
        Figure name -> path written.
    """
    os.makedirs(directory, exist_ok=True)
    written = {}

    def out(name):
        written[name] = os.path.join(os.fspath(directory), name + ".png")
        return written[name]

    performance(history, path=out("performance"), dpi=dpi)
    data_hist, _ = _history_dict(history)
    if any(_series(data_hist, k) is not None for k, _, _ in _STATE_KEYS):
        training_state(history, path=out("training_state"), dpi=dpi)
    splits = _splits(data)
    if net.loss_name == "mse":
        regression(net, splits, path=out("regression"), dpi=dpi)
        error_histogram(net, splits, path=out("error_histogram"), dpi=dpi)
    elif net.loss_name == "cross_entropy" or net.n_out == 1:
        name, (X, y) = next(iter(splits.items()))
        confusion(net, X, y, path=out("confusion"), title=f"{name}: confusion matrix", dpi=dpi)
        true, _ = _labels(net, X, y)
        if max(int(net.n_out), 2) == 2 and true.min() != true.max():
            roc(net, X, y, path=out("roc"), title=f"{name}: ROC", dpi=dpi)
    return written
