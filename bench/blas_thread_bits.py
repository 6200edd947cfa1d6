"""Which BLAS GEMM shapes give other bits on one thread and on two (SciPy's OpenBLAS).

The thread plan (``src/nncore/_thread_plan.py``) may switch a fit between one and
two threads at any step only where the results cannot tell: this sweep is why
float64 fits run without it (``training._workload``). It draws random shapes
(m, k <= 256, n) and the three transpose cases the compiled kernels use, computes
each product with OpenBLAS limited to 1 and to 2 threads, and counts the shapes
whose bits differ::

    python bench/blas_thread_bits.py [--shapes 400] [--seed 1]

Measured 2026-11-30 on the 2-core Intel Xeon (AVX-512, SciPy's OpenBLAS 0.3.30):
183 of 1,188 float64 cases differed, none of the float32 ones.
"""

import argparse

import numpy as np
from scipy.linalg.blas import dgemm, sgemm
from threadpoolctl import threadpool_limits


def differing(shapes, rng):
    """{dtype name: [(m, k, n, trans_a, trans_b) whose 1- and 2-thread bits differ]}, count."""
    bad = {"float32": [], "float64": []}
    tested = 0
    for m, k, n in shapes:
        for gemm, dt in ((sgemm, np.float32), (dgemm, np.float64)):
            for ta, tb in ((0, 0), (1, 0), (0, 1)):
                A = rng.standard_normal((k, m) if ta else (m, k)).astype(dt)
                B = rng.standard_normal((n, k) if tb else (k, n)).astype(dt)
                out = []
                for threads in (1, 2):
                    with threadpool_limits(threads, user_api="blas"):
                        out.append(gemm(1.0, A, B, trans_a=ta, trans_b=tb))
                tested += 1
                if not np.array_equal(out[0], out[1]):
                    bad[dt.__name__].append((m, k, n, ta, tb))
    return bad, tested


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", type=int, default=400, help="random shapes drawn")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    shapes = sorted({(int(rng.choice([1, 8, 17, 32, 64, 100, 128, 200, 256, 300, 513, 784,
                                      1000])),
                      int(rng.integers(1, 257)),
                      int(rng.choice([1, 3, 7, 10, 16, 40, 64, 100, 128, 130, 200, 256, 300,
                                      513])))
                     for _ in range(args.shapes)})
    bad, tested = differing(shapes, rng)
    print(f"{tested // 2} cases per dtype ({len(shapes)} shapes x 3 transpose cases)")
    for name, cases in bad.items():
        print(f"{name}: {len(cases)} differ between 1 and 2 threads; first: {cases[:6]}")


if __name__ == "__main__":
    main()
