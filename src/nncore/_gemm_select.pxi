# The NNCORE_GEMM switch: whose ?gemm_ the compiled kernels call (the pointers
# _sgemm_call / _dgemm_call that _gemm_rm in _kernels.pyx calls through).
#
# Why: bench/gemm_candidates.py measured, at the MNIST shapes (batch 32 and 128
# of 784-256-256-10) on one thread, MKL's GEMMs at ~0.65x of SciPy's OpenBLAS
# 0.3.30 time per batch-32 epoch (float32; 0.69x float64; ~0.8x at batch 128);
# the newer OpenBLAS 0.3.34 ~0.9x, BLIS (the blis package) slower. The table
# and the command are in the README's performance section.
#
# Design:
# * "scipy" (the default, and the fallback): SciPy's OpenBLAS through
#   scipy.linalg.cython_blas, as before. Nothing changes for anyone who does
#   not ask.
# * "mkl": libmkl_rt from the ``mkl`` wheel (``pip install nncore-train[mkl]``),
#   found through the wheel's file list and loaded with ctypes when asked: no
#   link step, the nncore wheel is unchanged. LP64 interface; the SEQUENTIAL
#   threading layer: each GEMM runs on the calling thread, so no second OpenMP
#   runtime sits next to nncore's, a forked child is safe, and results do not
#   depend on MKL's thread count. (OpenBLAS keeps its threads; the shared-pool
#   hook of _blas_pool.pxi only concerns OpenBLAS.)
# * Read once at import from NNCORE_GEMM. A value that is not a library name,
#   or an MKL that does not load, warns and keeps "scipy".
#   _set_gemm_library (private) switches in-process, for tests and benchmarks;
#   never during a fit.
# * Results: either library is bit-reproducible run to run (MKL in its CNR
#   mode, MKL_CBWR_AUTO, so operand alignment cannot change them); the two differ
#   from each other in the last bits (another summation order), within the
#   float tolerance to the NumPy twin that the parity suite checks.

import ctypes as _ctypes
import ctypes.util as _ctypes_util

_GEMM_ENV = "NNCORE_GEMM"
_GEMM_LIBRARIES = ("scipy", "mkl")
_MKL_INTERFACE_LP64 = 0          # mkl_service.h: MKL_INTERFACE_LP64
_MKL_THREADING_SEQUENTIAL = 1    # mkl_service.h: MKL_THREADING_SEQUENTIAL
_MKL_CBWR_AUTO = 2               # mkl.h: MKL_CBWR_AUTO (CNR: same bits whatever the alignment)
_MKL_CBWR_SUCCESS = 0

_gemm_library = "scipy"
_mkl_rt = None                   # the loaded libmkl_rt (kept: its pointers must stay valid)


def _mkl_rt_path():
    """Where the ``mkl`` wheel put libmkl_rt (or the system's), else None."""
    from importlib import metadata
    try:
        files = metadata.files("mkl") or []
    except metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name.startswith("libmkl_rt.so"):
            return str(entry.locate())
    return _ctypes_util.find_library("mkl_rt")


def _load_mkl_rt():
    """libmkl_rt, LP64 and sequential; OSError when it cannot be had that way."""
    path = _mkl_rt_path()
    if path is None:
        raise OSError("libmkl_rt not found (pip install nncore-train[mkl])")
    lib = _ctypes.CDLL(path)
    # Both must precede any other MKL call; they report the layer in force, which
    # differs when another library in this process initialised MKL first.
    if lib.MKL_Set_Interface_Layer(_MKL_INTERFACE_LP64) != _MKL_INTERFACE_LP64:
        raise OSError("MKL is not on its LP64 interface in this process")
    if lib.MKL_Set_Threading_Layer(_MKL_THREADING_SEQUENTIAL) != _MKL_THREADING_SEQUENTIAL:
        raise OSError("MKL was already initialised with a threaded layer in this process")
    # Conditional numerical reproducibility: without it MKL may pick kernels by
    # the operands' alignment, so two fits (other buffers) could differ in bits.
    # Measured cost at the MNIST shapes: ~5 % of MKL's GEMM time.
    if lib.MKL_CBWR_Set(_MKL_CBWR_AUTO) != _MKL_CBWR_SUCCESS:
        raise OSError("MKL refused its conditional numerical reproducibility mode")
    return lib


def _set_gemm_library(name):
    """Point the compiled GEMMs at ``name`` ("scipy" or "mkl"); ValueError for an
    unknown name and OSError when MKL cannot be loaded, both changing nothing."""
    global _sgemm_call, _dgemm_call, _gemm_library, _mkl_rt
    if name not in _GEMM_LIBRARIES:
        raise ValueError(f"unknown GEMM library {name!r}; choose one of {_GEMM_LIBRARIES}")
    cdef size_t s_addr, d_addr
    if name == "mkl":
        if _mkl_rt is None:
            _mkl_rt = _load_mkl_rt()
        s_addr = _ctypes.cast(_mkl_rt.sgemm_, _ctypes.c_void_p).value
        d_addr = _ctypes.cast(_mkl_rt.dgemm_, _ctypes.c_void_p).value
        _sgemm_call = <_sgemm_fn>s_addr
        _dgemm_call = <_dgemm_fn>d_addr
    else:
        _sgemm_call = sgemm
        _dgemm_call = dgemm
    _gemm_library = name


def gemm_library():
    """The library the compiled kernels' GEMMs call: ``"scipy"`` (SciPy's OpenBLAS,
    the default) or ``"mkl"`` (``NNCORE_GEMM=mkl`` with the ``mkl`` wheel installed)."""
    return _gemm_library


def _gemm_library_from_env():
    """The switch's start value: NNCORE_GEMM (unset or empty: "scipy")."""
    raw = _os.environ.get(_GEMM_ENV, "").strip().lower() or "scipy"
    if raw not in _GEMM_LIBRARIES:
        _warnings.warn(f"{_GEMM_ENV}={raw!r} is not one of {_GEMM_LIBRARIES}; the compiled "
                       "GEMMs stay on SciPy's OpenBLAS", RuntimeWarning, stacklevel=2)
        return "scipy"
    return raw


def _gemm_library_at_import():
    name = _gemm_library_from_env()
    try:
        _set_gemm_library(name)
    except OSError as exc:
        _warnings.warn(f"{_GEMM_ENV}={name}: {exc}; the compiled GEMMs stay on SciPy's "
                       "OpenBLAS", RuntimeWarning, stacklevel=2)


_gemm_library_at_import()
