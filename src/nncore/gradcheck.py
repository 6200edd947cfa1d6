"""Finite-difference check of backpropagation: ``nc.gradcheck(net, X, y)``.

Design: the check runs on a float64 copy of the network (the caller's network
is never modified), with dropout off (``loss``/``loss_and_gradient`` are
deterministic), comparing the backprop gradient with the central difference
``(J(w + eps) - J(w - eps)) / (2 eps)`` of the full loss (data + penalty).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import integer, real
from .network import Network

__all__ = ["gradcheck", "GradcheckResult"]

# Denominator floor of the relative error: gradients smaller than this are
# compared absolutely (central-difference noise is ~1e-10 at eps = 1e-6).
REL_FLOOR = 1e-8


@dataclass
class GradcheckResult:
    """Outcome of :func:`gradcheck`.

    Attributes
    ----------
    max_abs_error : float
        ``max |backprop - numeric|`` over the checked parameters.
    max_rel_error : float
        ``max |backprop - numeric| / max(|backprop|, |numeric|, 1e-8)``.
    worst : dict
        The parameter with the largest relative error: ``{"index": flat index,
        "layer": layer position in net.layers, "name": "W" or "b",
        "position": index tuple inside that array}``.
    indices : ndarray
        Flat indices of the checked parameters.
    analytic, numeric, abs_error, rel_error : ndarray
        Per checked parameter.
    loss : float
        Loss at the unperturbed parameters.
    eps : float
    """

    max_abs_error: float
    max_rel_error: float
    worst: dict
    indices: np.ndarray = field(repr=False)
    analytic: np.ndarray = field(repr=False)
    numeric: np.ndarray = field(repr=False)
    abs_error: np.ndarray = field(repr=False)
    rel_error: np.ndarray = field(repr=False)
    loss: float = 0.0
    eps: float = 1e-6

    def __repr__(self):
        w = self.worst
        return (f"GradcheckResult(max_abs_error={self.max_abs_error:.3g}, "
                f"max_rel_error={self.max_rel_error:.3g}, worst=layer {w['layer']} "
                f"{w['name']}{list(w['position'])}, checked={self.indices.size})")


def _locate(net, index):
    for pos, layer in enumerate(net.layers):
        off = layer._offset
        for name, view in layer.param_arrays():
            if off <= index < off + view.size:
                return {"index": int(index), "layer": pos, "name": name,
                        "position": tuple(int(v) for v in np.unravel_index(index - off, view.shape))}
            off += view.size
    raise IndexError(index)  # pragma: no cover


def gradcheck(net, X, y, eps=1e-6, n_params=None, seed=0):
    """Compare backprop with central differences, in float64, dropout off.

    Parameters
    ----------
    net : Network
        Not modified (a float64 copy is checked).
    X, y : array_like
        Data in the layout of ``net.loss``.
    eps : float, default 1e-6
        Finite-difference step.
    n_params : int or None
        Check a seeded random subset of this many parameters; ``None`` checks
        every parameter of networks up to 2000 parameters and a subset of
        2000 otherwise.
    seed : int, default 0
        Seed of the subset.

    Returns
    -------
    GradcheckResult
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be an nc.Network, got {type(net).__name__}")
    eps = real(eps, "eps", low=0.0, low_open=True, high=1.0, high_open=True)
    P = net.n_params
    n_params = integer(n_params, "n_params", low=1, allow_none=True)
    n_params = min(P, 2000 if n_params is None else n_params)
    net64 = net.copy("float64")
    Xc = net64._check_X(X)
    T = net64._check_y(y, Xc.shape[0])
    if n_params == P:
        idx = np.arange(P, dtype=np.int64)
    else:
        idx = np.sort(np.random.default_rng(seed).choice(P, size=n_params, replace=False))

    def J():
        val, _, _ = net64._loss_grad(Xc, T, grad=False)
        return val + net64._penalty(False)

    loss0, _, _ = net64._loss_grad(Xc, T, grad=True)
    loss0 += net64._penalty(True)
    analytic = net64.grads[idx].copy()
    params = net64.params
    numeric = np.empty(idx.size)
    for k, i in enumerate(idx):
        w = params[i]
        params[i] = w + eps
        jp = J()
        params[i] = w - eps
        jm = J()
        params[i] = w
        numeric[k] = (jp - jm) / (2.0 * eps)
    abs_err = np.abs(analytic - numeric)
    rel_err = abs_err / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), REL_FLOOR)
    worst = int(np.argmax(rel_err))
    return GradcheckResult(
        max_abs_error=float(abs_err.max()), max_rel_error=float(rel_err.max()),
        worst=_locate(net64, int(idx[worst])), indices=idx, analytic=analytic,
        numeric=numeric, abs_error=abs_err, rel_error=rel_err, loss=float(loss0), eps=float(eps))
