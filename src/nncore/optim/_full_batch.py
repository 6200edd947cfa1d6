"""Full-batch optimizers: conjugate gradients, Newton, BFGS, DFP and L-BFGS.

Design
------
* An optimizer works on the flat float64 parameter vector and a deterministic
  objective ``fun(x) -> (f, g)`` (loss and a *copy* of its gradient). One call
  of :meth:`FullBatchOptimizer.iterate` is one iteration (one epoch of
  ``net.fit(..., batch_size="full")``): ``iterate(fun, x, f, g)`` returns
  ``(x_new, f_new, g_new, info)`` and never modifies ``x`` or ``g``. ``fun`` may
  be called at trial points after ``x_new``, so the caller must copy ``x_new``
  into the network itself.
* ``info`` holds ``"lr"`` (the accepted step length), ``"nfev"``/``"ngev"``
  (evaluations spent in this iteration; ``fun`` computes both together, except
  Newton's finite-difference Hessian whose ``2n`` gradient evaluations count
  in ``ngev`` only), ``"stop"`` (``None``, ``"gtol"``, ``"ftol"`` or
  ``"line search failed"``), ``"gnorm"`` and method-specific flags.
* Stopping: ``gtol`` applies to the gradient's infinity norm
  ``max_i |g_i|`` (as scipy's BFGS and CG), checked before and after the step;
  ``ftol`` to the relative loss decrease
  ``(f_old - f_new) <= ftol * max(|f_old|, |f_new|, 1)`` (as scipy's L-BFGS-B).
* Every accepted step decreases the loss: the line search returns the
  starting point rather than a worse one. (Exception by design: once the
  loss no longer resolves the decrease, within ``100 eps |f|``, the Wolfe
  search decides on slopes alone, Hager & Zhang's approximate Wolfe test, so
  convergence can continue through the rounding floor.) A search that finds no decrease
  along a quasi-Newton/CG direction is retried once along ``-g`` with the
  curvature memory cleared; if that also fails the iteration stops with
  ``"line search failed"`` and returns the unchanged point.
* Curvature memory (``V``, L-BFGS pairs, CG's previous direction) survives
  between calls only while the caller passes back exactly the point and
  gradient the previous call returned; anything else (e.g. a callback that
  restored weights) clears it, because the stored pairs would describe a
  different point.
* The dense ``n x n`` work (``d = -V g`` and the rank-two BFGS/DFP updates) goes
  through ``nncore.backend.current()`` (``symv``, ``bfgs_update``,
  ``dfp_update``): O(n^2) in place, compiled in the Cython backend, so an
  iteration costs little more than its loss/gradient evaluations.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend as _backend
from .._checks import integer, real
from ..errors import InvalidParameterError
from ._linesearch import armijo_line_search, wolfe_line_search

__all__ = [
    "FullBatchOptimizer", "ConjugateGradient", "Newton", "BFGS", "DFP", "LBFGS",
    "fd_hessian",
]

_EPS = float(np.finfo(np.float64).eps)
_CG_BETAS = ("fletcher-reeves", "polak-ribiere", "polak-ribiere+",
             "hestenes-stiefel", "liu-storey")


# --------------------------------------------------------------------------- helpers

# Thin adapters (argument order of this module's call sites) over nncore._checks,
# the one home of the checks and of their exception type.

def _check_pos_int(name, v, allow_none=False):
    return integer(v, name, low=1, allow_none=allow_none)


def _check_nonneg(name, v):
    return real(v, name, low=0.0)


def _ratio(num, den):
    """``num / den`` as a float, inf or NaN on a zero denominator (never raises)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return float(np.float64(num) / np.float64(den))


class _Counted:
    """Wraps ``fun`` to count evaluations and remember the last one.

    The one-entry memo lets Newton's trial of the full step be reused as the
    first point of the line search along the same direction (``x + 1.0*p`` is
    bit-identical to ``x + p``).
    """

    def __init__(self, fun):
        self.fun = fun
        self.nfev = 0
        self.ngev = 0
        self._x = None
        self._fg = None

    def _eval(self, x):
        f, g = self.fun(x)
        f = float(f)
        g = np.array(g, dtype=np.float64, copy=True).reshape(-1)
        if g.shape != x.shape:
            raise ValueError(f"fun returned a gradient of shape {g.shape}, expected {x.shape}")
        return f, g

    def __call__(self, x):
        if self._x is not None and np.array_equal(x, self._x):
            return self._fg[0], self._fg[1].copy()
        f, g = self._eval(x)
        self.nfev += 1
        self.ngev += 1
        self._x, self._fg = x.copy(), (f, g.copy())
        return f, g

    def grad(self, x):
        """Gradient only (the loss is computed but not used: counts in ngev)."""
        _, g = self._eval(x)
        self.ngev += 1
        return g


