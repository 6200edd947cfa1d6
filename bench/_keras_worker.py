"""Keras 3 on JAX contender for ``bench/compare.py``, run in its own process.

Like ``_jax_worker.py`` (whose thread pinning it shares: XLA fixes its pool when
JAX starts) and driven over stdin/stdout the same way: the worker builds the
model from the ``.npz`` file the parent wrote (data and nncore's initial
weights), runs one untimed warm-up call (tracing and XLA compilation of the
train step, and the first epoch), prints ``ready <seconds>``, then answers
``run`` with the seconds of one timed call and ``dump PATH`` with the weights.

One call is ``model.fit(X, y, batch_size=..., epochs=--epochs, shuffle=True,
verbose=0)`` on a model compiled with ``jit_compile=True``: Keras's own loop,
one jitted train step per batch (``steps_per_execution`` left at its default
of 1), which is how Keras users train. Workloads, as compare.py's other rows:

* ``tiny``: 2-16-16-1 tanh, ``SGD(0.01)``, batch 1, the loss
  ``0.5 * squared error`` summed over the outputs (nncore's ``"mse"``; Keras's
  own ``"mse"`` lacks the 1/2 and would double the step);
* ``mnist32`` / ``mnist128``: 784-256-256-10 relu, softmax cross-entropy on
  logits with integer labels, ``Adam(1e-3, epsilon=1e-8)`` (nncore's and
  torch's epsilon; Keras's default is 1e-7).

Keras keeps the last partial batch of an epoch (a second traced shape,
compiled during the warm-up call).
"""

import argparse
import os
import sys
import time

from _jax_worker import _pin_threads, serve


def _model(keras, data, activation):
    """A Sequential MLP starting from the parent's (nncore's) weights."""
    n_layers = int(data["n_layers"])
    n_in = data["W0"].shape[0]
    model = keras.Sequential([keras.Input((n_in,))])
    for i in range(n_layers):
        W = data[f"W{i}"]
        model.add(keras.layers.Dense(W.shape[1],
                                     activation=activation if i < n_layers - 1 else None))
    for i, layer in enumerate(model.layers):
        layer.set_weights([data[f"W{i}"], data[f"b{i}"]])
    return model


def _compiled(args, data, keras):
    if args.workload == "tiny":
        model = _model(keras, data, "tanh")

        def half_squared_error(target, out):
            return 0.5 * keras.ops.sum(keras.ops.square(out - target), axis=-1)
        model.compile(optimizer=keras.optimizers.SGD(args.lr), loss=half_squared_error,
                      jit_compile=True)
        return model, data["y"].reshape(-1, 1), 1
    model = _model(keras, data, "relu")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(args.lr, epsilon=1e-8), loss=loss,
                  jit_compile=True)
    return model, data["y"], args.batch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True, choices=["tiny", "mnist32", "mnist128"])
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--shuffle", type=int, default=1, help="0: rows in order (for the tests)")
    args = ap.parse_args()
    _pin_threads(args.threads)
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras
    import numpy as np
    jax.config.update("jax_platforms", "cpu")
    if keras.backend.backend() != "jax":
        sys.exit(f"Keras runs on {keras.backend.backend()}, not JAX (Keras 3 needed)")
    keras.utils.set_random_seed(0)              # the shuffling order
    data = np.load(args.data)
    X = data["X"]
    t0 = time.perf_counter()
    model, y, batch = _compiled(args, data, keras)

    def call():
        model.fit(X, y, batch_size=batch, epochs=args.epochs, shuffle=bool(args.shuffle),
                  verbose=0)
    def weights():
        arrays = {}
        for i, layer in enumerate(model.layers):
            arrays[f"W{i}"], arrays[f"b{i}"] = (np.asarray(w) for w in layer.get_weights())
        return arrays

    call()                                      # traces, compiles, runs the first epochs
    serve(call, weights, t0)


if __name__ == "__main__":
    main()
