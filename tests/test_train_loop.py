"""The compiled epoch loop (backend.train_epoch) against the Python-orchestrated path.

Truth here is the Python step loop: ``nncore.backend._epoch.reference_epoch``
(``step_loop`` over the compiled kernels with the optimizer's own ``step``, the
exact sequence of calls ``fit`` makes per step) and ``fit`` itself with the
epoch loop switched off. The compiled loop, running the optimizer's lowering
(``fused_update``), must give *bit-identical* parameters, optimizer state,
dropout counter and losses, for every optimizer x batch mode x dtype x dropout
x clipping x regulariser; the step loop over the NumPy backend must agree to
rounding. Also: divergence mid-epoch, Ctrl-C between
chunks and epochs, and fit's memory on top of the training set.
"""

import math
import os
import signal
import threading
import time
import tracemalloc

import numpy as np
import pytest

import nncore as nc
import nncore.backend as B
import nncore.training as training
from nncore.backend import _epoch as E
from nncore.backend import _numpy as R


def _compiled():
    try:
        return B._load("cython")
    except ImportError:
        pytest.skip("compiled backend not built")


# --------------------------------------------------------------------------- backend level

# optimizer factories: clip_norm -> optimizer
O = nc.optim
OPTS = {
    "sgd": lambda c: O.SGD(0.05, clip_norm=c),
    "sgd_wd": lambda c: O.SGD(0.05, weight_decay=0.1, clip_norm=c),
    "momentum": lambda c: O.SGD(0.05, momentum=0.9, dampening=0.2, clip_norm=c),
    "nesterov": lambda c: O.SGD(0.05, momentum=0.8, nesterov=True, clip_norm=c),
    "adagrad": lambda c: O.Adagrad(0.1, lr_decay=0.01, eps=1e-10, clip_norm=c),
    "adagrad_in_wd": lambda c: O.Adagrad(0.1, eps_inside_sqrt=True, eps=1e-6, weight_decay=0.01,
                                         clip_norm=c),
    "rmsprop": lambda c: O.RMSprop(0.01, alpha=0.9, clip_norm=c),
    "rmsprop_in": lambda c: O.RMSprop(0.01, eps_inside_sqrt=True, clip_norm=c),
    "adam": lambda c: O.Adam(0.01, clip_norm=c),
    "adam_in_wd": lambda c: O.Adam(0.01, eps_inside_sqrt=True, weight_decay=0.05, clip_norm=c),
    "adam_b1small": lambda c: O.Adam(0.01, betas=(0.3, 0.99), clip_norm=c),
    "adamw": lambda c: O.AdamW(0.01, weight_decay=0.1, clip_norm=c),
}

# (n, batch, stop-or-None, loss, layers, reg): batch 1, k, last batch smaller, one batch
ACTS = [0, 1, 2, 3, 4]
CASES = [
    (11, 1, None, "mse", "plain", (0.0, 0.0)),
    (13, 4, None, "cross_entropy", "dropout", (1e-3, 0.0)),
    (13, 5, None, "cross_entropy_prob", "input_dropout", (0.0, 1e-2)),
    (9, 9, None, "binary_cross_entropy", "output_dropout", (1e-3, 1e-2)),
    (17, 3, 4, "cross_entropy", "plain", (1e-3, 1e-2)),
]


def _layers(kind, d, h, k):
    """Layer tuples and the parameter count for a d-h-h-k net (acts cycle)."""
    dense = [(d, h, 4), (h, h, 1), (h, k, 0)]
    if kind == "plain":
        dense = [(d, h, 3), (h, h, 2), (h, k, 0)]
    out, off = [], 0
    if kind == "input_dropout":
        out.append(("dropout", d, 0.2))
    for i, (a, b, act) in enumerate(dense):
        out.append(("dense", a, b, act, off))
        off += a * b + b
        if kind == "dropout" and i == 0:
            out.append(("dropout", b, 0.4))
    if kind == "output_dropout":
        out.append(("dropout", k, 0.3))
    segs = [(lay[4], lay[4] + lay[1] * lay[2]) for lay in out if lay[0] == "dense"]
    return out, off, np.array(segs, np.int64)


