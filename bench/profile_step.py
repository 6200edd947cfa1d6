"""Where a training step's time goes: GEMM, elementwise (bias, activation and
its derivative), loss, optimizer update, batch gather, loop overhead.

Run::

    python bench/profile_step.py                          # tiny, mnist32, mnist128
    python bench/profile_step.py --src /path/to/other/checkout/src --src src
    python bench/profile_step.py --only mnist32 --rate 1000 --repeats 5

Each workload (compare.py's: ``tiny`` is 2-16-16-1 tanh, MSE, SGD 0.01,
batch 1; ``mnist32`` / ``mnist128`` are 784-256-256-10 relu, cross-entropy,
Adam 1e-3, batch 32 / 128, compare.py's MNIST-shaped rows of its ``--data``
kind, at compare.py's sizes; each fit starts from a fresh network) trains on one
thread in a child process, twice over:

* ``--repeats`` times without a profiler, timing ``Network.fit`` with
  ``time.process_time`` (CPU time: on a machine shared with other jobs wall
  time mostly measures waiting for a core); the median CPU time per step is
  the table's total (the first fit of a process, on two batches, is not timed);
* ``--profiles`` times under ``py-spy record --native`` (sampling at ``--rate``
  Hz, native frames included, inlined functions resolved from the debug info,
  so the compiled loop's stages show by name). Samples inside the timed fits
  are pooled, sorted into the categories below, and the shares are applied to
  the median CPU time. py-spy samples wall time (a thread waiting for a core
  counts where it waits), and the machine's load changes over a run, so the
  shares move by a few points between runs; pooling runs damps that.

The compiled loop returns to Python after every 0.1 s of wall time; the child
stretches that interval by its own wall/CPU ratio (measured first), so a run
returns about 10 times per CPU second whether py-spy pauses it or not.

With several ``--src`` directories (each a checkout's ``src`` with its
extension built in place) the builds run alternately, workload by workload,
so a before/after comparison sees the same machine load. ``py-spy``
(``pip install py-spy``, in the ``bench`` extra) needs permission to read the
child's memory (root, or ``ptrace_scope`` 0 on Linux).

Categories, from the stage of the compiled loop (``_tl_run``) a sample is in:

* ``gemm``: the dense products (OpenBLAS, nncore's own float32 GEMM, or its own loops for tiny layers),
  forward and backward;
* ``elementwise``: the rest of the forward and backward passes: bias +
  activation, the activation's derivative and the bias gradient, dropout;
* ``loss``: loss value and output gradient (and the correct-prediction count);
* ``update``: the optimizer step with its parameter backup and finiteness check
  (fused into one pass);
* ``fused``: the tiny path's whole-sample backward (``_tiny.h``: products,
  activation derivative, SGD update, backup and check of each layer in one
  pass, code sampling cannot split; its forward is split: ``tanh`` counts as
  elementwise, the rest, products and bias, as gemm);
* ``gather``: copying the batch's rows (and targets) by the epoch's order;
* ``loop``: the compiled loop's own bookkeeping (labels, step counters, clock);
* ``python``: ``fit`` around the loop: the Python between chunks of steps and
  epochs (permutation, history, callbacks), the loop's entry and exit
  (``--detail`` also lists the calls below ``fit``'s epoch driver these
  samples are in);
* ``other``: anything else inside ``fit``.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

CHILD = r"""
import sys, time
import numpy as np
import nncore as nc
data, sizes, act, loss, opt, lr, batch, rows, epochs, fits = sys.argv[1:11]
sizes = [int(s) for s in sizes.split(",")]
batch, epochs, fits = int(batch), int(epochs), int(fits)
with np.load(data) as f:           # written by the parent: compare.py's rows
    X, y = f["X"], f["y"]
nc.set_num_threads(1)


