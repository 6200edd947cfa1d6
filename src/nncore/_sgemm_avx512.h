/* nncore's own float32 GEMM for small shapes, AVX-512 (issue 15, item 2).

   C (m x n, row-major, ldc) := op(A) op(B) [+ C], op(A) m x k, op(B) k x n.

   Why: at the shapes of a small-batch step (32 or 128 rows against 256-784
   wide layers) SciPy's OpenBLAS and MKL pack their operands for every call,
   which at 32 rows is a pass over the weights for 32 multiply-adds per weight
   (bench/gemm_candidates.py: OpenBLAS 90-180 GFLOP/s at batch 32, this kernel
   110-310, ~0.7x OpenBLAS's time over a step's GEMMs). Here nothing large is
   packed: a row-major operand whose rows run along n is read as it lies.

   The bits: every element of C is ONE chain of fused multiply-adds in k order,
   c = fma(a_i0, b_0j, c0); c = fma(a_i1, b_1j, c); ... with c0 = 0 (beta 0) or
   the old C (beta 1). Tiling in m and n, blocking in k (a partial chain goes
   through C as a float, which is exact), the split of a call between threads,
   the operands' alignment and the caller's blocking of k (_gemm_rm's K blocks,
   beta 1 after the first) leave it unchanged, so the bits depend on the
   values and k only: the same on 1 and 2 threads, run to run, in every path.

   The kernel: an MR x (16 NV) tile of C in zmm registers (MR NV <= 24, NV <= 3),
   per step of k NV vector loads of op(B)'s row and MR broadcasts of op(A)'s
   column, MR NV FMAs. op(B) must have unit stride along n:
   * B not transposed: used as it lies (a strip of 16 NV columns stays in L2
     across the m tiles; from NNC_SG_PACK_M rows of C on, each KC_PACK x 16 NV
     piece is first copied into an L1-sized contiguous buffer, see
     nnc_sg_direct);
   * B transposed (op(B) = B^T, e.g. dY W^T): computed as C^T = B op(A)^T into
     a scratch buffer, op(A)^T packed when A is not transposed (k x m, the
     small side at batch sizes) and C^T transposed into C; or op(B) packed
     directly when that moves fewer elements.
   op(A) is read by broadcasts with any strides (A or A^T).

   Returns 0, 1 for a shape it leaves to BLAS (nnc_sgemm_own_shape: e.g. a
   batch dimension under 8 or over 128), or -1 when a scratch buffer could not be
   allocated; C is untouched in both cases and the caller calls BLAS. */
#ifndef NNCORE_SGEMM_AVX512_H
#define NNCORE_SGEMM_AVX512_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "_isa.h"
#include "_blas_pool.h"

/* The definition of the bits, as plain scalar code for the tests: each element
   one correctly rounded fma chain in k order (C's old value first with beta 1). */
#include <math.h>
static int nnc_sgemm_reference(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                               const float* A, ptrdiff_t lda, const float* B, ptrdiff_t ldb,
                               int beta, float* C, ptrdiff_t ldc) {
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++) {
            float c = beta ? C[i * ldc + j] : 0.0f;
            for (ptrdiff_t p = 0; p < k; p++)
                c = fmaf(ta ? A[p * lda + i] : A[i * lda + p],
                         tb ? B[j * ldb + p] : B[p * ldb + j], c);
            C[i * ldc + j] = c;
        }
    return 0;
}

#if NNC_ISA_DISPATCH
#include <immintrin.h>

#define NNC_SG_TARGET __attribute__((target("avx512f,fma")))
#ifndef NNC_SG_KC
#define NNC_SG_KC 1024     /* k block: a 1024 x 48 strip of op(B) is 192 KB (L2); in
                              development runs faster than strips sized for L1 */