def _problem(case, dtype, xdtype, seed=0):
    n, batch, stop, loss, kind, (l1, l2) = case
    rng = np.random.default_rng(seed)
    d, h, k = 3, 5, 4 if loss != "mse" else 2
    layers, P, segs = _layers(kind, d, h, k)
    X = rng.normal(size=(n, d)).astype(xdtype)
    if loss == "cross_entropy":
        T = rng.integers(0, k, n)
    elif loss == "cross_entropy_prob":
        T = rng.random((n, k)).astype(dtype)
        T /= T.sum(axis=1, keepdims=True)
        loss = "cross_entropy"
    elif loss == "binary_cross_entropy":
        T = rng.random((n, k)).astype(np.float64)     # float64 targets into any net
    else:
        T = rng.normal(size=(n, k)).astype(xdtype)
    params = (rng.normal(size=P) * 0.6).astype(dtype)
    order = rng.permutation(n)
    stop = stop if stop is not None else -(-n // batch)
    return X, T, order, batch, stop, params, layers, loss, segs, l1, l2


def _run(fn, prob, opt, clip, seed=7, chunks=None, be=None, state=None):
    """``fn`` is the compiled ``train_epoch`` (given the optimizer's lowering) or, with
    ``be``, ``reference_epoch`` over backend ``be`` (given the optimizer itself)."""
    X, T, order, batch, stop, params0, layers, loss, segs, l1, l2 = prob
    params = params0.copy()
    grads = np.zeros_like(params)
    optimizer = opt(clip)
    spec = optimizer.fused_update(params) if be is None else optimizer
    optimizer.init(params)
    bufs = tuple(optimizer.state[name] for name in optimizer._buffers)
    st = state if state is not None else E.new_state(opt_step=0, counter=5, count=True)
    ws = {}
    stops = chunks or [stop]
    for s in stops:
        args = (X, T, order, batch, s, params, grads, layers, loss, segs, l1, l2, spec, seed, st, ws)
        if be is None:
            fn(*args)
        else:
            fn(be, *args)
    return params, grads, bufs, st, ws


def _numpy_twin(prob, opt, clip, **kw):
    """reference_epoch over the NumPy backend (the optimizer steps on it too)."""
    old = B.get_backend()
    B.set_backend("numpy")
    try:
        return _run(E.reference_epoch, prob, opt, clip, be=R, **kw)
    finally:
        B.set_backend(old)


def _assert_same(a, b):
    pa, ga, ba, sa, wa = a
    pb, gb, bb, sb, wb = b
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(ga, gb)
    for x, y in zip(ba, bb):
        np.testing.assert_array_equal(x, y)
    assert sa == sb
    np.testing.assert_array_equal(wa["backup"], wb["backup"])


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    saved = nc.get_num_threads()
    nc.set_num_threads(request.param)
    yield request.param
    nc.set_num_threads(saved)


@pytest.mark.parametrize("clip", [None, 0.5])
@pytest.mark.parametrize("opt", list(OPTS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_loop_bitwise_equals_reference(dtype, opt, clip, threads):
    C = _compiled()
    for i, case in enumerate(CASES):
        for xdtype in ((dtype,) if i % 2 else ("float32", "float64")):
            prob = _problem(case, dtype, xdtype, seed=i)
            got = _run(C.train_epoch, prob, OPTS[opt], clip)
            ref = _run(E.reference_epoch, prob, OPTS[opt], clip, be=C)
            _assert_same(got, ref)
            st = got[3]
            assert st["step"] == prob[4] and st["opt_step"] == prob[4] and not st["diverged"]
            assert (st["grad_norm"] is not None) == (clip is not None)
            # and the step loop over the NumPy backend agrees to rounding
            twin = _numpy_twin(prob, OPTS[opt], clip)
            tol = 1e-10 if dtype == "float64" else 2e-4
            np.testing.assert_allclose(twin[0], got[0], rtol=tol, atol=tol)
            assert twin[3]["counter"] == st["counter"] and twin[3]["correct"] == st["correct"]
            assert twin[3]["loss_sum"] == pytest.approx(st["loss_sum"], rel=tol)


def test_chunked_calls_equal_one_call():
    C = _compiled()
    case = (23, 2, None, "cross_entropy", "dropout", (1e-3, 1e-3))
    prob = _problem(case, "float32", "float64")
    one = _run(C.train_epoch, prob, OPTS["adam"], 1.0)
    pieces = _run(C.train_epoch, prob, OPTS["adam"], 1.0, chunks=[0, 1, 5, 5, 11, 12])
    _assert_same(one, pieces)


def test_state_and_validation():
    C = _compiled()
    prob = _problem(CASES[1], "float64", "float64")
    X, T, order, batch, stop, params, layers, loss, segs, l1, l2 = prob
    spec = E.FusedUpdate("adam", nc.optim.Adam(0.01).fused_update(params).hyper,
                         (np.zeros_like(params), np.zeros_like(params)))
    good = dict(X=X, T=T, order=order, batch_size=batch, stop=stop, params=params.copy(),
                grads=np.zeros_like(params), layers=layers, loss=loss, segments=segs, l1=l1,
                l2=l2, optimizer=spec, drop_seed=1, state=E.new_state(), workspace={})
    bad = [
        ("order", np.where(order == 0, len(order), order), ValueError),
        ("order", order.astype(np.int32), TypeError),
        ("T", np.where(T == T[0], 99, T), ValueError),
        ("stop", stop + 1, ValueError),
        ("layers", [("dense", 3, 5, 1, 10**6)], ValueError),
        ("layers", [("conv", 3)], ValueError),
        ("layers", [("dense", 4, 5, 1, 0)], ValueError),
        ("optimizer", spec._replace(kind="lion"), ValueError),
        ("optimizer", spec._replace(buffers=()), ValueError),
        ("optimizer", spec._replace(buffers=(params, params)), ValueError),
        ("optimizer", spec._replace(hyper=dict(spec.hyper, momentum=0.9)), ValueError),
        ("optimizer", {"name": "adam", "lr": 0.01}, TypeError),
        ("state", {"step": 0}, ValueError),
        ("grads", np.zeros(3), ValueError),
        ("params", params.astype(np.float32), TypeError),
        ("batch_size", 0, ValueError),
        ("loss", "hinge", ValueError),
    ]
    # the compiled loop, and the step loop over the NumPy backend (given an optimizer)
    reference = lambda optimizer, **kw: E.reference_epoch(R, optimizer=nc.optim.Adam(0.01), **kw)
    for train_epoch in (C.train_epoch, reference):
        for key, value, exc in bad:
            if train_epoch is reference and key == "optimizer":
                continue
            args = dict(good, params=good["params"].copy(), state=E.new_state())
            before = args["params"].copy()
            args[key] = value
            with pytest.raises(exc):
                train_epoch(**args)
            if key != "params":
                np.testing.assert_array_equal(args["params"], before)
            if key != "state":
                assert args["state"] == E.new_state()


# --------------------------------------------------------------------------- divergence

def test_divergence_mid_epoch_stops_before_the_step():
    C = _compiled()
    rng = np.random.default_rng(1)
    n = 40
    X = rng.normal(size=(n, 3)) * 30
    T = rng.normal(size=(n, 1)) * 30
    layers = [("dense", 3, 8, 1, 0), ("dense", 8, 1, 0, 32)]
    segs = np.array([[0, 24], [32, 40]], np.int64)
    p0 = rng.normal(size=41) * 0.5
    outs = []
    for fn, be in ((C.train_epoch, None), (E.reference_epoch, C), (E.reference_epoch, R)):
        params, grads = p0.copy(), np.zeros(41)
        st, ws = E.new_state(), {}
        opt = nc.optim.SGD(1.0)
        spec = opt.fused_update(params) if be is None else opt
        args = (X, T, np.arange(n), 4, 10, params, grads, layers, "mse", segs, 0.0, 0.0,
                spec, 0, st, ws)
        old = B.get_backend()
        B.set_backend("numpy" if be is R else "cython")
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                fn(*args) if be is None else fn(be, *args)
        finally:
            B.set_backend(old)
        outs.append((params, st, ws))
    params, st, ws = outs[0]
    assert st["diverged"] and 0 < st["step"] < 10 and not math.isfinite(st["loss"])
    assert st["opt_step"] == st["step"]
    np.testing.assert_array_equal(params, outs[1][0])
    assert st == outs[1][1]
    np.testing.assert_array_equal(ws["backup"], outs[1][2]["backup"])
    assert outs[2][1]["step"] == st["step"]


# An update whose result is inf/NaN in exactly one parameter: that weight is
# huge (its input column is zero, so the loss stays finite) and the coupled
# decay makes its update gradient inf. Every rule the loop runs, the weight in
# the first, a middle or the last chunk of a vector long enough to be split
# over threads when BLAS shares the loop's thread team.
OVERFLOW_OPTS = {
    "sgd": lambda: nc.optim.SGD(0.01, weight_decay=10.0),
    "momentum": lambda: nc.optim.SGD(0.01, momentum=0.9, weight_decay=10.0),
    "adagrad": lambda: nc.optim.Adagrad(0.01, weight_decay=10.0),
    "rmsprop": lambda: nc.optim.RMSprop(0.01, weight_decay=10.0),
    "adam": lambda: nc.optim.Adam(0.01, weight_decay=10.0),
    "adamw_decay_overflows": lambda: nc.optim.AdamW(1.0, weight_decay=3.0),
}


@pytest.mark.parametrize("where", [0, 0.55, -1])
@pytest.mark.parametrize("opt", sorted(OVERFLOW_OPTS))
def test_update_overflow_in_one_parameter_every_rule(threads, opt, where):
    """The loop's update reports a non-finite parameter wherever it is (each
    thread checks the chunk it wrote): it stops at that step like the per-step
    path, with the same parameters, state and backup (the parameters before
    the step)."""
    C = _compiled()
    rng = np.random.default_rng(3)
    n, d = 8, 70_000
    j = int(where * d) if where >= 0 else d - 1
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, j] = 0.0
    T = rng.normal(size=(n, 1)).astype(np.float32)
    p0 = (rng.normal(size=d + 1) * 1e-3).astype(np.float32)
    p0[j] = 3e38
    layers = [("dense", d, 1, 0, 0)]
    segs = np.zeros((0, 2), np.int64)
    outs = []
    for be in (None, C):
        params, grads = p0.copy(), np.zeros_like(p0)
        st, ws = E.new_state(), {}
        optimizer = OVERFLOW_OPTS[opt]()
        optimizer.init(params)
        spec = optimizer.fused_update(params) if be is None else optimizer
        args = (X, T, np.arange(n), 4, 2, params, grads, layers, "mse", segs, 0.0, 0.0,
                spec, 0, st, ws)
        with np.errstate(over="ignore", invalid="ignore"):
            C.train_epoch(*args) if be is None else E.reference_epoch(be, *args)
        outs.append((params, st, ws))
    (params, st, ws), (ref_params, ref_st, ref_ws) = outs
    assert st["diverged"] and st["step"] == 0 and math.isfinite(st["loss"])
    assert not np.isfinite(params[j]) and np.isfinite(np.delete(params, j)).all()
    assert st == ref_st
    np.testing.assert_array_equal(params, ref_params)
    np.testing.assert_array_equal(ws["backup"], p0)
    np.testing.assert_array_equal(ref_ws["backup"], p0)


@pytest.mark.parametrize("lr", [5.0, 1e30])
def test_fit_divergence_same_as_per_step_path(monkeypatch, lr):
    """lr=5 blows up the loss; lr=1e30 makes an update produce inf weights, which
    both paths undo (the network keeps the last finite parameters)."""
    _compiled()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)) * 10
    y = rng.normal(size=(64, 1)) * 10
    res = []
    for loop in (True, False):
        monkeypatch.setattr(training, "_EPOCH_LOOP", loop)
        net = nc.Network([nc.Dense(3, 8, "relu"), nc.Dense(8, 1)], seed=0, dtype="float32")
        opt = nc.optim.SGD(lr)
        with pytest.raises(nc.DivergenceError) as info:
            net.fit(X, y, optimizer=opt, batch_size=8, epochs=50, progress=False, seed=0)
        res.append((net.params.copy(), info.value.epoch, info.value.step, opt.iterations,
                    net.history_.history.get("loss")))
        assert np.isfinite(net.params).all()
    np.testing.assert_array_equal(res[0][0], res[1][0])
    assert res[0][1:] == res[1][1:]