def wall_per_cpu_second():
    # wall seconds per CPU second of this process now (waiting for a core, or
    # paused by the profiler)
    wall, cpu, x = time.perf_counter(), time.process_time(), 0
    while time.process_time() - cpu < 0.2:
        x += 1
    return (time.perf_counter() - wall) / (time.process_time() - cpu)


# The loop returns to Python after every 0.1 s of wall time; py-spy pauses the
# process to sample it, which would multiply those returns. Stretched by this
# process's wall/CPU ratio, every run returns about 10 times per CPU second (as
# a quiet machine does), profiled or not.
from nncore import _kernels
_kernels._set_chunk_seconds(0.1 * max(1.0, wall_per_cpu_second()))


def network():
    layers = [nc.Dense(a, b, act) for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(nc.Dense(sizes[-2], sizes[-1]))
    return nc.Network(layers, loss=loss, dtype="float32", seed=0)


fit = dict(optimizer=opt, batch_size=batch, progress=False, seed=0)
network().fit(X[:2 * batch], y[:2 * batch], epochs=1, **fit)     # warm-up
seconds = 0.0
for _ in range(fits):        # as compare.py: each timed fit starts from a fresh network
    net, optimizer = network(), nc.optim.get(opt, lr=float(lr))
    t0 = time.process_time()
    net.fit(X, y, epochs=epochs, **dict(fit, optimizer=optimizer))
    seconds += time.process_time() - t0
print("CPU_SECONDS", seconds)
"""

# name: (sizes, activation, loss, optimizer, lr, batch, rows per epoch, epochs per fit,
# fits): compare.py's sizes (2,000 tiny rows, 20 epochs; one epoch of 60,000 rows)
WORKLOADS = {
    "tiny": ("2,16,16,1", "tanh", "mse", "sgd", 0.01, 1, 2000, 20, 100),
    "mnist32": ("784,256,256,10", "relu", "cross_entropy", "adam", 1e-3, 32, 60000, 1, 2),
    "mnist128": ("784,256,256,10", "relu", "cross_entropy", "adam", 1e-3, 128, 60000, 1, 4),
}
def workload_data(name, kind):
    """compare.py's rows for the workload (``kind``: its ``--data`` for the MNIST shapes)."""
    n_rows = WORKLOADS[name][6]
    if name == "tiny":          # as compare.tiny
        rng = np.random.default_rng(0)
        X = rng.uniform(-1, 1, (n_rows, 2)).astype(np.float32)
        return X, (np.sin(3 * X[:, 0]) * X[:, 1]).astype(np.float32)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import compare
    return compare.mnist_data(n_rows, kind)


# The line of CHILD with the timed fit (py-spy names it as child.py's <module> line).
TIMED_LINE = CHILD[:CHILD.index("    net.fit(X, y,")].count("\n") + 1
CATEGORIES = ("gemm", "elementwise", "loss", "update", "fused", "gather", "loop", "python",
              "other")

# The stage of the compiled loop a frame belongs to, by the function's name
# (the first match from the outermost frame below ``_tl_run`` inwards).
STAGES = (
    ("fused", ("nnc_tiny_backward", "_tl_tiny_update")),
    ("gather", ("_tl_gather",)),
    ("loss", ("_tl_loss", "_tl_count", "_tl_batch_coefficients", "loss_")),
    ("update", ("_tl_update", "_tl_adam", "_tl_plain", "nnc_adam", "_sgd_chunk",
                "_tl_all_finite", "_tl_clip_scale", "_tl_couple_decay")),
    ("loop", ("_monotonic_seconds", "clock_gettime")),
    ("pass", ("_tl_forward", "_tl_backward", "_tl_residual", "regularize_k", "nnc_tiny_forward")),
)
# Inside the forward and backward passes, the innermost frame that names one of
# these decides (elementwise first: the tiny path's fused forward calls the tanh).
ELEMENTWISE_FRAMES = ("tanh", "expm1", "_bias_act", "_delta_rows", "_act_grad", "relu",
                      "_add_chunk", "_multiply_chunk", "_dropout", "sigmoid")
GEMM_FRAMES = ("_dense_product", "_dense_weight_grad", "_dense_input_grad", "gemm", "openblas",
               "nnc_sg_",   # the own float32 GEMM (_sgemm_avx512.h)
               "nnc_tiny_")


def _function(frame):
    """A py-spy frame's function name, without its (file:line) or (library)."""
    return frame.split(" (", 1)[0]


def classify(frames):
    """The category of one sample's stack (outermost frame first) inside ``fit``."""
    loop = next((i for i, fr in enumerate(frames) if _function(fr).endswith("_tl_run")), None)
    if loop is None:
        return "python" if any(".py:" in fr for fr in frames) else "other"
    below = [_function(fr) for fr in frames[loop + 1:]]
    if not below:
        return "loop"
    for name in below:
        for stage, keys in STAGES:
            if any(k in name for k in keys):
                return stage if stage != "pass" else _pass_category(below)
    return "loop" if below[0].startswith("0x") else "other"


# Python frames of fit's drivers, innermost first: a Python sample is attributed
# to the calls it is in below the first of these found.
DRIVERS = ("_fused_epoch.<locals>.run", "_first_order_epochs", "Network.fit")


def python_call(frames):
    """Where a Python sample inside ``fit`` is: the (up to) two Python calls below
    the innermost of fit's drivers on its stack."""
    names = [_function(fr) for fr in frames if ".py:" in fr]
    for driver in DRIVERS:
        if driver in names:
            below = names[len(names) - names[::-1].index(driver):]
            return " > ".join(below[:2]) or driver
    return names[-1] if names else _function(frames[-1])


def _pass_category(below):
    """A sample in the forward or backward pass: "gemm" or "elementwise"."""
    for name in reversed(below):
        if any(k in name for k in ELEMENTWISE_FRAMES):
            return "elementwise"
        if any(k in name for k in GEMM_FRAMES):
            return "gemm"
    return "elementwise"


def _child_script(tmp):
    script = os.path.join(tmp, "child.py")
    with open(script, "w") as f:
        f.write(CHILD)
    return script


def _env(src):
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.path.abspath(src)
    return env


def _child(script, data, name):
    return [sys.executable, script, data, *map(str, WORKLOADS[name])]


def cpu_seconds(name, src, script, data):
    """CPU seconds of the workload's fit, in a child without a profiler."""
    cmd = _child(script, data, name)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=_env(src))
    return float(next(line.split()[1] for line in out.stdout.splitlines()
                      if line.startswith("CPU_SECONDS ")))


