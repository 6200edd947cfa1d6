"""Argument checks shared by both backends.

Every backend function validates with these *before* computing, so the two
backends reject exactly the same calls and a compiled kernel never sees an
array it could read or write out of bounds. Errors: ``TypeError`` for a wrong
type or dtype, ``ValueError`` for a wrong shape, layout or value.
"""

from __future__ import annotations

import numpy as np

from .. import activations as _activations
from ..errors import InvalidParameterError

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _arr(a, name):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    return a


def check_float(a, name, ndim=None, writable=False):
    _arr(a, name)
    if a.dtype not in FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} is an output and must be writable")
    return a


def check_dtype(dtype, **arrays):
    for name, a in arrays.items():
        if a is not None and a.dtype != dtype:
            raise TypeError(f"{name} has dtype {a.dtype}, expected {dtype}")


def check_nonempty(a, name):
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")


def check_act(act):
    """The registry entry of activation code ``act`` (``ValueError`` if none)."""
    return _activations.by_code(act)


def _overlap(a, b):
    return a is not None and b is not None and np.shares_memory(a, b)


def check_disjoint(out, out_name, /, **inputs):
    """``out`` shares no memory with any input (a compiled kernel would read
    values it has already overwritten; NumPy hides this with temporaries)."""
    for name, a in inputs.items():
        if _overlap(out, a):
            raise ValueError(f"{out_name} must not share memory with {name}")


def check_same_or_disjoint(out, out_name, /, **inputs):
    """Elementwise ops: ``out`` is either exactly an input (in place) or disjoint."""
    for name, a in inputs.items():
        if _overlap(out, a) and not (
                out.shape == a.shape and out.dtype == a.dtype
                and np.shares_memory(out.reshape(-1)[:1], a.reshape(-1)[:1])):
            raise ValueError(f"{out_name} partially overlaps {name}; pass the same "
                             "array for an in-place operation or a separate one")


def check_real(**scalars):
    """Hyper-parameters and coefficients are real numbers (bool is not); the
    policy of :mod:`nncore._checks`: ``InvalidParameterError`` (also a TypeError)."""
    for name, v in scalars.items():
        if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, (bool, np.bool_)):
            raise InvalidParameterError(f"{name} must be a real number, got {type(v).__name__}")


def check_adam(beta1, beta2, step):
    for name, b in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {b}")
    if step < 1:
        raise ValueError(f"Adam's step counts from 1, got {step}")


def check_vector(x, name):
    check_float(x, name, 1)


def check_same(*arrays):
    """Same shape and dtype; the last array is the (writable) output."""
    first = arrays[0]
    check_float(first, "a")
    for i, a in enumerate(arrays):
        check_float(a, f"argument {i}", writable=(i == len(arrays) - 1))
        if a.shape != first.shape:
            raise ValueError(f"shape mismatch: {a.shape} vs {first.shape}")
        if a.dtype != first.dtype:
            raise TypeError(f"dtype mismatch: {a.dtype} vs {first.dtype}")
    out = arrays[-1]
    check_same_or_disjoint(out, "out", **{f"argument {i}": a for i, a in enumerate(arrays[:-1])})


def check_softmax(logits, out):
    check_float(logits, "logits", 2)
    check_same(logits, out)
    if logits.shape[0] and not logits.shape[1]:
        raise ValueError(f"logits has no columns (shape {logits.shape})")


def check_gemm(A, B, C, trans_a, trans_b):
    check_float(A, "A", 2)
    check_float(B, "B", 2)
    check_float(C, "C", 2, writable=True)
    check_dtype(C.dtype, A=A, B=B)
    m, k = (A.shape[1], A.shape[0]) if trans_a else A.shape
    k2, n = (B.shape[1], B.shape[0]) if trans_b else B.shape
    if k != k2 or C.shape != (m, n):
        raise ValueError(f"gemm shapes do not chain: op(A) {m}x{k}, op(B) {k2}x{n}, C {C.shape}")
    check_disjoint(C, "C", A=A, B=B)


def check_dense_forward(X, W, b, act, out):
    check_act(act)
    check_float(X, "X", 2)
    check_float(W, "W", 2)
    check_float(b, "b", 1)
    check_float(out, "out", 2, writable=True)
    check_dtype(X.dtype, W=W, b=b, out=out)
    n, d = X.shape
    if W.shape[0] != d:
        raise ValueError(f"X has {d} columns but W has {W.shape[0]} rows")
    if b.shape[0] != W.shape[1]:
        raise ValueError(f"b has {b.shape[0]} entries, W has {W.shape[1]} columns")
    if out.shape != (n, W.shape[1]):
        raise ValueError(f"out has shape {out.shape}, expected {(n, W.shape[1])}")
    check_nonempty(X, "X")
    check_nonempty(W, "W")
    check_disjoint(out, "out", X=X, W=W, b=b)


