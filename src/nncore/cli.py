"""The ``nncore`` command line (also ``python -m nncore``).

::

    nncore train DATA [--target COL] [--layers 64,32] [--activation relu] ...
    nncore evaluate MODEL DATA
    nncore predict MODEL DATA [--out preds.csv]
    nncore datasets
    nncore tune DATA --space space.json ...       (see nncore.tune)

DATA is a CSV file (header row; the target is ``--target`` or the last
column), an ``.npz`` file with arrays ``X`` and ``y``, or the name of a
built-in data set (``nncore datasets`` lists them).

``train`` saves the model (``--out``, default ``model.npz``) and a plot of
the training curves next to it (``model.png``; ``--plot PNG`` elsewhere,
``--no-plot`` for none).

Features are standardised with the training split's mean and standard
deviation; those statistics, the class labels and the task are stored in the
model file's metadata, so ``evaluate`` and ``predict`` take raw data. Errors
print one line on stderr and exit with status 1 (2 for usage errors); set
``NNCORE_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time

import numpy as np

__all__ = ["main", "load_data"]

PROG = "nncore"
_META_KEY = "nncore_cli"

_SKLEARN_SETS = {
    # name: (loader name in sklearn.datasets, task)
    "digits": ("load_digits", "classification"),
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
_DESCRIPTIONS = {
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


class CLIError(Exception):
    """A user error: printed as one line, exit status 1."""


# --------------------------------------------------------------------------- data

class Dataset:
    """Features, raw targets and what we know about them."""

    def __init__(self, X, y, feature_names, target, task=None, source=""):
        self.X = X
        self.y = y
        self.feature_names = list(feature_names)
        self.target = target
        self.task = task
        self.source = source


def _builtin_names():
    from . import datasets
    return list(datasets.available()) + list(_SKLEARN_SETS)


def _load_builtin(name, seed=0):
    from . import datasets
    if name in datasets.available():
        kwargs = {} if name == "xor" else {"seed": seed}
        X, y = datasets.get(name, **kwargs)
        task = datasets.available()[name]
        names = [f"x{i}" for i in range(X.shape[1])]
        return Dataset(np.asarray(X, float), np.asarray(y), names, "y", task, name)
    loader, task = _SKLEARN_SETS[name]
    try:
        import sklearn.datasets as skd
    except ImportError:
        raise CLIError(f"the built-in dataset {name!r} comes with scikit-learn, which is not "
                       "installed: pip install nncore[sklearn]") from None
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


def _read_csv(path, target=None, need_target=True, feature_names=None):
    """Read a CSV with a header row.

    ``feature_names`` (from a model) selects the feature columns by name;
    otherwise every column except the target is a feature.
    """
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise CLIError(f"{path}: not a text CSV file") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        raise CLIError(f"{path}: the file is empty")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise CLIError(f"{path}: no data rows after the header")
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise CLIError(f"{path}: line {i} has {len(r)} fields, the header has {len(header)}")
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise CLIError(f"{path}: duplicate column names {dup}")

    def column_index(name, what):
        if name in header:
            return header.index(name)
        raise CLIError(f"{path}: no column {name!r} ({what}); columns: {', '.join(header)}")

    t_idx = None
    if target is not None:
        t_idx = column_index(target, "target")
    elif need_target and feature_names is None:
        t_idx = len(header) - 1
    if feature_names is not None:
        f_idx = [column_index(n, "a feature of the model") for n in feature_names]
        if need_target and t_idx is None:
            raise CLIError(f"{path}: which column is the target? use --target")
    else:
        f_idx = [j for j in range(len(header)) if j != t_idx]
    if not f_idx:
        raise CLIError(f"{path}: no feature columns (only the target {header[t_idx]!r})")

    X = np.empty((len(body), len(f_idx)))
    for k, j in enumerate(f_idx):
        for i, r in enumerate(body):
            v = _parse_float(r[j].strip())
            if v is None:
                if not r[j].strip():
                    raise CLIError(f"{path}: column {header[j]!r} has a missing value "
                                   f"(line {i + 2})")
                raise CLIError(f"{path}: column {header[j]!r} is not numeric "
                               f"(line {i + 2}: {r[j].strip()!r})")
            if not math.isfinite(v):
                raise CLIError(f"{path}: column {header[j]!r} has a NaN or infinite value "
                               f"(line {i + 2})")
            X[i, k] = v
    y = None
    if t_idx is not None:
        raw = [r[t_idx].strip() for r in body]
        for i, v in enumerate(raw):
            if not v:
                raise CLIError(f"{path}: target column {header[t_idx]!r} has a missing value "
                               f"(line {i + 2})")
        nums = [_parse_float(v) for v in raw]
        if all(v is not None for v in nums):
            y = np.array(nums)
            bad = np.flatnonzero(~np.isfinite(y))
            if bad.size:
                raise CLIError(f"{path}: target column {header[t_idx]!r} has a NaN or infinite "
                               f"value (line {bad[0] + 2})")
            if np.all(y == np.round(y)) and np.abs(y).max() < 2**53:
                y = y.astype(np.int64)
        else:
            y = np.array(raw)
    return Dataset(X, y, [header[j] for j in f_idx],
                   header[t_idx] if t_idx is not None else None, None, path)


def _read_npz(path, need_target=True):
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            if "X" not in files:
                raise CLIError(f"{path}: an .npz data file needs an array 'X' "
                               f"(found: {', '.join(sorted(files)) or 'nothing'})")
            if need_target and "y" not in files:
                raise CLIError(f"{path}: an .npz data file needs arrays 'X' and 'y'")
            X = z["X"]
            y = z["y"] if "y" in files else None
    except CLIError:
        raise
    except ValueError as exc:
        raise CLIError(f"{path}: cannot read ({exc})") from None
    except Exception as exc:  # zipfile / zlib errors from a damaged file
        raise CLIError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    if X.dtype.kind not in "biuf":
        raise CLIError(f"{path}: X must be numeric, got dtype {X.dtype}")
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2:
        raise CLIError(f"{path}: X must be 2-D (samples x features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise CLIError(f"{path}: X has no rows")
    X = X.astype(float)
    if not np.isfinite(X).all():
        raise CLIError(f"{path}: X contains NaN or infinite values")
    if y is not None:
        if y.shape[0] != X.shape[0]:
            raise CLIError(f"{path}: X has {X.shape[0]} rows but y has {y.shape[0]}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise CLIError(f"{path}: y contains NaN or infinite values")
        if y.dtype.kind not in "biufUS":
            raise CLIError(f"{path}: y must be numbers or strings, got dtype {y.dtype}")
        if y.dtype.kind == "S":
            y = y.astype(str)
    return Dataset(X, y, [f"x{i}" for i in range(X.shape[1])], "y", None, path)


def read_data(spec, target=None, need_target=True, feature_names=None, seed=0):
    """Load DATA (CSV path, .npz path or built-in name) as a :class:`Dataset`."""
    spec = str(spec)
    lower = spec.lower()
    if os.path.exists(spec):
        if os.path.isdir(spec):
            raise CLIError(f"{spec}: is a directory, expected a .csv or .npz file")
        if lower.endswith(".npz"):
            if target is not None:
                raise CLIError("--target applies to CSV files; an .npz file holds X and y")
            return _read_npz(spec, need_target)
        return _read_csv(spec, target, need_target, feature_names)
    if lower in _builtin_names():
        if target is not None:
            raise CLIError("--target applies to CSV files, not to built-in datasets")
        return _load_builtin(lower, seed)
    if lower.endswith((".csv", ".npz", ".txt", ".tsv")) or os.sep in spec:
        raise CLIError(f"{spec}: no such file")
    raise CLIError(f"{spec!r} is neither a file nor a built-in dataset "
                   f"({', '.join(_builtin_names())})")


def load_data(spec, target=None):
    """``(X, y)`` from a CSV/NPZ file or a built-in dataset (used by ``nncore tune``).

    String class labels are encoded as their index in the sorted labels.
    """
    try:
        d = read_data(spec, target)
    except CLIError as exc:
        raise ValueError(str(exc)) from None
    y = d.y
    if y.dtype.kind in "US":
        y = np.unique(y, return_inverse=True)[1].astype(np.int64)
    return d.X, y


# --------------------------------------------------------------------------- tasks

def _infer_task(d, loss):
    if loss is not None:
        return "regression" if loss == "mse" else "classification"
    if d.task is not None:
        return d.task
    y = d.y
    if y.dtype.kind in "USb":
        return "classification"
    if y.ndim == 1 and y.dtype.kind in "iu" and len(np.unique(y)) <= max(2, min(50, len(y) // 2)):
        return "classification"
    return "regression"


def _jsonable_labels(classes):
    return [c.item() if hasattr(c, "item") else c for c in classes]


def _standardise_stats(X):
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[~(std > 1e-12 * np.maximum(1.0, np.abs(mean)))] = 1.0  # constant columns pass through
    return mean, std


def _parse_layers(text):
    text = text.strip()
    if text in ("", "none", "0"):
        return []
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CLIError(f"--layers must be comma-separated positive integers, got {text!r}") \
            from None
    if any(s <= 0 for s in sizes):
        raise CLIError(f"--layers must be positive integers, got {text!r}")
    return sizes


def _parse_batch(text):
    if text is None:
        return None
    if text.lower() == "full":
        return "full"
    try:
        b = int(text)
    except ValueError:
        raise CLIError(f"--batch-size must be a positive integer or 'full', got {text!r}") \
            from None
    if b <= 0:
        raise CLIError(f"--batch-size must be a positive integer or 'full', got {text!r}")
    return b


# --------------------------------------------------------------------------- metrics

def _regression_scores(pred, y):
    pred = pred.reshape(y.shape)
    resid = pred - y
    rmse = float(np.sqrt(np.mean(resid ** 2)))
    ss_tot = float(np.sum((y - y.mean(axis=0)) ** 2))
    r2 = 1.0 - float(np.sum(resid ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    return rmse, r2


def _print_table(rows, columns, out=None):
    out = out or sys.stdout
    header = ["metric"] + columns
    cells = [[name] + [("-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v))
                       for v in vals] for name, vals in rows]
    widths = [max(len(r[i]) for r in [header] + cells) for i in range(len(header))]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in
                     enumerate(zip(header, widths)))
    print(line, file=out)
    print("-" * len(line), file=out)
    for r in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                        enumerate(zip(r, widths))), file=out)


# --------------------------------------------------------------------------- model glue

def _meta(net, path):
    meta = getattr(net, "metadata", None) or {}
    if meta.get(_META_KEY):
        return meta
    # A network saved from Python: no scaling, task from its loss.
    task = "regression" if net.loss_name == "mse" else "classification"
    return {_META_KEY: 0, "task": task, "feature_names": None, "target": None,
            "mean": None, "std": None, "classes": None, "y_mean": None, "y_std": None,
            "loss": net.loss_name}


def _scale_X(meta, X, net):
    if X.shape[1] != net.n_in:
        raise CLIError(f"the data has {X.shape[1]} features but the model expects {net.n_in}")
    if meta.get("mean") is not None:
        X = (X - np.asarray(meta["mean"])) / np.asarray(meta["std"])
    return np.ascontiguousarray(X, dtype=net.dtype)


def _encode_targets(meta, y, net):
    """Raw labels/targets -> what the network's loss expects."""
    if meta["task"] == "classification":
        classes = meta.get("classes")
        if classes is None:
            raw = np.asarray(y)
            if raw.size == 0:
                raise CLIError("the data has no rows")
            try:
                codes = raw.astype(np.int64)
                exact = np.array_equal(codes, raw.astype(float))
            except (TypeError, ValueError):
                exact = False
            if not exact:
                raise CLIError("labels must be whole numbers for this model")
            k = net.n_out if net.loss_name == "cross_entropy" else 2
            if codes.min() < 0 or codes.max() >= k:
                raise CLIError(f"labels must be 0..{k - 1} for this model")
        else:
            lookup = {str(c): i for i, c in enumerate(classes)}
            keys = [str(v.item() if hasattr(v, "item") else v) for v in np.asarray(y)]
            unknown = sorted({k for k in keys if k not in lookup})
            if unknown:
                raise CLIError(f"labels {unknown[:5]} were not seen in training "
                               f"(classes: {classes})")
            codes = np.array([lookup[k] for k in keys], dtype=np.int64)
        if net.loss_name == "binary_cross_entropy":
            return codes.astype(net.dtype).reshape(-1, 1) if net.n_out == 1 else codes
        return codes
    Y = np.asarray(y, dtype=float)
    Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
    if Y.shape[1] != net.n_out:
        raise CLIError(f"the data has {Y.shape[1]} targets but the model predicts {net.n_out}")
    if meta.get("y_mean") is not None:
        Y = (Y - np.asarray(meta["y_mean"])) / np.asarray(meta["y_std"])
    return np.ascontiguousarray(Y, dtype=net.dtype)


