"""Shared set-up for the example scripts: ``--fast``, ``--out DIR`` and a headless backend.

The documentation's gallery (``docs/conf.py``, sphinx-gallery) runs the scripts
in its own process with ``NNCORE_EXAMPLES_GALLERY=1``: fast sizes, and the
figures stay open for the gallery to render instead of being written to files.
"""

import argparse
import os
import sys

# Examples run from a checkout too: prefer the installed package, fall back to src/.
try:
    import nncore  # noqa: F401
except ImportError:  # pragma: no cover - running from a source tree without install
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))


def in_gallery():
    """Whether the docs build runs this script (``NNCORE_EXAMPLES_GALLERY=1``)."""
    return os.environ.get("NNCORE_EXAMPLES_GALLERY") == "1"


def setup(doc, add_arguments=None):
    """Parse the common options (and the script's own, added by
    ``add_arguments(parser)``); return ``(args, pyplot)``.

    ``doc`` is the script's docstring; its title line describes the command.
    (sphinx-gallery runs a script with ``__doc__`` empty.)
    """
    title = (doc or "").strip().split("\n", 1)[0]
    p = argparse.ArgumentParser(description=title)
    p.add_argument("--fast", action="store_true",
                   help="tiny sizes and few epochs (used by the test suite)")
    p.add_argument("--out", default=".", metavar="DIR", help="directory for the figure")
    if add_arguments is not None:
        add_arguments(p)
    args = p.parse_args()
    args.fast = args.fast or in_gallery()
    if not in_gallery():
        os.makedirs(args.out, exist_ok=True)
    import matplotlib
    if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return args, plt


def save(fig, args, name):
    """Write ``fig`` to ``DIR/name`` and say where (in the gallery: leave it
    open for the gallery to render, and return ``None``)."""
    if in_gallery():
        return None
    path = os.path.join(args.out, name)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"figure written to {path}")
    return path
