"""The one multi-layer-perceptron builder behind ``Network.mlp``.

The command line, ``nc.tune`` and the scikit-learn estimators all build the
same shape of network: hidden ``Dense`` layers (each optionally followed by
``Dropout``), a linear output layer, and an L1/L2/elastic-net penalty. This
module writes that recipe once, as a :meth:`Network.get_config` record, so it
needs no import of the network module (which imports it): the record is
turned into a network by ``Network.from_config``, which checks every value.
"""

from __future__ import annotations

import numbers

__all__ = ["mlp_config"]


def _activations(activation, n_hidden):
    """One activation name per hidden layer (a single name is repeated)."""
    if isinstance(activation, str):
        return [activation] * n_hidden
    try:
        names = list(activation)
    except TypeError:
        raise TypeError(f"activation must be a name or a list of names, got {activation!r}") \
            from None
    if len(names) != n_hidden:
        raise ValueError(f"{len(names)} activations given for {n_hidden} hidden layers")
    return names


def _regularizer_config(l1, l2):
    # Truthiness, not "> 0": a negative or NaN strength must reach the
    # regularizer's own check and fail there, not be dropped silently.
    if l1 and l2:
        return {"type": "ElasticNet", "l1": l1, "l2": l2}
    if l1:
        return {"type": "L1", "l1": l1}
    if l2:
        return {"type": "L2", "l2": l2}
    return None


def mlp_config(n_in, hidden, n_out, *, activation="relu", loss="mse", dropout=0.0,
               l1=0.0, l2=0.0, init=None, dtype="float32", seed=None):
    """The architecture record (``Network.get_config`` format) of an MLP.

    Parameters
    ----------
    n_in, n_out : int
        Input features and outputs.
    hidden : int or sequence of int
        Widths of the hidden layers (``()`` for none).
    activation : str or sequence of str, default "relu"
        For every hidden layer, or one per hidden layer; the output is linear.
    loss : str, default "mse"
    dropout : float, default 0.0
        ``Dropout(dropout)`` after every hidden layer when non-zero.
    l1, l2 : float, default 0.0
        Penalty strengths (both non-zero: elastic net).
    init : str or None
        Weight initialisation of every Dense layer (None: by activation).
    dtype : {"float32", "float64"}
    seed : int or None
        Initialisation seed.

    Returns
    -------
    dict
    """
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = (hidden,)
    hidden = list(hidden)
    layers, prev = [], n_in
    for width, act in zip(hidden, _activations(activation, len(hidden))):
        layers.append({"type": "Dense", "n_in": prev, "n_out": width,
                       "activation": act, "init": init})
        if dropout:
            layers.append({"type": "Dropout", "rate": dropout})
        prev = width
    layers.append({"type": "Dense", "n_in": prev, "n_out": n_out, "activation": "linear",
                   "init": init})
    return {"layers": layers, "loss": loss, "regularizer": _regularizer_config(l1, l2),
            "dtype": dtype, "seed": seed}
