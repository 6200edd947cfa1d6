"""bench/step_threads.py's list of a step's GEMMs, so its table keeps naming what it times.

No timing: the pieces must be the 8 GEMMs of a 784-256-256-10 step (3 forward,
3 weight gradients, 2 input gradients), each product through nncore's gemm equal to
NumPy's within float32 rounding.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import step_threads  # noqa: E402

K = pytest.importorskip("nncore._kernels")


@pytest.mark.parametrize("batch", [4, 32])
def test_pieces_are_the_step_gemms(batch):
    pieces = step_threads.step_gemms(batch, np.random.default_rng(0))
    kinds = [name.split()[0] for name, *_ in pieces]
    assert kinds.count("fwd") == 3 and kinds.count("dW") == 3 and kinds.count("dX") == 2
    for name, A, B, C, ta, tb in pieces:
        K.gemm(A, B, C, ta, tb, 1.0, 0.0)
        want = (A.T if ta else A).astype(np.float64) @ (B.T if tb else B).astype(np.float64)
        np.testing.assert_allclose(C, want, rtol=1e-4, atol=1e-4, err_msg=name)
