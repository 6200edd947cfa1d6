"""Per-row-count buffers of a network's forward and backward passes.

Design: a workspace belongs to one thread. ``WorkspaceCache`` keeps a small
LRU of workspaces (keyed by the number of rows) per thread, so a training
step allocates nothing in the steady state, and threads evaluating the same
network never write into each other's activations or deltas.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np


class _Workspace:
    """Buffers for evaluating ``n`` rows: each layer's arrays, created on first use.

    A layer asks for its arrays by name (``array(i, "out", width)``), so an
    inference-only workspace (validation, ``predict``) holds just what the
    forward pass used, and the backward buffers appear with the first gradient.
    """

    def __init__(self, n, n_layers, n_out, dtype):
        self.n = n
        self.inp = [None] * n_layers   # the input each layer saw (set per pass)
        self._arrays = [{} for _ in range(n_layers)]
        self._dt = dtype
        self._k = n_out
        self._gout = None
        self._extra = {}

    def array(self, i, key, width):
        """Layer ``i``'s ``(n, width)`` buffer called ``key``, created on first use."""
        a = self._arrays[i].get(key)
        if a is None or a.shape[1] != width:
            a = self._arrays[i][key] = np.empty((self.n, width), self._dt)
        return a

    def arrays(self, i):
        """The buffers layer ``i`` has created so far, by name."""
        return self._arrays[i]

    @property
    def gout(self):
        """Gradient of the loss w.r.t. the outputs (created on the first gradient)."""
        if self._gout is None:
            self._gout = np.empty((self.n, self._k), self._dt)
        return self._gout

    def buf(self, key, shape, dtype):
        """A lazily allocated extra buffer (input/target conversion, accuracy)."""
        b = self._extra.get(key)
        if b is None:
            b = self._extra[key] = np.empty(shape, dtype)
        return b


class WorkspaceCache:
    """Per-thread LRU of at most ``size`` workspaces, keyed by the number of rows."""

    def __init__(self, n_layers, n_out, dtype, size):
        self._shape = (n_layers, n_out, dtype)
        self._size = size
        self._local = threading.local()

    def get(self, n):
        """This thread's workspace for ``n`` rows."""
        cache = getattr(self._local, "lru", None)
        if cache is None:
            cache = self._local.lru = OrderedDict()
        ws = cache.get(n)
        if ws is None:
            ws = cache[n] = _Workspace(n, *self._shape)
            if len(cache) > self._size:
                cache.popitem(last=False)
        else:
            cache.move_to_end(n)
        return ws
