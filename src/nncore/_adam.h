/* The Adam / AdamW update over a flat chunk, float32 and float64 (nncore).

   Included by _kernels.pyx through ``cdef extern from "_adam.h"`` (declared in
   _train_loop.pxi); the caller (_tl_adam) computes the scalars, rounds them to
   the array dtype and splits the buffer over threads.

   Operation order (it fixes the rounding; the same as
   nncore.backend._numpy.adam_step and torch.optim.Adam):
       p := p * decay                              (AdamW's decoupled decay)
       m := m + w (g - m)        if w < 1/2        (torch's lerp, small weight)
            g - (g - m) (1 - w)  otherwise         (torch's lerp, large weight)
       v := v * beta2;  v := v + (1 - beta2) (g g)
       den := sqrt(v) / sqrt(bc2) + eps            (eps_inside: sqrt(v / bc2 + eps))
       p := p + neg_step (m / den)                 (neg_step = -lr / bc1)

   Clones. The function is compiled for several x86-64 levels (GCC function
   multiversioning picks one at load time): the wheel stays baseline x86-64
   (no -march=native), but the update vectorises 8 or 16 wide where the CPU
   can. IEEE add/mul/div/sqrt are correctly rounded at any vector width and
   -ffp-contract=off forbids FMA, so every clone gives the bits of the scalar
   code.

   Frozen lanes. A parameter whose gradient is exactly zero (a dead ReLU unit,
   an input feature that is always 0) keeps a first moment that decays by beta1
   per step into the subnormal range, where it stops at a fixed point
   k * unit (unit = 2^-149 in float32, 2^-1074 in float64) with rne(w k) == 0,
   i.e. k <= kmax (for beta1 = 0.9: 4 in float32, 5 in float64): m + w (0 - m)
   rounds back to m. On x86 every vector instruction that touches a subnormal
   takes a microcode assist, so with a dead network the update slows down
   (bench/bench_perf.py -k dead_units measures it). Flushing subnormals (FTZ/DAZ)
   would change results, so instead a lane is recognised as frozen -- zero
   gradient, subnormal m with |k| <= kmax, |p decay| >= pthr, v zero / a
   positive normal / a subnormal at its own fixed point (k_v <= kvmax) -- and
   its outcome is written without arithmetic on the subnormals: m and a
   subnormal v stay as they are (the scalar code rounds them back to
   themselves), and p becomes p decay, because the step
   |neg_step m / den| <= |neg_step| kmax unit / den_lb is below a quarter of an
   ulp of p whenever |p decay| >= pthr = 2^(t+2) |neg_step| kmax unit / den_lb
   (t = 24 or 53 significand bits; den >= eps, or sqrt(eps) with eps inside the
   root). The other lanes run the ordinary formula (with the frozen lanes' m
   and subnormal v replaced by 0 so they trigger no assist); the selects are
   branch-free and vectorise. The result is bit-identical to the scalar loop
   (tests/test_kernels_adam_subnormal.py).

   Blocks. Every loop also takes the minimum of |m|'s bit pattern - 1 over its
   block of NNC_ADAM_BLOCK elements (on registers it holds anyway): below kmax
   iff some lane's m is a subnormal with |k| <= kmax. A block runs the
   frozen-lane loop when the block before it had such a lane (dead units come
   by whole rows or columns, so neighbours look alike), else the plain loop; a
   live network pays only the running minimum. Both loops give the same bits;
   the guess only picks the faster one.

   AVX-512. For float32 in the default form (small-weight lerp, eps outside the
   root), nnc_adam_f32 runs the intrinsics loop of _adam_avx512.h where the CPU
   has AVX-512F (nnc_isa): the same bits, with the division by sqrt(bc2) as an
   exact double product and decaying dead lanes written from their bits. */
#ifndef NNCORE_ADAM_H
#define NNCORE_ADAM_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(NNCORE_NO_CLONES) && (__GNUC__ >= 8)
#define NNC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NNC_CLONES
#endif

#define NNC_ADAM_BLOCK 4096

/* GCC's loop distribution (-O3) would split the backup copy out of the fused
   loop into a memcpy call per block: a second pass over p. Keep it fused. */
#if defined(__GNUC__) && !defined(__clang__)
#define NNC_ADAM_FUSED __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NNC_ADAM_FUSED
#endif

