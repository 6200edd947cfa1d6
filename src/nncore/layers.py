"""Layers a :class:`~nncore.network.Network` is built from."""

from __future__ import annotations

import math
import numbers

from ._checks import _positive_int
from .errors import InvalidParameterError

__all__ = ["Layer", "Dense", "Dropout", "layer_from_config"]

ACTIVATIONS = {"linear": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4}
INITS = ("he_uniform", "glorot_uniform", "he_normal", "glorot_normal")


class Layer:
    """Base class of the layers a :class:`Network` is built from."""

    n_params = 0

    def __init__(self):
        self._owner = None

    def get_config(self):  # pragma: no cover - abstract
        """The layer as a JSON-serialisable dict (``layer_from_config`` rebuilds it)."""
        raise NotImplementedError


class Dense(Layer):
    """Fully connected layer ``Y = f(X @ W + b)``, ``W`` of shape ``(n_in, n_out)``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    activation : {"linear", "relu", "leaky_relu", "sigmoid", "tanh"}
        Elementwise activation ``f`` (leaky_relu has slope 0.01).
    init : {None, "he_uniform", "glorot_uniform", "he_normal", "glorot_normal"}
        Weight initialisation; ``None`` means He-uniform for relu/leaky_relu
        and Glorot-uniform otherwise. Biases always start at 0.

    Attributes
    ----------
    W, b, dW, db : ndarray or None
        Views into the owning network's ``params``/``grads`` buffers
        (``None`` until the layer is placed in a :class:`Network`).
    """

    def __init__(self, n_in, n_out, activation="linear", init=None):
        super().__init__()
        self.n_in = _positive_int(n_in, "n_in")
        self.n_out = _positive_int(n_out, "n_out")
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of "
                             f"{sorted(ACTIVATIONS)}")
        if init is not None and (not isinstance(init, str) or init not in INITS):
            raise ValueError(f"unknown init {init!r}; expected None or one of {list(INITS)}")
        self.activation = activation
        self.init = init
        self._act = ACTIVATIONS[activation]
        self.W = self.b = self.dW = self.db = None

    @property
    def n_params(self):
        return self.n_in * self.n_out + self.n_out

    @property
    def init_name(self):
        """The initialisation actually used (resolves ``init=None``)."""
        if self.init is not None:
            return self.init
        return "he_uniform" if self.activation in ("relu", "leaky_relu") else "glorot_uniform"

    def _init_weights(self, rng):
        """Initial weights as float64 (the same draws for either network dtype)."""
        name = self.init_name
        fan_in, fan_out = self.n_in, self.n_out
        shape = (fan_in, fan_out)
        if name == "he_uniform":
            lim = math.sqrt(6.0 / fan_in)
            return rng.uniform(-lim, lim, size=shape)
        if name == "glorot_uniform":
            lim = math.sqrt(6.0 / (fan_in + fan_out))
            return rng.uniform(-lim, lim, size=shape)
        if name == "he_normal":
            return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
        return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)

    def get_config(self):
        """The layer as a JSON-serialisable dict (no parameters)."""
        return {"type": "Dense", "n_in": self.n_in, "n_out": self.n_out,
                "activation": self.activation, "init": self.init}

    def __repr__(self):
        act = "" if self.activation == "linear" else f", activation={self.activation!r}"
        init = "" if self.init is None else f", init={self.init!r}"
        return f"Dense({self.n_in}, {self.n_out}{act}{init})"


class Dropout(Layer):
    """Inverted dropout: in training each unit is zeroed with probability
    ``rate`` and survivors are scaled by ``1 / (1 - rate)``; identity at
    inference. ``rate = 0`` is the identity.

    Parameters
    ----------
    rate : float
        Drop probability, ``0 <= rate < 1``.
    """

    def __init__(self, rate):
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise InvalidParameterError(f"dropout rate must be a number, got {rate!r}")
        rate = float(rate)
        if not (0.0 <= rate < 1.0):
            raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
        self.rate = rate

    def get_config(self):
        """The layer as a JSON-serialisable dict."""
        return {"type": "Dropout", "rate": self.rate}

    def __repr__(self):
        return f"Dropout({self.rate:g})"



def layer_from_config(cfg):
    kind = cfg.get("type")
    if kind == "Dense":
        return Dense(cfg["n_in"], cfg["n_out"], cfg.get("activation", "linear"), cfg.get("init"))
    if kind == "Dropout":
        return Dropout(cfg["rate"])
    raise ValueError(f"unknown layer type {kind!r}")