#endif
#ifndef NNC_SG_KC_PACK
#define NNC_SG_KC_PACK 128  /* k block of a copied strip: 128 x 48 floats, 24 KB (L1) */
#endif
#ifndef NNC_SG_PACK_M
#define NNC_SG_PACK_M 256   /* rows from which B's strips are copied (see nnc_sg_direct) */
#endif
#define NNC_SG_BATCH_MAX 128    /* batch dimensions taken (nnc_sgemm_own_shape) */
#define NNC_SG_BATCH_MIN 8
#define NNC_SG_TN_MIN_N 128     /* narrowest X^T dY taken */
#define NNC_SG_NT_MIN_NK 65536.0   /* smallest n k of a dY W^T taken */
#define NNC_SG_STACK_FLOATS 8192   /* scratch up to 32 KB on the stack, not malloc */
#define NNC_SG_PAR_MIN (1 << 20)   /* multiply-adds from which a call is shared (~6 us) */
#define NNC_SG_MAX_THREADS 64

/* One tile: rows i of op(A) at a + i*sai (+ p*sak), op(B)'s row p at b + p*ldb,
   C's tile at c. `mask` covers the last vector's columns (full tiles: all ones). */
#define NNC_SG_TILE(MR, NV)                                                         \
NNC_SG_TARGET static void nnc_sg_tile_##MR##_##NV(                                  \
        ptrdiff_t kc, const float* a, ptrdiff_t sai, ptrdiff_t sak, const float* b, \
        ptrdiff_t ldb, float* c, ptrdiff_t ldc, int init, __mmask16 mask) {         \
    __m512 acc[MR][NV];                                                             \
    _Pragma("GCC unroll 24") for (int r = 0; r < MR; r++) {                         \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) {                      \
            __mmask16 mv = v == NV - 1 ? mask : (__mmask16)0xFFFF;                  \
            acc[r][v] = init ? _mm512_maskz_loadu_ps(mv, c + r * ldc + 16 * v)      \
                             : _mm512_setzero_ps();                                 \
        }                                                                           \
    }                                                                               \
    for (ptrdiff_t p = 0; p < kc; p++) {                                            \
        __m512 bv[NV];                                                              \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)                        \
            bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(mask, b + 16 * v)           \
                                : _mm512_loadu_ps(b + 16 * v);                      \
        _Pragma("GCC unroll 24") for (int r = 0; r < MR; r++) {                     \
            __m512 av = _mm512_set1_ps(a[r * sai]);                                 \
            _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)                    \
                acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);                  \
        }                                                                           \
        a += sak;                                                                   \
        b += ldb;                                                                   \
    }                                                                               \
    _Pragma("GCC unroll 24") for (int r = 0; r < MR; r++) {                         \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) {                      \
            __mmask16 mv = v == NV - 1 ? mask : (__mmask16)0xFFFF;                  \
            _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mv, acc[r][v]);             \
        }                                                                           \
    }                                                                               \
}

#define NNC_SG_TILES8(NV) \
    NNC_SG_TILE(1, NV) NNC_SG_TILE(2, NV) NNC_SG_TILE(3, NV) NNC_SG_TILE(4, NV)   \
    NNC_SG_TILE(5, NV) NNC_SG_TILE(6, NV) NNC_SG_TILE(7, NV) NNC_SG_TILE(8, NV)
#define NNC_SG_TILES12(NV) NNC_SG_TILES8(NV) \
    NNC_SG_TILE(9, NV) NNC_SG_TILE(10, NV) NNC_SG_TILE(11, NV) NNC_SG_TILE(12, NV)
#define NNC_SG_TILES24(NV) NNC_SG_TILES12(NV) \
    NNC_SG_TILE(13, NV) NNC_SG_TILE(14, NV) NNC_SG_TILE(15, NV) NNC_SG_TILE(16, NV) \
    NNC_SG_TILE(17, NV) NNC_SG_TILE(18, NV) NNC_SG_TILE(19, NV) NNC_SG_TILE(20, NV) \
    NNC_SG_TILE(21, NV) NNC_SG_TILE(22, NV) NNC_SG_TILE(23, NV) NNC_SG_TILE(24, NV)

