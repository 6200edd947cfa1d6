"""fit: batch modes, trajectories against torch.optim, history, validation,
callbacks, full-batch interface, divergence, Ctrl-C, reproducibility, memory."""

import math
import tracemalloc

import numpy as np
import pytest

import nncore as nc


def _clf_data(n=20, d=3, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, k, n)


def _clf_net(dtype="float64", seed=0, dropout=0.0, reg=None):
    layers = [nc.Dense(3, 5, "tanh")]
    if dropout:
        layers.append(nc.Dropout(dropout))
    layers += [nc.Dense(5, 4, "relu"), nc.Dense(4, 3)]
    return nc.Network(layers, loss="cross_entropy", regularizer=reg, dtype=dtype, seed=seed)


class Recorder(nc.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []
        self.snapshots = []
        self.step_losses = []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_train_end(self, logs=None):
        self.events.append("train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))
        self.step_losses.append([])

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, dict(logs)))

    def on_batch_end(self, batch, logs=None):
        self.snapshots.append(self.model.params.copy())
        self.step_losses[-1].append((logs["loss"], logs["size"]))


class BatchLog:
    """Identity augmentation that records which rows each batch holds."""

    def __init__(self, X):
        self.key = {tuple(r): i for i, r in enumerate(np.asarray(X))}
        self.batches = []

    def __call__(self, xb, rng):
        self.batches.append([self.key[tuple(r)] for r in np.asarray(xb, np.float64)])
        return xb


# --------------------------------------------------------------------------- torch parity

def _torch_model(net, torch):
    mods = []
    acts = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid,
            "leaky_relu": lambda: torch.nn.LeakyReLU(0.01)}
    for layer in net.layers:
        if isinstance(layer, nc.Dense):
            lin = torch.nn.Linear(layer.n_in, layer.n_out).double()
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))
                lin.bias.copy_(torch.from_numpy(layer.b.copy()))
            mods.append(lin)
            if layer.activation != "linear":
                mods.append(acts[layer.activation]())
    return torch.nn.Sequential(*mods)


def _torch_flat(model, torch):
    parts = []
    for m in model:
        if isinstance(m, torch.nn.Linear):
            parts += [m.weight.detach().numpy().T.ravel(), m.bias.detach().numpy()]
    return np.concatenate(parts)


def _torch_train(net0, X, y, make_opt, batches, reg_l2, torch):
    """Replay the same batches in torch with the lecture's loss conventions."""
    model = _torch_model(net0, torch)
    opt = make_opt(model.parameters())
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(np.asarray(y))
    losses = []
    for idx in batches:
        ii = torch.tensor(idx)
        out = model(Xt[ii])
        if net0.loss_name == "cross_entropy":
            loss = torch.nn.functional.cross_entropy(out, yt[ii])
        elif net0.loss_name == "mse":
            loss = 0.5 * ((out - yt[ii].reshape(out.shape)) ** 2).sum() / len(idx)
        else:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                out, yt[ii].reshape(out.shape), reduction="sum") / len(idx)
        if reg_l2:
            loss = loss + reg_l2 * sum((m.weight ** 2).sum() for m in model
                                       if isinstance(m, torch.nn.Linear))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return _torch_flat(model, torch), losses


