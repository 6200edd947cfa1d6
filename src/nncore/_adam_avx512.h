/* The float32 Adam update with AVX-512 intrinsics (nncore), included by _adam.h.

   The same IEEE operations in the same order as NNC_ADAM_LOOP (so the same
   bits as the scalar code, torch.optim.Adam and the NumPy twin), for the
   default form (the small-weight lerp, eps outside the root), with two
   changes in how the bits are reached:

   * sqrt(v) / sqrt(bc2) as one product in double, RN_f(RN_d(x * RN_d(1/c))).
     The double product is within 2^-52 (relative) of x/c, and a quotient of
     two floats with 24-bit significands is never closer than 2^-49
     (relative) to a midpoint between two floats without being one: write
     x/c - (2Q+1) 2^q as (X 2^d - C (2Q+1)) 2^q / C with X, C, Q integers
     below 2^24; C's odd part times 2Q+1 is odd and above 2^24 so it cannot
     equal X 2^d, and the numerator is at least 2^q. So rounding the product
     to float gives the correctly rounded quotient for every x here (a square
     root: 0, inf, NaN or at least 2^-75; c <= 1 keeps x/c normal). The
     update was bound by its three divider operations per lane (a division
     keeps the vector divider busy for several cycles); now it has two.

   * Decaying dead lanes. A lane with a zero gradient and a subnormal first
     moment m = k unit (unit = 2^-149) takes about 140 steps (beta1 0.9) to
     decay to its fixed point; a network whose units die one by one always
     has some (bench/compare.py's MNIST-shaped batch-32 fit: ~1,600 of 269k
     after 1,250 steps, in every block of 4,096). Arithmetic on them takes a
     microcode assist per instruction. Here every subnormal k is a dead lane
     (kmax = 2^23 - 1, pthr for that k): m + w (0 - m) = m - rne(w k) unit is
     exact on the subnormal grid, and k - rne(w k) is computed from m's bits
     (w k is exact in double; adding and subtracting 2^52 rounds it half to
     even; k - rne(w k) >= 1 for w < 1/2, so m keeps its sign); p becomes
     p decay and v follows the frozen-lane rules of _adam.h.

   Chosen at run time (nnc_isa, _isa.h); tests force the other levels and
   compare bits (tests/test_kernels_adam_subnormal.py). */
#ifndef NNCORE_ADAM_AVX512_H
#define NNCORE_ADAM_AVX512_H

#include "_isa.h"

#if NNC_ISA_DISPATCH
#include <immintrin.h>

/* x / c for 16 lanes through double (see above). */
NNC_TARGET_AVX512 static inline __m512 nnc_divc16(__m512 x, __m512d inv) {
    __m256 lo = _mm512_castps512_ps256(x);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1));
    __m256 qlo = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(lo), inv));
    __m256 qhi = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(hi), inv));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(qlo)),
                                               _mm256_castps_pd(qhi), 1));
}

/* The bits of m after the step for dead lanes: sign | (k - rne(w k)). */
NNC_TARGET_AVX512 static inline __m512i nnc_dead_m16(__m512i m_bits, __m512d w) {
    const __m512d shift = _mm512_set1_pd(0x1p52);
    __m512i k = _mm512_and_si512(m_bits, _mm512_set1_epi32(0x7fffffff));
    __m512d klo = _mm512_cvtepi32_pd(_mm512_castsi512_si256(k));
    __m512d khi = _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(k, 1));
    __m256i rlo = _mm512_cvttpd_epi32(_mm512_sub_pd(_mm512_add_pd(_mm512_mul_pd(w, klo), shift), shift));
    __m256i rhi = _mm512_cvttpd_epi32(_mm512_sub_pd(_mm512_add_pd(_mm512_mul_pd(w, khi), shift), shift));
    __m512i r = _mm512_inserti64x4(_mm512_castsi256_si512(rlo), rhi, 1);
    return _mm512_or_si512(_mm512_and_si512(m_bits, _mm512_set1_epi32((int)0x80000000u)),
                           _mm512_sub_epi32(k, r));
}

/* Whole vectors load and store plainly (masked accesses kept the memory-bound
   1e7-parameter update ~10 % slower); the last, partial one masked. */
#define NNC_LOAD16(in, ptr) ((in) == 0xffff ? _mm512_loadu_ps(ptr) : _mm512_maskz_loadu_ps((in), (ptr)))
#define NNC_STORE16(ptr, in, x) do { if ((in) == 0xffff) _mm512_storeu_ps((ptr), (x)); \
                                     else _mm512_mask_storeu_ps((ptr), (in), (x)); } while (0)

#define NNC_ADAM_AHEAD 512
#define NNC_ADAM_FAR (1 << 21)   /* elements: 8 MB per float32 array */

typedef struct {
    __m512 decay, w, beta2, omb2, eps, neg_step, grad_scale, pthr;
    __m512d inv_sqrt_bc2, w_d;
    __m512i kmax, kvmax, kfix;
} NncAdam16;

