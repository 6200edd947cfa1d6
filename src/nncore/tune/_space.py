"""Search spaces: the known hyper-parameters, distributions, ``grid``, ``random``, JSON."""

from __future__ import annotations

import itertools
import math
import numbers

import numpy as np

__all__ = ["KNOWN_KEYS", "Uniform", "LogUniform", "RandInt", "Choice", "uniform",
           "loguniform", "randint", "choice", "grid", "random", "space_from_json"]

NETWORK_KEYS = ("hidden", "layers", "hidden_layer_sizes", "depth", "width", "activation", "loss",
                "dropout", "l1", "l2", "dtype", "init", "seed")
FIT_KEYS = ("optimizer", "lr", "learning_rate", "momentum", "weight_decay", "clip_norm",
            "batch_size", "epochs", "augment", "shuffle")
KNOWN_KEYS = frozenset(NETWORK_KEYS + FIT_KEYS)
# "hidden_layer_sizes" is nncore.sklearn's name for the same thing.
_ALIASES = {"layers": "hidden", "hidden_layer_sizes": "hidden", "learning_rate": "lr"}
DEFAULT_HIDDEN = (64,)

# --------------------------------------------------------------------------- distributions

class _Distribution:
    """A sampling distribution for :func:`random` (values are Python scalars)."""

    def sample(self, rng):  # pragma: no cover - abstract
        """Draw one value.

        Parameters
        ----------
        rng : numpy.random.Generator

        Returns
        -------
        float, int or the chosen value (a Python scalar)
        """
        raise NotImplementedError

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self).__name__, repr(self)))


def _check_bounds(low, high, name, positive=False):
    for v in (low, high):
        if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"{name}: bounds must be finite numbers, got {low!r}, {high!r}")
    if not low < high:
        raise ValueError(f"{name}: need low < high, got {low!r}, {high!r}")
    if positive and low <= 0:
        raise ValueError(f"{name}: bounds must be positive, got {low!r}, {high!r}")


class Uniform(_Distribution):
    """Real values uniform on ``[low, high)`` (see :func:`uniform`).

    Parameters
    ----------
    low, high : float
        Finite bounds, ``low < high``.
    """

    def __init__(self, low, high):
        _check_bounds(low, high, "uniform")
        self.low, self.high = float(low), float(high)

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def __repr__(self):
        return f"uniform({self.low!r}, {self.high!r})"


class LogUniform(_Distribution):
    """Positive reals with a uniform logarithm (see :func:`loguniform`).

    Parameters
    ----------
    low, high : float
        Finite positive bounds, ``low < high``.
    """

    def __init__(self, low, high):
        _check_bounds(low, high, "loguniform", positive=True)
        self.low, self.high = float(low), float(high)

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def __repr__(self):
        return f"loguniform({self.low!r}, {self.high!r})"


class RandInt(_Distribution):
    """Integers ``low .. high - 1`` (see :func:`randint`).

    Parameters
    ----------
    low, high : int
        Bounds, ``low < high`` (``high`` exclusive).
    """

    def __init__(self, low, high):
        for v in (low, high):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool):
                raise ValueError(f"randint: bounds must be integers, got {low!r}, {high!r}")
        if not low < high:
            raise ValueError(f"randint: need low < high (high is exclusive), got {low!r}, {high!r}")
        self.low, self.high = int(low), int(high)

    def sample(self, rng):
        return int(rng.integers(self.low, self.high))

    def __repr__(self):
        return f"randint({self.low!r}, {self.high!r})"


class Choice(_Distribution):
    """One of a list of values (see :func:`choice`); :func:`grid` enumerates them.

    Parameters
    ----------
    values : iterable
        The candidates (at least one).
    """

    def __init__(self, values):
        values = list(values)
        if not values:
            raise ValueError("choice: needs at least one value")
        self.values = values

    def sample(self, rng):
        return _plain(self.values[int(rng.integers(len(self.values)))])

    def __repr__(self):
        return f"choice({self.values!r})"


