"""``nncore tune``: a hyper-parameter sweep from the command line (see :mod:`nncore.tune`)."""

from __future__ import annotations

import argparse
import json
import sys

from ..datafiles import load_data
from ..tune import search, space_from_json
from ..tune._space import Choice, _Distribution
from ._common import PROG, UsageError


def _add_arguments(p):
    p.add_argument("data", help="CSV (last column = target) or .npz (arrays X, y) file, "
                                "or a built-in dataset name")
    p.add_argument("--target", default=None, metavar="COL",
                   help="target column of a CSV (default: the last)")
    p.add_argument("--space", required=True,
                   help='JSON file: {"hidden": [[32], [64, 32]], "lr": {"loguniform": [1e-4, 1e-1]}}')
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="address of a Dask scheduler (tcp://host:8786) to run the trials on")
    p.add_argument("--out", default=None, help="write the results table here (CSV)")
    p.add_argument("--n-trials", type=int, default=None,
                   help="sample this many configurations instead of the full grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metric", default="val_loss")
    p.add_argument("--validation", type=float, default=0.2,
                   help="fraction of the data held out for validation")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: the usable cores); 0 runs serially")
    p.add_argument("--halving", action="store_true",
                   help="successive halving on epochs (stop hopeless trials early)")
    p.add_argument("--loss", default=None)
    p.add_argument("--save-best", default=None, metavar="MODEL",
                   help="save the best network (.npz)")
    p.add_argument("--top", type=int, default=5, help="print the best N trials (default 5)")
    p.add_argument("--no-progress", action="store_true")


def add_tune_parser(sub):
    """Add ``nncore tune`` to the sub-parsers."""
    p = sub.add_parser(
        "tune", help="hyper-parameter sweep",
        description="Train one network per configuration of a space and rank them "
                    "on validation data.")
    _add_arguments(p)
    p.set_defaults(func=_cmd_tune)
    return p


def _read_space(path):
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return space_from_json(json.load(fh))
    except json.JSONDecodeError as exc:
        raise UsageError(f"--space {path}: not valid JSON ({exc})") from None


def _check_flags(args, space):
    """Usage mistakes, named by their flags (search's own messages name its arguments)."""
    has_dist = any(isinstance(v, _Distribution) and not isinstance(v, Choice)
                   for v in space.values())
    if has_dist and args.n_trials is None:
        raise UsageError("the space has distributions (uniform, loguniform, randint): "
                         "give --n-trials N")
    if args.n_trials is not None and args.n_trials < 1:
        raise UsageError(f"--n-trials must be a positive integer, got {args.n_trials}")
    if not 0.0 < args.validation < 1.0:
        raise UsageError(f"--validation must be a fraction in (0, 1), got {args.validation}")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")


def _run_sweep(args, space, X, y):
    client = None
    if args.scheduler:
        from distributed import Client
        client = executor = Client(args.scheduler)
    elif args.workers == 0:
        executor = "serial"
    else:
        executor = None
    try:
        return search(space, X, y, validation=args.validation, executor=executor,
                      metric=args.metric, n_trials=args.n_trials, seed=args.seed,
                      n_workers=args.workers or None, loss=args.loss,
                      scheduler="halving" if args.halving else None,
                      progress=False if args.no_progress else None)
    finally:
        if client is not None:
            client.close()


def _print_results(res, top_n):
    ok = [r for r in res.records if r["status"] == "ok"]
    print(f"{len(res.records)} trials, {len(ok)} ok, {len(res.records) - len(ok)} failed")
    for r in res.records:
        if r["status"] != "ok":
            print(f"  trial {r['trial']} failed: {r['error']}")
    if not ok:
        return
    sign = 1.0 if res.mode == "min" else -1.0
    # with halving, trials that reached a later rung rank first
    top = sorted(ok, key=lambda r: (-r.get("rung", 0), sign * r["metric"], r["trial"]))[:top_n]
    print(f"{'trial':>5}  {res.metric:>12}  {'epochs':>6}  {'time':>7}  params")
    for r in top:
        print(f"{r['trial']:>5}  {r['metric']:>12.6g}  {r['epochs']:>6}  "
              f"{r['time']:>6.2f}s  {r['params']}")


def _cmd_tune(args):
    space = _read_space(args.space)
    _check_flags(args, space)
    X, y = load_data(args.data, args.target)
    res = _run_sweep(args, space, X, y)
    _print_results(res, args.top)
    ok = any(r["status"] == "ok" for r in res.records)
    if args.out:
        res.to_csv(args.out)
        print(f"results written to {args.out}")
    if ok:
        print(f"best {res.metric} = {res.best_score:.6g} with {res.best_params}")
        if args.save_best:
            res.best_network.save(args.save_best)
            print(f"best network saved to {args.save_best}")
    return 0 if ok else 1


def tune_main(argv=None):
    """Run ``nncore tune`` with the given argument list.

    Parameters
    ----------
    argv : list of str or None
        Arguments after ``tune``; ``None`` reads ``sys.argv``.

    Returns
    -------
    int
        The exit status (2 for a usage error).
    """
    p = argparse.ArgumentParser(prog=f"{PROG} tune", description="hyper-parameter sweep")
    _add_arguments(p)
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        return _cmd_tune(args)
    except (ValueError, TypeError, OSError, UsageError) as exc:
        print(f"{PROG} tune: error: {exc}", file=sys.stderr)
        return 2
