"""The data losses: the one place that names them.

Design
------
* Each loss is one :class:`Loss` subclass instance in :data:`REGISTRY`. It
  knows everything that depends on the loss: its backend functions and the
  codes of the compiled epoch loop, which targets it accepts, whether the
  network is a classifier, how predictions and probabilities are formed from
  the outputs, how accuracy is counted, and its NumPy reference (value and
  gradient). ``Network``, ``fit``, both backends, the epoch loops, the
  scikit-learn estimators, the CLI and ``tune`` ask it; nothing else compares
  loss names.
* The reference functions (``*_reference``) are the specification of the
  backend functions ``loss_mse``, ``loss_softmax_ce``, ``loss_softmax_ce_prob``
  and ``loss_bce``: ``nncore.backend._numpy`` validates and calls them, the
  compiled kernels match them (reductions to rounding, gradients bit for bit
  where the arithmetic is elementwise).
* The loss codes are those of the compiled epoch loop (``TL_MSE`` ... in
  ``_train_loop.pxi``); a loss that takes integer labels has a second code
  for them (``label_code``).
* This module imports only NumPy and :mod:`nncore.activations`; backend
  functions are passed in (``be``), so the backends may import it. They do:
  :func:`backend_kernels` and :func:`rop_kernels` are the tables (kernel name
  -> reference, target form) from which both backends write their checked
  ``loss_*`` entry points and ``nncore.backend.BACKEND_API`` lists them, so a
  new kernel is named here only.

Adding a loss: see CONTRIBUTING.md.
"""

from __future__ import annotations

import inspect
from typing import Callable, NamedTuple

import numpy as np

from .activations import sigmoid

__all__ = ["Loss", "REGISTRY", "NAMES", "get", "register", "LossKernel", "backend_kernels",
           "rop_kernels", "mse_reference", "softmax_ce_reference", "softmax_ce_prob_reference",
           "bce_reference", "mse_rop_reference", "softmax_ce_rop_reference",
           "bce_rop_reference", "row_coefficients"]


# --------------------------------------------------------------------------- references

def _row_scale(weight, dtype):
    """Row coefficients as a column in the array dtype (the kernels round c_n so)."""
    return weight.astype(dtype)[:, None]


def mse_reference(out, target, grad, weight=None):
    """J = 1/(2N) sum (out - target)^2;  grad := (out - target) / N (if not None).

    With row coefficients ``weight`` (float64, (N,)): J = 1/2 sum_n c_n sum_k
    (out - target)^2 and grad := (out - target) * c_n (the same for every loss
    below: row n's terms times c_n instead of 1/N)."""
    n = out.shape[0]
    diff = out - target
    d64 = diff.astype(np.float64, copy=False)
    if weight is not None:
        J = 0.5 * float(np.dot(weight, np.einsum("nk,nk->n", d64, d64)))
        if grad is not None:
            np.multiply(diff, _row_scale(weight, out.dtype), out=grad)
        return J
    d64 = d64.ravel()
    J = 0.5 * float(np.dot(d64, d64)) / n
    if grad is not None:
        np.divide(diff, n, out=grad)
    return J


def softmax_ce_reference(logits, labels, grad, weight=None):
    """J = -1/N sum log softmax(logits)[label];  grad := (softmax - onehot) / N."""
    n = logits.shape[0]
    m = logits.max(axis=1, keepdims=True)
    z = logits - m
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    # log-sum-exp: -log p_label = log(sum e) - z_label
    terms = np.log(s[:, 0]).astype(np.float64) - z[rows, labels].astype(np.float64)
    J = float(np.sum(terms)) / n if weight is None else float(np.dot(weight, terms))
    if grad is not None:
        np.divide(e, s, out=grad)
        grad[rows, labels] -= 1
        if weight is None:
            grad /= n
        else:
            grad *= _row_scale(weight, grad.dtype)
    return J


def softmax_ce_prob_reference(logits, target, grad, weight=None):
    """J = -1/N sum_n sum_k t_nk log softmax(logits)_nk;  grad := (softmax - t) / N."""
    n = logits.shape[0]
    m = logits.max(axis=1, keepdims=True)
    z = logits - m
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    logp = z - np.log(s)
    terms = (target * logp).astype(np.float64)
    if weight is None:
        J = -float(np.sum(terms)) / n
    else:
        J = -float(np.dot(weight, terms.sum(axis=1)))
    if grad is not None:
        np.divide(e, s, out=grad)
        grad -= target
        if weight is None:
            grad /= n
        else:
            grad *= _row_scale(weight, grad.dtype)
    return J


