"""Where trials run: a local process pool, in-process, any Executor or a Dask cluster."""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys

import multiprocessing as mp

from .._config import get_num_threads
from ._trial import _init_worker, _run_trial, _set_nc_threads


def _is_dask_client(executor):
    return (type(executor).__module__.split(".")[0] == "distributed"
            and hasattr(executor, "scatter") and hasattr(executor, "get_executor"))


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Serial(cf.Executor):
    """Runs each call at submit time, in this process."""

    def submit(self, fn, /, *args, **kwargs):
        fut = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            if isinstance(exc, KeyboardInterrupt):
                raise
            fut.set_exception(exc)
        return fut


class _Runner:
    """Submits trial tasks to the chosen executor and yields results as they finish."""

    def __init__(self, executor, data, n_workers, n_tasks, backend, mp_context):
        self.own = None
        self.data_arg = data
        if executor is None or executor == "process":
            n = n_workers or _cpu_count()
            n = max(1, min(int(n), max(1, n_tasks)))
            ctx = mp.get_context(mp_context) if isinstance(mp_context, str) else mp_context
            self.own = cf.ProcessPoolExecutor(max_workers=n, mp_context=ctx,
                                              initializer=_init_worker,
                                              initargs=(data, backend))
            self.ex = self.own
            self.data_arg = None  # already in every worker
            self.name = f"process pool ({n} workers)"
        elif executor == "serial":
            self.ex = _Serial()
            self.name = "serial"
        elif _is_dask_client(executor):
            self.data_arg = executor.scatter(data, broadcast=True, hash=False)
            self.ex = executor.get_executor(pure=False)
            self.name = "dask"
        elif isinstance(executor, cf.Executor):
            self.ex = executor
            self.name = type(executor).__name__
        else:
            raise TypeError("executor must be None, 'process', 'serial', a "
                            "concurrent.futures.Executor or a dask.distributed.Client, "
                            f"got {type(executor).__name__}")

    def submit(self, task):
        return self.ex.submit(_run_trial, task, self.data_arg)

    def abort(self, futures):
        """Stop the sweep's pending and running trials (after a KeyboardInterrupt)."""
        if self.own is not None:
            # Our own pool: running trials are abandoned, so stop their processes
            # rather than wait (ProcessPoolExecutor has no public API for it). The
            # pool then fails the remaining futures itself; cancelling them too
            # would make Python 3.11's pool thread raise InvalidStateError.
            for proc in list((getattr(self.own, "_processes", None) or {}).values()):
                proc.terminate()
        else:
            for fut in futures:
                fut.cancel()

    def close(self):
        if self.own is not None:
            self.own.shutdown(wait=True, cancel_futures=True)


class _ThreadGuard:
    """One BLAS/nncore thread in the calling process during the sweep, restored after.

    In-process runs (serial, thread pools, Dask with ``processes=False``) then
    compute with the same thread count as worker processes, so they give the
    same numbers.
    """

    def __enter__(self):
        self._limits = None
        try:
            from threadpoolctl import threadpool_limits
            self._limits = threadpool_limits(1)
        except ImportError:  # pragma: no cover
            pass
        self._nc_threads = get_num_threads()
        _set_nc_threads(1)
        return self

    def __exit__(self, *exc):
        # nncore's setter also caps BLAS, so it goes first and threadpoolctl then
        # puts BLAS back exactly as it was.
        if self._nc_threads is not None:
            _set_nc_threads(self._nc_threads)
        if self._limits is not None:
            self._limits.restore_original_limits()
        return False


def _progress_bar(total, progress):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="tune", unit="trial")

