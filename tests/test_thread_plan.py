"""The thread plan (issue 12 item 7): by default training runs each ~0.1 s unit
of work either on the configured threads or on one, keeping the way measured
faster. Tested without timing: the choice rule on given times, the serial
section (one thread for the compiled loops and every BLAS pool, counted,
restored, also after Ctrl-C), that switching threads at every step changes no
bit on any training path, and that set_num_threads(n) fixes the threads."""

import numpy as np
import pytest

import nncore as nc
from nncore import _config, _thread_plan, training

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads():
    return {p["filepath"]: p["num_threads"]
            for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}


@pytest.fixture
def default_threads(monkeypatch):
    """The default (adaptive) thread setting, whatever earlier tests set; restored."""
    k = pytest.importorskip("nncore._kernels")
    if not k.OPENMP:
        pytest.skip("no OpenMP: one thread everywhere")
    saved_explicit, saved_threads = _config._explicit_threads, k.get_num_threads()
    saved_blas = _blas_threads()
    width = max(2, _config._configured_width())
    monkeypatch.setattr(_config, "_explicit_threads", None)
    monkeypatch.setattr(_config, "_default_width", width)
    monkeypatch.delenv("NNCORE_THREAD_PLAN", raising=False)
    k.set_num_threads(width)
    threadpoolctl.threadpool_limits(limits=width, user_api="blas")   # earlier tests may pin 1
    monkeypatch.setattr(_thread_plan, "_plans", type(_thread_plan._plans)())
    yield width
    assert _thread_plan._Serial.depth == 0
    k.set_num_threads(saved_threads)
    threadpoolctl.threadpool_limits(limits=max(saved_blas.values(), default=1), user_api="blas")
    _config._explicit_threads = saved_explicit


# --------------------------------------------------------------------------- the rule

def _decided(serial_s, parallel_s, monkeypatch):
    """A plan after warm-up, one serial and one parallel unit of 10 steps each."""
    monkeypatch.setattr(_thread_plan, "_cores_free", lambda width: True)
    monkeypatch.setattr(_config, "_configured_width", lambda: 2)
    plan = _thread_plan.Plan()
    assert plan.next_serial() is True
    plan.record(True, 5.0, 10)                   # warm-up: not counted
    assert plan.next_serial() is True
    plan.record(True, serial_s, 10)
    assert plan.next_serial() is False           # the other way: its warm-up, then a probe
    plan.record(False, 5.0, 1)
    assert plan.next_serial() is False and not plan.times[False]
    plan.record(False, parallel_s, 10)
    return plan


def test_the_faster_way_is_kept(monkeypatch):
    plan = _decided(1.0, 0.5, monkeypatch)
    assert plan.serial is False and plan.next_serial() is False
    assert plan.times[True][-1] == pytest.approx(0.1)      # seconds per step
    plan = _decided(1.0, 3.0, monkeypatch)
    assert plan.serial is True and plan.next_serial() is True


def test_a_near_tie_goes_to_one_thread(monkeypatch):
    plan = _decided(1.0, 0.95, monkeypatch)      # parallel must be < MARGIN x serial
    assert plan.serial is True


def test_a_confirmed_choice_waits_longer_before_the_next_probe(monkeypatch):
    plan = _decided(1.0, 0.5, monkeypatch)
    first = plan.period
    plan.next_probe = 0.0                        # the period is over
    assert plan.next_serial() is True            # probe one thread
    plan.record(True, 1.0, 10)
    assert plan.serial is False and plan.period == 2 * first
    plan.next_probe = 0.0
    assert plan.next_serial() is True
    plan.record(True, 0.2, 10)                   # now one thread is faster: switch, reset
    assert plan.serial is True and plan.period == _thread_plan.FIRST_PERIOD


def test_a_slowdown_of_the_chosen_way_probes_at_once(monkeypatch):
    plan = _decided(1.0, 0.5, monkeypatch)
    assert plan.next_serial() is False
    plan.record(False, 5.0, 10)                  # load arrived: parallel got slow
    plan.record(False, 5.0, 10)
    assert plan.next_serial() is True            # try one thread now, not in a period
    plan.record(True, 1.0, 10)
    assert plan.serial is True


