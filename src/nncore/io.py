"""Saving and loading networks: one ``.npz`` file, never pickle.

Design
------
The file holds three arrays: ``format`` (the string ``"nncore.network"``),
``format_version`` (an int), ``architecture`` (a JSON string with the layers,
loss, regularizer, dtype and user metadata) and ``params`` (the flat buffer).
It is written to a temporary file in the target directory and moved into
place with ``os.replace``, so a crash never leaves a half-written model under
the final name. Loading uses ``allow_pickle=False`` and checks every field;
anything unexpected is a ``ValueError`` naming the file.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from ._modelfile import FORMAT, FORMAT_VERSION, _with_suffix
from .network import Network

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]


class _FileError(ValueError):
    """A ValueError already naming the file."""


def save(net, path, metadata=None):
    """Write ``net`` to ``path`` atomically.

    Parameters
    ----------
    net : Network
    path : str or os.PathLike
        A name without a suffix gets ``.npz`` (``"model"`` writes
        ``model.npz``, so :func:`load` finds it by either name); any other
        name is used exactly.
    metadata : dict, optional
        JSON-serialisable data stored with the model (numpy scalars/arrays are
        converted to lists); default ``net.metadata``. Restored by
        :func:`load` as ``net.metadata``.

    Returns
    -------
    str
        The path written.
    """
    if not isinstance(net, Network):
        raise TypeError(f"expected an nc.Network, got {type(net).__name__}")
    return net.save(path, metadata=metadata)


def load(path):
    """Read a network written by :meth:`Network.save`.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file; a name without a suffix that does not exist is
        looked up with ``.npz`` added (as :func:`save` writes it).

    Returns
    -------
    Network
        The saved architecture, dtype and parameters, with ``metadata``
        restored.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated, not an nncore model, or of an unknown
        format version (the message names the file).
    """
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(_with_suffix(path)):
        path = _with_suffix(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path!r}")

    def bad(why):
        return _FileError(f"{path!r} is not a valid nncore model file: {why}")

    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise bad("not an .npz archive")
            files = set(data.files)
            missing = {"format", "format_version", "architecture", "params"} - files
            if missing:
                raise bad(f"missing {sorted(missing)} (a foreign .npz file?)")
            fmt = data["format"]
            if fmt.dtype.kind != "U" or fmt.ndim != 0 or str(fmt) != FORMAT:
                raise bad("wrong format tag (a foreign .npz file?)")
            version = data["format_version"]
            if version.dtype.kind not in "iu" or version.ndim != 0:
                raise bad("malformed format_version")
            if int(version) != FORMAT_VERSION:
                raise _FileError(f"{path!r} has nncore model format version {int(version)}; "
                                 f"this nncore reads version {FORMAT_VERSION}")
            arch = data["architecture"]
            if arch.dtype.kind != "U" or arch.ndim != 0:
                raise bad("malformed architecture record")
            params = data["params"]
    except _FileError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, zipfile.LargeZipFile) as exc:
        raise bad(f"{type(exc).__name__}: {exc} (truncated or corrupt?)") from None
    except Exception as exc:  # zlib.error, struct.error... from a damaged archive
        raise bad(f"{type(exc).__name__}: {exc} (truncated or corrupt?)") from None
    try:
        record = json.loads(str(arch))
        net = Network.from_config(record)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise bad(f"bad architecture record ({exc})") from None
    if params.dtype != net.dtype or params.shape != net.params.shape:
        raise bad(f"params have dtype {params.dtype} and shape {params.shape}, expected "
                  f"{net.dtype} and {net.params.shape}")
    if not np.isfinite(params).all():
        raise bad("params contain NaN or infinite values")
    net.params[:] = params
    meta = record.get("metadata") or {}
    if not isinstance(meta, dict):
        raise bad("metadata is not a dict")
    net.metadata = meta
    return net
