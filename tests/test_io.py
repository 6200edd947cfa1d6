"""save/load: round trip, metadata, atomic write, corrupt/truncated/foreign files."""

import json
import os
import zipfile

import numpy as np
import pytest

import nncore as nc


def _net(dtype="float32"):
    return nc.Network([nc.Dense(4, 6, "relu", init="he_normal"), nc.Dropout(0.25),
                       nc.Dense(6, 3, "tanh"), nc.Dense(3, 2)], loss="cross_entropy",
                      regularizer=nc.ElasticNet(1e-3, 2e-3), dtype=dtype, seed=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip(tmp_path, dtype):
    net = _net(dtype)
    X = np.random.default_rng(0).normal(size=(7, 4))
    net.params[:] = np.random.default_rng(1).normal(size=net.n_params)
    path = tmp_path / "model.npz"
    net.save(path, metadata={"mean": np.arange(3.0), "note": "hi", "n": np.int64(4)})
    back = nc.load(path)
    assert back.params.dtype == net.params.dtype
    np.testing.assert_array_equal(back.params, net.params)
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    assert repr(back) == repr(net)
    assert back.regularizer == net.regularizer and back.loss_name == "cross_entropy"
    assert back.layers[1].rate == 0.25 and back.layers[0].init == "he_normal"
    assert back.metadata == {"mean": [0.0, 1.0, 2.0], "note": "hi", "n": 4}
    # layers of the loaded net are views of its own buffer
    assert np.shares_memory(back.layers[0].W, back.params)
    # file is a plain npz readable without pickle
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"format", "format_version", "architecture", "params"}
        rec = json.loads(str(data["architecture"]))
        assert rec["layers"][0] == {"type": "Dense", "n_in": 4, "n_out": 6,
                                    "activation": "relu", "init": "he_normal"}


def test_exact_path_and_no_temp_left(tmp_path):
    net = _net()
    p = tmp_path / "m.model"
    assert net.save(str(p)) == str(p)
    assert os.listdir(tmp_path) == ["m.model"]
    net.metadata["k"] = 1
    net.save(p)  # overwrite in place, default metadata from net.metadata
    assert nc.load(p).metadata == {"k": 1}
    assert os.listdir(tmp_path) == ["m.model"]


def test_failed_save_leaves_old_file(tmp_path):
    net = _net()
    p = tmp_path / "m.npz"
    net.save(p)
    before = p.read_bytes()
    with pytest.raises(TypeError, match="JSON"):
        net.save(p, metadata={"bad": object()})
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]
    with pytest.raises(FileNotFoundError):
        net.save(tmp_path / "no" / "such" / "dir.npz")


def test_truncated_file(tmp_path):
    p = tmp_path / "m.npz"
    _net().save(p)
    data = p.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        q = tmp_path / f"cut{cut}.npz"
        q.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}.npz"):
            nc.load(q)


def test_foreign_files(tmp_path):
    p = tmp_path / "other.npz"
    np.savez(p, a=np.arange(3))
    with pytest.raises(ValueError, match="other.npz"):
        nc.load(p)
    t = tmp_path / "text.npz"
    t.write_text("hello")
    with pytest.raises(ValueError, match="text.npz"):
        nc.load(t)
    n = tmp_path / "arr.npy"
    np.save(n, np.arange(3))
    with pytest.raises(ValueError, match="arr.npy"):
        nc.load(n)
    with pytest.raises(FileNotFoundError):
        nc.load(tmp_path / "missing.npz")


def _rewrite(src, dst, **changes):
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    np.savez(dst, **arrays)


def test_unknown_version_and_tampered_records(tmp_path):
    p = tmp_path / "m.npz"
    net = _net()
    net.save(p)
    _rewrite(p, tmp_path / "v2.npz", format_version=np.array(2))
    with pytest.raises(ValueError, match="version 2"):
        nc.load(tmp_path / "v2.npz")
    _rewrite(p, tmp_path / "short.npz", params=net.params[:-1])
    with pytest.raises(ValueError, match="short.npz"):
        nc.load(tmp_path / "short.npz")
    _rewrite(p, tmp_path / "nan.npz", params=np.full_like(net.params, np.nan))
    with pytest.raises(ValueError, match="NaN"):
        nc.load(tmp_path / "nan.npz")
    _rewrite(p, tmp_path / "json.npz", architecture=np.array("{not json"))
    with pytest.raises(ValueError, match="json.npz"):
        nc.load(tmp_path / "json.npz")
    bad = json.dumps({"layers": [{"type": "Conv"}], "loss": "mse"})
    _rewrite(p, tmp_path / "layer.npz", architecture=np.array(bad))
    with pytest.raises(ValueError, match="layer.npz"):
        nc.load(tmp_path / "layer.npz")
    # a pickled object array is refused, never unpickled
    _rewrite(p, tmp_path / "pickle.npz", architecture=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle.npz"):
        nc.load(tmp_path / "pickle.npz")
    # corrupt a byte inside the compressed/stored payload
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("params.npy")
    pos = info.header_offset + 30 + len(info.filename) + 60
    raw[pos:pos + 8] = b"\xff" * 8
    (tmp_path / "flip.npz").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="flip.npz"):
        nc.load(tmp_path / "flip.npz")


