# The shared BLAS/OpenMP thread pool: the glue around _blas_pool.h (included by
# _kernels.pyx before the epoch loop, which is its only user).
#
# Design:
# * With 2+ threads, the first epoch loop installs OpenBLAS's threads callback
#   (nnc_blas_jobs in _blas_pool.h), so BLAS's parallel jobs run on this
#   module's OpenMP team and the loop's elementwise work can be threaded from
#   64K elements instead of 4M. Results are the same bits either way.
# * Once installed the hook stays for the process: taking it out while another
#   Python thread runs a multi-threaded SciPy BLAS call through it (a
#   validation pass, a concurrent fit) and putting it back while such a call
#   runs on OpenBLAS's own threads could let the two pools share OpenBLAS's
#   work buffers. So there is one such moment per process (the first
#   multi-threaded epoch), not two per fit. Known limit: a multi-threaded SciPy
#   BLAS call made from another Python thread at that very moment may still run
#   on OpenBLAS's own threads next to ours.
# * The off switch: NNCORE_SHARED_BLAS_POOL=0 in the environment (read at
#   import) or set_shared_blas_pool(False) (nncore.set_shared_blas_pool), which
#   also removes an installed hook. Then BLAS keeps its own threads.
# * A forked child gets the hook removed and nncore's OpenMP loops kept on one
#   thread (see the Fork note in _blas_pool.h).

import os as _os
import warnings as _warnings

from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer

cdef extern from "_blas_pool.h":
    ctypedef void* nnc_set_jobs_t
    long nnc_blas_pool_calls
    int nnc_forked_child
    int nnc_blas_pool_users
    int nnc_blas_pool_is_installed() noexcept nogil
    nnc_set_jobs_t nnc_blas_pool_setter(void* addr) noexcept nogil
    int nnc_blas_pool_set(nnc_set_jobs_t setter, int on, int most) noexcept nogil
    int nnc_blas_pool_ok(nnc_set_jobs_t setter, int most) noexcept nogil
    int nnc_blas_pool_register_atfork() noexcept nogil
    ctypedef void (*nnc_blas_set_threads_t)(int) noexcept nogil
    ctypedef int (*nnc_blas_get_threads_t)() noexcept nogil
    nnc_blas_set_threads_t nnc_blas_set_threads
    nnc_blas_get_threads_t nnc_blas_get_threads
    void nnc_blas_thread_fns(void* addr) noexcept nogil

# Flat loops inside the epoch loop use OpenMP from this many elements on when
# BLAS runs its jobs on the same OpenMP team (else from TL_PAR_MIN).
cdef Py_ssize_t BLAS_POOL_PAR_MIN = 1 << 16

_SHARED_POOL_ENV = "NNCORE_SHARED_BLAS_POOL"
_ENV_OFF = ("0", "false", "off", "no")
_ENV_ON = ("", "1", "true", "on", "yes")


cdef nnc_set_jobs_t _blas_pool_setter_from_scipy():
    from scipy.linalg import cython_blas
    cdef void* sgemm_addr
    try:
        cap = cython_blas.__pyx_capi__["sgemm"]
        sgemm_addr = PyCapsule_GetPointer(cap, PyCapsule_GetName(cap))
    except Exception:   # an unusual SciPy: keep BLAS's own pool
        return NULL
    nnc_blas_thread_fns(sgemm_addr)
    return nnc_blas_pool_setter(sgemm_addr)


def _shared_pool_from_env():
    """The switch's start value: NNCORE_SHARED_BLAS_POOL (unset: on)."""
    raw = _os.environ.get(_SHARED_POOL_ENV, "").strip().lower()
    if raw in _ENV_OFF:
        return False
    if raw not in _ENV_ON:
        _warnings.warn(f"{_SHARED_POOL_ENV}={raw!r} is not one of 0/1/true/false/on/off/"
                       "yes/no; the shared BLAS pool stays on", RuntimeWarning, stacklevel=2)
    return True


cdef nnc_set_jobs_t _blas_pool_setter = _blas_pool_setter_from_scipy()
# Whether the epoch loop may hand BLAS's jobs to the OpenMP team. (Whether the
# hook is installed, and how many loops run now, live in C: a fork resets them.)
cdef bint _blas_pool_enabled = _shared_pool_from_env()

if nnc_blas_pool_register_atfork() != 0:   # pragma: no cover - pthread_atfork out of memory
    raise ImportError("nncore._kernels: could not register its fork handler")


def blas_shared_pool():
    """Whether the epoch loop can run BLAS's parallel jobs on nncore's OpenMP
    threads: an OpenMP build, a BLAS with OpenBLAS's threads callback (SciPy's
    OpenBLAS >= 0.3.27), no OMP_DYNAMIC and no OMP_THREAD_LIMIT below 64. It is
    then used whenever set_num_threads(n) has n > 1 and the switch is on."""
    return bool(nnc_blas_pool_ok(_blas_pool_setter, MAX_THREADS))


def shared_blas_pool_enabled():
    """The off switch's state (NNCORE_SHARED_BLAS_POOL, set_shared_blas_pool)."""
    return bool(_blas_pool_enabled)


def shared_blas_pool_installed():
    """Whether OpenBLAS's jobs run on nncore's OpenMP team now."""
    return bool(nnc_blas_pool_is_installed())


def _set_blas_shared_pool(bint on):
    """Allow or forbid the shared BLAS/OpenMP pool; forbidding removes the hook at
    once unless an epoch loop runs (then the last loop to finish removes it).
    Call it while no other thread uses SciPy's BLAS. Returns the old setting."""
    global _blas_pool_enabled
    old = _blas_pool_enabled
    _blas_pool_enabled = on
    if not on:
        _blas_pool_remove_if_idle()
    return old


cdef void _blas_pool_remove_if_idle():
    if nnc_blas_pool_is_installed() and not _blas_pool_enabled and nnc_blas_pool_users == 0:
        nnc_blas_pool_set(_blas_pool_setter, 0, 0)


def _blas_shared_pool_calls():
    """How many BLAS parallel sections ran on the OpenMP team so far."""
    return nnc_blas_pool_calls


cdef bint _blas_pool_enter(int threads):
    """An epoch loop starts (GIL held): install the hook if allowed and not yet
    done; returns whether BLAS's jobs run on our team during the loop."""
    global nnc_blas_pool_users
    nnc_blas_pool_users += 1
    # The hook is OpenBLAS's: with the GEMMs on MKL (NNCORE_GEMM, _gemm_select.pxi)
    # the loop's BLAS work does not run on our team, so neither install nor count it.
    cdef bint openblas_gemm = _gemm_library != "mkl"   # "nncore": float64 on OpenBLAS
    if _blas_pool_enabled and threads > 1 and openblas_gemm and not nnc_blas_pool_is_installed():
        # BLAS may ask for as many threads as its own pool has (what
        # threadpoolctl / set_num_threads left it); each of those jobs must get
        # a thread, so OMP_THREAD_LIMIT < 64 keeps BLAS's pool.
        nnc_blas_pool_set(_blas_pool_setter, 1, MAX_THREADS)
    return nnc_blas_pool_is_installed() and threads > 1 and openblas_gemm


cdef void _blas_pool_leave():
    """An epoch loop ends (GIL held)."""
    global nnc_blas_pool_users
    nnc_blas_pool_users -= 1
    _blas_pool_remove_if_idle()
