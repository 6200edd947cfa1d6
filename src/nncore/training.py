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
* An epoch of a first-order optimizer runs in one of two loops over the same
  step (see ``nncore.backend._epoch``): the Python step loop
  (``step_loop``: ``Network._loss_grad`` + ``_penalty``, the optimizer's
  ``step``, augmentation and ``on_batch_end`` callbacks), or the backend's
  compiled loop (``train_epoch``: one ``nogil`` call per chunk of ~0.1 s of
  work) when nothing needs Python per step: the compiled backend,
  mini-batches, no augment, no callback with an ``on_batch_end``, and an
  optimizer that describes its rule to the loop (``fused_update`` not None;
  a subclass that changes the step does not). Results are bit-identical;
  callbacks and the progress bar run between epochs, and Ctrl-C lands between
  chunks with the optimizer's step count and the dropout counter in step with
  the parameters.
* Before every update the parameters are copied to a backup buffer, and
  after it they are checked: on a loss that is not finite, or an update that
  made the parameters inf/NaN (the last step of the fit included), the
  network gets back the parameters the last finite loss was computed at and
  ``DivergenceError`` is raised. Ctrl-C during an update undoes it.
* Full-batch optimizers see a float64 function ``fun(x) -> (f, g)`` over the
  whole training set (``iterate`` interface); an epoch is one iteration.
* Sample and class weights (:mod:`nncore._weights`) become one float64 weight
  per training row, or None when unweighted or all equal (the unweighted code
  path, bit for bit). Both epoch loops normalise each batch's weights to row
  coefficients ``w / sum w`` (summed in row order, so the loops agree bit for
  bit); full-batch objectives and their curvature use the whole set's.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from . import _dask, _dask_fit, _thread_plan, _weights
from . import backend as _backend
from . import losses as _losses
from ._checks import flag, integer, real
from .backend import _epoch
from .curvature import Curvature
from .errors import DivergenceError, InvalidParameterError
from .evaluation import metrics, split_selectors

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


def _check_batch_size(net, opt, batch_size, augment):
    """``batch_size`` checked against the optimizer: "full" or an int (32 by default)."""
    full_batch_opt = bool(getattr(opt, "full_batch", False))
    if isinstance(batch_size, str):
        if batch_size != "full":
            raise ValueError(f"batch_size must be 'full', None or a positive integer, got {batch_size!r}")
    elif batch_size is not None:
        batch_size = integer(batch_size, "batch_size", low=1)
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
    return batch_size


def _check_callbacks(callbacks):
    """The callbacks as a list (None: none); each must have a hook."""
    if callbacks is None:
        return []
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise InvalidParameterError("callbacks must be a list of callbacks") from None
    for cb in callbacks:
        if not any(callable(getattr(cb, h, None)) for h in _HOOKS):
            raise InvalidParameterError(f"{cb!r} is not a callback (subclass nc.callbacks.Callback)")
    return callbacks


def _check_eval_data(net, data, name, what):
    """``(X, T, row coefficients or None)`` of ``validation_data``/``test_data``:
    a pair ``(X, y)`` or a triple ``(X, y, sample_weight)``."""
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise ValueError(f"{name} must be a pair (X_{what}, y_{what}) or a triple "
                         f"(X_{what}, y_{what}, sample_weight_{what})")
    if _dask.is_chunked(data[0]) or _dask.is_chunked(data[1]):
        # Checked by the caller (fit: with the training set, in one pass).
        return _dask.ChunkedSet(net, data[0], data[1], f"X_{what}", f"y_{what}",
                                sample_weight=data[2] if len(data) == 3 else None,
                                wname=f"sample_weight_{what}", check=False), None, None
    Xd = net._check_X(data[0], f"X_{what}")
    Td = net._check_y(data[1], Xd.shape[0], f"y_{what}")
    weight = None
    if len(data) == 3 and data[2] is not None:
        w = _weights.combine(_weights.check_sample_weight(data[2], Xd.shape[0],
                                                          f"sample_weight_{what}"), None)
        weight = None if w is None else _losses.row_coefficients(w)
    return Xd, Td, weight


