"""Why the batch-32 MNIST row of ``bench/compare.py`` lags: subnormal Adam state.

    python bench/subnormal_adam.py [--rows 10000] [--epochs 6] [--flush-denormal]

compare.py's synthetic workload (uniform X, random labels, 784-256-256-10 ReLU,
float32, Adam, batch 32) kills the network early: most gradients become exactly
zero, Adam's moments decay geometrically into float32 subnormals, and arithmetic
on subnormals is many times slower. Prints, on one thread: the time per epoch of
one multi-epoch fit, of separate one-epoch fits with a fresh Adam each (state
never old enough to be subnormal), and of plain SGD (no state); the share of
exactly-zero gradient entries at the end; and the time to scale 269k normal vs
subnormal float32 values (the raw penalty). ``--flush-denormal`` runs the fits
with ``nc.set_flush_denormal(True)`` (FTZ/DAZ in the training loop, as XLA does).
"""

import argparse
import time

import numpy as np

import nncore as nc


def _net():
    return nc.Network([nc.Dense(784, 256, "relu"), nc.Dense(256, 256, "relu"), nc.Dense(256, 10)],
                      loss="cross_entropy", dtype="float32", seed=0)


def _epoch_times(net, X, y, opt, epochs):
    h = net.fit(X, y, optimizer=opt, batch_size=32, epochs=epochs, progress=False, seed=0)
    return np.diff([0.0] + list(h.history["time"]))


def _scale_seconds(value, n=269_578, reps=200):
    a = np.full(n, value, np.float32)
    t = time.perf_counter()
    for _ in range(reps):
        a *= np.float32(0.9999)
    return (time.perf_counter() - t) / reps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--flush-denormal", action="store_true",
                    help="fit with nc.set_flush_denormal(True)")
    args = ap.parse_args()
    nc.set_num_threads(1)
    if args.flush_denormal and not nc.set_flush_denormal(True):
        raise SystemExit("flushing subnormals is not supported on this CPU")
    rng = np.random.default_rng(0)
    X = rng.random((args.rows, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.rows)
    net = _net()
    one_fit = _epoch_times(net, X, y, nc.optim.Adam(1e-3), args.epochs)
    _, grad = net.loss_and_gradient(X[:32], y[:32])
    fresh_net = _net()
    fresh = [_epoch_times(fresh_net, X, y, nc.optim.Adam(1e-3), 1)[0] for _ in range(args.epochs)]
    sgd = _epoch_times(_net(), X, y, nc.optim.SGD(0.01), args.epochs)
    fmt = lambda ts: " ".join(f"{t:.3f}" for t in ts)
    print(f"s per epoch, {args.rows} rows, batch 32, 1 thread, subnormals "
          f"{'flushed' if args.flush_denormal else 'kept (IEEE)'}")
    print(f"  one {args.epochs}-epoch Adam fit:        {fmt(one_fit)}")
    print(f"  one-epoch fits, fresh Adam each: {fmt(fresh)}")
    print(f"  one {args.epochs}-epoch plain SGD fit:   {fmt(sgd)}")
    print(f"exactly-zero gradient entries after the Adam fit: {np.mean(grad == 0):.1%}")
    normal, sub = _scale_seconds(1e-3), _scale_seconds(1e-40)
    print(f"scaling 269,578 float32: normal {normal * 1e6:.1f} µs, subnormal {sub * 1e6:.1f} µs "
          f"({sub / normal:.0f}x)")


if __name__ == "__main__":
    main()
