"""Every example script runs in its fast mode and writes a valid PNG."""

import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def test_every_lecture_topic_has_an_example():
    names = {p.stem for p in SCRIPTS}
    assert {"backprop_gradcheck", "optimization_problems", "overfitting", "batch_modes",
            "momentum_nesterov", "adaptive", "regularization", "dropout", "augmentation",
            "tuning"} <= names


# Scripts that need a package of an optional extra beyond matplotlib.
NEEDS = {"mnist1d_baseline": "mnist1d"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_runs_fast_and_writes_png(script, tmp_path):
    if script.stem in NEEDS:
        pytest.importorskip(NEEDS[script.stem])
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    # Tiny matrices: one BLAS thread is faster, and the suite shares the cores.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    r = subprocess.run([sys.executable, str(script), "--fast", "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, f"{script.name} failed:\n{r.stdout}\n{r.stderr}"
    pngs = list(tmp_path.glob("*.png"))
    assert len(pngs) >= 1, r.stdout
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 10_000
    assert "figure written to" in r.stdout


def test_mnist1d_data_is_generated_without_the_network(monkeypatch, tmp_path):
    """mnist1d_baseline.py's data: make_dataset generates it locally (no download;
    its get_dataset would fetch the frozen file), and writes no file."""
    pytest.importorskip("mnist1d")
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("make_dataset tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.chdir(tmp_path)
    from mnist1d.data import get_dataset_args, make_dataset
    args = get_dataset_args()
    args.num_samples = 200
    data = make_dataset(args)
    assert data["x"].shape == (160, 40) and data["x_test"].shape == (40, 40)
    assert set(data["y"].tolist()) <= set(range(10))
    assert list(tmp_path.iterdir()) == []