OPTS = {
    "sgd": (lambda: nc.optim.SGD(0.1), lambda t: lambda p: t.optim.SGD(p, lr=0.1)),
    "nesterov": (lambda: nc.optim.SGD(0.05, momentum=0.9, nesterov=True),
                 lambda t: lambda p: t.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    "adagrad": (lambda: nc.optim.Adagrad(0.1), lambda t: lambda p: t.optim.Adagrad(p, lr=0.1)),
    "rmsprop": (lambda: nc.optim.RMSprop(0.01), lambda t: lambda p: t.optim.RMSprop(p, lr=0.01)),
    "adam": (lambda: nc.optim.Adam(0.01), lambda t: lambda p: t.optim.Adam(p, lr=0.01)),
    "adamw": (lambda: nc.optim.AdamW(0.01, weight_decay=0.1),
              lambda t: lambda p: t.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
}


@pytest.mark.parametrize("batch_size", ["full", 1, 7])
@pytest.mark.parametrize("opt", list(OPTS))
def test_trajectory_matches_torch(backend, opt, batch_size):
    torch = pytest.importorskip("torch")
    X, y = _clf_data()
    net = _clf_net(reg=nc.L2(1e-3))
    net0 = net.copy()
    log = BatchLog(X)
    hist = net.fit(X, y, optimizer=OPTS[opt][0](), batch_size=batch_size, epochs=3,
                   shuffle=batch_size != "full", seed=5, augment=log, progress=False)
    n = len(y)
    if batch_size == "full":
        batches = [list(range(n))] * 3
    else:
        batches = log.batches
        sizes = [len(b) for b in batches]
        per_epoch = -(-n // batch_size)
        assert len(batches) == 3 * per_epoch
        assert sizes[:per_epoch] == [batch_size] * (per_epoch - 1) + [n - batch_size * (per_epoch - 1)]
        for e in range(3):
            assert sorted(sum(batches[e * per_epoch:(e + 1) * per_epoch], [])) == list(range(n))
        assert batches[:per_epoch] != batches[per_epoch:2 * per_epoch]  # reshuffled
    ref, losses = _torch_train(net0, X, y, OPTS[opt][1](torch), batches, 1e-3, torch)
    np.testing.assert_allclose(net.params, ref, rtol=0, atol=1e-12)
    steps = len(batches) // 3
    expected = [np.mean(losses[e * steps:(e + 1) * steps]) for e in range(3)]
    np.testing.assert_allclose(hist.history["loss"], expected, rtol=1e-12)


@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy"])
def test_trajectory_matches_torch_other_losses(loss):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(15, 3))
    y = rng.normal(size=(15, 2)) if loss == "mse" else (rng.random((15, 2)) > 0.5).astype(float)
    net = nc.Network([nc.Dense(3, 4, "sigmoid"), nc.Dense(4, 4, "leaky_relu"), nc.Dense(4, 2)],
                     loss=loss, dtype="float64", seed=2)
    net0 = net.copy()
    net.fit(X, y, optimizer=nc.optim.Adam(0.02), batch_size=4, shuffle=False, epochs=4,
            progress=False)
    batches = [list(range(s, min(s + 4, 15))) for s in range(0, 15, 4)] * 4
    ref, _ = _torch_train(net0, X, y, lambda p: torch.optim.Adam(p, lr=0.02), batches, 0.0, torch)
    np.testing.assert_allclose(net.params, ref, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- history and modes

def test_history_contents_and_step_loss_mean(backend):
    X, y = _clf_data(n=30)
    Xv, yv = _clf_data(n=11, seed=1)
    net = _clf_net(reg=nc.L2(1e-2))
    rec = Recorder()
    hist = net.fit(X, y, optimizer="adam", batch_size=8, epochs=4, validation_data=(Xv, yv),
                   callbacks=[rec], progress=False, seed=0)
    h = hist.history
    assert set(h) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    assert hist.epoch == [0, 1, 2, 3] and all(len(v) == 4 for v in h.values())
    assert h["lr"] == [0.001] * 4
    assert all(b >= a for a, b in zip(h["time"], h["time"][1:]))
    for e in range(4):
        steps = rec.step_losses[e]
        assert [s for _, s in steps] == [8, 8, 8, 6]
        assert h["loss"][e] == pytest.approx(np.mean([l for l, _ in steps]), rel=1e-12)
    # val metrics are the end-of-epoch values of net.loss and the accuracy
    assert h["val_loss"][-1] == pytest.approx(net.loss(Xv, yv), rel=1e-12)
    assert h["val_accuracy"][-1] == pytest.approx(np.mean(net.predict(Xv) == yv))
    assert net.history_ is hist
    assert rec.events[0] == "train_begin" and rec.events[-1] == "train_end"
    assert [e[1] for e in rec.events if e[0] == "epoch_end"] == [0, 1, 2, 3]


def test_regression_history_has_no_accuracy():
    X, y = nc.datasets.sine(50, seed=0)
    net = nc.Network([nc.Dense(1, 8, "tanh"), nc.Dense(8, 1)], seed=0)
    h = net.fit(X, y, epochs=2, progress=False, seed=0).history
    assert "accuracy" not in h and "val_loss" not in h


def test_stochastic_mode_takes_one_step_per_sample():
    X, y = _clf_data(n=9)
    net = _clf_net()
    opt = nc.optim.SGD(0.01)
    net.fit(X, y, optimizer=opt, batch_size=1, epochs=2, progress=False)
    assert opt.iterations == 18
    opt = nc.optim.SGD(0.01)
    net.fit(X, y, optimizer=opt, batch_size="full", epochs=2, progress=False)
    assert opt.iterations == 2
    opt = nc.optim.SGD(0.01)
    net.fit(X, y, optimizer=opt, epochs=1, progress=False)  # default 32 -> one batch of 9
    assert opt.iterations == 1


def test_validation_split_uses_last_rows_without_copy():
    X, y = _clf_data(n=40)
    a, b = _clf_net(), _clf_net()
    ha = a.fit(X, y, validation_split=0.25, epochs=3, progress=False, seed=3)
    hb = b.fit(X[:30], y[:30], validation_data=(X[30:], y[30:]), epochs=3, progress=False, seed=3)
    np.testing.assert_array_equal(a.params, b.params)
    assert ha.history["val_loss"] == hb.history["val_loss"]


def test_float64_input_to_float32_net_matches_converted_input():
    X, y = _clf_data(n=25)
    a, b = _clf_net("float32", dropout=0.2), _clf_net("float32", dropout=0.2)
    a.fit(X, y, batch_size=4, epochs=3, progress=False, seed=1)
    b.fit(X.astype(np.float32), y, batch_size=4, epochs=3, progress=False, seed=1)
    np.testing.assert_array_equal(a.params, b.params)
    assert a.params.dtype == np.float32


def test_repeat_runs_are_bit_identical(backend):
    X, y = _clf_data(n=50)
    out = []
    for _ in range(2):
        net = _clf_net("float32", seed=4, dropout=0.3, reg=nc.ElasticNet(1e-3, 1e-3))
        net.fit(X, y, optimizer="adam", batch_size=8, epochs=3, progress=False, seed=11,
                augment=nc.augment.GaussianNoise(0.1))
        out.append(net.params.copy())
    np.testing.assert_array_equal(out[0], out[1])
    net = _clf_net("float32", seed=4, dropout=0.3, reg=nc.ElasticNet(1e-3, 1e-3))
    net.fit(X, y, optimizer="adam", batch_size=8, epochs=3, progress=False, seed=12,
            augment=nc.augment.GaussianNoise(0.1))
    assert not np.array_equal(out[0], net.params)


def test_augment_sees_a_copy_and_never_touches_X():
    X, y = _clf_data(n=20)
    X0 = X.copy()
    seen = []

    def aug(xb, rng):
        seen.append(np.shares_memory(xb, X))
        return xb + rng.normal(0, 0.5, xb.shape)

    net = _clf_net()
    net.fit(X, y, batch_size=5, epochs=2, augment=aug, progress=False, seed=0)
    np.testing.assert_array_equal(X, X0)
    assert seen and not any(seen)
    plain = _clf_net()
    plain.fit(X, y, batch_size=5, epochs=2, progress=False, seed=0)
    assert not np.array_equal(plain.params, net.params)


def test_callback_stop_training_and_early_stopping():
    X, y = _clf_data(n=30)

    class StopAt(nc.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.model.stop_training = True

    net = _clf_net()
    h = net.fit(X, y, epochs=10, callbacks=[StopAt()], progress=False)
    assert len(h.epoch) == 3 and h.stop_reason

    Xv, yv = _clf_data(n=30, seed=9)
    net = _clf_net()
    rec = Recorder()
    es = nc.callbacks.EarlyStopping(patience=2)
    h = net.fit(X, y, optimizer=nc.optim.Adam(0.2), epochs=60, validation_data=(Xv, yv),
                callbacks=[rec, es], progress=False, seed=0)
    assert len(h.epoch) < 60 and "early" in h.stop_reason
    best = int(np.argmin(h.history["val_loss"]))
    assert net.loss(Xv, yv) == pytest.approx(h.history["val_loss"][best], rel=1e-6)


def test_progress_bar(capsys):
    X, y = _clf_data()
    net = _clf_net()
    net.fit(X, y, epochs=2, progress=True, validation_split=0.2)
    err = capsys.readouterr().err
    assert "loss" in err and "val_loss" in err and "2/2" in err
    net.fit(X, y, epochs=2, progress=False)
    net.fit(X, y, epochs=2)  # progress=None: stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


def test_fit_does_not_copy_X_per_epoch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40000, 50))          # 16 MB float64
    y = rng.integers(0, 3, 40000)
    net = nc.Network([nc.Dense(50, 16, "relu"), nc.Dense(16, 3)], loss="cross_entropy", seed=0)
    net.fit(X[:64], y[:64], epochs=1, progress=False)  # warm imports/caches
    tracemalloc.start()
    net.fit(X, y, batch_size=256, epochs=2, progress=False, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4e6, f"fit allocated {peak / 1e6:.1f} MB for a 16 MB X"


# --------------------------------------------------------------------------- full batch

class FixedStepGD:
    """A minimal full-batch optimizer speaking the iterate interface."""

    full_batch = True

    def __init__(self, lr, stop_after=None):
        self.lr = lr
        self.stop_after = stop_after
        self.calls = 0

    def reset(self):
        self.calls = 0

    def iterate(self, fun, x, f, g):
        self.calls += 1
        x_new = x - self.lr * g
        f_new, g_new = fun(x_new)
        stop = "max calls" if self.stop_after and self.calls >= self.stop_after else None
        return x_new, f_new, g_new, {"lr": self.lr, "nfev": 1, "ngev": 1, "stop": stop}


def test_full_batch_interface_history():
    X, y = _clf_data(n=30)
    net = _clf_net("float64", reg=nc.L2(1e-3))
    ref = net.copy()
    rec = Recorder()
    opt = FixedStepGD(0.5, stop_after=4)
    h = net.fit(X, y, optimizer=opt, epochs=10, callbacks=[rec], progress=False)
    assert h.epoch == [0, 1, 2, 3] and h.stop_reason == "max calls"
    assert h.history["lr"] == [0.5] * 4
    assert h.history["nfev"] == [2, 3, 4, 5] and h.history["ngev"] == [2, 3, 4, 5]
    # plain gradient descent in float64 on the same objective
    for e in range(4):
        _, g = ref.loss_and_gradient(X, y)
        ref.params[:] = ref.params - 0.5 * g
        assert h.history["loss"][e] == pytest.approx(ref.loss(X, y), rel=1e-12)
        assert h.history["accuracy"][e] == pytest.approx(np.mean(ref.predict(X) == y))
    np.testing.assert_array_equal(net.params, ref.params)


@pytest.mark.parametrize("name", ["cg", "bfgs", "lbfgs"])
def test_full_batch_optimizers_reduce_the_loss(name):
    X, y = _clf_data(n=40)
    net = _clf_net()
    start = net.loss(X, y)
    h = net.fit(X, y, optimizer=name, epochs=30, progress=False)
    loss = h.history["loss"]
    assert loss[-1] < 0.8 * start
    assert all(b <= a + 1e-12 for a, b in zip(loss, loss[1:]))
    assert loss[-1] == pytest.approx(net.loss(X, y), rel=1e-12)
    assert all(b > a for a, b in zip(h.history["nfev"], h.history["nfev"][1:]))


# --------------------------------------------------------------------------- failure

def test_divergence_keeps_last_finite_params():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)) * 10
    y = rng.normal(size=(64, 1)) * 10
    net = nc.Network([nc.Dense(3, 8, "relu"), nc.Dense(8, 1)], seed=0)
    rec = Recorder()
    with pytest.raises(nc.DivergenceError, match=r"epoch \d+, step \d+") as info:
        net.fit(X, y, optimizer=nc.optim.SGD(5.0), batch_size=8, epochs=50, callbacks=[rec],
                progress=False)
    assert isinstance(info.value, RuntimeError)
    assert np.isfinite(net.params).all()
    snaps = [s for s in rec.snapshots if np.isfinite(s).all()]
    assert any(np.array_equal(net.params, s) for s in snaps[-2:])
    assert info.value.epoch is not None and not math.isfinite(info.value.loss)


def test_keyboard_interrupt_in_callback_keeps_last_step_and_history():
    X, y = _clf_data(n=20)

    class CtrlC(Recorder):
        def on_batch_end(self, batch, logs=None):
            super().on_batch_end(batch, logs)
            if len(self.step_losses) == 2 and batch == 1:
                raise KeyboardInterrupt

    net = _clf_net()
    cb = CtrlC()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, batch_size=5, epochs=5, callbacks=[cb], progress=False)
    np.testing.assert_array_equal(net.params, cb.snapshots[-1])
    assert net.history_.epoch == [0] and net.history_.stop_reason == "interrupted"


