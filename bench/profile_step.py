"""Where a training step's time goes: GEMM, optimizer update, finite check,
batch gather, elementwise code, Python between chunks.

Run::

    python bench/profile_step.py                     # every workload, 1 thread
    python bench/profile_step.py --threads 2 --only mnist32

Each workload trains in a child process under ``py-spy record --native``
(sampling at ``--rate`` Hz, native frames included, so OpenBLAS's kernels and
the compiled loop's C functions show by name); samples inside the epoch loop
are sorted by their innermost frame into the categories below, and the shares
are turned into microseconds per step with the child's own timing of the same
epochs. ``py-spy`` (``pip install py-spy``) needs permission to read the
child's memory (root, or ``ptrace_scope`` 0 on Linux).

Categories (the innermost frame; a libc frame counts for its caller):

* ``gemm``: OpenBLAS (``*gemm*``, its packing ``*copy*`` and ``beta`` scaling);
* ``update``: the optimizer kernels (``nnc_adam_*``, ``_tl_adam``,
  ``_tl_sgd``...), with the parameter backup they write;
* ``finite check``: the per-step parameter check (``_tl_all_finite``);
* ``gather``: copying the batch's rows (``_tl_gather``);
* ``elementwise``: every other compiled frame of nncore (bias, activation
  and its derivative, loss, dropout, loop bookkeeping);
* ``python``: Python frames (the loop returns to Python between chunks);
* ``other``: anything else (libm, the OpenMP runtime, ...).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile

CHILD = r"""
import sys, time
import numpy as np
import nncore as nc
sizes, act, loss, opt, lr, batch, rows, epochs, threads = sys.argv[1:10]
sizes = [int(s) for s in sizes.split(",")]
rows, batch, epochs, threads = int(rows), int(batch), int(epochs), int(threads)
rng = np.random.default_rng(0)
X = rng.random((rows, sizes[0]), dtype=np.float32)
y = (rng.integers(0, sizes[-1], rows) if loss == "cross_entropy"
     else rng.standard_normal((rows, sizes[-1])).astype(np.float32))
layers = [nc.Dense(a, b, act) for a, b in zip(sizes[:-2], sizes[1:-1])]
layers.append(nc.Dense(sizes[-2], sizes[-1]))
net = nc.Network(layers, loss=loss, dtype="float32", seed=0)
nc.set_num_threads(threads)
t0 = time.perf_counter()
net.fit(X, y, optimizer=nc.optim.get(opt, lr=float(lr)), batch_size=batch, epochs=epochs,
        progress=False, seed=0)
print("SECONDS", time.perf_counter() - t0)
"""

# name: (sizes, activation, loss, optimizer, lr, batch, rows per epoch, epochs)
WORKLOADS = {
    "tiny1": ("2,16,16,1", "tanh", "mse", "sgd", 0.01, 1, 20000, 5),
    "mnist1": ("784,256,256,10", "relu", "cross_entropy", "adam", 1e-3, 1, 1500, 2),
    "mnist32": ("784,256,256,10", "relu", "cross_entropy", "adam", 1e-3, 32, 12000, 2),
    "mnist128": ("784,256,256,10", "relu", "cross_entropy", "adam", 1e-3, 128, 24000, 2),
}
CATEGORIES = ("gemm", "update", "finite check", "gather", "elementwise", "python", "other")


def classify(frames):
    """The category of one sample's stack (innermost frame last)."""
    leaf = frames[-1]
    if "(libc.so" in leaf and len(frames) > 1:
        leaf = frames[-2]                  # memcpy/memset count for their caller
    if "openblas" in leaf.lower():
        return "gemm"
    if "_tl_all_finite" in leaf:
        return "finite check"
    if "_tl_gather" in leaf:
        return "gather"
    if any(k in leaf for k in ("nnc_adam", "_tl_adam", "_tl_sgd", "_tl_adagrad", "_tl_rmsprop",
                               "_tl_update")):
        return "update"
    if "_train_loop.pxi" in leaf or "_kernels.pyx" in leaf or "_kernels" in leaf:
        return "elementwise"
    if ".py:" in leaf:
        return "python"
    return "other"


def profile(name, threads, rate, pyspy):
    sizes, act, loss, opt, lr, batch, rows, epochs = WORKLOADS[name]
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.txt")
        script = os.path.join(tmp, "child.py")
        with open(script, "w") as f:
            f.write(CHILD)
        cmd = [pyspy, "record", "--native", "--rate", str(rate), "--format", "raw", "-o", raw,
               "--", sys.executable, script, sizes, act, loss, opt, str(lr), str(batch),
               str(rows), str(epochs), str(threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        seconds = float(next(line.split()[1] for line in out.stdout.splitlines()
                             if line.startswith("SECONDS ")))
        counts = collections.Counter()
        with open(raw) as f:
            for line in f:
                stack, _, n = line.rstrip("\n").rpartition(" ")
                frames = stack.split(";")
                if any("train_epoch" in fr or "fit" in fr for fr in frames):
                    counts[classify(frames)] += int(n)
    steps = epochs * -(-rows // batch)
    return seconds / steps, counts


def report(rows, threads, rate):
    lines = [f"Command: `python bench/profile_step.py {' '.join(sys.argv[1:])}`".rstrip(),
             f"(py-spy --native at {rate} Hz, {threads} thread(s); µs per step and share "
             "of the samples inside fit)", "",
             "| workload | µs/step | " + " | ".join(CATEGORIES) + " |",
             "|---|---|" + "---|" * len(CATEGORIES)]
    for name, per_step, counts in rows:
        total = sum(counts.values()) or 1
        cells = [f"{per_step * 1e6 * counts[c] / total:.1f} ({100 * counts[c] / total:.0f} %)"
                 for c in CATEGORIES]
        lines.append(f"| {name} | {per_step * 1e6:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rate", type=int, default=500, help="samples per second")
    ap.add_argument("--only", nargs="*", choices=list(WORKLOADS), default=list(WORKLOADS))
    args = ap.parse_args(argv)
    pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(pyspy):
        sys.exit("bench/profile_step.py needs py-spy: pip install py-spy")
    rows = [(name, *profile(name, args.threads, args.rate, pyspy)) for name in args.only]
    print(report(rows, args.threads, args.rate))


if __name__ == "__main__":
    main()
