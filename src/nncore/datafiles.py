"""Reading data files: CSV (header row), ``.npz`` (arrays ``X``, ``y``), built-in data sets.

Used by the command line (``nncore train/evaluate/predict/tune``). Every
problem with a file is a :class:`DataFileError` (a ``ValueError``) whose
message names the file and, for a CSV, the column and line.
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np

from . import datasets

__all__ = ["DataFileError", "Dataset", "read_data", "load_data", "builtin_names",
           "SKLEARN_SETS", "DESCRIPTIONS"]

SKLEARN_SETS = {
    # name: (loader name in sklearn.datasets, task)
    "digits": ("load_digits", "classification"),
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
DESCRIPTIONS = {
    "xor": "the four XOR points (2 features)",
    "spirals": "two interleaved spirals, 400 points (2 features)",
    "moons": "two half moons, 200 points (2 features)",
    "circles": "a circle inside a circle, 200 points (2 features)",
    "sine": "y = sin(x) + noise, 200 points (1 feature)",
    "digits": "8x8 images of handwritten digits, 1797 x 64, 10 classes",
    "iris": "iris flowers, 150 x 4, 3 classes",
    "wine": "wine cultivars, 178 x 13, 3 classes",
    "breast_cancer": "breast cancer diagnosis, 569 x 30, 2 classes",
    "diabetes": "diabetes progression, 442 x 10, regression",
}


class DataFileError(ValueError):
    """A data file (or data-set name) that cannot be used; the message names it."""


class Dataset:
    """Features, raw targets and what we know about them."""

    def __init__(self, X, y, feature_names, target, task=None, source=""):
        self.X = X
        self.y = y
        self.feature_names = list(feature_names)
        self.target = target
        self.task = task
        self.source = source


def builtin_names():
    """Names of the built-in data sets (synthetic ones, then scikit-learn's)."""
    return list(datasets.available()) + list(SKLEARN_SETS)


def _load_builtin(name, seed=0):
    if name in datasets.available():
        kwargs = {} if name == "xor" else {"seed": seed}
        X, y = datasets.get(name, **kwargs)
        task = datasets.available()[name]
        names = [f"x{i}" for i in range(X.shape[1])]
        return Dataset(np.asarray(X, float), np.asarray(y), names, "y", task, name)
    loader, task = SKLEARN_SETS[name]
    try:
        import sklearn.datasets as skd
    except ImportError:
        raise DataFileError(f"the built-in dataset {name!r} comes with scikit-learn, which is not "
                       "installed: pip install nncore-train[sklearn]") from None
    bunch = getattr(skd, loader)()
    names = [str(n) for n in getattr(bunch, "feature_names", [])] or \
        [f"x{i}" for i in range(bunch.data.shape[1])]
    return Dataset(np.asarray(bunch.data, float), np.asarray(bunch.target), names,
                   "target", task, name)


def _parse_float(text):
    try:
        return float(text)
    except ValueError:
        return None


def _read_rows(path):
    """Header and data rows of a CSV file (blank lines dropped, field counts checked)."""
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which
        # would otherwise stick to the first column's name.
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not a text CSV file (UTF-8 expected)") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        raise DataFileError(f"{path}: the file is empty")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise DataFileError(f"{path}: no data rows after the header")
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise DataFileError(f"{path}: line {i} has {len(r)} fields, the header has "
                                f"{len(header)}")
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise DataFileError(f"{path}: duplicate column names {dup}")
    return header, body


def _csv_columns(path, header, target, need_target, feature_names):
    """(feature column indices, target column index or None)."""
    def column_index(name, what):
        if name in header:
            return header.index(name)
        raise DataFileError(f"{path}: no column {name!r} ({what}); columns: {', '.join(header)}")

    t_idx = None
    if target is not None:
        t_idx = column_index(target, "target")
    elif need_target and feature_names is None:
        t_idx = len(header) - 1
    if feature_names is not None:
        f_idx = [column_index(n, "a feature of the model") for n in feature_names]
        if need_target and t_idx is None:
            raise DataFileError(f"{path}: which column is the target? use --target")
    else:
        f_idx = [j for j in range(len(header)) if j != t_idx]
    if not f_idx:
        raise DataFileError(f"{path}: no feature columns (only the target {header[t_idx]!r})")
    return f_idx, t_idx


def _csv_features(path, header, body, f_idx):
    X = np.empty((len(body), len(f_idx)))
    for k, j in enumerate(f_idx):
        for i, r in enumerate(body):
            v = _parse_float(r[j].strip())
            if v is None:
                if not r[j].strip():
                    raise DataFileError(f"{path}: column {header[j]!r} has a missing value "
                                        f"(line {i + 2})")
                raise DataFileError(f"{path}: column {header[j]!r} is not numeric "
                                    f"(line {i + 2}: {r[j].strip()!r})")
            if not math.isfinite(v):
                raise DataFileError(f"{path}: column {header[j]!r} has a NaN or infinite value "
                                    f"(line {i + 2})")
            X[i, k] = v
    return X


def _csv_target(path, name, body, t_idx):
    """The target column: int64 for whole numbers, float for other numbers, else strings."""
    raw = [r[t_idx].strip() for r in body]
    for i, v in enumerate(raw):
        if not v:
            raise DataFileError(f"{path}: target column {name!r} has a missing value "
                                f"(line {i + 2})")
    nums = [_parse_float(v) for v in raw]
    if not all(v is not None for v in nums):
        return np.array(raw)
    y = np.array(nums)
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise DataFileError(f"{path}: target column {name!r} has a NaN or infinite "
                            f"value (line {bad[0] + 2})")
    if np.all(y == np.round(y)) and np.abs(y).max() < 2**53:
        y = y.astype(np.int64)
    return y


def _read_csv(path, target=None, need_target=True, feature_names=None):
    """Read a CSV with a header row.

    ``feature_names`` (from a model) selects the feature columns by name;
    otherwise every column except the target is a feature.
    """
    header, body = _read_rows(path)
    f_idx, t_idx = _csv_columns(path, header, target, need_target, feature_names)
    X = _csv_features(path, header, body, f_idx)
    y = None if t_idx is None else _csv_target(path, header[t_idx], body, t_idx)
    return Dataset(X, y, [header[j] for j in f_idx],
                   header[t_idx] if t_idx is not None else None, None, path)


def _read_npz(path, need_target=True):
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            if "X" not in files:
                raise DataFileError(f"{path}: an .npz data file needs an array 'X' "
                                    f"(found: {', '.join(sorted(files)) or 'nothing'})")
            if need_target and "y" not in files:
                raise DataFileError(f"{path}: an .npz data file needs arrays 'X' and 'y'")
            X = z["X"]
            y = z["y"] if "y" in files else None
    except DataFileError:
        raise
    except ValueError as exc:
        raise DataFileError(f"{path}: cannot read ({exc})") from None
    except Exception as exc:  # zipfile / zlib errors from a damaged file
        raise DataFileError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    if X.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: X must be numeric, got dtype {X.dtype}")
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2:
        raise DataFileError(f"{path}: X must be 2-D (samples x features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise DataFileError(f"{path}: X has no rows")
    X = X.astype(float)
    if not np.isfinite(X).all():
        raise DataFileError(f"{path}: X contains NaN or infinite values")
    if y is not None:
        if y.shape[0] != X.shape[0]:
            raise DataFileError(f"{path}: X has {X.shape[0]} rows but y has {y.shape[0]}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise DataFileError(f"{path}: y contains NaN or infinite values")
        if y.dtype.kind not in "biufUS":
            raise DataFileError(f"{path}: y must be numbers or strings, got dtype {y.dtype}")
        if y.dtype.kind == "S":
            y = y.astype(str)
    return Dataset(X, y, [f"x{i}" for i in range(X.shape[1])], "y", None, path)


def read_data(spec, target=None, need_target=True, feature_names=None, seed=0):
    """Load DATA (CSV path, .npz path or built-in name) as a :class:`Dataset`."""
    spec = str(spec)
    lower = spec.lower()
    if os.path.exists(spec):
        if os.path.isdir(spec):
            raise DataFileError(f"{spec}: is a directory, expected a .csv or .npz file")
        if lower.endswith(".npz"):
            if target is not None:
                raise DataFileError("--target applies to CSV files; an .npz file holds X and y")
            return _read_npz(spec, need_target)
        return _read_csv(spec, target, need_target, feature_names)
    if lower in builtin_names():
        if target is not None:
            raise DataFileError("--target applies to CSV files, not to built-in datasets")
        return _load_builtin(lower, seed)
    if lower.endswith((".csv", ".npz", ".txt", ".tsv")) or os.sep in spec:
        raise DataFileError(f"{spec}: no such file")
    raise DataFileError(f"{spec!r} is neither a file nor a built-in dataset "
                        f"({', '.join(builtin_names())})")


def load_data(spec, target=None):
    """``(X, y)`` from a CSV/NPZ file or a built-in dataset (used by ``nncore tune``).

    String class labels are encoded as their index in the sorted labels.

    Raises
    ------
    DataFileError
        A ``ValueError`` naming the file and what is wrong with it.
    """
    d = read_data(spec, target)
    y = d.y
    if y.dtype.kind in "US":
        y = np.unique(y, return_inverse=True)[1].astype(np.int64)
    return d.X, y
