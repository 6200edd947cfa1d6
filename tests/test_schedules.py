"""Learning-rate schedules against torch.optim.lr_scheduler and their closed forms."""

import math

import numpy as np
import pytest

from nncore import optim, schedules

EPOCHS = 25


def _torch_lrs(make_scheduler, lr0, epochs=EPOCHS):
    torch = pytest.importorskip("torch")
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=lr0)
    sched = make_scheduler(torch, opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("ours,theirs", [
    (lambda: schedules.StepDecay(0.1, step_size=3, gamma=0.5),
     lambda torch, o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    (lambda: schedules.StepDecay(0.1, step_size=1),
     lambda torch, o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.1)),
    (lambda: schedules.ExponentialDecay(0.1, gamma=0.9),
     lambda torch, o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
    (lambda: schedules.CosineAnnealing(0.1, T_max=10),
     lambda torch, o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10)),
    (lambda: schedules.CosineAnnealing(0.1, T_max=7, eta_min=0.01),
     lambda torch, o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.01)),
    (lambda: schedules.Constant(0.1),
     lambda torch, o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0, total_iters=0)),
    (lambda: schedules.InverseTime(0.1, decay=0.25),
     lambda torch, o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1.0 / (1.0 + 0.25 * e))),
])
def test_matches_torch_schedulers(ours, theirs):
    sched = ours()
    expected = _torch_lrs(theirs, sched.lr)
    got = [sched(e) for e in range(EPOCHS)]
    # torch's CosineAnnealingLR is recursive past epoch 0, so allow rounding drift.
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    # The optimizer sees the same rates through set_epoch.
    opt = optim.SGD(lr=sched)
    for e in range(EPOCHS):
        opt.set_epoch(e)
        assert opt.current_lr == got[e]


def test_closed_forms():
    assert schedules.StepDecay(1.0, 4, 0.5)(9) == 0.25
    assert schedules.ExponentialDecay(2.0, 0.5)(3) == 0.25
    c = schedules.CosineAnnealing(1.0, T_max=4, eta_min=0.2)
    assert c(0) == 1.0 and c(4) == pytest.approx(0.2) and c(2) == pytest.approx(0.6)
    assert c(8) == pytest.approx(1.0)   # the cosine continues past T_max
    # the lecture's eta(tau) = eta0 / (1 + tau / T) with decay = 1 / T
    T = 5.0
    inv = schedules.InverseTime(0.3, decay=1 / T)
    for tau in (0, 1, 7, 100):
        assert inv(tau) == pytest.approx(0.3 / (1 + tau / T), rel=1e-15)
    assert schedules.InverseTime(0.3, decay=0.0)(50) == 0.3
    # Robbins-Monro: rates decrease monotonically towards 0
    vals = [inv(t) for t in range(200)]
    assert all(a > b for a, b in zip(vals, vals[1:])) and vals[-1] < 0.01


@pytest.mark.parametrize("make,exc", [
    (lambda: schedules.Constant(0.0), ValueError),
    (lambda: schedules.Constant(-1), ValueError),
    (lambda: schedules.Constant(math.inf), ValueError),
    (lambda: schedules.Constant("0.1"), TypeError),
    (lambda: schedules.StepDecay(0.1, 0), ValueError),
    (lambda: schedules.StepDecay(0.1, 2.5), TypeError),
    (lambda: schedules.StepDecay(0.1, 2, gamma=0.0), ValueError),
    (lambda: schedules.ExponentialDecay(0.1, -0.5), ValueError),
    (lambda: schedules.CosineAnnealing(0.1, 0), ValueError),
    (lambda: schedules.CosineAnnealing(0.1, 10, eta_min=0.2), ValueError),
    (lambda: schedules.CosineAnnealing(0.1, 10, eta_min=-0.1), ValueError),
    (lambda: schedules.InverseTime(0.1, decay=-1.0), ValueError),
])
def test_bad_arguments(make, exc):
    with pytest.raises(exc):
        make()


def test_bad_epochs_and_repr():
    s = schedules.StepDecay(0.1, 3)
    with pytest.raises(ValueError):
        s(-1)
    with pytest.raises(TypeError):
        s(1.0)
    assert repr(s) == "StepDecay(lr=0.1, step_size=3, gamma=0.1)"
    assert type(s)(**s.get_config()) == s
    assert isinstance(s, schedules.Schedule)
