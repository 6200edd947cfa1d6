"""Exact curvature of ``net.loss`` over chunked (Dask) data, for the full-batch
second-order optimizers (Newton, NewtonCG, Levenberg–Marquardt, Bayesian
regularisation) when ``fit`` gets Dask arrays.

Design
------
* The same interface as :class:`nncore.curvature.Curvature` where the
  optimizers read it (``n``, ``N``, ``total_weight``, ``n_out``, ``loss_name``,
  ``l1``, ``l2``, ``weight_mask``, ``hvp``, ``gnvp``, ``hessian``, ``gauss_newton_sum``).
* Each chunk builds a :class:`~nncore.curvature.Curvature` of its own rows on
  the worker (from a network without regulariser, so the part is the data
  term only; with the chunk's row weights) and sends back one ``(m, n)``
  product or one ``(n, n)`` matrix: products and Hessians weighted by
  ``n_c / N`` (weighted: the chunk's weight sum over the set's), ``JᵀJ`` as
  it is (a sum over samples, as ``gauss_newton_sum``). The parts
  are summed in a tree on the workers; the penalty's Hessian (``2 l2`` on the
  weights) is added once, on the client. Equal to the in-memory curvature to
  float64 rounding.
* Bytes: the point ``x`` (and the directions ``V``) go out once per call, to
  every worker; ``n_chunks`` partial results of ``m n`` (products) or ``n²``
  (matrices) float64 come back through the tree.
"""

from __future__ import annotations

import numpy as np

from . import _dask
from .curvature import Curvature, penalty_terms

__all__ = ["ChunkedCurvature"]


def _block_curvature(spec, x, V, xb, yb, wb, ctx, method, mean):
    """The chunk's part of ``Curvature.<method>(x[, V])`` over the set (data term
    only): its own mean-loss curvature times its share of the (weighted) mean, or
    (``mean`` False: ``gauss_newton_sum``) its plain sum."""
    net = _dask.worker_net(spec)
    Xa, T, w = _dask.block_arrays(net, xb, yb, wb, ctx)
    curvature = Curvature(net, Xa, T, sample_weight=w)
    with np.errstate(over="ignore", invalid="ignore"):
        part = getattr(curvature, method)(x) if V is None else getattr(curvature, method)(x, V)
    share = 1.0 if not mean else (ctx.share if w is None else curvature.total_weight / ctx.total)
    if share != 1.0:
        part *= share
    return (part,)


class ChunkedCurvature:
    """Exact curvature of ``net.loss`` on a :class:`nncore._dask.ChunkedSet`.

    Parameters
    ----------
    net : Network
        Architecture, loss and regulariser (its parameters are not used).
    data : ChunkedSet
    traffic : dict, optional
        Counters ``"params_out"`` / ``"partials_back"`` (bytes) to add to.
    """

    def __init__(self, net, data, traffic=None):
        self.data = data
        self.n = int(net.n_params)
        self.n_out = int(net.n_out)
        self.loss_name = net.loss_name
        self.N = int(data.shape[0])
        self.total_weight = data.total_weight   # LM's sample count (weights: their sum)
        self.l1, self.l2, self.weight_mask = penalty_terms(net)
        self.traffic = traffic if traffic is not None else {}

    def _sum(self, method, x, V=None, mean=True):
        """Tree sum over the chunks of each chunk's ``method`` at ``x`` (and ``V``),
        each computed on the worker holding its chunk (:func:`nncore._dask.chunk_sum`)."""
        data = self.data
        x = np.ascontiguousarray(x, dtype=np.float64)
        (total,), sent = _dask.chunk_sum(data, _block_curvature, [x, V], [method, mean])
        self.traffic["params_out"] = self.traffic.get("params_out", 0) + sent
        self.traffic["partials_back"] = (self.traffic.get("partials_back", 0)
                                         + data.n_chunks * total.nbytes)
        return total

    def _product(self, method, x, V):
        V = np.asarray(V, dtype=np.float64)
        single = V.ndim == 1
        V2 = np.ascontiguousarray(np.atleast_2d(V))
        if V2.ndim != 2 or V2.shape[1] != self.n or V2.shape[0] == 0:
            raise ValueError(f"v must have shape ({self.n},) or (m, {self.n}), got {V.shape}")
        if not np.all(np.isfinite(V2)):
            raise ValueError("v contains NaN or infinite values")
        result = self._sum(method, x, V2)
        if self.l2 != 0.0:
            result += (2.0 * self.l2) * (V2 * self.weight_mask)
        return result[0] if single else result

    def hvp(self, x, V):
        """Exact Hessian-vector products ``H(x) v`` (see ``Curvature.hvp``)."""
        return self._product("hvp", x, V)

    def gnvp(self, x, V):
        """Generalised Gauss–Newton products (see ``Curvature.gnvp``)."""
        return self._product("gnvp", x, V)

    def hessian(self, x):
        """The exact ``(n, n)`` Hessian of ``net.loss`` (see ``Curvature.hessian``)."""
        H = self._sum("hessian", x)
        if self.l2 != 0.0:
            H.flat[:: self.n + 1] += (2.0 * self.l2) * self.weight_mask
        if not np.all(np.isfinite(H)):
            raise ValueError("the Hessian is not finite at these parameters")
        return H

    def gauss_newton_sum(self, x):
        """``sum_n J_nᵀ H_n J_n`` over all samples (see ``Curvature.gauss_newton_sum``)."""
        return self._sum("gauss_newton_sum", x, mean=False)
