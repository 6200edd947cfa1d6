"""The compiled epoch loop's workspace (``_kernels.EpochWorkspace``): it allocates
and sizes its own buffers, and the loop refuses, with a ValueError and nothing
changed, a workspace built for another layout, a buffer whose shape was changed,
or a call whose arrays share memory with a buffer (the backup above all)."""

import numpy as np
import pytest

from nncore.backend import _epoch as E

K = pytest.importorskip("nncore._kernels")


def _call(dtype=np.float64, batch=4, weight_decay=0.0):
    """The arguments of one train_epoch_loop call on a 3-5-2 MSE net with dropout."""
    rng = np.random.default_rng(0)
    n, d, h, k = 10, 3, 5, 2
    X = rng.normal(size=(n, d))
    T = rng.normal(size=(n, k))
    P = d * h + h + h * k + k
    params = rng.normal(size=P).astype(dtype)
    ops = [(E.DENSE, d, h, 1, 0, 0.0), (E.DROPOUT, h, h, 0, 0, 0.3),
           (E.DENSE, h, k, 0, d * h + h, 0.0)]
    hyper = {"lr": 0.1, "clip_norm": 0.0, "weight_decay": weight_decay, "momentum": 0.0,
             "dampening": 0.0, "nesterov": False}
    return dict(X=X, T=T, order=np.arange(n, dtype=np.int64), batch_size=batch,
                stop=-(-n // batch), params=params, grads=np.zeros_like(params), ops=ops,
                loss_code=0, segments=np.zeros((0, 2), np.int64), l1=0.0, l2=0.0,
                opt_kind=K.LOOP_OPTIMIZERS["sgd"][0], hyper=hyper, opt_buffers=(),
                dropout_seed=1, state=E.new_state())


def _workspace(call):
    X, params = call["X"], call["params"]
    return K.EpochWorkspace(params.dtype, [op[:3] for op in call["ops"]], call["batch_size"],
                            X.shape[1], False, params.shape[0],
                            call["hyper"]["weight_decay"] != 0.0)


def _run(call, ws):
    args = dict(call, workspace=ws)
    K.train_epoch_loop(args.pop("X"), args.pop("T"), args.pop("order"), args.pop("batch_size"),
                       args.pop("stop"), args.pop("params"), args.pop("grads"), args.pop("ops"),
                       args.pop("loss_code"), args.pop("segments"), args.pop("l1"),
                       args.pop("l2"), args.pop("opt_kind"), args.pop("hyper"),
                       args.pop("opt_buffers"), args.pop("workspace"), args.pop("dropout_seed"),
                       args.pop("state"))


def _assert_refused(call, ws, match):
    params, state = call["params"].copy(), dict(call["state"])
    with pytest.raises(ValueError, match=match):
        _run(call, ws)
    np.testing.assert_array_equal(call["params"], params)
    assert call["state"] == state


def test_workspace_sizes_its_buffers_from_the_layout():
    call = _call(np.float32, batch=4, weight_decay=0.1)
    ws = _workspace(call)
    assert ws.batch_x.shape == (4, 3) and ws.batch_x.dtype == np.float32
    assert ws.output_grad.shape == (4, 2) and ws.backup.shape == call["params"].shape
    assert ws.decayed_grads.shape == call["params"].shape
    assert [tuple(None if a is None else a.shape for a in bufs) for bufs in ws.layer_buffers] \
        == [((4, 5), None, None), ((4, 5), (4, 5), None), ((4, 2), None, (4, 5))]
    _run(call, ws)      # and it runs
    assert call["state"]["step"] == call["stop"] and not call["state"]["diverged"]


@pytest.mark.parametrize("change", ["batch", "dtype", "layout", "coupled", "features"])
def test_workspace_for_another_layout_is_refused(change):
    call = _call()
    ws = _workspace(call)
    if change == "batch":
        call["batch_size"] = 5
        call["stop"] = 2
    elif change == "dtype":
        call["params"] = call["params"].astype(np.float32)
        call["grads"] = np.zeros_like(call["params"])
    elif change == "layout":
        call["ops"] = [call["ops"][0], call["ops"][2]]
    elif change == "coupled":
        call["hyper"]["weight_decay"] = 0.1
    else:
        call["X"] = np.ascontiguousarray(np.hstack([call["X"], call["X"]]))
    _assert_refused(call, ws, "EpochWorkspace")


@pytest.mark.parametrize("buffer", ["batch_x", "output_grad", "backup", "layer_out"])
def test_buffer_reshaped_in_place_is_refused(buffer):
    """An ndarray's shape can be reassigned in place; the loop checks every call."""
    call = _call()
    ws = _workspace(call)
    a = ws.layer_buffers[1][0] if buffer == "layer_out" else getattr(ws, buffer)
    a.shape = (1, a.size)
    _assert_refused(call, ws, "no longer")


@pytest.mark.parametrize("alias", ["params", "grads", "X", "optimizer buffer 0"])
def test_call_array_sharing_memory_with_a_buffer_is_refused(alias):
    call = _call()
    ws = _workspace(call)
    if alias == "params":        # the backup must be disjoint from the parameters
        np.copyto(ws.backup, call["params"])
        call["params"] = ws.backup
        call["grads"] = np.zeros_like(ws.backup)
    elif alias == "grads":
        call["grads"] = ws.backup
    elif alias == "X":
        call["X"] = ws.batch_x
        call["T"], call["order"], call["stop"] = call["T"][:4], np.arange(4), 1
    else:
        call["hyper"] = dict(call["hyper"], momentum=0.9)
        call["opt_buffers"] = (ws.backup,)
    _assert_refused(call, ws, "shares memory")


@pytest.mark.parametrize("layout, msg", [
    ([], "needs layers"),
    ([(0, 4, 5)], "does not follow"),            # n_in is not X's width (3)
    ([(1, 3, 4)], "does not follow"),            # dropout changes the width
    ([(2, 3, 4)], "does not follow"),            # so does a residual layer
    ([(7, 3, 3)], "does not follow"),            # unknown kind
])
def test_workspace_rejects_a_layout_the_loop_cannot_run(layout, msg):
    with pytest.raises(ValueError, match=msg):
        K.EpochWorkspace(np.float64, layout, 4, 3, False, 10, False)
    with pytest.raises(ValueError, match="float32 or float64"):
        K.EpochWorkspace(np.int64, [(0, 3, 2)], 4, 3, False, 10, False)


@pytest.mark.parametrize("mistake", ["order", "offset", "act", "stop", "labels", "grads",
                                     "segments", "optimizer buffer"])
def test_loop_refuses_what_it_would_index_out_of_bounds(mistake):
    """The loop's own checks (beyond the workspace), as the backend's validation
    would have refused the same call."""
    call = _call()
    ws = _workspace(call)
    n_params = call["params"].shape[0]
    if mistake == "order":
        call["order"] = call["order"].copy()
        call["order"][3] = call["X"].shape[0]
    elif mistake == "offset":
        call["ops"] = call["ops"][:2] + [(E.DENSE, 5, 2, 0, n_params - 5, 0.0)]
    elif mistake == "act":
        call["ops"] = [(E.DENSE, 3, 5, 99, 0, 0.0)] + call["ops"][1:]
    elif mistake == "stop":
        call["stop"] += 1
    elif mistake == "labels":
        call["loss_code"] = 1       # cross-entropy with labels, two outputs
        call["T"] = np.array([0, 1, 2, 0, 1, 0, 1, 0, 1, 0], np.int64)
    elif mistake == "grads":
        call["grads"] = call["grads"][:-1].copy()
    elif mistake == "segments":
        call["segments"] = np.array([[0, n_params + 1]], np.int64)
    else:
        call["hyper"] = dict(call["hyper"], momentum=0.9)
        call["opt_buffers"] = (np.zeros(n_params - 1),)
    _assert_refused(call, ws, "train_epoch_loop")


def _run_weighted(call, ws, weight):
    K.train_epoch_loop(call["X"], call["T"], call["order"], call["batch_size"], call["stop"],
                       call["params"], call["grads"], call["ops"], call["loss_code"],
                       call["segments"], call["l1"], call["l2"], call["opt_kind"],
                       call["hyper"], call["opt_buffers"], ws, call["dropout_seed"],
                       call["state"], weight)


def test_workspace_owns_the_row_coefficients_of_a_weighted_batch():
    """``row_coef`` (a weighted step's w / sum w) is sized by the workspace and
    checked on every call like the other buffers."""
    call = _call(np.float32, batch=4)
    ws = _workspace(call)
    assert ws.row_coef.shape == (4,) and ws.row_coef.dtype == np.float64
    weight = np.random.default_rng(1).uniform(0.5, 2.0, call["X"].shape[0])
    _run_weighted(call, ws, weight)
    assert call["state"]["step"] == call["stop"]
    # the last batch's coefficients: its weights over their sum, in row order
    last = weight[(call["stop"] - 1) * 4:]
    np.testing.assert_allclose(ws.row_coef[:last.size], last / last.sum(), rtol=1e-15)


@pytest.mark.parametrize("mistake", ["reshaped", "aliased", "length"])
def test_weighted_call_with_a_bad_row_coef_or_weight_is_refused(mistake):
    call = _call()
    ws = _workspace(call)
    weight = np.ones(call["X"].shape[0])
    if mistake == "reshaped":
        ws.row_coef.shape = (1, ws.row_coef.size)
        match = "row_coef is no longer"
    elif mistake == "aliased":
        # four rows, so the workspace's own coefficients pass as the weights
        call["X"], call["T"] = call["X"][:4].copy(), call["T"][:4].copy()
        call["order"], call["stop"] = np.arange(4), 1
        weight = ws.row_coef
        match = "shares memory with sample_weight"
    else:
        weight = weight[:-1].copy()
        match = "one weight per row"
    params, state = call["params"].copy(), dict(call["state"])
    with pytest.raises(ValueError, match=match):
        _run_weighted(call, ws, weight)
    np.testing.assert_array_equal(call["params"], params)
    assert call["state"] == state
