/* The three products of a Dense layer for tiny shapes, without BLAS (nncore).

   Included by _kernels.pyx through ``cdef extern from "_tiny.h"`` (declared in
   _tiny.pxi, which also holds the rule that picks them: nnc_tiny_fits below).
   At batch 1 and widths of a few dozen a BLAS call costs more than its
   arithmetic (argument checks, the small-matrix dispatch, packing, a lock in
   the buffer allocator); these loops are plain C that GCC vectorises at the
   wheel's baseline ISA (no -march=native) and inlines into its caller.

   Summation order (it fixes the rounding, so the compiled epoch loop and the
   per-step kernels, which both come here for the same shapes, agree bit for
   bit): every output element starts at 0 and adds its products one at a time
   in ascending order of the summed index, each product rounded before the add
   (-ffp-contract=off: no FMA):
       forward   C[r, j]  = sum_p  A[r, p]  B[p, j]      (p ascending)
       weights   dW[i, j] = sum_r  X[r, i]  D[r, j]      (rows ascending)
       input     dX[r, i] = sum_j  D[r, j]  W[i, j]      (j ascending)
   The loops are arranged so that the vectorised index is never the summed
   one: every element's sum is the same scalar sequence at any vector width
   or loop order, so the bits do not depend on the ISA, the compiler's
   choices or the thread count. They differ from BLAS's (blocked, FMA) in the
   last bits, well inside the float tolerance the NumPy reference is held to.

   Sizes: at most NNC_TINY_WIDTH (32) inputs and outputs per layer, so a row of
   partial sums fits a fixed array on the stack.

   Below the three products, the whole-sample step of the epoch loop at batch 1
   (forward, backward and SGD update of every layer in two calls per sample,
   same order of operations, so the same bits; see its own comment). */
#ifndef NNCORE_TINY_H
#define NNCORE_TINY_H

#include <math.h>
#include <stddef.h>

#include "_isa.h"
#include "_tanh.h"

#define NNC_TINY_WIDTH 32

#define NNC_TINY_FNS(SUFFIX, T)                                                        \
/* C (m x n) := A (m x k) B (k x n), row-major, dense strides. */                     \
static inline void nnc_tiny_nn_##SUFFIX(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,     \
                                        const T* A, const T* B, T* C) {              \
    Py_ssize_t r, p, j;                                                                \
    for (r = 0; r < m; r++) {                                                          \
        T acc[NNC_TINY_WIDTH];                                                         \
        const T* a = A + r * k;                                                        \
        for (j = 0; j < n; j++) acc[j] = 0;                                            \
        for (p = 0; p < k; p++) {                                                      \
            const T ap = a[p];                                                         \
            const T* b = B + p * n;                                                    \
            for (j = 0; j < n; j++) acc[j] = acc[j] + ap * b[j];                       \
        }                                                                              \
        for (j = 0; j < n; j++) C[r * n + j] = acc[j];                                 \
    }                                                                                  \
}                                                                                      \
/* dW (d x k) := X^T D for X (m x d), D (m x k). */                                   \
static inline void nnc_tiny_tn_##SUFFIX(Py_ssize_t m, Py_ssize_t d, Py_ssize_t k,     \
                                        const T* X, const T* D, T* dW) {             \
    Py_ssize_t r, i, j;                                                                \
    for (i = 0; i < d * k; i++) dW[i] = 0;                                             \
    for (r = 0; r < m; r++) {                                                          \
        const T* x = X + r * d;                                                        \
        const T* dr = D + r * k;                                                       \
        for (i = 0; i < d; i++) {                                                      \
            const T xi = x[i];                                                         \
            T* w = dW + i * k;                                                         \
            for (j = 0; j < k; j++) w[j] = w[j] + xi * dr[j];                          \
        }                                                                              \
    }                                                                                  \
}                                                                                      \
/* dX (m x d) := D W^T for D (m x k), W (d x k). The sum runs over W's          \
   contiguous index, so the loop goes over j outside and i inside (W read        \
   column by column) to keep i the vectorised, independent index. */            \
