"""Augmentations: shapes, statistics, closed forms, no mutation, reproducibility."""

import itertools

import numpy as np
import pytest

from nncore import augment


def shift_zero(img, dy, dx):
    """np.roll by (dy, dx) with the wrapped-around border set to 0 (the closed form)."""
    out = np.roll(img, (dy, dx), axis=(0, 1))
    if dy > 0:
        out[:dy] = 0
    elif dy < 0:
        out[dy:] = 0
    if dx > 0:
        out[:, :dx] = 0
    elif dx < 0:
        out[:, dx:] = 0
    return out


def images(n, shape, dtype=np.float64, seed=0):
    # strictly positive distinct values, so every shift/flip gives a distinct image
    rng = np.random.default_rng(seed)
    return (1.0 + rng.random((n, int(np.prod(shape))))).astype(dtype)


ALL = [
    lambda: augment.GaussianNoise(0.3),
    lambda: augment.RandomShift((5, 6), 2),
    lambda: augment.RandomFlip((5, 6), vertical=True),
    lambda: augment.Compose([augment.RandomFlip((5, 6)), augment.RandomShift((5, 6), (1, 2)),
                             augment.GaussianNoise(0.1)]),
]


@pytest.mark.parametrize("make", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_dtype_no_mutation_and_reproducible(make, dtype):
    X = images(64, (5, 6), dtype)
    X.flags.writeable = False       # any write to the caller's array would raise
    before = X.copy()
    aug = make()
    out = aug(X, np.random.default_rng(7))
    assert out.shape == X.shape and out.dtype == dtype
    assert not np.shares_memory(out, X)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(out, aug(X, np.random.default_rng(7)))
    assert not np.array_equal(out, aug(X, np.random.default_rng(8)))
    assert aug(X[:0], np.random.default_rng(0)).shape == (0, 30)


def test_gaussian_noise_statistics():
    n, d, std = 4000, 25, 0.5
    X = np.full((n, d), 3.0)
    noise = augment.GaussianNoise(std)(X, np.random.default_rng(0)) - 3.0
    m = n * d
    # mean within 5 standard errors; sample std within 5 of its standard errors
    assert abs(noise.mean()) < 5 * std / np.sqrt(m)
    assert abs(noise.std() - std) < 5 * std / np.sqrt(2 * m)
    out = augment.GaussianNoise(0.0)(X, np.random.default_rng(0))
    np.testing.assert_array_equal(out, X)


@pytest.mark.parametrize("shape,max_shift", [((5, 6), 2), ((4, 7, 3), (1, 3)), ((3, 3), 0)])
def test_random_shift_matches_roll_with_zero_fill(shape, max_shift):
    n = 300
    X = images(n, shape)
    out = augment.RandomShift(shape, max_shift)(X, np.random.default_rng(1))
    my, mx = (max_shift, max_shift) if isinstance(max_shift, int) else max_shift
    candidates = list(itertools.product(range(-my, my + 1), range(-mx, mx + 1)))
    seen = set()
    for x, o in zip(X, out):
        img, got = x.reshape(shape), o.reshape(shape)
        hits = [c for c in candidates if np.array_equal(got, shift_zero(img, *c))]
        assert len(hits) == 1, "output is not a zero-filled shift of its input"
        seen.add(hits[0])
    assert seen == set(candidates)   # every shift in range occurs (300 draws)


def test_random_shift_beyond_image_gives_zeros():
    X = images(20, (2, 2))
    out = augment.RandomShift((2, 2), 5)(X, np.random.default_rng(0))
    for x, o in zip(X, out):
        # any |shift| >= 2 empties the image; otherwise it is a proper shift
        opts = [shift_zero(x.reshape(2, 2), dy, dx) for dy in range(-5, 6) for dx in range(-5, 6)]
        assert any(np.array_equal(o.reshape(2, 2), c) for c in opts)


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 2)])
def test_random_flip_per_sample(shape):
    n = 2000
    X = images(n, shape)
    out = augment.RandomFlip(shape, horizontal=True, vertical=True)(X, np.random.default_rng(2))
    kinds = []
    for x, o in zip(X, out):
        img, got = x.reshape(shape), o.reshape(shape)
        options = {"none": img, "h": img[:, ::-1], "v": img[::-1], "hv": img[::-1, ::-1]}
        kind = [k for k, v in options.items() if np.array_equal(got, v)]
        assert len(kind) == 1
        kinds.append(kind[0])
    counts = {k: kinds.count(k) for k in ("none", "h", "v", "hv")}
    # each combination has probability 1/4: binomial sd = sqrt(n * 3/16) ~ 19
    for k, c in counts.items():
        assert abs(c - n / 4) < 5 * np.sqrt(n * 3 / 16), counts


def test_random_flip_probability_extremes():
    X = images(10, (3, 4))
    np.testing.assert_array_equal(augment.RandomFlip((3, 4), p=0.0)(X, np.random.default_rng(0)), X)
    flipped = augment.RandomFlip((3, 4), p=1.0)(X, np.random.default_rng(0))
    np.testing.assert_array_equal(flipped, X.reshape(10, 3, 4)[:, :, ::-1].reshape(10, 12))


def test_compose_applies_in_order_with_one_generator():
    X = images(50, (5, 6))
    flip, shift = augment.RandomFlip((5, 6)), augment.RandomShift((5, 6), 1)
    got = augment.Compose([flip, shift])(X, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    expected = shift(flip(X, rng), rng)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(augment.Compose([])(X, np.random.default_rng(0)), X)


def test_validation():
    with pytest.raises(ValueError, match="image_shape"):
        augment.RandomShift((5, 5), 1)(images(3, (5, 6)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="image_shape"):
        augment.RandomFlip((5, 0), 1)
    with pytest.raises(ValueError, match="image_shape"):
        augment.RandomFlip((30,))
    with pytest.raises(ValueError):
        augment.RandomShift((5, 6), -1)
    with pytest.raises(ValueError):
        augment.RandomShift((5, 6), (1, 2, 3))
    with pytest.raises(ValueError):
        augment.GaussianNoise(-0.1)
    with pytest.raises(ValueError):
        augment.RandomFlip((5, 6), p=1.5)
    with pytest.raises(TypeError):
        augment.GaussianNoise(0.1)(np.zeros((3, 4), np.int64), np.random.default_rng(0))
    with pytest.raises(ValueError):
        augment.GaussianNoise(0.1)(np.zeros(4), np.random.default_rng(0))
    with pytest.raises(TypeError):
        augment.GaussianNoise(0.1)(np.zeros((3, 4)), "seed")
    with pytest.raises(TypeError):
        augment.Compose([1])
    # an int seed is accepted for convenience
    out = augment.GaussianNoise(0.1)(np.zeros((3, 4)), 0)
    np.testing.assert_array_equal(out, augment.GaussianNoise(0.1)(np.zeros((3, 4)), 0))


def test_reprs():
    assert "RandomShift" in repr(augment.RandomShift((28, 28), 2))
    assert "GaussianNoise(std=0.1)" == repr(augment.GaussianNoise(0.1))
