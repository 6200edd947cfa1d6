"""First-order optimizers: trajectories against a direct NumPy transcription of the
rules and against torch.optim (params and every state buffer), on each backend."""

import math

import numpy as np
import pytest

import nncore as nc
from nncore import optim

N = 37          # parameters (odd, so no vector-width coincidences)
STEPS = 60

# (class name, keyword arguments); each is also run with clip_norm.
CONFIGS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.1, lr_decay=0.01, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.1)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]
BUFFERS = {"SGD": ("momentum_buffer",), "Adagrad": ("sum",), "RMSprop": ("square_avg",),
           "Adam": ("exp_avg", "exp_avg_sq"), "AdamW": ("exp_avg", "exp_avg_sq")}


def _problem(dtype=np.float64, seed=0):
    """A quadratic whose gradient depends on the parameters plus fresh noise."""
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((N, N)) / math.sqrt(N)
    A = Q @ Q.T + 0.5 * np.eye(N)
    p0 = rng.standard_normal(N).astype(dtype)
    noise = rng.standard_normal((STEPS, N)).astype(dtype)
    return A, p0, noise


def _grad(A, p, noise_t):
    return A @ p + noise_t


# --------------------------------------------------------------------------- NumPy transcription

class Reference:
    """The update rules of API.md written out step by step (float64, no kernels)."""

    def __init__(self, name, kw):
        self.name = name
        self.kw = dict(kw)
        self.t = 0
        self.state = {}

    def step(self, p, g):
        kw, name = self.kw, self.name
        self.t += 1
        t = self.t
        lr = kw.get("lr")
        clip = kw.get("clip_norm")
        if clip is not None:
            g = g * min(1.0, clip / (math.sqrt(float(np.dot(g, g))) + 1e-6))
        wd = kw.get("weight_decay", 0.01 if name == "AdamW" else 0.0)
        if wd and name != "AdamW":
            g = g + wd * p
        if name == "SGD":
            mu = kw.get("momentum", 0.0)
            if mu == 0.0:
                return p - lr * g
            damp = kw.get("dampening", 0.0)
            b = g.copy() if t == 1 else mu * self.state["momentum_buffer"] + (1 - damp) * g
            self.state["momentum_buffer"] = b
            d = g + mu * b if kw.get("nesterov") else b
            return p - lr * d
        inside = kw.get("eps_inside_sqrt", False)
        if name == "Adagrad":
            eps = kw.get("eps", 1e-10)
            s = self.state.get("sum", np.full_like(p, kw.get("initial_accumulator_value", 0.0)))
            s = s + g * g
            self.state["sum"] = s
            clr = lr / (1 + (t - 1) * kw.get("lr_decay", 0.0))
            den = np.sqrt(s + eps) if inside else np.sqrt(s) + eps
            return p - clr * g / den
        if name == "RMSprop":
            eps, alpha = kw.get("eps", 1e-8), kw.get("alpha", 0.99)
            v = alpha * self.state.get("square_avg", np.zeros_like(p)) + (1 - alpha) * g * g
            self.state["square_avg"] = v
            den = np.sqrt(v + eps) if inside else np.sqrt(v) + eps
            return p - lr * g / den
        # Adam / AdamW
        eps = kw.get("eps", 1e-8)
        b1, b2 = kw.get("betas", (0.9, 0.999))
        if name == "AdamW":
            p = p * (1 - lr * wd)
        m = b1 * self.state.get("exp_avg", np.zeros_like(p)) + (1 - b1) * g
        v = b2 * self.state.get("exp_avg_sq", np.zeros_like(p)) + (1 - b2) * g * g
        self.state["exp_avg"], self.state["exp_avg_sq"] = m, v
        mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        den = np.sqrt(vhat + eps) if inside else np.sqrt(vhat) + eps
        return p - lr * mhat / den


def _run_nc(name, kw, A, p0, noise, dtype=np.float64, feedback=True):
    opt = getattr(optim, name)(**kw)
    p = p0.astype(dtype).copy()
    for t in range(STEPS):
        g = (_grad(A, p, noise[t]) if feedback else noise[t]).astype(dtype)
        g_before = g.copy()
        opt.step(p, g)
        np.testing.assert_array_equal(g, g_before)  # the caller's gradient is never modified
    return p, opt


