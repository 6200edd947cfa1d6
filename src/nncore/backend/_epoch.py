"""``train_epoch``: the arguments both backends share, their checks, and the
Python-orchestrated reference loop.

Design
------
* ``train_epoch`` runs the mini-batches ``state["step"] .. stop-1`` of one
  epoch: batch ``j`` holds the rows ``order[j*B : (j+1)*B]`` (the last one may
  be smaller). Per step: gather rows (float64 data into a float32 network is
  converted row by row) -> forward (dense layers, dropout masks from the
  counter-based generator) -> loss and output gradient -> backward ->
  regularisation penalty and gradient -> if the loss is not finite stop ->
  copy the parameters to ``workspace["backup"]`` -> optimizer update.
* :func:`reference_epoch` is that loop in Python over the backend functions;
  it is exactly the sequence of calls ``Network.fit`` makes per step, and
  ``nncore.backend._numpy.train_epoch`` is it over the NumPy kernels. The
  compiled twin (``_train_loop.pxi``) runs the same kernels in one ``nogil``
  loop and gives bit-identical parameters and optimizer state.
* :func:`check_train_epoch` validates everything both backends accept, before
  anything is computed, so the compiled loop never sees an index or a shape it
  could misuse, and a rejected call changes nothing.

Arguments
---------
X : (n, d) float32/float64, C-contiguous (may differ from the network dtype).
T : (n,) int64 labels for ``loss="cross_entropy"`` with labels, else (n, K)
    float32/float64 targets.
order : (n,) int64, the epoch's order (a permutation of ``range(n)`` or any
    rows in ``[0, n)``).
batch_size : int >= 1.  stop : int, ``state["step"] <= stop <= ceil(n / B)``.
params, grads : flat buffers of the network dtype.
layers : sequence of ``("dense", n_in, n_out, act, offset)`` (``W`` at
    ``params[offset : offset + n_in*n_out]`` in C order, ``b`` right after) and
    ``("dropout", width, rate)`` with ``0 < rate < 1``.
loss : "mse" | "cross_entropy" | "binary_cross_entropy".
segments, l1, l2 : the weights-only penalty of ``regularize``.
optimizer : dict, see :data:`OPT_KEYS`; ``"buffers"`` holds the state arrays
    (SGD with momentum: momentum buffer; Adagrad: sum; RMSprop: square_avg;
    Adam: exp_avg, exp_avg_sq), updated in place.
drop_seed : int >= 0, the dropout stream's seed.
state : dict, see :data:`STATE_KEYS`; read at the start and updated in place.
workspace : dict kept by the caller between calls (buffers are created on
    first use); ``workspace["backup"]`` holds the parameters from before the
    last step taken.

The result is in ``state``: ``step`` (next batch; on divergence the batch
whose loss was not finite), ``opt_step``, ``counter``, ``loss_sum`` (sum of the
step losses, each batch-mean data loss plus penalty, added in order),
``correct``, ``loss`` (last step's loss), ``grad_norm`` (last norm when
clipping), ``diverged`` and ``have_backup``.
"""

from __future__ import annotations

import math

import numpy as np

from . import _validate as V

LOSSES = {"mse": 0, "cross_entropy": 1, "binary_cross_entropy": 3}   # 2: CE with probabilities
OPTIMIZERS = {"sgd": 0, "adagrad": 1, "rmsprop": 2, "adam": 3}
N_BUFFERS = {"sgd": None, "adagrad": 1, "rmsprop": 1, "adam": 2}
OPT_KEYS = ("name", "lr", "clip_norm", "weight_decay", "momentum", "dampening", "nesterov",
            "eps", "lr_decay", "eps_inside_sqrt", "alpha", "betas", "decoupled_weight_decay",
            "buffers")
OPT_DEFAULTS = {"clip_norm": None, "weight_decay": 0.0, "momentum": 0.0, "dampening": 0.0,
                "nesterov": False, "eps": 1e-8, "lr_decay": 0.0, "eps_inside_sqrt": False,
                "alpha": 0.99, "betas": (0.9, 0.999), "decoupled_weight_decay": 0.0,
                "buffers": ()}
