"""Small synthetic data sets that need no download.

Each function returns ``(X, y)``: ``X`` float64 of shape ``(n, n_features)``,
``y`` int64 class labels (classification) or float64 targets (regression).
``available()`` lists them and ``get(name, **kwargs)`` loads one by name.
"""

from __future__ import annotations

import numpy as np

from ._checks import integer, real

__all__ = ["xor", "spirals", "moons", "circles", "sine", "available", "get"]


def _n(n, minimum=2):
    return integer(n, "n", low=minimum)


def _noise(noise):
    return real(noise, "noise", low=0.0)


def _split(n):
    return n - n // 2, n // 2


def _jitter_label_shuffle(X, n0, n1, noise, rng):
    """Add Gaussian jitter to ``X`` (n0 rows of class 0, then n1 of class 1),
    label it and shuffle the rows (in this order, so seeds keep their data)."""
    if noise:
        X += rng.normal(0.0, noise, X.shape)
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    perm = rng.permutation(n0 + n1)
    return X[perm], y[perm]


def xor():
    """The four XOR points: X in {0, 1}^2, y = x1 xor x2."""
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return X, y


def spirals(n=400, noise=0.0, seed=None, turns=1.5, radius=4.0):
    """Two interleaved spirals (Lang & Witbrock), ``n`` points in total.

    Class 1 is class 0 rotated by 180 degrees; the radius grows linearly from
    0 to ``radius`` over ``turns`` turns (the default spread, a few units,
    suits tanh networks without rescaling).

    Parameters
    ----------
    n : int
        Number of points (>= 2), split evenly between the two classes.
    noise : float
        Standard deviation of Gaussian jitter added to ``X`` (>= 0).
    seed : int or None
        Seed of the jitter and of the row shuffle.
    turns : float
        Turns of each spiral (> 0).
    radius : float
        Outer radius (> 0).

    Returns
    -------
    X : ndarray of shape (n, 2), float64
    y : ndarray of shape (n,), int64 labels 0/1

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    n = _n(n)
    noise = _noise(noise)
    turns = real(turns, "turns", low=0.0, low_open=True)
    radius = real(radius, "radius", low=0.0, low_open=True)
    rng = np.random.default_rng(seed)
    n0, n1 = _split(n)
    parts = []
    for cls, m in ((0, n0), (1, n1)):
        t = np.linspace(0.0, 1.0, m, endpoint=False) + 0.5 / m
        r = radius * t
        theta = 2.0 * np.pi * turns * t + np.pi * cls
        parts.append(np.column_stack([r * np.cos(theta), r * np.sin(theta)]))
    X = np.vstack(parts)
    return _jitter_label_shuffle(X, n0, n1, noise, rng)


def moons(n=200, noise=0.1, seed=None):
    """Two interleaving half circles (as ``sklearn.datasets.make_moons``).

    Parameters
    ----------
    n : int
        Number of points (>= 2), split evenly between the two classes.
    noise : float
        Standard deviation of Gaussian jitter added to ``X`` (>= 0).
    seed : int or None
        Seed of the jitter and of the row shuffle.

    Returns
    -------
    X : ndarray of shape (n, 2), float64
    y : ndarray of shape (n,), int64 labels 0/1

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    n = _n(n)
    noise = _noise(noise)
    rng = np.random.default_rng(seed)
    n0, n1 = _split(n)
    a = np.linspace(0.0, np.pi, n0)
    b = np.linspace(0.0, np.pi, n1)
    X = np.vstack([np.column_stack([np.cos(a), np.sin(a)]),
                   np.column_stack([1.0 - np.cos(b), 0.5 - np.sin(b)])])
    return _jitter_label_shuffle(X, n0, n1, noise, rng)


def circles(n=200, noise=0.05, factor=0.5, seed=None):
    """A small circle (class 1, radius ``factor``) inside a unit circle (class 0).

    Parameters
    ----------
    n : int
        Number of points (>= 2), split evenly between the two classes.
    noise : float
        Standard deviation of Gaussian jitter added to ``X`` (>= 0).
    seed : int or None
        Seed of the jitter and of the row shuffle.
    factor : float
        Radius of the inner circle, in (0, 1).

    Returns
    -------
    X : ndarray of shape (n, 2), float64
    y : ndarray of shape (n,), int64 labels 0/1

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    n = _n(n)
    noise = _noise(noise)
    factor = real(factor, "factor", low=0.0, low_open=True, high=1.0, high_open=True)
    rng = np.random.default_rng(seed)
    n0, n1 = _split(n)
    a = np.linspace(0.0, 2 * np.pi, n0, endpoint=False)
    b = np.linspace(0.0, 2 * np.pi, n1, endpoint=False)
    X = np.vstack([np.column_stack([np.cos(a), np.sin(a)]),
                   factor * np.column_stack([np.cos(b), np.sin(b)])])
    return _jitter_label_shuffle(X, n0, n1, noise, rng)


def sine(n=200, noise=0.1, seed=None):
    """Regression: ``y = sin(x) + noise``, x uniform in [-pi, pi].

    Parameters
    ----------
    n : int
        Number of points (>= 1).
    noise : float
        Standard deviation of Gaussian noise added to ``y`` (>= 0).
    seed : int or None

    Returns
    -------
    X : ndarray of shape (n, 1), float64
    y : ndarray of shape (n,), float64

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    n = _n(n, 1)
    noise = _noise(noise)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-np.pi, np.pi, n)
    y = np.sin(x)
    if noise:
        y = y + rng.normal(0.0, noise, n)
    return x.reshape(-1, 1), y


_REGISTRY = {"xor": xor, "spirals": spirals, "moons": moons, "circles": circles, "sine": sine}
_TASKS = {"xor": "classification", "spirals": "classification", "moons": "classification",
          "circles": "classification", "sine": "regression"}


def available():
    """Names of the built-in data sets, mapped to their task."""
    return dict(_TASKS)


def get(name, **kwargs):
    """Load a built-in data set by name, e.g. ``get("spirals", n=500, seed=0)``.

    Parameters
    ----------
    name : str
        One of :func:`available` (case-insensitive).
    **kwargs
        Passed to that data set's function.

    Returns
    -------
    X, y : ndarray

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    """
    if not isinstance(name, str) or name.lower() not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name.lower()](**kwargs)