/* One pass over [a, e). LERP_SMALL / EPS_INSIDE / SAVE_BACKUP / FREEZE are
   compile-time constants at every use, so each variant is a branch-free loop.
   SAVE_BACKUP (the epoch loop's step) copies p to backup before updating it
   and ORs into ``nonfinite`` whether each new p is inf or NaN (an integer
   reduction on a value in a register: no second pass over the parameters).
   ``smallest`` collects min(bits(|m|) - 1) for the next block's choice. */
#define NNC_ADAM_LOOP(T, U, SQRT, FABS, LERP_SMALL, EPS_INSIDE, SAVE_BACKUP, FREEZE)   \
    for (ptrdiff_t i = a; i < e; i++) {                                               \
        T grad = g[i] * grad_scale;                                                   \
        if (SAVE_BACKUP) backup[i] = p[i];                                            \
        T p_decayed = p[i] * decay;                                                   \
        T m_old = m[i], v_old = v[i];                                                 \
        U m_bits, v_bits, m_k;                                                        \
        int frozen = 0, v_subnormal = 0;                                              \
        memcpy(&m_bits, &m_old, sizeof(T));                                           \
        m_k = (m_bits & magnitude) - 1;                                               \
        smallest = m_k < smallest ? m_k : smallest;                                   \
        if (FREEZE) {                                                                 \
            memcpy(&v_bits, &v_old, sizeof(T));                                       \
            v_subnormal = v_bits - 1 < kvmax;                                         \
            frozen = (grad == 0) & (m_k < kmax) & (FABS(p_decayed) >= pthr)           \
                     & (v_subnormal | (v_bits == 0) | (v_bits - normal_lo < normal_span)); \
        }                                                                             \
        T m_new = frozen ? (T)0 : m_old;                                              \
        if (LERP_SMALL) m_new = m_new + w * (grad - m_new);                           \
        else m_new = grad - (grad - m_new) * omw;                                     \
        T v_new = (frozen & v_subnormal) ? (T)0 : v_old;                              \
        v_new = v_new * beta2;                                                        \
        v_new = v_new + omb2 * (grad * grad);                                         \
        T denom = (EPS_INSIDE) ? SQRT(v_new / bc2 + eps) : SQRT(v_new) / sqrt_bc2 + eps; \
        T p_new = p_decayed + neg_step * (m_new / denom);                             \
        T p_out = frozen ? p_decayed : p_new;                                         \
        m[i] = frozen ? m_old : m_new;                                                \
        v[i] = (frozen & v_subnormal) ? v_old : v_new;                                \
        p[i] = p_out;                                                                 \
        if (SAVE_BACKUP) {   /* the step's check: all exponent bits set = inf/NaN */  \
            U p_bits;                                                                 \
            memcpy(&p_bits, &p_out, sizeof(T));                                       \
            nonfinite |= (U)((p_bits & exponent) == exponent);                        \
        }                                                                             \
    }

#define NNC_ADAM_VARIANTS(T, U, SQRT, FABS, SAVE_BACKUP, FREEZE)                        \
    if (lerp_small && !eps_inside) { NNC_ADAM_LOOP(T, U, SQRT, FABS, 1, 0, SAVE_BACKUP, FREEZE) } \
    else if (lerp_small) { NNC_ADAM_LOOP(T, U, SQRT, FABS, 1, 1, SAVE_BACKUP, FREEZE) }        \
    else if (!eps_inside) { NNC_ADAM_LOOP(T, U, SQRT, FABS, 0, 0, SAVE_BACKUP, FREEZE) }       \
    else { NNC_ADAM_LOOP(T, U, SQRT, FABS, 0, 1, SAVE_BACKUP, FREEZE) }

/* The update over [lo, hi), block by block: the plain or the frozen-lane loop,
   with or without the backup. kmax == 0 switches the frozen-lane loop off;
   pthr is NaN when no lane can be frozen. Returns 1 if every parameter it
   wrote is finite (always 1 without a backup, which skips the check). */
