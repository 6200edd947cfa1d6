"""Weights-only penalties added to a network's loss."""

from __future__ import annotations

from ._checks import real

__all__ = ["Regularizer", "L1", "L2", "ElasticNet", "regularizer_from_config"]


class Regularizer:
    """Weights-only penalty ``l1 * sum|w| + l2 * sum w^2`` (biases are never penalised)."""

    l1 = 0.0
    l2 = 0.0

    def get_config(self):
        """The penalty as a JSON-serialisable dict."""
        return {"type": type(self).__name__, "l1": self.l1, "l2": self.l2}

    def __eq__(self, other):
        return type(self) is type(other) and (self.l1, self.l2) == (other.l1, other.l2)

    def __hash__(self):
        return hash((type(self).__name__, self.l1, self.l2))


class L1(Regularizer):
    """``l * sum |w|`` over all weights (gradient ``l * sign(w)``, ``sign(0) = 0``).

    Parameters
    ----------
    l : float
        Non-negative strength.

    Raises
    ------
    ValueError
        If ``l`` is not a finite real number >= 0.
    """

    def __init__(self, l):  # noqa: E741 - the lecture's name
        self.l1 = real(l, "l", low=0.0)

    def __repr__(self):
        return f"L1({self.l1:g})"


class L2(Regularizer):
    """``l * sum w^2`` over all weights (gradient ``2 l w``).

    Parameters
    ----------
    l : float
        Non-negative strength.

    Raises
    ------
    ValueError
        If ``l`` is not a finite real number >= 0.
    """

    def __init__(self, l):  # noqa: E741
        self.l2 = real(l, "l", low=0.0)

    def __repr__(self):
        return f"L2({self.l2:g})"


class ElasticNet(Regularizer):
    """``l1 * sum |w| + l2 * sum w^2`` over all weights.

    Parameters
    ----------
    l1, l2 : float
        Non-negative strengths of the L1 and L2 terms.

    Raises
    ------
    ValueError
        If either is not a finite real number >= 0.
    """

    def __init__(self, l1, l2):
        self.l1 = real(l1, "l1", low=0.0)
        self.l2 = real(l2, "l2", low=0.0)

    def __repr__(self):
        return f"ElasticNet({self.l1:g}, {self.l2:g})"


def regularizer_from_config(cfg):
    if cfg is None:
        return None
    kind = cfg.get("type")
    if kind == "L1":
        return L1(cfg["l1"])
    if kind == "L2":
        return L2(cfg["l2"])
    if kind == "ElasticNet":
        return ElasticNet(cfg["l1"], cfg["l2"])
    raise ValueError(f"unknown regularizer {kind!r}")

