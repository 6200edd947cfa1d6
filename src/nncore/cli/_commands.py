"""``nncore evaluate``, ``nncore predict`` and ``nncore datasets``."""

from __future__ import annotations

import csv
import os
import sys

from .. import datasets
from ..datafiles import DESCRIPTIONS, SKLEARN_SETS, read_data
from ._common import CLIError, _print_table
from ._model import _decode_predictions, _load_model, _scale_X, _scores


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
    try:
        import sklearn  # noqa: F401
        have_sklearn = True
    except ImportError:
        have_sklearn = False
    rows = []
    for name, task in datasets.available().items():
        rows.append((name, task, "synthetic", DESCRIPTIONS.get(name, "")))
    for name, (_, task) in SKLEARN_SETS.items():
        src = "scikit-learn" if have_sklearn else "needs scikit-learn"
        rows.append((name, task, src, DESCRIPTIONS.get(name, "")))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
    return 0



def add_model_parsers(sub):
    """Add ``nncore evaluate``, ``predict`` and ``datasets`` to the sub-parsers."""
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
