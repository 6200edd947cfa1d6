"""Line searches for the full-batch optimizers.

Design
------
* Both searches work on ``phi(alpha) = f(x + alpha d)`` built from one callable
  ``fun(x) -> (f, g)`` that returns the loss and its gradient together (the
  network computes both in one forward/backward pass), so every trial point
  costs one function *and* one gradient evaluation: ``nfev == ngev`` here.
* The strong-Wolfe search is Nocedal & Wright's Algorithm 3.5 (bracketing)
  with Algorithm 3.6 (zoom). Trial steps come from cubic interpolation of the
  two bracket ends (values and slopes), safeguarded to stay at least 10% of the
  bracket away from its ends, falling back to a quadratic and then to
  bisection; extrapolation is clamped to ``[alpha + 1.1 D, alpha + 4 D]``
  (``D`` = last increase), as in Moré–Thuente.
* Near a minimum the loss stops resolving ``f0 + c1 alpha phi'(0)`` (rounding);
  a trial whose loss is within ``100 eps |f0|`` of ``f0`` then passes
  sufficient decrease when its slope does, ``phi'(alpha) <= (1 - 2 c1)
  |phi'(0)|`` (Hager & Zhang's approximate Wolfe conditions), and such losses
  are not ordered against each other.
* A non-finite loss at a trial point is treated as ``+inf`` (the step is too
  long), so the search backs off instead of propagating NaN.
* When the evaluation budget runs out the search returns the best point it has
  seen that satisfies sufficient decrease (``success=False`` but ``alpha > 0``);
  if there is none it returns ``alpha = 0`` and the starting point, so a caller
  never moves to a worse point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_EPS = float(np.finfo(np.float64).eps)

__all__ = ["LineSearchResult", "wolfe_line_search", "armijo_line_search"]


@dataclass
class LineSearchResult:
    """Outcome of a line search along ``d`` from ``x0``.

    Attributes
    ----------
    alpha : float
        Accepted step length (0 when no acceptable point was found).
    f : float
        Loss at ``x``.
    g : ndarray
        Gradient at ``x``.
    x : ndarray
        ``x0 + alpha * d`` (``x0`` itself when ``alpha == 0``).
    nfev, ngev : int
        Function and gradient evaluations spent.
    success : bool
        True when the requested conditions (strong Wolfe, or Armijo) hold.
    message : str
        Why the search stopped.
    """

    alpha: float
    f: float
    g: np.ndarray
    x: np.ndarray
    nfev: int
    ngev: int
    success: bool
    message: str = ""


def _check_common(f0, g0, d, c1, max_evals, alpha0):
    if not (0.0 < c1 < 1.0):
        raise ValueError(f"c1 must be in (0, 1), got {c1!r}")
    if isinstance(max_evals, bool) or not isinstance(max_evals, (int, np.integer)) or max_evals < 1:
        raise ValueError(f"max_evals must be a positive integer, got {max_evals!r}")
    if not (math.isfinite(alpha0) and alpha0 > 0.0):
        raise ValueError(f"alpha0 must be a positive finite number, got {alpha0!r}")
    if not math.isfinite(f0):
        raise ValueError(f"the loss at the starting point is not finite ({f0!r})")
    dphi0 = float(np.dot(g0, d))
    if not math.isfinite(dphi0):
        raise ValueError("the directional derivative g0.d is not finite")
    if dphi0 >= 0.0:
        raise ValueError(f"d is not a descent direction (g0.d = {dphi0:.3e} >= 0)")
    return dphi0


class _Phi:
    """phi(alpha) with evaluation counting; keeps every trial's (x, f, g)."""

    def __init__(self, fun, x0, d):
        self.fun, self.x0, self.d = fun, x0, d
        self.n = 0

    def __call__(self, alpha):
        x = self.x0 + alpha * self.d
        f, g = self.fun(x)
        self.n += 1
        f = float(f)
        g = np.asarray(g, dtype=np.float64)
        if not math.isfinite(f) or not np.all(np.isfinite(g)):
            return x, math.inf, g, math.nan
        return x, f, g, float(np.dot(g, self.d))


def _cubicmin(a, fa, fpa, b, fb, fpb):
    """Minimiser of the cubic through (a, fa, fpa) and (b, fb, fpb), or None."""
    if not (math.isfinite(fa) and math.isfinite(fb) and math.isfinite(fpa) and math.isfinite(fpb)):
        return None
    if a == b:
        return None
    d1 = fpa + fpb - 3.0 * (fa - fb) / (a - b)
    rad = d1 * d1 - fpa * fpb
    if rad < 0.0:
        return None
    d2 = math.copysign(math.sqrt(rad), b - a)
    den = fpb - fpa + 2.0 * d2
    if den == 0.0:
        return None
    t = b - (b - a) * (fpb + d2 - d1) / den
    return t if math.isfinite(t) else None


