"""Thread control and a report of how this nncore was built and what it runs on.

One threading runtime at a time: the compiled kernels use OpenMP only for flat
loops over large buffers and SciPy's BLAS (through ``scipy.linalg.cython_blas``)
for every matrix product; the two never run at once. ``set_num_threads`` sets
the OpenMP loop width and caps every loaded BLAS pool (NumPy's and SciPy's
wheels each bundle their own OpenBLAS) through threadpoolctl.
"""

from __future__ import annotations

import os
import sys

_blas_limiter = None
# set_num_threads(n) -> n; None: the default, where training picks its threads
# by measured speed (_thread_plan) between the default width and one.
_explicit_threads = None
_default_width = None
_blas_pools = None          # threadpoolctl's BLAS pools, found once
_serial_limiter = None


def _kernels():
    try:
        from . import _kernels
    except ImportError:
        return None
    return _kernels


def set_num_threads(n):
    """Set the number of threads used by nncore's compiled kernels and by BLAS.

    Parameters
    ----------
    n : int
        Threads (>= 1) for the OpenMP loops over large flat buffers (optimizer
        updates, dropout masks, elementwise activations) and the cap for every
        BLAS thread pool loaded in the process (via threadpoolctl). Use 1 for
        reproducible single-threaded timings. In a process forked from one
        that loaded nncore, the compiled loops stay on one thread (GNU OpenMP
        cannot start threads there): asking for more warns once.
    """
    global _blas_limiter, _explicit_threads
    from ._checks import integer
    n = integer(n, "number of threads", low=1)
    k = _kernels()
    _configured_width()      # remember the default before the first change
    _explicit_threads = n
    if k is not None:
        k.set_num_threads(n)
        if n > 1 and k.forked_child():
            _warn_forked_cap(n)
    from threadpoolctl import threadpool_limits
    _blas_limiter = threadpool_limits(limits=n, user_api="blas")


_forked_warned_in = None      # the process id that warned about the fork cap


def _warn_forked_cap(n):
    """Say once per process that a forked child's compiled loops stay on one thread."""
    global _forked_warned_in
    if _forked_warned_in == os.getpid():
        return
    _forked_warned_in = os.getpid()
    import warnings
    warnings.warn(
        f"set_num_threads({n}): this process was forked (os.fork, multiprocessing's "
        "'fork' start method) from one that loaded nncore, and GNU OpenMP cannot start "
        "threads in such a child, so nncore's compiled loops stay on 1 thread here (BLAS "
        f"gets up to {n}). For more, start workers with multiprocessing's 'spawn' or "
        "'forkserver' method. (Warned once per process.)", RuntimeWarning, stacklevel=3)


def _configured_width():
    """Threads of the compiled loops outside the thread plan's serial sections."""
    global _default_width
    if _explicit_threads is not None:
        return _explicit_threads
    if _default_width is None:
        k = _kernels()
        _default_width = k.get_num_threads() if k is not None and k.OPENMP else 1
    return _default_width


def _adaptive_threads():
    """True while training may choose between the default width (> 1) and one thread."""
    k = _kernels()
    forked = k is not None and k.forked_child()
    return _explicit_threads is None and _configured_width() > 1 and not forked


def _serial_threads(on):
    """Enter (``on``) or leave one-thread mode: the compiled loops and every BLAS
    pool at 1 thread, then back (the thread plan's serial section, which counts
    its users; only it calls this)."""
    global _blas_pools, _serial_limiter
    from threadpoolctl import ThreadpoolController, threadpool_limits
    k = _kernels()
    if on:
        if _blas_pools is None:
            _blas_pools = ThreadpoolController().select(user_api="blas")
        if k is not None:
            k.set_num_threads(1)
        _serial_limiter = _blas_pools.limit(limits=1)
        return
    if k is not None:
        k.set_num_threads(_configured_width())
    if _serial_limiter is not None:
        _serial_limiter.restore_original_limits()
        _serial_limiter = None
    if _explicit_threads is not None:    # set_num_threads ran meanwhile: it wins
        threadpool_limits(limits=_explicit_threads, user_api="blas")


