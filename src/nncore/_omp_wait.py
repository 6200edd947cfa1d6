"""Bounded spinning for nncore's OpenMP threads, set before GNU OpenMP starts.

After a parallel region, GNU OpenMP's idle threads spin before they sleep:
300,000 rounds by default (milliseconds), on every region. On a machine
whose cores other processes need, that spinning takes their time (and ours:
the spinning thread and the one with work share the cores). libgomp reads
``GOMP_SPINCOUNT`` once, when it is loaded, so this module loads it (the
library the compiled kernels link to, by its soname) with a bounded count in
the environment and then puts the environment back: no child process inherits
the setting. Nothing changes when the user set ``GOMP_SPINCOUNT`` or
``OMP_WAIT_POLICY`` (theirs rules) or when libgomp was already loaded (by
another library imported first; then its settings hold).

Import this before anything loads ``nncore._kernels`` (``nncore/__init__``
does, first).
"""

from __future__ import annotations

import ctypes
import os
import sys

# Rounds of spinning before an idle OpenMP thread sleeps: long enough to catch
# the next region of the same training step, short enough not to hold a core
# between steps. Measured on the 2-core development machine
# (python bench/bench_contention.py --spin: one 2-thread region, then 50 ms
# idle): the idle thread burnt 3.5 ms of CPU with libgomp's default, 0.15 ms
# with 10,000 rounds.
SPIN_COUNT = "10000"
_USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")

applied = False      # whether this process's libgomp got SPIN_COUNT from here


def _libgomp_loaded():
    """Whether a libgomp.so.1 is in this process already (its settings are made)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("/libgomp.so.1" in line for line in maps)
    except OSError:
        return False


def _load_libgomp():
    if _libgomp_loaded():
        return False
    try:
        ctypes.CDLL("libgomp.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:      # no GNU OpenMP here (other platforms, other compilers)
        return False
    return True


def _bound_spinning():
    global applied
    if not sys.platform.startswith("linux") or any(v in os.environ for v in _USER_SETTINGS):
        return
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        applied = _load_libgomp()
    finally:
        del os.environ["GOMP_SPINCOUNT"]


_bound_spinning()
