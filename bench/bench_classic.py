"""The classic benchmark problems (examples/classic_benchmarks.py) as
pytest-benchmark entries: one start of each training algorithm on XOR, the
3-bit parity, the 10-5-10 encoder and the 1-5-1 sine fit, timed to the goal
under the example's protocol (40-20-40 criterion / MSE <= 0.002).

Run: ``pytest bench/bench_classic.py --benchmark-group-by=param:problem
--benchmark-columns=min,median,rounds``; the full table over many starts comes
from ``python examples/classic_benchmarks.py``. Smoke (CI):
``pytest bench/ --benchmark-disable -q`` runs each body once.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
pytest.importorskip("matplotlib")           # the example module's _common uses it at run time
import classic_benchmarks as cb  # noqa: E402

PROBLEMS = cb.problems(fast=False)
ALGORITHMS = dict(cb.algorithms())
CHOSEN = ["sgd", "adam", "cg", "cg powell-beale", "scg", "rprop irprop-", "rprop irprop+",
          "quickprop", "bfgs", "lbfgs"]


@pytest.mark.parametrize("problem", ["xor", "parity-3", "encoder 10-5-10", "sine 1-5-1"])
@pytest.mark.parametrize("algorithm", CHOSEN)
def test_classic_problem(benchmark, problem, algorithm):
    spec = dict(PROBLEMS[problem])
    if benchmark.disabled:
        spec["epochs"] = 20                  # smoke: run the body, not to the goal
    epochs, _ = benchmark(cb.run, spec, ALGORITHMS[algorithm], 0)
    assert epochs is None or 1 <= epochs <= spec["epochs"]
