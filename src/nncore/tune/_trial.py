"""One trial of a sweep: build the network a configuration describes, train, score."""

from __future__ import annotations

import copy
import os
import signal
import time

import numpy as np

from .. import losses, optim
from .._config import set_num_threads
from ..backend import get_backend, set_backend
from ..callbacks import Callback, EarlyStopping
from ..network import Network
from ._space import _check_keys, _hidden, _normalise, _plain

_FIRST_ORDER = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
_OPT_KWARGS = ("momentum", "weight_decay", "clip_norm")
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def build(config, n_in, n_out, loss=None, seed=None):
    """The network a configuration describes (untrained).

    Parameters
    ----------
    config : dict
        Hyper-parameters (see :data:`KNOWN_KEYS`); fit-only keys are ignored here.
        The shape is ``hidden`` (a tuple of widths, alias ``layers``) or
        ``depth`` x ``width``; default one hidden layer of 64 units. Each hidden
        ``Dense`` uses ``activation`` (default ``"relu"``) and is followed by
        ``Dropout(dropout)`` when ``dropout > 0``; the output layer is linear.
        ``l1``/``l2`` select ``L1``, ``L2`` or ``ElasticNet``.
    n_in, n_out : int
        Input features and outputs.
    loss : str, optional
        Used when ``config`` has no ``loss``; default ``"mse"``.
    seed : int, optional
        Initialisation seed when ``config`` has no ``seed``.

    Returns
    -------
    nncore.Network
    """
    _check_keys(config)
    cfg = _normalise(config)
    return Network.mlp(int(n_in), _hidden(cfg), int(n_out),
                       activation=cfg.get("activation", "relu"),
                       loss=cfg.get("loss", loss or "mse"),
                       dropout=cfg.get("dropout", 0.0) or 0.0,
                       l1=cfg.get("l1", 0.0) or 0.0, l2=cfg.get("l2", 0.0) or 0.0,
                       init=cfg.get("init"), dtype=cfg.get("dtype", "float32"),
                       seed=cfg.get("seed", seed))


def _make_optimizer(cfg):
    """Optimizer instance from ``optimizer``/``lr``/``momentum``/... (a fresh object per trial)."""
    opt = cfg.get("optimizer", "adam")
    kwargs = {k: cfg[k] for k in _OPT_KWARGS if k in cfg}
    if "lr" in cfg:
        kwargs["lr"] = cfg["lr"]
    if not isinstance(opt, str):
        if kwargs:
            raise ValueError(f"{sorted(kwargs)} cannot be combined with an optimizer instance; "
                             "give the optimizer by name")
        return copy.deepcopy(opt)  # never share state between trials run in one process
    name = opt.lower()
    if kwargs and name not in _FIRST_ORDER and name in optim.NAMES:
        raise ValueError(f"optimizer {opt!r} does not take {sorted(kwargs)} "
                         "(full-batch optimizers choose their own step length)")
    return optim.get(name, **kwargs)


class _Data:
    """Training and validation arrays, shipped once per worker (or scattered on Dask)."""

    def __init__(self, X, y, Xv, yv, loss, n_out):
        self.X, self.y, self.Xv, self.yv = X, y, Xv, yv
        self.loss, self.n_out = loss, n_out


_WORKER = {"data": None, "ready_pid": None}


def _limit_threads():
    """One BLAS/OpenMP thread in this process (the sweep parallelises over trials)."""
    for var in _THREAD_ENV:
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        pass
    else:
        threadpool_limits(1)
    _set_nc_threads(1)


def _set_nc_threads(n):
    try:
        set_num_threads(n)
    except NotImplementedError:  # pragma: no cover - before the foundation landed
        pass


def _init_worker(data, backend):
    """ProcessPoolExecutor initializer: data once per worker, single-threaded kernels."""
    # Ctrl-C is the caller's to handle (it keeps the finished trials and stops
    # the pool); workers would only print a traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER["data"] = data
    _WORKER["ready_pid"] = os.getpid()
    _limit_threads()
    set_backend(backend)


class _EpochCounter(Callback):
    """Counts finished epochs, so a trial that diverges still reports them."""

    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def _evaluate(net, X, y, loss):
    """Validation data loss (no regularisation penalty) and accuracy, in float64,
    through the loss registry's NumPy reference and accuracy count."""
    spec = losses.get(loss)
    out = np.asarray(net.forward(X), dtype=np.float64)
    t = np.asarray(y)
    t = t.astype(np.int64) if spec.takes_labels(t) else t.astype(np.float64).reshape(out.shape)
    val = spec.reference(out, t)
    acc = None
    if spec.is_classifier:
        acc = spec.count_correct(out, t) / spec.n_judged(*out.shape)
    return val, acc