STATE_KEYS = ("step", "opt_step", "counter", "loss_sum", "correct", "count", "loss",
              "grad_norm", "diverged", "have_backup")
_INT_MAX = 2**31 - 1
CLIP_EPS = 1e-6    # torch.nn.utils.clip_grad_norm_'s, as nncore.optim


def new_state(opt_step=0, counter=0, count=False):
    """A fresh ``state`` dict for the first call of an epoch."""
    return {"step": 0, "opt_step": int(opt_step), "counter": int(counter), "loss_sum": 0.0,
            "correct": 0, "count": bool(count), "loss": math.nan, "grad_norm": None,
            "diverged": False, "have_backup": False}


# --------------------------------------------------------------------------- checks

def _int(v, name, lo=None):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    v = int(v)
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return v


def _real(v, name, lo=None, hi=None, hi_open=True):
    V.check_real(**{name: v})
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise ValueError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {v}")
    return v


def _flag(v, name):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


def _check_layers(layers, d, P):
    """Parsed layers: tuples (kind, n_in, n_out, act, offset, rate), kind 0 dense, 1 dropout."""
    if isinstance(layers, (str, bytes)) or not isinstance(layers, (list, tuple)):
        raise TypeError("layers must be a list of ('dense', n_in, n_out, act, offset) / "
                        "('dropout', width, rate) tuples")
    if not layers:
        raise ValueError("layers is empty")
    out = []
    width = d
    seen_dense = False
    for i, spec in enumerate(layers):
        if not isinstance(spec, (list, tuple)) or not spec or not isinstance(spec[0], str):
            raise TypeError(f"layers[{i}] must be a tuple starting with 'dense' or 'dropout'")
        if spec[0] == "dense":
            if len(spec) != 5:
                raise ValueError(f"layers[{i}] must be ('dense', n_in, n_out, act, offset)")
            n_in = _int(spec[1], f"layers[{i}] n_in", 1)
            n_out = _int(spec[2], f"layers[{i}] n_out", 1)
            V.check_act(spec[3])
            off = _int(spec[4], f"layers[{i}] offset", 0)
            if n_in != width:
                raise ValueError(f"layers[{i}] has n_in={n_in} but its input has width {width}")
            if max(n_in, n_out) > _INT_MAX:
                raise ValueError(f"layers[{i}] is wider than the BLAS limit {_INT_MAX}")
            if off + n_in * n_out + n_out > P:
                raise ValueError(f"layers[{i}] reaches past the end of params ({P})")
            out.append((0, n_in, n_out, int(spec[3]), off, 0.0))
            width = n_out
            seen_dense = True
        elif spec[0] == "dropout":
            if len(spec) != 3:
                raise ValueError(f"layers[{i}] must be ('dropout', width, rate)")
            w = _int(spec[1], f"layers[{i}] width", 1)
            rate = _real(spec[2], f"layers[{i}] rate", 0.0, 1.0)
            if w != width:
                raise ValueError(f"layers[{i}] has width {w} but its input has width {width}")
            if rate == 0.0:
                raise ValueError(f"layers[{i}]: leave out dropout layers with rate 0")
            out.append((1, w, w, 0, 0, rate))
        else:
            raise ValueError(f"layers[{i}]: unknown layer kind {spec[0]!r}")
    if not seen_dense:
        raise ValueError("layers needs at least one dense layer")
    return out, width