NNC_SG_TILES24(1)
NNC_SG_TILES12(2)
NNC_SG_TILES8(3)

typedef void (*nnc_sg_tile_fn)(ptrdiff_t, const float*, ptrdiff_t, ptrdiff_t, const float*,
                               ptrdiff_t, float*, ptrdiff_t, int, __mmask16);

#define NNC_SG_T(MR, NV) nnc_sg_tile_##MR##_##NV
#define NNC_SG_ROW8(NV) NNC_SG_T(1, NV), NNC_SG_T(2, NV), NNC_SG_T(3, NV), NNC_SG_T(4, NV), \
    NNC_SG_T(5, NV), NNC_SG_T(6, NV), NNC_SG_T(7, NV), NNC_SG_T(8, NV)
#define NNC_SG_ROW12(NV) NNC_SG_ROW8(NV), NNC_SG_T(9, NV), NNC_SG_T(10, NV), \
    NNC_SG_T(11, NV), NNC_SG_T(12, NV)
#define NNC_SG_ROW24(NV) NNC_SG_ROW12(NV), NNC_SG_T(13, NV), NNC_SG_T(14, NV), \
    NNC_SG_T(15, NV), NNC_SG_T(16, NV), NNC_SG_T(17, NV), NNC_SG_T(18, NV), NNC_SG_T(19, NV), \
    NNC_SG_T(20, NV), NNC_SG_T(21, NV), NNC_SG_T(22, NV), NNC_SG_T(23, NV), NNC_SG_T(24, NV)

/* nnc_sg_tiles[NV - 1][MR - 1]; a strip of NV vectors takes tiles of up to
   nnc_sg_mr[NV - 1] rows: 24 accumulators whatever the strip's width (a narrow
   strip with 8-row tiles would wait on the FMA latency) */
static const nnc_sg_tile_fn nnc_sg_tiles[3][24] = {
    { NNC_SG_ROW24(1) }, { NNC_SG_ROW12(2) }, { NNC_SG_ROW8(3) } };
static const int nnc_sg_mr[3] = { 24, 12, 8 };

#define NNC_SG_MR 8        /* rows per unit when a call is shared between threads by rows */
#define NNC_SG_NR 48       /* columns per tile: 3 vectors */
#define NNC_SG_MC 256      /* rows per block: a 256 x 1024 block of op(A) is 1 MB (L2) */

/* C[i_lo:i_hi, j_lo:j_hi] of C := op(A) B [+ C], B's rows along n (unit stride).
   Loops: row blocks of MC (op(A)'s block stays in L2 across the column strips),
   column strips of NR, k blocks, row tiles of MR. With many row tiles per strip
   (m >= NNC_SG_PACK_M) each KC_PACK x NR piece of B is first copied into a
   contiguous buffer: B's rows lie a power of two apart in a layer's weights, so
   a strip read in place keeps evicting itself from L1 (in development runs
   512 x 512 x 784 gained ~1.4x from the copy); at 32 rows the copy would cost
   more than it saves. */