# --------------------------------------------------------------------------- fit level

def _clf(dtype="float32", dropout=0.3, reg=None, loss="cross_entropy", k=3):
    layers = [nc.Dense(4, 6, "tanh")]
    if dropout:
        layers.append(nc.Dropout(dropout))
    layers += [nc.Dense(6, 5, "leaky_relu"), nc.Dense(5, k)]
    return nc.Network(layers, loss=loss, regularizer=reg, dtype=dtype, seed=3)


def _fit_both(monkeypatch, make_net, make_opt, X, y, **kw):
    out = []
    for loop in (True, False):
        monkeypatch.setattr(training, "_EPOCH_LOOP", loop)
        net, opt = make_net(), make_opt()
        h = net.fit(X, y, optimizer=opt, progress=False, **kw)
        hist = {k: v for k, v in h.history.items() if k != "time"}
        out.append((net, opt, hist))
    return out


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
                                  "adamw"])
def test_fit_epoch_loop_equals_per_step_fit(backend, monkeypatch, name):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(37, 4))
    y = rng.integers(0, 3, 37)
    Xv, yv = rng.normal(size=(9, 4)), rng.integers(0, 3, 9)
    sched = nc.schedules.StepDecay(0.05, step_size=2, gamma=0.5)
    make_opt = {
        "sgd": lambda: nc.optim.SGD(sched, clip_norm=0.5),
        "momentum": lambda: nc.optim.SGD(0.05, momentum=0.9, weight_decay=1e-3),
        "nesterov": lambda: nc.optim.SGD(0.05, momentum=0.9, nesterov=True),
        "adagrad": lambda: nc.optim.Adagrad(0.1, lr_decay=0.01, initial_accumulator_value=0.1),
        "rmsprop": lambda: nc.optim.RMSprop(0.01, clip_norm=1.0),
        "adam": lambda: nc.optim.Adam(sched, eps_inside_sqrt=True),
        "adamw": lambda: nc.optim.AdamW(0.01, weight_decay=0.1, clip_norm=2.0),
    }[name]
    for dtype in ("float32", "float64"):
        for batch in (1, 5):
            (a, oa, ha), (b, ob, hb) = _fit_both(
                monkeypatch, lambda: _clf(dtype, reg=nc.ElasticNet(1e-3, 1e-2)), make_opt, X, y,
                batch_size=batch, epochs=4, seed=5, validation_data=(Xv, yv))
            np.testing.assert_array_equal(a.params, b.params)
            assert ha == hb
            assert oa.iterations == ob.iterations == 4 * -(-37 // batch)
            for key in oa.state:
                if key != "step":
                    np.testing.assert_array_equal(oa.state[key], ob.state[key])
            assert oa.grad_norm == ob.grad_norm
            np.testing.assert_array_equal(a.grads, b.grads)


@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy", "cross_entropy_prob"])
def test_fit_epoch_loop_other_losses(monkeypatch, loss):
    _compiled()
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    if loss == "mse":
        y = rng.normal(size=30)                   # float64 targets, float32 net
        k = 1
    elif loss == "binary_cross_entropy":
        y = (rng.random((30, 2)) > 0.5).astype(np.float64)
        k = 2
    else:
        y = rng.random((30, 3))
        y /= y.sum(axis=1, keepdims=True)
        loss, k = "cross_entropy", 3
    (a, _, ha), (b, _, hb) = _fit_both(
        monkeypatch, lambda: _clf("float32", dropout=0.2, loss=loss, k=k),
        lambda: nc.optim.Adam(0.01), X, y, batch_size=4, epochs=3, seed=1)
    np.testing.assert_array_equal(a.params, b.params)
    assert ha == hb


def test_fit_uses_the_loop_only_when_it_can(monkeypatch):
    calls = []
    real = training._backend.current

    class Spy:
        def __init__(self, be):
            self.be = be

        def __getattr__(self, name):
            if name == "train_epoch":
                calls.append(name)
            return getattr(self.be, name)

    monkeypatch.setattr(training._backend, "current", lambda: Spy(real()))
    X, y = np.random.default_rng(0).normal(size=(20, 4)), np.arange(20) % 3

    def fit(**kw):
        calls.clear()
        _clf().fit(X, y, epochs=2, progress=False, **kw)
        return len(calls)

    assert fit(batch_size=4) == 2
    assert fit(batch_size=4, callbacks=[nc.callbacks.EarlyStopping(monitor="loss")]) == 2
    assert fit(batch_size="full") == 0
    assert fit(batch_size=4, augment=nc.augment.GaussianNoise(0.1)) == 0
    assert fit(batch_size=4, callbacks=[nc.callbacks.LambdaCallback(
        on_batch_end=lambda b, logs: None)]) == 0

    class MySGD(nc.optim.SGD):
        pass
    assert fit(batch_size=4, optimizer=MySGD(0.1)) == 0


# --------------------------------------------------------------------------- Ctrl-C

def test_ctrl_c_between_chunks_keeps_a_completed_step(monkeypatch, backend):
    """A KeyboardInterrupt that arrives while a chunk runs is raised when it
    returns: the network holds that chunk's last step and the optimizer's step
    count matches it; the per-step path interrupted after as many steps agrees."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 4))
    y = rng.integers(0, 3, 40)
    if not backend.FUSED_LOOP:
        pytest.skip("the NumPy backend has no compiled epoch loop to interrupt")
    monkeypatch.setattr(training, "_CHUNK_WORK", 1)        # 16 steps per chunk
    real = backend.train_epoch
    n_calls = []

    def interrupted(*args):
        real(*args)
        n_calls.append(1)
        if len(n_calls) == 5:
            raise KeyboardInterrupt                      # as a signal would, on return

    monkeypatch.setattr(backend, "train_epoch", interrupted)
    net, opt = _clf(), nc.optim.Adam(0.01)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, optimizer=opt, batch_size=1, epochs=5, progress=False, seed=2)
    done = opt.iterations
    assert done == 16 + 16 + 8 + 16 + 16                # chunks of 16 over 40-step epochs
    assert net.history_.epoch == [0] and net.history_.stop_reason == "interrupted"
    monkeypatch.setattr(backend, "train_epoch", real)

    class StopAt(nc.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if self.optimizer.iterations == done:
                raise KeyboardInterrupt

    ref, ropt = _clf(), nc.optim.Adam(0.01)
    with pytest.raises(KeyboardInterrupt):
        ref.fit(X, y, optimizer=ropt, batch_size=1, epochs=5, progress=False, seed=2,
                callbacks=[StopAt()])
    np.testing.assert_array_equal(net.params, ref.params)
    for key in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_array_equal(opt.state[key], ropt.state[key])


def test_ctrl_c_at_epoch_end_keeps_the_epoch(monkeypatch):
    _compiled()
    X = np.random.default_rng(5).normal(size=(30, 4))
    y = np.arange(30) % 3

    class CtrlC(nc.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.snapshot = self.model.params.copy()
            if epoch == 1:
                raise KeyboardInterrupt

    net, cb = _clf(), CtrlC()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, batch_size=4, epochs=5, callbacks=[cb], progress=False, seed=0)
    np.testing.assert_array_equal(net.params, cb.snapshot)
    assert net.history_.epoch == [0, 1] and net.history_.stop_reason == "interrupted"


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_real_sigint_during_the_compiled_loop(monkeypatch):
    """SIGINT while the GIL is released: fit stops at a completed step."""
    _compiled()
    rng = np.random.default_rng(6)
    X = rng.normal(size=(4000, 16)).astype(np.float32)
    y = rng.integers(0, 4, 4000)
    net = nc.Network([nc.Dense(16, 64, "relu"), nc.Dense(64, 4)], loss="cross_entropy", seed=0)
    opt = nc.optim.SGD(0.01, momentum=0.9)
    monkeypatch.setattr(training, "_CHUNK_WORK", 16 * 1400 * 50)   # ~50 steps per chunk
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            net.fit(X, y, optimizer=opt, batch_size=16, epochs=10**6, progress=False, seed=0)
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 10
    assert net.history_.stop_reason == "interrupted"
    done = opt.iterations
    assert done > 0 and np.isfinite(net.params).all()
    # the same run, stopped after `done` steps, from the per-step path
    monkeypatch.setattr(training, "_EPOCH_LOOP", False)

    class StopAt(nc.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if self.optimizer.iterations == done:
                raise KeyboardInterrupt

    ref = nc.Network([nc.Dense(16, 64, "relu"), nc.Dense(64, 4)], loss="cross_entropy", seed=0)
    ropt = nc.optim.SGD(0.01, momentum=0.9)
    with pytest.raises(KeyboardInterrupt):
        ref.fit(X, y, optimizer=ropt, batch_size=16, epochs=10**6, progress=False, seed=0,
                callbacks=[StopAt()])
    np.testing.assert_array_equal(net.params, ref.params)


# --------------------------------------------------------------------------- memory

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_memory_on_top_of_the_training_set(dtype):
    """Peak allocation of fit <= 0.15x the training set (no copy of X per epoch
    or for validation; float64 X into a float32 net is converted per batch)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30000, 64))                  # 15.4 MB float64
    y = rng.integers(0, 10, 30000)
    Xv, yv = X[:3000], y[:3000]
    net = nc.Network([nc.Dense(64, 32, "relu"), nc.Dropout(0.2), nc.Dense(32, 10)],
                     loss="cross_entropy", regularizer=nc.L2(1e-4), dtype=dtype, seed=0)
    net.fit(X[:100], y[:100], epochs=1, progress=False)    # warm imports and caches
    tracemalloc.start()
    net.fit(X, y, batch_size=64, epochs=2, validation_data=(Xv, yv), progress=False, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= 0.15 * X.nbytes, f"fit allocated {peak / X.nbytes:.3f}x the training set"


@pytest.fixture
def two_threads():
    """nncore's OpenMP loops and every BLAS pool on 2 threads, restored after."""
    saved = nc.get_num_threads()
    nc.set_num_threads(2)
    yield
    nc.set_num_threads(saved)


def _scipy_openblas_version():
    from threadpoolctl import threadpool_info
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS)
    for pool in threadpool_info():
        path = pool.get("filepath", "")
        if pool.get("internal_api") == "openblas" and "scipy_openblas" in path \
                and "openblas64_" not in path:
            return tuple(int(x) for x in pool.get("version", "0.0.0").split(".")[:3])
    return None


