"""nc.to_onnx: onnxruntime reproduces net.forward / predict_proba / predict
(issue 16 item 3), for every activation, Dropout, every loss and both dtypes."""

import os
import sys

import numpy as np
import pytest

import nncore as nc

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

try:                                       # every activation nncore knows
    from nncore.activations import NAMES as ACTIVATIONS
except ImportError:
    from nncore.layers import ACTIVATIONS

DTYPES = ["float32", "float64"]


def _tol(dtype, ref):
    # a few roundings per layer (GEMM sums, the activation's libm/approximation)
    return 64 * np.finfo(dtype).eps * max(1.0, float(np.abs(ref).max()))


def _run(model, X):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": X})


def _data(n, d, dtype, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_every_activation_matches_forward(act, dtype):
    net = nc.Network([nc.Dense(5, 7, activation=act), nc.Dropout(0.4),
                      nc.Dense(7, 6, activation=act), nc.Dense(6, 3)], dtype=dtype, seed=1)
    X = _data(64, 5, dtype) * 3.0                  # both signs, saturating sigmoid/tanh
    (out,) = _run(nc.to_onnx(net), X)
    ref = net.forward(X)
    assert out.dtype == ref.dtype == np.dtype(dtype) and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=_tol(dtype, ref))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["relu", "tanh", "elu"])
def test_residual_matches_forward(act, dtype, tmp_path):
    """Residual(Dense) is the inner layer's nodes and Add(x, .); first, middle and last."""
    net = nc.Network([nc.Residual(nc.Dense(5, 5, activation=act)), nc.Dense(5, 8, act),
                      nc.Residual(nc.Dense(8, 8, activation=act)), nc.Dropout(0.3),
                      nc.Dense(8, 3), nc.Residual(nc.Dense(3, 3))],
                     loss="cross_entropy", dtype=dtype, seed=2)
    X = _data(50, 5, dtype) * 2.0
    (out, labels) = _run(nc.to_onnx(net, tmp_path / "res.onnx", labels=True), X)
    ref = net.forward(X)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=_tol(dtype, ref))
    assert np.array_equal(labels, net.predict(X))
    # a layer type without an exporter inside a Residual is refused as on its own
    net.layers[2].layer.get_config = lambda: {"type": "Mystery"}
    with pytest.raises(ValueError, match="Mystery"):
        nc.to_onnx(net, tmp_path / "no.onnx")
    assert not (tmp_path / "no.onnx").exists()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss, k", [("cross_entropy", 4), ("binary_cross_entropy", 1),
                                     ("binary_cross_entropy", 3)])