NNC_SG_TARGET static void nnc_sg_direct(ptrdiff_t i_lo, ptrdiff_t i_hi, ptrdiff_t j_lo,
                                        ptrdiff_t j_hi, ptrdiff_t k, const float* a,
                                        ptrdiff_t sai, ptrdiff_t sak, const float* b,
                                        ptrdiff_t ldb, float* c, ptrdiff_t ldc, int beta) {
    float pack[NNC_SG_KC_PACK * NNC_SG_NR] __attribute__((aligned(64)));
    int packed = i_hi - i_lo >= NNC_SG_PACK_M;
    ptrdiff_t kcmax = packed ? NNC_SG_KC_PACK : NNC_SG_KC;
    for (ptrdiff_t ib = i_lo; ib < i_hi; ib += NNC_SG_MC) {
        ptrdiff_t ie = i_hi - ib < NNC_SG_MC ? i_hi : ib + NNC_SG_MC;
        for (ptrdiff_t j0 = j_lo; j0 < j_hi; j0 += NNC_SG_NR) {
            ptrdiff_t nc = j_hi - j0 < NNC_SG_NR ? j_hi - j0 : NNC_SG_NR;
            int nv = (int)((nc + 15) / 16);
            int tail = (int)(nc - 16 * (nv - 1));
            __mmask16 mask = (__mmask16)(tail == 16 ? 0xFFFFu : ((1u << tail) - 1u));
            ptrdiff_t k0 = 0;
            do {   /* once even for k == 0 (C := 0 with beta 0) */
                ptrdiff_t kc = k - k0 < kcmax ? k - k0 : kcmax;
                int init = beta || k0 > 0;
                const float* bs = b + k0 * ldb + j0;
                ptrdiff_t lds = ldb;
                if (packed) {
                    for (ptrdiff_t p = 0; p < kc; p++)
                        memcpy(pack + p * NNC_SG_NR, bs + p * ldb, (size_t)nc * sizeof(float));
                    bs = pack;
                    lds = NNC_SG_NR;
                }
                const int mr_max = nnc_sg_mr[nv - 1];
                for (ptrdiff_t i0 = ib; i0 < ie; i0 += mr_max) {
                    int mr = (int)(ie - i0 < mr_max ? ie - i0 : mr_max);
                    nnc_sg_tiles[nv - 1][mr - 1](kc, a + i0 * sai + k0 * sak, sai, sak, bs, lds,
                                                  c + i0 * ldc + j0, ldc, init, mask);
                }
                k0 += kc;
            } while (k0 < k);
        }
    }
}

static long nnc_sg_split_calls = 0;   /* calls shared between threads (for the tests) */

/* Threads for one call: OpenBLAS's own count (what it would use for this call:
   the thread plan sets it), 1 inside a parallel region, in a forked child
   (_blas_pool.h) or for a call too small to share. */
static int nnc_sg_threads(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k) {
#if NNC_BLAS_POOL
    if ((double)m * (double)n * (double)k < NNC_SG_PAR_MIN) return 1;
    if (nnc_forked_child || nnc_blas_get_threads == NULL || omp_in_parallel()) return 1;
    int nt = nnc_blas_get_threads();
    return nt < 1 ? 1 : (nt > NNC_SG_MAX_THREADS ? NNC_SG_MAX_THREADS : nt);
#else
    (void)m; (void)n; (void)k;
    return 1;
#endif
}

/* nnc_sg_direct over the whole of C, its row tiles or column strips shared
   between threads (each element's chain is the same whoever computes it). */
NNC_SG_TARGET static void nnc_sg_direct_all(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                            const float* a, ptrdiff_t sai, ptrdiff_t sak,
                                            const float* b, ptrdiff_t ldb, float* c,
                                            ptrdiff_t ldc, int beta) {
    int nt = nnc_sg_threads(m, n, k);
    ptrdiff_t strips = (n + NNC_SG_NR - 1) / NNC_SG_NR, tiles = (m + NNC_SG_MR - 1) / NNC_SG_MR;
    int by_cols = strips >= 2 * (ptrdiff_t)nt || strips >= tiles;
    ptrdiff_t units = by_cols ? strips : tiles;
    if (nt > units) nt = (int)units;
    if (nt <= 1) {
        nnc_sg_direct(0, m, 0, n, k, a, sai, sak, b, ldb, c, ldc, beta);
        return;
    }
#if NNC_BLAS_POOL
    __atomic_fetch_add(&nnc_sg_split_calls, 1, __ATOMIC_RELAXED);
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        ptrdiff_t u0 = units * t / team, u1 = units * (t + 1) / team;
        if (by_cols) {
            ptrdiff_t j1 = u1 * NNC_SG_NR < n ? u1 * NNC_SG_NR : n;
            nnc_sg_direct(0, m, u0 * NNC_SG_NR, j1, k, a, sai, sak, b, ldb, c, ldc, beta);
        } else {
            ptrdiff_t i1 = u1 * NNC_SG_MR < m ? u1 * NNC_SG_MR : m;
            nnc_sg_direct(u0 * NNC_SG_MR, i1, 0, n, k, a, sai, sak, b, ldb, c, ldc, beta);
        }
    }