def fd_hessian(fun, x, out=None):
    """Hessian as the central difference of the analytic gradient.

    ``H[:, i] = (g(x + h_i e_i) - g(x - h_i e_i)) / (2 h_i)`` with
    ``h_i = eps**(1/3) * max(1, |x_i|)`` (balances truncation and rounding
    error), then symmetrised ``(H + H^T) / 2``. Costs ``2n`` gradient
    evaluations.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f, g)``.
    x : ndarray
        Point (1-D float). Not modified.
    out : ndarray, optional
        ``(n, n)`` float64 array to fill.

    Returns
    -------
    ndarray
        ``(n, n)`` float64 symmetric matrix.
    """
    x = np.array(x, dtype=np.float64, copy=True).reshape(-1)
    n = x.size
    H = np.empty((n, n)) if out is None else out
    grad = fun.grad if isinstance(fun, _Counted) else (lambda z: np.asarray(fun(z)[1], dtype=np.float64))
    xp = x.copy()
    step = _EPS ** (1.0 / 3.0)
    for i in range(n):
        xi = x[i]
        h = step * max(1.0, abs(xi))
        # Use the steps actually representable in floating point.
        xp[i] = xi + h
        hp = xp[i] - xi
        gp = grad(xp)
        xp[i] = xi - h
        hm = xi - xp[i]
        gm = grad(xp)
        xp[i] = xi
        np.subtract(gp, gm, out=H[:, i])
        H[:, i] /= hp + hm
    H += H.T
    H *= 0.5
    return H


# --------------------------------------------------------------------------- base

