"""pytest-benchmark entry for ``bench/gemm_candidates.py`` (the GEMM candidates).

Each candidate that loads (SciPy's OpenBLAS, scipy-openblas32, blis, MKL, the
own kernel of _sgemm_avx512.h) is first checked on all 8 GEMMs of a batch-32 step
against the float64 product and for bit-identical repeats, then one forward
product (32 x 784 x 256, float32) is timed through the C harness. A candidate
that is not installed is skipped, as is everything without a C compiler.

The full interleaved comparison (both batches, both dtypes, 1 and 2 threads) is
the script itself: ``python bench/gemm_candidates.py --help``; its ``--gate`` and
``--fit`` modes are smoke-run here at the smallest sizes.
"""

import importlib.util
import os

import numpy as np
import pytest


def _load_script():
    """bench/ is no package (and pytest may import with importlib): load it by path."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gemm_candidates.py")
    spec = importlib.util.spec_from_file_location("gemm_candidates", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gc = _load_script()

TOLERANCE = {"float32": 1e-5, "float64": 1e-13}   # relative to max |C|, K <= 784


@pytest.fixture(scope="module")
def harness():
    lib = gc.build_harness()
    if lib is None:
        pytest.skip("no C compiler for the timing harness")
    return lib


@pytest.mark.parametrize("name", list(gc.FACTORIES))
def test_gemm_candidate(benchmark, harness, name):
    found, missing = gc.load_candidates([name], harness)
    if name not in found:
        pytest.skip(f"{name}: {missing[name]}")
    spec = found[name]
    gc.set_threads(found, 1)
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        if not gc.supports(spec, dtype, 1):
            continue
        for shape in gc.step_gemms(32):
            err, repeatable = gc.Problem(shape, dtype, rng).check(harness, spec)
            assert err < TOLERANCE[dtype], (name, dtype, shape, err)
            assert repeatable, (name, dtype, shape)
    problem = gc.Problem(gc.step_gemms(32)[0], "float32", rng)
    benchmark(problem.run, harness, spec, 1)


def test_gate_mode_runs(capsys):
    """--gate: the shapes around the own kernel's limits, every result checked."""
    assert gc.main(["--gate", "--candidates", "scipy,own", "--dtypes", "float32",
                    "--threads", "1", "--rounds", "1", "--target-ms", "0.2"]) in (0, 1)
    out = capsys.readouterr().out
    if "no C compiler" not in out:
        assert "X·W 128 rows" in out and "run-to-run identical: False" not in out


def test_fit_mode_runs(capsys):
    """--fit: whole epochs per GEMM library (a small network, few rows)."""
    assert gc.main(["--fit", "--candidates", "scipy,own", "--layers", "20,16,3",
                    "--samples", "96", "--batches", "32", "--threads", "1",
                    "--dtypes", "float32", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "scipy" in out and "repeats bit-identical: True" in out