def _timed_plan(monkeypatch, readings):
    """A plan after warm-up and a serial unit, with a controlled clock and
    ``_cores_free`` answering from the list ``readings`` (True = free)."""
    clock = _Clock()
    monkeypatch.setattr(_thread_plan, "time", clock)
    monkeypatch.setattr(_config, "_configured_width", lambda: 2)
    monkeypatch.setattr(_thread_plan, "_cores_free", lambda width: readings.pop(0))
    plan = _thread_plan.Plan()
    plan.record(True, 5.0, 10)
    plan.record(True, 1.0, 10)
    plan.record(False, 5.0, 1)                   # the parallel warm-up: not counted
    return plan, clock


def test_no_parallel_probe_while_other_processes_hold_the_cores(monkeypatch):
    readings = [False] * 4 + [True]
    plan, clock = _timed_plan(monkeypatch, readings)
    for _ in range(3):                   # busy for 40 ms: serial, not blocked yet
        assert plan.next_serial() is True and plan.busy_until == 0.0
        clock.now += 0.02
    assert plan.next_serial() is True    # busy for 60 ms: blocked for a period
    assert plan.busy_until > clock.now
    clock.now += 0.5
    assert plan.next_serial() is True and len(readings) == 1   # no reading meanwhile
    clock.now = plan.busy_until
    assert plan.next_serial() is False   # the cores are free again: probe


def test_a_moment_of_load_does_not_stop_probing(monkeypatch):
    """Issue 12 item 7, quiet machine: one busy reading (a process runnable for a
    moment) kept the probe away for a whole period, longer than the contention
    benchmark's fits, so full-batch fits never tried two threads."""
    readings = [False, True]
    plan, clock = _timed_plan(monkeypatch, readings)
    assert plan.next_serial() is True    # busy now: this unit on one thread
    assert plan.busy_until == 0.0
    clock.now += 0.01
    assert plan.next_serial() is False   # free 10 ms later: the probe runs
    assert not readings


def test_cores_free_reads_this_machine():
    assert _thread_plan._cores_free(1) in (True, False)
    assert _thread_plan._cores_free(10**6) is False or not hasattr(__import__("os"),
                                                                   "sched_getaffinity")


# --------------------------------------------------------------------------- sections

def test_serial_section_is_one_thread_everywhere_counted_and_restored(default_threads,
                                                                      monkeypatch):
    monkeypatch.setattr(_thread_plan.Plan, "next_serial", lambda self: True)
    before = _blas_threads()
    a, b = _thread_plan.Ticker("a"), _thread_plan.Ticker("b")
    assert nc.get_num_threads() == 1
    assert set(_blas_threads().values()) == {1}
    a.close()
    assert nc.get_num_threads() == 1             # b still runs serially
    b.close()
    b.close()                                    # idempotent
    assert nc.get_num_threads() == default_threads
    assert _blas_threads() == before


def test_explicit_thread_count_is_not_adapted(default_threads, monkeypatch):
    monkeypatch.setattr(_thread_plan.Plan, "next_serial", lambda self: True)
    ticker = _thread_plan.Ticker("x")
    assert ticker.plan is not None and nc.get_num_threads() == 1
    ticker.close()
    nc.set_num_threads(default_threads)
    ticker = _thread_plan.Ticker("x")
    assert ticker.plan is None and nc.get_num_threads() == default_threads
    assert ticker.steps(123) == 123
    ticker.tick(5)
    ticker.close()
    monkeypatch.setattr(_config, "_explicit_threads", None)
    monkeypatch.setenv("NNCORE_THREAD_PLAN", "fixed")
    assert _thread_plan.Ticker("x").plan is None


def test_ctrl_c_leaves_no_serial_section(default_threads, monkeypatch):
    monkeypatch.setattr(_thread_plan.Plan, "next_serial", lambda self: True)

    class CtrlC(nc.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            assert nc.get_num_threads() == 1
            raise KeyboardInterrupt

    X, y = _data()
    with pytest.raises(KeyboardInterrupt):
        _net().fit(X, y, batch_size=8, epochs=2, progress=False, callbacks=[CtrlC()])
    assert nc.get_num_threads() == default_threads and _thread_plan._Serial.depth == 0


# --------------------------------------------------------------------------- same bits

def _data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(256, 6)), rng.integers(0, 3, 256)


def _net(dropout=True):
    """68K parameters: the loop threads its update (> 64K) and BLAS its GEMMs at batch 64."""
    drop = [nc.Dropout(0.2)] if dropout else []
    return nc.Network([nc.Dense(6, 256, "tanh"), nc.Dense(256, 256, "relu")] + drop
                      + [nc.Dense(256, 3)], loss="cross_entropy", seed=0)


class _EveryStep(nc.callbacks.Callback):
    def on_batch_end(self, batch, logs=None):
        pass


