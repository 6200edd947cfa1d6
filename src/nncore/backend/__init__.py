"""Backend selection: the compiled kernels (``"cython"``) or the NumPy reference.

Everything above this package calls ``current()`` and the functions of the
module it returns; never ``nncore._kernels`` directly. Both modules export the
same names with the same signatures (``BACKEND_API``; a test asserts it). The
compiled backend also has ``train_epoch``, the fused epoch loop; its Python twin
is ``nncore.backend._epoch.step_loop``.
"""

from __future__ import annotations

import os

from .. import losses as _losses
from . import _numpy

BACKEND_API = (
    "gemm", "sum_squares", "multiply", "add",
    "activation_forward", "activation_backward",
    "dense_forward", "dense_backward",
    "softmax", "sigmoid",
    # loss_mse, loss_softmax_ce, ...: the loss registry's kernels (both backends
    # build these functions from the same table)
    *(row.name for row in _losses.backend_kernels()),
    "regularize", "dropout_mask", "gather_rows", "gather",
    "sgd_step", "adagrad_step", "rmsprop_step", "adam_step", "rprop_step",
    "symv", "bfgs_update", "dfp_update",
    # curvature (R-operator, Jacobian rows, Gauss-Newton and LM's dense algebra)
    "dense_rforward", "dense_rbackward",
    *(row.name for row in _losses.rop_kernels()),    # loss_mse_rop, ...: the registry's
    "jacobian_rows", "ggn_rows_softmax", "syrk", "cholesky_solve",
)
# Only in the compiled backend (``FUSED_LOOP``): the fused epoch loop.
COMPILED_ONLY = ("train_epoch",)

_NAMES = ("cython", "numpy")
_current = None


def _load(name):
    if name == "numpy":
        return _numpy
    if name == "cython":
        # A missing compiled extension is an error, never a silent fallback.
        try:
            from . import _cython
        except ImportError as exc:  # pragma: no cover - depends on the build
            raise ImportError(
                "nncore's compiled kernels are not available (nncore._kernels "
                f"failed to import: {exc}). Reinstall nncore with a C compiler, "
                "or select the reference path with nc.set_backend('numpy')."
            ) from exc
        return _cython
    raise ValueError(f"unknown backend {name!r}; expected one of {_NAMES}")


def available():
    """Names of the backends that import here: ``["cython", "numpy"]``, or
    ``["numpy"]`` when the compiled extension is not built."""
    try:
        _load("cython")
    except ImportError:
        return ["numpy"]
    return ["cython", "numpy"]


def set_backend(name):
    """Select the backend every later computation uses.

    Parameters
    ----------
    name : {"cython", "numpy"}
        ``"cython"``: the compiled kernels; ``"numpy"``: the pure-NumPy
        reference path (case-insensitive).

    Raises
    ------
    ValueError
        If ``name`` is not a known backend (a non-string raises
        ``nc.errors.InvalidParameterError``, also a ``TypeError``).
    ImportError
        If ``"cython"`` is asked for but the compiled extension is missing.
    """
    global _current
    if not isinstance(name, str):
        from ..errors import InvalidParameterError
        raise InvalidParameterError(f"backend name must be a string, got {type(name).__name__}")
    _current = _load(name.lower())


def get_backend():
    """Name of the active backend."""
    return current().NAME


def current():
    """The active backend module (selected on first use from ``NNCORE_BACKEND``)."""
    global _current
    if _current is None:
        _current = _load(os.environ.get("NNCORE_BACKEND", "cython").lower())
    return _current
