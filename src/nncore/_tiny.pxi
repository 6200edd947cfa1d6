# The products of a Dense layer for tiny shapes (included by _kernels.pyx
# before the dense kernels): plain C loops (_tiny.h) instead of BLAS when a
# layer is at most NNC_TINY_WIDTH wide on both sides and the batch is a single
# row. The per-step kernels (dense_forward_k, dense_backward_k) and the
# compiled epoch loop both call the three helpers below, so they pick the same
# code for the same shapes and stay bit-identical to each other; the summation
# order is documented in _tiny.h.
#
# Why these limits: at 32 wide a row of partial sums is a few vector registers
# and a layer's weights (<= 4 KB in float32) stay in L1; BLAS's fixed cost per
# call (argument checks, small-matrix dispatch, packing, a buffer lock) is
# several times the arithmetic of such a product for one row. From 4 rows on
# the loops were slower than OpenBLAS's small-matrix kernels on the 2-16-16-1
# network (bench/tiny_step.py --batch 4 / 16: 0.80 vs 0.745 and 0.70 vs 0.58
# µs/sample CPU time), so batches of 2+ rows keep BLAS.
#
# At batch 1 the compiled epoch loop goes further when the whole network is
# tiny Dense layers under plain SGD: one C call runs the forward pass of every
# layer and one the backward pass with the update (the whole-sample step,
# _tiny.h; _train_loop.pxi's _tl_tiny_step_fits says when), with the bits of
# the per-layer path.

cdef extern from "_tiny.h":
    enum:
        NNC_TINY_WIDTH
    void nnc_tiny_nn_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* A,
                         const float* B, float* C) noexcept nogil
    void nnc_tiny_nn_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* A,
                         const double* B, double* C) noexcept nogil
    void nnc_tiny_tn_f32(Py_ssize_t m, Py_ssize_t d, Py_ssize_t k, const float* X,
                         const float* D, float* dW) noexcept nogil
    void nnc_tiny_tn_f64(Py_ssize_t m, Py_ssize_t d, Py_ssize_t k, const double* X,
                         const double* D, double* dW) noexcept nogil
    void nnc_tiny_nt_f32(Py_ssize_t m, Py_ssize_t d, Py_ssize_t k, const float* D,
                         const float* W, float* dX) noexcept nogil
    void nnc_tiny_nt_f64(Py_ssize_t m, Py_ssize_t d, Py_ssize_t k, const double* D,
                         const double* W, double* dX) noexcept nogil

    # the whole-sample step (see _tiny.h)
    enum:
        NNC_TINY_LINEAR
        NNC_TINY_RELU
        NNC_TINY_LEAKY_RELU
        NNC_TINY_TANH
    ctypedef struct NncTinyLayer:
        Py_ssize_t n_in
        Py_ssize_t n_out
        Py_ssize_t w_off
        int act
        void* out
        void* wt
    bint nnc_tiny_step_act(int act) noexcept nogil
    int nnc_tiny_forward_f32(int n_layers, const NncTinyLayer* L, const float* params,
                             const float* x) noexcept nogil
    int nnc_tiny_forward_f64(int n_layers, const NncTinyLayer* L, const double* params,
                             const double* x) noexcept nogil
    bint nnc_tiny_backward_sgd_f32(int n_layers, const NncTinyLayer* L, float* params,
                                   float* grads, float* backup, const float* x,
                                   const float* out_grad, float neg_lr, float gs) noexcept nogil
    bint nnc_tiny_backward_sgd_f64(int n_layers, const NncTinyLayer* L, double* params,
                                   double* grads, double* backup, const double* x,
                                   const double* out_grad, double neg_lr,
                                   double gs) noexcept nogil

# _tiny.h's activation codes are this module's.
assert (NNC_TINY_LINEAR, NNC_TINY_RELU, NNC_TINY_LEAKY_RELU, NNC_TINY_TANH) == (
    LINEAR, RELU, LEAKY_RELU, TANH)

TINY_WIDTH = NNC_TINY_WIDTH
# Most rows a product takes the tiny loops for.
cdef Py_ssize_t _tiny_rows = 1
# Off only in tests (to compare against the BLAS products); never changes a
# shape's choice while a loop runs.
cdef bint _tiny_on = True


def _set_tiny(bint on):
    """Switch the tiny-layer products on or off; returns the previous setting."""
    global _tiny_on
    old = _tiny_on
    _tiny_on = on
    return old


cdef inline bint _tiny_fits(Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    return (_tiny_on and rows <= _tiny_rows and n_in <= NNC_TINY_WIDTH
            and n_out <= NNC_TINY_WIDTH)


def _tiny_path(Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out):
    """Whether a Dense layer of ``n_in -> n_out`` over ``rows`` rows runs the tiny
    loops (no BLAS call)."""
    return bool(_tiny_fits(rows, n_in, n_out))


cdef inline void _dense_product(Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out,
                                const floating* X, const floating* W,
                                floating* out) noexcept nogil:
    """out (rows, n_out) := X (rows, n_in) · W (n_in, n_out)."""
    if not _tiny_fits(rows, n_in, n_out):
        _gemm_rm(False, False, <blas_int>rows, <blas_int>n_out, <blas_int>n_in, 1, X,
                 <blas_int>n_in, W, <blas_int>n_out, 0, out, <blas_int>n_out)
    elif floating is float:
        nnc_tiny_nn_f32(rows, n_out, n_in, X, W, out)
    else:
        nnc_tiny_nn_f64(rows, n_out, n_in, X, W, out)


cdef inline void _dense_weight_grad(Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out,
                                    const floating* X, const floating* delta,
                                    floating* dW) noexcept nogil:
    """dW (n_in, n_out) := Xᵀ (n_in, rows) · delta (rows, n_out)."""
    if not _tiny_fits(rows, n_in, n_out):
        _gemm_rm(True, False, <blas_int>n_in, <blas_int>n_out, <blas_int>rows, 1, X,
                 <blas_int>n_in, delta, <blas_int>n_out, 0, dW, <blas_int>n_out)
    elif floating is float:
        nnc_tiny_tn_f32(rows, n_in, n_out, X, delta, dW)
    else:
        nnc_tiny_tn_f64(rows, n_in, n_out, X, delta, dW)


cdef inline void _dense_input_grad(Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out,
                                   const floating* delta, const floating* W,
                                   floating* dX) noexcept nogil:
    """dX (rows, n_in) := delta (rows, n_out) · Wᵀ (n_out, n_in)."""
    if not _tiny_fits(rows, n_in, n_out):
        _gemm_rm(False, True, <blas_int>rows, <blas_int>n_in, <blas_int>n_out, 1, delta,
                 <blas_int>n_out, W, <blas_int>n_out, 0, dX, <blas_int>n_in)
    elif floating is float:
        nnc_tiny_nt_f32(rows, n_in, n_out, delta, W, dX)
    else:
        nnc_tiny_nt_f64(rows, n_in, n_out, delta, W, dX)
