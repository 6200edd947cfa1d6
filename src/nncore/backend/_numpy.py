"""The NumPy reference backend: the specification every compiled kernel must match.

Design
------
* Every function here has a twin with the *same name and signature* in
  ``_cython.py`` (a test asserts it). Layers, optimizers and ``fit`` only ever
  call the backend chosen by ``nncore.backend.current()``.
* Outputs are caller-allocated (``out=``-style arguments) so the training loop
  allocates nothing per step. Arrays are C-contiguous, 2-D where a matrix is
  meant, and share one floating dtype (float32 or float64) unless stated.
* Validation happens in :mod:`nncore.backend._validate`, shared by both
  backends, *before* any computation, so a bad call changes nothing.
* Operation order follows ``torch.optim``'s ``_single_tensor_*`` code for the
  optimizer updates, because order fixes rounding. Scalars stay Python floats
  (NumPy 2 promotion: an ``np.float64`` scalar would upcast float32 arrays).

Activations and losses are specified in their registries
(:mod:`nncore.activations`, :mod:`nncore.losses`): the functions here validate
and call the registry's NumPy reference, so each rule is written once. Every
activation derivative is computed from the layer *output* ``Y``.
"""

from __future__ import annotations

import numpy as np

from .. import activations as _activations
from .. import losses as _losses
from . import _curvature_numpy
from . import _validate as V
from ._curvature_numpy import (  # noqa: F401 - re-exported backend API
    cholesky_solve, dense_rbackward, dense_rforward, ggn_rows_softmax, jacobian_rows, syrk)

NAME = "numpy"
FUSED_LOOP = False   # no train_epoch: training runs through the Python step loop


# --------------------------------------------------------------------------- BLAS-like

