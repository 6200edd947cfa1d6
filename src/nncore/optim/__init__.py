"""Optimizers: first-order (one step per batch) and full-batch (with a line search).

First-order optimizers (``SGD``, ``Adagrad``, ``RMSprop``, ``Adam``, ``AdamW``)
update a flat parameter vector in place with torch.optim's rules::

    opt = nc.optim.Adam(1e-3)
    opt.step(params, grads)

The full-batch optimizers (``ConjugateGradient``, ``Newton``, ``BFGS``,
``DFP``, ``LBFGS``) live in ``nncore.optim._full_batch``, the second-order
ones in ``_second_order`` and the classic toolbox (``Rprop``, ``Quickprop``,
``ScaledConjugateGradient``) in ``_classic``; all are imported on first use.
``get(name)`` resolves the names ``fit(optimizer=...)`` accepts.
"""

from __future__ import annotations

from . import _first_order
from ._first_order import *  # noqa: F401,F403  (the classes named in _first_order.__all__)
from ._first_order import FIRST_ORDER as _FIRST_ORDER

__all__ = [
    *_first_order.__all__,
    "ConjugateGradient", "Newton", "BFGS", "DFP", "LBFGS",
    "LevenbergMarquardt", "BayesianRegularization", "NewtonCG",
    "Rprop", "Quickprop", "ScaledConjugateGradient", "get", "NAMES",
]

_FULL_BATCH = {
    "cg": "ConjugateGradient",
    "newton": "Newton",
    "bfgs": "BFGS",
    "dfp": "DFP",
    "lbfgs": "LBFGS",
    "lm": "LevenbergMarquardt",
    "br": "BayesianRegularization",
    "newton-cg": "NewtonCG",
    "rprop": "Rprop",
    "quickprop": "Quickprop",
    "scg": "ScaledConjugateGradient",
}
# Full-batch classes outside _full_batch: class name -> module.
_MODULE_OF = {"LevenbergMarquardt": "_second_order", "BayesianRegularization": "_second_order",
              "NewtonCG": "_second_order", "Rprop": "_classic", "Quickprop": "_classic",
              "ScaledConjugateGradient": "_classic"}
NAMES = tuple(_FIRST_ORDER) + tuple(_FULL_BATCH)


def __getattr__(name):
    # Lazy: the full-batch module is optional for users of first-order methods
    # and is written separately.
    if name in _FULL_BATCH.values():
        return _full_batch_class(name)
    raise AttributeError(f"module 'nncore.optim' has no attribute {name!r}")


def _full_batch_class(name):
    from importlib import import_module
    module = import_module("." + _MODULE_OF.get(name, "_full_batch"), __name__)
    return getattr(module, name)


def __dir__():
    return sorted(set(globals()) | set(_FULL_BATCH.values()))


def _is_optimizer(obj):
    return hasattr(obj, "full_batch") and (hasattr(obj, "step") or hasattr(obj, "iterate"))


def get(optimizer, **kwargs):
    """Resolve an optimizer name, class or instance.

    Parameters
    ----------
    optimizer : str, optimizer class or optimizer instance
        A name from :data:`NAMES` (case-insensitive): ``"sgd"``, ``"momentum"``
        (SGD with momentum 0.9), ``"nesterov"`` (SGD with Nesterov momentum
        0.9), ``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"adamw"``, ``"cg"``,
        ``"newton"``, ``"bfgs"``, ``"dfp"``, ``"lbfgs"``, ``"lm"``
        (Levenberg–Marquardt), ``"br"`` (Bayesian regularisation),
        ``"newton-cg"``, ``"rprop"``, ``"quickprop"``, ``"scg"``.
    **kwargs
        Constructor arguments for a name or class (e.g. ``lr=0.1``).

    Returns
    -------
    optimizer
        A fresh instance for a name or class; an instance is returned as is.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones).
    TypeError
        For anything else, or keyword arguments given with an instance.
    """
    if isinstance(optimizer, str):
        key = optimizer.strip().lower()
        if key in _FIRST_ORDER:
            cls, defaults = _FIRST_ORDER[key]
            return cls(**{**defaults, **kwargs})
        if key in _FULL_BATCH:
            return _full_batch_class(_FULL_BATCH[key])(**kwargs)
        raise ValueError(f"unknown optimizer {optimizer!r}; valid names: {', '.join(NAMES)}")
    if isinstance(optimizer, type) and _is_optimizer(optimizer):
        return optimizer(**kwargs)
    if _is_optimizer(optimizer):
        if kwargs:
            raise TypeError(f"keyword arguments {sorted(kwargs)} given with an optimizer "
                            "instance; pass them to its constructor instead")
        return optimizer
    from ..errors import InvalidParameterError  # a ValueError and a TypeError
    raise InvalidParameterError(f"optimizer must be a name ({', '.join(NAMES)}) or an optimizer "
                                f"instance, got {type(optimizer).__name__}")