def _decode_predictions(meta, net, Xs):
    """Network outputs -> (labels or targets in original units, probabilities or None)."""
    if meta["task"] == "classification":
        proba = np.asarray(net.predict_proba(Xs), dtype=float)
        if proba.shape[1] == 1:
            proba = np.column_stack([1.0 - proba[:, 0], proba[:, 0]])
        codes = proba.argmax(axis=1)
        classes = meta.get("classes")
        labels = np.asarray(classes, dtype=object)[codes] if classes is not None else codes
        return labels, proba
    out = np.asarray(net.forward(Xs), dtype=float)
    if meta.get("y_mean") is not None:
        out = out * np.asarray(meta["y_std"]) + np.asarray(meta["y_mean"])
    return out, None


def _scores(meta, net, Xs, y):
    """Rows of the metrics table for one split."""
    T = _encode_targets(meta, y, net)
    scores = {"loss": float(net.loss(Xs, T))}
    pred, _ = _decode_predictions(meta, net, Xs)
    if meta["task"] == "classification":
        truth = np.asarray([str(v.item() if hasattr(v, "item") else v) for v in np.asarray(y)])
        scores["accuracy"] = float(np.mean(np.asarray([str(p) for p in pred]) == truth))
    else:
        Y = np.asarray(y, dtype=float)
        Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
        rmse, r2 = _regression_scores(pred, Y)
        scores["rmse"] = rmse
        scores["r2"] = r2
    return scores


