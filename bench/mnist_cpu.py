"""CPU time per epoch of compare.py's MNIST-shaped workloads, one thread, in one process.

    python bench/mnist_cpu.py [--batch 32 128] [--data prototypes uniform] [--rows 20000]
                              [--rounds 5] [--flush-denormal]

On a shared machine wall time mostly measures waiting for a core; the CPU time
of the process (``time.process_time``, every thread counted) is disturbed far
less. nncore (compiled ``fit``), PyTorch (the usual loop, ``Adam(fused=True)``)
and JAX + optax (``bench/_jax_worker.py``'s jit + ``lax.scan`` epoch, compiled
before timing) train the 784-256-256-10 relu net with Adam(1e-3) for one epoch
of ``--rows`` rows of ``compare.mnist_data``, scaled to 60,000 rows; the
libraries alternate round by round and the medians are printed. Every library
is pinned to one thread (XLA's Eigen pool off). nncore and PyTorch start each
round from fresh weights; JAX keeps training across rounds (as in compare.py).
``--flush-denormal`` adds nncore with ``nc.set_flush_denormal(True)``.
"""

import argparse
import os
import statistics
import sys
import time
import types

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_multi_thread_eigen=false").strip()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import compare  # noqa: E402  (nncore, torch; the data and the workloads)
from compare import nc, torch  # noqa: E402


def _nncore(X, y, batch, flush=False):
    def epoch():
        net = nc.Network(compare_layers(), loss="cross_entropy", dtype="float32", seed=0)
        nc.set_flush_denormal(flush)
        try:
            t = time.process_time()
            net.fit(X, y, optimizer=nc.optim.Adam(1e-3), batch_size=batch, epochs=1,
                    progress=False, seed=0)
            return time.process_time() - t
        finally:
            nc.set_flush_denormal(False)
    return epoch


def compare_layers():
    return [nc.Dense(784, 256, "relu"), nc.Dense(256, 256, "relu"), nc.Dense(256, 10)]


def _torch(X, y, batch):
    setup, run = compare._torch_mnist(X, y, batch)

    def epoch():
        state = setup()
        t = time.process_time()
        run(state)
        return time.process_time() - t
    return epoch


def _jax(X, y, batch):
    import jax
    import jax.numpy as jnp
    import optax
    import _jax_worker
    jax.config.update("jax_platforms", "cpu")
    data = dict(compare._initial_weights(compare_layers), X=X, y=y.astype(np.int32))
    args = types.SimpleNamespace(workload=f"mnist{batch}", lr=1e-3, batch=batch)
    call = _jax_worker._training(args, data, jax, jnp, optax)
    call()                                   # compile and run once, untimed

    def epoch():
        t = time.process_time()
        call()
        return time.process_time() - t
    return epoch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--data", nargs="+", choices=compare.MNIST_DATA, default=["prototypes"])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--flush-denormal", action="store_true",
                    help="also nncore with nc.set_flush_denormal(True)")
    args = ap.parse_args(argv)
    nc.set_num_threads(1)
    if torch is not None:
        torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):
        for kind in args.data:
            X, y = compare.mnist_data(args.rows, kind)
            for batch in args.batch:
                libs = {"nncore": _nncore(X, y, batch)}
                if args.flush_denormal:
                    libs["nncore flushing subnormals"] = _nncore(X, y, batch, flush=True)
                if torch is not None:
                    libs["PyTorch"] = _torch(X, y, batch)
                if compare._jax_available():
                    libs["JAX + optax"] = _jax(X, y, batch)
                times = {name: [] for name in libs}
                for r in range(args.rounds):
                    for name in list(libs)[r % len(libs):] + list(libs)[:r % len(libs)]:
                        times[name].append(libs[name]() * 60000 / args.rows)
                med = {name: statistics.median(ts) for name, ts in times.items()}
                cells = ", ".join(f"{name} {m:.3f}" for name, m in med.items())
                ratio = (f"; nncore / JAX {med['nncore'] / med['JAX + optax']:.2f}x"
                         if "JAX + optax" in med else "")
                print(f"--data {kind}, batch {batch}: CPU s per 60k-row epoch, median of "
                      f"{args.rounds}: {cells}{ratio}", flush=True)


if __name__ == "__main__":
    main()
