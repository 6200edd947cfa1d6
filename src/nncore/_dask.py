"""Dask arrays (and any collection with Dask's chunked interface) in ``fit``,
``predict*`` and ``loss*``: the data side.

Design
------
* Duck-typed: an input is *chunked* when it follows Dask's collection protocol
  (``__dask_graph__``, ``chunks``, ``to_delayed``). Nothing here imports Dask at
  module level, so nncore imports without it; Dask is imported only once a
  chunked input arrives (the ``distributed`` extra).
* Where it runs: on the current ``dask.distributed`` client when there is one
  (``distributed.default_client()``; ``distributed`` is only looked up when it is
  already imported, i.e. when a client can exist), else on Dask's default
  scheduler (``dask.compute``).
* :class:`ChunkedSet` is a chunked ``(X, y[, sample_weight])``: X has one
  column block, X, y and the weights have the same row chunks (else a
  ``ValueError`` naming the first chunk that differs). :func:`check_sets` is the
  one checking pass of a fit: every chunk of the fit's sets passes the
  network's own checks (``Network._check_X`` / ``_check_y``, and the sample
  weights' checks, on the workers, one small answer per chunk, one
  computation) before anything changes, a bad chunk's error naming its index
  and rows; the answers also carry per-class row counts and weight sums /
  extremes, from which the set learns its weights (``class_weight``'s table,
  the total, whether they are all equal: then unweighted, as
  ``_weights.combine``). Tasks on a checked set only convert their chunk (no
  second scan); a single evaluation (``loss``, ``evaluate``) skips the pass
  and checks inside its tasks (errors still name the chunk).
* Block tasks rebuild the network on the worker from its architecture
  (``get_config()`` without the regulariser: the penalty is added once, on the
  client) and cache it per worker thread; each task copies the parameters into
  its own network, so threads of one worker never share a buffer. The
  parameters go out once per evaluation (one key of the graph, fetched once by
  each worker that runs block tasks); each chunk sends back its part of the
  mean: ``(s_c J_c, s_c g_c, correct_c)`` with ``s_c = n_c / N`` (the weights
  ``Network._loss_grad`` gives its own row chunks) or, weighted, the sums with
  the set's row coefficients ``w_n / sum w``; the parts are summed in a tree of
  fan-in :data:`FAN_IN` on the workers. So the result equals the in-memory loss
  and gradient up to float64 rounding (the sum's order differs).
* Locality: each chunk's task is pinned (strict worker restriction, so Dask's
  load balancing never moves a chunk to an idle worker) to the workers that
  hold its chunk of X in memory (``client.who_has``, one round trip per
  evaluation); chunks not in memory (X computed from its graph) are left to
  the scheduler. A pinned computation checks every :data:`WATCH_SECONDS` that
  its workers are alive and running; if one is lost (or paused) it is
  recomputed without placement. The tree's order is the chunks' order, so
  where tasks ran never changes the result.
* Prediction is lazy: ``map_blocks`` over X's row chunks, the parameters as one
  shared graph key (a copy taken at the call), a bad chunk raising a
  ``ValueError`` that names it when the result is computed.
"""

from __future__ import annotations

import json
import math
import sys
import threading

import numpy as np

from . import _weights
from . import backend as _backend
from ._checks import DTYPES, _as_numeric

__all__ = ["is_chunked", "current_client", "ChunkedSet", "check_sets", "reduce_loss", "loss",
           "loss_and_gradient", "metrics", "predict"]

FAN_IN = 8            # partial sums combined per reduction task
_CACHE_NETS = 8       # networks kept per worker thread
WATCH_SECONDS = 2.0   # a computation with pinned tasks checks its workers this often
_LOCAL = threading.local()
_FLOATS = tuple(DTYPES.values())


# --------------------------------------------------------------------------- detection

def is_chunked(a):
    """True for a Dask array or anything with its chunked interface (no Dask import)."""
    return (hasattr(a, "__dask_graph__") and hasattr(a, "chunks")
            and hasattr(a, "to_delayed") and hasattr(a, "ndim"))