# --------------------------------------------------------------------------- commands

def _cmd_train(args):
    import nncore as nc

    d = read_data(args.data, args.target, seed=args.seed)
    if d.y is None:
        raise CLIError(f"{args.data}: no target values")
    task = args.task or _infer_task(d, args.loss)
    y = d.y
    if task == "regression" and y.dtype.kind in "US":
        raise CLIError(f"target {d.target!r} is not numeric; it cannot be a regression target")
    loss = args.loss or ("mse" if task == "regression" else "cross_entropy")
    if (loss == "mse") != (task == "regression"):
        raise CLIError(f"--loss {loss} does not fit a {task} task")

    n = d.X.shape[0]
    val = args.val_split
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(n)
    n_val = int(round(val * n))
    if val > 0 and (n_val < 1 or n - n_val < 2):
        print(f"note: {n} samples are too few for a validation split; training on all",
              file=sys.stderr)
        n_val = 0
    idx_val, idx_tr = perm[:n_val], perm[n_val:]
    if n_val == 0:
        idx_tr = np.arange(n)
    Xtr, ytr = d.X[idx_tr], y[idx_tr]
    Xva, yva = d.X[idx_val], y[idx_val]

    meta = {_META_KEY: 1, "task": task, "loss": loss, "feature_names": d.feature_names,
            "target": d.target, "data": os.path.basename(str(args.data)),
            "classes": None, "y_mean": None, "y_std": None}
    mean, std = _standardise_stats(Xtr)
    meta["mean"], meta["std"] = mean.tolist(), std.tolist()
    if task == "classification":
        classes = np.unique(ytr if n_val == 0 else y)
        if classes.size < 2:
            raise CLIError(f"target {d.target!r} has a single class ({classes[0]!r}); "
                           "classification needs at least two")
        if loss == "binary_cross_entropy" and classes.size != 2:
            raise CLIError(f"--loss binary_cross_entropy needs 2 classes, found {classes.size}")
        meta["classes"] = _jsonable_labels(classes)
        n_out = 1 if loss == "binary_cross_entropy" else classes.size
    else:
        Y = ytr.astype(float).reshape(len(ytr), -1)
        y_mean, y_std = _standardise_stats(Y)
        meta["y_mean"], meta["y_std"] = y_mean.tolist(), y_std.tolist()
        n_out = Y.shape[1]

    sizes = _parse_layers(args.layers)
    acts = [a.strip() for a in args.activation.split(",")]
    if len(acts) == 1:
        acts = acts * len(sizes)
    elif len(acts) != len(sizes):
        raise CLIError(f"--activation lists {len(acts)} activations for {len(sizes)} "
                       "hidden layers")
    layers, prev = [], d.X.shape[1]
    for size, act in zip(sizes, acts):
        layers.append(nc.Dense(prev, size, activation=act))
        if args.dropout > 0:
            layers.append(nc.Dropout(args.dropout))
        prev = size
    layers.append(nc.Dense(prev, n_out))
    if args.l1 > 0 and args.l2 > 0:
        reg = nc.ElasticNet(args.l1, args.l2)
    elif args.l1 > 0:
        reg = nc.L1(args.l1)
    elif args.l2 > 0:
        reg = nc.L2(args.l2)
    else:
        reg = None
    net = nc.Network(layers, loss=loss, regularizer=reg, dtype=args.dtype, seed=args.seed)
    net.metadata = meta

    opt = nc.optim.get(args.optimizer)
    if not getattr(opt, "full_batch", False):
        kw = {"lr": args.lr}
        if args.momentum is not None:
            kw["momentum"] = args.momentum
        opt = nc.optim.get(args.optimizer, **kw)
    batch = _parse_batch(args.batch_size)

    Xtr_s = _scale_X(meta, Xtr, net)
    Ttr = _encode_targets(meta, ytr, net)
    validation = None
    if n_val:
        validation = (_scale_X(meta, Xva, net), _encode_targets(meta, yva, net))
    callbacks = []
    if args.patience is not None:
        if validation is None:
            raise CLIError("--patience needs a validation split (--val-split > 0)")
        callbacks.append(nc.callbacks.EarlyStopping(patience=args.patience))

    print(f"training on {len(idx_tr)} samples ({n_val} for validation), "
          f"{d.X.shape[1]} features, task: {task}, loss: {loss}", file=sys.stderr)
    t0 = time.perf_counter()
    hist = net.fit(Xtr_s, Ttr, optimizer=opt, batch_size=batch, epochs=args.epochs,
                   validation_data=validation, callbacks=callbacks,
                   progress=False if args.no_progress else None, seed=args.seed)
    elapsed = time.perf_counter() - t0

    if args.out:
        args.out = net.save(args.out, metadata=meta)   # "model" is written as model.npz
    train_scores = _scores(meta, net, Xtr_s, ytr)
    val_scores = _scores(meta, net, validation[0], yva) if validation is not None else {}
    rows = [(k, [train_scores[k], val_scores.get(k)]) for k in train_scores]
    print(f"\n{len(hist.epoch)} epochs in {elapsed:.2f} s"
          + (f" ({hist.stop_reason})" if hist.stop_reason else ""))
    _print_table(rows, ["train", "validation"])
    if args.out:
        print(f"model saved to {args.out}")
    # API.md: train saves the model *and* a plot of the curves; by default the
    # plot goes next to the model (model.npz -> model.png).
    plot_path = args.plot
    if plot_path is None and args.out and not args.no_plot:
        plot_path = os.path.splitext(args.out)[0] + ".png"
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("matplotlib is not installed: no plot of the curves", file=sys.stderr)
            plot_path = None
    if plot_path:
        from .plot import plot_history
        plot_history(hist, path=plot_path, title=f"{d.source}: {loss}")
        print(f"curves written to {plot_path}")
    return 0


