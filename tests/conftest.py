"""Shared test configuration.

Every test starts on the backend named by NNCORE_BACKEND (default: compiled)
and whatever it switches to is undone afterwards, so tests cannot leak a
backend choice into each other.
"""

import os
import signal

import pytest

import nncore.backend as _backend


def pytest_configure(config):
    # A shell without job control starts background commands with SIGINT
    # ignored, and Python then keeps it ignored: the Ctrl-C tests would wait
    # forever. Give the test process Python's own handler whatever started it.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _restore_backend():
    saved = _backend._current
    yield
    _backend._current = saved


def available_backends():
    """Backends that import here; the compiled one is required in CI."""
    names = _backend.available()
    if "cython" not in names and os.environ.get("CI"):
        _backend._load("cython")  # re-raise the real import error in CI
    return names


@pytest.fixture(params=available_backends())
def backend(request):
    """Run a test once per backend; yields the backend module."""
    _backend.set_backend(request.param)
    return _backend.current()


# The compiled backend (C) and its extension module (K), skipping when not built;
# shared by the kernel-level test files.
@pytest.fixture
def C():
    import nncore.backend as B
    try:
        return B._load("cython")
    except ImportError:
        pytest.skip("compiled backend not built")


@pytest.fixture
def K(C):
    from nncore import _kernels
    return _kernels


@pytest.fixture
def gemm_library():
    """``gemm_library(name)`` points the compiled GEMMs at ``name`` (NNCORE_GEMM's
    "nncore", "scipy" or "mkl") for the rest of the test, skipping it when that
    library cannot be had here; the library in use before is back afterwards."""
    K = pytest.importorskip("nncore._kernels")
    before = K.gemm_library()

    def use(name):
        try:
            K._set_gemm_library(name)
        except OSError as exc:
            pytest.skip(f"the {name} GEMMs are not available here: {exc}")
    yield use
    K._set_gemm_library(before)


@pytest.fixture
def numpy_twin_gradient():
    """``(net, X, y) -> (loss, gradient)`` on the NumPy reference backend, the
    backend in use put back after each call: the independent side of a
    compiled-against-twin gradient check."""
    def on_numpy(net, X, y):
        saved = _backend._current
        _backend.set_backend("numpy")
        try:
            return net.loss_and_gradient(X, y)
        finally:
            _backend._current = saved
    return on_numpy