class FullBatchOptimizer:
    """Base class of the full-batch (deterministic, line-search) optimizers.

    Parameters
    ----------
    line_search : {"wolfe", "armijo"}, default "wolfe"
        Strong-Wolfe search (Nocedal & Wright 3.5/3.6) or backtracking Armijo.
    c1 : float, default 1e-4
        Sufficient-decrease constant.
    c2 : float
        Curvature constant of the strong-Wolfe search (``c1 < c2 < 1``); the
        subclass sets the default (0.1 for CG, 0.9 for the Newton family).
    max_ls : int, default 20
        Maximum loss/gradient evaluations per line search.
    gtol : float, default 1e-5
        Stop when ``max_i |g_i| <= gtol`` (infinity norm of the gradient).
    ftol : float, default 1e-12
        Stop when ``(f_old - f_new) <= ftol * max(|f_old|, |f_new|, 1)``;
        0 disables this test.
    """

    full_batch = True
    _param_names = ()
    _base_names = ("line_search", "c1", "c2", "max_ls", "gtol", "ftol")

    def __init__(self, *, line_search="wolfe", c1=1e-4, c2=0.9, max_ls=20,
                 gtol=1e-5, ftol=1e-12):
        if line_search not in ("wolfe", "armijo"):
            raise ValueError(f"line_search must be 'wolfe' or 'armijo', got {line_search!r}")
        c1 = _check_nonneg("c1", c1)
        c2 = _check_nonneg("c2", c2)
        if not 0.0 < c1 < 1.0:
            raise ValueError(f"c1 must be in (0, 1), got {c1!r}")
        if line_search == "wolfe" and not c1 < c2 < 1.0:
            raise ValueError(f"c2 must satisfy c1 < c2 < 1 (c1={c1!r}), got {c2!r}")
        self.line_search = line_search
        self.c1 = c1
        self.c2 = c2
        self.max_ls = _check_pos_int("max_ls", max_ls)
        self.gtol = _check_nonneg("gtol", gtol)
        self.ftol = _check_nonneg("ftol", ftol)
        self.reset()

    # -- bookkeeping -------------------------------------------------------

    def reset(self):
        """Forget all state (curvature memory, damping, counters)."""
        self.n_iter = 0
        self.nfev = 0
        self.ngev = 0
        self._x_last = None
        self._g_last = None
        self._f_prev = None
        self._reset_state()

    def _reset_state(self):
        """Clear the curvature memory (subclasses extend)."""

    def get_config(self):
        """Constructor arguments as a dict (``type(self)(**get_config())`` clones)."""
        return {k: getattr(self, k) for k in self._param_names + self._base_names}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- the iteration -----------------------------------------------------

    @staticmethod
    def _check_input(fun, x, f, g):
        if not callable(fun):
            raise TypeError(f"fun must be callable, got {type(fun).__name__}")
        x = np.asarray(x)
        g = np.asarray(g)
        for name, a in (("x", x), ("g", g)):
            if not np.issubdtype(a.dtype, np.floating):
                raise TypeError(f"{name} must be a floating array, got dtype {a.dtype}")
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"x must be a non-empty 1-D array, got shape {x.shape}")
        if g.shape != x.shape:
            raise ValueError(f"g has shape {g.shape}, expected {x.shape}")
        f = float(f)
        if not math.isfinite(f):
            raise ValueError(f"the loss at the current point is not finite ({f!r})")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(g))):
            raise ValueError("x and g must be finite")
        x = np.ascontiguousarray(x, dtype=np.float64)
        g = np.ascontiguousarray(g, dtype=np.float64)
        return x, f, g

    def iterate(self, fun, x, f, g):
        """One iteration from ``x`` (loss ``f``, gradient ``g``).

        Parameters
        ----------
        fun : callable
            ``fun(x) -> (f, g)`` for a float64 1-D ``x``; ``g`` a fresh array.
        x : ndarray
            Current parameters (1-D). Not modified.
        f : float
            Loss at ``x``.
        g : ndarray
            Gradient at ``x``. Not modified.

        Returns
        -------
        x_new : ndarray
            New parameters (float64, a new array).
        f_new : float
        g_new : ndarray
        info : dict
            ``"lr"``, ``"nfev"``, ``"ngev"``, ``"stop"``, ``"gnorm"`` and
            method-specific entries.
        """
        x, f, g = self._check_input(fun, x, f, g)
        if self._x_last is not None and not (
                self._x_last.shape == x.shape and np.array_equal(self._x_last, x)
                and np.array_equal(self._g_last, g)):
            self._reset_state()
            self._f_prev = None
        counted = _Counted(fun)
        gnorm = float(np.max(np.abs(g)))
        if gnorm <= self.gtol:
            info = {"lr": 0.0, "nfev": 0, "ngev": 0, "stop": "gtol", "gnorm": gnorm}
            return x.copy(), f, g.copy(), info
        x_new, f_new, g_new, lr, extra = self._step(counted, x, f, g)
        stop = extra.pop("stop", None)
        gnorm = float(np.max(np.abs(g_new)))
        if stop is None:
            if gnorm <= self.gtol:
                stop = "gtol"
            elif self.ftol > 0.0 and f - f_new <= self.ftol * max(abs(f), abs(f_new), 1.0):
                stop = "ftol"
        self.n_iter += 1
        self.nfev += counted.nfev
        self.ngev += counted.ngev
        if lr > 0.0:
            self._f_prev = f
        self._x_last, self._g_last = x_new.copy(), g_new.copy()
        info = {"lr": float(lr), "nfev": counted.nfev, "ngev": counted.ngev,
                "stop": stop, "gnorm": gnorm}
        info.update(extra)
        return x_new, f_new, g_new, info

    def _step(self, fun, x, f, g):  # pragma: no cover - abstract
        raise NotImplementedError

    def _search(self, fun, x, f, g, d, alpha0):
        if self.line_search == "wolfe":
            return wolfe_line_search(fun, x, f, g, d, alpha0=alpha0, c1=self.c1,
                                     c2=self.c2, max_evals=self.max_ls)
        return armijo_line_search(fun, x, f, g, d, alpha0=alpha0, c1=self.c1,
                                  max_evals=self.max_ls)


