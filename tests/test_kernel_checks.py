"""Every Python-visible kernel of ``nncore._kernels`` is safe on its own: called
directly (not through the backend's validation) with arrays of the wrong shape,
empty where the kernel needs data, or out-of-range indices, it raises ValueError
before touching memory, and leaves its outputs unchanged. Table-driven: each
kernel has a valid call (which must run) and the mistakes it must refuse."""

import numpy as np
import pytest

K = pytest.importorskip("nncore._kernels")

rng = np.random.default_rng(0)
N, D, H, M = 5, 3, 4, 2      # rows, inputs, outputs, directions


def r(*shape):
    return rng.normal(size=shape)


def shrink(i, axis=-1):
    """Argument i with one element fewer along ``axis``."""
    def mutate(args):
        a = args[i]
        idx = [slice(None)] * a.ndim
        idx[axis] = slice(0, a.shape[axis] - 1)
        args[i] = np.ascontiguousarray(a[tuple(idx)])
    mutate.__name__ = f"shrink{i}_axis{axis}"
    return mutate


def empty(*positions, axis=0):
    """Arguments at ``positions`` with zero length along ``axis``."""
    def mutate(args):
        for i in positions:
            a = args[i]
            shape = list(a.shape)
            shape[axis] = 0
            args[i] = np.zeros(shape, a.dtype)
    mutate.__name__ = f"empty{positions}"
    return mutate


def put(i, value, at=0):
    """Argument i with ``value`` at flat position ``at`` (a bad index or code)."""
    def mutate(args):
        if isinstance(args[i], np.ndarray):
            args[i] = args[i].copy()
            args[i].reshape(-1)[at] = value
        else:
            args[i] = value
    mutate.__name__ = f"put{i}_{value}"
    return mutate


def _seg():
    return np.array([[0, 4], [5, 9]], np.int64)


def _labels():
    return np.array([0, 3, 1, 2, 3], np.int64)