def current_client():
    """The current ``dask.distributed`` client, or None (Dask's default scheduler).

    As ``dask.compute`` decides: a client when one is the default and no other
    scheduler is configured (``dask.config.set(scheduler="threads")`` wins).
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    import dask
    if dask.config.get("scheduler", None) not in (None, "dask.distributed", "distributed"):
        return None
    try:
        return distributed.default_client()
    except ValueError:
        return None


def _dask():
    try:
        import dask
        import dask.array
    except ImportError as exc:  # pragma: no cover - a chunked input implies Dask
        raise ImportError("chunked inputs need Dask: pip install 'nncore-train[dask]'") from exc
    return dask


def _workers(client):
    return max(1, len(client.scheduler_info().get("workers", {}))) if client else 1


# --------------------------------------------------------------------------- worker side

def worker_spec(net):
    """What a worker needs to rebuild ``net`` (without regulariser) and its backend."""
    config = net.get_config()
    config["regularizer"] = None
    name = _backend.current().NAME
    return (type(net), config, name, json.dumps(config, sort_keys=True) + name)


def worker_net(spec):
    """This worker thread's network for ``spec`` (built once, then reused)."""
    cls, config, backend_name, key = spec
    cache = getattr(_LOCAL, "nets", None)
    if cache is None:
        cache = _LOCAL.nets = {}
    net = cache.get(key)
    if net is None:
        if len(cache) >= _CACHE_NETS:
            cache.clear()
        net = cache[key] = cls.from_config(config)
    if _backend.current().NAME != backend_name:
        _backend.set_backend(backend_name)
    return net


def _check_weights(wb, rows, name):
    """A chunk of sample weights as float64, with ``check_sample_weight``'s checks and
    messages except "zero everywhere" (a question about the whole set)."""
    arr = _as_numeric(wb, name)
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must hold numbers, got booleans")
    if arr.ndim != 1 or arr.shape[0] != rows:
        raise ValueError(f"{name} must have shape (n_samples,) (one weight per row), got a "
                         f"chunk of shape {arr.shape} for {rows} rows")
    w = np.array(arr, dtype=np.float64, order="C")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(w < 0):
        raise ValueError(f"{name} must be non-negative")
    return w


def _group_stats(net, T, w, groups):
    """Per group (the rows' classes, or one group): rows, weight sum, min and max."""
    rows = T.shape[0]
    g = (np.zeros(rows, np.int64) if groups == 1
         else np.asarray(net._loss.row_classes(T), dtype=np.int64))
    sw = np.ones(rows) if w is None else w
    low, high = np.full(groups, np.inf), np.full(groups, -np.inf)
    np.minimum.at(low, g, sw)
    np.maximum.at(high, g, sw)
    return (np.bincount(g, minlength=groups), np.bincount(g, weights=sw, minlength=groups),
            low, high)


def _check_block(spec, xb, yb, wb, wname, groups):
    """``(problem, stats)``: the network's checks on a chunk (problem: None or
    ``(exception type name, message)``) and its :func:`_group_stats`."""
    net = worker_net(spec)
    try:
        Xa, T = block_data(net, xb, yb)
        w = None if wb is None else _check_weights(wb, Xa.shape[0], wname)
    except (ValueError, TypeError) as exc:
        return (type(exc).__name__, str(exc)), None
    return None, _group_stats(net, T, w, groups)


def block_data(net, xb, yb, checked=False):
    """A chunk as the network's arrays: through the in-memory path's checks and
    conversions, or (``checked``: this set passed :func:`check_sets` already) only the
    conversions, without a second scan of the data."""
    if not checked:
        Xa = net._check_X(xb)
        return Xa, net._check_y(yb, Xa.shape[0])
    # The conversions of check_X / Network._check_y, in the same order.
    Xa = np.ascontiguousarray(xb, dtype=xb.dtype if xb.dtype in _FLOATS else net.dtype)
    t = np.asarray(yb)
    if net._loss.takes_labels(t):
        return Xa, np.ascontiguousarray(t, dtype=np.int64)
    t = t.reshape(-1, 1) if t.ndim == 1 else t
    return Xa, np.ascontiguousarray(t, dtype=t.dtype if t.dtype in _FLOATS else net.dtype)


def row_weights(net, T, w, table):
    """The rows' weights: sample weights times the class weights (``_weights.combine``'s
    product, in its order), or None."""
    cw = None if table is None else table[np.asarray(net._loss.row_classes(T), dtype=np.int64)]
    if w is None:
        return cw
    return w if cw is None else w * cw


