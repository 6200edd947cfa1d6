"""Argument checks of the curvature kernels, shared by both backends.

Same policy as :mod:`nncore.backend._validate`: ``TypeError`` for a wrong type
or dtype, ``ValueError`` for a wrong shape, layout or value, raised before any
computation so a compiled kernel never sees an array it could overrun.
"""

from __future__ import annotations

import numpy as np

from ._validate import (check_act, check_disjoint, check_dtype, check_float, check_nonempty,
                        check_real)


def _shape(a, name, shape):
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")


def check_rforward(X, RX, W, VW, Vb, act, Y, RS, RY):
    check_act(act)
    for name, a, nd in (("X", X, 2), ("W", W, 2), ("VW", VW, 3), ("Vb", Vb, 2), ("Y", Y, 2)):
        check_float(a, name, nd)
    check_float(RS, "RS", 3, writable=True)
    check_float(RY, "RY", 3, writable=True)
    if RX is not None:
        check_float(RX, "RX", 3)
    check_dtype(X.dtype, RX=RX, W=W, VW=VW, Vb=Vb, Y=Y, RS=RS, RY=RY)
    n, n_in = X.shape
    m = VW.shape[0]
    check_nonempty(X, "X")
    if m == 0:
        raise ValueError("VW holds no directions")
    _shape(W, "W", (n_in, W.shape[1]))
    n_out = W.shape[1]
    _shape(VW, "VW", (m, n_in, n_out))
    _shape(Vb, "Vb", (m, n_out))
    _shape(Y, "Y", (n, n_out))
    _shape(RS, "RS", (m, n, n_out))
    _shape(RY, "RY", (m, n, n_out))
    if RX is not None:
        check_float(RX, "RX", 3)
        _shape(RX, "RX", (m, n, n_in))
    check_disjoint(RS, "RS", X=X, RX=RX, W=W, VW=VW, Vb=Vb, Y=Y, RY=RY)
    check_disjoint(RY, "RY", X=X, RX=RX, W=W, VW=VW, Vb=Vb, Y=Y)


def check_rbackward(X, RX, W, VW, Y, RS, D, RD, act, RdW, Rdb, DX, RDX):
    check_act(act)
    for name, a, nd in (("X", X, 2), ("W", W, 2), ("VW", VW, 3), ("Y", Y, 2), ("RS", RS, 3)):
        check_float(a, name, nd)
    check_float(D, "D", 2, writable=True)
    check_float(RD, "RD", 3, writable=True)
    check_float(RdW, "RdW", 3, writable=True)
    check_float(Rdb, "Rdb", 2, writable=True)
    for name, a, nd in (("RX", RX, 3), ("DX", DX, 2), ("RDX", RDX, 3)):
        if a is not None:
            check_float(a, name, nd, writable=name != "RX")
    check_dtype(X.dtype, RX=RX, W=W, VW=VW, Y=Y, RS=RS, D=D, RD=RD, RdW=RdW, Rdb=Rdb,
                DX=DX, RDX=RDX)
    check_nonempty(X, "X")
    n, n_in = X.shape
    n_out = W.shape[1]
    m = VW.shape[0]
    _shape(W, "W", (n_in, n_out))
    for name, a, shape in (("VW", VW, (m, n_in, n_out)), ("Y", Y, (n, n_out)),
                           ("RS", RS, (m, n, n_out)), ("D", D, (n, n_out)),
                           ("RD", RD, (m, n, n_out)), ("RdW", RdW, (m, n_in, n_out)),
                           ("Rdb", Rdb, (m, n_out))):
        _shape(a, name, shape)
    if RX is not None:
        check_float(RX, "RX", 3)
        _shape(RX, "RX", (m, n, n_in))
    if (DX is None) != (RDX is None):
        raise ValueError("DX and RDX must both be given or both be None")
    if DX is not None:
        check_float(DX, "DX", 2, writable=True)
        check_float(RDX, "RDX", 3, writable=True)
        _shape(DX, "DX", (n, n_in))
        _shape(RDX, "RDX", (m, n, n_in))
    ins = dict(X=X, RX=RX, W=W, VW=VW, Y=Y, RS=RS)
    for name, out in (("D", D), ("RD", RD), ("RdW", RdW), ("Rdb", Rdb), ("DX", DX), ("RDX", RDX)):
        if out is not None:
            check_disjoint(out, name, **ins)
    outs = [("D", D), ("RD", RD), ("RdW", RdW), ("Rdb", Rdb), ("DX", DX), ("RDX", RDX)]
    for i, (name, out) in enumerate(outs):
        if out is not None:
            check_disjoint(out, name, **{k: v for k, v in outs[i + 1:]})


