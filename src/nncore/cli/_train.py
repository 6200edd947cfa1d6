"""``nncore train``: read data, build and train a network, save it with its scaling."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from .. import activations, losses, optim
from ..callbacks import EarlyStopping
from ..datafiles import read_data
from ..evaluation import draw_validation
from ..network import Network
from ._common import (META_KEY, CLIError, UsageError, _batch_arg, _fraction, _jsonable_labels,
                      _layers_arg, _nonneg_float, _positive_float, _positive_int, _print_table,
                      _standardise_stats)
from ._model import _encode_targets, _scale_X, _scores


def _infer_task(d, loss):
    if loss is not None:
        return "classification" if losses.get(loss).is_classifier else "regression"
    if d.task is not None:
        return d.task
    y = d.y
    if y.dtype.kind in "USb":
        return "classification"
    if y.ndim == 1 and y.dtype.kind in "iu" and len(np.unique(y)) <= max(2, min(50, len(y) // 2)):
        return "classification"
    return "regression"


def _task_and_loss(args, d):
    task = args.task or _infer_task(d, args.loss)
    if task == "regression" and d.y.dtype.kind in "US":
        raise CLIError(f"target {d.target!r} is not numeric; it cannot be a regression target")
    loss = args.loss or ("mse" if task == "regression" else "cross_entropy")
    if losses.get(loss).is_classifier != (task == "classification"):
        raise UsageError(f"--loss {loss} does not fit a {task} task")
    return task, loss


def _split_indices(n, val_fraction, seed, shuffle=True, strata=None):
    """(training rows, validation rows), both in the data's order; no validation
    when the data is too small.

    As ``fit(validation_split=val_fraction, validation_shuffle=shuffle)``: the
    validation part has ``n - floor(n (1 - val_fraction))`` rows, drawn at random
    (per class when ``strata``, the rows' classes, is given) or the last rows.
    """
    n_val = n - int(math.floor(n * (1.0 - val_fraction)))
    if val_fraction > 0 and (n_val < 1 or n - n_val < 2):
        print(f"note: {n} samples are too few for a validation split; training on all",
              file=sys.stderr)
        n_val = 0
    if n_val == 0:
        return np.arange(n), np.arange(0)
    if shuffle:
        is_val = draw_validation(n, n_val, strata, np.random.default_rng(seed))
    else:
        is_val = np.arange(n) >= n - n_val
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _model_metadata(args, d, task, loss, ytr, y_all):
    """What ``evaluate``/``predict`` need to use the model on raw data; and ``n_out``."""
    meta = {META_KEY: 1, "task": task, "loss": loss, "feature_names": d.feature_names,
            "target": d.target, "data": os.path.basename(str(args.data)),
            "classes": None, "y_mean": None, "y_std": None}
    if task == "classification":
        classes = np.unique(y_all)
        if classes.size < 2:
            raise CLIError(f"target {d.target!r} has a single class ({classes[0]!r}); "
                           "classification needs at least two")
        spec = losses.get(loss)
        n_out = spec.n_outputs(classes.size)
        if spec.n_classes(n_out) != classes.size:
            raise CLIError(f"--loss {loss} needs {spec.n_classes(n_out)} classes, "
                           f"found {classes.size}")
        meta["classes"] = _jsonable_labels(classes)
        return meta, n_out
    Y = ytr.astype(float).reshape(len(ytr), -1)
    y_mean, y_std = _standardise_stats(Y)
    meta["y_mean"], meta["y_std"] = y_mean.tolist(), y_std.tolist()
    return meta, Y.shape[1]


def _build_network(args, n_in, n_out, loss):
    sizes = args.layers
    acts = [a.strip() for a in args.activation.split(",")]
    if len(acts) == 1:
        acts = acts * len(sizes)
    elif len(acts) != len(sizes):
        raise UsageError(f"--activation lists {len(acts)} activations for {len(sizes)} "
                         "hidden layers")
    try:
        return Network.mlp(n_in, sizes, n_out, activation=acts, loss=loss,
                           dropout=args.dropout, l1=args.l1, l2=args.l2, dtype=args.dtype,
                           seed=args.seed)
    except ValueError as exc:
        if "activation" in str(exc):  # an unknown --activation name
            raise UsageError(f"--activation: {exc}") from None
        raise


def _make_optimizer(args):
    try:
        opt = optim.get(args.optimizer)
    except ValueError as exc:
        raise UsageError(f"--optimizer: {exc}") from None
    if getattr(opt, "full_batch", False):
        # fit's own messages name its Python arguments; say it with the flags.
        if args.batch_size not in (None, "full"):
            raise UsageError(f"--optimizer {args.optimizer} is a full-batch method: use "
                             "--batch-size full or leave --batch-size out")
        if args.dropout > 0:
            raise UsageError(f"--optimizer {args.optimizer} is a full-batch method with a "
                             "line search and needs a deterministic loss: use --dropout 0")
        return opt
    kw = {"lr": args.lr}
    if args.momentum is not None:
        kw["momentum"] = args.momentum
    return optim.get(args.optimizer, **kw)


def _fit(args, net, Xtr_s, Ttr, validation):
    """Train; on Ctrl-C keep (and later save) what was trained so far."""
    callbacks = []
    if args.patience is not None:
        if validation is None:
            raise UsageError("--patience needs a validation split (--val-split > 0)")
        callbacks.append(EarlyStopping(patience=args.patience))
    opt = _make_optimizer(args)
    batch = args.batch_size
    t0 = time.perf_counter()
    try:
        hist = net.fit(Xtr_s, Ttr, optimizer=opt, batch_size=batch, epochs=args.epochs,
                       validation_data=validation, callbacks=callbacks,
                       progress=False if args.no_progress else None, seed=args.seed)
    except KeyboardInterrupt:
        hist = net.history_
        if hist is None:  # interrupted before the first step: nothing to keep
            raise
    return hist, time.perf_counter() - t0


def _report(args, d, hist, elapsed, rows, loss):
    print(f"\n{len(hist.epoch)} epochs in {elapsed:.2f} s"
          + (f" ({hist.stop_reason})" if hist.stop_reason else ""))
    _print_table(rows, ["train", "validation"])
    if args.out:
        what = ("the model trained until the interrupt" if hist.stop_reason == "interrupted"
                else "model")
        print(f"{what} saved to {args.out}")
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
        from ..plot import plot_history
        plot_history(hist, path=plot_path, title=f"{d.source}: {loss}")
        print(f"curves written to {plot_path}")


def _cmd_train(args):
    d = read_data(args.data, args.target, seed=args.seed)
    if d.y is None:
        raise CLIError(f"{args.data}: no target values")
    task, loss = _task_and_loss(args, d)
    strata = d.y if task == "classification" else None
    idx_tr, idx_val = _split_indices(d.X.shape[0], args.val_split, args.seed,
                                     args.val_shuffle, strata)
    Xtr, ytr = d.X[idx_tr], d.y[idx_tr]
    Xva, yva = d.X[idx_val], d.y[idx_val]
    meta, n_out = _model_metadata(args, d, task, loss, ytr, d.y if idx_val.size else ytr)
    mean, std = _standardise_stats(Xtr)
    meta["mean"], meta["std"] = mean.tolist(), std.tolist()
    net = _build_network(args, d.X.shape[1], n_out, loss)
    net.metadata = meta
    Xtr_s = _scale_X(meta, Xtr, net)
    Ttr = _encode_targets(meta, ytr, net)
    validation = None
    if idx_val.size:
        validation = (_scale_X(meta, Xva, net), _encode_targets(meta, yva, net))
    print(f"training on {len(idx_tr)} samples ({idx_val.size} for validation), "
          f"{d.X.shape[1]} features, task: {task}, loss: {loss}", file=sys.stderr)
    hist, elapsed = _fit(args, net, Xtr_s, Ttr, validation)
    interrupted = hist.stop_reason == "interrupted"
    if args.out:
        args.out = net.save(args.out, metadata=meta)  # "model" is written as model.npz
    if interrupted:
        print(f"{len(hist.epoch)} epoch(s) finished before the interrupt"
              + (f"; saving the model trained so far to {args.out}" if args.out else
                 "; nothing saved (no --out)"), file=sys.stderr)
    train_scores = _scores(meta, net, Xtr_s, ytr)
    val_scores = _scores(meta, net, validation[0], yva) if validation is not None else {}
    rows = [(k, [train_scores[k], val_scores.get(k)]) for k in train_scores]
    _report(args, d, hist, elapsed, rows, loss)
    if args.plot_diagnostics:
        from ..plot import diagnostics
        splits = {"Training": (Xtr_s, Ttr), "Validation": validation}
        for path in diagnostics(net, hist, splits, args.plot_diagnostics).values():
            print(f"diagnostic figure written to {path}")
    return 130 if interrupted else 0


def add_train_parser(sub):
    """Add ``nncore train`` to the sub-parsers."""
    t = sub.add_parser("train", help="train a network and save it",
                       description="Train a network on DATA and save it with the "
                                   "feature scaling it needs.")
    t.add_argument("data", metavar="DATA")
    t.add_argument("--target", metavar="COL", help="target column of a CSV (default: last)")
    t.add_argument("--task", choices=["classification", "regression"],
                   help="default: from --loss, else inferred from the target")
    t.add_argument("--layers", type=_layers_arg, default="64,32", metavar="SIZES",
                   help="hidden layer sizes, comma-separated (default 64,32; '' for none)")
    t.add_argument("--activation", default="relu", metavar="NAME[,NAME...]",
                   help=f"{', '.join(activations.NAMES)}; one or one per layer "
                        "(default relu)")
    t.add_argument("--loss", choices=list(losses.NAMES),
                   help="default: cross_entropy for classification, mse for regression")
    t.add_argument("--optimizer", default="adam", metavar="NAME",
                   help="sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, cg, newton, "
                        "bfgs, dfp, lbfgs (default adam)")
    t.add_argument("--lr", type=_positive_float, default=1e-3,
                   help="learning rate of first-order optimizers (default 1e-3)")
    t.add_argument("--momentum", type=_nonneg_float, default=None,
                   help="momentum for sgd/momentum/nesterov")
    t.add_argument("--batch-size", type=_batch_arg, default=None, metavar="N|full",
                   help="mini-batch size, 1 (stochastic) or 'full' (default 32; full for "
                        "full-batch optimizers)")
    t.add_argument("--epochs", type=_positive_int, default=50)
    t.add_argument("--dropout", type=_fraction, default=0.0, help="dropout rate after each "
                   "hidden layer")
    t.add_argument("--l1", type=_nonneg_float, default=0.0)
    t.add_argument("--l2", type=_nonneg_float, default=0.0)
    t.add_argument("--val-split", type=_fraction, default=0.2,
                   help="fraction held out for validation (default 0.2)")
    t.add_argument("--val-shuffle", action=argparse.BooleanOptionalAction, default=True,
                   help="hold out a random draw, per class for classification, as "
                        "fit(validation_shuffle=True) (the default); --no-val-shuffle "
                        "holds out the last rows, as fit's default")
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
    t.add_argument("--plot-diagnostics", default=None, metavar="DIR",
                   help="write the diagnostic figures (performance, training state, "
                        "regression / confusion, ...) as PNG files into DIR")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=_cmd_train)
