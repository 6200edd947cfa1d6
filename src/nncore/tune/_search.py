"""``search``: run the trials of a space and rank them (with successive halving)."""

from __future__ import annotations

import concurrent.futures as cf
import math
import numbers
import os
import warnings

import numpy as np

from ..backend import get_backend
from ._executors import _progress_bar, _Runner, _ThreadGuard
from ._result import SearchResult
from ._space import Choice, _check_keys, _Distribution, _normalise, grid, random
from ._trial import _Data, _n_out

__all__ = ["SuccessiveHalving", "search"]

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
    configs = _configurations(space_or_configs, n_trials, seed, defaults)
    if not (callable(metric) or isinstance(metric, str)):
        raise TypeError(f"metric must be a name or a callable, got {type(metric).__name__}")
    mode = _resolve_mode(metric, mode)
    sched = _resolve_scheduler(scheduler)
    early_stopping = _early_stopping_kwargs(early_stopping)
    data = _prepare_data(X, y, validation, seed, loss)

    base = {"origin_pid": os.getpid(), "backend": get_backend(), "metric": metric,
            "early_stopping": early_stopping}
    tasks = [dict(base, trial=i, params=c, seed=_trial_seed(seed, i))
             for i, c in enumerate(configs)]
    plan = _rung_plan(sched, configs)
    sweep = _Sweep(mode, track_rungs=sched is not None,
                   bar=_progress_bar(sum(n for n, _ in plan), progress))
    runner = _Runner(executor, data, n_workers, len(tasks), base["backend"], mp_context)
    try:
        with _ThreadGuard():
            _run_plan(sweep, runner, tasks, plan)
    except KeyboardInterrupt:
        sweep.interrupted = True
        warnings.warn(f"sweep interrupted: keeping the {len(sweep.records)} finished trial(s)",
                      RuntimeWarning, stacklevel=2)
    finally:
        runner.close()
        if sweep.bar is not None:
            sweep.bar.close()
    return sweep.result(metric, data)


def _configurations(space_or_configs, n_trials, seed, defaults):
    """The list of configurations to try (checked), from a space or an explicit list."""
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
    return configs


def _early_stopping_kwargs(early_stopping):
    """``EarlyStopping`` keyword arguments from a patience or a dict (None: no early stopping)."""
    if early_stopping is None or isinstance(early_stopping, dict):
        return early_stopping
    if isinstance(early_stopping, numbers.Integral) and not isinstance(early_stopping, bool):
        return {"patience": int(early_stopping)}
    raise ValueError("early_stopping must be None, a patience (int) or a dict of "
                     "EarlyStopping arguments")


def _prepare_data(X, y, validation, seed, loss):
    """Checked training and validation arrays with the sweep's default loss and width."""
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
    return _Data(X, y, Xv, yv, loss, _n_out(loss, y, yv))


def _rung_plan(sched, configs):
    """``(n_trials, epochs)`` per rung: one rung of everything without a scheduler."""
    if sched is None:
        return [(len(configs), None)]
    max_epochs = max(int(_normalise(c).get("epochs", 10)) for c in configs)
    return sched.rungs(len(configs), max_epochs)


def _run_plan(sweep, runner, tasks, plan):
    """Run every rung; each keeps the best ``n_keep`` trials of the one before."""
    alive = tasks
    for rung, (n_keep, budget) in enumerate(plan):
        if rung:
            alive = sorted(alive, key=lambda t: sweep.key(sweep.records[t["trial"]]))
        alive = alive[:n_keep]
        futures, done = {}, set()
        try:
            for t in alive:
                t = dict(t, epochs=budget)
                futures[runner.submit(t)] = t
            for fut in cf.as_completed(futures):
                done.add(fut)
                sweep.collect(fut, futures[fut], rung)
        except KeyboardInterrupt:
            runner.abort(futures)
            # keep what finished, even if it was never waited for
            for fut, t in futures.items():
                if (fut not in done and fut.done() and not fut.cancelled()
                        and fut.exception() is None):
                    sweep.collect(fut, t, rung)
            raise


def _failed_output(task, exc):
    """What a trial whose worker died (no record of its own) reports."""
    rec = {"trial": task["trial"], "params": dict(task["params"]), "metric": float("nan"),
           "val_loss": float("nan"), "val_accuracy": float("nan"),
           "loss": float("nan"), "epochs": 0, "time": float("nan"),
           "cpu_time": float("nan"), "status": "failed",
           "error": f"{type(exc).__name__}: {exc}", "seed": task["seed"]}
    return {"record": rec, "params": None, "history": None}


class _Sweep:
    """The records of a running sweep and the best trial of each rung."""

    def __init__(self, mode, track_rungs, bar):
        self.sign = 1.0 if mode == "min" else -1.0
        self.mode = mode
        self.track_rungs = track_rungs
        self.bar = bar
        self.records, self.histories, self.epochs_total = {}, {}, {}
        self.best_by_rung = {}  # rung -> (sort key, trial, config, params, seed, n_out)
        self.interrupted = False

    def key(self, rec):
        """Sort key: successful trials by metric (best first), then failures; ties by id."""
        ok = rec["status"] == "ok" and math.isfinite(rec["metric"])
        return (0, self.sign * rec["metric"], rec["trial"]) if ok else (1, 0.0, rec["trial"])

    def collect(self, fut, task, rung):
        """Record the outcome of one finished trial future."""
        try:
            out = fut.result()
        except Exception as exc:  # noqa: BLE001 - e.g. a worker process crashed
            out = _failed_output(task, exc)
        rec = out["record"]
        rec["params"] = dict(task["params"])  # the caller's objects, not the worker's copies
        i = rec["trial"]
        self.epochs_total[i] = self.epochs_total.get(i, 0) + rec["epochs"]
        if self.track_rungs:
            rec["rung"] = rung
            rec["epochs_total"] = self.epochs_total[i]
        self.records[i] = rec
        if out["history"] is not None:
            self.histories[i] = out["history"]
        key = self.key(rec)
        if out["params"] is not None and key[0] == 0 and (
                rung not in self.best_by_rung or key < self.best_by_rung[rung][0]):
            self.best_by_rung[rung] = (key, i, task["params"], out["params"], task["seed"],
                                       out["n_out"])
        self._advance_bar()

    def _advance_bar(self):
        if self.bar is None:
            return
        if self.best_by_rung:
            top = self.best_by_rung[max(self.best_by_rung)]
            self.bar.set_postfix({"best": f"{self.sign * top[0][1]:.4g}"}, refresh=False)
        self.bar.update(1)

    def result(self, metric, data):
        """The :class:`SearchResult` of the trials recorded so far."""
        ordered = [self.records[i] for i in sorted(self.records)]
        final_rung = None
        if self.track_rungs and ordered:
            final_rung = max(r["rung"] for r in ordered)
        best = None
        if self.best_by_rung:
            _, i, cfg, params, tseed, n_out = self.best_by_rung[max(self.best_by_rung)]
            best = (i, cfg, params, data.X.shape[1], n_out, data.loss, tseed)
        name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
        return SearchResult(ordered, self.histories, name, self.mode, best,
                            self.interrupted, final_rung=final_rung)
