"""Per-row-count buffers of a network's forward and backward passes."""

from __future__ import annotations

import numpy as np

from .layers import Dense


class _Workspace:
    """Preallocated buffers for evaluating ``n`` rows (forward, masks, deltas).

    Layer outputs exist from the start; dropout buffers are made on the first
    training pass and the backward buffers (``gout``, ``dx``) on the first
    gradient, so an inference-only workspace (validation, ``predict``) holds
    just the layer outputs.
    """

    def __init__(self, net, n):
        dt = net.dtype
        self.n = n
        self.inp = [None] * len(net.layers)   # the input each layer saw (set per pass)
        self.out = []
        self.mask = [None] * len(net.layers)
        self.dx = None
        self._widths = []
        width = net.n_in
        for layer in net.layers:
            self._widths.append(width)
            if isinstance(layer, Dense):
                self.out.append(np.empty((n, layer.n_out), dt))
                width = layer.n_out
            else:
                self.out.append(None)
        self._layers = net.layers
        self._gout = None
        self._dt = dt
        self._k = net.n_out
        self._n_in = net.n_in
        self._extra = {}

    def dropout(self, i):
        """(mask, out) of Dropout layer ``i``, created on first use."""
        if self.mask[i] is None:
            shape = (self.n, self._widths[i])
            self.mask[i] = np.empty(shape, self._dt)
            self.out[i] = np.empty(shape, self._dt)
        return self.mask[i], self.out[i]

    @property
    def gout(self):
        """Gradient of the loss w.r.t. the outputs; creates the backward buffers."""
        if self._gout is None:
            # The first Dense layer needs no input gradient: nothing below it learns.
            self.dx = []
            seen_dense = False
            for layer, width in zip(self._layers, self._widths):
                dense = isinstance(layer, Dense)
                self.dx.append(np.empty((self.n, width), self._dt) if dense and seen_dense
                               else None)
                seen_dense = seen_dense or dense
            self._gout = np.empty((self.n, self._k), self._dt)
        return self._gout

    def buf(self, key, shape, dtype):
        """A lazily allocated extra buffer (input/target conversion, accuracy)."""
        b = self._extra.get(key)
        if b is None:
            b = self._extra[key] = np.empty(shape, dtype)
        return b

