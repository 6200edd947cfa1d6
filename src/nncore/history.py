"""The record of a training run, returned by ``fit``."""

from __future__ import annotations

import math
import numbers

__all__ = ["History"]


class History:
    """Per-epoch metrics of a training run (Keras' ``History`` layout).

    Attributes
    ----------
    history : dict of str -> list of float
        One list per metric (``"loss"``, ``"val_loss"``, ``"accuracy"``,
        ``"val_accuracy"``, ``"lr"``, ``"time"``, ...), one entry per epoch.
        Every list has ``len(epoch)`` entries: a metric missing from some
        epoch's logs is NaN there.
    epoch : list of int
        The 0-based epoch numbers recorded.
    params : dict
        Settings of the run (``fit`` fills it: epochs, batch size, optimizer...).
    stop_reason : str or None
        Why training ended early (early stopping, divergence, interrupt...).

    Parameters
    ----------
    params : dict, optional
        Initial value of the ``params`` attribute (copied).
    """

    def __init__(self, params=None):
        self.history = {}
        self.epoch = []
        self.params = dict(params or {})
        self.stop_reason = None
        self._best_val = math.inf
        self._val_fail = 0

    def validation_failures(self, val_loss):
        """Count one epoch's validation check (MATLAB's ``val_fail``).

        Parameters
        ----------
        val_loss : float
            The epoch's validation loss.

        Returns
        -------
        int
            0 when ``val_loss`` is below every earlier one, else one more than
            the previous epoch's count (a NaN loss is a failure).
        """
        if val_loss < self._best_val:
            self._best_val = float(val_loss)
            self._val_fail = 0
        else:
            self._val_fail += 1
        return self._val_fail

    def append(self, epoch, logs):
        """Record one epoch's metrics.

        Parameters
        ----------
        epoch : int
            0-based epoch number.
        logs : mapping of str -> number or None
            The epoch's metrics; ``None`` and metrics missing from this epoch
            are stored as NaN, and a metric new in this epoch is NaN-padded
            in the earlier ones.

        Raises
        ------
        ValueError
            If ``epoch`` is not an integer >= 0.
        TypeError
            If ``logs`` is not a mapping, or a key is not a string or a value
            not a number (nothing is recorded then).
        """
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        if not hasattr(logs, "items"):
            raise TypeError(f"logs must be a mapping, got {type(logs).__name__}")
        values = {}
        for key, value in logs.items():
            if not isinstance(key, str):
                raise TypeError(f"metric names must be strings, got {key!r}")
            if value is None:
                value = math.nan
            elif isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__}")
            values[key] = float(value)
        n = len(self.epoch)
        for key in values:
            if key not in self.history:
                self.history[key] = [math.nan] * n
        for key, series in self.history.items():
            series.append(values.get(key, math.nan))
        self.epoch.append(int(epoch))

    def declare(self, keys):
        """Give each metric in ``keys`` a series if it has none yet.

        A run stopped before its first epoch ended (Ctrl-C, divergence) still
        has the metrics it would have recorded, as empty lists (NaN-padded
        if epochs were recorded already), so ``history["loss"]`` never raises.

        Parameters
        ----------
        keys : iterable of str
            Metric names.
        """
        for key in keys:
            if key not in self.history:
                self.history[str(key)] = [math.nan] * len(self.epoch)

    def __len__(self):
        return len(self.epoch)

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def last(self, key):
        """The most recent value of a metric.

        Parameters
        ----------
        key : str
            Metric name, e.g. ``"val_loss"``.

        Returns
        -------
        float

        Raises
        ------
        KeyError
            If ``key`` was never logged.
        """
        series = self.history[key]
        if not series:
            raise KeyError(key)
        return series[-1]

    def plot(self, **kwargs):
        """Draw the training curves with matplotlib.

        Parameters
        ----------
        **kwargs
            Passed to :func:`nncore.plot.plot_history`.

        Returns
        -------
        matplotlib.figure.Figure

        Raises
        ------
        ImportError
            If matplotlib is not installed.
        """
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise ImportError("History.plot() needs matplotlib: pip install nncore-train[plot]") from exc
        from .plot import plot_history
        return plot_history(self, **kwargs)

    def __repr__(self):
        keys = ", ".join(self.history)
        extra = f", stop_reason={self.stop_reason!r}" if self.stop_reason else ""
        return f"History(epochs={len(self.epoch)}, metrics=[{keys}]{extra})"