def _load_model(path):
    import nncore as nc
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such model file")
    try:
        net = nc.load(path)
    except ValueError as exc:
        msg = str(exc)
        if path not in msg:  # e.g. numpy's own message for a file that is no archive
            msg = f"{path}: not a valid nncore model file ({msg.split('.')[0]})"
        raise CLIError(msg) from None
    return net, _meta(net, path)


def _cmd_evaluate(args):
    net, meta = _load_model(args.model)
    target = args.target if args.target is not None else None
    names = meta.get("feature_names")
    if target is None and meta.get("target") is not None and str(args.data).lower().endswith(
            ".csv"):
        target = meta["target"]
    d = read_data(args.data, target, need_target=True,
                  feature_names=names if str(args.data).lower().endswith(".csv") else None)
    if d.y is None:
        raise CLIError(f"{args.data}: no target values to evaluate against")
    Xs = _scale_X(meta, d.X, net)
    scores = _scores(meta, net, Xs, d.y)
    print(f"{args.model} on {args.data}: {d.X.shape[0]} samples")
    _print_table([(k, [v]) for k, v in scores.items()], ["value"])
    return 0


def _cmd_predict(args):
    net, meta = _load_model(args.model)
    is_csv = str(args.data).lower().endswith(".csv") and os.path.exists(args.data)
    d = read_data(args.data, None, need_target=False,
                  feature_names=meta.get("feature_names") if is_csv else None)
    Xs = _scale_X(meta, d.X, net)
    pred, proba = _decode_predictions(meta, net, Xs)
    target = meta.get("target") or "prediction"
    if pred.ndim == 2 and pred.shape[1] > 1:
        header = [f"{target}_{k}" for k in range(pred.shape[1])]
        rows = [[f"{v:.10g}" for v in r] for r in pred]
    else:
        pred = pred.reshape(-1)
        header = [target]
        rows = [[f"{v:.10g}" if isinstance(v, float) else str(v)] for v in pred]
    if proba is not None:
        classes = meta.get("classes") or list(range(proba.shape[1]))
        header += [f"p_{c}" for c in classes]
        rows = [r + [f"{p:.6g}" for p in pr] for r, pr in zip(rows, proba)]
    if args.out:
        tmp = f"{args.out}.tmp{os.getpid()}"
        try:
            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                w.writerows(rows)
            os.replace(tmp, args.out)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        print(f"{len(rows)} predictions written to {args.out}", file=sys.stderr)
    else:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return 0