def _quadmin(a, fa, fpa, b, fb):
    """Minimiser of the quadratic through (a, fa, fpa) and (b, fb), or None."""
    if not (math.isfinite(fa) and math.isfinite(fb) and math.isfinite(fpa)):
        return None
    db = b - a
    den = 2.0 * (fb - fa - fpa * db)
    if den <= 0.0:
        return None
    t = a - fpa * db * db / den
    return t if math.isfinite(t) else None


def wolfe_line_search(fun, x0, f0, g0, d, *, alpha0=1.0, c1=1e-4, c2=0.9,
                      max_evals=20, alpha_max=1e10):
    """Strong-Wolfe line search (Nocedal & Wright, Algorithms 3.5 and 3.6).

    Finds ``alpha`` with ``phi(alpha) <= phi(0) + c1 alpha phi'(0)`` and
    ``|phi'(alpha)| <= c2 |phi'(0)|``, where ``phi(alpha) = f(x0 + alpha d)``.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f, g)``: loss and gradient at a float64 1-D array.
    x0 : ndarray
        Starting point (float64, 1-D). Not modified.
    f0 : float
        ``fun(x0)[0]``.
    g0 : ndarray
        ``fun(x0)[1]``.
    d : ndarray
        Search direction; must satisfy ``g0 . d < 0``.
    alpha0 : float, default 1.0
        First trial step.
    c1, c2 : float
        Sufficient-decrease and curvature constants, ``0 < c1 < c2 < 1``.
    max_evals : int, default 20
        Maximum number of evaluations of ``fun``.
    alpha_max : float, default 1e10
        Largest step tried.

    Returns
    -------
    LineSearchResult
    """
    dphi0 = _check_common(f0, g0, d, c1, max_evals, alpha0)
    if not (c1 < c2 < 1.0):
        raise ValueError(f"c2 must satisfy c1 < c2 < 1, got c1={c1!r}, c2={c2!r}")
    search = _WolfeSearch(_Phi(fun, x0, d), float(f0), g0, x0, dphi0, c1, c2, max_evals)
    return search.bracket(min(float(alpha0), alpha_max), alpha_max)


class _WolfeSearch:
    """State of one strong-Wolfe search: the tests, the best point so far and the
    two phases (bracketing, then zoom). Points are tuples ``(alpha, f, dphi, x, g)``."""

    def __init__(self, phi, f0, g0, x0, dphi0, c1, c2, max_evals):
        self.phi, self.f0, self.dphi0 = phi, f0, dphi0
        self.c1, self.c2, self.max_evals = c1, c2, max_evals
        # Near a minimum the loss stops resolving the decrease (rounding), so a point
        # whose loss equals f0 to within flat_tol also passes sufficient decrease if
        # its slope does: phi'(a) <= (1 - 2 c1) |phi'(0)|, Hager & Zhang's
        # "approximate Wolfe" test (equivalent to Armijo on a quadratic).
        self.flat_tol = 100.0 * _EPS * abs(f0)
        # Best point with sufficient decrease seen so far: fallback on failure.
        self.best = (0.0, f0, g0, x0)
        self.origin = (0.0, f0, dphi0, x0, g0)

    def curv(self, dpa):
        return abs(dpa) <= -self.c2 * self.dphi0

    def armijo(self, a, fa, dpa):
        if fa <= self.f0 + self.c1 * a * self.dphi0:
            return True
        return fa <= self.f0 + self.flat_tol and dpa <= -(1.0 - 2.0 * self.c1) * self.dphi0

    def worse(self, fa, fref):
        # Two losses both within rounding of f0 cannot be ordered: let slopes decide.
        if abs(fa - self.f0) <= self.flat_tol and abs(fref - self.f0) <= self.flat_tol:
            return False
        return fa >= fref

    def evaluate(self, a):
        """The point at step ``a``, remembered if it is the best so far."""
        xa, fa, ga, dpa = self.phi(a)
        if a > 0.0 and fa <= self.f0 + self.c1 * a * self.dphi0 and fa < self.best[1]:
            self.best = (a, fa, ga, xa)
        return (a, fa, dpa, xa, ga)

    def result(self, point, ok, msg):
        a, fa, _, xa, ga = point
        return LineSearchResult(a, fa, ga, xa, self.phi.n, self.phi.n, ok, msg)

    def fail(self, msg):
        a, fa, ga, xa = self.best
        return LineSearchResult(a, fa, ga, xa, self.phi.n, self.phi.n, False, msg)

    def bracket(self, a, alpha_max):
        """Nocedal & Wright's Algorithm 3.5: grow the step until a bracket is found."""
        prev, first = self.origin, True
        while self.phi.n < self.max_evals:
            cur = self.evaluate(a)
            _, fa, dpa, _, _ = cur
            if not self.armijo(a, fa, dpa) or (not first and self.worse(fa, prev[1])):
                return self.zoom(prev, cur)
            if self.curv(dpa):
                return self.result(cur, True, "strong Wolfe conditions hold")
            if dpa >= 0.0:
                return self.zoom(cur, prev)
            if a >= alpha_max:
                return self.fail("reached alpha_max")
            prev, a, first = cur, _extrapolate(prev, cur, alpha_max), False
        return self.fail("evaluation budget exhausted while bracketing")

    def zoom(self, lo, hi):
        """Algorithm 3.6. ``lo``: the bracket end satisfying sufficient decrease with
        the lowest loss; ``hi``: the other end."""
        while self.phi.n < self.max_evals:
            a_lo, f_lo, a_hi = lo[0], lo[1], hi[0]
            width = a_hi - a_lo
            if abs(width) <= 1e-12 * max(abs(a_lo), abs(a_hi)) or abs(width) < 1e-300:
                return self.fail("bracket collapsed")
            trial = self.evaluate(_zoom_step(lo, hi))
            t, ft, dpt, _, _ = trial
            if not self.armijo(t, ft, dpt) or self.worse(ft, f_lo):
                hi = trial
            else:
                if self.curv(dpt):
                    return self.result(trial, True, "strong Wolfe conditions hold")
                if dpt * (a_hi - a_lo) >= 0.0:
                    hi = lo
                lo = trial
        return self.fail("evaluation budget exhausted in zoom")


