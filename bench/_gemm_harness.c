/* Timing harness for bench/gemm_candidates.py (compiled at run time, not part of
 * the wheel). Every candidate is called through a C function pointer from a C
 * loop, so Python's per-call overhead (a few microseconds, as much as a whole
 * 32x256x10 product) is not in the figures.
 *
 * All products are row-major: C[m, n] = op(A)[m, k] op(B)[k, n], as nncore's
 * _gemm_rm. Kinds of callee:
 *   0  Fortran-77 BLAS ?gemm_ (column-major: called with the operands swapped)
 *   1  blis.cy.sgemm / dgemm (row-major, bint flags)
 *   2  the hand-written AVX-512 kernel below (float32 only; the ceiling probe)
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <string.h>
#include <time.h>

typedef void (*f77_sgemm_t)(const char*, const char*, const int*, const int*, const int*,
                            const float*, const float*, const int*, const float*, const int*,
                            const float*, float*, const int*);
typedef void (*f77_dgemm_t)(const char*, const char*, const int*, const int*, const int*,
                            const double*, const double*, const int*, const double*,
                            const int*, const double*, double*, const int*);
typedef void (*blis_sgemm_t)(int, int, int, int, int, float, const float*, int, const float*,
                             int, float, float*, int);
typedef void (*blis_dgemm_t)(int, int, int, int, int, double, const double*, int,
                             const double*, int, double, double*, int);

static double now_s(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ------------------------------------------------------------------ own kernel */
/* nncore's own float32 GEMM (src/nncore/_sgemm_avx512.h, the compiled kernels'
 * default for float32 on AVX-512 CPUs), included from the source tree. */
#include "../src/nncore/_sgemm_avx512.h"

static void own_sgemm(int ta, int tb, int m, int n, int k, const float* A, int lda,
                      const float* B, int ldb, float* C, int ldc, float* pack) {
    (void)pack;
    /* every shape, also those nncore leaves to OpenBLAS (--gate times both sides) */
    nnc_sgemm_avx512_any(ta, tb, m, n, k, A, lda, B, ldb, 0, C, ldc);
}

int own_available(void) {
#if NNC_SGEMM_OWN
    return nnc_isa_best() == NNC_ISA_AVX512;
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------ dispatch */
static void call_once(int kind, void* fn, int dbl, int ta, int tb, int m, int n, int k,
                      const void* A, int lda, const void* B, int ldb, void* C, int ldc,
                      void* pack) {
    char ca = ta ? 'T' : 'N', cb = tb ? 'T' : 'N';
    if (kind == 0 && !dbl) {
        float one = 1.0f, zero = 0.0f;
        ((f77_sgemm_t)fn)(&cb, &ca, &n, &m, &k, &one, (const float*)B, &ldb, (const float*)A,
                          &lda, &zero, (float*)C, &ldc);
    } else if (kind == 0) {
        double one = 1.0, zero = 0.0;
        ((f77_dgemm_t)fn)(&cb, &ca, &n, &m, &k, &one, (const double*)B, &ldb,
                          (const double*)A, &lda, &zero, (double*)C, &ldc);
    } else if (kind == 1 && !dbl) {
        ((blis_sgemm_t)fn)(ta, tb, m, n, k, 1.0f, (const float*)A, lda, (const float*)B, ldb,
                           0.0f, (float*)C, ldc);
    } else if (kind == 1) {
        ((blis_dgemm_t)fn)(ta, tb, m, n, k, 1.0, (const double*)A, lda, (const double*)B, ldb,
                           0.0, (double*)C, ldc);
    } else {
        own_sgemm(ta, tb, m, n, k, (const float*)A, lda, (const float*)B, ldb, (float*)C, ldc,
                  (float*)pack);
    }
}

/* Wall seconds per call over `reps` back-to-back calls; the calling thread's CPU
 * seconds per call in *cpu (on a shared machine the time this thread was not
 * scheduled is in the first, not in the second; with one BLAS thread all the
 * work runs on this thread). */
double time_gemm(int kind, void* fn, int dbl, int ta, int tb, int m, int n, int k,
                 const void* A, int lda, const void* B, int ldb, void* C, int ldc, void* pack,
                 long reps, double* cpu) {
    double n_calls = (double)(reps > 0 ? reps : 1);
    double c0 = now_s(CLOCK_THREAD_CPUTIME_ID), t0 = now_s(CLOCK_MONOTONIC);
    for (long r = 0; r < reps; r++)
        call_once(kind, fn, dbl, ta, tb, m, n, k, A, lda, B, ldb, C, ldc, pack);
    double t1 = now_s(CLOCK_MONOTONIC);
    *cpu = (now_s(CLOCK_THREAD_CPUTIME_ID) - c0) / n_calls;
    return (t1 - t0) / n_calls;
}
