"""The nncore command line: train/evaluate/predict/datasets, and its errors."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

import nncore as nc
from nncore.cli import load_data, main


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture
def blobs_csv(tmp_path):
    """Three separable clusters on very different feature scales, string labels."""
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [3.0, 3.0], [0.0, 4.0]])
    rows = []
    for k, name in enumerate(["red", "green", "blue"]):
        pts = centers[k] + 0.4 * rng.normal(size=(40, 2))
        for p in pts:
            # feature "big" is in the thousands: standardisation must handle it
            rows.append([name, f"{p[0]:.6f}", f"{1000 * p[1] + 5000:.3f}"])
    path = tmp_path / "blobs.csv"
    _write_csv(path, ["colour", "small", "big"], rows)
    return path


def test_train_evaluate_predict_csv_roundtrip(tmp_path, blobs_csv, capsys):
    model = tmp_path / "m.npz"
    rc = main(["train", str(blobs_csv), "--target", "colour", "--layers", "16",
               "--lr", "0.02", "--epochs", "60", "--seed", "1", "--out", str(model),
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "accuracy" in out and "validation" in out and "model saved" in out
    net = nc.load(model)
    meta = net.metadata
    assert meta["task"] == "classification"
    assert meta["classes"] == ["blue", "green", "red"]
    assert meta["feature_names"] == ["small", "big"]
    # The stored statistics are those of the training split (80 % of the rows).
    data = np.genfromtxt(blobs_csv, delimiter=",", skip_header=1, usecols=(1, 2))
    assert abs(meta["mean"][1] - data[:, 1].mean()) < 0.2 * data[:, 1].std()
    assert 500 < meta["std"][1] < 2000

    rc = main(["evaluate", str(model), str(blobs_csv)])
    out = capsys.readouterr().out
    assert rc == 0
    acc = float([line for line in out.splitlines() if line.startswith("accuracy")][0].split()[1])
    assert acc > 0.95

    # predict on raw data without the target column; columns matched by name
    raw = tmp_path / "raw.csv"
    rows = list(csv.reader(open(blobs_csv)))
    _write_csv(raw, ["big", "small"], [[r[2], r[1]] for r in rows[1:]])
    preds = tmp_path / "p.csv"
    assert main(["predict", str(model), str(raw), "--out", str(preds)]) == 0
    got = list(csv.DictReader(open(preds)))
    truth = [r[0] for r in rows[1:]]
    assert np.mean([g["colour"] == t for g, t in zip(got, truth)]) > 0.95
    # Independent recomputation: standardise with the stored stats, run the network.
    X = np.array([[float(r[1]), float(r[2])] for r in rows[1:]])
    Xs = (X - np.array(meta["mean"])) / np.array(meta["std"])
    proba = net.predict_proba(Xs.astype(net.dtype))
    np.testing.assert_allclose([[float(g[f"p_{c}"]) for c in meta["classes"]] for g in got],
                               proba, rtol=1e-5, atol=1e-6)
    assert [g["colour"] for g in got] == list(np.array(meta["classes"])[proba.argmax(1)])


def test_train_regression_builtin_and_npz(tmp_path, capsys):
    model = tmp_path / "sine.npz"
    rc = main(["train", "sine", "--layers", "32,32", "--activation", "tanh", "--lr", "0.01",
               "--epochs", "80", "--out", str(model), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "r2" in out and "rmse" in out
    X, y = nc.datasets.sine(seed=0)
    np.savez(tmp_path / "sine_data.npz", X=X, y=y)
    assert main(["evaluate", str(model), str(tmp_path / "sine_data.npz")]) == 0
    out = capsys.readouterr().out
    r2 = float([line for line in out.splitlines() if line.startswith("r2")][0].split()[1])
    assert r2 > 0.9
    # predictions come back in the original units
    assert main(["predict", str(model), str(tmp_path / "sine_data.npz")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    pred = np.array([float(v) for v in lines[1:]])
    assert np.sqrt(np.mean((pred - np.sin(X[:, 0])) ** 2)) < 0.2


def test_train_options_plot_and_full_batch(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "c.png"
    rc = main(["train", "moons", "--layers", "8", "--optimizer", "lbfgs", "--epochs", "30",
               "--l2", "1e-4", "--val-split", "0.25", "--out", str(tmp_path / "m.npz"),
               "--plot", str(png), "--dtype", "float64", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(png) > 5000
    rc = main(["train", "circles", "--layers", "8,8", "--activation", "relu,tanh",
               "--dropout", "0.1", "--batch-size", "1", "--epochs", "2", "--patience", "3",
               "--loss", "binary_cross_entropy", "--out", str(tmp_path / "b.npz"),
               "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    net = nc.load(tmp_path / "b.npz")
    assert net.n_out == 1 and net.loss_name == "binary_cross_entropy"
    assert main(["evaluate", str(tmp_path / "b.npz"), "circles"]) == 0


def test_datasets_lists_all(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ["xor", "spirals", "moons", "circles", "sine", "digits", "iris", "wine",
                 "breast_cancer", "diabetes"]:
        assert name in out


def test_sklearn_builtin(tmp_path, capsys):
    pytest.importorskip("sklearn")
    rc = main(["train", "iris", "--layers", "16", "--lr", "0.01", "--epochs", "60",
               "--out", str(tmp_path / "iris.npz"), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    val_acc = float([line for line in out.splitlines()
                     if line.startswith("accuracy")][0].split()[2])
    assert val_acc > 0.85


@pytest.mark.parametrize("content, args, message", [
    (None, ["train", "{d}/missing.csv"], "no such file"),
    ("a,b,y\n1,2,0\n3,oops,1\n", ["train", "{f}"], "column 'b' is not numeric"),
    ("a,b,y\n1,2,0\n3,nan,1\n", ["train", "{f}"], "NaN"),
    ("a,b,y\n1,2,0\n3,,1\n", ["train", "{f}"], "missing value"),
    ("a,b,y\n1,2,0\n3,4,1\n", ["train", "{f}", "--target", "zz"], "no column 'zz'"),
    ("a,b,y\n1,2\n", ["train", "{f}"], "fields"),
    ("", ["train", "{f}"], "empty"),
    ("a,b,y\n1,2,0\n3,4,1\n", ["evaluate", "{f}", "{f}"], "not a valid nncore model"),
    (None, ["evaluate", "{d}/none.npz", "xor"], "no such model file"),
    (None, ["train", "no_such_dataset"], "neither a file nor a built-in dataset"),
    (None, ["train", "xor", "--layers", "4,x"], "--layers"),
    (None, ["train", "xor", "--optimizer", "adamax"], "unknown optimizer"),
    (None, ["train", "xor", "--patience", "3", "--val-split", "0"], "validation"),
])
def test_errors_are_one_line_without_traceback(tmp_path, capsys, content, args, message):
    f = tmp_path / "data.csv"
    if content is not None:
        f.write_text(content)
    argv = [a.format(d=tmp_path, f=f) for a in args]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("nncore")]
    assert len(lines) == 1 and message in lines[0], err


def test_foreign_npz_model_and_wrong_feature_count(tmp_path, capsys):
    np.savez(tmp_path / "foreign.npz", a=np.arange(3))
    assert main(["evaluate", str(tmp_path / "foreign.npz"), "xor"]) == 1
    assert "not a valid nncore model" in capsys.readouterr().err
    assert main(["train", "xor", "--layers", "4", "--epochs", "1", "--out",
                 str(tmp_path / "x.npz"), "--no-progress"]) == 0
    np.savez(tmp_path / "three.npz", X=np.zeros((4, 3)), y=np.zeros(4))
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "x.npz"), str(tmp_path / "three.npz")]) == 1
    assert "3 features but the model expects 2" in capsys.readouterr().err


def test_usage_errors_and_help(capsys):
    assert main(["train", "xor", "--epochs", "0"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out


def test_load_data_for_tune(tmp_path, blobs_csv):
    X, y = load_data(str(blobs_csv), target="colour")
    assert X.shape == (120, 2) and y.dtype.kind == "i" and set(y) == {0, 1, 2}
    with pytest.raises(ValueError, match="no such file"):
        load_data(str(tmp_path / "nope.csv"))


def test_python_dash_m_nncore(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, "-m", "nncore", "train", "xor", "--layers", "4",
                        "--activation", "tanh", "--epochs", "5", "--out",
                        str(tmp_path / "x.npz")], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "model saved" in r.stdout
    r = subprocess.run([sys.executable, "-m", "nncore", "evaluate", str(tmp_path / "nope.npz"),
                        "xor"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


def test_evaluate_plain_model_rejects_fractional_or_empty_labels(tmp_path, capsys):
    # A model saved from the Python API carries no class list: labels are
    # taken as codes and must be whole numbers in range, never truncated.
    net = nc.Network([nc.Dense(2, 3)], loss="cross_entropy", seed=0)
    model = tmp_path / "plain.npz"
    net.save(model)
    X = np.random.default_rng(0).normal(size=(6, 2))
    good = tmp_path / "good.npz"
    np.savez(good, X=X, y=np.array([0, 1, 2, 0, 1, 2]))
    assert main(["evaluate", str(model), str(good)]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.npz"
    np.savez(bad, X=X, y=np.array([0, 1.5, 2, 0, 1, 2]))
    assert main(["evaluate", str(model), str(bad)]) != 0
    err = capsys.readouterr().err
    assert "whole numbers" in err and "Traceback" not in err


# --------------------------------------------------------------------------- issue 12 item 6

def test_csv_with_byte_order_mark(tmp_path, blobs_csv):
    # Excel's "CSV UTF-8" starts with U+FEFF; the first column is still "colour".
    bom = tmp_path / "excel.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + blobs_csv.read_bytes())
    X, y = load_data(str(bom), target="colour")
    X0, y0 = load_data(str(blobs_csv), target="colour")
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    assert main(["train", str(bom), "--target", "colour", "--layers", "4", "--epochs", "1",
                 "--out", str(tmp_path / "m.npz"), "--no-plot", "--no-progress"]) == 0


@pytest.mark.parametrize("args, flag", [
    (["--layers", "32,abc"], "--layers"),
    (["--layers", "4,-2"], "--layers"),
    (["--lr", "-1"], "--lr"),
    (["--batch-size", "x"], "--batch-size"),
    (["--batch-size", "0"], "--batch-size"),
    (["--layers", "4", "--activation", "relu,tanh"], "--activation"),
    (["--activation", "swish"], "--activation"),
    (["--optimizer", "lbfgs", "--batch-size", "8"], "--batch-size full"),
    (["--optimizer", "bfgs", "--dropout", "0.2"], "--dropout 0"),
    (["--patience", "2", "--val-split", "0"], "--val-split"),
])
def test_usage_errors_exit_2_and_name_the_flag(tmp_path, capsys, args, flag):
    rc = main(["train", "xor", "--epochs", "1", "--out", str(tmp_path / "m.npz"),
               "--no-plot", "--no-progress"] + args)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert flag in err and "Traceback" not in err
    assert "batch_size=" not in err and "n_trials" not in err


def test_tune_usage_errors_name_the_flags(tmp_path, capsys):
    (tmp_path / "s.json").write_text('{"lr": {"loguniform": [0.001, 0.1]}, "epochs": 1}')
    rc = main(["tune", "xor", "--space", str(tmp_path / "s.json"), "--workers", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "--n-trials" in err and "n_trials" not in err.replace("--n-trials", "")
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["tune", "xor", "--space", str(tmp_path / "bad.json")]) == 2
    assert "--space" in capsys.readouterr().err


def test_ctrl_c_in_train_saves_the_model_trained_so_far(tmp_path, capsys, monkeypatch):
    """Ctrl-C at the end of epoch 3 of 50: the saved model equals a plain 3-epoch run."""
    common = ["train", "moons", "--layers", "8", "--no-plot", "--no-progress", "--seed", "1"]
    assert main(common + ["--epochs", "3", "--out", str(tmp_path / "three.npz")]) == 0

    class CtrlC(nc.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    real_fit = nc.Network.fit

    def fit_then_ctrl_c(self, X, y, **kw):
        kw["callbacks"] = list(kw.get("callbacks") or []) + [CtrlC()]
        return real_fit(self, X, y, **kw)

    monkeypatch.setattr(nc.Network, "fit", fit_then_ctrl_c)
    capsys.readouterr()
    rc = main(common + ["--epochs", "50", "--out", str(tmp_path / "cut.npz")])
    out, err = capsys.readouterr()
    assert rc == 130
    assert "model trained so far" in err and "interrupted" in out
    np.testing.assert_array_equal(nc.load(tmp_path / "cut.npz").params,
                                  nc.load(tmp_path / "three.npz").params)


def _validation_rows_of(tmp_path, monkeypatch, extra):
    """Run ``nncore train`` on 60 rows sorted by class (30/20/10 of a, b, c; feature
    = row number) and return (training, validation) row numbers as fit saw them."""
    from nncore.cli import _train
    rows = [[i, "abc"[0 if i < 30 else 1 if i < 50 else 2]] for i in range(60)]
    path = tmp_path / "sorted.csv"
    _write_csv(path, ["row", "label"], rows)
    seen = {}
    real_fit = _train._fit

    def spy(args, net, Xtr_s, Ttr, validation):
        meta = net.metadata     # undo the standardisation: back to row numbers
        seen["train"] = np.rint(Xtr_s[:, 0] * meta["std"][0] + meta["mean"][0]).astype(int)
        seen["val"] = np.rint(validation[0][:, 0] * meta["std"][0]
                              + meta["mean"][0]).astype(int)
        return real_fit(args, net, Xtr_s, Ttr, validation)

    monkeypatch.setattr(_train, "_fit", spy)
    assert main(["train", str(path), "--epochs", "1", "--layers", "4", "--val-split", "0.25",
                 "--out", str(tmp_path / "m.npz"), "--no-plot", "--no-progress", *extra]) == 0
    return seen["train"], seen["val"]


def test_val_shuffle_draws_per_class_and_no_val_shuffle_takes_last_rows(tmp_path, monkeypatch):
    # fit's rule: n - floor(n (1 - 0.25)) = 15 validation rows of 60.
    train, val = _validation_rows_of(tmp_path, monkeypatch, [])
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(60))
    assert len(val) == 15
    per_class = [np.sum(val < 30), np.sum((val >= 30) & (val < 50)), np.sum(val >= 50)]
    # each class keeps its share 15 * n_c / 60 = 7.5, 5, 2.5 (rounded to sum to 15)
    assert [abs(k - s) < 1 for k, s in zip(per_class, (7.5, 5.0, 2.5))] == [True] * 3
    same = _validation_rows_of(tmp_path, monkeypatch, ["--val-shuffle", "--seed", "0"])[1]
    assert np.array_equal(np.sort(same), np.sort(val))     # the flag is the default, seeded
    other = _validation_rows_of(tmp_path, monkeypatch, ["--seed", "1"])[1]
    assert not np.array_equal(np.sort(other), np.sort(val))
    train, val = _validation_rows_of(tmp_path, monkeypatch, ["--no-val-shuffle"])
    assert np.array_equal(val, np.arange(45, 60))          # the last rows: all class c
    assert np.array_equal(train, np.arange(45))
