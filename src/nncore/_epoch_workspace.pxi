# The compiled epoch loop's workspace (included by _kernels.pyx before
# _train_loop.pxi): one object that allocates and sizes every buffer the loop
# writes, so a caller cannot hand the loop a buffer of the wrong size, dtype or
# layout, or one that overlaps the parameters.
#
# Design:
# * The sizes come from the layout alone (dtype, (kind, n_in, n_out) per layer,
#   batch size, width of X, labels or float targets, number of parameters,
#   whether the optimizer's coupled decay needs a buffer); the buffers are
#   allocated here and exposed read-only. The float64 row coefficients of a
#   weighted batch (batch_size of them) are always there: a weighted and an
#   unweighted fit of one layout share a workspace.
# * ``check`` runs on every call of train_epoch_loop before the GIL is
#   released: the call's layout must be the workspace's, every buffer must still
#   have its shape and dtype (an ndarray's shape can be reassigned in place),
#   and no buffer may share memory with an array of the call. Bounds-based
#   overlap tests, O(number of buffers x arrays): independent of the data size.

from cpython.buffer cimport PyBUF_RECORDS_RO, PyBuffer_Release, PyObject_GetBuffer

import numpy as _np

# The buffers whose dtype is not the network's.
_BUFFER_DTYPES = {"batch_labels": _np.dtype(_np.int64), "row_coef": _np.dtype(_np.float64)}


cdef tuple _ws_byte_range(object a):
    """The bytes [lo, hi) an array spans (numpy's byte_bounds; (0, 0) when empty),
    through the buffer protocol."""
    cdef Py_buffer view
    cdef Py_ssize_t i, lo, hi
    PyObject_GetBuffer(a, &view, PyBUF_RECORDS_RO)
    try:
        if view.len == 0:
            return (0, 0)
        lo = hi = <Py_ssize_t>view.buf
        hi += view.itemsize
        for i in range(view.ndim):
            if view.strides[i] >= 0:
                hi += view.strides[i] * (view.shape[i] - 1)
            else:
                lo += view.strides[i] * (view.shape[i] - 1)
        return (lo, hi)
    finally:
        PyBuffer_Release(&view)