def _check_optimizer(opt, params):
    if not isinstance(opt, dict):
        raise TypeError(f"optimizer must be a dict, got {type(opt).__name__}")
    unknown = set(opt) - set(OPT_KEYS)
    if unknown:
        raise ValueError(f"unknown optimizer keys {sorted(unknown)}")
    name = opt.get("name")
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer name must be one of {list(OPTIMIZERS)}, got {name!r}")
    o = dict(OPT_DEFAULTS)
    o.update(opt)
    if "lr" not in opt:
        raise ValueError("optimizer needs 'lr'")
    o["lr"] = _real(o["lr"], "lr", 0.0)
    if o["clip_norm"] is not None:
        o["clip_norm"] = _real(o["clip_norm"], "clip_norm")
        if o["clip_norm"] <= 0.0:
            raise ValueError(f"clip_norm must be > 0 or None, got {o['clip_norm']}")
    o["weight_decay"] = _real(o["weight_decay"], "weight_decay", 0.0)
    o["momentum"] = _real(o["momentum"], "momentum", 0.0, 1.0)
    o["dampening"] = _real(o["dampening"], "dampening", 0.0, 1.0, hi_open=False)
    o["nesterov"] = _flag(o["nesterov"], "nesterov")
    o["eps"] = _real(o["eps"], "eps", 0.0)
    o["lr_decay"] = _real(o["lr_decay"], "lr_decay", 0.0)
    o["eps_inside_sqrt"] = _flag(o["eps_inside_sqrt"], "eps_inside_sqrt")
    o["alpha"] = _real(o["alpha"], "alpha", 0.0, 1.0)
    betas = o["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair, got {betas!r}")
    o["betas"] = (_real(betas[0], "beta1", 0.0, 1.0), _real(betas[1], "beta2", 0.0, 1.0))
    o["decoupled_weight_decay"] = _real(o["decoupled_weight_decay"], "decoupled_weight_decay", 0.0)
    if o["decoupled_weight_decay"] != 0.0 and name != "adam":
        raise ValueError("decoupled_weight_decay is for 'adam' (AdamW) only")
    if o["nesterov"] and o["momentum"] == 0.0:
        raise ValueError("nesterov needs momentum > 0")
    bufs = o["buffers"]
    if not isinstance(bufs, (tuple, list)):
        raise TypeError("optimizer 'buffers' must be a tuple of arrays")
    want = N_BUFFERS[name]
    if want is None:
        want = 1 if o["momentum"] != 0.0 else 0
    if len(bufs) != want:
        raise ValueError(f"{name} needs {want} state buffer(s), got {len(bufs)}")
    for i, b in enumerate(bufs):
        V.check_float(b, f"optimizer buffer {i}", 1, writable=True)
        V.check_dtype(params.dtype, **{f"optimizer buffer {i}": b})
        if b.shape != params.shape:
            raise ValueError(f"optimizer buffer {i} must have the length of params")
        V.check_disjoint(b, f"optimizer buffer {i}", params=params)
        for k, c in enumerate(bufs[:i]):
            V.check_disjoint(b, f"optimizer buffer {i}", **{f"optimizer buffer {k}": c})
    o["buffers"] = tuple(bufs)
    return o


def _check_state(state):
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise ValueError(f"state lacks the keys {missing} (see new_state)")
    _int(state["step"], "state['step']", 0)
    _int(state["opt_step"], "state['opt_step']", 0)
    _int(state["counter"], "state['counter']", 0)
    _int(state["correct"], "state['correct']", 0)
    V.check_real(loss_sum=state["loss_sum"], loss=state["loss"])
    _flag(state["count"], "state['count']")
    _flag(state["have_backup"], "state['have_backup']")
    _flag(state["diverged"], "state['diverged']")
    if state["diverged"]:
        raise ValueError("state records a divergence; start a new state")


