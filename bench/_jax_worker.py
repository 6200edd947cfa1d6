"""JAX + optax contender for ``bench/compare.py``, run in its own process.

XLA fixes its thread pool when JAX starts, so each thread setting gets a
process of its own (CPU affinity and XLA flags set before ``import jax``).
The parent writes the data and the initial weights to an ``.npz`` file, starts
this script, and then drives it over stdin/stdout:

* the worker compiles and runs one warm-up call, then prints
  ``ready <compile seconds>``;
* for every ``run`` line it reads, it runs one timed call and prints the
  elapsed seconds (measured here, so the pipe is not timed);
* ``dump PATH`` saves the current parameters to ``PATH`` (``.npz``), for tests.

Workloads (the same as compare.py's nncore and PyTorch rows):

* ``tiny``: 2-16-16-1 tanh, ``0.5 * squared error`` per sample, ``optax.sgd``,
  batch 1; one call is ``--epochs`` epochs, each a ``jax.lax.scan`` over a
  fresh permutation of the rows inside one ``jax.jit``.
* ``mnist32`` / ``mnist128``: 784-256-256-10 relu, softmax cross-entropy,
  ``optax.adam(1e-3)``; one call is one epoch under ``jit`` + ``lax.scan``
  (whole batches only: the last ``n mod batch`` rows of each permutation are
  left out, at most 0.2 % of the rows at the default sizes).
* ``adam``: ``--steps`` jitted ``optax.adam`` updates of one flat float32
  vector with donated buffers (one dispatch per step, like torch's loop).
"""

import argparse
import os
import sys
import time


def _pin_threads(threads):
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cpus)
    # XLA sizes its pools from the CPUs this process may use; one thread also
    # turns off Eigen's multi-threaded kernels.
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
        os.environ["XLA_FLAGS"] = flags.strip()


def _mlp(jnp, jax, act):
    def forward(params, x):
        for i, (W, b) in enumerate(params):
            x = x @ W + b
            if i < len(params) - 1:
                x = act(x)
        return x
    return forward


def _epoch_fn(jax, jnp, optax, forward, loss_fn, opt, batch, n):
    n_batches = n // batch

    def step(carry, idx):
        params, state, X, y = carry
        xb, yb = X[idx], y[idx]
        grads = jax.grad(lambda p: loss_fn(forward(p, xb), yb))(params)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state, X, y), None

    def epoch(params, state, X, y, key):
        perm = jax.random.permutation(key, n)[:n_batches * batch].reshape(n_batches, batch)
        (params, state, _, _), _ = jax.lax.scan(step, (params, state, X, y), perm)
        return params, state

    return jax.jit(epoch, donate_argnums=(0, 1))


def _training(args, data, jax, jnp, optax):
    """(call, compile-and-warm) for the tiny and mnist workloads."""
    X, y = jnp.asarray(data["X"]), jnp.asarray(data["y"])
    params = [(jnp.asarray(data[f"W{i}"]), jnp.asarray(data[f"b{i}"]))
              for i in range(int(data["n_layers"]))]
    if args.workload == "tiny":
        forward = _mlp(jnp, jax, jnp.tanh)
        loss_fn = lambda out, t: 0.5 * jnp.sum((out[:, 0] - t) ** 2)   # noqa: E731
        opt, batch, epochs = optax.sgd(args.lr), 1, args.epochs
    else:
        forward = _mlp(jnp, jax, jax.nn.relu)
        loss_fn = lambda out, t: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
            out, t).mean()
        opt, batch, epochs = optax.adam(args.lr), args.batch, 1
    epoch = _epoch_fn(jax, jnp, optax, forward, loss_fn, opt, batch, X.shape[0])
    box = {"params": params, "state": opt.init(params), "key": jax.random.PRNGKey(0)}

    def call():
        for _ in range(epochs):
            box["key"], sub = jax.random.split(box["key"])
            box["params"], box["state"] = epoch(box["params"], box["state"], X, y, sub)
        jax.block_until_ready(box["params"])
    call.arrays = lambda: {f"{name}{i}": a for i, (W, b) in enumerate(box["params"])
                           for name, a in (("W", W), ("b", b))}
    return call


def _adam(args, data, jax, jnp, optax):
    opt = optax.adam(args.lr)
    g = jnp.asarray(data["g"])

    def update(p, state):
        updates, state = opt.update(g, state, p)
        return optax.apply_updates(p, updates), state

    update = jax.jit(update, donate_argnums=(0, 1))
    p = jnp.asarray(data["p"])
    box = {"p": p, "state": opt.init(p)}

    def call():
        for _ in range(args.steps):
            box["p"], box["state"] = update(box["p"], box["state"])
        jax.block_until_ready(box["p"])
    call.arrays = lambda: {"p": box["p"]}
    return call


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True, choices=["tiny", "mnist32", "mnist128", "adam"])
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    _pin_threads(args.threads)
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    jax.config.update("jax_platforms", "cpu")
    data = np.load(args.data)
    build = _adam if args.workload == "adam" else _training
    t0 = time.perf_counter()
    call = build(args, data, jax, jnp, optax)
    call()                                  # compiles, then runs once
    serve(call, lambda: {k: np.asarray(v) for k, v in call.arrays().items()}, t0)


def serve(call, arrays, t0):
    """The stdin/stdout protocol (module docstring) after the warm-up call: ``ready``
    with the seconds since ``t0``, then one timed ``call()`` per ``run`` and
    ``np.savez(PATH, **arrays())`` per ``dump PATH``; anything else ends it."""
    import numpy as np
    print(f"ready {time.perf_counter() - t0:.6f}", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command == ["run"]:
            t0 = time.perf_counter()
            call()
            print(f"{time.perf_counter() - t0:.9f}", flush=True)
        elif len(command) == 2 and command[0] == "dump":   # for the tests
            np.savez(command[1], **arrays())
            print("ok", flush=True)
        else:
            break


if __name__ == "__main__":
    main()
