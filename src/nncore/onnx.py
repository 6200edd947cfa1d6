"""Export a trained network to ONNX, for serving it without nncore.

Design
------
* The graph is built with the ``onnx`` package's helper API
  (``make_node``/``make_graph``/``make_model``) at opset 17, one node group per
  layer. Each layer lowers itself (its ``to_onnx`` method, see
  :meth:`nncore.layers.Layer.to_onnx`) through the builder :class:`_Graph`,
  and each activation has its lowering in its registry row
  (``nncore.activations``, the ``onnx`` slot); this module walks the layers
  and asks them, never which class a layer is. A layer without a lowering, or
  one whose ``get_config()`` names another layer type than its class (its
  saved form would be a different model), is a clear ``ValueError`` naming
  the layer (nothing is written), never a silently different model.
* A Dense layer is ``Gemm(X, W, b)`` (``S = X @ W + b`` with ``W`` stored as
  ``(n_in, n_out)``, exactly nncore's layout) followed by its activation node;
  Dropout is the identity at inference and emits no node; ``Residual(layer)``
  is the inner layer's nodes and ``Add(x, ...)``.
* The tensors keep the network's dtype (``float32`` -> ``FLOAT``, ``float64`` ->
  ``DOUBLE``), so onnxruntime reproduces ``net.forward`` to float rounding.
* Output ``"outputs"`` is always ``net.forward``'s: raw outputs for ``"mse"``,
  logits for the cross-entropy losses. ``probabilities=True`` adds
  ``"probabilities"`` (softmax / per-output sigmoid, as ``predict_proba``) and
  ``labels=True`` adds ``"labels"`` (int64, as ``predict``).
* ``onnx`` is an optional dependency (the ``onnx`` extra), imported on use.
"""

from __future__ import annotations

import os

import numpy as np

from .layers import LAYER_TYPES

__all__ = ["to_onnx", "OPSET"]

OPSET = 17
_INSTALL_HINT = "nc.to_onnx needs the onnx package: pip install nncore-train[onnx]   (or: pip install onnx)"


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return onnx


class _Graph:
    """Nodes and initializers under construction; ``fresh`` names intermediate
    tensors. The builder a layer's ``to_onnx`` and an activation's lowering get."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.dtype = dtype
        self.nodes = []
        self.initializers = []
        self._count = 0

    def fresh(self, stem):
        self._count += 1
        return f"{stem}_{self._count}"

    def constant(self, name, array, dtype=None):
        array = np.ascontiguousarray(array, dtype or self.dtype)
        tensor = self.onnx.numpy_helper.from_array(array, name)
        self.initializers.append(tensor)
        return name

    def node(self, op, inputs, stem, **attrs):
        out = self.fresh(stem)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def layer(self, layer, x, stem):
        """Ask ``layer`` for its nodes on input ``x``; return its output tensor's name."""
        kind = layer.get_config().get("type")
        if LAYER_TYPES.get(kind) is not type(layer):
            # save() would describe another model than the one exported
            raise ValueError(f"{stem} ({layer!r}): no ONNX export for layer type {kind!r}: "
                             f"its get_config() does not name its registered class "
                             f"{type(layer).__name__} (@register_layer)")
        return layer.to_onnx(self, x, stem)


def _extra_outputs(graph, net, logits, probabilities, labels):
    """(name, tensor, element type, shape) of the requested extra outputs."""
    onnx = graph.onnx
    K = net.n_out
    out = []
    if net.loss_name == "cross_entropy":
        if probabilities:
            out.append(("probabilities", graph.node("Softmax", [logits], "softmax", axis=1),
                        None, ["N", K]))
        if labels:
            out.append(("labels", graph.node("ArgMax", [logits], "argmax", axis=1, keepdims=0),
                        onnx.TensorProto.INT64, ["N"]))
        return out
    if probabilities:
        out.append(("probabilities", graph.node("Sigmoid", [logits], "sigmoid"), None, ["N", K]))
    if labels:
        zero = graph.constant("zero", np.zeros((), graph.dtype))
        ge = graph.node("GreaterOrEqual", [logits, zero], "logit_ge_0")    # logit >= 0 means 1
        lab = graph.node("Cast", [ge], "labels", to=onnx.TensorProto.INT64)
        if K == 1:
            flat = graph.constant("flat_shape", [-1], np.int64)
            lab = graph.node("Reshape", [lab, flat], "labels_flat")
        out.append(("labels", lab, onnx.TensorProto.INT64, ["N"] if K == 1 else ["N", K]))
    return out


