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
    """Training stopped because a step's loss, or the parameters an update made,
    became NaN or infinite (the last step of ``fit`` included).

    The network is left at the parameters of the last step whose loss was
    finite (the point that loss was computed at).

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
        The offending loss value; NaN when an update made the parameters
        inf or NaN (the loss there is undefined).
    """

    def __init__(self, message, *, epoch=None, step=None, loss=None):
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.loss = loss