class _DirectionMethod(FullBatchOptimizer):
    """Direction + line search + memory update (CG and the quasi-Newton family)."""

    _cap_alpha0 = True   # Newton-like directions: the unit step is natural

    def _reset_state(self):
        self._has_memory = False

    def reset(self):
        self.n_restarts = 0
        self.n_skipped = 0
        super().reset()

    def _alpha0(self, d, dphi, f):
        if self._f_prev is not None and self._f_prev > f:
            # Nocedal & Wright (3.60), as scipy: the step that would repeat the
            # last iteration's decrease under a quadratic model.
            a = 2.02 * (f - self._f_prev) / dphi
        else:
            # First iteration: the same rule with f_prev = f + |g|/2 (scipy's
            # convention), i.e. a first step of length ~1 along -g.
            a = 1.01 / max(float(np.linalg.norm(d)), 1e-300)
        if not (math.isfinite(a) and a > 0.0):
            a = 1.0
        # Newton-like directions carry their own scale: never try beyond 1.
        return min(1.0, a) if self._cap_alpha0 else a

    def _curvature_pair(self, x, g, res):
        """``(s, r, s^T r)`` of the accepted step, or None (counted in
        ``n_skipped``) when ``s^T r <= 0`` would break positive definiteness."""
        s = res.x - x
        r = res.g - g
        sr = float(np.dot(s, r))
        if not (math.isfinite(sr) and sr > 0.0):
            self.n_skipped += 1
            return None
        return s, r, sr

    def _step(self, fun, x, f, g):
        restarted = False
        d, steepest = self._direction(x, g)
        dphi = float(np.dot(g, d))
        if not (math.isfinite(dphi) and dphi < 0.0):
            # Loss of descent: restart along steepest descent with fresh memory.
            self._reset_state()
            self.n_restarts += 1
            restarted = True
            d, steepest = -g, True
            dphi = -float(np.dot(g, g))
        res = self._search(fun, x, f, g, d, self._alpha0(d, dphi, f))
        if res.alpha == 0.0 and not steepest:
            self._reset_state()
            self.n_restarts += 1
            restarted = True
            d = -g
            dphi = -float(np.dot(g, g))
            res = self._search(fun, x, f, g, d, 1.01 / max(float(np.linalg.norm(d)), 1e-300))
            steepest = True
        if res.alpha == 0.0:
            return x.copy(), f, g.copy(), 0.0, {"stop": "line search failed",
                                                "restarted": restarted, "skipped": False}
        skipped = self._update(x, g, d, res, steepest)
        extra = {"restarted": restarted or (steepest and self.n_iter > 0),
                 "skipped": skipped, "ls_success": res.success}
        return res.x, res.f, res.g, res.alpha, extra


# --------------------------------------------------------------------------- CG

