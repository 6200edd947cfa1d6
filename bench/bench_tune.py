"""A 16-trial sweep: the default process pool (2 workers) against one trial after another.

Run:  pytest bench/bench_tune.py --benchmark-columns=min,rounds
Smoke (CI): pytest bench/bench_tune.py --benchmark-disable

Both runs use one BLAS/OpenMP thread per trial (``nc.tune`` sets it), so the
comparison is 1 core against 2 worker processes. The pool's results are checked
equal to the serial ones before the timing counts.
"""

import math
import os

import numpy as np
import pytest

import nncore as nc
from nncore import tune

# 2 x 2 x 2 x 2 = 16 trials of about 0.3 s (cython) to 0.5 s (numpy) each on one idle core.
SPACE = {"hidden": [(64,), (64, 32)], "lr": [1e-3, 3e-3], "batch_size": [32, 64],
         "activation": ["relu", "tanh"], "epochs": 25}
N_WORKERS = 2
_SERIAL = {}


def _data(n=4000, d=32, k=10, seed=0):
    """Labels from a random teacher network, so the task is learnable but not trivial."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    W1, W2 = rng.normal(size=(d, 32)), rng.normal(size=(32, k))
    y = np.argmax(np.tanh(X @ W1) @ W2, axis=1)
    return X, y


def _metrics(res):
    return [(r["trial"], r["status"], r["metric"], r["epochs"]) for r in res.records]


def _run(executor):
    X, y = _data()
    return tune.search(SPACE, X, y, validation=0.2, executor=executor, n_workers=N_WORKERS,
                       seed=0, progress=False)


def _serial_reference():
    if "res" not in _SERIAL:
        _SERIAL["res"] = _run("serial")
    return _SERIAL["res"]


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_sweep_16_trials(benchmark, executor):
    benchmark.group = f"tune: 16 trials, backend {nc.get_backend()}"
    if executor == "process":
        ref = _serial_reference()  # equality is checked before the pool's timing counts
    res = benchmark.pedantic(_run, args=(executor,), rounds=1, iterations=1)
    assert len(res.records) == 16 and all(r["status"] == "ok" for r in res.records)
    if executor == "serial":
        _SERIAL["res"] = res
    else:
        assert _metrics(res) == _metrics(ref)
    busy = sum(r["time"] for r in res.records)
    benchmark.extra_info["sum_trial_seconds"] = round(busy, 3)
    benchmark.extra_info["sum_trial_cpu_seconds"] = round(sum(r["cpu_time"] for r in res.records), 3)
    benchmark.extra_info["loadavg_1min"] = round(os.getloadavg()[0], 2)
    benchmark.extra_info["workers"] = 1 if executor == "serial" else N_WORKERS
    benchmark.extra_info["cpus"] = len(os.sched_getaffinity(0))
    assert math.isfinite(res.best_score)
