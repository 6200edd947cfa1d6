"""Tests of nc.tune: space generation, sweeps on every executor, failures, halving, CLI."""

import concurrent.futures as cf
import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import nncore as nc
from nncore import tune
from nncore.cli import tune_main

# Columns that must agree exactly whatever the executor (wall time never does).
DETERMINISTIC = ("trial", "params", "metric", "val_loss", "val_accuracy", "loss", "epochs",
                 "status", "error", "seed")


def _blobs(n=160, seed=0):
    """Three Gaussian classes in 4-D: learnable in a few epochs, not trivially."""
    rng = np.random.default_rng(seed)
    centers = np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    y = rng.integers(0, 3, n)
    X = centers[y] + rng.normal(0, 1.0, (n, 4))
    return X.astype(np.float32), y


SPACE = {"hidden": [(8,), (6, 4)], "lr": [0.01, 0.05], "epochs": 3, "batch_size": 16,
         "activation": "tanh"}


def _table(result):
    return [{k: r[k] for k in DETERMINISTIC} for r in result.records]


def _same(a, b):
    """Record lists equal exactly (NaN equal to NaN)."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for k in DETERMINISTIC:
            va, vb = ra[k], rb[k]
            if isinstance(va, float) and math.isnan(va):
                assert isinstance(vb, float) and math.isnan(vb), (k, ra, rb)
            else:
                assert va == vb, (k, ra, rb)


@pytest.fixture(scope="module")
def serial_result():
    X, y = _blobs()
    return tune.search(SPACE, X, y, validation=0.25, executor="serial", seed=3,
                       progress=False)


# --------------------------------------------------------------------------- spaces

def test_grid_order_and_fixed_values():
    g = tune.grid({"lr": [0.1, 0.01], "hidden": [8, (4, 2)], "epochs": 5})
    assert g == [
        {"lr": 0.1, "hidden": 8, "epochs": 5}, {"lr": 0.1, "hidden": (4, 2), "epochs": 5},
        {"lr": 0.01, "hidden": 8, "epochs": 5}, {"lr": 0.01, "hidden": (4, 2), "epochs": 5},
    ]
    assert tune.grid({"activation": tune.choice(["relu", "tanh"])}) == [
        {"activation": "relu"}, {"activation": "tanh"}]
    assert tune.grid({}) == [{}]


def test_grid_rejects_continuous_and_empty():
    with pytest.raises(ValueError, match="random"):
        tune.grid({"lr": tune.loguniform(1e-4, 1e-1)})
    with pytest.raises(ValueError, match="empty"):
        tune.grid({"lr": []})


def test_random_is_seeded_and_in_range():
    space = {"lr": tune.loguniform(1e-4, 1e-1), "dropout": tune.uniform(0.0, 0.5),
             "epochs": tune.randint(2, 5), "activation": tune.choice(["relu", "tanh"]),
             "batch_size": [16, 32, 64], "optimizer": "adam"}
    a = tune.random(space, 200, seed=1)
    assert a == tune.random(space, 200, seed=1)
    assert a != tune.random(space, 200, seed=2)
    lr = np.array([c["lr"] for c in a])
    assert lr.min() >= 1e-4 and lr.max() < 1e-1
    # log-uniform: about half the samples below the geometric midpoint
    assert 0.35 < np.mean(lr < math.sqrt(1e-4 * 1e-1)) < 0.65
    assert {c["epochs"] for c in a} == {2, 3, 4}  # high is exclusive
    assert {c["batch_size"] for c in a} == {16, 32, 64}
    assert {c["activation"] for c in a} == {"relu", "tanh"}
    assert all(0.0 <= c["dropout"] < 0.5 and c["optimizer"] == "adam" for c in a)
    assert all(type(c["epochs"]) is int and type(c["lr"]) is float for c in a)


@pytest.mark.parametrize("bad", [
    lambda: tune.uniform(1, 1), lambda: tune.loguniform(0, 1),
    lambda: tune.randint(0.5, 3), lambda: tune.choice([]),
    lambda: tune.random({"lr": [0.1]}, 0),
])
def test_bad_distributions(bad):
    with pytest.raises(ValueError):
        bad()


def test_unknown_keys_fail_before_any_trial():
    class Counting(cf.Executor):
        submitted = 0

        def submit(self, fn, *args, **kwargs):
            Counting.submitted += 1
            raise AssertionError("no trial may run")

    X, y = _blobs(40)
    with pytest.raises(ValueError, match="hidden_units"):
        tune.grid({"hidden_units": [8]})
    with pytest.raises(ValueError, match="hidden_units"):
        tune.random({"hidden_units": [8]}, 2)
    with pytest.raises(ValueError, match="hiden"):
        tune.search([{"lr": 0.1}, {"hiden": (3,)}], X, y, executor=Counting())
    with pytest.raises(ValueError, match="not both"):
        tune.search({"hidden": [(3,)], "depth": [2]}, X, y, executor=Counting())
    with pytest.raises(ValueError, match="mode"):
        tune.search({"lr": [0.1]}, X, y, executor=Counting(), metric=lambda n, a, b: 0.0)
    with pytest.raises(ValueError, match="scheduler"):
        tune.search({"lr": [0.1]}, X, y, executor=Counting(), scheduler="asha")
    with pytest.raises(ValueError, match="validation"):
        tune.search({"lr": [0.1]}, X, y, executor=Counting(), validation=1.5)
    assert Counting.submitted == 0


def test_space_from_json():
    space = tune.space_from_json(json.loads(
        '{"hidden": [[8], [6, 4]], "lr": {"loguniform": [1e-3, 1e-1]},'
        ' "activation": {"choice": ["relu", "tanh"]}, "epochs": 2}'))
    assert space["hidden"] == [(8,), (6, 4)]
    assert space["lr"] == tune.loguniform(1e-3, 1e-1)
    assert tune.space_from_json({"hidden": [8, 16]})["hidden"] == [8, 16]
    with pytest.raises(ValueError, match="distribution"):
        tune.space_from_json({"lr": {"gaussian": [0, 1]}})
    # A string is not a list of candidates, and bounds come as a pair.
    with pytest.raises(ValueError, match="choice takes a list"):
        tune.space_from_json({"optimizer": {"choice": "adam"}})
    for bad in (3, [1e-3], [1, 2, 3]):
        with pytest.raises(ValueError, match=r"takes \[low, high\]"):
            tune.space_from_json({"lr": {"uniform": bad}})


def test_build_matches_config():
    net = tune.build({"depth": 2, "width": 5, "activation": "tanh", "dropout": 0.1,
                      "l1": 0.01, "l2": 0.02, "dtype": "float64", "optimizer": "sgd"},
                     3, 2, loss="cross_entropy", seed=0)
    dense = [l for l in net.layers if isinstance(l, nc.Dense)]
    assert [(d.n_in, d.n_out, d.activation) for d in dense] == [
        (3, 5, "tanh"), (5, 5, "tanh"), (5, 2, "linear")]
    assert sum(isinstance(l, nc.Dropout) for l in net.layers) == 2
    assert net.dtype == np.float64 and net.loss_name == "cross_entropy"
    assert net.params.size == 3 * 5 + 5 + 5 * 5 + 5 + 5 * 2 + 2
    a = tune.build({"hidden": (4,)}, 3, 1, seed=7)
    b = tune.build({"layers": [4]}, 3, 1, seed=7)
    np.testing.assert_array_equal(a.params, b.params)


# --------------------------------------------------------------------------- sweeps

def test_serial_sweep_records(serial_result):
    res = serial_result
    assert [r["trial"] for r in res.records] == [0, 1, 2, 3]
    assert [r["params"] for r in res.records] == tune.grid(SPACE)
    assert all(r["status"] == "ok" and r["error"] == "" for r in res.records)
    assert all(r["epochs"] == 3 and r["time"] > 0 for r in res.records)
    assert len({r["seed"] for r in res.records}) == 4
    # the metric is the validation data loss of the returned network
    best = res.best_record
    assert best["metric"] == min(r["val_loss"] for r in res.records)
    assert res.best_params == best["params"] and res.best_score == best["metric"]
    X, y = _blobs()
    # independent check of the reported val_loss: refit the best config by hand
    # with the same split and seed, then evaluate softmax cross-entropy with NumPy
    perm = np.random.default_rng(3).permutation(len(X))
    va, tr = np.sort(perm[:40]), np.sort(perm[40:])
    net = tune.build(best["params"], 4, 3, loss="cross_entropy", seed=best["seed"])
    net.fit(X[tr], y[tr], optimizer=nc.optim.Adam(best["params"]["lr"]), batch_size=16,
            epochs=3, validation_data=(X[va], y[va]), progress=False, seed=best["seed"])
    np.testing.assert_array_equal(net.params, res.best_network.params)
    z = res.best_network.forward(X[va]).astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    ce = -np.mean(z[np.arange(40), y[va]] - np.log(np.exp(z).sum(axis=1)))
    assert best["val_loss"] == pytest.approx(ce, rel=1e-12)
    acc = np.mean(res.best_network.predict(X[va]) == y[va])
    assert best["val_accuracy"] == pytest.approx(acc)
    assert set(res.histories) == {0, 1, 2, 3} and len(res.histories[0]["loss"]) == 3


def test_process_pool_matches_serial(serial_result):
    X, y = _blobs()
    res = tune.search(SPACE, X, y, validation=0.25, seed=3, n_workers=2, progress=False)
    _same(_table(res), _table(serial_result))
    np.testing.assert_array_equal(res.best_network.params, serial_result.best_network.params)


def test_thread_pool_matches_serial(serial_result):
    X, y = _blobs()
    with cf.ThreadPoolExecutor(2) as ex:
        res = tune.search(SPACE, X, y, validation=0.25, seed=3, executor=ex, progress=False)
    _same(_table(res), _table(serial_result))


def test_dask_matches_serial(serial_result, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    X, y = _blobs()
    np.savez(tmp_path / "d.npz", X=X, y=y)
    (tmp_path / "space.json").write_text(json.dumps({"hidden": [[8], [6, 4]], "epochs": 2}))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            res = tune.search(SPACE, X, y, validation=0.25, seed=3, executor=client,
                              progress=False)
        # the command line reaches the same cluster by its scheduler address
        rc = tune_main([str(tmp_path / "d.npz"), "--space", str(tmp_path / "space.json"),
                            "--scheduler", cluster.scheduler_address, "--no-progress",
                            "--out", str(tmp_path / "dask.csv")])
    _same(_table(res), _table(serial_result))
    assert rc == 0
    cli_rows = list(csv.DictReader(open(tmp_path / "dask.csv")))
    local = tune.search({"hidden": [(8,), (6, 4)], "epochs": 2}, X, y, executor="serial",
                        progress=False)
    assert [float(r["metric"]) for r in cli_rows] == [r["metric"] for r in local.records]
    np.testing.assert_array_equal(res.best_network.params, serial_result.best_network.params)


def test_failing_trials_are_recorded():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) * 100.0
    configs = [{"hidden": (4,), "epochs": 2},
               {"activation": "nope", "epochs": 2},
               {"optimizer": "sgd", "lr": 1e6, "epochs": 3},
               {"optimizer": "bfgs", "lr": 0.1, "epochs": 2}]
    res = tune.search(configs, X, y, executor="serial", progress=False)
    status = [r["status"] for r in res.records]
    assert status == ["ok", "failed", "failed", "failed"]
    assert "nope" in res.records[1]["error"]
    assert res.records[2]["error"].startswith("DivergenceError")
    assert "full-batch" in res.records[3]["error"]
    assert all(math.isnan(r["metric"]) for r in res.records[1:])
    assert res.best_record["trial"] == 0


def test_keyboard_interrupt_keeps_finished_trials():
    class Interrupting(cf.Executor):
        def __init__(self):
            self.n = 0

        def submit(self, fn, *args, **kwargs):
            self.n += 1
            if self.n == 3:
                raise KeyboardInterrupt
            fut = cf.Future()
            fut.set_result(fn(*args, **kwargs))
            return fut

    X, y = _blobs(60)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        res = tune.search(SPACE, X, y, executor=Interrupting(), progress=False)
    assert res.interrupted
    assert [r["trial"] for r in res.records] == [0, 1]
    assert res.best_network is not None


def test_dataframe_and_csv(serial_result, tmp_path):
    pd = pytest.importorskip("pandas")
    df = serial_result.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 4
    assert {"param_hidden", "param_lr", "metric", "epochs", "time", "status"} <= set(df.columns)
    assert list(df["metric"]) == [r["metric"] for r in serial_result.records]
    path = tmp_path / "r.csv"
    serial_result.to_csv(path)
    rows = list(csv.DictReader(open(path)))
    assert [float(r["metric"]) for r in rows] == [r["metric"] for r in serial_result.records]


def test_successive_halving_runs_fewer_epochs():
    X, y = _blobs(120)
    space = {"hidden": [(4,), (8,), (12,)], "lr": [0.003, 0.01, 0.05], "epochs": 9,
             "batch_size": 32}
    full = tune.search(space, X, y, executor="serial", progress=False)
    sh = tune.search(space, X, y, executor="serial", progress=False, scheduler="halving")
    assert tune.SuccessiveHalving().rungs(9, 9) == [(9, 1), (3, 3), (1, 9)]
    assert full.total_epochs == 81
    assert sh.total_epochs == 9 * 1 + 3 * 3 + 1 * 9 < full.total_epochs
    final = [r for r in sh.records if r["rung"] == 2]
    assert len(final) == 1 and final[0]["epochs"] == 9
    # each rung retrains from scratch with the trial's seed: the survivor's full run
    # is exactly its run in the plain grid
    i = final[0]["trial"]
    assert final[0]["metric"] == full.records[i]["metric"]
    assert sh.best_record["trial"] == i
    # the survivor was among the best third after 3 epochs, and is not the grid's worst
    assert full.records[i]["metric"] < max(r["metric"] for r in full.records)


def test_best_beats_worst_on_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(X))
    test, train = perm[:400], perm[400:]
    configs = [{"hidden": (32,), "lr": 0.01, "epochs": 8},
               {"hidden": (2,), "lr": 1e-4, "epochs": 1, "optimizer": "sgd"},
               {"hidden": (16,), "lr": 0.003, "epochs": 4}]
    res = tune.search(configs, X[train], y[train], metric="val_accuracy", n_workers=2,
                      progress=False)
    assert res.mode == "max"
    worst = min(res.records, key=lambda r: r["metric"])
    assert res.best_record["trial"] == 0 and worst["trial"] == 1
    # on data no trial saw: the best network generalises and the worst does not
    acc_best = np.mean(res.best_network.predict(X[test]) == y[test])
    assert acc_best > 0.9
    net = tune.build(worst["params"], 64, 10, loss="cross_entropy", seed=worst["seed"])
    assert acc_best > np.mean(net.predict(X[test]) == y[test]) + 0.5


def test_callable_metric_and_early_stopping():
    X, y = _blobs(80)

    res = tune.search({"lr": [0.01, 0.3], "epochs": 30}, X, y, executor="serial",
                      metric=_neg_accuracy, mode="min", early_stopping=2, progress=False)
    assert res.metric == "_neg_accuracy"
    for r in res.records:
        assert r["metric"] == pytest.approx(-r["val_accuracy"])
        assert r["epochs"] <= 30
    assert any(r["epochs"] < 30 for r in res.records)  # patience 2 stopped someone


def _neg_accuracy(net, X, y):
    return -float(np.mean(net.predict(X) == y))


# --------------------------------------------------------------------------- CLI

def test_cli_main(tmp_path, capsys):
    X, y = _blobs(80)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    (tmp_path / "space.json").write_text(json.dumps(
        {"hidden": [[6], [4, 4]], "lr": {"loguniform": [1e-3, 1e-1]}, "epochs": 2}))
    out = tmp_path / "res.csv"
    rc = tune_main([str(tmp_path / "d.npz"), "--space", str(tmp_path / "space.json"),
                        "--n-trials", "3", "--workers", "0", "--out", str(out),
                        "--no-progress", "--save-best", str(tmp_path / "best.npz")])
    assert rc == 0
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert "best val_loss" in capsys.readouterr().out
    assert (tmp_path / "best.npz").exists()
    rc = tune_main([str(tmp_path / "d.npz"), "--space", str(tmp_path / "missing.json")])
    assert rc == 2


def test_import_stays_light():
    code = ("import sys, nncore; assert nncore.tune.search; "
            "print(sorted(m for m in ('pandas', 'dask', 'distributed', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_objects_as_values_cross_processes():
    """Augmentations and lr schedules travel to worker processes and reproduce exactly."""
    X, y = _blobs(80)
    space = {"augment": [None, nc.augment.GaussianNoise(0.1)],
             "lr": [0.01, nc.schedules.ExponentialDecay(0.02, 0.5)],
             "depth": 2, "width": 5, "dropout": 0.2, "l2": 1e-3, "epochs": 3}
    a = tune.search(space, X, y, executor="serial", progress=False)
    b = tune.search(space, X, y, n_workers=2, progress=False)
    assert all(r["status"] == "ok" for r in a.records)
    _same(_table(a), _table(b))
    # the augmentation and the schedule change the result (they reached fit)
    assert len({r["metric"] for r in a.records}) == 4
    assert a.histories[1]["lr"] == pytest.approx([0.02, 0.01, 0.005])


def test_progress_bar(capsys):
    pytest.importorskip("tqdm")
    X, y = _blobs(40)
    tune.search({"lr": [0.01, 0.02]}, X, y, executor="serial", progress=True,
                defaults={"epochs": 1})
    err = capsys.readouterr().err
    assert "tune" in err and "2/2" in err


def test_nncore_tune_command(tmp_path, capsys):
    cli = pytest.importorskip("nncore.cli")
    X, y = _blobs(60)
    with open(tmp_path / "d.csv", "w") as fh:
        fh.write("a,b,c,d,label\n")
        for row, lab in zip(X, y):
            fh.write(",".join(f"{v:.6f}" for v in row) + f",{lab}\n")
    (tmp_path / "s.json").write_text('{"lr": [0.01, 0.1], "epochs": 2}')
    rc = cli.main(["tune", str(tmp_path / "d.csv"), "--space", str(tmp_path / "s.json"),
                   "--workers", "0", "--no-progress", "--out", str(tmp_path / "r.csv")])
    assert rc == 0, capsys.readouterr().err
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [r["param_lr"] for r in rows] == ["0.01", "0.1"]
    assert all(r["status"] == "ok" and r["epochs"] == "2" for r in rows)
    (tmp_path / "bad.json").write_text('{"learning_rat": [0.1]}')
    rc = cli.main(["tune", str(tmp_path / "d.csv"), "--space", str(tmp_path / "bad.json")])
    assert rc != 0 and "learning_rat" in capsys.readouterr().err


def test_spawned_workers_match_serial(serial_result):
    """The start method of macOS/Windows (and forkserver, Python 3.14's default)."""
    X, y = _blobs()
    res = tune.search(SPACE, X, y, validation=0.25, seed=3, n_workers=2, progress=False,
                      mp_context="spawn")
    _same(_table(res), _table(serial_result))


def test_loss_per_configuration():
    """0/1 labels: cross-entropy over 2 outputs or binary cross-entropy over 1."""
    X, y = _blobs(80)
    y = (y == 0).astype(np.int64)
    res = tune.search({"loss": ["cross_entropy", "binary_cross_entropy"], "epochs": 2},
                      X, y, executor="serial", progress=False)
    assert [r["status"] for r in res.records] == ["ok", "ok"]
    assert all(0.0 <= r["val_accuracy"] <= 1.0 for r in res.records)
    net = res.best_network
    assert net.loss_name == res.best_params["loss"]
    assert net.layers[-1].n_out == (2 if net.loss_name == "cross_entropy" else 1)