def block_arrays(net, xb, yb, wb, ctx):
    """``(X, T, row weights or None)`` of a chunk; errors name the chunk."""
    try:
        Xa, T = block_data(net, xb, yb, ctx.checked)
        w = None if wb is None else _check_weights(wb, Xa.shape[0], ctx.wname)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{ctx.where}: {exc}") from None
    return Xa, T, row_weights(net, T, w, ctx.table)


def _block_loss(spec, x, xb, yb, wb, ctx, grad, count):
    """``(share J, share g (float64) or None, correct)`` of one chunk at ``x``: the
    chunk's part of the (weighted) mean; ``count``: None, ``"count"`` (correct
    predictions) or ``"weighted"`` (their weighted share, as ``metrics``)."""
    net = worker_net(spec)
    np.copyto(net.params, x)
    Xa, T, w = block_arrays(net, xb, yb, wb, ctx)
    coef = None if w is None else w / ctx.total        # the set's row coefficients
    share = ctx.share if coef is None else 1.0
    grads = np.zeros_like(net.params) if grad else None
    with np.errstate(over="ignore", invalid="ignore"):
        J, correct, _ = net._loss_grad(Xa, T, grad=grad, count=count == "count", grads=grads,
                                       weight=coef)
        if count == "weighted" and coef is not None:
            correct = float(np.dot(coef, net._loss.row_correct(net._outputs(Xa), T)))
        if grad:
            grads *= share     # in the network dtype, as Network._loss_grad does
            g = grads.astype(np.float64)
        else:
            g = None
    return (share * J, g, correct)


def add_parts(*parts):
    """Elementwise sum of tuples of floats / arrays / None / ints, left to right."""
    out = list(parts[0])
    for p in parts[1:]:
        for i, v in enumerate(p):
            if v is not None:
                out[i] = v if out[i] is None else out[i] + v
    return tuple(out)


def tree_sum(parts, delayed):
    """One Delayed summing ``parts`` in a tree of fan-in :data:`FAN_IN` (fixed order)."""
    while len(parts) > 1:
        parts = [delayed(add_parts, pure=False)(*parts[i:i + FAN_IN])
                 for i in range(0, len(parts), FAN_IN)]
    return parts[0]


# --------------------------------------------------------------------------- data

def _error(kind, message):
    return (TypeError if kind == "TypeError" else ValueError)(message)


def _check_shape(X, n_in, name):
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if np.dtype(X.dtype).kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got an array of dtype {X.dtype}")
    if any(isinstance(c, float) and math.isnan(c) for c in X.chunks[0]):
        raise ValueError(f"{name} has chunks of unknown size; call {name}.compute_chunk_sizes() "
                         "first")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape})")
    if X.shape[1] != n_in:
        raise ValueError(f"{name} has {X.shape[1]} features but the network expects {n_in}")


def _check_row_chunks(X, y, name, yname):
    if y.ndim not in (1, 2):
        raise ValueError(f"{yname} must be 1-D or 2-D, got shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{yname} has {y.shape[0]} rows but {name} has {X.shape[0]}")
    start = 0
    for i, (a, b) in enumerate(zip(X.chunks[0], y.chunks[0])):
        if a != b:
            raise ValueError(
                f"{name} and {yname} are chunked differently along the rows: chunk {i} "
                f"(from row {start}) has {a} rows in {name} but {b} in {yname}; rechunk one "
                f"like the other, e.g. {yname} = {yname}.rechunk({{0: {name}.chunks[0]}})")
        start += a


def _as_chunked(a, like, name):
    """``a`` as a Dask array chunked along the rows like ``like`` (a Dask array)."""
    if is_chunked(a):
        return a
    from ._checks import _as_numeric
    arr = _as_numeric(a, name)
    chunks = (like.chunks[0],) + tuple((s,) for s in arr.shape[1:])
    if arr.ndim == 0 or arr.shape[0] != like.shape[0]:
        return _dask().array.from_array(arr)     # the row check names the mismatch
    return _dask().array.from_array(arr, chunks=chunks)


