"""The backend loss functions are derived from the loss registry (one home per loss).

``nncore.losses.backend_kernels()`` (and ``rop_kernels()`` for the R-operators
of exact curvature) are the tables both backends build their ``loss_*``
functions from and ``BACKEND_API`` lists; these tests fail if a
backend, the API list or the table stops following the registry: every kernel
a registered loss names is in the API with one signature on both backends, the
NumPy function is the registry's reference after the checks, the compiled one
agrees with it, and a loss added to the registry gets its functions from the
same builders.
"""

import inspect
import zlib

import numpy as np
import pytest

from nncore import backend as B
from nncore import losses as L
from nncore.backend import _numpy


def _backends():
    return [B._load(name) for name in B.available()]


def _kernel_names():
    names = set()
    for loss in L.REGISTRY.values():
        names.update(n for n in (loss.kernel, loss.label_kernel, loss.rop_kernel) if n)
    return names


def test_every_registry_kernel_is_in_the_api_of_both_backends():
    assert _kernel_names() <= set(B.BACKEND_API)
    table = L.backend_kernels()
    names = [row.name for row in table]
    assert len(names) == len(set(names))
    # the API's value kernels are exactly the table's: none written by hand beside it
    assert {n for n in B.BACKEND_API if n.startswith("loss_") and not n.endswith("_rop")} \
        == set(names)
    for be in _backends():
        for row in table:
            fn = getattr(be, row.name)
            assert list(inspect.signature(fn).parameters) == ["out", "target", "grad", "weight"]
            assert inspect.signature(fn).parameters["weight"].default is None
            assert fn.__name__ == row.name and fn.__module__ == be.__name__
            assert fn.__doc__ == row.doc


def test_every_registry_rop_is_in_the_api_of_both_backends():
    table = L.rop_kernels()
    names = [row.name for row in table]
    assert len(names) == len(set(names)) and all(row.form == "rop" for row in table)
    assert {n for n in B.BACKEND_API if n.startswith("loss_") and n.endswith("_rop")} \
        == set(names) == {loss.rop_kernel for loss in L.REGISTRY.values() if loss.rop_kernel}
    for be in _backends():
        for row in table:
            fn = getattr(be, row.name)
            assert list(inspect.signature(fn).parameters) == ["out", "Rout", "Rgrad"]
            assert fn.__name__ == row.name and fn.__doc__ == row.doc


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backend_rops_compute_the_registry_reference(dtype):
    for row in L.rop_kernels():
        rng = np.random.default_rng(zlib.crc32(row.name.encode()))
        out = rng.standard_normal((5, 3)).astype(dtype)
        Rout = rng.standard_normal((2, 5, 3)).astype(dtype)
        want = np.empty_like(Rout)
        row.reference(out, Rout, want)
        got = np.full_like(Rout, np.nan)
        getattr(_numpy, row.name)(out, Rout, got)
        np.testing.assert_array_equal(got, want)      # the reference itself
        for be in _backends():
            got = np.full_like(Rout, np.nan)
            getattr(be, row.name)(out, Rout, got)
            tol = 1e-5 if dtype == np.float32 else 1e-13
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
            with pytest.raises(ValueError):          # checked before the kernel runs
                getattr(be, row.name)(out[:-1], Rout, got)


