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
* :class:`ChunkedSet` is a validated ``(X, y)`` pair: X has one column block,
  X and y have the same row chunks (else a ``ValueError`` naming the first chunk
  that differs), and every chunk passes the network's own checks
  (``Network._check_X`` / ``_check_y``, run on the workers, one small answer per
  chunk) before anything changes; a bad chunk's error names its index and rows.
* Block tasks rebuild the network on the worker from its architecture
  (``get_config()`` without the regulariser: the penalty is added once, on the
  client) and cache it per worker thread; each task copies the parameters into
  its own network, so threads of one worker never share a buffer. The
  parameters go out once per evaluation (one key of the graph, fetched once by
  each worker that runs block tasks);
  each chunk sends back ``(w_c J_c, w_c g_c, correct_c)`` with ``w_c = n_c / N``
  (the weights ``Network._loss_grad`` gives its own row chunks), and the parts
  are summed in a tree of fan-in :data:`FAN_IN` on the workers. So the result
  equals the in-memory loss and gradient up to float64 rounding (the sum's
  order differs). A per-chunk weight is the place sample weights go
  (``w_c = sum of the chunk's weights / total``).
* Locality: each chunk's task is pinned (strict worker restriction, so Dask's
  load balancing never moves a chunk to an idle worker) to the workers that
  hold its chunk of X in memory (``client.who_has``, one round trip per
  evaluation); chunks not in memory (X computed from its graph) are left to
  the scheduler. A pinned computation checks every :data:`WATCH_SECONDS` that
  its workers are alive; if one is lost it is recomputed without placement.
  The tree's order is the chunks' order, so where tasks ran never changes the
  result.
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

from . import backend as _backend

__all__ = ["is_chunked", "current_client", "ChunkedSet", "reduce_loss", "loss",
           "loss_and_gradient", "metrics", "predict"]

FAN_IN = 8            # partial sums combined per reduction task
_CACHE_NETS = 8       # networks kept per worker thread
WATCH_SECONDS = 2.0   # a computation with pinned tasks checks its workers this often
_LOCAL = threading.local()


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


def no_weights(sample_weight=None, class_weight=None):
    """``ValueError`` for weights with Dask arrays (not supported yet: a chunk's
    weight share would replace ``n_c / N``, see the module's design notes)."""
    if sample_weight is not None or class_weight is not None:
        raise ValueError("sample_weight and class_weight are not supported with Dask arrays "
                         "yet; pass in-memory arrays, or repeat rows for integer weights")


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


def _check_block(spec, xb, yb):
    """None, or ``(exception type name, message)`` of the network's checks on a chunk."""
    net = worker_net(spec)
    try:
        Xa = net._check_X(xb)
        if yb is not None:
            net._check_y(yb, Xa.shape[0])
    except (ValueError, TypeError) as exc:
        return (type(exc).__name__, str(exc))
    return None


def block_data(net, xb, yb):
    """A chunk as the network's validated arrays (the conversions of the in-memory path)."""
    Xa = net._check_X(xb)
    return Xa, net._check_y(yb, Xa.shape[0])


def _block_loss(spec, x, xb, yb, weight, grad, count):
    """``(weight J, weight g (float64) or None, correct)`` of one chunk at ``x``."""
    net = worker_net(spec)
    np.copyto(net.params, x)
    Xa, T = block_data(net, xb, yb)
    grads = np.zeros_like(net.params) if grad else None
    with np.errstate(over="ignore", invalid="ignore"):
        J, correct, _ = net._loss_grad(Xa, T, grad=grad, count=count, grads=grads)
        if grad:
            grads *= weight     # in the network dtype, as Network._loss_grad does
            g = grads.astype(np.float64)
        else:
            g = None
    return (weight * J, g, int(correct))


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


