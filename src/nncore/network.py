"""Dense networks over one flat parameter buffer.

Design
------
* ``Network`` owns exactly two 1-D arrays, ``params`` and ``grads``, laid out
  layer by layer (each Dense layer's ``W`` in C order, then ``b``). Every
  layer's ``W``, ``b``, ``dW`` and ``db`` are reshaped *views* into them, so an
  optimizer updating ``params`` in place updates the layers, and writing
  ``net.params[:] = v`` changes the network.
* Each layer owns its slice of the buffers and its passes (the protocol in
  :mod:`nncore.layers`); ``Network`` lays the layers out, runs them in
  order and computes the loss. All arithmetic goes through
  ``nncore.backend.current()``; this module only allocates and routes buffers.
* Activations, masks and deltas live in per-thread, per-row-count workspaces
  allocated once and reused (a small LRU cache per thread keyed by the
  number of rows), so a training step allocates no arrays in the steady
  state and threads never share a buffer. Large inputs are evaluated in
  chunks of rows to bound memory; chunked losses and gradients are combined
  with weights ``n_chunk / N``.
* Thread safety: ``forward``, ``predict*``, ``loss`` and ``loss_and_gradient``
  may run from several threads at once (``loss_and_gradient`` writes into a
  buffer of its own, then copies it whole into ``grads`` under a lock);
  ``forward(training=True)`` takes masks from the network's stream one call
  at a time; a second concurrent ``fit`` raises ``RuntimeError``.
* Every public method validates its arguments completely before it touches
  any state: bad input raises ``ValueError``/``TypeError`` and changes nothing.
* Dropout masks come from the backend's counter-based generator: a mask is a
  function of ``(seed, counter)`` only, so runs are reproducible and both
  backends draw identical masks.
"""

from __future__ import annotations

import threading

import numpy as np

from . import _dask
from . import backend as _backend
from . import losses as _losses
from .activations import get as _activation
from ._checks import (DTYPES, _as_numeric, _resolve_dtype, all_finite, check_fits_dtype,
                      check_X, integer)
from ._mlp import mlp_config
from ._modelfile import write_model
from ._weights import check_sample_weight, combine
from ._workspace import WorkspaceCache
from .errors import InvalidParameterError
from .layers import DropoutStream, Layer, layer_from_config
from .regularizers import Regularizer, regularizer_from_config

__all__ = ["Network"]



# Elements per workspace buffer row-chunk: bounds the memory of evaluating a
# large X (about 8 * budget bytes per activation buffer in float64).
_CHUNK_BUDGET = 1 << 22
_WS_CACHE = 8

def _check_logit_output(loss, layers):
    """Raise if the output layer's activation makes non-logits for a loss on logits.

    An output activation that squashes or clips (``gives_logits=False`` in the
    activation registry) under a loss that applies the softmax / sigmoid itself
    trains a model that cannot be confident, e.g. ~50 % accuracy for a sigmoid
    output under BCE.
    """
    if loss.link is None:
        return
    # The outputs come from the last layer with parameters (a Dropout after
    # it is the identity at inference).
    learned = [(i, layer) for i, layer in enumerate(layers) if layer.n_params]
    if not learned:
        return
    i, layer = learned[-1]
    act = getattr(layer, "activation", None)
    if act is not None and not _activation(act).gives_logits:
        raise ValueError(
            f"loss={loss.name!r} takes logits, but the last layer (layer {i}, {layer!r}) applies "
            f"{act!r}; use a linear last layer (activation='linear', the default): "
            f"the loss applies the {loss.link} itself and predict_proba returns the probabilities")


# --------------------------------------------------------------------------- network

def _check_layers(layers):
    """The layers as a list, each a fresh :class:`Layer` used once."""
    if isinstance(layers, Layer):
        raise InvalidParameterError("layers must be a list of layers, got a single layer; wrap it in [ ]")
    try:
        layers = list(layers)
    except TypeError:
        raise InvalidParameterError(f"layers must be a list of layers, got {type(layers).__name__}") from None
    if not layers:
        raise ValueError("a Network needs at least one layer")
    seen = set()
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise InvalidParameterError(f"layer {i} is {type(layer).__name__}, expected an nncore "
                                        "layer such as nc.Dense or nc.Dropout")
        if id(layer) in seen:
            raise ValueError(f"layer {i} appears twice in the list; create a new layer instead")
        if layer._owner is not None:
            raise ValueError(f"layer {i} ({layer!r}) already belongs to another Network; "
                             "create a new layer instead")
        seen.add(id(layer))
    return layers


