"""bench/profile_step.py's sorting of samples, so the README's split cannot rot.

No timing and no profiler: stacks written the way ``py-spy record --native
--format raw`` writes them (outermost frame first, ``function (file:line)``)
for each stage of the compiled loop, old per-layer path and tiny whole-sample
path alike, and the category each must land in by the docstring's definitions.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import profile_step  # noqa: E402

FIT = ["<module> (child.py:25)", "Network.fit (nncore/network.py:795)",
       "train_epoch (nncore/backend/_cython.py:347)",
       "train_epoch_loop (nncore/_train_loop.pxi:860)"]
RUN = FIT + ["use_0_0__pyx_f_6nncore_8_kernels__tl_run (nncore/_train_loop.pxi:606)"]


@pytest.mark.parametrize("below, category", [
    # forward: the product, then bias + activation (libm's tanh under it)
    (["_kernels__tl_forward (_train_loop.pxi:467)", "_kernels__dense_product (_kernels.pyx:1)",
      "sgemm_kernel_SKYLAKEX (libscipy_openblas.so)"], "gemm"),
    (["_kernels__tl_forward (_train_loop.pxi:468)", "_kernels__tl_bias_act (_train_loop.pxi:235)",
      "_kernels__bias_act_rows (_kernels.pyx:423)", "tanhf32 (libm.so.6)"], "elementwise"),
    # backward: derivative and bias gradient, then the tiny path's own product loop
    (["_kernels__tl_backward (_train_loop.pxi:526)", "_kernels__delta_rows (_kernels.pyx:595)",
      "_kernels__act_grad_chunk (_kernels.pyx:377)"], "elementwise"),
    (["_kernels__tl_backward (_train_loop.pxi:532)", "_kernels__dense_input_grad (_tiny.pxi:94)",
      "nnc_tiny_nt_f32 (_tiny.h:83)"], "gemm"),
    (["_kernels__tl_loss (_train_loop.pxi:559)", "__Pyx_XCLEAR_MEMVIEW (_train_loop.pxi:87)"],
     "loss"),
    (["_kernels_loss_mse_k (_kernels.pyx:691)"], "loss"),
    (["_kernels__tl_update (_train_loop.pxi:450)", "_kernels__tl_adam (_train_loop.pxi:300)",
      "nnc_adam_f32 (_adam.h:80)"], "update"),
    (["_kernels__tl_plain_update (_train_loop.pxi:375)", "_kernels__tl_all_finite (x.pxi:1)"],
     "update"),
    (["use_0_0__pyx_f_6nncore_8_kernels__tl_gather (_train_loop.pxi:177)",
      "0x7f88bdf8b8aa (libc.so.6)"], "gather"),
    ([], "loop"),
    (["clock_gettime (linux-vdso.so.1)"], "loop"),
    # the tiny whole-sample step: its tanh is elementwise, the rest of its forward the
    # products, its backward (products, derivative, update in one pass) fused
    (["nnc_tiny_forward_f32_avx512 (_tiny.h:246)", "nnc_tanhf (_tanh.h:93)"], "elementwise"),
    (["nnc_tiny_forward_f32_avx512 (_tiny.h:246)"], "gemm"),
    (["nnc_tiny_backward_sgd_f32_avx512 (_tiny.h:246)"], "fused"),
])
def test_samples_in_the_loop_sort_by_stage(below, category):
    assert profile_step.classify(RUN + below) == category


def test_samples_outside_the_loop_are_python():
    assert profile_step.classify(FIT[:3] + ["all_finite (nncore/_checks.py:190)",
                                            "FLOAT_isfinite (numpy/_umath.so)"]) == "python"
    assert profile_step.classify(["0x7f88bde4524a (libc.so.6)"]) == "other"


def test_the_timed_line_is_the_timed_fit():
    line = profile_step.CHILD.splitlines()[profile_step.TIMED_LINE - 1]
    assert line.strip().startswith("net.fit(X, y,")


def test_python_samples_are_attributed_to_the_calls_below_the_driver():
    frames = FIT[:2] + ["_first_order_epochs (nncore/training.py:647)",
                        "_fused_epoch.<locals>.run (nncore/training.py:565)",
                        "train_epoch (nncore/backend/_cython.py:333)",
                        "check_train_epoch (nncore/backend/_epoch.py:90)",
                        "check_dtype (nncore/backend/_validate.py:40)"]
    assert profile_step.python_call(frames) == "train_epoch > check_train_epoch"
    assert profile_step.python_call(frames + ["FLOAT_isfinite (numpy/_umath.so)"]) \
        == "train_epoch > check_train_epoch"
    assert profile_step.python_call(frames[:4]) == "_fused_epoch.<locals>.run"
    assert profile_step.python_call(FIT[:2] + ["_first_order_epochs (t.py:1)",
                                               "norm (numpy/linalg.py:2)"]) == "norm"