def _zoom_step(lo, hi):
    """Cubic interpolation of the bracket, else quadratic, else bisection; kept
    10 % of the width away from either end."""
    a_lo, f_lo, dp_lo = lo[0], lo[1], lo[2]
    a_hi, f_hi, dp_hi = hi[0], hi[1], hi[2]
    lo_end, hi_end = min(a_lo, a_hi), max(a_lo, a_hi)
    margin = 0.1 * (hi_end - lo_end)
    t = _cubicmin(a_lo, f_lo, dp_lo, a_hi, f_hi, dp_hi)
    if t is None or not (lo_end + margin <= t <= hi_end - margin):
        t = _quadmin(a_lo, f_lo, dp_lo, a_hi, f_hi)
        if t is None or not (lo_end + margin <= t <= hi_end - margin):
            t = a_lo + 0.5 * (a_hi - a_lo)
    return t


def _extrapolate(prev, cur, alpha_max):
    """Next bracketing step: cubic step clamped to [a + 1.1 D, a + 4 D]."""
    a, fa, dpa = cur[0], cur[1], cur[2]
    step = a - prev[0]
    lo_t, hi_t = a + 1.1 * step, a + 4.0 * step
    t = _cubicmin(prev[0], prev[1], prev[2], a, fa, dpa)
    if t is None or t < lo_t:
        t = lo_t if t is not None else a + 2.0 * step
    return min(t, hi_t, alpha_max)


def armijo_line_search(fun, x0, f0, g0, d, *, alpha0=1.0, c1=1e-4, rho=0.5,
                       max_evals=20):
    """Backtracking line search: ``alpha = alpha0, rho alpha0, rho^2 alpha0, ...``

    until ``f(x0 + alpha d) <= f0 + c1 alpha g0.d`` (Armijo's sufficient
    decrease).

    Parameters
    ----------
    fun, x0, f0, g0, d, alpha0, c1, max_evals
        As for :func:`wolfe_line_search`.
    rho : float, default 0.5
        Shrink factor, ``0 < rho < 1``.

    Returns
    -------
    LineSearchResult
    """
    dphi0 = _check_common(f0, g0, d, c1, max_evals, alpha0)
    if not (0.0 < rho < 1.0):
        raise ValueError(f"rho must be in (0, 1), got {rho!r}")
    phi = _Phi(fun, x0, d)
    f0 = float(f0)
    a = float(alpha0)
    while phi.n < max_evals:
        xa, fa, ga, _ = phi(a)
        if fa <= f0 + c1 * a * dphi0:
            return LineSearchResult(a, fa, ga, xa, phi.n, phi.n, True,
                                    "Armijo condition holds")
        a *= rho
        if a == 0.0:
            break
    return LineSearchResult(0.0, f0, g0, x0, phi.n, phi.n, False,
                            "no sufficient decrease within the evaluation budget")
