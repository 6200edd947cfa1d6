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
   partial sums fits a fixed array on the stack. */
#ifndef NNCORE_TINY_H
#define NNCORE_TINY_H

#include <stddef.h>

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

#endif
