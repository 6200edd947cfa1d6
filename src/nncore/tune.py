"""Hyper-parameter sweeps: ``nc.tune.grid``, ``nc.tune.random``, ``nc.tune.search``.

Design
------
* A *configuration* is a plain dict of hyper-parameters (``KNOWN_KEYS``): the
  network's shape and regularisation (``hidden`` or ``depth``/``width``,
  ``activation``, ``dropout``, ``l1``, ``l2``, ``dtype``, ``loss``) and the
  arguments of ``net.fit`` (``optimizer``, ``lr``, ``batch_size``, ``epochs``,
  ``augment``, ...). Unknown keys are a ``ValueError`` before any trial runs;
  a bad *value* (an unknown activation, ``lr`` with a full-batch optimizer, a
  diverging learning rate) fails only its own trial, which is recorded with its
  error while the sweep goes on.
* A trial is one call of the module-level function ``_run_trial(task, data)``,
  so it pickles by reference and runs on any ``concurrent.futures.Executor``,
  a ``dask.distributed.Client`` or in-process (``executor="serial"``). It returns
  plain data only: a record, the trained parameters as a NumPy array and the
  history dict. The best network is rebuilt in the caller from its
  configuration and parameters; networks are never pickled.
* Reproducibility: trial ``i`` gets the seed ``SeedSequence(seed,
  spawn_key=(i,))`` for both the initialisation and ``fit``; every trial runs
  with one BLAS/OpenMP thread and the caller's backend. So a sweep gives the
  same numbers serially, on local processes or on a Dask cluster.
* This module imports only the standard library and NumPy at import time
  (``import nncore`` stays light); pandas, tqdm, threadpoolctl and dask are
  imported when used.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import copy
import csv
import itertools
import json
import math
import numbers
import os
import sys
import time
import warnings

import numpy as np

__all__ = [
    "KNOWN_KEYS", "SearchResult", "SuccessiveHalving", "build", "choice", "grid",
    "loguniform", "randint", "random", "search", "uniform", "space_from_json",
    "Uniform", "LogUniform", "RandInt", "Choice", "add_subparser", "cli_main",
]

NETWORK_KEYS = ("hidden", "layers", "hidden_layer_sizes", "depth", "width", "activation", "loss",
                "dropout", "l1", "l2", "dtype", "init", "seed")
FIT_KEYS = ("optimizer", "lr", "learning_rate", "momentum", "weight_decay", "clip_norm",
            "batch_size", "epochs", "augment", "shuffle")
KNOWN_KEYS = frozenset(NETWORK_KEYS + FIT_KEYS)
# "hidden_layer_sizes" is nncore.sklearn's name for the same thing.
_ALIASES = {"layers": "hidden", "hidden_layer_sizes": "hidden", "learning_rate": "lr"}
DEFAULT_HIDDEN = (64,)

# Optimizer names that take a learning rate (the others are full-batch).
_FIRST_ORDER = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
_OPT_KWARGS = ("momentum", "weight_decay", "clip_norm")
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


# --------------------------------------------------------------------------- distributions

class _Distribution:
    """A sampling distribution for :func:`random` (values are Python scalars)."""

    def sample(self, rng):  # pragma: no cover - abstract
        """Draw one value.

        Parameters
        ----------
        rng : numpy.random.Generator

        Returns
        -------
        float, int or the chosen value (a Python scalar)
        """
        raise NotImplementedError

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self).__name__, repr(self)))


def _check_bounds(low, high, name, positive=False):
    for v in (low, high):
        if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"{name}: bounds must be finite numbers, got {low!r}, {high!r}")
    if not low < high:
        raise ValueError(f"{name}: need low < high, got {low!r}, {high!r}")
    if positive and low <= 0:
        raise ValueError(f"{name}: bounds must be positive, got {low!r}, {high!r}")


class Uniform(_Distribution):
    """Real values uniform on ``[low, high)`` (see :func:`uniform`).

    Parameters
    ----------
    low, high : float
        Finite bounds, ``low < high``.
    """

    def __init__(self, low, high):
        _check_bounds(low, high, "uniform")
        self.low, self.high = float(low), float(high)

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def __repr__(self):
        return f"uniform({self.low!r}, {self.high!r})"


class LogUniform(_Distribution):
    """Positive reals with a uniform logarithm (see :func:`loguniform`).

    Parameters
    ----------
    low, high : float
        Finite positive bounds, ``low < high``.
    """

    def __init__(self, low, high):
        _check_bounds(low, high, "loguniform", positive=True)
        self.low, self.high = float(low), float(high)

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def __repr__(self):
        return f"loguniform({self.low!r}, {self.high!r})"


class RandInt(_Distribution):
    """Integers ``low .. high - 1`` (see :func:`randint`).

    Parameters
    ----------
    low, high : int
        Bounds, ``low < high`` (``high`` exclusive).
    """

    def __init__(self, low, high):
        for v in (low, high):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool):
                raise ValueError(f"randint: bounds must be integers, got {low!r}, {high!r}")
        if not low < high:
            raise ValueError(f"randint: need low < high (high is exclusive), got {low!r}, {high!r}")
        self.low, self.high = int(low), int(high)

    def sample(self, rng):
        return int(rng.integers(self.low, self.high))

    def __repr__(self):
        return f"randint({self.low!r}, {self.high!r})"


class Choice(_Distribution):
    """One of a list of values (see :func:`choice`); :func:`grid` enumerates them.

    Parameters
    ----------
    values : iterable
        The candidates (at least one).
    """

    def __init__(self, values):
        values = list(values)
        if not values:
            raise ValueError("choice: needs at least one value")
        self.values = values

    def sample(self, rng):
        return _plain(self.values[int(rng.integers(len(self.values)))])

    def __repr__(self):
        return f"choice({self.values!r})"


def uniform(low, high):
    """Real values uniform on ``[low, high)``.

    Parameters
    ----------
    low, high : float
        Finite bounds, ``low < high``.

    Returns
    -------
    Uniform

    Raises
    ------
    ValueError
        If a bound is not a finite number or ``low >= high``.
    """
    return Uniform(low, high)


def loguniform(low, high):
    """Positive real values whose logarithm is uniform on ``[log low, log high)``.

    Parameters
    ----------
    low, high : float
        Finite positive bounds, ``low < high``.

    Returns
    -------
    LogUniform

    Raises
    ------
    ValueError
        If a bound is not a finite positive number or ``low >= high``.
    """
    return LogUniform(low, high)


def randint(low, high):
    """Integers uniform on ``low, ..., high - 1`` (``high`` exclusive, as NumPy).

    Parameters
    ----------
    low, high : int
        Bounds, ``low < high``.

    Returns
    -------
    RandInt

    Raises
    ------
    ValueError
        If a bound is not an integer or ``low >= high``.
    """
    return RandInt(low, high)


def choice(values):
    """One of ``values``, each with equal probability.

    Parameters
    ----------
    values : iterable
        The candidates (at least one); :func:`grid` enumerates them all.

    Returns
    -------
    Choice

    Raises
    ------
    ValueError
        If ``values`` is empty.
    """
    return Choice(values)


_DIST_JSON = {"uniform": Uniform, "loguniform": LogUniform, "randint": RandInt,
              "choice": Choice}


def _plain(v):
    """NumPy scalars -> Python scalars, so records compare, print and serialise cleanly."""
    if isinstance(v, np.generic):
        return v.item()
    return v


# --------------------------------------------------------------------------- spaces

def _check_keys(config, where="configuration"):
    if not isinstance(config, dict):
        raise TypeError(f"a {where} must be a dict, got {type(config).__name__}")
    bad = [k for k in config if k not in KNOWN_KEYS]
    if bad:
        raise ValueError(
            f"unknown hyper-parameter(s) {sorted(map(str, bad))} in {where}; "
            f"known: {sorted(KNOWN_KEYS)}")
    for a, b in (("hidden", "layers"), ("hidden", "hidden_layer_sizes"),
                 ("layers", "hidden_layer_sizes"), ("lr", "learning_rate")):
        if a in config and b in config:
            raise ValueError(f"give either {a!r} or its alias {b!r}, not both")
    shape = "hidden" in config or "layers" in config or "hidden_layer_sizes" in config
    if shape and ("depth" in config or "width" in config):
        raise ValueError("give the network shape either as 'hidden' (layer widths) "
                         "or as 'depth' and 'width', not both")


def _candidates(name, value):
    """The candidate values of one space entry (a list, a choice, or one fixed value)."""
    if isinstance(value, Choice):
        return [_plain(v) for v in value.values]
    if isinstance(value, _Distribution):
        raise ValueError(f"{name!r} is a continuous distribution ({value!r}); grid() needs "
                         "lists of values, use random(space, n, seed) instead")
    if isinstance(value, list):
        if not value:
            raise ValueError(f"{name!r} has an empty list of candidate values")
        return [_plain(v) for v in value]
    return [_plain(value)]


def grid(space):
    """All combinations of the candidate values in ``space``.

    Parameters
    ----------
    space : dict
        Hyper-parameter name -> list of candidate values (or ``choice([...])``).
        Any other value (a number, a string, a tuple such as ``hidden=(64, 32)``)
        is fixed. For ``hidden``, a list entry that is an int means one hidden
        layer of that width: ``{"hidden": [32, (64, 32)]}`` has two candidates.

    Returns
    -------
    list of dict
        The Cartesian product, in a fixed order: the last key varies fastest
        (as ``itertools.product`` and scikit-learn's ``ParameterGrid``).

    Raises
    ------
    ValueError
        Unknown hyper-parameter names, empty candidate lists, or continuous
        distributions (use :func:`random`).
    """
    _check_keys(space, "space")
    names = list(space)
    cands = [_candidates(k, space[k]) for k in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*cands)]


def random(space, n, seed=0):
    """``n`` configurations sampled independently from ``space``.

    Parameters
    ----------
    space : dict
        Name -> list of values (sampled uniformly), a distribution
        (:func:`uniform`, :func:`loguniform`, :func:`randint`, :func:`choice`)
        or a fixed value.
    n : int
        Number of configurations (> 0).
    seed : int, default 0
        Seed of the sampler; the same seed gives the same list.

    Returns
    -------
    list of dict
    """
    _check_keys(space, "space")
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    for k, v in space.items():
        if isinstance(v, list) and not v:
            raise ValueError(f"{k!r} has an empty list of candidate values")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(int(n)):
        cfg = {}
        for k, v in space.items():
            if isinstance(v, _Distribution):
                cfg[k] = v.sample(rng)
            elif isinstance(v, list):
                cfg[k] = _plain(v[int(rng.integers(len(v)))])
            else:
                cfg[k] = _plain(v)
        out.append(cfg)
    return out


def space_from_json(obj):
    """A space from parsed JSON: ``{"lr": {"loguniform": [1e-4, 1e-1]}}`` is a distribution.

    ``{"choice": [...]}``, ``{"uniform": [a, b]}``, ``{"randint": [a, b]}`` likewise;
    lists are candidate lists, other values fixed. For ``hidden``, inner lists
    are layer widths (JSON has no tuples): ``{"hidden": [[64, 32], [32]]}``.

    Parameters
    ----------
    obj : dict
        Parsed JSON, hyper-parameter name -> value, list or distribution object.

    Returns
    -------
    dict
        The space, ready for :func:`grid` / :func:`random`.

    Raises
    ------
    ValueError
        If ``obj`` is not a dict or a distribution object is malformed.
    """
    if not isinstance(obj, dict):
        raise ValueError("a space must be a JSON object (name -> values)")
    space = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            if len(v) != 1 or next(iter(v)) not in _DIST_JSON:
                raise ValueError(f"{k!r}: a distribution is written as one of "
                                 f"{sorted(_DIST_JSON)} -> arguments, got {v!r}")
            (kind, args), = v.items()
            # A JSON string is iterable too: {"choice": "adam"} must not become a, d, a, m.
            if kind == "choice" and not isinstance(args, list):
                raise ValueError(f"{k!r}: choice takes a list of values, got {args!r}")
            if kind != "choice" and not (isinstance(args, list) and len(args) == 2):
                raise ValueError(f"{k!r}: {kind} takes [low, high], got {args!r}")
            space[k] = _DIST_JSON[kind](args) if kind == "choice" else _DIST_JSON[kind](*args)
        else:
            space[k] = v
    for key in ("hidden", "layers", "hidden_layer_sizes"):
        if key in space:
            v = space[key]
            if isinstance(v, list) and v and all(isinstance(e, numbers.Integral) for e in v):
                space[key] = v  # candidates, each one hidden layer of that width
            elif isinstance(v, list):
                space[key] = [tuple(e) if isinstance(e, list) else e for e in v]
            elif isinstance(v, Choice):
                v.values = [tuple(e) if isinstance(e, list) else e for e in v.values]
    return space


# --------------------------------------------------------------------------- building a trial

def _normalise(config):
    cfg = {}
    for k, v in config.items():
        cfg[_ALIASES.get(k, k)] = v
    return cfg


def _hidden(cfg):
    if "hidden" in cfg:
        h = cfg["hidden"]
        if isinstance(h, numbers.Integral) and not isinstance(h, bool):
            h = (h,)
        if h is None:
            h = ()
        try:
            h = tuple(h)
        except TypeError:
            raise ValueError(f"hidden must be a sequence of layer widths, got {h!r}") from None
        for w in h:
            if not isinstance(w, numbers.Integral) or isinstance(w, bool) or w < 1:
                raise ValueError(f"hidden layer widths must be positive integers, got {h!r}")
        return tuple(int(w) for w in h)
    if "depth" in cfg or "width" in cfg:
        depth = cfg.get("depth", 1)
        width = cfg.get("width", DEFAULT_HIDDEN[0])
        for name, v, lo in (("depth", depth, 0), ("width", width, 1)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        return (int(width),) * int(depth)
    return DEFAULT_HIDDEN


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
    import nncore as nc

    _check_keys(config)
    cfg = _normalise(config)
    hidden = _hidden(cfg)
    act = cfg.get("activation", "relu")
    dropout = cfg.get("dropout", 0.0) or 0.0
    init = cfg.get("init")
    layers, prev = [], int(n_in)
    for width in hidden:
        layers.append(nc.Dense(prev, width, activation=act, init=init))
        if dropout:
            layers.append(nc.Dropout(dropout))
        prev = width
    layers.append(nc.Dense(prev, int(n_out), init=init))
    l1, l2 = cfg.get("l1", 0.0) or 0.0, cfg.get("l2", 0.0) or 0.0
    if l1 and l2:
        reg = nc.ElasticNet(l1, l2)
    elif l1:
        reg = nc.L1(l1)
    elif l2:
        reg = nc.L2(l2)
    else:
        reg = None
    return nc.Network(layers, loss=cfg.get("loss", loss or "mse"), regularizer=reg,
                      dtype=cfg.get("dtype", "float32"), seed=cfg.get("seed", seed))


def _make_optimizer(cfg):
    """Optimizer instance from ``optimizer``/``lr``/``momentum``/... (a fresh object per trial)."""
    import nncore as nc

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
    if kwargs and name not in _FIRST_ORDER and name in nc.optim.NAMES:
        raise ValueError(f"optimizer {opt!r} does not take {sorted(kwargs)} "
                         "(full-batch optimizers choose their own step length)")
    return nc.optim.get(name, **kwargs)


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
    import nncore as nc
    try:
        nc.set_num_threads(n)
    except NotImplementedError:  # pragma: no cover - before the foundation landed
        pass


def _init_worker(data, backend):
    """ProcessPoolExecutor initializer: data once per worker, single-threaded kernels."""
    import signal
    # Ctrl-C is the caller's to handle (it keeps the finished trials and stops
    # the pool); workers would only print a traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER["data"] = data
    _WORKER["ready_pid"] = os.getpid()
    _limit_threads()
    import nncore as nc
    nc.set_backend(backend)


def _epoch_counter():
    import nncore as nc

    class _EpochCounter(nc.callbacks.Callback):
        """Counts finished epochs, so a trial that diverges still reports them."""

        def __init__(self):
            super().__init__()
            self.epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            self.epochs += 1

    return _EpochCounter()


def _evaluate(net, X, y, loss):
    """Validation data loss (no regularisation penalty) and accuracy, in float64."""
    out = np.asarray(net.forward(X), dtype=np.float64)
    n = out.shape[0]
    acc = None
    if loss == "mse":
        d = np.asarray(y, dtype=np.float64).reshape(out.shape)
        val = 0.5 * float(np.sum((out - d) ** 2)) / n
    elif loss == "cross_entropy":
        z = out - out.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        y = np.asarray(y)
        if y.ndim == 1:
            lab = y.astype(np.intp)
            val = -float(np.mean(logp[np.arange(n), lab]))
        else:
            p = y.astype(np.float64)
            val = -float(np.sum(p * logp)) / n
            lab = p.argmax(axis=1)
        acc = float(np.mean(out.argmax(axis=1) == lab))
    elif loss == "binary_cross_entropy":
        d = np.asarray(y, dtype=np.float64).reshape(out.shape)
        # log(1 + e^-|z|) form: finite for any logit
        val = float(np.sum(np.maximum(out, 0) - out * d + np.log1p(np.exp(-np.abs(out))))) / n
        acc = float(np.mean((out >= 0) == (d >= 0.5)))
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return val, acc


def _run_trial(task, data=None):
    """Train one configuration; return plain data (record, parameters, history).

    Every exception of the trial itself is caught and recorded, so one bad
    configuration never stops a sweep.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    if data is None:
        data = _WORKER["data"]
    if data is None:
        raise RuntimeError("nncore.tune: trial data missing in this worker")
    if task["origin_pid"] != os.getpid() and _WORKER["ready_pid"] != os.getpid():
        # A foreign worker process (Dask, a user's pool): set it up once.
        _WORKER["ready_pid"] = os.getpid()
        _limit_threads()
    import nncore as nc
    if nc.get_backend() != task["backend"]:
        nc.set_backend(task["backend"])

    cfg = _normalise(task["params"])
    loss = cfg.get("loss", data.loss)
    metric = task["metric"]
    rec = {"trial": task["trial"], "params": dict(task["params"]), "metric": float("nan"),
           "val_loss": float("nan"), "val_accuracy": float("nan"), "loss": float("nan"),
           "epochs": 0, "time": 0.0, "cpu_time": 0.0,
           "status": "ok", "error": "", "seed": task["seed"]}
    params = history = n_out = None
    counter = None
    try:
        n_out = data.n_out if loss == data.loss else _n_out(loss, data.y, data.yv)
        net = build(task["params"], data.X.shape[1], n_out, loss=data.loss,
                    seed=task["seed"])
        fit_kw = {}
        for key in ("batch_size", "epochs", "augment", "shuffle"):
            if key in cfg:
                fit_kw[key] = cfg[key]
        if task.get("epochs") is not None:  # successive halving: this rung's budget
            fit_kw["epochs"] = min(task["epochs"], cfg.get("epochs", task["epochs"]))
        counter = _epoch_counter()
        callbacks = [counter]
        es = task.get("early_stopping")
        if es is not None:
            callbacks.append(nc.callbacks.EarlyStopping(**es))
        # A diverging trial is reported as DivergenceError in its record; NumPy's
        # overflow warnings on the way there would only clutter the sweep's output.
        with np.errstate(over="ignore", invalid="ignore"):
            hist = net.fit(data.X, data.y, optimizer=_make_optimizer(cfg),
                           validation_data=(data.Xv, data.yv), callbacks=callbacks,
                           progress=False, seed=cfg.get("seed", task["seed"]), **fit_kw)
        history = {k: [_plain(v) for v in vals] for k, vals in hist.history.items()}
        val_loss, val_acc = _evaluate(net, data.Xv, data.yv, loss)
        rec["val_loss"] = val_loss
        if val_acc is not None:
            rec["val_accuracy"] = val_acc
        if history.get("loss"):
            rec["loss"] = float(history["loss"][-1])
        rec["epochs"] = counter.epochs
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
        if task.get("return_params", True):
            params = np.array(net.params, copy=True)
    except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
        rec["status"] = "failed"
        rec["error"] = f"{type(exc).__name__}: {exc}"
        if counter is not None:
            rec["epochs"] = counter.epochs
        params = None
    rec["time"] = time.perf_counter() - t0
    rec["cpu_time"] = time.process_time() - c0
    return {"record": rec, "params": params, "history": history, "n_out": n_out}


# --------------------------------------------------------------------------- results

class SearchResult:
    """The table of a sweep and its best network.

    Attributes
    ----------
    records : list of dict
        One per trial, ordered by trial id, with keys ``trial``, ``params``
        (the configuration), ``metric`` (the value searched on), ``val_loss``
        (validation data loss, without the regularisation penalty, so
        configurations with different ``l1``/``l2`` compare fairly),
        ``val_accuracy`` (NaN for regression), ``loss`` (last training-epoch
        loss), ``epochs`` (run), ``time`` (wall seconds), ``cpu_time`` (CPU
        seconds of the worker process; well below ``time`` when the cores are
        oversubscribed), ``status``
        (``"ok"``/``"failed"``), ``error``, ``seed``; with successive halving also
        ``rung`` and ``epochs_total`` (epochs over all the trial's rungs).
    histories : dict
        Trial id -> the ``History.history`` dict of its last run.
    metric, mode : str
        What was optimised and in which direction (``"min"``/``"max"``).
    interrupted : bool
        True when the sweep was stopped by ``KeyboardInterrupt``; the records
        then hold the trials that had finished.
    """

    def __init__(self, records, histories, metric, mode, best, interrupted=False,
                 final_rung=None):
        self.records = records
        self.final_rung = final_rung
        self.histories = histories
        self.metric = metric
        self.mode = mode
        self.interrupted = interrupted
        self._best = best  # (trial id, config, params, n_in, n_out, loss, seed) or None
        self._best_network = None

    # -- best
    def _ok(self):
        # With successive halving only the last rung reached ran the full budget.
        return [r for r in self.records if r["status"] == "ok" and math.isfinite(r["metric"])
                and (self.final_rung is None or r.get("rung") == self.final_rung)]

    @property
    def best_record(self):
        """The record of the best successful trial (ties go to the lower trial id).

        With successive halving, the best of the last rung reached.
        """
        ok = self._ok()
        if not ok:
            errors = "; ".join(f"trial {r['trial']}: {r['error']}" for r in self.records[:3])
            raise ValueError(f"no trial of the sweep succeeded ({errors})")
        sign = 1.0 if self.mode == "min" else -1.0
        return min(ok, key=lambda r: (sign * r["metric"], r["trial"]))

    @property
    def best_params(self):
        """Configuration (dict) of the best trial."""
        return dict(self.best_record["params"])

    @property
    def best_score(self):
        """The metric of the best trial."""
        return self.best_record["metric"]

    @property
    def best_network(self):
        """The best trained network, rebuilt from its configuration and parameters."""
        if self._best_network is None:
            if self._best is None:
                self.best_record  # raises the clear "no trial succeeded" error
                raise ValueError("the best network's parameters were not returned")
            _, cfg, params, n_in, n_out, loss, seed = self._best
            net = build(cfg, n_in, n_out, loss=loss, seed=seed)
            net.params[:] = params
            self._best_network = net
        return self._best_network

    @property
    def total_epochs(self):
        """Epochs trained over the whole sweep (all rungs of successive halving)."""
        return int(sum(r.get("epochs_total", r["epochs"]) for r in self.records))

    # -- tables
    def _rows(self):
        keys = []
        for r in self.records:
            for k in r["params"]:
                if k not in keys:
                    keys.append(k)
        rows = []
        for r in self.records:
            row = {"trial": r["trial"]}
            for k in keys:
                v = r["params"].get(k)
                row["param_" + k] = v
            for k, v in r.items():
                if k not in ("trial", "params"):
                    row[k] = v
            rows.append(row)
        return rows

    def to_dataframe(self):
        """The records as a ``pandas.DataFrame``, one column per hyper-parameter (``param_*``)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("SearchResult.to_dataframe() needs pandas (pip install pandas); "
                              "the same table is in SearchResult.records") from exc
        return pd.DataFrame(self._rows())

    def to_csv(self, path):
        """Write the table as CSV (no pandas needed).

        Parameters
        ----------
        path : str or path-like
            Destination file (overwritten).
        """
        rows = self._rows()
        fields = []
        for row in rows:
            for k in row:
                if k not in fields:
                    fields.append(k)
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            for row in rows:
                w.writerow({k: (repr(v) if isinstance(v, float) else
                                "" if v is None else v) for k, v in row.items()})

    def __repr__(self):
        n_ok = len(self._ok())
        s = (f"SearchResult({len(self.records)} trials, {n_ok} ok, metric={self.metric!r}, "
             f"mode={self.mode!r}")
        if n_ok:
            s += f", best_score={self.best_score:.6g}, best_params={self.best_params!r}"
        if self.interrupted:
            s += ", interrupted"
        return s + ")"


# --------------------------------------------------------------------------- schedulers

class SuccessiveHalving:
    """Successive halving on epochs (one Hyperband bracket).

    All configurations train for a small budget of epochs; the best ``1/eta``
    go on to ``eta`` times the budget, until the full budget (each
    configuration's ``epochs``) is reached. A configuration is retrained from
    scratch at every rung with its own seed, so its last rung equals a plain
    run with that many epochs, whatever the executor.

    Parameters
    ----------
    eta : int, default 3
        Reduction factor (>= 2).
    min_epochs : int, default 1
        Budget of the first rung.
    """

    def __init__(self, eta=3, min_epochs=1):
        if not isinstance(eta, numbers.Integral) or eta < 2:
            raise ValueError(f"eta must be an integer >= 2, got {eta!r}")
        if not isinstance(min_epochs, numbers.Integral) or min_epochs < 1:
            raise ValueError(f"min_epochs must be a positive integer, got {min_epochs!r}")
        self.eta, self.min_epochs = int(eta), int(min_epochs)

    def rungs(self, n, max_epochs):
        """The rung plan of a sweep.

        Parameters
        ----------
        n : int
            Number of configurations in the first rung.
        max_epochs : int
            Epochs of the last rung.

        Returns
        -------
        list of (int, int)
            ``(n_configs, epochs)`` per rung.
        """
        eta = self.eta
        k = 0
        while (n // eta ** (k + 1) >= 1
               and max_epochs // eta ** (k + 1) >= self.min_epochs):
            k += 1
        out = []
        for i in range(k + 1):
            n_i = max(1, n // eta ** i)
            r_i = max(self.min_epochs, max_epochs // eta ** (k - i))
            out.append((n_i, r_i))
        return out

    def __repr__(self):
        return f"SuccessiveHalving(eta={self.eta}, min_epochs={self.min_epochs})"


def _resolve_scheduler(scheduler):
    if scheduler is None or isinstance(scheduler, SuccessiveHalving):
        return scheduler
    if isinstance(scheduler, str) and scheduler.lower() in ("halving", "successive_halving"):
        return SuccessiveHalving()
    raise ValueError(f"unknown scheduler {scheduler!r}; expected None, 'halving' or a "
                     "SuccessiveHalving instance")


# --------------------------------------------------------------------------- search

def _trial_seed(seed, trial):
    return int(np.random.SeedSequence(seed, spawn_key=(trial,)).generate_state(1)[0])


def _infer_loss(y):
    y = np.asarray(y)
    if y.ndim == 1 and (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
        return "cross_entropy"
    return "mse"


def _n_out(loss, y, yv):
    y = np.asarray(y)
    if loss == "cross_entropy" and y.ndim == 1:
        top = max(int(np.max(y)), int(np.max(yv)) if len(yv) else 0)
        return top + 1
    return 1 if y.ndim == 1 else y.shape[1]


def _split(X, y, validation, seed):
    if isinstance(validation, tuple) and len(validation) == 2:
        Xv, yv = validation
        return X, y, np.asarray(Xv), np.asarray(yv)
    if isinstance(validation, numbers.Real) and not isinstance(validation, bool):
        if not 0.0 < validation < 1.0:
            raise ValueError(f"validation fraction must be in (0, 1), got {validation!r}")
        n = X.shape[0]
        n_val = int(round(validation * n))
        if n_val < 1 or n_val >= n:
            raise ValueError(f"validation={validation!r} leaves an empty training or "
                             f"validation set for {n} samples")
        perm = np.random.default_rng(seed).permutation(n)
        va, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        return X[tr], y[tr], X[va], y[va]
    raise ValueError("validation must be (X_val, y_val) or a fraction in (0, 1), got "
                     f"{type(validation).__name__}")


def _resolve_mode(metric, mode):
    if mode is not None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or None (auto), got {mode!r}")
        return mode
    if callable(metric):
        raise ValueError("give mode='min' or mode='max' with a callable metric")
    if "acc" in metric or "score" in metric:
        return "max"
    return "min"


def _is_dask_client(executor):
    return (type(executor).__module__.split(".")[0] == "distributed"
            and hasattr(executor, "scatter") and hasattr(executor, "get_executor"))


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Serial(cf.Executor):
    """Runs each call at submit time, in this process."""

    def submit(self, fn, /, *args, **kwargs):
        fut = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            if isinstance(exc, KeyboardInterrupt):
                raise
            fut.set_exception(exc)
        return fut


class _Runner:
    """Submits trial tasks to the chosen executor and yields results as they finish."""

    def __init__(self, executor, data, n_workers, n_tasks, backend, mp_context):
        self.own = None
        self.data_arg = data
        if executor is None or executor == "process":
            import multiprocessing as mp
            n = n_workers or _cpu_count()
            n = max(1, min(int(n), max(1, n_tasks)))
            ctx = mp.get_context(mp_context) if isinstance(mp_context, str) else mp_context
            self.own = cf.ProcessPoolExecutor(max_workers=n, mp_context=ctx,
                                              initializer=_init_worker,
                                              initargs=(data, backend))
            self.ex = self.own
            self.data_arg = None  # already in every worker
            self.name = f"process pool ({n} workers)"
        elif executor == "serial":
            self.ex = _Serial()
            self.name = "serial"
        elif _is_dask_client(executor):
            self.data_arg = executor.scatter(data, broadcast=True, hash=False)
            self.ex = executor.get_executor(pure=False)
            self.name = "dask"
        elif isinstance(executor, cf.Executor):
            self.ex = executor
            self.name = type(executor).__name__
        else:
            raise TypeError("executor must be None, 'process', 'serial', a "
                            "concurrent.futures.Executor or a dask.distributed.Client, "
                            f"got {type(executor).__name__}")

    def submit(self, task):
        return self.ex.submit(_run_trial, task, self.data_arg)

    def abort(self, futures):
        """Stop the sweep's pending and running trials (after a KeyboardInterrupt)."""
        if self.own is not None:
            # Our own pool: running trials are abandoned, so stop their processes
            # rather than wait (ProcessPoolExecutor has no public API for it). The
            # pool then fails the remaining futures itself; cancelling them too
            # would make Python 3.11's pool thread raise InvalidStateError.
            for proc in list((getattr(self.own, "_processes", None) or {}).values()):
                proc.terminate()
        else:
            for fut in futures:
                fut.cancel()

    def close(self):
        if self.own is not None:
            self.own.shutdown(wait=True, cancel_futures=True)


class _ThreadGuard:
    """One BLAS/nncore thread in the calling process during the sweep, restored after.

    In-process runs (serial, thread pools, Dask with ``processes=False``) then
    compute with the same thread count as worker processes, so they give the
    same numbers.
    """

    def __enter__(self):
        self._limits = None
        try:
            from threadpoolctl import threadpool_limits
            self._limits = threadpool_limits(1)
        except ImportError:  # pragma: no cover
            pass
        from . import _config
        self._nc_threads = getattr(_config, "get_num_threads", lambda: None)()
        _set_nc_threads(1)
        return self

    def __exit__(self, *exc):
        # nncore's setter also caps BLAS, so it goes first and threadpoolctl then
        # puts BLAS back exactly as it was.
        if self._nc_threads is not None:
            _set_nc_threads(self._nc_threads)
        if self._limits is not None:
            self._limits.restore_original_limits()
        return False


def _progress_bar(total, progress):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="tune", unit="trial")


def search(space_or_configs, X, y, *, validation=0.2, executor=None, metric="val_loss",
           mode=None, n_trials=None, seed=0, n_workers=None, early_stopping=None,
           scheduler=None, progress=None, loss=None, defaults=None, mp_context=None):
    """Train a network per configuration and rank them on validation data.

    Parameters
    ----------
    space_or_configs : dict or list of dict
        A space (see :func:`grid`; with ``n_trials`` or distributions it is
        sampled by :func:`random`) or an explicit list of configurations.
    X, y : array-like
        Training data. The loss is the configuration's ``loss``, else ``loss``,
        else ``"cross_entropy"`` for 1-D integer labels and ``"mse"`` otherwise.
    validation : (X_val, y_val) or float, default 0.2
        Validation set, or the fraction of ``X`` held out (split with ``seed``).
    executor : None, "process", "serial", Executor or dask.distributed.Client
        ``None``: a local process pool of ``n_workers`` (default: the usable
        cores), each worker with one BLAS/OpenMP thread. ``"serial"``: in this
        process. Any ``concurrent.futures.Executor``; a ``dask.distributed.Client``
        runs the trials on its cluster (the data is scattered once).
    metric : "val_loss", "val_accuracy", a history key, or callable
        What ranks the trials. A callable gets ``(net, X_val, y_val)`` and
        returns a float; it must be picklable for process or Dask executors.
    mode : "min", "max" or None
        Direction; None: "max" for accuracies, "min" otherwise (required for
        a callable metric).
    n_trials : int, optional
        Sample this many configurations from the space (``random(space,
        n_trials, seed)``) instead of the full grid.
    seed : int, default 0
        Trial ``i`` uses the seed ``SeedSequence(seed, spawn_key=(i,))`` for the
        initialisation and ``fit`` (unless its configuration sets ``seed``).
    n_workers : int, optional
        Size of the default process pool.
    early_stopping : None, int or dict
        Patience (int) or keyword arguments of ``nc.callbacks.EarlyStopping``
        for every trial.
    scheduler : None, "halving" or SuccessiveHalving
        Stop hopeless trials early: successive halving on epochs.
    progress : bool, optional
        Progress bar over trials (tqdm); default on a terminal only.
    loss : str, optional
        Default loss for configurations without one.
    defaults : dict, optional
        Hyper-parameters for every configuration, overridden by the configuration's own.
    mp_context : str or multiprocessing context, optional
        Start method of the default process pool (Python's default when None).

    Returns
    -------
    SearchResult

    Raises
    ------
    ValueError
        Unknown hyper-parameters, bad ``validation``/``metric``/``mode``/``scheduler``,
        before any trial runs. Failing trials do not raise: see ``records``.
    """
    # ---- everything that can be wrong is checked before the first trial
    if isinstance(space_or_configs, dict):
        space = space_or_configs
        has_dist = any(isinstance(v, _Distribution) and not isinstance(v, Choice)
                       for v in space.values())
        if n_trials is not None or has_dist:
            if n_trials is None:
                raise ValueError("the space has distributions: give n_trials")
            configs = random(space, n_trials, seed)
        else:
            configs = grid(space)
    elif isinstance(space_or_configs, (list, tuple)):
        configs = [dict(c) if isinstance(c, dict) else c for c in space_or_configs]
        if not configs:
            raise ValueError("no configurations to try")
        for i, c in enumerate(configs):
            _check_keys(c, f"configuration {i}")
        if n_trials is not None:
            raise ValueError("n_trials applies to a space (dict), not a list of configurations")
    else:
        raise TypeError("space_or_configs must be a dict (space) or a list of dicts, got "
                        f"{type(space_or_configs).__name__}")
    if defaults:
        _check_keys(defaults, "defaults")
        configs = [{**defaults, **c} for c in configs]
        for i, c in enumerate(configs):
            _check_keys(c, f"configuration {i}")
    if not (callable(metric) or isinstance(metric, str)):
        raise TypeError(f"metric must be a name or a callable, got {type(metric).__name__}")
    mode = _resolve_mode(metric, mode)
    sched = _resolve_scheduler(scheduler)
    if early_stopping is not None:
        if isinstance(early_stopping, numbers.Integral) and not isinstance(early_stopping, bool):
            early_stopping = {"patience": int(early_stopping)}
        elif not isinstance(early_stopping, dict):
            raise ValueError("early_stopping must be None, a patience (int) or a dict of "
                             "EarlyStopping arguments")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (samples, features), got shape {X.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X and y have different numbers of samples: {X.shape[0]} vs {y.shape[0]}")
    X, y, Xv, yv = _split(X, y, validation, seed)
    if Xv.ndim != 2 or Xv.shape[1] != X.shape[1] or Xv.shape[0] != yv.shape[0]:
        raise ValueError(f"validation data shapes {Xv.shape}, {yv.shape} do not match X {X.shape}")
    loss = loss or _infer_loss(y)
    data = _Data(X, y, Xv, yv, loss, _n_out(loss, y, yv))

    import nncore as nc
    backend = nc.get_backend()
    base = {"origin_pid": os.getpid(), "backend": backend, "metric": metric,
            "early_stopping": early_stopping}
    tasks = [dict(base, trial=i, params=c, seed=_trial_seed(seed, i))
             for i, c in enumerate(configs)]

    if sched is None:
        plan = [(len(tasks), None)]
    else:
        max_epochs = max(int(_normalise(c).get("epochs", 10)) for c in configs)
        plan = sched.rungs(len(tasks), max_epochs)
    total = sum(n for n, _ in plan)

    records, histories = {}, {}
    best_by_rung = {}  # rung -> (sort key, trial, config, params, seed)
    epochs_total = {}
    interrupted = False
    bar = _progress_bar(total, progress)
    runner = _Runner(executor, data, n_workers, len(tasks), backend, mp_context)
    sign = 1.0 if mode == "min" else -1.0

    def _key(rec):
        ok = rec["status"] == "ok" and math.isfinite(rec["metric"])
        return (0, sign * rec["metric"], rec["trial"]) if ok else (1, 0.0, rec["trial"])

    def _collect(fut, t, rung):
        try:
            out = fut.result()
        except Exception as exc:  # noqa: BLE001 - e.g. a worker process crashed
            rec = {"trial": t["trial"], "params": dict(t["params"]), "metric": float("nan"),
                   "val_loss": float("nan"), "val_accuracy": float("nan"),
                   "loss": float("nan"), "epochs": 0, "time": float("nan"),
                   "cpu_time": float("nan"), "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                   "seed": t["seed"]}
            out = {"record": rec, "params": None, "history": None}
        rec = out["record"]
        rec["params"] = dict(t["params"])  # the caller's objects, not the worker's copies
        i = rec["trial"]
        epochs_total[i] = epochs_total.get(i, 0) + rec["epochs"]
        if sched is not None:
            rec["rung"] = rung
            rec["epochs_total"] = epochs_total[i]
        records[i] = rec
        if out["history"] is not None:
            histories[i] = out["history"]
        key = _key(rec)
        if out["params"] is not None and key[0] == 0 and (
                rung not in best_by_rung or key < best_by_rung[rung][0]):
            best_by_rung[rung] = (key, i, t["params"], out["params"], t["seed"], out["n_out"])
        if bar is not None:
            if best_by_rung:
                top = best_by_rung[max(best_by_rung)]
                bar.set_postfix({"best": f"{sign * top[0][1]:.4g}"}, refresh=False)
            bar.update(1)

    try:
        with _ThreadGuard():
            alive = tasks
            for rung, (n_keep, budget) in enumerate(plan):
                if rung:
                    alive = sorted(alive, key=lambda t: _key(records[t["trial"]]))
                alive = alive[:n_keep]
                futures, done = {}, set()
                try:
                    for t in alive:
                        t = dict(t, epochs=budget)
                        futures[runner.submit(t)] = t
                    for fut in cf.as_completed(futures):
                        done.add(fut)
                        _collect(fut, futures[fut], rung)
                except KeyboardInterrupt:
                    runner.abort(futures)
                    # keep what finished, even if it was never waited for
                    for fut, t in futures.items():
                        if (fut not in done and fut.done() and not fut.cancelled()
                                and fut.exception() is None):
                            _collect(fut, t, rung)
                    raise
    except KeyboardInterrupt:
        interrupted = True
        warnings.warn(f"sweep interrupted: keeping the {len(records)} finished trial(s)",
                      RuntimeWarning, stacklevel=2)
    finally:
        runner.close()
        if bar is not None:
            bar.close()
    ordered = [records[i] for i in sorted(records)]
    best = None
    final_rung = None
    if sched is not None and records:
        final_rung = max(r["rung"] for r in ordered)
    if best_by_rung:
        _, i, cfg, params, tseed, n_out = best_by_rung[max(best_by_rung)]
        best = (i, cfg, params, X.shape[1], n_out, loss, tseed)
    return SearchResult(ordered, histories, metric if isinstance(metric, str) else
                        getattr(metric, "__name__", "metric"), mode, best, interrupted,
                        final_rung=final_rung)


# --------------------------------------------------------------------------- command line

def add_subparser(subparsers):
    """Add ``tune`` to an ``argparse`` sub-parser collection (``nncore tune ...``).

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers()`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The ``tune`` sub-parser.
    """
    p = subparsers.add_parser(
        "tune", help="hyper-parameter sweep",
        description="Train one network per configuration of a space and rank them "
                    "on validation data.")
    _add_arguments(p)
    p.set_defaults(func=_cli_run)
    return p


def _add_arguments(p):
    p.add_argument("data", help="CSV (last column = target) or .npz (arrays X, y) file, "
                                "or a built-in dataset name")
    p.add_argument("--target", default=None, metavar="COL",
                   help="target column of a CSV (default: the last)")
    p.add_argument("--space", required=True,
                   help='JSON file: {"hidden": [[32], [64, 32]], "lr": {"loguniform": [1e-4, 1e-1]}}')
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="address of a Dask scheduler (tcp://host:8786) to run the trials on")
    p.add_argument("--out", default=None, help="write the results table here (CSV)")
    p.add_argument("--n-trials", type=int, default=None,
                   help="sample this many configurations instead of the full grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metric", default="val_loss")
    p.add_argument("--validation", type=float, default=0.2,
                   help="fraction of the data held out for validation")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: the usable cores); 0 runs serially")
    p.add_argument("--halving", action="store_true",
                   help="successive halving on epochs (stop hopeless trials early)")
    p.add_argument("--loss", default=None)
    p.add_argument("--save-best", default=None, metavar="MODEL",
                   help="save the best network (.npz)")
    p.add_argument("--top", type=int, default=5, help="print the best N trials (default 5)")
    p.add_argument("--no-progress", action="store_true")


def _load_data(spec, target=None):
    """X, y from a .npz (X, y), a CSV (last column is the target) or a built-in dataset."""
    try:  # the training command's loader, so both commands read data alike
        from . import cli as _cli
        loader = getattr(_cli, "load_data", None)
    except ImportError:  # pragma: no cover
        loader = None
    if loader is not None:
        return loader(spec, target)
    if target is not None:  # pragma: no cover - only without cli.py
        raise ValueError("--target needs nncore.cli")
    if spec.endswith(".npz"):
        with np.load(spec, allow_pickle=False) as z:
            return z["X"], z["y"]
    if spec.endswith(".csv"):
        arr = np.loadtxt(spec, delimiter=",", ndmin=2)
        X, y = arr[:, :-1], arr[:, -1]
        if np.all(y == np.round(y)):
            y = y.astype(np.int64)
        return X, y
    raise ValueError(f"cannot read {spec!r}: expected a .npz or .csv file")


def _cli_run(args):
    with open(args.space) as fh:
        space = space_from_json(json.load(fh))
    X, y = _load_data(args.data, args.target)
    client = None
    if args.scheduler:
        from distributed import Client
        client = executor = Client(args.scheduler)
    elif args.workers == 0:
        executor = "serial"
    else:
        executor = None
    try:
        res = search(space, X, y, validation=args.validation, executor=executor,
                     metric=args.metric, n_trials=args.n_trials, seed=args.seed,
                     n_workers=args.workers or None, loss=args.loss,
                     scheduler="halving" if args.halving else None,
                     progress=False if args.no_progress else None)
    finally:
        if client is not None:
            client.close()
    ok = sum(r["status"] == "ok" for r in res.records)
    print(f"{len(res.records)} trials, {ok} ok, {len(res.records) - ok} failed")
    for r in res.records:
        if r["status"] != "ok":
            print(f"  trial {r['trial']} failed: {r['error']}")
    if ok:
        sign = 1.0 if res.mode == "min" else -1.0
        top = sorted((r for r in res.records if r["status"] == "ok"),
                     # with halving, trials that reached a later rung rank first
                     key=lambda r: (-r.get("rung", 0), sign * r["metric"], r["trial"]))[:args.top]
        print(f"{'trial':>5}  {res.metric:>12}  {'epochs':>6}  {'time':>7}  params")
        for r in top:
            print(f"{r['trial']:>5}  {r['metric']:>12.6g}  {r['epochs']:>6}  "
                  f"{r['time']:>6.2f}s  {r['params']}")
    if args.out:
        res.to_csv(args.out)
        print(f"results written to {args.out}")
    if ok:
        print(f"best {res.metric} = {res.best_score:.6g} with {res.best_params}")
        if args.save_best:
            res.best_network.save(args.save_best)
            print(f"best network saved to {args.save_best}")
    return 0 if ok else 1


def cli_main(argv=None):
    """Run ``nncore tune`` with the given argument list.

    Parameters
    ----------
    argv : list of str or None
        Arguments after ``tune``; ``None`` reads ``sys.argv``.

    Returns
    -------
    int
        The exit status.
    """
    p = argparse.ArgumentParser(prog="nncore tune", description="hyper-parameter sweep")
    _add_arguments(p)
    args = p.parse_args(argv)
    try:
        return _cli_run(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"nncore tune: error: {exc}", file=sys.stderr)
        return 2


class _TuneModule(type(sys)):
    """Make ``nc.tune(...)`` a shorthand for ``nc.tune.search(...)``.

    API.md says "``nc.tune`` runs a sweep"; the module stays a module (for
    ``nc.tune.grid`` etc.) and calling it runs :func:`search`.
    """

    def __call__(self, *args, **kwargs):
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _TuneModule
