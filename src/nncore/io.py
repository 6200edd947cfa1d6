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

A model file is untrusted input, so loading is bounded before anything is
allocated or inflated: the ``.npy`` header of every member is read from the
zip stream first (shape and dtype, without inflating the data) and checked
against the zip directory's sizes; the architecture JSON is capped at
``MAX_ARCHITECTURE_CHARS`` characters and ``MAX_JSON_DEPTH`` levels of
nesting; and the parameter count the architecture declares (summed from its
layers, which allocate nothing) must equal the stored ``params`` header before
the network is built or ``params`` is read.
"""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np

from ._modelfile import (FORMAT, FORMAT_VERSION, MAX_ARCHITECTURE_CHARS, MAX_JSON_DEPTH,
                         _with_suffix, check_json_bounds)
from .layers import layer_from_config
from .network import Network

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION", "MAX_ARCHITECTURE_CHARS",
           "MAX_JSON_DEPTH"]

_MEMBERS = ("format", "format_version", "architecture", "params")


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
        with zipfile.ZipFile(path) as zf:
            headers = _member_headers(zf, bad)
            _check_tag_headers(headers, bad)
            _check_format(zf, path, bad)
            arch = str(_read_member(zf, "architecture"))
            record = _parse_architecture(arch, bad)
            net = _checked_network(record, headers["params"], bad)
            params = _read_member(zf, "params")
    except _FileError:
        raise
    except Exception as exc:  # zipfile, zlib, struct, npy-format errors of a damaged file
        raise bad(f"{type(exc).__name__}: {exc} (truncated or corrupt?)") from None
    if not np.isfinite(params).all():
        raise bad("params contain NaN or infinite values")
    net.params[:] = params
    meta = record.get("metadata") or {}
    if not isinstance(meta, dict):
        raise bad("metadata is not a dict")
    net.metadata = meta
    return net


def _member_headers(zf, bad):
    """``name -> (shape, dtype)`` of the four members, from headers only (nothing inflated)."""
    names = set(zf.namelist())
    missing = [m for m in _MEMBERS if m + ".npy" not in names]
    if missing:
        raise bad(f"missing {sorted(missing)} (a foreign .npz file?)")
    headers = {}
    for member in _MEMBERS:
        info = zf.getinfo(member + ".npy")
        with zf.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(fp)
            header_size = fp.tell()
        if dtype.hasobject:
            raise bad(f"{member} is a pickled object array (refused, never unpickled)")
        # The zip directory's size must be what the header declares, so a member
        # cannot claim a small shape and inflate to more (or the reverse).
        declared = header_size + math.prod(shape) * dtype.itemsize
        if info.file_size != declared:
            raise bad(f"{member} declares shape {shape} of {dtype} ({declared} bytes) but "
                      f"holds {info.file_size} bytes")
        headers[member] = (shape, dtype)
    return headers


def _check_tag_headers(headers, bad):
    """format, format_version and architecture are scalars of bounded size."""
    shape, dtype = headers["format"]
    if dtype.kind != "U" or shape != () or dtype.itemsize > 4 * 64:
        raise bad("wrong format tag (a foreign .npz file?)")
    shape, dtype = headers["format_version"]
    if dtype.kind not in "iu" or shape != ():
        raise bad("malformed format_version")
    shape, dtype = headers["architecture"]
    if dtype.kind != "U" or shape != ():
        raise bad("malformed architecture record")
    if dtype.itemsize // 4 > MAX_ARCHITECTURE_CHARS:
        raise bad(f"the architecture record has {dtype.itemsize // 4} characters, more than "
                  f"the {MAX_ARCHITECTURE_CHARS} allowed")


def _check_format(zf, path, bad):
    if str(_read_member(zf, "format")) != FORMAT:
        raise bad("wrong format tag (a foreign .npz file?)")
    version = int(_read_member(zf, "format_version"))
    if version != FORMAT_VERSION:
        raise _FileError(f"{path!r} has nncore model format version {version}; "
                         f"this nncore reads version {FORMAT_VERSION}")


def _read_member(zf, member):
    """One member's array (its header already checked), with the zip CRC verified."""
    with zf.open(member + ".npy") as fp:
        arr = np.lib.format.read_array(fp, allow_pickle=False)
        fp.read()  # reach the end of the member: zipfile checks the CRC there
    return arr


def _parse_architecture(text, bad):
    try:
        check_json_bounds(text, "the architecture record")
        record = json.loads(text)
    except ValueError as exc:
        raise bad(f"bad architecture record ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("layers"), list):
        raise bad("bad architecture record (expected an object with a list of layers)")
    return record


def _checked_network(record, params_header, bad):
    """The network the record describes, built only once its size matches the stored params."""
    shape, dtype = params_header
    try:
        # Layers allocate nothing; only Network() does, so count first.
        n_params = sum(layer_from_config(c).n_params for c in record["layers"])
        expected_dtype = np.dtype(record.get("dtype", "float32"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise bad(f"bad architecture record ({exc})") from None
    if shape != (n_params,) or dtype != expected_dtype:
        raise bad(f"params have dtype {dtype} and shape {shape}, expected "
                  f"{expected_dtype} and ({n_params},)")
    try:
        return Network.from_config(record)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise bad(f"bad architecture record ({exc})") from None
