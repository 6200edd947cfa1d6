"""GEMM candidates at the real small-M shapes of the MNIST workloads (issue 15, item 2).

Measures GFLOP/s of every GEMM one training step of the 784-256-256-10 network
makes (batch 32 and 128), for each candidate BLAS the compiled kernels could
call, on one and two threads, interleaved (every round times each candidate
once per shape, in a rotated order), medians over the rounds:

* ``scipy``      SciPy's bundled OpenBLAS through ``scipy.linalg.cython_blas``
                 (what ``nncore._kernels`` calls today)
* ``openblas34`` ``scipy-openblas32`` from the package index (OpenBLAS 0.3.34)
* ``blis``       BLIS through the ``blis`` package's Cython API (``blis.cy.sgemm``)
* ``mkl``        MKL's ``libmkl_rt`` from the ``mkl`` wheel
* ``own``        nncore's own float32 kernel (src/nncore/_sgemm_avx512.h, one
                 thread here; the default for float32 on AVX-512 CPUs)

Every candidate is called from a C loop through a function pointer (see
``_gemm_harness.c``, compiled at run time with the system C compiler), so no
Python call overhead is in the figures. A candidate that is not installed is
skipped. Each result is also checked against a float64 NumPy product and for
bit-identical results between two calls (run-to-run reproducibility).

Run::

    python bench/gemm_candidates.py                     # all, float32 + float64
    python bench/gemm_candidates.py --dtypes float32 --threads 1 --rounds 9
    python bench/gemm_candidates.py --gate --candidates scipy,own --dtypes float32 --threads 1

The "epoch" lines add up the per-call medians times the steps of one
60 000-sample epoch (8 GEMMs a step: 3 forward, 3 weight gradients, 2 input
gradients): the GEMM time of one epoch, nothing else.
"""

import argparse
import ctypes
import glob
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
N_SAMPLES = 60_000
LAYERS = (784, 256, 256, 10)
KIND_F77, KIND_BLIS, KIND_OWN = 0, 1, 2


def step_gemms(batch):
    """The 8 GEMMs of one step: (label, trans_a, trans_b, m, n, k), row-major C = op(A) op(B)."""
    shapes = []
    for n_in, n_out in zip(LAYERS[:-1], LAYERS[1:]):
        shapes.append((f"fwd  X[{batch},{n_in}]·W", 0, 0, batch, n_out, n_in))
    for li, (n_in, n_out) in enumerate(zip(LAYERS[:-1], LAYERS[1:])):
        shapes.append((f"dW   Xᵀ·dY {n_in}x{n_out}", 1, 0, n_in, n_out, batch))
        if li > 0:   # the first layer needs no input gradient
            shapes.append((f"dX   dY·Wᵀ [{batch},{n_out}]→{n_in}", 0, 1, batch, n_in, n_out))
    return shapes


# Shapes on both sides of the own kernel's limits (_sgemm_avx512.h nnc_sgemm_own_shape:
# a batch dimension -- m of X·W and dY·Wᵀ, k of Xᵀ·dY -- from 8 to 128,
# Xᵀ·dY at least 128 wide, dY·Wᵀ with n·k >= 2^16), for --gate:
# (label, trans_a, trans_b, m, n, k).
GATE_SHAPES = [("X·W 4 rows (OpenBLAS)", 0, 0, 4, 256, 256),
               ("X·W 8 rows", 0, 0, 8, 256, 256),
               ("X·W 128 rows", 0, 0, 128, 256, 784),
               ("X·W 256 rows (OpenBLAS)", 0, 0, 256, 256, 784),
               ("Xᵀ·dY 128 rows", 1, 0, 784, 256, 128),
               ("Xᵀ·dY 256 rows (OpenBLAS)", 1, 0, 784, 256, 256),
               ("Xᵀ·dY 10 wide (OpenBLAS)", 1, 0, 256, 10, 32),
               ("dY·Wᵀ 4 rows (OpenBLAS)", 0, 1, 4, 256, 256),
               ("dY·Wᵀ 8 rows", 0, 1, 8, 256, 256),
               ("dY·Wᵀ 32 rows", 0, 1, 32, 256, 256),
               ("dY·Wᵀ 128 rows", 0, 1, 128, 256, 256),
               ("dY·Wᵀ 256 rows (OpenBLAS)", 0, 1, 256, 256, 256),
               ("dY·Wᵀ from 10 wide (OpenBLAS)", 0, 1, 32, 256, 10)]