@pytest.fixture
def shared_pool(two_threads, gemm_library):
    """The compiled kernels where the epoch loop shares its OpenMP team with
    BLAS; skipped only where that cannot apply (an OpenBLAS before 0.3.27, no
    OpenMP, OMP_DYNAMIC / OMP_THREAD_LIMIT), so a broken hook lookup fails."""
    _compiled()
    from nncore import _kernels as K
    if K.gemm_library() == "mkl":
        pytest.skip("the GEMMs run on MKL (NNCORE_GEMM): OpenBLAS's hook has no jobs")
    if not K.blas_shared_pool():
        version = _scipy_openblas_version()
        assert not (K.OPENMP and version is not None and version >= (0, 3, 27)
                    and not os.environ.get("OMP_THREAD_LIMIT")
                    and not os.environ.get("OMP_DYNAMIC")), \
            f"SciPy's OpenBLAS {version} has the threads hook, but nncore did not find it"
        pytest.skip("no shared BLAS/OpenMP pool here")
    # The per-layer path, whose GEMMs OpenBLAS splits over the pool: the 2-thread
    # task step (_dense_tasks.pxi) makes single-threaded BLAS calls and hands the
    # pool no jobs, and while one fit runs it another fit's GEMMs may run on one
    # thread, so whether the pool served any job would depend on timing.
    # The float32 GEMMs on OpenBLAS too (not the own kernel, the default with
    # AVX-512), so they are OpenBLAS jobs the hook can hand to the pool.
    gemm_library("scipy")
    old = K._set_dense_tasks(False)
    yield K
    K._set_dense_tasks(old)