static inline void nnc_tiny_nt_##SUFFIX(Py_ssize_t m, Py_ssize_t d, Py_ssize_t k,     \
                                        const T* D, const T* W, T* dX) {             \
    Py_ssize_t r, i, j;                                                                \
    for (r = 0; r < m; r++) {                                                          \
        T acc[NNC_TINY_WIDTH];                                                         \
        const T* dr = D + r * k;                                                       \
        for (i = 0; i < d; i++) acc[i] = 0;                                            \
        for (j = 0; j < k; j++) {                                                      \
            const T dj = dr[j];                                                        \
            for (i = 0; i < d; i++) acc[i] = acc[i] + dj * W[i * k + j];               \
        }                                                                              \
        for (i = 0; i < d; i++) dX[r * d + i] = acc[i];                                \
    }                                                                                  \
}

NNC_TINY_FNS(f32, float)
NNC_TINY_FNS(f64, double)

/* ---------------------------------------------------------------------------
   The whole-sample step (the compiled epoch loop at batch 1, when every layer
   is a tiny Dense layer with a linear, ReLU, leaky ReLU or tanh activation and
   the optimizer is plain SGD without clipping, decay or penalty; _tiny.pxi
   decides). It performs, element for element, the operations of the per-layer
   path (the products above in their documented order, the activation point
   functions of _kernels.pyx, _delta_rows, sgd_k with the backup copy and the
   finiteness check of the epoch loop), so its bits are those of the per-layer
   path and of the per-step kernels; what it saves is the per-layer calls,
   buffers and passes: a row lives in a stack array, the update of a layer runs
   right after its gradient (its W is no longer read: the layer below needs only
   its own W and this layer's delta), with the backup copy and the check in the
   same pass.

   The input gradient sums over W's contiguous index; to keep the vectorised
   index the independent one (see "Summation order"), each layer above the
   first keeps W transposed in ``wt``, updated in the same step with the same
   scalar operations as W (so it always holds W's bits), filled from W when a
   call of the loop starts.

   Compiled for baseline x86-64, AVX2 and AVX-512F (_isa.h picks at run time);
   every copy gives the same bits. */

/* Activation codes: _kernels.pyx's (it checks them at import). */
enum { NNC_TINY_LINEAR = 0, NNC_TINY_RELU = 1, NNC_TINY_LEAKY_RELU = 2, NNC_TINY_TANH = 4 };

typedef struct {
    ptrdiff_t n_in, n_out;
    ptrdiff_t w_off;      /* W (n_in x n_out, row-major) at params + w_off, b right after */
    int act;
    void* out;            /* this layer's output row (n_out) */
    void* wt;             /* W transposed (n_out x n_in), or NULL (first layer, n_out == 1) */
} NncTinyLayer;

static inline int nnc_tiny_step_act(int act) {
    return act == NNC_TINY_LINEAR || act == NNC_TINY_RELU || act == NNC_TINY_LEAKY_RELU ||
           act == NNC_TINY_TANH;
}

/* c (n) := a (k) B (k x n): every c[j] summed from 0 in ascending p, each product
   rounded (the forward product, and the input gradient through W transposed).
   The AVX-512 copies keep the row (<= NNC_TINY_WIDTH) in registers, masked at
   its end; the others are plain loops. */
#define NNC_TINY_ROW_PLAIN(SUFFIX, T, ISA, ATTR)                                         \
ATTR static inline void nnc_tiny_row_##SUFFIX##_##ISA(const T* a, ptrdiff_t k, const T* B, \
                                                     ptrdiff_t n, T* c) {               \
    const T zero = 0;                                                                    \
    for (ptrdiff_t j = 0; j < n; j++) c[j] = zero;                                       \
    for (ptrdiff_t p = 0; p < k; p++) {                                                  \
        const T ap = a[p];                                                               \
        const T* b = B + p * n;                                                          \
        for (ptrdiff_t j = 0; j < n; j++) c[j] = c[j] + ap * b[j];                       \
    }                                                                                    \
}

NNC_TINY_ROW_PLAIN(f32, float, base, )
NNC_TINY_ROW_PLAIN(f64, double, base, )
#if NNC_ISA_DISPATCH
#include <immintrin.h>
NNC_TINY_ROW_PLAIN(f32, float, avx2, NNC_TARGET_AVX2)
NNC_TINY_ROW_PLAIN(f64, double, avx2, NNC_TARGET_AVX2)

/* lanes [0, left) of a vector of `width` (left may be <= 0 or > width) */
static inline unsigned nnc_tiny_mask(ptrdiff_t left, int width) {
    return left >= width ? (1u << width) - 1u : (left > 0 ? (1u << left) - 1u : 0u);
}

NNC_TARGET_AVX512 static inline void nnc_tiny_row_f32_avx512(const float* a, ptrdiff_t k,
                                                            const float* B, ptrdiff_t n,
                                                            float* c) {
    const __mmask16 m0 = (__mmask16)nnc_tiny_mask(n, 16);
    const __mmask16 m1 = (__mmask16)nnc_tiny_mask(n - 16, 16);
    __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps();
    for (ptrdiff_t p = 0; p < k; p++) {
        const __m512 ap = _mm512_set1_ps(a[p]);
        const float* b = B + p * n;
        c0 = _mm512_add_ps(c0, _mm512_mul_ps(ap, _mm512_maskz_loadu_ps(m0, b)));
        c1 = _mm512_add_ps(c1, _mm512_mul_ps(ap, _mm512_maskz_loadu_ps(m1, b + 16)));
    }
    _mm512_mask_storeu_ps(c, m0, c0);
    _mm512_mask_storeu_ps(c + 16, m1, c1);
}

NNC_TARGET_AVX512 static inline void nnc_tiny_row_f64_avx512(const double* a, ptrdiff_t k,
                                                            const double* B, ptrdiff_t n,
                                                            double* c) {
    const __mmask8 m0 = (__mmask8)nnc_tiny_mask(n, 8), m1 = (__mmask8)nnc_tiny_mask(n - 8, 8);
    const __mmask8 m2 = (__mmask8)nnc_tiny_mask(n - 16, 8);
    const __mmask8 m3 = (__mmask8)nnc_tiny_mask(n - 24, 8);
    __m512d c0 = _mm512_setzero_pd(), c1 = _mm512_setzero_pd();
    __m512d c2 = _mm512_setzero_pd(), c3 = _mm512_setzero_pd();
    for (ptrdiff_t p = 0; p < k; p++) {
        const __m512d ap = _mm512_set1_pd(a[p]);
        const double* b = B + p * n;
        c0 = _mm512_add_pd(c0, _mm512_mul_pd(ap, _mm512_maskz_loadu_pd(m0, b)));
        c1 = _mm512_add_pd(c1, _mm512_mul_pd(ap, _mm512_maskz_loadu_pd(m1, b + 8)));
        c2 = _mm512_add_pd(c2, _mm512_mul_pd(ap, _mm512_maskz_loadu_pd(m2, b + 16)));
        c3 = _mm512_add_pd(c3, _mm512_mul_pd(ap, _mm512_maskz_loadu_pd(m3, b + 24)));
    }
    _mm512_mask_storeu_pd(c, m0, c0);
    _mm512_mask_storeu_pd(c + 8, m1, c1);
    _mm512_mask_storeu_pd(c + 16, m2, c2);
    _mm512_mask_storeu_pd(c + 24, m3, c3);
}
#endif

/* Parameter t of a layer: its gradient G into gW, the old value into bW, the SGD
   update p + neg_lr (G gs) into W, and whether it is inf/NaN (p - p is 0 only
   for finite p) ORed into bad. */
#define NNC_TINY_SGD(T, t, G)                                                              \
    do {                                                                                  \
        const T g_ = (G), p_ = W[t] + neg_lr * (g_ * gs), zero_or_nan_ = p_ - p_;         \
        gW[t] = g_;                                                                       \
        bW[t] = W[t];                                                                     \
        W[t] = p_;                                                                        \
        bad |= zero_or_nan_ != zero_or_nan_;                                              \
    } while (0)

#define NNC_TINY_STEP_FNS(SUFFIX, T, TANH_FN, ISA, ATTR)                                 \
/* Forward through every layer: each layer's output row in its ``out``. */           \
ATTR static int nnc_tiny_forward_##SUFFIX##_##ISA(int n_layers, const NncTinyLayer* L,   \
                                                const T* params, const T* x) {         \
    const T* in = x;                                                                     \
    const T zero = 0, slope = (T)0.01;                                                   \
    for (int l = 0; l < n_layers; l++) {                                                 \
        const ptrdiff_t k = L[l].n_in, n = L[l].n_out;                                   \
        const T* W = params + L[l].w_off;                                                \
        const T* b = W + k * n;                                                          \
        T* out = (T*)L[l].out;                                                           \
        T acc[NNC_TINY_WIDTH];                                                           \
        nnc_tiny_row_##SUFFIX##_##ISA(in, k, W, n, acc);                                 \
        if (L[l].act == NNC_TINY_TANH) {                                                 \
            for (ptrdiff_t j = 0; j < n; j++) out[j] = TANH_FN(acc[j] + b[j]);           \
        } else if (L[l].act == NNC_TINY_RELU) {                                          \
            for (ptrdiff_t j = 0; j < n; j++) {                                          \
                const T s = acc[j] + b[j];                                               \
                out[j] = !(s <= zero) ? s : zero;                                        \
            }                                                                            \
        } else if (L[l].act == NNC_TINY_LEAKY_RELU) {                                    \
            for (ptrdiff_t j = 0; j < n; j++) {                                          \
                const T s = acc[j] + b[j];                                               \
                out[j] = s > zero ? s : s * slope;                                       \
            }                                                                            \
        } else {                                                                         \
            for (ptrdiff_t j = 0; j < n; j++) out[j] = acc[j] + b[j];                    \
        }                                                                                \
        in = out;                                                                        \
    }                                                                                    \
    return 0;                                                                            \
}                                                                                        \
/* Backward from the loss gradient ``out_grad`` and the SGD update p += neg_lr (g gs)  \
   of every layer: gradients into ``grads``, the old parameters into ``backup``.      \
   Returns whether every new parameter is finite. */                                    \