@pytest.mark.parametrize("clip", [None, 0.5], ids=["noclip", "clip"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_matches_numpy_transcription(backend, name, kw, clip):
    A, p0, noise = _problem()
    kw = dict(kw, clip_norm=clip)
    p, opt = _run_nc(name, kw, A, p0, noise)
    ref = Reference(name, kw)
    q = p0.copy()
    for t in range(STEPS):
        q = ref.step(q, _grad(A, q, noise[t]))
    np.testing.assert_allclose(p, q, rtol=1e-11, atol=1e-13)
    assert opt.state["step"] == STEPS
    for buf in BUFFERS[name]:
        if name == "SGD" and kw.get("momentum", 0.0) == 0.0:
            continue
        np.testing.assert_allclose(opt.state[buf], ref.state[buf], rtol=1e-11, atol=1e-13)


def _torch_kwargs(name, kw):
    out = {k: v for k, v in kw.items() if k not in ("clip_norm", "eps_inside_sqrt")}
    return out


@pytest.mark.parametrize("clip", [None, 0.5], ids=["noclip", "clip"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_matches_torch(backend, name, kw, clip):
    torch = pytest.importorskip("torch")
    A, p0, noise = _problem()
    kw = dict(kw, clip_norm=clip)
    p, opt = _run_nc(name, kw, A, p0, noise)

    w = torch.tensor(p0.copy(), dtype=torch.float64, requires_grad=True)
    topt = getattr(torch.optim, name)([w], foreach=False, **_torch_kwargs(name, kw))
    At = torch.tensor(A)
    for t in range(STEPS):
        with torch.no_grad():
            w.grad = At @ w + torch.tensor(noise[t])
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([w], clip)
        topt.step()
    np.testing.assert_allclose(p, w.detach().numpy(), rtol=1e-12, atol=1e-14)
    tstate = topt.state[w]
    for buf in BUFFERS[name]:
        if name == "SGD" and kw.get("momentum", 0.0) == 0.0:
            assert opt.state.get(buf) is None
            continue
        np.testing.assert_allclose(opt.state[buf], tstate[buf].numpy(), rtol=1e-12, atol=1e-14)
    if "step" in tstate:
        assert opt.state["step"] == int(tstate["step"])


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_float32_within_derived_tolerance(backend, name, kw):
    """float32 run vs the float64 reference on the same (float32-exact) inputs.

    Each step rounds every element a handful of times relative to the
    magnitudes involved and the recurrences are contractions, so the error of
    an array after T steps is bounded by c * eps32 * sum_t |x_t| over its
    float64 trajectory; c = 16 covers the ~10 roundings of the longest rule.
    """
    A, p0, noise = _problem(np.float32)
    p, opt = _run_nc(name, kw, A, p0, noise, dtype=np.float32, feedback=False)
    assert p.dtype == np.float32
    ref = Reference(name, kw)
    q = p0.astype(np.float64)
    path = {"params": np.abs(q).copy()}
    for t in range(STEPS):
        q = ref.step(q, noise[t].astype(np.float64))
        path["params"] += np.abs(q)
        for buf, val in ref.state.items():
            path[buf] = path.get(buf, 0.0) + np.abs(val)
    eps32 = float(np.finfo(np.float32).eps)
    assert np.all(np.abs(p - q) <= 16 * eps32 * path["params"])
    for buf, val in ref.state.items():
        got = opt.state[buf]
        assert got.dtype == np.float32
        assert np.all(np.abs(got - val) <= 16 * eps32 * path[buf]), buf


# --------------------------------------------------------------------------- closed forms

@pytest.mark.parametrize("name", ["Adagrad", "RMSprop", "Adam", "AdamW"])
def test_eps_inside_sqrt_first_step_closed_form(backend, name):
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(N)
    g = rng.standard_normal(N)
    lr, eps = 0.1, 0.5   # a large eps separates the two forms clearly
    opt = getattr(optim, name)(lr=lr, eps=eps, eps_inside_sqrt=True,
                               **({"weight_decay": 0.0} if name == "AdamW" else {}))
    p = p0.copy()
    opt.step(p, g)
    # First step: Adagrad s = g^2; Adam m_hat = g, v_hat = g^2; RMSprop v = (1-alpha) g^2.
    second = (1 - 0.99) * g * g if name == "RMSprop" else g * g
    np.testing.assert_allclose(p, p0 - lr * g / np.sqrt(second + eps), rtol=1e-13, atol=1e-15)
    outside = getattr(optim, name)(lr=lr, eps=eps, **({"weight_decay": 0.0} if name == "AdamW" else {}))
    q = p0.copy()
    outside.step(q, g)
    np.testing.assert_allclose(q, p0 - lr * g / (np.sqrt(second) + eps), rtol=1e-13, atol=1e-15)
    assert np.max(np.abs(p - q)) > 1e-3


@pytest.mark.parametrize("name", ["Adagrad", "RMSprop", "Adam"])
def test_eps_inside_sqrt_trajectory(backend, name):
    A, p0, noise = _problem()
    kw = dict(lr=0.01, eps=1e-3, eps_inside_sqrt=True)
    p, _ = _run_nc(name, kw, A, p0, noise)
    ref = Reference(name, kw)
    q = p0.copy()
    for t in range(STEPS):
        q = ref.step(q, _grad(A, q, noise[t]))
    np.testing.assert_allclose(p, q, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("alpha,eta", [(0.9, 0.05), (0.5, 0.1)])
def test_classic_momentum_equals_sgd_momentum(backend, alpha, eta):
    """The lecture's dw = alpha dw - eta g; w += dw is SGD(momentum=alpha) at constant lr."""
    A, p0, noise = _problem()
    p, _ = _run_nc("SGD", dict(lr=eta, momentum=alpha), A, p0, noise)
    w, dw = p0.copy(), np.zeros(N)
    for t in range(STEPS):
        dw = alpha * dw - eta * _grad(A, w, noise[t])
        w = w + dw
    np.testing.assert_allclose(p, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_clip_norm_matches_torch_single_step(backend, name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    p0, g = rng.standard_normal(N), 10 * rng.standard_normal(N)
    opt = getattr(optim, name)(lr=0.1, clip_norm=1.0)
    p = p0.copy()
    opt.step(p, g)
    assert opt.grad_norm == pytest.approx(np.linalg.norm(g), rel=1e-14)
    w = torch.tensor(p0.copy(), requires_grad=True)
    w.grad = torch.tensor(g.copy())
    torch.nn.utils.clip_grad_norm_([w], 1.0)
    getattr(torch.optim, name)([w], lr=0.1, foreach=False).step()
    np.testing.assert_allclose(p, w.detach().numpy(), rtol=1e-14, atol=1e-15)
    if name == "SGD":  # plain SGD: the step is lr times the clipped gradient
        step = np.linalg.norm(p - p0) / 0.1
        assert step == pytest.approx(1.0 / (1.0 + 1e-6 / np.linalg.norm(g)), rel=1e-12)


def test_clip_norm_inactive_below_threshold(backend):
    rng = np.random.default_rng(4)
    p0, g = rng.standard_normal(N), 1e-3 * rng.standard_normal(N)
    a, b = p0.copy(), p0.copy()
    optim.SGD(lr=0.1, clip_norm=10.0).step(a, g)
    optim.SGD(lr=0.1).step(b, g)
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- schedules with torch

def test_schedule_drives_lr_like_torch_steplr(backend):
    torch = pytest.importorskip("torch")
    A, p0, noise = _problem()
    sched = nc.schedules.StepDecay(0.05, step_size=2, gamma=0.5)
    opt = optim.SGD(lr=sched, momentum=0.9)
    w = torch.tensor(p0.copy(), requires_grad=True)
    topt = torch.optim.SGD([w], lr=0.05, momentum=0.9, foreach=False)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.5)
    p = p0.copy()
    At = torch.tensor(A)
    t = 0
    for epoch in range(6):
        opt.set_epoch(epoch)
        assert opt.current_lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-15)
        for _ in range(3):
            opt.step(p, _grad(A, p, noise[t]))
            with torch.no_grad():
                w.grad = At @ w + torch.tensor(noise[t])
            topt.step()
            t += 1
        tsched.step()
    np.testing.assert_allclose(p, w.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_lr_scale_multiplies_schedule():
    opt = optim.Adam(lr=nc.schedules.ExponentialDecay(0.1, 0.5))
    assert opt.current_lr == 0.1
    opt.set_epoch(2)
    assert opt.current_lr == pytest.approx(0.025)
    opt.lr_scale = 0.1
    assert opt.current_lr == pytest.approx(0.0025)
    assert opt.scheduled_lr == pytest.approx(0.025)
    opt.reset()
    assert opt.lr_scale == 1.0 and opt.current_lr == 0.1
    with pytest.raises(ValueError):
        opt.lr_scale = 0.0
    with pytest.raises(ValueError):
        opt.set_epoch(-1)
    with pytest.raises(TypeError):
        opt.set_epoch(1.5)


def test_bad_schedule_output_is_rejected():
    opt = optim.SGD(lr=lambda epoch: 0.1 if epoch < 2 else float("nan"))
    opt.set_epoch(1)
    with pytest.raises(ValueError, match="schedule"):
        opt.set_epoch(2)
    assert opt.current_lr == 0.1   # unchanged by the failed call


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("cls,kw,exc", [
    (optim.SGD, dict(lr=0.0), ValueError),
    (optim.SGD, dict(lr=-1.0), ValueError),
    (optim.SGD, dict(lr=float("nan")), ValueError),
    (optim.SGD, dict(lr="fast"), TypeError),
    (optim.SGD, dict(momentum=-0.1), ValueError),
    (optim.SGD, dict(momentum=1.0), ValueError),
    (optim.SGD, dict(nesterov=True), ValueError),
    (optim.SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError),
    (optim.SGD, dict(dampening=1.5), ValueError),
    (optim.SGD, dict(weight_decay=-1e-3), ValueError),
    (optim.SGD, dict(clip_norm=0.0), ValueError),
    (optim.SGD, dict(clip_norm=float("inf")), ValueError),
    (optim.Adagrad, dict(eps=-1e-10), ValueError),
    (optim.Adagrad, dict(initial_accumulator_value=-1.0), ValueError),
    (optim.Adagrad, dict(lr_decay=-0.1), ValueError),
    (optim.Adagrad, dict(eps_inside_sqrt="yes"), TypeError),
    (optim.RMSprop, dict(alpha=1.0), ValueError),
    (optim.RMSprop, dict(alpha=-0.5), ValueError),
    (optim.RMSprop, dict(eps=-1.0), ValueError),
    (optim.Adam, dict(betas=(0.9, 1.0)), ValueError),
    (optim.Adam, dict(betas=(-0.1, 0.999)), ValueError),
    (optim.Adam, dict(betas=(0.9,)), ValueError),
    (optim.Adam, dict(betas=0.9), ValueError),
    (optim.Adam, dict(eps=-1e-8), ValueError),
    (optim.AdamW, dict(weight_decay=-0.01), ValueError),
    (optim.AdamW, dict(lr=0), ValueError),
])
def test_bad_hyper_parameters(cls, kw, exc):
    with pytest.raises(exc):
        cls(**kw)


def test_state_length_or_dtype_change_is_an_error(backend):
    opt = optim.Adam(0.01)
    p, g = np.zeros(10), np.ones(10)
    opt.step(p, g)
    before = (p.copy(), opt.state["exp_avg"].copy(), opt.state["step"])
    with pytest.raises(ValueError, match="reset"):
        opt.step(np.zeros(11), np.ones(11))
    with pytest.raises(ValueError, match="reset"):
        opt.step(np.zeros(10, np.float32), np.ones(10, np.float32))
    np.testing.assert_array_equal(p, before[0])
    np.testing.assert_array_equal(opt.state["exp_avg"], before[1])
    assert opt.state["step"] == before[2]
    opt.reset()
    assert opt.state["step"] == 0 and opt.state["exp_avg"] is None
    q = np.zeros(11)
    opt.step(q, np.ones(11))
    assert opt.state["exp_avg"].shape == (11,)


@pytest.mark.parametrize("params,grads,exc", [
    (np.zeros(5), np.zeros(6), ValueError),
    (np.zeros(5), np.zeros(5, np.float32), TypeError),
    (np.zeros((5, 1)), np.zeros((5, 1)), ValueError),
    (np.zeros(0), np.zeros(0), ValueError),
    (np.zeros(5, np.int64), np.zeros(5, np.int64), TypeError),
    ([0.0] * 5, np.zeros(5), TypeError),
    (np.zeros(10)[::2], np.zeros(5), ValueError),
])
def test_bad_step_arrays(backend, params, grads, exc):
    opt = optim.SGD(0.1, momentum=0.9)
    with pytest.raises(exc):
        opt.step(params, grads)
    assert opt.state["step"] == 0 and opt.state["momentum_buffer"] is None


def test_read_only_params_rejected_and_read_only_grads_accepted(backend):
    p, g = np.zeros(5), np.ones(5)
    p.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        optim.SGD(0.1).step(p, g)
    q = np.zeros(5)
    g.flags.writeable = False
    optim.Adam(0.1, clip_norm=0.1, weight_decay=0.1).step(q, g)
    assert np.all(q < 0)


def test_repr_and_config_round_trip():
    for cls in (optim.SGD, optim.Adagrad, optim.RMSprop, optim.Adam, optim.AdamW):
        opt = cls(lr=0.123, clip_norm=2.0)
        cfg = opt.get_config()
        assert cfg["lr"] == 0.123 and cfg["clip_norm"] == 2.0
        assert type(opt)(**cfg).get_config() == cfg
        assert repr(opt).startswith(cls.__name__ + "(lr=0.123")
        assert opt.full_batch is False
    s = nc.schedules.CosineAnnealing(0.1, 10)
    assert optim.Adam(lr=s).get_config()["lr"] is s
    assert optim.AdamW().weight_decay == 0.01


def test_standalone_api_example():
    """API.md: opt = nc.optim.Adam(1e-3); opt.step(params, grads) keeps state."""
    opt = nc.optim.Adam(1e-3)
    params = np.ones(4, np.float32)
    for _ in range(3):
        opt.step(params, np.full(4, 2.0, np.float32))
    # constant gradient: every Adam step is lr * 1/(1 + eps/|g|) ~ lr
    np.testing.assert_allclose(params, 1 - 3e-3, rtol=1e-6)
    assert opt.state["step"] == 3


# --------------------------------------------------------------------------- get()

@pytest.mark.parametrize("name,cls,attrs", [
    ("sgd", optim.SGD, dict(momentum=0.0, nesterov=False)),
    ("momentum", optim.SGD, dict(momentum=0.9, nesterov=False)),
    ("nesterov", optim.SGD, dict(momentum=0.9, nesterov=True)),
    ("adagrad", optim.Adagrad, dict(lr=0.01, eps=1e-10)),
    ("rmsprop", optim.RMSprop, dict(lr=0.01, alpha=0.99)),
    ("Adam", optim.Adam, dict(lr=0.001, betas=(0.9, 0.999))),
    ("adamw", optim.AdamW, dict(weight_decay=0.01)),
])
def test_get_names(name, cls, attrs):
    opt = optim.get(name)
    assert type(opt) is cls
    for k, v in attrs.items():
        assert getattr(opt, k) == v
    assert optim.get(name) is not opt  # fresh each time
    assert optim.get(name, lr=0.5).lr == 0.5


def test_get_instances_classes_and_errors():
    opt = optim.Adam(0.1)
    assert optim.get(opt) is opt
    assert type(optim.get(optim.RMSprop, lr=0.2)) is optim.RMSprop
    assert optim.get("momentum", momentum=0.5).momentum == 0.5
    with pytest.raises(ValueError, match="adamw.*lbfgs|valid names"):
        optim.get("adamax")
    with pytest.raises(TypeError):
        optim.get(opt, lr=0.2)
    with pytest.raises(TypeError):
        optim.get(3)
    with pytest.raises(AttributeError):
        optim.NoSuchOptimizer  # noqa: B018


@pytest.mark.parametrize("name,clsname", [("cg", "ConjugateGradient"), ("newton", "Newton"),
                                          ("bfgs", "BFGS"), ("dfp", "DFP"), ("lbfgs", "LBFGS")])
def test_get_full_batch_names(name, clsname):
    pytest.importorskip("nncore.optim._full_batch")
    cls = getattr(nc.optim, clsname)
    opt = optim.get(name)
    assert type(opt) is cls and opt.full_batch is True


@pytest.mark.parametrize("name,kernel", [("SGD", "sgd_step"), ("Adagrad", "adagrad_step"),
                                         ("RMSprop", "rmsprop_step"), ("Adam", "adam_step"),
                                         ("AdamW", "adam_step")])
def test_one_fused_backend_kernel_per_step(monkeypatch, name, kernel):
    """Optimizers go through nncore.backend.current(): one update kernel per step
    (plus one sum_squares when clipping), nothing else."""
    import types

    import nncore.backend as _backend
    from nncore.backend import _numpy

    calls = []

    def spy(fname):
        def wrapped(*args, **kwargs):
            calls.append(fname)
            return getattr(_numpy, fname)(*args, **kwargs)
        return wrapped

    fake = types.SimpleNamespace(**{f: spy(f) for f in _backend.BACKEND_API}, NAME="spy")
    monkeypatch.setattr(_backend, "_current", fake)
    opt = getattr(optim, name)(lr=0.1, clip_norm=1.0)
    p = np.zeros(8)
    for _ in range(3):
        opt.step(p, np.ones(8))
    assert calls == ["sum_squares", kernel] * 3
