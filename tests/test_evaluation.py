"""net.evaluate, the shuffled/stratified validation split, the fit docstring,
and save's .npz suffix (issue 16 item 7)."""

import inspect
import os
import pydoc

import numpy as np
import pytest

import nncore as nc
from nncore import training
from nncore.evaluation import split_rows


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _blobs(n_per=50, k=3, seed=0):
    """k well-separated Gaussian blobs, rows sorted by class (like iris)."""
    rng = np.random.default_rng(seed)
    centres = 4.0 * np.eye(k, 4)
    X = np.concatenate([c + 0.5 * rng.normal(size=(n_per, 4)) for c in centres])
    return X, np.repeat(np.arange(k), n_per)


# --------------------------------------------------------------------------- evaluate

@pytest.mark.parametrize("loss, k", [("cross_entropy", 3), ("binary_cross_entropy", 1),
                                     ("binary_cross_entropy", 2), ("mse", 2)])
def test_evaluate_matches_loss_and_numpy_accuracy(loss, k):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(37, 4))
    y = rng.integers(0, k, 37) if loss == "cross_entropy" else (
        rng.integers(0, 2, (37, k)) if loss == "binary_cross_entropy" else rng.normal(size=(37, k)))
    net = nc.Network([nc.Dense(4, 6, "tanh"), nc.Dropout(0.3), nc.Dense(6, k)], loss=loss,
                     regularizer=nc.L2(1e-2), dtype="float64", seed=0)
    before = net.params.copy()
    res = net.evaluate(X, y)
    assert res["loss"] == net.loss(X, y)                    # penalty included, dropout off
    Z = net.forward(X)
    if loss == "cross_entropy":
        acc = np.mean(np.argmax(_softmax(Z), axis=1) == y)
    elif loss == "binary_cross_entropy":
        acc = np.mean((1.0 / (1.0 + np.exp(-Z)) >= 0.5) == y)
    if loss == "mse":
        assert set(res) == {"loss"}
    else:
        assert set(res) == {"loss", "accuracy"} and res["accuracy"] == pytest.approx(acc, abs=1e-12)
    np.testing.assert_array_equal(net.params, before)


def test_evaluate_equals_fit_validation_logs():
    X, y = _blobs(20)
    Xv, yv = _blobs(10, seed=1)
    net = nc.Network([nc.Dense(4, 8, "relu"), nc.Dense(8, 3)], loss="cross_entropy", seed=0)
    hist = net.fit(X, y, epochs=3, validation_data=(Xv, yv), progress=False, seed=0)
    res = net.evaluate(Xv, yv)
    assert res == {"loss": hist.history["val_loss"][-1], "accuracy": hist.history["val_accuracy"][-1]}


def test_evaluate_bad_input():
    net = nc.Network([nc.Dense(4, 3)], loss="cross_entropy", seed=0)
    with pytest.raises(ValueError, match="labels"):
        net.evaluate(np.zeros((5, 4)), np.full(5, 3))
    with pytest.raises(ValueError, match="4"):
        net.evaluate(np.zeros((5, 2)), np.zeros(5, int))


# --------------------------------------------------------------------------- help(fit)

def test_help_of_network_fit_documents_every_parameter():
    text = pydoc.render_doc(nc.Network.fit, renderer=pydoc.plaintext)
    for name in inspect.signature(nc.Network.fit).parameters:
        if name != "self":
            assert f"{name} :" in text, name
    assert "nncore.training.fit, which documents" not in text
    # the functional form takes the same keywords, plus the network
    fit_params = list(inspect.signature(training.fit).parameters)
    method_params = list(inspect.signature(nc.Network.fit).parameters)
    assert fit_params[0] == "net" and set(fit_params[1:]) == set(method_params[1:])


# --------------------------------------------------------------------------- validation split

def test_sorted_data_unshuffled_split_validates_on_one_class_shuffled_on_all():
    """The issue's symptom: the last third of class-sorted data is one class,
    which the network never trains on; the stratified draw fixes it."""
    X, y = _blobs(50)
    accs = {}
    for shuffle in (False, True):
        net = nc.Network([nc.Dense(4, 16, "tanh"), nc.Dense(16, 3)], loss="cross_entropy",
                         dtype="float64", seed=0)
        h = net.fit(X, y, optimizer="lbfgs", epochs=40, validation_split=0.34,
                    validation_shuffle=shuffle, progress=False, seed=0)
        accs[shuffle] = h.history["val_accuracy"][-1]
    assert accs[False] < 0.1 and accs[True] > 0.95


@pytest.mark.parametrize("loss, stratified", [("cross_entropy", True), ("cross_entropy_proba", True),
                                              ("binary_cross_entropy", True), ("mse", False)])