def to_onnx(net, path=None, *, probabilities=False, labels=False, opset=OPSET):
    """Export ``net`` as an ONNX model (inference: dropout off).

    Parameters
    ----------
    net : Network
    path : str or os.PathLike, optional
        Write the model to this file (conventionally ``*.onnx``).
    probabilities : bool, default False
        Also output ``"probabilities"`` of shape ``(N, K)``: the softmax
        (``"cross_entropy"``) or per-output sigmoid
        (``"binary_cross_entropy"``), as :meth:`Network.predict_proba`.
    labels : bool, default False
        Also output ``"labels"`` (int64) as :meth:`Network.predict`: the argmax
        ``(N,)``, or ``logit >= 0`` as 0/1, ``(N,)`` when K = 1 else ``(N, K)``.
    opset : int, default 17
        The ONNX opset of the default domain.

    Returns
    -------
    onnx.ModelProto
        One input ``"X"`` of shape ``(N, n_in)`` in the network's dtype
        (``float32`` or ``float64``), output ``"outputs"`` equal to
        ``net.forward(X)`` (raw outputs, or logits for the cross-entropy
        losses), then the requested extra outputs.

    Raises
    ------
    ImportError
        If ``onnx`` is not installed (``pip install nncore-train[onnx]``).
    ValueError
        ``probabilities``/``labels`` for an ``"mse"`` network, a layer or
        activation without an ONNX form, or a bad ``opset``.
    TypeError
        If ``net`` is not a Network.

    Examples
    --------
    >>> import nncore as nc, numpy as np, onnxruntime
    >>> net = nc.Network([nc.Dense(2, 8, activation="relu"), nc.Dense(8, 3)],
    ...                  loss="cross_entropy", seed=0)
    >>> model = nc.to_onnx(net, "net.onnx", labels=True)
    >>> sess = onnxruntime.InferenceSession("net.onnx")
    >>> X = np.ones((4, 2), np.float32)
    >>> logits, labels = sess.run(None, {"X": X})
    >>> bool(np.allclose(logits, net.forward(X), rtol=1e-5, atol=1e-6))
    True
    >>> bool((labels == net.predict(X)).all())
    True
    """
    from .network import Network

    if not isinstance(net, Network):
        raise TypeError(f"expected an nc.Network, got {type(net).__name__}")
    for name, flag in (("probabilities", probabilities), ("labels", labels)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    if (probabilities or labels) and not net.is_classifier:
        raise ValueError("probabilities/labels need a cross-entropy loss; this network uses 'mse'")
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or opset < 13:
        raise ValueError(f"opset must be an integer >= 13, got {opset!r}")
    onnx = _import_onnx()
    elem = onnx.helper.np_dtype_to_tensor_dtype(net.dtype)
    graph = _Graph(onnx, net.dtype)
    x = "X"
    for i, layer in enumerate(net.layers):      # a refusal raises before anything is written
        x = graph.layer(layer, x, f"layer{i}")
    graph.nodes.append(onnx.helper.make_node("Identity", [x], ["outputs"], name="outputs"))
    outputs = [onnx.helper.make_tensor_value_info("outputs", elem, ["N", net.n_out])]
    for name, tensor, kind, shape in _extra_outputs(graph, net, "outputs", probabilities, labels):
        graph.nodes.append(onnx.helper.make_node("Identity", [tensor], [name], name=name))
        outputs.append(onnx.helper.make_tensor_value_info(name, kind or elem, shape))
    model = onnx.helper.make_model(
        onnx.helper.make_graph(graph.nodes, "nncore_network",
                               [onnx.helper.make_tensor_value_info("X", elem, ["N", net.n_in])],
                               outputs, graph.initializers),
        opset_imports=[onnx.helper.make_opsetid("", int(opset))], producer_name="nncore")
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model
