"""Learning-rate schedules: callables mapping the (0-based) epoch to a rate.

A schedule is passed as ``lr`` to any first-order optimizer; the optimizer
evaluates it in ``set_epoch(epoch)`` (``fit`` calls that at the start of every
epoch), so the rate is constant within an epoch, as with
``torch.optim.lr_scheduler`` stepped once per epoch.

The closed forms are torch's: ``StepDecay`` is ``StepLR``, ``ExponentialDecay``
is ``ExponentialLR`` and ``CosineAnnealing`` is ``CosineAnnealingLR``'s closed
form. ``InverseTime`` is the lecture's ``eta(tau) = eta0 / (1 + tau / T)``,
written with ``decay = 1 / T``.
"""

from __future__ import annotations

import math

from ._checks import integer, real

__all__ = [
    "Schedule", "Constant", "StepDecay", "ExponentialDecay", "CosineAnnealing",
    "InverseTime",
]


class Schedule:
    """Base class: ``schedule(epoch) -> learning rate`` for a 0-based epoch.

    Subclasses implement :meth:`_rate` and store their constructor arguments
    under the same names (``get_config`` and ``repr`` read them).
    """

    _params: tuple = ()

    def __call__(self, epoch):
        return self._rate(integer(epoch, "epoch", low=0))

    def _rate(self, epoch):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        """Constructor arguments as a dict (``type(s)(**s.get_config())`` rebuilds it)."""
        return {name: getattr(self, name) for name in self._params}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None


class Constant(Schedule):
    """``eta(epoch) = lr``.

    Parameters
    ----------
    lr : float
        The rate, > 0.
    """

    _params = ("lr",)

    def __init__(self, lr):
        self.lr = real(lr, "lr", low=0.0, low_open=True)

    def _rate(self, epoch):
        return self.lr


class StepDecay(Schedule):
    """``eta(epoch) = lr * gamma ** (epoch // step_size)`` (torch ``StepLR``).

    Parameters
    ----------
    lr : float
        Initial rate, > 0.
    step_size : int
        Epochs between decays, >= 1.
    gamma : float, default 0.1
        Multiplicative factor, > 0.
    """

    _params = ("lr", "step_size", "gamma")

    def __init__(self, lr, step_size, gamma=0.1):
        self.lr = real(lr, "lr", low=0.0, low_open=True)
        self.step_size = integer(step_size, "step_size", low=1)
        self.gamma = real(gamma, "gamma", low=0.0, low_open=True)

    def _rate(self, epoch):
        return self.lr * self.gamma ** (epoch // self.step_size)


class ExponentialDecay(Schedule):
    """``eta(epoch) = lr * gamma ** epoch`` (torch ``ExponentialLR``).

    Parameters
    ----------
    lr : float
        Initial rate, > 0.
    gamma : float
        Multiplicative factor per epoch, > 0.
    """

    _params = ("lr", "gamma")

    def __init__(self, lr, gamma):
        self.lr = real(lr, "lr", low=0.0, low_open=True)
        self.gamma = real(gamma, "gamma", low=0.0, low_open=True)

    def _rate(self, epoch):
        return self.lr * self.gamma ** epoch


class CosineAnnealing(Schedule):
    """``eta(epoch) = eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

    torch ``CosineAnnealingLR``'s closed form (without restarts: past
    ``T_max`` the cosine keeps going, rising back towards ``lr``).

    Parameters
    ----------
    lr : float
        Initial (maximum) rate, > 0.
    T_max : int
        Half-period in epochs, >= 1.
    eta_min : float, default 0.0
        Minimum rate, 0 <= eta_min <= lr.
    """

    _params = ("lr", "T_max", "eta_min")

    def __init__(self, lr, T_max, eta_min=0.0):
        self.lr = real(lr, "lr", low=0.0, low_open=True)
        self.T_max = integer(T_max, "T_max", low=1)
        self.eta_min = real(eta_min, "eta_min")
        if not 0.0 <= self.eta_min <= self.lr:
            raise ValueError(f"eta_min must be in [0, lr={self.lr}], got {self.eta_min}")

    def _rate(self, epoch):
        cos = math.cos(math.pi * epoch / self.T_max)
        return self.eta_min + (self.lr - self.eta_min) * (1.0 + cos) / 2.0


class InverseTime(Schedule):
    """``eta(epoch) = lr / (1 + decay * epoch)``.

    The lecture's ``eta(tau) = eta0 / (1 + tau / T)`` with ``decay = 1 / T``
    (Keras' ``InverseTimeDecay`` with ``decay_steps=1``). It satisfies the
    Robbins-Monro conditions: the rates sum to infinity, their squares do not.

    Parameters
    ----------
    lr : float
        Initial rate ``eta0``, > 0.
    decay : float, default 1.0
        ``1 / T``, >= 0 (0 gives a constant rate).
    """

    _params = ("lr", "decay")

    def __init__(self, lr, decay=1.0):
        self.lr = real(lr, "lr", low=0.0, low_open=True)
        self.decay = real(decay, "decay")
        if self.decay < 0.0:
            raise ValueError(f"decay must be >= 0, got {self.decay}")

    def _rate(self, epoch):
        return self.lr / (1.0 + self.decay * epoch)
