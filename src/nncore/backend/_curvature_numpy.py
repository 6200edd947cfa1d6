"""NumPy reference of the curvature kernels (Pearlmutter's R-operator).

Design
------
* The R-operator ``R_v{.} = d/dt (.)(w + t v) |_{t=0}`` is pushed through a
  dense layer forward (``dense_rforward``) and backward (``dense_rbackward``),
  so a Hessian-vector product costs about two gradients (Pearlmutter 1994).
  ``m`` directions are carried at once: R-quantities have shape
  ``(m, N, width)``, the direction's weights ``VW`` ``(m, n_in, n_out)`` and
  biases ``Vb`` ``(m, n_out)`` — a batch of directions is a few large GEMMs.
* For a layer ``Y = f(S)``, ``S = X W + b``::

      RS = RX W + X VW + Vb                  RY = f'(S) RS
      delta = D f'(S)                        Rdelta = RD f'(S) + D f''(S) RS
      RdW = X^T Rdelta + RX^T delta          Rdb = sum_rows Rdelta
      DX = delta W^T                         RDX = Rdelta W^T + delta VW^T

  where ``D`` is the loss gradient with respect to ``Y`` and ``RD`` its
  R-derivative. ``f'`` and ``f''`` are written in terms of the output ``Y``
  and come from :mod:`nncore.activations` (its ``second`` slot); relu and
  leaky_relu have ``f'' = 0`` almost everywhere.
* The losses' R-operators apply the per-sample Hessian of the loss with
  respect to the outputs (``loss_*_rop``, built here from the loss registry's
  ``rop_reference_fn``); the generalised Gauss–Newton product replaces
  ``Rdelta``'s ``D f''`` term by zero.
* These are the specification the compiled twins in ``_cython.py`` match.
"""

from __future__ import annotations

import numpy as np

from .. import activations as _activations
from .. import losses as _losses
from . import _validate_curvature as VC

# (and the loss R-operators, added where they are built below)
__all__ = [
    "dense_rforward", "dense_rbackward", "jacobian_rows", "ggn_rows_softmax", "syrk",
    "cholesky_solve", "activation_derivatives",
]


def _derivatives(Y, act):
    """``(f'(S), f''(S))`` from ``Y = f(S)``, from the activation registry (its
    derivative applied to ones, and its second-derivative slot)."""
    entry = _activations.by_code(int(act))
    d1 = np.empty_like(Y)
    entry.backward(Y, np.ones_like(Y), d1)
    return d1, np.asarray(entry.second(Y), dtype=Y.dtype)


def activation_derivatives(Y, act):
    """``(f'(S), f''(S))`` from the layer output ``Y = f(S)`` (new arrays)."""
    VC.check_act(act)
    VC.check_float(Y, "Y")
    return _derivatives(Y, act)


def dense_rforward(X, RX, W, VW, Vb, act, Y, RS, RY):
    """RS := RX @ W + X @ VW + Vb;  RY := f'(S) * RS   (``RX`` None: zero)."""
    VC.check_rforward(X, RX, W, VW, Vb, act, Y, RS, RY)
    d1, _ = _derivatives(Y, act)
    np.matmul(X, VW, out=RS)
    RS += Vb[:, None, :]
    if RX is not None:
        RS += RX @ W
    np.multiply(RS, d1, out=RY)


def dense_rbackward(X, RX, W, VW, Y, RS, D, RD, act, RdW, Rdb, DX, RDX):
    """R-backward of a dense layer (``D``/``RD`` are overwritten with delta/Rdelta).

    Rdelta := RD f' + D f'' RS;  delta := D f';  RdW := X^T Rdelta + RX^T delta;
    Rdb := sum over rows of Rdelta;  DX := delta W^T;  RDX := Rdelta W^T + delta VW^T
    (``DX``/``RDX`` None skips the last two; ``RX`` None means zero).
    """
    VC.check_rbackward(X, RX, W, VW, Y, RS, D, RD, act, RdW, Rdb, DX, RDX)
    d1, d2 = _derivatives(Y, act)
    RD *= d1
    RD += (D * d2) * RS
    D *= d1
    np.matmul(X.T, RD, out=RdW)
    if RX is not None:
        RdW += np.swapaxes(RX, 1, 2) @ D
    np.sum(RD, axis=1, out=Rdb)
    if DX is not None:
        np.matmul(D, W.T, out=DX)
        np.matmul(RD, W.T, out=RDX)
        RDX += D @ np.swapaxes(VW, 1, 2)


# loss_mse_rop, loss_softmax_ce_rop, ...: one per R-operator the loss registry
# names (Loss.rop_kernel); the compiled backend builds its twins from the same table.
LOSS_ROPS = tuple(row.name for row in _losses.rop_kernels())
for _row in _losses.rop_kernels():
    globals()[_row.name] = VC.checked_rop(_row, _row.reference, __name__)
del _row


def jacobian_rows(A, D, out, offset):
    """Per-row gradients of one dense layer into columns ``offset:`` of ``out``:

    out[r, offset + i*d + j] := A[r, i] * D[r, j]  (the ``W`` block, C order),
    out[r, offset + a*d + j] := D[r, j]            (the ``b`` block),
    for A (R, a) the layer input and D (R, d) its delta.
    """
    VC.check_jacobian_rows(A, D, out, offset)
    r, a = A.shape
    d = D.shape[1]
    out[:, offset:offset + a * d] = (A[:, :, None] * D[:, None, :]).reshape(r, a * d)
    out[:, offset + a * d:offset + a * d + d] = D


def ggn_rows_softmax(P, J):
    """J rows (sample-major, K per sample) := L_n^T J_n, with
    L_n^T = diag(sqrt p) - sqrt(p) p^T, so that sum_n J_n^T L_n L_n^T J_n is the
    generalised Gauss–Newton matrix of softmax cross-entropy (N times the mean)."""
    VC.check_ggn_rows_softmax(P, J)
    n, k = P.shape
    Jr = J.reshape(n, k, -1)
    mean = np.einsum("nk,nkc->nc", P, Jr)
    Jr -= mean[:, None, :]
    Jr *= np.sqrt(P)[:, :, None]


def syrk(A, C, alpha=1.0, beta=0.0):
    """C := alpha A^T A + beta C on the lower triangle, then mirrored to the upper
    one (as BLAS SYRK: only C's lower triangle is read, C is symmetric on exit)."""
    VC.check_syrk(A, C, alpha, beta)
    VC.check_real(alpha=alpha, beta=beta)
    prod = A.T @ A
    if beta == 0.0:
        np.multiply(prod, alpha, out=C)
    else:
        C *= beta
        C += alpha * prod
    upper = np.triu_indices(C.shape[0], 1)
    C[upper] = C.T[upper]


def cholesky_solve(A, b, x):
    """x := A^{-1} b by a Cholesky factorisation of the symmetric A (not modified).

    Returns True on success, False when A is not (numerically) positive definite.
    """
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    VC.check_cholesky_solve(A, b, x)
    try:
        c = cho_factor(A, lower=True, check_finite=False)
    except LinAlgError:
        return False
    np.copyto(x, cho_solve(c, b, check_finite=False))
    return bool(np.all(np.isfinite(x)))