class ChunkContext:
    """What a chunk's task needs besides the data (small, sent with the task)."""

    __slots__ = ("share", "total", "table", "checked", "wname", "where")

    def __init__(self, share, total, table, checked, wname, where):
        self.share, self.total, self.table = share, total, table
        self.checked, self.wname, self.where = checked, wname, where

    def __getstate__(self):
        return tuple(getattr(self, k) for k in self.__slots__)

    def __setstate__(self, state):
        for k, v in zip(self.__slots__, state):
            setattr(self, k, v)


def _class_weight_groups(net, class_weight):
    """Groups the checking pass counts per: the classes when ``class_weight`` is given
    (checked like ``_weights.class_row_weights``), else one."""
    if class_weight is None:
        return 1
    if not (net.is_classifier
            and net._loss.row_classes(np.zeros((1, net.n_out), net.dtype)) is not None):
        raise ValueError("class_weight needs a single-label classifier (loss='cross_entropy', "
                         "or 'binary_cross_entropy' with one output)")
    if isinstance(class_weight, str) and class_weight != "balanced":
        raise ValueError(f"class_weight must be a dict, 'balanced' or None, got {class_weight!r}")
    if not isinstance(class_weight, (str, dict)):
        raise TypeError(f"class_weight must be a dict {{label: weight}}, 'balanced' or None, "
                        f"got {type(class_weight).__name__}")
    groups = net._loss.n_classes(net.n_out)
    if isinstance(class_weight, dict):      # its keys and values, before any work
        _weights._from_dict(class_weight, np.arange(groups), groups)
    return groups


class ChunkedSet:
    """A chunked data set ``(X, y[, sample_weight])`` (see the module's design notes).

    Parameters
    ----------
    net : Network
    X, y : Dask arrays (one of them may be in memory: it is chunked like the other)
    name, yname : str
        Their names in messages (``"X"``, ``"X_val"``, ...).
    sample_weight : Dask or NumPy array (N,), optional
        Chunked like X (a NumPy array is).
    class_weight : dict or "balanced", optional
        As ``fit``'s (training sets only).
    check : bool, default True
        Run :func:`check_sets` now; False: the caller checks it (with other sets, in
        one pass), or every task checks its own chunk (a single evaluation).

    Attributes
    ----------
    shape : tuple
        ``X.shape``.
    rows, starts : tuple of int
        Rows per chunk, first row of each chunk.
    spec : tuple
        The workers' description of the network (:func:`worker_spec`).
    checked : bool
        :func:`check_sets` passed: tasks convert chunks without checking them again.
    weighted : bool
        The rows have weights that are not all equal (the weighted loss).
    total_weight : float
        Sum of the rows' weights (the rows when unweighted).
    """

    def __init__(self, net, X, y, name="X", yname="y", sample_weight=None, class_weight=None,
                 wname="sample_weight", check=True):
        if not is_chunked(X):
            X = _as_chunked(X, y, name)
        y = _as_chunked(y, X, yname)
        _check_shape(X, net.n_in, name)
        _check_row_chunks(X, y, name, yname)
        X = X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X
        y = y.rechunk({1: -1}) if y.ndim == 2 and len(y.chunks[1]) > 1 else y
        sw = None
        if sample_weight is not None:
            sw = _as_chunked(sample_weight, X, wname)
            if sw.ndim != 1:
                raise ValueError(f"{wname} must have shape ({X.shape[0]},) (one weight per "
                                 f"row), got {sw.shape}")
            _check_row_chunks(X, sw, name, wname)
        self.groups = _class_weight_groups(net, class_weight)
        self.class_weight = class_weight
        self._setup(worker_spec(net), X, y, sw, name, yname, wname)
        if check:
            check_sets(net, self)

    def _setup(self, spec, X, y, sw, name, yname, wname):
        self.X, self.y, self.sw = X, y, sw
        self.shape = tuple(int(s) for s in X.shape)
        self.rows = tuple(int(r) for r in X.chunks[0])
        self.starts = tuple(int(s) for s in np.cumsum((0,) + self.rows[:-1]))
        self.spec = spec
        self.name, self.yname, self.wname = name, yname, wname
        self.x_blocks = list(X.to_delayed().ravel())
        self.x_keys = [k for row in X.__dask_keys__() for k in row]
        self.y_blocks = list(y.to_delayed().ravel())
        self.w_blocks = ([None] * len(self.rows) if sw is None
                         else list(sw.to_delayed().ravel()))
        self.checked = False
        self.weighted = sw is not None            # until check() knows better
        self.table = None
        self.total_weight = float(self.shape[0])

    def take_rows(self, start, stop, class_weight=None):
        """Rows ``start:stop`` as an unchecked ChunkedSet (with its sample weights)."""
        part = object.__new__(ChunkedSet)
        part.groups, part.class_weight = (1, None) if class_weight is None else (
            self.groups, class_weight)
        sw = None if self.sw is None else self.sw[start:stop]
        part._setup(self.spec, self.X[start:stop], self.y[start:stop], sw, self.name,
                    self.yname, self.wname)
        return part

    @property
    def n_chunks(self):
        return len(self.rows)

    def where(self, i):
        """``"chunk i (rows s:e) of X/y"`` for messages."""
        return (f"chunk {i} (rows {self.starts[i]}:{self.starts[i] + self.rows[i]}) of "
                f"{self.name}/{self.yname}")

    def contexts(self):
        """Each chunk's :class:`ChunkContext` (share ``n_c / N`` of the plain mean)."""
        N = self.shape[0]
        weighted = self.weighted or self.table is not None
        return [ChunkContext(r / N, self.total_weight if weighted else None, self.table,
                             self.checked, self.wname, self.where(i))
                for i, r in enumerate(self.rows)]

    def _apply(self, stats):
        """The set's weights from the chunks' :func:`_group_stats` (see :func:`check_sets`)."""
        count = sum(st[0] for st in stats)
        sums = sum(st[1] for st in stats)
        low = np.min([st[2] for st in stats], axis=0)
        high = np.max([st[3] for st in stats], axis=0)
        table = _class_table(self.class_weight, count, self.groups)
        present = count > 0
        scale = np.ones(self.groups) if table is None else table
        low, high = low[present] * scale[present], high[present] * scale[present]
        if not np.any(high > 0):
            raise ValueError(f"{self.wname} is zero everywhere: no row would count"
                             if table is None else
                             "the weights of the training rows (sample_weight times "
                             "class_weight) are zero everywhere: no row would count")
        self.checked = True
        # All weights equal: the plain mean exactly (as _weights.combine decides).
        self.weighted = bool(low.min() != high.max())
        self.table = table if self.weighted else None
        self.total_weight = float(np.dot(sums, scale)) if self.weighted else float(self.shape[0])
        if not self.weighted:
            self.sw = None
            self.w_blocks = [None] * self.n_chunks

    def block(self, i):
        """Chunk ``i`` as NumPy arrays ``(X_i, y_i, w_i or None)`` (computed where Dask
        runs it)."""
        return tuple(compute([self.x_blocks[i], self.y_blocks[i], self.w_blocks[i]]))


