"""Full-batch optimizers on exact curvature: Levenberg–Marquardt, Bayesian
regularisation and truncated Newton (Hessian-free).

Design
------
* They use the :class:`~nncore.optim._full_batch.FullBatchOptimizer` protocol
  (``iterate(fun, x, f, g) -> (x_new, f_new, g_new, info)``, one call per
  epoch) and read the network's exact curvature from ``fun.curvature`` (an
  :class:`nncore.curvature.Curvature`, attached by ``fit``). A bare
  ``fun(x) -> (f, g)`` has no network behind it: these methods then raise a
  clear ``ValueError``.
* Levenberg–Marquardt and Bayesian regularisation work in MATLAB's units: the
  sum of squared residuals, i.e. ``N`` times nncore's mean losses (mse is
  ``1/(2N) sum e^2``, so ``JᵀJ`` and ``Jᵀe`` are ``N`` times its Gauss–Newton
  matrix and gradient). ``JᵀJ`` (the generalised Gauss–Newton matrix for the
  cross-entropy losses) is accumulated over row blocks of the Jacobian by
  SYRK, never the whole ``(N K, n)`` Jacobian; the damped system is solved by
  Cholesky through the backend (``cholesky_solve``: LAPACK in the compiled
  backend, SciPy in the reference).
* Nothing changes on bad input: curvature that is not finite raises
  ``ValueError`` before any step, and ``fit`` restores the last iterate.
* Per-iteration diagnostics go to ``info["log"]`` (``mu``, ``gamma``, ``alpha``,
  ``beta``, ``cg_iters``, ``damping``), which ``fit`` records in the history.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend as _backend
from ..errors import InvalidParameterError
from ._full_batch import FullBatchOptimizer, _check_nonneg, _check_pos_int

__all__ = ["LevenbergMarquardt", "BayesianRegularization", "NewtonCG", "curvature_of"]

_MU_MIN = 1e-20   # trainlm's floor for mu after a run of successes


def curvature_of(fun, who):
    """The :class:`~nncore.curvature.Curvature` behind ``fun`` (``fit`` attaches
    it), or a ``ValueError`` naming the optimizer ``who``."""
    inner = getattr(fun, "fun", fun)
    curv = getattr(fun, "curvature", None) or getattr(inner, "curvature", None)
    if curv is None:
        raise ValueError(f"{who} needs the network's exact curvature: train with "
                         f"net.fit(..., optimizer={who}(...)), or give fun a 'curvature' "
                         "attribute (nncore.curvature.Curvature)")
    return curv


def _check_dense(n, max_params, who):
    if n > max_params:
        raise ValueError(
            f"{who} solves a dense {n} x {n} system ({n * n * 8 / 2**20:.0f} MiB) but "
            f"max_params={max_params}; use NewtonCG (matrix-free) for a network this "
            "large, or raise max_params")


def _check_finite_matrix(A, what):
    if not np.all(np.isfinite(A)):
        raise ValueError(f"the {what} is not finite at the current parameters "
                         "(non-finite curvature); nothing was changed")


def _gauss_newton_system(curv, x, who, max_params):
    """``JᵀJ`` (generalised Gauss–Newton, in sum-of-squares units), checked."""
    _check_dense(curv.n, max_params, who)
    G = curv.gauss_newton_sum(x)
    _check_finite_matrix(G, "Gauss-Newton matrix JᵀJ")
    return G


def _solve_damped(G, diag, rhs):
    """``(G + diag(diag))⁻¹ rhs`` by Cholesky, or None if not positive definite."""
    A = G.copy()
    A.flat[:: A.shape[0] + 1] += diag
    x = np.empty_like(rhs)
    ok = _backend.current().cholesky_solve(A, rhs, x)
    return x if ok else None


class _MarquardtBase(FullBatchOptimizer):
    """Shared hyper-parameters and checks of LM and Bayesian regularisation."""

    _param_names = ("mu", "mu_dec", "mu_inc", "mu_max", "max_params")

    def __init__(self, mu, mu_dec, mu_inc, mu_max, max_params, **kwargs):
        self.mu = _check_nonneg("mu", mu)
        self.mu_dec = _check_nonneg("mu_dec", mu_dec)
        self.mu_inc = _check_nonneg("mu_inc", mu_inc)
        self.mu_max = _check_nonneg("mu_max", mu_max)
        if self.mu <= 0.0:
            raise InvalidParameterError(f"mu must be > 0, got {mu!r}")
        if not 0.0 < self.mu_dec < 1.0:
            raise InvalidParameterError(f"mu_dec must be in (0, 1), got {mu_dec!r}")
        if not self.mu_inc > 1.0:
            raise InvalidParameterError(f"mu_inc must be > 1, got {mu_inc!r}")
        if not self.mu_max > self.mu:
            raise InvalidParameterError(f"mu_max must exceed mu, got mu_max={mu_max!r}, mu={mu!r}")
        self.max_params = _check_pos_int("max_params", max_params)
        super().__init__(**kwargs)

    def _reset_state(self):
        self.mu_ = self.mu

    def _stop_mu(self, x, f, g, log):
        log["mu"] = self.mu_
        return x.copy(), f, g.copy(), 0.0, {"stop": "mu_max", "log": log}


class LevenbergMarquardt(_MarquardtBase):
    """Levenberg–Marquardt with MATLAB ``trainlm``'s rules.

    Each iteration solves, by Cholesky, ``(JᵀJ + R + mu I) dw = -(Jᵀe + r)``
    where ``J`` is the exact Jacobian of the outputs, ``e = out - d`` the raw
    residuals, and ``R``, ``r`` are the network's regulariser's Hessian and
    gradient in the same units (``2 N l2`` on the weights, ``N`` times the
    penalty gradient). If ``w + dw`` lowers the loss the step is taken and
    ``mu *= mu_dec``; otherwise ``mu *= mu_inc`` and the system is solved again,
    until ``mu > mu_max`` stops training (``stop="mu_max"``).

    Units: nncore's mse is ``1/(2N) sum e^2``; LM minimises ``1/2 sum e^2`` (plus
    ``N`` times the penalty), which is ``N`` times ``net.loss`` — the same
    minimiser and the same steps, with ``mu`` on MATLAB's scale (``trainlm``'s
    ``mu`` multiplies ``I`` beside ``JᵀJ`` of the summed squares). For the
    cross-entropy losses ``JᵀJ`` is the generalised Gauss–Newton matrix
    ``sum_n J_nᵀ H_n J_n`` (``H_n`` the Hessian of sample ``n``'s loss in its
    logits) and ``e = p - t``.

    Parameters
    ----------
    mu : float, default 1e-3
        Initial damping.
    mu_dec, mu_inc : float, default 0.1 and 10.0
        Factors applied to ``mu`` after a successful / unsuccessful trial.
    mu_max : float, default 1e10
        Training stops when ``mu`` exceeds it.
    max_params : int, default 3000
        Largest parameter count (a dense ``n x n`` system); beyond, use
        :class:`NewtonCG`.
    **kwargs
        ``gtol``, ``ftol`` (see :class:`FullBatchOptimizer`).

    Notes
    -----
    ``info["log"]["mu"]`` (hence ``history["mu"]``) is ``mu`` after the iteration.
    """

    def __init__(self, mu=1e-3, mu_dec=0.1, mu_inc=10.0, mu_max=1e10, *, max_params=3000,
                 **kwargs):
        super().__init__(mu, mu_dec, mu_inc, mu_max, max_params, **kwargs)

    def _step(self, fun, x, f, g):
        curv = curvature_of(fun, "LevenbergMarquardt")
        G = _gauss_newton_system(curv, x, "LevenbergMarquardt", self.max_params)
        N = curv.total_weight        # samples (sample weights: their sum)
        G.flat[:: G.shape[0] + 1] += (2.0 * N * curv.l2) * curv.weight_mask
        rhs = -N * g                      # -(Jᵀe + N grad penalty)
        mu = self.mu_
        while mu <= self.mu_max:
            dx = _solve_damped(G, mu, rhs)
            if dx is not None:
                x1 = x + dx
                f1, g1 = fun(x1)
                if math.isfinite(f1) and f1 < f:
                    self.mu_ = max(mu * self.mu_dec, _MU_MIN)
                    return x1, f1, g1, 1.0, {"log": {"mu": self.mu_}}
            mu *= self.mu_inc
        self.mu_ = mu
        return self._stop_mu(x, f, g, {})


class BayesianRegularization(_MarquardtBase):
    """Bayesian regularisation (MATLAB ``trainbr``; MacKay 1992, Foresee & Hagan 1997).

    Levenberg–Marquardt on ``F = beta E_D + alpha E_W`` with ``E_D = sum e^2``
    (the summed squared errors, ``2 N`` times nncore's mse) and ``E_W = sum w^2``
    over all parameters (weights and biases, as ``trainbr``). Each iteration
    solves ``(beta JᵀJ + (mu + alpha) I) dw = -(beta Jᵀe + alpha w)``, takes the step
    if ``F`` decreases (then ``mu *= mu_dec``, else ``mu *= mu_inc`` and retries),
    and then re-estimates, from the Gauss–Newton Hessian ``H = 2 (beta JᵀJ + alpha I)``,

    * ``gamma = n - 2 alpha tr(H⁻¹)`` (the effective number of parameters),
    * ``alpha = gamma / (2 E_W)``, ``beta = (N K - gamma) / (2 E_D)``.

    Starts, as ``trainbr``, from ``gamma = n``, ``beta = (N K - n) / (2 E_D)``
    (1 if not positive), ``alpha = n / (2 E_W)``. For ``"mse"`` networks
    without a regulariser (the prior replaces it). ``history["loss"]`` is the
    plain mse; ``"gamma"``, ``"alpha"``, ``"beta"``, ``"mu"`` are logged.

    Parameters
    ----------
    mu, mu_dec, mu_inc, mu_max, max_params
        As :class:`LevenbergMarquardt` (MATLAB's defaults: 0.005, 0.1, 10,
        1e10; ``mu=1e-3`` here, as the contract states).
    **kwargs
        ``gtol`` (default 0: the data gradient need not vanish at the
        regularised optimum), ``ftol`` (default 0: the data loss may rise).
    """

    def __init__(self, mu=1e-3, mu_dec=0.1, mu_inc=10.0, mu_max=1e10, *, max_params=3000,
                 gtol=0.0, ftol=0.0, **kwargs):
        super().__init__(mu, mu_dec, mu_inc, mu_max, max_params, gtol=gtol, ftol=ftol,
                         **kwargs)

    def _reset_state(self):
        super()._reset_state()
        self.alpha_ = self.beta_ = self.gamma_ = None

    def _check_problem(self, curv):
        if curv.loss_name != "mse":
            raise ValueError("BayesianRegularization needs loss='mse' (trainbr's sum of "
                             f"squared errors), got {curv.loss_name!r}")
        if curv.l1 != 0.0 or curv.l2 != 0.0:
            raise ValueError("BayesianRegularization chooses its own weight penalty; build "
                             "the network with regularizer=None")

    def _start(self, curv, x, sse):
        n, n_err = x.size, curv.total_weight * curv.n_out
        self.gamma_ = float(n)
        self.beta_ = (n_err - n) / (2.0 * sse) if sse > 0 else 1.0
        if self.beta_ <= 0.0:
            self.beta_ = 1.0
        ssx = float(np.dot(x, x))
        self.alpha_ = n / (2.0 * ssx) if ssx > 0 else 1.0

    def _step(self, fun, x, f, g):
        curv = curvature_of(fun, "BayesianRegularization")
        self._check_problem(curv)
        JJ = _gauss_newton_system(curv, x, "BayesianRegularization", self.max_params)
        N = curv.total_weight        # samples (sample weights: their sum)
        sse = 2.0 * N * f                 # E_D = sum e^2 = 2 N mse
        if self.alpha_ is None:
            self._start(curv, x, sse)
        alpha, beta = self.alpha_, self.beta_
        perf = beta * sse + alpha * float(np.dot(x, x))
        G = beta * JJ
        rhs = -(beta * N * g + alpha * x)  # Jᵀe = N grad(mse)
        mu = self.mu_
        while mu <= self.mu_max:
            dx = _solve_damped(G, mu + alpha, rhs)
            if dx is not None:
                x1 = x + dx
                f1, g1 = fun(x1)
                perf1 = beta * 2.0 * N * f1 + alpha * float(np.dot(x1, x1))
                if math.isfinite(perf1) and perf1 < perf:
                    self.mu_ = max(mu * self.mu_dec, _MU_MIN)
                    self._update_hyper(curv, G, x1, 2.0 * N * f1)
                    return x1, f1, g1, 1.0, {"log": self._log()}
            mu *= self.mu_inc
        self.mu_ = mu
        return self._stop_mu(x, f, g, self._log())

    def _update_hyper(self, curv, G, x1, sse):
        """MacKay's re-estimation from the Gauss–Newton Hessian of the last iterate."""
        from scipy.linalg import cho_factor, cho_solve

        A = G.copy()
        A.flat[:: A.shape[0] + 1] += self.alpha_
        c = cho_factor(A, lower=True, check_finite=False)
        trace_inv = float(np.trace(cho_solve(c, np.eye(A.shape[0]), check_finite=False)))
        n, n_err = x1.size, curv.total_weight * curv.n_out
        self.gamma_ = n - self.alpha_ * trace_inv
        ssx = float(np.dot(x1, x1))
        self.alpha_ = self.gamma_ / (2.0 * ssx) if ssx > 0 else 1.0
        self.beta_ = (n_err - self.gamma_) / (2.0 * sse) if sse > 0 else 1.0

    def _log(self):
        return {"mu": self.mu_, "gamma": self.gamma_, "alpha": self.alpha_, "beta": self.beta_}


_CURVATURES = ("gauss-newton", "hessian")


class NewtonCG(FullBatchOptimizer):
    """Truncated Newton / Hessian-free optimisation (Martens 2010).

    Each iteration minimises the damped quadratic model
    ``q(p) = gᵀp + ½ pᵀ(B + lambda I)p`` by linear conjugate gradients, where
    ``B v`` is an exact curvature-vector product of the network loss (the
    R-operator: ``"hessian"``, or the generalised Gauss–Newton matrix
    ``"gauss-newton"``, positive semi-definite); no ``n x n`` matrix is formed,
    so it runs where :class:`Newton` and :class:`LevenbergMarquardt` cannot.

    * CG starts from the previous solution times ``decay`` (Martens §4.5) and
      stops after ``max_cg`` iterations, at negative curvature
      (``dᵀ(B + lambda I)d <= 0``, possible with ``"hessian"``), or by Martens'
      progress rule: at iteration ``i > k``, ``k = max(10, i / 10)``, stop when
      ``q_i < 0`` and ``(q_i - q_{i-k}) / q_i < k * cg_tol``.
    * Damping by the reduction ratio ``rho = (f(x + p) - f(x)) / q0(p)`` (``q0``
      the undamped model): ``lambda *= 3/2`` when ``rho < 1/4``, ``*= 2/3`` when
      ``rho > 3/4`` (Levenberg–Marquardt heuristic, Martens §4.1).
    * A step that does not lower the loss is backtracked by the line search
      along ``p``; if that fails too, ``lambda`` grows tenfold and CG runs again
      (at most ``max_retries`` times).

    Parameters
    ----------
    curvature : {"gauss-newton", "hessian"}, default "gauss-newton"
    max_cg : int, default 50
        CG iterations per Newton iteration (curvature products).
    damping : float, default 1.0
        Initial ``lambda``.
    cg_tol : float, default 5e-4
        Martens' progress tolerance.
    decay : float, default 0.95
        Warm start of CG from ``decay`` times the previous solution.
    max_retries : int, default 10
    **kwargs
        ``line_search``, ``c1``, ``max_ls``, ``gtol``, ``ftol`` (see
        :class:`FullBatchOptimizer`).
    """

    _param_names = ("curvature", "max_cg", "damping", "cg_tol", "decay", "max_retries")

    def __init__(self, curvature="gauss-newton", max_cg=50, *, damping=1.0, cg_tol=5e-4,
                 decay=0.95, max_retries=10, line_search="armijo", **kwargs):
        if curvature not in _CURVATURES:
            raise InvalidParameterError(f"curvature must be one of {_CURVATURES}, got {curvature!r}")
        self.curvature = curvature
        self.max_cg = _check_pos_int("max_cg", max_cg)
        self.damping = _check_nonneg("damping", damping)
        self.cg_tol = _check_nonneg("cg_tol", cg_tol)
        self.decay = _check_nonneg("decay", decay)
        if self.decay > 1.0:
            raise InvalidParameterError(f"decay must be in [0, 1], got {decay!r}")
        self.max_retries = _check_pos_int("max_retries", max_retries)
        super().__init__(line_search=line_search, **kwargs)

    def _reset_state(self):
        self.lam = self.damping
        self._p_prev = None

    def _cg(self, Bv, g, lam):
        """Approximate minimiser of ``gᵀp + ½ pᵀ(B + lam I)p``; returns (p, iterations)."""
        n = g.size
        p = np.zeros(n)
        r = g.copy()                                    # r = A p + g
        if self._p_prev is not None and self._p_prev.shape == g.shape and self.decay > 0:
            p0 = self.decay * self._p_prev
            r0 = Bv(p0) + lam * p0 + g
            if 0.5 * float(np.dot(p0, r0 + g)) < 0.0:   # the warm start helps
                p, r = p0, r0
        d = -r
        rr = float(np.dot(r, r))
        phis = [0.5 * float(np.dot(p, r + g))]
        gnorm = math.sqrt(float(np.dot(g, g)))
        i = 0
        for i in range(1, self.max_cg + 1):
            Ad = Bv(d) + lam * d
            dAd = float(np.dot(d, Ad))
            if not math.isfinite(dAd):
                raise ValueError("the curvature product is not finite (non-finite curvature)")
            if dAd <= 0.0:                              # negative curvature: stop here
                if i == 1 and not np.any(p):
                    p = d * (gnorm / max(math.sqrt(float(np.dot(d, d))), 1e-300))
                break
            a = rr / dAd
            p = p + a * d
            r = r + a * Ad
            rr_new = float(np.dot(r, r))
            phis.append(0.5 * float(np.dot(p, r + g)))
            k = max(10, i // 10)
            if i > k and phis[-1] < 0.0 and (phis[-1] - phis[-1 - k]) / phis[-1] < k * self.cg_tol:
                break
            if math.sqrt(rr_new) <= 1e-12 * gnorm:
                break
            d = -r + (rr_new / rr) * d
            rr = rr_new
        return p, i

    def _step(self, fun, x, f, g):
        curv = curvature_of(fun, "NewtonCG")
        product = curv.hvp if self.curvature == "hessian" else curv.gnvp
        Bv = lambda v: product(x, v)   # noqa: E731 - the curvature at this x
        lam = self.lam
        cg_total = 0
        for _ in range(self.max_retries):
            p, iters = self._cg(Bv, g, lam)
            cg_total += iters
            gp = float(np.dot(g, p))
            if not (math.isfinite(gp) and gp < 0.0):
                lam = max(10.0 * lam, 1e-8)
                continue
            q0 = gp + 0.5 * float(np.dot(p, Bv(p)))
            x1 = x + p
            f1, g1 = fun(x1)
            rho = (f1 - f) / q0 if q0 < 0.0 and math.isfinite(f1) else -math.inf
            if rho < 0.25:
                lam *= 1.5
            elif rho > 0.75:
                lam *= 2.0 / 3.0
            log = {"damping": lam, "cg_iters": cg_total, "rho": rho}
            if math.isfinite(f1) and f1 < f:
                self.lam, self._p_prev = lam, p
                return x1, f1, g1, 1.0, {"log": log}
            res = self._search(fun, x, f, g, p, 1.0)
            if res.alpha > 0.0:
                self.lam, self._p_prev = lam, res.alpha * p
                return res.x, res.f, res.g, res.alpha, {"log": log}
            lam = max(10.0 * lam, 1e-8)
            self._p_prev = None
        self.lam = lam
        return x.copy(), f, g.copy(), 0.0, {"stop": "line search failed",
                                            "log": {"damping": lam, "cg_iters": cg_total}}