def bce_reference(logits, target, grad, weight=None):
    """J = 1/N sum [max(x, 0) - x d + log(1 + exp(-|x|))] (stable for large |x|);
    grad := (sigmoid(x) - d) / N."""
    n = logits.shape[0]
    x = logits
    terms = (np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))).astype(np.float64)
    if weight is None:
        J = float(np.sum(terms)) / n
    else:
        J = float(np.dot(weight, terms.sum(axis=1)))
    if grad is not None:
        sigmoid(x, grad)
        grad -= target
        if weight is None:
            grad /= n
        else:
            grad *= _row_scale(weight, grad.dtype)
    return J


def mse_rop_reference(out, Rout, Rgrad):
    """Rgrad := Rout / N (the Hessian of 1/(2N) sum (out - d)^2 applied)."""
    np.divide(Rout, out.shape[0], out=Rgrad)


def softmax_ce_rop_reference(logits, Rlogits, Rgrad):
    """Rgrad_n := (diag p_n - p_n p_n^T) Rlogits_n / N, p = softmax(logits)
    (the Hessian of the mean cross-entropy for target rows summing to 1)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    pv = np.sum(p * Rlogits, axis=2, keepdims=True)
    np.multiply(p, Rlogits - pv, out=Rgrad)
    Rgrad /= logits.shape[0]


def bce_rop_reference(logits, Rlogits, Rgrad):
    """Rgrad := s (1 - s) Rlogits / N, s = sigmoid(logits)."""
    e = np.exp(-np.abs(logits))
    s = np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    np.multiply(s * (1.0 - s), Rlogits, out=Rgrad)
    Rgrad /= logits.shape[0]


def row_coefficients(weight):
    """Row coefficients ``c = w / sum(w)`` of sample weights ``w`` (float64, (N,)):
    the weighted mean's factors, so that ``sum_n c_n l_n`` is the contract's
    ``sum w_n l_n / sum w_n``. The sum runs in row order (``numpy.cumsum``, as the
    compiled epoch loop sums a batch), so both loops get the same bits. All
    weights zero: all coefficients zero (the rows carry no loss)."""
    total = float(np.cumsum(weight)[-1])
    if total == 0.0:
        return np.zeros_like(weight)
    return weight / total


# --------------------------------------------------------------------------- losses

def _scratch(buf, key, shape, dtype):
    """A buffer from the caller's ``buf(key, shape, dtype)``, or a new one."""
    return np.empty(shape, dtype) if buf is None else buf(key, shape, dtype)


