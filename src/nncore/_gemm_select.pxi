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
# * "nncore" (the default on CPUs with AVX-512F): float32 GEMMs of the shapes
#   where it is faster (a batch dimension of 8-128, nnc_sgemm_own_shape) on
#   nncore's own kernel (_sgemm_avx512.h: ~0.7x OpenBLAS's time at the batch-32
#   shapes, each element one FMA chain in k order, so the same bits on any thread
#   count and any split); everything else, float64 included, on SciPy's OpenBLAS
#   as with "scipy".
# * "scipy" (the default elsewhere, and the fallback): SciPy's OpenBLAS through
#   scipy.linalg.cython_blas for both dtypes.
# * "mkl": libmkl_rt from the ``mkl`` wheel (``pip install nncore-train[mkl]``),
#   found through the wheel's file list and loaded with ctypes when asked: no
#   link step, the nncore wheel is unchanged. LP64 interface; the SEQUENTIAL
#   threading layer: each GEMM runs on the calling thread, so no second OpenMP
#   runtime sits next to nncore's, a forked child is safe, and results do not
#   depend on MKL's thread count. (OpenBLAS keeps its threads; the shared-pool
#   hook of _blas_pool.pxi only concerns OpenBLAS.)
# * Read once at import from NNCORE_GEMM. A value that is not a library name,
#   or a library that cannot be had here (MKL not installed, "nncore" without
#   AVX-512F), warns and keeps the default.
#   _set_gemm_library (private) switches in-process, for tests and benchmarks;
#   never during a fit.
# * Results: every library is bit-reproducible run to run (MKL in its CNR
#   mode, MKL_CBWR_AUTO, so operand alignment cannot change them); they differ
#   from each other in the last bits (another summation order), within the
#   float tolerance to the NumPy twin that the parity suite checks.

import ctypes as _ctypes
import ctypes.util as _ctypes_util

_GEMM_ENV = "NNCORE_GEMM"
_GEMM_LIBRARIES = ("nncore", "scipy", "mkl")
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


def own_sgemm_available():
    """Whether nncore's own float32 GEMM runs here (an x86-64 GCC build, AVX-512F)."""
    return bool(NNC_SGEMM_OWN) and nnc_isa_best() == NNC_ISA_AVX512


def _default_gemm_library():
    return "nncore" if own_sgemm_available() else "scipy"


def _set_gemm_library(name):
    """Point the compiled GEMMs at ``name`` ("nncore", "scipy" or "mkl"); ValueError
    for an unknown name and OSError when the library cannot be had here, both
    changing nothing."""
    global _sgemm_call, _dgemm_call, _gemm_library, _mkl_rt, _own_sgemm
    if name not in _GEMM_LIBRARIES:
        raise ValueError(f"unknown GEMM library {name!r}; choose one of {_GEMM_LIBRARIES}")
    if name == "nncore" and not own_sgemm_available():
        raise OSError("nncore's own GEMM needs AVX-512F (an x86-64 CPU that has it)")
    cdef size_t s_addr, d_addr
    _own_sgemm = False
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
        _own_sgemm = name == "nncore"
    _gemm_library = name


def gemm_library():
    """The library the compiled kernels' GEMMs call: ``"nncore"`` (float32 GEMMs
    with a small batch dimension on nncore's own AVX-512 kernel, the rest on SciPy's
    OpenBLAS; the default where the CPU has AVX-512F), ``"scipy"`` (SciPy's OpenBLAS; the default elsewhere)
    or ``"mkl"`` (``NNCORE_GEMM=mkl`` with the ``mkl`` wheel installed)."""
    return _gemm_library


def _gemm_library_from_env():
    """The switch's start value: NNCORE_GEMM (unset or empty: the default)."""
    default = _default_gemm_library()
    raw = _os.environ.get(_GEMM_ENV, "").strip().lower() or default
    if raw not in _GEMM_LIBRARIES:
        _warnings.warn(f"{_GEMM_ENV}={raw!r} is not one of {_GEMM_LIBRARIES}; the compiled "
                       f"GEMMs stay on the default ({default!r})", RuntimeWarning,
                       stacklevel=2)
        return default
    return raw


def _gemm_library_at_import():
    name = _gemm_library_from_env()
    try:
        _set_gemm_library(name)
    except OSError as exc:
        _warnings.warn(f"{_GEMM_ENV}={name}: {exc}; the compiled GEMMs stay on SciPy's "
                       "OpenBLAS", RuntimeWarning, stacklevel=2)


_gemm_library_at_import()


def _own_sgemm_split_calls():
    """How many own-kernel GEMMs were shared between threads so far (for the tests)."""
    return nnc_sg_split_calls


def _sgemm_reference(const float[:, ::1] A, const float[:, ::1] B, float[:, ::1] C,
                     bint trans_a, bint trans_b, bint beta):
    """C := op(A) op(B) [+ C] as the definition of the own kernel's bits: scalar
    code, each element one fmaf chain in k order (for the tests)."""
    cdef Py_ssize_t k = _gemm_inner(A.shape[0], A.shape[1], B.shape[0], B.shape[1],
                                    C.shape[0], C.shape[1], trans_a, trans_b, "_sgemm_reference")
    if C.shape[0] == 0 or C.shape[1] == 0:
        return
    with nogil:
        nnc_sgemm_reference(trans_a, trans_b, C.shape[0], C.shape[1], k, &A[0, 0], A.shape[1],
                            &B[0, 0], B.shape[1], beta, &C[0, 0], C.shape[1])


def _sgemm_own(const float[:, ::1] A, const float[:, ::1] B, float[:, ::1] C,
               bint trans_a, bint trans_b, bint beta):
    """C := op(A) op(B) [+ C] on the own kernel whatever the shape (the compiled
    kernels' GEMMs take it only for the shapes of nnc_sgemm_own_shape); for the
    tests of its bits at every tile edge. RuntimeError without AVX-512F."""
    cdef Py_ssize_t k = _gemm_inner(A.shape[0], A.shape[1], B.shape[0], B.shape[1],
                                    C.shape[0], C.shape[1], trans_a, trans_b, "_sgemm_own")
    cdef int rc
    if not own_sgemm_available():
        raise RuntimeError("nncore's own GEMM needs AVX-512F")
    if C.shape[0] == 0 or C.shape[1] == 0:
        return
    with nogil:
        rc = nnc_sgemm_avx512_any(trans_a, trans_b, C.shape[0], C.shape[1], k, &A[0, 0],
                                  A.shape[1], &B[0, 0], B.shape[1], beta, &C[0, 0], C.shape[1])
    if rc != 0:
        raise MemoryError("_sgemm_own: no memory for its scratch buffer")
