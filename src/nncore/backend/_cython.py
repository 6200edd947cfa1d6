"""The compiled backend: the twin of :mod:`nncore.backend._numpy` over ``nncore._kernels``.

Design
------
* Same names and signatures as the reference (a test asserts it); the
  docstrings there are the specification of each function.
* Every function validates with :mod:`nncore.backend._validate` (the very checks
  the reference runs) *before* the GIL is released, so a bad call raises
  ``TypeError``/``ValueError`` and no kernel ever sees a wrong shape, dtype or
  layout. Kernels take flat 1-D views for elementwise work (``reshape(-1)`` of a
  C-contiguous array is a view).
* Scalars derived from hyper-parameters (``lr / (1 - beta1**t)`` and friends)
  are computed here in Python double precision exactly as the reference
  computes them, and rounded to the array dtype inside the kernel.
* This path is called per training step: it adds only the checks and one
  call. It never calls ``numpy.matmul``; all products go through SciPy's BLAS.
"""

from __future__ import annotations

import numpy as np

from .. import activations as _activations
from .. import losses as _losses
from . import _epoch as _E
from . import _numpy
from . import _validate as V
from . import _validate_curvature as VC

try:
    from .. import _kernels as _K
except ImportError as exc:  # pragma: no cover - depends on the build
    raise ImportError(
        f"nncore's compiled extension nncore._kernels could not be imported ({exc})"
    ) from exc

NAME = "cython"
# This backend has train_epoch, the compiled epoch loop (the NumPy backend runs
# training through the Python step loop only).
FUSED_LOOP = True

# (and the loss kernels of the loss registry, whose names this file never spells)
_KERNELS = tuple(row.name for row in _losses.backend_kernels() + _losses.rop_kernels()) + (
    "gemm", "sum_squares", "multiply", "add", "activation_forward", "activation_backward",
    "dense_forward", "dense_backward", "softmax", "sigmoid", "regularize", "dropout_mask",
    "gather_rows", "gather", "sgd_step", "adagrad_step", "rmsprop_step", "adam_step",
    "symv", "rank2_prepare", "bfgs_apply", "dfp_apply", "train_epoch_loop", "EpochWorkspace",
    "dense_rforward", "dense_rbackward", "jacobian_rows", "ggn_rows_softmax", "syrk",
    "cholesky_solve", "curvature_activations",
)
_missing = [name for name in _KERNELS if not hasattr(_K, name)]
if getattr(_K, "N_ACTIVATIONS", None) != len(_activations.REGISTRY):
    _missing.append(f"N_ACTIVATIONS == {len(_activations.REGISTRY)} (the activation registry)")
if getattr(_K, "LOOP_LAYER_KINDS", None) != _E.LOOP_LAYER_KINDS:
    _missing.append("LOOP_LAYER_KINDS matching nncore.backend._epoch's layer kinds")
if getattr(_K, "BLAS_INT_MAX", None) != _E.BLAS_INT_MAX:
    _missing.append(f"BLAS_INT_MAX == {_E.BLAS_INT_MAX} (nncore.backend._epoch's limit)")
if _missing:  # a stale build: fail loudly instead of falling back
    raise ImportError(
        f"nncore._kernels ({_K.__file__}) lacks the kernels {_missing}; rebuild nncore "
        "(pip install --no-build-isolation -e .)")

_INT_MAX = _K.BLAS_INT_MAX   # the largest size the kernels pass to BLAS (their blas_int)
_U64 = 1 << 64


def _blas_dims(*arrays):
    for a in arrays:
        if a is not None and max(a.shape, default=0) > _INT_MAX:
            raise ValueError(f"array dimension {max(a.shape)} exceeds the BLAS limit {_INT_MAX}")


# --------------------------------------------------------------------------- BLAS-like