/* One block [a, e) of 16-lane steps (the last one masked); FREEZE and BACKUP
   are constants at each call. Returns min(bits(|m|) - 1) over the block. */
#define NNC_ADAM16_BLOCK(FREEZE, BACKUP)                                              \
    for (ptrdiff_t i = a; i < e; i += 16) {                                           \
        __mmask16 in = e - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (e - i)) - 1); \
        if (far && i + NNC_ADAM_AHEAD < e) {  /* later lines, from memory */        \
            _mm_prefetch((const char*)(g + i + NNC_ADAM_AHEAD), _MM_HINT_T0);         \
            _mm_prefetch((const char*)(p + i + NNC_ADAM_AHEAD), _MM_HINT_T0);         \
            _mm_prefetch((const char*)(m + i + NNC_ADAM_AHEAD), _MM_HINT_T0);         \
            _mm_prefetch((const char*)(v + i + NNC_ADAM_AHEAD), _MM_HINT_T0);         \
        }                                                                             \
        __m512 grad = _mm512_mul_ps(NNC_LOAD16(in, g + i), c->grad_scale);  \
        __m512 p_old = NNC_LOAD16(in, p + i);                              \
        if (BACKUP) {   /* streamed past the caches: read back only on divergence */ \
            if (in == 0xffff && ((uintptr_t)(backup + i) & 63) == 0)                  \
                _mm512_stream_ps(backup + i, p_old);                                  \
            else                                                                      \
                _mm512_mask_storeu_ps(backup + i, in, p_old);                         \
        }                                                                             \
        __m512 p_decayed = _mm512_mul_ps(p_old, c->decay);                            \
        __m512 m_old = NNC_LOAD16(in, m + i);                              \
        __m512 v_old = NNC_LOAD16(in, v + i);                              \
        __m512i m_bits = _mm512_castps_si512(m_old);                                  \
        __m512i m_k = _mm512_sub_epi32(_mm512_and_si512(m_bits, magnitude), one);     \
        smallest = _mm512_mask_min_epu32(smallest, in, smallest, m_k);                \
        __mmask16 frozen = 0, v_frozen = 0;                                           \
        if (FREEZE) {                                                                 \
            __m512i v_bits = _mm512_castps_si512(v_old);                              \
            __mmask16 v_sub = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(v_bits, one), c->kvmax); \
            __mmask16 v_ok = v_sub | _mm512_cmpeq_epi32_mask(v_bits, _mm512_setzero_si512()) \
                | _mm512_cmplt_epu32_mask(_mm512_sub_epi32(v_bits, normal_lo), normal_span); \
            __m512 p_abs = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(p_decayed), magnitude)); \
            frozen = in & _mm512_cmp_ps_mask(grad, _mm512_setzero_ps(), _CMP_EQ_OQ)   \
                & _mm512_cmplt_epu32_mask(m_k, c->kmax)                               \
                & _mm512_cmp_ps_mask(p_abs, c->pthr, _CMP_GE_OQ) & v_ok;              \
            v_frozen = frozen & v_sub;                                                \
        }                                                                             \
        __m512 m_in = _mm512_mask_mov_ps(m_old, frozen, _mm512_setzero_ps());         \
        __m512 v_in = _mm512_mask_mov_ps(v_old, v_frozen, _mm512_setzero_ps());       \
        __m512 m_new = _mm512_add_ps(m_in, _mm512_mul_ps(c->w, _mm512_sub_ps(grad, m_in))); \
        __m512 v_new = _mm512_mul_ps(v_in, c->beta2);                                 \
        v_new = _mm512_add_ps(v_new, _mm512_mul_ps(c->omb2, _mm512_mul_ps(grad, grad))); \
        __m512 denom = _mm512_add_ps(nnc_divc16(_mm512_sqrt_ps(v_new), c->inv_sqrt_bc2), c->eps); \
        __m512 p_new = _mm512_add_ps(p_decayed,                                       \
                                     _mm512_mul_ps(c->neg_step, _mm512_div_ps(m_new, denom))); \
        if (FREEZE) {                                                                 \
            p_new = _mm512_mask_mov_ps(p_new, frozen, p_decayed);                     \
            /* lanes at a fixed point keep m; only decaying ones need the bits */    \
            __mmask16 decaying = frozen & _mm512_cmpge_epu32_mask(m_k, c->kfix);      \
            m_new = _mm512_mask_mov_ps(m_new, frozen, m_old);                         \
            if (decaying)                                                             \
                m_new = _mm512_mask_mov_ps(m_new, decaying,                           \
                                           _mm512_castsi512_ps(nnc_dead_m16(m_bits, c->w_d))); \
            v_new = _mm512_mask_mov_ps(v_new, v_frozen, v_old);                       \
        }                                                                             \
        NNC_STORE16(p + i, in, p_new);                                                \
        NNC_STORE16(m + i, in, m_new);                                                \
        NNC_STORE16(v + i, in, v_new);                                                \
        if (BACKUP) {                                                                 \
            __m512i e_bits = _mm512_and_si512(_mm512_castps_si512(p_new), exponent);  \
            nonfinite |= _mm512_mask_cmpeq_epi32_mask(in, e_bits, exponent);          \
        }                                                                             \
    }

