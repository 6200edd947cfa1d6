"""Training on a busy machine: the default threads vs one thread (issue 12 item 7).

Script (the figures in README's "Threads on a busy machine"):

    python bench/bench_contention.py [--rounds 3] [--fixed]

runs the batch-1, batch-32 and full-batch workloads (64-256-256-10 float32,
Adam), each round in a fresh process that alternates the default threads and
``set_num_threads(1)`` fit by fit (after WARM_UP_FITS warm-up fits each), first on
the machine as it is and then with one busy process per core started beside
it, and prints the median time per step of each, their ratio, what the
default's thread plan chose in each round (and the ms per step it timed each
way), and how long a SIGINT took to land in a default-threads fit under that load. ``--fixed``
adds the default threads without the thread plan (``NNCORE_THREAD_PLAN=fixed``,
in a process of its own; what nncore did before the plan). ``--spin``
measures the CPU an idle OpenMP thread burns after a parallel region.

pytest-benchmark (smoke in CI: ``pytest bench/bench_contention.py --benchmark-disable``)
times the same workloads in-process, default vs one thread, without a load.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

D, H, K = 64, 256, 10
# workload -> (rows, batch size, epochs per timed fit)
WORKLOADS = {"batch 1": (128, 1, 1), "batch 32": (512, 32, 1), "full batch": (1024, "full", 2)}
SMOKE = {"batch 1": (8, 1, 1), "batch 32": (64, 32, 1), "full batch": (64, "full", 1)}
# Untimed fits per setting before the timed ones. The plan needs about seven of
# these short fits (a few ms each) to learn: its serial warm-up, a 10 ms unit each
# way, and the parallel warm-up; the timed fits then show its steady state.
WARM_UP_FITS = 10


def _problem(rows, seed=0):
    import nncore as nc
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, D)).astype(np.float32)
    y = rng.integers(0, K, rows)
    net = nc.Network([nc.Dense(D, H, "relu"), nc.Dense(H, H, "relu"), nc.Dense(H, K)],
                     loss="cross_entropy", dtype="float32", seed=0)
    return net, X, y


def _fit_seconds_per_step(net, X, y, batch, epochs, opt):
    steps = 1 if batch == "full" else -(-X.shape[0] // batch)
    t0 = time.perf_counter()
    net.fit(X, y, optimizer=opt, batch_size=batch, epochs=epochs, progress=False, seed=0)
    return (time.perf_counter() - t0) / (steps * epochs)


# --------------------------------------------------------------------------- pytest

_DEFAULT_WIDTH = []


def _use(setting):
    """'default': the default threads (the thread plan), as in a fresh process, even
    after set_num_threads; 'one': set_num_threads(1)."""
    from threadpoolctl import threadpool_limits

    import nncore as nc
    from nncore import _config
    _DEFAULT_WIDTH.append(nc.get_num_threads())       # the first call sees the default
    if setting == "one":
        nc.set_num_threads(1)
        return
    if not hasattr(_config, "_configured_width"):      # an nncore before the thread plan
        nc.set_num_threads(_DEFAULT_WIDTH[0])
        return
    _config._explicit_threads = None
    width = _config._configured_width()
    k = _config._kernels()
    if k is not None:
        k.set_num_threads(width)
    threadpool_limits(limits=width, user_api="blas")


@pytest.fixture
def threads_as(request):
    """The setting for one benchmark (see _use); the conftest's pin restored afterwards."""
    from nncore import _config
    saved = _config._explicit_threads
    _use(request.param)
    yield request.param
    _config._explicit_threads = saved


@pytest.mark.parametrize("threads_as", ["default", "one"], indirect=True)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_contention(benchmark, workload, threads_as, smoke_run):
    import nncore as nc
    rows, batch, epochs = (SMOKE if smoke_run else WORKLOADS)[workload]
    benchmark.group = f"{workload}, {D}-{H}-{H}-{K} float32, Adam, s/step"
    net, X, y = _problem(rows)
    opt = nc.optim.Adam(1e-4)
    benchmark.pedantic(_fit_seconds_per_step, args=(net, X, y, batch, epochs, opt),
                       rounds=1 if smoke_run else 7, iterations=1,
                       warmup_rounds=0 if smoke_run else 2)
    assert np.isfinite(net.params).all()


