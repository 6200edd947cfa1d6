"""One network served from several Python threads gives the serial results.

The truth is the same network evaluated serially before the threads start;
every call in a thread is compared bit for bit (the same kernels on the same
rows give the same bits). Batch sizes differ per call so that threads that
shared buffers would overwrite each other's rows, and there are many calls so
that the interleavings happen.
"""

import threading

import numpy as np
import pytest

import nncore as nc

N_THREADS = 4
SIZES = (1, 3, 7, 16, 33, 64, 100)


def _net(loss="cross_entropy", dtype="float64", reg=None):
    k = 1 if loss == "mse" else 4
    return nc.Network([nc.Dense(12, 48, "tanh"), nc.Dropout(0.25), nc.Dense(48, 48, "relu"),
                       nc.Dense(48, k)], loss=loss, regularizer=reg, dtype=dtype, seed=3)


def _data(loss, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 12))
    y = rng.normal(size=n) if loss == "mse" else rng.integers(0, 4, size=n)
    return X, y


def _run_threads(work, n_threads=N_THREADS):
    """Run ``work(thread_index)`` in threads started together; re-raise any failure."""
    errors = []
    start = threading.Barrier(n_threads)

    def run(k):
        try:
            start.wait()
            work(k)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _cases(loss, calls):
    """``calls`` (X, y) pairs of varying sizes, their index cycling through SIZES."""
    return [_data(loss, SIZES[c % len(SIZES)], seed=c) for c in range(calls)]


@pytest.mark.parametrize("method", ["forward", "predict", "predict_proba"])
def test_inference_from_threads_matches_serial(backend, method):
    net = _net()
    cases = _cases("cross_entropy", 24)
    expected = [getattr(net, method)(X) for X, _ in cases]

    def work(k):
        for rep in range(6):
            for c in range(len(cases)):
                j = (c + 7 * k + rep) % len(cases)   # threads visit sizes in different orders
                np.testing.assert_array_equal(getattr(net, method)(cases[j][0]), expected[j])

    _run_threads(work)


@pytest.mark.parametrize("loss, reg", [("cross_entropy", nc.L2(1e-3)), ("mse", nc.L1(1e-3))])
def test_loss_and_gradient_from_threads_match_serial(backend, loss, reg):
    net = _net(loss, reg=reg)
    cases = _cases(loss, 14)
    expected = [net.loss_and_gradient(X, y) for X, y in cases]
    losses = [net.loss(X, y) for X, y in cases]

    def work(k):
        for rep in range(5):
            for c in range(len(cases)):
                j = (c + 5 * k + rep) % len(cases)
                J, g = net.loss_and_gradient(*cases[j])
                assert J == expected[j][0]
                np.testing.assert_array_equal(g, expected[j][1])
                assert net.loss(*cases[j]) == losses[j]

    _run_threads(work)
    # net.grads holds one whole gradient of some call, never a mix of two
    assert any(np.array_equal(net.grads, g) for _, g in expected)


def test_chunked_gradients_from_threads_match_serial():
    net = _net("cross_entropy", dtype="float32")
    net._chunk_rows = 9      # every case of more than 9 rows goes through chunks
    cases = _cases("cross_entropy", 14)
    expected = [net.loss_and_gradient(X, y) for X, y in cases]

    def work(k):
        for rep in range(4):
            for c in range(len(cases)):
                j = (c + 3 * k + rep) % len(cases)
                J, g = net.loss_and_gradient(*cases[j])
                assert J == expected[j][0]
                np.testing.assert_array_equal(g, expected[j][1])

    _run_threads(work)


def test_training_forward_from_threads_draws_distinct_masks():
    """Concurrent training-mode passes take disjoint pieces of the dropout stream."""
    net = nc.Network([nc.Dropout(0.5), nc.Dense(200, 1)], dtype="float64", seed=0)
    net.layers[1].W[:] = 1.0
    X = np.ones((10, 200))
    outs = [None] * N_THREADS

    def work(k):
        outs[k] = net.forward(X, training=True)

    _run_threads(work)
    serial = nc.Network([nc.Dropout(0.5), nc.Dense(200, 1)], dtype="float64", seed=0)
    serial.layers[1].W[:] = 1.0
    expected = sorted(tuple(serial.forward(X, training=True)[:, 0]) for _ in range(N_THREADS))
    assert sorted(tuple(o[:, 0]) for o in outs) == expected


def test_fit_while_another_thread_fits_raises():
    net = _net()
    X, y = _data("cross_entropy", 64, seed=0)
    inside, release = threading.Event(), threading.Event()

    class Hold(nc.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            inside.set()
            release.wait(30)

    result = {}

    def fit_in_thread():
        result["history"] = net.fit(X, y, epochs=1, callbacks=[Hold()], progress=False)

    t = threading.Thread(target=fit_in_thread)
    t.start()
    try:
        assert inside.wait(30)
        before = net.params.copy()
        with pytest.raises(RuntimeError, match="another thread"):
            net.fit(X, y, epochs=1, progress=False)
        np.testing.assert_array_equal(net.params, before)
    finally:
        release.set()
        t.join()
    assert len(result["history"].history["loss"]) == 1
    net.fit(X, y, epochs=1, progress=False)   # free again once the first fit returned
