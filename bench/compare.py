"""nncore against PyTorch, JAX + optax, Keras and scikit-learn on the same workloads.

Run (a few minutes on 2 cores)::

    python bench/compare.py                    # full sizes, Markdown table on stdout
    python bench/compare.py --samples 6000 --repeats 3    # quicker, smaller epochs

Workloads (float32, synthetic data, the same data for every library):

* ``tiny``: 2-16-16-1 tanh, MSE, SGD, batch 1 -- time per sample over whole
  epochs (shuffling, forward, backward and update). nncore: ``fit``;
  PyTorch: an eager per-sample loop; scikit-learn: ``MLPRegressor.partial_fit``.
* ``mnist32`` / ``mnist128``: 784-256-256-10 relu, cross-entropy, Adam, batch
  32 / 128, one epoch of ``--samples`` MNIST-shaped rows. PyTorch: the usual
  mini-batch loop with ``Adam(fused=True)``; scikit-learn: ``MLPClassifier.partial_fit``.

MNIST-shaped data (``--data``, the same rows for every library, from a fixed seed):

* ``prototypes`` (the default): a workload that learns like MNIST does. Each of
  the 10 classes has 8 sparse "stroke" images in [0, 1]^784 (20 % of the
  pixels lit); a row is its class's image blended with another class's (weight
  U(0.5, 1) on its own), plus Gaussian noise (sd 0.3), clipped to [0, 1]. One
  epoch at batch 32 takes the loss from 2.4 to about 0.2 (96 % of the rows
  right), as MNIST does; the table's notes print each library's loss after its
  last timed run, so a net that stopped learning shows (nncore and PyTorch start
  every run afresh; the JAX worker keeps training across its runs).
* ``uniform``: the old data, uniform X in [0, 1) and random labels. Nothing can
  be learnt, and the ReLU net dies in the first epoch: almost every gradient
  entry becomes exactly 0, Adam's first moment decays into float32 subnormals
  after ~700 steps, and arithmetic on subnormals is ~50x slower on x86 (XLA's
  CPU code flushes them to zero, nncore and PyTorch keep IEEE semantics unless
  asked: ``nc.set_flush_denormal``). A batch-32 epoch (1875 steps) then measures
  that penalty more than the training; ``bench/subnormal_adam.py`` shows it.
  Kept to reproduce the older figures.
* ``adam``: one Adam update of 1e7 float32 parameters. PyTorch: ``Adam(fused=True)``.

JAX + optax (when installed; ``--no-jax`` leaves it out) runs each workload in
a process of its own per thread count (``bench/_jax_worker.py``): the train
step under ``jax.jit`` and the whole epoch under ``jax.lax.scan``, starting
from nncore's initial weights; its compile time is reported apart and never
timed.

Keras 3 on JAX (when Keras 3 and JAX are installed; ``--no-keras`` leaves it
out) runs the ``tiny`` and MNIST-shaped workloads the same way, in a process
of its own per thread count (``bench/_keras_worker.py``), from the same data
and initial weights: ``model.fit(..., shuffle=True, verbose=0)`` of a model
compiled with ``jit_compile=True`` (one jitted step per batch, Keras's own
loop); tracing, compilation and the first epoch are reported apart, never
timed.

nncore also runs the MNIST-shaped workloads with ``nc.set_flush_denormal(True)``
(``--no-flush`` leaves it out), the arithmetic XLA's CPU code always uses (JAX
sets the CPU's flush-to-zero and denormals-are-zero modes: jax-ml/jax#16200);
nncore's default keeps IEEE subnormals, bit-identical to PyTorch. The table's
nncore column is the default; the flushed run is reported under the table.

Every contender runs at 1 and at ``--threads`` threads (nncore via
``nc.set_num_threads``, PyTorch via ``torch.set_num_threads``, every BLAS/OpenMP
pool via threadpoolctl) and is reported at its best. Repeats are interleaved
(round robin, rotated each round) with a pause between runs so no idle thread
pool spins into the next measurement; the table shows medians.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import signal
import statistics
import sys
import time

import numpy as np

try:   # run from a source checkout without installing
    import nncore as nc
except ImportError:  # pragma: no cover
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    import nncore as nc

from threadpoolctl import threadpool_info, threadpool_limits

try:
    import torch
except ImportError:  # pragma: no cover - optional
    torch = None
try:
    import sklearn
    from sklearn.neural_network import MLPClassifier, MLPRegressor
except ImportError:  # pragma: no cover - optional
    sklearn = None

KERAS_LABEL = "Keras 3 on JAX (fit, jit_compile)"
FTZ_LABEL = "nncore compiled, nc.set_flush_denormal(True)"
PAUSE = 0.25   # seconds between runs: lets spinning BLAS/OpenMP workers go to sleep
SLOW_FACTOR = 3.0


# --------------------------------------------------------------------------- helpers

def _threads(n):
    """Pin every pool to n threads (returns a context manager)."""
    nc.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    return threadpool_limits(limits=n)


class Contender:
    def __init__(self, lib, label, threads, setup, run, units, warm=True, self_timed=False):
        self.lib, self.label, self.threads, self.warm = lib, label, threads, warm
        self.setup, self.run, self.units = setup, run, units
        self.self_timed = self_timed     # run() returns the seconds it measured
        self.times = []

    def measure(self, limit=None):
        """Time one run; with ``limit`` (seconds) give up after it (SIGALRM)."""
        with _threads(self.threads):
            state = self.setup()
            gc.collect()
            gc.disable()
            old = None
            if limit is not None and hasattr(signal, "setitimer"):
                old = signal.signal(signal.SIGALRM, _alarm)
                signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                t0 = time.perf_counter()
                inner = self.run(state)
                dt = time.perf_counter() - t0
                if self.self_timed:
                    dt = inner      # measured in the contender's own process
            except _Timeout:
                dt = math.inf
            finally:
                if old is not None:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, old)
                gc.enable()
        self.times.append(dt / self.units)
        time.sleep(PAUSE)

    @property
    def median(self):
        return statistics.median(self.times)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _interleaved(contenders, repeats, warmup=True):
    """Warm up, then measure round robin. A setting more than SLOW_FACTOR x slower
    than the same library's best one in the warm-up (threads fighting other
    load on a busy machine) keeps its warm-up time and is not repeated; a
    warm-up running past SLOW_FACTOR x that best time is stopped."""
    if warmup:
        best = {}
        for c in contenders:
            if c.warm:
                limit = None
                if c.lib in best:
                    limit = max(2.0, SLOW_FACTOR * best[c.lib] * c.units)
                c.measure(limit)
                c.warmup = c.times[:]
                c.times.clear()
                best[c.lib] = min(best.get(c.lib, math.inf), c.warmup[0])
        for c in contenders:
            if getattr(c, "warmup", None) and c.warmup[0] > SLOW_FACTOR * best[c.lib]:
                c.times = c.warmup
                c.skipped = True
    active = [c for c in contenders if not getattr(c, "skipped", False)]
    for r in range(repeats):
        k = r % len(active)
        for c in active[k:] + active[:k]:
            c.measure()


def _best(contenders, lib):
    mine = [c for c in contenders if c.lib == lib]
    return min(mine, key=lambda c: c.median) if mine else None


# --------------------------------------------------------------------------- nncore

def _nn_fit(layers, loss, X, y, opt, batch, epochs, backend, flush=False):
    """(setup, run) of one nncore fit; ``flush``: with ``nc.set_flush_denormal(True)``
    for the run (put back after it)."""
    def setup():
        nc.set_backend(backend)
        net = nc.Network(layers(), loss=loss, dtype="float32", seed=0)
        return net, opt()

    def run(state):
        net, o = state
        if flush:
            nc.set_flush_denormal(True)
        try:
            net.fit(X, y, optimizer=o, batch_size=batch, epochs=epochs, progress=False, seed=0)
        finally:
            if flush:
                nc.set_flush_denormal(False)
    return setup, run


# --------------------------------------------------------------------------- torch

def _torch_mlp(sizes, act):
    mods = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(act())
    return torch.nn.Sequential(*mods)


def _torch_tiny(X, y, lr):
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.reshape(-1, 1))

    def setup():
        torch.manual_seed(0)
        model = _torch_mlp([2, 16, 16, 1], torch.nn.Tanh)
        return model, torch.optim.SGD(model.parameters(), lr=lr)

    def run(state):
        model, opt = state
        for i in torch.randperm(Xt.shape[0]).tolist():     # eager, one sample per step
            out = model(Xt[i:i + 1])
            loss = 0.5 * ((out - yt[i:i + 1]) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return setup, run


def _torch_mnist(X, y, batch):
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def setup():
        torch.manual_seed(0)
        model = _torch_mlp([784, 256, 256, 10], torch.nn.ReLU)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def run(state):
        model, opt = state
        n = Xt.shape[0]
        perm = torch.randperm(n)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            out = model(Xt[idx])
            loss = torch.nn.functional.cross_entropy(out, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return setup, run


# --------------------------------------------------------------------------- JAX + optax, Keras

_HERE = os.path.dirname(os.path.abspath(__file__))
_JAX_WORKER = os.path.join(_HERE, "_jax_worker.py")
_KERAS_WORKER = os.path.join(_HERE, "_keras_worker.py")
_WORKER_PROCS = []


def _jax_available():
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in ("jax", "optax"))


def _keras_available():
    """Keras 3 (which can run on JAX) and JAX are installed."""
    import importlib.metadata
    import importlib.util
    if importlib.util.find_spec("jax") is None:
        return False
    try:
        return int(importlib.metadata.version("keras").split(".")[0]) >= 3
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False


class _WorkerProcess:
    """A worker script's process (``_jax_worker.py``, ``_keras_worker.py``): one
    workload at one thread count, compiled once, driven over stdin/stdout."""

    script = _JAX_WORKER

    def __init__(self, workload, threads, arrays, **options):
        import subprocess
        import tempfile
        fd, self.path = tempfile.mkstemp(suffix=".npz")
        os.close(fd)
        np.savez(self.path, **arrays)
        cmd = [sys.executable, self.script, "--workload", workload, "--data", self.path,
               "--threads", str(threads)]
        for k, v in options.items():
            cmd += [f"--{k}", str(v)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        _WORKER_PROCS.append(self)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError(f"{os.path.basename(self.script)} for {workload} failed to start")
        self.compile_seconds = float(line[1])

    def run(self):
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def dump(self, path):
        """The worker's current parameters, as a dict of arrays."""
        self.proc.stdin.write(f"dump {path}\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ok":
            raise RuntimeError("the worker did not dump its parameters")
        with np.load(path) as f:
            return dict(f)

    def close(self):
        """End the process and remove its data file (once; later calls do nothing)."""
        if self not in _WORKER_PROCS:
            return
        _WORKER_PROCS.remove(self)
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        os.unlink(self.path)


class _JaxProcess(_WorkerProcess):
    """JAX + optax: the train step under ``jax.jit``, the epoch under ``lax.scan``."""
    script = _JAX_WORKER


class _KerasProcess(_WorkerProcess):
    """Keras 3 on JAX: ``model.fit`` of a model compiled with ``jit_compile=True``."""
    script = _KERAS_WORKER


def _worker_contender(lib, workload, threads, arrays, units, label, **options):
    """A contender timed inside its own worker process (lib "jax" or "keras");
    the process starts (and compiles) at its first setup, outside any timing."""
    kind = _JaxProcess if lib == "jax" else _KerasProcess
    box = {}

    def setup():
        if "proc" not in box:
            box["proc"] = kind(workload, threads, arrays, **options)
        return box["proc"]

    c = Contender(lib, label, threads, setup, lambda proc: proc.run(), units, self_timed=True)
    c.compile_seconds = lambda: box["proc"].compile_seconds if "proc" in box else math.nan
    return c


def _jax_contender(workload, threads, arrays, units, label, **options):
    return _worker_contender("jax", workload, threads, arrays, units, label, **options)


def _initial_weights(layers):
    """The nncore network's initial weights, for JAX to start from the same point."""
    net = nc.Network(layers(), dtype="float32", seed=0)
    out = {"n_layers": len(net.layers)}
    for i, layer in enumerate(net.layers):
        out[f"W{i}"], out[f"b{i}"] = np.array(layer.W), np.array(layer.b)
    return out


# --------------------------------------------------------------------------- workloads

def tiny(args, threads):
    n = args.tiny_samples
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    y = (np.sin(3 * X[:, 0]) * X[:, 1]).astype(np.float32)
    layers = lambda: [nc.Dense(2, 16, "tanh"), nc.Dense(16, 16, "tanh"), nc.Dense(16, 1)]
    sgd = lambda: nc.optim.SGD(0.01)
    E = 20    # nncore's compiled epochs are short: time several
    cs = []
    for t in sorted({1, threads}):
        cs.append(Contender("nncore", "nncore compiled", t,
                            *_nn_fit(layers, "mse", X, y, sgd, 1, E, "cython"), n * E))
        if torch is not None:
            m = min(n, args.torch_tiny_samples)
            cs.append(Contender("torch", "PyTorch eager loop", t,
                                *_torch_tiny(X[:m], y[:m], 0.01), m))
    cs.append(Contender("numpy", "nncore NumPy path", 1,
                        *_nn_fit(layers, "mse", X, y, sgd, 1, 1, "numpy"), n))
    if args.jax:
        arrays = dict(_initial_weights(layers), X=X, y=y)
        for t in sorted({1, threads}):
            cs.append(_jax_contender("tiny", t, arrays, n * E, "JAX + optax (jit + scan)",
                                     lr=0.01, epochs=E))
    if args.keras:
        arrays = dict(_initial_weights(layers), X=X, y=y)
        for t in sorted({1, threads}):     # one epoch per fit call: Keras steps are slow
            cs.append(_worker_contender("keras", "tiny", t, arrays, n, KERAS_LABEL, lr=0.01))
    if sklearn is not None:
        def setup():
            return MLPRegressor(hidden_layer_sizes=(16, 16), activation="tanh", solver="sgd", batch_size=1,
                                learning_rate_init=0.01, momentum=0.0, alpha=0.0,
                                random_state=0)
        cs.append(Contender("sklearn", "scikit-learn partial_fit", 1, setup,
                            lambda est: est.partial_fit(X, y), n))
    return cs


MNIST_DATA = ("prototypes", "uniform")
_EVAL_ROWS = 2048    # rows the learning check evaluates the loss on


def mnist_data(n, kind="prototypes", seed=0):
    """``n`` MNIST-shaped rows ``(X float32 (n, 784) in [0, 1], y int64 in 0..9)``
    of the ``--data`` kind (see the module docstring), deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)
    if kind != "prototypes":
        raise ValueError(f"unknown data kind {kind!r}; choose one of {MNIST_DATA}")
    classes, styles = 10, 8
    strokes = rng.random((classes, styles, 784)) < 0.2
    images = strokes * rng.uniform(0.5, 1.0, (classes, styles, 784))
    y = rng.integers(0, classes, n)
    other = rng.integers(0, classes, n)
    own = rng.uniform(0.5, 1.0, (n, 1))       # a blend keeps some rows ambiguous
    X = own * images[y, rng.integers(0, styles, n)]
    X += (1 - own) * images[other, rng.integers(0, styles, n)]
    X += 0.3 * rng.standard_normal((n, 784))
    return np.clip(X, 0.0, 1.0, out=X).astype(np.float32), y


def _cross_entropy(logits, y):
    """Mean softmax cross-entropy in float64 (the learning check's common yardstick)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def _relu_logits(weights, X):
    """Logits of a relu MLP from its [(W, b), ...] (W of shape (n_in, n_out))."""
    a = X.astype(np.float64)
    for i, (W, b) in enumerate(weights):
        a = a @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
        if i < len(weights) - 1:
            a = np.maximum(a, 0.0)
    return a


def _keep_last(setup, run, box):
    """(setup, run) that also keep the state of the last run in ``box`` (no work timed)."""
    def kept(state):
        result = run(state)
        box["state"] = state      # only after a run that finished (not a stopped one)
        return result
    return setup, kept


def _learning_check(c, box, weights_of, X, y, initial_loss):
    """Give contender ``c`` a ``final_loss()``: the loss on X, y after its last run."""
    c.initial_loss = initial_loss
    c.final_loss = lambda: (_cross_entropy(_relu_logits(weights_of(box["state"]), X), y)
                            if "state" in box else math.nan)
    return c


def _nn_weights(state):
    return [(layer.W, layer.b) for layer in state[0].layers]


def _torch_weights(state):
    linear = [m for m in state[0] if isinstance(m, torch.nn.Linear)]
    return [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in linear]


def _worker_weights(proc):
    """The weights of a JAX or Keras worker process, dumped after its last run."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        arrays = proc.dump(os.path.join(tmp, "params.npz"))
    return [(arrays[f"W{i}"], arrays[f"b{i}"]) for i in range(len(arrays) // 2)]


def mnist(args, threads, batch):
    n = args.samples
    X, y = mnist_data(n, args.data)
    Xe, ye = X[:_EVAL_ROWS], y[:_EVAL_ROWS]
    layers = lambda: [nc.Dense(784, 256, "relu"), nc.Dense(256, 256, "relu"), nc.Dense(256, 10)]
    start = _initial_weights(layers)
    initial = _cross_entropy(_relu_logits([(start[f"W{i}"], start[f"b{i}"]) for i in range(3)],
                                          Xe), ye)
    adam = lambda: nc.optim.Adam(1e-3)
    cs = []
    for t in sorted({1, threads}):
        box = {}
        fit = _keep_last(*_nn_fit(layers, "cross_entropy", X, y, adam, batch, 1, "cython"), box)
        cs.append(_learning_check(Contender("nncore", "nncore compiled", t, *fit, 1), box,
                                  _nn_weights, Xe, ye, initial))
        if args.flush:
            box = {}
            fit = _keep_last(*_nn_fit(layers, "cross_entropy", X, y, adam, batch, 1, "cython",
                                      flush=True), box)
            cs.append(_learning_check(Contender("nncore_ftz", FTZ_LABEL, t, *fit, 1), box,
                                      _nn_weights, Xe, ye, initial))
        if torch is not None:
            box = {}
            loop = _keep_last(*_torch_mnist(X, y, batch), box)
            cs.append(_learning_check(Contender("torch", "PyTorch, fused Adam", t, *loop, 1),
                                      box, _torch_weights, Xe, ye, initial))
        if args.jax:
            arrays = dict(start, X=X, y=y.astype(np.int32))
            c = _jax_contender(f"mnist{batch}", t, arrays, 1, "JAX + optax (jit + scan)",
                               lr=1e-3, batch=batch)
            box = {}
            c.setup, c.run = _keep_last(c.setup, c.run, box)
            cs.append(_learning_check(c, box, _worker_weights, Xe, ye, initial))
        if args.keras:
            arrays = dict(start, X=X, y=y.astype(np.int32))
            c = _worker_contender("keras", f"mnist{batch}", t, arrays, 1, KERAS_LABEL,
                                  lr=1e-3, batch=batch)
            box = {}
            c.setup, c.run = _keep_last(c.setup, c.run, box)
            cs.append(_learning_check(c, box, _worker_weights, Xe, ye, initial))
    if not args.skip_slow:
        cs.append(Contender("numpy", "nncore NumPy path", args.slow_threads,
                            *_nn_fit(layers, "cross_entropy", X, y, adam, batch, 1, "numpy"), 1,
                            warm=False))
        if sklearn is not None:
            classes = np.arange(10)

            def setup():
                return MLPClassifier(hidden_layer_sizes=(256, 256), solver="adam", batch_size=batch,
                                     learning_rate_init=1e-3, alpha=0.0, random_state=0)
            cs.append(Contender("sklearn", "scikit-learn partial_fit", args.slow_threads, setup,
                                lambda est: est.partial_fit(X, y, classes=classes), 1, warm=False))
    return cs


def adam(args, threads):
    P = args.adam_params
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(P).astype(np.float32)
    g = rng.standard_normal(P).astype(np.float32)
    steps = 20

    def nn(backend):
        def setup():
            nc.set_backend(backend)
            opt = nc.optim.Adam(1e-3)
            p = p0.copy()
            opt.step(p, g)                 # state allocated outside the timing
            return opt, p

        def run(state):
            opt, p = state
            for _ in range(steps):
                opt.step(p, g)
        return setup, run

    cs = []
    for t in sorted({1, threads}):
        cs.append(Contender("nncore", "nncore compiled", t, *nn("cython"), steps))
        if torch is not None:
            def setup():
                p = torch.nn.Parameter(torch.from_numpy(p0.copy()))
                p.grad = torch.from_numpy(g.copy())
                opt = torch.optim.Adam([p], lr=1e-3, fused=True)
                opt.step()
                return opt

            def run(opt):
                for _ in range(steps):
                    opt.step()
            cs.append(Contender("torch", "PyTorch Adam(fused=True)", t, setup, run, steps))
        if args.jax:
            cs.append(_jax_contender("adam", t, {"p": p0, "g": g}, steps,
                                     "JAX optax.adam (jit, donated)", lr=1e-3, steps=steps))
    cs.append(Contender("numpy", "nncore NumPy path", args.slow_threads, *nn("numpy"), steps,
                        warm=False))
    return cs


WORKLOADS = {
    # key: (title, unit, scale, contenders, target vs PyTorch, target vs JAX)
    "tiny": ("2-16-16-1 tanh, MSE, SGD, batch 1", "µs/sample", 1e6, tiny, "≥ 50× faster",
             "≤ 0.33×"),
    "mnist32": ("784-256-256-10 relu, CE, Adam, batch 32", "s/epoch", 1.0,
                lambda a, t: mnist(a, t, 32), "≤ 0.6×", "≤ 0.8×"),
    "mnist128": ("784-256-256-10 relu, CE, Adam, batch 128", "s/epoch", 1.0,
                 lambda a, t: mnist(a, t, 128), "≤ 0.85×", "≤ 0.9×"),
    "adam": ("Adam update, 1e7 float32 params", "ms/step", 1e3, adam, "≤ 1×", ""),
}


# --------------------------------------------------------------------------- report

def _machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    lines = [f"- machine: {cpu}, {os.cpu_count()} logical CPUs, {platform.system()} "
             f"{platform.release()}, Python {platform.python_version()}"]
    vers = [f"nncore {nc.__version__}", f"numpy {np.__version__}"]
    import scipy
    vers.append(f"scipy {scipy.__version__}")
    if torch is not None:
        vers.append(f"torch {torch.__version__} (MKL {'on' if torch.backends.mkl.is_available() else 'off'})")
    if sklearn is not None:
        vers.append(f"scikit-learn {sklearn.__version__}")
    lines.append("- versions: " + ", ".join(vers))
    from nncore import _kernels
    lines.append(f"- nncore: OpenMP {'on' if _kernels.OPENMP else 'off'}; compiled backend "
                 "GEMMs through SciPy's OpenBLAS (cython_blas), NumPy path through NumPy's")
    pools = []
    for p in threadpool_info():
        owner = os.path.basename(p.get("filepath", ""))
        pools.append(f"{p.get('internal_api')} {p.get('version') or ''} "
                     f"({p.get('architecture') or p.get('threading_layer') or ''}) [{owner}]")
    lines.append("- thread pools loaded (threadpoolctl): " + "; ".join(pools))
    try:
        load = os.getloadavg()
        lines.append(f"- load average before the run: {load[0]:.2f}")
    except OSError:
        pass
    return "\n".join(lines)


def _fmt(v, scale):
    x = v * scale
    if not math.isfinite(x):
        return "(stopped)"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _ratio(a, b):
    if not (a and b):
        return "—"
    r = a.median / b.median
    return f"{r:.3f}× ({1 / r:.0f}× faster)" if r < 0.1 else f"{r:.2f}×"


def report(results, threads, args):
    out = ["## nncore vs PyTorch, JAX, Keras and scikit-learn (bench/compare.py)", "",
           f"Command: `python bench/compare.py {' '.join(sys.argv[1:])}`".rstrip(), "",
           _machine(), f"- threads tried: 1 and {threads}; each library at its best "
           f"(shown as `@n`); median of {args.repeats} interleaved repeats",
           f"- MNIST-shaped data: `--data {args.data}` (see the module docstring)", "",
           "| workload | unit | nncore compiled | nncore NumPy path | PyTorch | JAX + optax "
           "| Keras 3 on JAX | scikit-learn | nncore / PyTorch (target) | nncore / JAX (target) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for key, contenders in results:
        title, unit, scale, _, target, jax_target = WORKLOADS[key]
        cells = []
        for lib in ("nncore", "numpy", "torch", "jax", "keras", "sklearn"):
            b = _best(contenders, lib)
            cells.append("—" if b is None else f"{_fmt(b.median, scale)} @{b.threads}")
        nn = _best(contenders, "nncore")
        out.append(f"| {title} | {unit} | " + " | ".join(cells)
                   + f" | {_ratio(nn, _best(contenders, 'torch'))} ({target}) "
                   + f"| {_ratio(nn, _best(contenders, 'jax'))} ({jax_target or '—'}) |")
    for key, contenders in results:
        ftz, jax = _best(contenders, "nncore_ftz"), _best(contenders, "jax")
        if ftz is not None:
            title, unit, scale = WORKLOADS[key][:3]
            out.append(f"\nWith subnormals flushed, as XLA's CPU code always does (JAX sets "
                       f"FTZ/DAZ, jax-ml/jax#16200): {title}: {FTZ_LABEL} "
                       f"{_fmt(ftz.median, scale)} {unit} @{ftz.threads}, "
                       f"{_ratio(ftz, jax)} of JAX + optax.")
    out += ["", "All rows (median, min over repeats):", ""]
    for key, contenders in results:
        title, unit, scale = WORKLOADS[key][:3]
        for c in contenders:
            note = (f" (one run only: over {SLOW_FACTOR:g}x slower than this library's best "
                    "setting; stopped runs are marked)") if getattr(c, "skipped", False) else ""
            if c.lib in ("jax", "keras"):
                note += f"; compile + first call {c.compile_seconds():.2f} s (not timed)"
            if hasattr(c, "final_loss"):
                note += (f"; loss on the first {_EVAL_ROWS} rows after its last run "
                         f"{c.final_loss():.3g} (at nncore's initial weights {c.initial_loss:.3g})")
            out.append(f"- {key}: {c.label} @{c.threads} thread(s): median "
                       f"{_fmt(c.median, scale)} {unit}, min {_fmt(min(c.times), scale)}{note}")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=60000, help="rows per MNIST-shaped epoch")
    ap.add_argument("--tiny-samples", type=int, default=2000, help="rows of the 2-16-16-1 set")
    ap.add_argument("--torch-tiny-samples", type=int, default=1000,
                    help="samples timed in PyTorch's per-sample loop")
    ap.add_argument("--adam-params", type=int, default=10**7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                    help="the multi-threaded setting tried besides 1")
    ap.add_argument("--slow-threads", type=int, default=1,
                    help="threads for the slow references (NumPy path, scikit-learn)")
    ap.add_argument("--only", nargs="*", choices=list(WORKLOADS), default=list(WORKLOADS))
    ap.add_argument("--skip-slow", action="store_true",
                    help="skip the NumPy path and scikit-learn on the MNIST workloads")
    ap.add_argument("--data", choices=MNIST_DATA, default="prototypes",
                    help="MNIST-shaped rows: 'prototypes' learns like MNIST (default); "
                         "'uniform' (random labels) kills the net: see the docstring")
    ap.add_argument("--no-jax", action="store_true",
                    help="leave out JAX + optax (also left out when not installed)")
    ap.add_argument("--no-flush", dest="flush", action="store_false",
                    help="leave out nncore's run with subnormals flushed (MNIST-shaped rows)")
    ap.add_argument("--no-keras", action="store_true",
                    help="leave out Keras 3 on JAX (also left out when not installed)")
    args = ap.parse_args(argv)
    args.jax = not args.no_jax and _jax_available()
    args.keras = not args.no_keras and _keras_available()
    results = []
    for key in args.only:
        contenders = WORKLOADS[key][3](args, args.threads)
        print(f"running {key}: {len(contenders)} contenders x {args.repeats} repeats ...",
              file=sys.stderr, flush=True)
        _interleaved(contenders, args.repeats)
        results.append((key, contenders))
    nc.set_backend("cython")
    print(report(results, args.threads, args))
    while _WORKER_PROCS:
        _WORKER_PROCS[-1].close()


if __name__ == "__main__":
    main()