def _resolve_chunked(net, X, y, sample_weight, class_weight, validation_data,
                     validation_split, validation_shuffle):
    """:func:`_resolve_data` for Dask arrays: ``nncore._dask.ChunkedSet`` in place of
    ``(X, T)`` (T None) holding its weights; training and validation sets checked in
    one pass."""
    Xa = _dask.ChunkedSet(net, X, y, sample_weight=sample_weight, class_weight=class_weight,
                          check=False)
    Xv = None
    if validation_data is not None:
        Xv, _, _ = _check_eval_data(net, validation_data, "validation_data", "val")
    elif validation_split > 0.0:
        if validation_shuffle:
            raise ValueError("validation_shuffle=True needs in-memory data; with Dask arrays "
                             "the last rows are held out (or pass validation_data)")
        Xa, Xv = _dask_fit.split_last(Xa, validation_split)
    _dask.check_sets(net, Xa, *([] if Xv is None else [Xv]))
    return Xa, None, None, Xv, None, None


def _resolve_data(net, X, y, sample_weight, class_weight, validation_data, validation_split,
                  validation_shuffle, seed):
    """Checked training and validation data and their weights (see :func:`fit`)."""
    if _dask.is_chunked(X) or _dask.is_chunked(y):
        return _resolve_chunked(net, X, y, sample_weight, class_weight, validation_data,
                                validation_split, validation_shuffle)
    Xa = net._check_X(X)
    T = net._check_y(y, Xa.shape[0])
    sw = (None if sample_weight is None
          else _weights.check_sample_weight(sample_weight, Xa.shape[0]))
    Xv = Tv = cv = None
    if validation_data is not None:
        Xv, Tv, cv = _check_eval_data(net, validation_data, "validation_data", "val")
    elif validation_split > 0.0:
        # The split's own stream: fit's streams are children 0-2 of SeedSequence(seed).
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
        train, val = split_selectors(net, T, validation_split, bool(validation_shuffle), rng)
        Xa, T, Xv, Tv = Xa[train], T[train], Xa[val], T[val]
        if sw is not None:
            # The held-out rows keep their sample weights (class weights train only).
            sw, wv = sw[train], _weights.combine(sw[val], None, "the validation_split rows")
            cv = None if wv is None else _losses.row_coefficients(wv)
    weight = _weights.combine(sw, _weights.class_row_weights(net, T, class_weight))
    return Xa, T, weight, Xv, Tv, cv