def set_shared_blas_pool(on):
    """Allow or forbid running BLAS's parallel jobs on nncore's OpenMP threads.

    With 2+ threads the compiled epoch loop hands OpenBLAS's parallel jobs
    (SciPy's OpenBLAS >= 0.3.27) to its own OpenMP team, so one thread pool
    serves the matrix products and the optimizer update; the hook then stays
    for the process. Results are the same bits either way. The environment
    variable ``NNCORE_SHARED_BLAS_POOL=0`` switches it off from the start;
    ``show_config()`` reports the setting.

    Parameters
    ----------
    on : bool
        ``False`` removes the hook at once (BLAS goes back to its own
        threads) unless an epoch loop is running in another thread, in which
        case the last running loop removes it; call it while no other thread
        uses SciPy's BLAS. ``True`` allows the hook again from the next epoch.

    Returns
    -------
    bool
        The previous setting.
    """
    if not isinstance(on, bool):
        from .errors import InvalidParameterError
        raise InvalidParameterError(f"on must be a bool, got {type(on).__name__}")
    k = _kernels()
    if k is None:
        return False
    return bool(k._set_blas_shared_pool(on))


def set_flush_denormal(on):
    """Flush subnormal floats to zero in the compiled training loops (opt-in).

    Like ``torch.set_flush_denormal``. Arithmetic on subnormal numbers (smaller
    in magnitude than 1.2e-38 in float32, 2.2e-308 in float64) is many times
    slower on x86 CPUs (about 50x on the development Xeon). It happens when a
    ReLU network's units die: their gradients are exactly zero and Adam's first
    moment decays by ``beta1`` per step into the subnormal range
    (``bench/subnormal_adam.py`` shows the slowdown). With the switch on, the
    compiled epoch loop (forward, backward and update of every step of a
    first-order ``fit`` that runs compiled) and the optimizers' update kernels
    (``Optimizer.step`` on the compiled backend) treat subnormal inputs as
    zero and round subnormal results to zero (the CPU's DAZ and FTZ modes), on
    every thread that runs them, as XLA's CPU code does. The calling thread's
    and the OpenMP threads' modes are restored when each call returns, so your
    NumPy and the other kernels (``predict``, losses, curvature) keep IEEE
    semantics. ``show_config()`` reports the setting.

    Off by default: IEEE arithmetic, bit-identical to ``torch.optim`` and to
    the NumPy reference backend. With it on, results can differ from those in
    the last bits wherever a value would have been subnormal (a moment that
    would decay below the normal range becomes 0, and a parameter then keeps
    its value instead of moving by a subnormal step); they stay bit-identical
    run to run and for any thread count. The NumPy backend never flushes.

    Parameters
    ----------
    on : bool

    Returns
    -------
    bool
        Whether flushing is supported (x86-64 builds of the compiled kernels).
        ``False`` means nothing changed (other CPUs, or no compiled kernels),
        as ``torch.set_flush_denormal`` returns ``False`` there.

    Raises
    ------
    InvalidParameterError
        If ``on`` is not a bool (a ``TypeError``).
    """
    if not isinstance(on, bool):
        from .errors import InvalidParameterError
        raise InvalidParameterError(f"on must be a bool, got {type(on).__name__}")
    k = _kernels()
    if k is None:
        return False
    return bool(k._set_flush_denormal(on))


def _flush_line(k):
    """show_config's line on the flush-denormal switch."""
    if not k.flush_denormal_supported():
        return "not supported on this CPU (no MXCSR): IEEE subnormals"
    if k.flush_denormal():
        return ("on: training loops and optimizer steps flush subnormals to zero "
                "(FTZ/DAZ; set_flush_denormal(False) for IEEE)")
    return "off: IEEE subnormals (set_flush_denormal(True) flushes them in training)"


def _gemm_line(k):
    """show_config's line on whose GEMM the compiled kernels call (NNCORE_GEMM)."""
    lib = k.gemm_library()
    if lib == "mkl":
        return "MKL's (NNCORE_GEMM=mkl; sequential, CNR mode)"
    if lib == "nncore":
        return ("float32 with a batch dimension of 8-128: nncore's own AVX-512 kernel; "
                "the rest: SciPy's OpenBLAS (NNCORE_GEMM=scipy: OpenBLAS for all; =mkl: "
                "MKL's, with the mkl extra)")
    return "SciPy's OpenBLAS via cython_blas (NNCORE_GEMM=mkl: MKL's, with the mkl extra)"