class ConjugateGradient(_DirectionMethod):
    """Nonlinear conjugate gradients with a strong-Wolfe line search.

    ``d = -g + beta d_prev`` with, for ``y = g - g_prev``:

    * ``"fletcher-reeves"``: ``g.g / g_prev.g_prev``
    * ``"polak-ribiere"``: ``g.y / g_prev.g_prev`` (the plain formula)
    * ``"polak-ribiere+"``: ``max(0, polak-ribiere)``
    * ``"hestenes-stiefel"``: ``g.y / d_prev.y``
    * ``"liu-storey"``: ``g.y / (-d_prev.g_prev)`` (the lecture's second formula)

    Restarts with ``d = -g`` when ``g.d >= 0`` (loss of descent) and every
    ``restart`` iterations (default: the number of parameters).

    ``restart="powell-beale"`` is MATLAB's ``traincgb`` (Powell 1977): a
    restart does not throw the direction away. When little orthogonality is
    left between successive gradients (Powell's test ``|g.g_prev| >= 0.2 g.g``)
    or after ``n`` iterations, the last direction becomes Beale's restart
    direction ``d_t`` (with ``y_t = g - g_prev``), and the following directions
    are Beale's three-term ``d = -g + beta d_prev + gamma d_t`` with
    ``gamma = g.y_t / d_t.y_t`` (``gamma = 0`` on the restart iteration itself).
    A direction that is not clearly downhill
    (``g.d >= -0.001 |g| |d|``, MATLAB's test) is replaced by ``-g`` and the
    restart direction is dropped. ``traincgb`` takes ``beta`` from
    Hestenes–Stiefel: pass ``beta="hestenes-stiefel"`` to follow it exactly.

    Parameters
    ----------
    beta : str, default "polak-ribiere"
    restart : int, "powell-beale" or None, default None
    c2 : float, default 0.1
        A small ``c2`` (a fairly exact search) keeps the directions conjugate.
    **kwargs
        ``line_search``, ``c1``, ``max_ls``, ``gtol``, ``ftol`` (see
        :class:`FullBatchOptimizer`).
    """

    _param_names = ("beta", "restart")
    _cap_alpha0 = False  # CG directions carry no natural scale

    def __init__(self, beta="polak-ribiere", restart=None, *, c2=0.1, **kwargs):
        if beta not in _CG_BETAS:
            raise ValueError(f"unknown beta {beta!r}; expected one of {_CG_BETAS}")
        self.beta = beta
        if isinstance(restart, str):
            if restart != "powell-beale":
                raise ValueError(f"restart must be a positive integer, 'powell-beale' or None, "
                                 f"got {restart!r}")
            self.restart = restart
        else:
            self.restart = _check_pos_int("restart", restart, allow_none=True)
        super().__init__(c2=c2, **kwargs)

    def _reset_state(self):
        super()._reset_state()
        self._d_prev = None
        self._g_prev = None
        self._since_restart = 0
        self._d_t = self._y_t = None     # Beale's restart direction and its y
        self._dty = 0.0

    def _beta(self, g):
        gp, dp = self._g_prev, self._d_prev
        if self.beta == "fletcher-reeves":
            return _ratio(np.dot(g, g), np.dot(gp, gp))
        y = g - gp
        gy = np.dot(g, y)
        if self.beta == "polak-ribiere":
            return _ratio(gy, np.dot(gp, gp))
        if self.beta == "polak-ribiere+":
            return max(0.0, _ratio(gy, np.dot(gp, gp)))
        if self.beta == "hestenes-stiefel":
            return _ratio(gy, np.dot(dp, y))
        return _ratio(gy, -np.dot(dp, gp))  # liu-storey

    def _steepest(self, g, restart):
        """``-g`` with the memory dropped; ``restart`` counts it as a restart."""
        if restart:
            self.n_restarts += 1
        self._since_restart = 0
        self._d_t = None
        return -g, True

    def _direction(self, x, g):
        if self._d_prev is None or self._d_prev.shape != g.shape:
            return self._steepest(g, self._d_prev is not None)
        if self.restart == "powell-beale":
            return self._beale_direction(x, g)
        if self._since_restart >= (self.restart or x.size):
            return self._steepest(g, True)
        beta = self._beta(g)
        if not math.isfinite(beta):
            return self._steepest(g, True)
        return beta * self._d_prev - g, False

    def _beale_direction(self, x, g):
        """Powell's restart test and Beale's three-term direction (``traincgb``)."""
        gg = float(np.dot(g, g))
        gamma = 0.0
        if (abs(float(np.dot(g, self._g_prev))) >= 0.2 * gg
                or self._since_restart >= x.size):
            # The last direction becomes the restart direction d_t.
            self._d_t, self._y_t = self._d_prev, g - self._g_prev
            self._dty = float(np.dot(self._d_t, self._y_t))
            self._since_restart = 1     # traincgb counts from t = epoch - 1
            self.n_restarts += 1
            self._beale_restarted = True
        elif self._d_t is not None and self._dty != 0.0:
            gamma = float(np.dot(g, self._y_t)) / self._dty
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            beta = self._beta(g)
            d = beta * self._d_prev - g
            if self._d_t is not None and gamma != 0.0:
                d += gamma * self._d_t
        norm_d = float(np.linalg.norm(d))
        if not (math.isfinite(beta) and math.isfinite(gamma) and math.isfinite(norm_d)
                and float(np.dot(g, d)) < -1e-3 * math.sqrt(gg) * norm_d):
            return self._steepest(g, True)
        return d, False

    def _step(self, fun, x, f, g):
        self._beale_restarted = False
        x_new, f_new, g_new, alpha, extra = super()._step(fun, x, f, g)
        extra["restarted"] = extra["restarted"] or self._beale_restarted
        return x_new, f_new, g_new, alpha, extra

    def _update(self, x, g, d, res, steepest):
        self._g_prev = g
        self._d_prev = d
        self._since_restart += 1
        return False


# --------------------------------------------------------------------------- quasi-Newton