def uniform(low, high):
    """Real values uniform on ``[low, high)``.

    Parameters
    ----------
    low, high : float
        Finite bounds, ``low < high``.

    Returns
    -------
    Uniform

    Raises
    ------
    ValueError
        If a bound is not a finite number or ``low >= high``.
    """
    return Uniform(low, high)


def loguniform(low, high):
    """Positive real values whose logarithm is uniform on ``[log low, log high)``.

    Parameters
    ----------
    low, high : float
        Finite positive bounds, ``low < high``.

    Returns
    -------
    LogUniform

    Raises
    ------
    ValueError
        If a bound is not a finite positive number or ``low >= high``.
    """
    return LogUniform(low, high)


def randint(low, high):
    """Integers uniform on ``low, ..., high - 1`` (``high`` exclusive, as NumPy).

    Parameters
    ----------
    low, high : int
        Bounds, ``low < high``.

    Returns
    -------
    RandInt

    Raises
    ------
    ValueError
        If a bound is not an integer or ``low >= high``.
    """
    return RandInt(low, high)


def choice(values):
    """One of ``values``, each with equal probability.

    Parameters
    ----------
    values : iterable
        The candidates (at least one); :func:`grid` enumerates them all.

    Returns
    -------
    Choice

    Raises
    ------
    ValueError
        If ``values`` is empty.
    """
    return Choice(values)


_DIST_JSON = {"uniform": Uniform, "loguniform": LogUniform, "randint": RandInt,
              "choice": Choice}


def _plain(v):
    """NumPy scalars -> Python scalars, so records compare, print and serialise cleanly."""
    if isinstance(v, np.generic):
        return v.item()
    return v


# --------------------------------------------------------------------------- spaces

def _check_keys(config, where="configuration"):
    if not isinstance(config, dict):
        raise TypeError(f"a {where} must be a dict, got {type(config).__name__}")
    bad = [k for k in config if k not in KNOWN_KEYS]
    if bad:
        raise ValueError(
            f"unknown hyper-parameter(s) {sorted(map(str, bad))} in {where}; "
            f"known: {sorted(KNOWN_KEYS)}")
    for a, b in (("hidden", "layers"), ("hidden", "hidden_layer_sizes"),
                 ("layers", "hidden_layer_sizes"), ("lr", "learning_rate")):
        if a in config and b in config:
            raise ValueError(f"give either {a!r} or its alias {b!r}, not both")
    shape = "hidden" in config or "layers" in config or "hidden_layer_sizes" in config
    if shape and ("depth" in config or "width" in config):
        raise ValueError("give the network shape either as 'hidden' (layer widths) "
                         "or as 'depth' and 'width', not both")


def _candidates(name, value):
    """The candidate values of one space entry (a list, a choice, or one fixed value)."""
    if isinstance(value, Choice):
        return [_plain(v) for v in value.values]
    if isinstance(value, _Distribution):
        raise ValueError(f"{name!r} is a continuous distribution ({value!r}); grid() needs "
                         "lists of values, use random(space, n, seed) instead")
    if isinstance(value, list):
        if not value:
            raise ValueError(f"{name!r} has an empty list of candidate values")
        return [_plain(v) for v in value]
    return [_plain(value)]


def grid(space):
    """All combinations of the candidate values in ``space``.

    Parameters
    ----------
    space : dict
        Hyper-parameter name -> list of candidate values (or ``choice([...])``).
        Any other value (a number, a string, a tuple such as ``hidden=(64, 32)``)
        is fixed. For ``hidden``, a list entry that is an int means one hidden
        layer of that width: ``{"hidden": [32, (64, 32)]}`` has two candidates.

    Returns
    -------
    list of dict
        The Cartesian product, in a fixed order: the last key varies fastest
        (as ``itertools.product`` and scikit-learn's ``ParameterGrid``).

    Raises
    ------
    ValueError
        Unknown hyper-parameter names, empty candidate lists, or continuous
        distributions (use :func:`random`).
    """
    _check_keys(space, "space")
    names = list(space)
    cands = [_candidates(k, space[k]) for k in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*cands)]


