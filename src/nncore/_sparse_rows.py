"""SciPy sparse inputs for the scikit-learn estimators, one densified chunk at a time.

Design: a CSR matrix is never densified as a whole. Training walks the rows
in chunks whose length is a multiple of the mini-batch size, densifies one
chunk and runs one :meth:`Network.fit` epoch over it with the estimator's
persistent optimizer; so with ``shuffle=False`` the sequence of mini-batch
steps is exactly the one a dense ``fit`` takes. Inference densifies chunks
of rows and concatenates the outputs. The first layer's product is dense
per chunk (a native sparse product is future work).
"""

from __future__ import annotations

import numpy as np

from .history import History

__all__ = ["is_sparse", "CHUNK_ELEMENTS", "chunk_rows", "map_rows", "fit_epochs"]

CHUNK_ELEMENTS = 1 << 20  # elements of one densified chunk (8 MB in float64)


def is_sparse(X):
    """True for a SciPy sparse matrix or array (duck-typed: no SciPy import here)."""
    return hasattr(X, "tocsr") and hasattr(X, "nnz")


def chunk_rows(n_features, batch_size):
    """Rows per densified chunk: a multiple of ``batch_size``, about CHUNK_ELEMENTS elements."""
    per_chunk = max(1, CHUNK_ELEMENTS // max(1, n_features))
    return max(batch_size, per_chunk // batch_size * batch_size)


def _dense(X, rows, dtype):
    return np.ascontiguousarray(X[rows].toarray(), dtype=dtype)


def map_rows(fn, X, dtype, rows_per_chunk=None):
    """``fn`` applied to dense chunks of the rows of sparse ``X``, outputs stacked."""
    n = X.shape[0]
    step = rows_per_chunk or chunk_rows(X.shape[1], 1)
    return np.concatenate([np.asarray(fn(_dense(X, np.arange(s, min(n, s + step)), dtype)))
                           for s in range(0, n, step)])


def _mean_loss(net, X, Y, sample_weight=None):
    """Loss over all rows of sparse ``X`` (row-weighted mean of chunk losses; with
    ``sample_weight`` the chunks' weighted losses weighted by their weight sums)."""
    n = X.shape[0]
    step = chunk_rows(X.shape[1], 1)
    total = norm = 0.0
    for s in range(0, n, step):
        rows = np.arange(s, min(n, s + step))
        if sample_weight is None:
            share = len(rows)
            loss = net.loss(_dense(X, rows, net.dtype), Y[rows])
        else:
            share = float(np.sum(sample_weight[rows]))
            if share == 0.0:
                continue
            loss = net.loss(_dense(X, rows, net.dtype), Y[rows], sample_weight[rows])
        total += float(loss) * share
        norm += share
    return total / norm


def fit_epochs(net, X, Y, *, optimizer, batch_size, epochs, shuffle, next_seed,
               validation_data=None, stop_rule=None, sample_weight=None):
    """Train on sparse ``X`` for up to ``epochs`` epochs; returns a :class:`History`.

    ``stop_rule`` (an object with ``update(value, params) -> bool``) sees the
    epoch's validation loss when ``validation_data`` is given, else its
    training loss, as the dense path's stopping callback does.
    ``sample_weight`` (float64, (n,)): each chunk trains with its rows'
    weights; chunks are whole mini-batches, so every step's weighted loss is
    the dense fit's.
    """
    if batch_size in (None, "full") or getattr(optimizer, "full_batch", False):
        raise ValueError("sparse X trains with mini-batches of a first-order optimizer: "
                         "give an integer batch_size and e.g. optimizer='adam' (a full "
                         "batch would densify the whole set)")
    n = X.shape[0]
    step = chunk_rows(X.shape[1], batch_size)
    rng = np.random.default_rng(next_seed())
    hist = History({"epochs": epochs, "batch_size": batch_size, "sparse": True})
    for epoch in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        loss_sum = 0.0
        for s in range(0, n, step):
            rows = order[s:s + step]
            h = net.fit(_dense(X, rows, net.dtype), Y[rows], optimizer=optimizer,
                        batch_size=batch_size, epochs=1, shuffle=False, progress=False,
                        seed=next_seed(),
                        sample_weight=None if sample_weight is None else sample_weight[rows])
            # fit's epoch loss is the mean over mini-batches: weight chunks by batches
            loss_sum += h.history["loss"][-1] * -(-len(rows) // batch_size)
        logs = {"loss": loss_sum / -(-n // batch_size)}
        if validation_data is not None:
            logs["val_loss"] = _mean_loss(net, *validation_data)
        hist.append(epoch, logs)
        watched = logs["val_loss" if validation_data is not None else "loss"]
        if stop_rule is not None and stop_rule.update(watched, net.params):
            stop_rule.stopped = True
            hist.stop_reason = "no improvement (n_iter_no_change)"
            break
    if stop_rule is not None and validation_data is not None:
        stop_rule.restore_best(net.params)
    return hist
