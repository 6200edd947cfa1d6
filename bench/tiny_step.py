"""CPU time per sample of a batch-1 epoch of compare.py's ``tiny`` workload
(2-16-16-1 tanh, MSE, SGD 0.01, float32), one thread.

Run::

    python bench/tiny_step.py [--rows 20000] [--epochs 20] [--batch 1] [--dtype float32]

It times ``Network.fit`` with ``time.process_time`` (CPU time of this
process), which a machine shared with other jobs disturbs far less than wall
time; run two builds alternately (``PYTHONPATH=<worktree>/src``) to compare
them. The same fit under ``perf record -F 2000 python bench/tiny_step.py
--epochs 100`` and ``perf report --no-children --sort dso,symbol`` gives the
profile split in the README.
"""

import argparse
import time

import numpy as np

import nncore as nc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (args.rows, 2)).astype(args.dtype)
    y = (np.sin(3 * X[:, 0]) * X[:, 1]).astype(args.dtype)
    net = nc.Network([nc.Dense(2, 16, "tanh"), nc.Dense(16, 16, "tanh"), nc.Dense(16, 1)],
                     loss="mse", dtype=args.dtype, seed=0)
    nc.set_num_threads(1)
    fit = dict(batch_size=args.batch, progress=False, seed=0)
    net.fit(X[:100], y[:100], optimizer=nc.optim.SGD(0.01), epochs=1, **fit)     # warm up
    start = time.process_time()
    net.fit(X, y, optimizer=nc.optim.SGD(0.01), epochs=args.epochs, **fit)
    seconds = time.process_time() - start
    print(f"{seconds / (args.rows * args.epochs) * 1e6:.3f} µs/sample CPU time "
          f"(batch {args.batch}, {args.dtype}, 1 thread)")


if __name__ == "__main__":
    main()