def _call_args(row, rng, dtype):
    n, K = 6, 3
    out = rng.standard_normal((n, K)).astype(dtype)
    if row.takes_labels:
        target = rng.integers(0, K, n).astype(np.int64)
    else:
        p = rng.uniform(0.1, 1.0, (n, K))
        target = (p / p.sum(axis=1, keepdims=True)).astype(dtype)  # valid for every loss
    return out, target, rng.uniform(0.0, 1.0, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backend_functions_compute_the_registry_reference(dtype):
    for row in L.backend_kernels():
        rng = np.random.default_rng(zlib.crc32(row.name.encode()))
        out, target, weight = _call_args(row, rng, dtype)
        for w in (None, weight):
            want_grad = np.empty_like(out)
            want = row.reference(out, target, want_grad, w)
            got_grad = np.empty_like(out)
            # the NumPy backend: the reference itself, so the same bits
            assert getattr(_numpy, row.name)(out, target, got_grad, w) == want
            np.testing.assert_array_equal(got_grad, want_grad)
            for be in _backends():
                grad = np.empty_like(out)
                value = getattr(be, row.name)(out, target, grad, w)
                tol = 1e-5 if dtype == np.float32 else 1e-12
                np.testing.assert_allclose(value, want, rtol=tol)
                np.testing.assert_allclose(grad, want_grad, rtol=tol, atol=tol)


def test_backend_functions_check_before_computing():
    for row in L.backend_kernels():
        rng = np.random.default_rng(1)
        out, target, _ = _call_args(row, rng, np.float64)
        for be in _backends():
            grad = np.full_like(out, 7.0)
            with pytest.raises(ValueError):
                getattr(be, row.name)(out, target[:-1], grad)
            np.testing.assert_array_equal(grad, 7.0)


class _Scaled(L.Loss):
    """A loss added to the registry with a kernel of its own (NumPy only here)."""

    name = "scaled_mse_test"
    kernel, code = "loss_scaled_mse_test", 0

    @staticmethod
    def reference_fn(out, target, grad, weight=None):
        """J = the mean squared error times 3."""
        J = L.mse_reference(out, target, grad, weight)
        if grad is not None:
            grad *= 3.0
        return 3.0 * J


def test_a_new_registry_row_gets_a_checked_backend_function(monkeypatch):
    monkeypatch.setitem(L.REGISTRY, _Scaled.name, _Scaled())
    row = {r.name: r for r in L.backend_kernels()}["loss_scaled_mse_test"]
    assert row.reference is _Scaled.reference_fn and not row.takes_labels
    fn = _numpy._loss_function(row)
    rng = np.random.default_rng(2)
    out, target = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    grad, want_grad = np.empty_like(out), np.empty_like(out)
    assert fn(out, target, grad) == 3.0 * L.mse_reference(out, target, want_grad)
    np.testing.assert_array_equal(grad, 3.0 * want_grad)
    with pytest.raises(ValueError):
        fn(out, target[:, :1], grad)


def test_a_kernel_with_two_references_is_refused(monkeypatch):
    clash = _Scaled()
    clash.name = "clash_test"
    clash.kernel = "loss_mse"            # loss_mse's name with another reference
    monkeypatch.setitem(L.REGISTRY, clash.name, clash)
    with pytest.raises(ValueError, match="loss_mse"):
        L.backend_kernels()
    reuse = L.MeanSquaredError()
    reuse.name = "reuse_test"            # a second loss reusing mse's kernel is fine
    monkeypatch.setitem(L.REGISTRY, "clash_test", reuse)
    assert [r.name for r in L.backend_kernels()].count("loss_mse") == 1


class _StepLoopOnly(L.MeanSquaredError):
    """mse's kernels and reference, but no code of the compiled epoch loop."""

    name = "mse_step_loop_only_test"
    code = None


def test_a_loss_without_a_loop_code_trains_on_the_step_loop(monkeypatch):
    """Such a loss (CONTRIBUTING.md: a loss without the loop's step) trains with the
    loop switched on exactly as mse does with the loop off (same kernels)."""
    import nncore as nc
    from nncore import training

    monkeypatch.setitem(L.REGISTRY, _StepLoopOnly.name, _StepLoopOnly())
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    params = []
    for loss, loop in ((_StepLoopOnly.name, True), ("mse", False)):
        monkeypatch.setattr(training, "_EPOCH_LOOP", loop)
        net = nc.Network([nc.Dense(3, 5, "tanh"), nc.Dense(5, 2)], loss=loss, seed=1)
        net.fit(X, y, optimizer=nc.optim.Adam(0.01), batch_size=8, epochs=2, progress=False,
                seed=0)
        params.append(net.params.copy())
    np.testing.assert_array_equal(params[0], params[1])
