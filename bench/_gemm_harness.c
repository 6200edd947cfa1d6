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
/* A 6 x 32 register tile (12 zmm accumulators), B rows contiguous (B^T is packed
 * into `pack` first, its cost included); masked loads/stores for n % 32. No
 * k-blocking and no A packing: a probe of what a plain kernel reaches at these
 * shapes, not a product. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define OWN_MR 6
__attribute__((target("avx512f,fma"), always_inline)) static inline void
own_tile(const int mr, int k, const float* A, long ars, long acs, const float* B, long ldb,
         float* C, long ldc, int ncols) {
    __mmask16 m0 = ncols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << ncols) - 1u);
    __mmask16 m1 = ncols >= 32 ? (__mmask16)0xFFFF
                 : ncols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (ncols - 16)) - 1u);
    __m512 acc[OWN_MR][2];
    for (int r = 0; r < mr; r++) { acc[r][0] = _mm512_setzero_ps(); acc[r][1] = _mm512_setzero_ps(); }
    for (int p = 0; p < k; p++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, B + (long)p * ldb);
        __m512 b1 = _mm512_maskz_loadu_ps(m1, B + (long)p * ldb + 16);
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(A[r * ars + p * acs]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < mr; r++) {
        _mm512_mask_storeu_ps(C + r * ldc, m0, acc[r][0]);
        _mm512_mask_storeu_ps(C + r * ldc + 16, m1, acc[r][1]);
    }
}

__attribute__((target("avx512f,fma"))) static void
own_sgemm(int ta, int tb, int m, int n, int k, const float* A, int lda, const float* B,
          int ldb, float* C, int ldc, float* pack) {
    long ars = ta ? 1 : lda, acs = ta ? lda : 1;
    if (tb) {   /* B is stored (n x k): pack op(B) = B^T as k x n rows */
        for (int j = 0; j < n; j++)
            for (int p = 0; p < k; p++) pack[(long)p * n + j] = B[(long)j * ldb + p];
        B = pack;
        ldb = n;
    }
    for (int j0 = 0; j0 < n; j0 += 32) {
        int nc = n - j0 < 32 ? n - j0 : 32;
        for (int i0 = 0; i0 < m; i0 += OWN_MR) {
            const float* a = A + i0 * ars;
            float* c = C + (long)i0 * ldc + j0;
            switch (m - i0 < OWN_MR ? m - i0 : OWN_MR) {
            case 6: own_tile(6, k, a, ars, acs, B + j0, ldb, c, ldc, nc); break;
            case 5: own_tile(5, k, a, ars, acs, B + j0, ldb, c, ldc, nc); break;
            case 4: own_tile(4, k, a, ars, acs, B + j0, ldb, c, ldc, nc); break;
            case 3: own_tile(3, k, a, ars, acs, B + j0, ldb, c, ldc, nc); break;
            case 2: own_tile(2, k, a, ars, acs, B + j0, ldb, c, ldc, nc); break;
            default: own_tile(1, k, a, ars, acs, B + j0, ldb, c, ldc, nc); break;
            }
        }
    }
}

int own_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}
#else
static void own_sgemm(int ta, int tb, int m, int n, int k, const float* A, int lda,
                      const float* B, int ldb, float* C, int ldc, float* pack) {
    (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)A; (void)lda; (void)B; (void)ldb;
    (void)C; (void)ldc; (void)pack;
}
int own_available(void) { return 0; }
#endif

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