def check_dense_backward(X, W, Y, dY, act, dW, db, dX):
    check_act(act)
    check_float(X, "X", 2)
    check_float(W, "W", 2)
    check_float(Y, "Y", 2)
    check_float(dY, "dY", 2, writable=True)
    check_float(dW, "dW", 2, writable=True)
    check_float(db, "db", 1, writable=True)
    if dX is not None:
        check_float(dX, "dX", 2, writable=True)
    check_dtype(X.dtype, W=W, Y=Y, dY=dY, dW=dW, db=db, dX=dX)
    n, d = X.shape
    k = W.shape[1]
    if W.shape[0] != d:
        raise ValueError(f"X has {d} columns but W has {W.shape[0]} rows")
    if Y.shape != (n, k) or dY.shape != (n, k):
        raise ValueError(f"Y/dY must have shape {(n, k)}, got {Y.shape}/{dY.shape}")
    if dW.shape != W.shape or db.shape != (k,):
        raise ValueError(f"dW/db must have shapes {W.shape}/{(k,)}, got {dW.shape}/{db.shape}")
    if dX is not None and dX.shape != X.shape:
        raise ValueError(f"dX must have shape {X.shape}, got {dX.shape}")
    check_nonempty(X, "X")
    check_nonempty(W, "W")
    check_disjoint(dY, "dY", X=X, W=W, Y=Y)
    check_disjoint(dW, "dW", X=X, W=W, Y=Y, dY=dY, db=db, dX=dX)
    check_disjoint(db, "db", X=X, W=W, Y=Y, dY=dY, dX=dX)
    check_disjoint(dX, "dX", X=X, W=W, Y=Y, dY=dY)


def check_row_weight(weight, n, grad, out):
    """Row coefficients of a weighted loss: None, or a C-contiguous float64 (n,) array
    that shares no memory with the gradient it scales."""
    if weight is None:
        return
    _arr(weight, "weight")
    if weight.dtype != np.float64 or weight.ndim != 1 or not weight.flags.c_contiguous:
        raise TypeError("weight must be a C-contiguous 1-D float64 array")
    if weight.shape[0] != n:
        raise ValueError(f"weight has {weight.shape[0]} entries for {n} rows")
    check_disjoint(grad, "grad", weight=weight)


def check_loss(out, target, grad, weight=None):
    check_float(out, "out", 2)
    check_float(target, "target", 2)
    if grad is not None:
        check_float(grad, "grad", 2, writable=True)
    check_dtype(out.dtype, target=target, grad=grad)
    if target.shape != out.shape or (grad is not None and grad.shape != out.shape):
        raise ValueError(f"target/grad must have shape {out.shape}")
    check_nonempty(out, "out")
    check_disjoint(grad, "grad", out=out, target=target)
    check_row_weight(weight, out.shape[0], grad, out)


def check_loss_labels(logits, labels, grad, weight=None):
    check_float(logits, "logits", 2)
    _arr(labels, "labels")
    if labels.dtype != np.int64 or labels.ndim != 1 or not labels.flags.c_contiguous:
        raise TypeError("labels must be a C-contiguous 1-D int64 array")
    if grad is not None:
        check_float(grad, "grad", 2, writable=True)
        check_dtype(logits.dtype, grad=grad)
        if grad.shape != logits.shape:
            raise ValueError(f"grad must have shape {logits.shape}")
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {logits.shape[0]} rows")
    check_nonempty(logits, "logits")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]})")
    check_disjoint(grad, "grad", logits=logits, labels=labels)
    check_row_weight(weight, logits.shape[0], grad, logits)


def check_regularize(params, grads, segments, l1, l2):
    check_float(params, "params", 1)
    if grads is not None:
        check_float(grads, "grads", 1, writable=True)
        check_dtype(params.dtype, grads=grads)
        if grads.shape != params.shape:
            raise ValueError("grads and params must have the same length")
    _arr(segments, "segments")
    if segments.dtype != np.int64 or segments.ndim != 2 or segments.shape[1] != 2 \
            or not segments.flags.c_contiguous:
        raise TypeError("segments must be a C-contiguous int64 array of shape (k, 2)")
    if segments.size and (segments.min() < 0 or segments.max() > params.shape[0]
                          or np.any(segments[:, 0] > segments[:, 1])):
        raise ValueError("segments must be [start, stop) ranges inside params")
    check_real(l1=l1, l2=l2)
    for name, v in (("l1", l1), ("l2", l2)):
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite non-negative number, got {v}")
    check_disjoint(grads, "grads", params=params, segments=segments)