class _DenseQuasiNewton(_DirectionMethod):
    """Dense inverse-Hessian approximation ``V`` with an O(n^2) rank-two update."""

    _param_names = ("max_params", "init_scale")

    def __init__(self, *, max_params=5000, init_scale=True, c2=0.9, **kwargs):
        self.max_params = _check_pos_int("max_params", max_params)
        if not isinstance(init_scale, (bool, np.bool_)):
            raise ValueError(f"init_scale must be True or False, got {init_scale!r}")
        self.init_scale = bool(init_scale)
        self._V = None
        super().__init__(c2=c2, **kwargs)

    def _reset_state(self):
        super()._reset_state()
        self._scaled = False
        if self._V is not None:
            self._V.fill(0.0)
            self._V.flat[:: self._V.shape[0] + 1] = 1.0

    def reset(self):
        self._V = None
        super().reset()

    def _direction(self, x, g):
        n = x.size
        if n > self.max_params:
            raise ValueError(
                f"{type(self).__name__} stores a dense {n} x {n} matrix "
                f"({n * n * 8 / 2**20:.0f} MiB) but max_params={self.max_params}; "
                "use LBFGS or raise max_params")
        if self._V is None or self._V.shape[0] != n:
            self._V = np.eye(n)
            self._scaled = False
            self._has_memory = False
        d = np.empty(n)
        _backend.current().symv(self._V, g, d)
        np.negative(d, out=d)
        return d, not self._has_memory

    def _update(self, x, g, d, res, steepest):
        pair = self._curvature_pair(x, g, res)
        if pair is None:
            return True
        s, r, sr = pair
        if not self._scaled and self.init_scale:
            # V0 = I rescaled by s'r / r'r (Nocedal & Wright 6.20) before the first update.
            self._V *= sr / float(np.dot(r, r))
            self._scaled = True
        self._rank2(self._V, s, r)
        self._has_memory = True
        return False


class BFGS(_DenseQuasiNewton):
    """BFGS on a dense inverse Hessian, the lecture's update

    ``V <- (I - rho s r^T) V (I - rho r s^T) + rho s s^T``, ``rho = 1 / s^T r``,
    ``s = w_t - w_{t-1}``, ``r = g_t - g_{t-1}``, applied in place in O(n^2)
    (``backend.bfgs_update``). Starts from ``V0 = I`` rescaled after the first
    step by ``s^T r / r^T r``; an update with ``s^T r <= 0`` is skipped
    (counted in ``n_skipped``).

    Parameters
    ----------
    max_params : int, default 5000
        Largest parameter count accepted (``V`` needs ``8 n^2`` bytes).
    init_scale : bool, default True
        Rescale ``V0 = I`` by ``s^T r / r^T r`` before the first update
        (Nocedal & Wright 6.20). ``False`` keeps ``V0 = I``, which with the
        default line search reproduces ``scipy.optimize.minimize(method="BFGS")``.
    c2 : float, default 0.9
    **kwargs
        See :class:`FullBatchOptimizer`.
    """

    @staticmethod
    def _rank2(V, s, r):
        _backend.current().bfgs_update(V, s, r)


class DFP(_DenseQuasiNewton):
    """DFP on a dense inverse Hessian:
    ``V <- V + s s^T / s^T r - (V r)(V r)^T / r^T V r``, in place in O(n^2)
    (``backend.dfp_update``). Same start, scaling and skipping as :class:`BFGS`.

    Parameters
    ----------
    max_params : int, default 5000
    init_scale : bool, default True
    c2 : float, default 0.1
        Tighter than BFGS's 0.9: DFP lacks BFGS's self-correction and degrades
        with inexact line searches (with exact ones both give the same iterates,
        Dixon's theorem); on a small tanh network 40 iterations reach a loss
        ~4x lower with c2=0.1 than with 0.9, at ~3.5 evaluations per iteration.
    **kwargs
        See :class:`FullBatchOptimizer`.
    """

    def __init__(self, *, max_params=5000, init_scale=True, c2=0.1, **kwargs):
        super().__init__(max_params=max_params, init_scale=init_scale, c2=c2, **kwargs)

    @staticmethod
    def _rank2(V, s, r):
        _backend.current().dfp_update(V, s, r)


