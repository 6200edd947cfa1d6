"""The thread plan of training: all threads or one, chosen by measured speed.

Why: two threads only help while both get a core. On a machine whose cores
are busy with other processes, every parallel section of a step (a threaded
GEMM, the threaded update) waits until the scheduler runs both threads, so a
batch-1 step that takes 0.3 ms on one thread took 5-8 ms on two. Whether the
cores are free can only be seen by trying, and it changes while a fit runs.

Design:
* Results never depend on the thread count (elementwise splits are exact,
  reductions keep their serial order, BLAS splits rows/columns, never the
  inner sum), so the plan may switch at any step boundary. Not so for float64
  (OpenBLAS's float64 kernels round some shapes differently on one thread and
  on two) and the NumPy backend: those fits get no plan (``training._workload``).
* Training reports its progress to a ``Ticker`` (a compiled-loop chunk, a
  per-step step, a full-batch iteration). Work is cut into units of about
  ``UNIT_SECONDS`` of wall time; each unit runs either with the configured
  threads or inside a serial section (nncore's OpenMP loops and every BLAS
  pool at one thread), and its time per unit of work is recorded in the
  ``Plan`` of its workload (path, batch rows, parameters, dtype, backend).
* A plan runs its first call (a step or a chunk of steps) serially as a
  warm-up, not counted, and a short unit on all threads as that way's
  warm-up (the first parallel work of a process starts threads, allocates
  BLAS buffers and fills the second core's caches: a probe that counted it
  measured two threads slower than they run), then a short unit
  (``_SHORTEST_UNIT``) each way, and
  keeps the faster, so that even a fit of a few full-batch steps has chosen
  by its end; parallel must win by ``MARGIN`` (a tie goes
  to one thread, which leaves the other cores to other processes). It tries
  the other way again after a period that doubles while the choice holds (up
  to ``MAX_PERIOD``), and at once when the chosen way slows down past the
  other's last time (load arrived). So a probe the wrong way costs at most one
  unit per period.
* No parallel probe while other processes hold the cores (``_cores_free``:
  /proc/loadavg's runnable count); that reading is an instant, so it stops
  probing for a period only after it held for ``_BUSY_CONFIRM`` seconds
  (a process runnable for a moment on a quiet machine had blocked the probe
  for longer than a benchmark's short fits).
* Only the default is adaptive: after ``set_num_threads(n)`` nncore uses n
  as told; with one thread, in a forked child or with
  ``NNCORE_THREAD_PLAN=fixed`` the ticker does nothing.
* The serial section is process-wide and counted (two fits in two threads
  share it): the first to enter sets one thread, the last to leave puts back
  the configured threads (``_config``). Callers must ``close()`` their
  ticker (``fit`` does so in ``finally``, Ctrl-C included).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import OrderedDict, deque

from . import _config

UNIT_SECONDS = 0.1
MARGIN = 0.95         # parallel is chosen only when it takes < 0.95x the serial time
FIRST_PERIOD = 1.0
MAX_PERIOD = 30.0
_MAX_PLANS = 64
_SHORTEST_UNIT = 0.01    # a way's first unit (a probe) and carried parts of short fits
_BUSY_CONFIRM = 0.05     # seconds a busy reading must hold before probing stops
_UNTIMED_STEPS = 4      # steps per call while neither way has a time yet
_PROBE_CALL = 0.25      # a probe's first call: this share of its unit at the other way's speed
_ENV = "NNCORE_THREAD_PLAN"

_plans = OrderedDict()
_plans_lock = threading.Lock()


def adaptive():
    """Whether training chooses its threads by measured speed now."""
    if os.environ.get(_ENV, "").strip().lower() == "fixed":
        return False
    return _config._adaptive_threads()


class Plan:
    """What one workload learned: time per unit of work each way, and its choice."""

    def __init__(self):
        self.lock = threading.Lock()
        self.times = {True: deque(maxlen=3), False: deque(maxlen=3)}   # serial? -> s/work
        self.warm = {True: False, False: False}    # serial? -> its warm-up has run
        self.serial = True
        self.decided = False
        self.period = FIRST_PERIOD
        self.next_probe = 0.0
        self.busy_until = 0.0
        self.busy_since = None      # first of the busy readings since the last free one
        self.carry = {True: [0.0, 0], False: [0.0, 0]}     # unfinished units: [seconds, work]

    def expected(self, serial):
        """Seconds per unit of work measured that way (median of the last three), or None."""
        with self.lock:
            times = self.times[serial]
            return statistics.median(times) if times else None

    def next_serial(self):
        """Whether the next unit runs on one thread."""
        with self.lock:
            if not self.warm[True] or not self.times[True]:
                return True
            now = time.monotonic()
            due = not self.times[False] or now >= self.next_probe
            if not self.serial:
                return due                       # parallel chosen: probe one thread
            if not due or now < self.busy_until:
                return True
            if not _cores_free(_config._configured_width()):
                # Other processes hold the cores: a parallel unit would only wait
                # for them. One reading is an instant: a process that is runnable
                # for a moment on a quiet machine must not stop probing for a
                # whole period, so only a busy reading that held for
                # _BUSY_CONFIRM seconds does that (until then units stay serial).
                if self.busy_since is None:
                    self.busy_since = now
                if now - self.busy_since >= _BUSY_CONFIRM:
                    self.busy_until = now + self.period
                return True
            self.busy_since = None
            return False

    def need(self, serial):
        """Seconds a unit run that way must last: a full unit once the way is timed,
        a short first probe (``_SHORTEST_UNIT``) before, so that a few full-batch
        steps or one short fit already time it. The warm-ups, not timed: the
        plan's first call (serial), and a short unit on all threads, whose first
        steps start threads, allocate BLAS buffers and fill the second core's
        caches (a probe that counted them measured two threads slower than they
        run: at batch 1 about one thread's speed, where they were ~10 % faster)."""
        short = min(_SHORTEST_UNIT, UNIT_SECONDS)
        if not self.warm[serial]:
            return 0.0 if serial else short
        return UNIT_SECONDS if self.times[serial] else short

    def add(self, serial, seconds, work, final=False):
        """Work run ``serial`` or not since the unit began: records a unit (and
        returns True) once it and the part carried from earlier fits last
        ``need(serial)``. A fit's last, unfinished part (``final``) is carried:
        fits shorter than a unit learn over several fits instead of staying on
        one thread."""
        with self.lock:
            carried = self.carry[serial]
            seconds, work = carried[0] + seconds, carried[1] + work
            if seconds < self.need(serial):
                if final:
                    self.carry[serial] = [seconds, work]
                return False
            self.carry[serial] = [0.0, 0]
        self.record(serial, seconds, work)
        return True

    def record(self, serial, seconds, work):
        """A unit ran ``serial`` or not, doing ``work`` in ``seconds``."""
        with self.lock:
            if not self.warm[serial]:
                # first unit: imports, allocations, page faults, thread start
                self.warm[serial] = True
                return
            self.times[serial].append(seconds / work)
            if not (self.times[True] and self.times[False]):
                return
            # The chosen way: its last few units; the other: its latest probe.
            now_s = {way: statistics.median(t) if way == self.serial else t[-1]
                     for way, t in self.times.items()}
            faster_serial = not now_s[False] < MARGIN * now_s[True]
            now = time.monotonic()
            if serial != self.serial or not self.decided:     # a probe, or the first pair
                held = self.decided and faster_serial == self.serial
                self.decided = True
                self.period = min(2 * self.period, MAX_PERIOD) if held else FIRST_PERIOD
                self.serial = faster_serial
                # a slow probe costs at most ~5 % of the time until the next one
                self.next_probe = now + max(self.period, 20 * seconds)
            elif faster_serial != self.serial:
                self.next_probe = now          # the chosen way slowed down: try the other


def _running_here():
    """Threads of this process that are running or runnable now."""
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:            # the thread ended meanwhile
            continue
        count += stat[stat.rindex(")") + 2] == "R"
    return max(count, 1)


def _cores_free(width):
    """Whether ``width`` threads would find cores that no other process runs on
    now (Linux: /proc/loadavg's runnable count minus this process's own);
    True where that cannot be read, so the measurement alone decides."""
    try:
        with open("/proc/loadavg") as f:
            runnable = int(f.read().split()[3].split("/")[0])
        others = runnable - _running_here()
        cores = len(os.sched_getaffinity(0))
    except (OSError, ValueError, IndexError, AttributeError):
        return True
    return others + width <= cores


def plan_for(key):
    """The process's plan for workload ``key`` (the last ``_MAX_PLANS`` kept)."""
    with _plans_lock:
        plan = _plans.pop(key, None) or Plan()
        _plans[key] = plan
        while len(_plans) > _MAX_PLANS:
            _plans.popitem(last=False)
        return plan


class _Serial:
    """The process-wide serial section, counted across threads."""

    lock = threading.Lock()
    depth = 0

    @classmethod
    def enter(cls):
        with cls.lock:
            cls.depth += 1
            if cls.depth == 1:
                _config._serial_threads(True)

    @classmethod
    def leave(cls):
        with cls.lock:
            cls.depth -= 1
            if cls.depth == 0:
                _config._serial_threads(False)


class Ticker:
    """Cuts one fit's work into timed units and runs each as its plan says.

    Parameters
    ----------
    key : hashable or None
        The workload (``None``, or a fixed thread plan: every call does nothing).
    """

    def __init__(self, key):
        self.plan = plan_for(key) if key is not None and adaptive() else None
        self.serial = False
        self.work = 0
        self.start = 0.0
        self.left = 0.0          # seconds this unit still needs (minus carried parts)
        if self.plan is not None:
            self._begin()

    def _begin(self):
        self.serial = self.plan.next_serial()
        if self.serial:
            _Serial.enter()
        self.work = 0
        carried = self.plan.carry[self.serial][0]
        self.left = self.plan.need(self.serial) - carried
        self.start = time.perf_counter()

    def _end(self):
        if self.serial:
            _Serial.leave()
            self.serial = False

    def steps(self, most):
        """How many steps (at most ``most``) the next call may run so that the
        unit ends about on time; few while the current way is not yet timed."""
        if self.plan is None:
            return most
        per = self.work and (time.perf_counter() - self.start) / self.work
        per = per or self.plan.expected(self.serial)
        if not per:
            # An untimed way (a probe): its first call is sized by the other way's
            # time for a fraction of the unit. Each call has a fixed cost, which
            # would make a probe of many tiny calls look slower than the way is;
            # a way much slower than the other (load) still ends the call soon.
            other = self.plan.expected(not self.serial)
            if not other:
                return min(most, _UNTIMED_STEPS)
            return max(1, min(most, int(_PROBE_CALL * self.left / other)))
        left = self.left - (time.perf_counter() - self.start)
        return max(1, min(most, int(left / per) + 1))

    def tick(self, work=1):
        """``work`` steps (or evaluations) done; switches threads between units."""
        if self.plan is None:
            return
        self.work += work
        elapsed = time.perf_counter() - self.start
        if elapsed >= self.left and self.plan.add(self.serial, elapsed, self.work):
            self._end()
            self._begin()

    def close(self):
        """Leave the serial section (idempotent). The last unit is carried as a part
        (``Plan.add``): short fits, e.g. partial_fit's, learn across calls."""
        if self.plan is None:
            return
        elapsed = time.perf_counter() - self.start
        if self.work:
            self.plan.add(self.serial, elapsed, self.work, final=True)
        self._end()
        self.plan = None


NO_PLAN = Ticker(None)     # for callers without a fit's ticker: does nothing