# --------------------------------------------------------------------------- script

def _watch_plan():
    """Count the thread plan's busy-machine readings (``_cores_free``) as they happen:
    [free, busy]."""
    from nncore import _thread_plan
    readings = [0, 0]
    cores_free = _thread_plan._cores_free

    def counted(width):
        free = cores_free(width)
        readings[not free] += 1
        return free

    _thread_plan._cores_free = counted
    return readings


def _plan_state(readings):
    """What the default threads' plan of the workload just run chose, and its times."""
    from nncore import _thread_plan
    state = {"readings": list(readings), "plans": []}
    for plan in _thread_plan._plans.values():
        times = {way: (1e3 * statistics.median(t) if t else None)
                 for way, t in (("one", plan.times[True]), ("all", plan.times[False]))}
        state["plans"].append({"decided": plan.decided,
                               "chose": "one" if plan.serial else "all", "ms": times})
    _thread_plan._plans.clear()              # the next workload has plans of its own
    readings[:] = [0, 0]
    return state


def _child_times(settings, reps):
    """{setting: {workload: median seconds per step}} in this process, the settings
    alternating fit by fit (ABBA...) so that they see the same machine; and under
    "plan", what the thread plan chose per workload."""
    import nncore as nc
    out = {s: {} for s in settings}
    out["plan"] = {}
    readings = _watch_plan()
    for name, (rows, batch, epochs) in WORKLOADS.items():
        net, X, y = _problem(rows)
        opt = nc.optim.Adam(1e-4)
        times = {s: [] for s in settings}
        for s in settings:
            _use(s)
            for _ in range(WARM_UP_FITS):  # warm-up; the thread plan learns here
                _fit_seconds_per_step(net, X, y, batch, epochs, opt)
        for r in range(reps):
            for s in (settings if r % 2 == 0 else settings[::-1]):
                _use(s)
                times[s].append(_fit_seconds_per_step(net, X, y, batch, epochs, opt))
        for s in settings:
            out[s][name] = statistics.median(times[s])
        out["plan"][name] = _plan_state(readings)
    return out


def _child_sigint():
    """Seconds from a SIGINT to the KeyboardInterrupt of a default-threads fit."""
    import nncore as nc
    # A shell starts background jobs with SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler: the SIGINT below would be ignored and the fit
    # would run for ever (this child hung when the script ran under nohup ... &).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    net, X, y = _problem(4096)
    sent = []

    def interrupt():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    net.fit(X[:256], y[:256], batch_size=32, epochs=2, progress=False)     # warm-up
    timer = threading.Timer(1.0, interrupt)
    timer.start()
    try:
        net.fit(X, y, optimizer=nc.optim.Adam(1e-4), batch_size=32, epochs=10**6,
                progress=False)
    except KeyboardInterrupt:
        return time.perf_counter() - sent[0]
    finally:
        timer.cancel()
    return float("nan")


def _child_spin():
    """CPU milliseconds this process burns in the 50 ms after one 2-thread region
    (median of 20): what an idle OpenMP thread takes from other processes."""
    import resource

    import nncore as nc
    from nncore import _kernels
    nc.set_num_threads(2)
    _kernels._set_parallel_threshold(1)          # make the update one parallel region
    p = np.ones(1 << 16, np.float32)
    g = np.ones(1 << 16, np.float32)
    opt = nc.optim.SGD(1e-3)

    def cpu():
        use = resource.getrusage(resource.RUSAGE_SELF)
        return use.ru_utime + use.ru_stime

    burnt = []
    for _ in range(20):
        opt.step(p, g)
        before = cpu()
        time.sleep(0.05)
        burnt.append(cpu() - before)
    return {"ms": 1e3 * statistics.median(burnt), "bounded": nc._omp_wait.applied}