def check_loss_rop(out, Rout, Rgrad):
    check_float(out, "out", 2)
    check_float(Rout, "Rout", 3)
    check_float(Rgrad, "Rgrad", 3, writable=True)
    check_dtype(out.dtype, Rout=Rout, Rgrad=Rgrad)
    check_nonempty(out, "out")
    m = Rout.shape[0]
    _shape(Rout, "Rout", (m,) + out.shape)
    _shape(Rgrad, "Rgrad", (m,) + out.shape)
    check_disjoint(Rgrad, "Rgrad", out=out, Rout=Rout)


def check_jacobian_rows(A, D, out, offset):
    check_float(A, "A", 2)
    check_float(D, "D", 2)
    check_float(out, "out", 2, writable=True)
    check_dtype(A.dtype, D=D, out=out)
    if not isinstance(offset, (int, np.integer)) or isinstance(offset, bool):
        raise TypeError(f"offset must be an integer, got {type(offset).__name__}")
    r = A.shape[0]
    if D.shape[0] != r or out.shape[0] != r:
        raise ValueError(f"A, D and out must have the same rows, got {A.shape}, {D.shape}, {out.shape}")
    width = A.shape[1] * D.shape[1] + D.shape[1]
    if offset < 0 or offset + width > out.shape[1]:
        raise ValueError(f"columns [{offset}, {offset + width}) do not fit out of shape {out.shape}")
    check_disjoint(out, "out", A=A, D=D)


def check_ggn_rows_softmax(P, J):
    check_float(P, "P", 2)
    check_float(J, "J", 2, writable=True)
    check_dtype(P.dtype, J=J)
    if J.shape[0] != P.shape[0] * P.shape[1]:
        raise ValueError(f"J must have N*K = {P.shape[0] * P.shape[1]} rows, got {J.shape[0]}")
    check_disjoint(J, "J", P=P)


def check_syrk(A, C, alpha, beta):
    check_float(A, "A", 2)
    check_float(C, "C", 2, writable=True)
    check_dtype(A.dtype, C=C)
    k = A.shape[1]
    _shape(C, "C", (k, k))
    check_disjoint(C, "C", A=A)


def check_cholesky_solve(A, b, x):
    check_float(A, "A", 2)
    check_float(b, "b", 1)
    check_float(x, "x", 1, writable=True)
    check_dtype(A.dtype, b=b, x=x)
    n = b.shape[0]
    check_nonempty(b, "b")
    _shape(A, "A", (n, n))
    _shape(x, "x", (n,))
    check_disjoint(x, "x", A=A)


def checked_rop(row, compute, module):
    """A backend's function for one :func:`nncore.losses.rop_kernels` row: the checks,
    then ``compute`` (the reference, or the compiled kernel of the same name), shown
    as a function of the backend ``module``."""

    def rop_function(out, Rout, Rgrad):
        check_loss_rop(out, Rout, Rgrad)
        compute(out, Rout, Rgrad)

    rop_function.__name__ = rop_function.__qualname__ = row.name
    rop_function.__doc__ = row.doc
    rop_function.__module__ = module
    return rop_function
