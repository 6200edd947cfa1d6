"""Layers a :class:`~nncore.network.Network` is built from, and their protocol.

Design
------
A layer owns everything about itself, so adding one touches this module (and
``__init__`` to export it), not ``Network``:

* its slice of the network's flat ``params``/``grads`` (``n_params``, ``bind``,
  ``param_arrays``, ``penalized_ranges``, ``init_params``);
* its widths (``input_width``, ``output_width``);
* its passes through the backend (``forward``, ``backward``), with per-call
  buffers taken from the caller's workspace (``ws.array``), never stored on
  the layer, so one network serves several threads at once;
* how the compiled epoch loop runs it (``loop_specs``), or ``None`` for
  "per-step path only" (the default: ``fit`` then trains step by step);
* its ONNX form (``to_onnx``: nodes added through the exporter's graph
  builder, so this module imports no ``onnx``); the default refuses, naming
  the layer;
* its description (``get_config`` / ``from_config``, ``summary_label``).

``Network`` iterates over layers and calls these; it never asks which class a
layer is.
"""

from __future__ import annotations

import math

import numpy as np

from . import activations as _activations
from ._checks import integer, one_of, real
from .errors import InvalidParameterError

__all__ = ["Layer", "Dense", "Dropout", "Residual", "layer_from_config", "register_layer"]

INITS = ("he_uniform", "glorot_uniform", "he_normal", "glorot_normal")

# type name in a saved config -> layer class (filled by @register_layer)
LAYER_TYPES = {}


def register_layer(cls):
    """Class decorator: make ``cls`` loadable by :func:`layer_from_config`."""
    LAYER_TYPES[cls.__name__] = cls
    return cls


class DropoutStream:
    """The counter-based random stream of a pass: a mask is a function of
    ``(seed, counter)`` only, so runs are reproducible and both backends draw
    identical masks."""

    def __init__(self, seed, counter):
        self.seed = seed
        self.counter = counter

    def fill(self, be, rate, mask):
        """Draw the next ``mask.size`` uniforms as a dropout mask and advance the counter.

        Parameters
        ----------
        be : module
            The active backend.
        rate : float
            Drop probability.
        mask : ndarray
            Filled in flat order with ``0`` or ``1 / (1 - rate)``.
        """
        be.dropout_mask(self.seed, self.counter, rate, mask)
        self.counter += mask.size