# kernel -> (valid arguments, mistakes); arrays are float64 (float32 specialisations
# share the checks).
TABLE = {
    "gemm": (lambda: [r(N, D), r(D, H), r(N, H), False, False, 1.0, 0.0],
             [shrink(0), shrink(1, 0), shrink(2, 0), shrink(2), put(3, True)]),
    "multiply": (lambda: [r(6), r(6), r(6)], [shrink(1), shrink(2)]),
    "add": (lambda: [r(6), r(6), r(6)], [shrink(1), shrink(2)]),
    "activation_forward": (lambda: [r(6), 1, r(6)], [shrink(2), put(1, 99), put(1, -1)]),
    "activation_backward": (lambda: [r(6), r(6), 3, r(6)],
                            [shrink(1), shrink(3), put(2, 99)]),
    "sigmoid": (lambda: [r(6), r(6)], [shrink(1)]),
    "dense_forward": (lambda: [r(N, D), r(D, H), r(H), 1, r(N, H)],
                      [shrink(0), shrink(1), shrink(2), shrink(4), shrink(4, 0), put(3, 99),
                       empty(1, 2, axis=0)]),
    "dense_backward": (lambda: [r(N, D), r(D, H), r(N, H), r(N, H), 1, r(D, H), r(H), r(N, D)],
                       [shrink(0), shrink(2, 0), shrink(3), shrink(5, 0), shrink(6), shrink(7),
                        empty(0, 2, 3, 7), put(4, 99)]),
    "softmax": (lambda: [r(N, H), r(N, H)], [shrink(1), shrink(1, 0), empty(0, 1, axis=1)]),
    "loss_mse": (lambda: [r(N, H), r(N, H), r(N, H), np.abs(r(N))],
                 [shrink(1), shrink(2, 0), empty(0, 1, 2), shrink(3)]),
    "loss_softmax_ce": (lambda: [r(N, H), _labels(), r(N, H), np.abs(r(N))],
                        [shrink(1), shrink(2), empty(0, 1, 2), put(1, H), put(1, -1),
                         shrink(3)]),
    "loss_softmax_ce_prob": (lambda: [r(N, H), r(N, H), r(N, H), np.abs(r(N))],
                             [shrink(1), shrink(2, 0), empty(0, 1, 2), shrink(3)]),
    "loss_bce": (lambda: [r(N, H), r(N, H), r(N, H), np.abs(r(N))],
                 [shrink(1), shrink(2), empty(0, 1, 2, 3), shrink(3)]),
    "regularize": (lambda: [r(10), r(10), _seg(), 0.1, 0.2],
                   [shrink(1), shrink(0), put(2, 11, at=3), put(2, -1, at=2)]),
    "gather_rows": (lambda: [r(N, D), np.array([4, 0, 2], np.int64), r(3, D)],
                    [shrink(2), shrink(2, 0), put(1, N), put(1, -1)]),
    "gather": (lambda: [r(N), np.array([4, 0, 2], np.int64), r(3)],
               [shrink(2), put(1, N), put(1, -2)]),
    "sgd_step": (lambda: [r(6), r(6), r(6), 0.1, 0.9, 0.0, False, False, 1.0],
                 [shrink(1), shrink(2)]),
    "adagrad_step": (lambda: [r(6), r(6), np.abs(r(6)), 0.1, 1e-10, False, 1.0],
                     [shrink(1), shrink(2)]),
    "rmsprop_step": (lambda: [r(6), r(6), np.abs(r(6)), 0.01, 0.9, 1e-8, False, 1.0],
                     [shrink(1), shrink(2)]),
    "adam_step": (lambda: [r(6), r(6), r(6), np.abs(r(6)), 1.0, 0.1, 0.9, True, 0.999, 0.001,
                           0.001, 0.0316, 1e-8, -0.01, False, 1.0],
                  [shrink(1), shrink(2), shrink(3)]),
    "rprop_step": (lambda: [r(6), r(6), r(6), np.abs(r(6)), r(6), 0.5, 1.2, 1e-6, 50.0, False,
                            True, False],
                   [shrink(1), shrink(2), shrink(3), shrink(4)]),
    "symv": (lambda: [r(4, 4), r(4), r(4)], [shrink(0), shrink(1), shrink(2)]),
    "rank2_prepare": (lambda: [r(4, 4), r(4), r(4), r(4)],
                      [shrink(0, 0), shrink(1), shrink(2), shrink(3)]),
    "bfgs_apply": (lambda: [r(4, 4), r(4), r(4), 0.5, 0.2], [shrink(0), shrink(1), shrink(2)]),
    "dfp_apply": (lambda: [r(4, 4), r(4), r(4), 0.5, 0.2], [shrink(0), shrink(1), shrink(2)]),
    "dense_rforward": (lambda: [r(N, D), r(M, N, D), True, r(D, H), r(M, D, H), r(M, H), 3,
                                np.abs(r(N, H)) % 1, r(M, N, H), r(M, N, H)],
                       [shrink(1), shrink(1, 0), shrink(3), shrink(4), shrink(5), shrink(7, 0),
                        shrink(8), shrink(9, 1), empty(0, 7), put(6, 99)]),
    "dense_rbackward": (lambda: [r(N, D), r(M, N, D), True, r(D, H), r(M, D, H),
                                 np.abs(r(N, H)) % 1, r(M, N, H), r(N, H), r(M, N, H), 3,
                                 r(M, D, H), r(M, H), r(N, D), r(M, N, D), True],
                        [shrink(1), shrink(3), shrink(4, 0), shrink(5), shrink(6), shrink(7),
                         shrink(8), shrink(10), shrink(11), shrink(12), shrink(13, 1),
                         empty(0, 5, 7), put(9, 99)]),
    "loss_mse_rop": (lambda: [r(N, H), r(M, N, H), r(M, N, H)],
                     [shrink(2), shrink(2, 0), shrink(0), shrink(1), empty(0, axis=0)]),
    "loss_softmax_ce_rop": (lambda: [r(N, H), r(M, N, H), r(M, N, H)],
                            [shrink(0), shrink(1), shrink(2, 1), empty(0, axis=0)]),
    "loss_bce_rop": (lambda: [r(N, H), r(M, N, H), r(M, N, H)],
                     [shrink(0), shrink(1), shrink(2, 0)]),
    "jacobian_rows": (lambda: [r(N, D), r(N, H), r(N, D * H + H + 2), 2],
                      [shrink(0, 0), shrink(1, 0), shrink(2), put(3, -1), put(3, 3)]),
    "ggn_rows_softmax": (lambda: [np.full((2, 3), 1 / 3), r(6, 4), r(4)],
                         [shrink(1, 0), shrink(2)]),
    "syrk": (lambda: [r(N, H), r(H, H), 1.0, 0.0], [shrink(1), shrink(1, 0), empty(0)]),
    "cholesky_solve": (lambda: [np.eye(4) * 2, r(4)], [shrink(0), shrink(1), empty(0, 1)]),
}

# The kernels with nothing to get wrong besides dtype/layout (the typed views
# check those): one array, or seeds and a rate.
NO_SHAPE_RELATIONS = {"sum_squares", "dropout_mask"}
NOT_KERNELS = {"set_num_threads", "get_num_threads", "forked_child", "blas_shared_pool",
               "shared_blas_pool_enabled", "shared_blas_pool_installed", "gemm_library",
               "own_sgemm_available",
               "flush_denormal", "flush_denormal_supported",
               "curvature_activations", "train_epoch_loop"}    # the loop: test_epoch_workspace


def _outputs(args):
    return [a.copy() for a in args if isinstance(a, np.ndarray)]


def test_every_kernel_is_in_the_table():
    public = {name for name in dir(K) if not name.startswith("_") and callable(getattr(K, name))
              and not isinstance(getattr(K, name), type)}
    assert public - NOT_KERNELS - NO_SHAPE_RELATIONS == set(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_valid_call_runs(name):
    make, _ = TABLE[name]
    getattr(K, name)(*make())


CALLS = [(name, m) for name in sorted(TABLE) for m in TABLE[name][1]]


@pytest.mark.parametrize("name, mistake", CALLS, ids=[f"{n}-{m.__name__}" for n, m in CALLS])
def test_mistake_is_a_value_error_and_changes_nothing(name, mistake):
    make, _ = TABLE[name]
    args = make()
    mistake(args)
    before = _outputs(args)
    with pytest.raises(ValueError):
        getattr(K, name)(*args)
    for a, b in zip(_outputs(args), before):
        np.testing.assert_array_equal(a, b)