def _fixed_then_switching(monkeypatch, make_net, fit, probe=lambda: None):
    """A network fitted with the plan off, and one fitted with a plan that switches
    threads at every unit; returns both, the ways taken, and ``probe()`` read
    between the two fits."""
    monkeypatch.setenv("NNCORE_THREAD_PLAN", "fixed")
    fixed = make_net()
    fit(fixed)
    monkeypatch.delenv("NNCORE_THREAD_PLAN")
    ways = []

    def alternate(self):
        ways.append(len(ways) % 2 == 0)
        return ways[-1]

    monkeypatch.setattr(_thread_plan.Plan, "next_serial", alternate)
    monkeypatch.setattr(_thread_plan, "UNIT_SECONDS", 0.0)      # a unit per tick
    before = probe()
    switched = make_net()
    fit(switched)
    return fixed, switched, ways, before


@pytest.fixture
def gemm_on_openblas(gemm_library):
    """The compiled float32 GEMMs on SciPy's OpenBLAS for one test (not the own kernel)."""
    gemm_library("scipy")


@pytest.mark.parametrize("how", ["loop", "loop-openblas", "per-step", "full-batch"])
def test_switching_threads_every_step_changes_no_bit(default_threads, monkeypatch, how,
                                                     request):
    X, y = _data()
    if how == "loop-openblas":
        request.getfixturevalue("gemm_on_openblas")
        how = "loop"
    kw = {"loop": dict(batch_size=64, epochs=3),
          "per-step": dict(batch_size=64, epochs=3, callbacks=[_EveryStep()]),
          "full-batch": dict(optimizer="lbfgs", epochs=4)}[how]
    k = pytest.importorskip("nncore._kernels")
    fixed, switched, ways, shared_before = _fixed_then_switching(
        monkeypatch, lambda: _net(how != "full-batch"),
        lambda net: net.fit(X, y, progress=False, seed=3, **kw),
        k._blas_shared_pool_calls)
    assert len(ways) >= 4 and True in ways and False in ways
    # (OpenBLAS jobs: with the float32 GEMMs on the own kernel there are none)
    if (how == "loop" and k.blas_shared_pool() and k.shared_blas_pool_enabled()
            and k.gemm_library() == "scipy"):
        assert k._blas_shared_pool_calls() > shared_before    # the parallel units were
    np.testing.assert_array_equal(switched.params, fixed.params)
    assert nc.get_num_threads() == default_threads


def test_float64_fits_keep_their_threads_so_load_changes_no_bit(default_threads, monkeypatch):
    """OpenBLAS's float64 kernels round some shapes differently on one thread and on
    two (here the 300-wide layer's products), so a float64 fit whose plan switched
    threads would depend on the machine's load: float64 fits run without the plan,
    on the configured threads, bit for bit as with the plan off."""
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(600, 40)), rng.normal(size=(600, 7))

    def net():
        return nc.Network([nc.Dense(40, 300, "tanh"), nc.Dense(300, 130, "tanh"),
                           nc.Dense(130, 7)], loss="mse", dtype="float64", seed=0)

    kw = dict(optimizer="sgd", batch_size=128, epochs=2, progress=False, seed=0)
    fixed, default, ways, _ = _fixed_then_switching(monkeypatch, net,
                                                    lambda n: n.fit(X, y, **kw))
    assert not ways                                # no plan: never switched
    np.testing.assert_array_equal(default.params, fixed.params)


def test_fit_reports_work_to_the_plan_of_its_workload(default_threads, monkeypatch):
    monkeypatch.setattr(_thread_plan, "UNIT_SECONDS", 0.0)
    X, y = _data()
    _net().fit(X, y, batch_size=8, epochs=2, progress=False)
    (key, plan), = _thread_plan._plans.items()
    assert key == training._workload(_net(), nc.optim.get("adam"), 8, None, ())
    assert plan.warm[True] and (plan.times[True] or plan.times[False])