class Layer:
    """Base class and protocol of the layers a :class:`Network` is built from.

    The defaults describe a parameter-free, width-preserving identity layer
    that only runs on the per-step path; a subclass overrides what it needs.
    """

    n_params = 0
    input_width = None      # None: accepts any width (the previous layer's)
    is_stochastic = False   # True when the training forward draws random numbers

    def __init__(self):
        self._owner = None
        self._offset = 0

    def output_width(self, n_in):
        """Width of the output for an input of width ``n_in``.

        Parameters
        ----------
        n_in : int
            Width of the input (the previous layer's output).
        """
        return n_in

    def workspace_width(self, n_in):
        """Buffer elements per row this layer's passes hold (sizes row chunks).

        Parameters
        ----------
        n_in : int
            Width of the input.
        """
        return 0

    def bind(self, params, grads):
        """Take views of this layer's slices of the network's flat buffers.

        Parameters
        ----------
        params, grads : ndarray, shape (n_params,)
            This layer's slices of ``net.params`` and ``net.grads``.
        """

    def param_arrays(self):
        """``[(name, view), ...]`` of the parameters in flat-buffer order."""
        return []

    def penalized_ranges(self):
        """``[(start, stop), ...]`` of this layer's slice that the regularizer penalises."""
        return []

    def init_params(self, rng):
        """Write initial values into the bound parameter views.

        Parameters
        ----------
        rng : numpy.random.Generator
            The network's initialisation stream (layers draw in order).
        """

    def forward(self, be, ws, i, x, training, stream):
        """The output for input ``x``.

        Parameters
        ----------
        be : module
            The active backend (``nncore.backend.current()``).
        ws : workspace
            The calling thread's buffers for this row count; ``ws.array(i,
            name, width)`` gives this layer's ``(rows, width)`` buffer ``name``.
        i : int
            Position of this layer in the network.
        x : ndarray, shape (rows, n_in)
            The input (not to be modified).
        training : bool
            Training-mode pass (dropout on).
        stream : DropoutStream or None
            The random stream of this pass (``None`` when not training).

        Returns
        -------
        ndarray, shape (rows, n_out)
        """
        return x

    def backward(self, be, ws, i, g, training, grads, need_dx):
        """Gradient w.r.t. the input, from ``g``, the gradient w.r.t. the output.

        Parameters
        ----------
        be, ws, i, training
            As in :meth:`forward` (``ws`` holds what the forward pass stored).
        g : ndarray, shape (rows, n_out)
            Gradient w.r.t. this layer's output; may be overwritten.
        grads : ndarray, shape (n_params,)
            This layer's slice of the flat gradient buffer of the call (the
            network's own or a per-call one, so threads never share it).
        need_dx : bool
            Whether a layer below has parameters; when false, return ``None``.

        Returns
        -------
        ndarray of shape (rows, n_in), or None
        """
        return g

    def loop_specs(self, n_in):
        """How the compiled epoch loop runs this layer.

        Parameters
        ----------
        n_in : int
            Width of the input.

        Returns
        -------
        tuple or None
            Loop-layer tuples (``("dense", n_in, n_out, act, offset)``,
            ``("dropout", width, rate)``; empty for the identity), or ``None``:
            "per-step path only" (``fit`` then trains step by step).
        """
        return None

    def curvature_plan(self):
        """How :mod:`nncore.curvature` runs this layer (exact Hessian, Jacobian, LM).

        Returns
        -------
        list or None
            ``[(offset, n_in, n_out, act, skip), ...]``: dense steps
            ``f(x W + b)`` with ``W`` at ``params[offset:]`` (``skip``: the
            step's input is added to its output), ``[]`` for an identity at
            inference, or ``None``: no curvature for this layer (a clear
            ``ValueError`` when it is asked for).
        """
        return None

    def to_onnx(self, graph, x, stem):
        """Add this layer's inference computation (dropout off) to an ONNX graph.

        :func:`nncore.to_onnx` asks every layer in order; the default refuses.

        Parameters
        ----------
        graph : nncore.onnx graph builder
            ``graph.constant(name, array)`` adds an initializer in the
            network's dtype, ``graph.node(op, inputs, stem, **attrs)`` adds a
            node and returns its output's name, ``graph.layer(layer, x, stem)``
            asks an inner layer; ``graph.dtype`` is the network's dtype.
        x : str
            Name of the input tensor, shape ``(N, n_in)``.
        stem : str
            Prefix for the names of this layer's tensors (``"layer3"``).

        Returns
        -------
        str
            Name of the output tensor, shape ``(N, n_out)``.

        Raises
        ------
        ValueError
            The default: this layer has no ONNX form.
        """
        raise ValueError(f"{stem} ({self!r}): {type(self).__name__} has no ONNX export; a layer "
                         "exports by its to_onnx method (CONTRIBUTING.md, 'How to add a layer')")

    def summary_label(self):
        """Short description for :meth:`Network.summary`."""
        return type(self).__name__

    def get_config(self):  # pragma: no cover - abstract
        """The layer as a JSON-serialisable dict (``layer_from_config`` rebuilds it)."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg):
        """Rebuild a layer from :meth:`get_config` output.

        Parameters
        ----------
        cfg : dict
            The layer's ``get_config()`` dict.
        """
        kwargs = {k: v for k, v in cfg.items() if k != "type"}
        return cls(**kwargs)


@register_layer
class Dense(Layer):
    """Fully connected layer ``Y = f(X @ W + b)``, ``W`` of shape ``(n_in, n_out)``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    activation : str
        Elementwise activation ``f``, a name in ``nncore.activations.NAMES``:
        ``"linear"``, ``"relu"``, ``"leaky_relu"`` (slope 0.01), ``"sigmoid"``,
        ``"tanh"``, ``"elu"`` (alpha 1) or ``"softplus"`` (torch's: beta 1,
        the identity above 20).
    init : {None, "he_uniform", "glorot_uniform", "he_normal", "glorot_normal"}
        Weight initialisation; ``None`` means the activation's default:
        He-uniform for the relu-like ones (relu, leaky_relu, elu, softplus)
        and Glorot-uniform otherwise. Biases always start at 0.

    Attributes
    ----------
    W, b, dW, db : ndarray or None
        Views into the owning network's ``params``/``grads`` buffers
        (``None`` until the layer is placed in a :class:`Network`).
    """

    def __init__(self, n_in, n_out, activation="linear", init=None):
        super().__init__()
        self.n_in = integer(n_in, "n_in", low=1)
        self.n_out = integer(n_out, "n_out", low=1)
        act = _activations.get(activation)
        if init is not None and (not isinstance(init, str) or init not in INITS):
            raise ValueError(f"unknown init {init!r}; expected None or one of {list(INITS)}")
        self.activation = activation
        self.init = init
        self._act = act.code
        self.W = self.b = self.dW = self.db = None

    @property
    def n_params(self):
        return self.n_in * self.n_out + self.n_out

    @property
    def input_width(self):
        return self.n_in

    def output_width(self, n_in):
        return self.n_out

    def workspace_width(self, n_in):
        return 3 * self.n_out + self.n_in

    def bind(self, params, grads):
        nw = self.n_in * self.n_out
        shape = (self.n_in, self.n_out)
        self.W = params[:nw].reshape(shape)
        self.b = params[nw:]
        self.dW = grads[:nw].reshape(shape)
        self.db = grads[nw:]

    def param_arrays(self):
        return [("W", self.W), ("b", self.b)]

    def penalized_ranges(self):
        return [(0, self.n_in * self.n_out)]

    def init_params(self, rng):
        self.W[...] = self._init_weights(rng)

    def forward(self, be, ws, i, x, training, stream):
        ws.inp[i] = x
        out = ws.array(i, "out", self.n_out)
        be.dense_forward(x, self.W, self.b, self._act, out)
        return out

    def backward(self, be, ws, i, g, training, grads, need_dx):
        dW, db = self._grad_views(grads)
        dx = ws.array(i, "dx", self.n_in) if need_dx else None
        be.dense_backward(ws.inp[i], self.W, ws.array(i, "out", self.n_out), g, self._act,
                          dW, db, dx)
        return dx

    def _grad_views(self, grads):
        """``(dW, db)`` as views of this layer's slice ``grads`` of a flat gradient."""
        nw = self.n_in * self.n_out
        return grads[:nw].reshape(self.n_in, self.n_out), grads[nw:]

    def loop_specs(self, n_in):
        return (("dense", self.n_in, self.n_out, self._act, self._offset),)

    def curvature_plan(self):
        return [(self._offset, self.n_in, self.n_out, self._act, False)]

    def to_onnx(self, graph, x, stem):
        # Gemm computes X @ W + b with W as (n_in, n_out): nncore's own layout.
        w = graph.constant(f"{stem}.W", self.W)
        b = graph.constant(f"{stem}.b", self.b)
        s = graph.node("Gemm", [x, w, b], f"{stem}.S")
        lower = _activations.get(self.activation).onnx
        return lower(graph, s, f"{stem}.{self.activation}")

    def summary_label(self):
        return f"Dense {self.activation}"

    @property
    def init_name(self):
        """The initialisation actually used (resolves ``init=None``)."""
        if self.init is not None:
            return self.init
        return _activations.get(self.activation).init

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

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg["n_in"], cfg["n_out"], cfg.get("activation", "linear"), cfg.get("init"))

    def __repr__(self):
        act = "" if self.activation == "linear" else f", activation={self.activation!r}"
        init = "" if self.init is None else f", init={self.init!r}"
        return f"Dense({self.n_in}, {self.n_out}{act}{init})"


@register_layer
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
        self.rate = real(rate, "dropout rate", low=0.0, high=1.0, high_open=True)

    @property
    def is_stochastic(self):
        return self.rate > 0.0

    def forward(self, be, ws, i, x, training, stream):
        if not (training and self.rate > 0.0):
            return x
        mask = ws.array(i, "mask", x.shape[1])
        out = ws.array(i, "out", x.shape[1])
        stream.fill(be, self.rate, mask)
        be.multiply(x, mask, out)
        return out

    def backward(self, be, ws, i, g, training, grads, need_dx):
        if training and self.rate > 0.0:
            be.multiply(g, ws.array(i, "mask", g.shape[1]), g)
        return g

    def loop_specs(self, n_in):
        # rate 0 is the identity: nothing for the loop to run
        return (("dropout", n_in, self.rate),) if self.rate > 0.0 else ()

    def curvature_plan(self):
        return []          # the identity at inference; curvature has dropout off

    def to_onnx(self, graph, x, stem):
        return x           # the identity at inference: no node

    def summary_label(self):
        return f"Dropout({self.rate:g})"

    def get_config(self):
        """The layer as a JSON-serialisable dict."""
        return {"type": "Dropout", "rate": self.rate}

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg["rate"])

    def __repr__(self):
        return f"Dropout({self.rate:g})"