def check_dropout(seed, counter, rate, mask):
    check_float(mask, "mask", writable=True)
    check_real(rate=rate)
    if not (0.0 <= rate < 1.0):
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    for name, v in (("seed", seed), ("counter", counter)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_)):
            raise TypeError(f"dropout {name} must be an integer, got {type(v).__name__}")
    if int(seed) < 0 or int(counter) < 0:
        raise ValueError("seed and counter must be non-negative integers")


def check_gather_rows(X, idx, out):
    check_float(X, "X", 2)
    check_float(out, "out", 2, writable=True)
    _check_idx(idx, X.shape[0])
    if out.shape != (idx.shape[0], X.shape[1]):
        raise ValueError(f"out has shape {out.shape}, expected {(idx.shape[0], X.shape[1])}")
    check_disjoint(out, "out", X=X, idx=idx)


def check_gather(y, idx, out):
    for name, a in (("y", y), ("out", out)):
        _arr(a, name)
        if a.ndim != 1 or not a.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous 1-D array")
        if a.dtype not in FLOATS and a.dtype != np.int64:
            raise TypeError(f"{name} must be float32, float64 or int64, got {a.dtype}")
    if (y.dtype == np.int64) != (out.dtype == np.int64):
        raise TypeError("gather converts between float dtypes only")
    if not out.flags.writeable:
        raise ValueError("out must be writable")
    _check_idx(idx, y.shape[0])
    if out.shape != idx.shape:
        raise ValueError(f"out has shape {out.shape}, expected {idx.shape}")
    check_disjoint(out, "out", y=y, idx=idx)


def _check_idx(idx, n):
    _arr(idx, "idx")
    if idx.dtype != np.int64 or idx.ndim != 1 or not idx.flags.c_contiguous:
        raise TypeError("idx must be a C-contiguous 1-D int64 array")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"idx values must lie in [0, {n})")


def check_opt(params, grads, *state, unused=()):
    """``unused``: indices of state buffers the update ignores (SGD's buffer at
    momentum 0), which may therefore be any array of the right shape, even params."""
    check_float(params, "params", 1, writable=True)
    check_float(grads, "grads", 1)
    check_dtype(params.dtype, grads=grads)
    if grads.shape != params.shape:
        raise ValueError(f"grads has length {grads.shape[0]}, params {params.shape[0]}")
    for i, s in enumerate(state):
        check_float(s, f"state buffer {i}", 1, writable=True)
        check_dtype(params.dtype, state=s)
        if s.shape != params.shape:
            raise ValueError("optimizer state must have the length of params")
    bufs = (params, grads) + tuple(b for i, b in enumerate(state) if i not in unused)
    for i in range(len(bufs)):
        for j in range(i):
            if _overlap(bufs[i], bufs[j]):
                raise ValueError("params, grads and optimizer state must not share memory")


def check_symv(A, x, out):
    check_float(A, "A", 2)
    check_float(x, "x", 1)
    check_float(out, "out", 1, writable=True)
    check_dtype(A.dtype, x=x, out=out)
    n = A.shape[0]
    if A.shape != (n, n) or x.shape != (n,) or out.shape != (n,):
        raise ValueError("symv needs A (n, n), x (n,), out (n,)")
    check_disjoint(out, "out", A=A, x=x)


def check_rank2(Vm, s, r):
    check_float(Vm, "V", 2, writable=True)
    check_float(s, "s", 1)
    check_float(r, "r", 1)
    check_dtype(Vm.dtype, s=s, r=r)
    n = Vm.shape[0]
    if Vm.shape != (n, n) or s.shape != (n,) or r.shape != (n,):
        raise ValueError("rank-2 update needs V (n, n), s (n,), r (n,)")
    check_disjoint(Vm, "V", s=s, r=r)


def checked_loss(row, compute, module):
    """A backend's function for one :func:`nncore.losses.backend_kernels` row: the
    checks of its target form, then ``compute`` (the registry's reference on the NumPy
    backend, the compiled kernel of the same name on the compiled one), shown as a
    function of the backend ``module``."""
    check = check_loss_labels if row.takes_labels else check_loss

    def loss_function(out, target, grad, weight=None):
        check(out, target, grad, weight)
        return compute(out, target, grad, weight)

    loss_function.__name__ = loss_function.__qualname__ = row.name
    loss_function.__doc__ = row.doc
    loss_function.__module__ = module
    return loss_function
