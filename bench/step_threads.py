"""Where the 2-thread dense step loses: each GEMM of a 784-256-256-10 step and
the Adam update, timed on 1 and on 2 threads through nncore's shared pool.

Run::

    python bench/step_threads.py                   # batch 32 and 128, float32
    python bench/step_threads.py --batch 32 --repeats 7 --calls 400

A fit of two batches on 2 threads first installs the shared pool's hook
(_blas_pool.pxi), so OpenBLAS's parallel jobs run on nncore's OpenMP team as in
the epoch loop. Then, for each piece of a step, ``--calls`` back-to-back calls
are timed ``--repeats`` times at each thread count, the counts interleaved
(1, 2, 1, 2, ...), and the fastest sample of each reported (on a shared machine
the slower ones measure waiting for a core), in wall time and in CPU time
(``time.process_time``: on a machine shared with other jobs the two differ;
on 2 threads a perfect split shows half the wall time at the same CPU time).
The GEMMs go through ``nncore._kernels.gemm`` (the epoch loop's ``_gemm_rm``:
the inner sum in blocks of at most 256, one BLAS call each); the update through
``nncore._kernels.adam_step`` with the epoch loop's parallel threshold (64K
elements). ``parallel sections`` counts the BLAS calls OpenBLAS split (each one
fork and join of the team), per step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SIZES = (784, 256, 256, 10)


def step_gemms(batch, rng):
    """(name, A, B, C, trans_a, trans_b) for every GEMM of one step, in order."""
    acts = [rng.standard_normal((batch, n), dtype=np.float32) for n in SIZES]
    weights = [rng.standard_normal((a, b), dtype=np.float32) * 0.05
               for a, b in zip(SIZES[:-1], SIZES[1:])]
    deltas = [rng.standard_normal((batch, n), dtype=np.float32) for n in SIZES[1:]]
    pieces = []
    for i, W in enumerate(weights):
        pieces.append((f"fwd L{i + 1} {batch}x{SIZES[i]}x{SIZES[i + 1]}", acts[i], W,
                       np.empty((batch, SIZES[i + 1]), np.float32), False, False))
    for i in reversed(range(len(weights))):
        pieces.append((f"dW  L{i + 1} {SIZES[i]}x{SIZES[i + 1]} (k={batch})", acts[i],
                       deltas[i], np.empty_like(weights[i]), True, False))
        if i > 0:
            pieces.append((f"dX  L{i + 1} {batch}x{SIZES[i]} (k={SIZES[i + 1]})", deltas[i],
                           weights[i], np.empty((batch, SIZES[i]), np.float32), False, True))
    return pieces


def timed(fn, calls, repeats, set_threads):
    """Median wall and CPU seconds per call at 1 and 2 threads, interleaved."""
    samples = {1: ([], []), 2: ([], [])}
    for _ in range(repeats):
        for n in (1, 2):
            set_threads(n)
            fn()
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(calls):
                fn()
            samples[n][0].append((time.perf_counter() - w0) / calls)
            samples[n][1].append((time.process_time() - c0) / calls)
    # The fastest sample: on a shared machine the others measure waiting for a core
    # (one job of a split GEMM that waits stalls the other at the join).
    return {n: (min(w), min(c)) for n, (w, c) in samples.items()}


def install_pool(nc):
    nc.set_num_threads(2)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4), dtype=np.float32)
    y = rng.integers(0, 2, 64)
    net = nc.Network([nc.Dense(4, 8, "relu"), nc.Dense(8, 2)], loss="cross_entropy",
                     dtype="float32", seed=0)
    net.fit(X, y, epochs=1, batch_size=32, optimizer="adam", progress=False, seed=0)


def main(argv=None):
    import nncore as nc
    from nncore import _kernels as K

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args(argv)
    install_pool(nc)
    print(f"shared pool installed: {K.shared_blas_pool_installed()}")
    old_threshold = K._set_parallel_threshold(1 << 16)   # the epoch loop's BLAS_POOL_PAR_MIN
    rng = np.random.default_rng(1)
    print(f"{'piece':34s} {'wall 1t':>9s} {'wall 2t':>9s} {'speed-up':>8s} "
          f"{'cpu 1t':>9s} {'cpu 2t':>9s} {'forks':>5s}   (µs per call)")
    for batch in args.batch:
        totals = {1: 0.0, 2: 0.0}
        forks = 0
        for name, A, B, C, ta, tb in step_gemms(batch, rng):
            before = K._blas_shared_pool_calls()
            nc.set_num_threads(2)
            K.gemm(A, B, C, ta, tb, 1.0, 0.0)
            sections = K._blas_shared_pool_calls() - before
            forks += sections
            t = timed(lambda: K.gemm(A, B, C, ta, tb, 1.0, 0.0), args.calls, args.repeats,
                      nc.set_num_threads)
            _row(name, t, sections)
            totals[1] += t[1][0]
            totals[2] += t[2][0]
        n_params = sum(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:]))
        p, g, m, v = (rng.standard_normal(n_params, dtype=np.float32) * 0.01 for _ in range(4))
        v = np.abs(v)
        adam = (lambda: K.adam_step(p, g, m, v, 1.0, 0.1, 0.9, True, 0.999, 0.001, 0.5,
                                    0.5 ** 0.5, 1e-8, -1e-3, False, 1.0))
        t = timed(adam, max(args.calls // 3, 10), args.repeats, nc.set_num_threads)
        _row(f"Adam over {n_params} params", t, 1)
        totals[1] += t[1][0]
        totals[2] += t[2][0]
        print(f"{'batch ' + str(batch) + ' sum (GEMMs + Adam)':34s} {totals[1] * 1e6:9.1f} "
              f"{totals[2] * 1e6:9.1f} {totals[1] / totals[2]:8.2f}x {'':9s} {'':9s} "
              f"{forks + 1:5d}")
    K._set_parallel_threshold(old_threshold)


def _row(name, t, sections):
    (w1, c1), (w2, c2) = t[1], t[2]
    print(f"{name:34s} {w1 * 1e6:9.1f} {w2 * 1e6:9.1f} {w1 / w2:8.2f}x {c1 * 1e6:9.1f} "
          f"{c2 * 1e6:9.1f} {sections:5d}")


if __name__ == "__main__":
    main()
