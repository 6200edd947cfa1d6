"""Callbacks: hooks ``fit`` calls at the start and end of training, epochs and batches.

``fit`` calls ``set_model(net)`` and ``set_optimizer(opt)`` first, sets
``net.stop_training = False``, then ``on_train_begin``; per epoch
``on_epoch_begin(epoch, logs)`` and ``on_epoch_end(epoch, logs)`` where
``logs`` holds that epoch's history entries (``"loss"``, ``"val_loss"``,
``"accuracy"``, ``"val_accuracy"``, ``"lr"``, ``"time"``, ...); it stops after an
epoch when a callback set ``net.stop_training = True``; finally
``on_train_end(logs)``. Epochs are 0-based.

Monitored quantities follow Keras: ``mode="auto"`` maximises names containing
``"acc"`` and minimises everything else; a monitored key missing from the logs
falls back to ``"loss"`` with a warning (for example ``"val_loss"`` without
validation data).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from ._checks import flag, integer, one_of, real

__all__ = [
    "Callback", "EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau", "LambdaCallback",
]


class Callback:
    """Base class: override any of the ``on_*`` hooks.

    Attributes
    ----------
    model : Network or None
        Set by ``fit`` through :meth:`set_model`.
    optimizer : optimizer or None
        Set by ``fit`` through :meth:`set_optimizer`.
    """

    def __init__(self):
        self.model = None
        self.optimizer = None

    def set_model(self, model):
        """Attach the network being trained.

        Parameters
        ----------
        model : Network
        """
        self.model = model

    def set_optimizer(self, optimizer):
        """Attach the optimizer ``fit`` uses.

        Parameters
        ----------
        optimizer : optimizer instance
        """
        self.optimizer = optimizer

    def on_train_begin(self, logs=None):
        """Called once before the first epoch.

        Parameters
        ----------
        logs : dict or None
        """

    def on_train_end(self, logs=None):
        """Called once after the last epoch (also after an early stop).

        Parameters
        ----------
        logs : dict or None
        """

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of every epoch.

        Parameters
        ----------
        epoch : int
            0-based epoch number.
        logs : dict or None
        """

    def on_epoch_end(self, epoch, logs=None):
        """Called after every epoch; set ``self.model.stop_training = True`` to stop.

        Parameters
        ----------
        epoch : int
            0-based epoch number.
        logs : dict
            That epoch's history entries (``"loss"``, ``"val_loss"``, ``"lr"``, ...).
        """

    def on_batch_end(self, batch, logs=None):
        """Called after every optimizer step.

        Parameters
        ----------
        batch : int
            0-based step number within the epoch.
        logs : dict or None
        """


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=print)``.

    Parameters
    ----------
    on_train_begin, on_train_end : callable(logs), optional
    on_epoch_begin, on_epoch_end, on_batch_end : callable(index, logs), optional
    """

    _HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_batch_end")

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if name not in self._HOOKS:
                raise TypeError(f"unknown hook {name!r}; valid: {', '.join(self._HOOKS)}")
            if not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
            setattr(self, name, fn)


# --------------------------------------------------------------------------- helpers

class _Monitor:
    """Tracks the best value of one logged quantity (shared by the callbacks)."""

    def __init__(self, owner, monitor, mode, min_delta):
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be a non-empty string, got {monitor!r}")
        self.owner = owner
        self.monitor = monitor
        self.mode = one_of(mode, "mode", ("auto", "min", "max"))
        self.min_delta = abs(real(min_delta, "min_delta"))
        self._warned = False
        self.reset()

    @property
    def maximize(self):
        if self.mode == "auto":
            return "acc" in self.key
        return self.mode == "max"

    def reset(self):
        self.key = self.monitor
        self.best = None

    def value(self, logs):
        """The monitored value from ``logs`` (falling back to ``"loss"``), or None."""
        logs = logs or {}
        if self.monitor in logs:
            self.key = self.monitor
        elif "loss" in logs:
            if not self._warned:
                warnings.warn(
                    f"{type(self.owner).__name__}: {self.monitor!r} is not in the logs "
                    f"(available: {', '.join(sorted(logs))}); monitoring 'loss' instead",
                    RuntimeWarning, stacklevel=4)
                self._warned = True
            self.key = "loss"
        else:
            return None
        value = logs[self.key]
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return value

    def improved(self, value):
        """True if ``value`` beats the best by more than ``min_delta`` (NaN never does)."""
        if value is None or math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.maximize:
            return value - self.min_delta > self.best
        return value + self.min_delta < self.best


# --------------------------------------------------------------------------- early stopping

class EarlyStopping(Callback):
    """Stop training when a monitored quantity stops improving.

    An epoch improves when the value beats the best so far by more than
    ``min_delta``. After ``patience`` epochs in a row without improvement the
    model's ``stop_training`` is set. With ``restore_best_weights`` the
    parameters of the best epoch are copied back into ``model.params`` when
    training ends (whether or not it stopped early, as Keras 3 does).

    Parameters
    ----------
    monitor : str, default "val_loss"
    patience : int, default 10
        Epochs without improvement tolerated (0 stops at the first one).
    min_delta : float, default 0.0
    restore_best_weights : bool, default True
    mode : {"auto", "min", "max"}, default "auto"

    Attributes
    ----------
    best : float or None
        Best monitored value.
    best_epoch : int or None
    stopped_epoch : int or None
        The epoch after which training was stopped (None if it was not).
    stop_reason : str or None
        Why it stopped, for ``History.stop_reason``.
    wait : int
        Epochs since the last improvement.
    """

    def __init__(self, monitor="val_loss", patience=10, min_delta=0.0,
                 restore_best_weights=True, mode="auto"):
        super().__init__()
        self._mon = _Monitor(self, monitor, mode, min_delta)
        self.monitor = monitor
        self.mode = mode
        self.min_delta = self._mon.min_delta
        self.patience = integer(patience, "patience", low=0)
        self.restore_best_weights = flag(restore_best_weights, "restore_best_weights")
        self._reset()

    def _reset(self):
        self._mon.reset()
        self.wait = 0
        self.best_epoch = None
        self.stopped_epoch = None
        self.best_weights = None
        self.restored = False
        self.stop_reason = None

    @property
    def best(self):
        return self._mon.best

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        value = self._mon.value(logs)
        if self._mon.improved(value):
            self._mon.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights and self.model is not None:
                params = self.model.params
                if self.best_weights is None or self.best_weights.shape != params.shape:
                    self.best_weights = np.array(params, copy=True)
                else:
                    np.copyto(self.best_weights, params)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.stop_reason = (
                f"early stopping: {self._mon.key} did not improve for "
                f"{self.wait} epoch(s) (best {self.best!r} at epoch {self.best_epoch})")
            if self.model is not None:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if (self.restore_best_weights and self.best_weights is not None
                and self.model is not None):
            # Write through the flat buffer so every layer view sees the weights.
            self.model.params[:] = self.best_weights
            self.restored = True

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta}, restore_best_weights={self.restore_best_weights}, "
                f"mode={self.mode!r})")


# --------------------------------------------------------------------------- checkpoints

class ModelCheckpoint(Callback):
    """Save the model with ``model.save(path)`` at the end of epochs.

    Parameters
    ----------
    path : str or os.PathLike
        Target file. It may contain ``str.format`` fields filled from
        ``epoch`` (1-based, as Keras) and the epoch's logs, e.g.
        ``"ckpt-{epoch:03d}-{val_loss:.3f}.npz"``.
    monitor : str, default "val_loss"
    save_best_only : bool, default True
        Save only when the monitored value improves; otherwise every epoch.
    mode : {"auto", "min", "max"}, default "auto"

    Attributes
    ----------
    best : float or None
    saved : list of str
        Paths written, in order.
    """

    def __init__(self, path, monitor="val_loss", save_best_only=True, mode="auto"):
        super().__init__()
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a string or path, got {type(path).__name__}")
        self.path = os.fspath(path)
        if not self.path:
            raise ValueError("path is empty")
        self._mon = _Monitor(self, monitor, mode, 0.0)
        self.monitor = monitor
        self.mode = mode
        self.save_best_only = flag(save_best_only, "save_best_only")
        self.saved = []

    @property
    def best(self):
        return self._mon.best

    def on_train_begin(self, logs=None):
        self._mon.reset()

    def _format(self, epoch, logs):
        if "{" not in self.path:
            return self.path
        try:
            return self.path.format(epoch=epoch + 1, **(logs or {}))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"cannot fill checkpoint path {self.path!r} from epoch and "
                             f"logs {sorted(logs or {})}: {exc}") from exc

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = self._mon.value(logs)
            if not self._mon.improved(value):
                return
            self._mon.best = value
        path = self.model.save(self._format(epoch, logs))    # the name written (+ .npz)
        self.saved.append(path)

    def __repr__(self):
        return (f"ModelCheckpoint({self.path!r}, monitor={self.monitor!r}, "
                f"save_best_only={self.save_best_only}, mode={self.mode!r})")


# --------------------------------------------------------------------------- plateau

class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when a quantity stops improving.

    Works through the optimizer's ``lr_scale`` (a multiplier on its schedule),
    never below ``min_lr``. Same improvement rule as :class:`EarlyStopping`
    (Keras defaults: ``min_delta=1e-4``, ``cooldown=0``).

    Parameters
    ----------
    monitor : str, default "val_loss"
    factor : float, default 0.1
        In (0, 1).
    patience : int, default 10
    min_lr : float, default 0.0
    min_delta : float, default 1e-4
    cooldown : int, default 0
        Epochs to wait after a reduction before counting again.
    mode : {"auto", "min", "max"}, default "auto"
    verbose : bool, default False
        Print a line at each reduction.

    Attributes
    ----------
    reductions : list of (epoch, new_lr)
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, min_lr=0.0,
                 min_delta=1e-4, cooldown=0, mode="auto", verbose=False):
        super().__init__()
        self.factor = real(factor, "factor", low=0.0, low_open=True, high=1.0, high_open=True)
        self.patience = integer(patience, "patience", low=0)
        self.min_lr = real(min_lr, "min_lr", low=0.0)
        self.cooldown = integer(cooldown, "cooldown", low=0)
        self._mon = _Monitor(self, monitor, mode, min_delta)
        self.monitor = monitor
        self.mode = mode
        self.min_delta = self._mon.min_delta
        self.verbose = bool(verbose)
        self._warned_opt = False
        self._reset()

    def _reset(self):
        self._mon.reset()
        self.wait = 0
        self.cooldown_counter = 0
        self.reductions = []

    @property
    def best(self):
        return self._mon.best

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        value = self._mon.value(logs)
        improved = self._mon.improved(value)
        if improved:
            self._mon.best = value
        if self.cooldown_counter > 0:
            # The `cooldown` epochs after a reduction do not count towards patience.
            self.cooldown_counter -= 1
            self.wait = 0
            return
        if improved:
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self._reduce(epoch)
            self.cooldown_counter = self.cooldown
            self.wait = 0

    def _reduce(self, epoch):
        opt = self.optimizer
        if opt is None or not hasattr(opt, "lr_scale") or not hasattr(opt, "current_lr"):
            if not self._warned_opt:
                warnings.warn(f"ReduceLROnPlateau: optimizer {opt!r} has no adjustable "
                              "learning rate (lr_scale); nothing reduced",
                              RuntimeWarning, stacklevel=3)
                self._warned_opt = True
            return
        old = opt.current_lr
        if old <= self.min_lr:
            return
        new = max(old * self.factor, self.min_lr)
        if new <= 0.0:
            return
        opt.lr_scale = opt.lr_scale * (new / old)
        self.reductions.append((epoch, opt.current_lr))
        if self.verbose:
            print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                  f"{opt.current_lr:.4g}.")

    def __repr__(self):
        return (f"ReduceLROnPlateau(monitor={self.monitor!r}, factor={self.factor}, "
                f"patience={self.patience}, min_lr={self.min_lr}, "
                f"min_delta={self.min_delta}, cooldown={self.cooldown}, mode={self.mode!r})")