def test_fits_shorter_than_a_unit_add_up():
    """Fits of 4 ms (one full-batch step) each: the first part is the warm-up;
    later parts are carried until they make a (first, short) unit, so the plan
    times a way instead of never learning."""
    plan = _thread_plan.Plan()
    plan.add(True, 0.004, 1, final=True)         # the warm-up (not counted)
    assert plan.warm[True] and not plan.times[True]
    for _ in range(2):
        plan.add(True, 0.004, 1, final=True)
    assert not plan.times[True]                  # 8 ms carried, short of a unit
    plan.add(True, 0.004, 1, final=True)
    assert list(plan.times[True]) == [pytest.approx(0.004)]
    plan.add(False, 0.006, 1, final=True)        # the parallel way's warm-up: a
    assert not plan.warm[False]                  # short unit, carried like the others
    plan.add(False, 0.006, 1, final=True)
    assert plan.warm[False] and not plan.times[False]
    plan.add(False, 0.03, 5, final=True)         # a long enough part counts at once
    assert list(plan.times[False]) == [pytest.approx(0.006)]
    assert not plan.add(True, 0.05, 10)          # a timed way needs a whole unit
    assert plan.add(True, _thread_plan.UNIT_SECONDS, 10)


class _Clock:
    """time.perf_counter / time.monotonic under the test's control."""

    def __init__(self):
        self.now = 100.0

    def perf_counter(self):
        return self.now

    monotonic = perf_counter


@pytest.mark.parametrize("serial_step, parallel_step, parallel", [(0.0056, 0.0045, True),
                                                                  (0.0045, 0.0056, False)])
def test_a_few_short_full_batch_fits_choose_their_threads(monkeypatch, serial_step,
                                                          parallel_step, parallel):
    """Issue 12 item 7 on a quiet machine: fits of two ~5 ms full-batch steps (the
    contention benchmark's) must have found the faster way after the first few
    fits, not after a whole 0.1 s unit each way plus a 0.1 s warm-up; and the
    first parallel steps of the process, which start threads, allocate BLAS
    buffers and fill the second core's caches (here 3 ms more for each of the
    first two), are that way's warm-up, not part of its probe (a probe counting
    them made two threads look 10-15 % slower than they run)."""
    clock = _Clock()
    monkeypatch.setattr(_thread_plan, "time", clock)
    monkeypatch.setattr(_thread_plan, "_cores_free", lambda width: True)
    monkeypatch.setattr(_config, "_configured_width", lambda: 2)
    monkeypatch.setattr(_config, "_serial_threads", lambda serial: None)
    monkeypatch.setattr(_thread_plan, "adaptive", lambda: True)
    monkeypatch.setattr(_thread_plan, "_plans", type(_thread_plan._plans)())
    ways = []
    for fit in range(5):
        ticker = _thread_plan.Ticker(("full", fit // 100))
        for step in range(2):
            ways.append(ticker.serial)
            first_parallel = not ticker.serial and ways.count(False) <= 2
            clock.now += serial_step if ticker.serial else parallel_step
            clock.now += 0.003 if first_parallel else 0.0
            ticker.tick()
        ticker.close()
    plan = _thread_plan.plan_for(("full", 0))
    assert plan.decided and plan.serial is not parallel
    assert ways[-2:] == [not parallel] * 2       # the fifth fit runs the faster way


def test_the_numpy_backend_runs_without_the_plan(default_threads, monkeypatch):
    """NumPy's matrix products round long inner sums by the thread count, so the
    reference backend keeps the threads it is given (no plan, no switching)."""
    monkeypatch.setattr(_thread_plan, "UNIT_SECONDS", 0.0)
    X, y = _data()
    previous = nc.backend.current().NAME
    nc.backend.set_backend("numpy")
    try:
        _net().fit(X, y, batch_size=8, epochs=1, progress=False)
    finally:
        nc.backend.set_backend(previous)
    assert not _thread_plan._plans

# --------------------------------------------------------------------------- spinning

def _fresh(code, env_extra=None, env_drop=("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")):
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


_SPIN_PROBE = ("import os, nncore, nncore._kernels as k; "
               "print(nncore._omp_wait.applied, 'GOMP_SPINCOUNT' in os.environ, k.OPENMP)")


def test_openmp_spinning_is_bounded_without_touching_the_environment():
    import sys
    applied, leaked, openmp = _fresh(_SPIN_PROBE)
    assert leaked == "False"                     # children do not inherit the setting
    if sys.platform.startswith("linux") and openmp == "True":
        assert applied == "True"


@pytest.mark.parametrize("setting", [{"OMP_WAIT_POLICY": "active"}, {"GOMP_SPINCOUNT": "5"}])
def test_the_users_openmp_wait_setting_rules(setting):
    applied, leaked, _ = _fresh(_SPIN_PROBE.replace("'GOMP_SPINCOUNT' in os.environ",
                                                    "os.environ.get('GOMP_SPINCOUNT')"),
                                setting)
    assert applied == "False"
    assert leaked == setting.get("GOMP_SPINCOUNT", "None")