def test_probabilities_and_labels_match_predict(loss, k, dtype, tmp_path):
    X = _data(200, 3, dtype)
    y = (np.argmax(X @ np.ones((3, 4)) * [1, -1, 2, -2], axis=1) if loss == "cross_entropy"
         else (X[:, :k] > 0).astype(dtype))
    net = nc.Network([nc.Dense(3, 16, "tanh"), nc.Dropout(0.1), nc.Dense(16, k)], loss=loss,
                     dtype=dtype, seed=0)
    net.fit(X, y, epochs=5, progress=False, seed=0)         # a trained model, not the init
    path = tmp_path / "net.onnx"
    model = nc.to_onnx(net, path, probabilities=True, labels=True)
    assert [o.name for o in model.graph.output] == ["outputs", "probabilities", "labels"]
    assert onnx.load(str(path)).SerializeToString() == model.SerializeToString()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["X"]
    logits, proba, labels = sess.run(None, {"X": X})
    np.testing.assert_allclose(logits, net.forward(X), rtol=0, atol=_tol(dtype, logits))
    np.testing.assert_allclose(proba, net.predict_proba(X), rtol=0, atol=_tol(dtype, 1.0))
    pred = net.predict(X)
    assert labels.dtype == np.int64 and labels.shape == pred.shape
    # labels may differ only where the decision is within rounding of a tie
    if loss == "cross_entropy":
        top2 = np.sort(logits, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > _tol(dtype, logits)
    else:
        clear = (np.abs(logits) > _tol(dtype, logits)).reshape(pred.shape)
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(labels[clear], pred[clear])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, reference", [
    ("elu", lambda s: np.where(s > 0, s, np.expm1(np.minimum(s, 0)))),
    ("softplus", lambda s: np.logaddexp(0, s)),
])
def test_activation_graphs_without_a_float64_kernel(name, reference, dtype):
    """elu and softplus are composed from primitives (onnxruntime has no float64
    Elu/Softplus); checked against their formulas before any layer uses them."""
    from nncore.activations import get as activation
    from nncore.onnx import _Graph
    et = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = _Graph(onnx, np.dtype(dtype))
    out = activation(name).onnx(graph, "S", "act")
    graph.nodes.append(onnx.helper.make_node("Identity", [out], ["Y"]))
    model = onnx.helper.make_model(
        onnx.helper.make_graph(graph.nodes, "g", [onnx.helper.make_tensor_value_info("S", et, ["N"])],
                               [onnx.helper.make_tensor_value_info("Y", et, ["N"])],
                               graph.initializers),
        opset_imports=[onnx.helper.make_opsetid("", 17)])
    s = np.linspace(-40, 40, 4001).astype(dtype)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"S": s})
    ref = reference(s.astype(np.float64))
    err = np.abs(y - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max() <= 8 * np.finfo(dtype).eps, (name, dtype, err.max())


def test_only_requested_outputs_and_opset():
    net = nc.Network([nc.Dense(2, 3)], loss="cross_entropy", seed=0)
    model = nc.to_onnx(net, labels=True)
    assert [o.name for o in model.graph.output] == ["outputs", "labels"]
    assert {op.domain: op.version for op in model.opset_import}[""] == 17
    onnx.checker.check_model(model)


@pytest.mark.parametrize("call, exc, match", [
    (lambda net: nc.to_onnx(net, probabilities=True), ValueError, "mse"),
    (lambda net: nc.to_onnx(net, labels="yes"), TypeError, "labels"),
    (lambda net: nc.to_onnx(net, opset=9), ValueError, "opset"),
    (lambda net: nc.to_onnx("not a network"), TypeError, "Network"),
])
def test_bad_arguments(call, exc, match, tmp_path):
    net = nc.Network([nc.Dense(2, 3)], seed=0)
    with pytest.raises(exc, match=match):
        call(net)


def test_unknown_layer_type_writes_nothing(tmp_path, monkeypatch):
    net = nc.Network([nc.Dense(2, 3), nc.Dense(3, 1)], seed=0)
    monkeypatch.setattr(net.layers[1], "get_config", lambda: {"type": "Mystery"})
    with pytest.raises(ValueError, match="Mystery"):
        nc.to_onnx(net, tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"nncore-train\[onnx\]"):
        nc.to_onnx(nc.Network([nc.Dense(2, 1)], seed=0))


def test_an_activation_brings_its_onnx_lowering():
    """The lowering is a slot of the activation's registry row: a row without one
    is refused, so every registered activation exports."""
    from nncore import activations as A
    row = A.REGISTRY["tanh"]
    fake = A.Activation("tanh2", len(A.NAMES), "glorot_uniform", row.forward, row.backward,
                        row.second)
    with pytest.raises(ValueError, match="ONNX lowering"):
        A.register(fake)
    assert "tanh2" not in A.REGISTRY
    assert all(callable(A.get(name).onnx) for name in A.NAMES)


# A layer brings its own ONNX form (Layer.to_onnx); nc.to_onnx only asks.
from nncore.layers import Layer, register_layer  # noqa: E402


@register_layer
class OnnxScale(Layer):
    """``y = x * s`` with a learned ``s`` of the input's width (per-step path)."""

    def __init__(self, width):
        super().__init__()
        self.width = width
        self.s = None

    @property
    def n_params(self):
        return self.width

    @property
    def input_width(self):
        return self.width

    def bind(self, params, grads):
        self.s = params

    def param_arrays(self):
        return [("s", self.s)]

    def init_params(self, rng):
        self.s[...] = rng.uniform(0.5, 2.0, self.width)

    def forward(self, be, ws, i, x, training, stream):
        return x * self.s

    def get_config(self):
        return {"type": "OnnxScale", "width": self.width}

    def to_onnx(self, graph, x, stem):
        return graph.node("Mul", [x, graph.constant(f"{stem}.s", self.s)], f"{stem}.scaled")


@register_layer
class NoOnnx(OnnxScale):
    """A registered layer that never defines to_onnx (it inherits Layer's)."""

    to_onnx = Layer.to_onnx

    def get_config(self):
        return {"type": "NoOnnx", "width": self.width}


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_new_layer_exports_by_its_own_method(dtype):
    net = nc.Network([nc.Dense(3, 4, "tanh"), OnnxScale(4), nc.Residual(OnnxScale(4)),
                      nc.Dense(4, 2)], loss="mse", dtype=dtype, seed=0)
    X = _data(20, 3, dtype)
    (out,) = _run(nc.to_onnx(net), X)
    ref = net.forward(X)
    np.testing.assert_allclose(out, ref, rtol=0, atol=_tol(dtype, ref))
    # the reference is independent of the layer's forward: the formula itself
    s1, s2 = net.layers[1].s, net.layers[2].layer.s
    h = np.tanh(X @ net.layers[0].W + net.layers[0].b) * s1
    np.testing.assert_allclose(out, (h + h * s2) @ net.layers[3].W + net.layers[3].b,
                               rtol=0, atol=_tol(dtype, ref))


@pytest.mark.parametrize("where", ["top", "residual"])
def test_a_layer_without_to_onnx_is_refused_by_name(where, tmp_path):
    layer = NoOnnx(4)
    net = nc.Network([nc.Dense(3, 4), layer if where == "top" else nc.Residual(layer),
                      nc.Dense(4, 1)], seed=0)
    with pytest.raises(ValueError, match=r"layer1 \(.*NoOnnx.*to_onnx"):
        nc.to_onnx(net, tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_an_unregistered_subclass_is_not_exported_as_its_parent(tmp_path):
    """A Dense subclass that changes forward would inherit Dense's lowering and
    save as "Dense": refused rather than exported as a different model."""
    class Doubled(nc.Dense):
        def forward(self, be, ws, i, x, training, stream):
            return 2.0 * super().forward(be, ws, i, x, training, stream)

    net = nc.Network([nc.Dense(2, 3), Doubled(3, 1)], seed=0)
    with pytest.raises(ValueError, match=r"layer1 .*'Dense'.*Doubled"):
        nc.to_onnx(net, tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []
