"""Compiled numeric kernels of nncore, float32 and float64.

Design:
* Every kernel is a ``noexcept nogil`` cdef function over ``cython.floating``
  with ``const`` inputs and caller-allocated outputs. Kernels never allocate,
  never raise and touch no Python object; the ``def`` entry points at the bottom
  only acquire memoryviews and release the GIL.
* Argument checks happen *before* this module is entered, in
  ``nncore.backend._cython`` via ``nncore.backend._validate`` (shared with the
  NumPy reference). A kernel is never reached with mismatched shapes, and the
  entry points return early on empty arrays, so ``&X[0, 0]`` is never taken on
  an empty view.
* ``nncore.backend._numpy`` is the specification. Elementwise kernels follow its
  operation order element by element, including the rounding of each Python
  scalar to the array dtype *before* use (NumPy 2 weak scalars), so they agree
  bit for bit; setup.py compiles with ``-ffp-contract=off`` so the compiler
  cannot fuse ``a*b + c`` into an FMA behind our back. Reductions and BLAS
  products agree to rounding (their summation order differs).
* Numeric literals inside ``floating`` expressions are typed locals
  (``cdef floating one = 1``): Cython emits a bare ``1`` as the double ``1.0``,
  which would silently evaluate float32 kernels in double precision.
* Loop bodies are branch-free where it matters (flags hoisted, see
  ``NNC_ADAM_LOOP`` in _adam.h) so GCC vectorises them; ``-fno-math-errno`` lets ``sqrt``
  vectorise too without changing any value.
* GEMM/GEMV through ``scipy.linalg.cython_blas`` (no link step, SciPy's BLAS;
  float32 GEMMs with a batch dimension of 8-128 on nncore's own AVX-512 kernel,
  _sgemm_avx512.h, where the CPU has it; the GEMMs through MKL's instead with
  ``NNCORE_GEMM=mkl``; see _gemm_select.pxi):
  a row-major matrix is the column-major transpose, so row-major
  ``C = op(A) op(B)`` is column-major ``C^T = op(B)^T op(A)^T``: swap operands.
* Threads: OpenMP ``prange`` only over flat buffers of at least ``_par_min``
  (4M) elements, in static contiguous chunks; BLAS is never called inside a parallel
  region (BLAS threads are capped separately with threadpoolctl). Inside the
  compiled epoch loop BLAS may instead run its own parallel jobs on our OpenMP
  team (OpenBLAS's threads callback, see _blas_pool.pxi), and then elementwise
  loops go parallel from 64K elements; reductions keep ``_par_min_sum``, so
  their bits never depend on the loop.
"""

cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport (exp, expf, expm1, expm1f, log, logf, log1p, log1pf, sqrt, sqrtf,
                        tanh)
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv, sdot, ddot

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define NNC_OPENMP 1
    static int nnc_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define NNC_OPENMP 0
    static int nnc_omp_max_threads(void) { return 1; }
    #endif
    #ifndef NNCORE_DEBUG_BUILD
    #define NNCORE_DEBUG_BUILD 0
    #endif
    #ifndef NNCORE_CYTHON_VERSION
    #define NNCORE_CYTHON_VERSION "unknown"
    #endif
    """
    int NNC_OPENMP
    int NNCORE_DEBUG_BUILD
    const char* NNCORE_CYTHON_VERSION
    int nnc_omp_max_threads() noexcept nogil

OPENMP = bool(NNC_OPENMP)
DEBUG_BUILD = bool(NNCORE_DEBUG_BUILD)
CYTHON_VERSION = NNCORE_CYTHON_VERSION.decode("ascii")

cdef enum:
    MAX_THREADS = 64

# The integer type of every size, leading dimension and increment passed to BLAS
# and LAPACK (scipy.linalg.cython_blas / cython_lapack take C int); sizes are
# cast to it only at a BLAS call, after the Python wrappers checked them against
# BLAS_INT_MAX.
ctypedef int blas_int
cdef Py_ssize_t _BLAS_INT_MAX = <Py_ssize_t>((<unsigned long long>1 << (8 * sizeof(blas_int) - 1)) - 1)
BLAS_INT_MAX = _BLAS_INT_MAX

# Activation codes: the ``code`` of each entry of nncore.activations.REGISTRY
# (backend._cython checks N_ACTIVATIONS against it at import). The point
# functions of each activation are in the "activations" section below.
cdef enum:
    LINEAR = 0
    RELU = 1
    LEAKY_RELU = 2
    SIGMOID = 3
    TANH = 4
    ELU = 5
    SOFTPLUS = 6
    N_ACT = 7

N_ACTIVATIONS = N_ACT

cdef int _num_threads = max(1, min(nnc_omp_max_threads(), MAX_THREADS))
# 4M elements: below that, an OpenMP region next to OpenBLAS's own spinning
# pool makes the two fight on a small machine (a BFGS update or a mid-sized Adam
# step on 2 threads ran many times slower than on 1),
# while a memory-bound loop gains little from threads anyway.
cdef Py_ssize_t _par_min = 1 << 22
# The same threshold for the two reductions (sum_squares_k, regularize_k):
# their sums depend on the split, so the epoch loop, which lowers _par_min for
# the elementwise loops when BLAS shares its OpenMP team, leaves this one alone
# and its losses and norms keep the per-step path's bits.
cdef Py_ssize_t _par_min_sum = 1 << 22


# =========================================================================== helpers

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating _expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef extern from "_tanh.h":
    # float32 tanh without libm, rounded once from double (see _tanh.h)
    float nnc_tanhf(float x) noexcept nogil
    void nnc_tanhf_array(const float* s, float* y, Py_ssize_t n) noexcept nogil
    void nnc_tanhf_bias(float* row, const float* b, Py_ssize_t n) noexcept nogil
    enum:
        NNC_ISA_BASE
        NNC_ISA_AVX2
        NNC_ISA_AVX512
    int nnc_isa
    void nnc_isa_init() noexcept nogil
    int nnc_isa_set(int level) noexcept nogil
    int nnc_isa_best() noexcept nogil

nnc_isa_init()


def _set_isa(int level):
    """Run nncore's own vector loops (_tanh.h, _tiny.h) at ``level`` (0 baseline,
    1 AVX2, 2 AVX-512F; clamped to what the CPU has); returns the previous level.
    For tests: every level gives the same bits."""
    old = nnc_isa
    nnc_isa_set(level)
    return old


def _isa():
    """The level nncore's own vector loops run at (see _set_isa)."""
    return nnc_isa


cdef inline floating _tanh(floating x) noexcept nogil:
    """tanh's point function: _tanh.h's for float32, libm's for float64."""
    if floating is float:
        return nnc_tanhf(x)
    else:
        return tanh(x)


cdef inline int _omp_threads() noexcept nogil:
    """The OpenMP loops' width: 1 in a forked child (see the Fork note in _blas_pool.h)."""
    return 1 if nnc_forked_child else _num_threads


cdef inline int _threads_from(Py_ssize_t n, Py_ssize_t least) noexcept nogil:
    """Thread count for a loop over n elements: 1 below ``least``."""
    if n < least:
        return 1
    return _omp_threads()


cdef inline int _threads_for(Py_ssize_t n) noexcept nogil:
    """Thread count for an elementwise flat loop over n elements."""
    return _threads_from(n, _par_min)


cdef inline int _threads_for_sum(Py_ssize_t n) noexcept nogil:
    """Thread count for a reduction over n elements (see _par_min_sum)."""
    return _threads_from(n, _par_min_sum)


cdef inline Py_ssize_t _chunk_lo(Py_ssize_t c, int nt, Py_ssize_t n) noexcept nogil:
    """Start of chunk c of nt over [0, n), on a 64-element boundary (cache lines)."""
    if c >= nt:
        return n
    return ((n * c) // nt) & ~(<Py_ssize_t>63)


# The GEMM every compiled path calls: Fortran-77 ?gemm_ of the library chosen by
# the NNCORE_GEMM switch (_gemm_select.pxi): SciPy's OpenBLAS (cython_blas, the
# default and the fallback) or MKL's. One pair of pointers, so every GEMM of a
# process (epoch loop, per-step kernels, curvature) uses the same library.
ctypedef void (*_sgemm_fn)(char*, char*, blas_int*, blas_int*, blas_int*, float*, float*,
                           blas_int*, float*, blas_int*, float*, float*, blas_int*) noexcept nogil
ctypedef void (*_dgemm_fn)(char*, char*, blas_int*, blas_int*, blas_int*, double*, double*,
                           blas_int*, double*, blas_int*, double*, double*, blas_int*) noexcept nogil
cdef _sgemm_fn _sgemm_call = sgemm
cdef _dgemm_fn _dgemm_call = dgemm

# nncore's own float32 GEMM (_sgemm_avx512.h; AVX-512 CPUs): each element of C one
# chain of FMAs in k order, so its bits do not depend on the tiling, the threads
# or the caller's K blocks. NNCORE_GEMM=nncore (the default where the CPU has
# AVX-512F) sends the float32 GEMMs with alpha 1 and beta 0 or 1 of the shapes
# its nnc_sgemm_own_shape takes there (small batch dimensions, where it measured
# faster); float64 and everything else stay on _sgemm_call / _dgemm_call.
cdef extern from "_sgemm_avx512.h":
    int NNC_SGEMM_OWN
    long nnc_sg_split_calls
    int nnc_sgemm_avx512(int ta, int tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                         const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,
                         int beta, float* C, Py_ssize_t ldc) noexcept nogil
    int nnc_sgemm_avx512_any(int ta, int tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                             const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,
                             int beta, float* C, Py_ssize_t ldc) noexcept nogil
    int nnc_sgemm_reference(int ta, int tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                            const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,
                            int beta, float* C, Py_ssize_t ldc) noexcept nogil
cdef bint _own_sgemm = False     # set by _set_gemm_library (_gemm_select.pxi)


# The inner dimension of every GEMM is summed in blocks of at most _GEMM_K_BLOCK, one
# BLAS call each, accumulating into C. Why: OpenBLAS blocks a longer inner sum by its
# GEMM_Q (384 for float64 on this AVX-512 machine, >= 256 on the x86-64 targets) and
# rounds the last two blocks differently on one thread (level3.c) and on several
# (level3_thread.c), so a 784-wide first layer gave other bits on 2 threads than on 1
# and the thread plan's switching made results depend on the machine's load. Within
# one call of K <= GEMM_Q both drivers sum in the same order. The partition depends on
# K alone (equal blocks rounded up to 16, the kernels' unroll).
cdef enum:
    _GEMM_K_BLOCK = 256


cdef inline blas_int _k_block(blas_int k) noexcept nogil:
    """Length of each inner block of a K-long GEMM (the last one may be shorter)."""
    cdef blas_int blocks = (k + _GEMM_K_BLOCK - 1) // _GEMM_K_BLOCK
    cdef blas_int kb
    if blocks <= 1:
        return k
    kb = (k + blocks - 1) // blocks
    return min(((kb + 15) // 16) * 16, <blas_int>_GEMM_K_BLOCK)


cdef inline void _gemm_rm(bint ta, bint tb, blas_int m, blas_int n, blas_int k, floating alpha,
                          const floating* A, blas_int lda, const floating* B, blas_int ldb,
                          floating beta, floating* C, blas_int ldc) noexcept nogil:
    """C (m x n, row-major) := alpha op(A) op(B) + beta C, via column-major BLAS,
    the inner sum in fixed blocks (see _GEMM_K_BLOCK)."""
    cdef char ca = b'T' if ta else b'N'
    cdef char cb = b'T' if tb else b'N'
    cdef blas_int k0 = 0, kb = _k_block(k), step
    cdef const floating* a_blk
    cdef const floating* b_blk
    if floating is float:
        if _own_sgemm and alpha == 1 and (beta == 0 or beta == 1):
            # one call for the whole inner sum (K blocks would not change its bits);
            # 1: a shape it leaves to BLAS, -1: no scratch memory -> BLAS below
            if nnc_sgemm_avx512(ta, tb, m, n, k, A, lda, B, ldb, beta == 1, C, ldc) == 0:
                return
    while True:
        step = min(kb, k - k0)
        a_blk = A + (<Py_ssize_t>k0 * lda if ta else k0)     # op(A)'s columns k0..
        b_blk = B + (k0 if tb else <Py_ssize_t>k0 * ldb)     # op(B)'s rows k0..
        if floating is float:
            _sgemm_call(&cb, &ca, &n, &m, &step, &alpha, <float*>b_blk, &ldb,
                        <float*>a_blk, &lda, &beta, C, &ldc)
        else:
            _dgemm_call(&cb, &ca, &n, &m, &step, &alpha, <double*>b_blk, &ldb,
                        <double*>a_blk, &lda, &beta, C, &ldc)
        k0 += step
        beta = 1
        if k0 >= k:
            break


cdef inline void _gemv_rm(blas_int m, blas_int n, const floating* A, const floating* x,
                          floating* y) noexcept nogil:
    """y := A x for a row-major (m x n) A (column-major A^T, hence 'T')."""
    cdef char t = b'T'
    cdef blas_int one = 1
    cdef floating alpha = 1
    cdef floating beta = 0
    if floating is float:
        sgemv(&t, &n, &m, &alpha, <float*>A, &n, <float*>x, &one, &beta, y, &one)
    else:
        dgemv(&t, &n, &m, &alpha, <double*>A, &n, <double*>x, &one, &beta, y, &one)


cdef inline double _dot(blas_int n, const floating* x, const floating* y) noexcept nogil:
    """x^T y through BLAS (as NumPy's np.dot does)."""
    cdef blas_int one = 1
    if floating is float:
        return sdot(&n, <float*>x, &one, <float*>y, &one)
    else:
        return ddot(&n, <double*>x, &one, <double*>y, &one)


# =========================================================================== activations
# One point function per activation, f(s), and one for its derivative applied
# to an upstream gradient, dy * f'(s) computed from the output y = f(s)
# (scikit-learn's "pure C functions on single points"). They transcribe the
# NumPy references in nncore.activations operation for operation; the three
# loops below (_act_chunk, _act_grad_chunk, _bias_act_rows) switch on the code
# once per span and call them per element, so each loop body stays a plain
# inlined loop GCC vectorises. Literals are typed locals (see Design).

cdef inline floating _linear(floating s) noexcept nogil:
    return s


cdef inline floating _linear_grad(floating y, floating dy) noexcept nogil:
    return dy


cdef inline floating _relu(floating s) noexcept nogil:
    return s if not (s <= 0) else 0    # maximum(s, 0) keeps NaN; one compare


cdef inline floating _relu_grad(floating y, floating dy) noexcept nogil:
    return dy if y > 0 else 0          # y > 0 exactly when s > 0


cdef inline floating _leaky_relu(floating s) noexcept nogil:
    cdef floating slope = 0.01
    return s if s > 0 else s * slope


cdef inline floating _leaky_relu_grad(floating y, floating dy) noexcept nogil:
    cdef floating slope = 0.01
    return dy if y > 0 else dy * slope


cdef inline floating _sigmoid(floating s) noexcept nogil:
    """1 / (1 + exp(-s)), exp of a non-positive number only."""
    # `one` is typed: a bare literal 1 would make Cython compute in double.
    cdef floating e, one = 1
    if s >= 0:
        e = _exp(-s)
        return one / (one + e)
    e = _exp(s)    # s < 0 or NaN: -|s| == s
    return e / (one + e)


cdef inline floating _sigmoid_grad(floating y, floating dy) noexcept nogil:
    cdef floating one = 1
    return dy * (y * (one - y))


# _tanh (above: _tanh.h for float32, libm for float64) is tanh's point function.

cdef inline floating _tanh_grad(floating y, floating dy) noexcept nogil:
    cdef floating one = 1
    return dy * (one - y * y)


cdef inline floating _elu(floating s) noexcept nogil:
    return s if s > 0 else _expm1(s)    # torch's elu, alpha = 1


cdef inline floating _elu_grad(floating y, floating dy) noexcept nogil:
    cdef floating one = 1
    return dy if y > 0 else dy * (y + one)    # f'(s) = exp(s) = y + 1 for s <= 0


cdef inline floating _softplus(floating s) noexcept nogil:
    cdef floating threshold = 20        # torch's softplus, beta = 1
    return s if s > threshold else _log1p(_exp(s))


cdef inline floating _softplus_grad(floating y, floating dy) noexcept nogil:
    # f'(s) = sigmoid(s) = 1 - exp(-y), as -expm1(-y); 1 above the threshold
    cdef floating threshold = 20
    return dy if y > threshold else dy * (-_expm1(-y))


cdef void _act_chunk(const floating* s, floating* y, Py_ssize_t lo, Py_ssize_t hi,
                     int act) noexcept nogil:
    """y := f(s) on [lo, hi) (y may be s)."""
    cdef Py_ssize_t i
    if act == LINEAR:
        if y != s:
            for i in range(lo, hi):
                y[i] = _linear(s[i])
    elif act == RELU:
        for i in range(lo, hi):
            y[i] = _relu(s[i])
    elif act == LEAKY_RELU:
        for i in range(lo, hi):
            y[i] = _leaky_relu(s[i])
    elif act == SIGMOID:
        for i in range(lo, hi):
            y[i] = _sigmoid(s[i])
    elif act == TANH:
        if floating is float:
            nnc_tanhf_array(s + lo, y + lo, hi - lo)
        else:
            for i in range(lo, hi):
                y[i] = _tanh(s[i])
    elif act == ELU:
        for i in range(lo, hi):
            y[i] = _elu(s[i])
    elif act == SOFTPLUS:
        for i in range(lo, hi):
            y[i] = _softplus(s[i])


cdef void _act_grad_chunk(const floating* y, const floating* dy, floating* out,
                          Py_ssize_t lo, Py_ssize_t hi, int act) noexcept nogil:
    """out := dy * f'(s), f' from the output y = f(s) (out may be dy)."""
    cdef Py_ssize_t i
    if act == LINEAR:
        if out != dy:
            for i in range(lo, hi):
                out[i] = _linear_grad(y[i], dy[i])
    elif act == RELU:
        for i in range(lo, hi):
            out[i] = _relu_grad(y[i], dy[i])
    elif act == LEAKY_RELU:
        for i in range(lo, hi):
            out[i] = _leaky_relu_grad(y[i], dy[i])
    elif act == SIGMOID:
        for i in range(lo, hi):
            out[i] = _sigmoid_grad(y[i], dy[i])
    elif act == TANH:
        for i in range(lo, hi):
            out[i] = _tanh_grad(y[i], dy[i])
    elif act == ELU:
        for i in range(lo, hi):
            out[i] = _elu_grad(y[i], dy[i])
    elif act == SOFTPLUS:
        for i in range(lo, hi):
            out[i] = _softplus_grad(y[i], dy[i])


cdef void _bias_act_rows(floating* out, const floating* b, Py_ssize_t r0, Py_ssize_t r1,
                         Py_ssize_t k, int act) noexcept nogil:
    """out[i, :] := f(out[i, :] + b) for rows r0 <= i < r1 (bias first, as NumPy;
    one pass, the block is still in cache after the GEMM)."""
    cdef Py_ssize_t i, j
    cdef floating* row
    for i in range(r0, r1):
        row = out + i * k
        if act == LINEAR:
            for j in range(k):
                row[j] = _linear(row[j] + b[j])
        elif act == RELU:
            for j in range(k):
                row[j] = _relu(row[j] + b[j])
        elif act == LEAKY_RELU:
            for j in range(k):
                row[j] = _leaky_relu(row[j] + b[j])
        elif act == SIGMOID:
            for j in range(k):
                row[j] = _sigmoid(row[j] + b[j])
        elif act == TANH:
            if floating is float:
                nnc_tanhf_bias(row, b, k)
            else:
                for j in range(k):
                    row[j] = _tanh(row[j] + b[j])
        elif act == ELU:
            for j in range(k):
                row[j] = _elu(row[j] + b[j])
        elif act == SOFTPLUS:
            for j in range(k):
                row[j] = _softplus(row[j] + b[j])


# =========================================================================== elementwise

cdef void _multiply_chunk(const floating* a, const floating* b, floating* out,
                          Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(lo, hi):
        out[i] = a[i] * b[i]


cdef void _add_chunk(const floating* a, const floating* b, floating* out,
                     Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(lo, hi):
        out[i] = a[i] + b[i]


cdef void activation_forward_k(const floating[::1] s,   # IN  pre-activation, flat
                               floating[::1] y,         # OUT f(s), may alias s
                               int act) noexcept nogil:
    """y := f(s)"""
    cdef Py_ssize_t n = s.shape[0], c
    cdef int nt = _threads_for(n)
    if nt == 1:
        _act_chunk(&s[0], &y[0], 0, n, act)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _act_chunk(&s[0], &y[0], _chunk_lo(c, nt, n), _chunk_lo(c + 1, nt, n), act)


cdef void activation_backward_k(const floating[::1] y,    # IN  layer output f(s)
                                const floating[::1] dy,   # IN  upstream gradient
                                floating[::1] out,        # OUT dy * f'(s), may alias dy
                                int act) noexcept nogil:
    """out := dy ⊙ f'(s)"""
    cdef Py_ssize_t n = y.shape[0], c
    cdef int nt = _threads_for(n)
    if nt == 1:
        _act_grad_chunk(&y[0], &dy[0], &out[0], 0, n, act)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _act_grad_chunk(&y[0], &dy[0], &out[0], _chunk_lo(c, nt, n),
                            _chunk_lo(c + 1, nt, n), act)


cdef void multiply_k(const floating[::1] a,     # IN
                     const floating[::1] b,     # IN
                     floating[::1] out) noexcept nogil:   # OUT, may alias a or b
    """out := a ⊙ b"""
    cdef Py_ssize_t n = a.shape[0], c
    cdef int nt = _threads_for(n)
    if nt == 1:
        _multiply_chunk(&a[0], &b[0], &out[0], 0, n)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _multiply_chunk(&a[0], &b[0], &out[0], _chunk_lo(c, nt, n), _chunk_lo(c + 1, nt, n))


cdef void add_k(const floating[::1] a,     # IN
                const floating[::1] b,     # IN
                floating[::1] out) noexcept nogil:   # OUT, may alias a or b
    """out := a + b (Residual's shortcut)"""
    cdef Py_ssize_t n = a.shape[0], c
    cdef int nt = _threads_for(n)
    if nt == 1:
        _add_chunk(&a[0], &b[0], &out[0], 0, n)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _add_chunk(&a[0], &b[0], &out[0], _chunk_lo(c, nt, n), _chunk_lo(c + 1, nt, n))


cdef double _sumsq_chunk(const floating* x, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t i
    cdef double acc = 0, v
    for i in range(lo, hi):
        v = x[i]
        acc = acc + v * v
    return acc


# A reduction over n elements sums fixed blocks of _SUM_BLOCK elements and adds their
# partial sums in block order; threads take whole blocks. So its bits never depend on
# the thread count (the thread plan switches threads between steps), and a sum over
# at most one block is the plain running sum. Float64 blocks go through BLAS's dot in
# pieces of _DOT_PIECE: OpenBLAS splits a longer dot product among its threads.
cdef enum:
    _SUM_BLOCK = 1 << 20
    _SUM_GROUP = 64           # blocks reduced in parallel at once (partials on the stack)
    _DOT_PIECE = 8192


cdef inline Py_ssize_t _block_end(Py_ssize_t b, Py_ssize_t n) noexcept nogil:
    """End of reduction block b of an n-element sum."""
    return min((b + 1) * <Py_ssize_t>_SUM_BLOCK, n)


cdef double _sumsq_part(const floating* x, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Σ x_i² over [lo, hi) in float64 (one block)."""
    cdef double acc = 0
    cdef Py_ssize_t a = lo
    if floating is double:
        while a < hi:      # NumPy: np.dot(x64, x64), piece by piece
            acc += _dot(<blas_int>min(hi - a, <Py_ssize_t>_DOT_PIECE), x + a, x + a)
            a += _DOT_PIECE
    else:
        acc = _sumsq_chunk(x, lo, hi)
    return acc


cdef double sum_squares_k(const floating[::1] x) noexcept nogil:   # IN
    """Σ x_i² accumulated in float64, in fixed blocks (see _SUM_BLOCK)"""
    cdef Py_ssize_t n = x.shape[0], b, b0 = 0, b1
    cdef Py_ssize_t blocks = (n + _SUM_BLOCK - 1) // _SUM_BLOCK
    cdef int nt = _threads_for_sum(n)
    cdef double part[_SUM_GROUP]
    cdef double acc = 0
    while b0 < blocks:
        b1 = min(b0 + <Py_ssize_t>_SUM_GROUP, blocks)
        if nt == 1 or b1 - b0 == 1:
            for b in range(b0, b1):
                part[b - b0] = _sumsq_part(&x[0], b * _SUM_BLOCK, _block_end(b, n))
        else:
            for b in prange(b0, b1, num_threads=nt, schedule='static'):
                part[b - b0] = _sumsq_part(&x[0], b * _SUM_BLOCK, _block_end(b, n))
        for b in range(b0, b1):
            acc = acc + part[b - b0]
        b0 = b1
    return acc


include "_tiny.pxi"


# =========================================================================== dense layer

cdef void dense_forward_k(const floating[:, ::1] X,   # IN  (N, n_in)
                          const floating[:, ::1] W,   # IN  (n_in, n_out)
                          const floating[::1] b,      # IN  (n_out,)
                          int act,                    # IN  activation code
                          floating[:, ::1] out) noexcept nogil:   # OUT (N, n_out)
    """out := f(X·W + b)"""
    cdef blas_int n = <blas_int>X.shape[0], d = <blas_int>X.shape[1], k = <blas_int>W.shape[1]
    cdef Py_ssize_t total = <Py_ssize_t>n * k, c
    cdef int nt = _threads_for(total)
    # Bias and activation in one pass after the GEMM: the (N, n_out) block is
    # still in cache, and NumPy (the spec) also adds b after the product.
    _dense_product(n, d, k, &X[0, 0], &W[0, 0], &out[0, 0])
    if nt == 1 or n < nt:
        _bias_act_rows(&out[0, 0], &b[0], 0, n, k, act)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _bias_act_rows(&out[0, 0], &b[0], (n * c) // nt, (n * (c + 1)) // nt, k, act)


cdef void _delta_rows(const floating* Y, floating* dY, int act, Py_ssize_t n,
                      Py_ssize_t k, floating* db) noexcept nogil:
    """dY := dY ⊙ f'(Y) and db := Σ_rows dY, row by row (rows summed in order)."""
    cdef Py_ssize_t i, j
    cdef floating* d
    for j in range(k):
        db[j] = 0
    for i in range(n):
        d = dY + i * k
        _act_grad_chunk(Y + i * k, d, d, 0, k, act)
        for j in range(k):
            db[j] = db[j] + d[j]


cdef void dense_backward_k(const floating[:, ::1] X,   # IN  layer input (N, n_in)
                           const floating[:, ::1] W,   # IN  weights (n_in, n_out)
                           const floating[:, ::1] Y,   # IN  layer output f(S) (N, n_out)
                           floating[:, ::1] dY,        # IN/OUT upstream grad -> delta
                           int act,                    # IN  activation code
                           floating[:, ::1] dW,        # OUT (n_in, n_out)
                           floating[::1] db,           # OUT (n_out,)
                           floating[:, ::1] dX,        # OUT (N, n_in), unused if not has_dX
                           bint has_dX) noexcept nogil:
    """δ := dY ⊙ f'(S);  dW := Xᵀδ;  db := Σ_n δ;  dX := δ·Wᵀ"""
    cdef blas_int n = <blas_int>X.shape[0], d = <blas_int>X.shape[1], k = <blas_int>W.shape[1]
    _delta_rows(&Y[0, 0], &dY[0, 0], act, n, k, &db[0])
    _dense_weight_grad(n, d, k, &X[0, 0], &dY[0, 0], &dW[0, 0])
    if has_dX:
        _dense_input_grad(n, d, k, &dY[0, 0], &W[0, 0], &dX[0, 0])


# =========================================================================== losses

cdef inline floating _row_max(const floating* x, Py_ssize_t k) noexcept nogil:
    """max of a row; NaN if the row holds a NaN (as NumPy's max)."""
    cdef Py_ssize_t j
    cdef floating m = x[0]
    for j in range(1, k):
        if x[j] > m or x[j] != x[j]:
            m = x[j]
            if m != m:
                return m
    return m


cdef void softmax_k(const floating[:, ::1] logits,   # IN  (N, K)
                    floating[:, ::1] out) noexcept nogil:   # OUT (N, K), may alias logits
    """out_nk := exp(x_nk − m_n) / Σ_j exp(x_nj − m_n)"""
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j
    cdef const floating* x
    cdef floating* o
    cdef floating m, s
    for i in range(n):
        x = &logits[i, 0]
        o = &out[i, 0]
        m = _row_max(x, k)
        s = 0
        for j in range(k):
            o[j] = _exp(x[j] - m)
            s = s + o[j]
        for j in range(k):
            o[j] = o[j] / s


cdef void sigmoid_k(const floating[::1] x, floating[::1] out) noexcept nogil:
    """out := 1 / (1 + exp(−x))"""
    activation_forward_k(x, out, SIGMOID)


cdef double loss_mse_k(const floating[:, ::1] out,      # IN  (N, K)
                       const floating[:, ::1] target,   # IN  (N, K)
                       floating[:, ::1] grad,           # OUT (N, K) if has_grad
                       bint has_grad,
                       const double* weight) noexcept nogil:   # IN (N,) or NULL
    """J = 1/(2N) Σ (out − target)²;  grad := (out − target)/N.
    With row coefficients c = weight: J = ½ Σ_n c_n Σ_k (out − target)²,
    grad := (out − target)·c_n (c_n rounded to the array type first)."""
    cdef Py_ssize_t n = out.shape[0], k = out.shape[1], total = out.shape[0] * out.shape[1], i, j
    cdef const floating* o = &out[0, 0]
    cdef const floating* t = &target[0, 0]
    cdef floating* g = &grad[0, 0] if has_grad else NULL
    cdef floating diff, fc
    cdef floating fn = <floating>n
    cdef double acc = 0, d64, row
    if weight != NULL:
        for i in range(n):
            fc = <floating>weight[i]
            row = 0
            for j in range(i * k, i * k + k):
                diff = o[j] - t[j]
                d64 = diff
                row = row + d64 * d64
                if has_grad:
                    g[j] = diff * fc
            acc = acc + weight[i] * row
        return 0.5 * acc
    for i in range(total):
        diff = o[i] - t[i]
        d64 = diff
        acc = acc + d64 * d64
        if has_grad:
            g[i] = diff / fn
    return 0.5 * acc / n


cdef double loss_softmax_ce_k(const floating[:, ::1] logits,   # IN  (N, K)
                              const int64_t[::1] labels,       # IN  (N,) in [0, K)
                              floating[:, ::1] grad,           # OUT (N, K) if has_grad
                              bint has_grad,
                              const double* weight) noexcept nogil:   # IN (N,) or NULL
    """J = −1/N Σ_n log softmax(x_n)[y_n] = 1/N Σ_n (log Σ_j e^{z_nj} − z_n,y_n);
    grad := (softmax − onehot)/N.  With row coefficients c = weight: the terms
    times c_n instead of 1/N (grad: times c_n rounded to the array type)."""
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j
    cdef const floating* x
    cdef floating* g = NULL
    cdef floating m, s, fn = <floating>n, one = 1, fc
    cdef double acc = 0, term
    cdef int64_t lab
    cdef bint weighted = weight != NULL
    for i in range(n):
        x = &logits[i, 0]
        lab = labels[i]
        m = _row_max(x, k)    # log-sum-exp: exp of non-positive numbers only
        s = 0
        if has_grad:
            g = &grad[i, 0]
            for j in range(k):
                g[j] = _exp(x[j] - m)
                s = s + g[j]
            for j in range(k):
                g[j] = g[j] / s
            g[lab] = g[lab] - one
            if weighted:
                fc = <floating>weight[i]
                for j in range(k):
                    g[j] = g[j] * fc
            else:
                for j in range(k):
                    g[j] = g[j] / fn
        else:
            for j in range(k):
                s = s + _exp(x[j] - m)
        term = <double>_log(s) - <double>(x[lab] - m)
        if weighted:
            acc = acc + weight[i] * term
        else:
            acc = acc + term
    return acc if weighted else acc / n


cdef double loss_softmax_ce_prob_k(const floating[:, ::1] logits,   # IN  (N, K)
                                   const floating[:, ::1] target,   # IN  (N, K) rows sum to 1
                                   floating[:, ::1] grad,           # OUT (N, K) if has_grad
                                   bint has_grad,
                                   const double* weight) noexcept nogil:   # IN (N,) or NULL
    """J = −1/N Σ_nk t_nk (z_nk − log Σ_j e^{z_nj});  grad := (softmax − t)/N.
    With row coefficients c = weight: row n's terms times c_n instead of 1/N."""
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j
    cdef const floating* x
    cdef const floating* t
    cdef floating* g = NULL
    cdef floating m, s, ls, fn = <floating>n, fc = 0
    cdef double acc = 0, row
    cdef bint weighted = weight != NULL
    for i in range(n):
        x = &logits[i, 0]
        t = &target[i, 0]
        m = _row_max(x, k)
        s = 0
        if has_grad:
            g = &grad[i, 0]
            for j in range(k):
                g[j] = _exp(x[j] - m)
                s = s + g[j]
        else:
            for j in range(k):
                s = s + _exp(x[j] - m)
        ls = _log(s)
        if weighted:
            row = 0
            for j in range(k):
                row = row + <double>(t[j] * ((x[j] - m) - ls))
            acc = acc + weight[i] * row
            fc = <floating>weight[i]
        else:
            for j in range(k):
                acc = acc + <double>(t[j] * ((x[j] - m) - ls))
        if has_grad:
            if weighted:
                for j in range(k):
                    g[j] = ((g[j] / s) - t[j]) * fc
            else:
                for j in range(k):
                    g[j] = ((g[j] / s) - t[j]) / fn
    return -acc if weighted else -acc / n


cdef double loss_bce_k(const floating[:, ::1] logits,   # IN  (N, K)
                       const floating[:, ::1] target,   # IN  (N, K) in [0, 1]
                       floating[:, ::1] grad,           # OUT (N, K) if has_grad
                       bint has_grad,
                       const double* weight) noexcept nogil:   # IN (N,) or NULL
    """J = 1/N Σ [max(x, 0) − x·d + log(1 + e^{−|x|})];  grad := (σ(x) − d)/N.
    With row coefficients c = weight: row n's terms times c_n instead of 1/N."""
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1]
    cdef Py_ssize_t total = logits.shape[0] * logits.shape[1], i, j
    cdef const floating* x = &logits[0, 0]
    cdef const floating* t = &target[0, 0]
    cdef floating* g = &grad[0, 0] if has_grad else NULL
    cdef floating xi, ax, fn = <floating>n, fc
    cdef double acc = 0, row
    if weight != NULL:
        for i in range(n):
            fc = <floating>weight[i]
            row = 0
            for j in range(i * k, i * k + k):
                xi = x[j]
                ax = xi if xi >= 0 else -xi
                row = row + <double>(((xi if xi > 0 else 0) - xi * t[j]) + _log1p(_exp(-ax)))
                if has_grad:
                    g[j] = (_sigmoid(xi) - t[j]) * fc
            acc = acc + weight[i] * row
        return acc
    for i in range(total):
        xi = x[i]
        ax = xi if xi >= 0 else -xi
        # Stable for large |x|: never exponentiates a positive number.
        acc = acc + <double>(((xi if xi > 0 else 0) - xi * t[i]) + _log1p(_exp(-ax)))
        if has_grad:
            g[i] = (_sigmoid(xi) - t[i]) / fn
    return acc / n


# =========================================================================== regularisation

cdef void _reg_chunk(const floating* w, floating* g, Py_ssize_t lo, Py_ssize_t hi,
                     floating l1f, floating l2f2, bint do_l1, bint do_l2, bint has_grad,
                     double* s1, double* s2) noexcept nogil:
    cdef Py_ssize_t i
    cdef double a1 = 0, a2 = 0, v
    cdef floating wi, sg
    for i in range(lo, hi):
        wi = w[i]
        v = wi
        a1 = a1 + (v if v >= 0 else -v)
        a2 = a2 + v * v
        if has_grad:
            if do_l1:
                if wi > 0:
                    sg = 1
                elif wi < 0:
                    sg = -1
                else:
                    sg = wi    # sign(0) = 0, sign(NaN) = NaN
                    if wi == 0:
                        sg = 0
                g[i] = g[i] + l1f * sg
            if do_l2:
                g[i] = g[i] + l2f2 * wi
    s1[0] = a1
    s2[0] = a2


cdef void _reg_blocks(const floating* w, floating* g, Py_ssize_t length, int nt,
                      floating l1f, floating l2f2, bint do_l1, bint do_l2, bint has_grad,
                      double* s1, double* s2) noexcept nogil:
    """Σ|w| and Σ w² over one segment in fixed blocks (see _SUM_BLOCK), gradient added."""
    cdef Py_ssize_t b, b0 = 0, b1
    cdef Py_ssize_t blocks = (length + _SUM_BLOCK - 1) // _SUM_BLOCK
    cdef double p1[_SUM_GROUP]
    cdef double p2[_SUM_GROUP]
    s1[0] = 0
    s2[0] = 0
    while b0 < blocks:
        b1 = min(b0 + <Py_ssize_t>_SUM_GROUP, blocks)
        if nt == 1 or b1 - b0 == 1:
            for b in range(b0, b1):
                _reg_chunk(w, g, b * _SUM_BLOCK, _block_end(b, length), l1f, l2f2,
                           do_l1, do_l2, has_grad, &p1[b - b0], &p2[b - b0])
        else:
            for b in prange(b0, b1, num_threads=nt, schedule='static'):
                _reg_chunk(w, g, b * _SUM_BLOCK, _block_end(b, length), l1f, l2f2,
                           do_l1, do_l2, has_grad, &p1[b - b0], &p2[b - b0])
        for b in range(b0, b1):
            s1[0] = s1[0] + p1[b - b0]
            s2[0] = s2[0] + p2[b - b0]
        b0 = b1


cdef double regularize_k(const floating[::1] params,    # IN  flat parameters
                         floating[::1] grads,           # IN/OUT += penalty gradient
                         const int64_t[:, ::1] segments,   # IN  [start, stop) of weights
                         double l1, double l2,
                         bint has_grad) noexcept nogil:
    """pen = l1 Σ|w| + l2 Σ w²;  grads += l1 sign(w) + 2 l2 w  (weights only)"""
    cdef Py_ssize_t s, start, stop, length
    cdef double pen = 0, s1, s2
    cdef floating l1f = <floating>l1
    cdef floating l2f2 = <floating>(2.0 * l2)
    cdef bint do_l1 = l1 != 0.0, do_l2 = l2 != 0.0
    cdef floating* g = NULL
    for s in range(segments.shape[0]):
        start = segments[s, 0]
        stop = segments[s, 1]
        length = stop - start
        if length <= 0:
            continue
        g = &grads[start] if has_grad else NULL
        _reg_blocks(&params[start], g, length, _threads_for_sum(length), l1f, l2f2,
                    do_l1, do_l2, has_grad, &s1, &s2)
        if do_l1:
            pen = pen + l1 * s1
        if do_l2:
            pen = pen + l2 * s2
    return pen


# =========================================================================== dropout

cdef void _dropout_chunk(uint64_t seed, uint64_t counter, double rate, floating scale,
                         floating* mask, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t z
    cdef double u
    for i in range(lo, hi):
        # splitmix64 of seed + k * golden, k = counter + i + 1 (mod 2^64): the
        # same stateless generator as _numpy.uniform_counter.
        z = seed + (counter + <uint64_t>(i + 1)) * <uint64_t>0x9E3779B97F4A7C15ULL
        z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
        z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
        z = z ^ (z >> 31)
        u = <double>(z >> 11) * (1.0 / 9007199254740992.0)    # 2**-53, exact
        mask[i] = scale if u >= rate else 0


cdef void dropout_mask_k(uint64_t seed, uint64_t counter, double rate,   # IN
                         floating[::1] mask) noexcept nogil:             # OUT flat
    """mask_i := [u_i ≥ rate] / (1 − rate),  u_i = splitmix64(seed + (counter+i+1)·φ)·2⁻⁵³"""
    cdef Py_ssize_t n = mask.shape[0], c
    cdef int nt = _threads_for(n)
    cdef floating scale = <floating>(1.0 / (1.0 - rate))
    if nt == 1:
        _dropout_chunk(seed, counter, rate, scale, &mask[0], 0, n)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _dropout_chunk(seed, counter, rate, scale, &mask[0], _chunk_lo(c, nt, n),
                           _chunk_lo(c + 1, nt, n))


# =========================================================================== batching

ctypedef fused floating_in:
    float
    double

ctypedef fused gather_in:
    float
    double
    int64_t

ctypedef fused gather_out:
    float
    double
    int64_t


cdef void gather_rows_k(const floating_in[:, ::1] X,   # IN  data set (M, D)
                        const int64_t[::1] idx,        # IN  (N,) rows in [0, M)
                        floating[:, ::1] out) noexcept nogil:   # OUT (N, D)
    """out[i, :] := X[idx[i], :]  (with float32 ↔ float64 conversion)"""
    cdef Py_ssize_t n = idx.shape[0], d = X.shape[1], i, j
    cdef const floating_in* src
    cdef floating* dst
    for i in range(n):
        src = &X[idx[i], 0]
        dst = &out[i, 0]
        if sizeof(floating_in) == sizeof(floating):
            memcpy(dst, src, d * sizeof(floating))
        else:
            for j in range(d):
                dst[j] = <floating>src[j]


cdef void gather_k(const gather_in[::1] y,     # IN  (M,)
                   const int64_t[::1] idx,     # IN  (N,) in [0, M)
                   gather_out[::1] out) noexcept nogil:   # OUT (N,)
    """out[i] := y[idx[i]]"""
    cdef Py_ssize_t i
    for i in range(idx.shape[0]):
        out[i] = <gather_out>y[idx[i]]


# =========================================================================== optimizers
# Each update is one pass over memory, with the operation order of the NumPy
# reference (a transcription of torch.optim's _single_tensor_* code). Scalars
# are rounded to the array dtype once, as NumPy does with Python floats.
# Multiplying by gscale == 1 or decay == 1 is exact, so those need no branch.

cdef void _sgd_chunk(floating* p, const floating* g, floating* b, Py_ssize_t lo,
                     Py_ssize_t hi, floating neg_lr, floating mu, floating omd,
                     bint has_mom, bint nesterov, bint first, floating gs) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating gi, bi
    if not has_mom:
        for i in range(lo, hi):
            p[i] = p[i] + neg_lr * (g[i] * gs)
        return
    for i in range(lo, hi):
        gi = g[i] * gs
        if first:
            bi = gi
        else:
            bi = b[i] * mu
            bi = bi + omd * gi
        b[i] = bi
        if nesterov:
            gi = gi + mu * bi
        else:
            gi = bi
        p[i] = p[i] + neg_lr * gi


cdef void sgd_k(floating[::1] p,          # IN/OUT params
                const floating[::1] g,    # IN  grads
                floating[::1] b,          # IN/OUT momentum buffer
                double lr, double momentum, double dampening, bint nesterov,
                bint first, double gscale) noexcept nogil:
    """b := μ b + (1−τ) g (b := g first);  p −= lr (g + μ b if nesterov else b)"""
    cdef Py_ssize_t n = p.shape[0], c
    cdef int nt = _threads_for(n)
    cdef floating neg_lr = <floating>(-lr), mu = <floating>momentum
    cdef floating omd = <floating>(1.0 - dampening), gs = <floating>gscale
    cdef bint has_mom = momentum != 0.0
    if nt == 1:
        _sgd_chunk(&p[0], &g[0], &b[0], 0, n, neg_lr, mu, omd, has_mom, nesterov, first, gs)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _sgd_chunk(&p[0], &g[0], &b[0], _chunk_lo(c, nt, n), _chunk_lo(c + 1, nt, n),
                       neg_lr, mu, omd, has_mom, nesterov, first, gs)


cdef void _adagrad_chunk(floating* p, const floating* g, floating* s, Py_ssize_t lo,
                         Py_ssize_t hi, floating neg_clr, floating eps, bint inside,
                         floating gs) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating gi, si, std
    for i in range(lo, hi):
        gi = g[i] * gs
        si = s[i] + gi * gi
        s[i] = si
        if inside:
            std = _sqrt(si + eps)
        else:
            std = _sqrt(si) + eps
        p[i] = p[i] + neg_clr * (gi / std)


cdef void adagrad_k(floating[::1] p, const floating[::1] g,
                    floating[::1] state_sum,       # IN/OUT Σ g²
                    double clr, double eps, bint eps_inside_sqrt,
                    double gscale) noexcept nogil:
    """s += g²;  p −= clr · g / (√s + ε)"""
    cdef Py_ssize_t n = p.shape[0], c
    cdef int nt = _threads_for(n)
    cdef floating neg_clr = <floating>(-clr), e = <floating>eps, gs = <floating>gscale
    if nt == 1:
        _adagrad_chunk(&p[0], &g[0], &state_sum[0], 0, n, neg_clr, e, eps_inside_sqrt, gs)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _adagrad_chunk(&p[0], &g[0], &state_sum[0], _chunk_lo(c, nt, n),
                           _chunk_lo(c + 1, nt, n), neg_clr, e, eps_inside_sqrt, gs)


cdef void _rmsprop_chunk(floating* p, const floating* g, floating* v, Py_ssize_t lo,
                         Py_ssize_t hi, floating neg_lr, floating alpha, floating oma,
                         floating eps, bint inside, floating gs) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating gi, vi, avg
    for i in range(lo, hi):
        gi = g[i] * gs
        vi = v[i] * alpha
        vi = vi + oma * (gi * gi)
        v[i] = vi
        if inside:
            avg = _sqrt(vi + eps)
        else:
            avg = _sqrt(vi) + eps
        p[i] = p[i] + neg_lr * (gi / avg)


cdef void rmsprop_k(floating[::1] p, const floating[::1] g,
                    floating[::1] square_avg,      # IN/OUT moving mean of g²
                    double lr, double alpha, double eps, bint eps_inside_sqrt,
                    double gscale) noexcept nogil:
    """v := α v + (1−α) g²;  p −= lr · g / (√v + ε)"""
    cdef Py_ssize_t n = p.shape[0], c
    cdef int nt = _threads_for(n)
    cdef floating neg_lr = <floating>(-lr), a = <floating>alpha
    cdef floating oma = <floating>(1.0 - alpha), e = <floating>eps, gs = <floating>gscale
    if nt == 1:
        _rmsprop_chunk(&p[0], &g[0], &square_avg[0], 0, n, neg_lr, a, oma, e,
                       eps_inside_sqrt, gs)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _rmsprop_chunk(&p[0], &g[0], &square_avg[0], _chunk_lo(c, nt, n),
                           _chunk_lo(c + 1, nt, n), neg_lr, a, oma, e, eps_inside_sqrt, gs)


cdef void _rprop_chunk(floating* p, const floating* g, floating* prev, floating* step,
                       floating* dw, Py_ssize_t lo, Py_ssize_t hi, floating eta_minus,
                       floating eta_plus, floating smin, floating smax, bint zero_on_change,
                       bint backtrack, bint revert) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating gi, prod, d, upd, one = 1
    for i in range(lo, hi):
        gi = g[i]
        # The product, not the signs, as torch: a product that underflows to 0
        # counts as "no sign information".
        prod = gi * prev[i]
        d = step[i]
        if prod > 0:
            d = d * eta_plus
        elif prod < 0:
            d = d * eta_minus
        else:
            d = d * one
        # torch's clamp_(min, max) after every multiply.
        if d < smin:
            d = smin
        if d > smax:
            d = smax
        step[i] = d
        if prod < 0 and zero_on_change:
            gi = 0
        if backtrack and prod < 0:
            # Weight-backtracking: undo the previous change (iRprop+: only if the
            # error went up); dw keeps what was applied now.
            if revert:
                p[i] = p[i] - dw[i]
                dw[i] = -dw[i]
            else:
                dw[i] = 0
        else:
            if gi > 0:
                upd = d
            elif gi < 0:
                upd = -d
            else:
                upd = 0
            p[i] = p[i] - upd
            if backtrack:
                dw[i] = -upd
        prev[i] = gi


cdef void rprop_k(floating[::1] p, const floating[::1] g,
                  floating[::1] prev,          # IN/OUT previous (possibly zeroed) gradient
                  floating[::1] step,          # IN/OUT per-weight step sizes
                  floating[::1] dw,            # IN/OUT last weight change (backtrack only)
                  double eta_minus, double eta_plus, double step_min, double step_max,
                  bint zero_on_change, bint backtrack, bint revert) noexcept nogil:
    """Δ := clamp(Δ · (η+ | η− | 1) by sign of g·g_prev);  p −= sign(g) Δ  (Rprop family)"""
    cdef Py_ssize_t n = p.shape[0], c
    cdef int nt = _threads_for(n)
    cdef floating em = <floating>eta_minus, ep = <floating>eta_plus
    cdef floating lo_s = <floating>step_min, hi_s = <floating>step_max
    cdef floating* dwp = &dw[0] if dw.shape[0] > 0 else NULL
    if nt == 1:
        _rprop_chunk(&p[0], &g[0], &prev[0], &step[0], dwp, 0, n, em, ep, lo_s, hi_s,
                     zero_on_change, backtrack, revert)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _rprop_chunk(&p[0], &g[0], &prev[0], &step[0], dwp, _chunk_lo(c, nt, n),
                         _chunk_lo(c + 1, nt, n), em, ep, lo_s, hi_s, zero_on_change,
                         backtrack, revert)


# Adam's update kernel (``_tl_adam``, a multiversioned C loop) lives in
# _train_loop.pxi, which the epoch loop shares.


# =========================================================================== full-batch helpers

cdef void symv_k(const floating[:, ::1] A,   # IN  (n, n), both triangles
                 const floating[::1] x,      # IN  (n,)
                 floating[::1] out) noexcept nogil:   # OUT (n,)
    """out := A·x"""
    # GEMV rather than SYMV: reads both triangles, exactly A @ x as NumPy does.
    _gemv_rm(<blas_int>A.shape[0], <blas_int>A.shape[1], &A[0, 0], &x[0], &out[0])


cdef void rank2_prepare_k(const floating[:, ::1] V,   # IN  (n, n)
                          const floating[::1] s,      # IN  (n,)
                          const floating[::1] r,      # IN  (n,)
                          floating[::1] u,            # OUT V·r
                          double* sr, double* ru) noexcept nogil:   # OUT sᵀr, rᵀu
    """u := V·r;  sr := sᵀr;  ru := rᵀu"""
    cdef blas_int n = <blas_int>V.shape[0]
    _gemv_rm(n, n, &V[0, 0], &r[0], &u[0])
    sr[0] = _dot(n, &s[0], &r[0])
    ru[0] = _dot(n, &r[0], &u[0])


cdef void _bfgs_rows(floating* V, const floating* s, const floating* u, Py_ssize_t n,
                     Py_ssize_t r0, Py_ssize_t r1, floating rho, floating c) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating* row
    cdef floating si, ui
    for i in range(r0, r1):
        row = V + i * n
        si = s[i]
        ui = u[i]
        for j in range(n):
            row[j] = (row[j] - rho * (si * u[j] + ui * s[j])) + c * (si * s[j])


cdef void bfgs_apply_k(floating[:, ::1] V,       # IN/OUT inverse Hessian (n, n)
                       const floating[::1] s,    # IN  step
                       const floating[::1] u,    # IN  V·r (before the update)
                       double rho, double c) noexcept nogil:
    """V := V − ρ (s uᵀ + u sᵀ) + c s sᵀ,  c = ρ² rᵀu + ρ"""
    cdef Py_ssize_t n = V.shape[0], ch
    cdef int nt = _threads_for(n * n)
    cdef floating frho = <floating>rho, fc = <floating>c
    if nt == 1 or n < nt:
        _bfgs_rows(&V[0, 0], &s[0], &u[0], n, 0, n, frho, fc)
    else:
        for ch in prange(nt, num_threads=nt, schedule='static'):
            _bfgs_rows(&V[0, 0], &s[0], &u[0], n, (n * ch) // nt, (n * (ch + 1)) // nt,
                       frho, fc)


cdef void _dfp_rows(floating* V, const floating* s, const floating* u, Py_ssize_t n,
                    Py_ssize_t r0, Py_ssize_t r1, floating sr, floating ru) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating* row
    cdef floating si, ui
    for i in range(r0, r1):
        row = V + i * n
        si = s[i]
        ui = u[i]
        for j in range(n):
            row[j] = (row[j] + (si * s[j]) / sr) - (ui * u[j]) / ru


cdef void dfp_apply_k(floating[:, ::1] V,       # IN/OUT inverse Hessian (n, n)
                      const floating[::1] s,    # IN  step
                      const floating[::1] u,    # IN  V·r (before the update)
                      double sr, double ru) noexcept nogil:
    """V := V + s sᵀ/(sᵀr) − u uᵀ/(rᵀu)"""
    cdef Py_ssize_t n = V.shape[0], ch
    cdef int nt = _threads_for(n * n)
    cdef floating fsr = <floating>sr, fru = <floating>ru
    if nt == 1 or n < nt:
        _dfp_rows(&V[0, 0], &s[0], &u[0], n, 0, n, fsr, fru)
    else:
        for ch in prange(nt, num_threads=nt, schedule='static'):
            _dfp_rows(&V[0, 0], &s[0], &u[0], n, (n * ch) // nt, (n * (ch + 1)) // nt,
                      fsr, fru)


# =========================================================================== entry points
# Called by nncore.backend._cython after its full validation, but safe on their
# own: each checks, in O(1) (O(rows) for index arrays), the shapes and indices
# its kernel relies on and raises ValueError instead of reading or writing out
# of bounds (dtype and layout are checked by the typed memoryviews). Flat
# kernels take 1-D views (the wrapper passes a.reshape(-1)); every entry point
# returns early on empty input so no kernel takes the address of an element
# that does not exist.

cdef int _require(bint ok, str what) except -1:
    """Raise ValueError(what) unless ok."""
    if not ok:
        raise ValueError(f"nncore._kernels: {what}")
    return 0


cdef int _require_rows_in(const int64_t[::1] idx, Py_ssize_t n, str what) except -1:
    """Every idx[i] in [0, n) (one pass; the message is formatted only on failure)."""
    cdef Py_ssize_t i
    cdef bint ok = True
    with nogil:
        for i in range(idx.shape[0]):
            if idx[i] < 0 or idx[i] >= n:
                ok = False
                break
    if not ok:
        raise ValueError(f"nncore._kernels: {what} must lie in [0, {n})")
    return 0


cdef int _require_weight(const double[::1] weight, Py_ssize_t n, str kernel) except -1:
    """No weights, or one per row."""
    if weight is not None and weight.shape[0] != n:
        raise ValueError(f"nncore._kernels: {kernel}: weight must have {n} elements")
    return 0


cdef int _require_act(int act, str kernel) except -1:
    """A known activation code (the point-function switches skip unknown ones)."""
    if act < 0 or act >= N_ACT:
        raise ValueError(f"nncore._kernels: {kernel}: unknown activation code {act}")
    return 0


cdef int _require_blas(Py_ssize_t size, str kernel) except -1:
    """A size that fits blas_int (it is cast at the BLAS call)."""
    if size > _BLAS_INT_MAX:
        raise ValueError(f"nncore._kernels: {kernel}: a size exceeds the BLAS limit "
                         f"{_BLAS_INT_MAX}")
    return 0


def set_num_threads(int n):
    """Thread count of the OpenMP loops (clipped to [1, 64]; 1 in a forked child)."""
    global _num_threads
    _num_threads = max(1, min(n, MAX_THREADS))


def get_num_threads():
    return _omp_threads()


def forked_child():
    """Whether this process was forked from one that loaded nncore (its OpenMP
    loops then stay on one thread: GNU OpenMP cannot start a team there)."""
    return bool(nnc_forked_child)


def _set_parallel_threshold(Py_ssize_t n):
    """Smallest flat length run in parallel (tests lower it to exercise prange)."""
    global _par_min, _par_min_sum
    old = _par_min
    _par_min = max(1, n)
    _par_min_sum = _par_min
    return old


cdef Py_ssize_t _gemm_inner(Py_ssize_t a0, Py_ssize_t a1, Py_ssize_t b0, Py_ssize_t b1,
                            Py_ssize_t c0, Py_ssize_t c1, bint trans_a, bint trans_b,
                            str kernel) except -1:
    """The inner length k of C (c0 x c1) := op(A) op(B), A stored a0 x a1 and B
    b0 x b1; ValueError naming ``kernel`` when the shapes do not fit."""
    cdef Py_ssize_t inner = a0 if trans_a else a1
    _require((a1 if trans_a else a0) == c0 and (b0 if trans_b else b1) == c1
             and (b1 if trans_b else b0) == inner, f"{kernel}: op(A) op(B) != C's shape")
    return inner


def gemm(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C,
         bint trans_a, bint trans_b, double alpha, double beta):
    cdef Py_ssize_t inner = _gemm_inner(A.shape[0], A.shape[1], B.shape[0], B.shape[1],
                                        C.shape[0], C.shape[1], trans_a, trans_b, "gemm")
    cdef floating fa = <floating>alpha, fb = <floating>beta
    cdef Py_ssize_t i, j
    cdef blas_int m, n, k
    _require_blas(max(A.shape[0], A.shape[1], B.shape[0], B.shape[1]), "gemm")
    m, n, k = <blas_int>C.shape[0], <blas_int>C.shape[1], <blas_int>inner
    if m == 0 or n == 0:
        return
    if k == 0:    # op(A) op(B) is zero; BLAS would reject the zero leading dimension
        with nogil:
            for i in range(m):
                for j in range(n):
                    C[i, j] = 0 if fb == 0 else C[i, j] * fb
        return
    with nogil:
        _gemm_rm(trans_a, trans_b, m, n, k, fa, &A[0, 0], <blas_int>A.shape[1], &B[0, 0],
                 <blas_int>B.shape[1], fb, &C[0, 0], n)


def sum_squares(const floating[::1] x):
    cdef double r
    if x.shape[0] == 0:
        return 0.0
    with nogil:
        r = sum_squares_k(x)
    return r


def multiply(const floating[::1] a, const floating[::1] b, floating[::1] out):
    _require(b.shape[0] == a.shape[0] == out.shape[0], "multiply: lengths differ")
    if a.shape[0] == 0:
        return
    with nogil:
        multiply_k(a, b, out)


def add(const floating[::1] a, const floating[::1] b, floating[::1] out):
    _require(b.shape[0] == a.shape[0] == out.shape[0], "add: lengths differ")
    if a.shape[0] == 0:
        return
    with nogil:
        add_k(a, b, out)


def activation_forward(const floating[::1] S, int act, floating[::1] out):
    _require(out.shape[0] == S.shape[0], "activation_forward: lengths differ")
    _require_act(act, "activation_forward")
    if S.shape[0] == 0:
        return
    with nogil:
        activation_forward_k(S, out, act)


def activation_backward(const floating[::1] Y, const floating[::1] dY, int act,
                        floating[::1] out):
    _require(dY.shape[0] == Y.shape[0] == out.shape[0], "activation_backward: lengths differ")
    _require_act(act, "activation_backward")
    if Y.shape[0] == 0:
        return
    with nogil:
        activation_backward_k(Y, dY, out, act)


def sigmoid(const floating[::1] x, floating[::1] out):
    _require(out.shape[0] == x.shape[0], "sigmoid: lengths differ")
    if x.shape[0] == 0:
        return
    with nogil:
        sigmoid_k(x, out)


def dense_forward(const floating[:, ::1] X, const floating[:, ::1] W,
                  const floating[::1] b, int act, floating[:, ::1] out):
    _require(W.shape[0] == X.shape[1] and b.shape[0] == W.shape[1]
             and out.shape[0] == X.shape[0] and out.shape[1] == W.shape[1],
             "dense_forward: X (N, n_in), W (n_in, n_out), b (n_out,), out (N, n_out)")
    _require(W.shape[0] > 0 and W.shape[1] > 0, "dense_forward: empty W")
    _require_act(act, "dense_forward")
    _require_blas(max(X.shape[0], W.shape[0], W.shape[1]), "dense_forward")
    if X.shape[0] == 0:
        return
    with nogil:
        dense_forward_k(X, W, b, act, out)


def dense_backward(const floating[:, ::1] X, const floating[:, ::1] W,
                   const floating[:, ::1] Y, floating[:, ::1] dY, int act,
                   floating[:, ::1] dW, floating[::1] db, floating[:, ::1] dX):
    cdef bint has_dX = dX is not None
    cdef Py_ssize_t N = X.shape[0], n_in = W.shape[0], n_out = W.shape[1]
    _require(X.shape[1] == n_in and Y.shape[0] == N and Y.shape[1] == n_out
             and dY.shape[0] == N and dY.shape[1] == n_out and dW.shape[0] == n_in
             and dW.shape[1] == n_out and db.shape[0] == n_out
             and (not has_dX or (dX.shape[0] == N and dX.shape[1] == n_in)),
             "dense_backward: X, dX (N, n_in); W, dW (n_in, n_out); Y, dY (N, n_out); db (n_out,)")
    _require(n_in > 0 and n_out > 0 and N > 0, "dense_backward: empty input or W")
    _require_act(act, "dense_backward")
    _require_blas(max(N, n_in, n_out), "dense_backward")
    with nogil:
        dense_backward_k(X, W, Y, dY, act, dW, db, dX, has_dX)


def softmax(const floating[:, ::1] logits, floating[:, ::1] out):
    _require(out.shape[0] == logits.shape[0] and out.shape[1] == logits.shape[1]
             and logits.shape[1] > 0, "softmax: out must have logits' shape, K > 0")
    if logits.shape[0] == 0:
        return
    with nogil:
        softmax_k(logits, out)


cdef int _check_loss_shapes(const floating[:, ::1] out, const floating[:, ::1] target,
                            floating[:, ::1] grad, bint has_grad, str name) except -1:
    """out, target and grad (if any) of one (N, K) shape with N, K > 0."""
    return _require(target.shape[0] == out.shape[0] and target.shape[1] == out.shape[1]
                    and out.shape[0] > 0 and out.shape[1] > 0
                    and (not has_grad or (grad.shape[0] == out.shape[0]
                                          and grad.shape[1] == out.shape[1])),
                    f"{name}: out, target and grad must share one (N, K) shape, N, K > 0")


def loss_mse(const floating[:, ::1] out, const floating[:, ::1] target,
             floating[:, ::1] grad, const double[::1] weight=None):
    cdef bint has_grad = grad is not None
    cdef double J
    cdef const double* wp = NULL
    _check_loss_shapes(out, target, grad, has_grad, "loss_mse")
    _require_weight(weight, out.shape[0], "loss_mse")
    if weight is not None:
        wp = &weight[0]
    with nogil:
        J = loss_mse_k(out, target, grad, has_grad, wp)
    return J


def loss_softmax_ce(const floating[:, ::1] logits, const int64_t[::1] labels,
                    floating[:, ::1] grad, const double[::1] weight=None):
    cdef bint has_grad = grad is not None
    cdef double J
    cdef const double* wp = NULL
    _require(labels.shape[0] == logits.shape[0] and logits.shape[0] > 0 and logits.shape[1] > 0
             and (not has_grad or (grad.shape[0] == logits.shape[0]
                                   and grad.shape[1] == logits.shape[1])),
             "loss_softmax_ce: logits and grad (N, K), labels (N,), N, K > 0")
    _require_rows_in(labels, logits.shape[1], "loss_softmax_ce: labels")
    _require_weight(weight, logits.shape[0], "loss_softmax_ce")
    if weight is not None:
        wp = &weight[0]
    with nogil:
        J = loss_softmax_ce_k(logits, labels, grad, has_grad, wp)
    return J


def loss_softmax_ce_prob(const floating[:, ::1] logits, const floating[:, ::1] target,
                         floating[:, ::1] grad, const double[::1] weight=None):
    cdef bint has_grad = grad is not None
    cdef double J
    cdef const double* wp = NULL
    _check_loss_shapes(logits, target, grad, has_grad, "loss_softmax_ce_prob")
    _require_weight(weight, logits.shape[0], "loss_softmax_ce_prob")
    if weight is not None:
        wp = &weight[0]
    with nogil:
        J = loss_softmax_ce_prob_k(logits, target, grad, has_grad, wp)
    return J


def loss_bce(const floating[:, ::1] logits, const floating[:, ::1] target,
             floating[:, ::1] grad, const double[::1] weight=None):
    cdef bint has_grad = grad is not None
    cdef double J
    cdef const double* wp = NULL
    _check_loss_shapes(logits, target, grad, has_grad, "loss_bce")
    _require_weight(weight, logits.shape[0], "loss_bce")
    if weight is not None:
        wp = &weight[0]
    with nogil:
        J = loss_bce_k(logits, target, grad, has_grad, wp)
    return J


def regularize(const floating[::1] params, floating[::1] grads,
               const int64_t[:, ::1] segments, double l1, double l2):
    cdef bint has_grad = grads is not None
    cdef double pen
    cdef Py_ssize_t s, n = params.shape[0]
    cdef bint ok = segments.shape[1] == 2 and (not has_grad or grads.shape[0] == n)
    if ok:
        for s in range(segments.shape[0]):
            if segments[s, 1] > segments[s, 0] and (segments[s, 0] < 0 or segments[s, 1] > n):
                ok = False
                break
    _require(ok, "regularize: grads must match params and segments be (k, 2) ranges in params")
    with nogil:
        pen = regularize_k(params, grads, segments, l1, l2, has_grad)
    return pen


def dropout_mask(uint64_t seed, uint64_t counter, double rate, floating[::1] mask):
    if mask.shape[0] == 0:
        return
    with nogil:
        dropout_mask_k(seed, counter, rate, mask)


def gather_rows(const floating_in[:, ::1] X, const int64_t[::1] idx,
                floating[:, ::1] out):
    _require(out.shape[0] == idx.shape[0] and out.shape[1] == X.shape[1],
             "gather_rows: out must be (len(idx), X's columns)")
    _require_rows_in(idx, X.shape[0], "gather_rows: idx")
    if idx.shape[0] == 0 or X.shape[1] == 0:
        return
    with nogil:
        gather_rows_k(X, idx, out)


def gather(const gather_in[::1] y, const int64_t[::1] idx, gather_out[::1] out):
    _require(out.shape[0] == idx.shape[0], "gather: out must have idx's length")
    _require_rows_in(idx, y.shape[0], "gather: idx")
    with nogil:
        gather_k(y, idx, out)


def _gather_unchecked(const gather_in[::1] y, const int64_t[::1] idx, gather_out[::1] out):
    """gather_k without the entry point's checks, in the debug build only (elsewhere a
    RuntimeError): tests/test_kernels.py shows with it that the debug build's bounds
    checks catch an out-of-range index inside a kernel."""
    if not NNCORE_DEBUG_BUILD:
        raise RuntimeError("_gather_unchecked exists only in the debug build (NNCORE_DEBUG=1)")
    with nogil:
        gather_k(y, idx, out)


def sgd_step(floating[::1] params, const floating[::1] grads, floating[::1] buf,
             double lr, double momentum, double dampening, bint nesterov, bint first,
             double gscale):
    _require(grads.shape[0] == params.shape[0] == buf.shape[0],
             "sgd_step: params, grads and buf must have one length (buf unused at momentum 0)")
    if params.shape[0] == 0:
        return
    cdef unsigned fp_saved[NNC_FP_TEAM_MAX]
    cdef int nt = _omp_threads(), fp
    with nogil:   # (flushing subnormals only when nc.set_flush_denormal(True): _fp_mode.h)
        fp = nnc_fp_enter(nt, fp_saved)
        sgd_k(params, grads, buf, lr, momentum, dampening, nesterov, first, gscale)
        nnc_fp_leave(fp, fp_saved)


def adagrad_step(floating[::1] params, const floating[::1] grads, floating[::1] state_sum,
                 double clr, double eps, bint eps_inside_sqrt, double gscale):
    _require(grads.shape[0] == params.shape[0] == state_sum.shape[0],
             "adagrad_step: params, grads and state_sum must have one length")
    if params.shape[0] == 0:
        return
    cdef unsigned fp_saved[NNC_FP_TEAM_MAX]
    cdef int nt = _omp_threads(), fp
    with nogil:   # (flushing subnormals only when nc.set_flush_denormal(True): _fp_mode.h)
        fp = nnc_fp_enter(nt, fp_saved)
        adagrad_k(params, grads, state_sum, clr, eps, eps_inside_sqrt, gscale)
        nnc_fp_leave(fp, fp_saved)


def rmsprop_step(floating[::1] params, const floating[::1] grads, floating[::1] square_avg,
                 double lr, double alpha, double eps, bint eps_inside_sqrt, double gscale):
    _require(grads.shape[0] == params.shape[0] == square_avg.shape[0],
             "rmsprop_step: params, grads and square_avg must have one length")
    if params.shape[0] == 0:
        return
    cdef unsigned fp_saved[NNC_FP_TEAM_MAX]
    cdef int nt = _omp_threads(), fp
    with nogil:   # (flushing subnormals only when nc.set_flush_denormal(True): _fp_mode.h)
        fp = nnc_fp_enter(nt, fp_saved)
        rmsprop_k(params, grads, square_avg, lr, alpha, eps, eps_inside_sqrt, gscale)
        nnc_fp_leave(fp, fp_saved)


def rprop_step(floating[::1] params, const floating[::1] grads, floating[::1] prev,
               floating[::1] step_size, floating[::1] delta_w, double eta_minus,
               double eta_plus, double step_min, double step_max, bint zero_on_change,
               bint backtrack, bint revert):
    _require(grads.shape[0] == params.shape[0] == prev.shape[0] == step_size.shape[0],
             "rprop_step: params, grads, prev and step_size must have one length")
    if params.shape[0] == 0:
        return
    if backtrack and delta_w.shape[0] != params.shape[0]:
        raise ValueError("delta_w must have the length of params when backtracking")
    with nogil:
        rprop_k(params, grads, prev, step_size, delta_w, eta_minus, eta_plus, step_min,
                step_max, zero_on_change, backtrack, revert)


def symv(const floating[:, ::1] A, const floating[::1] x, floating[::1] out):
    _require(A.shape[0] == A.shape[1] == x.shape[0] == out.shape[0],
             "symv: A (n, n), x and out (n,)")
    _require_blas(A.shape[0], "symv")
    if x.shape[0] == 0:
        return
    with nogil:
        symv_k(A, x, out)


def rank2_prepare(const floating[:, ::1] V, const floating[::1] s, const floating[::1] r,
                  floating[::1] u):
    """Return (sᵀr, rᵀu) and fill u := V·r."""
    cdef double sr = 0, ru = 0
    _require(V.shape[0] == V.shape[1] == s.shape[0] == r.shape[0] == u.shape[0],
             "rank2_prepare: V (n, n), s, r and u (n,)")
    _require_blas(V.shape[0], "rank2_prepare")
    if s.shape[0] == 0:
        return 0.0, 0.0
    with nogil:
        rank2_prepare_k(V, s, r, u, &sr, &ru)
    return sr, ru


def bfgs_apply(floating[:, ::1] V, const floating[::1] s, const floating[::1] u,
               double rho, double c):
    _require(V.shape[0] == V.shape[1] == s.shape[0] == u.shape[0],
             "bfgs_apply: V (n, n), s and u (n,)")
    if s.shape[0] == 0:
        return
    with nogil:
        bfgs_apply_k(V, s, u, rho, c)


def dfp_apply(floating[:, ::1] V, const floating[::1] s, const floating[::1] u,
              double sr, double ru):
    _require(V.shape[0] == V.shape[1] == s.shape[0] == u.shape[0],
             "dfp_apply: V (n, n), s and u (n,)")
    if s.shape[0] == 0:
        return
    with nogil:
        dfp_apply_k(V, s, u, sr, ru)


# =========================================================================== benchmark helper

cdef void _triad_chunk(floating* a, const floating* b, const floating* c, floating s,
                       Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(lo, hi):
        a[i] = b[i] + s * c[i]


def _triad(floating[::1] a, const floating[::1] b, const floating[::1] c, double s):
    """a := b + s·c in one pass (STREAM triad): the memory-bandwidth yardstick of
    bench/bench_kernels.py. Not part of the backend API; the caller checks shapes."""
    cdef Py_ssize_t n = a.shape[0], ch
    cdef int nt = _threads_for(n)
    cdef floating fs = <floating>s
    if n == 0 or b.shape[0] != n or c.shape[0] != n:
        raise ValueError("a, b, c must be non-empty and of equal length")
    with nogil:
        if nt == 1:
            _triad_chunk(&a[0], &b[0], &c[0], fs, 0, n)
        else:
            for ch in prange(nt, num_threads=nt, schedule='static'):
                _triad_chunk(&a[0], &b[0], &c[0], fs, _chunk_lo(ch, nt, n), _chunk_lo(ch + 1, nt, n))


# =========================================================================== epoch loop
# The compiled training epoch: same module, so it calls the kernels above; it
# shares its OpenMP team with BLAS through _blas_pool.pxi.
include "_blas_pool.pxi"
include "_fp_mode.pxi"
include "_gemm_select.pxi"
include "_epoch_workspace.pxi"
include "_train_loop.pxi"


# =========================================================================== curvature
# R-operator, Jacobian rows and the dense algebra of Levenberg–Marquardt.
include "_curvature.pxi"