def _cmd_datasets(args):
    from . import datasets
    try:
        import sklearn  # noqa: F401
        have_sklearn = True
    except ImportError:
        have_sklearn = False
    rows = []
    for name, task in datasets.available().items():
        rows.append((name, task, "synthetic", _DESCRIPTIONS.get(name, "")))
    for name, (_, task) in _SKLEARN_SETS.items():
        src = "scikit-learn" if have_sklearn else "needs scikit-learn"
        rows.append((name, task, src, _DESCRIPTIONS.get(name, "")))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
    return 0


# --------------------------------------------------------------------------- parser

def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _nonneg_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def _positive_float(text):
    v = _nonneg_float(text)
    if v == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def _fraction(text):
    v = _nonneg_float(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return v


def build_parser():
    """The ``argparse`` parser of the ``nncore`` command."""
    from . import __version__
    p = argparse.ArgumentParser(
        prog=PROG, description="Train, evaluate and use dense neural networks (nncore).",
        epilog="DATA is a CSV file (header row), an .npz with arrays X and y, or a "
               "built-in dataset name (see 'nncore datasets').")
    p.add_argument("--version", action="version", version=f"nncore {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a network and save it",
                       description="Train a network on DATA and save it with the "
                                   "feature scaling it needs.")
    t.add_argument("data", metavar="DATA")
    t.add_argument("--target", metavar="COL", help="target column of a CSV (default: last)")
    t.add_argument("--task", choices=["classification", "regression"],
                   help="default: from --loss, else inferred from the target")
    t.add_argument("--layers", default="64,32", metavar="SIZES",
                   help="hidden layer sizes, comma-separated (default 64,32; '' for none)")
    t.add_argument("--activation", default="relu", metavar="NAME[,NAME...]",
                   help="relu, tanh, sigmoid, leaky_relu, linear; one or one per layer")
    t.add_argument("--loss", choices=["mse", "cross_entropy", "binary_cross_entropy"],
                   help="default: cross_entropy for classification, mse for regression")
    t.add_argument("--optimizer", default="adam", metavar="NAME",
                   help="sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, cg, newton, "
                        "bfgs, dfp, lbfgs (default adam)")
    t.add_argument("--lr", type=_positive_float, default=1e-3,
                   help="learning rate of first-order optimizers (default 1e-3)")
    t.add_argument("--momentum", type=_nonneg_float, default=None,
                   help="momentum for sgd/momentum/nesterov")
    t.add_argument("--batch-size", default=None, metavar="N|full",
                   help="mini-batch size, 1 (stochastic) or 'full' (default 32; full for "
                        "full-batch optimizers)")
    t.add_argument("--epochs", type=_positive_int, default=50)
    t.add_argument("--dropout", type=_fraction, default=0.0, help="dropout rate after each "
                   "hidden layer")
    t.add_argument("--l1", type=_nonneg_float, default=0.0)
    t.add_argument("--l2", type=_nonneg_float, default=0.0)
    t.add_argument("--val-split", type=_fraction, default=0.2,
                   help="fraction held out for validation (default 0.2)")
    t.add_argument("--patience", type=_positive_int, default=None,
                   help="early stopping on the validation loss after N epochs without gain")
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="model.npz", metavar="MODEL",
                   help="where to save the model (default model.npz)")
    t.add_argument("--plot", default=None, metavar="PNG",
                   help="where to write the training curves (default: the model's name "
                        "with .png)")
    t.add_argument("--no-plot", action="store_true", help="do not write the training curves")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="score a saved model on data")
    e.add_argument("model", metavar="MODEL")
    e.add_argument("data", metavar="DATA")
    e.add_argument("--target", metavar="COL", help="target column (default: as in training)")
    e.set_defaults(func=_cmd_evaluate)

    pr = sub.add_parser("predict", help="predict with a saved model")
    pr.add_argument("model", metavar="MODEL")
    pr.add_argument("data", metavar="DATA")
    pr.add_argument("--out", default=None, metavar="CSV", help="write here instead of stdout")
    pr.set_defaults(func=_cmd_predict)

    ds = sub.add_parser("datasets", help="list the built-in datasets")
    ds.set_defaults(func=_cmd_datasets)

    try:
        from . import tune
        add = getattr(tune, "add_subparser", None)
    except ImportError:  # pragma: no cover - tune is optional
        add = None
    if add is not None:
        add(sub)
    return p


def main(argv=None):
    """Run the ``nncore`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 1 on an error, 2 on a usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    debug = os.environ.get("NNCORE_DEBUG", "") not in ("", "0")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, never a traceback (NNCORE_DEBUG=1 shows it)
        if debug:
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, (CLIError, ValueError, TypeError, OSError)):
            msg = f"{type(exc).__name__}: {msg}"
        print(f"{PROG} {getattr(args, 'command', '')}: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