/* nnc_adam_f32_any's contract for lerp_small && !eps_inside, on AVX-512F. */
NNC_TARGET_AVX512 static int nnc_adam_f32_avx512(
        float* restrict p, const float* restrict g, float* restrict m, float* restrict v,
        float* restrict backup, ptrdiff_t lo, ptrdiff_t hi, float decay, float w,
        float beta2, float omb2, float sqrt_bc2, float eps, float neg_step,
        float grad_scale, uint32_t kmax, uint32_t kvmax, float pthr, uint32_t kfix) {
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
    const __m512i normal_lo = _mm512_set1_epi32(0x00800000);
    const __m512i normal_span = _mm512_set1_epi32(0x7f000000);
    const __m512i exponent = _mm512_set1_epi32(0x7f800000);
    NncAdam16 cs = {_mm512_set1_ps(decay), _mm512_set1_ps(w), _mm512_set1_ps(beta2),
                    _mm512_set1_ps(omb2), _mm512_set1_ps(eps), _mm512_set1_ps(neg_step),
                    _mm512_set1_ps(grad_scale), _mm512_set1_ps(pthr),
                    _mm512_set1_pd(1.0 / (double)sqrt_bc2), _mm512_set1_pd((double)w),
                    _mm512_set1_epi32((int)kmax), _mm512_set1_epi32((int)kvmax),
                    _mm512_set1_epi32((int)kfix)};
    const NncAdam16* c = &cs;
    __mmask16 nonfinite = 0;
    int freeze = kmax != 0;
    /* Arrays far beyond the caches stream from memory: asking for the lines 2 KB
       ahead took the 1e7-parameter update from 5.7 to 5.0 ms on 2 threads; inside
       the epoch loop (pieces of ~30k parameters, mostly cached) it cost 10 %. */
    const int far = hi - lo > NNC_ADAM_FAR;
    /* A first, short block up to p's next 64-byte boundary: the others then load
       and store whole cache lines (NumPy's large arrays are often 16 bytes off;
       the arrays of one optimizer share that offset), as GCC's peeled loop did. */
    ptrdiff_t head = (ptrdiff_t)(((64 - ((uintptr_t)(p + lo) & 63)) & 63) / sizeof(float));
    for (ptrdiff_t a = lo, e; a < hi; a = e) {
        __m512i smallest = _mm512_set1_epi32(-1);
        e = hi - a > NNC_ADAM_BLOCK ? a + NNC_ADAM_BLOCK : hi;
        if (a == lo && head > 0 && head < e - a) e = a + head;
        if (backup) {
            if (freeze) { NNC_ADAM16_BLOCK(1, 1) } else { NNC_ADAM16_BLOCK(0, 1) }
        } else {
            if (freeze) { NNC_ADAM16_BLOCK(1, 0) } else { NNC_ADAM16_BLOCK(0, 0) }
        }
        freeze = _mm512_reduce_min_epu32(smallest) < kmax;
    }
    if (backup) _mm_sfence();   /* the streamed stores are visible before we return */
    return nonfinite == 0;
}
#endif /* NNC_ISA_DISPATCH */

/* The float32 update: the AVX-512 loop where the CPU has it and the form is
   the default one, else the multiversioned scalar loop (the same bits). */
static int nnc_adam_f32(float* restrict p, const float* restrict g, float* restrict m,
                        float* restrict v, float* restrict backup, ptrdiff_t lo, ptrdiff_t hi,
                        float decay, float w, float omw, float beta2, float omb2, float bc2,
                        float sqrt_bc2, float eps, float neg_step, float grad_scale,
                        int lerp_small, int eps_inside, uint32_t kmax, uint32_t kvmax,
                        float pthr) {
#if NNC_ISA_DISPATCH
    if (nnc_isa == NNC_ISA_AVX512 && lerp_small && !eps_inside) {
        uint32_t kfix = kmax;   /* m_k >= kfix: above the fixed points, decaying */
        if (kmax != 0) {   /* every subnormal k is a dead lane here */
            uint64_t k_any, kv_any;
            double pthr_any;
            nnc_adam_freeze_k(1, w, omw, lerp_small, beta2, eps, eps_inside, neg_step, 1,
                              &k_any, &kv_any, &pthr_any);
            kmax = (uint32_t)k_any;
            pthr = (float)pthr_any;
        }
        return nnc_adam_f32_avx512(p, g, m, v, backup, lo, hi, decay, w, beta2, omb2,
                                   sqrt_bc2, eps, neg_step, grad_scale, kmax, kvmax, pthr,
                                   kfix);
    }
#endif
    return nnc_adam_f32_any(p, g, m, v, backup, lo, hi, decay, w, omw, beta2, omb2, bc2,
                            sqrt_bc2, eps, neg_step, grad_scale, lerp_small, eps_inside,
                            kmax, kvmax, pthr);
}

#endif /* NNCORE_ADAM_AVX512_H */