ATTR static int nnc_tiny_backward_sgd_##SUFFIX##_##ISA(                                 \
        int n_layers, const NncTinyLayer* L, T* params, T* grads, T* backup,            \
        const T* x, const T* out_grad, T neg_lr, T gs) {                                 \
    T up[NNC_TINY_WIDTH], dx[NNC_TINY_WIDTH];                                            \
    const T zero = 0, one = 1, slope = (T)0.01;                                          \
    int bad = 0;                                                                         \
    for (ptrdiff_t j = 0; j < L[n_layers - 1].n_out; j++) up[j] = out_grad[j];          \
    for (int l = n_layers - 1; l >= 0; l--) {                                            \
        const ptrdiff_t k = L[l].n_in, n = L[l].n_out, nw = k * n;                       \
        const T* y = (const T*)L[l].out;                                                 \
        const T* in = l > 0 ? (const T*)L[l - 1].out : x;                                \
        T* W = params + L[l].w_off;                                                      \
        T* gW = grads + L[l].w_off;                                                      \
        T* bW = backup + L[l].w_off;                                                     \
        T* wt = (T*)L[l].wt;                                                             \
        /* delta := upstream * f'(y) (_act_grad_chunk) */                               \
        if (L[l].act == NNC_TINY_TANH) {                                                 \
            for (ptrdiff_t j = 0; j < n; j++) up[j] = up[j] * (one - y[j] * y[j]);       \
        } else if (L[l].act == NNC_TINY_RELU) {                                          \
            for (ptrdiff_t j = 0; j < n; j++) up[j] = y[j] > zero ? up[j] : zero;        \
        } else if (L[l].act == NNC_TINY_LEAKY_RELU) {                                    \
            for (ptrdiff_t j = 0; j < n; j++) up[j] = y[j] > zero ? up[j] : up[j] * slope; \
        }                                                                                \
        /* dX := delta W^T (nnc_tiny_nt at one row), from W before its update            \
           (without wt, n == 1: W (k x 1) is already its own transpose) */               \
        if (l > 0) nnc_tiny_row_##SUFFIX##_##ISA(up, n, wt != NULL ? wt : W, k, dx);     \
        /* The gradient (dW := 0 + x_i delta_j as nnc_tiny_tn at one row, db := 0 +      \
           delta as _delta_rows) and the update (sgd_k without momentum) with the        \
           backup copy and the check, one pass per row of W, then b */                   \
        if (n == 1) {      /* a column: the pass runs over i */                          \
            const T d0 = up[0];                                                          \
            for (ptrdiff_t i = 0; i < k; i++) NNC_TINY_SGD(T, i, zero + in[i] * d0);     \
        } else {                                                                         \
            for (ptrdiff_t i = 0; i < k; i++) {                                          \
                const T xi = in[i];                                                      \
                for (ptrdiff_t j = 0; j < n; j++) NNC_TINY_SGD(T, i * n + j, zero + xi * up[j]); \
            }                                                                            \
        }                                                                                \
        for (ptrdiff_t j = 0; j < n; j++) NNC_TINY_SGD(T, nw + j, zero + up[j]);         \
        if (wt != NULL) {   /* the same update of W's transposed copy */                 \
            for (ptrdiff_t j = 0; j < n; j++) {                                          \
                const T dj = up[j];                                                      \
                T* col = wt + j * k;                                                     \
                for (ptrdiff_t i = 0; i < k; i++)                                        \
                    col[i] = col[i] + neg_lr * ((zero + in[i] * dj) * gs);               \
            }                                                                            \
        }                                                                                \
        for (ptrdiff_t i = 0; i < k; i++) up[i] = dx[i];                                 \
    }                                                                                    \
    return !bad;                                                                         \
}

#define NNC_TINY_STEP_ALL(ISA, ATTR)                                                     \
    NNC_TINY_STEP_FNS(f32, float, nnc_tanhf, ISA, ATTR)                                  \
    NNC_TINY_STEP_FNS(f64, double, tanh, ISA, ATTR)

NNC_TINY_STEP_ALL(base, )
#if NNC_ISA_DISPATCH
NNC_TINY_STEP_ALL(avx2, NNC_TARGET_AVX2)
NNC_TINY_STEP_ALL(avx512, NNC_TARGET_AVX512)
#endif

#if NNC_ISA_DISPATCH
#define NNC_TINY_DISPATCH(NAME, SUFFIX, ARGS)                                            \
    if (nnc_isa == NNC_ISA_AVX512) return NAME##_##SUFFIX##_avx512 ARGS;                \
    if (nnc_isa == NNC_ISA_AVX2) return NAME##_##SUFFIX##_avx2 ARGS;                    \
    return NAME##_##SUFFIX##_base ARGS;
#else
#define NNC_TINY_DISPATCH(NAME, SUFFIX, ARGS) return NAME##_##SUFFIX##_base ARGS;
#endif

#define NNC_TINY_STEP_ENTRY(SUFFIX, T)                                                   \
static int nnc_tiny_forward_##SUFFIX(int n_layers, const NncTinyLayer* L,               \
                                    const T* params, const T* x) {                     \
    NNC_TINY_DISPATCH(nnc_tiny_forward, SUFFIX, (n_layers, L, params, x))                \
}                                                                                        \
static int nnc_tiny_backward_sgd_##SUFFIX(int n_layers, const NncTinyLayer* L,          \
                                          T* params, T* grads, T* backup, const T* x,   \
                                          const T* out_grad, T neg_lr, T gs) {          \
    NNC_TINY_DISPATCH(nnc_tiny_backward_sgd, SUFFIX,                                     \
                      (n_layers, L, params, grads, backup, x, out_grad, neg_lr, gs))     \
}

NNC_TINY_STEP_ENTRY(f32, float)
NNC_TINY_STEP_ENTRY(f64, double)

#endif
