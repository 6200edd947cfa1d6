"""Data augmentation for ``fit(augment=...)``: callables ``(X_batch, rng) -> X_batch``.

Images are flat rows (as the network sees them) together with an
``image_shape`` of ``(H, W)`` or ``(H, W, C)`` (channels last, C order), so a
row reshapes to ``image_shape``. Every transform draws its randomness from the
``numpy.random.Generator`` it is given (``fit(seed=)`` makes runs
reproducible), works on the whole batch at once (no Python loop per sample),
and returns a new array of the input's shape and dtype: the caller's array is
never modified.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._checks import real
from .errors import InvalidParameterError

__all__ = ["Augmentation", "GaussianNoise", "RandomShift", "RandomFlip", "Compose"]


def _rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, "
                    f"got {type(rng).__name__}")


def _batch(X):
    if not isinstance(X, np.ndarray):
        raise TypeError(f"X must be a numpy.ndarray, got {type(X).__name__}")
    if X.dtype.kind != "f":
        raise TypeError(f"X must be a floating array, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (samples, features), got shape {X.shape}")
    return X


def _image_shape(image_shape):
    if (not isinstance(image_shape, (tuple, list)) or len(image_shape) not in (2, 3)
            or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1
                       for d in image_shape)):
        raise InvalidParameterError(f"image_shape must be (H, W) or (H, W, C) of positive integers, "
                         f"got {image_shape!r}")
    return tuple(int(d) for d in image_shape)


def _probability(p, name="p"):
    return real(p, name, low=0.0, high=1.0)


class Augmentation:
    """Base class: ``aug(X, rng)`` validates and calls ``_apply`` on the batch."""

    def __call__(self, X, rng=None):
        X = _batch(X)
        rng = _rng(rng)
        if X.shape[0] == 0:
            return X.copy()
        return self._apply(X, rng)

    def _apply(self, X, rng):  # pragma: no cover - abstract
        raise NotImplementedError


class _ImageAugmentation(Augmentation):
    def _images(self, X):
        size = math.prod(self.image_shape)
        if X.shape[1] != size:
            raise ValueError(f"rows of length {X.shape[1]} do not match image_shape "
                             f"{self.image_shape} ({size} values)")
        h, w = self.image_shape[:2]
        c = self.image_shape[2] if len(self.image_shape) == 3 else 1
        return X.reshape(X.shape[0], h, w, c)


class GaussianNoise(Augmentation):
    """Add ``N(0, std^2)`` noise to every value.

    Parameters
    ----------
    std : float
        Standard deviation, >= 0.
    """

    def __init__(self, std):
        self.std = real(std, "std", low=0.0)

    def _apply(self, X, rng):
        noise = rng.standard_normal(X.shape, dtype=X.dtype if X.dtype in (
            np.float32, np.float64) else np.float64)
        noise *= self.std
        return (X + noise).astype(X.dtype, copy=False)

    def __repr__(self):
        return f"GaussianNoise(std={self.std!r})"


class RandomShift(_ImageAugmentation):
    """Translate each image by a random integer offset, filling with zeros.

    Sample ``n`` is shifted by ``(dy, dx)`` drawn uniformly from
    ``[-max_dy, max_dy] x [-max_dx, max_dx]``: pixel ``(i, j)`` moves to
    ``(i + dy, j + dx)`` (as ``np.roll``, but what leaves the image is dropped
    and the uncovered border is 0).

    Parameters
    ----------
    image_shape : (H, W) or (H, W, C)
    max_shift : int or (int, int)
        Largest shift in pixels (rows, columns), >= 0.
    """

    def __init__(self, image_shape, max_shift):
        self.image_shape = _image_shape(image_shape)
        if isinstance(max_shift, numbers.Integral) and not isinstance(max_shift, bool):
            max_shift = (max_shift, max_shift)
        if (not isinstance(max_shift, (tuple, list)) or len(max_shift) != 2
                or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0
                           for s in max_shift)):
            raise InvalidParameterError(f"max_shift must be an int >= 0 or a pair of them, "
                                        f"got {max_shift!r}")
        self.max_shift = (int(max_shift[0]), int(max_shift[1]))

    def _apply(self, X, rng):
        imgs = self._images(X)
        n, h, w, _ = imgs.shape
        my, mx = self.max_shift
        dy = rng.integers(-my, my + 1, size=n)
        dx = rng.integers(-mx, mx + 1, size=n)
        # Output (i, j) reads source (i - dy, j - dx) when that lies inside the
        # image: one gather for the whole batch, then zero the rest.
        src_i = np.arange(h)[None, :] - dy[:, None]          # (n, h)
        src_j = np.arange(w)[None, :] - dx[:, None]          # (n, w)
        ok_i = (src_i >= 0) & (src_i < h)
        ok_j = (src_j >= 0) & (src_j < w)
        out = imgs[np.arange(n)[:, None, None],
                   np.clip(src_i, 0, h - 1)[:, :, None],
                   np.clip(src_j, 0, w - 1)[:, None, :]]     # (n, h, w, c), a new array
        out[~(ok_i[:, :, None] & ok_j[:, None, :])] = 0   # assignment, so inf*0 cannot leak NaN
        return out.reshape(X.shape)

    def __repr__(self):
        return f"RandomShift(image_shape={self.image_shape}, max_shift={self.max_shift})"


class RandomFlip(_ImageAugmentation):
    """Mirror each image with probability ``p``, independently per sample.

    Parameters
    ----------
    image_shape : (H, W) or (H, W, C)
    horizontal : bool, default True
        Flip left-right.
    vertical : bool, default False
        Flip up-down (drawn independently of the horizontal flip).
    p : float, default 0.5
    """

    def __init__(self, image_shape, horizontal=True, vertical=False, p=0.5):
        self.image_shape = _image_shape(image_shape)
        self.horizontal = bool(horizontal)
        self.vertical = bool(vertical)
        self.p = _probability(p)

    def _apply(self, X, rng):
        imgs = self._images(X)
        out = imgs.copy()
        n = imgs.shape[0]
        # Draw both masks unconditionally so the stream does not depend on flags.
        flip_h = rng.random(n) < self.p
        flip_v = rng.random(n) < self.p
        if self.horizontal and flip_h.any():
            out[flip_h] = out[flip_h][:, :, ::-1]
        if self.vertical and flip_v.any():
            out[flip_v] = out[flip_v][:, ::-1]
        return out.reshape(X.shape)

    def __repr__(self):
        return (f"RandomFlip(image_shape={self.image_shape}, horizontal={self.horizontal}, "
                f"vertical={self.vertical}, p={self.p})")


class Compose(Augmentation):
    """Apply transforms in order, all drawing from the same generator.

    Parameters
    ----------
    transforms : sequence of callables ``(X, rng) -> X``
    """

    def __init__(self, transforms):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose needs callables, got {type(t).__name__}")
        self.transforms = transforms

    def _apply(self, X, rng):
        out = X
        for t in self.transforms:
            out = t(out, rng)
            if not isinstance(out, np.ndarray) or out.shape != X.shape:
                raise ValueError(f"{t!r} returned {type(out).__name__} of shape "
                                 f"{getattr(out, 'shape', None)}, expected {X.shape}")
        if out is X:
            out = X.copy()
        return out.astype(X.dtype, copy=False)

    def __repr__(self):
        return f"Compose({self.transforms!r})"