class LBFGS(_DirectionMethod):
    """Limited-memory BFGS: the two-loop recursion over the last ``history``
    pairs ``(s, r)``, with initial scaling ``gamma = s^T r / r^T r`` from the
    newest pair. Pairs with ``s^T r <= 0`` are skipped (``n_skipped``).

    Parameters
    ----------
    history : int, default 10
    c2 : float, default 0.9
    **kwargs
        See :class:`FullBatchOptimizer`.
    """

    _param_names = ("history",)

    def __init__(self, history=10, *, c2=0.9, **kwargs):
        self.history = _check_pos_int("history", history)
        super().__init__(c2=c2, **kwargs)

    def _reset_state(self):
        super()._reset_state()
        self._S = None
        self._R = None
        self._rho = None
        self._k = 0  # pairs stored so far (ring buffer index = k % history)

    def _direction(self, x, g):
        if self._S is None or self._S.shape[1] != g.size or self._k == 0:
            return -g, True
        m = min(self._k, self.history)
        order = [(self._k - 1 - j) % self.history for j in range(m)]  # newest first
        q = g.copy()
        a = np.empty(m)
        for j, i in enumerate(order):
            a[j] = self._rho[i] * float(np.dot(self._S[i], q))
            q -= a[j] * self._R[i]
        newest = order[0]
        q *= 1.0 / (self._rho[newest] * float(np.dot(self._R[newest], self._R[newest])))
        for j in range(m - 1, -1, -1):
            i = order[j]
            b = self._rho[i] * float(np.dot(self._R[i], q))
            q += (a[j] - b) * self._S[i]
        np.negative(q, out=q)
        return q, False

    def _update(self, x, g, d, res, steepest):
        pair = self._curvature_pair(x, g, res)
        if pair is None:
            return True
        s, r, sr = pair
        n = x.size
        if self._S is None or self._S.shape[1] != n:
            self._S = np.empty((self.history, n))
            self._R = np.empty((self.history, n))
            self._rho = np.empty(self.history)
            self._k = 0
        i = self._k % self.history
        self._S[i] = s
        self._R[i] = r
        self._rho[i] = 1.0 / sr
        self._k += 1
        self._has_memory = True
        return False


# --------------------------------------------------------------------------- Newton