def _run_child(args, env=None):
    full_env = dict(os.environ, **(env or {}))
    out = subprocess.run([sys.executable, os.path.abspath(__file__)] + args, env=full_env,
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _busy_processes(n):
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _measure(settings, rounds, reps, loaded):
    """{setting: {workload: [s/step per round]}}, settings alternating in order."""
    hogs = _busy_processes(os.cpu_count() or 1) if loaded else []
    times = {s: {w: [] for w in WORKLOADS} for s in settings}
    sigint, plans = [], []
    try:
        for r in range(rounds):
            order = ["default", "one"] if r % 2 == 0 else ["one", "default"]
            got = _run_child(["--child", ",".join(order), "--reps", str(reps)])
            plans.append(got.pop("plan"))
            if "fixed" in settings:      # the plan off: a process of its own
                got["fixed"] = _run_child(["--child", "default", "--reps", str(reps)],
                                          {"NNCORE_THREAD_PLAN": "fixed"})["default"]
            for setting, per_workload in got.items():
                for w, t in per_workload.items():
                    times[setting][w].append(t)
            if loaded:
                sigint.append(_run_child(["--child-sigint"])["seconds"])
    finally:
        for p in hogs:
            p.kill()
    return times, sigint, plans


def _report_plans(plans):
    """Per workload and round: the default's choice at the end of the round (one
    thread or all), its ms per step timed each way, and the busy-machine readings."""
    print("thread plan at the end of each round (default threads): chose, "
          "ms/step one thread / all threads, readings free/busy")
    for w in WORKLOADS:
        cells = []
        for state in plans:
            for plan in state[w]["plans"]:
                ms = plan["ms"]
                shown = "/".join("-" if ms[k] is None else f"{ms[k]:.3f}" for k in ("one", "all"))
                chose = plan["chose"] if plan["decided"] else "undecided"
                cells.append(f"{chose} ({shown})")
            cells[-1:] = [f"{cells[-1]} {state[w]['readings'][0]}/{state[w]['readings'][1]}"
                          if cells else f"no plan {state[w]['readings']}"]
        print(f"  {w:<12}" + "; ".join(cells))


def _report(label, times, settings):
    print(f"\n{label}: median ms per step (each round's median of reps)")
    header = f"{'workload':<12}" + "".join(f"{s:>12}" for s in settings) + "  default/one"
    print(header)
    for w in WORKLOADS:
        med = {s: 1e3 * statistics.median(times[s][w]) for s in settings}
        row = f"{w:<12}" + "".join(f"{med[s]:>12.3f}" for s in settings)
        print(row + f"  {med['default'] / med['one']:>10.2f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--fixed", action="store_true",
                        help="also time the default threads without the thread plan")
    parser.add_argument("--spin", action="store_true",
                        help="only measure the CPU an idle OpenMP thread burns after a "
                             "region, with nncore's bounded spinning and libgomp's default")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-sigint", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-spin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child_times(args.child.split(","), args.reps)))
        return
    if args.child_sigint:
        print(json.dumps({"seconds": _child_sigint()}))
        return
    if args.child_spin:
        print(json.dumps(_child_spin()))
        return
    if args.spin:
        for label, env in (("nncore (bounded)", None),
                           ("libgomp default", {"GOMP_SPINCOUNT": "300000"})):
            got = _run_child(["--child-spin"], env)
            print(f"{label:<18} CPU burnt in 50 ms idle after a region: {got['ms']:.3f} ms")
        return
    settings = ["default", "one"] + (["fixed"] if args.fixed else [])
    print(f"{os.cpu_count()} cores; load average now {os.getloadavg()[0]:.1f}; "
          f"{args.rounds} rounds x {args.reps} reps, settings alternating")
    for loaded in (False, True):
        times, sigint, plans = _measure(settings, args.rounds, args.reps, loaded)
        label = ("with one busy process per core" if loaded else "machine as it is")
        _report(label, times, settings)
        _report_plans(plans)
        if sigint:
            print(f"SIGINT to KeyboardInterrupt (default threads, batch 32, loaded): "
                  f"median {statistics.median(sigint):.3f} s, max {max(sigint):.3f} s")


if __name__ == "__main__":
    main()
