"""Writing the model file: one ``.npz`` written atomically (see :mod:`nncore.io`).

This module knows the file format but not the network class, so both
``Network.save`` and :mod:`nncore.io` (which reads files back into networks)
can use it without importing each other.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

import numpy as np

__all__ = ["FORMAT", "FORMAT_VERSION", "MAX_ARCHITECTURE_CHARS", "MAX_JSON_DEPTH",
           "check_json_bounds", "write_model"]

FORMAT = "nncore.network"
FORMAT_VERSION = 1
# Bounds on the architecture record (layers, loss, dtype and user metadata):
# generous for real models (a CLI model of 100k features stores ~4 M chars of
# feature names and scaling), small enough that a hostile file costs nothing.
MAX_ARCHITECTURE_CHARS = 1 << 23
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"metadata value {obj!r} of type {type(obj).__name__} is not JSON-serialisable")


def _json_depth(text):
    """Deepest nesting of ``[``/``{`` outside JSON strings (vectorised, no recursion)."""
    skeleton = np.frombuffer(_JSON_STRING.sub('""', text).encode("utf-8"), np.uint8)
    steps = (np.isin(skeleton, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(skeleton, (ord("]"), ord("}"))))
    return int(np.cumsum(steps).max()) if steps.size else 0


def check_json_bounds(text, what):
    """ValueError when ``text`` exceeds MAX_ARCHITECTURE_CHARS or MAX_JSON_DEPTH."""
    if len(text) > MAX_ARCHITECTURE_CHARS:
        raise ValueError(f"{what} has {len(text)} characters, more than the "
                         f"{MAX_ARCHITECTURE_CHARS} allowed")
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{what} nests {depth} levels deep, more than the "
                         f"{MAX_JSON_DEPTH} allowed")


def _with_suffix(path):
    """``path`` plus ``.npz`` when its file name has no suffix at all."""
    stem = os.path.basename(path)
    if stem and not os.path.splitext(stem)[1] and not stem.startswith("."):
        return path + ".npz"
    return path


def write_model(path, record, params):
    """Write the architecture ``record`` (a JSON-serialisable dict) and the flat
    ``params`` to ``path`` atomically; returns the path written.

    Parameters
    ----------
    path : str or os.PathLike
        A name without a suffix gets ``.npz``; any other name is used exactly.
    record : dict
        ``Network.get_config()`` plus ``"metadata"``.
    params : ndarray
        The flat parameter buffer.
    """
    path = _with_suffix(os.fspath(path))
    text = json.dumps(record, default=_jsonable, allow_nan=False)
    check_json_bounds(text, "the architecture record")  # never write what load refuses
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"directory {directory!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".nncore-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, format=np.array(FORMAT), format_version=np.array(FORMAT_VERSION),
                     architecture=np.array(text), params=params)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates the file 0600; give the model the permissions any
        # other file written here would get (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
