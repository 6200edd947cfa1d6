"""The shared BLAS/OpenMP pool's off switch, and processes forked after a
multi-threaded fit (nncore, NumPy and SciPy must work in the child).

Each scenario runs in a fresh interpreter (the switch is read at import, and
the hook, once installed, stays for the process), under a timeout: a hang is
a failure, not a stuck suite.
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import nncore as nc

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

_TIMEOUT = 240   # generous: the machine may be busy; a hang takes forever

# A 2-thread fit with the MNIST-shaped GEMMs that OpenBLAS threads; prints
# whether the hook could apply here and whether the fit used it.
_PRELUDE = """
import io, os, sys
import numpy as np
import nncore as nc
from nncore import _kernels as K

nc.set_num_threads(2)
# The per-layer path, whose GEMMs OpenBLAS splits: the 2-thread task step of dense
# Adam fits (_dense_tasks.pxi) runs each GEMM single-threaded and hands BLAS no jobs.
K._set_dense_tasks(False)
rng = np.random.default_rng(0)
X = rng.random((640, 784), dtype=np.float32)
y = rng.integers(0, 10, 640)

def make_net():
    return nc.Network([nc.Dense(784, 256, "relu"), nc.Dense(256, 10)],
                      loss="cross_entropy", seed=0)

def train(net):
    net.fit(X, y, optimizer=nc.optim.Adam(1e-3), batch_size=32, epochs=1,
            progress=False, seed=0)
    return net

calls_before = K._blas_shared_pool_calls()
parent = train(make_net())
print("POOL_POSSIBLE", K.blas_shared_pool())
print("POOL_USED", K._blas_shared_pool_calls() > calls_before)
"""


def _run(*parts, env=None):
    """Run the prelude and then ``parts`` (each dedented) in a fresh interpreter;
    returns the ``KEY value`` lines it printed."""
    pytest.importorskip("nncore._kernels")
    code = "".join(textwrap.dedent(part) for part in (_PRELUDE,) + parts)
    full_env = dict(os.environ)
    full_env.pop("NNCORE_SHARED_BLAS_POOL", None)
    # The hook is OpenBLAS's: the float32 fits here must make OpenBLAS calls, not
    # the own kernel's (the default on AVX-512 CPUs).
    full_env["NNCORE_GEMM"] = "scipy"
    full_env.update(env or {})
    # Its own process group, so a hung forked child is killed with its parent.
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"hung for {_TIMEOUT} s:\n{stdout}{stderr}")
    assert proc.returncode == 0, stdout + stderr
    return dict(line.split(" ", 1) for line in stdout.splitlines() if " " in line)


def test_env_switch_keeps_blas_on_its_own_threads():
    out = _run("""
        print("ENABLED", K.shared_blas_pool_enabled())
        print("INSTALLED", K.shared_blas_pool_installed())
        buf = io.StringIO()
        nc.show_config(file=buf)
        print("REPORTED", "switched off" in buf.getvalue())
    """, env={"NNCORE_SHARED_BLAS_POOL": "0"})
    assert out["ENABLED"] == "False"
    assert out["POOL_USED"] == "False"
    assert out["INSTALLED"] == "False"
    assert out["REPORTED"] == "True"


def test_env_switch_unset_uses_the_pool_where_possible():
    out = _run("""
        print("ENABLED", K.shared_blas_pool_enabled())
        print("INSTALLED", K.shared_blas_pool_installed())
    """)
    assert out["ENABLED"] == "True"
    assert out["POOL_USED"] == out["POOL_POSSIBLE"]
    assert out["INSTALLED"] == out["POOL_POSSIBLE"]


def test_unknown_env_value_is_not_silent():
    """An unknown value warns (here raised, with warnings as errors) and the pool stays on."""
    env = dict(os.environ, NNCORE_SHARED_BLAS_POOL="maybe")
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", "import nncore._kernels"],
                          capture_output=True, text=True, timeout=_TIMEOUT, env=env)
    assert proc.returncode != 0 and "NNCORE_SHARED_BLAS_POOL" in proc.stderr
    out = _run('print("ENABLED", K.shared_blas_pool_enabled())',
               env={"NNCORE_SHARED_BLAS_POOL": "maybe"})
    assert out["ENABLED"] == "True"


def test_function_switch_removes_the_hook_and_reports_it():
    """set_shared_blas_pool(False) after a fit: SciPy's threaded dgemm no longer
    runs on nncore's team, show_config says so, and True brings it back at the
    next multi-threaded epoch. The products stay right throughout."""
    out = _run("""
        from scipy.linalg import blas
        A = np.asfortranarray(rng.standard_normal((600, 500)))
        B = np.asfortranarray(rng.standard_normal((500, 700)))
        def dgemm_calls():
            before = K._blas_shared_pool_calls()
            C = blas.dgemm(1.0, A, B)
            assert np.allclose(C, A @ B, rtol=1e-12, atol=1e-10)
            return K._blas_shared_pool_calls() - before
        print("OLD", nc.set_shared_blas_pool(False))
        print("OFF_INSTALLED", K.shared_blas_pool_installed())
        print("OFF_CALLS", dgemm_calls())
        buf = io.StringIO()
        nc.show_config(file=buf)
        print("OFF_REPORTED", "switched off" in buf.getvalue())
        print("OLD2", nc.set_shared_blas_pool(True))
        train(make_net())
        print("ON_INSTALLED", K.shared_blas_pool_installed())
        print("ON_CALLS", dgemm_calls() > 0)
    """)
    assert out["OLD"] == "True" and out["OLD2"] == "False"
    assert out["OFF_INSTALLED"] == "False"
    assert out["OFF_CALLS"] == "0"
    assert out["OFF_REPORTED"] == "True"
    assert out["ON_INSTALLED"] == out["POOL_POSSIBLE"]
    assert out["ON_CALLS"] == out["POOL_POSSIBLE"]


def test_set_shared_blas_pool_rejects_non_bool():
    for bad in (0, 1, "off", None, 1.0):
        with pytest.raises(TypeError):
            nc.set_shared_blas_pool(bad)


# --------------------------------------------------------------------------- fork

_CHILD_WORK = """
def child_work():
    # nncore: a fit equals the parent's (results never depend on threads), predict too
    net = train(make_net())
    assert np.array_equal(net.params, parent.params), "child fit differs"
    assert np.array_equal(net.predict(X), parent.predict(X))
    # NumPy's and SciPy's BLAS on large products (multi-threaded in the parent)
    from scipy.linalg import blas
    A = np.asfortranarray(rng.standard_normal((800, 600)))
    B = np.asfortranarray(rng.standard_normal((600, 900)))
    ref = np.einsum("ik,kj->ij", A, B)
    assert np.allclose(A @ B, ref, rtol=1e-10, atol=1e-9)
    assert np.allclose(blas.dgemm(1.0, A, B), ref, rtol=1e-10, atol=1e-9)
    assert np.allclose(blas.sgemm(1.0, A.astype(np.float32), B.astype(np.float32)), ref,
                       rtol=1e-3, atol=1e-2)
    return nc.get_num_threads()