def gemm(A, B, C, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """C := alpha * op(A) @ op(B) + beta * C   (in place)."""
    V.check_gemm(A, B, C, trans_a, trans_b)
    V.check_real(alpha=alpha, beta=beta)
    _blas_dims(A, B, C)
    _K.gemm(A, B, C, bool(trans_a), bool(trans_b), float(alpha), float(beta))


def sum_squares(x):
    """Return sum(x*x) over a 1-D array, accumulated in float64."""
    V.check_vector(x, "x")
    return _K.sum_squares(x)


def multiply(a, b, out):
    """out := a * b elementwise (same shape and dtype; out may alias a or b)."""
    V.check_same(a, b, out)
    _K.multiply(a.reshape(-1), b.reshape(-1), out.reshape(-1))


def add(a, b, out):
    """out := a + b elementwise (same shape and dtype; out may alias a or b)."""
    V.check_same(a, b, out)
    _K.add(a.reshape(-1), b.reshape(-1), out.reshape(-1))


# --------------------------------------------------------------------------- activations

def activation_forward(S, act, out):
    """out := f(S) (out may be S)."""
    V.check_act(act)
    V.check_same(S, out)
    _K.activation_forward(S.reshape(-1), int(act), out.reshape(-1))


def activation_backward(Y, dY, act, out):
    """out := dY * f'(S), with f' computed from Y = f(S) (out may be dY)."""
    V.check_act(act)
    V.check_same(Y, dY, out)
    _K.activation_backward(Y.reshape(-1), dY.reshape(-1), int(act), out.reshape(-1))


# --------------------------------------------------------------------------- dense layer

def dense_forward(X, W, b, act, out):
    """out := f(X @ W + b);  X (N, n_in), W (n_in, n_out), b (n_out,), out (N, n_out)."""
    V.check_dense_forward(X, W, b, act, out)
    _blas_dims(X, W)
    _K.dense_forward(X, W, b, int(act), out)


def dense_backward(X, W, Y, dY, act, dW, db, dX):
    """Backward pass of a dense layer.

    dY := dY * f'(Y)  (overwritten with the layer's delta),
    dW := X^T @ delta,  db := sum over rows of delta,
    dX := delta @ W^T   (skipped when dX is None, e.g. for the first layer).
    """
    V.check_dense_backward(X, W, Y, dY, act, dW, db, dX)
    _blas_dims(X, W)
    _K.dense_backward(X, W, Y, dY, int(act), dW, db, dX)


# --------------------------------------------------------------------------- losses

def softmax(logits, out):
    """out := row-wise softmax(logits) (out may be logits)."""
    V.check_softmax(logits, out)
    _K.softmax(logits, out)


def sigmoid(x, out):
    """out := 1 / (1 + exp(-x)) elementwise, stably (out may be x)."""
    V.check_same(x, out)
    _K.sigmoid(x.reshape(-1), out.reshape(-1))


for _row in _losses.backend_kernels():
    globals()[_row.name] = V.checked_loss(_row, getattr(_K, _row.name), __name__)
del _row


# --------------------------------------------------------------------------- regularisation

def regularize(params, grads, segments, l1, l2):
    """Weights-only penalty over the flat buffer.

    ``segments`` is an int64 array (k, 2) of [start, stop) ranges of weights
    (biases are never penalised). Returns ``l1*sum|w| + l2*sum w^2`` over the
    segments (float64 accumulation); if ``grads`` is not None adds
    ``l1*sign(w) + 2*l2*w`` to it (sign(0) = 0).
    """
    V.check_regularize(params, grads, segments, l1, l2)
    return _K.regularize(params, grads, segments, float(l1), float(l2))


# --------------------------------------------------------------------------- dropout / RNG

def dropout_mask(seed, counter, rate, mask):
    """mask[i] := (u_i >= rate) / (1 - rate) with u from ``_numpy.uniform_counter``.

    ``mask`` is any C-contiguous float array (filled in flat order).
    """
    V.check_dropout(seed, counter, rate, mask)
    _K.dropout_mask(int(seed) % _U64, int(counter) % _U64, float(rate), mask.reshape(-1))


# --------------------------------------------------------------------------- batching

def gather_rows(X, idx, out):
    """out[i, :] := X[idx[i], :]  (float32 <-> float64 conversion allowed)."""
    V.check_gather_rows(X, idx, out)
    _K.gather_rows(X, idx, out)


def gather(y, idx, out):
    """out[i] := y[idx[i]] for 1-D arrays (int64 labels or floats)."""
    V.check_gather(y, idx, out)
    _K.gather(y, idx, out)


# --------------------------------------------------------------------------- optimizers

def sgd_step(params, grads, buf, lr, momentum, dampening, nesterov, first, gscale):
    """torch.optim.SGD: b = mu b + (1-dampening) g (b = g on the first step);
    p -= lr * (g + mu b if nesterov else b); plain p -= lr g when mu == 0."""
    V.check_opt(params, grads, buf, unused=(0,) if momentum == 0.0 else ())
    V.check_real(lr=lr, momentum=momentum, dampening=dampening, gscale=gscale)
    _K.sgd_step(params, grads, buf, float(lr), float(momentum), float(dampening),
                bool(nesterov), bool(first), float(gscale))


def adagrad_step(params, grads, state_sum, clr, eps, eps_inside_sqrt, gscale):
    """torch.optim.Adagrad: s += g*g; p -= clr * g / (sqrt(s) + eps)
    (``eps_inside_sqrt``: p -= clr * g / sqrt(s + eps))."""
    V.check_opt(params, grads, state_sum)
    V.check_real(clr=clr, eps=eps, gscale=gscale)
    _K.adagrad_step(params, grads, state_sum, float(clr), float(eps),
                    bool(eps_inside_sqrt), float(gscale))


def rmsprop_step(params, grads, square_avg, lr, alpha, eps, eps_inside_sqrt, gscale):
    """torch.optim.RMSprop: v = alpha v + (1-alpha) g*g; p -= lr * g / (sqrt(v) + eps)."""
    V.check_opt(params, grads, square_avg)
    V.check_real(lr=lr, alpha=alpha, eps=eps, gscale=gscale)
    _K.rmsprop_step(params, grads, square_avg, float(lr), float(alpha), float(eps),
                    bool(eps_inside_sqrt), float(gscale))


def adam_step(params, grads, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, step,
              weight_decay, eps_inside_sqrt, gscale):
    """torch.optim.Adam / AdamW (decoupled ``weight_decay``), step counted from 1.

    p *= 1 - lr*wd;  m = lerp(m, g, 1-beta1);  v = beta2 v + (1-beta2) g*g;
    p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)
    (``eps_inside_sqrt``: p -= (lr/bc1) * m / sqrt(v/bc2 + eps)).
    """
    V.check_opt(params, grads, exp_avg, exp_avg_sq)
    V.check_real(lr=lr, beta1=beta1, beta2=beta2, eps=eps, step=step,
                 weight_decay=weight_decay, gscale=gscale)
    V.check_adam(beta1, beta2, step)
    beta2 = float(beta2)
    # The reference's scalars (multiplying by decay = 1 is exact).
    decay, w, bc2, step_size = _numpy._adam_scalars(float(lr), float(beta1), beta2, step,
                                                    float(weight_decay))
    # A multiversioned loop (AVX-512/AVX2 where available, same bits as the scalar code).
    _K.adam_step(params, grads, exp_avg, exp_avg_sq, decay, w, 1.0 - w, w < 0.5,
                 beta2, 1.0 - beta2, bc2, bc2 ** 0.5, float(eps), -step_size,
                 bool(eps_inside_sqrt), float(gscale))


def rprop_step(params, grads, prev, step_size, delta_w, eta_minus, eta_plus, step_min,
               step_max, zero_on_change, backtrack, revert):
    """One step of the Rprop family (Igel & Hüsken 2000), torch.optim.Rprop's order.

    Per weight, with ``c = g * prev`` (the product, as torch):
    ``step = clamp(step * (eta_plus if c > 0, eta_minus if c < 0, else 1),
    step_min, step_max)``; where ``c < 0`` and ``zero_on_change`` the gradient
    counts as 0. Without ``backtrack``: ``p -= sign(g) * step`` (Rprop-,
    iRprop-). With ``backtrack`` (Rprop+, iRprop+): where ``c < 0`` the
    weight is not stepped; if ``revert`` the previous change is undone
    (``p -= delta_w``); elsewhere ``p -= sign(g) * step`` and ``delta_w``
    records the change. Finally ``prev := g`` (zeroed where it was).
    ``delta_w`` is unused (any array of the right shape, even ``params``)
    without ``backtrack``.
    """
    V.check_opt(params, grads, prev, step_size, delta_w, unused=() if backtrack else (2,))
    V.check_real(eta_minus=eta_minus, eta_plus=eta_plus, step_min=step_min, step_max=step_max)
    _K.rprop_step(params, grads, prev, step_size, delta_w, float(eta_minus), float(eta_plus),
                  float(step_min), float(step_max), bool(zero_on_change), bool(backtrack),
                  bool(revert))


# --------------------------------------------------------------------------- full-batch helpers

def symv(A, x, out):
    """out := A @ x for a symmetric (n, n) matrix A (both triangles stored)."""
    V.check_symv(A, x, out)
    _blas_dims(A)
    _K.symv(A, x, out)


def bfgs_update(Vm, s, r):
    """In-place inverse-Hessian BFGS update (the lecture's form), O(n^2):

    rho = 1 / (s^T r);  V := (I - rho s r^T) V (I - rho r s^T) + rho s s^T
       = V - rho (s u^T + u s^T) + (rho^2 r^T u + rho) s s^T,  u = V r.
    Caller guarantees s^T r > 0. Both triangles are updated.
    """
    V.check_rank2(Vm, s, r)
    _blas_dims(Vm)
    u = np.empty_like(s)
    sr, ru = _K.rank2_prepare(Vm, s, r, u)
    rho = 1.0 / sr
    c = rho * rho * ru + rho
    _K.bfgs_apply(Vm, s, u, rho, c)


def dfp_update(Vm, s, r):
    """In-place inverse-Hessian DFP update, O(n^2):

    V := V + s s^T / (s^T r) - (V r)(V r)^T / (r^T V r).
    Caller guarantees s^T r > 0 (then r^T V r > 0 for positive definite V).
    """
    V.check_rank2(Vm, s, r)
    _blas_dims(Vm)
    u = np.empty_like(s)
    sr, ru = _K.rank2_prepare(Vm, s, r, u)
    _K.dfp_apply(Vm, s, u, sr, ru)


# --------------------------------------------------------------------------- training epoch

def _epoch_workspace(workspace, ops, labels, B, d, params, coupled):
    """The loop's :class:`~nncore._kernels.EpochWorkspace`, kept in ``workspace`` while
    the layout stays the same; its backup is ``workspace["backup"]``."""
    layout = [op[:3] for op in ops]
    key = _K.EpochWorkspace.key_of(params.dtype, layout, B, d, labels, params.shape[0],
                                   coupled)
    loop_ws = workspace.get("cython")
    if not isinstance(loop_ws, _K.EpochWorkspace) or loop_ws.key != key:
        loop_ws = workspace["cython"] = _K.EpochWorkspace(params.dtype, layout, B, d, labels,
                                                          params.shape[0], coupled)
    workspace["backup"] = loop_ws.backup
    return loop_ws


def train_epoch(X, T, order, batch_size, stop, params, grads, layers, loss, segments, l1, l2,
                optimizer, drop_seed, state, workspace, weight=None):
    """Run the mini-batches ``state["step"] .. stop-1`` of an epoch (in place).

    The compiled loop (``_train_loop.pxi``): the step of
    :func:`nncore.backend._epoch.step_loop` with the same kernel calls, in one
    ``nogil`` loop with no Python per step. ``optimizer`` is a
    :class:`~nncore.backend._epoch.FusedUpdate` of a kind the loop runs
    (``_kernels.LOOP_OPTIMIZERS``). Arguments and results are described in
    :mod:`nncore.backend._epoch`.
    """
    ops, spec, _, update = _E.check_train_epoch(
        X, T, order, batch_size, stop, params, grads, layers, loss, segments, l1, l2, optimizer,
        drop_seed, state, workspace, _K.LOOP_OPTIMIZERS, weight)
    B = int(batch_size)
    stop = int(stop)
    if stop == state["step"]:
        return
    coupled = update.hyper["weight_decay"] != 0.0
    loop_ws = _epoch_workspace(workspace, ops, spec.takes_labels(T), B, X.shape[1], params,
                               coupled)
    # Each call returns after about 0.1 s of wall time (_train_loop.pxi), so a
    # Ctrl-C is raised here between two calls, with ``state`` matching the
    # parameters, however slow the steps are on a busy machine.
    while state["step"] < stop and not state["diverged"]:
        _K.train_epoch_loop(X, T, order, B, stop, params, grads, ops, spec.loop_code(T),
                            segments, float(l1), float(l2), _K.LOOP_OPTIMIZERS[update.kind][0],
                            update.hyper, update.buffers, loop_ws, int(drop_seed) % _U64, state,
                            weight)


# --------------------------------------------------------------------------- curvature
# Twins of nncore.backend._curvature_numpy (the specification, with the math).

# Activation codes whose f' and f'' _curvature.pxi's _act_d12 knows, asked from
# the extension; a newer activation's compiled R-operator refuses it until it is
# added there (rather than treating it as linear).
_CURVATURE_ACTS = _K.curvature_activations()


def _check_curvature_act(act):
    if int(act) not in _CURVATURE_ACTS:
        raise ValueError(f"the compiled R-operator has no second derivative for activation "
                         f"code {act} yet (add it to _curvature.pxi's _act_d12); use "
                         "nc.set_backend('numpy') for its curvature")


def dense_rforward(X, RX, W, VW, Vb, act, Y, RS, RY):
    """RS := RX @ W + X @ VW + Vb;  RY := f'(S) * RS   (``RX`` None: zero)."""
    VC.check_rforward(X, RX, W, VW, Vb, act, Y, RS, RY)
    _check_curvature_act(act)
    _blas_dims(X, W, RS.reshape(-1, RS.shape[2]))
    _K.dense_rforward(X, RX, RX is not None, W, VW, Vb, int(act), Y, RS, RY)


def dense_rbackward(X, RX, W, VW, Y, RS, D, RD, act, RdW, Rdb, DX, RDX):
    """R-backward of a dense layer (``D``/``RD`` are overwritten with delta/Rdelta)."""
    VC.check_rbackward(X, RX, W, VW, Y, RS, D, RD, act, RdW, Rdb, DX, RDX)
    _check_curvature_act(act)
    _blas_dims(X, W, RD.reshape(-1, RD.shape[2]))
    _K.dense_rbackward(X, RX, RX is not None, W, VW, Y, RS, D, RD, int(act), RdW, Rdb,
                       DX, RDX, DX is not None)


for _row in _losses.rop_kernels():
    globals()[_row.name] = VC.checked_rop(_row, getattr(_K, _row.name), __name__)
del _row


def jacobian_rows(A, D, out, offset):
    """Per-row gradients of one dense layer into columns ``offset:`` of ``out``."""
    VC.check_jacobian_rows(A, D, out, offset)
    _K.jacobian_rows(A, D, out, int(offset))


def ggn_rows_softmax(P, J):
    """J rows (K per sample) := (diag sqrt p - sqrt p p^T) J_n."""
    VC.check_ggn_rows_softmax(P, J)
    _K.ggn_rows_softmax(P, J, np.empty(J.shape[1], J.dtype))


def syrk(A, C, alpha=1.0, beta=0.0):
    """C := alpha A^T A + beta C (both triangles)."""
    VC.check_syrk(A, C, alpha, beta)
    VC.check_real(alpha=alpha, beta=beta)
    _blas_dims(A, C)
    if A.shape[0] == 0:
        C *= beta
        return
    _K.syrk(A, C, float(alpha), float(beta))


def cholesky_solve(A, b, x):
    """x := A^{-1} b by Cholesky (LAPACK); A unchanged. True on success."""
    VC.check_cholesky_solve(A, b, x)
    _blas_dims(A)
    L = np.array(A, order="C", copy=True)
    np.copyto(x, b)
    info = _K.cholesky_solve(L, x)
    return info == 0 and bool(np.all(np.isfinite(x)))
