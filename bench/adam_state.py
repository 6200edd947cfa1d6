"""The float32 Adam update on the state of a real fit, in cache, and beyond the caches.

    python bench/adam_state.py                          # this checkout's build
    python bench/adam_state.py --src /other/checkout/src --src src   # builds alternated

Three measurements, one thread unless ``--threads``, each the fastest of
``--repeats``, every build in a child process of its own, builds alternated:

* ``replay``: compare.py's MNIST-shaped net (784-256-256-10 relu, Adam 1e-3)
  trained on the first ``--fit-rows`` rows of compare.py's 60,000-row epoch
  (prototypes data) at batch 32,
  then 20 updates replayed from that state with the gradients of the next 20
  batches (the kernel alone, ``_kernels.adam_step``), with IEEE subnormals and
  with ``nc.set_flush_denormal(True)``; also how many first moments are
  subnormal, and how many of those are decaying (k > 4 in m = k * 2^-149, above
  the fixed points).
* ``sizes``: ns per parameter of repeated updates of random state at 25k-1M
  parameters (in and out of cache).
* ``1e7``: ``Optimizer.step`` of 1e7 parameters, compare.py's Adam row (ms per
  step, 20 steps per repeat), at 1 and 2 threads.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = (1.0, 0.1, 0.9, True, 0.999, 0.001, 0.5, 0.5 ** 0.5, 1e-8, -1e-3, False, 1.0)


def _fastest(f, calls, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            f()
        best = min(best, (time.perf_counter() - t) / calls)
    return best


def _replay(nc, K, rows, repeats):
    sys.path.insert(0, HERE)
    from compare import mnist_data
    X, y = mnist_data(60000)          # compare.py's epoch; the fit takes its first rows
    rows = min(rows, 60000 - 32 * 20)
    net = nc.Network([nc.Dense(784, 256, "relu"), nc.Dense(256, 256, "relu"),
                      nc.Dense(256, 10)], loss="cross_entropy", dtype="float32", seed=0)
    opt = nc.optim.Adam(1e-3)
    net.fit(X[:rows], y[:rows], optimizer=opt, batch_size=32, epochs=1, progress=False, seed=0)
    state = opt._state.buffers
    m0, v0, p0 = state["exp_avg"].copy(), state["exp_avg_sq"].copy(), net.params.copy()
    grads = [np.asarray(net.loss_and_gradient(X[i:i + 32], y[i:i + 32])[1], np.float32).copy()
             for i in range(rows, rows + 32 * 20, 32)]
    bits = m0.view(np.uint32) & np.uint32(0x7FFFFFFF)
    sub = (bits > 0) & (bits < 0x00800000)
    print(f"replay: after {rows} rows, {int(sub.sum())} of {m0.size} first moments "
          f"subnormal, {int((sub & (bits > 4)).sum())} of them decaying (k > 4)")
    for flush in (False, True):
        nc.set_flush_denormal(flush)
        best = float("inf")
        for _ in range(repeats):
            p, m, v = p0.copy(), m0.copy(), v0.copy()
            t = time.perf_counter()
            for g in grads:
                K.adam_step(p, g, m, v, *ARGS)
            best = min(best, (time.perf_counter() - t) / len(grads))
        print(f"replay: {'flushed' if flush else 'IEEE subnormals'}: "
              f"{best * 1e6:.1f} µs per update")
    nc.set_flush_denormal(False)


def _sizes(K, repeats):
    rng = np.random.default_rng(0)
    for n in (25_000, 100_000, 269_322, 1_000_000):
        p, g, m, v = (rng.standard_normal(n, dtype=np.float32) * 0.01 for _ in range(4))
        v = np.abs(v)
        t = _fastest(lambda: K.adam_step(p, g, m, v, *ARGS), max(10, 2_000_000 // n), repeats)
        print(f"sizes: {n:>9,} parameters: {t / n * 1e9:.3f} ns per parameter")


def _big(nc, repeats):
    rng = np.random.default_rng(0)
    p = rng.standard_normal(10**7).astype(np.float32)
    g = rng.standard_normal(10**7).astype(np.float32)
    for threads in (1, 2):
        nc.set_num_threads(threads)
        opt = nc.optim.Adam(1e-3)
        opt.step(p, g)
        t = _fastest(lambda: opt.step(p, g), 20, repeats)
        print(f"1e7: {threads} thread(s): {t * 1e3:.2f} ms per step")


def child(args):
    import nncore as nc
    from nncore import _kernels as K
    nc.set_num_threads(args.threads)
    print(f"build: {os.path.dirname(nc.__file__)}")
    if "replay" in args.only:
        _replay(nc, K, args.fit_rows, args.repeats)
    if "sizes" in args.only:
        _sizes(K, args.repeats)
    if "1e7" in args.only:
        _big(nc, args.repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", action="append", default=None,
                    help="a checkout's src with its extension built (repeat: alternated)")
    ap.add_argument("--rounds", type=int, default=1, help="alternations of the builds")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fit-rows", type=int, default=40_000)
    ap.add_argument("--only", nargs="*", default=["replay", "sizes", "1e7"],
                    choices=["replay", "sizes", "1e7"])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    srcs = args.src or [None]
    for _ in range(args.rounds):
        for src in srcs:
            env = dict(os.environ)
            if src is not None:
                env["PYTHONPATH"] = os.path.abspath(src)
            argv = [sys.executable, __file__, "--child", "--repeats", str(args.repeats),
                    "--threads", str(args.threads), "--fit-rows", str(args.fit_rows),
                    "--only", *args.only]
            subprocess.run(argv, env=env, check=True)


if __name__ == "__main__":
    main()