class Loss:
    """One data loss: targets, kernels, predictions and accuracy.

    Attributes
    ----------
    name : str
        The name users pass (``Network(loss=name)``).
    kernel : str
        Backend function for float targets ``(N, K)``.
    code : int
        The compiled epoch loop's code for float targets.
    label_kernel, label_code : str, int or None
        The same for integer labels ``(N,)``; None when labels are not accepted.
    is_classifier : bool
        Predictions are classes; accuracy is reported.
    link : str or None
        The function the loss applies to the outputs (``"softmax"``,
        ``"sigmoid"``): the network's outputs are logits and its last layer
        must be able to produce any real number. None: raw outputs.
    min_outputs : int
        Fewest network outputs the loss makes sense for.
    rop_kernel : str or None
        Backend function applying the per-sample Hessian of the loss with
        respect to the outputs (the R-operator of the output gradient, for
        exact curvature); None: the loss has no exact curvature.
    rop_reference_fn : callable or None
        Its NumPy specification ``(out, Rout, Rgrad)`` (no checks).
    """

    name = None
    kernel = None
    code = None
    label_kernel = None
    label_code = None
    reference_fn = None
    label_reference_fn = None
    is_classifier = False
    link = None
    min_outputs = 1
    rop_kernel = None
    rop_reference_fn = None

    # ---- targets
    def check_n_outputs(self, n_out):
        """``ValueError`` if a network with ``n_out`` outputs cannot use this loss."""
        if n_out < self.min_outputs:
            raise ValueError(f"loss={self.name!r} needs at least {self.min_outputs} outputs")

    def check_labels(self, arr, K, name):
        """Validated int64 labels from a 1-D array (losses with ``label_code``)."""
        raise ValueError(f"{self.name} takes no integer labels")  # pragma: no cover

    def check_values(self, arr, name):
        """``ValueError`` if float targets ``(N, K)`` hold values the loss rejects."""

    # ---- kernels
    def takes_labels(self, t):
        """True when ``t`` is the 1-D integer-label form of the targets."""
        return self.label_code is not None and t.ndim == 1

    def loop_code(self, t):
        """The compiled epoch loop's code for targets ``t``."""
        return self.label_code if self.takes_labels(t) else self.code

    def value_and_grad(self, be, out, t, grad, weight=None):
        """Mean data loss of outputs ``out`` against ``t`` through backend ``be``;
        writes the output gradient into ``grad`` unless it is None. ``weight``:
        float64 row coefficients (see :func:`row_coefficients`) for a weighted
        sum instead of the mean."""
        fn = self.label_kernel if self.takes_labels(t) else self.kernel
        if weight is None:
            return getattr(be, fn)(out, t, grad)
        return getattr(be, fn)(out, t, grad, weight)

    def reference(self, out, t, grad=None, weight=None):
        """The NumPy reference of :meth:`value_and_grad` (no checks)."""
        fn = self.label_reference_fn if self.takes_labels(t) else self.reference_fn
        return fn(out, t, grad, weight)

    # ---- curvature (nncore.curvature)
    def _no_curvature(self):
        return ValueError(f"loss={self.name!r} has no exact curvature (no output Hessian); "
                          "Newton, Levenberg-Marquardt and NewtonCG need one")

    def hessian_product(self, be, out, Rout, Rgrad):
        """``Rgrad[a] := H Rout[a]`` for ``m`` directions ``(m, N, K)``, ``H`` the
        block-diagonal Hessian of the mean loss with respect to the outputs
        ``out`` (it does not depend on the targets)."""
        if self.rop_kernel is None:
            raise self._no_curvature()
        getattr(be, self.rop_kernel)(out, Rout, Rgrad)

    def sqrt_hessian_rows(self, be, out, J):
        """``J_n := L_nᵀ J_n`` in place for each sample's ``K`` Jacobian rows
        (sample-major), where ``L_n L_nᵀ`` is the Hessian of the sample's loss
        term with respect to its outputs (``N`` times the mean loss), so that
        ``JᵀJ`` becomes the generalised Gauss–Newton matrix."""
        raise self._no_curvature()

    # ---- predictions
    def predict(self, out):
        """Predictions from the network outputs ``(N, K)``."""
        return out.reshape(-1) if out.shape[1] == 1 else out

    def probabilities(self, be, out):
        """``out := probabilities`` in place (classifiers only)."""
        raise ValueError(f"predict_proba needs a cross-entropy loss; this network uses "
                         f"{self.name!r}")

    def row_classes(self, T):
        """The class of each row of validated targets ``T`` (for a stratified
        split), or None when rows have no single class (regression, multi-label)."""
        return None

    def n_classes(self, n_out):
        """Number of classes a network with ``n_out`` outputs tells apart."""
        return n_out

    def n_outputs(self, n_classes):
        """Outputs a network needs for ``n_classes`` classes."""
        return n_classes

    def encode_labels(self, codes, n_out, dtype):
        """Targets in the loss's layout from int64 class codes ``(N,)``."""
        return codes

    # ---- accuracy
    def count_correct(self, out, t, buf=None):
        """Correct predictions among outputs ``out`` for targets ``t``: rows whose
        first maximum (numpy.argmax) is the label, or the target row's argmax.

        ``buf(key, shape, dtype)``, if given, supplies scratch arrays (so a
        training step allocates nothing)."""
        n = out.shape[0]
        pred = _scratch(buf, "pred", (n,), np.intp)
        eq = _scratch(buf, "eq", (n,), np.bool_)
        np.argmax(out, axis=1, out=pred)
        if t.ndim == 1:
            np.equal(pred, t, out=eq)
        else:
            true = _scratch(buf, "true", (n,), np.intp)
            np.argmax(t, axis=1, out=true)
            np.equal(pred, true, out=eq)
        return int(np.count_nonzero(eq))

    def n_judged(self, n_rows, n_out):
        """How many predictions :meth:`count_correct` judges (the accuracy's denominator)."""
        return n_rows

    def row_correct(self, out, t):
        """Per row, the fraction of its predictions that are correct (float64, (N,)):
        the terms of a weighted accuracy ``sum c_n row_correct_n``."""
        pred = np.argmax(out, axis=1)
        true = t if t.ndim == 1 else np.argmax(t, axis=1)
        return (pred == true).astype(np.float64)

    def __repr__(self):
        return f"<loss {self.name!r}>"


class MeanSquaredError(Loss):
    """``J = 1/(2N) sum (out - t)^2`` (the lecture's); regression."""

    name = "mse"
    kernel, code = "loss_mse", 0
    reference_fn = staticmethod(mse_reference)
    rop_kernel = "loss_mse_rop"
    rop_reference_fn = staticmethod(mse_rop_reference)

    def sqrt_hessian_rows(self, be, out, J):
        """The Hessian of ``1/2 (out - t)^2`` is the identity: rows unchanged."""


