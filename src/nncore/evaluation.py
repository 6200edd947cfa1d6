"""Scoring a network on a data set, and the validation split of ``fit``.

Design
------
* :func:`metrics` is the one place that turns validated ``(X, T)`` into the
  numbers ``fit`` logs for validation data and :meth:`Network.evaluate`
  returns: ``"loss"`` (mean data loss plus the full penalty, dropout off, the
  value of :meth:`Network.loss`) and, for classifiers, ``"accuracy"``.
* :func:`split_rows` chooses the validation rows of ``fit(validation_split=)``.
  Unshuffled it takes the last rows (as Keras), as views. Shuffled it draws the
  rows at random and, for single-label classifiers, per class, so each class
  keeps its share of the data in both parts (sorted data -- all of one class
  last -- otherwise validates on one class only).
"""

from __future__ import annotations

import math

import numpy as np

from . import _dask

__all__ = ["draw_validation", "evaluate", "metrics", "split_rows", "split_selectors"]


def metrics(net, X, T, prefix="", weight=None):
    """Loss and, for classifiers, accuracy of ``net`` on validated ``(X, T)``.

    Parameters
    ----------
    net : Network
    X, T : ndarray
        Inputs and targets already checked by the network (``net._check_X``,
        ``net._check_y``).
    prefix : str, default ""
        Prepended to the keys (``"val_"`` for ``fit``'s validation logs).
    weight : ndarray, optional
        Float64 row coefficients (:func:`nncore.losses.row_coefficients` of
        checked sample weights): the loss is then the weighted mean
        ``sum w_n l_n / sum w_n`` and the accuracy the weighted share of correct
        predictions.

    Returns
    -------
    dict
        ``{prefix + "loss": float}`` plus ``prefix + "accuracy"`` for the
        cross-entropy losses (for ``"binary_cross_entropy"`` the fraction of
        correct outputs over all N·K of them).
    """
    if T is None:       # a nncore._dask.ChunkedSet: summed over its chunks
        return _dask.metrics(net, X, prefix)
    count = net.is_classifier and weight is None
    J, correct, _ = net._loss_grad(X, T, grad=False, count=count, weight=weight)
    result = {prefix + "loss": float(J + net._penalty(False))}
    if net.is_classifier:
        if weight is None:
            result[prefix + "accuracy"] = correct / net._loss.n_judged(X.shape[0], net.n_out)
        else:
            rows = net._loss.row_correct(net._outputs(X), T)
            result[prefix + "accuracy"] = float(np.dot(weight, rows))
    return result


def evaluate(net, X, y, sample_weight=None):
    """The loss and metrics of ``net`` on ``(X, y)``, dropout off (see :meth:`Network.evaluate`)."""
    if _dask.is_chunked(X) or _dask.is_chunked(y):
        return _dask.metrics(net, _dask.ChunkedSet(net, X, y, sample_weight=sample_weight,
                                                   check=sample_weight is not None))
    Xa = net._check_X(X)
    T = net._check_y(y, Xa.shape[0])
    return metrics(net, Xa, T, weight=net._row_coefficients(sample_weight, Xa.shape[0]))


def _strata(net, T):
    """Class of each row for stratifying, or None (regression, multi-label)."""
    return net._loss.row_classes(T)


def _stratified_counts(classes_count, n_val):
    """Validation rows per class: shares ``n_c · n_val / n`` rounded to sum to ``n_val``
    (largest remainders first; ties to the larger class, then the lower label)."""
    n = classes_count.sum()
    share = classes_count * (n_val / n)
    take = np.floor(share).astype(np.int64)
    order = np.lexsort((np.arange(len(share)), -classes_count, -(share - take)))
    take[order[:n_val - take.sum()]] += 1
    return take


def split_rows(net, X, T, fraction, shuffle, rng):
    """Split validated ``(X, T)`` into training and validation parts.

    Parameters
    ----------
    net : Network
    X, T : ndarray
        Validated inputs and targets.
    fraction : float in (0, 1)
        Share of the rows held out; the validation part has
        ``N - floor(N · (1 - fraction))`` rows.
    shuffle : bool
        ``False``: the last rows (views, no copy). ``True``: rows drawn with
        ``rng``, per class for single-label classifiers (``"cross_entropy"``,
        or ``"binary_cross_entropy"`` with one output); both parts keep the
        data's order.
    rng : numpy.random.Generator

    Returns
    -------
    X_train, T_train, X_val, T_val : ndarray

    Raises
    ------
    ValueError
        If either part would be empty.
    """
    train, val = split_selectors(net, T, fraction, shuffle, rng)
    return X[train], T[train], X[val], T[val]


def split_selectors(net, T, fraction, shuffle, rng):
    """``(train, val)`` row selectors of :func:`split_rows` (slices, or boolean
    masks when shuffled), to split other per-row arrays (sample weights) alike."""
    n = T.shape[0]
    n_train = int(math.floor(n * (1.0 - fraction)))
    if n_train < 1 or n_train >= n:
        raise ValueError(f"validation_split={fraction} of {n} samples leaves an "
                         "empty training or validation set")
    if not shuffle:
        return slice(0, n_train), slice(n_train, n)
    is_val = draw_validation(n, n - n_train, _strata(net, T), rng)
    return ~is_val, is_val


def draw_validation(n, n_val, strata, rng):
    """Boolean mask of ``n_val`` of ``n`` rows drawn at random with ``rng``.

    Parameters
    ----------
    n, n_val : int
        Rows in all, rows to draw (``0 < n_val < n``).
    strata : array of shape (n,) or None
        Each row's class: the draw is per class, ``n_val`` shared out by
        :func:`_stratified_counts`; ``None``: one draw over all rows.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of bool, shape (n,)
        True for the validation rows (``fit``'s draw and ``nncore train``'s).
    """
    if strata is None:
        val = rng.choice(n, size=n_val, replace=False)
    else:
        _, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
        take = _stratified_counts(counts, n_val)
        val = np.concatenate([rng.choice(np.flatnonzero(inverse == c), size=k, replace=False)
                              for c, k in enumerate(take)])
    is_val = np.zeros(n, bool)
    is_val[val] = True
    return is_val