cdef class EpochWorkspace:
    """The buffers of the compiled epoch loop for one network layout.

    Parameters
    ----------
    dtype : numpy dtype, float32 or float64 (the network's)
    layout : sequence of ``(kind, n_in, n_out)``, one per layer (kinds of
        ``LOOP_LAYER_KINDS``)
    batch_size : int >= 1, rows of a mini-batch
    n_features : int >= 1, columns of X
    labels : bool, whether the targets are integer labels
    n_params : int >= 1, length of the flat parameter vector
    coupled : bool, whether the optimizer adds a coupled weight decay to the
        gradient (then the loop needs a buffer of ``n_params`` for it)

    Attributes
    ----------
    backup : ndarray (n_params,)
        The parameters from before the last update the loop took.
    row_coef : ndarray (batch_size,), float64
        A weighted step's row coefficients ``w / sum w`` over its batch (the
        loop fills it; unused without sample weights).
    key : tuple
        The layout the buffers are sized for (see :meth:`key_of`).
    """

    cdef readonly tuple key
    cdef readonly object dtype
    cdef readonly tuple layout
    cdef readonly Py_ssize_t batch_size, n_features, n_outputs, n_params
    cdef readonly bint labels, coupled
    cdef readonly object backup, batch_x, batch_targets, batch_labels, output_grad
    cdef readonly object decayed_grads, row_coef
    cdef readonly tuple layer_buffers      # (out, mask or None, input_grad or None) per layer

    def __init__(self, dtype, layout, Py_ssize_t batch_size, Py_ssize_t n_features,
                 bint labels, Py_ssize_t n_params, bint coupled):
        self.key = EpochWorkspace.key_of(dtype, layout, batch_size, n_features, labels,
                                         n_params, coupled)
        self.dtype = _np.dtype(dtype)
        self.layout = self.key[1]
        self.batch_size = batch_size
        self.n_features = n_features
        self.labels = labels
        self.n_params = n_params
        self.coupled = coupled
        self.n_outputs = self.layout[len(self.layout) - 1][2]
        self.layer_buffers = tuple(self._layer_shapes_to_arrays())
        shapes = self._shapes()
        self.batch_x = _np.empty(shapes["batch_x"], self.dtype)
        self.batch_targets = _np.empty(shapes["batch_targets"], self.dtype)
        self.batch_labels = _np.empty(shapes["batch_labels"], _np.int64)
        self.output_grad = _np.empty(shapes["output_grad"], self.dtype)
        self.decayed_grads = _np.empty(shapes["decayed_grads"], self.dtype)
        self.backup = _np.empty(shapes["backup"], self.dtype)
        self.row_coef = _np.empty(shapes["row_coef"], _np.float64)

    @staticmethod
    def key_of(dtype, layout, Py_ssize_t batch_size, Py_ssize_t n_features, bint labels,
               Py_ssize_t n_params, bint coupled):
        """The checked layout tuple a workspace is built for (ValueError if it is
        not one the loop can run)."""
        dt = _np.dtype(dtype)
        if dt not in (_np.dtype(_np.float32), _np.dtype(_np.float64)):
            raise ValueError(f"EpochWorkspace: dtype must be float32 or float64, got {dt}")
        layers = tuple((int(kind), int(n_in), int(n_out)) for kind, n_in, n_out in layout)
        if not layers or min(batch_size, n_features, n_params) < 1:
            raise ValueError("EpochWorkspace: needs layers, batch_size, n_features and "
                             "n_params >= 1")
        width = n_features
        for kind, n_in, n_out in layers:
            if kind not in (TL_DENSE, TL_DROPOUT, TL_RESIDUAL) or n_in != width or n_out < 1 or (
                    kind != TL_DENSE and n_out != n_in):
                raise ValueError(f"EpochWorkspace: layer {(kind, n_in, n_out)} does not "
                                 f"follow a layer of width {width}")
            width = n_out
        return (dt.str, layers, batch_size, n_features, bool(labels), n_params, bool(coupled))

    def _layer_shapes_to_arrays(self):
        seen_learned = False
        for kind, n_in, n_out in self.layout:
            learned = kind in (TL_DENSE, TL_RESIDUAL)
            out = _np.empty((self.batch_size, n_out), self.dtype)
            # the dropout mask, or a residual layer's f(S)
            mask = (_np.empty((self.batch_size, n_out), self.dtype)
                    if kind in (TL_DROPOUT, TL_RESIDUAL) else None)
            # no input gradient below the first learned layer (nothing reads it)
            input_grad = (_np.empty((self.batch_size, n_in), self.dtype)
                          if learned and seen_learned else None)
            seen_learned = seen_learned or learned
            yield out, mask, input_grad

    def _shapes(self):
        """The shape of each batch-level buffer (unused ones have one element)."""
        cdef object B = self.batch_size, K = self.n_outputs
        cdef object one = 1
        return {
            "batch_x": (B, self.n_features),
            "batch_targets": (one, one) if self.labels else (B, K),
            "batch_labels": (B if self.labels else one,),
            "output_grad": (B, K),
            "decayed_grads": (self.n_params if self.coupled else one,),
            "backup": (self.n_params,),
            "row_coef": (B,),
        }

    def _buffers(self):
        """(name, array, expected shape, expected dtype) of every buffer."""
        cdef object B = self.batch_size
        dt = self.dtype
        shapes = self._shapes()
        for name in shapes:
            yield name, getattr(self, name), shapes[name], _BUFFER_DTYPES.get(name, dt)
        for i, ((kind, n_in, n_out), arrays) in enumerate(zip(self.layout, self.layer_buffers)):
            yield f"layer {i} out", arrays[0], (B, n_out), dt
            if arrays[1] is not None:
                yield f"layer {i} mask", arrays[1], (B, n_out), dt
            if arrays[2] is not None:
                yield f"layer {i} input_grad", arrays[2], (B, n_in), dt

    def check(self, params, layout, Py_ssize_t batch_size, Py_ssize_t n_features, bint labels,
              bint coupled, **arrays):
        """Raise ValueError unless this workspace fits the call: the same layout,
        every buffer still of its shape, dtype and C layout, and none sharing
        memory with ``params`` or any of ``arrays`` (the call's other arrays)."""
        key = EpochWorkspace.key_of(params.dtype, layout, batch_size, n_features, labels,
                                    params.shape[0], coupled)
        if key != self.key:
            raise ValueError(f"EpochWorkspace was built for {self.key}, the call needs {key}")
        arrays["params"] = params
        # numpy.may_share_memory's test (the byte ranges overlap), each range taken
        # once: the loop calls this once per epoch, where the pairwise calls cost
        # ~30 us at batch 1 on a small network.
        others = [(other_name, _ws_byte_range(other)) for other_name, other in arrays.items()
                  if other is not None]
        for name, buf, shape, dtype in self._buffers():
            if (not isinstance(buf, _np.ndarray) or buf.shape != shape or buf.dtype != dtype
                    or not buf.flags.c_contiguous or not buf.flags.writeable):
                raise ValueError(f"EpochWorkspace {name} is no longer a writable C-contiguous "
                                 f"{dtype} array of shape {shape}")
            lo, hi = _ws_byte_range(buf)
            for other_name, (other_lo, other_hi) in others:
                if lo < other_hi and other_lo < hi:
                    raise ValueError(f"EpochWorkspace {name} shares memory with {other_name}")
