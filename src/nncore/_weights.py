"""Sample and class weights of ``fit``: checks, ``class_weight``, row coefficients.

Design
------
* The contract: each step's data loss is ``sum w_n l_n / sum w_n`` over its
  batch (full batch: over the set), so integer weights train like repeated
  rows. The backends' loss functions take float64 *row coefficients*
  ``c_n = w_n / sum w`` (:func:`nncore.losses.row_coefficients`); this module
  turns what users pass into the per-row weights ``w``.
* ``class_weight`` multiplies the sample weights by the weight of each row's
  class: ``{label: weight}`` (classes left out weigh 1) or ``"balanced"``,
  scikit-learn's rule ``n_samples / (n_classes * count(class))`` over the
  classes present in ``y``.
* Weights that are all equal are the unweighted mean exactly, so they take the
  unweighted path (bit-identical to no weights at all, and just as fast).
* Every check runs before anything changes; bad weights are a ``ValueError``
  (shape, NaN/inf, negative, all zero, unknown class) or a ``TypeError``
  (not numbers).
"""

from __future__ import annotations

import numbers

import numpy as np

from ._checks import _as_numeric

__all__ = ["check_sample_weight", "class_row_weights", "combine"]


def check_sample_weight(sample_weight, n, name="sample_weight"):
    """``sample_weight`` as a new C-contiguous float64 array ``(n,)``, checked.

    Raises
    ------
    TypeError
        Not numbers (strings, objects, booleans, complex).
    ValueError
        Not of shape ``(n,)``, NaN/inf, negative, or all zero.
    """
    arr = _as_numeric(sample_weight, name)
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must hold numbers, got booleans")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) (one weight per row), got {arr.shape}")
    w = np.array(arr, dtype=np.float64, order="C")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(w < 0):
        raise ValueError(f"{name} must be non-negative")
    if not np.any(w > 0):
        raise ValueError(f"{name} is zero everywhere: no row would count")
    return w


def _balanced(classes):
    """scikit-learn's ``"balanced"``: ``n / (n_classes · count)`` per class present."""
    present, inverse, counts = np.unique(classes, return_inverse=True, return_counts=True)
    per_class = classes.shape[0] / (present.shape[0] * counts.astype(np.float64))
    return per_class[inverse]


def _from_dict(class_weight, classes, n_classes):
    table = np.ones(n_classes)
    for label, weight in class_weight.items():
        if (isinstance(label, (bool, np.bool_)) or not isinstance(label, numbers.Integral)
                or not 0 <= label < n_classes):
            raise ValueError(f"class_weight has the key {label!r}; classes are the integers "
                             f"0..{n_classes - 1}")
        if (isinstance(weight, (bool, np.bool_)) or not isinstance(weight, numbers.Real)):
            raise TypeError(f"class_weight[{label!r}] must be a number, got {weight!r}")
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"class_weight[{label!r}] must be finite and non-negative, "
                             f"got {weight!r}")
        table[int(label)] = float(weight)
    return table[classes]


def class_row_weights(net, T, class_weight):
    """Per-row weights from ``class_weight`` for validated targets ``T`` (None: None)."""
    if class_weight is None:
        return None
    classes = net._loss.row_classes(T) if net.is_classifier else None
    if classes is None:
        raise ValueError("class_weight needs a single-label classifier (loss='cross_entropy', "
                         "or 'binary_cross_entropy' with one output)")
    classes = np.asarray(classes, dtype=np.int64)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be a dict, 'balanced' or None, "
                             f"got {class_weight!r}")
        return _balanced(classes)
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{label: weight}}, 'balanced' or None, "
                        f"got {type(class_weight).__name__}")
    return _from_dict(class_weight, classes, net._loss.n_classes(net.n_out))


def combine(sample_w, class_w, what="the training rows"):
    """The rows' weights (None when unweighted or all equal: the plain mean)."""
    if sample_w is None and class_w is None:
        return None
    w = class_w if sample_w is None else (sample_w if class_w is None else sample_w * class_w)
    if not np.any(w > 0):
        raise ValueError(f"the weights of {what} (sample_weight times class_weight) are zero "
                         "everywhere: no row would count")
    if np.all(w == w[0]):
        return None
    return np.ascontiguousarray(w, dtype=np.float64)

