"""``Network.fit``: mini-batch, stochastic and full-batch training loops.

Design
------
* Everything is validated before any state changes (optimizer name, batch
  mode, data, validation data, callbacks), so a bad call leaves the network
  and the optimizer untouched.
* One seed (``fit(seed=)``) is split by ``numpy.random.SeedSequence`` into
  independent streams for shuffling, dropout masks and augmentation, so
  adding augmentation does not change the shuffle order. Dropout masks come
  from the backend's counter-based generator (identical on both backends).
* Mini-batches are gathered row by row from the caller's ``X`` into one
  preallocated batch buffer (``gather_rows`` also converts float64 input to a
  float32 network), so the data set is never copied per epoch; the epoch's
  order is a permutation array shuffled in place.
* Before every optimizer step the parameters are copied to a backup buffer:
  a step interrupted by Ctrl-C, or one that produced non-finite parameters,
  can be undone, so the network always holds the result of its last
  completed, finite step.
* Whole epochs run in the backend (``backend.train_epoch``: one ``nogil``
  compiled loop per chunk of ~0.1 s of work, or its Python-orchestrated NumPy
  twin) whenever nothing needs Python per step: mini-batches, no augment, no
  callback with an ``on_batch_end``, and one of nncore's first-order
  optimizers. It makes the same kernel calls as the per-step path below, so
  results are bit-identical; callbacks and the progress bar run between
  epochs, and Ctrl-C lands between chunks with the optimizer's step count and
  the dropout counter in step with the parameters.
* Full-batch optimizers see a float64 function ``fun(x) -> (f, g)`` over the
  whole training set (``iterate`` interface); an epoch is one iteration.
"""

from __future__ import annotations

import math
import numbers
import sys
import time

import numpy as np

from . import backend as _backend
from .errors import DivergenceError, InvalidParameterError
from .evaluation import metrics, split_rows

__all__ = ["fit"]

# Whole epochs through backend.train_epoch when possible (tests switch it off to
# compare with the per-step path). Chunks of about _CHUNK_WORK multiply-adds.
_EPOCH_LOOP = True
_CHUNK_WORK = 8 * 10**8
_MAX_CHUNK = 65536

_HOOKS = ("set_model", "set_optimizer", "on_train_begin", "on_train_end",
          "on_epoch_begin", "on_epoch_end", "on_batch_end")


def _call(callbacks, hook, *args):
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
    return int(seed)


def _resolve(net, X, y, optimizer, batch_size, epochs, shuffle, validation_data,
             validation_split, callbacks, augment, progress, seed, validation_shuffle=False):
    """All argument checks; returns the prepared pieces. Changes nothing."""
    from . import optim as _optim

    opt = _optim.get(optimizer)
    full_batch_opt = bool(getattr(opt, "full_batch", False))

    if isinstance(batch_size, str):
        if batch_size != "full":
            raise ValueError(f"batch_size must be 'full', None or a positive integer, got {batch_size!r}")
    elif batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
            raise InvalidParameterError(f"batch_size must be 'full', None or a positive integer, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        batch_size = int(batch_size)
    if full_batch_opt:
        if batch_size is not None and batch_size != "full":
            raise ValueError(f"{type(opt).__name__} is a full-batch optimizer: it uses the whole "
                             f"training set each iteration, so batch_size={batch_size!r} is not "
                             "allowed (use batch_size='full' or None)")
        if net.has_dropout:
            raise ValueError(f"{type(opt).__name__} is a full-batch optimizer with a line search "
                             "and needs a deterministic loss; remove the Dropout layers "
                             "(or use a first-order optimizer)")
        if augment is not None:
            raise ValueError("augment needs a first-order optimizer; full-batch optimizers "
                             "minimise a fixed objective")
        batch_size = "full"
    elif batch_size is None:
        batch_size = 32

    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral):
        raise InvalidParameterError(f"epochs must be a positive integer, got {epochs!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise InvalidParameterError(f"shuffle must be True or False, got {shuffle!r}")
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise InvalidParameterError(f"progress must be None, True or False, got {progress!r}")
    if augment is not None and not callable(augment):
        raise InvalidParameterError(f"augment must be a callable (X_batch, rng) -> X_batch, got {augment!r}")
    seed = _check_seed(seed)
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real):
        raise InvalidParameterError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
    validation_split = float(validation_split)
    if not (0.0 <= validation_split < 1.0):
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    if not isinstance(validation_shuffle, (bool, np.bool_)):
        raise InvalidParameterError(f"validation_shuffle must be True or False, got {validation_shuffle!r}")
    if validation_shuffle and validation_split == 0.0:
        raise ValueError("validation_shuffle=True needs validation_split > 0")

    if callbacks is None:
        callbacks = ()
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise InvalidParameterError("callbacks must be a list of callbacks") from None
    for cb in callbacks:
        if not any(callable(getattr(cb, h, None)) for h in _HOOKS):
            raise InvalidParameterError(f"{cb!r} is not a callback (subclass nc.callbacks.Callback)")

    Xa = net._check_X(X)
    T = net._check_y(y, Xa.shape[0])
    Xv = Tv = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        Xv = net._check_X(validation_data[0], "X_val")
        Tv = net._check_y(validation_data[1], Xv.shape[0], "y_val")
    elif validation_split > 0.0:
        # The split's own stream: fit's streams are children 0-2 of SeedSequence(seed).
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
        Xa, T, Xv, Tv = split_rows(net, Xa, T, validation_split, bool(validation_shuffle), rng)
    return opt, batch_size, int(epochs), bool(shuffle), Xa, T, Xv, Tv, callbacks, seed


def _show_progress(progress):
    if progress is None:
        try:
            return sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False
    return bool(progress)


def _make_bar(show, epochs):
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=epochs, unit="epoch", desc="fit", file=sys.stderr, dynamic_ncols=True,
                leave=True)


def _postfix(logs):
    keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs]
    return {k: f"{logs[k]:.4g}" for k in keys}


def fit(net, X, y, *, optimizer="adam", batch_size=None, epochs=10, shuffle=True,
        validation_data=None, validation_split=0.0, validation_shuffle=False, callbacks=(),
        augment=None, progress=None, seed=None):
    """Train ``net`` on ``(X, y)``: the functional form of :meth:`Network.fit`.

    Parameters
    ----------
    net : Network
    X : array_like, shape (N, n_in)
    y : array_like
        Targets in the layout of the network's loss (see :meth:`Network.loss`).
    optimizer : str or optimizer instance, default "adam"
        A name (``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adagrad"``,
        ``"rmsprop"``, ``"adam"``, ``"adamw"``, ``"cg"``, ``"newton"``,
        ``"bfgs"``, ``"dfp"``, ``"lbfgs"``) or an instance. An instance keeps
        its state between calls to ``fit``.
    batch_size : "full", int or None
        ``"full"``: one step per epoch on the whole set; ``1``: stochastic;
        ``k``: mini-batches of k consecutive rows of the epoch's order (the
        last one may be smaller). ``None``: 32, or ``"full"`` for full-batch
        optimizers (for which an int is an error).
    epochs : int, default 10
    shuffle : bool, default True
        Shuffle the order every epoch (seeded by ``seed``).
    validation_data : (X_val, y_val), optional
        Evaluated after every epoch (``val_loss``, ``val_accuracy``);
        takes precedence over ``validation_split``.
    validation_split : float in [0, 1)
        Hold out this fraction of the rows: the *last* ones (as Keras, without
        copying), or a random stratified draw with ``validation_shuffle``.
    validation_shuffle : bool, default False
        Draw the ``validation_split`` rows at random (seeded by ``seed``)
        instead of taking the last ones; for single-label classifiers the draw
        is stratified, so every class keeps its share in both parts (needed
        when the data are sorted by class).
    callbacks : sequence of nc.callbacks.Callback
    augment : callable (X_batch, rng) -> X_batch, optional
        Applied to each gathered batch (never to the caller's array).
    progress : bool or None
        tqdm progress bar per epoch; ``None`` shows it only on a terminal.
    seed : int or None
        Fixes shuffling, dropout masks and augmentation. With the same
        network seed, data and thread count, results are bit-identical.

    Returns
    -------
    History
        ``history`` lists per epoch: ``"loss"`` (mean of the step losses, each
        the batch's mean data loss plus the full penalty; for full-batch
        optimizers the whole-set loss after the iteration), ``"accuracy"``
        (classifiers; the running accuracy of the training batches as in
        Keras, or the whole-set accuracy for full-batch optimizers),
        ``"val_loss"``/``"val_accuracy"`` with validation data, ``"lr"`` (the
        epoch's rate; for full-batch optimizers the accepted step length),
        ``"time"`` (seconds since training started) and, for full-batch
        optimizers, cumulative ``"nfev"``/``"ngev"``.

    Raises
    ------
    ValueError, TypeError
        Bad arguments or data (nothing is changed).
    nncore.DivergenceError
        The loss became NaN/inf; the network keeps its last finite parameters.
    KeyboardInterrupt
        Re-raised after restoring the last completed step; the history so far
        is in ``net.history_`` (``stop_reason="interrupted"``).
    """
    (opt, batch_size, epochs, shuffle, Xa, T, Xv, Tv, callbacks, seed) = _resolve(
        net, X, y, optimizer, batch_size, epochs, shuffle, validation_data,
        validation_split, callbacks, augment, progress, seed, validation_shuffle)

    from .history import History

    n = Xa.shape[0]
    steps = 1 if batch_size == "full" else -(-n // min(batch_size, n))
    history = History(params={
        "epochs": epochs, "batch_size": batch_size, "steps": steps, "samples": n,
        "optimizer": type(opt).__name__, "shuffle": shuffle, "seed": seed,
        "validation": Xv is not None,
    })
    net.history_ = history
    net.stop_training = False
    for cb in callbacks:
        if hasattr(cb, "set_model"):
            cb.set_model(net)
        if hasattr(cb, "set_optimizer"):
            cb.set_optimizer(opt)

    ss = np.random.SeedSequence(seed)
    s_shuffle, s_drop, s_aug = ss.spawn(3)
    state = {
        "shuffle_rng": np.random.default_rng(s_shuffle),
        "drop_seed": int(s_drop.generate_state(1, np.uint64)[0]),
        "aug_rng": np.random.default_rng(s_aug),
        "counter": 0,
    }
    bar = _make_bar(_show_progress(progress), epochs)
    runner = _run_full_batch if getattr(opt, "full_batch", False) else _run_first_order
    try:
        _call(callbacks, "on_train_begin", {})
        # Overflow is reported as a DivergenceError, not as NumPy warnings (which
        # the compiled backend could not emit anyway).
        with np.errstate(over="ignore", invalid="ignore"):
            runner(net, opt, Xa, T, Xv, Tv, batch_size, epochs, shuffle, callbacks, augment,
                   state, history, bar)
        _call(callbacks, "on_train_end", dict(_last_logs(history)))
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        raise
    finally:
        if bar is not None:
            bar.close()
    return history


def _last_logs(history):
    return {k: v[-1] for k, v in history.history.items() if v}


def _epoch_end(net, Xv, Tv, logs, epoch, history, callbacks, bar, t_start):
    if Xv is not None:
        logs.update(metrics(net, Xv, Tv, prefix="val_"))
    logs["time"] = time.perf_counter() - t_start
    history.append(epoch, logs)
    _call(callbacks, "on_epoch_end", epoch, logs)
    if bar is not None:
        bar.set_postfix(_postfix(logs), refresh=False)
        bar.update(1)
    if net.stop_training:
        reason = None
        for cb in callbacks:
            reason = reason or getattr(cb, "stop_reason", None)
        history.stop_reason = reason or "stop_training set by a callback"
        return True
    return False


def _diverged(net, backup, have_backup, loss, epoch, step):
    params = net.params
    restored = False
    if have_backup and not np.isfinite(params).all():
        # The previous step produced non-finite weights: undo it.
        np.copyto(params, backup)
        restored = True
    where = "the previous step's" if restored else "this step's starting"
    return DivergenceError(
        f"training diverged: the loss became {loss} at epoch {epoch}, step {step} "
        f"(0-based); the network keeps {where} parameters, the last finite ones. "
        "Try a smaller learning rate, gradient clipping (clip_norm=) or input scaling.",
        epoch=epoch, step=step, loss=loss)


def _wants_batches(cb):
    """True when a callback does something in ``on_batch_end`` (not the base no-op)."""
    from .callbacks import Callback
    fn = getattr(cb, "on_batch_end", None)
    return fn is not None and getattr(fn, "__func__", None) is not Callback.on_batch_end


def _use_epoch_loop(net, opt, B, n, augment, callbacks):
    """Can this fit run whole epochs through ``backend.train_epoch``?

    Needs mini-batches (not one full batch), no augmentation, no per-batch
    callback, one of nncore's own first-order optimizers (a subclass may
    override ``step``) and batches that fit the network's workspace chunk.
    """
    from .optim import _first_order as F
    return (_EPOCH_LOOP and B < n and augment is None and B <= net._chunk_rows
            and type(opt) in (F.SGD, F.Adagrad, F.RMSprop, F.Adam, F.AdamW)
            and _loop_layers(net) is not None
            and not any(_wants_batches(cb) for cb in callbacks))


def _loop_layers(net):
    """The network as ``train_epoch`` layer tuples (each layer describes itself),
    or ``None`` when a layer runs on the per-step path only."""
    return net._loop_layers()


def _loop_optimizer(opt, params, grads, lr):
    """``train_epoch``'s optimizer dict: the instance's hyper-parameters and live state."""
    from .optim import _first_order as F
    opt._check_arrays(params, grads)
    if opt._bufs is None:
        opt._allocate(params)
    b = opt._bufs
    spec = {"lr": lr, "clip_norm": opt.clip_norm}
    if isinstance(opt, F.SGD):
        spec.update(name="sgd", momentum=opt.momentum, dampening=opt.dampening,
                    nesterov=opt.nesterov, weight_decay=opt.weight_decay,
                    buffers=(b["momentum_buffer"],) if opt.momentum != 0.0 else ())
    elif isinstance(opt, F.Adagrad):
        spec.update(name="adagrad", eps=opt.eps, lr_decay=opt.lr_decay,
                    eps_inside_sqrt=opt.eps_inside_sqrt, weight_decay=opt.weight_decay,
                    buffers=(b["sum"],))
    elif isinstance(opt, F.RMSprop):
        spec.update(name="rmsprop", alpha=opt.alpha, eps=opt.eps,
                    eps_inside_sqrt=opt.eps_inside_sqrt, weight_decay=opt.weight_decay,
                    buffers=(b["square_avg"],))
    else:
        decoupled = opt.weight_decay if opt._decoupled else 0.0
        spec.update(name="adam", betas=opt.betas, eps=opt.eps,
                    eps_inside_sqrt=opt.eps_inside_sqrt,
                    weight_decay=0.0 if opt._decoupled else opt.weight_decay,
                    decoupled_weight_decay=decoupled, buffers=(b["exp_avg"], b["exp_avg_sq"]))
    return spec


def _chunk_steps(B, n_params):
    """Steps per ``train_epoch`` call: about 0.1 s of work, so Ctrl-C stays responsive."""
    return int(min(_MAX_CHUNK, max(16, _CHUNK_WORK // max(1, B * n_params))))


class _FlatLoopsSerial:
    """During first-order training, flat loops go parallel only when huge.

    An OpenMP region between two multi-threaded BLAS calls makes the two
    thread pools fight (libgomp's workers spin after the region while
    OpenBLAS wants every core, and the other way round): measured on 2 cores,
    a 784-256-256-10 Adam step at batch 32 went from ~0.6 ms to ~10 ms. The
    compiled epoch loop applies the same rule itself; this covers the per-step
    path. Thread splits never change a result.
    """

    _MIN = 1 << 22

    def __init__(self, be):
        self._k = None
        if getattr(be, "NAME", None) == "cython":
            from . import _kernels
            self._k = _kernels

    def __enter__(self):
        if self._k is not None:
            self._old = self._k._set_parallel_threshold(self._MIN)
            if self._old > self._MIN:
                self._k._set_parallel_threshold(self._old)
        return self

    def __exit__(self, *exc):
        if self._k is not None:
            self._k._set_parallel_threshold(self._old)
        return False


def _run_first_order(net, opt, X, T, Xv, Tv, batch_size, epochs, shuffle, callbacks,
                     augment, state, history, bar):
    with _FlatLoopsSerial(_backend.current()):
        _first_order_epochs(net, opt, X, T, Xv, Tv, batch_size, epochs, shuffle, callbacks,
                            augment, state, history, bar)


def _first_order_epochs(net, opt, X, T, Xv, Tv, batch_size, epochs, shuffle, callbacks,
                        augment, state, history, bar):
    be = _backend.current()
    n, d = X.shape
    params, grads = net.params, net.grads
    full = batch_size == "full" or batch_size >= n
    B = n if full else batch_size
    count = net.is_classifier
    denom = net.n_out if net.loss_name == "binary_cross_entropy" else 1
    loop = _use_epoch_loop(net, opt, B, n, augment, callbacks)
    if loop:
        ws = {}
        layers = _loop_layers(net)
        reg = net.regularizer
        l1, l2 = (reg.l1, reg.l2) if reg is not None else (0.0, 0.0)
        n_steps = -(-n // B)
        chunk = _chunk_steps(B, net.n_params)
    else:
        backup = np.empty_like(params)
        acc = np.empty_like(params) if B > net._chunk_rows else None
        if not full:
            xbuf = np.empty((B, d), net.dtype)
            tbuf = (np.empty(B, np.int64) if T.ndim == 1 else np.empty((B, T.shape[1]), net.dtype))
    if not full:
        order = np.arange(n, dtype=np.int64)
    rng = state["shuffle_rng"]
    aug_rng = state["aug_rng"]
    seed = state["drop_seed"]
    t_start = time.perf_counter()
    have_backup = False
    for epoch in range(epochs):
        _call(callbacks, "on_epoch_begin", epoch, {})
        if hasattr(opt, "set_epoch"):
            opt.set_epoch(epoch)
        lr = float(opt.current_lr) if hasattr(opt, "current_lr") else math.nan
        if not full and shuffle:
            rng.shuffle(order)
        if loop:
            # The whole epoch in the backend (compiled: one nogil loop per chunk of
            # steps); callbacks and the progress bar run between epochs.
            st = _epoch_state(opt, state, count, have_backup)
            spec = _loop_optimizer(opt, params, grads, lr)
            try:
                while st["step"] < n_steps and not st["diverged"]:
                    be.train_epoch(X, T, order, B, min(st["step"] + chunk, n_steps), params,
                                   grads, layers, net.loss_name, net._segments, l1, l2, spec,
                                   seed, st, ws)
            finally:
                # Ctrl-C lands between chunks: the state already matches the params.
                _sync_epoch_state(opt, state, st)
                have_backup = st["have_backup"]
            if st["diverged"]:
                raise _diverged(net, ws["backup"], have_backup, st["loss"], epoch, st["step"])
            loss_sum, correct, step = st["loss_sum"], st["correct"], n_steps - 1
        else:
            loss_sum = 0.0
            correct = 0
            for step, s in enumerate(range(0, n, B)):
                e = min(s + B, n)
                r = e - s
                if full:
                    xb, tb = X, T
                else:
                    idx = order[s:e]
                    xb, tb = xbuf[:r], tbuf[:r]
                    be.gather_rows(X, idx, xb)
                    if T.ndim == 1:
                        be.gather(T, idx, tb)
                    else:
                        be.gather_rows(T, idx, tb)
                if augment is not None:
                    xa = augment(xb, aug_rng)
                    if not isinstance(xa, np.ndarray) or xa.shape != xb.shape:
                        raise ValueError(f"augment returned {type(xa).__name__} of shape "
                                         f"{getattr(xa, 'shape', None)}, expected {xb.shape}")
                    if full:
                        xb = np.ascontiguousarray(xa)
                    elif xa is not xb:
                        np.copyto(xb, xa)
                J, c, state["counter"] = net._loss_grad(
                    xb, tb, training=True, grad=True, seed=seed, counter=state["counter"],
                    count=count, acc=acc)
                loss = J + net._penalty(True)
                if not math.isfinite(loss):
                    raise _diverged(net, backup, have_backup, loss, epoch, step)
                np.copyto(backup, params)
                have_backup = True
                try:
                    opt.step(params, grads)
                except KeyboardInterrupt:
                    np.copyto(params, backup)  # undo a half-applied update
                    raise
                loss_sum += loss
                correct += c
                _call(callbacks, "on_batch_end", step, {"batch": step, "size": r, "loss": loss})
        logs = {"loss": loss_sum / (step + 1)}
        if count:
            logs["accuracy"] = correct / (n * denom)
        logs["lr"] = lr
        if _epoch_end(net, Xv, Tv, logs, epoch, history, callbacks, bar, t_start):
            break


def _epoch_state(opt, state, count, have_backup):
    from .backend._epoch import new_state
    st = new_state(opt_step=opt._step, counter=state["counter"], count=count)
    st["have_backup"] = have_backup
    return st


def _sync_epoch_state(opt, state, st):
    opt._step = st["opt_step"]
    state["counter"] = st["counter"]
    if st["grad_norm"] is not None:
        opt.grad_norm = st["grad_norm"]


def _run_full_batch(net, opt, X, T, Xv, Tv, batch_size, epochs, shuffle, callbacks,
                    augment, state, history, bar):
    params = net.params
    acc = np.empty_like(params) if X.shape[0] > net._chunk_rows else None

    def fun(x):
        np.copyto(params, x)
        J, _, _ = net._loss_grad(X, T, grad=True, acc=acc)
        J += net._penalty(True)
        return float(J), net.grads.astype(np.float64)

    if hasattr(opt, "reset"):
        opt.reset()
    t_start = time.perf_counter()
    x = params.astype(np.float64)
    f, g = fun(x)
    np.copyto(params, x)
    if not math.isfinite(f):
        raise DivergenceError(f"the loss at the initial parameters is {f}", epoch=0, step=0, loss=f)
    nfev = ngev = 1
    for epoch in range(epochs):
        _call(callbacks, "on_epoch_begin", epoch, {})
        if hasattr(opt, "set_epoch"):
            opt.set_epoch(epoch)
        try:
            x_new, f_new, g_new, info = opt.iterate(fun, x, f, g)
        except BaseException:
            # Ctrl-C or an error inside the line search: back to the last iterate.
            np.copyto(params, x)
            raise
        if not math.isfinite(f_new) or not np.isfinite(x_new).all():
            np.copyto(params, x)
            raise DivergenceError(
                f"training diverged: the loss became {f_new} at epoch {epoch}, step 0 (0-based); "
                "the network keeps the parameters from before that iteration.",
                epoch=epoch, step=0, loss=f_new)
        np.copyto(params, x_new)
        x, f, g = x_new, f_new, g_new
        nfev += int(info.get("nfev", 0))
        ngev += int(info.get("ngev", 0))
        _call(callbacks, "on_batch_end", 0, {"batch": 0, "size": X.shape[0], "loss": f})
        logs = {"loss": float(f)}
        if net.is_classifier:
            logs["accuracy"] = net._accuracy(X, T)
        logs["lr"] = float(info.get("lr", math.nan))
        logs["nfev"] = nfev
        logs["ngev"] = ngev
        stop = _epoch_end(net, Xv, Tv, logs, epoch, history, callbacks, bar, t_start)
        if info.get("stop"):
            history.stop_reason = history.stop_reason or str(info["stop"])
            break
        if stop:
            break
