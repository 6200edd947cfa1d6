"""``fit`` on chunked (Dask) data: the full-batch objective on the cluster and
mini-batches streamed from the chunks.

Design
------
* Full-batch optimizers get :class:`Objective`, a ``fun(x) -> (f, g)`` whose
  loss and gradient are summed over the chunks on the workers
  (:func:`nncore._dask.reduce_loss`) and whose ``curvature`` is a
  :class:`~nncore._dask_curvature.ChunkedCurvature`; the penalty is added on
  the client exactly as the in-memory objective adds it. ``objective.traffic``
  counts evaluations and the bytes sent out (parameters to every worker) and
  back (partial sums, an upper bound: a part computed where its reducer runs
  does not cross the network). A classifier's accuracy at the accepted point
  reuses the count of the evaluation there, so it costs no extra pass.
* First-order optimizers train on *windows*: a few chunks pulled to the
  training process (the next ones loaded in a background thread while the
  window trains), concatenated with the rows carried over from the window
  before, cut to a multiple of the batch size (the rest is carried on). Each
  window runs through ``fit``'s own epoch runners (the compiled loop or the
  Python step loop), with the epoch's step count, losses, dropout counter and
  backup carried across windows. Without shuffling the batches are exactly
  the in-memory epoch's (consecutive rows), so the result is bit-identical;
  with shuffling the chunk order is permuted each epoch and the rows within
  each window. A window carries its rows' weights (sample times class
  weight, computed as in memory), so the loops normalise each batch's
  weights exactly as the in-memory fit does. Memory: a window of ``STREAM_CHUNKS`` chunks (plus fewer than
  ``batch_size`` carried rows) and ``PREFETCH`` chunks loading.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf

import numpy as np

from . import _dask
from ._dask_curvature import ChunkedCurvature

__all__ = ["Objective", "streamed_epoch", "split_last"]

STREAM_CHUNKS = 2   # chunks loaded into one training window
PREFETCH = 2        # chunks loaded ahead while a window trains


class Objective:
    """The full-batch objective ``fun(x) -> (f, g)`` of ``fit`` over a ChunkedSet."""

    def __init__(self, net, data):
        self.net = net
        self.data = data
        self.traffic = {"evaluations": 0, "params_out": 0, "partials_back": 0}
        self.curvature = ChunkedCurvature(net, data, self.traffic)
        self._last = None        # (x, correct) of the last evaluation

    def _count(self, moved):
        self.traffic["evaluations"] += 1
        for key, value in moved.items():
            self.traffic[key] += value

    def __call__(self, x):
        net = self.net
        np.copyto(net.params, x)
        J, g, correct, moved = _dask.reduce_loss(self.data, x, grad=True,
                                                 count="count" if net.is_classifier else None)
        self._count(moved)
        self._last = (np.array(x, dtype=np.float64), correct)
        np.copyto(net.grads, g)
        J += net._penalty(True)
        return float(J), net.grads.astype(np.float64)

    def accuracy(self, x):
        """Accuracy at ``x``: the count of the evaluation there, or one more pass."""
        if self._last is not None and np.array_equal(self._last[0], x):
            correct = self._last[1]
        else:
            _, _, correct, moved = _dask.reduce_loss(self.data, x, grad=False, count="count")
            self._count(moved)
        return correct / self.net._loss.n_judged(self.data.shape[0], self.net.n_out)


def split_last(data, fraction):
    """``fit(validation_split=)`` on chunked data: the last rows, as two unchecked
    ChunkedSets; both keep their sample weights, the class weights train only (as
    in memory)."""
    n = data.shape[0]
    n_train = int(np.floor(n * (1.0 - fraction)))
    if n_train < 1 or n_train >= n:
        raise ValueError(f"validation_split={fraction} of {n} samples leaves an "
                         "empty training or validation set")
    return (data.take_rows(0, n_train, data.class_weight), data.take_rows(n_train, n))


# --------------------------------------------------------------------------- streaming

def _load(net, data, i):
    """Chunk ``i`` converted as the in-memory path converts the whole set, with its
    rows' weights (None: unweighted)."""
    xb, yb, wb = data.block(i)
    X, T = _dask.block_data(net, xb, yb, data.checked)
    w = None if wb is None else np.array(wb, dtype=np.float64, order="C")
    return X, T, _dask.row_weights(net, T, w, data.table)


def _chunks(net, data, order):
    """Chunks in ``order``, each loaded ahead by a background thread."""
    pool = cf.ThreadPoolExecutor(1, thread_name_prefix="nncore-stream")
    pending = collections.deque()
    todo = iter(order)
    try:
        for i in todo:
            pending.append(pool.submit(_load, net, data, int(i)))
            if len(pending) >= PREFETCH:
                break
        while pending:
            chunk = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_load, net, data, int(nxt)))
            yield chunk
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=False)


def _join(pieces, shuffle, rng):
    """One ``(X, T, W)`` of the pieces (W None when unweighted), rows shuffled together."""
    joined = [np.concatenate([p[k] for p in pieces]) if len(pieces) > 1 else pieces[0][k]
              for k in (0, 1)]
    joined.append(None if pieces[0][2] is None else
                  np.concatenate([p[2] for p in pieces]) if len(pieces) > 1 else pieces[0][2])
    if shuffle:
        perm = rng.permutation(joined[0].shape[0])
        joined = [None if a is None else a[perm] for a in joined]
    return tuple(None if a is None else np.ascontiguousarray(a) for a in joined)


def windows(net, data, B, shuffle, rng):
    """Training windows ``(X_w, T_w, W_w)`` of an epoch (``W_w`` the rows' weights or
    None): every row once, each window but the last a multiple of ``B`` rows (see the
    module's design notes)."""
    order = rng.permutation(data.n_chunks) if shuffle else range(data.n_chunks)
    pieces, rows, fresh = [], 0, 0
    for chunk in _chunks(net, data, order):
        pieces.append(chunk)
        rows += chunk[0].shape[0]
        fresh += 1
        if fresh >= STREAM_CHUNKS and rows >= B:
            window = _join(pieces, shuffle, rng)
            pieces = chunk = None        # only the window holds the rows while it trains
            k = rows // B * B
            yield tuple(None if a is None else a[:k] for a in window)
            pieces = ([tuple(None if a is None else a[k:].copy() for a in window)]
                      if k < rows else [])
            window = None
            rows, fresh = rows - k, 0
    if rows:
        yield _join(pieces, shuffle, rng)


def streamed_epoch(net, data, B, shuffle, rng, make_run):
    """``run(order, epoch_state, workspace)`` for ``fit``'s first-order loop: one epoch
    over windows of ``data``, each run by ``make_run(X_w, T_w, first_step, W_w)`` (a
    runner of ``nncore.training``; ``first_step`` is the epoch's index of the window's
    first batch, ``W_w`` the rows' weights or None); ``order`` is ignored (the windows
    carry the order)."""
    whole_set = B >= data.shape[0]

    def run(order, epoch_state, workspace):
        if whole_set:        # one step on the whole set, as the in-memory fit
            X, T, W = _join([_load(net, data, i) for i in range(data.n_chunks)], False, rng)
            make_run(X, T, 0, W)(None, epoch_state, workspace)
            return
        done = 0
        try:
            for X, T, W in windows(net, data, B, shuffle, rng):
                epoch_state["step"] = 0
                make_run(X, T, done, W)(np.arange(X.shape[0], dtype=np.int64), epoch_state,
                                        workspace)
                done += epoch_state["step"]
                if epoch_state["diverged"]:
                    break
        finally:
            epoch_state["step"] = done

    return run