def _mnist_net(seed, hidden=(256, 256)):
    sizes = (784,) + hidden
    layers = [nc.Dense(a, b, "relu") for a, b in zip(sizes, sizes[1:])]
    return nc.Network(layers + [nc.Dense(sizes[-1], 10)], loss="cross_entropy", seed=seed)


def test_large_update_split_over_threads_same_bits(two_threads):
    """A network big enough for the loop's OpenMP update (>= 4M parameters) on
    2 threads gives the per-step path's bits (the split never changes a value)."""
    C = _compiled()
    rng = np.random.default_rng(8)
    n, d, h = 6, 2048, 2048
    X = rng.normal(size=(n, d)).astype(np.float32)
    T = rng.normal(size=(n, 1)).astype(np.float32)
    layers = [("dense", d, h, 4, 0), ("dense", h, 1, 0, d * h + h)]
    P = d * h + h + h + 1
    segs = np.array([[0, d * h], [d * h + h, d * h + 2 * h]], np.int64)
    params = (rng.normal(size=P) * 0.02).astype(np.float32)
    prob = (X, T, np.arange(n), 2, 3, params, layers, "mse", segs, 0.0, 1e-4)
    got = _run(C.train_epoch, prob, OPTS["adamw"], 1.0)
    ref = _run(E.reference_epoch, prob, OPTS["adamw"], 1.0, be=C)
    _assert_same(got, ref)