class ChunkedSet:
    """A validated chunked training set ``(X, y)`` (see the module's design notes).

    Parameters
    ----------
    net : Network
    X, y : Dask arrays (one of them may be in memory: it is chunked like the other)
    name, yname : str
        Their names in messages (``"X"``, ``"X_val"``, ...).

    Attributes
    ----------
    shape : tuple
        ``X.shape``.
    rows : tuple of int
        Rows per chunk.
    starts : tuple of int
        First row of each chunk.
    spec : tuple
        The workers' description of the network (:func:`worker_spec`).
    """

    def __init__(self, net, X, y, name="X", yname="y"):
        dask = _dask()
        if not is_chunked(X):
            X = _as_chunked(X, y, name)
        y = _as_chunked(y, X, yname)
        _check_shape(X, net.n_in, name)
        _check_row_chunks(X, y, name, yname)
        X = X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X
        y = y.rechunk({1: -1}) if y.ndim == 2 and len(y.chunks[1]) > 1 else y
        self._setup(worker_spec(net), X, y, name, yname)
        self._validate(dask)

    def _setup(self, spec, X, y, name, yname):
        self.X, self.y = X, y
        self.shape = tuple(int(s) for s in X.shape)
        self.rows = tuple(int(r) for r in X.chunks[0])
        self.starts = tuple(int(s) for s in np.cumsum((0,) + self.rows[:-1]))
        self.spec = spec
        self.name, self.yname = name, yname
        self.x_blocks = list(X.to_delayed().ravel())
        self.x_keys = [k for row in X.__dask_keys__() for k in row]
        self.y_blocks = list(y.to_delayed().ravel())

    def take_rows(self, start, stop):
        """Rows ``start:stop`` as a ChunkedSet (already validated: no second pass)."""
        part = object.__new__(ChunkedSet)
        part._setup(self.spec, self.X[start:stop], self.y[start:stop], self.name, self.yname)
        return part

    @property
    def n_chunks(self):
        return len(self.rows)

    def where(self, i):
        """``"chunk i (rows s:e)"`` for messages."""
        return f"chunk {i} (rows {self.starts[i]}:{self.starts[i] + self.rows[i]})"

    def _validate(self, dask):
        checks = [dask.delayed(_check_block, pure=False)(self.spec, xb, yb)
                  for xb, yb in zip(self.x_blocks, self.y_blocks)]
        for i, problem in enumerate(compute(checks)):
            if problem is not None:
                kind, message = problem
                raise _error(kind, f"{self.where(i)} of {self.name}/{self.yname}: {message}")

    def weights(self):
        """Each chunk's share ``n_c / N`` of the mean loss."""
        N = self.shape[0]
        return [r / N for r in self.rows]

    def block(self, i):
        """Chunk ``i`` as NumPy arrays ``(X_i, y_i)`` (computed where Dask runs it)."""
        return tuple(compute([self.x_blocks[i], self.y_blocks[i]]))


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
    while True:
        try:
            return future.result(timeout=WATCH_SECONDS)
        except TimeoutError:
            if future.done():
                raise
            workers = client.scheduler_info()["workers"]
            if any(workers.get(w, {}).get("status", "running") != "running" or w not in workers
                   for w in pinned):
                future.cancel()
                return _LOST


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
    ``Network._loss_grad`` (weights ``n_c / N``), its float64 gradient (or None) and
    the correct predictions; plus the bytes moved out and back (an upper bound)."""
    (J, g, correct), sent = chunk_sum(data, _block_loss, [np.ascontiguousarray(x)],
                                      [(w, grad, count) for w in data.weights()])
    back = data.n_chunks * (16 + (8 * x.size if grad else 0))
    return J, g, correct, {"params_out": sent, "partials_back": back}


# --------------------------------------------------------------------------- Network methods

def loss(net, X, y):
    """``net.loss`` on chunked data: data loss over the chunks plus the penalty."""
    data = ChunkedSet(net, X, y)
    J, _, _, _ = reduce_loss(data, net.params.copy(), grad=False, count=False)
    return float(J + net._penalty(False))


def loss_and_gradient(net, X, y):
    """``net.loss_and_gradient`` on chunked data (the gradient also into ``net.grads``,
    unless a fit owns them)."""
    data = ChunkedSet(net, X, y)
    J, g, _, _ = reduce_loss(data, net.params.copy(), grad=True, count=False)
    grads = g.astype(net.dtype)
    J += net._penalty(True, grads)
    if not net._fit_lock.locked():
        with net._grads_lock:
            np.copyto(net.grads, grads)
    return float(J), grads


def metrics(net, data, prefix=""):
    """``nncore.evaluation.metrics`` over a :class:`ChunkedSet`."""
    J, _, correct, _ = reduce_loss(data, net.params.copy(), grad=False,
                                   count=net.is_classifier)
    result = {prefix + "loss": float(J + net._penalty(False))}
    if net.is_classifier:
        result[prefix + "accuracy"] = correct / net._loss.n_judged(data.shape[0], net.n_out)
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