def _prepare_process(task, data):
    """The trial's data, with this process set up for it (threads, backend)."""
    if data is None:
        data = _WORKER["data"]
    if data is None:
        raise RuntimeError("nncore.tune: trial data missing in this worker")
    if task["origin_pid"] != os.getpid() and _WORKER["ready_pid"] != os.getpid():
        # A foreign worker process (Dask, a user's pool): set it up once.
        _WORKER["ready_pid"] = os.getpid()
        _limit_threads()
    if get_backend() != task["backend"]:
        set_backend(task["backend"])
    return data


def _empty_record(task):
    return {"trial": task["trial"], "params": dict(task["params"]), "metric": float("nan"),
            "val_loss": float("nan"), "val_accuracy": float("nan"), "loss": float("nan"),
            "epochs": 0, "time": 0.0, "cpu_time": 0.0,
            "status": "ok", "error": "", "seed": task["seed"]}


def _fit_trial(task, data, cfg, net, counter):
    """Train ``net`` as the configuration says; returns the history dict."""
    fit_kw = {key: cfg[key] for key in ("batch_size", "epochs", "augment", "shuffle")
              if key in cfg}
    if task.get("epochs") is not None:  # successive halving: this rung's budget
        fit_kw["epochs"] = min(task["epochs"], cfg.get("epochs", task["epochs"]))
    callbacks = [counter]
    if task.get("early_stopping") is not None:
        callbacks.append(EarlyStopping(**task["early_stopping"]))
    # A diverging trial is reported as DivergenceError in its record; NumPy's
    # overflow warnings on the way there would only clutter the sweep's output.
    with np.errstate(over="ignore", invalid="ignore"):
        hist = net.fit(data.X, data.y, optimizer=_make_optimizer(cfg),
                       validation_data=(data.Xv, data.yv), callbacks=callbacks,
                       progress=False, seed=cfg.get("seed", task["seed"]), **fit_kw)
    return {k: [_plain(v) for v in vals] for k, vals in hist.history.items()}


def _score_trial(rec, metric, net, data, loss, history):
    """Fill the record's validation scores and the metric the sweep ranks on."""
    val_loss, val_acc = _evaluate(net, data.Xv, data.yv, loss)
    rec["val_loss"] = val_loss
    if val_acc is not None:
        rec["val_accuracy"] = val_acc
    if history.get("loss"):
        rec["loss"] = float(history["loss"][-1])
    if callable(metric):
        rec["metric"] = float(metric(net, data.Xv, data.yv))
    elif metric in ("val_loss", "val_accuracy"):
        if metric == "val_accuracy" and val_acc is None:
            raise ValueError(f"metric 'val_accuracy' needs a classification loss, not {loss!r}")
        rec["metric"] = rec[metric]
    else:  # a training-history key, e.g. "loss" or "accuracy": its last epoch
        if metric not in history:
            raise ValueError(f"metric {metric!r} is not in the training history "
                             f"(keys: {sorted(history)})")
        rec["metric"] = float(history[metric][-1])


def _run_trial(task, data=None):
    """Train one configuration; return plain data (record, parameters, history).

    Every exception of the trial itself is caught and recorded, so one bad
    configuration never stops a sweep.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    data = _prepare_process(task, data)
    cfg = _normalise(task["params"])
    loss = cfg.get("loss", data.loss)
    rec = _empty_record(task)
    params = history = n_out = None
    counter = _EpochCounter()
    try:
        n_out = data.n_out if loss == data.loss else _n_out(loss, data.y, data.yv)
        net = build(task["params"], data.X.shape[1], n_out, loss=data.loss,
                    seed=task["seed"])
        history = _fit_trial(task, data, cfg, net, counter)
        rec["epochs"] = counter.epochs
        _score_trial(rec, task["metric"], net, data, loss, history)
        if task.get("return_params", True):
            params = np.array(net.params, copy=True)
    except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
        rec["status"] = "failed"
        rec["error"] = f"{type(exc).__name__}: {exc}"
        rec["epochs"] = counter.epochs
        params = None
    rec["time"] = time.perf_counter() - t0
    rec["cpu_time"] = time.process_time() - c0
    return {"record": rec, "params": params, "history": history, "n_out": n_out}


def _n_out(loss, y, yv):
    """Output width for ``loss``: classes for 1-D cross-entropy labels, else target columns."""
    y = np.asarray(y)
    if losses.get(loss).takes_labels(y):
        top = max(int(np.max(y)), int(np.max(yv)) if len(yv) else 0)
        return top + 1
    return 1 if y.ndim == 1 else y.shape[1]