def _resolve(net, X, y, optimizer, batch_size, epochs, shuffle, validation_data,
             validation_split, callbacks, augment, progress, seed, validation_shuffle=False,
             test_data=None, sample_weight=None, class_weight=None):
    """All argument checks; returns the prepared pieces. Changes nothing."""
    from . import optim as _optim

    opt = _optim.get(optimizer)
    batch_size = _check_batch_size(net, opt, batch_size, augment)

    epochs = integer(epochs, "epochs", low=1)
    shuffle = flag(shuffle, "shuffle")
    if progress is not None:
        progress = flag(progress, "progress")
    if augment is not None and not callable(augment):
        raise InvalidParameterError(f"augment must be a callable (X_batch, rng) -> X_batch, got {augment!r}")
    seed = integer(seed, "seed", low=0, allow_none=True)
    validation_split = real(validation_split, "validation_split", low=0.0, high=1.0,
                            high_open=True)
    validation_shuffle = flag(validation_shuffle, "validation_shuffle")
    if validation_shuffle and validation_split == 0.0:
        raise ValueError("validation_shuffle=True needs validation_split > 0")

    callbacks = _check_callbacks(callbacks)

    Xa, T, weight, Xv, Tv, cv = _resolve_data(net, X, y, sample_weight, class_weight,
                                              validation_data, validation_split,
                                              validation_shuffle, seed)
    test = None
    if test_data is not None:
        test = _check_eval_data(net, test_data, "test_data", "test")
        if test[1] is None:         # Dask arrays: checked once, here
            _dask.check_sets(net, test[0])
    weights = {"train": weight, "val": cv}
    return (opt, batch_size, int(epochs), bool(shuffle), Xa, T, Xv, Tv, callbacks, seed, test,
            weights)


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
        augment=None, progress=None, seed=None, test_data=None, sample_weight=None,
        class_weight=None):
    """Train ``net`` on ``(X, y)``: the functional form of :meth:`Network.fit`.

    Parameters
    ----------
    net : Network
        The network to train (changed in place).
    X, y, optimizer, batch_size, epochs, shuffle, validation_data, validation_split, validation_shuffle, callbacks, augment, progress, seed, test_data, sample_weight, class_weight
        As :meth:`Network.fit`, which documents them, what it returns and
        what it raises (one place, so the two cannot drift apart).

    Returns
    -------
    History
    """
    (opt, batch_size, epochs, shuffle, Xa, T, Xv, Tv, callbacks, seed, test, weights) = _resolve(
        net, X, y, optimizer, batch_size, epochs, shuffle, validation_data,
        validation_split, callbacks, augment, progress, seed, validation_shuffle,
        test_data, sample_weight, class_weight)

    from .history import History

    n = Xa.shape[0]
    steps = 1 if batch_size == "full" else -(-n // min(batch_size, n))
    history = History(params={
        "epochs": epochs, "batch_size": batch_size, "steps": steps, "samples": n,
        "optimizer": type(opt).__name__, "shuffle": shuffle, "seed": seed,
        "validation": Xv is not None, "test": test is not None,
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
        "test": test,
        "weight": weights["train"],     # the training rows' weights, or None
        "val_weight": weights["val"],   # row coefficients of the validation rows, or None
        "threads": _thread_plan.Ticker(_workload(net, opt, batch_size, augment, callbacks)),
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
    except BaseException as exc:
        # Stopped in the first epoch, the record still has its metrics (empty).
        history.declare(_record_keys(net, opt, Xv is not None, test is not None))
        if isinstance(exc, KeyboardInterrupt):
            history.stop_reason = "interrupted"
        raise
    finally:
        state["threads"].close()
        if bar is not None:
            bar.close()
    return history


def _workload(net, opt, batch_size, augment, callbacks):
    """The thread plan's key: runs that share it cost alike per step; None (no plan:
    the configured threads throughout) where one thread and several give other bits,
    so switching would make results depend on the machine's load: on the NumPy
    backend, whose matrix products round long inner sums by the thread count (the
    compiled GEMMs sum in fixed blocks), and for float64 networks, for which
    OpenBLAS's one- and two-thread drivers round some shapes differently even
    within one block (183 of 1,188 dgemm shapes and transposes with k <= 256; none
    of the same sgemm ones: ``python bench/blas_thread_bits.py``)."""
    if getattr(_backend.current(), "NAME", None) == "numpy" or net.dtype == np.float64:
        return None
    per_step = augment is not None or any(_wants_batches(cb) for cb in callbacks)
    return (getattr(opt, "full_batch", False), batch_size, per_step, net.n_params,
            str(net.dtype), getattr(_backend.current(), "NAME", None))


def _record_keys(net, opt, validation, test):
    """The metrics every epoch of this fit records (see ``fit``'s Returns)."""
    def loss_keys(prefix):
        return [prefix + "loss"] + ([prefix + "accuracy"] if net.is_classifier else [])

    keys = loss_keys("") + ["lr", "grad_norm", "step_norm"]
    if getattr(opt, "full_batch", False):
        keys += ["nfev", "ngev"]
    if validation:
        keys += loss_keys("val_") + ["val_fail"]
    if test:
        keys += loss_keys("test_")
    return keys + ["time"]


def _last_logs(history):
    return {k: v[-1] for k, v in history.history.items() if v}


def _epoch_end(net, Xv, Tv, logs, epoch, history, callbacks, bar, t_start, state):
    if Xv is not None:
        logs.update(metrics(net, Xv, Tv, prefix="val_", weight=state["val_weight"]))
        logs["val_fail"] = history.validation_failures(logs["val_loss"])
    test = state["test"]
    if test is not None:
        logs.update(metrics(net, test[0], test[1], prefix="test_", weight=test[2]))
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


def _diverged(net, workspace, epoch_state, epoch):
    """Put back the last parameters whose loss was finite; returns the error to raise."""
    if epoch_state["have_backup"]:
        np.copyto(net.params, workspace["backup"])
    loss, step = epoch_state["loss"], epoch_state["step"]
    if math.isfinite(loss):
        what = f"an update made the parameters inf or NaN (the step's loss was {loss})"
        loss = math.nan     # the loss at those parameters is undefined
    else:
        what = f"the loss became {loss}"
    kept = ("the parameters of the last step whose loss was finite"
            if epoch_state["have_backup"] else
            "its parameters from before training, where the loss was already not finite")
    return DivergenceError(
        f"training diverged: {what} at epoch {epoch}, step {step} (0-based); the network "
        f"keeps {kept}. Try a smaller learning rate, gradient clipping (clip_norm=) or "
        "input scaling.", epoch=epoch, step=step, loss=loss)


def _wants_batches(cb):
    """True when a callback does something in ``on_batch_end`` (not the base no-op)."""
    from .callbacks import Callback
    fn = getattr(cb, "on_batch_end", None)
    return fn is not None and getattr(fn, "__func__", None) is not Callback.on_batch_end


def _loop_layers(net):
    """The network as ``train_epoch`` layer tuples (each layer describes itself),
    or ``None`` when a layer runs on the per-step path only."""
    return net._loop_layers()


def _chunk_steps(B, n_params):
    """Steps per ``train_epoch`` call: about 0.1 s of work, so Ctrl-C stays responsive."""
    return int(min(_MAX_CHUNK, max(16, _CHUNK_WORK // max(1, B * n_params))))


class _FlatLoopsSerial:
    """During first-order training, flat loops go parallel only when huge.

    An OpenMP region between two multi-threaded BLAS calls makes the two
    thread pools fight (libgomp's workers spin after the region while
    OpenBLAS wants every core, and the other way round): on 2 cores a
    784-256-256-10 Adam step at batch 32 became many times slower. The
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


def _fused_epoch(net, opt, X, T, B, augment, callbacks, state):
    """A function running one epoch in the backend's compiled loop, or None when this
    fit needs Python per step: a backend without the loop, one batch per epoch,
    augmentation, a per-batch callback, batches beyond the network's workspace
    chunk, a loss without a loop code, an optimizer without a lowering
    (``fused_update`` None) or a layer the loop cannot run."""
    be = _backend.current()
    n = X.shape[0]
    fused_update = getattr(opt, "fused_update", None)
    if not (_EPOCH_LOOP and getattr(be, "FUSED_LOOP", False) and B < n and B <= net._chunk_rows
            and augment is None and not any(_wants_batches(cb) for cb in callbacks)
            and net._loss.loop_code(T) is not None
            and fused_update is not None and fused_update(net.params) is not None):
        return None
    layers = _loop_layers(net)
    if layers is None:
        return None
    params, grads = net.params, net.grads
    penalty = net.regularizer
    l1, l2 = (penalty.l1, penalty.l2) if penalty is not None else (0.0, 0.0)
    n_steps = -(-n // B)
    chunk = _chunk_steps(B, net.n_params)

    threads = state.get("threads", _thread_plan.NO_PLAN)

    def run(order, epoch_state, workspace):
        update = fused_update(params)     # this epoch's rate, the live state buffers
        opt_state = opt.init(params)
        epoch_state["opt_step"] = opt_state.step
        try:
            while epoch_state["step"] < n_steps and not epoch_state["diverged"]:
                start = epoch_state["step"]
                stop = min(start + threads.steps(chunk), n_steps)
                be.train_epoch(X, T, order, B, stop, params, grads, layers, net.loss_name,
                               net._segments, l1, l2, update, state["drop_seed"], epoch_state,
                               workspace, state["weight"])
                threads.tick(epoch_state["step"] - start)
        finally:
            # Ctrl-C lands between chunks: the state matches the parameters.
            opt_state.step = epoch_state["opt_step"]
            if epoch_state["grad_norm"] is not None:
                opt.grad_norm = epoch_state["grad_norm"]

    return run


def _python_epoch(net, opt, X, T, B, augment, callbacks, state, first_step=0):
    """A function running one epoch through the Python step loop (any optimizer's
    ``step``, augmentation and ``on_batch_end`` callbacks); ``first_step`` numbers
    the batches of a part of an epoch (a streamed window) for the callbacks."""
    be = _backend.current()
    params, grads = net.params, net.grads
    chunk_sums = np.empty_like(params) if B > net._chunk_rows else None
    count = net.is_classifier
    aug_rng = state["aug_rng"]
    n_steps = -(-X.shape[0] // B)

    def run(order, epoch_state, workspace):
        def loss_and_grad(xb, tb, cb):
            J, correct, epoch_state["counter"] = net._loss_grad(
                xb, tb, training=True, grad=True, seed=state["drop_seed"],
                counter=epoch_state["counter"], count=count, acc=chunk_sums, weight=cb)
            return J + net._penalty(True), correct

        def on_batch(step, rows, loss):
            state.get("threads", _thread_plan.NO_PLAN).tick()
            step += first_step
            _call(callbacks, "on_batch_end", step, {"batch": step, "size": rows, "loss": loss})

        _epoch.step_loop(be, X, T, order, B, 1 if order is None else n_steps, params,
                         loss_and_grad, lambda: opt.step(params, grads), epoch_state, workspace,
                         None if augment is None else (lambda xb: augment(xb, aug_rng)),
                         on_batch, state["weight"])

    return run


def _first_order_epochs(net, opt, X, T, Xv, Tv, batch_size, epochs, shuffle, callbacks,
                        augment, state, history, bar):
    n = X.shape[0]
    whole_set = batch_size == "full" or batch_size >= n
    B = n if whole_set else batch_size

    def runner(X, T, first_step=0):
        return (_fused_epoch(net, opt, X, T, B, augment, callbacks, state)
                or _python_epoch(net, opt, X, T, B, augment, callbacks, state, first_step))

    if T is None:       # Dask arrays: mini-batches streamed from the chunks
        def window_runner(Xw, Tw, first_step, weight):
            state["weight"] = weight        # the window's rows' weights, or None
            return runner(Xw, Tw, first_step)

        run_epoch = _dask_fit.streamed_epoch(net, X, B, shuffle, state["shuffle_rng"],
                                             window_runner)
        order = None
    else:
        run_epoch = runner(X, T)
        order = None if whole_set else np.arange(n, dtype=np.int64)
    n_steps = 1 if whole_set else -(-n // B)
    judged = net._loss.n_judged(n, net.n_out)     # predictions the accuracy counts
    workspace = {}          # the loops' buffers and the backup, kept across epochs
    have_backup = False
    start = np.empty_like(net.params)   # the parameters at each epoch's start
    t_start = time.perf_counter()
    for epoch in range(epochs):
        _call(callbacks, "on_epoch_begin", epoch, {})
        if hasattr(opt, "set_epoch"):
            opt.set_epoch(epoch)
        lr = float(opt.current_lr) if hasattr(opt, "current_lr") else math.nan
        if order is not None and shuffle:
            state["shuffle_rng"].shuffle(order)
        epoch_state = _epoch.new_state(counter=state["counter"], count=net.is_classifier)
        epoch_state["have_backup"] = have_backup
        np.copyto(start, net.params)        # for the epoch's step length
        try:
            run_epoch(order, epoch_state, workspace)
        finally:
            state["counter"] = epoch_state["counter"]
            have_backup = epoch_state["have_backup"]
        if epoch_state["diverged"]:
            raise _diverged(net, workspace, epoch_state, epoch)
        logs = {"loss": epoch_state["loss_sum"] / n_steps}
        if net.is_classifier:
            logs["accuracy"] = epoch_state["correct"] / judged
        logs["lr"] = lr
        # The last batch's gradient (grads hold it, unclipped) and how far the
        # epoch moved the parameters: MATLAB's training-state record, at O(n).
        logs["grad_norm"] = float(np.linalg.norm(net.grads))
        logs["step_norm"] = float(np.linalg.norm(np.subtract(net.params, start, out=start)))
        if _epoch_end(net, Xv, Tv, logs, epoch, history, callbacks, bar, t_start, state):
            break


def _objective(net, X, T, weight):
    """The in-memory full-batch objective ``fun(x) -> (f, g)``, float64, with
    ``fun.curvature`` and ``fun.accuracy(x)``."""
    params = net.params
    acc = np.empty_like(params) if X.shape[0] > net._chunk_rows else None
    coef = None if weight is None else _losses.row_coefficients(weight)

    def fun(x):
        np.copyto(params, x)
        J, _, _ = net._loss_grad(X, T, grad=True, acc=acc, weight=coef)
        J += net._penalty(True)
        return float(J), net.grads.astype(np.float64)

    # Exact curvature of the same objective for the second-order optimizers
    # (Newton, Levenberg-Marquardt, NewtonCG, ...); built lazily, copies nothing.
    fun.curvature = Curvature(net, X, T, sample_weight=weight)
    fun.accuracy = lambda x: net._accuracy(X, T)    # the network is at x
    return fun


def _run_full_batch(net, opt, X, T, Xv, Tv, batch_size, epochs, shuffle, callbacks,
                    augment, state, history, bar):
    params = net.params
    # Dask arrays: loss, gradient and curvature summed over the chunks on the workers.
    fun = (_objective(net, X, T, state["weight"]) if T is not None
           else _dask_fit.Objective(net, X))
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
        if not (math.isfinite(f_new) and np.isfinite(x_new).all() and np.isfinite(g_new).all()):
            # Back to the last iterate, where the loss f was finite.
            np.copyto(params, x)
            raise DivergenceError(
                f"training diverged: the loss became {f_new} (or its gradient or the "
                f"parameters inf or NaN) at epoch {epoch}, step 0 (0-based); the network "
                "keeps the parameters from before that iteration, the last whose loss was "
                "finite.", epoch=epoch, step=0, loss=f_new)
        state.get("threads", _thread_plan.NO_PLAN).tick(max(1, int(info.get("nfev", 1))))
        np.copyto(params, x_new)
        step_norm = float(np.linalg.norm(x_new - x))
        x, f, g = x_new, f_new, g_new
        nfev += int(info.get("nfev", 0))
        ngev += int(info.get("ngev", 0))
        _call(callbacks, "on_batch_end", 0, {"batch": 0, "size": X.shape[0], "loss": f})
        logs = {"loss": float(f)}
        if net.is_classifier:
            logs["accuracy"] = fun.accuracy(x)
        logs["lr"] = float(info.get("lr", math.nan))
        logs.update(info.get("log", {}))   # the optimizer's diagnostics (LM's mu, ...)
        logs["nfev"] = nfev
        logs["ngev"] = ngev
        logs["grad_norm"] = float(np.linalg.norm(g))
        logs["step_norm"] = step_norm
        # Optimizer-specific per-iteration values (LM's mu, BR's gamma...) go
        # to the history under their own names.
        logs.update(info.get("log", {}))
        stop = _epoch_end(net, Xv, Tv, logs, epoch, history, callbacks, bar, t_start, state)
        if info.get("stop"):
            history.stop_reason = history.stop_reason or str(info["stop"])
            break
        if stop:
            break