def _chain_widths(layers):
    """``(n_in, n_out)`` of the stack; ``ValueError`` when widths do not chain."""
    n_in = width = None
    last = None      # (index, layer) of the last layer with a fixed input width
    for i, layer in enumerate(layers):
        need = layer.input_width
        if need is not None:
            if width is None:
                n_in = need
            elif need != width:
                j, prev = last
                raise ValueError(f"layer sizes do not chain: layer {j} {prev!r} has n_out={width} "
                                 f"but layer {i} {layer!r} has n_in={need}")
            last = (i, layer)
        if width is not None or need is not None:
            width = layer.output_width(need if width is None else width)
    if n_in is None:
        raise ValueError("a Network needs at least one layer with a fixed input width "
                         "(such as nc.Dense)")
    return n_in, width


class Network:
    """A feed-forward stack of layers (:class:`Dense`, :class:`Dropout`, any
    :class:`~nncore.layers.Layer`).

    Parameters
    ----------
    layers : sequence of Layer
        Consecutive widths must chain (``n_out`` of one Dense equals ``n_in``
        of the next; Dropout passes widths through).
    loss : {"mse", "cross_entropy", "binary_cross_entropy"}
        The data loss (lecture conventions). The cross-entropies take logits:
        a last Dense layer with a ``sigmoid``, ``tanh`` or ``relu`` activation
        under them is a ``ValueError`` (use a linear last layer;
        ``predict_proba`` applies the softmax / sigmoid).
    regularizer : None, L1, L2 or ElasticNet
        Weights-only penalty added to the loss.
    dtype : {"float32", "float64"}
        Floating type of parameters and computation.
    seed : int or None
        Seed of the weight initialisation.

    Attributes
    ----------
    params, grads : ndarray
        The flat parameter and gradient buffers (every layer holds views).
    layers : list
    loss_name : str
    dtype : numpy.dtype
    n_in, n_out, n_params : int
    stop_training : bool
        Set by a callback to end :meth:`fit` after the current epoch.
    history_ : History or None
        History of the last :meth:`fit` (also kept when it was interrupted).
    metadata : dict
        Free-form JSON-serialisable data saved with the model.
    """

    def __init__(self, layers, *, loss="mse", regularizer=None, dtype="float32", seed=None):
        layers = _check_layers(layers)
        n_in, n_out = _chain_widths(layers)
        loss_spec = _losses.get(loss)
        loss_spec.check_n_outputs(n_out)
        _check_logit_output(loss_spec, layers)
        if regularizer is not None and not isinstance(regularizer, Regularizer):
            raise InvalidParameterError(f"regularizer must be None, nc.L1, nc.L2 or nc.ElasticNet, "
                            f"got {regularizer!r}")
        dt = _resolve_dtype(dtype)
        seed = integer(seed, "seed", low=0, allow_none=True)

        # ---- all checks passed: build
        self.layers = layers
        self.loss_name = loss
        self._loss = loss_spec
        self.regularizer = regularizer
        self.dtype = dt
        self.seed = seed
        self.n_in = n_in
        self.n_out = n_out
        self.stop_training = False
        self.history_ = None
        self.metadata = {}
        self._bind_layers()
        self._ws = WorkspaceCache(len(layers), n_out, dt, _WS_CACHE)
        widths, width = 0, n_in
        for layer in layers:
            widths += layer.workspace_width(width)
            width = layer.output_width(width)
        self._chunk_rows = max(1, _CHUNK_BUDGET // widths)
        rng = np.random.default_rng(seed)
        for layer in layers:
            layer.init_params(rng)
        # Dropout masks drawn by forward(training=True) outside fit.
        ss = np.random.SeedSequence(seed)
        self._drop_seed = int(ss.generate_state(1, np.uint64)[0])
        self._drop_counter = 0
        self._stream_lock = threading.Lock()   # the dropout counter of forward(training=True)
        self._grads_lock = threading.Lock()    # copies into net.grads by loss_and_gradient
        self._fit_lock = threading.Lock()      # one fit at a time

    def _bind_layers(self):
        """Lay the layers out in the flat buffers; each takes views of its slice."""
        total = sum(layer.n_params for layer in self.layers)
        self._params = np.zeros(total, self.dtype)
        self._grads = np.zeros(total, self.dtype)
        self._slices = []
        segs = []
        off = 0
        for layer in self.layers:
            end = off + layer.n_params
            layer._offset = off
            layer._owner = self
            layer.bind(self._params[off:end], self._grads[off:end])
            segs.extend((off + a, off + b) for a, b in layer.penalized_ranges())
            self._slices.append((off, end))
            off = end
        self._segments = np.asarray(segs, dtype=np.int64).reshape(-1, 2)
        # Layer i passes a gradient down only when a layer below it has parameters.
        below = 0
        self._needs_dx = []
        for layer in self.layers:
            self._needs_dx.append(below > 0)
            below += layer.n_params

    # ------------------------------------------------------------------ buffers

    @property
    def params(self):
        """The flat parameter buffer itself (assigning copies into it)."""
        return self._params

    @params.setter
    def params(self, value):
        self._params[:] = self._check_vector(value, "params")

    @property
    def grads(self):
        """The flat gradient buffer itself (written by every backward pass)."""
        return self._grads

    @grads.setter
    def grads(self, value):
        self._grads[:] = self._check_vector(value, "grads")

    @property
    def n_params(self):
        return self._params.shape[0]

    @property
    def is_classifier(self):
        return self._loss.is_classifier

    def _check_vector(self, value, name):
        v = _as_numeric(value, name)
        if v.shape != self._params.shape:
            raise ValueError(f"{name} must have shape {self._params.shape}, got {v.shape}")
        if not all_finite(v):
            raise ValueError(f"{name} contains NaN or infinite values")
        check_fits_dtype(v, self.dtype, name)
        return v

    @property
    def has_dropout(self):
        """True when the training forward pass is random (a Dropout with rate > 0)."""
        return any(layer.is_stochastic for layer in self.layers)

    def _workspace(self, n):
        """This thread's buffers for ``n`` rows."""
        return self._ws.get(n)

    def _loop_layers(self):
        """The network as the compiled epoch loop's layer tuples, or ``None`` when a
        layer runs on the per-step path only."""
        specs = []
        width = self.n_in
        for layer in self.layers:
            mine = layer.loop_specs(width)
            if mine is None:
                return None
            specs.extend(mine)
            width = layer.output_width(width)
        return specs

    # ------------------------------------------------------------------ validation

    def _check_X(self, X, name="X"):
        """Validated 2-D C-contiguous float32/float64 view (or converted copy) of X."""
        return check_X(X, self.n_in, self.dtype, name)

    def _check_y(self, y, n, name="y"):
        """Validated targets: int64 labels (N,) for cross-entropy labels, else (N, K) floats."""
        arr = _as_numeric(y, name)
        K = self.n_out
        if arr.ndim == 0 or arr.ndim > 2:
            raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n}")
        if arr.shape[0] == 0:
            raise ValueError(f"{name} is empty")
        if not all_finite(arr):
            raise ValueError(f"{name} contains NaN or infinite values")
        check_fits_dtype(arr, self.dtype, name)
        if self._loss.takes_labels(arr):
            return self._loss.check_labels(arr, K, name)
        if arr.ndim == 1:
            if K != 1:
                raise ValueError(f"{name} has shape {arr.shape}; with {K} outputs pass {name} "
                                 f"of shape ({n}, {K})")
            arr = arr.reshape(-1, 1)
        if arr.shape[1] != K:
            raise ValueError(f"{name} has {arr.shape[1]} columns but the network has {K} outputs")
        self._loss.check_values(arr, name)
        if arr.dtype not in DTYPES.values():
            arr = np.ascontiguousarray(arr, dtype=self.dtype)
        elif not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        return arr

    # ------------------------------------------------------------------ core passes

    def _input_chunk(self, ws, X, s, e):
        xc = X[s:e]
        if xc.dtype == self.dtype:
            return xc
        buf = ws.buf("x", (ws.n, self.n_in), self.dtype)
        np.copyto(buf, xc)
        return buf

    def _target_chunk(self, ws, T, s, e):
        tc = T[s:e]
        if tc.ndim == 1 or tc.dtype == self.dtype:
            return tc
        buf = ws.buf("t", (ws.n, self.n_out), self.dtype)
        np.copyto(buf, tc)
        return buf

    def _forward_ws(self, ws, x, training, stream):
        be = _backend.current()
        h = x
        for i, layer in enumerate(self.layers):
            h = layer.forward(be, ws, i, h, training, stream)
        return h

    def _backward_ws(self, ws, training, grads):
        """Backward pass from ``ws.gout``; parameter gradients into the flat ``grads``."""
        be = _backend.current()
        g = ws.gout
        for i in range(len(self.layers) - 1, -1, -1):
            start, end = self._slices[i]
            need_dx = self._needs_dx[i]
            g = self.layers[i].backward(be, ws, i, g, training, grads[start:end], need_dx)
            if not need_dx:
                break

    def _data_loss(self, out, t, grad, weight=None):
        return self._loss.value_and_grad(_backend.current(), out, t, grad, weight)

    def _count_correct(self, ws, out, t):
        """Correct predictions in a chunk, into the workspace's scratch buffers."""
        return self._loss.count_correct(
            out, t, lambda key, shape, dtype: ws.buf(("count", key), shape, dtype))

    def _loss_grad(self, X, T, *, training=False, grad=True, seed=0, counter=0,
                   count=False, acc=None, grads=None, weight=None):
        """Mean data loss over validated (X, T), optionally the gradient into ``grads``.

        ``grads`` is the flat gradient buffer to write (default the network's
        own ``grads``; callers from several threads pass their own). Returns
        ``(data_loss, n_correct, counter)``. Regularisation is *not* included
        (see :meth:`_penalty`). Rows beyond ``_chunk_rows`` are processed in
        chunks; their gradients are combined with weights ``n_chunk / N`` in
        ``acc`` (a scratch buffer of the params' shape). ``weight``: float64
        row coefficients over all of X (:func:`nncore.losses.row_coefficients`)
        for the weighted loss; chunks then simply add up.
        """
        if grads is None:
            grads = self._grads
        stream = DropoutStream(seed, counter)
        N = X.shape[0]
        cr = self._chunk_rows
        if N <= cr:
            J, correct = self._chunk_loss_grad(X, T, 0, N, training, grad, stream, count, grads,
                                               weight)
            return J, correct, stream.counter
        J = 0.0
        correct = 0
        if grad:
            if acc is None:
                acc = np.zeros_like(self._params)
            else:
                acc.fill(0.0)
        for s in range(0, N, cr):
            e = min(s + cr, N)
            w = (e - s) / N if weight is None else 1.0
            Jc, c = self._chunk_loss_grad(X, T, s, e, training, grad, stream, count, grads,
                                          weight)
            J += w * Jc
            correct += c
            if grad:
                if weight is None:
                    grads *= w
                acc += grads
        if grad:
            np.copyto(grads, acc)
        return J, correct, stream.counter

    def _chunk_loss_grad(self, X, T, s, e, training, grad, stream, count, grads, weight=None):
        """``(loss, n_correct)`` of rows ``s:e``; with ``grad`` their gradient into ``grads``."""
        ws = self._workspace(e - s)
        x = self._input_chunk(ws, X, s, e)
        t = self._target_chunk(ws, T, s, e)
        out = self._forward_ws(ws, x, training, stream)
        J = self._data_loss(out, t, ws.gout if grad else None,
                            None if weight is None else weight[s:e])
        correct = self._count_correct(ws, out, t) if count else 0
        if grad:
            self._backward_ws(ws, training, grads)
        return J, correct

    def _penalty(self, grad, grads=None):
        """Regularisation penalty; with ``grad`` its gradient is added to ``grads``
        (default the network's own)."""
        reg = self.regularizer
        if reg is None or (reg.l1 == 0.0 and reg.l2 == 0.0):
            return 0.0
        if grad and grads is None:
            grads = self._grads
        return _backend.current().regularize(
            self._params, grads if grad else None, self._segments, reg.l1, reg.l2)

    def _outputs(self, X, training=False):
        """Raw outputs for a validated X, evaluated in chunks (a new array)."""
        if training:
            # The network's own dropout stream: one pass at a time takes masks from it.
            with self._stream_lock:
                stream = DropoutStream(self._drop_seed, self._drop_counter)
                result = self._outputs_with(X, True, stream)
                self._drop_counter = stream.counter
            return result
        return self._outputs_with(X, False, None)

    def _outputs_with(self, X, training, stream):
        N = X.shape[0]
        result = np.empty((N, self.n_out), self.dtype)
        cr = self._chunk_rows
        for s in range(0, N, cr):
            e = min(s + cr, N)
            ws = self._workspace(e - s)
            x = self._input_chunk(ws, X, s, e)
            result[s:e] = self._forward_ws(ws, x, training, stream)
        return result

    def _accuracy(self, X, T):
        """Accuracy over validated (X, T) in inference mode (classifiers only)."""
        _, correct, _ = self._loss_grad(X, T, grad=False, count=True)
        return correct / self._loss.n_judged(X.shape[0], self.n_out)

    # ------------------------------------------------------------------ public API

    def forward(self, X, training=False):
        """Network outputs for ``X`` of shape ``(N, n_in)``.

        Parameters
        ----------
        X : array_like, shape (N, n_in)
        training : bool
            Apply dropout (fresh masks from the network's own stream).

        Returns
        -------
        ndarray, shape (N, n_out)
            Raw outputs for ``"mse"``, logits for the cross-entropy losses.
        """
        if _dask.is_chunked(X) and not training:    # lazy, chunk by chunk
            return _dask.predict(self, X, "forward")
        X = self._check_X(X)
        return self._outputs(X, training=bool(training))

    def predict(self, X):
        """Class labels for the cross-entropy losses, outputs for ``"mse"``.

        Parameters
        ----------
        X : array_like, shape (N, n_in)

        Returns
        -------
        ndarray
            ``"mse"``: ``(N, K)``, or ``(N,)`` when K = 1. ``"cross_entropy"``:
            int64 labels ``(N,)`` (argmax). ``"binary_cross_entropy"``: 0/1 int64
            (``logit >= 0`` means 1), ``(N,)`` when K = 1 else ``(N, K)``.

        Raises
        ------
        ValueError, TypeError
            If ``X`` has the wrong shape, is empty, non-finite or non-numeric.
        """
        if _dask.is_chunked(X):
            return _dask.predict(self, X, "predict")
        return self._loss.predict(self.forward(X))

    def predict_proba(self, X):
        """Class probabilities for the cross-entropy losses.

        Parameters
        ----------
        X : array_like, shape (N, n_in)

        Returns
        -------
        ndarray, shape (N, K)
            Softmax rows (``"cross_entropy"``) or per-output sigmoids
            (``"binary_cross_entropy"``).

        Raises
        ------
        ValueError
            If the network's loss is ``"mse"``, or ``X`` is invalid (as in
            :meth:`predict`).
        """
        if not self._loss.is_classifier:
            raise ValueError(f"predict_proba needs a cross-entropy loss; this network uses "
                             f"{self.loss_name!r}")
        if _dask.is_chunked(X):
            return _dask.predict(self, X, "predict_proba")
        out = self.forward(X)
        self._loss.probabilities(_backend.current(), out)
        return out

    def loss(self, X, y, sample_weight=None):
        """Data loss plus regularisation penalty, dropout off.

        Parameters
        ----------
        X : array_like, shape (N, n_in)
        y : array_like
            Targets in the layout of the loss: ``(N, K)`` or ``(N,)`` for
            ``"mse"`` (K = 1) and ``"binary_cross_entropy"``; int labels
            ``(N,)`` or probability rows ``(N, K)`` for ``"cross_entropy"``.
        sample_weight : array_like, shape (N,), optional
            Non-negative weights: the data loss is ``sum w_n l_n / sum w_n``
            instead of the mean (as in :meth:`fit`).

        Returns
        -------
        float

        Raises
        ------
        ValueError, TypeError
            If ``X``, ``y`` or ``sample_weight`` has the wrong shape, is empty,
            non-finite, non-numeric or (labels) out of range.
        """
        if _dask.is_chunked(X) or _dask.is_chunked(y):
            return _dask.loss(self, X, y, sample_weight)
        X = self._check_X(X)
        T = self._check_y(y, X.shape[0])
        weight = self._row_coefficients(sample_weight, X.shape[0])
        J, _, _ = self._loss_grad(X, T, grad=False, weight=weight)
        return float(J + self._penalty(False))

    def _row_coefficients(self, sample_weight, n):
        """Checked ``sample_weight`` as row coefficients, or None (unweighted)."""
        if sample_weight is None:
            return None
        w = combine(check_sample_weight(sample_weight, n), None)
        return None if w is None else _losses.row_coefficients(w)

    def loss_and_gradient(self, X, y, sample_weight=None):
        """The loss and its gradient with respect to the flat parameters, dropout off.

        Parameters
        ----------
        X, y, sample_weight : array_like
            As in :meth:`loss`.

        Returns
        -------
        loss : float
            The value :meth:`loss` returns.
        gradient : ndarray, shape (n_params,)
            The flat gradient (the layout of ``params``), a new array; it is
            also copied into ``net.grads`` (except while another thread fits
            the network). Safe to call from several threads at once.

        Raises
        ------
        ValueError, TypeError
            As :meth:`loss`.
        """
        if _dask.is_chunked(X) or _dask.is_chunked(y):
            return _dask.loss_and_gradient(self, X, y, sample_weight)
        X = self._check_X(X)
        T = self._check_y(y, X.shape[0])
        # The gradient goes into a buffer of this call (threads never share
        # one), then whole into net.grads, unless a fit owns net.grads now.
        weight = self._row_coefficients(sample_weight, X.shape[0])
        grads = np.zeros_like(self._params)
        J, _, _ = self._loss_grad(X, T, grad=True, grads=grads, weight=weight)
        J += self._penalty(True, grads)
        if not self._fit_lock.locked():
            with self._grads_lock:
                np.copyto(self._grads, grads)
        return float(J), grads

    def hvp(self, X, y, v):
        """Exact Hessian-vector product of :meth:`loss` (R-operator), float64.

        Parameters
        ----------
        X, y : array_like
            As in :meth:`loss`.
        v : array_like, shape (n_params,) or (m, n_params)
            Direction(s) in the layout of ``params``.

        Returns
        -------
        ndarray, float64, the shape of ``v``
        """
        from .curvature import hvp
        return hvp(self, X, y, v)

    def gnvp(self, X, y, v):
        """Generalised Gauss–Newton product ``J^T H_loss J v`` (plus the L2
        penalty's Hessian), float64.

        Parameters
        ----------
        X, y : array_like
            As in :meth:`loss`.
        v : array_like, shape (n_params,) or (m, n_params)
            Direction(s) in the layout of ``params``.

        Returns
        -------
        ndarray, float64, the shape of ``v``
        """
        from .curvature import gnvp
        return gnvp(self, X, y, v)

    def hessian(self, X, y):
        """Exact ``(n_params, n_params)`` float64 Hessian of :meth:`loss`
        (penalty included, dropout off), from batched Hessian-vector products.

        Parameters
        ----------
        X, y : array_like
            As in :meth:`loss`.

        Returns
        -------
        ndarray, shape (n_params, n_params), float64

        Raises
        ------
        ValueError
            Bad data (as :meth:`loss`) or a non-finite Hessian.
        """
        from .curvature import hessian
        return hessian(self, X, y)

    def jacobian(self, X):
        """Jacobian of the outputs (raw outputs / logits), float64, built in row blocks.

        Parameters
        ----------
        X : array_like, shape (N, n_in)

        Returns
        -------
        ndarray, shape (N * K, n_params)
            Rows sample-major: row ``i * K + k`` is ``d out[i, k] / d params``.
        """
        from .curvature import jacobian
        return jacobian(self, X)

    def fit(self, X, y, *, optimizer="adam", batch_size=None, epochs=10, shuffle=True,
            validation_data=None, validation_split=0.0, validation_shuffle=False,
            callbacks=(), augment=None, progress=None, seed=None, test_data=None,
            sample_weight=None, class_weight=None):
        """Train the network on ``(X, y)``.

        Parameters
        ----------
        X : array_like, shape (N, n_in)
        y : array_like
            Targets in the layout of the network's loss (see :meth:`loss`).
        optimizer : str or optimizer instance, default "adam"
            A name (``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adagrad"``,
            ``"rmsprop"``, ``"adam"``, ``"adamw"``, ``"cg"``, ``"newton"``,
            ``"bfgs"``, ``"dfp"``, ``"lbfgs"``, ...: any name of
            :func:`nncore.optim.get`) or an instance. An instance keeps its
            state between calls to ``fit``.
        batch_size : "full", int or None
            ``"full"``: one step per epoch on the whole set; ``1``: stochastic;
            ``k``: mini-batches of k consecutive rows of the epoch's order (the
            last one may be smaller). ``None``: 32, or ``"full"`` for
            full-batch optimizers (for which an int is an error).
        epochs : int, default 10
        shuffle : bool, default True
            Shuffle the order every epoch (seeded by ``seed``).
        validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val), optional
            Evaluated after every epoch (``val_loss``, ``val_accuracy``);
            takes precedence over ``validation_split``. With weights (as
            Keras) ``val_loss`` is the weighted mean loss and
            ``val_accuracy`` the weighted share of correct predictions.
        validation_split : float in [0, 1)
            Hold out this fraction of the rows: the *last* ones (as Keras,
            without copying), or a random stratified draw with
            ``validation_shuffle``.
        validation_shuffle : bool, default False
            Draw the ``validation_split`` rows at random (seeded by ``seed``)
            instead of taking the last ones; for single-label classifiers the
            draw is stratified, so every class keeps its share in both parts
            (needed when the data are sorted by class).
        callbacks : sequence of nc.callbacks.Callback
        augment : callable (X_batch, rng) -> X_batch, optional
            Applied to each gathered batch (never to the caller's array).
        progress : bool or None
            tqdm progress bar per epoch; ``None`` shows it only on a terminal.
        seed : int or None
            Fixes shuffling, the validation draw, dropout masks and
            augmentation. With the same network seed, data and thread count,
            results are bit-identical.
        test_data : (X_test, y_test) or (X_test, y_test, sample_weight_test), optional
            Evaluated after every epoch (``test_loss``, ``test_accuracy``) for
            the record only, as MATLAB's test split: training never uses it.
        sample_weight : array_like, shape (N,), optional
            Non-negative weight per row of ``X`` (finite, not all zero). Each
            step's data loss is ``sum w_n l_n / sum w_n`` over its batch (full
            batch: over the set), so integer weights train like repeated rows
            (exactly so, to rounding, for full-batch methods); a mini-batch whose
            weights are all zero has no data loss. Levenberg–Marquardt and
            Bayesian regularisation scale the rows of ``J`` and ``e`` by ``sqrt(w)``.
            With ``validation_split`` the held-out rows keep their weights for the
            validation metrics.
        class_weight : dict or "balanced", optional
            Multiplies each training row's weight by the weight of its class
            (its label; the argmax of a probability row; 0/1 for one-output
            binary cross-entropy): ``{label: weight}`` (classes not named weigh
            1) or ``"balanced"``, scikit-learn's ``n_samples / (n_classes *
            count(class))`` over the classes present. Single-label classifiers
            only; not applied to validation data.

        Returns
        -------
        History
            ``history`` lists per epoch: ``"loss"`` (mean of the step losses, each
            the batch's mean data loss plus the full penalty; for full-batch
            optimizers the whole-set loss after the iteration), ``"accuracy"``
            (classifiers; the running accuracy of the training batches as in
            Keras, or the whole-set accuracy for full-batch optimizers),
            ``"val_loss"``/``"val_accuracy"`` with validation data, ``"lr"`` (the
            epoch's rate; for full-batch optimizers the accepted step length),
            ``"time"`` (seconds since training started), ``"test_loss"``/
            ``"test_accuracy"`` with ``test_data``, ``"val_fail"`` with validation
            data (epochs since ``val_loss`` last reached a new minimum, MATLAB's
            validation checks), ``"grad_norm"`` (L2 norm of the gradient: for
            full-batch optimizers at the new point; for the others the last
            batch's gradient, before clipping), ``"step_norm"`` (L2 norm of the
            parameter change over the epoch) and, for full-batch optimizers,
            cumulative ``"nfev"``/``"ngev"`` and whatever the optimizer reports in
            ``info["log"]`` (e.g. ``"mu"``).

        Raises
        ------
        ValueError, TypeError
            Bad arguments or data (nothing is changed).
        nncore.DivergenceError
            A step's loss, or the parameters an update made, became NaN/inf (the
            error's ``loss`` is then NaN), the last step included. The network
            keeps the parameters of the last step whose loss was finite (the point
            that loss was computed at).
        KeyboardInterrupt
            Re-raised after restoring the last completed step; the history so
            far is in ``net.history_`` (``stop_reason="interrupted"``).
        RuntimeError
            Another thread is fitting this network.

        See Also
        --------
        nncore.training.fit : the same, as a function of the network.
        """
        from .training import fit
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError("this network is being fitted by another thread; fit a copy "
                               "(net.copy()) to train in parallel")
        try:
            return fit(self, X, y, optimizer=optimizer, batch_size=batch_size, epochs=epochs,
                       shuffle=shuffle, validation_data=validation_data,
                       validation_split=validation_split,
                       validation_shuffle=validation_shuffle, callbacks=callbacks,
                       augment=augment, progress=progress, seed=seed,
                       test_data=test_data, sample_weight=sample_weight,
                       class_weight=class_weight)
        finally:
            self._fit_lock.release()

    def evaluate(self, X, y, sample_weight=None):
        """The loss and metrics on ``(X, y)``, dropout off (as ``fit`` logs them).

        Parameters
        ----------
        X, y, sample_weight : array_like
            As in :meth:`loss`.

        Returns
        -------
        dict
            ``"loss"``: the value of :meth:`loss` (data loss plus penalty);
            for the cross-entropy losses also ``"accuracy"`` (for
            ``"binary_cross_entropy"`` over all N·K outputs), with
            ``sample_weight`` the weighted share ``sum w_n a_n / sum w_n`` of
            each row's correct predictions ``a_n``.

        Raises
        ------
        ValueError, TypeError
            As :meth:`loss`.
        """
        from .evaluation import evaluate
        return evaluate(self, X, y, sample_weight)

    def save(self, path, metadata=None):
        """Save architecture and parameters to one ``.npz`` file (atomic write).

        Parameters
        ----------
        path : str or path-like
            Destination file; a name without a suffix gets ``.npz``
            (``"model"`` writes ``model.npz``), any other name is used as is.
        metadata : dict, optional
            JSON-serialisable data stored alongside (default ``self.metadata``)
            and restored by :func:`nncore.load`.

        Returns
        -------
        str
            The path written.
        """
        if metadata is None:
            metadata = self.metadata
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        record = self.get_config()
        record["metadata"] = metadata
        return write_model(path, record, self._params)

    # ------------------------------------------------------------------ description

    def get_config(self):
        """The architecture as a JSON-serialisable dict (no parameters)."""
        return {
            "layers": [layer.get_config() for layer in self.layers],
            "loss": self.loss_name,
            "regularizer": None if self.regularizer is None else self.regularizer.get_config(),
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config, dtype=None):
        """Build a fresh network from :meth:`get_config` output."""
        return cls([layer_from_config(c) for c in config["layers"]],
                   loss=config["loss"],
                   regularizer=regularizer_from_config(config.get("regularizer")),
                   dtype=dtype or config.get("dtype", "float32"),
                   seed=config.get("seed"))

    @classmethod
    def mlp(cls, n_in, hidden, n_out, *, activation="relu", loss="mse", dropout=0.0,
            l1=0.0, l2=0.0, init=None, dtype="float32", seed=None):
        """A multi-layer perceptron: hidden Dense layers, a linear output layer.

        The one builder used by the command line, ``nc.tune`` and
        ``nncore.sklearn`` (the recipe lives in ``nncore._mlp``).

        Parameters
        ----------
        n_in, n_out : int
            Input features and outputs.
        hidden : int or sequence of int
            Hidden layer widths (``()`` for none).
        activation : str or sequence of str, default "relu"
            For every hidden layer, or one per hidden layer.
        loss : str, default "mse"
        dropout : float, default 0.0
            ``Dropout(dropout)`` after every hidden layer when non-zero.
        l1, l2 : float, default 0.0
            ``L1``, ``L2`` or (both) ``ElasticNet`` on the weights.
        init : str or None
            Weight initialisation of every Dense layer.
        dtype : {"float32", "float64"}
        seed : int or None

        Returns
        -------
        Network
        """
        return cls.from_config(mlp_config(n_in, hidden, n_out, activation=activation,
                                          loss=loss, dropout=dropout, l1=l1, l2=l2,
                                          init=init, dtype=dtype, seed=seed))

    def copy(self, dtype=None):
        """An independent network with the same architecture and parameters.

        Parameters
        ----------
        dtype : {"float32", "float64"} or None
            Convert to this dtype (e.g. ``net.copy("float64")``); ``None``
            keeps the network's own.

        Returns
        -------
        Network
        """
        new = Network.from_config(self.get_config(), dtype=dtype)
        new._params[:] = self._params
        new.metadata = dict(self.metadata)
        return new

    def __reduce__(self):
        # Pickle/deepcopy through the architecture and the flat buffer so the
        # copy's layers are views of *its* buffer again (pickling the views
        # themselves would silently detach them).
        return (_rebuild, (self.get_config(), self._params.copy(), self.metadata,
                           self.history_, self._drop_seed, self._drop_counter))

    def _layer_lines(self):
        lines = []
        for i, layer in enumerate(self.layers):
            desc = f"({i}): {layer!r}"
            count = f"{layer.n_params:,} params" if layer.n_params else ""
            lines.append((desc, count))
        return lines

    def __repr__(self):
        lines = self._layer_lines()
        width = max(len(d) for d, _ in lines)
        body = "\n".join(f"  {d:<{width}}  {c}".rstrip() for d, c in lines)
        return (f"Network(\n{body}\n  loss={self.loss_name!r}, regularizer={self.regularizer!r}, "
                f"dtype={self.dtype.name}, params={self.n_params:,}\n)")

    def summary(self, print_fn=print):
        """Print a table of layers, output shapes and parameter counts.

        Parameters
        ----------
        print_fn : callable, default print
            Called with each line of the table.
        """
        rows = [("Layer", "Output", "Params")]
        width = self.n_in
        for i, layer in enumerate(self.layers):
            width = layer.output_width(width)
            rows.append((f"{i}: {layer.summary_label()}", f"(None, {width})",
                         f"{layer.n_params:,}"))
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        w2 = max(len(r[2]) for r in rows)
        sep = "-" * (w0 + w1 + w2 + 4)
        out = [sep] + [f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}" for a, b, c in rows[:1]] + [sep]
        out += [f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}" for a, b, c in rows[1:]]
        out += [sep, f"Total params: {self.n_params:,}",
                f"Input: (None, {self.n_in})  loss: {self.loss_name}  "
                f"regularizer: {self.regularizer!r}  dtype: {self.dtype.name}", sep]
        text = "\n".join(out)
        print_fn(text)


def _rebuild(config, params, metadata, history, drop_seed, drop_counter):
    net = Network.from_config(config)
    net._params[:] = params
    net.metadata = metadata
    net.history_ = history
    net._drop_seed = drop_seed
    net._drop_counter = drop_counter
    return net
