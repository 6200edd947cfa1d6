"""The activation functions: the one place that names them.

Design
------
* Each activation is one :class:`Activation` row of :data:`REGISTRY`: its name,
  its kernel code, its default weight initialisation and its NumPy reference
  (forward, derivative, second derivative). ``Dense``, both backends, the
  scikit-learn estimators, the CLI and ``tune`` ask this module; nothing else
  compares activation names.
* The kernel code is the index the compiled kernels switch on: the ``cdef
  enum`` and the point functions ``_<name>`` / ``_<name>_grad`` in
  ``_kernels.pyx`` use the same numbers (``nncore._kernels.N_ACTIVATIONS`` must
  equal ``len(REGISTRY)``; ``backend._cython`` refuses a stale build).
* Derivatives are computed from the layer *output* ``Y = f(S)``: the training
  loops keep ``Y`` (it is the next layer's input) and not ``S``. Every entry
  says so with ``derivative_from="output"``; an activation whose derivative
  cannot be written in ``Y`` would need the loops to keep ``S`` too, and
  :func:`register` refuses it until they do.
* The NumPy functions *are* the specification the compiled point functions
  match: same operation order, each Python scalar rounded to the array dtype
  before use (NumPy 2 weak scalars), so the arithmetic ones agree bit for bit
  and the transcendental ones to the libm's last place.
* ``second(Y)`` (f'' in terms of Y) is reference-only, for the R-operator.
* ``onnx`` is the activation's ONNX lowering (``nc.to_onnx`` asks for it):
  plain calls on the exporter's graph object, so this module imports no onnx.

Adding an activation: see CONTRIBUTING.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Activation", "REGISTRY", "NAMES", "get", "by_code", "register", "sigmoid"]

LEAKY_SLOPE = 0.01        # leaky_relu's slope for s <= 0
SOFTPLUS_THRESHOLD = 20.0  # torch's softplus: s > threshold returns s itself (beta = 1)


@dataclass(frozen=True)
class Activation:
    """One activation function.

    Attributes
    ----------
    name : str
        The name users pass (``Dense(..., activation=name)``).
    code : int
        The kernel code (the compiled kernels' ``cdef enum``).
    init : str
        Default weight initialisation (``Dense(init=None)``): ``"he_uniform"``
        for relu-like units, ``"glorot_uniform"`` otherwise.
    forward : callable ``(S, out) -> None``
        ``out := f(S)``; ``out`` may be ``S``.
    backward : callable ``(Y, dY, out) -> None``
        ``out := dY * f'(S)`` computed from ``Y = f(S)``; ``out`` may be ``dY``.
    second : callable ``(Y) -> ndarray``
        ``f''(S)`` computed from ``Y`` (a new array; reference only).
    gives_logits : bool
        The output can be any real number, so a last layer with it can feed a
        loss on logits (a squashing or clipping activation cannot).
    onnx : callable ``(graph, s, stem) -> str``
        The ONNX lowering for :func:`nncore.to_onnx`: adds nodes computing
        ``f`` of tensor ``s`` through ``graph.node(op, inputs, stem, **attrs)``
        and ``graph.constant(graph.fresh(stem), value)`` (in the network's
        dtype) and returns the output tensor's name. It must compute what
        ``forward`` computes, in float32 and float64 (onnxruntime lacks some
        float64 kernels, e.g. Elu and Softplus: compose them).
    derivative_from : {"output"}
        What ``backward`` and ``second`` read: the output ``Y``.
    """

    name: str
    code: int
    init: str
    forward: Callable
    backward: Callable
    second: Callable
    gives_logits: bool = False
    derivative_from: str = "output"
    onnx: Callable = None


# --------------------------------------------------------------------------- references
# Forward ``(S, out)``, derivative ``(Y, dY, out)`` and second derivative ``(Y)``
# of each activation, as the compiled point functions compute them.

def _linear(S, out):
    if out is not S:
        np.copyto(out, S)


def _linear_grad(Y, dY, out):
    if out is not dY:
        np.copyto(out, dY)


def _zero_second(Y):
    return np.zeros_like(Y)


def _relu(S, out):
    np.maximum(S, 0, out=out)


def _relu_grad(Y, dY, out):
    np.copyto(out, np.where(Y > 0, dY, 0))   # y > 0 exactly when s > 0


def _leaky_relu(S, out):
    np.copyto(out, np.where(S > 0, S, S * LEAKY_SLOPE))


def _leaky_relu_grad(Y, dY, out):
    np.copyto(out, np.where(Y > 0, dY, dY * LEAKY_SLOPE))


def sigmoid(S, out):
    """out := 1 / (1 + exp(-S)), stably (the logistic; also the BCE link)."""
    # exp of a non-positive number only.
    e = np.exp(-np.abs(S))
    np.copyto(out, np.where(S >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))


def _sigmoid_grad(Y, dY, out):
    np.copyto(out, dY * (Y * (1 - Y)))   # the lecture's y(1 - y)


def _sigmoid_second(Y):
    return Y * (1 - Y) * (1 - 2 * Y)


def _tanh(S, out):
    np.tanh(S, out=out)


def _tanh_grad(Y, dY, out):
    np.copyto(out, dY * (1 - Y * Y))


def _tanh_second(Y):
    return -2 * Y * (1 - Y * Y)


def _elu(S, out):
    # torch.nn.functional.elu with alpha = 1: s for s > 0, expm1(s) otherwise.
    with np.errstate(over="ignore"):     # expm1 of a large s is not selected
        np.copyto(out, np.where(S > 0, S, np.expm1(S)))


def _elu_grad(Y, dY, out):
    # f'(s) = exp(s) = y + 1 for s <= 0 (torch's backward from the result).
    np.copyto(out, np.where(Y > 0, dY, dY * (Y + 1)))


def _elu_second(Y):
    return np.where(Y > 0, 0, Y + 1)


def _softplus(S, out):
    # torch.nn.functional.softplus (beta 1, threshold 20): s above the
    # threshold, else log1p(exp(s)).
    with np.errstate(over="ignore"):     # exp of s > 20 is not selected
        np.copyto(out, np.where(S > SOFTPLUS_THRESHOLD, S, np.log1p(np.exp(S))))


def _softplus_grad(Y, dY, out):
    # f'(s) = sigmoid(s) = 1 - exp(-y), as -expm1(-y) (no cancellation for
    # small y); 1 above the threshold, as torch (y > 20 exactly when s > 20,
    # up to a sliver of width exp(-20) below it).
    np.copyto(out, np.where(Y > SOFTPLUS_THRESHOLD, dY, dY * -np.expm1(-Y)))


def _softplus_second(Y):
    p = -np.expm1(-Y)    # sigmoid(s)
    return np.where(Y > SOFTPLUS_THRESHOLD, 0, p * np.exp(-Y))


# --------------------------------------------------------------------------- ONNX lowerings
# ``(graph, s, stem) -> output tensor`` for nncore.onnx: each computes what the
# reference above computes (tests/test_onnx.py runs every registered activation).

def _onnx_op(op_type):
    """The lowering of an activation that is one ONNX operator."""
    return lambda graph, s, stem: graph.node(op_type, [s], stem)


def _onnx_linear(graph, s, stem):
    return s


def _onnx_leaky_relu(graph, s, stem):
    # max(s, 0.01 s), not LeakyRelu: its alpha is a float32 attribute, which
    # would change float64 results in the 9th digit. For a slope < 1 the max
    # picks s for s > 0 and the same product 0.01 s that nncore computes otherwise.
    slope = graph.constant(graph.fresh(stem + ".slope"), LEAKY_SLOPE)
    return graph.node("Max", [s, graph.node("Mul", [s, slope], stem + ".scaled")], stem)


def _onnx_elu(graph, s, stem):
    # where(s > 0, s, exp(min(s, 0)) - 1): onnxruntime has no float64 Elu
    # kernel; min() keeps exp of the unused branch from overflowing.
    zero = graph.constant(graph.fresh(stem + ".zero"), 0.0)
    one = graph.constant(graph.fresh(stem + ".one"), 1.0)
    neg = graph.node("Min", [s, zero], stem + ".neg")
    em1 = graph.node("Sub", [graph.node("Exp", [neg], stem + ".exp"), one], stem + ".expm1")
    return graph.node("Where", [graph.node("Greater", [s, zero], stem + ".pos"), s, em1], stem)


def _onnx_softplus(graph, s, stem):
    # max(s, 0) + log(1 + exp(-|s|)), the overflow-free form; onnxruntime has
    # no float64 Softplus kernel.
    one = graph.constant(graph.fresh(stem + ".one"), 1.0)
    e = graph.node("Exp", [graph.node("Neg", [graph.node("Abs", [s], stem + ".abs")],
                                      stem + ".negabs")], stem + ".exp")
    tail = graph.node("Log", [graph.node("Add", [one, e], stem + ".onep")], stem + ".log1p")
    return graph.node("Add", [graph.node("Relu", [s], stem + ".relu"), tail], stem)


# --------------------------------------------------------------------------- registry

REGISTRY = {}
_BY_CODE = []


def register(act):
    """Add ``act`` to the registry (its code must be the next free one)."""
    if act.name in REGISTRY:
        raise ValueError(f"activation {act.name!r} is already registered")
    if act.code != len(_BY_CODE):
        raise ValueError(f"activation {act.name!r} has code {act.code}; the next free "
                         f"code is {len(_BY_CODE)} (codes index the compiled kernels)")
    if act.derivative_from != "output":
        raise ValueError(f"activation {act.name!r}: the training loops keep only the "
                         "layer output, so derivatives must be computed from it")
    if act.init not in ("he_uniform", "glorot_uniform"):
        raise ValueError(f"activation {act.name!r}: unknown default init {act.init!r}")
    if not callable(act.onnx):
        raise ValueError(f"activation {act.name!r} needs its ONNX lowering "
                         "(onnx=(graph, s, stem) -> tensor; see Activation)")
    REGISTRY[act.name] = act
    _BY_CODE.append(act)
    return act


for _row in (
        Activation("linear", 0, "glorot_uniform", _linear, _linear_grad, _zero_second,
                   gives_logits=True, onnx=_onnx_linear),
        Activation("relu", 1, "he_uniform", _relu, _relu_grad, _zero_second,
                   onnx=_onnx_op("Relu")),
        Activation("leaky_relu", 2, "he_uniform", _leaky_relu, _leaky_relu_grad, _zero_second,
                   gives_logits=True, onnx=_onnx_leaky_relu),
        Activation("sigmoid", 3, "glorot_uniform", sigmoid, _sigmoid_grad, _sigmoid_second,
                   onnx=_onnx_op("Sigmoid")),
        Activation("tanh", 4, "glorot_uniform", _tanh, _tanh_grad, _tanh_second,
                   onnx=_onnx_op("Tanh")),
        Activation("elu", 5, "he_uniform", _elu, _elu_grad, _elu_second, onnx=_onnx_elu),
        Activation("softplus", 6, "he_uniform", _softplus, _softplus_grad, _softplus_second,
                   onnx=_onnx_softplus),
):
    register(_row)
del _row

NAMES = tuple(REGISTRY)


def get(name):
    """The :class:`Activation` called ``name`` (``ValueError`` if unknown)."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(REGISTRY)}")
    return REGISTRY[name]


def by_code(code):
    """The :class:`Activation` with kernel code ``code`` (``ValueError`` if none)."""
    if (not isinstance(code, (int, np.integer)) or isinstance(code, (bool, np.bool_))
            or not 0 <= code < len(_BY_CODE)):
        raise ValueError(f"unknown activation code {code!r} (expected 0..{len(_BY_CODE) - 1})")
    return _BY_CODE[int(code)]