def sample_counts(name, src, script, data, rate, pyspy, tmp):
    """Samples inside ``fit`` by category, from one run under py-spy."""
    raw = os.path.join(tmp, "raw.txt")
    cmd = [pyspy, "record", "--native", "--rate", str(rate), "--format", "raw", "-o", raw,
           "--", *_child(script, data, name)]
    subprocess.run(cmd, capture_output=True, text=True, check=True, env=_env(src))
    counts, leaves = collections.Counter(), collections.Counter()
    with open(raw) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            # the timed fit only, not the imports, data or warm-up fit
            if any(fr.startswith("<module> (") and fr.endswith(f":{TIMED_LINE})")
                   for fr in frames):
                category = classify(frames)
                counts[category] += int(n)
                leaves[category, _function(frames[-1])] += int(n)
                if category == "python":
                    leaves["python, by call", python_call(frames)] += int(n)
    counts.leaves = leaves
    return counts


class _Samples(collections.Counter):
    """Samples by category, pooled over profiled runs, with ``leaves`` by
    (category, innermost function)."""

    def __init__(self):
        super().__init__()
        self.leaves = collections.Counter()

    def add(self, other):
        self.update(other)
        self.leaves.update(other.leaves)


def _label(src):
    if not src:
        return "installed nncore"
    try:
        commit = subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    return f"{src} ({commit})"