def shapes_for(batch, args):
    """The GEMMs timed for one batch size (or the --gate shapes)."""
    return GATE_SHAPES if args.gate else step_gemms(batch)


# --------------------------------------------------------------------------- harness
def build_harness():
    """Compile _gemm_harness.c into a temporary shared library; None without a compiler."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    out = os.path.join(tempfile.mkdtemp(prefix="nncore-gemm-"), "harness.so")
    cmd = [cc, "-O3", "-shared", "-fPIC", os.path.join(HERE, "_gemm_harness.c"), "-o", out]
    try:
        subprocess.run(cmd, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    lib = ctypes.CDLL(out)
    lib.time_gemm.restype = ctypes.c_double
    lib.time_gemm.argtypes = ([ctypes.c_int, ctypes.c_void_p] + [ctypes.c_int] * 6
                              + [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                 ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_long,
                                 ctypes.POINTER(ctypes.c_double)])
    return lib


def _capsule_pointer(capsule):
    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule))


def _symbol(lib, name):
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value


def _dist_version(name):
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _openblas_threads(lib):
    setter = lib.scipy_openblas_set_num_threads
    setter.argtypes = [ctypes.c_int]
    return setter


# --------------------------------------------------------------------------- candidates
def _scipy():
    from scipy.linalg import cython_blas
    import scipy
    libs = glob.glob(os.path.join(os.path.dirname(scipy.__file__) + ".libs",
                                  "libscipy_openblas*.so*"))
    lib = ctypes.CDLL(libs[0]) if libs else None
    lib.scipy_openblas_get_config.restype = ctypes.c_char_p
    return dict(kind=KIND_F77, s=_capsule_pointer(cython_blas.__pyx_capi__["sgemm"]),
                d=_capsule_pointer(cython_blas.__pyx_capi__["dgemm"]),
                threads=_openblas_threads(lib),
                version=lib.scipy_openblas_get_config().decode())


def _openblas34():
    import scipy_openblas32
    lib = ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(),
                                   f"lib{scipy_openblas32.get_library()}.so"))
    lib.scipy_openblas_get_config.restype = ctypes.c_char_p
    return dict(kind=KIND_F77, s=_symbol(lib, "scipy_sgemm_"), d=_symbol(lib, "scipy_dgemm_"),
                threads=_openblas_threads(lib),
                version=lib.scipy_openblas_get_config().decode())


def _blis():
    import blis.cy
    lib = ctypes.CDLL(blis.cy.__file__)
    lib.bli_arch_string.restype = ctypes.c_char_p
    arch = lib.bli_arch_string(lib.bli_arch_query_id()).decode()
    threaded = lib.bli_info_get_enable_openmp() or lib.bli_info_get_enable_pthreads()
    return dict(kind=KIND_BLIS, s=_capsule_pointer(blis.cy.__pyx_capi__["sgemm"]),
                d=_capsule_pointer(blis.cy.__pyx_capi__["dgemm"]),
                threads=None, max_threads=2 if threaded else 1,
                version=f"blis {_dist_version('blis')} arch={arch}, "
                        f"{'threaded' if threaded else 'built without threads'}")


def _mkl():
    prefix = sys.prefix
    paths = glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*"))
    if not paths:
        raise ImportError("libmkl_rt not found (pip install mkl)")
    lib = ctypes.CDLL(paths[0])
    buf = ctypes.create_string_buffer(256)
    lib.MKL_Get_Version_String(buf, 256)
    setter = lib.MKL_Set_Num_Threads
    setter.argtypes = [ctypes.c_int]
    return dict(kind=KIND_F77, s=_symbol(lib, "sgemm_"), d=_symbol(lib, "dgemm_"),
                threads=setter, version=buf.value.decode().strip())


def _own(harness):
    if not harness.own_available():
        raise ImportError("no AVX-512F on this CPU")
    return dict(kind=KIND_OWN, s=1, d=None, threads=None, max_threads=1,
                version="nncore's own (_sgemm_avx512.h), float32 only")


FACTORIES = {"scipy": _scipy, "openblas34": _openblas34, "blis": _blis, "mkl": _mkl,
             "own": None}


def load_candidates(names, harness):
    """{name: spec} of the candidates that load; {name: reason} of those that do not."""
    found, missing = {}, {}
    for name in names:
        try:
            found[name] = _own(harness) if name == "own" else FACTORIES[name]()
        except Exception as exc:   # noqa: BLE001 - any failure to load means "absent"
            missing[name] = f"{type(exc).__name__}: {exc}"
    return found, missing


# --------------------------------------------------------------------------- measuring
class Problem:
    """Operands of one GEMM shape in one dtype (row-major, stored as op() expects)."""

    def __init__(self, shape, dtype, rng):
        self.label, self.ta, self.tb, self.m, self.n, self.k = shape
        self.dtype = np.dtype(dtype)
        self.A = rng.standard_normal((self.k, self.m) if self.ta else (self.m, self.k)).astype(dtype)
        self.B = rng.standard_normal((self.n, self.k) if self.tb else (self.k, self.n)).astype(dtype)
        self.C = np.zeros((self.m, self.n), dtype)
        self.pack = np.zeros(self.n * self.k, dtype)
        opA = self.A.T if self.ta else self.A
        opB = self.B.T if self.tb else self.B
        self.truth = opA.astype(np.float64) @ opB.astype(np.float64)

    @property
    def flops(self):
        return 2.0 * self.m * self.n * self.k

    def run(self, harness, spec, reps):
        """(wall, this thread's CPU) seconds per call over ``reps`` calls."""
        dbl = self.dtype == np.float64
        fn = spec["d"] if dbl else spec["s"]
        cpu = ctypes.c_double()
        wall = harness.time_gemm(
            spec["kind"], fn, int(dbl), self.ta, self.tb, self.m, self.n, self.k,
            self.A.ctypes.data, self.A.shape[1], self.B.ctypes.data, self.B.shape[1],
            self.C.ctypes.data, self.n, self.pack.ctypes.data, reps, ctypes.byref(cpu))
        return wall, cpu.value

    def check(self, harness, spec):
        """(max relative error vs float64, bit-identical on a second call)."""
        self.C[...] = np.nan
        self.run(harness, spec, 1)
        first = self.C.copy()
        self.C[...] = 0
        self.run(harness, spec, 1)
        err = float(np.max(np.abs(first - self.truth)) / np.max(np.abs(self.truth)))
        return err, bool(np.array_equal(first.view(np.uint8), self.C.view(np.uint8)))


def supports(spec, dtype, threads):
    if np.dtype(dtype) == np.float64 and spec["d"] is None:
        return False
    return threads <= spec.get("max_threads", 64)


def set_threads(candidates, threads):
    for spec in candidates.values():
        if spec["threads"] is not None:
            spec["threads"](threads)


def _calibrate(harness, candidates, problems, target_ms):
    """Calls per timed block for each problem, so a block lasts about ``target_ms``."""
    ref = candidates.get("scipy") or next(iter(candidates.values()))
    set_threads(candidates, 1)
    reps = {}
    for dt, b, p in problems:
        p.run(harness, ref, 3)
        reps[id(p)] = max(2, int(target_ms * 1e-3 / max(p.run(harness, ref, 3)[1], 1e-7)))
    return reps


def _one_block(harness, candidates, name, threads, group, reps, times, checks, rnd):
    """Time one candidate on every problem of ``group`` (one dtype and batch)."""
    spec = candidates[name]
    set_threads(candidates, 1)
    if spec["threads"] is not None:
        spec["threads"](threads)
    for dt, b, p in group:
        key = (dt, b, threads, name, p.label)
        if rnd == 0:
            checks[key] = p.check(harness, spec)
        p.run(harness, spec, 2)   # wake the pool after the switch
        times.setdefault(key, []).append(p.run(harness, spec, reps[id(p)]))


def measure(harness, candidates, args):
    """{(dtype, batch, threads, cand, label): [(wall, cpu) s per call, one per round]}
    and the checks.

    One thread: candidates interleaved per shape (neighbours in time). Two threads:
    per (dtype, batch) block, so a pool that was just switched is woken once, and the
    other libraries' pools are set to one thread meanwhile."""
    rng = np.random.default_rng(0)
    problems = [(dt, b, Problem(s, dt, rng)) for dt in args.dtypes for b in args.batches
                for s in shapes_for(b, args)]
    reps = _calibrate(harness, candidates, problems, args.target_ms)
    times, checks, names = {}, {}, list(candidates)
    for rnd in range(args.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for threads in args.threads:
            for dt in args.dtypes:
                for b in args.batches:
                    group = [t for t in problems if t[0] == dt and t[1] == b]
                    blocks = ([[t] for t in group] if threads == 1 else [group])
                    for block in blocks:
                        for name in order:
                            if supports(candidates[name], dt, threads):
                                _one_block(harness, candidates, name, threads, block, reps,
                                           times, checks, rnd)
    set_threads(candidates, 1)
    return problems, times, checks


# --------------------------------------------------------------------------- report
def _epoch_sums(times, key_of, ps, batch, pick):
    """GEMM seconds of one epoch: Σ over the step's GEMMs of pick(per-call times) x steps."""
    return sum(pick(times[key_of(p)]) for p in ps) * N_SAMPLES / batch


def _paired_ratio(times, key_of, ps, other, batch):
    """Median over rounds of (epoch sum of this candidate / of ``other``) in the same round."""
    rounds = min(len(times[key_of(p)]) for p in ps)
    ratios = [sum(times[key_of(p)][r] for p in ps) / sum(times[other(p)][r] for p in ps)
              for r in range(rounds)]
    return statistics.median(ratios)


def _table(dt, b, threads, ps, cols, times, args, clock):
    key = lambda n: (lambda p: (dt, b, threads, n, p.label))   # noqa: E731
    lines = [f"\n{dt}, batch {b}, {threads} thread(s): GFLOP/s ({clock} time), median of "
             f"{args.rounds} interleaved rounds\n",
             "| GEMM (m x n x k) | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for p in ps:
        row = [f"{p.flops / statistics.median(times[key(n)(p)]) / 1e9:.0f}" for n in cols]
        lines.append(f"| {p.label} ({p.m}x{p.n}x{p.k}) | " + " | ".join(row) + " |")
    if args.gate:    # shapes of no one step: no epoch sums
        return lines, {}
    epoch = {n: _epoch_sums(times, key(n), ps, b, statistics.median) for n in cols}
    best = {n: _epoch_sums(times, key(n), ps, b, min) for n in cols}
    lines.append("| epoch GEMM s (medians) | " + " | ".join(f"{epoch[n]:.3f}" for n in cols) + " |")
    lines.append("| epoch GEMM s (best) | " + " | ".join(f"{best[n]:.3f}" for n in cols) + " |")
    ratio = {}
    if "scipy" in cols:
        ratio = {n: _paired_ratio(times, key(n), ps, key("scipy"), b) for n in cols}
        lines.append("| **vs scipy (paired)** | " + " | ".join(f"**{ratio[n]:.2f}x**" for n in cols)
                     + " |")
    return lines, {"median": epoch, "best": best, "ratio_vs_scipy": ratio}


def report(problems, times, checks, candidates, args):
    """Markdown tables (GFLOP/s per shape, epoch GEMM time per candidate) and a dict."""
    names = list(candidates)
    lines, summary = [], {}
    for dt in args.dtypes:
        for b in args.batches:
            ps = [p for d, bb, p in problems if d == dt and bb == b]
            for threads in args.threads:
                cols = [n for n in names if supports(candidates[n], dt, threads)]
                use_cpu = threads == 1 and args.clock != "wall"
                picked = {k: [t[1 if use_cpu else 0] for t in v] for k, v in times.items()
                          if k[2] == threads}
                table, summary[f"{dt}/b{b}/t{threads}"] = _table(
                    dt, b, threads, ps, cols, picked, args, "thread CPU" if use_cpu else "wall")
                lines += table
    lines.append("\nchecks (max relative error vs the float64 product; bit-identical twice):")
    for n in names:
        errs = [v[0] for k, v in checks.items() if k[3] == n]
        same = all(v[1] for k, v in checks.items() if k[3] == n)
        lines.append(f"  {n:11s} max rel err {max(errs):.1e}, run-to-run identical: {same}")
    return "\n".join(lines), summary


# --------------------------------------------------------------------------- whole epochs
FIT_LIBRARIES = {"own": "nncore", "mkl": "mkl"}   # --fit: candidate -> NNCORE_GEMM name


def _fit_once(nc, X, y, batch, dtype, layers):
    """One epoch of a ReLU classifier of ``layers`` widths (default: the MNIST workload
    of bench/compare.py): (wall s, CPU s, weights)."""
    import time
    dense = [nc.Dense(a, b, "relu") for a, b in zip(layers[:-2], layers[1:-1])]
    net = nc.Network(dense + [nc.Dense(layers[-2], layers[-1])], loss="cross_entropy",
                     dtype=dtype, seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    net.fit(X, y, optimizer=nc.optim.Adam(1e-3), batch_size=batch, epochs=1,
            progress=False, seed=0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, np.array(net.params, copy=True)


def fit_ab(args):
    """Whole training epochs with each GEMM library of nncore's NNCORE_GEMM switch,
    interleaved in one process (rotated each round): medians, and whether every
    repeat gave the same bits. One thread: CPU time is the primary figure."""
    sys.path.insert(0, os.path.join(HERE, "..", "src"))
    import nncore as nc
    from nncore import _kernels
    # the candidates as NNCORE_GEMM names ("own" is the default "nncore"); scipy always
    libs = ["scipy"] + [FIT_LIBRARIES[n] for n in args.candidates if n in FIT_LIBRARIES]
    before = _kernels.gemm_library()
    rng = np.random.default_rng(0)
    n_in, k = args.layers[0], args.layers[-1]
    X, y = rng.random((args.samples, n_in), dtype=np.float32), rng.integers(0, k, args.samples)
    for threads in args.threads:
        nc.set_num_threads(threads)
        for dt in args.dtypes:
            for b in args.batches:
                got = {n: [] for n in libs}
                for rnd in range(args.rounds):
                    for n in libs[rnd % len(libs):] + libs[:rnd % len(libs)]:
                        _kernels._set_gemm_library(n)
                        got[n].append(_fit_once(nc, X.astype(dt), y, b, dt, args.layers))
                _kernels._set_gemm_library(before)
                _print_fit_ab(got, threads, dt, b, args)


def _print_fit_ab(got, threads, dt, b, args):
    base = got["scipy"]
    print(f"\nfit, {dt}, batch {b}, {threads} thread(s), {args.samples} rows, "
          f"{args.rounds} interleaved rounds:")
    for n, runs in got.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        same = all(np.array_equal(r[2], runs[0][2]) for r in runs)
        diff = float(np.max(np.abs(runs[0][2] - base[0][2])))
        print(f"  {n:6s} wall {wall:.3f} s ({wall / statistics.median(r[0] for r in base):.2f}x)"
              f"  CPU {cpu:.3f} s ({cpu / statistics.median(r[1] for r in base):.2f}x)"
              f"  repeats bit-identical: {same}  max |w - w_scipy| {diff:.1e}")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--candidates", default=",".join(FACTORIES),
                    help="comma list of %(default)s")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--batches", default="32,128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
    ap.add_argument("--target-ms", type=float, default=10.0, help="time per timed block")
    ap.add_argument("--clock", choices=("auto", "wall", "cpu"), default="auto",
                    help="auto: the calling thread's CPU time for one thread (robust on a "
                         "shared machine: time descheduled is not counted), wall for two")
    ap.add_argument("--json", help="also write the epoch sums and raw medians here")
    ap.add_argument("--fit", action="store_true",
                    help="instead: whole nncore training epochs (--layers, Adam), "
                         "NNCORE_GEMM=scipy against the own kernel and/or mkl (from "
                         "--candidates) in one process, interleaved")
    ap.add_argument("--layers", default="784,256,256,10",
                    help="--fit: the network's widths (ReLU, cross-entropy)")
    ap.add_argument("--samples", type=int, default=60_000, help="rows per epoch for --fit")
    ap.add_argument("--gate", action="store_true",
                    help="instead of a step's GEMMs: shapes around the limits of the own "
                         "kernel's shapes (where nncore leaves float32 GEMMs to OpenBLAS)")
    args = ap.parse_args(argv)
    args.candidates = [c for c in args.candidates.split(",") if c]
    unknown = sorted(set(args.candidates) - set(FACTORIES))
    if unknown:
        ap.error(f"unknown candidates {unknown}; choose from {list(FACTORIES)}")
    args.layers = [int(w) for w in args.layers.split(",")]
    args.dtypes = args.dtypes.split(",")
    args.batches = [0] if args.gate else [int(b) for b in args.batches.split(",")]
    args.threads = [int(t) for t in args.threads.split(",")]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.fit:
        fit_ab(args)
        print("\nload:", os.getloadavg())
        return 0
    harness = build_harness()
    if harness is None:
        print("no C compiler: cannot build the timing harness", file=sys.stderr)
        return 1
    candidates, missing = load_candidates(args.candidates, harness)
    for name, spec in candidates.items():
        print(f"{name:11s} {spec['version']}")
    for name, why in missing.items():
        print(f"{name:11s} skipped ({why})")
    problems, times, checks = measure(harness, candidates, args)
    text, summary = report(problems, times, checks, candidates, args)
    print(text)
    print("\nload:", os.getloadavg())
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"epoch_gemm_seconds": summary,
                       "medians_wall_cpu": {"/".join(map(str, k)): [statistics.median(t[0] for t in v),
                                                             statistics.median(t[1] for t in v)]
                                   for k, v in times.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