class CrossEntropy(Loss):
    """Softmax cross-entropy on logits, against labels ``(N,)`` or probability rows."""

    name = "cross_entropy"
    kernel, code = "loss_softmax_ce_prob", 2
    label_kernel, label_code = "loss_softmax_ce", 1
    reference_fn = staticmethod(softmax_ce_prob_reference)
    label_reference_fn = staticmethod(softmax_ce_reference)
    is_classifier = True
    link = "softmax"
    min_outputs = 2
    rop_kernel = "loss_softmax_ce_rop"
    rop_reference_fn = staticmethod(softmax_ce_rop_reference)

    def sqrt_hessian_rows(self, be, out, J):
        """``L_nᵀ = diag sqrt(p) - sqrt(p) pᵀ`` for ``H_n = diag p - p pᵀ``."""
        P = np.empty_like(out)
        be.softmax(out, P)
        be.ggn_rows_softmax(P, J)

    def check_n_outputs(self, n_out):
        if n_out < 2:
            raise ValueError("loss='cross_entropy' needs at least 2 outputs (softmax over "
                             "classes); use 'binary_cross_entropy' for a single output")

    def check_labels(self, arr, K, name):
        if arr.dtype.kind == "f":
            if not np.all(arr == np.floor(arr)):
                raise ValueError(f"cross_entropy {name} given as 1-D must be integer class labels")
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= K:
            raise ValueError(f"{name} has labels in [{lo:g}, {hi:g}] but the network has {K} "
                             f"outputs: labels must lie in [0, {K})")
        return np.ascontiguousarray(arr, dtype=np.int64)

    def check_values(self, arr, name):
        if arr.min() < 0:
            raise ValueError(f"cross_entropy probability targets {name} must be non-negative")
        sums = arr.sum(axis=1, dtype=np.float64)
        if np.max(np.abs(sums - 1.0)) > 1e-5:
            raise ValueError(f"cross_entropy probability targets {name}: every row must sum to 1")

    def predict(self, out):
        return np.argmax(out, axis=1).astype(np.int64)

    def probabilities(self, be, out):
        be.softmax(out, out)

    def row_classes(self, T):
        return T if T.ndim == 1 else np.argmax(T, axis=1)


class BinaryCrossEntropy(Loss):
    """Per-output logistic loss on logits, targets in [0, 1]."""

    name = "binary_cross_entropy"
    kernel, code = "loss_bce", 3
    reference_fn = staticmethod(bce_reference)
    is_classifier = True
    link = "sigmoid"
    rop_kernel = "loss_bce_rop"
    rop_reference_fn = staticmethod(bce_rop_reference)

    def sqrt_hessian_rows(self, be, out, J):
        """``H_n = diag s(1 - s)``: each row scaled by ``sqrt(s (1 - s))``."""
        s = np.empty_like(out)
        be.sigmoid(out, s)
        J *= np.sqrt(s * (1.0 - s)).reshape(-1, 1)

    def check_values(self, arr, name):
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"binary_cross_entropy targets {name} must lie in [0, 1]")

    def predict(self, out):
        labels = (out >= 0).astype(np.int64)     # logit >= 0 means class 1
        return labels.reshape(-1) if out.shape[1] == 1 else labels

    def probabilities(self, be, out):
        be.sigmoid(out, out)

    def row_classes(self, T):
        return (T[:, 0] >= 0.5).astype(np.int64) if T.shape[1] == 1 else None

    def n_classes(self, n_out):
        return 2

    def n_outputs(self, n_classes):
        return 1

    def encode_labels(self, codes, n_out, dtype):
        return codes.astype(dtype).reshape(-1, 1) if n_out == 1 else codes

    def count_correct(self, out, t, buf=None):
        # Every entry is a prediction: logit >= 0 against target >= 0.5.
        a = _scratch(buf, "pos", out.shape, np.bool_)
        b = _scratch(buf, "true", out.shape, np.bool_)
        np.greater_equal(out, 0.0, out=a)
        np.greater_equal(t, 0.5, out=b)
        np.equal(a, b, out=a)
        return int(np.count_nonzero(a))

    def n_judged(self, n_rows, n_out):
        return n_rows * n_out

    def row_correct(self, out, t):
        return np.mean((out >= 0.0) == (t >= 0.5), axis=1, dtype=np.float64)