def _class_table(class_weight, count, groups):
    """Weight per class: the dict's (checked), or ``"balanced"``'s over the classes present."""
    if class_weight is None:
        return None
    if isinstance(class_weight, dict):
        return _weights._from_dict(class_weight, np.arange(groups), groups)
    present = count > 0
    table = np.zeros(groups)
    # _weights._balanced's expression: n_samples / (n_classes * count), per class present.
    table[present] = int(count.sum()) / (int(present.sum()) * count[present].astype(np.float64))
    return table


def check_sets(net, *sets):
    """The one checking pass of a fit: every chunk of every set through the network's
    checks on the workers (one small answer per chunk, one computation); raises the
    first problem, naming its chunk; then the sets know their weights."""
    dask = _dask()
    tasks = [[dask.delayed(_check_block, pure=False)(data.spec, xb, yb, wb, data.wname,
                                                     data.groups)
              for xb, yb, wb in zip(data.x_blocks, data.y_blocks, data.w_blocks)]
             for data in sets]
    answers = compute(tasks)
    for data, found in zip(sets, answers):
        for i, (problem, _) in enumerate(found):
            if problem is not None:
                kind, message = problem
                raise _error(kind, f"{data.where(i)}: {message}")
    for data, found in zip(sets, answers):
        data._apply([stats for _, stats in found])