def test_keyboard_interrupt_inside_optimizer_step_is_undone():
    X, y = _clf_data(n=20)

    class Flaky(nc.optim.SGD):
        def step(self, params, grads):
            if self.iterations == 3:
                params += 1.0  # half-applied update
                raise KeyboardInterrupt
            super().step(params, grads)

    net = _clf_net()
    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, optimizer=Flaky(0.1), batch_size=5, epochs=3, callbacks=[rec],
                progress=False)
    assert len(rec.snapshots) == 3
    np.testing.assert_array_equal(net.params, rec.snapshots[-1])


def test_keyboard_interrupt_in_full_batch_iteration_restores_iterate():
    X, y = _clf_data(n=20)

    class Interrupt(FixedStepGD):
        def iterate(self, fun, x, f, g):
            if self.calls == 2:
                fun(x + 100.0)
                raise KeyboardInterrupt
            return super().iterate(fun, x, f, g)

    net = _clf_net()
    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, optimizer=Interrupt(0.1), epochs=5, callbacks=[rec], progress=False)
    np.testing.assert_array_equal(net.params, rec.snapshots[-1])
    assert len(net.history_.epoch) == 2


def test_chunked_batches_match_single_pass():
    """Batches larger than the workspace chunk are evaluated in pieces."""
    X, y = _clf_data(n=30)
    a, b = _clf_net(dropout=0.2), _clf_net(dropout=0.2)
    b._chunk_rows = 4
    for batch_size in ("full", 16):
        a.fit(X, y, optimizer="adam", batch_size=batch_size, epochs=3, progress=False, seed=2)
        b.fit(X, y, optimizer="adam", batch_size=batch_size, epochs=3, progress=False, seed=2)
        np.testing.assert_allclose(b.params, a.params, rtol=1e-10, atol=1e-12)
    c = _clf_net()
    c._chunk_rows = 7
    h = c.fit(X, y, optimizer=FixedStepGD(0.3), epochs=3, progress=False)
    d = _clf_net()
    h2 = d.fit(X, y, optimizer=FixedStepGD(0.3), epochs=3, progress=False)
    np.testing.assert_allclose(h.history["loss"], h2.history["loss"], rtol=1e-12)


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-11), ("float32", 2e-4)])
def test_backends_train_to_the_same_parameters(dtype, tol):
    import nncore.backend as B
    try:
        B._load("cython")
    except ImportError:
        pytest.skip("compiled backend not built")
    X, y = _clf_data(n=60)
    out = {}
    for name in ("numpy", "cython"):
        nc.set_backend(name)
        net = _clf_net(dtype, dropout=0.3, reg=nc.ElasticNet(1e-3, 1e-3))
        net.fit(X, y, optimizer="adam", batch_size=8, epochs=3, progress=False, seed=0)
        out[name] = net.params.copy()
    np.testing.assert_allclose(out["cython"], out["numpy"], rtol=tol, atol=tol)