# --------------------------------------------------------------------------- registry

REGISTRY = {}


def register(loss):
    """Add the :class:`Loss` instance ``loss`` to the registry."""
    if not isinstance(loss, Loss) or not isinstance(loss.name, str):
        raise TypeError(f"expected a named Loss instance, got {loss!r}")
    if loss.name in REGISTRY:
        raise ValueError(f"loss {loss.name!r} is already registered")
    REGISTRY[loss.name] = loss
    return loss


for _loss in (MeanSquaredError(), CrossEntropy(), BinaryCrossEntropy()):
    register(_loss)
del _loss

NAMES = tuple(REGISTRY)


def get(name):
    """The :class:`Loss` called ``name`` (``ValueError`` if unknown)."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown loss {name!r}; expected one of {list(REGISTRY)}")
    return REGISTRY[name]


# --------------------------------------------------------------------------- backend table

_WEIGHT_DOC = """``weight``: None (the mean over rows), or float64 row coefficients ``c`` (N,):
J = sum_n c_n l_n and row n of grad is scaled by c_n instead of 1/N (the caller
normalises, e.g. ``c = w / sum(w)`` for sample weights ``w``, or by the whole
set's sum for a chunk of it, so chunks add up)."""

_LABELS_DOC = "``labels`` is an int64 array (N,) with values in [0, K)."

_ROP_DOC = """Validated: ``out`` (N, K), ``Rout`` and ``Rgrad`` (m, N, K) of one float dtype;
``m`` directions at once."""


class LossKernel(NamedTuple):
    """One backend loss function: ``be.<name>(out, target, grad, weight=None) -> J``
    (form ``"targets"`` or ``"labels"``), or a loss's R-operator
    ``be.<name>(out, Rout, Rgrad)`` (form ``"rop"``)."""

    name: str
    """The backend function (``"loss_mse"``), also the compiled kernel's name."""
    reference: Callable
    """Its NumPy specification (the same arguments, no checks)."""
    form: str
    """``"targets"``: float rows ``(N, K)``; ``"labels"``: int64 labels ``(N,)``;
    ``"rop"``: the R-operator."""

    @property
    def takes_labels(self):
        """Targets are int64 labels ``(N,)`` rather than float rows ``(N, K)``."""
        return self.form == "labels"

    @property
    def doc(self):
        """The backend function's docstring: the reference's summary, then the
        target form and the ``weight`` convention (or the R-operator's shapes)."""
        summary = inspect.cleandoc(self.reference.__doc__ or self.name).split("\n\n")[0]
        if self.form == "rop":
            return "\n\n".join([summary, _ROP_DOC])
        parts = [summary, _LABELS_DOC] if self.takes_labels else [summary]
        return "\n\n".join(parts + [_WEIGHT_DOC])


def backend_kernels():
    """The loss functions every backend defines, one :class:`LossKernel` per kernel
    name the registry's losses use (label kernels first, in registry order).

    Both backends build their ``loss_*`` functions from this table (the NumPy one
    validates and calls ``reference``, the compiled one validates and calls the
    kernel of the same name) and ``nncore.backend.BACKEND_API`` lists the names,
    so adding a kernel touches no backend file. Losses may share a kernel; a name
    given two different references or none is a ``ValueError``.
    """
    return _table(lambda loss: ((loss.label_kernel, loss.label_reference_fn, "labels"),
                                (loss.kernel, loss.reference_fn, "targets")))


def rop_kernels():
    """The loss R-operators every backend defines (``Loss.rop_kernel``, form
    ``"rop"``), one :class:`LossKernel` per name, built and checked as
    :func:`backend_kernels`: the NumPy backend validates and calls
    ``Loss.rop_reference_fn``, the compiled one the kernel of the same name."""
    return _table(lambda loss: ((loss.rop_kernel, loss.rop_reference_fn, "rop"),))


def _table(entries):
    """``LossKernel`` rows from ``entries(loss) -> ((name, reference, form), ...)``
    over the registry: the first reference of each name, later losses may reuse
    it; a name with two references or forms, or none, is a ``ValueError``."""
    rows = {}
    for loss in REGISTRY.values():
        for name, reference, form in entries(loss):
            if name is None:
                continue
            known = rows.get(name)
            if known is not None and reference in (None, known.reference) \
                    and form == known.form:
                continue                    # a second loss reusing the kernel
            if known is not None or reference is None:
                raise ValueError(f"loss {loss.name!r}: kernel {name!r} needs one reference "
                                 "and one target form across the registry")
            rows[name] = LossKernel(name, reference, form)
    return tuple(rows.values())
