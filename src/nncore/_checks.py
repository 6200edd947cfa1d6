"""Checks of arguments and data shared by the network modules.

Each helper returns the normalised value or raises; none changes any state.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import InvalidParameterError

DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _nonneg_real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _resolve_dtype(dtype):
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; expected 'float32' or 'float64'")
        return DTYPES[dtype]
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"unknown dtype {dtype!r}; expected 'float32' or 'float64'") from None
    if dt not in DTYPES.values():
        raise ValueError(f"unknown dtype {dtype!r}; expected 'float32' or 'float64'")
    return dt


def all_finite(a, max_elements=1 << 16):
    """True when a numeric array has no NaN/inf, checked in row chunks.

    Chunking bounds the temporary boolean mask to ``max_elements`` entries,
    so validating a large X never allocates an N x D mask.
    """
    if a.dtype.kind not in "fc":
        return True
    if a.ndim == 0 or a.size == 0:
        return bool(np.isfinite(a).all())
    row = max(1, a.size // a.shape[0])
    step = max(1, max_elements // row)
    for s in range(0, a.shape[0], step):
        if not np.isfinite(a[s:s + step]).all():
            return False
    return True


def check_fits_dtype(a, dtype, name, max_elements=1 << 16):
    """``ValueError`` when finite float data exceed the range of ``dtype``.

    A float64 value beyond float32's largest (about 3.4e38) becomes inf when
    a float32 network casts it, and the inf then turns outputs into NaN or
    makes training diverge after it changed the parameters; naming the
    problem up front leaves everything unchanged. Checked in row chunks with
    two reductions (no temporary arrays). Call after the finiteness check.
    """
    if a.dtype.kind != "f" or a.size == 0:
        return
    limit = float(np.finfo(dtype).max)
    if float(np.finfo(a.dtype).max) <= limit:
        return
    flat = a.reshape(a.shape[0], -1) if a.ndim else a.reshape(1, 1)
    step = max(1, max_elements // max(1, flat.shape[1]))
    for s in range(0, flat.shape[0], step):
        chunk = flat[s:s + step]
        peak = max(float(chunk.max()), -float(chunk.min()))
        if peak > limit:
            raise ValueError(
                f"{name} has values up to {peak:.3g} in magnitude, beyond the range of "
                f"{np.dtype(dtype).name} (largest {limit:.3g}) that this {np.dtype(dtype).name} "
                f"network computes in; rescale the data or use dtype='float64'")


def _as_numeric(a, name):
    """``np.asarray`` with a ``TypeError`` for non-numeric data."""
    if a is None:
        raise TypeError(f"{name} must be an array of numbers, got None")
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got an array of dtype {arr.dtype}")
    return arr


def check_X(X, n_in, dtype, name="X"):
    """Validated 2-D C-contiguous float32/float64 view (or converted copy) of X."""
    arr = _as_numeric(X, name)
    if arr.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.shape[1] != n_in:
        raise ValueError(f"{name} has {arr.shape[1]} features but the network expects {n_in}")
    if not all_finite(arr):
        raise ValueError(f"{name} contains NaN or infinite values")
    check_fits_dtype(arr, dtype, name)
    if arr.dtype not in DTYPES.values():
        # Integers, booleans, float16: convert once to the network dtype.
        arr = np.ascontiguousarray(arr, dtype=dtype)
    elif not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr
