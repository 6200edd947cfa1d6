/* tanh of a float32, without libm and vectorisable (nncore).

   Included by _kernels.pyx through ``cdef extern from "_tanh.h"`` (declared in
   _tiny.pxi). nnc_tanhf is float32 tanh's point function: every compiled loop
   that applies tanh to float32 (the activation kernels, the dense layers' fused
   bias + activation, the tiny path's whole-sample step) calls it or one of the
   array loops below, which call it per element, so all of them agree bit for
   bit. Float64 keeps libm's tanh.

   Result: tanh(x) computed in double to a few units of double rounding, then
   rounded once to float. That is the correctly rounded float tanh except where
   the true value lies within ~2^-51 (relative) of a midpoint between two
   floats; checked against (float)tanh((double)x) of glibc 2.36 on every float
   (bench/tanh_exhaustive.c: no difference, at every ISA level), and on a sample in
   tests/test_tanh_f32.py.
   glibc's own tanhf (which this replaces) is not correctly rounded: it differs
   from the above in the last bit for some inputs.

   Method, branch-free (so GCC vectorises the loops that call it):
       a = min(|x|, 10)            (tanh(10) rounds to 1.0f, as every larger |x|)
       e = expm1(2a)               2a = k ln2 + r, |r| <= ln2/2 (Cody-Waite, k <= 29),
                                   expm1(r) by its Taylor series to r^13 (truncation
                                   < 2^-56 relative), e = 2^k expm1(r) + (2^k - 1)
       t = e / (e + 2)             (= tanh(a); no cancellation at small a)
       result = copysign((float)t, x);  NaN in, NaN out.
   Only IEEE add, multiply, divide and exact bit operations, no FMA
   (-ffp-contract=off): every vector width (the clones of the array loops, SSE2 /
   AVX2 / AVX-512) gives the bits of the scalar code. */
#ifndef NNCORE_TANH_H
#define NNCORE_TANH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_isa.h"

static inline double nnc_tanh_bits_to_double(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline uint64_t nnc_tanh_double_to_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static inline float nnc_tanhf(float x) {
    /* 1.5 * 2^52: adding it rounds a double in [0, 2^51) to an integer held in the
       low bits of the sum's significand (round to nearest even). */
    const double shifter = 6755399441055744.0;
    const double inv_ln2 = 1.4426950408889634;            /* 1/ln2, rounded */
    const double ln2_hi = 0.693147180369123816490;        /* 0x1.62e42fee00000p-1: k*ln2_hi exact */
    const double ln2_lo = 1.90821492927058770002e-10;     /* ln2 - ln2_hi */
    const uint32_t ten_bits = 0x41200000u;                /* 10.0f */
    double a, y, kd, k, r, r2, r4, r8, q01, q23, q45, q67, q89, q1011, q03, q47, q811, q, p;
    double two_k, e, t;
    uint32_t xbits, abits, clamped, rbits, nan_mask;
    uint64_t kbits;
    float af, res;
    /* |x| clamped to 10 and the NaN test on the bits: integer selects, which GCC
       vectorises (a floating compare may trap, so it would keep a branch). */
    memcpy(&xbits, &x, sizeof xbits);
    abits = xbits & 0x7fffffffu;
    clamped = abits < ten_bits ? abits : ten_bits;
    memcpy(&af, &clamped, sizeof af);
    a = (double)af;
    y = a + a;
    kd = y * inv_ln2 + shifter;
    k = kd - shifter;                                      /* exact: an integer in [0, 29] */
    kbits = nnc_tanh_double_to_bits(kd) - nnc_tanh_double_to_bits(shifter);
    two_k = nnc_tanh_bits_to_double((kbits + 1023) << 52);
    r = (y - k * ln2_hi) - k * ln2_lo;
    /* expm1(r) = r + r^2 q(r), q(r) = 1/2! + r/3! + ... + r^11/13!, by Estrin's
       scheme (a short dependency chain: a step of the tiny path waits for it) */
    r2 = r * r;
    r4 = r2 * r2;
    r8 = r4 * r4;
    q01 = 0.5 + 0.16666666666666666 * r;                 /* 1/2!, 1/3! */
    q23 = 0.041666666666666664 + 0.008333333333333333 * r;     /* 1/4!, 1/5! */
    q45 = 0.001388888888888889 + 0.0001984126984126984 * r;    /* 1/6!, 1/7! */
    q67 = 2.48015873015873e-05 + 2.7557319223985893e-06 * r;   /* 1/8!, 1/9! */
    q89 = 2.755731922398589e-07 + 2.505210838544172e-08 * r;   /* 1/10!, 1/11! */
    q1011 = 2.08767569878681e-09 + 1.6059043836821613e-10 * r; /* 1/12!, 1/13! */
    q03 = q01 + q23 * r2;
    q47 = q45 + q67 * r2;
    q811 = q89 + q1011 * r2;
    q = (q03 + q47 * r4) + q811 * r8;
    p = r + r2 * q;
    e = two_k * p + (two_k - 1.0);
    t = e / (e + 2.0);
    res = (float)t;
    memcpy(&rbits, &res, sizeof rbits);
    rbits |= xbits & 0x80000000u;                          /* the sign of x, -0 included */
    nan_mask = 0u - (uint32_t)(abits > 0x7f800000u);       /* NaN in, the same NaN out */
    rbits = (xbits & nan_mask) | (rbits & ~nan_mask);
    memcpy(&res, &rbits, sizeof res);
    return res;
}

/* The array loops, compiled once per ISA level (the wheel stays baseline x86-64,
   no -march=native): NNC_ISA picks the copy at run time (nnc_isa_init at import;
   tests force each level the CPU has, see nnc_isa_set). Every copy gives the
   bits of the scalar point function. */
#define NNC_TANH_LOOPS(SUFFIX, ATTR)                                                  \
ATTR static void nnc_tanhf_array_##SUFFIX(const float* s, float* y, ptrdiff_t n) {    \
    for (ptrdiff_t i = 0; i < n; i++) y[i] = nnc_tanhf(s[i]);                        \
}                                                                                     \
ATTR static void nnc_tanhf_bias_##SUFFIX(float* row, const float* b, ptrdiff_t n) {   \
    for (ptrdiff_t j = 0; j < n; j++) row[j] = nnc_tanhf(row[j] + b[j]);             \
}

NNC_TANH_LOOPS(base, )
#if NNC_ISA_DISPATCH
NNC_TANH_LOOPS(avx2, NNC_TARGET_AVX2)
NNC_TANH_LOOPS(avx512, NNC_TARGET_AVX512)
#endif

/* y[i] := tanh(s[i]) for i < n (y may be s). */
static void nnc_tanhf_array(const float* s, float* y, ptrdiff_t n) {
#if NNC_ISA_DISPATCH
    if (nnc_isa == NNC_ISA_AVX512) { nnc_tanhf_array_avx512(s, y, n); return; }
    if (nnc_isa == NNC_ISA_AVX2) { nnc_tanhf_array_avx2(s, y, n); return; }
#endif
    nnc_tanhf_array_base(s, y, n);
}

/* row[j] := tanh(row[j] + b[j]) for j < n (the bias first, as NumPy). */
static void nnc_tanhf_bias(float* row, const float* b, ptrdiff_t n) {
#if NNC_ISA_DISPATCH
    if (nnc_isa == NNC_ISA_AVX512) { nnc_tanhf_bias_avx512(row, b, n); return; }
    if (nnc_isa == NNC_ISA_AVX2) { nnc_tanhf_bias_avx2(row, b, n); return; }
#endif
    nnc_tanhf_bias_base(row, b, n);
}

#endif