def test_trained_model_round_trip_continues_identically(tmp_path):
    X, y = nc.datasets.moons(60, seed=0)
    net = nc.Network([nc.Dense(2, 8, "tanh"), nc.Dense(8, 2)], loss="cross_entropy", seed=0)
    net.fit(X, y, epochs=3, progress=False, seed=0)
    net.save(tmp_path / "m.npz")
    back = nc.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    assert back.loss(X, y) == net.loss(X, y)


def test_saved_file_follows_the_umask(tmp_path):
    # The atomic write goes through a private temporary file; the model itself
    # must get ordinary permissions (0666 less the umask), not mkstemp's 0600.
    old = os.umask(0o022)
    try:
        path = tmp_path / "perm.npz"
        _net().save(path)
    finally:
        os.umask(old)
    assert (os.stat(path).st_mode & 0o777) == 0o644


# --------------------------------------------------------------------------- hostile files
# A model file is untrusted input: every bound is checked from headers before
# anything large is allocated or inflated (issue 12 item 5).

def _write_member(zf, name, header, chunks=()):
    """Write ``name.npy`` as an npy header dict plus raw data chunks (streamed, never held)."""
    with zf.open(name + ".npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for chunk in chunks:
            fh.write(chunk)


def _hostile(path, architecture, params_shape=(3,), params_chunks=None,
             compress=zipfile.ZIP_STORED):
    text = architecture if isinstance(architecture, str) else json.dumps(architecture)
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for name, value in (("format", np.array("nncore.network")),
                            ("format_version", np.array(1)), ("architecture", np.array(text))):
            with zf.open(name + ".npy", "w") as fh:
                np.lib.format.write_array(fh, value, allow_pickle=False)
        if params_chunks is None:
            params_chunks = [np.zeros(params_shape, np.float32).tobytes()]
        _write_member(zf, "params", {"descr": "<f4", "fortran_order": False,
                                     "shape": params_shape}, params_chunks)
    return path


def _arch(n_in, n_out):
    return {"layers": [{"type": "Dense", "n_in": n_in, "n_out": n_out, "activation": "linear",
                        "init": None}], "loss": "mse", "regularizer": None,
            "dtype": "float32", "seed": 0}


def _load_peak(path):
    """Peak bytes NumPy/Python allocated while nc.load(path) failed with ValueError."""
    import tracemalloc
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=os.path.basename(str(path))) as info:
            nc.load(path)
        return tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("n", [6000, 10**9])
def test_declared_size_checked_before_allocating(tmp_path, n):
    # 2 KB on disk declaring Dense(n, n): refused from the params header,
    # without building the 36-million- (or 10**18-) parameter network.
    p = _hostile(tmp_path / f"dense{n}.npz", _arch(n, n))
    assert p.stat().st_size < 4096
    peak, msg = _load_peak(p)
    assert peak < 4 << 20, peak
    assert f"({n * n + n},)" in msg


def test_compressed_zeros_not_inflated(tmp_path):
    # 40 MB of zeros deflate to ~40 KB; the params header says 10**7 floats
    # where the architecture has 3 parameters: refused before inflating.
    zeros = bytes(1 << 20)
    p = _hostile(tmp_path / "bomb.npz", _arch(2, 1), params_shape=(10 << 20,),
                 params_chunks=[zeros] * 40, compress=zipfile.ZIP_DEFLATED)
    assert p.stat().st_size < 1 << 20
    peak, msg = _load_peak(p)
    assert peak < 4 << 20, peak
    assert "expected float32 and (3,)" in msg


def test_member_larger_than_its_header(tmp_path):
    # The header claims 3 floats, the member holds 40 MB: the zip directory
    # gives it away before the data is read.
    p = _hostile(tmp_path / "liar.npz", _arch(2, 1), params_shape=(3,),
                 params_chunks=[bytes(1 << 20)] * 40, compress=zipfile.ZIP_DEFLATED)
    peak, msg = _load_peak(p)
    assert peak < 4 << 20, peak
    assert "holds" in msg


def test_deep_json_and_huge_json_refused(tmp_path):
    p = _hostile(tmp_path / "deep.npz", "[" * 100_000 + "]" * 100_000)
    _, msg = _load_peak(p)  # a ValueError, not RecursionError
    assert "nests 100000 levels" in msg
    # brackets inside JSON strings are text, not nesting
    ok = _arch(2, 1) | {"metadata": {"note": "[[[[" * 1000}}
    net = nc.Network.from_config(ok)
    net.save(tmp_path / "brackets.npz", metadata=ok["metadata"])
    assert nc.load(tmp_path / "brackets.npz").metadata["note"] == "[[[[" * 1000
    # the character cap is read from the header's dtype, before the string is
    big = tmp_path / "big.npz"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in (("format", np.array("nncore.network")),
                            ("format_version", np.array(1))):
            with zf.open(name + ".npy", "w") as fh:
                np.lib.format.write_array(fh, value)
        n_chars = nc.io.MAX_ARCHITECTURE_CHARS + 1
        _write_member(zf, "architecture", {"descr": f"<U{n_chars}", "fortran_order": False,
                                           "shape": ()}, [bytes(4 * n_chars)])
        _write_member(zf, "params", {"descr": "<f4", "fortran_order": False, "shape": (3,)},
                      [bytes(12)])
    peak, msg = _load_peak(big)
    assert peak < 4 << 20, peak
    assert "characters" in msg
    # and save refuses to write what load would refuse
    with pytest.raises(ValueError, match="levels"):
        nc.Network.from_config(_arch(2, 1)).save(tmp_path / "x.npz",
                                                 metadata={"a": json.loads("[" * 80 + "]" * 80)})