#define NNC_ADAM_FN(NAME, T, U, SQRT, FABS)                                           \
    NNC_CLONES NNC_ADAM_FUSED static int NAME(T* restrict p, const T* restrict g, T* restrict m,    \
            T* restrict v, T* restrict backup, ptrdiff_t lo, ptrdiff_t hi,            \
            T decay, T w, T omw, T beta2, T omb2, T bc2, T sqrt_bc2, T eps,           \
            T neg_step, T grad_scale, int lerp_small, int eps_inside,                 \
            U kmax, U kvmax, T pthr) {                                                \
        const U magnitude = ~((U)1 << (sizeof(T) * 8 - 1));                           \
        /* a positive finite normal v: normal_lo <= bits < normal_lo + normal_span */ \
        const U normal_lo = sizeof(T) == 4 ? (U)0x00800000u : (U)0x0010000000000000ull; \
        const U normal_span = sizeof(T) == 4 ? (U)0x7f000000u : (U)0x7fe0000000000000ull; \
        const U exponent = sizeof(T) == 4 ? (U)0x7f800000u : (U)0x7ff0000000000000ull;  \
        U nonfinite = 0;                                                              \
        ptrdiff_t a, e;                                                               \
        int freeze = kmax != 0;   /* the first block tries the frozen-lane loop */    \
        for (a = lo; a < hi; a = e) {                                                 \
            U smallest = ~(U)0;                                                       \
            e = hi - a > NNC_ADAM_BLOCK ? a + NNC_ADAM_BLOCK : hi;                    \
            if (backup) {                                                             \
                if (freeze) { NNC_ADAM_VARIANTS(T, U, SQRT, FABS, 1, 1) }             \
                else { NNC_ADAM_VARIANTS(T, U, SQRT, FABS, 1, 0) }                    \
            } else {                                                                  \
                if (freeze) { NNC_ADAM_VARIANTS(T, U, SQRT, FABS, 0, 1) }             \
                else { NNC_ADAM_VARIANTS(T, U, SQRT, FABS, 0, 0) }                    \
            }                                                                         \
            freeze = smallest < kmax;                                                 \
        }                                                                             \
        return nonfinite == 0;                                                        \
    }

NNC_ADAM_FN(nnc_adam_f32_any, float, uint32_t, sqrtf, fabsf)
NNC_ADAM_FN(nnc_adam_f64, double, uint64_t, sqrt, fabs)

/* The largest k <= kcap with k f < 1/2 (products of small integers and floats
   are exact in double). */
static double nnc_fixed_k(double f, double kcap) {
    double k = f > 0.0 ? floor(0.5 / f) : kcap;
    if (k > kcap) k = kcap;
    while (k > 0 && k * f >= 0.5) k -= 1;
    return k;
}

/* kmax, kvmax and pthr of the frozen-lane test for one step, from the scalars
   as the kernel sees them (rounded to the array dtype by the caller). With
   ``any_k`` every subnormal first moment counts (kmax = kcap), for a loop that
   computes a decaying lane's m exactly (_adam_avx512.h); else the fixed points. */
static void nnc_adam_freeze_k(int is_f32, double w, double omw, int lerp_small, double beta2,
                              double eps, int eps_inside, double neg_step, int any_k,
                              uint64_t* kmax, uint64_t* kvmax, double* pthr) {
    const double kcap = is_f32 ? 8388607.0 : 4503599627370495.0;  /* 2^23-1, 2^52-1 */
    const double unit = is_f32 ? 0x1p-149 : 0x1p-1074;             /* subnormal step */
    const double normal_min = is_f32 ? 0x1p-126 : 0x1p-1022;
    /* m = k unit stays iff rne(w k) == 0 (lerp form) or rne((1-w) k) == k,
       guaranteed when k f < 1/2 with f = w or 1 - (1-w); v likewise with
       f = 1 - beta2. */
    double k = any_k ? kcap : nnc_fixed_k(lerp_small ? w : 1.0 - omw, kcap);
    double kv = nnc_fixed_k(1.0 - beta2, kcap);
    double denom_lb = eps_inside ? sqrt(eps) * (1.0 - 0x1p-20) : eps;   /* den >= denom_lb */
    /* scaled to the subnormal unit last: an intermediate subnormal would
       round down and weaken the bound */
    double t = (denom_lb > 0.0 && k > 0)
        ? (is_f32 ? 0x1p26 : 0x1p55) * fabs(neg_step) * k / denom_lb * (1.0 + 0x1p-20)
        : NAN;
    t *= unit;
    if (t < normal_min) t = normal_min;
    if (!(t <= (is_f32 ? FLT_MAX : DBL_MAX))) t = NAN;  /* NaN: |p| >= t never holds */
    *kmax = (uint64_t)k;
    *kvmax = (uint64_t)kv;
    *pthr = t;
}

static void nnc_adam_freeze(int is_f32, double w, double omw, int lerp_small, double beta2,
                            double eps, int eps_inside, double neg_step,
                            uint64_t* kmax, uint64_t* kvmax, double* pthr) {
    nnc_adam_freeze_k(is_f32, w, omw, lerp_small, beta2, eps, eps_inside, neg_step, 0,
                      kmax, kvmax, pthr);
}

#include "_adam_avx512.h"

#endif /* NNCORE_ADAM_H */