"""


def test_forked_child_after_two_thread_fit_runs_nncore_numpy_scipy():
    out = _run(_CHILD_WORK, """
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                threads = child_work()
                print("CHILD_OK", threads, flush=True)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("CHILD_STATUS", os.waitstatus_to_exitcode(status))
        # the parent keeps its threads and its pool
        print("PARENT_THREADS", nc.get_num_threads())
        print("PARENT_INSTALLED", K.shared_blas_pool_installed())
    """)
    assert out["CHILD_STATUS"] == "0"
    assert out["CHILD_OK"] == "1"      # GNU OpenMP cannot start a team in the child
    assert out["PARENT_THREADS"] == ("2" if nc._kernels.OPENMP else "1")
    assert out["PARENT_INSTALLED"] == out["POOL_POSSIBLE"]


def test_multiprocessing_fork_pool_after_two_thread_fit():
    out = _run(_CHILD_WORK, """
        import multiprocessing as mp
        def task(i):
            child_work()
            return i
        with mp.get_context("fork").Pool(2) as pool:
            print("RESULTS", sorted(pool.map(task, range(3))))
    """)
    assert out["RESULTS"] == "[0, 1, 2]"


def test_forked_child_warns_once_when_it_caps_the_thread_count():
    """The child's loops stay on one thread; asking for more says so, once."""
    if not pytest.importorskip("nncore._kernels").OPENMP:
        pytest.skip("without OpenMP the loops are single-threaded everywhere")
    out = _run("""
        import warnings
        def record(n):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                nc.set_num_threads(n)
            return [str(w.message) for w in caught if w.category is RuntimeWarning]
        print("PARENT_WARNED", len(record(2)))
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                one, first, again = record(1), record(2), record(3)
                print("CHILD_ONE", len(one), flush=True)
                print("CHILD_FIRST", len(first), flush=True)
                print("CHILD_AGAIN", len(again), flush=True)
                print("CHILD_NAMES_FORK", all(w in first[0] for w in ("forked", "1 thread",
                                                                     "spawn")), flush=True)
                print("CHILD_THREADS", nc.get_num_threads(), flush=True)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("CHILD_STATUS", os.waitstatus_to_exitcode(status))
    """)
    assert out["PARENT_WARNED"] == "0"
    assert out["CHILD_STATUS"] == "0"
    assert out["CHILD_ONE"] == "0"                 # nothing capped: no warning
    assert out["CHILD_FIRST"] == "1" and out["CHILD_NAMES_FORK"] == "True"
    assert out["CHILD_AGAIN"] == "0"               # once per process
    assert out["CHILD_THREADS"] == "1"
