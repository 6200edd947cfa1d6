"""Exceptions raised by nncore beyond the built-in ``ValueError``/``TypeError``."""

from __future__ import annotations

__all__ = ["DivergenceError", "InvalidParameterError"]


class InvalidParameterError(ValueError, TypeError):
    """A hyper-parameter of the wrong type (e.g. ``epochs=2.5``, ``lr="fast"``).

    API.md promises a ``ValueError`` for bad hyper-parameters, while Python
    habit expects a ``TypeError`` for a wrong type; like scikit-learn's
    ``InvalidParameterError`` this is both, so either ``except`` catches it.
    Non-numeric *data* still raises a plain ``TypeError``.
    """


class DivergenceError(RuntimeError):
    """Training stopped because the loss became NaN or infinite.

    The network is left at its last finite parameters (those from before the
    step whose loss was not finite).

    Parameters
    ----------
    message : str
    epoch, step : int or None
        Stored as the attributes below.
    loss : float or None
        Stored as the attribute below.

    Attributes
    ----------
    epoch : int
        0-based epoch in which the loss stopped being finite.
    step : int
        0-based step (batch) within that epoch.
    loss : float
        The offending loss value.
    """

    def __init__(self, message, *, epoch=None, step=None, loss=None):
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.loss = loss