def test_split_rows_shuffled(loss, stratified):
    rng = np.random.default_rng(3)
    n = 103
    labels = np.sort(rng.choice(3 if loss.startswith("cross") else 2, n, p=None))
    k = 3 if loss.startswith("cross") else 1
    net = nc.Network([nc.Dense(2, k if loss != "binary_cross_entropy" else 1)],
                     loss=loss.replace("_proba", ""), dtype="float64", seed=0)
    X = np.column_stack([np.arange(n, dtype=float), labels])
    T = (np.eye(3)[labels] if loss == "cross_entropy_proba" else
         labels if loss == "cross_entropy" else labels[:, None].astype(float))
    Xa, Ta = net._check_X(X), net._check_y(T, n)
    frac = 0.3
    Xt, Tt, Xv, Tv = split_rows(net, Xa, Ta, frac, True, np.random.default_rng(0))
    n_val = n - int(np.floor(n * (1 - frac)))
    assert len(Xv) == len(Tv) == n_val and len(Xt) == len(Tt) == n - n_val
    rows_t, rows_v = Xt[:, 0].astype(int), Xv[:, 0].astype(int)
    assert np.all(np.diff(rows_t) > 0) and np.all(np.diff(rows_v) > 0)   # data order kept
    assert set(rows_t).isdisjoint(rows_v) and set(rows_t) | set(rows_v) == set(range(n))
    np.testing.assert_array_equal(Tv, Ta[rows_v])                      # targets follow rows
    if stratified:
        for c in np.unique(labels):
            n_c = np.sum(labels == c)
            assert abs(np.sum(labels[rows_v] == c) - n_c * n_val / n) < 1.0
    again = split_rows(net, Xa, Ta, frac, True, np.random.default_rng(0))[2]
    other = split_rows(net, Xa, Ta, frac, True, np.random.default_rng(1))[2]
    np.testing.assert_array_equal(again, Xv)
    assert not np.array_equal(other, Xv)


def test_split_rows_unshuffled_is_the_last_rows_as_views():
    net = nc.Network([nc.Dense(2, 1)], dtype="float64", seed=0)
    X = np.arange(20.0).reshape(10, 2)
    T = np.arange(10.0).reshape(10, 1)
    Xt, Tt, Xv, Tv = split_rows(net, X, T, 0.25, False, None)
    np.testing.assert_array_equal(Xv, X[7:])             # floor(10 * 0.75) = 7 training rows
    assert np.shares_memory(Xt, X) and np.shares_memory(Tv, T)


def test_fit_shuffled_split_is_seeded_and_checked():
    X, y = _blobs(20)
    runs = []
    for seed in (0, 0, 1):
        net = nc.Network([nc.Dense(4, 3)], loss="cross_entropy", seed=0)
        runs.append(net.fit(X, y, epochs=2, validation_split=0.25, validation_shuffle=True,
                            progress=False, seed=seed).history["val_loss"])
    assert runs[0] == runs[1] and runs[0] != runs[2]
    net = nc.Network([nc.Dense(4, 3)], loss="cross_entropy", seed=0)
    before = net.params.copy()
    with pytest.raises(ValueError, match="validation_split"):
        net.fit(X, y, validation_shuffle=True, progress=False)
    with pytest.raises(TypeError, match="validation_shuffle"):
        net.fit(X, y, validation_split=0.2, validation_shuffle="yes", progress=False)
    np.testing.assert_array_equal(net.params, before)


# --------------------------------------------------------------------------- save suffix

def test_save_adds_npz_to_a_bare_name(tmp_path):
    net = nc.Network([nc.Dense(3, 2)], seed=0)
    written = net.save(tmp_path / "model")
    assert written == str(tmp_path / "model.npz") and os.listdir(tmp_path) == ["model.npz"]
    for name in ("model", "model.npz"):
        np.testing.assert_array_equal(nc.load(tmp_path / name).params, net.params)
    assert net.save(tmp_path / "m.ckpt") == str(tmp_path / "m.ckpt")    # a suffix is kept
    assert sorted(os.listdir(tmp_path)) == ["m.ckpt", "model.npz"]


def test_checkpoint_records_the_file_written(tmp_path):
    X, y = _blobs(10)
    net = nc.Network([nc.Dense(4, 3)], loss="cross_entropy", seed=0)
    ck = nc.callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch}"), save_best_only=False)
    net.fit(X, y, epochs=2, validation_split=0.2, callbacks=[ck], progress=False)
    assert ck.saved == [str(tmp_path / f"ckpt-{e}.npz") for e in (1, 2)]
    assert all(os.path.exists(p) for p in ck.saved)