def _steps(name):
    """Training steps in one run's timed fits."""
    batch, n_rows, epochs, fits = WORKLOADS[name][5:]
    return fits * epochs * -(-n_rows // batch)


def report(rows, args):
    lines = [f"Command: `python bench/profile_step.py {' '.join(sys.argv[1:])}`".rstrip(),
             f"(1 thread; µs/step = median CPU time of {args.repeats} unprofiled runs; "
             f"split by py-spy --native samples at {args.rate} Hz inside fit, pooled over "
             f"{args.profiles} profiled runs; "
             f"MNIST-shaped data: {args.data})", "",
             "| workload | build | µs/step | " + " | ".join(CATEGORIES) + " | samples |",
             "|---|---|---|" + "---|" * (len(CATEGORIES) + 1)]
    for name, src, times, counts in rows:
        per_step = statistics.median(times) / _steps(name) * 1e6
        total = sum(counts.values()) or 1
        cells = [f"{per_step * counts[c] / total:.3g} ({100 * counts[c] / total:.0f} %)"
                 for c in CATEGORIES]
        lines.append(f"| {name} | {_label(src)} | {per_step:.3g} | " + " | ".join(cells)
                     + f" | {total} |")
    lines += ["", "CPU seconds of each run's timed fits: " + "; ".join(
        f"{name} {_label(src)}: " + ", ".join(f"{t:.3f}" for t in times)
        for name, src, times, _ in rows)]
    if args.detail:
        lines += _detail(rows, args.detail)
    return "\n".join(lines)


def _detail(rows, top):
    """The innermost functions of each category's samples, most frequent first, and
    the calls below fit's drivers the Python samples are in."""
    lines = []
    for name, src, _, counts in rows:
        total = sum(counts.values()) or 1
        lines += ["", f"{name}, {_label(src)}: innermost frames by category"]
        for category in CATEGORIES + ("python, by call",):
            leaves = sorted(((n, leaf) for (c, leaf), n in counts.leaves.items()
                             if c == category), reverse=True)[:top]
            if leaves:
                lines.append(f"- {category}: " + ", ".join(
                    f"{leaf} {100 * n / total:.1f} %" for n, leaf in leaves))
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    ap.add_argument("--repeats", type=int, default=3, help="unprofiled runs per build")
    ap.add_argument("--profiles", type=int, default=2,
                    help="profiled runs per build (their samples pooled)")
    ap.add_argument("--only", nargs="*", choices=list(WORKLOADS), default=list(WORKLOADS))
    ap.add_argument("--data", choices=("prototypes", "uniform"), default="prototypes",
                    help="compare.py's --data: the MNIST-shaped rows")
    ap.add_argument("--detail", type=int, default=0, metavar="N",
                    help="also list each category's N most frequent innermost functions")
    ap.add_argument("--src", action="append", default=None,
                    help="a checkout's src directory (repeat to compare builds, run alternately)")
    args = ap.parse_args(argv)
    pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(pyspy):
        sys.exit("bench/profile_step.py needs py-spy: pip install py-spy")
    sources = args.src or [None]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = _child_script(tmp)
        for name in args.only:
            data = os.path.join(tmp, f"{name}.npz")
            X, y = workload_data(name, args.data)
            np.savez(data, X=X, y=y)
            times = {src: [] for src in sources}
            counts = {src: _Samples() for src in sources}
            for _ in range(args.repeats):
                for src in sources:
                    times[src].append(cpu_seconds(name, src, script, data))
            for _ in range(args.profiles):
                for src in sources:
                    counts[src].add(sample_counts(name, src, script, data, args.rate, pyspy, tmp))
            rows += [(name, src, times[src], counts[src]) for src in sources]
            print(f"{name}: done", file=sys.stderr, flush=True)
    print(report(rows, args))


if __name__ == "__main__":
    main()