def gemm(A, B, C, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """C := alpha * op(A) @ op(B) + beta * C   (in place)."""
    V.check_gemm(A, B, C, trans_a, trans_b)
    V.check_real(alpha=alpha, beta=beta)
    a = A.T if trans_a else A
    b = B.T if trans_b else B
    prod = a @ b
    if beta == 0.0:
        np.multiply(prod, alpha, out=C) if alpha != 1.0 else np.copyto(C, prod)
    else:
        C *= beta
        C += alpha * prod if alpha != 1.0 else prod


def sum_squares(x):
    """Return sum(x*x) over a 1-D array, accumulated in float64."""
    V.check_vector(x, "x")
    x64 = x.astype(np.float64, copy=False)
    return float(np.dot(x64, x64))


def multiply(a, b, out):
    """out := a * b elementwise (same shape and dtype; out may alias a or b)."""
    V.check_same(a, b, out)
    np.multiply(a, b, out=out)


def add(a, b, out):
    """out := a + b elementwise (same shape and dtype; out may alias a or b)."""
    V.check_same(a, b, out)
    np.add(a, b, out=out)


# --------------------------------------------------------------------------- activations

def activation_forward(S, act, out):
    """out := f(S) (out may be S)."""
    f = V.check_act(act)
    V.check_same(S, out)
    f.forward(S, out)


def activation_backward(Y, dY, act, out):
    """out := dY * f'(S), with f' computed from Y = f(S) (out may be dY)."""
    f = V.check_act(act)
    V.check_same(Y, dY, out)
    f.backward(Y, dY, out)


# --------------------------------------------------------------------------- dense layer

def dense_forward(X, W, b, act, out):
    """out := f(X @ W + b);  X (N, n_in), W (n_in, n_out), b (n_out,), out (N, n_out)."""
    V.check_dense_forward(X, W, b, act, out)
    np.matmul(X, W, out=out)
    out += b
    _activations.by_code(act).forward(out, out)


def dense_backward(X, W, Y, dY, act, dW, db, dX):
    """Backward pass of a dense layer.

    dY := dY * f'(Y)  (overwritten with the layer's delta),
    dW := X^T @ delta,  db := sum over rows of delta,
    dX := delta @ W^T   (skipped when dX is None, e.g. for the first layer).
    """
    V.check_dense_backward(X, W, Y, dY, act, dW, db, dX)
    _activations.by_code(act).backward(Y, dY, dY)
    np.matmul(X.T, dY, out=dW)
    np.sum(dY, axis=0, out=db)
    if dX is not None:
        np.matmul(dY, W.T, out=dX)


# --------------------------------------------------------------------------- losses

def softmax(logits, out):
    """out := row-wise softmax(logits) (out may be logits)."""
    V.check_softmax(logits, out)
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    np.divide(e, e.sum(axis=1, keepdims=True), out=out)


def sigmoid(x, out):
    """out := 1 / (1 + exp(-x)) elementwise, stably (out may be x)."""
    V.check_same(x, out)
    _activations.sigmoid(x, out)


# loss_mse, loss_softmax_ce, ...: one function per kernel the loss registry names
# (the compiled backend builds its twins from the same table).
def _loss_function(row):
    """The backend function of one loss-table row (checks, then the reference)."""
    return V.checked_loss(row, row.reference, __name__)


for _row in _losses.backend_kernels():
    globals()[_row.name] = _loss_function(_row)
del _row
# and the loss R-operators loss_mse_rop, ... (built in _curvature_numpy)
for _name in _curvature_numpy.LOSS_ROPS:
    globals()[_name] = getattr(_curvature_numpy, _name)
del _name


# --------------------------------------------------------------------------- regularisation

def regularize(params, grads, segments, l1, l2):
    """Weights-only penalty over the flat buffer.

    ``segments`` is an int64 array (k, 2) of [start, stop) ranges of weights
    (biases are never penalised). Returns ``l1*sum|w| + l2*sum w^2`` over the
    segments (float64 accumulation); if ``grads`` is not None adds
    ``l1*sign(w) + 2*l2*w`` to it (sign(0) = 0).
    """
    V.check_regularize(params, grads, segments, l1, l2)
    pen = 0.0
    for start, stop in segments:
        w = params[start:stop]
        w64 = w.astype(np.float64, copy=False)
        if l1 != 0.0:
            pen += l1 * float(np.sum(np.abs(w64)))
        if l2 != 0.0:
            pen += l2 * float(np.dot(w64, w64))
        if grads is not None:
            g = grads[start:stop]
            if l1 != 0.0:
                g += l1 * np.sign(w)
            if l2 != 0.0:
                g += (2.0 * l2) * w
    return pen


# --------------------------------------------------------------------------- dropout / RNG

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def uniform_counter(seed, counter, n):
    """The counter-based generator shared by both backends: u_i in [0, 1),

    u_i = (splitmix64(seed + (counter + i + 1) * golden) >> 11) * 2**-53.
    Stateless, so a mask can be regenerated from (seed, counter) alone.
    """
    with np.errstate(over="ignore"):
        k = np.arange(1, n + 1, dtype=np.uint64) + np.uint64(counter % (1 << 64))
        z = np.uint64(seed % (1 << 64)) + k * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


def dropout_mask(seed, counter, rate, mask):
    """mask[i] := (u_i >= rate) / (1 - rate) with u from :func:`uniform_counter`.

    ``mask`` is any C-contiguous float array (filled in flat order).
    """
    V.check_dropout(seed, counter, rate, mask)
    u = uniform_counter(seed, counter, mask.size).reshape(mask.shape)
    scale = 1.0 / (1.0 - rate)
    np.copyto(mask, np.where(u >= rate, scale, 0.0))


# --------------------------------------------------------------------------- batching

def gather_rows(X, idx, out):
    """out[i, :] := X[idx[i], :]  (float32 <-> float64 conversion allowed)."""
    V.check_gather_rows(X, idx, out)
    np.take(X, idx, axis=0, out=out) if X.dtype == out.dtype else np.copyto(out, X[idx])


def gather(y, idx, out):
    """out[i] := y[idx[i]] for 1-D arrays (int64 labels or floats)."""
    V.check_gather(y, idx, out)
    np.take(y, idx, out=out) if y.dtype == out.dtype else np.copyto(out, y[idx])


# --------------------------------------------------------------------------- optimizers
# Transcriptions of torch.optim's _single_tensor_* loops over one flat buffer.
# ``gscale`` multiplies the gradient first (gradient-norm clipping without
# touching the caller's gradient array); it is exactly 1.0 when not clipping.

def _g(grads, gscale):
    return grads if gscale == 1.0 else grads * gscale


def sgd_step(params, grads, buf, lr, momentum, dampening, nesterov, first, gscale):
    """torch.optim.SGD: b = mu b + (1-dampening) g (b = g on the first step);
    p -= lr * (g + mu b if nesterov else b); plain p -= lr g when mu == 0."""
    V.check_opt(params, grads, buf, unused=(0,) if momentum == 0.0 else ())
    V.check_real(lr=lr, momentum=momentum, dampening=dampening, gscale=gscale)
    g = _g(grads, gscale)
    if momentum != 0.0:
        if first:
            np.copyto(buf, g)
        else:
            buf *= momentum
            buf += (1.0 - dampening) * g
        if nesterov:
            g = g + momentum * buf
        else:
            g = buf
    params += (-lr) * g


def adagrad_step(params, grads, state_sum, clr, eps, eps_inside_sqrt, gscale):
    """torch.optim.Adagrad: s += g*g; p -= clr * g / (sqrt(s) + eps)
    (``eps_inside_sqrt``: p -= clr * g / sqrt(s + eps))."""
    V.check_opt(params, grads, state_sum)
    V.check_real(clr=clr, eps=eps, gscale=gscale)
    g = _g(grads, gscale)
    state_sum += g * g
    std = np.sqrt(state_sum + eps) if eps_inside_sqrt else np.sqrt(state_sum) + eps
    params += (-clr) * (g / std)


def rmsprop_step(params, grads, square_avg, lr, alpha, eps, eps_inside_sqrt, gscale):
    """torch.optim.RMSprop: v = alpha v + (1-alpha) g*g; p -= lr * g / (sqrt(v) + eps)."""
    V.check_opt(params, grads, square_avg)
    V.check_real(lr=lr, alpha=alpha, eps=eps, gscale=gscale)
    g = _g(grads, gscale)
    square_avg *= alpha
    square_avg += (1.0 - alpha) * (g * g)
    avg = np.sqrt(square_avg + eps) if eps_inside_sqrt else np.sqrt(square_avg) + eps
    params += (-lr) * (g / avg)


def _adam_scalars(lr, beta1, beta2, step, weight_decay):
    """Adam's per-step scalars in Python double, as torch's ``_single_tensor_adam``
    forms them (the compiled backend's adam_step uses these too):
    ``(decay, w, bc2, step_size)`` with ``decay = 1 - lr*weight_decay`` (1.0 without
    decoupled decay), ``w = 1 - beta1`` (the lerp weight), ``bc2 = 1 - beta2**step``
    and ``step_size = lr / (1 - beta1**step)``."""
    decay = 1.0 - lr * weight_decay if weight_decay != 0.0 else 1.0
    return decay, 1.0 - beta1, 1.0 - beta2 ** step, lr / (1.0 - beta1 ** step)


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
    decay, w, bc2, step_size = _adam_scalars(lr, beta1, beta2, step, weight_decay)
    g = _g(grads, gscale)
    if weight_decay != 0.0:
        params *= decay
    # torch's lerp: self + w*(end-self) for w < 0.5, else end - (end-self)*(1-w)
    if w < 0.5:
        exp_avg += w * (g - exp_avg)
    else:
        np.copyto(exp_avg, g - (g - exp_avg) * (1.0 - w))
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * (g * g)
    if eps_inside_sqrt:
        denom = np.sqrt(exp_avg_sq / bc2 + eps)
    else:
        denom = np.sqrt(exp_avg_sq) / (bc2 ** 0.5) + eps
    params += (-step_size) * (exp_avg / denom)


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
    dt = params.dtype.type
    prod = grads * prev
    change = prod < 0
    # Factors in the parameters' dtype, as torch writes them into a tensor of it.
    factor = np.where(prod > 0, dt(eta_plus), np.where(change, dt(eta_minus), dt(1.0)))
    d = step_size * factor
    lo, hi = dt(step_min), dt(step_max)
    d = np.where(d < lo, lo, d)     # the kernel's two comparisons (NaN stays NaN)
    d = np.where(d > hi, hi, d)
    np.copyto(step_size, d)
    g = np.where(change, dt(0.0), grads) if zero_on_change else grads
    upd = np.where(g > 0, d, np.where(g < 0, -d, dt(0.0)))
    if backtrack:
        keep = ~change
        np.subtract(params, upd, out=params, where=keep)
        if revert:
            np.subtract(params, delta_w, out=params, where=change)
            np.copyto(delta_w, np.where(change, -delta_w, -upd))
        else:
            np.copyto(delta_w, np.where(change, dt(0.0), -upd))
    else:
        params -= upd
    np.copyto(prev, g)


# --------------------------------------------------------------------------- full-batch helpers

def symv(A, x, out):
    """out := A @ x for a symmetric (n, n) matrix A (both triangles stored)."""
    V.check_symv(A, x, out)
    np.matmul(A, x, out=out)


def bfgs_update(Vm, s, r):
    """In-place inverse-Hessian BFGS update (the lecture's form), O(n^2):

    rho = 1 / (s^T r);  V := (I - rho s r^T) V (I - rho r s^T) + rho s s^T
       = V - rho (s u^T + u s^T) + (rho^2 r^T u + rho) s s^T,  u = V r.
    Caller guarantees s^T r > 0. Both triangles are updated.
    """
    V.check_rank2(Vm, s, r)
    rho = 1.0 / float(np.dot(s, r))
    u = Vm @ r
    c = rho * rho * float(np.dot(r, u)) + rho
    Vm -= rho * (np.outer(s, u) + np.outer(u, s))
    Vm += c * np.outer(s, s)


def dfp_update(Vm, s, r):
    """In-place inverse-Hessian DFP update, O(n^2):

    V := V + s s^T / (s^T r) - (V r)(V r)^T / (r^T V r).
    Caller guarantees s^T r > 0 (then r^T V r > 0 for positive definite V).
    """
    V.check_rank2(Vm, s, r)
    u = Vm @ r
    Vm += np.outer(s, s) / float(np.dot(s, r))
    Vm -= np.outer(u, u) / float(np.dot(r, u))
