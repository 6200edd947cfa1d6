"""The training step, twice: one readable Python step loop and the checks of the
compiled epoch loop that fuses it.

Design
------
* A step: batch (rows ``order[j*B : (j+1)*B]`` gathered into the network dtype,
  or the whole set) -> forward, loss, backward, penalty -> if the loss is not
  finite stop -> copy the parameters to ``workspace["backup"]`` -> optimizer
  update -> if the parameters are not finite stop. So on divergence the
  backup holds the last parameters whose loss was finite (``Network.fit``
  puts them back).
* :func:`step_loop` is that step in Python over callables: ``Network.fit``
  runs it per step (with the hooks augmentation and per-batch callbacks need,
  and any optimizer's ``step``), and :func:`reference_epoch` runs it over a
  network given as layer tuples, as the twin of the compiled loop.
* The compiled loop (``_train_loop.pxi``, reached through
  ``nncore.backend._cython.train_epoch``) runs the same kernels in one
  ``nogil`` loop and gives bit-identical parameters, optimizer state and
  losses (tests/test_train_loop.py). It runs an optimizer from its
  :class:`FusedUpdate` (the optimizer's own lowering, see
  ``nncore.optim.Optimizer.fused_update``).
* :func:`check_train_epoch` validates everything the compiled loop accepts,
  before anything is computed, so it never sees an index or a shape it could
  misuse, and a rejected call changes nothing.

Arguments of ``train_epoch``
----------------------------
X : (n, d) float32/float64, C-contiguous (may differ from the network dtype).
T : (n,) int64 labels for ``loss="cross_entropy"`` with labels, else (n, K)
    float32/float64 targets.
order : (n,) int64, the epoch's order (a permutation of ``range(n)`` or any
    rows in ``[0, n)``).
batch_size : int >= 1.  stop : int, ``state["step"] <= stop <= ceil(n / B)``.
params, grads : flat buffers of the network dtype.
layers : sequence of ``("dense", n_in, n_out, act, offset)`` (``W`` at
    ``params[offset : offset + n_in*n_out]`` in C order, ``b`` right after),
    ``("residual_dense", n, n, act, offset)`` (the same with a shortcut:
    ``x + f(x W + b)``) and ``("dropout", width, rate)`` with ``0 < rate < 1``.
loss : a name in ``nncore.losses.NAMES``.
segments, l1, l2 : the weights-only penalty of ``regularize``.
optimizer : :class:`FusedUpdate`; its buffers are updated in place.
drop_seed : int >= 0, the dropout stream's seed.
state : dict, see :data:`STATE_KEYS`; read at the start and updated in place.
workspace : dict kept by the caller between calls (buffers are created on
    first use); ``workspace["backup"]`` holds the parameters from before the
    last update taken.
weight : None, or (n,) float64 sample weights (checked by ``fit``): each
    step's data loss is then ``sum w l / sum w`` over its batch (the batch's
    row coefficients ``w / sum w``, summed in row order, are the same bits in
    both loops; all-zero weights give coefficients 0).

The result is in ``state``: ``step`` (next batch; on divergence the batch
whose loss or update was not finite), ``opt_step``, ``counter``, ``loss_sum``
(sum of the step losses, each batch-mean data loss plus penalty, added in
order), ``correct``, ``loss`` (last step's loss), ``grad_norm`` (last norm
when clipping), ``diverged`` and ``have_backup``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import losses as _losses
from .._checks import flag, integer, real
from . import _validate as V

# Layer kinds of the parsed layer tuples, by the name a layer's loop_specs gives
# (the compiled loop's TL_* codes: nncore.backend._cython checks at import that
# the extension's LOOP_LAYER_KINDS is this table).
DENSE = 0
DROPOUT = 1
RESIDUAL = 2     # a Dense layer with a shortcut (nc.Residual(nc.Dense(n, n)))
LOOP_LAYER_KINDS = {"dense": DENSE, "dropout": DROPOUT, "residual_dense": RESIDUAL}

STATE_KEYS = ("step", "opt_step", "counter", "loss_sum", "correct", "count", "loss",
              "grad_norm", "diverged", "have_backup")
# The largest size BLAS takes (the compiled kernels' blas_int; nncore.backend._cython
# checks it against the extension's BLAS_INT_MAX at import).
BLAS_INT_MAX = 2**31 - 1


class FusedUpdate(NamedTuple):
    """How the compiled epoch loop runs an optimizer (its lowering).

    Attributes
    ----------
    kind : str
        The update rule the loop runs (a key of the loop's ``LOOP_OPTIMIZERS``:
        ``"sgd"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``).
    hyper : dict
        Its hyper-parameters by name (the names that rule reads; ``"lr"`` is
        the rate of the current epoch, ``"clip_norm"`` None or > 0).
    buffers : tuple of ndarray
        The optimizer's state arrays in the rule's order, updated in place.
    """

    kind: str
    hyper: dict
    buffers: tuple


def new_state(opt_step=0, counter=0, count=False):
    """A fresh ``state`` dict for the first call of an epoch."""
    return {"step": 0, "opt_step": int(opt_step), "counter": int(counter), "loss_sum": 0.0,
            "correct": 0, "count": bool(count), "loss": math.nan, "grad_norm": None,
            "diverged": False, "have_backup": False}


# --------------------------------------------------------------------------- checks

def _check_dense(spec, i, width, P):
    if len(spec) != 5:
        raise ValueError(f"layers[{i}] must be ('dense', n_in, n_out, act, offset)")
    n_in = integer(spec[1], f"layers[{i}] n_in", low=1)
    n_out = integer(spec[2], f"layers[{i}] n_out", low=1)
    V.check_act(spec[3])
    offset = integer(spec[4], f"layers[{i}] offset", low=0)
    if n_in != width:
        raise ValueError(f"layers[{i}] has n_in={n_in} but its input has width {width}")
    if max(n_in, n_out) > BLAS_INT_MAX:
        raise ValueError(f"layers[{i}] is wider than the BLAS limit {BLAS_INT_MAX}")
    if offset + n_in * n_out + n_out > P:
        raise ValueError(f"layers[{i}] reaches past the end of params ({P})")
    return (DENSE, n_in, n_out, int(spec[3]), offset, 0.0)


def _check_residual(spec, i, width, P):
    if len(spec) != 5:
        raise ValueError(f"layers[{i}] must be ('residual_dense', n, n, act, offset)")
    _, n_in, n_out, act, offset, _ = _check_dense(spec, i, width, P)
    if n_in != n_out:
        raise ValueError(f"layers[{i}]: a residual layer needs n_in == n_out, got "
                         f"{n_in} and {n_out}")
    return (RESIDUAL, n_in, n_out, act, offset, 0.0)


def _check_dropout(spec, i, width):
    if len(spec) != 3:
        raise ValueError(f"layers[{i}] must be ('dropout', width, rate)")
    w = integer(spec[1], f"layers[{i}] width", low=1)
    rate = real(spec[2], f"layers[{i}] rate", low=0.0, high=1.0, high_open=True)
    if w != width:
        raise ValueError(f"layers[{i}] has width {w} but its input has width {width}")
    if rate == 0.0:
        raise ValueError(f"layers[{i}]: leave out dropout layers with rate 0")
    return (DROPOUT, w, w, 0, 0, rate)


def _check_layers(layers, d, P):
    """Parsed layers: tuples (kind, n_in, n_out, act, offset, rate), kind DENSE, DROPOUT or
    RESIDUAL."""
    if isinstance(layers, (str, bytes)) or not isinstance(layers, (list, tuple)):
        raise TypeError("layers must be a list of ('dense', n_in, n_out, act, offset) / "
                        "('dropout', width, rate) tuples")
    if not layers:
        raise ValueError("layers is empty")
    parsed = []
    width = d
    for i, spec in enumerate(layers):
        if not isinstance(spec, (list, tuple)) or not spec or not isinstance(spec[0], str):
            raise TypeError(f"layers[{i}] must be a tuple starting with 'dense' or 'dropout'")
        if spec[0] == "dense":
            parsed.append(_check_dense(spec, i, width, P))
            width = parsed[-1][2]
        elif spec[0] == "residual_dense":
            parsed.append(_check_residual(spec, i, width, P))
        elif spec[0] == "dropout":
            parsed.append(_check_dropout(spec, i, width))
        else:
            raise ValueError(f"layers[{i}]: unknown layer kind {spec[0]!r}")
    if not any(op[0] in (DENSE, RESIDUAL) for op in parsed):
        raise ValueError("layers needs at least one dense layer")
    return parsed, width


def check_fused_update(update, params, loop_optimizers):
    """Validate a :class:`FusedUpdate` against the rules a loop runs.

    ``loop_optimizers`` maps each kind to ``(code, hyper-parameter names,
    allowed buffer counts)``. Returns ``update`` with ``clip_norm`` None
    replaced by 0.0 (no clipping); raises and changes nothing.
    """
    if not isinstance(update, FusedUpdate):
        raise TypeError(f"optimizer must be a FusedUpdate, got {type(update).__name__}")
    kind, hyper, buffers = update
    if kind not in loop_optimizers:
        raise ValueError(f"the epoch loop runs the optimizers {sorted(loop_optimizers)}, "
                         f"got {kind!r}")
    _, names, buffer_counts = loop_optimizers[kind]
    if not isinstance(hyper, dict) or set(hyper) != set(names):
        got = sorted(hyper) if isinstance(hyper, dict) else type(hyper).__name__
        raise ValueError(f"{kind} needs the hyper-parameters {sorted(names)}, got {got}")
    checked = {}
    for name, value in hyper.items():
        if name == "clip_norm" and value is None:
            value = 0.0
        checked[name] = (flag(value, name) if isinstance(value, (bool, np.bool_))
                         else real(value, name, low=0.0))
    if not isinstance(buffers, (tuple, list)):
        raise TypeError("optimizer buffers must be a tuple of arrays")
    if len(buffers) not in buffer_counts:
        raise ValueError(f"{kind} needs {' or '.join(map(str, buffer_counts))} state "
                         f"buffer(s), got {len(buffers)}")
    for i, b in enumerate(buffers):
        V.check_float(b, f"optimizer buffer {i}", 1, writable=True)
        V.check_dtype(params.dtype, **{f"optimizer buffer {i}": b})
        if b.shape != params.shape:
            raise ValueError(f"optimizer buffer {i} must have the length of params")
        V.check_disjoint(b, f"optimizer buffer {i}", params=params)
        for k, c in enumerate(buffers[:i]):
            V.check_disjoint(b, f"optimizer buffer {i}", **{f"optimizer buffer {k}": c})
    return FusedUpdate(kind, checked, tuple(buffers))


def _check_state(state):
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise ValueError(f"state lacks the keys {missing} (see new_state)")
    integer(state["step"], "state['step']", low=0)
    integer(state["opt_step"], "state['opt_step']", low=0)
    integer(state["counter"], "state['counter']", low=0)
    integer(state["correct"], "state['correct']", low=0)
    V.check_real(loss_sum=state["loss_sum"], loss=state["loss"])
    flag(state["count"], "state['count']")
    flag(state["have_backup"], "state['have_backup']")
    flag(state["diverged"], "state['diverged']")
    if state["diverged"]:
        raise ValueError("state records a divergence; start a new state")


def _check_targets(T, spec, n, K):
    """Integer labels (losses that take them) or (n, K) float targets."""
    V._arr(T, "T")
    if spec.takes_labels(T):
        if T.dtype != np.int64 or not T.flags.c_contiguous:
            raise TypeError("labels T must be a C-contiguous 1-D int64 array")
        if T.shape[0] != n:
            raise ValueError(f"T has {T.shape[0]} labels for {n} rows")
        if K < spec.min_outputs:
            raise ValueError(f"{spec.name} needs at least {spec.min_outputs} outputs")
        if T.min() < 0 or T.max() >= K:
            raise ValueError(f"labels must lie in [0, {K})")
        return
    V.check_float(T, "T", 2)
    if T.shape != (n, K):
        raise ValueError(f"T must have shape {(n, K)}, got {T.shape}")


def _check_order(order, n, rows_used):
    V._arr(order, "order")
    if order.dtype != np.int64 or order.ndim != 1 or not order.flags.c_contiguous:
        raise TypeError("order must be a C-contiguous 1-D int64 array")
    if order.shape[0] != n:
        raise ValueError(f"order has length {order.shape[0]}, X has {n} rows")
    used = order[rows_used]
    if used.size and (used.min() < 0 or used.max() >= n):
        raise ValueError(f"order must hold row indices in [0, {n})")


def check_sample_weight(weight, n, *outputs):
    """None, or float64 C-contiguous ``(n,)`` sample weights that no output overlaps
    (values are the caller's: ``fit`` checked them)."""
    if weight is None:
        return
    V._arr(weight, "weight")
    if weight.dtype != np.float64 or weight.ndim != 1 or not weight.flags.c_contiguous:
        raise TypeError("weight must be a C-contiguous 1-D float64 array")
    if weight.shape[0] != n:
        raise ValueError(f"weight has {weight.shape[0]} entries for {n} rows")
    for i, out in enumerate(outputs):
        V.check_disjoint(out, f"output {i}", weight=weight)


def check_epoch(X, T, order, batch_size, stop, params, grads, layers, loss, segments, l1, l2,
                drop_seed, state, workspace, weight=None):
    """Validate the arguments of ``train_epoch`` other than the optimizer.

    Returns ``(ops, loss_spec, K)``: parsed layers, the loss's registry entry
    (:class:`nncore.losses.Loss`) and the output width. Raises
    ``TypeError``/``ValueError`` and changes nothing.
    """
    V.check_float(X, "X", 2)
    V.check_nonempty(X, "X")
    n, d = X.shape
    V.check_float(params, "params", 1, writable=True)
    V.check_float(grads, "grads", 1, writable=True)
    V.check_dtype(params.dtype, grads=grads)
    if grads.shape != params.shape:
        raise ValueError(f"grads has length {grads.shape[0]}, params {params.shape[0]}")
    V.check_nonempty(params, "params")
    V.check_disjoint(grads, "grads", params=params, X=X)
    V.check_disjoint(params, "params", X=X)
    if not isinstance(loss, str) or loss not in _losses.REGISTRY:
        raise ValueError(f"loss must be one of {list(_losses.NAMES)}, got {loss!r}")
    spec = _losses.REGISTRY[loss]
    ops, K = _check_layers(layers, d, params.shape[0])
    B = integer(batch_size, "batch_size", low=1)
    if B > BLAS_INT_MAX:
        raise ValueError(f"batch_size exceeds the BLAS limit {BLAS_INT_MAX}")
    _check_state(state)
    if not isinstance(workspace, dict):
        raise TypeError(f"workspace must be a dict, got {type(workspace).__name__}")
    n_steps = -(-n // B)
    stop = integer(stop, "stop", low=0)
    if not state["step"] <= stop <= n_steps:
        raise ValueError(f"stop must lie in [state['step'], {n_steps}], got {stop}")
    _check_targets(T, spec, n, K)
    V.check_disjoint(params, "params", T=T)
    V.check_disjoint(grads, "grads", T=T)
    _check_order(order, n, slice(state["step"] * B, stop * B))
    V.check_regularize(params, grads, segments, l1, l2)
    integer(drop_seed, "drop_seed", low=0)
    check_sample_weight(weight, n, params, grads)
    return ops, spec, K


def check_train_epoch(X, T, order, batch_size, stop, params, grads, layers, loss, segments,
                      l1, l2, optimizer, drop_seed, state, workspace, loop_optimizers,
                      weight=None):
    """Validate all arguments of the compiled ``train_epoch``.

    Returns ``(ops, loss_spec, K, update)`` (see :func:`check_epoch` and
    :func:`check_fused_update`); raises and changes nothing.
    """
    ops, spec, K = check_epoch(X, T, order, batch_size, stop, params, grads, layers, loss,
                               segments, l1, l2, drop_seed, state, workspace, weight)
    update = check_fused_update(optimizer, params, loop_optimizers)
    for i, b in enumerate(update.buffers):
        V.check_disjoint(b, f"optimizer buffer {i}", grads=grads, X=X, T=T, order=order)
        check_sample_weight(weight, X.shape[0], b)
    return ops, spec, K, update


# --------------------------------------------------------------------------- the Python step loop

def _workspace(ws, key, shape, dtype):
    a = ws.get(key)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = ws[key] = np.empty(shape, dtype)
    return a


def _gather_batch(be, X, T, rows, dtype, ws):
    """The batch ``X[rows], T[rows]`` in the workspace (float64 data converted row by row)."""
    r = rows.shape[0]
    xb = _workspace(ws, "batch_x", (ws["batch_rows"], X.shape[1]), dtype)[:r]
    be.gather_rows(X, rows, xb)
    if T.ndim == 1:
        tb = _workspace(ws, "batch_t", (ws["batch_rows"],), T.dtype)[:r]
        be.gather(T, rows, tb)
    else:
        tb = _workspace(ws, "batch_t", (ws["batch_rows"], T.shape[1]), dtype)[:r]
        be.gather_rows(T, rows, tb)
    return xb, tb


def _augmented(augment, xb, whole_set):
    """``augment(xb)`` checked, in the batch buffer (a new array for the whole set)."""
    xa = augment(xb)
    if not isinstance(xa, np.ndarray) or xa.shape != xb.shape:
        raise ValueError(f"augment returned {type(xa).__name__} of shape "
                         f"{getattr(xa, 'shape', None)}, expected {xb.shape}")
    if whole_set:
        return np.ascontiguousarray(xa)
    if xa is not xb:
        np.copyto(xb, xa)
    return xb


def _batch_coefficients(be, weight, rows, ws):
    """Row coefficients ``w / sum(w)`` of the batch ``rows`` (None: unweighted), in the
    workspace; the sum runs in row order, as the compiled loop sums it."""
    if weight is None:
        return None
    if rows is None:
        return _losses.row_coefficients(weight)
    r = rows.shape[0]
    wb = _workspace(ws, "batch_w", (ws["batch_rows"],), np.float64)[:r]
    total = _workspace(ws, "batch_wsum", (ws["batch_rows"],), np.float64)[:r]
    be.gather(weight, rows, wb)
    np.cumsum(wb, out=total)
    if total[-1] == 0.0:
        wb.fill(0.0)        # a batch of zero weights carries no loss
    else:
        wb /= total[-1]
    return wb


def step_loop(be, X, T, order, batch_size, stop, params, loss_and_grad, update, state,
              workspace, augment=None, on_batch=None, weight=None):
    """Run steps ``state["step"] .. stop-1`` of an epoch in Python (the reference step).

    Parameters
    ----------
    be : backend module (gathers the batches).
    X, T : the training set (``T`` 1-D int64 labels or 2-D targets).
    order : (n,) int64 or None
        Batch ``j`` is the rows ``order[j*B : (j+1)*B]``; None: every step
        sees the whole set ``X, T`` as it is (one step per epoch).
    batch_size, stop : int
    params : the flat parameter buffer (``update`` changes it in place).
    loss_and_grad : callable (xb, tb, cb) -> (loss, correct)
        Forward, loss, backward and penalty of one batch: the step's loss
        (batch-mean data loss plus penalty) and its correct-prediction count.
        ``cb``: None, or the batch's float64 row coefficients ``w / sum(w)``
        (the weighted mean replaces the mean).
    update : callable () -> None
        The optimizer step from the gradient ``loss_and_grad`` left.
    state, workspace : dicts as for ``train_epoch`` (``opt_step`` and
        ``grad_norm`` are the caller's to keep).
    augment : callable xb -> xb, optional
        Applied to each gathered batch.
    on_batch : callable (step, rows, loss) -> None, optional
        Called after each completed step.
    weight : (n,) float64, optional
        Sample weights of the rows of ``X`` (each step's data loss is then
        ``sum w l / sum w`` over its batch; a batch whose weights are all zero
        has data loss 0 and no data gradient).

    On a loss or an update that is not finite, ``state["diverged"]`` is set,
    ``state["step"]`` is that step and ``workspace["backup"]`` holds the last
    parameters whose loss was finite (if ``state["have_backup"]``).
    """
    n = X.shape[0]
    B = n if order is None else int(batch_size)
    workspace["batch_rows"] = B
    backup = _workspace(workspace, "backup", params.shape, params.dtype)
    finite = _workspace(workspace, "finite", params.shape, np.bool_)
    for j in range(state["step"], stop):
        rows = None if order is None else order[j * B:(j + 1) * B]
        if order is None:
            xb, tb = X, T
        else:
            xb, tb = _gather_batch(be, X, T, rows, params.dtype, workspace)
        if augment is not None:
            xb = _augmented(augment, xb, order is None)
        loss, correct = loss_and_grad(xb, tb, _batch_coefficients(be, weight, rows, workspace))
        state["loss"] = loss
        if not math.isfinite(loss):
            break
        np.copyto(backup, params)
        state["have_backup"] = True
        try:
            update()
        except KeyboardInterrupt:
            np.copyto(params, backup)   # undo a half-applied update
            raise
        if not np.isfinite(params, out=finite).all():
            break
        state["loss_sum"] += loss
        state["correct"] += correct
        state["step"] = j + 1
        if on_batch is not None:
            on_batch(j, xb.shape[0], loss)
    else:
        return
    state["diverged"] = True
    state["step"] = j


# --------------------------------------------------------------------------- reference

def _layer_buffers(ops, B, K, params, grads, ws):
    """Per layer (out, mask, dx, views): the forward/backward buffers of a batch of B rows."""
    dt = params.dtype
    layers = []
    seen_dense = False
    for i, (kind, n_in, n_out, act, off, rate) in enumerate(ops):
        learned = kind in (DENSE, RESIDUAL)
        out = _workspace(ws, f"ref_out{i}", (B, n_out), dt)
        # the dropout mask, or a residual layer's f(S)
        mask = (_workspace(ws, f"ref_mask{i}", (B, n_out), dt) if kind in (DROPOUT, RESIDUAL)
                else None)
        dx = _workspace(ws, f"ref_dx{i}", (B, n_in), dt) if learned and seen_dense else None
        views = None
        if learned:
            nw = n_in * n_out
            views = (params[off:off + nw].reshape(n_in, n_out), params[off + nw:off + nw + n_out],
                     grads[off:off + nw].reshape(n_in, n_out), grads[off + nw:off + nw + n_out])
        seen_dense = seen_dense or learned
        layers.append((out, mask, dx, views))
    return layers, _workspace(ws, "ref_gout", (B, K), dt)


def _tuple_network(be, ops, spec, K, B, params, grads, segments, l1, l2, drop_seed, state, ws):
    """``loss_and_grad`` of the network given as parsed layer tuples (as ``Network._loss_grad``
    followed by ``Network._penalty``), over the functions of backend ``be``."""
    buffers, gout = _layer_buffers(ops, B, K, params, grads, ws)
    seed = int(drop_seed)
    has_penalty = l1 != 0.0 or l2 != 0.0

    def loss_and_grad(xb, tb, cb=None):
        r = xb.shape[0]
        h, inputs = xb, []
        for (kind, n_in, n_out, act, off, rate), (out, mask, _, views) in zip(ops, buffers):
            inputs.append(h)
            if kind == DENSE:
                be.dense_forward(h, views[0], views[1], act, out[:r])
            elif kind == RESIDUAL:      # as Residual.forward
                be.dense_forward(h, views[0], views[1], act, mask[:r])
                be.add(h, mask[:r], out[:r])
            else:
                be.dropout_mask(seed, state["counter"], rate, mask[:r])
                state["counter"] += r * n_out
                be.multiply(h, mask[:r], out[:r])
            h = out[:r]
        g = gout[:r]
        J = spec.value_and_grad(be, h, tb, g, cb)
        correct = spec.count_correct(h, tb) if state["count"] else 0
        for i in range(len(ops) - 1, -1, -1):
            out, mask, dx, views = buffers[i]
            if ops[i][0] == DROPOUT:
                be.multiply(g, mask[:r], g)
                continue
            dx = dx[:r] if dx is not None else None
            if ops[i][0] == RESIDUAL:   # as Residual.backward (out[:r] keeps g)
                if dx is not None:
                    np.copyto(out[:r], g)
                be.dense_backward(inputs[i], views[0], mask[:r], g, ops[i][3], views[2],
                                  views[3], dx)
                if dx is not None:
                    be.add(dx, out[:r], dx)
            else:
                be.dense_backward(inputs[i], views[0], out[:r], g, ops[i][3], views[2],
                                  views[3], dx)
            if dx is None:
                break
            g = dx
        penalty = be.regularize(params, grads, segments, l1, l2) if has_penalty else 0.0
        return J + penalty, correct

    return loss_and_grad


def reference_epoch(be, X, T, order, batch_size, stop, params, grads, layers, loss, segments,
                    l1, l2, optimizer, drop_seed, state, workspace, weight=None):
    """``train_epoch`` through :func:`step_loop` over the functions of backend ``be``.

    The arguments of ``train_epoch``, except that ``optimizer`` is an
    optimizer (anything with ``step(params, grads)``, ``iterations`` and
    ``grad_norm``, e.g. ``nncore.optim.Adam``) instead of its lowering; its
    step runs on the active backend. ``state["opt_step"]`` and
    ``state["grad_norm"]`` are read back from it.
    """
    ops, spec, K = check_epoch(X, T, order, batch_size, stop, params, grads, layers, loss,
                               segments, l1, l2, drop_seed, state, workspace, weight)
    loss_and_grad = _tuple_network(be, ops, spec, K, int(batch_size), params, grads, segments,
                                   l1, l2, drop_seed, state, workspace)
    try:
        step_loop(be, X, T, order, batch_size, stop, params, loss_and_grad,
                  lambda: optimizer.step(params, grads), state, workspace, weight=weight)
    finally:
        state["opt_step"] = optimizer.iterations
        state["grad_norm"] = optimizer.grad_norm
