"""Shared pieces of the command line: errors, argument types, tables."""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

PROG = "nncore"
META_KEY = "nncore_cli"


class CLIError(Exception):
    """A user error: printed as one line, exit status 1."""


class UsageError(CLIError):
    """A bad command-line value found after parsing: printed as one line, exit status 2."""


def _jsonable_labels(classes):
    return [c.item() if hasattr(c, "item") else c for c in classes]


def _standardise_stats(X):
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[~(std > 1e-12 * np.maximum(1.0, np.abs(mean)))] = 1.0  # constant columns pass through
    return mean, std


def _layers_arg(text):
    """``--layers``: comma-separated positive widths ('' / 'none' / '0' for no hidden layer)."""
    text = text.strip()
    if text in ("", "none", "0"):
        return []
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, got {text!r}") from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return sizes


def _batch_arg(text):
    """``--batch-size``: a positive integer or 'full'."""
    if text.lower() == "full":
        return "full"
    try:
        b = int(text)
    except ValueError:
        b = 0
    if b <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'full', got {text!r}")
    return b


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

