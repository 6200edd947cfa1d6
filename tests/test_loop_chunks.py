"""The compiled epoch loop returns to Python by elapsed wall time: where a call
stops never changes a bit, and a SIGINT during a long epoch is raised soon,
however many steps remain (issue 12 item 8)."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import nncore as nc
from nncore.backend import _epoch as E


def _compiled():
    pytest.importorskip("nncore._kernels")
    from nncore.backend import _cython
    from nncore import _kernels
    return _cython, _kernels


def _problem(n, d, h, k, batch, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    T = rng.integers(0, k, n).astype(np.int64)
    layers = [("dense", d, h, 1, 0), ("dense", h, k, 0, d * h + h)]
    P = d * h + h + h * k + k
    segs = np.array([[0, d * h], [d * h + h, d * h + h + h * k]], np.int64)
    params = (rng.normal(size=P) * 0.05).astype(np.float32)
    return X, T, rng.permutation(n), batch, params, layers, segs


def _epoch(C, prob, stop):
    X, T, order, batch, params0, layers, segs = prob
    params = params0.copy()
    grads = np.zeros_like(params)
    opt = nc.optim.Adam(1e-3, weight_decay=1e-4)
    opt.init(params)
    st = E.new_state(opt_step=0, counter=0, count=True)
    C.train_epoch(X, T, order, batch, stop, params, grads, layers, "cross_entropy", segs,
                  0.0, 1e-4, opt.fused_update(params), 3, st, {})
    return params, opt, st


def test_one_step_per_call_gives_the_same_bits():
    """With a zero time budget every call of the loop runs one step; the epoch's
    parameters, optimizer state and sums are those of the default budget."""
    C, K = _compiled()
    prob = _problem(96, 12, 16, 3, 4)
    whole = _epoch(C, prob, 24)
    old = K._set_chunk_seconds(0.0)
    try:
        stepped = _epoch(C, prob, 24)
    finally:
        K._set_chunk_seconds(old)
    np.testing.assert_array_equal(stepped[0], whole[0])
    for key in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_array_equal(stepped[1].state[key], whole[1].state[key])
    for key in ("step", "opt_step", "loss_sum", "correct", "loss"):
        assert stepped[2][key] == whole[2][key], key


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_sigint_mid_epoch_is_raised_soon():
    """A whole long epoch in one train_epoch call (tens of seconds of steps): a
    SIGINT half a second in is raised within a few seconds (generous bound on a
    shared machine), the state then matches a completed step, and that step
    count is less than the epoch."""
    C, K = _compiled()
    prob = _problem(60000, 128, 512, 10, 2, seed=1)
    X, T, order, batch, params0, layers, segs = prob
    params = params0.copy()
    grads = np.zeros_like(params)
    opt = nc.optim.Adam(1e-3)
    opt.init(params)
    st = E.new_state(opt_step=0, counter=0, count=False)
    n_steps = 60000 // batch
    sent = []

    def interrupt():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(0.5, interrupt)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            C.train_epoch(X, T, order, batch, n_steps, params, grads, layers, "cross_entropy",
                          segs, 0.0, 0.0, opt.fused_update(params), 3, st, {})
        landed = time.perf_counter()
    finally:
        timer.cancel()
    assert sent, "the epoch ended before the signal was sent"
    assert landed - sent[0] < 5.0
    assert 0 < st["step"] < n_steps
    assert st["opt_step"] == st["step"] and np.isfinite(params).all()