class Broadcast:
    """A value every block task reads, as one key of the graph: it reaches each worker
    that runs a block task once (from the scheduler, or from another worker).

    Not ``client.scatter(broadcast=True)``: a scatter to a worker that has just died
    blocks until the scheduler notices, and sometimes for good; a graph key is
    routed by the scheduler to the workers alive. ``nbytes`` is what sending it
    costs at most (its size times the workers).
    """

    def __init__(self, value):
        self.ref = _dask().delayed(value, pure=False)
        self.nbytes = int(value.nbytes) * _workers(current_client())


# --------------------------------------------------------------------------- locality

def locate(client, data):
    """The workers holding each chunk of ``data.X`` in memory (a list per chunk, or
    None: not persisted, or no client): one ``who_has`` round trip."""
    where = [None] * data.n_chunks
    if client is None:
        return where
    import distributed
    futures = distributed.futures_of(data.X)
    if not futures:
        return where
    who = client.who_has(futures)
    for i, key in enumerate(data.x_keys):
        holders = who.get(key)
        if holders:
            where[i] = sorted(holders)
    return where


def _placed(dask, workers):
    """Tasks created inside run on ``workers`` only (strict: never stolen), or anywhere."""
    if not workers:
        return dask.annotate()
    return dask.annotate(workers=workers, allow_other_workers=False)


_LOST = object()


def _watched(client, graph, pinned):
    """``client.compute(graph)``'s result, or ``_LOST`` when a worker that tasks are
    pinned to has left the cluster or stopped running tasks (paused at its memory
    limit): with strict restrictions they would wait for it for good."""
    future = client.compute(graph)
    # Waited for on an Event set by the future's callback, not with
    # ``future.result(timeout=...)``: distributed's sync() with a timeout can end
    # in an UnboundLocalError when the timeout races the result (seen under load).
    finished = threading.Event()
    future.add_done_callback(lambda _: finished.set())
    while not finished.wait(WATCH_SECONDS):
        workers = client.scheduler_info()["workers"]
        if any(workers.get(w, {}).get("status", "running") != "running" or w not in workers
               for w in pinned):
            future.cancel()
            return _LOST
    return future.result()


