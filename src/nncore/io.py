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
import tempfile
import zipfile

import numpy as np

from .network import Network

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "nncore.network"
FORMAT_VERSION = 1


class _FileError(ValueError):
    """A ValueError already naming the file."""


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"metadata value {obj!r} of type {type(obj).__name__} is not JSON-serialisable")


def _with_suffix(path):
    """``path`` plus ``.npz`` when its file name has no suffix at all."""
    stem = os.path.basename(path)
    if stem and not os.path.splitext(stem)[1] and not stem.startswith("."):
        return path + ".npz"
    return path


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
    path = _with_suffix(os.fspath(path))
    if metadata is None:
        metadata = net.metadata
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    record = net.get_config()
    record["metadata"] = metadata
    text = json.dumps(record, default=_jsonable, allow_nan=False)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"directory {directory!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".nncore-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, format=np.array(FORMAT), format_version=np.array(FORMAT_VERSION),
                     architecture=np.array(text), params=net.params)
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