def check_train_epoch(X, T, order, batch_size, stop, params, grads, layers, loss, segments,
                      l1, l2, optimizer, drop_seed, state, workspace):
    """Validate the arguments of ``train_epoch``; return the parsed pieces.

    Returns ``(ops, loss_code, K, opt)``: parsed layers, the loss code (2 for
    cross-entropy with probability rows), the output width and the normalised
    optimizer dict. Raises ``TypeError``/``ValueError`` and changes nothing.
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
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    ops, K = _check_layers(layers, d, params.shape[0])
    B = _int(batch_size, "batch_size", 1)
    if B > _INT_MAX:
        raise ValueError(f"batch_size exceeds the BLAS limit {_INT_MAX}")
    _check_state(state)
    if not isinstance(workspace, dict):
        raise TypeError(f"workspace must be a dict, got {type(workspace).__name__}")
    n_steps = -(-n // B)
    stop = _int(stop, "stop", 0)
    if not state["step"] <= stop <= n_steps:
        raise ValueError(f"stop must lie in [state['step'], {n_steps}], got {stop}")
    # targets
    V._arr(T, "T")
    code = LOSSES[loss]
    if code == 1 and T.ndim == 1:
        if T.dtype != np.int64 or not T.flags.c_contiguous:
            raise TypeError("labels T must be a C-contiguous 1-D int64 array")
        if T.shape[0] != n:
            raise ValueError(f"T has {T.shape[0]} labels for {n} rows")
        if K < 2:
            raise ValueError("cross_entropy needs at least 2 outputs")
        if T.min() < 0 or T.max() >= K:
            raise ValueError(f"labels must lie in [0, {K})")
    else:
        if code == 1:
            code = 2
        V.check_float(T, "T", 2)
        if T.shape != (n, K):
            raise ValueError(f"T must have shape {(n, K)}, got {T.shape}")
    V.check_disjoint(params, "params", T=T)
    V.check_disjoint(grads, "grads", T=T)
    # order
    V._arr(order, "order")
    if order.dtype != np.int64 or order.ndim != 1 or not order.flags.c_contiguous:
        raise TypeError("order must be a C-contiguous 1-D int64 array")
    if order.shape[0] != n:
        raise ValueError(f"order has length {order.shape[0]}, X has {n} rows")
    used = order[state["step"] * B:stop * B]
    if used.size and (used.min() < 0 or used.max() >= n):
        raise ValueError(f"order must hold row indices in [0, {n})")
    V.check_regularize(params, grads, segments, l1, l2)
    opt = _check_optimizer(optimizer, params)
    for i, b in enumerate(opt["buffers"]):
        V.check_disjoint(b, f"optimizer buffer {i}", grads=grads, X=X, T=T, order=order)
    _int(drop_seed, "drop_seed", 0)
    return ops, code, K, opt


# --------------------------------------------------------------------------- reference

def _workspace(ws, key, shape, dtype):
    a = ws.get(key)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = ws[key] = np.empty(shape, dtype)
    return a


def _count_correct(code, out, t):
    """Network._count_correct: rows right (argmax), or entries right for BCE."""
    if code == 3:
        return int(np.count_nonzero(np.equal(np.greater_equal(out, 0.0),
                                             np.greater_equal(t, 0.5))))
    pred = np.argmax(out, axis=1)
    true = t if t.ndim == 1 else np.argmax(t, axis=1)
    return int(np.count_nonzero(np.equal(pred, true)))


def _opt_step(be, o, params, grads, state, scratch):
    """One update as nncore.optim's ``step`` does it (clip, coupled decay, kernel)."""
    name = o["name"]
    state["opt_step"] += 1
    step = state["opt_step"]
    gscale = 1.0
    if o["clip_norm"] is not None:
        norm = math.sqrt(be.sum_squares(grads))
        state["grad_norm"] = norm
        gscale = min(1.0, o["clip_norm"] / (norm + CLIP_EPS))
    g = grads
    wd = o["weight_decay"]
    if wd != 0.0:
        g = scratch
        if gscale == 1.0:
            np.copyto(g, grads)
        else:
            np.multiply(grads, gscale, out=g)
        g += wd * params
        gscale = 1.0
    bufs = o["buffers"]
    lr = o["lr"]
    if name == "sgd":
        buf = bufs[0] if bufs else params     # ignored when momentum == 0
        be.sgd_step(params, g, buf, lr, o["momentum"], o["dampening"], o["nesterov"],
                    step == 1, gscale)
    elif name == "adagrad":
        clr = lr / (1.0 + (step - 1) * o["lr_decay"])
        be.adagrad_step(params, g, bufs[0], clr, o["eps"], o["eps_inside_sqrt"], gscale)
    elif name == "rmsprop":
        be.rmsprop_step(params, g, bufs[0], lr, o["alpha"], o["eps"], o["eps_inside_sqrt"],
                        gscale)
    else:
        beta1, beta2 = o["betas"]
        be.adam_step(params, g, bufs[0], bufs[1], lr, beta1, beta2, o["eps"], step,
                     o["decoupled_weight_decay"], o["eps_inside_sqrt"], gscale)


