"""First-order optimizers over one flat parameter vector.

Design
------
* An optimizer owns flat state buffers (momentum, squared-gradient averages)
  of the same length and dtype as the parameter vector. They are allocated on
  the first ``step`` and a later call with another length or dtype is a
  ``ValueError`` (call ``reset()`` to reuse the optimizer for other params).
* An optimizer owns its state (:class:`OptimizerState`: the updates taken and
  the buffers; optax's ``init``) and its rule (``_update``: one fused backend
  kernel of ``nncore.backend.current()``, ``sgd_step``, ``adagrad_step``,
  ``rmsprop_step``, ``adam_step``). The bookkeeping every rule shares
  (clipping, coupled weight decay, the step count) is done once, in
  :meth:`Optimizer.step`; scalars are passed to the kernels as Python floats,
  so float32 arrays stay float32 (NumPy 2 promotion rules).
* Each optimizer also describes how the compiled epoch loop runs it
  (:meth:`Optimizer.fused_update`: the loop's rule by name, its
  hyper-parameters by name and the state buffers). ``Network.fit`` runs whole
  epochs in that loop when the optimizer has such a description and its
  per-step path (``nncore.backend._epoch.step_loop``, calling :meth:`step`)
  otherwise; the two give the same bits. A subclass runs on the per-step path
  unless it defines its own ``_loop_rule``, so a subclass that changes the
  step is never replaced by the compiled rule of its parent.
* The rules, and the order of operations that fixes their rounding, are
  ``torch.optim``'s ``_single_tensor_*`` loops, so trajectories match torch.
* Gradient-norm clipping is ``torch.nn.utils.clip_grad_norm_``: the factor
  ``min(1, clip_norm / (||g|| + 1e-6))`` is handed to the kernel as ``gscale``
  and the caller's gradient array is never written to.
* Coupled ``weight_decay`` (torch's ``grad + wd * param`` for SGD, Adagrad,
  RMSprop and Adam) needs ``g`` plus a multiple of ``w``; it is formed in a
  scratch buffer, again leaving the caller's gradient untouched. ``AdamW``'s
  decoupled decay happens inside the Adam kernel.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend as _backend
from ..backend._epoch import FusedUpdate
from ..errors import InvalidParameterError
from .._checks import flag, integer, real

__all__ = ["Optimizer", "OptimizerState", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW"]

# torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing.
_CLIP_EPS = 1e-6


# --------------------------------------------------------------------------- validation

def _check_lr(lr):
    if callable(lr):
        return lr
    if isinstance(lr, (int, float, np.integer, np.floating)) and not isinstance(lr, bool) \
            and lr <= 0:
        raise InvalidParameterError(
            f"lr must be > 0 (or a schedule from nncore.schedules), got {lr}")
    return real(lr, "lr", low=0.0, low_open=True)


# --------------------------------------------------------------------------- base class

def check_flat_pair(params, grads):
    """The checks every ``opt.step(params, grads)`` makes: two flat, contiguous,
    non-empty float arrays of one length and dtype, ``params`` writable."""
    for name, a in (("params", params), ("grads", grads)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
        if a.ndim != 1:
            raise ValueError(f"{name} must be a 1-D (flat) array, got shape {a.shape}")
        if a.size == 0:
            raise ValueError(f"{name} is empty")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be contiguous")
    if not params.flags.writeable:
        raise ValueError("params is updated in place and must be writable")
    if grads.shape != params.shape:
        raise ValueError(f"grads has length {grads.size}, params has length {params.size}")
    if grads.dtype != params.dtype:
        raise TypeError(f"grads has dtype {grads.dtype}, params has dtype {params.dtype}")


class OptimizerState:
    """What a first-order optimizer carries from one step to the next (optax's state).

    Parameters
    ----------
    buffers : dict of str -> ndarray, or None
        The state arrays (None: not allocated yet).

    Attributes
    ----------
    step : int
        Updates taken (torch's ``step``, counted from 1 at the first update).
    buffers : dict of str -> ndarray, or None
        The state arrays by torch's names (e.g. ``exp_avg``), each of the
        parameters' length and dtype, updated in place; None until the first
        step (or :meth:`Optimizer.init`) allocates them.
    """

    __slots__ = ("step", "buffers")

    def __init__(self, buffers):
        self.step = 0
        self.buffers = buffers


class Optimizer:
    """Base class of the first-order optimizers.

    Subclasses list their constructor arguments in ``_params`` and their state
    buffers in ``_buffers`` (torch's names), implement the rule ``_update`` and,
    when the compiled epoch loop has the same rule, ``_loop_rule``.

    Attributes
    ----------
    full_batch : bool
        Always False: these optimizers take one step per (mini-)batch.
    lr_scale : float
        Multiplier on the scheduled rate (``ReduceLROnPlateau`` lowers it).
    grad_norm : float or None
        L2 norm of the last gradient when ``clip_norm`` is set (before clipping).

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, or a schedule from :mod:`nncore.schedules` (epoch -> rate).
    clip_norm : float or None
        Rescale the gradient to at most this L2 norm before the update.

    Raises
    ------
    ValueError
        If ``lr`` is not a finite number > 0 (nor a schedule), or ``clip_norm`` is not > 0.
    """

    full_batch = False
    _params: tuple = ()
    _buffers: tuple = ()
    weight_decay = 0.0
    # True: weight_decay is applied inside the rule (AdamW), not added to the gradient.
    _decoupled = False

    def __init__(self, lr, clip_norm=None):
        self.lr = _check_lr(lr)
        self.clip_norm = real(clip_norm, "clip_norm", low=0.0, low_open=True, allow_none=True)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self):
        """Forget all state: buffers, step count, epoch and ``lr_scale``."""
        self._state = OptimizerState(None)
        self._shape = None
        self._decayed_grads = None
        self._epoch = 0
        self._lr_scale = 1.0
        self.grad_norm = None
        self._base_lr = self._evaluate_lr(0)

    def init(self, params):
        """The state for ``params`` (allocated on first use, as optax's ``init``).

        Parameters
        ----------
        params : ndarray, 1-D, float32 or float64

        Returns
        -------
        OptimizerState

        Raises
        ------
        ValueError
            If the state was made for another length or dtype (call ``reset()``).
        """
        if self._state.buffers is None:
            self._shape = (params.size, params.dtype)
            self._state.buffers = {name: self._initial_buffer(name, params)
                                   for name in self._buffers}
        elif (params.size, params.dtype) != self._shape:
            n, dtype = self._shape
            raise ValueError(
                f"{type(self).__name__} holds state for {n} {dtype} parameters, got "
                f"{params.size} {params.dtype}; call reset() to start over")
        return self._state

    def _initial_buffer(self, name, params):
        return np.zeros_like(params)

    @property
    def state(self):
        """Dict with ``"step"`` (updates taken) and the state buffers (live arrays)."""
        buffers = self._state.buffers
        out = {"step": self._state.step}
        for name in self._buffers:
            out[name] = None if buffers is None else buffers[name]
        return out

    @property
    def iterations(self):
        """Number of updates taken since construction or ``reset()``."""
        return self._state.step

    # ------------------------------------------------------------------ learning rate

    def _evaluate_lr(self, epoch):
        if not callable(self.lr):
            return self.lr
        value = self.lr(epoch)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                math.isfinite(value) and value >= 0):
            # 0 is allowed: CosineAnnealing reaches eta_min = 0 at T_max, as in torch.
            raise ValueError(f"learning-rate schedule {self.lr!r} gave {value!r} at "
                             f"epoch {epoch}; rates must be finite and >= 0")
        return float(value)

    def set_epoch(self, epoch):
        """Start an epoch: evaluates the learning-rate schedule.

        Parameters
        ----------
        epoch : int
            0-based epoch number.

        Raises
        ------
        InvalidParameterError
            If ``epoch`` is not an integer >= 0 (a ``ValueError`` and a
            ``TypeError``).
        ValueError
            If the schedule gives a rate that is not finite and >= 0 (the
            optimizer is then unchanged).
        """
        epoch = integer(epoch, "epoch", low=0)
        self._base_lr = self._evaluate_lr(epoch)
        self._epoch = epoch

    @property
    def scheduled_lr(self):
        """The schedule's rate for the current epoch, before ``lr_scale``."""
        return self._base_lr

    @property
    def current_lr(self):
        """The rate the next step uses: ``schedule(epoch) * lr_scale``."""
        return self._base_lr * self._lr_scale

    @property
    def lr_scale(self):
        return self._lr_scale

    @lr_scale.setter
    def lr_scale(self, value):
        self._lr_scale = real(value, "lr_scale", low=0.0, low_open=True)

    # ------------------------------------------------------------------ config

    def get_config(self):
        """Constructor arguments (``type(opt)(**opt.get_config())`` rebuilds it)."""
        return {name: getattr(self, name) for name in self._params}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ stepping

    def _check_arrays(self, params, grads):
        check_flat_pair(params, grads)

    def _clip_scale(self, grads):
        """torch.nn.utils.clip_grad_norm_'s factor ``min(1, clip / (||g|| + 1e-6))``."""
        if self.clip_norm is None:
            return 1.0
        norm = math.sqrt(_backend.current().sum_squares(grads))
        self.grad_norm = norm
        return min(1.0, self.clip_norm / (norm + _CLIP_EPS))

    def _with_coupled_decay(self, params, grads, gscale):
        """torch's ``grad = grad.add(param, alpha=wd)`` after clipping, in a scratch buffer.

        Returns the gradient the rule reads and the factor still to apply to it.
        """
        weight_decay = 0.0 if self._decoupled else self.weight_decay
        if weight_decay == 0.0:
            return grads, gscale
        if self._decayed_grads is None:
            self._decayed_grads = np.empty_like(params)
        g = self._decayed_grads
        if gscale == 1.0:
            # wd*p + g instead of g + wd*p: IEEE addition commutes, so the bits
            # are torch's, without a temporary per step.
            np.multiply(params, weight_decay, out=g)
            g += grads
        else:
            np.multiply(grads, gscale, out=g)
            g += weight_decay * params
        return g, 1.0

    def step(self, params, grads):
        """Update ``params`` in place from ``grads``.

        Parameters
        ----------
        params : ndarray, 1-D, float32 or float64, writable
            The flat parameter vector.
        grads : ndarray
            Its gradient (same length and dtype); never modified.

        Raises
        ------
        TypeError, ValueError
            If either is not a contiguous non-empty 1-D float array, ``params``
            is read-only, they differ in length or dtype, or the length/dtype
            differs from the state's (call ``reset()`` first). Nothing changes.
        """
        self._check_arrays(params, grads)
        state = self.init(params)
        g, gscale = self._with_coupled_decay(params, grads, self._clip_scale(grads))
        state.step += 1
        try:
            self._update(params, g, self.current_lr, gscale)
        except BaseException:
            # The backend validates before touching memory, so a raise means
            # nothing changed: keep the step count in step with the buffers.
            state.step -= 1
            raise

    def _update(self, params, grads, lr, gscale):  # pragma: no cover - abstract
        """The rule: update ``params`` and the state buffers from ``grads * gscale``
        (coupled weight decay already added) at rate ``lr``; ``self._state.step``
        counts this update."""
        raise NotImplementedError

    # ------------------------------------------------------------------ lowering

    def _loop_rule(self):
        """``(kind, hyper-parameters by name)`` of the compiled loop's rule that is
        this class's ``_update``, besides ``lr``, ``clip_norm`` and
        ``weight_decay``; None when the loop has none."""
        return None

    def fused_update(self, params):
        """How the compiled epoch loop runs this optimizer on ``params``.

        Parameters
        ----------
        params : ndarray
            The flat parameter vector (the state is allocated for it if needed).

        Returns
        -------
        nncore.backend._epoch.FusedUpdate or None
            The loop's rule (``kind``), its hyper-parameters by name (the
            current rate included) and the live state buffers; None when the
            optimizer must run on the per-step path: its class does not
            define ``_loop_rule`` itself (a subclass may change the step its
            parent's rule describes), or the rule is None.
        """
        rule = self._loop_rule() if "_loop_rule" in vars(type(self)) else None
        if rule is None:
            return None
        kind, hyper = rule
        state = self.init(params)
        hyper = {"lr": float(self.current_lr), "clip_norm": self.clip_norm,
                 "weight_decay": 0.0 if self._decoupled else self.weight_decay, **hyper}
        return FusedUpdate(kind, hyper, tuple(state.buffers[name] for name in self._buffers))


# --------------------------------------------------------------------------- optimizers

class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum (torch's rule).

    ``b = momentum * b + (1 - dampening) * g`` (``b = g`` on the first step);
    ``w -= lr * (g + momentum * b if nesterov else b)``; plain ``w -= lr * g``
    when ``momentum == 0``. At constant ``lr`` and ``dampening = 0`` this is the
    lecture's classic momentum ``dw = momentum * dw - lr * g; w += dw``.

    Parameters
    ----------
    lr : float or Schedule, default 0.01
    momentum : float, default 0.0
        In [0, 1).
    nesterov : bool, default False
        Needs ``momentum > 0`` and ``dampening == 0`` (as torch).
    dampening : float, default 0.0
        In [0, 1].
    weight_decay : float, default 0.0
        Coupled L2 decay: ``g + weight_decay * w`` (torch's).
    clip_norm : float or None, default None
        Rescale the gradient to at most this L2 norm first.
    """

    _params = ("lr", "momentum", "nesterov", "dampening", "weight_decay", "clip_norm")

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, dampening=0.0,
                 weight_decay=0.0, clip_norm=None):
        self.momentum = real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        self.nesterov = flag(nesterov, "nesterov")
        self.dampening = real(dampening, "dampening", low=0.0, high=1.0)
        self.weight_decay = real(weight_decay, "weight_decay", low=0.0)
        if self.nesterov and (self.momentum == 0.0 or self.dampening != 0.0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening == 0")
        super().__init__(lr, clip_norm)

    @property
    def _buffers(self):
        return ("momentum_buffer",) if self.momentum != 0.0 else ()

    def _update(self, params, grads, lr, gscale):
        buf = self._state.buffers.get("momentum_buffer", params)  # ignored when momentum == 0
        _backend.current().sgd_step(params, grads, buf, lr, self.momentum, self.dampening,
                                    self.nesterov, self._state.step == 1, gscale)

    def _loop_rule(self):
        return "sgd", {"momentum": self.momentum, "dampening": self.dampening,
                       "nesterov": self.nesterov}


class Adagrad(Optimizer):
    """Adagrad (torch's rule).

    ``s += g*g``; ``w -= clr * g / (sqrt(s) + eps)`` with
    ``clr = lr / (1 + (t - 1) * lr_decay)``; ``eps_inside_sqrt=True`` gives the
    lecture's ``w -= clr * g / sqrt(s + eps)``.

    Parameters
    ----------
    lr : float or Schedule, default 0.01
    eps : float, default 1e-10
    initial_accumulator_value : float, default 0.0
        Starting value of ``s``.
    lr_decay : float, default 0.0
    eps_inside_sqrt : bool, default False
    weight_decay : float, default 0.0
        Coupled L2 decay (torch's).
    clip_norm : float or None, default None
    """

    _params = ("lr", "eps", "initial_accumulator_value", "lr_decay", "eps_inside_sqrt",
               "weight_decay", "clip_norm")
    _buffers = ("sum",)

    def __init__(self, lr=0.01, eps=1e-10, initial_accumulator_value=0.0, lr_decay=0.0,
                 eps_inside_sqrt=False, weight_decay=0.0, clip_norm=None):
        self.eps = real(eps, "eps", low=0.0)
        self.initial_accumulator_value = real(initial_accumulator_value, "initial_accumulator_value", low=0.0)
        self.lr_decay = real(lr_decay, "lr_decay", low=0.0)
        self.eps_inside_sqrt = flag(eps_inside_sqrt, "eps_inside_sqrt")
        self.weight_decay = real(weight_decay, "weight_decay", low=0.0)
        super().__init__(lr, clip_norm)

    def _initial_buffer(self, name, params):
        return np.full_like(params, self.initial_accumulator_value)

    def _update(self, params, grads, lr, gscale):
        clr = lr / (1.0 + (self._state.step - 1) * self.lr_decay)
        _backend.current().adagrad_step(params, grads, self._state.buffers["sum"], clr,
                                        self.eps, self.eps_inside_sqrt, gscale)

    def _loop_rule(self):
        return "adagrad", {"eps": self.eps, "lr_decay": self.lr_decay,
                           "eps_inside_sqrt": self.eps_inside_sqrt}


class RMSprop(Optimizer):
    """RMSprop (torch's rule, without momentum or centering).

    ``v = alpha * v + (1 - alpha) * g*g``; ``w -= lr * g / (sqrt(v) + eps)``
    (``eps_inside_sqrt=True``: ``w -= lr * g / sqrt(v + eps)``).

    Parameters
    ----------
    lr : float or Schedule, default 0.01
    alpha : float, default 0.99
        In [0, 1).
    eps : float, default 1e-8
    eps_inside_sqrt : bool, default False
    weight_decay : float, default 0.0
        Coupled L2 decay (torch's).
    clip_norm : float or None, default None
    """

    _params = ("lr", "alpha", "eps", "eps_inside_sqrt", "weight_decay", "clip_norm")
    _buffers = ("square_avg",)

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, eps_inside_sqrt=False,
                 weight_decay=0.0, clip_norm=None):
        self.alpha = real(alpha, "alpha", low=0.0, high=1.0, high_open=True)
        self.eps = real(eps, "eps", low=0.0)
        self.eps_inside_sqrt = flag(eps_inside_sqrt, "eps_inside_sqrt")
        self.weight_decay = real(weight_decay, "weight_decay", low=0.0)
        super().__init__(lr, clip_norm)

    def _update(self, params, grads, lr, gscale):
        _backend.current().rmsprop_step(params, grads, self._state.buffers["square_avg"], lr,
                                        self.alpha, self.eps, self.eps_inside_sqrt, gscale)

    def _loop_rule(self):
        return "rmsprop", {"alpha": self.alpha, "eps": self.eps,
                           "eps_inside_sqrt": self.eps_inside_sqrt}


def _check_betas(betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise InvalidParameterError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return tuple(real(b, f"betas[{i}]", low=0.0, high=1.0, high_open=True)
                 for i, b in enumerate(betas))


class Adam(Optimizer):
    """Adam (torch's rule), step ``t`` counted from 1.

    ``m = beta1 m + (1 - beta1) g``; ``v = beta2 v + (1 - beta2) g*g``;
    ``w -= lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - beta1^t)``,
    ``v_hat = v / (1 - beta2^t)``; ``eps_inside_sqrt=True`` gives
    ``w -= lr * m_hat / sqrt(v_hat + eps)``.

    Parameters
    ----------
    lr : float or Schedule, default 0.001
    betas : (float, float), default (0.9, 0.999)
        Each in [0, 1).
    eps : float, default 1e-8
    eps_inside_sqrt : bool, default False
    weight_decay : float, default 0.0
        Coupled L2 decay ``g + weight_decay * w`` (torch's Adam; see ``AdamW``
        for the decoupled form).
    clip_norm : float or None, default None
    """

    _params = ("lr", "betas", "eps", "eps_inside_sqrt", "weight_decay", "clip_norm")
    _buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, eps_inside_sqrt=False,
                 weight_decay=0.0, clip_norm=None):
        self.betas = _check_betas(betas)
        self.eps = real(eps, "eps", low=0.0)
        self.eps_inside_sqrt = flag(eps_inside_sqrt, "eps_inside_sqrt")
        self.weight_decay = real(weight_decay, "weight_decay", low=0.0)
        super().__init__(lr, clip_norm)

    def _update(self, params, grads, lr, gscale):
        buffers = self._state.buffers
        _backend.current().adam_step(params, grads, buffers["exp_avg"], buffers["exp_avg_sq"],
                                     lr, self.betas[0], self.betas[1], self.eps,
                                     self._state.step, self._decoupled_weight_decay,
                                     self.eps_inside_sqrt, gscale)

    @property
    def _decoupled_weight_decay(self):
        return self.weight_decay if self._decoupled else 0.0

    def _loop_rule(self):
        return "adam", {"beta1": self.betas[0], "beta2": self.betas[1], "eps": self.eps,
                        "eps_inside_sqrt": self.eps_inside_sqrt,
                        "decoupled_weight_decay": self._decoupled_weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay (torch's ``AdamW``).

    ``w *= 1 - lr * weight_decay`` (every parameter, biases included, as in
    torch), then the Adam step.

    Parameters
    ----------
    lr : float or Schedule, default 0.001
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0.01
    eps_inside_sqrt : bool, default False
    clip_norm : float or None, default None
    """

    _params = ("lr", "betas", "eps", "weight_decay", "eps_inside_sqrt", "clip_norm")
    _decoupled = True

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 eps_inside_sqrt=False, clip_norm=None):
        super().__init__(lr=lr, betas=betas, eps=eps, eps_inside_sqrt=eps_inside_sqrt,
                         weight_decay=weight_decay, clip_norm=clip_norm)

    def _loop_rule(self):   # Adam's rule with the decay decoupled (defined here: see fused_update)
        return super()._loop_rule()


# name -> (class, default keyword arguments) of the first-order optimizers that
# nncore.optim.get and fit(optimizer=name) know; user keywords override them.
FIRST_ORDER = {
    "sgd": (SGD, {}),
    "momentum": (SGD, {"momentum": 0.9}),
    "nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (Adagrad, {}),
    "rmsprop": (RMSprop, {}),
    "adam": (Adam, {}),
    "adamw": (AdamW, {}),
}
