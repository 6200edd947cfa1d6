"""The ``nncore`` command line (also ``python -m nncore``).

::

    nncore train DATA [--target COL] [--layers 64,32] [--activation relu] ...
    nncore evaluate MODEL DATA
    nncore predict MODEL DATA [--out preds.csv]
    nncore datasets
    nncore tune DATA --space space.json ...       (a sweep, see nncore.tune)

The package: ``_train`` (``train``), ``_commands`` (``evaluate``, ``predict``,
``datasets``), ``_tune`` (``tune``), ``_model`` (model files: scaling, target
encoding, scores), ``_common`` (errors, argument types, tables). Data files
are read by :mod:`nncore.datafiles`.

DATA is a CSV file (header row; the target is ``--target`` or the last
column), an ``.npz`` file with arrays ``X`` and ``y``, or the name of a
built-in data set (``nncore datasets`` lists them).

``train`` saves the model (``--out``, default ``model.npz``) and a plot of
the training curves next to it (``model.png``; ``--plot PNG`` elsewhere,
``--no-plot`` for none). ``--plot-diagnostics DIR`` also writes MATLAB's
diagnostic figures there (performance, training state, regression and error
histogram or confusion matrix and ROC; see :func:`nncore.plot.diagnostics`).

Features are standardised with the training split's mean and standard
deviation; those statistics, the class labels and the task are stored in the
model file's metadata, so ``evaluate`` and ``predict`` take raw data. Errors
print one line on stderr and exit with status 1 (2 for usage errors); set
``NNCORE_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys

from .._version import __version__
from ..datafiles import load_data, read_data  # noqa: F401  (public: nncore.cli.load_data)
from ._commands import add_model_parsers
from ._common import PROG, CLIError, UsageError
from ._train import add_train_parser
from ._tune import add_tune_parser, tune_main

__all__ = ["main", "build_parser", "load_data", "tune_main"]


def build_parser():
    """The ``argparse`` parser of the ``nncore`` command."""
    p = argparse.ArgumentParser(
        prog=PROG, description="Train, evaluate and use dense neural networks (nncore).",
        epilog="DATA is a CSV file (header row), an .npz with arrays X and y, or a "
               "built-in dataset name (see 'nncore datasets').")
    p.add_argument("--version", action="version", version=f"nncore {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    add_train_parser(sub)
    add_model_parsers(sub)
    add_tune_parser(sub)
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
    except UsageError as exc:  # a bad flag value found after parsing: as argparse would
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
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
