"""The one home of argument and data checks, and the exception policy.

Policy (every public entry point follows it; tests rely on it)
----------------------------------------------------------------
* **A bad hyper-parameter or setting** -- the wrong type (``epochs=2.5``,
  ``lr="fast"``, ``nesterov=1``) or a value out of range (``lr=-1``,
  ``Dropout(1.5)``, ``batch_size=0``) -- raises
  :class:`~nncore.errors.InvalidParameterError`, which is both a
  ``ValueError`` and a ``TypeError``: the API promises ``ValueError`` for bad
  hyper-parameters, Python habit expects ``TypeError`` for a wrong type, and
  one exception for one kind of mistake means either ``except`` catches it
  (scikit-learn does the same).
* **Bad data** -- a wrong shape, an empty array, NaN/inf, labels out of range,
  values beyond the network dtype's range, an unknown name (a column, a
  dataset, a loss, an activation) -- raises ``ValueError``.
* **Data that are not numbers, or an object of the wrong kind** where data or
  a component is expected (``None`` or strings for ``X``, a non-layer in a
  network's layer list) -- raises ``TypeError`` (for a component that is a
  hyper-parameter, such as the ``layers`` list, ``InvalidParameterError``).
* Every check runs before anything changes: a call that raises leaves the
  network, the optimizer and its state as they were.

Scalar checks (:func:`integer`, :func:`real`, :func:`flag`, :func:`one_of`)
return the normalised value (``int``, ``float``, ``bool``), so callers write
``self.lr = real(lr, "lr", low=0.0, low_open=True)``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import InvalidParameterError

__all__ = ["integer", "real", "flag", "one_of", "check_X", "check_fits_dtype", "all_finite",
           "DTYPES"]

DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


def _interval(low, low_open, high, high_open):
    """``[0, 1)``-style text of the allowed range."""
    lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
    return f"{lo}, {hi}"


def _outside(value, low, low_open, high, high_open):
    if low is not None and (value <= low if low_open else value < low):
        return True
    return high is not None and (value >= high if high_open else value > high)


def integer(value, name, *, low=None, high=None, allow_none=False):
    """``value`` as an ``int`` (NumPy integers too; bools are not integers).

    Parameters
    ----------
    value : object
    name : str
        The parameter's name, for the message.
    low, high : int, optional
        Inclusive bounds.
    allow_none : bool
        Return ``None`` for ``None``.

    Raises
    ------
    InvalidParameterError
        Not an integer, or outside ``[low, high]``.
    """
    if type(value) is not int:      # (a plain int skips the slower ABC checks)
        if value is None and allow_none:
            return None
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            extra = " or None" if allow_none else ""
            raise InvalidParameterError(f"{name} must be an integer{extra}, got {value!r}")
        value = int(value)
    if _outside(value, low, False, high, False):
        what = {1: "a positive integer (>= 1)", 0: "an integer >= 0"}.get(low) \
            if high is None else None
        what = what or f"an integer in {_interval(low, False, high, False)}"
        raise InvalidParameterError(f"{name} must be {what}, got {value!r}")
    return value


def real(value, name, *, low=None, high=None, low_open=False, high_open=False,
         allow_none=False):
    """``value`` as a finite ``float`` (NumPy reals too; bools are not numbers).

    Parameters
    ----------
    value : object
    name : str
        The parameter's name, for the message.
    low, high : float, optional
        Bounds, inclusive unless ``low_open``/``high_open``.
    allow_none : bool
        Return ``None`` for ``None``.

    Raises
    ------
    InvalidParameterError
        Not a real number, NaN/inf, or out of range.
    """
    if type(value) is not float:    # (a plain float skips the slower ABC checks)
        if value is None and allow_none:
            return None
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise InvalidParameterError(f"{name} must be a real number, got {value!r}")
        value = float(value)
    if not math.isfinite(value):
        raise InvalidParameterError(f"{name} must be finite, got {value}")
    if _outside(value, low, low_open, high, high_open):
        if high is None and low is not None:
            what = f"> {low:g}" if low_open else f">= {low:g}"
        else:
            what = f"in {_interval(low, low_open, high, high_open)}"
        raise InvalidParameterError(f"{name} must be {what}, got {value:g}")
    return value


def flag(value, name):
    """``value`` as a ``bool`` (Python or NumPy bools only: ``1`` is not a flag).

    Parameters
    ----------
    value : object
    name : str
        The parameter's name, for the message.

    Raises
    ------
    InvalidParameterError
        Not a bool.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def one_of(value, name, options):
    """``value`` when it is one of ``options`` (names compare as strings).

    Parameters
    ----------
    value : object
    name : str
        The parameter's name, for the message.
    options : sequence
        The allowed values.

    Raises
    ------
    InvalidParameterError
        Any other value.
    """
    if isinstance(value, (str, type(None), bool, int, float)) and value in options:
        return value
    raise InvalidParameterError(f"{name} must be one of {list(options)}, got {value!r}")


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
    two reductions (no temporary arrays). NaN/inf are left to the finiteness
    check, whose message names them.
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
        if math.isfinite(peak) and peak > limit:   # NaN/inf: the finiteness check's error
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