def random(space, n, seed=0):
    """``n`` configurations sampled independently from ``space``.

    Parameters
    ----------
    space : dict
        Name -> list of values (sampled uniformly), a distribution
        (:func:`uniform`, :func:`loguniform`, :func:`randint`, :func:`choice`)
        or a fixed value.
    n : int
        Number of configurations (> 0).
    seed : int, default 0
        Seed of the sampler; the same seed gives the same list.

    Returns
    -------
    list of dict
    """
    _check_keys(space, "space")
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    for k, v in space.items():
        if isinstance(v, list) and not v:
            raise ValueError(f"{k!r} has an empty list of candidate values")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(int(n)):
        cfg = {}
        for k, v in space.items():
            if isinstance(v, _Distribution):
                cfg[k] = v.sample(rng)
            elif isinstance(v, list):
                cfg[k] = _plain(v[int(rng.integers(len(v)))])
            else:
                cfg[k] = _plain(v)
        out.append(cfg)
    return out


def space_from_json(obj):
    """A space from parsed JSON: ``{"lr": {"loguniform": [1e-4, 1e-1]}}`` is a distribution.

    ``{"choice": [...]}``, ``{"uniform": [a, b]}``, ``{"randint": [a, b]}`` likewise;
    lists are candidate lists, other values fixed. For ``hidden``, inner lists
    are layer widths (JSON has no tuples): ``{"hidden": [[64, 32], [32]]}``.

    Parameters
    ----------
    obj : dict
        Parsed JSON, hyper-parameter name -> value, list or distribution object.

    Returns
    -------
    dict
        The space, ready for :func:`grid` / :func:`random`.

    Raises
    ------
    ValueError
        If ``obj`` is not a dict or a distribution object is malformed.
    """
    if not isinstance(obj, dict):
        raise ValueError("a space must be a JSON object (name -> values)")
    space = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            if len(v) != 1 or next(iter(v)) not in _DIST_JSON:
                raise ValueError(f"{k!r}: a distribution is written as one of "
                                 f"{sorted(_DIST_JSON)} -> arguments, got {v!r}")
            (kind, args), = v.items()
            # A JSON string is iterable too: {"choice": "adam"} must not become a, d, a, m.
            if kind == "choice" and not isinstance(args, list):
                raise ValueError(f"{k!r}: choice takes a list of values, got {args!r}")
            if kind != "choice" and not (isinstance(args, list) and len(args) == 2):
                raise ValueError(f"{k!r}: {kind} takes [low, high], got {args!r}")
            space[k] = _DIST_JSON[kind](args) if kind == "choice" else _DIST_JSON[kind](*args)
        else:
            space[k] = v
    for key in ("hidden", "layers", "hidden_layer_sizes"):
        if key in space:
            v = space[key]
            if isinstance(v, list) and v and all(isinstance(e, numbers.Integral) for e in v):
                space[key] = v  # candidates, each one hidden layer of that width
            elif isinstance(v, list):
                space[key] = [tuple(e) if isinstance(e, list) else e for e in v]
            elif isinstance(v, Choice):
                v.values = [tuple(e) if isinstance(e, list) else e for e in v.values]
    return space


# --------------------------------------------------------------------------- building a trial

def _normalise(config):
    cfg = {}
    for k, v in config.items():
        cfg[_ALIASES.get(k, k)] = v
    return cfg


def _hidden(cfg):
    if "hidden" in cfg:
        h = cfg["hidden"]
        if isinstance(h, numbers.Integral) and not isinstance(h, bool):
            h = (h,)
        if h is None:
            h = ()
        try:
            h = tuple(h)
        except TypeError:
            raise ValueError(f"hidden must be a sequence of layer widths, got {h!r}") from None
        for w in h:
            if not isinstance(w, numbers.Integral) or isinstance(w, bool) or w < 1:
                raise ValueError(f"hidden layer widths must be positive integers, got {h!r}")
        return tuple(int(w) for w in h)
    if "depth" in cfg or "width" in cfg:
        depth = cfg.get("depth", 1)
        width = cfg.get("width", DEFAULT_HIDDEN[0])
        for name, v, lo in (("depth", depth, 0), ("width", width, 1)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        return (int(width),) * int(depth)
    return DEFAULT_HIDDEN

