"""Benchmark configuration (pytest-benchmark).

* Files are named ``bench_*.py``; this conftest collects them when pytest's
  ``python_files`` does not already (so ``pytest bench/`` just works).
* Threads are pinned for every benchmark: BLAS pools (NumPy's and SciPy's
  OpenBLAS) via threadpoolctl and the compiled kernels' OpenMP loops, to
  ``NNCORE_BENCH_THREADS`` (default 1), so both backends run under the same
  limits and no idle pool spins alongside the timed code.
* The machine info saved with ``--benchmark-save``/``--benchmark-json``
  records which BLAS each path uses (threadpoolctl) and the nncore build.
* Smoke mode (CI): ``pytest bench/ --benchmark-disable -q`` runs every
  benchmark body once (including its equality check) without timing.
"""

import fnmatch
import os

import pytest

import nncore.backend as _backend

BENCH_THREADS = int(os.environ.get("NNCORE_BENCH_THREADS", "1"))


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") \
            and not parent.session.isinitpath(file_path):   # named on the command line
        patterns = parent.config.getini("python_files")
        if not any(fnmatch.fnmatch(file_path.name, p) for p in patterns):
            return pytest.Module.from_parent(parent, path=file_path)
    return None


def smoke(config):
    """True under --benchmark-disable: bodies run once, so large sizes are shrunk."""
    return bool(config.getoption("benchmark_disable", False))


@pytest.fixture
def smoke_run(request):
    return smoke(request.config)


def compiled_available():
    return "cython" in _backend.available()


def backends():
    """Backend names to benchmark: compiled (when built) and the NumPy reference."""
    return _backend.available()


@pytest.fixture(autouse=True)
def pinned_threads():
    """Same thread limits for every benchmark, restored afterwards."""
    from threadpoolctl import threadpool_limits
    saved_backend = _backend._current
    kernels = None
    if compiled_available():
        from nncore import _kernels as kernels
        saved = kernels.get_num_threads()
        kernels.set_num_threads(BENCH_THREADS)
    with threadpool_limits(limits=BENCH_THREADS):
        yield BENCH_THREADS
    if kernels is not None:
        kernels.set_num_threads(saved)
    _backend._current = saved_backend


def pytest_benchmark_update_machine_info(config, machine_info):
    import io

    import nncore as nc
    from threadpoolctl import threadpool_info
    buf = io.StringIO()
    nc.show_config(file=buf)
    machine_info["nncore_config"] = buf.getvalue()
    machine_info["threadpools"] = threadpool_info()
    machine_info["bench_threads"] = BENCH_THREADS