def compute(graph, pinned=frozenset()):
    """Result of a Delayed (or a list of them) on the current client or the default scheduler.

    ``pinned``: the workers some tasks are restricted to (watched, see :func:`_watched`).
    A failure of the cluster itself (a lost worker beyond Dask's retries, a lost
    connection) becomes a ``RuntimeError`` that says what to do; errors of
    nncore's checks keep their type.
    """
    client = current_client()
    try:
        if client is None:
            return _dask().compute(graph)[0]
        if pinned:
            return _watched(client, graph, set(pinned))
        return client.compute(graph, sync=True)
    except (ValueError, TypeError, ArithmeticError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise RuntimeError(f"the Dask computation failed ({type(exc).__name__}: {exc}); "
                           "nothing was changed by the failed evaluation. Check the "
                           "workers (memory limit, lost workers) and try again") from exc


def chunk_sum(data, func, shared, per_chunk):
    """Tree sum over the chunks of ``func(spec, *shared, x_c, y_c, w_c, ctx_c, *per_chunk)``
    (``w_c`` the chunk's sample weights or None, ``ctx_c`` its :class:`ChunkContext`)."""
    return _placed_sum(data, func, shared, [(w, ctx) + tuple(per_chunk) for w, ctx in
                                            zip(data.w_blocks, data.contexts())])


def _placed_sum(data, func, shared, per_chunk):
    """Tree sum over the chunks of ``func(spec, *shared, x_c, y_c, *per_chunk[c])``.

    Each chunk's task runs on the worker holding the chunk of X (when it is in
    a worker's memory), so only ``shared`` (broadcast once: parameters, directions;
    None stays None) goes out and each task's partial result comes back; the parts
    are summed in a tree of fan-in :data:`FAN_IN` in chunk order (so the result does
    not depend on where tasks ran). If a worker holding chunks is lost meanwhile,
    the sum is recomputed without placement (Dask recomputes the lost chunks).
    Returns ``(total, bytes sent out)``.
    """
    dask = _dask()
    where = locate(current_client(), data)

    def build(where):
        refs = [None if v is None else Broadcast(v) for v in shared]
        parts = []
        for i, (xb, yb) in enumerate(zip(data.x_blocks, data.y_blocks)):
            with _placed(dask, where[i]):
                parts.append(dask.delayed(func, pure=False)(
                    data.spec, *[None if r is None else r.ref for r in refs], xb, yb,
                    *per_chunk[i]))
        return tree_sum(parts, dask.delayed), sum(r.nbytes for r in refs if r is not None)

    graph, sent = build(where)
    pinned = {w for holders in where if holders for w in holders}
    total = compute(graph, pinned)
    if total is _LOST:
        graph, more = build([None] * data.n_chunks)
        total, sent = compute(graph), sent + more
    return total, sent


def reduce_loss(data, x, grad, count):
    """``(J, g, correct)`` over all chunks at parameters ``x``: the data loss of
    ``Network._loss_grad`` (the set's weighted mean, or shares ``n_c / N``), its float64
    gradient (or None) and the correct predictions (``count``: see :func:`_block_loss`); plus the bytes moved out and back (an upper bound)."""
    (J, g, correct), sent = chunk_sum(data, _block_loss, [np.ascontiguousarray(x)],
                                      [grad, count])
    back = data.n_chunks * (16 + (8 * x.size if grad else 0))
    return J, g, correct, {"params_out": sent, "partials_back": back}


# --------------------------------------------------------------------------- Network methods

def _single(net, X, y, sample_weight):
    """The set of one evaluation: checked by its own tasks (one pass over the data),
    or, with sample weights (their sum is needed first), by :func:`check_sets`."""
    return ChunkedSet(net, X, y, sample_weight=sample_weight, check=sample_weight is not None)


def loss(net, X, y, sample_weight=None):
    """``net.loss`` on chunked data: data loss over the chunks plus the penalty."""
    data = _single(net, X, y, sample_weight)
    J, _, _, _ = reduce_loss(data, net.params.copy(), grad=False, count=None)
    return float(J + net._penalty(False))


def loss_and_gradient(net, X, y, sample_weight=None):
    """``net.loss_and_gradient`` on chunked data (the gradient also into ``net.grads``,
    unless a fit owns them)."""
    data = _single(net, X, y, sample_weight)
    J, g, _, _ = reduce_loss(data, net.params.copy(), grad=True, count=None)
    grads = g.astype(net.dtype)
    J += net._penalty(True, grads)
    if not net._fit_lock.locked():
        with net._grads_lock:
            np.copyto(net.grads, grads)
    return float(J), grads


def metrics(net, data, prefix=""):
    """``nncore.evaluation.metrics`` over a :class:`ChunkedSet`."""
    count = None if not net.is_classifier else ("weighted" if data.weighted else "count")
    J, _, correct, _ = reduce_loss(data, net.params.copy(), grad=False, count=count)
    result = {prefix + "loss": float(J + net._penalty(False))}
    if net.is_classifier:
        result[prefix + "accuracy"] = (correct if data.weighted else
                                       correct / net._loss.n_judged(data.shape[0], net.n_out))
    return result


def _predict_block(block, spec, params, method, block_info=None):
    net = worker_net(spec)
    np.copyto(net.params, params)
    try:
        return getattr(net, method)(block)
    except (ValueError, TypeError) as exc:
        where = ""
        if block_info:
            i = block_info[0]["chunk-location"][0]
            s, e = block_info[0]["array-location"][0]
            where = f"chunk {i} (rows {s}:{e}) of X: "
        raise type(exc)(f"{where}{exc}") from None


def predict(net, X, method):
    """Lazy ``net.<method>(X)`` (``"forward"``, ``"predict"``, ``"predict_proba"``)
    over the row chunks of a Dask array: a Dask array of the in-memory result's layout,
    computed chunk by chunk where the chunks live, with the parameters of this call."""
    dask = _dask()
    _check_shape(X, net.n_in, "X")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    # The layout (1-D or 2-D, dtype) of the in-memory result, from one row.
    probe = getattr(net, method)(np.zeros((1, net.n_in), net.dtype))
    params = dask.delayed(net.params.copy(), pure=False)
    spec = worker_spec(net)
    if probe.ndim == 1:
        return X.map_blocks(_predict_block, spec, params, method, dtype=probe.dtype,
                            drop_axis=1, meta=np.empty((0,), probe.dtype))
    return X.map_blocks(_predict_block, spec, params, method, dtype=probe.dtype,
                        chunks=(X.chunks[0], (probe.shape[1],)),
                        meta=np.empty((0, 0), probe.dtype))