def reference_epoch(be, X, T, order, batch_size, stop, params, grads, layers, loss, segments,
                    l1, l2, optimizer, drop_seed, state, workspace):
    """``train_epoch`` in Python over the functions of backend module ``be``.

    The per-step sequence of ``Network.fit`` (``_loss_grad`` -> ``_penalty`` ->
    divergence check -> backup -> ``optimizer.step``), written against the
    backend API only, so the compiled loop can be checked against it bit for bit.
    """
    ops, code, K, o = check_train_epoch(X, T, order, batch_size, stop, params, grads, layers,
                                        loss, segments, l1, l2, optimizer, drop_seed, state,
                                        workspace)
    dt = params.dtype
    n, d = X.shape
    B = int(batch_size)
    ws = workspace
    xbuf = _workspace(ws, "ref_x", (B, d), dt)
    tbuf = (_workspace(ws, "ref_t", (B,), np.int64) if code == 1
            else _workspace(ws, "ref_t", (B, K), dt))
    outs, masks, dxs = [], [], []
    seen_dense = False
    for i, (kind, n_in, n_out, act, off, rate) in enumerate(ops):
        outs.append(_workspace(ws, f"ref_out{i}", (B, n_out), dt))
        masks.append(_workspace(ws, f"ref_mask{i}", (B, n_out), dt) if kind == 1 else None)
        dxs.append(_workspace(ws, f"ref_dx{i}", (B, n_in), dt)
                   if kind == 0 and seen_dense else None)
        seen_dense = seen_dense or kind == 0
    gout = _workspace(ws, "ref_gout", (B, K), dt)
    backup = _workspace(ws, "backup", params.shape, dt)
    scratch = _workspace(ws, "ref_scratch", params.shape, dt) if o["weight_decay"] else None
    views = []
    for kind, n_in, n_out, act, off, rate in ops:
        if kind == 0:
            nw = n_in * n_out
            views.append((params[off:off + nw].reshape(n_in, n_out), params[off + nw:off + nw + n_out],
                          grads[off:off + nw].reshape(n_in, n_out), grads[off + nw:off + nw + n_out]))
        else:
            views.append(None)
    reg = l1 != 0.0 or l2 != 0.0
    seed = int(drop_seed)
    for j in range(state["step"], stop):
        s = j * B
        e = min(s + B, n)
        r = e - s
        idx = order[s:e]
        xb, tb = xbuf[:r], tbuf[:r]
        be.gather_rows(X, idx, xb)
        if code == 1:
            be.gather(T, idx, tb)
        else:
            be.gather_rows(T, idx, tb)
        # forward (Network._forward_ws)
        h = xb
        inps = []
        for i, (kind, n_in, n_out, act, off, rate) in enumerate(ops):
            inps.append(h)
            out = outs[i][:r]
            if kind == 0:
                W, b, _, _ = views[i]
                be.dense_forward(h, W, b, act, out)
            else:
                mask = masks[i][:r]
                be.dropout_mask(seed, state["counter"], rate, mask)
                state["counter"] += mask.size
                be.multiply(h, mask, out)
            h = out
        # loss (Network._data_loss)
        g = gout[:r]
        if code == 0:
            J = be.loss_mse(h, tb, g)
        elif code == 1:
            J = be.loss_softmax_ce(h, tb, g)
        elif code == 2:
            J = be.loss_softmax_ce_prob(h, tb, g)
        else:
            J = be.loss_bce(h, tb, g)
        c = _count_correct(code, h, tb) if state["count"] else 0
        # backward (Network._backward_ws)
        for i in range(len(ops) - 1, -1, -1):
            kind = ops[i][0]
            if kind == 0:
                W, _, dW, db = views[i]
                dx = dxs[i][:r] if dxs[i] is not None else None
                be.dense_backward(inps[i], W, outs[i][:r], g, ops[i][3], dW, db, dx)
                if dx is None:
                    break
                g = dx
            else:
                be.multiply(g, masks[i][:r], g)
        loss_value = J + (be.regularize(params, grads, segments, l1, l2) if reg else 0.0)
        state["loss"] = loss_value
        if not math.isfinite(loss_value):
            state["diverged"] = True
            state["step"] = j
            return
        np.copyto(backup, params)
        state["have_backup"] = True
        _opt_step(be, o, params, grads, state, scratch)
        state["loss_sum"] += loss_value
        state["correct"] += c
        state["step"] = j + 1