#endif
}

/* 16 x 16 block: dst rows j = src columns j (both ld in floats). Interleave
   32-bit pairs, 64-bit pairs, then 128-bit lanes twice: 64 shuffles for 256
   elements instead of a load and a store each. */
NNC_SG_TARGET static inline void nnc_sg_transpose16(const float* src, ptrdiff_t sld,
                                                    float* dst, ptrdiff_t dld) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * sld);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * dld, r[i]);
}

/* dst (cols x rows, ld dld) := src^T (src rows x cols, ld sld): whole 16 x 16
   blocks in registers, the edges element by element. */
NNC_SG_TARGET static void nnc_sg_transpose(ptrdiff_t rows, ptrdiff_t cols, const float* src,
                                           ptrdiff_t sld, float* dst, ptrdiff_t dld) {
    const ptrdiff_t B = 16;
    for (ptrdiff_t i0 = 0; i0 < rows; i0 += B)
        for (ptrdiff_t j0 = 0; j0 < cols; j0 += B) {
            ptrdiff_t i1 = i0 + B < rows ? i0 + B : rows, j1 = j0 + B < cols ? j0 + B : cols;
            if (i1 - i0 == B && j1 - j0 == B) {
                nnc_sg_transpose16(src + i0 * sld + j0, sld, dst + j0 * dld + i0, dld);
                continue;
            }
            for (ptrdiff_t j = j0; j < j1; j++)
                for (ptrdiff_t i = i0; i < i1; i++) dst[j * dld + i] = src[i * sld + j];
        }
}

/* Scratch of `count` floats: `stack` (NNC_SG_STACK_FLOATS) when it is large
   enough, else the heap (NULL when that fails); release with nnc_sg_free. */
static float* nnc_sg_alloc(size_t count, float* stack) {
    if (count <= NNC_SG_STACK_FLOATS) return stack;
    size_t bytes = ((count * sizeof(float) + 63) / 64) * 64;
    return (float*)aligned_alloc(64, bytes);
}

static void nnc_sg_free(float* p, float* stack) {
    if (p != stack) free(p);
}

/* B transposed: op(B)[p, j] = B[j*ldb + p]. */
NNC_SG_TARGET static int nnc_sg_bt(int ta, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                   const float* A, ptrdiff_t lda, const float* B,
                                   ptrdiff_t ldb, float* C, ptrdiff_t ldc, int beta) {
    /* elements moved: pack op(B) (k n) or [pack op(A)^T (k m)] + C^T out (+ in) */
    size_t direct = (size_t)k * (size_t)n;
    size_t swapped = (ta ? 0 : (size_t)k * (size_t)m) + (size_t)m * (size_t)n * (beta ? 2 : 1);
    float stack[NNC_SG_STACK_FLOATS] __attribute__((aligned(64)));
    if (direct <= swapped) {
        float* pb = nnc_sg_alloc(direct, stack);
        if (!pb) return -1;
        nnc_sg_transpose(n, k, B, ldb, pb, n);
        nnc_sg_direct_all(m, n, k, A, ta ? 1 : lda, ta ? lda : 1, pb, n, C, ldc, beta);
        nnc_sg_free(pb, stack);
        return 0;
    }
    /* C^T (n x m) = B (n x k, broadcast) op(A)^T (k x m, rows along m) */
    float* ct = nnc_sg_alloc((size_t)n * (size_t)m + (ta ? 0 : (size_t)k * (size_t)m), stack);
    if (!ct) return -1;
    const float* at = A;
    ptrdiff_t ldat = lda;
    if (!ta) {
        float* pa = ct + (size_t)n * (size_t)m;
        nnc_sg_transpose(m, k, A, lda, pa, m);
        at = pa;
        ldat = m;
    }
    if (beta) nnc_sg_transpose(m, n, C, ldc, ct, m);
    nnc_sg_direct_all(n, m, k, B, ldb, 1, at, ldat, ct, m, beta);
    nnc_sg_transpose(n, m, ct, m, C, ldc);
    nnc_sg_free(ct, stack);
    return 0;
}