@pytest.mark.parametrize("opt", ["adam", "momentum", "rmsprop"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shared_blas_pool_same_bits(shared_pool, dtype, opt):
    """On 2 threads the loop hands OpenBLAS's parallel jobs to its own OpenMP
    team (one pool for BLAS and the update); parameters, state and losses are
    the bits of the per-step path, which runs BLAS on OpenBLAS's own threads,
    and of the loop with the shared pool switched off."""
    C, K = _compiled(), shared_pool
    rng = np.random.default_rng(11)
    n, d, h, k = 160, 784, 256, 10        # the MNIST-shaped GEMMs OpenBLAS threads
    X = rng.random((n, d)).astype(np.float32)
    T = rng.integers(0, k, n).astype(np.int64)
    layers = [("dense", d, h, 1, 0), ("dense", h, h, 1, d * h + h),
              ("dense", h, k, 0, d * h + h + h * h + h)]
    P = d * h + h + h * h + h + h * k + k
    segs = np.array([[0, d * h], [d * h + h, d * h + h + h * h],
                     [d * h + h + h * h + h, P - k]], np.int64)
    params = (rng.normal(size=P) * 0.05).astype(dtype)
    prob = (X, T, rng.permutation(n), 32, 5, params, layers, "cross_entropy", segs, 0.0, 1e-4)
    calls = K._blas_shared_pool_calls()
    got = _run(C.train_epoch, prob, OPTS[opt], 1.0)
    used = K._blas_shared_pool_calls() - calls
    old = K._set_blas_shared_pool(False)
    try:
        own = _run(C.train_epoch, prob, OPTS[opt], 1.0)
    finally:
        K._set_blas_shared_pool(old)
    ref = _run(E.reference_epoch, prob, OPTS[opt], 1.0, be=C)
    assert used > 0, "no BLAS call ran on the shared pool"
    _assert_same(got, ref)
    _assert_same(own, ref)


def test_shared_blas_pool_fits_in_threads_match_serial(shared_pool):
    """Fits in three Python threads at once (each epoch loop handing BLAS jobs
    to OpenMP teams) give exactly the parameters of the same fits run one by
    one: concurrent BLAS calls through the shared pool do not share buffers."""
    K = shared_pool
    rng = np.random.default_rng(3)
    X = rng.random((640, 784), dtype=np.float32)
    y = rng.integers(0, 10, 640)

    def train(seed, out):
        net = _mnist_net(seed)
        net.fit(X, y, optimizer=nc.optim.Adam(1e-3), batch_size=32, epochs=2,
                progress=False, seed=seed)
        out[seed] = net.params.copy()

    calls = K._blas_shared_pool_calls()
    serial, threaded = {}, {}
    for s in range(3):
        train(s, serial)
    ts = [threading.Thread(target=train, args=(s, threaded)) for s in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert K._blas_shared_pool_calls() > calls
    for s in range(3):
        np.testing.assert_array_equal(threaded[s], serial[s])


def test_shared_blas_pool_serves_scipy_after_fit(shared_pool):
    """The hook stays after the loop: SciPy's own multi-threaded BLAS calls then
    run on nncore's OpenMP team and still compute the right products."""
    from scipy.linalg import blas
    K = shared_pool
    rng = np.random.default_rng(5)
    X = rng.random((256, 784), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    _mnist_net(0, hidden=(256,)).fit(X, y, optimizer=nc.optim.Adam(1e-3), batch_size=32,
                                     epochs=1, progress=False)
    A = np.asfortranarray(rng.standard_normal((400, 300)))
    B = np.asfortranarray(rng.standard_normal((300, 500)))
    calls = K._blas_shared_pool_calls()
    C = blas.dgemm(1.0, A, B)       # BLAS is on 2 threads (set_num_threads caps every pool)
    assert K._blas_shared_pool_calls() - calls > 0
    np.testing.assert_allclose(C, A @ B, rtol=1e-12, atol=1e-10)


# --------------------------------------------------------------------------- divergence on the last step

def _overflow_data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)) * 5, rng.normal(size=n) * 10


def _overflow_net(dtype="float32"):
    return nc.Network([nc.Dense(4, 16, "relu"), nc.Dense(16, 1)], seed=0, dtype=dtype)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("loop", [True, False])
@pytest.mark.parametrize("batch_size", [16, 64, "full"])
def test_update_overflow_raises_and_keeps_the_finite_point(monkeypatch, backend, loop,
                                                           batch_size):
    """SGD(lr=1e38) in float32: the first update makes parameters inf/NaN. With one
    step per epoch (64 rows, batch 64 or 'full') that is the last step, which
    fit used to return from normally; now it raises and puts back the
    parameters the step's (finite) loss was computed at, here the initial ones."""
    monkeypatch.setattr(training, "_EPOCH_LOOP", loop)
    X, y = _overflow_data()
    net = _overflow_net()
    start = net.params.copy()
    assert np.isfinite(net.loss(X, y[:, None]))
    with pytest.raises(nc.DivergenceError) as info:
        net.fit(X, y, optimizer=nc.optim.SGD(lr=1e38), batch_size=batch_size, epochs=1,
                progress=False, seed=0)
    assert (info.value.epoch, info.value.step) == (0, 0) and math.isnan(info.value.loss)
    np.testing.assert_array_equal(net.params, start)
    assert np.isfinite(net.loss(X, y[:, None]))


def _last_batch_overflow(dtype):
    """Data where every batch of 16 (shuffle off) but the last has an exactly zero
    gradient (targets = the network's own outputs), so SGD(lr=1e38) changes
    nothing until the last step of the epoch, whose update overflows."""
    X, y = _overflow_data()
    net = _overflow_net(dtype)
    y = y.copy()
    for s in range(0, 48, 16):
        y[s:s + 16] = net.forward(X[s:s + 16]).ravel()
    return X, y, net


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("loop", [True, False])
def test_overflow_on_the_last_minibatch_step(monkeypatch, backend, loop):
    """Also through the compiled mini-batch loop: the parameters are checked after
    every step, the last one included."""
    monkeypatch.setattr(training, "_EPOCH_LOOP", loop)
    X, y, net = _last_batch_overflow("float32")
    start = net.params.copy()
    with pytest.raises(nc.DivergenceError) as info:
        net.fit(X, y, optimizer=nc.optim.SGD(lr=1e38), batch_size=16, epochs=1,
                shuffle=False, progress=False)
    assert (info.value.epoch, info.value.step) == (0, 3)
    np.testing.assert_array_equal(net.params, start)     # three zero-gradient steps before
    assert np.isfinite(net.loss(X, y[:, None]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_loss_overflow_keeps_the_point_of_the_last_finite_loss(monkeypatch, backend):
    """float64: the loss overflows a few steps in (parameters stay finite). The
    network is left where the last finite loss was computed, one update before
    the step whose loss overflowed, so the whole-set loss is finite there; both
    paths agree bit for bit."""
    X, y = _overflow_data()
    results = []
    for loop in (True, False):
        monkeypatch.setattr(training, "_EPOCH_LOOP", loop)
        net = _overflow_net("float64")
        snapshots = [net.params.copy()]
        with pytest.raises(nc.DivergenceError) as info:
            net.fit(X, y, optimizer=nc.optim.SGD(lr=1e38), batch_size=16, epochs=1,
                    shuffle=False, progress=False)
        k = info.value.step
        assert k >= 1 and not math.isfinite(info.value.loss)
        # replay by hand: the loss of batch k is computed after k updates
        ref = _overflow_net("float64")
        w = ref.params.copy()
        for s in range(0, 16 * (k - 1), 16):
            ref.params[:] = w
            _, g = ref.loss_and_gradient(X[s:s + 16], y[s:s + 16, None])
            w = w - 1e38 * g
        np.testing.assert_allclose(net.params, w, rtol=1e-12)
        assert np.isfinite(net.loss(X, y[:, None]))
        results.append(net.params.copy())
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_sklearn_regressor_float32_divergence_raises():
    pytest.importorskip("sklearn")
    from nncore.sklearn import MLPRegressor
    X, y = _overflow_data()
    est = MLPRegressor((16,), optimizer="sgd", learning_rate=1e38, batch_size=64, epochs=1,
                       dtype="float32", random_state=0)
    with pytest.raises(nc.DivergenceError):
        est.fit(X, y)


# --------------------------------------------------------------------------- lowering

def test_builtin_optimizers_describe_their_loop_rule():
    params = np.zeros(6)
    for make in OPTS.values():
        opt = make(None)
        update = opt.fused_update(params)
        assert isinstance(update, E.FusedUpdate) and update.hyper["lr"] == opt.current_lr
        assert [b is opt.state[name] for b, name in zip(update.buffers, opt._buffers)] \
            == [True] * len(opt._buffers)


def _spy_train_epoch(monkeypatch):
    calls = []
    C = _compiled()
    real = C.train_epoch
    monkeypatch.setattr(C, "train_epoch", lambda *a: (calls.append(1), real(*a)))
    return calls


def test_subclass_overriding_update_runs_its_own_rule(monkeypatch):
    """A subclass that changes the rule (_update) runs on the per-step path by
    itself: its result is SGD at twice the rate, not its parent's compiled rule."""
    calls = _spy_train_epoch(monkeypatch)

    class DoubleRateSGD(nc.optim.SGD):
        def _update(self, params, grads, lr, gscale):
            super()._update(params, grads, 2 * lr, gscale)

    X, y = np.random.default_rng(0).normal(size=(20, 4)), np.arange(20) % 3
    assert DoubleRateSGD(0.05).fused_update(np.zeros(3)) is None
    net, ref = _clf("float64"), _clf("float64")
    net.fit(X, y, optimizer=DoubleRateSGD(0.05), batch_size=4, epochs=2, progress=False, seed=1)
    assert calls == []
    ref.fit(X, y, optimizer=nc.optim.SGD(0.1), batch_size=4, epochs=2, progress=False, seed=1)
    assert calls != []                                    # the plain SGD used the loop
    np.testing.assert_array_equal(net.params, ref.params)


def test_subclass_overriding_step_runs_per_step(monkeypatch):
    calls = _spy_train_epoch(monkeypatch)

    class CountingAdam(nc.optim.Adam):
        steps = 0

        def step(self, params, grads):
            self.steps += 1
            super().step(params, grads)

    X, y = np.random.default_rng(1).normal(size=(20, 4)), np.arange(20) % 3
    net, ref = _clf(), _clf()
    opt = CountingAdam(0.01)
    net.fit(X, y, optimizer=opt, batch_size=4, epochs=3, progress=False, seed=2)
    assert calls == [] and opt.steps == 15 == opt.iterations
    ref.fit(X, y, optimizer=nc.optim.Adam(0.01), batch_size=4, epochs=3, progress=False, seed=2)
    np.testing.assert_array_equal(net.params, ref.params)
