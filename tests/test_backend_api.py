"""Both backends expose the same API; the compiled one fails loudly when missing."""

import importlib
import inspect
import io
import sys

import numpy as np
import pytest

import nncore as nc
import nncore.backend as B
from nncore.backend import _numpy


def _compiled():
    try:
        return B._load("cython")
    except ImportError:
        pytest.skip("compiled backend not built here")


def test_backend_api_identical_signatures():
    C = _compiled()
    for name in B.BACKEND_API:
        assert callable(getattr(_numpy, name)), name
        assert callable(getattr(C, name)), name
        assert inspect.signature(getattr(C, name)) == inspect.signature(getattr(_numpy, name)), name
    assert C.NAME == "cython" and _numpy.NAME == "numpy"


def test_public_functions_beyond_api_match():
    """Nothing public in one twin that the other lacks (besides helpers of the spec)."""
    C = _compiled()
    # Functions defined in the backend package (the curvature twins of the
    # reference live beside it in _curvature_numpy.py and are re-exported).
    pub = lambda m: {n for n, v in vars(m).items()
                     if callable(v) and not n.startswith("_")
                     and (getattr(v, "__module__", None) or "").startswith("nncore.backend.")}
    assert pub(C) == set(B.BACKEND_API) | set(B.COMPILED_ONLY)
    assert pub(_numpy) - {"uniform_counter"} == set(B.BACKEND_API)


def test_set_get_backend(monkeypatch):
    nc.set_backend("numpy")
    assert nc.get_backend() == "numpy"
    _compiled()
    nc.set_backend("CYTHON")
    assert nc.get_backend() == "cython"
    with pytest.raises(ValueError, match="unknown backend"):
        nc.set_backend("torch")
    with pytest.raises(TypeError):
        nc.set_backend(1)
    monkeypatch.setattr(B, "_current", None)
    monkeypatch.setenv("NNCORE_BACKEND", "numpy")
    assert nc.get_backend() == "numpy"


@pytest.fixture
def no_kernels(monkeypatch):
    """Pretend the compiled extension was never built."""
    monkeypatch.setitem(sys.modules, "nncore._kernels", None)   # import raises ImportError
    monkeypatch.delitem(sys.modules, "nncore.backend._cython", raising=False)
    monkeypatch.delattr(nc, "_kernels", raising=False)
    monkeypatch.delattr(B, "_cython", raising=False)


def test_missing_compiled_backend_raises(no_kernels, monkeypatch):
    with pytest.raises(ImportError, match="compiled kernels are not available"):
        nc.set_backend("cython")
    monkeypatch.setattr(B, "_current", None)
    monkeypatch.setenv("NNCORE_BACKEND", "cython")
    with pytest.raises(ImportError, match="compiled kernels"):
        B.current()       # no silent fallback to numpy
    nc.set_backend("numpy")    # the reference path still works
    assert nc.get_backend() == "numpy"
    # set_num_threads / show_config still work without the extension
    out = io.StringIO()
    nc.show_config(file=out)
    assert "compiled    no" in out.getvalue()


def test_stale_build_missing_kernel_raises(monkeypatch):
    real = _compiled() and importlib.import_module("nncore._kernels")
    fake = type(sys)("nncore._kernels")
    for name in dir(real):
        if name != "adam_step":
            setattr(fake, name, getattr(real, name))
    fake.__file__ = "stale.so"
    monkeypatch.setitem(sys.modules, "nncore._kernels", fake)
    monkeypatch.setattr(nc, "_kernels", fake, raising=False)
    monkeypatch.delitem(sys.modules, "nncore.backend._cython", raising=False)
    monkeypatch.delattr(B, "_cython", raising=False)
    with pytest.raises(ImportError, match="adam_step"):
        B._load("cython")


def test_set_num_threads_validates_and_applies():
    from threadpoolctl import threadpool_info
    k = pytest.importorskip("nncore._kernels")
    before = nc.get_num_threads()
    try:
        nc.set_num_threads(1)
        assert nc.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
        nc.set_num_threads(np.int64(2))
        assert nc.get_num_threads() == (2 if k.OPENMP else 1)
        for bad, exc in ((0, ValueError), (-3, ValueError), (1.5, TypeError),
                         ("2", TypeError), (True, TypeError), (None, TypeError)):
            with pytest.raises(exc):
                nc.set_num_threads(bad)
        assert nc.get_num_threads() == (2 if k.OPENMP else 1)   # unchanged by bad calls
    finally:
        nc.set_num_threads(max(1, before))


def test_show_config_reports_build_and_blas():
    k = pytest.importorskip("nncore._kernels")
    out = io.StringIO()
    nc.show_config(file=out)
    text = out.getvalue()
    for key in ("nncore", "numpy", "scipy", "Cython", "OpenMP", "backend", "debug build"):
        assert key in text, key
    assert ("OpenMP      on" in text) == bool(k.OPENMP)
    assert "used by scipy" in text      # the compiled path's BLAS is identified


def test_available_lists_what_imports(monkeypatch):
    assert B.available() == ["cython", "numpy"]   # the compiled build is installed here
    def broken(name):
        if name == "cython":
            raise ImportError("no extension")
        return B._numpy
    monkeypatch.setattr(B, "_load", broken)
    assert B.available() == ["numpy"]