/* Any shape (bench/_gemm_harness.c times the ones nnc_sgemm_avx512 leaves to BLAS). */
static int nnc_sgemm_avx512_any(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                const float* A, ptrdiff_t lda, const float* B, ptrdiff_t ldb,
                                int beta, float* C, ptrdiff_t ldc) {
    if (m <= 0 || n <= 0) return 0;
    if (tb) return nnc_sg_bt(ta, m, n, k, A, lda, B, ldb, C, ldc, beta);
    nnc_sg_direct_all(m, n, k, A, ta ? 1 : lda, ta ? lda : 1, B, ldb, C, ldc, beta);
    return 0;
}

/* The shapes this kernel takes: those where it measured at least as fast as
   OpenBLAS (bench/gemm_candidates.py --gate; both transposed: never). Each
   rule looks only at dimensions the 2-thread step never cuts into pieces (it
   splits X W by columns, X^T dY by rows, dY W^T not at all), so a call and its
   pieces take the same kernel and give the same bits.
   * The batch dimension -- the rows of a layer's input: m of X W and dY W^T,
     k of X^T dY -- from 8 to 128. At 32 rows the own kernel runs the MNIST
     step's products 1.2-1.7x as fast as OpenBLAS; from 256 rows OpenBLAS's
     packed blocks are as fast or faster (784 x 256 x 256 X^T dY: own 0.95x of
     its speed). Below 8 rows one FMA chain per element waits on the FMA
     latency (4 x 256 x 256 X W: 0.83x; dY W^T, computed as (W dY^T)^T, fills
     4 lanes of 16: 0.26x).
   * X^T dY at least 128 columns wide (256 x 10 x 32: 0.6x), dY W^T with
     n k >= 2^16 (smaller ones spend their time in the two transposes). */
static inline int nnc_sgemm_own_shape(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k) {
    if (ta && tb) return 0;
    if (ta) return k >= NNC_SG_BATCH_MIN && k <= NNC_SG_BATCH_MAX && n >= NNC_SG_TN_MIN_N;
    if (tb) return m >= NNC_SG_BATCH_MIN && m <= NNC_SG_BATCH_MAX
                   && (double)n * (double)k >= NNC_SG_NT_MIN_NK;
    return m >= NNC_SG_BATCH_MIN && m <= NNC_SG_BATCH_MAX;
}

/* The entry point (see the header comment); beta is 0 or 1. Returns 1 for a
   shape left to BLAS (nnc_sgemm_own_shape), C untouched. */
static int nnc_sgemm_avx512(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                            const float* A, ptrdiff_t lda, const float* B, ptrdiff_t ldb,
                            int beta, float* C, ptrdiff_t ldc) {
    if (!nnc_sgemm_own_shape(ta, tb, m, n, k)) return 1;
    return nnc_sgemm_avx512_any(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
}

#define NNC_SGEMM_OWN 1
#else
static int nnc_sgemm_avx512(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                            const float* A, ptrdiff_t lda, const float* B, ptrdiff_t ldb,
                            int beta, float* C, ptrdiff_t ldc) {
    (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)A; (void)lda; (void)B; (void)ldb;
    (void)beta; (void)C; (void)ldc;
    return -1;
}
static int nnc_sgemm_avx512_any(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                const float* A, ptrdiff_t lda, const float* B, ptrdiff_t ldb,
                                int beta, float* C, ptrdiff_t ldc) {
    return nnc_sgemm_avx512(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
}
static long nnc_sg_split_calls = 0;
#define NNC_SGEMM_OWN 0
#endif

#endif
