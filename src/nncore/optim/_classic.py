"""The classic full-batch toolbox: Rprop (four variants), Quickprop and
Møller's scaled conjugate gradients.

Design
------
* All three take the whole training set (``full_batch = True``, so ``fit``
  uses ``batch_size="full"``) through the full-batch interface
  ``iterate(fun, x, f, g) -> (x_new, f_new, g_new, info)`` of
  :mod:`nncore.optim._full_batch`: one call is one epoch, ``x`` and ``g`` are
  never modified, ``info`` has ``"lr"``, ``"nfev"``, ``"ngev"``, ``"stop"``,
  ``"gnorm"`` and ``"log"`` (per-iteration values ``fit`` copies into the
  history).
* Rprop and Quickprop are per-weight rules, so they also offer
  ``step(params, grads, loss=None)`` on a flat vector of any float dtype, like
  the first-order optimizers; ``iterate`` is ``step`` on a float64 copy plus
  one evaluation at the new point. Rprop's update is one fused backend kernel
  (``rprop_step``).
* State (per-weight step sizes, previous gradient and weight change) is
  allocated on the first step in the parameters' dtype and length; another
  length or dtype is a ``ValueError`` until ``reset()``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend as _backend
from ..errors import InvalidParameterError
from ._first_order import check_flat_pair
from ._full_batch import FullBatchOptimizer

__all__ = ["Rprop", "Quickprop", "ScaledConjugateGradient", "RPROP_VARIANTS"]

# variant -> (gradient set to 0 on a sign change, weight-backtracking)
RPROP_VARIANTS = {
    "rprop-": (False, False),
    "irprop-": (True, False),
    "rprop+": (True, True),
    "irprop+": (True, True),
}


def _positive(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0.0 or (value == 0.0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, "
                         f"got {value!r}")
    return value


def _pair(value, name):
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers, got {value!r}") from None
    return a, b


class _PerWeight:
    """Shared bookkeeping of the per-weight rules (Rprop, Quickprop)."""

    full_batch = True
    _buffers: tuple = ()
    _params: tuple = ()

    def reset(self):
        """Forget all state (per-weight buffers, step count, previous loss)."""
        self._bufs = None
        self._step = 0
        self._f_prev = None

    @property
    def iterations(self):
        """Number of steps taken since construction or ``reset()``."""
        return self._step

    @property
    def state(self):
        """Dict with ``"step"`` and the state buffers (live arrays, or None before a step)."""
        out = {"step": self._step}
        for name in self._buffers:
            out[name] = None if self._bufs is None else self._bufs[name]
        return out

    def get_config(self):
        """Constructor arguments as a dict (``type(self)(**get_config())`` clones)."""
        return {k: getattr(self, k) for k in self._params}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _check_arrays(self, params, grads):
        check_flat_pair(params, grads)
        if self._bufs is not None:
            first = self._bufs[self._buffers[0]]
            if first.shape != params.shape or first.dtype != params.dtype:
                raise ValueError(
                    f"{type(self).__name__} holds state for {first.shape[0]} {first.dtype} "
                    f"parameters, got {params.shape[0]} {params.dtype}; call reset() first")

    def iterate(self, fun, x, f, g):
        """One full-batch iteration: :meth:`step` on a float64 copy of ``x``,
        then one loss/gradient evaluation there.

        Parameters
        ----------
        fun : callable
            ``fun(x) -> (f, g)``.
        x, f, g
            Current point, its loss and gradient (not modified).

        Returns
        -------
        x_new, f_new, g_new, info
            ``info["lr"]`` is the mean per-weight step length
            ``mean |x_new - x|``.
        """
        x, f, g = FullBatchOptimizer._check_input(fun, x, f, g)
        x_new = x.copy()
        self.step(x_new, g, loss=f)
        f_new, g_new = fun(x_new)
        g_new = np.array(g_new, dtype=np.float64, copy=True).reshape(-1)
        info = {"lr": float(np.mean(np.abs(x_new - x))), "nfev": 1, "ngev": 1, "stop": None,
                "gnorm": float(np.max(np.abs(g_new))), "log": self._log()}
        return x_new, float(f_new), g_new, info

    def _log(self):
        return {}


class Rprop(_PerWeight):
    """Resilient backpropagation, the four variants of Igel & Hüsken (2000).

    Every weight has its own step size ``Δ`` (starting at ``lr``). With
    ``c = g · g_prev``: ``Δ ← min(Δ η+, Δmax)`` if ``c > 0``, ``Δ ←
    max(Δ η−, Δmin)`` if ``c < 0``; then

    * ``"rprop-"``: ``w ← w − sign(g) Δ``;
    * ``"irprop-"`` (default): as rprop-, but where ``c < 0`` the gradient is
      set to 0 (no step, and no adaptation next time) — exactly
      ``torch.optim.Rprop``, including its clamp of ``Δ`` every step;
    * ``"rprop+"``: where ``c < 0`` the previous weight change is undone
      (weight-backtracking) and the gradient set to 0; elsewhere
      ``Δw = −sign(g) Δ``;
    * ``"irprop+"``: as rprop+, but the change is undone only if the loss
      went up (``E(t) > E(t−1)``), so it needs the loss: ``fit`` passes it,
      ``step`` takes it as ``loss=``.

    Parameters
    ----------
    lr : float, default 0.01
        Initial step size ``Δ0`` of every weight.
    etas : (float, float), default (0.5, 1.2)
        ``(η−, η+)`` with ``0 < η− < 1 < η+``.
    step_sizes : (float, float), default (1e-6, 50)
        ``(Δmin, Δmax)`` with ``0 <= Δmin <= Δmax``.
    variant : {"irprop-", "rprop-", "rprop+", "irprop+"}, default "irprop-"

    Raises
    ------
    ValueError
        For an unknown variant or hyper-parameters outside those ranges.
    """

    _params = ("lr", "etas", "step_sizes", "variant")
    _buffers = ("prev", "step_size", "delta_w")

    def __init__(self, lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-6, 50), variant="irprop-"):
        self.lr = _positive(lr, "lr")
        em, ep = (_positive(v, "etas") for v in _pair(etas, "etas"))
        if not 0.0 < em < 1.0 < ep:
            raise ValueError(f"etas must satisfy 0 < eta_minus < 1 < eta_plus, got {etas!r}")
        self.etas = (em, ep)
        smin, smax = (_positive(v, "step_sizes", allow_zero=True)
                      for v in _pair(step_sizes, "step_sizes"))
        if smin > smax:
            raise ValueError(f"step_sizes must satisfy min <= max, got {step_sizes!r}")
        self.step_sizes = (smin, smax)
        if not isinstance(variant, str) or variant.strip().lower() not in RPROP_VARIANTS:
            raise ValueError(f"unknown Rprop variant {variant!r}; expected one of "
                             f"{', '.join(RPROP_VARIANTS)}")
        self.variant = variant.strip().lower()
        self.reset()

    def _allocate(self, params):
        n, dt = params.shape[0], params.dtype
        self._bufs = {"prev": np.zeros(n, dt), "step_size": np.full(n, self.lr, dt),
                      "delta_w": np.zeros(n, dt)}

    def step(self, params, grads, loss=None):
        """Update ``params`` in place from ``grads`` (one fused backend kernel).

        Parameters
        ----------
        params : ndarray, 1-D float32/float64
        grads : ndarray
            Same shape and dtype. Not modified.
        loss : float, optional
            The loss at ``params``; required by ``"irprop+"``.

        Raises
        ------
        ValueError
            Mismatched arrays, or ``"irprop+"`` without a finite ``loss``.
        """
        self._check_arrays(params, grads)
        zero_on_change, backtrack = RPROP_VARIANTS[self.variant]
        revert = self.variant == "rprop+"
        if self.variant == "irprop+":
            if loss is None or not math.isfinite(float(loss)):
                raise ValueError("Rprop(variant='irprop+') backtracks only when the loss went "
                                 "up, so step() needs loss= (a finite number)")
            loss = float(loss)
            revert = self._f_prev is not None and loss > self._f_prev
        if self._bufs is None:
            self._allocate(params)
        b = self._bufs
        _backend.current().rprop_step(
            params, grads, b["prev"], b["step_size"], b["delta_w"] if backtrack else params,
            self.etas[0], self.etas[1], self.step_sizes[0], self.step_sizes[1],
            zero_on_change, backtrack, revert)
        if loss is not None:
            self._f_prev = float(loss)
        self._step += 1

    def _log(self):
        return {"step_size_mean": float(np.mean(self._bufs["step_size"]))}


class Quickprop(_PerWeight):
    """Fahlman's quickprop (1988): per weight, a step to the minimum of the
    parabola through the current and previous slopes.

    With the slope ``s = −∂E/∂w``, the previous slope ``s_prev`` and the
    previous change ``Δw_prev`` (Fahlman's own code, without decay):

    * if ``Δw_prev = 0`` (first step, or the last one was 0): ``Δw = ε s``;
    * otherwise ``Δw = ε s`` only if ``s`` has the sign of ``Δw_prev`` (the
      gradient term), plus ``μ Δw_prev`` if ``s`` is beyond
      ``μ/(1+μ) · s_prev`` in that direction (the quadratic step would grow
      by more than the maximum growth factor ``μ``, or go uphill), else the
      quadratic step ``s / (s_prev − s) · Δw_prev``;
    * safeguard: where the quadratic step is needed but unusable (equal
      slopes: no curvature information), the gradient step ``ε s`` is taken.

    Parameters
    ----------
    lr : float, default 0.01
        ``ε``, the rate of the gradient term.
    mu : float, default 1.75
        Maximum growth factor (Fahlman's ``μ``; > 0).

    Raises
    ------
    ValueError
        If ``lr`` or ``mu`` is not a finite number > 0.
    """

    _params = ("lr", "mu")
    _buffers = ("prev_grad", "prev_step")

    def __init__(self, lr=0.01, mu=1.75):
        self.lr = _positive(lr, "lr")
        self.mu = _positive(mu, "mu")
        self.reset()

    def step(self, params, grads, loss=None):
        """Update ``params`` in place from ``grads``.

        Parameters
        ----------
        params : ndarray, 1-D float32/float64
        grads : ndarray
            Same shape and dtype. Not modified.
        loss : float, optional
            Not used (accepted for the common interface).
        """
        self._check_arrays(params, grads)
        if self._bufs is None:
            n, dt = params.shape[0], params.dtype
            self._bufs = {"prev_grad": np.zeros(n, dt), "prev_step": np.zeros(n, dt)}
        dt = params.dtype.type
        zero = dt(0.0)
        s, s_prev = -grads, -self._bufs["prev_grad"]
        dw = self._bufs["prev_step"]
        up, down = dw > 0, dw < 0
        moved = up | down
        along = (up & (s > 0)) | (down & (s < 0))   # the slope still points the same way
        shrink = dt(self.mu / (1.0 + self.mu))
        capped = (up & (s > shrink * s_prev)) | (down & (s < shrink * s_prev))
        denom = s_prev - s
        quadratic = moved & ~capped
        usable = quadratic & (denom != 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            quad_step = s / denom * dw
        step = np.where(~moved | along, self.lr * s, zero)
        step += np.where(capped, self.mu * dw, zero)
        step += np.where(usable, quad_step, zero)
        step += np.where(quadratic & ~usable & ~along, self.lr * s, zero)
        params += step
        np.copyto(dw, step)
        np.copyto(self._bufs["prev_grad"], grads)
        self._step += 1


class ScaledConjugateGradient:
    """Møller's scaled conjugate gradient (1993), MATLAB's ``trainscg``.

    No line search: the curvature along the direction ``p`` comes from one
    extra gradient, ``s = (E'(w + σ_k p) − E'(w)) / σ_k`` with
    ``σ_k = σ / |p|``, and a Levenberg–Marquardt scale ``λ`` keeps
    ``δ = pᵀs + λ|p|²`` positive. Each iteration is Møller's steps 2–9:
    ``α = μ/δ`` with ``μ = pᵀr`` (``r = −E'``), accepted when the comparison
    parameter ``Δ = 2δ(E(w) − E(w + αp))/μ² >= 0``; then
    ``p ← r + β p`` with ``β = (|r_new|² − r_newᵀr)/μ`` (restart ``p = r``
    every ``restart`` iterations, default the number of parameters, and when
    ``p`` is not a descent direction), and ``λ ← λ/4`` if ``Δ >= 0.75``;
    ``λ ← λ + δ(1 − Δ)/|p|²`` if ``Δ < 0.25``. A rejected iteration keeps the
    point (``info["lr"] = 0``) and retries with the larger ``λ``.
    Cost: two loss/gradient evaluations per iteration.

    Parameters
    ----------
    sigma : float, default 5e-5
        Finite-difference scale ``σ`` (> 0).
    lambda_ : float, default 5e-7
        Initial scale ``λ`` (> 0).
    restart : int or None, default None
    gtol : float, default 1e-5
        Stop when ``max_i |g_i| <= gtol``.

    Raises
    ------
    ValueError
        For hyper-parameters outside those ranges.
    """

    full_batch = True
    _params = ("sigma", "lambda_", "restart", "gtol")

    def __init__(self, sigma=5e-5, lambda_=5e-7, *, restart=None, gtol=1e-5):
        self.sigma = _positive(sigma, "sigma")
        self.lambda_ = _positive(lambda_, "lambda_")
        if restart is not None and (isinstance(restart, bool) or not isinstance(
                restart, numbers.Integral) or restart < 1):
            raise ValueError(f"restart must be a positive integer or None, got {restart!r}")
        self.restart = None if restart is None else int(restart)
        self.gtol = _positive(gtol, "gtol", allow_zero=True)
        self.reset()

    def reset(self):
        """Forget the direction, the scale and the counters."""
        self.n_iter = 0
        self.nfev = 0
        self.ngev = 0
        self._x_last = self._g_last = None
        self._reset_state()

    def _reset_state(self):
        self._p = None
        self._lam = self.lambda_
        self._lam_bar = 0.0
        self._delta = None
        self._success = True
        self._k = 0

    get_config = _PerWeight.get_config
    __repr__ = _PerWeight.__repr__

    def iterate(self, fun, x, f, g):
        """One SCG iteration from ``x`` (loss ``f``, gradient ``g``; not modified).

        Parameters
        ----------
        fun : callable
            ``fun(x) -> (f, g)``.
        x, f, g
            Current point, its loss and gradient.

        Returns
        -------
        x_new, f_new, g_new, info
            ``info["lr"]`` is the accepted ``α`` (0 when rejected);
            ``info["log"]`` holds ``"lambda"``, the scale after the iteration.
        """
        from ._full_batch import _Counted
        x, f, g = FullBatchOptimizer._check_input(fun, x, f, g)
        if self._x_last is not None and not (
                self._x_last.shape == x.shape and np.array_equal(self._x_last, x)
                and np.array_equal(self._g_last, g)):
            self._reset_state()
        counted = _Counted(fun)
        gnorm = float(np.max(np.abs(g)))
        if gnorm <= self.gtol:
            return self._result(x, f, g, 0.0, counted, "gtol")
        r = -g
        if self._p is None or self._p.shape != r.shape or not float(np.dot(self._p, r)) > 0.0:
            # Start, or p lost descent: steepest descent with fresh curvature.
            self._p, self._success, self._lam_bar = r.copy(), True, 0.0
        x_new, f_new, g_new, alpha = self._scg_step(counted, x, f, g, r)
        return self._result(x_new, f_new, g_new, alpha, counted, None)

    def _scg_step(self, fun, x, f, g, r):
        p = self._p
        p2 = float(np.dot(p, p))
        if self._success:
            sig = self.sigma / math.sqrt(p2)
            s = (fun.grad(x + sig * p) - g) / sig
            delta = float(np.dot(p, s))
        else:
            delta = self._delta
        lam = self._lam
        delta += (lam - self._lam_bar) * p2
        if delta <= 0.0:   # make the Hessian model positive definite
            lam_bar = 2.0 * (lam - delta / p2)
            delta = -delta + lam * p2
            lam = lam_bar
        mu = float(np.dot(p, r))
        alpha = mu / delta
        x_try = x + alpha * p
        f_try, g_try = fun(x_try)
        comparison = 2.0 * delta * (f - f_try) / (mu * mu) if math.isfinite(f_try) else -math.inf
        self._k += 1
        if comparison >= 0.0:
            r_new = -g_try
            every = self.restart if self.restart is not None else x.size
            if self._k % every == 0:
                self._p = r_new.copy()
            else:
                beta = (float(np.dot(r_new, r_new)) - float(np.dot(r_new, r))) / mu
                self._p = r_new + beta * p
            self._lam_bar, self._success = 0.0, True
            if comparison >= 0.75:
                lam = lam / 4.0
            result = (x_try, f_try, g_try, alpha)
        else:
            self._lam_bar, self._success = lam, False
            result = (x.copy(), f, g.copy(), 0.0)
        if comparison < 0.25:
            lam = lam + delta * (1.0 - comparison) / p2
        self._lam, self._delta = lam, delta
        return result

    def _result(self, x, f, g, alpha, counted, stop):
        self.n_iter += 1
        self.nfev += counted.nfev
        self.ngev += counted.ngev
        gnorm = float(np.max(np.abs(g)))
        if stop is None and gnorm <= self.gtol:
            stop = "gtol"
        self._x_last, self._g_last = x.copy(), g.copy()
        info = {"lr": float(alpha), "nfev": counted.nfev, "ngev": counted.ngev, "stop": stop,
                "gnorm": gnorm, "log": {"lambda": float(self._lam)}}
        return x, float(f), g, info