@register_layer
class Residual(Layer):
    """Residual block ``y = x + layer(x)`` (He et al. 2016's identity shortcut).

    Parameters
    ----------
    layer : Layer
        A layer whose output has its input's width (``n_in == n_out``), e.g.
        ``nc.Dense(100, 100, activation="relu")``. Its parameters are the
        block's; it must not be placed in a network on its own as well.

    Notes
    -----
    ``Residual(Dense(n, n))`` runs in the compiled epoch loop (the loop kind
    ``"residual_dense"``, the same kernel calls as the per-step path, so the
    same bits); around any other layer the block trains on the per-step path.
    """

    def __init__(self, layer):
        super().__init__()
        if not isinstance(layer, Layer):
            raise InvalidParameterError(f"Residual wraps an nncore layer such as nc.Dense, "
                                        f"got {type(layer).__name__}")
        if isinstance(layer, Residual):
            raise ValueError("a Residual inside a Residual computes x + x + f(x); wrap the "
                             "inner layer once")
        if layer._owner is not None:
            raise ValueError(f"{layer!r} already belongs to a Network or another Residual; "
                             "create a new layer")
        width = layer.input_width
        if width is None or layer.output_width(width) != width:
            out = None if width is None else layer.output_width(width)
            raise ValueError(f"Residual needs a layer with n_in == n_out (x + layer(x)); "
                             f"{layer!r} has n_in={width}, n_out={out}")
        self.layer = layer
        layer._owner = self     # claimed: it cannot go into a second block or network

    @property
    def n_params(self):
        return self.layer.n_params

    @property
    def input_width(self):
        return self.layer.input_width

    @property
    def is_stochastic(self):
        return self.layer.is_stochastic

    def workspace_width(self, n_in):
        return self.layer.workspace_width(n_in) + 2 * n_in

    def bind(self, params, grads):
        # The inner layer's slice is the block's: same offset, same owner.
        self.layer._offset = self._offset
        self.layer._owner = self._owner
        self.layer.bind(params, grads)

    def param_arrays(self):
        return self.layer.param_arrays()

    def penalized_ranges(self):
        return self.layer.penalized_ranges()

    def init_params(self, rng):
        self.layer.init_params(rng)

    # The inner layer uses this position's buffers under its own names; the
    # block's own are "residual.*" (so a Residual cannot nest in a Residual).
    def forward(self, be, ws, i, x, training, stream):
        y = self.layer.forward(be, ws, i, x, training, stream)
        out = ws.array(i, "residual.out", x.shape[1])
        be.add(x, y, out)
        return out

    def backward(self, be, ws, i, g, training, grads, need_dx):
        if not need_dx:
            self.layer.backward(be, ws, i, g, training, grads, False)
            return None
        # The inner backward may overwrite g: keep it for the shortcut.
        dx = ws.array(i, "residual.dx", g.shape[1])
        np.copyto(dx, g)
        inner = self.layer.backward(be, ws, i, g, training, grads, True)
        be.add(inner, dx, dx)
        return dx

    def loop_specs(self, n_in):
        # The compiled loop runs a shortcut around one Dense layer.
        inner = self.layer.loop_specs(n_in)
        if inner is None or len(inner) != 1 or inner[0][0] != "dense":
            return None
        return (("residual_dense",) + tuple(inner[0][1:]),)

    def curvature_plan(self):
        plan = self.layer.curvature_plan()
        if plan is None or len(plan) != 1 or plan[0][4]:
            return None     # only a single dense step gets a shortcut
        offset, n_in, n_out, act, _ = plan[0]
        return [(offset, n_in, n_out, act, True)]

    def to_onnx(self, graph, x, stem):
        # The inner layer is asked through the builder (checked as a top-level
        # layer is) and keeps this position's stem, as it keeps its buffers.
        y = graph.layer(self.layer, x, stem)
        return graph.node("Add", [x, y], f"{stem}.residual")

    def summary_label(self):
        return f"Residual({self.layer.summary_label()})"

    def get_config(self):
        """The block as a JSON-serialisable dict (the inner layer's config nested)."""
        return {"type": "Residual", "layer": self.layer.get_config()}

    @classmethod
    def from_config(cls, cfg):
        inner = cfg.get("layer")
        if not isinstance(inner, dict):
            raise ValueError(f"a Residual config needs the inner layer's config under "
                             f"'layer', got {inner!r}")
        return cls(layer_from_config(inner))

    def __repr__(self):
        return f"Residual({self.layer!r})"


def layer_from_config(cfg):
    """Rebuild a layer from its :meth:`Layer.get_config` dict."""
    cls = LAYER_TYPES.get(cfg.get("type"))
    if cls is None:
        raise ValueError(f"unknown layer type {cfg.get('type')!r}; "
                         f"expected one of {sorted(LAYER_TYPES)}")
    return cls.from_config(cfg)