class Newton(FullBatchOptimizer):
    """Damped Newton's method with the exact Hessian of the objective.

    Solves ``(H + lambda I) p = -g`` by Cholesky, where ``lambda`` is a
    Levenberg–Marquardt damping adapted every iteration (it starts at
    ``damping``): when the factorisation fails (indefinite ``H``) it jumps to
    ``2 |lambda_min(H)|``, then grows tenfold on further failures, when ``p``
    is not a descent direction, or when the loss decrease is
    below a quarter of the quadratic model's prediction; divided by ten when it
    exceeds three quarters. A full step with a good ratio is accepted as is;
    otherwise a line search along ``p`` picks the step (``info["lr"]``).

    ``H`` comes from ``hess(x)`` when given (argument, or a ``hess`` attribute
    of ``fun``); else, with ``hessian="exact"``, from the network's exact
    Hessian (Pearlmutter's R-operator, batched Hessian-vector products; ``fit``
    attaches it to ``fun`` as ``fun.curvature``); else (``"fd"``, or a bare
    ``fun`` with no network behind it) from :func:`fd_hessian`: the central
    difference of the analytic gradient, ``2n`` gradient evaluations (counted
    in ``ngev``).

    Parameters
    ----------
    damping : float, default 1e-4
        Initial ``lambda`` (``>= 0``).
    hessian : {"exact", "fd"}, default "exact"
        Exact curvature when the objective provides it, or finite differences.
    max_params : int, default 3000
        Largest parameter count accepted (``H`` is ``n x n`` and costs ``2n``
        gradient evaluations per iteration).
    hess : callable, optional
        ``hess(x) -> (n, n)`` exact Hessian.
    c2 : float, default 0.9
    **kwargs
        See :class:`FullBatchOptimizer`.
    """

    _param_names = ("damping", "max_params", "hess")

    def __init__(self, damping=1e-4, hessian="exact", *, max_params=3000, hess=None, c2=0.9,
                 **kwargs):
        if hessian not in ("exact", "fd"):
            raise InvalidParameterError(f"hessian must be 'exact' or 'fd', got {hessian!r}")
        # Stored apart: ``hessian`` is also the method that returns the matrix.
        self._hessian_mode = hessian
        self.damping = _check_nonneg("damping", damping)
        self.max_params = _check_pos_int("max_params", max_params)
        if hess is not None and not callable(hess):
            raise InvalidParameterError(f"hess must be callable or None, got {type(hess).__name__}")
        self.hess = hess
        super().__init__(c2=c2, **kwargs)

    EXTEND_C2 = 0.5  # curvature constant when extending a shifted step
    shift = 2.0  # lambda = shift * |most negative eigenvalue| when H is indefinite

    def _reset_state(self):
        self.lam = self.damping

    def get_config(self):
        """Constructor arguments as a dict (``Newton(**get_config())`` clones)."""
        return {"hessian": self._hessian_mode, **super().get_config()}

    def hessian(self, fun, x):
        """The Hessian this optimizer uses at ``x``.

        Parameters
        ----------
        fun : callable
            ``fun(x) -> (loss, gradient)``; its ``hess(x)`` attribute (or the
            optimizer's own ``hess``) gives the exact Hessian, otherwise it is
            approximated by central differences of the gradient.
        x : ndarray, shape (n,)

        Returns
        -------
        ndarray, shape (n, n), float64

        Raises
        ------
        ValueError
            If ``hess`` returns the wrong shape or non-finite values.
        """
        hess = self.hess if self.hess is not None else getattr(fun, "hess", None)
        inner = fun.fun if isinstance(fun, _Counted) else fun
        if hess is None:
            hess = getattr(inner, "hess", None)
        curvature = getattr(inner, "curvature", None)
        if hess is None and self._hessian_mode == "exact" and curvature is not None:
            hess = curvature.hessian
        n = x.size
        if hess is None:
            return fd_hessian(fun, x)
        H = np.array(hess(x), dtype=np.float64, copy=True)
        if H.shape != (n, n):
            raise ValueError(f"hess returned shape {H.shape}, expected {(n, n)}")
        if not np.all(np.isfinite(H)):
            raise ValueError("hess returned non-finite values")
        H += H.T
        H *= 0.5
        return H

    def _step(self, fun, x, f, g):
        from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh

        n = x.size
        if n > self.max_params:
            raise ValueError(
                f"Newton builds a dense {n} x {n} Hessian per iteration but "
                f"max_params={self.max_params}; use NewtonCG (matrix-free), BFGS/LBFGS "
                "or raise max_params")
        H = self.hessian(fun, x)
        diag = H.diagonal().copy()
        scale = max(float(np.max(np.abs(diag))), 1e-12)
        lam = self.lam

        def bump(v):
            return max(10.0 * v, 1e-8 * scale)

        A = np.empty_like(H)
        lam_min = None
        for _ in range(40):
            np.copyto(A, H)
            A.flat[:: n + 1] += lam
            try:
                c = cho_factor(A, lower=True, check_finite=False)
            except LinAlgError:
                if lam_min is None:
                    # Indefinite: shift to `shift` times the most negative
                    # eigenvalue (one partial eigh, ~4 Choleskys) instead of
                    # blind tenfold increases from a tiny lambda.
                    lam_min = float(eigh(H, eigvals_only=True, subset_by_index=[0, 0],
                                         check_finite=False)[0])
                    lam = max(bump(lam) if lam_min >= 0 else 0.0,
                              -self.shift * lam_min + 1e-8 * scale)
                else:
                    lam = bump(lam)
                continue
            p = -cho_solve(c, g, check_finite=False)
            dphi = float(np.dot(g, p))
            if not (np.all(np.isfinite(p)) and dphi < 0.0):
                lam = bump(lam)
                continue
            pred = -(dphi + 0.5 * float(np.dot(p, H @ p)))
            x1 = x + p
            f1, g1 = fun(x1)
            ratio = (f - f1) / pred if (pred > 0.0 and math.isfinite(f1)) else -math.inf
            if ratio >= 0.25 and f1 < f:
                if ratio > 0.75:
                    lam = lam / 10.0
                self.lam = lam
                if (lam_min is not None and lam_min < 0 and ratio > 0.75
                        and self.line_search == "wolfe"):
                    # The shift made p short along the negative-curvature
                    # directions and the model was right: let the search extend it.
                    res = wolfe_line_search(fun, x, f, g, p, alpha0=1.0, c1=self.c1,
                                            c2=self.EXTEND_C2, max_evals=self.max_ls)
                    if res.alpha > 0.0 and res.f < f1:
                        return res.x, res.f, res.g, res.alpha, {"damping": lam, "ratio": ratio}
                return x1, f1, g1, 1.0, {"damping": lam, "ratio": ratio}
            lam = bump(lam)
            # The model over-promised: search along p (its first trial, the
            # full step, is served from fun's memo), and damp more next time.
            res = self._search(fun, x, f, g, p, 1.0)
            if res.alpha > 0.0:
                self.lam = lam
                return res.x, res.f, res.g, res.alpha, {"damping": lam, "ratio": ratio}
        self.lam = lam
        return x.copy(), f, g.copy(), 0.0, {"stop": "line search failed", "damping": lam}