def _blas_jobs_line(k):
    """show_config's line on where BLAS's parallel jobs run."""
    if not k.shared_blas_pool_enabled():
        return "on BLAS's own threads (shared pool switched off: NNCORE_SHARED_BLAS_POOL=0 " \
               "or set_shared_blas_pool(False))"
    if k.forked_child():
        return "on BLAS's own threads (a forked child: nncore's loops run on one thread)"
    if not k.blas_shared_pool():
        return ("on BLAS's own threads (no OpenBLAS threads callback, no OpenMP, or "
                "OMP_DYNAMIC / OMP_THREAD_LIMIT set)")
    state = "installed" if k.shared_blas_pool_installed() else "from the first epoch loop"
    return (f"on nncore's OpenMP threads on 2+ threads ({state}; OpenBLAS threads callback; "
            "off: NNCORE_SHARED_BLAS_POOL=0 or set_shared_blas_pool(False))")


def _thread_plan_line(k):
    """show_config's line on how training chooses its threads."""
    if _explicit_threads is not None:
        how = f"fixed at {_explicit_threads} (set_num_threads)"
    elif os.environ.get("NNCORE_THREAD_PLAN", "").strip().lower() == "fixed":
        how = f"fixed at {_configured_width()} (NNCORE_THREAD_PLAN=fixed)"
    elif _adaptive_threads():
        how = (f"adaptive: each ~0.1 s of training runs on {_configured_width()} threads or 1, "
               "whichever was measured faster")
    else:
        how = "1 thread"
    spin = sys.modules.get(__package__ + "._omp_wait")
    if spin is not None and spin.applied:
        how += f"; idle OpenMP threads spin {spin.SPIN_COUNT} rounds, then sleep"
    return how


def get_num_threads():
    """Number of threads the compiled kernels' OpenMP loops use (1 without OpenMP)."""
    k = _kernels()
    return k.get_num_threads() if (k is not None and k.OPENMP) else 1


def _blas_owner(path):
    p = path.replace("\\", "/").lower()
    for pkg in ("numpy", "scipy", "torch", "sklearn"):
        if f"/{pkg}.libs/" in p or f"/{pkg}/" in p:
            return pkg
    return "other"


def _build_blas(module):
    try:
        cfg = module.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older versions have no dict mode
        return "unknown"


def show_config(file=None):
    """Print versions, the active backend, OpenMP and which BLAS each path uses.

    Parameters
    ----------
    file : file-like, optional
        Where to print (default ``sys.stdout``).
    """
    import numpy
    import scipy

    from ._version import __version__
    from .backend import get_backend

    out = file if file is not None else sys.stdout
    k = _kernels()
    try:
        backend = get_backend()
    except ImportError as exc:
        backend = f"unavailable ({exc})"
    lines = [
        f"nncore      {__version__}  ({os.path.dirname(os.path.abspath(__file__))})",
        f"python      {sys.version.split()[0]}",
        f"numpy       {numpy.__version__}  (BLAS: {_build_blas(numpy)})",
        f"scipy       {scipy.__version__}  (BLAS: {_build_blas(scipy)})",
    ]
    if k is None:
        lines.append("compiled    no (nncore._kernels is missing; only the numpy backend works)")
    else:
        lines += [
            f"Cython      {k.CYTHON_VERSION} (compiled with)",
            f"OpenMP      {'on' if k.OPENMP else 'off'}, {get_num_threads()} thread(s)",
            "BLAS jobs   " + _blas_jobs_line(k),
            "GEMM        " + _gemm_line(k),
            "thread plan " + _thread_plan_line(k),
            "denormals   " + _flush_line(k),
            f"debug build {'on (bounds and initialisation checks)' if k.DEBUG_BUILD else 'off'}",
        ]
    lines.append(f"backend     {backend}  (numpy backend: numpy's BLAS; "
                 "cython backend: scipy's BLAS via cython_blas)")
    try:
        from threadpoolctl import threadpool_info
        info = threadpool_info()
    except Exception as exc:  # noqa: BLE001 - report, do not fail
        info = []
        lines.append(f"threadpools unavailable ({exc})")
    for pool in info:
        owner = _blas_owner(pool.get("filepath", ""))
        if pool.get("user_api") == "openmp":
            owner = "compiled kernels' loops (capped per call by set_num_threads)"
        lines.append(
            f"threadpool  {pool.get('user_api')}/{pool.get('internal_api')} "
            f"{pool.get('version') or ''} used by {owner}: "
            f"{pool.get('num_threads')} thread(s)"
            + (f", {pool['architecture']}" if pool.get("architecture") else "")
            + f"  [{os.path.basename(pool.get('filepath', ''))}]")
    print("\n".join(lines), file=out)
